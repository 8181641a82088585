-- SPDX-License-Identifier: MIT

--- icmprun.stats: counts, loss, min/avg/max/mdev, percentiles, merge and
-- counters, checked against values computed by hand or by brute force.
local stats = require "icmprun.stats"

--- A deterministic pseudo-random generator in [0, 1) (a 32-bit LCG), so that
-- a failure can be reproduced.
local function lcg(seed)
  local state = seed
  return function()
    state = (1664525 * state + 1013904223) % 4294967296
    return state / 4294967296
  end
end

--- A reply result with the given RTT.
local function reply(rtt)
  return { status = "reply", rtt = rtt, addr = "127.0.0.1" }
end

--- Statistics of a list of RTTs (all replies).
local function of(rtts)
  local s = stats.new()
  for _, rtt in ipairs(rtts) do
    s:add(reply(rtt))
  end
  return s
end

--- The exact nearest-rank percentile of a sorted list.
local function exact_percentile(sorted, p)
  local rank = math.max(1, math.ceil(p * #sorted / 100 - 1e-9))
  return sorted[rank]
end

--- Asserts |actual - expected| <= tolerance * |expected|.
local function assert_close(expected, actual, tolerance, what)
  local err = math.abs(actual - expected)
  assert(err <= tolerance * math.abs(expected), string.format(
    "%s: expected %.17g, got %.17g (relative error %.3g > %.3g)", what or "value", expected,
    actual, err / math.abs(expected), tolerance))
end

-- The stated bound, allowing for the rounding of the bucket bounds themselves.
local TOLERANCE = stats.RELATIVE_ERROR * (1 + 1e-9)

describe("icmprun.stats", function()
  describe("an empty object", function()
    local s = stats.new()

    it("has nothing sent or received and no loss", function()
      assert.equal(0, s.sent)
      assert.equal(0, s.received)
      assert.equal(0, s.errors)
      assert.equal(0, s:loss())
    end)

    it("has open extremes and no moments", function()
      assert.equal(math.huge, s.min)
      assert.equal(-math.huge, s.max)
      assert.is_nil(s:stddev())
      assert.is_nil(s:summary())
      assert.is_nil(s:percentile(50))
    end)

    it("counts every status as zero", function()
      for _, status in ipairs(stats.STATUSES) do
        assert.equal(0, s.by_status[status], status)
      end
    end)

    it("has no RTT fields in its table", function()
      local t = s:to_table()
      assert.same({ sent = 0, received = 0, loss_pct = 0, errors = 0,
        by_status = { reply = 0, timeout = 0, unreachable = 0, ttl_exceeded = 0, error = 0 } }, t)
    end)
  end)

  describe("min/avg/max/mdev", function()
    it("of 1, 2, 3, 4 ms are 1, 2.5, 4 and sqrt(1.25)", function()
      local s = of({ 1, 2, 3, 4 })
      local min, avg, max, mdev = s:summary()
      assert.equal(1, min)
      assert.equal(2.5, avg)
      assert.equal(4, max)
      -- Deviations -1.5, -0.5, 0.5, 1.5: squares sum to 5, 5 / 4 = 1.25.
      assert_close(1.1180339887498949, mdev, 1e-15, "mdev")
      assert.equal(mdev, s:stddev())
      assert.equal(10, s.sum)
    end)

    it("of 0.042, 0.050, 0.061 ms are as iputils would print them", function()
      local s = of({ 0.050, 0.042, 0.061 })
      local min, avg, max, mdev = s:summary()
      assert.equal(0.042, min)
      assert_close(0.051, avg, 1e-12, "avg")
      assert.equal(0.061, max)
      -- Deviations -0.009, -0.001, 0.010: squares sum to 182e-6, / 3.
      assert_close(math.sqrt(182e-6 / 3), mdev, 1e-9, "mdev")
      assert.equal("0.042/0.051/0.061/0.008",
        string.format("%.3f/%.3f/%.3f/%.3f", min, avg, max, mdev))
    end)

    it("of a single reply has a zero mdev", function()
      local min, avg, max, mdev = of({ 7.25 }):summary()
      assert.same({ 7.25, 7.25, 7.25, 0 }, { min, avg, max, mdev })
    end)

    it("stays accurate for large RTTs with small spread (Welford)", function()
      local s = of({ 1e6 + 1, 1e6 + 2, 1e6 + 3, 1e6 + 4 })
      assert_close(1.1180339887498949, s:stddev(), 1e-9, "mdev")
    end)
  end)

  describe("loss and statuses", function()
    local s = stats.new()
    for _, r in ipairs({
      reply(1), reply(2), reply(3),
      { status = "timeout" },
      { status = "unreachable", from = "192.0.2.1", icmp_type = 3, icmp_code = 1 },
      { status = "timeout" },
      { status = "ttl_exceeded" },
      { status = "error", err = "sendto: permission denied" },
    }) do
      s:add(r)
    end

    it("counts sent, received and errors", function()
      assert.equal(8, s.sent)
      assert.equal(3, s.received)
      -- unreachable, ttl_exceeded and error: neither reply nor timeout.
      assert.equal(3, s.errors)
    end)

    it("gives the loss in percent", function()
      assert.equal(62.5, s:loss()) -- 5 of 8
      assert.equal(50, of({ 1 }):merge((function()
        local t = stats.new()
        t:add({ status = "timeout" })
        return t
      end)()):loss())
      assert.equal(0, of({ 1, 2 }):loss())
    end)

    it("counts each status", function()
      assert.same({ reply = 3, timeout = 2, unreachable = 1, ttl_exceeded = 1, error = 1 },
        s.by_status)
    end)

    it("counts a status it does not know too", function()
      local t = stats.new()
      t:add({ status = "filtered" })
      assert.equal(1, t.by_status.filtered)
      assert.equal(1, t.errors)
    end)

    it("gives every field in its table", function()
      local t = s:to_table()
      assert.equal(8, t.sent)
      assert.equal(3, t.received)
      assert.equal(62.5, t.loss_pct)
      assert.equal(1, t.min_ms)
      assert.equal(2, t.avg_ms)
      assert.equal(3, t.max_ms)
      assert_close(math.sqrt(2 / 3), t.mdev_ms, 1e-12, "mdev_ms")
      assert_close(2, t.p50_ms, TOLERANCE, "p50_ms")
      assert.equal(3, t.p90_ms) -- rank ceil(2.7) = 3 of 3: the max
      assert.equal(3, t.p95_ms)
      assert.equal(3, t.p99_ms)
      assert.equal(3, t.errors)
      assert.same(s.by_status, t.by_status)
      assert.are_not.equal(s.by_status, t.by_status) -- a copy
      assert.is_nil(t.counters)
    end)
  end)

  describe("percentile", function()
    it("is within the stated relative error of 1%", function()
      assert.is_true(stats.RELATIVE_ERROR <= 0.01)
      assert_close(0.0099, stats.RELATIVE_ERROR, 0.01, "RELATIVE_ERROR")
    end)

    local ps = { 1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9 }

    it("of a uniform distribution of 0.1 to 1000 ms", function()
      local values = {}
      for i = 1, 10000 do
        values[i] = i * 0.1
      end
      local s = of(values)
      for _, p in ipairs(ps) do
        assert_close(exact_percentile(values, p), s:percentile(p), TOLERANCE,
          "p" .. p)
      end
    end)

    it("of a log-uniform distribution over seven decades", function()
      local rand, values = lcg(42), {}
      for i = 1, 20000 do
        values[i] = 10 ^ (rand() * 7 - 3) -- 1 µs to 10 s
      end
      local s = of(values)
      table.sort(values)
      for _, p in ipairs(ps) do
        assert_close(exact_percentile(values, p), s:percentile(p), TOLERANCE,
          "p" .. p)
      end
    end)

    it("of every rank of a small skewed sample", function()
      local values = { 0.011, 0.013, 0.012, 0.5, 0.014, 0.013, 25, 0.015, 0.012, 0.0125 }
      local s = of(values)
      table.sort(values)
      for p = 1, 100 do
        assert_close(exact_percentile(values, p), s:percentile(p), TOLERANCE,
          "p" .. p)
      end
    end)

    it("at 0 and 100 is the exact min and max", function()
      local s = of({ 3.3, 1.1, 2.2 })
      assert.equal(1.1, s:percentile(0))
      assert.equal(3.3, s:percentile(100))
    end)

    it("rejects p outside 0..100", function()
      local s = of({ 1 })
      assert.has_error(function() s:percentile(-1) end,
        "stats:percentile: p must be a number from 0 to 100, got -1")
      assert.has_error(function() s:percentile(100.5) end,
        "stats:percentile: p must be a number from 0 to 100, got 100.5")
      assert.has_error(function() s:percentile("50") end,
        "stats:percentile: p must be a number from 0 to 100, got 50")
      assert.error_matches(function() s:percentile(0 / 0) end,
        "p must be a number from 0 to 100, got")
    end)

    it("keeps memory bounded however many samples it sees", function()
      local rand, s = lcg(7), stats.new()
      for _ = 1, 100000 do
        s:add(reply(10 ^ (rand() * 16 - 8))) -- 10 ps to 27 hours
      end
      s:add(reply(0))
      s:add(reply(1e300))
      assert.is_true(s:bucket_count() <= 1541, "buckets: " .. s:bucket_count())
      assert.equal(0, s:percentile(0))
      assert.equal(1e300, s:percentile(100))
    end)

    it("uses few buckets for a typical target", function()
      local rand, s = lcg(3), stats.new()
      for _ = 1, 10000 do
        s:add(reply(0.02 + rand() * 0.03))
      end
      -- 0.02 to 0.05 ms is log2(2.5) = 1.32 doublings of 35 buckets: 47 at most.
      assert.is_true(s:bucket_count() <= 47, "buckets: " .. s:bucket_count())
    end)
  end)

  describe("histogram buckets", function()
    it("hold each bound in the bucket it closes, and the next double above in the next", function()
      for j = -16 * 35 + 1, 28 * 35 - 1 do
        local bound = stats.bucket_upper_bound(j)
        assert.equal(j, stats.bucket_of(bound), "bound of bucket " .. j)
        assert.equal(j + 1, stats.bucket_of(bound * (1 + 2 ^ -52)), "just above bucket " .. j)
        assert.equal(j, stats.bucket_of(bound * (1 - 2 ^ -53)), "just below bound " .. j)
      end
    end)

    it("are spaced by 2^(1/35), doubling every 35", function()
      assert.equal(0.05, stats.bucket_upper_bound(0))
      assert.equal(0.1, stats.bucket_upper_bound(35))
      assert.equal(0.025, stats.bucket_upper_bound(-35))
      assert_close(0.05 * 2 ^ (1 / 35), stats.bucket_upper_bound(1), 1e-15, "bound 1")
    end)
  end)

  describe("count_le", function()
    it("counts exactly at every bound 0.05 ms * 2^i", function()
      local rand, values = lcg(11), {}
      for i = 0, 19 do
        local b = 0.00005 * 2 ^ i * 1000
        for _, v in ipairs({ b, b * (1 - 1e-7), b * (1 + 1e-7), b * 0.98, b * 1.02 }) do
          values[#values + 1] = v
        end
      end
      for _ = 1, 2000 do
        values[#values + 1] = 10 ^ (rand() * 6 - 3)
      end
      local s = of(values)
      for i = 0, 19 do
        local bound = 0.00005 * 2 ^ i * 1000 -- as a Prometheus bucket becomes ms
        local expected = 0
        for _, v in ipairs(values) do
          if v <= 0.05 * 2 ^ i then
            expected = expected + 1
          end
        end
        assert.equal(expected, s:count_le(bound), "bound " .. bound)
      end
      assert.equal(#values, s:count_le(math.huge))
      assert.equal(0, s:count_le(0))
    end)
  end)

  describe("merge", function()
    local function check_same(all, merged)
      assert.equal(all.sent, merged.sent)
      assert.equal(all.received, merged.received)
      assert.equal(all.errors, merged.errors)
      assert.equal(all.min, merged.min)
      assert.equal(all.max, merged.max)
      assert_close(all.mean, merged.mean, 1e-12, "mean")
      assert_close(all:stddev(), merged:stddev(), 1e-9, "mdev")
      assert_close(all.sum, merged.sum, 1e-12, "sum")
      assert.same(all.by_status, merged.by_status)
      assert.same(all.buckets, merged.buckets)
      for _, p in ipairs({ 1, 10, 50, 90, 95, 99 }) do
        assert.equal(all:percentile(p), merged:percentile(p), "p" .. p)
      end
    end

    it("equals adding every result into one object", function()
      local rand = lcg(1)
      local all, parts = stats.new(), { stats.new(), stats.new(), stats.new() }
      local statuses = { "timeout", "unreachable", "ttl_exceeded", "error" }
      for i = 1, 3000 do
        local r
        if rand() < 0.8 then
          -- Parts with different means, so that the merge must move the mean.
          r = reply((i % 3 + 1) * 10 + rand() * (i % 3 + 1))
        else
          r = { status = statuses[math.floor(rand() * 4) + 1] }
        end
        all:add(r)
        parts[i % 3 + 1]:add(r)
      end
      local merged = stats.new():merge(parts[1]):merge(parts[2]):merge(parts[3])
      check_same(all, merged)
      assert.equal(parts[1].sent + parts[2].sent + parts[3].sent, merged.sent)
    end)

    it("with an empty object changes nothing, either way", function()
      local a = of({ 1, 2, 3, 4 })
      local before = a:to_table()
      a:merge(stats.new())
      assert.same(before, a:to_table())
      local b = stats.new():merge(of({ 1, 2, 3, 4 }))
      assert.same(before, b:to_table())
    end)

    it("of two single replies gives their mdev", function()
      local m = of({ 1 }):merge(of({ 3 }))
      assert.equal(2, m.mean)
      assert.equal(1, m:stddev())
    end)

    it("adds counters", function()
      local a, b = stats.new(), stats.new()
      a:add_counters({ duplicates = 2, late = 1 })
      b:add_counters({ duplicates = 3 })
      a:merge(b)
      assert.same({ duplicates = 5, late = 1 }, a.counters)
    end)

    it("refuses what is not a stats object", function()
      assert.has_error(function() stats.new():merge({ sent = 1 }) end,
        "stats:merge: stats object expected, got table")
    end)
  end)

  describe("counters", function()
    it("accumulate engine counters, without the pending level", function()
      local s = stats.new()
      s:add_counters({ duplicates = 1, late = 2, pending = 5, name = "x" })
      s:add_counters({ duplicates = 1 })
      assert.same({ duplicates = 2, late = 2 }, s.counters)
      assert.same({ duplicates = 2, late = 2 }, s:to_table().counters)
    end)

    it("come as deltas from stats.delta", function()
      local before = { sent = 10, late = 1, duplicates = 0, pending = 3 }
      local after = { sent = 15, late = 2, duplicates = 4, pending = 1 }
      assert.same({ sent = 5, late = 1, duplicates = 4, pending = 1 }, stats.delta(before, after))
    end)

    it("keep the corrupt offset only when corrupted answers came in between", function()
      local before = { corrupted = 1, corrupt_offset = 28 }
      assert.same({ corrupted = 0 }, stats.delta(before, { corrupted = 1, corrupt_offset = 28 }))
      assert.same({ corrupted = 2, corrupt_offset = 5 },
        stats.delta(before, { corrupted = 3, corrupt_offset = 5 }))
      assert.same({ corrupted = 1, corrupt_offset = 0 },
        stats.delta({ corrupted = 0 }, { corrupted = 1, corrupt_offset = 0 }))
    end)

    it("refuse what is not a table", function()
      assert.has_error(function() stats.new():add_counters(3) end,
        "stats:add_counters: table expected, got number")
    end)
  end)

  describe("an attached histogram", function()
    it("observes each reply's RTT in seconds and merges", function()
      local function recorder()
        return {
          seen = {},
          observe = function(self, seconds) self.seen[#self.seen + 1] = seconds end,
          merge = function(self, other)
            for _, v in ipairs(other.seen) do self.seen[#self.seen + 1] = v end
          end,
        }
      end
      local a = stats.new({ histogram = recorder() })
      a:add(reply(1.5))
      a:add({ status = "timeout" })
      local b = stats.new({ histogram = recorder() })
      b:add(reply(250))
      a:merge(b)
      assert.same({ 0.0015, 0.25 }, a.histogram.seen)
    end)

    it("must have an observe method", function()
      assert.has_error(function() stats.new({ histogram = {} }) end,
        "stats.new: option 'histogram' must have an observe method")
    end)

    it("cannot take a merge from an object without one", function()
      local a = stats.new({ histogram = { observe = function() end, merge = function() end } })
      assert.has_error(function() a:merge(of({ 1 })) end,
        "stats:merge: this object has a histogram and the other does not")
    end)
  end)

  describe("caller mistakes", function()
    it("raise with the argument named", function()
      local s = stats.new()
      assert.has_error(function() s:add(nil) end, "stats:add: result table expected, got nil")
      assert.has_error(function() s:add({}) end, "stats:add: result has no status")
      assert.has_error(function() s:add({ status = "reply" }) end, "stats:add: reply has no rtt")
      assert.has_error(function() stats.new(5) end,
        "stats.new: options must be a table, got number")
      assert.equal(0, s.sent)
    end)
  end)
end)
