-- SPDX-License-Identifier: MIT

--- SmokePing-style latency graphs from a stream of results.
--
-- Results are put into time buckets per target as they come; a bucket
-- keeps counts and a small log histogram of its RTTs (8 bins per doubling,
-- so a percentile is within about 4.4 % of the exact value), never the
-- RTTs themselves. The bucket size grows (1, 2, 10, 20 s, 1, 2, 10, 20 min,
-- 1, 2, 6, 12 h, 1 d, then doubling; from 10 ms for short runs) whenever
-- the time covered would need more than `buckets` of them, merging the
-- buckets held: memory is bounded by targets x buckets, whatever the
-- number of results.
--
-- Each target's panel draws, per bucket, the median as a short line in
-- SmokePing's loss colour, the spread of the RTTs as grey "smoke" (min to
-- max, p10 to p90, p25 to p75), a pale red column where every probe was
-- lost, and nothing where there was no probe (a gap).
--
--     local latency = require "icmprun.plot.latency"
--     local g = latency.new{ buckets = 300 }
--     for r in icmprun.sweep(...) do g:add(r) end
--     io.write(g:svg())
-- @module icmprun.plot.latency
local axis = require "icmprun.plot.axis"
local colors = require "icmprun.plot.colors"
local stats = require "icmprun.stats"
local svg = require "icmprun.plot.svg"

local M = {}

local error, ipairs, pairs, setmetatable, type = error, ipairs, pairs, setmetatable, type
local math_floor, math_huge, math_log = math.floor, math.huge, math.log
local string_format, table_sort = string.format, table.sort

local num, escape = svg.num, svg.escape

--- Histogram bins per doubling of the RTT.
M.BINS_PER_DOUBLING = 8

-- Bucket sizes in seconds; each divides the next, so buckets merge exactly.
-- (A plain comment: LDoc documents tables by their fields, and this is a list.)
M.STEPS = { 0.01, 0.02, 0.1, 0.2, 1, 2, 10, 20, 60, 120, 600, 1200, 3600, 7200, 21600,
  43200, 86400 }

--- The default most buckets per panel.
M.DEFAULT_BUCKETS = 150

local K = M.BINS_PER_DOUBLING
local LOG2 = math_log(2)

-- The histogram bin of an RTT in ms (RTTs of 0 or less share the lowest).
local function bin_of(rtt)
  if rtt <= 1e-6 then return -1000 end
  return math_floor(math_log(rtt) / LOG2 * K)
end

-- The middle of a bin in ms (geometric).
local function bin_value(bin)
  return 2 ^ ((bin + 0.5) / K)
end

local Graph = {}
Graph.__index = Graph

