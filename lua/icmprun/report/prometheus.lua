-- SPDX-License-Identifier: MIT

--- Prometheus text exposition (format 0.0.4) of ping statistics.
--
-- One naming for reports and the exporter: a report names its series, units
-- and labels as `icmprun exporter` does (`icmprun.exporter.metrics`), which
-- follows smokeping_prober so that its dashboards and alerts keep working.
-- A file written by a campaign and a scrape of the exporter can be queried
-- with the same expressions. Per entry:
--
-- * `smokeping_requests_total{host,ip,...}` (counter): probes of the entry
--   that ended, with a reply or not (`stats.sent`);
-- * `icmprun_results_total{host,ip,...,status}` (counter): results by
--   status, one sample for each of `reply`, `timeout`, `unreachable`,
--   `ttl_exceeded` and `error` (zeros included, so rates always exist), and
--   for any other status seen;
-- * `smokeping_response_duration_seconds{host,ip,...}` (histogram): the RTT
--   of the replies in seconds, as `_bucket{le=...}` (cumulative, ending with
--   `le="+Inf"`), `_sum` and `_count`. The default buckets are
--   smokeping_prober's 20 doublings from 50 µs, `0.00005 * 2^i` for
--   i = 0..19 (50 µs to 26.2144 s); `opts.buckets` chooses others;
-- * `smokeping_response_ttl{host,ip,...}` (gauge): the TTL (hop limit) of
--   the last reply, for entries that give one (`ttl`);
-- * `smokeping_send_errors_total{host,ip,...}` (counter): probes whose send
--   failed (results of status `error`);
-- * `smokeping_response_duplicates_total{host,ip,...}` (counter): the
--   entry's `duplicates`, else its statistics' `duplicates` counter, else 0:
--   duplicate replies from its address, as the exporter counts them from
--   `icmprun.duplicates()`;
-- * `icmprun_<name>_total{host,ip,...}` (counter) for each entry counter,
--   such as `icmprun_duplicates_total` and `icmprun_late_total`.
--
-- Engine-wide, from `opts.engine` (`icmprun.counters()`), as the exporter
-- writes them: `smokeping_receive_errors_total` (malformed and corrupted
-- packets) and
-- `icmprun_engine_<name>_total` (counters, no labels) for each engine
-- counter, except `icmprun_engine_pending` (gauge).
--
-- Each sample carries the labels `host` (the name as given: the entry's
-- `host`, else its `target`), `ip` (the address probed: the entry's `ip`,
-- else its `target`) and the entry's own `labels`, in that order then by
-- name. Label values are escaped (backslash, double quote, newline).
--
-- Bucket counts are exact: they come from a `prometheus.histogram`
-- accumulator, with its own buckets, when the entry or its stats carry one
-- (`stats.new{histogram = prometheus.histogram(buckets)}`), and otherwise from
-- the stats' own log histogram, whose bounds include every default bucket
-- (other bounds are then counted to within 2% of the bound: attach an
-- accumulator for exact counts).
-- @module icmprun.report.prometheus
local number = require "icmprun.report.number"

local M = {}

local error, ipairs, pairs, tostring, type = error, ipairs, pairs, tostring, type
local getmetatable, setmetatable = getmetatable, setmetatable
local math_huge = math.huge
local string_format = string.format
local table_concat, table_sort, table_unpack = table.concat, table.sort, table.unpack

--- smokeping_prober's default buckets in seconds: 0.00005 * 2^i, i = 0..19.
M.DEFAULT_BUCKETS = {}
for i = 0, 19 do
  M.DEFAULT_BUCKETS[i + 1] = 0.00005 * 2 ^ i
end

--- The statuses always exposed by `icmprun_responses_total`, in order: every
-- status the engine gives.
M.STATUSES = { table.unpack(require("icmprun").STATUSES) }

