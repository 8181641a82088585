-- SPDX-License-Identifier: MIT

--- Kernel send timestamps: every probe's RTT runs from the kernel's send
-- stamp to the kernel's receive stamp, each stamp is matched to its own
-- probe through send errors and full socket buffers, and ICMPRUN_TX_STAMP=user
-- falls back to our clock and says so.
-- Runs inside scripts/netns: loopback and the test hosts of scripts/testnet
-- are the only addresses probed.
local icmprun = require "icmprun"
local cli = require "cli"

local NORMAL4, NORMAL6 = "198.51.100.2", "2001:db8:2::2"
local SLOW4, SLOW6 = "198.51.100.66", "2001:db8:8::2"

--- Runs a script through icmprun with these environment settings; returns
-- its standard output's tab-separated "key=value" fields as a table.
local function run(env, code)
  local r = cli.sh(env .. " " .. cli.quote(cli.icmprun) .. " -e " .. cli.quote(code))
  assert.equal(0, r.code, r.stderr)
  local fields = {}
  for key, value in r.stdout:gmatch("(%S+)=(%S+)") do
    fields[key] = tonumber(value) or value
  end
  return fields
end

-- A sweep through every way a send can fail or be held back, counted by
-- status and send stamp source: the slow host (a token bucket, and with a
-- 4 KiB send buffer every batch meets EAGAIN, or ENOBUFS on raw sockets) in
-- both families, probes larger than the path MTU (EMSGSIZE, then sent
-- fragmented), and unreachable routes (EHOSTUNREACH at the send). With
-- ICMPRUN_TX_STAMP=verify each stamp comes with a copy of its datagram and
-- is checked against the probe its key names.
local TROUBLE = [[
  local icmprun = require "icmprun"
  icmprun.ping("]] .. SLOW4 .. [["); icmprun.ping("]] .. SLOW6 .. [[")
  local targets = {}
  for i = 1, 600 do
    targets[#targets + 1] = i % 3 == 0 and "]] .. SLOW4 .. [[" or "]] .. SLOW6 .. [["
    -- 203.0.113.0/25 is unreachable here (203.0.113.128/25 is the trace path).
    if i % 50 == 0 then targets[#targets + 1] = "203.0.113." .. i % 120 end
    if i % 60 == 0 then targets[#targets + 1] = "2001:db8:dead::" .. i end
  end
  local before = icmprun.counters()
  local count, bad_rtt = {}, 0
  for _, size in ipairs({ 1000, 3000 }) do
    for r in icmprun.sweep(targets, { rate = 0, size = size, timeout = 5000 }) do
      local key = r.status .. "_" .. tostring(r.tx_stamp)
      count[key] = (count[key] or 0) + 1
      if r.status == "reply" and not (r.rtt > 0) then bad_rtt = bad_rtt + 1 end
    end
  end
  local s = icmprun.counters()
  for k, v in pairs(count) do io.write(k, "=", v, "\t") end
  for _, k in ipairs({ "send_retries", "send_errors", "tx_stamps", "tx_stamps_unmatched",
                       "tx_stamps_misattributed", "clock_steps" }) do
    io.write(k, "=", s[k] - before[k], "\t")
  end
  print("bad_rtt=" .. bad_rtt)
]]

describe("kernel send timestamps", function()
  it("stamps every probe of a 1,000-probe run over loopback and veth", function()
    local info = icmprun.info()
    assert.equal("kernel", info.tx_stamp)
    assert.equal("kernel", info.ipv4_tx_stamp)
    assert.equal("kernel", info.ipv6_tx_stamp)
    local before = icmprun.counters()
    local kernel, replies = 0, 0
    -- Paced: the send queue empties every turn, as for ping and the exporter.
    for r in icmprun.sweep({ "127.0.0.1", "::1", NORMAL4, NORMAL6 },
      { rate = 20000, count = 250, interval = 0, timeout = 2000 }) do
      assert.equal("reply", r.status)
      replies = replies + 1
      assert.is_true(r.rtt > 0)
      if r.tx_stamp == "kernel" then
        kernel = kernel + 1
      end
    end
    local after = icmprun.counters()
    assert.equal(1000, replies)
    assert.equal(1000, kernel)
    assert.equal(1000, after.tx_stamps - before.tx_stamps)
    assert.equal(0, after.tx_stamps_unmatched - before.tx_stamps_unmatched)
    assert.equal(0, after.clock_steps - before.clock_steps)
  end)

  it("stamps pings too, each RTT within what our own clock saw", function()
    for _, addr in ipairs({ "127.0.0.1", "::1", NORMAL4, NORMAL6 }) do
      for _ = 1, 20 do
        local t0 = icmprun.now()
        local r = icmprun.ping(addr)
        local elapsed = icmprun.now() - t0
        assert.equal("reply", r.status)
        assert.equal("kernel", r.tx_stamp)
        assert.is_true(r.rtt > 0 and r.rtt <= elapsed,
          addr .. ": rtt " .. r.rtt .. " ms outside (0, " .. elapsed .. "]")
      end
    end
  end)

  it("stamps probes answered by an ICMP error, read from the same queue", function()
    -- "far" is two hops away: with TTL 1 the router answers "time exceeded".
    -- The send stamp and the error come through the error queue in that
    -- order, so the error's result already has the kernel's send time.
    for _, addr in ipairs({ "192.0.2.130", "2001:db8:4::2" }) do
      for _ = 1, 3 do
        local r = icmprun.ping(addr, { ttl = 1 })
        assert.equal("ttl_exceeded", r.status)
        assert.equal("kernel", r.tx_stamp)
      end
    end
  end)

  for _, sock in ipairs({ "dgram", "raw" }) do
    for _, keys in ipairs({ "explicit", "counter" }) do
      it("matches each stamp to its own probe through send errors and full buffers ("
        .. sock .. " sockets, " .. keys .. " keys)", function()
        local f = run("ICMPRUN_SOCKET=" .. sock .. " ICMPRUN_TX_KEYS=" .. keys
          .. " ICMPRUN_SNDBUF=4096 ICMPRUN_TX_STAMP=verify", TROUBLE)
        -- 600 probes to the slow host per size, 12 + 10 to unreachable routes.
        assert.equal(1200, f.reply_kernel)
        assert.is_nil(f.reply_user)
        assert.equal(44, f.unreachable_nil)
        assert.equal(44, f.send_errors)
        assert.is_true(f.send_retries > 0, "the small buffer never pushed back")
        assert.equal(1200, f.tx_stamps)
        assert.equal(0, f.tx_stamps_misattributed)
        assert.equal(0, f.tx_stamps_unmatched)
        -- No kernel RTT was longer than the monotonic time from before the
        -- send call until the reply was read, nor negative.
        assert.equal(0, f.clock_steps)
        assert.equal(0, f.bad_rtt)
      end)
    end
  end

  it("leaves an unpaced sweep on our clock once its queue stays full, unless told", function()
    local code = [[
      local icmprun = require "icmprun"
      local count = {}
      for r in icmprun.sweep("127.0.0.0/20", { rate = 0, timeout = 2000 }) do
        local key = r.status .. "_" .. r.tx_stamp
        count[key] = (count[key] or 0) + 1
      end
      for k, v in pairs(count) do io.write(k, "=", v, "\t") end
      print()
    ]]
    local auto = run("", code)
    assert.equal(4096, (auto.reply_kernel or 0) + (auto.reply_user or 0))
    -- The first batch goes out before the queue is known to stay full.
    assert.is_true((auto.reply_kernel or 0) >= 64, "no probe was stamped")
    assert.is_true((auto.reply_user or 0) >= 2048, "the saturated sweep was stamped")
    local kernel = run("ICMPRUN_TX_STAMP=kernel", code)
    assert.equal(4096, kernel.reply_kernel)
  end)

  it("falls back to our clock with ICMPRUN_TX_STAMP=user, and says so", function()
    local f = run("ICMPRUN_TX_STAMP=user", [[
      local icmprun = require "icmprun"
      local info = icmprun.info()
      io.write("info=", info.tx_stamp, "\tv4=", info.ipv4_tx_stamp, "\tv6=",
        info.ipv6_tx_stamp, "\t")
      local count = {}
      for r in icmprun.sweep({ "127.0.0.1", "::1", "]] .. NORMAL4 .. [[" },
        { rate = 0, count = 50, interval = 0 }) do
        local key = r.status .. "_" .. r.tx_stamp
        count[key] = (count[key] or 0) + 1
        assert(r.rtt > 0)
      end
      for k, v in pairs(count) do io.write(k, "=", v, "\t") end
      print("tx_stamps=" .. icmprun.counters().tx_stamps)
    ]])
    assert.equal("user", f.info)
    assert.equal("user", f.v4)
    assert.equal("user", f.v6)
    assert.equal(150, f.reply_user)
    assert.is_nil(f.reply_kernel)
    assert.equal(0, f.tx_stamps)
  end)

  it("refuses an unknown ICMPRUN_TX_STAMP with a message naming it", function()
    local r = cli.sh("ICMPRUN_TX_STAMP=hardware " .. cli.quote(cli.icmprun) .. " -e 'print(1)'")
    assert.equal(1, r.code)
    assert.equal("", r.stdout)
    assert.matches('ICMPRUN_TX_STAMP must be "auto", "kernel", "user" or "verify", not "hardware"',
      r.stderr, 1, true)
  end)
end)
