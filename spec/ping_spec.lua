-- SPDX-License-Identifier: MIT

--- icmprun.ping through the Lua module: replies, timeouts, unreachable routes,
-- name lookup, kernel timestamps and thousands of concurrent probes.
-- Runs inside scripts/netns: loopback and the test hosts of scripts/testnet
-- are the only addresses probed.
local icmprun = require "icmprun"

-- The test network of scripts/testnet.
local NORMAL4, NORMAL6 = "198.51.100.2", "2001:db8:2::2"
local SILENT4, SILENT6 = "192.0.2.2", "2001:db8:1::2"
local UNREACHABLE4, UNREACHABLE6 = "203.0.113.5", "2001:db8:dead::1"

-- This is a shared two-core machine: lower bounds on time are exact, upper
-- bounds only catch what is absurd.
local SLACK_MS = 2000
-- A timeout fires at its deadline, never before, and on a quiet loop within
-- this many milliseconds after it: a timeout that fires late by half its
-- length must fail here.
local LATE_MS = 50

--- Calls fn(...) and returns how many milliseconds it took, then its results.
local function timed(fn, ...)
  local t0 = icmprun.now()
  local results = table.pack(fn(...))
  return icmprun.now() - t0, table.unpack(results, 1, results.n)
end

--- Asserts that r is a well-formed echo reply from addr.
local function assert_reply(r, addr, bytes)
  assert.is_table(r)
  assert.equal("reply", r.status)
  assert.equal(addr, r.addr)
  assert.equal(addr, r.from)
  assert.equal("float", math.type(r.rtt))
  assert.is_true(r.rtt > 0, "rtt " .. tostring(r.rtt) .. " is not positive")
  assert.is_true(r.rtt < SLACK_MS, "rtt " .. tostring(r.rtt) .. " is absurd")
  assert.equal(bytes or 64, r.bytes)
  assert.equal("integer", math.type(r.seq))
  assert.equal("integer", math.type(r.ttl))
  assert.is_true(r.ttl >= 1 and r.ttl <= 255)
  assert.is_nil(r.err)
end