-- HELP texts for the counters entries and the engine usually have.
local COUNTER_HELP = {
  duplicates = "Duplicate replies: a second reply to a probe already answered.",
  late = "Replies that arrived after their probe had timed out.",
  foreign = "Echo replies that matched no probe of this process.",
  malformed = "Packets that could not be decoded.",
  sent = "Probes sent.",
  results = "Results delivered to scripts.",
  replies = "Echo replies matched to a probe.",
  timeouts = "Probes that timed out.",
  icmp_errors = "ICMP errors (unreachable, time exceeded) matched to a probe.",
  send_errors = "Probes whose send failed.",
  send_retries = "Sends retried after a temporary failure.",
  send_blocked = "Sends held back because the socket buffer was full (EAGAIN).",
  clock_steps = "Times the clock was seen to step.",
}

--- Formats a sample value or bound as Prometheus (and Go) do: integers
-- as they are, floats in the shortest form that reads back the same, and
-- `+Inf`, `-Inf`, `NaN`.
-- @tparam number x
-- @treturn string
local function format_value(x)
  if number.is_finite(x) then
    return number.shortest(x)
  elseif x ~= x then
    return "NaN"
  end
  return x > 0 and "+Inf" or "-Inf"
end
M.format_value = format_value

--- Escapes a label value: backslash, double quote and newline.
-- @tparam string s
-- @treturn string
local function escape_label(s)
  return (s:gsub("[\\\"\n]", { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end
M.escape_label = escape_label

-- Escapes HELP text: backslash and newline.
local function escape_help(s)
  return (s:gsub("[\\\n]", { ["\\"] = "\\\\", ["\n"] = "\\n" }))
end

-- Entry counters that would collide with the families above
-- (`icmprun_results_total`) or with the engine's (`icmprun_engine_*`).
local RESERVED_COUNTERS = { results = true }

local function check_metric_name(name, what)
  if type(name) ~= "string" or not name:match("^[a-zA-Z_:][a-zA-Z0-9_:]*$") then
    error(string_format("prometheus.render: %s '%s' is not a valid metric name part",
      what, tostring(name)), 3)
  end
  if what == "counter name" and (RESERVED_COUNTERS[name] or name:match("^engine_")) then
    error(string_format("prometheus.render: counter name '%s' is reserved", name), 3)
  end
end

-- Checks the buckets (positive numbers, strictly increasing) and returns a
-- copy without a final +Inf, which the histogram adds itself.
local function checked_buckets(buckets, level)
  if type(buckets) ~= "table" or #buckets == 0 then
    error("prometheus: buckets must be a non-empty list of numbers", level + 1)
  end
  local copy = {}
  for i, b in ipairs(buckets) do
    if type(b) ~= "number" or b ~= b then
      error("prometheus: bucket " .. i .. " is not a number", level + 1)
    end
    if i > 1 and b <= buckets[i - 1] then
      error("prometheus: buckets must be in increasing order", level + 1)
    end
    if b ~= math_huge then
      copy[#copy + 1] = b
    end
  end
  return copy
end

local Histogram = {}
Histogram.__index = Histogram

--- An exact bucket-count accumulator for `smokeping_response_duration_seconds`:
-- attach it to statistics with `stats.new{histogram = h}` to count any
-- bucket bounds exactly.
-- Fields: `buckets` (upper bounds in seconds, ascending, without +Inf),
-- `counts` (observations per bucket, not cumulative: `counts[i]` is those in
-- `(buckets[i-1], buckets[i]]`, `counts[#buckets + 1]` those above the
-- last), `count` and `sum`.
-- @tparam[opt=DEFAULT_BUCKETS] {number,...} buckets upper bounds in seconds
-- @treturn Histogram
function M.histogram(buckets)
  buckets = checked_buckets(buckets or M.DEFAULT_BUCKETS, 2)
  local counts = {}
  for i = 1, #buckets + 1 do
    counts[i] = 0
  end
  return setmetatable({ buckets = buckets, counts = counts, count = 0, sum = 0 }, Histogram)
end

--- The bucket an observation falls in: the index of the first upper bound
-- that is >= it, or `#buckets + 1` (+Inf) when it is above them all.
-- @tparam {number,...} buckets upper bounds, ascending, without +Inf
-- @tparam number x
-- @treturn integer
function M.bucket_index(buckets, x)
  local lo, hi = 1, #buckets + 1
  while lo < hi do -- binary search
    local mid = (lo + hi) // 2
    if x <= buckets[mid] then
      hi = mid
    else
      lo = mid + 1
    end
  end
  return lo
end

--- Records one observation.
-- @tparam number seconds
function Histogram:observe(seconds)
  if type(seconds) ~= "number" then
    error("histogram:observe: number expected, got " .. type(seconds), 2)
  end
  local i = M.bucket_index(self.buckets, seconds)
  self.counts[i] = self.counts[i] + 1
  self.count = self.count + 1
  self.sum = self.sum + seconds
end

--- Adds another histogram with the same buckets into this one.
-- @tparam Histogram other
-- @treturn Histogram self
function Histogram:merge(other)
  if getmetatable(other) ~= Histogram then
    error("histogram:merge: histogram expected", 2)
  end
  if #other.buckets ~= #self.buckets then
    error("histogram:merge: the buckets differ", 2)
  end
  for i, b in ipairs(self.buckets) do
    if other.buckets[i] ~= b then
      error("histogram:merge: the buckets differ", 2)
    end
  end
  for i, c in ipairs(other.counts) do
    self.counts[i] = self.counts[i] + c
  end
  self.count = self.count + other.count
  self.sum = self.sum + other.sum
  return self
end

--- The cumulative counts, one per bucket then one for +Inf (= `count`).
-- @treturn {integer,...}
function Histogram:cumulative()
  local out, running = {}, 0
  for i, c in ipairs(self.counts) do
    running = running + c
    out[i] = running
  end
  return out
end

--- Whether `x` is a histogram made by `prometheus.histogram`.
function M.is_histogram(x)
  return getmetatable(x) == Histogram
end

-- Label names an entry's own labels may not take.
local RESERVED_LABELS = { host = true, ip = true, target = true, status = true, le = true }

-- The label pairs of an entry, rendered, in order: host, ip, then the
-- entry's labels by name (as the exporter's `metrics.label_key`).
local function entry_labels(entry, index)
  local parts = {}
  local function add(name, value)
    if not name:match("^[a-zA-Z_][a-zA-Z0-9_]*$") or name:match("^__") then
      error(string_format("prometheus.render: entry %d: invalid label name '%s'", index, name), 4)
    end
    parts[#parts + 1] = name .. '="' .. escape_label(tostring(value)) .. '"'
  end
  local host = entry.host
  if host == nil then
    host = entry.target
  end
  local ip = entry.ip
  if ip == nil then
    ip = entry.target
  end
  if host == nil or ip == nil then
    error(string_format("prometheus.render: entry %d has no target (or host and ip)", index), 3)
  end
  add("host", host)
  add("ip", ip)
  if entry.labels ~= nil then
    if type(entry.labels) ~= "table" then
      error(string_format("prometheus.render: entry %d: labels must be a table", index), 3)
    end
    local names = {}
    for name in pairs(entry.labels) do
      if type(name) ~= "string" then
        error(string_format("prometheus.render: entry %d: label names must be strings", index), 3)
      end
      if RESERVED_LABELS[name] then
        error(string_format("prometheus.render: entry %d: label '%s' is reserved", index, name), 3)
      end
      names[#names + 1] = name
    end
    table_sort(names)
    for _, name in ipairs(names) do
      add(name, entry.labels[name])
    end
  end
  return parts
end

-- {a="1",b="2"} from rendered label pairs plus optional extra ones.
local function label_set(parts, extra)
  local all = parts
  if extra then
    all = { table_unpack(parts) }
    all[#all + 1] = extra
  end
  if #all == 0 then
    return ""
  end
  return "{" .. table_concat(all, ",") .. "}"
end

-- The cumulative bucket counts, +Inf count and sum (seconds) of an entry.
local function entry_histogram(entry, buckets)
  local h = entry.histogram or (entry.stats and entry.stats.histogram)
  if h then
    if getmetatable(h) ~= Histogram then
      error("prometheus.render: an entry's histogram must come from prometheus.histogram", 3)
    end
    return h.buckets, h:cumulative(), h.count, h.sum
  end
  local s = entry.stats
  local cumulative = {}
  for i, b in ipairs(buckets) do
    cumulative[i] = s:count_le(b * 1000)
  end
  cumulative[#buckets + 1] = s.received
  return buckets, cumulative, s.received, s.sum / 1000
end

--- The lines (without newlines) of the engine's counters, from
-- `icmprun.counters()`: `icmprun_engine_<name>_total` (counters, no labels) for
-- each, except `icmprun_engine_pending` and `icmprun_engine_corrupt_offset`
-- (gauges), by name.
-- @tparam table engine
-- @treturn {string,...}
function M.engine_lines(engine)
  local names = {}
  for name, value in pairs(engine) do
    if type(value) == "number" then
      check_metric_name(name, "engine counter")
      names[#names + 1] = name
    end
  end
  table_sort(names)
  local out = {}
  local function add(metric, kind, help, value)
    out[#out + 1] = "# HELP " .. metric .. " " .. escape_help(help)
    out[#out + 1] = "# TYPE " .. metric .. " " .. kind
    out[#out + 1] = metric .. " " .. format_value(value)
  end
  for _, name in ipairs(names) do
    if name == "pending" then
      add("icmprun_engine_pending", "gauge", "Probes in flight. Engine-wide.", engine.pending)
    elseif name == "corrupt_offset" then
      add("icmprun_engine_corrupt_offset", "gauge", "First differing payload byte of the "
        .. "last corrupted answer. Engine-wide.", engine.corrupt_offset)
    else
      add("icmprun_engine_" .. name .. "_total", "counter",
        (COUNTER_HELP[name] or ("Counter '" .. name .. "'.")) .. " Engine-wide, since it started.",
        engine[name])
    end
  end
  return out
end

--- The lines (without newlines) of the engine-wide families, as the
-- exporter writes them: `smokeping_receive_errors_total` (malformed plus
-- corrupted packets: they
-- match no probe, so they have no target), then `engine_lines`.
-- @tparam table engine `icmprun.counters()`
-- @treturn {string,...}
function M.engine_families(engine)
  local out = {
    "# HELP smokeping_receive_errors_total Received packets that could not be used "
      .. "(malformed or corrupted), engine-wide.",
    "# TYPE smokeping_receive_errors_total counter",
    "smokeping_receive_errors_total "
      .. format_value((engine.malformed or 0) + (engine.corrupted or 0)),
  }
  for _, line in ipairs(M.engine_lines(engine)) do
    out[#out + 1] = line
  end
  return out
end

--- Renders statistics as Prometheus text.
-- @tparam {table,...} entries each `{host = ?string, ip = ?string,
--   target = ?string, labels = ?table, stats = Stats, counters = ?table,
--   histogram = ?Histogram, ttl = ?integer}`: `host` (the name, default
--   `target`) and `ip` (the address, default `target`) label its series,
--   `ttl` is the last reply's, and `counters` (name -> number, default
--   `stats.counters`) become `icmprun_<name>_total` counters
-- @tparam[opt] table opts `buckets` (upper bounds in seconds, default
--   `DEFAULT_BUCKETS`), `engine` (engine counters from `icmprun.counters()`,
--   rendered as the exporter does: see `engine_families`)
-- @treturn string the exposition, ending with a newline
function M.render(entries, opts)
  if type(entries) ~= "table" then
    error("prometheus.render: entries must be a list, got " .. type(entries), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("prometheus.render: options must be a table, got " .. type(opts), 2)
  end
  opts = opts or {}
  local buckets = checked_buckets(opts.buckets or M.DEFAULT_BUCKETS, 2)

  local rows = {} -- per entry: label parts, stats, counters
  local seen = {}
  local counter_names, counter_seen = {}, {}
  local extra_statuses, status_seen = {}, {}
  for _, status in ipairs(M.STATUSES) do
    status_seen[status] = true
  end
  for i, entry in ipairs(entries) do
    if type(entry) ~= "table" then
      error(string_format("prometheus.render: entry %d is not a table", i), 2)
    end
    local s = entry.stats
    if type(s) ~= "table" or type(s.count_le) ~= "function" then
      error(string_format("prometheus.render: entry %d has no stats object", i), 2)
    end
    local parts = entry_labels(entry, i)
    local key = table_concat(parts, ",")
    if seen[key] then
      error(string_format("prometheus.render: entries %d and %d have the same labels", seen[key], i), 2)
    end
    seen[key] = i
    local counters = entry.counters or s.counters or {}
    for name, value in pairs(counters) do
      if type(value) == "number" and not counter_seen[name] then
        check_metric_name(name, "counter name")
        counter_seen[name] = true
        counter_names[#counter_names + 1] = name
      end
    end
    for status in pairs(s.by_status) do
      if not status_seen[status] then
        status_seen[status] = true
        extra_statuses[#extra_statuses + 1] = status
      end
    end
    rows[i] = { parts = parts, stats = s, counters = counters, entry = entry }
  end
  table_sort(counter_names)
  table_sort(extra_statuses)
  local statuses = { table_unpack(M.STATUSES) }
  for _, status in ipairs(extra_statuses) do
    statuses[#statuses + 1] = status
  end

  local out = {}
  local function family(name, kind, help)
    out[#out + 1] = "# HELP " .. name .. " " .. escape_help(help)
    out[#out + 1] = "# TYPE " .. name .. " " .. kind
  end
  local function sample(name, labels, value)
    out[#out + 1] = name .. labels .. " " .. format_value(value)
  end

  if #rows > 0 then
    -- The names, types and HELP texts of icmprun.exporter.metrics.
    family("smokeping_requests_total", "counter", "Probes sent.")
    for _, row in ipairs(rows) do
      sample("smokeping_requests_total", label_set(row.parts), row.stats.sent)
    end

    family("icmprun_results_total", "counter", "Probes that ended, by status.")
    for _, row in ipairs(rows) do
      for _, status in ipairs(statuses) do
        sample("icmprun_results_total",
          label_set(row.parts, 'status="' .. escape_label(status) .. '"'),
          row.stats.by_status[status] or 0)
      end
    end

    local hname = "smokeping_response_duration_seconds"
    family(hname, "histogram", "Round-trip time of the replies in seconds.")
    for _, row in ipairs(rows) do
      local bounds, cumulative, count, sum = entry_histogram(row.entry, buckets)
      for i, b in ipairs(bounds) do
        sample(hname .. "_bucket", label_set(row.parts, 'le="' .. format_value(b) .. '"'),
          cumulative[i])
      end
      sample(hname .. "_bucket", label_set(row.parts, 'le="+Inf"'), count)
      sample(hname .. "_sum", label_set(row.parts), sum)
      sample(hname .. "_count", label_set(row.parts), count)
    end

    family("smokeping_response_ttl", "gauge", "The TTL (hop limit) of the last reply.")
    for _, row in ipairs(rows) do
      local ttl = row.entry.ttl
      if type(ttl) == "number" then
        sample("smokeping_response_ttl", label_set(row.parts), ttl)
      end
    end

    family("smokeping_send_errors_total", "counter", "Probes whose send failed.")
    for _, row in ipairs(rows) do
      sample("smokeping_send_errors_total", label_set(row.parts),
        row.stats.by_status.error or 0)
    end

    family("smokeping_response_duplicates_total", "counter",
      "Duplicate replies: a second reply to a probe already answered.")
    for _, row in ipairs(rows) do
      sample("smokeping_response_duplicates_total", label_set(row.parts),
        tonumber(row.entry.duplicates) or tonumber(row.counters.duplicates) or 0)
    end

    for _, name in ipairs(counter_names) do
      local metric = "icmprun_" .. name .. "_total"
      family(metric, "counter", COUNTER_HELP[name] or ("Counter '" .. name .. "'."))
      for _, row in ipairs(rows) do
        local value = row.counters[name]
        if type(value) == "number" then
          sample(metric, label_set(row.parts), value)
        end
      end
    end
  end

  if opts.engine ~= nil then
    if type(opts.engine) ~= "table" then
      error("prometheus.render: option 'engine' must be a table", 2)
    end
    for _, line in ipairs(M.engine_families(opts.engine)) do
      out[#out + 1] = line
    end
  end

  if #out == 0 then
    return ""
  end
  return table_concat(out, "\n") .. "\n"
end

return M
