-- SPDX-License-Identifier: MIT

--- Round-trip statistics as ping reports them: counts, loss, min/avg/max/mdev
-- and percentiles, in constant memory per target, and mergeable.
--
-- The mean and variance are Welford's running moments, so `mdev` is the
-- population standard deviation that iputils' ping prints. Two objects merge
-- with Chan et al.'s pairwise formula, which gives the same moments as adding
-- every sample into one object (up to rounding).
--
-- Percentiles come from a log-bucket histogram (the idea of DDSketch): bucket
-- `j` holds the RTTs in `(BASE * 2^((j-1)/35), BASE * 2^(j/35)]` with
-- `BASE = 0.05` ms, 35 buckets per doubling. Reporting a bucket by
-- `2 * upper / (gamma + 1)`, where `gamma = 2^(1/35)`, is within
-- `(gamma - 1) / (gamma + 1)` = 0.99% of every value in it, so a percentile is
-- within 1% of the exact nearest-rank percentile of the samples (and the 0th
-- and 100th are the exact min and max). The buckets span 0.76 ns to 3.7 hours
-- (values outside are counted in the end buckets, and the estimate is clamped
-- to the exact min and max), so an object never holds more than 1,541
-- buckets, however many samples it sees; a typical target uses a few dozen.
--
-- The bucket bounds fall exactly on `0.05 ms * 2^i`, the default buckets of a
-- Prometheus histogram (smokeping_prober's), so `count_le` is exact there and
-- the Prometheus report needs no other record of the RTTs. For other bounds,
-- attach an exact accumulator with `stats.new{histogram = h}`.
-- @module icmprun.stats
local M = {}

local math_ceil, math_log, math_huge, math_sqrt = math.ceil, math.log, math.huge, math.sqrt
local error, getmetatable, ipairs, next, pairs = error, getmetatable, ipairs, next, pairs
local setmetatable, tonumber, tostring, type = setmetatable, tonumber, tostring, type
local table_sort = table.sort

--- Every status a result can have, in the order reports list them: the
-- engine's own list (a copy, so that no caller can change the engine's).
M.STATUSES = { table.unpack(require("icmprun").STATUSES) }

--- The histogram's geometry: the bound of bucket 0 (ms) and buckets per doubling.
M.HISTOGRAM_BASE_MS = 0.05
M.BUCKETS_PER_DOUBLING = 35

local BASE = M.HISTOGRAM_BASE_MS
local K = M.BUCKETS_PER_DOUBLING
local J_MIN, J_MAX = -16 * K, 28 * K -- 0.05 ms / 2^16 and 0.05 ms * 2^28
local GAMMA = 2 ^ (1 / K)

--- The largest relative error of a percentile, (gamma - 1) / (gamma + 1).
M.RELATIVE_ERROR = (GAMMA - 1) / (GAMMA + 1)

-- FRACTION[m] = 2^(m/K) for m = 0..K-1, with FRACTION[0] exactly 1, so that
-- every K-th bound is exactly BASE times a power of two.
local FRACTION = {}
for m = 0, K - 1 do
  FRACTION[m] = m == 0 and 1.0 or 2 ^ (m / K)
end

