--- Wrong answers never become results: a TUN test host (spec/helpers/
-- tun_responder.c) answers echo requests twice, too late, with a corrupted
-- payload, a wrong sequence number, from another address, or with a bad
-- checksum. Each probe ends in exactly one result (the truthful one), and
-- the wrong answers are counted in icmprun.stats().
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

--- Counter changes across fn().
local function counting(fn)
  local before = icmprun.stats()
  local value = fn()
  local after = icmprun.stats()
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
    "ip link set " .. DEVICE .. " up",
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
        end)
      end

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
        local s = icmprun.stats()
        -- Only the malformed count moves beside the probe's own sent,
        -- timeout and result: the bad answer is no reply, no foreign packet.
        local moved = {}
        for name, n in pairs(s) do
          if n ~= 0 and name ~= "sent" and name ~= "timeouts" and name ~= "results" then
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

  it("keeps every probe to one result while many go wrong at once", function()
    local targets = {}
    for _, family in ipairs({ 4, 6 }) do
      for _, addr in pairs(HOSTS[family]) do targets[#targets + 1] = addr end
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
    assert.equal(2 * 20, delta.corrupted)
    assert.equal(2 * 20, delta.wrong_seq)
    assert.equal(2 * 20, delta.foreign)
  end)
end)