describe("icmprun.ping", function()
  describe("to a host that answers", function()
    for _, case in ipairs({
      { "IPv4 loopback", "127.0.0.1" },
      { "IPv6 loopback", "::1" },
      { "IPv4 test host", NORMAL4 },
      { "IPv6 test host", NORMAL6 },
    }) do
      local name, addr = case[1], case[2]

      it("gets a reply from the " .. name .. " with a positive RTT", function()
        assert_reply(icmprun.ping(addr), addr)
      end)

      it("counts the payload in the reply's bytes on the " .. name, function()
        assert_reply(icmprun.ping(addr, { size = 100 }), addr, 108)
        assert_reply(icmprun.ping(addr, { size = 0 }), addr, 8)
      end)

      it("matches replies whose payload holds only part of the cookie on the " .. name,
        function()
          for size = 1, 9 do
            assert_reply(icmprun.ping(addr, { size = size }), addr, 8 + size)
          end
        end)

      it("gets a reply with ttl and tos set on the " .. name, function()
        assert_reply(icmprun.ping(addr, { ttl = 1, tos = 0x10, timeout = 1000 }), addr)
      end)
    end

    it("sends a probe larger than the path MTU in fragments", function()
      -- The test host sits behind a 1,500-byte link, and the IPv4 socket
      -- refuses to fragment: such a probe is sent again, fragmented, and the
      -- kernel's note of the refusal is neither a result nor a count.
      local before = icmprun.counters()
      assert_reply(icmprun.ping(NORMAL4, { size = 1473 }), NORMAL4, 1481)
      assert_reply(icmprun.ping(NORMAL4, { size = 3000 }), NORMAL4, 3008)
      local after = icmprun.counters()
      assert.equal(before.malformed, after.malformed)
      assert.equal(before.send_errors, after.send_errors)
    end)

    it("counts in icmprun.counters(), and still in its deprecated name stats()", function()
      -- icmprun.stats() was the first name of counters(); old scripts keep
      -- working, and see the same counts (a probe between two calls shows in
      -- both), while the statistics module keeps the name icmprun.stats.
      local before, old_before = icmprun.counters(), icmprun.stats()
      assert.same(before, old_before)
      assert_reply(icmprun.ping(NORMAL4), NORMAL4)
      local after, old_after = icmprun.counters(), icmprun.stats()
      assert.equal(before.sent + 1, after.sent)
      assert.equal(before.replies + 1, after.replies)
      assert.same(after, old_after)
      assert.is_number(after.tx_stamps)
      assert.is_function(require("icmprun.stats").new)
    end)

    it("sends the largest datagram of each family", function()
      assert_reply(icmprun.ping("127.0.0.1", { size = 65507 }), "127.0.0.1", 65515)
      assert_reply(icmprun.ping("::1", { size = 65527 }), "::1", 65535)
    end)

    it("gives successive probes to one family different sequence numbers", function()
      local a = icmprun.ping("127.0.0.1")
      local b = icmprun.ping("127.0.0.1")
      assert.not_equal(a.seq, b.seq)
    end)

    it("works inside icmprun.run, where ping yields the calling task", function()
      local r = icmprun.run(function()
        local t = icmprun.spawn(icmprun.ping, "::1")
        return { icmprun.ping("127.0.0.1"), t:join() }
      end)
      assert_reply(r[1], "127.0.0.1")
      assert_reply(r[2], "::1")
    end)
  end)

  describe("to a silent host", function()
    for _, addr in ipairs({ SILENT4, SILENT6 }) do
      it("times out at its timeout, not before (" .. addr .. ")", function()
        local elapsed, r = timed(icmprun.ping, addr, { timeout = 300 })
        assert.equal("timeout", r.status)
        assert.equal(addr, r.addr)
        assert.is_nil(r.from)
        assert.is_nil(r.rtt)
        assert.equal("integer", math.type(r.seq))
        assert.is_true(elapsed >= 300, "timed out after only " .. elapsed .. " ms")
        assert.is_true(elapsed < 300 + LATE_MS, "timed out after " .. elapsed .. " ms")
      end)
    end

    it("ends concurrent probes in the order of their timeouts", function()
      local order, elapsed = {}, {}
      icmprun.run(function()
        local t0 = icmprun.now()
        local tasks = {}
        for _, ms in ipairs({ 300, 100, 200 }) do
          tasks[#tasks + 1] = icmprun.spawn(function()
            local r = icmprun.ping(SILENT4, { timeout = ms })
            assert(r.status == "timeout", r.status)
            order[#order + 1] = ms
            elapsed[ms] = icmprun.now() - t0
          end)
        end
        for _, t in ipairs(tasks) do
          t:join()
        end
      end)
      assert.same({ 100, 200, 300 }, order)
      for ms, took in pairs(elapsed) do
        assert.is_true(took >= ms, ms .. " ms timeout ended after " .. took .. " ms")
        assert.is_true(took < ms + LATE_MS, ms .. " ms timeout ended after " .. took)
      end
    end)

    it("ends probes with equal timeouts in the order they were sent", function()
      local order = {}
      icmprun.run(function()
        local tasks = {}
        for i = 1, 8 do
          tasks[i] = icmprun.spawn(function()
            local addr = i % 2 == 0 and SILENT6 or SILENT4
            icmprun.ping(addr, { timeout = 150 })
            order[#order + 1] = i
          end)
        end
        for _, t in ipairs(tasks) do
          t:join()
        end
      end)
      assert.same({ 1, 2, 3, 4, 5, 6, 7, 8 }, order)
    end)
  end)

  describe("over an unreachable route", function()
    for _, addr in ipairs({ UNREACHABLE4, UNREACHABLE6 }) do
      it("gives status unreachable with a message, and the run goes on (" .. addr .. ")",
        function()
          local r = icmprun.ping(addr, { timeout = 1000 })
          assert.equal("unreachable", r.status)
          assert.equal(addr, r.addr)
          assert.is_string(r.err)
          assert.not_equal("", r.err)
          assert.is_nil(r.rtt)
          local loopback = addr:find(":") and "::1" or "127.0.0.1"
          for _ = 1, 3 do
            assert_reply(icmprun.ping(loopback), loopback)
          end
        end)
    end

    it("gives each of mixed concurrent probes its own result", function()
      local targets = {}
      for i = 1, 10 do
        targets[#targets + 1] = "203.0.113." .. i
        targets[#targets + 1] = "127.0.0." .. i
        targets[#targets + 1] = "2001:db8:dead::" .. i
        targets[#targets + 1] = "::1"
      end
      local results = icmprun.run(function()
        local tasks = {}
        for i, addr in ipairs(targets) do
          tasks[i] = icmprun.spawn(icmprun.ping, addr, { timeout = 2000 })
        end
        local out = {}
        for i, t in ipairs(tasks) do
          out[i] = t:join()
        end
        return out
      end)
      for i, addr in ipairs(targets) do
        local r = results[i]
        assert.equal(addr, r.addr)
        if addr:find("^203%.") or addr:find("^2001:db8:dead:") then
          assert.equal("unreachable", r.status, addr)
        else
          assert_reply(r, addr)
        end
      end
    end)
  end)

  describe("with a host name", function()
    it("returns nil and a message naming a name that does not resolve", function()
      local r, msg = icmprun.ping("no-such-host.invalid")
      assert.is_nil(r)
      assert.is_string(msg)
      assert.truthy(msg:find("no-such-host.invalid", 1, true), msg)
    end)

    it("resolves localhost to 127.0.0.1 when family 4 is asked for", function()
      assert_reply(icmprun.ping("localhost", { family = 4 }), "127.0.0.1")
    end)
  end)

  describe("with opts.family", function()
    it("returns nil and a message for an address of the other family", function()
      local r, msg = icmprun.ping("::1", { family = 4 })
      assert.is_nil(r)
      assert.truthy(msg:find("::1", 1, true), msg)
      r, msg = icmprun.ping("127.0.0.1", { family = 6 })
      assert.is_nil(r)
      assert.truthy(msg:find("127.0.0.1", 1, true), msg)
    end)

    it("accepts an address of the same family", function()
      assert_reply(icmprun.ping("127.0.0.1", { family = 4 }), "127.0.0.1")
      assert_reply(icmprun.ping("::1", { family = 6 }), "::1")
    end)
  end)

  describe("round-trip time", function()
    it("comes from the kernel's receive timestamp, not from when the loop read it",
      function()
        local sent_before, elapsed, r = icmprun.counters().sent, nil, nil
        icmprun.run(function()
          local t0 = icmprun.now()
          local t = icmprun.spawn(icmprun.ping, "127.0.0.1", { timeout = 5000 })
          -- Let the probe go out, then hold the loop without yielding while
          -- the reply waits in the socket.
          while icmprun.counters().sent == sent_before do
            icmprun.sleep(0)
          end
          local c0 = os.clock()
          while os.clock() - c0 < 0.3 do
          end
          r = t:join()
          elapsed = icmprun.now() - t0
        end)
        assert.equal("reply", r.status)
        assert.is_true(elapsed >= 300, "the loop was held only " .. elapsed .. " ms")
        assert.is_true(r.rtt < 100, "rtt " .. r.rtt .. " ms includes the wait to read")
      end)
  end)

  describe("under load", function()
    it("gives thousands of concurrent probes exactly one reply each", function()
      local n = 2000
      local before = icmprun.counters()
      local targets, results = {}, nil
      for i = 1, n do
        -- 127.0.0.1 .. 127.0.7.250: all loopback.
        targets[i] = string.format("127.0.%d.%d", (i - 1) // 250, (i - 1) % 250 + 1)
      end
      icmprun.run(function()
        local tasks = {}
        for i, addr in ipairs(targets) do
          tasks[i] = icmprun.spawn(function()
            return table.pack(icmprun.ping(addr, { timeout = 10000 }))
          end)
        end
        results = {}
        for i, t in ipairs(tasks) do
          results[i] = t:join()
        end
      end)
      local after = icmprun.counters()
      for i, addr in ipairs(targets) do
        assert.equal(1, results[i].n, "ping returned more than a result")
        assert_reply(results[i][1], addr)
      end
      assert.equal(n, after.results - before.results)
      assert.equal(n, after.replies - before.replies)
      assert.equal(n, after.sent - before.sent)
      assert.equal(before.duplicates, after.duplicates)
      assert.equal(0, after.pending)
    end)
  end)
end)