--- The upper bound (ms) of histogram bucket `j`.
-- @tparam integer j the bucket index
-- @treturn number
local function upper_bound(j)
  return BASE * FRACTION[j % K] * 2.0 ^ (j // K)
end
M.bucket_upper_bound = upper_bound

--- The index of the bucket that holds `x` ms. The logarithm gives a first
-- guess; comparing against the bounds themselves makes the choice exact.
-- @tparam number x
-- @treturn integer
local function bucket_of(x)
  if x ~= x or x <= upper_bound(J_MIN) then -- NaN, zero and negative values too
    return J_MIN
  elseif x > upper_bound(J_MAX - 1) then
    return J_MAX
  end
  local j = math_ceil(math_log(x / BASE, 2) * K)
  while x <= upper_bound(j - 1) do
    j = j - 1
  end
  while x > upper_bound(j) do
    j = j + 1
  end
  return j
end
M.bucket_of = bucket_of

local Stats = {}
Stats.__index = Stats

--- A new, empty statistics object.
-- Fields: `sent` (results added), `received` (replies), `errors` (results
-- that are neither replies nor timeouts), `min`, `max`, `mean` and `sum` of
-- the replies' RTTs in ms (`min` is `math.huge` and `max` `-math.huge` until
-- a reply), `by_status` (status -> count, every status in `STATUSES`
-- present), `counters` (see `add_counters`) and `histogram` (the optional
-- accumulator below).
-- @tparam[opt] table opts
-- @param opts.histogram an object with `observe(seconds)` (and `merge(other)`
--   for `Stats:merge`), such as `icmprun.report.prometheus.histogram()`:
--   every reply's RTT is also observed there, in seconds
-- @treturn Stats
function M.new(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("stats.new: options must be a table, got " .. type(opts), 2)
  end
  local histogram = opts and opts.histogram
  if histogram ~= nil and (type(histogram) ~= "table" or type(histogram.observe) ~= "function") then
    error("stats.new: option 'histogram' must have an observe method", 2)
  end
  local by_status = {}
  for _, status in ipairs(M.STATUSES) do
    by_status[status] = 0
  end
  return setmetatable({
    sent = 0, received = 0, errors = 0,
    min = math_huge, max = -math_huge, mean = 0, m2 = 0, sum = 0,
    by_status = by_status,
    counters = {},
    buckets = {}, -- bucket index -> count, only buckets in use
    histogram = histogram,
  }, Stats)
end

--- Whether `x` is an object made by `stats.new`.
function M.is_stats(x)
  return getmetatable(x) == Stats
end

--- Adds one result (a table from `icmprun.ping` or `icmprun.sweep`): counted
-- as sent, by status, and for a reply its `rtt` (ms) goes into the moments
-- and the histogram.
-- @tparam table r the result
function Stats:add(r)
  if type(r) ~= "table" then
    error("stats:add: result table expected, got " .. type(r), 2)
  end
  local status = r.status
  if type(status) ~= "string" then
    error("stats:add: result has no status", 2)
  end
  local rtt = r.rtt
  if status == "reply" and type(rtt) ~= "number" then
    error("stats:add: reply has no rtt", 2)
  end
  self.sent = self.sent + 1
  self.by_status[status] = (self.by_status[status] or 0) + 1
  if status == "reply" then
    local n = self.received + 1
    self.received = n
    if rtt < self.min then self.min = rtt end
    if rtt > self.max then self.max = rtt end
    local delta = rtt - self.mean
    self.mean = self.mean + delta / n
    self.m2 = self.m2 + delta * (rtt - self.mean)
    self.sum = self.sum + rtt
    local j = bucket_of(rtt)
    local buckets = self.buckets
    buckets[j] = (buckets[j] or 0) + 1
    self.sorted = nil
    if self.histogram then
      self.histogram:observe(rtt / 1000)
    end
  elseif status ~= "timeout" then
    self.errors = self.errors + 1
  end
end

--- Records engine counters that are not results, such as `duplicates` and
-- `late` replies: each numeric field of `counters` is added to
-- `self.counters[name]`, except `pending`, a level rather than a count.
-- Engine counters (`icmprun.counters()`) count from the start of the process
-- and for every target together, so pass their change over the period (and
-- the targets) these statistics cover, for example
-- `s:add_counters(stats.delta(before, icmprun.counters()))`.
-- @tparam table counters name -> number
function Stats:add_counters(counters)
  if type(counters) ~= "table" then
    error("stats:add_counters: table expected, got " .. type(counters), 2)
  end
  local own = self.counters
  for name, value in pairs(counters) do
    if type(name) == "string" and name ~= "pending" and type(value) == "number" then
      own[name] = (own[name] or 0) + value
    end
  end
end

--- The change of engine counters between two `icmprun.counters()` snapshots:
-- `after[k] - before[k]` for every counter, except `pending`, a level rather
-- than a count, which is taken from `after`, and `corrupt_offset`, an
-- offset, taken from `after` only when corrupted answers came in between.
-- @tparam table before
-- @tparam table after
-- @treturn table
function M.delta(before, after)
  if type(before) ~= "table" or type(after) ~= "table" then
    error("stats.delta: two counter tables expected", 2)
  end
  local d = {}
  for name, value in pairs(after) do
    if type(value) == "number" then
      if name == "pending" then
        d[name] = value
      elseif name == "corrupt_offset" then
        -- Not a count: the last corrupted answer's, if it came in between.
        local corrupted = (after.corrupted or 0) - (tonumber(before.corrupted) or 0)
        d[name] = corrupted > 0 and value or nil
      else
        d[name] = value - (tonumber(before[name]) or 0)
      end
    end
  end
  return d
end

--- Adds everything `other` counted into `self`, as if its results had been
-- added here: counts, extremes, moments (Chan et al.), histogram buckets,
-- counters and the attached accumulator.
-- @tparam Stats other
-- @treturn Stats self
function Stats:merge(other)
  if getmetatable(other) ~= Stats then
    error("stats:merge: stats object expected, got " .. type(other), 2)
  end
  if self.histogram and other.received > 0 then
    if not other.histogram then
      error("stats:merge: this object has a histogram and the other does not", 2)
    end
    if type(self.histogram.merge) ~= "function" then
      error("stats:merge: the attached histogram has no merge method", 2)
    end
  end
  local na, nb = self.received, other.received
  if nb > 0 then
    local n = na + nb
    local delta = other.mean - self.mean
    self.mean = self.mean + delta * nb / n
    self.m2 = self.m2 + other.m2 + delta * delta * na * nb / n
    self.received = n
    self.sum = self.sum + other.sum
    if other.min < self.min then self.min = other.min end
    if other.max > self.max then self.max = other.max end
    local buckets = self.buckets
    for j, count in pairs(other.buckets) do
      buckets[j] = (buckets[j] or 0) + count
    end
    self.sorted = nil
    if self.histogram then
      self.histogram:merge(other.histogram)
    end
  end
  self.sent = self.sent + other.sent
  self.errors = self.errors + other.errors
  for status, count in pairs(other.by_status) do
    self.by_status[status] = (self.by_status[status] or 0) + count
  end
  self:add_counters(other.counters)
  return self
end

--- Packet loss in percent (0 when nothing was sent).
function Stats:loss()
  if self.sent == 0 then return 0 end
  return (self.sent - self.received) * 100 / self.sent
end

--- The population standard deviation of the RTTs (iputils' mdev), or nil.
function Stats:stddev()
  if self.received == 0 then return nil end
  local variance = self.m2 / self.received
  return math_sqrt(variance > 0 and variance or 0)
end

--- min, avg, max, mdev in milliseconds, or nil when nothing answered.
function Stats:summary()
  if self.received == 0 then return nil end
  return self.min, self.mean, self.max, self:stddev()
end

-- The indices of the buckets in use, ascending (cached until the next add).
local function sorted_buckets(self)
  local sorted = self.sorted
  if not sorted then
    sorted = {}
    for j in pairs(self.buckets) do
      sorted[#sorted + 1] = j
    end
    table_sort(sorted)
    self.sorted = sorted
  end
  return sorted
end

--- The `p`th percentile of the RTTs (nearest rank), within 1%
-- (`RELATIVE_ERROR`) of the exact value; `percentile(0)` and
-- `percentile(100)` are the exact min and max.
-- @tparam number p from 0 to 100
-- @treturn ?number milliseconds, or nil when nothing answered
function Stats:percentile(p)
  if type(p) ~= "number" or not (p >= 0 and p <= 100) then
    error("stats:percentile: p must be a number from 0 to 100, got " .. tostring(p), 2)
  end
  local n = self.received
  if n == 0 then return nil end
  -- The small tolerance keeps ranks such as 0.9 * 10 from rounding up to 10.
  local rank = math_ceil(p * n / 100 - 1e-9)
  if rank <= 1 then return self.min end
  if rank >= n then return self.max end
  local seen = 0
  local buckets = self.buckets
  for _, j in ipairs(sorted_buckets(self)) do
    seen = seen + buckets[j]
    if seen >= rank then
      local estimate = 2 * upper_bound(j) / (GAMMA + 1)
      if estimate < self.min then return self.min end
      if estimate > self.max then return self.max end
      return estimate
    end
  end
  return self.max -- not reached: the buckets hold every reply
end

--- How many replies had an RTT of at most `ms`. Exact when `ms` is a bucket
-- bound (`0.05 * 2^(i/35)`, notably `0.05 * 2^i`, for which a relative
-- difference of 1e-9 is forgiven so that `0.00005 * 2^i` seconds * 1000
-- matches), and otherwise counts the replies of the bucket that holds `ms`
-- as if they were all below it.
-- @tparam number ms
-- @treturn integer
function Stats:count_le(ms)
  if type(ms) ~= "number" or ms ~= ms then
    error("stats:count_le: number expected, got " .. tostring(ms), 2)
  end
  if ms == math_huge then return self.received end
  if ms < self.min then return 0 end
  local j = bucket_of(ms)
  if j > J_MIN and j < J_MAX and (ms - upper_bound(j - 1)) <= 1e-9 * ms then
    j = j - 1 -- ms is a bound within rounding: the bucket above it is excluded
  end
  local count = 0
  local buckets = self.buckets
  for _, i in ipairs(sorted_buckets(self)) do
    if i > j then break end
    count = count + buckets[i]
  end
  return count
end

-- Numbers that are not finite have no place in a report.
local function finite(x)
  if x ~= nil and x == x and x ~= math_huge and x ~= -math_huge then
    return x
  end
  return nil
end

--- A plain table of the statistics, for reports: `sent`, `received`,
-- `loss_pct`, `min_ms`, `avg_ms`, `max_ms`, `mdev_ms`, `p50_ms`, `p90_ms`,
-- `p95_ms`, `p99_ms` (these eight nil when nothing answered), `errors`,
-- `by_status` (a copy) and `counters` (a copy, nil when none was recorded).
-- @treturn table
function Stats:to_table()
  local t = {
    sent = self.sent,
    received = self.received,
    loss_pct = self:loss(),
    errors = self.errors,
  }
  if self.received > 0 then
    t.min_ms = finite(self.min)
    t.avg_ms = finite(self.mean)
    t.max_ms = finite(self.max)
    t.mdev_ms = finite(self:stddev())
    t.p50_ms = finite(self:percentile(50))
    t.p90_ms = finite(self:percentile(90))
    t.p95_ms = finite(self:percentile(95))
    t.p99_ms = finite(self:percentile(99))
  end
  local by_status = {}
  for status, count in pairs(self.by_status) do
    by_status[status] = count
  end
  t.by_status = by_status
  if next(self.counters) ~= nil then
    local counters = {}
    for name, value in pairs(self.counters) do
      counters[name] = value
    end
    t.counters = counters
  end
  return t
end

--- The number of histogram buckets in use (the memory the object holds).
function Stats:bucket_count()
  local n = 0
  for _ in pairs(self.buckets) do
    n = n + 1
  end
  return n
end

return M
