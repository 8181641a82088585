-- SPDX-License-Identifier: MIT

--- The exporter's status page (`GET /`): each target's last hours as a
-- small SmokePing-style graph, with its current loss and median, from a
-- bounded history kept in memory. `/metrics` stays the source of truth;
-- this is a glance for a person.
--
-- History: a ring of `SLOTS` one-minute slots per target (3 hours). The
-- slot being filled keeps its RTTs (at most `RESERVOIR`, a uniform sample
-- beyond that); when the minute ends they become seven quantiles (min,
-- p10, p25, median, p75, p90, max), each stored as a 16-bit logarithm (0.03 %
-- apart), with the probes sent and answered. The exporter's prober keeps it
-- in C with the target's counters (src/prober_stats.c): `SLOTS` x 18 bytes
-- (3,240 bytes) of ring, and the open slot's RTTs as 4-byte floats (60 at
-- one probe a second), about 3.5 KB a target (`spec/exporter_status_spec.lua`
-- measures it); the page reads it with `target:history()`.
--
-- The page shows `PER_PAGE` targets at a time (`/?page=N`), so a page of
-- 10,000 targets renders only the graphs it shows; it reloads itself every
-- `REFRESH` seconds, and fetches nothing (inline SVG, a policy that forbids
-- fetches).
-- @module icmprun.exporter.status
local html = require "icmprun.plot.html"
local latency = require "icmprun.plot.latency"
local svg = require "icmprun.plot.svg"

local M = {}

local ipairs, math_floor, math_huge, math_log = ipairs, math.floor, math.huge, math.log
local string_format, string_unpack = string.format, string.unpack
local table_sort, tonumber = table.sort, tonumber
local escape = svg.escape

--- Seconds a slot covers.
M.SLOT_SECONDS = 60
--- Slots a ring keeps (3 hours of minutes).
M.SLOTS = 180
--- Most RTTs the open slot keeps (a uniform sample beyond).
M.RESERVOIR = 256
--- Targets per page.
M.PER_PAGE = 50
--- Seconds between the page's reloads.
M.REFRESH = 30

-- One slot: sent, received (16 bits each, saturating), seven quantiles.
local SLOT_FORMAT = "<I2I2I2I2I2I2I2I2I2"
local SLOT_BYTES = string.packsize(SLOT_FORMAT)

--- Bytes of one target's ring.
M.RING_BYTES = SLOT_BYTES * M.SLOTS

-- RTTs as 16-bit logarithms: 2048 steps a doubling from 100 ns (1e-4 ms),
-- so 0.034 % apart, up to 2^32 x 100 ns (over 7 minutes: any timeout). The
-- prober encodes them in C (src/prober_stats.c) as `encode` does.
local LOG_STEPS = 2048
local LOG_BASE = 1e-4
local function encode(ms)
  if ms <= LOG_BASE then return 1 end
  local v = math_floor(math_log(ms / LOG_BASE, 2) * LOG_STEPS + 0.5) + 1
  return v > 65535 and 65535 or v
end
local function decode(v)
  return LOG_BASE * 2 ^ ((v - 1) / LOG_STEPS)
end

local FRACTIONS = { 0, 0.10, 0.25, 0.50, 0.75, 0.90, 1 }

-- The seven quantiles (nearest rank) of a list of RTTs, sorted in place.
local function quantiles(rtts)
  table_sort(rtts)
  local n = #rtts
  local q = {}
  for i, f in ipairs(FRACTIONS) do
    local rank = math.max(1, math.ceil(f * n - 1e-9))
    q[i] = rtts[rank]
  end
  return q
end

--- Records one result of a target: its counters and its history (kept in
-- C by the target's prober, see `metrics.new_target`; the exporter's own
-- probes are recorded there without this call).
-- @tparam table target the exporter's target
-- @tparam table r the result of `icmprun.ping`
-- @tparam number now wall-clock seconds
function M.record(target, r, now)
  target:record(r, now)
end

