-- SPDX-License-Identifier: MIT

--- icmprun.sweep through the Lua module: every address answered once, counts,
-- orders, IPv6, retries with backoff, pacing, results as they come, leaving
-- early, sweeps side by side and 100,000 probes in flight.
-- Targets, their errors and the options' checks are in sweep_targets_spec.lua.
-- Runs inside scripts/netns: loopback and the test hosts of scripts/testnet
-- are the only addresses probed.
local icmprun = require "icmprun"
local cli = require "cli"

-- The test network of scripts/testnet. BLACKHOLE6 is routed to the silent
-- host, which drops it: any number of addresses that never answer.
local NORMAL4, NORMAL6 = "198.51.100.2", "2001:db8:2::2"
local OURS6 = "2001:db8:2::1" -- Our end of the link to the normal host.
local SILENT4, SILENT6 = "192.0.2.2", "2001:db8:1::2"
local BLACKHOLE6 = "2001:db8:beef::"

-- This is a shared two-core machine: lower bounds on time are exact, upper
-- bounds only catch what is absurd.
local SLACK_MS = 2000

--- The IPv4 address `i` places after a.b.c.d.
local function ipv4_plus(a, b, c, d, i)
  local n = ((a * 256 + b) * 256 + c) * 256 + d + i
  return string.format("%d.%d.%d.%d", n >> 24, (n >> 16) & 255, (n >> 8) & 255, n & 255)
end