--- A new latency accumulator.
-- @tparam[opt] table opts
-- @tparam[opt=150] integer opts.buckets most buckets per panel (10 to 100,000)
-- @tparam[opt] number opts.step a fixed bucket size in seconds (then the
--   buckets never merge, and memory grows with the time covered)
-- @tparam[opt] function opts.clock seconds since the epoch, for results
--   without a `time` (results straight from `icmprun.sweep` or `ping`)
-- @treturn Graph
function M.new(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("latency.new: options must be a table, got " .. type(opts), 2)
  end
  opts = opts or {}
  local buckets = opts.buckets or M.DEFAULT_BUCKETS
  if math.type(buckets) ~= "integer" or buckets < 10 or buckets > 100000 then
    error("latency.new: option 'buckets' must be an integer from 10 to 100000", 2)
  end
  local step = opts.step
  if step ~= nil and (type(step) ~= "number" or step ~= step or step <= 0 or step == math_huge) then
    error("latency.new: option 'step' must be a positive number of seconds", 2)
  end
  if opts.clock ~= nil and type(opts.clock) ~= "function" then
    error("latency.new: option 'clock' must be a function", 2)
  end
  return setmetatable({
    max_buckets = buckets,
    fixed = step ~= nil,
    step = step or M.STEPS[1],
    step_index = 1,
    clock = opts.clock,
    targets = {}, -- key -> target record
    order = {}, -- keys in order of first appearance
    lo = nil, hi = nil, -- the lowest and highest bucket index in use
    results = 0,
  }, Graph)
end

-- The next bucket size after `step` and the integer ratio between them.
local function next_step(self)
  local i = self.step_index + 1
  local new = M.STEPS[i] or self.step * 2
  self.step_index = i
  return new, math_floor(new / self.step + 0.5)
end

-- Folds bucket b into bucket a.
local function merge_bucket(a, b)
  a.sent = a.sent + b.sent
  a.received = a.received + b.received
  if b.min < a.min then a.min = b.min end
  if b.max > a.max then a.max = b.max end
  local ha = a.hist
  for bin, count in pairs(b.hist) do
    ha[bin] = (ha[bin] or 0) + count
  end
end

-- Makes the buckets `ratio` times larger, merging those that now coincide.
local function coarsen(self)
  local new, ratio = next_step(self)
  for _, target in pairs(self.targets) do
    local merged = {}
    for index, bucket in pairs(target.buckets) do
      local j = index // ratio
      local into = merged[j]
      if into then
        merge_bucket(into, bucket)
      else
        merged[j] = bucket
      end
    end
    target.buckets = merged
  end
  self.step = new
  self.lo, self.hi = self.lo // ratio, self.hi // ratio
end

-- The record of a target, created on first use.
local function target_of(self, key, r)
  local target = self.targets[key]
  if not target then
    local label = key
    local name = r.target
    if type(name) == "string" and name ~= key and not name:find("/", 1, true)
        and not name:find("-", 1, true) then
      label = name .. " (" .. key .. ")"
    end
    target = { key = key, label = label, buckets = {}, stats = stats.new() }
    self.targets[key] = target
    self.order[#self.order + 1] = key
  end
  return target
end

-- The scratch result handed to Stats:add (which wants `rtt`, not `rtt_ms`).
local scratch = {}

--- Adds one result: a result line decoded from JSON (`addr`, `status`,
-- `rtt_ms`, `time`) or a result table from `icmprun` (`rtt`, and no
-- `time`: the clock given to `new` says when).
-- @tparam table r
function Graph:add(r)
  if type(r) ~= "table" then
    error("latency:add: result table expected, got " .. type(r), 2)
  end
  local status = r.status
  if type(status) ~= "string" then
    error("latency:add: result has no status", 2)
  end
  local key = r.addr
  if type(key) ~= "string" then key = r.target end
  if type(key) ~= "string" then
    error("latency:add: result has neither addr nor target", 2)
  end
  local t = r.time
  if type(t) ~= "number" then
    if not self.clock then
      error("latency:add: result has no time", 2)
    end
    t = self.clock()
  end
  -- Unix seconds up to the year 5138: beyond, bucket indices stop being
  -- exact integers.
  if t ~= t or t < 0 or t > 1e11 then
    error("latency:add: result time is out of range (Unix seconds)", 2)
  end
  local rtt
  if status == "reply" then
    rtt = r.rtt_ms
    if type(rtt) ~= "number" then rtt = r.rtt end
    if type(rtt) ~= "number" or rtt ~= rtt or rtt < 0 or rtt == math_huge then
      error("latency:add: reply has no valid rtt", 2)
    end
  end
  local target = target_of(self, key, r)
  local index = math_floor(t / self.step)
  if not self.fixed then
    local lo = self.lo and (index < self.lo and index or self.lo) or index
    local hi = self.hi and (index > self.hi and index or self.hi) or index
    self.lo, self.hi = lo, hi
    while self.hi - self.lo + 1 > self.max_buckets do
      coarsen(self)
      index = math_floor(t / self.step)
    end
  else
    if not self.lo or index < self.lo then self.lo = index end
    if not self.hi or index > self.hi then self.hi = index end
  end
  local bucket = target.buckets[index]
  if not bucket then
    bucket = { sent = 0, received = 0, min = math_huge, max = -math_huge, hist = {} }
    target.buckets[index] = bucket
  end
  bucket.sent = bucket.sent + 1
  scratch.status, scratch.rtt = status, rtt
  target.stats:add(scratch)
  if rtt then
    bucket.received = bucket.received + 1
    if rtt < bucket.min then bucket.min = rtt end
    if rtt > bucket.max then bucket.max = rtt end
    local bin = bin_of(rtt)
    local hist = bucket.hist
    hist[bin] = (hist[bin] or 0) + 1
  end
  self.results = self.results + 1
end

-- The RTTs at the given ranks (fractions 0..1) of a bucket's histogram,
-- nearest rank, each clamped to the bucket's exact min and max.
local function quantiles(bucket, fractions)
  local bins = {}
  for bin in pairs(bucket.hist) do
    bins[#bins + 1] = bin
  end
  table_sort(bins)
  local n = bucket.received
  local out = {}
  local i, seen = 1, 0
  for q, f in ipairs(fractions) do
    local rank = math.max(1, math.ceil(f * n - 1e-9))
    while seen + bucket.hist[bins[i]] < rank do
      seen = seen + bucket.hist[bins[i]]
      i = i + 1
    end
    local v = bin_value(bins[i])
    if v < bucket.min then v = bucket.min end
    if v > bucket.max then v = bucket.max end
    out[q] = v
  end
  out[1], out[#fractions] = bucket.min, bucket.max
  return out
end

local FRACTIONS = { 0, 0.10, 0.25, 0.50, 0.75, 0.90, 1 }

--- The finished model: `{step, t0, t1, panels = {...}}`, panels in the
-- order the targets first appeared, each `{key, label, stats, buckets}`
-- with buckets sorted by time, each `{t, sent, received, loss_pct, q}`
-- (`q` = min, p10, p25, p50, p75, p90, max in ms; nil without replies).
-- @tparam[opt] string only the key (address) of the one target to keep
-- @treturn table
function Graph:model(only)
  local model = { step = self.step, panels = {}, results = self.results }
  if self.lo then
    model.t0 = self.lo * self.step
    model.t1 = (self.hi + 1) * self.step
  end
  for _, key in ipairs(self.order) do
    if only == nil or key == only then
      local target = self.targets[key]
      local indices = {}
      for index in pairs(target.buckets) do
        indices[#indices + 1] = index
      end
      table_sort(indices)
      local buckets = {}
      for i, index in ipairs(indices) do
        local b = target.buckets[index]
        buckets[i] = {
          t = index * self.step, sent = b.sent, received = b.received,
          loss_pct = (b.sent - b.received) * 100 / b.sent,
          q = b.received > 0 and quantiles(b, FRACTIONS) or nil,
        }
      end
      model.panels[#model.panels + 1] = { key = key, label = target.label,
        stats = target.stats, buckets = buckets }
    end
  end
  return model
end

--- Sizes of a panel, in pixels.
M.LAYOUT = { width = 800, left = 62, right = 18, top = 26, plot = 170, axis = 34, legend = 40 }

--- The height of one panel with its title, axis and legend.
function M.panel_height(layout)
  layout = layout or M.LAYOUT
  return layout.top + layout.plot + layout.axis + layout.legend
end

-- The step path of one band (upper edge left to right, lower edge back)
-- over a run of buckets that all have replies.
local function band_path(run, lo_q, hi_q, x_of, y_of, step)
  local top, bottom = {}, {}
  for _, b in ipairs(run) do
    local x0, x1 = num(x_of(b.t)), num(x_of(b.t + step))
    top[#top + 1] = string_format("%s %s H%s", #top == 0 and "M" .. x0 or "L" .. x0,
      num(y_of(b.q[hi_q])), x1)
  end
  for i = #run, 1, -1 do
    local b = run[i]
    local x0, x1 = num(x_of(b.t)), num(x_of(b.t + step))
    bottom[#bottom + 1] = string_format("L%s %s H%s", x1, num(y_of(b.q[lo_q])), x0)
  end
  return table.concat(top, " ") .. " " .. table.concat(bottom, " ") .. " Z"
end

-- The runs of consecutive buckets with replies (a gap or a bucket without
-- replies ends a run).
local function runs_of(buckets, step)
  local runs, run, last_t = {}, nil, nil
  for _, b in ipairs(buckets) do
    local adjacent = last_t and math.abs(b.t - last_t - step) < step * 1e-6
    if b.q and run and adjacent then
      run[#run + 1] = b
    elseif b.q then
      run = { b }
      runs[#runs + 1] = run
    else
      run = nil
    end
    last_t = b.t
  end
  return runs
end

local function fmt_ms(x)
  if x == nil then return "-" end
  return string_format("%.3g ms", x)
end

--- The SVG group (`<g class="panel">`) of one panel, at vertical offset `y`.
-- @tparam table panel from `model().panels`
-- @tparam table model the model (time range and bucket size)
-- @tparam[opt=0] number y
-- @tparam[opt] table opts `layout` (see `LAYOUT`), `rtt_max` (ms: the
--   top of the RTT axis; by default it covers every RTT drawn)
-- @treturn string
function M.panel_svg(panel, model, y, opts)
  opts = opts or {}
  local L = opts.layout or M.LAYOUT
  local b = svg.buffer()
  local pw = L.width - L.left - L.right
  local ph = L.plot
  local px, py = L.left, L.top
  local t0, t1 = model.t0 or 0, model.t1 or 1
  local span = t1 - t0
  local step = model.step
  -- The RTT axis covers every RTT drawn, unless a few outliers would
  -- squash the rest: when the largest max is over twice the largest p90,
  -- it covers the p90s and the smoke above is cut at the top (SmokePing
  -- too scales to the bulk of the data, not to its worst ping).
  local max_rtt, max_p90 = 0, 0
  for _, bucket in ipairs(panel.buckets) do
    if bucket.q and bucket.q[7] > max_rtt then max_rtt = bucket.q[7] end
    if bucket.q and bucket.q[6] > max_p90 then max_p90 = bucket.q[6] end
  end
  local cover = max_rtt
  if max_rtt > 2 * max_p90 then cover = max_p90 end
  local _, top, ticks = axis.nice(opts.rtt_max or cover)
  local function x_of(t) return px + (t - t0) / span * pw end
  local function y_of(v)
    if v > top then v = top end
    return py + ph - v / top * ph
  end
  local s = panel.stats
  b:addf('<g class="panel" data-target="%s" data-rtt-top="%s" data-rtt-max="%s" '
    .. 'data-t0="%s" data-t1="%s" transform="translate(0,%s)">\n', escape(panel.key), num(top),
    num(max_rtt), num(t0), num(t1), num(y or 0))
  b:addf('<text class="title" x="%s" y="17" font-size="13" font-weight="bold">%s</text>\n',
    px, escape(panel.label))
  b:addf('<rect class="plot-area" x="%s" y="%s" width="%s" height="%s" fill="#ffffff" '
    .. 'stroke="#888888"/>\n', px, py, pw, ph)
  if max_rtt > top then
    b:addf('<text class="cut" x="%s" y="17" text-anchor="end">smoke cut at %s ms '
      .. '(max %.3g ms)</text>\n', px + pw, axis.label(top), max_rtt)
  end
  -- RTT ticks and grid.
  for _, v in ipairs(ticks) do
    local ty = num(y_of(v))
    b:addf('<line class="grid" x1="%s" x2="%s" y1="%s" y2="%s" stroke="#eeeeee"/>'
      .. '<text class="ytick" data-value="%s" x="%s" y="%s" text-anchor="end" '
      .. 'dominant-baseline="middle">%s</text>\n', px, px + pw, ty, ty, num(v), px - 4, ty,
      axis.label(v))
  end
  b:addf('<text class="ylabel" transform="translate(14,%s) rotate(-90)" text-anchor="middle">'
    .. 'RTT (ms)</text>\n', num(py + ph / 2))
  -- Time ticks.
  local tticks = axis.time_ticks(t0, t1, math.max(2, pw // 90))
  for _, tick in ipairs(tticks) do
    local tx = num(x_of(tick.t))
    b:addf('<line class="grid" x1="%s" x2="%s" y1="%s" y2="%s" stroke="#eeeeee"/>'
      .. '<text class="xtick" data-t="%s" x="%s" y="%s" text-anchor="middle">%s</text>\n',
      tx, tx, py, py + ph, num(tick.t), tx, py + ph + 13, tick.label)
  end
  b:addf('<text class="xlabel" x="%s" y="%s" text-anchor="middle">time (UTC) from %s'
    .. '</text>\n', num(px + pw / 2), py + ph + 27, os.date("!%Y-%m-%d %H:%M:%S",
      math_floor(t0)))
  -- Total loss: a pale column, so it is not mistaken for missing data.
  for _, bucket in ipairs(panel.buckets) do
    if bucket.received == 0 then
      local x0 = x_of(bucket.t)
      b:addf('<rect class="loss-total" x="%s" y="%s" width="%s" height="%s" fill="#ffd0d0"/>\n',
        num(x0), py, num(x_of(bucket.t + step) - x0), ph)
    end
  end
  -- Smoke, outermost band first.
  local runs = runs_of(panel.buckets, step)
  local bands = { { 1, 7 }, { 2, 6 }, { 3, 5 } }
  for i, band in ipairs(bands) do
    for _, run in ipairs(runs) do
      b:addf('<path class="smoke" data-band="%d" fill="%s" d="%s"/>\n', i, colors.SMOKE[i],
        band_path(run, band[1], band[2], x_of, y_of, step))
    end
  end
  -- Medians, coloured by loss.
  for _, bucket in ipairs(panel.buckets) do
    if bucket.q then
      local x0, x1 = x_of(bucket.t), x_of(bucket.t + step)
      local my = num(y_of(bucket.q[4]))
      b:addf('<path class="median" data-loss="%s" data-rtt="%s" stroke="%s" stroke-width="2" '
        .. 'd="M%s %sH%s"/>\n', num(bucket.loss_pct), num(bucket.q[4]),
        colors.loss(bucket.loss_pct), num(x0), my, num(x1 > x0 + 1 and x1 or x0 + 1))
    end
  end
  -- Legend: the loss colours, the smoke, and this target's figures.
  local ly = py + ph + L.axis + 6
  b:addf('<g class="legend" transform="translate(%s,%s)">\n', px, ly)
  b:add('<text x="0" y="9">loss:</text>\n')
  local lx = 34
  for _, row in ipairs(colors.LOSS) do
    b:addf('<g class="legend-entry" data-loss-max="%s"><rect x="%s" y="0" width="10" '
      .. 'height="10" fill="%s"/><text x="%s" y="9">%s</text></g>\n', num(row.max), lx,
      row.color, lx + 13, escape(row.label))
    lx = lx + 13 + 7 * utf8.len(row.label) + 12
  end
  b:addf('<g class="legend-entry" data-smoke="1"><rect x="%s" y="0" width="10" height="10" '
    .. 'fill="%s"/><text x="%s" y="9">smoke: min-max, p10-p90, p25-p75</text></g>\n', lx,
    colors.SMOKE[2], lx + 13)
  local min, avg, max, mdev = s:summary()
  b:addf('<text class="figures" x="0" y="25">loss %.2f %% (%d/%d)   median %s   avg %s   '
    .. 'min %s   max %s   mdev %s   bucket %s</text>\n', s:loss(), s.sent - s.received,
    s.sent, fmt_ms(s:percentile(50)), fmt_ms(avg), fmt_ms(min), fmt_ms(max), fmt_ms(mdev),
    axis.duration(step))
  b:add("</g>\n</g>\n")
  return b:concat()
end

--- One SVG document of every panel of the model, stacked.
-- @tparam table model from `Graph:model`
-- @tparam[opt] table opts as `panel_svg`'s
-- @treturn string
function M.svg(model, opts)
  local L = (opts and opts.layout) or M.LAYOUT
  local h = M.panel_height(L)
  local n = #model.panels
  local b = svg.buffer()
  b:add(svg.open(L.width, math.max(1, n) * h, "icmprun-latency"))
  b:add('<rect width="100%" height="100%" fill="#fafafa"/>\n')
  if n == 0 then
    b:addf('<text x="20" y="40">no results</text>\n')
  end
  for i, panel in ipairs(model.panels) do
    b:add(M.panel_svg(panel, model, (i - 1) * h, opts))
  end
  b:add("</svg>\n")
  return b:concat()
end

--- One standalone SVG document per panel (for HTML pages).
-- @treturn {string,...}
function M.panel_documents(model, opts)
  local L = (opts and opts.layout) or M.LAYOUT
  local docs = {}
  for i, panel in ipairs(model.panels) do
    docs[i] = svg.open(L.width, M.panel_height(L), "icmprun-latency")
      .. M.panel_svg(panel, model, 0, opts) .. "</svg>\n"
  end
  return docs
end

--- The SVG of everything added so far (see `svg`).
function Graph:svg(opts)
  return M.svg(self:model(opts and opts.target), opts)
end

M.quantiles = quantiles

return M