-- The buckets of a target's history for `latency.panel_svg`, oldest first,
-- covering the slots from `first` to `last` (the open one included).
local function buckets_of(h, first, last)
  local buckets = {}
  for slot = first, last do
    local b
    if slot == h.slot then
      if h.sent > 0 then
        local q = h.rtts[1] and quantiles({ table.unpack(h.rtts) }) or nil
        b = { sent = h.sent, received = h.received, q = q }
      end
    elseif slot < h.slot and slot > h.slot - M.SLOTS then
      local at = (slot % M.SLOTS) * SLOT_BYTES + 1
      local sent, received, q1, q2, q3, q4, q5, q6, q7 = string_unpack(SLOT_FORMAT, h.ring, at)
      if sent > 0 then
        b = { sent = sent, received = received }
        if q1 > 0 then
          b.q = { decode(q1), decode(q2), decode(q3), decode(q4), decode(q5), decode(q6),
            decode(q7) }
        end
      end
    end
    if b then
      b.t = slot * M.SLOT_SECONDS
      b.loss_pct = (b.sent - b.received) * 100 / b.sent
      buckets[#buckets + 1] = b
    end
  end
  return buckets
end

-- A Stats-like summary of buckets for the panel's figures line.
local function summary_of(buckets)
  local sent, received, min, max, sum = 0, 0, math_huge, -math_huge, 0
  for _, b in ipairs(buckets) do
    sent, received = sent + b.sent, received + b.received
    if b.q then
      if b.q[1] < min then min = b.q[1] end
      if b.q[7] > max then max = b.q[7] end
      sum = sum + b.q[4] * b.received
    end
  end
  local s = { sent = sent, received = received }
  function s.loss() return sent > 0 and (sent - received) * 100 / sent or 0 end
  function s.summary()
    if received == 0 then return nil end
    return min, sum / received, max, nil
  end
  -- The median of the bucket medians, each weighing its replies.
  function s.percentile()
    local medians = {}
    for _, b in ipairs(buckets) do
      if b.q then medians[#medians + 1] = { b.q[4], b.received } end
    end
    table_sort(medians, function(x, y) return x[1] < y[1] end)
    local half, seen = received / 2, 0
    for _, m in ipairs(medians) do
      seen = seen + m[2]
      if seen >= half then return m[1] end
    end
    return nil
  end
  return s
end

-- The host and ip of a target's label key.
local function names_of(target)
  local key = target.key or ""
  local host = key:match('host="([^"]*)"') or key
  local ip = key:match('ip="([^"]*)"') or target.ip or ""
  return host, ip
end

--- The compact layout of the page's graphs (the left margin holds tick
-- labels such as "0.0125" clear of the axis title).
M.LAYOUT = { width = 700, left = 74, right = 12, top = 22, plot = 100, axis = 32, legend = 36 }

-- The current figures of a target: the open minute, or the last closed
-- one when the open one has no probe yet.
local function current(buckets)
  local b = buckets[#buckets]
  if not b then return nil end
  return b
end

--- The page: a table of the page's targets (current loss and median, loss
-- over the hours shown) and a graph each. `query` may hold `page=N`.
-- @param exporter the exporter (its `order` of targets)
-- @tparam[opt] string query the request's query string
-- @tparam[opt] string metrics_path
-- @tparam[opt] number now wall-clock seconds
-- @treturn string HTML
function M.page(exporter, query, metrics_path, now)
  now = now or os.time()
  local targets = exporter.order or {}
  local pages = math.max(1, (#targets + M.PER_PAGE - 1) // M.PER_PAGE)
  local page = tonumber((query or ""):match("page=(%d+)")) or 1
  if page < 1 then page = 1 elseif page > pages then page = pages end
  local last = math_floor(now / M.SLOT_SECONDS)
  local first = last - M.SLOTS + 1
  local model = { step = M.SLOT_SECONDS, t0 = first * M.SLOT_SECONDS,
    t1 = (last + 1) * M.SLOT_SECONDS }
  local b = svg.buffer()
  b:addf('<h1>icmprun exporter</h1>\n<p class="note">%d targets; the last %d hours in '
    .. 'one-minute buckets, from memory (%d bytes of history a target). The numbers of record '
    .. 'are the <a href="%s">metrics</a>. This page reloads every %d s.</p>\n', #targets,
    M.SLOTS * M.SLOT_SECONDS // 3600, M.RING_BYTES, escape(metrics_path or "/metrics"),
    M.REFRESH)
  local nav = svg.buffer()
  if pages > 1 then
    nav:addf('<nav class="pages">page %d of %d: ', page, pages)
    if page > 1 then nav:addf('<a href="?page=%d">previous</a>', page - 1) end
    if page < pages then nav:addf('<a href="?page=%d">next</a>', page + 1) end
    nav:add("</nav>\n")
  end
  b:add(nav:concat())
  local lo, hi = (page - 1) * M.PER_PAGE + 1, math.min(#targets, page * M.PER_PAGE)
  local rows, figures = svg.buffer(), svg.buffer()
  for i = lo, hi do
    local target = targets[i]
    local host, ip = names_of(target)
    local h = target:history()
    local buckets = h and buckets_of(h, first, last) or {}
    local now_b = current(buckets)
    local s = summary_of(buckets)
    rows:addf('<tr class="target" data-target="%s"><td>%s</td><td>%s</td>', escape(ip),
      escape(host), escape(ip))
    local function cell(v, fmt)
      if v == nil then return '<td data-value="">-</td>' end
      return string_format('<td data-value="%.10g">%s</td>', v, string_format(fmt, v))
    end
    rows:add(cell(now_b and now_b.loss_pct, "%.1f"),
      cell(now_b and now_b.q and now_b.q[4], "%.3f"), cell(s.sent, "%d"),
      cell(s.sent > 0 and s.loss() or nil, "%.2f"), "</tr>\n")
    local label = host == ip and host or (host .. " (" .. ip .. ")")
    local panel = { key = ip, label = label, stats = s, buckets = buckets }
    figures:addf('<div class="figure" id="target-%d">%s%s</svg></div>\n', i,
      svg.open(M.LAYOUT.width, latency.panel_height(M.LAYOUT), "icmprun-latency"),
      latency.panel_svg(panel, model, 0, { layout = M.LAYOUT }))
  end
  b:add('<table class="stats"><thead><tr><th>host</th><th>ip</th><th>loss % (this minute)'
    .. '</th><th>median ms (this minute)</th><th>probes shown</th><th>loss % shown</th></tr>'
    .. '</thead>\n<tbody>\n', rows:concat(), "</tbody></table>\n", figures:concat(),
    nav:concat())
  return html.page("icmprun exporter", b:concat(), { refresh = M.REFRESH })
end

M.encode, M.decode = encode, decode

return M
