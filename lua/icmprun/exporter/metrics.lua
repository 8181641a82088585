-- SPDX-License-Identifier: MIT

--- The exporter's counters per target, and their Prometheus text.
--
-- Built for many targets scraped often: the counters are kept in C by the
-- exporter's `icmprun.prober` (a result costs no Lua), and a scrape writes
-- each sample as a handful of strings that are shared between targets (the
-- metric name, the target's label set, the `le` label). The families,
-- named as smokeping_prober's so that its dashboards and alerts keep
-- working:
--
-- * `smokeping_requests_total{host,ip,...}` (counter): probes sent;
-- * `smokeping_response_duration_seconds{host,ip,...}` (histogram): the RTT
--   of the replies, in seconds;
-- * `smokeping_response_ttl{host,ip,...}` (gauge): the TTL (hop limit) of the
--   last reply; absent until a reply came;
-- * `smokeping_send_errors_total{host,ip,...}` (counter): probes whose send
--   failed (results of status `error`);
-- * `icmprun_results_total{host,ip,...,status}` (counter): probes that ended,
--   by status: `reply`, `timeout`, `unreachable`, `ttl_exceeded`, `error`;
-- * `smokeping_response_duplicates_total{host,ip,...}` (counter): duplicate
--   replies from the target's address (`duplicates`, which the exporter
--   counts from `icmprun.duplicates()`);
-- * `smokeping_receive_errors_total` (counter, engine-wide: a damaged packet
--   matches no probe in flight, so it has no target), and `icmprun_engine_*`
--   for every engine counter of `icmprun.counters()`.
--
-- `host` is the name as the config gives it, `ip` the address probed, then
-- the group's own labels by name.
--
-- Two renderers write the same bytes: `render_pieces` in Lua (the
-- reference, and what runs without a task), and `render_bodies` in C
-- (`icmprun.render`), which the exporter's scrapes use. The latter copies
-- each target's counters into a C snapshot on the loop, a fraction of a
-- millisecond at a time, then formats (and gzips) the text in libuv's thread
-- pool: a scrape of 10,000 targets (28 MB) then holds the loop, and the
-- probes due meanwhile, for well under a millisecond at a time, where the Lua
-- renderer spends about 300 ms of the loop's time on it. The text stays in C
-- memory, in the chunks the pool wrote, until the HTTP server has sent it:
-- 28 MB a second of Lua strings would be garbage for Lua's collector.
-- @module icmprun.exporter.metrics
local prometheus = require "icmprun.report.prometheus"

local M = {}

local ipairs, pairs, setmetatable = ipairs, pairs, setmetatable
local string_format = string.format
local table_concat, table_move = table.concat, table.move
local table_sort, table_unpack = table.sort, table.unpack
local format_value, escape_label = prometheus.format_value, prometheus.escape_label

--- The statuses `icmprun_results_total` always has, in order.
M.STATUSES = { "reply", "timeout", "unreachable", "ttl_exceeded", "error" }

local Target = {}
Target.__index = Target

