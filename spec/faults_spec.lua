-- SPDX-License-Identifier: MIT

--- Wrong answers never become results: a TUN test host (spec/helpers/
-- tun_responder.c) answers echo requests twice, too late, with a corrupted
-- payload (cookie, filler, last byte, or cut short), a wrong sequence
-- number, from another address, or with a bad checksum. Each probe ends in
-- exactly one result (the truthful one), the wrong answers are counted in
-- icmprun.counters(), and a damaged answer's first differing byte is named.
local icmprun = require "icmprun"
local cli = require "cli"

local DEVICE = "irtun0"
local LATE_MS = 300

--- The responder's addresses by behaviour, per family.
local HOSTS = {
  [4] = { good = "192.0.2.33", duplicate = "192.0.2.34", late = "192.0.2.35",
    corrupted = "192.0.2.36", wrong_seq = "192.0.2.37", foreign = "192.0.2.38",
    bad_checksum = "192.0.2.40" },
  [6] = { good = "2001:db8:9::21", duplicate = "2001:db8:9::22", late = "2001:db8:9::23",
    corrupted = "2001:db8:9::24", wrong_seq = "2001:db8:9::25", foreign = "2001:db8:9::26",
    bad_checksum = "2001:db8:9::28" },
}

--- Addresses whose answers carry the right cookie but a damaged payload:
-- a bit flipped in byte 28 (the filler), in the last byte, or one byte
-- short. Only the whole-payload check can tell these from replies.
local DAMAGED = {
  [4] = { byte28 = "192.0.2.41", last = "192.0.2.42", short = "192.0.2.43" },
  [6] = { byte28 = "2001:db8:9::29", last = "2001:db8:9::2a", short = "2001:db8:9::2b" },
}

--- Asserts that r is the one result of a probe whose only answer was
-- damaged from payload byte `offset` on.
local function assert_damaged(r, offset)
  assert.equal("timeout", r.status)
  assert.equal("EBADMSG", r.code)
  assert.equal(offset, r.corrupt_offset)
  assert.truthy(r.err:find("byte " .. offset, 1, true), r.err)
  assert.is_nil(r.rtt)
end

--- Counter changes across fn().
local function counting(fn)
  local before = icmprun.counters()
  local value = fn()
  local after = icmprun.counters()
  local delta = {}
  for k, v in pairs(after) do delta[k] = v - (before[k] or 0) end
  return value, delta
end

local responder = {}

setup(function()
  local path = assert(os.getenv("ICMPRUN_TUN_RESPONDER"), "ICMPRUN_TUN_RESPONDER is not set")
  -- Started through io.popen so that it is our child and dies with us.
  responder.pipe = assert(io.popen(string.format("echo $$; exec %s %s %d",
    cli.quote(path), DEVICE, LATE_MS)))
  responder.pid = responder.pipe:read("l")
  assert.equal("ready", responder.pipe:read("l"))
  for _, cmd in ipairs({
    -- Room for payloads of icmprun.limits.checked_payload bytes and more,
    -- unfragmented: the responder answers whole datagrams only.
    "ip link set " .. DEVICE .. " mtu 9000 up",
    "ip route add 192.0.2.32/27 dev " .. DEVICE,
    "ip -6 route add 2001:db8:9::/64 dev " .. DEVICE,
  }) do
    local r = cli.sh(cmd)
    assert.equal(0, r.code, cmd .. ": " .. r.stderr)
  end
end)

teardown(function()
  os.execute("kill " .. responder.pid)
  responder.pipe:close()
end)