--- Every address of 127.0.x.y/prefix, from its start, in order.
local function loopback_block(c, d, prefix)
  local out = {}
  for i = 0, (1 << (32 - prefix)) - 1 do
    out[#out + 1] = ipv4_plus(127, 0, c, d, i)
  end
  return out
end

--- Runs a sweep to its end; returns its results and, for each, the time it
-- arrived in milliseconds after the call.
-- Also returns the engine's counters as each result arrived, so that specs
-- can check what had happened by then (how many probes were sent, how many
-- had timed out) rather than how fast this machine is.
local function collect(targets, opts)
  local results, times, stats = {}, {}, {}
  local t0 = icmprun.now()
  local before = icmprun.counters()
  for r in icmprun.sweep(targets, opts) do
    results[#results + 1] = r
    times[#times + 1] = icmprun.now() - t0
    local now = icmprun.counters()
    stats[#stats + 1] = { sent = now.sent - before.sent,
      timeouts = now.timeouts - before.timeouts }
  end
  return results, times, stats
end

--- Counts results by a key function; returns the counts.
local function tally(results, key)
  local counts = {}
  for _, r in ipairs(results) do
    local k = key(r)
    counts[k] = (counts[k] or 0) + 1
  end
  return counts
end

--- Asserts that `results` hold each address of `addrs` exactly `times` times
-- and nothing else.
local function assert_each_address(addrs, results, times)
  times = times or 1
  local counts = tally(results, function(r) return r.addr end)
  local want = {}
  for _, a in ipairs(addrs) do
    want[a] = true
    local got = counts[a] or 0
    if got ~= times then
      error(string.format("%s has %d results, not %d", a, got, times), 2)
    end
  end
  for a in pairs(counts) do
    if not want[a] then
      error("a result for " .. a .. ", which the sweep does not cover", 2)
    end
  end
  assert.equal(#addrs * times, #results)
end

--- The addresses of results, in the order they came.
local function addresses(results)
  local out = {}
  for i, r in ipairs(results) do
    out[i] = r.addr
  end
  return out
end

--- Asserts that every result has the given status; names the first that does not.
local function assert_all_status(status, results)
  for _, r in ipairs(results) do
    if r.status ~= status then
      error(string.format("%s (n %s) has status %s (%s), not %s", r.addr,
        tostring(r.n), r.status, tostring(r.err), status), 2)
    end
  end
end

--- Opens the route to the blackholed prefix: its gateway's neighbour entry
-- must exist before thousands of probes queue behind its resolution.
local function warm_up_blackhole()
  icmprun.ping(SILENT6, { timeout = 300 })
end

describe("icmprun.sweep", function()
  describe("over a block of loopback addresses", function()
    it("answers every address of a /20 exactly once with count = 1", function()
      local before = icmprun.counters()
      local results = collect("127.0.0.0/20", { rate = 0 })
      local after = icmprun.counters()
      assert_each_address(loopback_block(0, 0, 20), results)
      assert_all_status("reply", results)
      for _, r in ipairs(results) do
        assert.equal("127.0.0.0/20", r.target)
        assert.equal(1, r.n)
        assert.is_nil(r.attempts) -- Only with retries.
      end
      assert.equal(4096, after.sent - before.sent)
      assert.equal(4096, after.results - before.results)
      assert.equal(4096, after.replies - before.replies)
      assert.equal(before.duplicates, after.duplicates)
      assert.equal(0, after.pending)
    end)

    it("gives each result the fields of a ping reply", function()
      local results = collect("127.0.0.1-127.0.0.8", { size = 100 })
      assert.equal(8, #results)
      for _, r in ipairs(results) do
        assert.equal("reply", r.status)
        assert.equal(r.addr, r.from)
        assert.equal("float", math.type(r.rtt))
        assert.is_true(r.rtt > 0 and r.rtt < SLACK_MS, "rtt " .. r.rtt)
        assert.equal(108, r.bytes)
        assert.equal("integer", math.type(r.seq))
        assert.equal("integer", math.type(r.ttl))
        assert.is_nil(r.err)
      end
    end)

    it("gives exactly three results per address, numbered 1..3, with count = 3",
      function()
        local results = collect("127.0.1.0/26", { count = 3, interval = 10, rate = 0 })
        assert_each_address(loopback_block(1, 0, 26), results, 3)
        assert_all_status("reply", results)
        local seen = {}
        for _, r in ipairs(results) do
          assert.equal("127.0.1.0/26", r.target)
          local key = r.addr .. " #" .. tostring(r.n)
          assert.is_nil(seen[key], key .. " came twice")
          seen[key] = true
        end
        for _, a in ipairs(loopback_block(1, 0, 26)) do
          for n = 1, 3 do
            assert.is_true(seen[a .. " #" .. n], a .. " #" .. n .. " is missing")
          end
        end
      end)

    it("spaces the probes to one address by the interval, and addresses at once",
      function()
        -- The third probe to an address goes 2 intervals after its first,
        -- and the 64 addresses wait their intervals at once, not in turn.
        local results, times = collect("127.0.2.0/26", { count = 3, interval = 100,
          rate = 0 })
        assert.equal(192, #results)
        local last = times[#times]
        assert.is_true(last >= 200, "3 probes 100 ms apart ended after " .. last .. " ms")
        assert.is_true(last < 200 + SLACK_MS, "the sweep took " .. last .. " ms")
        -- Each address's probe n comes after its probe n - 1.
        local latest = {}
        for _, r in ipairs(results) do
          assert.equal((latest[r.addr] or 0) + 1, r.n, r.addr)
          latest[r.addr] = r.n
        end
      end)
  end)

  describe("order", function()
    --- The addresses of the first `n` results. With window = 1 only one
    -- probe is in flight, so results come in the order probes were sent.
    -- The sweep is left before its end: ending one with window = 1 is
    -- proved on its own under "pacing".
    local function first_sent(n, targets, opts)
      opts.window, opts.rate = 1, 0
      local out = {}
      for r in icmprun.sweep(targets, opts) do
        out[#out + 1] = r.addr
        if #out == n then
          break
        end
      end
      return out
    end

    it("is ascending address order by default", function()
      local want = loopback_block(3, 0, 26)
      want[64] = nil
      assert.same(want, first_sent(63, "127.0.3.0/26", {}))
      assert.same(want, first_sent(63, "127.0.3.0/26", { order = "sequential" }))
    end)

    it("takes a table's targets in the table's order", function()
      -- Five probes in one burst to loopback: replies come back in order.
      local results = collect({ "127.0.0.9", "127.0.0.1-127.0.0.2", "127.0.0.10/32",
        "127.0.0.3" })
      assert.same({ "127.0.0.9", "127.0.0.1", "127.0.0.2", "127.0.0.10", "127.0.0.3" },
        addresses(results))
    end)

    it("visits every address exactly once in random order, not in sequence",
      function()
        local block = loopback_block(4, 0, 24)
        local results = collect("127.0.4.0/24", { order = "random", rate = 0 })
        assert_each_address(block, results)
        assert_all_status("reply", results)
        -- Replies come back about in the order sent. In a random order of
        -- 256, about 2 steps go to a neighbouring address; in sequence (or
        -- backwards, or a batch at a time) nearly all of them do.
        local index = {}
        for i, a in ipairs(block) do
          index[a] = i
        end
        local got, adjacent = addresses(results), 0
        for i = 2, #got do
          if math.abs(index[got[i]] - index[got[i - 1]]) == 1 then
            adjacent = adjacent + 1
          end
        end
        assert.is_true(adjacent < 64, adjacent .. " of 255 steps go to a neighbour")
      end)

    it("visits every address once when the block is not a power of two", function()
      for _, case in ipairs({
        { "127.0.5.1-127.0.5.100", 100 },
        { "127.0.5.200-127.0.5.202", 3 },
        { "127.0.5.250-127.0.5.250", 1 },
        { "127.0.5.7", 1 },
      }) do
        -- The first address of the case, counted from its text.
        local first = case[1]:match("^127%.0%.5%.(%d+)")
        local addrs = {}
        for i = 0, case[2] - 1 do
          addrs[#addrs + 1] = ipv4_plus(127, 0, 5, tonumber(first), i)
        end
        local results = collect(case[1], { order = "random", rate = 0 })
        assert_each_address(addrs, results)
      end
    end)

    it("repeats itself for the same seed and differs for another seed", function()
      local a = first_sent(255, "127.0.6.0/24", { order = "random", seed = 1 })
      local b = first_sent(255, "127.0.6.0/24", { order = "random", seed = 1 })
      local c = first_sent(255, "127.0.6.0/24", { order = "random", seed = 2 })
      assert.same(a, b)
      assert.are_not.same(a, c)
      assert.equal(255, #c)
    end)

    it("differs from run to run without a seed", function()
      local a = first_sent(255, "127.0.6.0/24", { order = "random" })
      local b = first_sent(255, "127.0.6.0/24", { order = "random" })
      assert.are_not.same(a, b)
    end)

    it("covers every target of a table and every probe of a count", function()
      local results = collect({ "127.0.7.0/28", "127.0.7.100-127.0.7.104", "::1" },
        { order = "random", count = 2, interval = 10, rate = 0 })
      local addrs = loopback_block(7, 0, 28)
      for i = 0, 4 do
        addrs[#addrs + 1] = ipv4_plus(127, 0, 7, 100, i)
      end
      addrs[#addrs + 1] = "::1"
      assert_each_address(addrs, results, 2)
      assert_all_status("reply", results)
    end)
  end)

  describe("over IPv6", function()
    it("sweeps ::1 and the test hosts, each result naming its target", function()
      local targets = { "::1", NORMAL6, OURS6 .. "-" .. NORMAL6, "::1/128" }
      local results = collect(targets, { timeout = 2000 })
      assert_all_status("reply", results)
      local got = tally(results, function(r) return r.target .. " " .. r.addr end)
      assert.same({
        ["::1 ::1"] = 1,
        [NORMAL6 .. " " .. NORMAL6] = 1,
        [targets[3] .. " " .. OURS6] = 1,
        [targets[3] .. " " .. NORMAL6] = 1,
        ["::1/128 ::1"] = 1,
      }, got)
      for _, r in ipairs(results) do
        assert.equal(r.addr, r.from)
      end
    end)

    it("expands an IPv6 CIDR block to its addresses", function()
      -- ::1 is ours and ::2 the normal host; ::0 and ::3 are nobody's.
      local results = collect("2001:db8:2::/126", { timeout = 300 })
      assert_each_address({ "2001:db8:2::", OURS6, NORMAL6, "2001:db8:2::3" }, results)
      for _, r in ipairs(results) do
        assert.equal("2001:db8:2::/126", r.target)
        if r.addr == OURS6 or r.addr == NORMAL6 then
          assert.equal("reply", r.status, r.addr)
        else
          assert.is_true(r.status == "timeout" or r.status == "unreachable",
            r.addr .. " " .. r.status)
        end
      end
    end)

    it("sweeps IPv4 and IPv6 targets together", function()
      local results = collect({ "127.0.0.1", "::1", NORMAL4, NORMAL6 })
      assert_each_address({ "127.0.0.1", "::1", NORMAL4, NORMAL6 }, results)
      assert_all_status("reply", results)
    end)
  end)

  describe("with retries", function()
    for _, addr in ipairs({ SILENT4, SILENT6 }) do
      it("gives a silent host one timeout after its retries, with backoff (" .. addr
        .. ")", function()
          local before = icmprun.counters()
          local results, times = collect(addr, { timeout = 100, retries = 2,
            backoff = 2 })
          local after = icmprun.counters()
          assert.equal(1, #results)
          local r = results[1]
          assert.equal("timeout", r.status)
          assert.equal(addr, r.addr)
          assert.equal(addr, r.target)
          assert.equal(1, r.n)
          assert.equal(3, r.attempts)
          -- 100 ms, then 200 ms, then 400 ms.
          assert.is_true(times[1] >= 700, "the last attempt ended after " .. times[1])
          assert.is_true(times[1] < 700 + SLACK_MS, "it ended after " .. times[1])
          assert.equal(3, after.sent - before.sent)
          assert.equal(0, after.pending)
        end)

      it("gives every attempt as a result with every_attempt (" .. addr .. ")",
        function()
          local results, times = collect(addr, { timeout = 100, retries = 2,
            backoff = 2, every_attempt = true })
          assert.equal(3, #results)
          local ends = { 100, 300, 700 }
          for i, r in ipairs(results) do
            assert.equal("timeout", r.status)
            assert.equal(addr, r.addr)
            assert.equal(1, r.n)
            assert.equal(i, r.attempts)
            assert.is_true(times[i] >= ends[i], "attempt " .. i .. " ended after "
              .. times[i] .. " ms, not " .. ends[i])
            assert.is_true(times[i] < ends[i] + SLACK_MS, "attempt " .. i
              .. " ended after " .. times[i] .. " ms")
          end
        end)
    end

    it("waits timeout * 1.5 for each retry by default", function()
      local results, times = collect(SILENT4, { timeout = 100, retries = 2 })
      assert.equal(1, #results)
      assert.equal(3, results[1].attempts)
      -- 100 + 150 + 225 ms.
      assert.is_true(times[1] >= 475, "retries ended after " .. times[1] .. " ms")
      assert.is_true(times[1] < 475 + SLACK_MS, "retries ended after " .. times[1])
    end)

    it("retries every address of a block, each on its own schedule", function()
      warm_up_blackhole()
      local before = icmprun.counters()
      local results, times = collect(BLACKHOLE6 .. "/124", { timeout = 100,
        retries = 1, backoff = 3, rate = 0 })
      local after = icmprun.counters()
      assert.equal(16, #results)
      assert_all_status("timeout", results)
      for i, r in ipairs(results) do
        assert.equal(2, r.attempts)
        assert.is_true(times[i] >= 400, "timed out after " .. times[i] .. " ms")
      end
      -- All 16 wait at once, not 16 times 400 ms.
      assert.is_true(times[16] < 400 + SLACK_MS, "the block took " .. times[16])
      assert.equal(32, after.sent - before.sent)
    end)

    it("does not resend a probe that got a reply", function()
      local before = icmprun.counters()
      local results = collect("127.0.0.1-127.0.0.4", { retries = 3, timeout = 2000 })
      assert.equal(4, icmprun.counters().sent - before.sent)
      assert.equal(4, #results)
      assert_all_status("reply", results)
      for _, r in ipairs(results) do
        assert.equal(1, r.attempts)
      end
    end)

    it("ends a probe stopped while it waits for its resend as a plain timeout", function()
      -- At 1 probe a second the resend waits for its turn long after the
      -- first attempt timed out: stop() finds it waiting.
      local results = {}
      icmprun.run(function()
        local next_result, sweep = icmprun.sweep(SILENT4, { timeout = 50, retries = 2,
          rate = 1 })
        icmprun.spawn(function()
          icmprun.sleep(300)
          sweep:stop()
        end)
        for r in next_result, sweep, nil, sweep do
          results[#results + 1] = r
        end
      end)
      assert.equal(1, #results)
      local r = results[1]
      assert.equal("timeout", r.status)
      assert.equal(1, r.attempts)
      -- Nothing about a corrupted reply, no ICMP fields: a timeout's own.
      assert.is_nil(r.corrupt_offset)
      assert.is_nil(r.ttl)
      assert.is_nil(r.icmp_type)
      assert.is_nil(r.err)
    end)

    it("does not resend over an unreachable route: that is no timeout", function()
      local before = icmprun.counters()
      local results, times = collect("203.0.113.1-203.0.113.2", { retries = 3,
        timeout = 10000 })
      local after = icmprun.counters()
      assert.equal(2, #results)
      -- A send that fails is counted as a send error, once per attempt.
      assert.equal(2, after.send_errors - before.send_errors)
      assert.is_true(times[2] < 10000, "unreachable only after " .. times[2] .. " ms")
      assert_all_status("unreachable", results)
      for _, r in ipairs(results) do
        assert.equal(1, r.attempts)
        assert.is_string(r.err)
      end
    end)
  end)

  describe("pacing", function()
    it("never exceeds opts.rate over any window of a 2-second run", function()
      -- The documented burst for 200 per second is max(1, 200 / 100) = 2.
      local RATE, BURST, SLACK = 200, 2, 5
      local samples = {}
      icmprun.run(function()
        local base = icmprun.counters().sent
        local t0 = icmprun.now()
        local stop = false
        samples[1] = { t = t0, sent = 0 }
        local sampler = icmprun.spawn(function()
          repeat
            icmprun.sleep(10)
            local t = icmprun.now()
            samples[#samples + 1] = { t = t, sent = icmprun.counters().sent - base }
          until t - t0 >= 2000
          stop = true
        end)
        for _ in icmprun.sweep("127.0.0.0/22", { rate = RATE }) do
          if stop then
            break
          end
        end
        sampler:join()
      end)
      local worst, where = -math.huge, nil
      for i = 1, #samples do
        for j = i + 1, #samples do
          local dt = (samples[j].t - samples[i].t) / 1000
          local excess = samples[j].sent - samples[i].sent - RATE * dt
          if excess > worst then
            worst = excess
            where = string.format("%d probes in %.3f s", samples[j].sent -
              samples[i].sent, dt)
          end
        end
      end
      assert.is_true(worst <= BURST + SLACK, "rate " .. RATE .. " exceeded: " .. where)
      local last = samples[#samples]
      local seconds = (last.t - samples[1].t) / 1000
      assert.is_true(seconds >= 2)
      -- Loose: a busy machine may lose time, but not most of it.
      assert.is_true(last.sent >= RATE * seconds * 0.4, string.format(
        "only %d probes in %.3f s at rate %d", last.sent, seconds, RATE))
    end)

    it("sends 1000 probes per second by default, after a burst of 10", function()
      local results, times = collect("127.0.0.0/24")
      assert.equal(256, #results)
      -- 246 probes after the burst take 246 ms at least.
      local took = times[#times]
      assert.is_true(took >= 246, "256 probes at the default rate took " .. took .. " ms")
      assert.is_true(took < 256 + SLACK_MS, "256 probes took " .. took .. " ms")
    end)

    for _, rate in ipairs({ 0, math.huge }) do
      it("does not pace at all with rate = " .. tostring(rate), function()
        -- Paced at the default 1000/s after a burst of 10, no more than
        -- 11 + t probes can have gone out t ms after the start. Unpaced,
        -- more have: a count against the clock, which a slow machine only
        -- makes easier for the paced sweep, never for the unpaced one.
        local results, times, stats = collect("127.0.0.0/21", { rate = rate })
        assert.equal(2048, #results)
        assert_all_status("reply", results)
        local ahead = 0
        for k = 1, #results do
          ahead = math.max(ahead, stats[k].sent - (11 + times[k]))
        end
        assert.is_true(ahead > 0, "never ahead of the default rate's pace")
      end)
    end

    it("ends after its last result when the window is full to the end", function()
      -- One probe at a time: the last address's probe fills the window.
      local results = collect("127.0.3.0/30", { window = 1 })
      assert.same(loopback_block(3, 0, 30), addresses(results))
      results = collect("127.0.3.0/30", { window = 4, rate = 0 })
      assert.equal(4, #results)
    end)

    it("keeps no more than opts.window probes in flight", function()
      warm_up_blackhole()
      local peak, took = 0, nil
      icmprun.run(function()
        local done = false
        local sampler = icmprun.spawn(function()
          while not done do
            peak = math.max(peak, icmprun.counters().pending)
            icmprun.sleep(5)
          end
        end)
        local t0 = icmprun.now()
        local n = 0
        for r in icmprun.sweep(BLACKHOLE6 .. "/124", { window = 4, rate = 0,
          timeout = 100 }) do
          assert.equal("timeout", r.status)
          n = n + 1
        end
        took = icmprun.now() - t0
        done = true
        sampler:join()
        assert.equal(16, n)
      end)
      assert.is_true(peak >= 1 and peak <= 4, "peak of " .. peak .. " in flight")
      -- Four rounds of four probes, each waiting its 100 ms.
      assert.is_true(took >= 400, "16 probes 4 at a time took " .. took .. " ms")
    end)
  end)

  describe("results", function()
    it("arrive as soon as they are known: a reply before another's timeout",
      function()
        -- The silent host's probe goes first; the reply still comes first.
        local results, times, stats = collect({ SILENT4, "127.0.0.1" }, { timeout = 1000 })
        assert.equal(2, #results)
        assert.equal("127.0.0.1", results[1].addr)
        assert.equal("reply", results[1].status)
        assert.equal(0, stats[1].timeouts, "the reply waited for the other's timeout")
        assert.equal(SILENT4, results[2].addr)
        assert.equal("timeout", results[2].status)
        assert.is_true(times[2] >= 1000, "timed out after " .. times[2] .. " ms")
      end)

    it("arrive as soon as they are known inside a task too", function()
      local results, times, stats = icmprun.run(collect, { SILENT6, "::1" },
        { timeout = 1000 })
      assert.equal(2, #results)
      assert.equal("::1", results[1].addr)
      assert.equal("reply", results[1].status)
      assert.equal(0, stats[1].timeouts, "the reply waited for the other's timeout")
      assert.equal(SILENT6, results[2].addr)
      assert.equal("timeout", results[2].status)
      assert.is_true(times[2] >= 1000, "timed out after " .. times[2] .. " ms")
    end)

    it("come from a table's targets probed at once, not one after another",
      function()
        warm_up_blackhole()
        -- One after another, four silent targets would take 4 s at least.
        local results, times = collect({ SILENT4, SILENT6, BLACKHOLE6 .. "1",
          BLACKHOLE6 .. "2" }, { timeout = 1000 })
        assert.equal(4, #results)
        assert_all_status("timeout", results)
        assert.is_true(times[1] >= 1000, "the first timed out after " .. times[1])
        assert.is_true(times[4] < 1000 + SLACK_MS, "four 1 s timeouts took "
          .. times[4] .. " ms")
      end)

    it("give timeouts as they expire, not at the end of the sweep", function()
      -- The second probes go out at 500 ms: the first ones' timeouts at
      -- 100 ms must not wait for them.
      local results, times, stats = collect({ SILENT4, SILENT6 }, { count = 2,
        interval = 500, timeout = 100 })
      assert.equal(4, #results)
      assert_all_status("timeout", results)
      assert.same({ 1, 1, 2, 2 }, { results[1].n, results[2].n, results[3].n,
        results[4].n })
      assert.is_true(times[2] >= 100, "the first timeouts came after " .. times[2] .. " ms")
      -- They came before the second probes were even sent.
      assert.equal(2, stats[2].sent, "the first timeouts waited for the second probes")
      assert.is_true(times[4] >= 600, "the second timeouts came after " .. times[4])
    end)
  end)

  describe("left early", function()
    -- A sweep with probes in flight to addresses that never answer (a /120
    -- of the blackhole, sent first) and replies coming from loopback.
    local TARGETS = { BLACKHOLE6 .. "/120", "127.0.0.0/16" }
    local OPTS = { rate = 2000, timeout = 250 }

    setup(warm_up_blackhole)

    --- Asserts that nothing more is sent after `at` (stats at the sweep's
    -- end), nothing stays pending, nothing times out later, and ping works.
    local function assert_stopped(at, before)
      assert.equal(0, at.pending, "probes still pending after the sweep closed")
      assert.is_true(at.sent - before.sent < 65536, "the whole sweep was sent")
      icmprun.sleep(400) -- Past the timeout of any probe that was in flight.
      local later = icmprun.counters()
      assert.equal(at.sent, later.sent, "probes were sent after the sweep closed")
      assert.equal(at.timeouts, later.timeouts, "probes timed out after it closed")
      assert.equal(0, later.pending)
      assert.equal("reply", icmprun.ping("127.0.0.1").status)
      assert.equal("reply", icmprun.ping("::1").status)
    end

    it("stops sending on break, outside a task", function()
      local before = icmprun.counters()
      local n = 0
      for r in icmprun.sweep(TARGETS, OPTS) do
        if r.status == "reply" then
          n = n + 1
          if n == 50 then
            break
          end
        end
      end
      local at = icmprun.counters()
      assert.equal(50, n)
      assert.is_true(at.sent - before.sent >= 256 + 50)
      assert_stopped(at, before)
    end)

    it("stops sending on break, inside a task", function()
      local before, at = icmprun.counters(), nil
      icmprun.run(function()
        local n = 0
        for r in icmprun.sweep(TARGETS, OPTS) do
          if r.status == "reply" then
            n = n + 1
            if n == 50 then
              break
            end
          end
        end
        at = icmprun.counters()
        assert.equal(0, at.pending, "probes still pending after the sweep closed")
        -- The task and the loop go on.
        icmprun.sleep(10)
        assert.equal("reply", icmprun.ping("127.0.0.2").status)
        at.sent = at.sent + 1
      end)
      assert_stopped(at, before)
    end)

    it("stops sending when a function returns from inside the loop", function()
      local before = icmprun.counters()
      local function first_reply()
        for r in icmprun.sweep(TARGETS, OPTS) do
          if r.status == "reply" then
            return r
          end
        end
      end
      assert.equal("127.0.0.0", first_reply().addr)
      assert_stopped(icmprun.counters(), before)
    end)

    it("stops sending when the loop's body raises", function()
      local before = icmprun.counters()
      local ok, err = pcall(function()
        for r in icmprun.sweep(TARGETS, OPTS) do
          if r.status == "reply" then
            error("stop here", 0)
          end
        end
      end)
      assert.is_false(ok)
      assert.equal("stop here", err)
      assert_stopped(icmprun.counters(), before)
    end)

    it("stops sending when closed through its 4th value", function()
      local before = icmprun.counters()
      local it, s, ctl, closing = icmprun.sweep(TARGETS, OPTS)
      assert.is_function(it)
      assert.is_nil(ctl)
      assert.equal(s, closing)
      local r = it(s, ctl)
      assert.is_table(r)
      closing:close()
      assert_stopped(icmprun.counters(), before)
      closing:close() -- Twice is harmless.
    end)

    it("stops sending when it is garbage-collected unfinished", function()
      -- In a process of its own, so that the collection is all this one's.
      local r = cli.lua_script([[
        local icmprun = require "icmprun"
        icmprun.ping("2001:db8:1::2", { timeout = 300 })
        do
          local it, s = icmprun.sweep({ "2001:db8:beef::/120", "127.0.0.0/16" },
            { rate = 2000, timeout = 250 })
          assert(it(s).status)
        end
        collectgarbage()
        collectgarbage()
        local at = icmprun.counters()
        icmprun.sleep(400)
        local later = icmprun.counters()
        print(at.pending, later.sent - at.sent, later.timeouts - at.timeouts,
          icmprun.ping("127.0.0.1").status)
      ]], 60)
      assert.equal(0, r.code, r.stderr)
      assert.equal("0\t0\t0\treply\n", r.stdout)
    end)

    it("leaves no result behind for the next sweep", function()
      local n = 0
      for _ in icmprun.sweep("127.0.0.0/16", { rate = 0 }) do
        n = n + 1
        if n == 10 then
          break
        end
      end
      local results = collect("127.0.8.0/24", { rate = 0 })
      assert_each_address(loopback_block(8, 0, 24), results)
      for _, r in ipairs(results) do
        assert.equal("127.0.8.0/24", r.target)
      end
      assert.equal(0, icmprun.counters().pending)
    end)
  end)

  describe("alongside other sweeps and pings", function()
    it("runs sweeps and pings from several tasks at once on the same sockets",
      function()
        local before = icmprun.counters()
        local a, b, pings, spans = {}, {}, {}, {}
        icmprun.run(function()
          local t0 = icmprun.now()
          local function sweeper(into, name, block, opts)
            return icmprun.spawn(function()
              for r in icmprun.sweep(block, opts) do
                into[#into + 1] = r
                local t = icmprun.now() - t0
                spans[name] = spans[name] or { first = t }
                spans[name].last = t
              end
            end)
          end
          local tasks = {
            sweeper(a, "a", "127.0.9.0/24", {}),
            sweeper(b, "b", "127.0.10.0/24", { count = 2, interval = 10 }),
            icmprun.spawn(function()
              for i = 1, 20 do
                pings[#pings + 1] = icmprun.ping(i % 2 == 0 and "::1" or "127.0.0.1")
              end
              pings[#pings + 1] = icmprun.ping(SILENT4, { timeout = 200 })
            end),
          }
          for _, t in ipairs(tasks) do
            t:join()
          end
        end)
        local after = icmprun.counters()
        assert_each_address(loopback_block(9, 0, 24), a)
        assert_each_address(loopback_block(10, 0, 24), b, 2)
        assert_all_status("reply", a)
        assert_all_status("reply", b)
        for _, r in ipairs(a) do
          assert.equal("127.0.9.0/24", r.target)
        end
        for _, r in ipairs(b) do
          assert.equal("127.0.10.0/24", r.target)
        end
        assert.equal(21, #pings)
        for i = 1, 20 do
          assert.equal("reply", pings[i].status)
        end
        assert.equal("timeout", pings[21].status)
        assert.equal(256 + 512 + 21, after.sent - before.sent)
        assert.equal(256 + 512 + 21, after.results - before.results)
        assert.equal(0, after.pending)
        -- The two sweeps ran at the same time, not one after the other.
        assert.is_true(spans.a.first < spans.b.last and spans.b.first < spans.a.last,
          "the sweeps did not overlap")
      end)

    it("lets a spawned task sweep while plain Lua blocks in another sweep", function()
      local spawned = {}
      local task = icmprun.spawn(function()
        for r in icmprun.sweep("127.0.11.0/25", {}) do
          spawned[#spawned + 1] = r
        end
      end)
      local main = collect("127.0.11.128/25", {})
      task:join()
      assert_each_address(loopback_block(11, 0, 25), spawned)
      assert_each_address(loopback_block(11, 128, 25), main)
    end)

    it("runs a sweep inside another sweep's loop", function()
      local outer, inner = 0, 0
      for r in icmprun.sweep({ "127.0.0.1", "127.0.0.2" }, { rate = 0 }) do
        assert.equal("reply", r.status)
        outer = outer + 1
        for q in icmprun.sweep("::1", { count = 2, interval = 10 }) do
          assert.equal("reply", q.status)
          inner = inner + 1
        end
      end
      assert.equal(2, outer)
      assert.equal(4, inner)
    end)
  end)

  describe("at scale", function()
    -- Each in a process of its own: it holds 131,072 probes, and a hang ends
    -- in `timeout` rather than holding up every other spec.
    local SCALE = [[
      local icmprun = require "icmprun"
      assert(icmprun.ping("2001:db8:1::2", { timeout = 300 }).status == "timeout")
      local before = icmprun.counters()
      local peak, done = 0, false
      local counts, distinct, statuses, targets = {}, 0, {}, {}
      local loopback = {}
      icmprun.run(function()
        icmprun.spawn(function()
          -- In flight: sent and not yet ended (no probe here fails to send
          -- or is cancelled, as the figures below check).
          while not done do
            local s = icmprun.counters()
            peak = math.max(peak, (s.sent - before.sent) - (s.results - before.results))
            icmprun.sleep(50)
          end
        end)
        WHILE_IN_FLIGHT()
        -- Long enough for every probe to be sent before the first times out,
        -- even under the sanitizers.
        for r in icmprun.sweep("2001:db8:beef::/111", { rate = 0, timeout = 6000 }) do
          if not counts[r.addr] then
            distinct = distinct + 1
          end
          counts[r.addr] = (counts[r.addr] or 0) + 1
          statuses[r.status] = (statuses[r.status] or 0) + 1
          targets[r.target] = true
        end
        done = true
      end)
      local after = icmprun.counters()
      local n = 0
      for _, c in pairs(statuses) do n = n + c end
      local twice = 0
      for _, c in pairs(counts) do if c > 1 then twice = twice + 1 end end
      for k, v in pairs({
        results = n, distinct = distinct, twice = twice, peak = peak,
        timeout = statuses.timeout or 0, error = statuses.error or 0,
        target = targets["2001:db8:beef::/111"] and 1 or 0,
        sent = after.sent - before.sent, pending = after.pending,
        duplicates = after.duplicates - before.duplicates,
        foreign = after.foreign - before.foreign,
        loopback = #loopback, loopback_replies = LOOPBACK_REPLIES(),
      }) do
        print(k .. "=" .. v)
      end
    ]]

    --- Runs SCALE with a task started while the sweep runs; returns its
    -- printed figures.
    local function run_scale(while_in_flight, loopback_replies)
      local code = SCALE:gsub("WHILE_IN_FLIGHT%(%)", function() return while_in_flight end)
        :gsub("LOOPBACK_REPLIES%(%)", function() return loopback_replies end)
      local r = cli.lua_script(code, 120)
      assert.equal(0, r.code, r.stderr)
      local figures = {}
      for k, v in r.stdout:gmatch("([%w_]+)=(%d+)") do
        figures[k] = tonumber(v)
      end
      return figures
    end

    it("keeps 131,072 probes in flight at once, each ending in one timeout", function()
      local f = run_scale("", "0")
      assert.equal(131072, f.peak, "probes in flight at once at most")
      assert.equal(131072, f.results)
      assert.equal(131072, f.distinct)
      assert.equal(0, f.twice)
      assert.equal(131072, f.timeout)
      assert.equal(0, f.error, "probes ended in error (sequence numbers?)")
      assert.equal(1, f.target)
      assert.equal(131072, f.sent)
      assert.equal(0, f.pending)
    end)

    it("matches replies to their probes while over 65,536 are in flight", function()
      -- Sequence numbers are 16 bits: with 131,072 probes in flight every one
      -- is in use twice, so replies must still find their own probe.
      local f = run_scale([[
        icmprun.spawn(function()
          while icmprun.counters().pending < 100000 do
            icmprun.sleep(10)
          end
          for r in icmprun.sweep({ "::1", "2001:db8:2::1-2001:db8:2::2" },
            { count = 50, interval = 5, rate = 0 }) do
            loopback[#loopback + 1] = r
          end
        end)
      ]], [[(function()
        local n = 0
        for _, r in ipairs(loopback) do
          if r.status == "reply" and r.from == r.addr then n = n + 1 end
        end
        return n
      end)()]])
      assert.is_true(f.peak >= 100000, "at most " .. f.peak .. " probes in flight")
      assert.equal(150, f.loopback)
      assert.equal(150, f.loopback_replies)
      assert.equal(131072, f.timeout)
      assert.equal(0, f.error)
      assert.equal(0, f.duplicates)
      assert.equal(0, f.foreign)
      assert.equal(0, f.pending)
    end)

    --- The peak resident memory in kB of a process that takes `n` results of a
    -- sweep of `block` and then breaks.
    local function peak_kb(block, order, n)
      local r = cli.lua_script(string.format([[
        local icmprun = require "icmprun"
        local function hwm()
          for line in io.lines("/proc/self/status") do
            local kb = line:match("^VmHWM:%%s*(%%d+)")
            if kb then return tonumber(kb) end
          end
        end
        assert(icmprun.ping("127.0.0.1").status == "reply")
        local base, seen, n = hwm(), {}, 0
        for r in icmprun.sweep(%q, { rate = 0, order = %q }) do
          assert(r.status == "reply" and not seen[r.addr], r.addr)
          seen[r.addr] = true
          n = n + 1
          if n == %d then break end
        end
        print(hwm() - base)
      ]], block, order, n), 60)
      assert.equal(0, r.code, r.stderr)
      return assert(tonumber(r.stdout:match("^(%d+)")), r.stdout)
    end

    for _, order in ipairs({ "sequential", "random" }) do
      it("takes no more memory for a /8 than for a /16 in " .. order .. " order",
        function()
          -- 16 million addresses held in any form would take 64 MB at least.
          local small = peak_kb("127.0.0.0/16", order, 20000)
          local large = peak_kb("127.0.0.0/8", order, 20000)
          assert.is_true(large < small + 16 * 1024, string.format(
            "a /8 took %d kB more at its peak, a /16 %d kB", large, small))
        end)
    end
  end)
end)