--- The label set of a target, as `{host="..",ip="..",k="v"` (no closing
-- brace, so that a sample may add labels); also its identity across reloads.
-- @tparam string host
-- @tparam string ip
-- @tparam table labels name -> string
-- @treturn string
function M.label_key(host, ip, labels)
  local parts = { 'host="' .. escape_label(host) .. '"', 'ip="' .. escape_label(ip) .. '"' }
  local names = {}
  for name in pairs(labels) do
    names[#names + 1] = name
  end
  table_sort(names)
  for _, name in ipairs(names) do
    parts[#parts + 1] = name .. '="' .. escape_label(labels[name]) .. '"'
  end
  return "{" .. table_concat(parts, ",")
end

-- Probers of counters only, one per bucket list, for targets made without
-- a prober of their own (tests, and reports that render a target).
local offline_probers = setmetatable({}, { __mode = "k" })

--- The counters of one target: a view of a target of an `icmprun.prober`,
-- which counts each probe in C as it is sent and ends (the exporter's
-- probes call no Lua at all). Without a prober, the target is a target of
-- counters only of a prober shared by every such target with the same
-- buckets, kept as long as the bucket list is: results are then counted
-- with `record`.
-- @tparam string key its label set, from `label_key`
-- @tparam {number,...} buckets histogram upper bounds in seconds, ascending
-- @tparam[opt] userdata prober the `icmprun.prober` counting it
-- @tparam[opt] integer id its id in that prober
-- @treturn Target
function M.new_target(key, buckets, prober, id)
  if not prober then
    prober = offline_probers[buckets]
    if not prober then
      prober = require("icmprun").prober{ buckets = buckets }
      offline_probers[buckets] = prober
    end
    id = prober:add(nil, nil, nil)
  end
  return setmetatable({ key = key, buckets = buckets, prober = prober, id = id }, Target)
end

--- Counts a probe sent (the prober counts its own sends).
function Target:on_send()
  self.prober:count_send(self.id)
end

--- Counts one result of `icmprun.ping` (the prober counts its own): the
-- counters and the status page's history.
-- @tparam table r
-- @tparam[opt] number now wall-clock seconds (default: the clock's)
function Target:record(r, now)
  self.prober:record(self.id, r, now)
end

--- A copy of the target's counters: `sent`, `results` (status -> n),
-- `counts` (replies per bucket, not cumulative; the last +Inf), `rtt_sum`
-- (seconds), `replies`, `ttl` (nil before a reply), `duplicates`; nil once
-- the target was removed from its prober.
-- @treturn table|nil
function Target:counters()
  return self.id and self.prober:stats(self.id)
end

--- The status page's history of the target (see
-- `icmprun.exporter.status`), or nil before its first result.
-- @treturn table|nil
function Target:history()
  return self.id and self.prober:history(self.id)
end

--- Adds duplicate replies from the target's address.
-- @tparam integer n
function Target:add_duplicates(n)
  self.prober:add_duplicates(self.id, n)
end

-- HELP and TYPE lines of a family, starting with the newline that ends the
-- line before.
local function header(name, kind, help)
  return "\n# HELP " .. name .. " " .. help .. "\n# TYPE " .. name .. " " .. kind
end

-- Each target's samples of a family come from one string.format call whose
-- template is only `%s%s%s%d` (or `%s` for a float) per sample: metric
-- name, the target's label set, the rest of the labels, the value. Every
-- piece of text is then an argument, copied whole; text in the template
-- itself would be copied a character at a time. One call per target and
-- family keeps a scrape of 10,000 targets (about 30 samples each) to tens of
-- thousands of C calls and as many strings.
local SAMPLE = "%s%s%s%d"

-- Targets rendered between two calls of a render's `pause`: about 2 ms of
-- work here.
local PAUSE_EVERY = 500

local REQUESTS_NAME = "\nsmokeping_requests_total"
local RESULTS_NAME = "\nicmprun_results_total"
local TTL_NAME = "\nsmokeping_response_ttl"
local SEND_ERRORS_NAME = "\nsmokeping_send_errors_total"
local DUPLICATES_NAME = "\nsmokeping_response_duplicates_total"
local RESULTS_TEMPLATE = string.rep(SAMPLE, #M.STATUSES)
local STATUS_LABELS = {}
for i, status in ipairs(M.STATUSES) do
  STATUS_LABELS[i] = ',status="' .. status .. '"} '
end

local HISTOGRAM = "smokeping_response_duration_seconds"
local BUCKET_NAME = "\n" .. HISTOGRAM .. "_bucket"
local SUM_NAME, COUNT_NAME = "\n" .. HISTOGRAM .. "_sum", "\n" .. HISTOGRAM .. "_count"

-- The `le` labels and the template of a histogram's samples, for a bucket
-- list (cached by list: the exporter has one).
local histogram_layouts = setmetatable({}, { __mode = "k" })
local function histogram_layout(buckets)
  local layout = histogram_layouts[buckets]
  if not layout then
    local les = {}
    for i, b in ipairs(buckets) do
      les[i] = ',le="' .. format_value(b) .. '"} '
    end
    les[#buckets + 1] = ',le="+Inf"} '
    layout = { les = les, template = string.rep(SAMPLE, #les) .. "%s%s%s%s" .. SAMPLE }
    histogram_layouts[buckets] = layout
  end
  return layout
end

-- The per-target families: name, type, help, and a function giving one
-- target's samples of it as one string (or nil for none). `args` is scratch
-- space for string.format's arguments, shared by all.
local args = {}

local function requests_samples(t)
  return string_format("%s%s} %d", REQUESTS_NAME, t.key, t.sent)
end

local function results_samples(t)
  local key, results, statuses = t.key, t.results, M.STATUSES
  for i = 1, #statuses do
    local k = 4 * i
    args[k - 3], args[k - 2], args[k - 1], args[k] = RESULTS_NAME, key, STATUS_LABELS[i],
      results[statuses[i]]
  end
  return string_format(RESULTS_TEMPLATE, table_unpack(args, 1, 4 * #statuses))
end

local function histogram_samples(t)
  local layout = histogram_layout(t.buckets)
  local les, key, counts, running = layout.les, t.key, t.counts, 0
  for i = 1, #les do
    running = running + counts[i]
    local k = 4 * i
    args[k - 3], args[k - 2], args[k - 1], args[k] = BUCKET_NAME, key, les[i], running
  end
  local k = 4 * #les
  args[k + 1], args[k + 2], args[k + 3], args[k + 4] = SUM_NAME, key, "} ",
    format_value(t.rtt_sum)
  args[k + 5], args[k + 6], args[k + 7], args[k + 8] = COUNT_NAME, key, "} ", t.replies
  return string_format(layout.template, table_unpack(args, 1, k + 8))
end

local function ttl_samples(t)
  return t.ttl and string_format("%s%s} %d", TTL_NAME, t.key, t.ttl)
end

local function send_errors_samples(t)
  return string_format("%s%s} %d", SEND_ERRORS_NAME, t.key, t.results.error)
end

local function duplicates_samples(t)
  return string_format("%s%s} %d", DUPLICATES_NAME, t.key, t.duplicates)
end

local TARGET_FAMILIES = {
  { "smokeping_requests_total", "counter", "Probes sent.", requests_samples },
  { "icmprun_results_total", "counter", "Probes that ended, by status.", results_samples },
  { HISTOGRAM, "histogram", "Round-trip time of the replies in seconds.", histogram_samples },
  { "smokeping_response_ttl", "gauge", "The TTL (hop limit) of the last reply.", ttl_samples },
  { "smokeping_send_errors_total", "counter", "Probes whose send failed.",
    send_errors_samples },
  { "smokeping_response_duplicates_total", "counter", "Duplicate replies: a second reply "
    .. "to a probe already answered.", duplicates_samples },
}

-- Appends the per-target families to out. Each target's samples of every
-- family are taken at once, between two pauses, so that they agree (its
-- requests, results and histogram count); they are gathered per family and
-- written family by family, as the format requires.
local function render_targets(out, targets, pause)
  local per_family = {}
  for f = 1, #TARGET_FAMILIES do
    per_family[f] = {}
  end
  for i, t in ipairs(targets) do
    -- A target removed by a reload between two pauses has no counters
    -- any more, and no series (never zeros, which would read as a reset).
    local c = t:counters()
    if c then
      c.key, c.buckets = t.key, t.buckets
      for f, family in ipairs(TARGET_FAMILIES) do
        local list = per_family[f]
        list[#list + 1] = family[4](c)
      end
    end
    if pause and i % PAUSE_EVERY == 0 then
      pause()
    end
  end
  for f, family in ipairs(TARGET_FAMILIES) do
    out[#out + 1] = header(family[1], family[2], family[3])
    table_move(per_family[f], 1, #per_family[f], #out + 1, out)
  end
end

-- Appends the engine-wide families to out.
local function render_engine(out, engine)
  local function put(piece)
    out[#out + 1] = piece
  end
  put(header("smokeping_receive_errors_total", "counter",
    "Received packets that could not be used (malformed or corrupted), engine-wide."))
  put("\nsmokeping_receive_errors_total " .. (engine.malformed or 0) + (engine.corrupted or 0))
  for _, line in ipairs(prometheus.engine_lines(engine)) do
    put("\n" .. line)
  end
end

-- The lines after the per-target families: the engine's counters and the
-- extra lines, each piece starting with a newline.
local function tail_pieces(engine, extra)
  local out = {}
  if engine then
    render_engine(out, engine)
  end
  for _, line in ipairs(extra or {}) do
    out[#out + 1] = "\n" .. line
  end
  return out
end

--- Renders the targets and engine counters as Prometheus text, in pieces:
-- their concatenation is the exposition, ending with a newline. An HTTP
-- server can write the pieces as they are, without joining megabytes.
-- @tparam {Target,...} targets in the order their series are written
-- @tparam[opt] table engine `icmprun.counters()`
-- @tparam[opt] {string,...} extra more complete lines (such as the
--   exporter's own gauges), written as they are
-- @tparam[opt] function pause called every few hundred targets, to let
--   the loop run meanwhile (such as `function() icmprun.sleep(0) end` in a
--   task): a large render then never holds up probes for long. Each target
--   is rendered whole between two pauses, so its own samples agree.
-- @treturn {string,...}
function M.render_pieces(targets, engine, extra, pause)
  local out = {}
  if #targets > 0 then
    render_targets(out, targets, pause)
  end
  local tail = tail_pieces(engine, extra)
  table_move(tail, 1, #tail, #out + 1, out)
  if #out == 0 then
    return out
  end
  -- Every piece starts with the newline that ends the line before it.
  out[1] = out[1]:sub(2)
  out[#out + 1] = "\n"
  return out
end

-- The text the C renderer writes with, for a bucket list: the same pieces
-- as the Lua renderer's above, so that the two agree byte for byte.
local c_layouts = setmetatable({}, { __mode = "k" })
local function c_layout(buckets)
  local layout = c_layouts[buckets]
  if not layout then
    local headers, error_status = {}, nil
    for f, family in ipairs(TARGET_FAMILIES) do
      headers[f] = header(family[1], family[2], family[3])
    end
    for i, status in ipairs(M.STATUSES) do
      if status == "error" then
        error_status = i
      end
    end
    layout = {
      headers = headers,
      requests_name = REQUESTS_NAME,
      results_name = RESULTS_NAME, statuses = M.STATUSES, status_labels = STATUS_LABELS,
      error_status = error_status,
      bucket_name = BUCKET_NAME, les = histogram_layout(buckets).les,
      sum_name = SUM_NAME, count_name = COUNT_NAME,
      ttl_name = TTL_NAME, send_errors_name = SEND_ERRORS_NAME,
      duplicates_name = DUPLICATES_NAME,
    }
    c_layouts[buckets] = layout
  end
  return layout
end

--- Milliseconds of the loop's time that `render_bodies` spends copying
-- targets before it lets the loop run.
M.SNAPSHOT_SLICE_MS = 0.3
-- Waits for the job's step on the background thread; raises if it failed.
local function wait_job(icmprun, job)
  while true do
    local ready, err = job:ready()
    if ready then
      return
    elseif ready == nil then
      error("render: " .. err, 0)
    end
    icmprun.sleep(1)
  end
end

--- Renders as `render_pieces` does, in C, without holding the loop (see
-- the module's text); must run in a task. Every target's `buckets` must be
-- `buckets`. A target is copied whole between two turns of the loop, so
-- that its own samples agree.
-- @tparam {Target,...} targets in the order their series are written
-- @tparam {number,...} buckets the targets' histogram bounds
-- @tparam[opt] table engine `icmprun.counters()`
-- @tparam[opt] {string,...} extra more complete lines
-- @tparam[opt] function wants returns whether a plain and whether a gzip
--   body are wanted (default: plain only); asked once the text is ready,
--   and again after each body is made, so that callers who join meanwhile
--   are counted. The gzip body is made only while the plain one has not
--   been taken: a late caller who wants gzip may get the plain body.
-- @treturn table `plain` and `gzip`: the bodies made, each a list of one
--   text of `icmprun.render` (`:size()`, `:string()`, `:close()`), which
--   `respond` serves from C memory without a copy; the caller closes them
--   once served (else they are freed when collected)
function M.render_bodies(targets, buckets, engine, extra, wants)
  local icmprun = require "icmprun"
  local render = require "icmprun.render"
  wants = wants or function() return true, false end
  local job <close> = render.new(c_layout(buckets))
  local i, n = 1, #targets
  while i <= n do
    i = job:add(targets, i, M.SNAPSHOT_SLICE_MS)
    if i <= n then
      icmprun.sleep(0)
    end
  end
  assert(job:start(table_concat(tail_pieces(engine, extra))))
  wait_job(icmprun, job)
  local bodies = {}
  while true do
    local plain, gzip = wants()
    if gzip and not bodies.gzip and not bodies.plain then
      assert(job:compress(1))
      wait_job(icmprun, job)
      bodies.gzip = { job:text("gzip") }
    elseif plain and not bodies.plain then
      bodies.plain = { job:text("plain") }
    else
      return bodies
    end
  end
end

--- Renders as `render_pieces` does, joined into one string.
-- @treturn string
function M.render(targets, engine, extra)
  return table_concat(M.render_pieces(targets, engine, extra))
end

return M