describe("a TUN host answering wrongly", function()
  for _, family in ipairs({ 4, 6 }) do
    local hosts = HOSTS[family]
    describe("over IPv" .. family, function()
      it("answers the control address correctly", function()
        local r = icmprun.ping(hosts.good, { timeout = 1000 })
        assert.equal("reply", r.status)
        assert.equal(hosts.good, r.from)
      end)

      it("gives one reply for two answers, and counts a duplicate", function()
        local r, delta = counting(function()
          local r = icmprun.ping(hosts.duplicate, { timeout = 1000 })
          icmprun.sleep(50) -- The second answer arrives just after the first.
          return r
        end)
        assert.equal("reply", r.status)
        assert.equal(1, delta.results)
        assert.equal(1, delta.duplicates)
      end)

      it("gives a timeout for an answer after the timeout, and counts it late", function()
        local r, delta = counting(function()
          local r = icmprun.ping(hosts.late, { timeout = 100 })
          icmprun.sleep(LATE_MS)
          return r
        end)
        assert.equal("timeout", r.status)
        assert.equal(1, delta.results)
        assert.equal(1, delta.late)
        assert.equal(0, delta.replies)
      end)

      for _, case in ipairs({ "corrupted", "wrong_seq", "foreign" }) do
        it("never takes a " .. case .. " answer for a reply, and counts it", function()
          local r, delta = counting(function()
            return icmprun.ping(hosts[case], { timeout = 200 })
          end)
          assert.equal("timeout", r.status)
          assert.equal(1, delta.results)
          assert.equal(0, delta.replies)
          assert.equal(1, delta[case])
          if case == "corrupted" then
            assert_damaged(r, 0) -- The responder flips the cookie's first byte.
            assert.equal(0, icmprun.counters().corrupt_offset)
          end
        end)
      end

      it("never takes an answer with a bit flipped at byte 28 of 56 for a reply", function()
        local r, delta = counting(function()
          return icmprun.ping(DAMAGED[family].byte28, { timeout = 200 })
        end)
        assert_damaged(r, 28)
        assert.equal(1, delta.results)
        assert.equal(0, delta.replies)
        assert.equal(1, delta.corrupted)
        assert.equal(28, icmprun.counters().corrupt_offset)
      end)

      it("compares every byte up to limits.checked_payload", function()
        local last = icmprun.limits.checked_payload
        for _, size in ipairs({ 9, 16, 17, 56, 300, last }) do
          local r, delta = counting(function()
            return icmprun.ping(DAMAGED[family].last, { timeout = 200, size = size })
          end)
          assert_damaged(r, size - 1)
          assert.equal(1, delta.corrupted, size)
          assert.equal(size - 1, icmprun.counters().corrupt_offset)
        end
      end)

      it("does not compare bytes past limits.checked_payload", function()
        local size = icmprun.limits.checked_payload + 1
        local r = icmprun.ping(DAMAGED[family].last, { timeout = 1000, size = size })
        assert.equal("reply", r.status)
        assert.equal(size + 8, r.bytes)
      end)

      it("never takes an answer one byte short for a reply", function()
        local r, delta = counting(function()
          return icmprun.ping(DAMAGED[family].short, { timeout = 200 })
        end)
        assert_damaged(r, 55)
        assert.equal(1, delta.corrupted)
      end)

      it("still takes the control host's long replies", function()
        local r = icmprun.ping(hosts.good, { timeout = 1000,
          size = icmprun.limits.checked_payload })
        assert.equal("reply", r.status)
        assert.is_nil(r.corrupt_offset)
        assert.is_nil(r.code)
      end)

      it("never sees an answer with a bad checksum", function()
        local r, delta = counting(function()
          return icmprun.ping(hosts.bad_checksum, { timeout = 200 })
        end)
        assert.equal("timeout", r.status)
        assert.equal(0, delta.replies)
      end)
    end)
  end

  it("counts a bad checksum as malformed on a raw socket, which the kernel does not check",
    function()
      local r = cli.sh("ICMPRUN_SOCKET=raw " .. cli.quote(cli.icmprun) .. " -e " .. cli.quote([[
        local icmprun = require "icmprun"
        local r = icmprun.ping("192.0.2.40", { timeout = 200 })
        local s = icmprun.counters()
        -- Only the malformed count moves beside the probe's own sent,
        -- send stamp, timeout and result: the bad answer is no reply, no
        -- foreign packet.
        local own = { sent = true, tx_stamps = true, timeouts = true, results = true }
        local moved = {}
        for name, n in pairs(s) do
          if n ~= 0 and not own[name] then
            moved[#moved + 1] = name .. "=" .. n
          end
        end
        table.sort(moved)
        print(icmprun.info().ipv4, r.status, s.sent, s.timeouts, s.results,
          table.concat(moved, ","))
      ]]))
      assert.equal(0, r.code, r.stderr)
      assert.equal("raw\ttimeout\t1\t1\t1\tmalformed=1\n", r.stdout)
    end)

  it("finds the damaged byte the same way on raw sockets", function()
    local r = cli.sh("ICMPRUN_SOCKET=raw " .. cli.quote(cli.icmprun) .. " -e " .. cli.quote([[
      local icmprun = require "icmprun"
      for _, addr in ipairs({ "192.0.2.41", "2001:db8:9::29", "192.0.2.33" }) do
        local r = icmprun.ping(addr, { timeout = 300 })
        print(icmprun.info().ipv4, r.status, r.code, r.corrupt_offset)
      end
      local r = icmprun.ping("192.0.2.42", { timeout = 300, size = 1500 })
      print(r.status, r.corrupt_offset, icmprun.counters().corrupted)
    ]]))
    assert.equal(0, r.code, r.stderr)
    assert.equal("raw\ttimeout\tEBADMSG\t28\nraw\ttimeout\tEBADMSG\t28\n" ..
      "raw\treply\tnil\tnil\ntimeout\t1499\t3\n", r.stdout)
  end)

  it("keeps every probe to one result while many go wrong at once", function()
    local targets = {}
    for _, family in ipairs({ 4, 6 }) do
      for _, addr in pairs(HOSTS[family]) do targets[#targets + 1] = addr end
      for _, addr in pairs(DAMAGED[family]) do targets[#targets + 1] = addr end
    end
    local results, delta = counting(function()
      local seen, n = {}, 0
      for r in icmprun.sweep(targets, { rate = 0, count = 20, interval = 5, timeout = 150 }) do
        local key = r.addr .. "#" .. r.n
        assert.is_nil(seen[key], "two results for " .. key)
        seen[key] = r.status
        n = n + 1
      end
      icmprun.sleep(LATE_MS)
      return n
    end)
    assert.equal(#targets * 20, results)
    assert.equal(#targets * 20, delta.results)
    assert.equal(2 * 2 * 20, delta.replies) -- the control and duplicate hosts
    assert.equal(2 * 20, delta.duplicates)
    assert.equal(2 * 20, delta.late)
    assert.equal(2 * 20 + 2 * 3 * 20, delta.corrupted) -- cookie, and DAMAGED
    assert.equal(2 * 20, delta.wrong_seq)
    assert.equal(2 * 20, delta.foreign)
  end)
end)
