-- SPDX-License-Identifier: MIT

--- A map of a swept block on a Hilbert curve, from a stream of results.
--
-- The block's addresses follow a Hilbert curve over a square (a /16 is
-- 256 x 256, a /24 16 x 16; an odd number of host bits gives a 2:1
-- rectangle), so every aligned sub-block is a compact square (a /24 of a
-- /16 is a 16 x 16 square). A square larger than `size` cells a side is
-- downsampled: each cell then holds an aligned run of 4^k addresses (a /8
-- at 256 x 256 cells has 256 addresses a cell). Memory is the cells
-- (a few numbers each), whatever the number of results: results stream
-- through `add` and are never kept.
--
-- A cell's status is `reply` if any result in it was a reply, else the
-- most frequent other status; with `color = "rtt"` a cell with replies is
-- coloured by their mean RTT on viridis (log scale when the RTTs span more
-- than a factor of ten).
-- @module icmprun.plot.map
local address = require "icmprun.plot.address"
local colors = require "icmprun.plot.colors"
local hilbert = require "icmprun.plot.hilbert"
local svg = require "icmprun.plot.svg"

local M = {}

local error, ipairs, setmetatable, type = error, ipairs, setmetatable, type
local math_huge, math_log = math.huge, math.log
local string_format = string.format

local num, escape = svg.num, svg.escape

--- The statuses a cell counts, besides replies.
local OTHERS = { "timeout", "unreachable", "ttl_exceeded", "error" }

--- The largest `size` (cells a side) a map may have.
M.MAX_SIZE = 1024

local Map = {}
Map.__index = Map

-- Sets up the cells for a parsed prefix.
local function layout(self, prefix)
  local bits = prefix.bits
  local order = (bits + 1) // 2 -- the curve's side is 2^order
  local cell_order = order
  while (1 << cell_order) > self.size do
    cell_order = cell_order - 1
  end
  local shift = 2 * (order - cell_order) -- address bits folded into one cell
  self.prefix = prefix
  self.shift = shift
  self.side = 1 << cell_order -- the curve's side in cells
  self.cells = 1 << (bits - shift)
  self.odd = bits % 2 == 1 -- only half the square is used: drawn as side x side/2
  self.cols = self.side
  self.rows = self.odd and self.side // 2 or self.side
  if self.rows < 1 then self.rows = 1 end
  local replies, results, rtt = {}, {}, {}
  for c = 0, self.cells - 1 do
    replies[c], results[c], rtt[c] = 0, 0, 0
  end
  self.replies, self.results, self.rtt_sum = replies, results, rtt
  self.other = {} -- status -> {cell -> count}, filled as needed
  for _, status in ipairs(OTHERS) do
    self.other[status] = {}
  end
end

--- A new map.
-- @tparam[opt] table opts
-- @tparam[opt] string opts.prefix the block ("127.0.0.0/16"); by default the
--   `target` of the first result, when it is a CIDR block
-- @tparam[opt=256] integer opts.size most cells a side (a power of two, 1 to 1024)
-- @tparam[opt="status"] string opts.color `"status"` or `"rtt"`
-- @treturn[1] Map
-- @return[2] nil, message (a prefix that cannot be mapped)
function M.new(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("map.new: options must be a table, got " .. type(opts), 2)
  end
  opts = opts or {}
  local size = opts.size or 256
  if math.type(size) ~= "integer" or size < 1 or size > M.MAX_SIZE or size & (size - 1) ~= 0 then
    error("map.new: option 'size' must be a power of two from 1 to " .. M.MAX_SIZE, 2)
  end
  local color = opts.color or "status"
  if color ~= "status" and color ~= "rtt" then
    error("map.new: option 'color' must be \"status\" or \"rtt\"", 2)
  end
  local self = setmetatable({ size = size, color = color, total = 0, outside = 0,
    reply_results = 0 }, Map)
  if opts.prefix ~= nil then
    local prefix, err = address.prefix(opts.prefix)
    if not prefix then
      return nil, err
    end
    layout(self, prefix)
  end
  return self
end

--- Adds one result (`addr`, `status`, and `rtt_ms` or `rtt` for a reply).
-- Results outside the prefix are counted (`outside`) and not drawn.
-- @tparam table r
-- @treturn[1] true
-- @return[2] nil, message: no prefix was given and the first result's
--   target is not a CIDR block
function Map:add(r)
  if type(r) ~= "table" then
    error("map:add: result table expected, got " .. type(r), 2)
  end
  if not self.prefix then
    local target = r.target
    local prefix = type(target) == "string" and target:find("/", 1, true)
      and address.prefix(target)
    if not prefix then
      return nil, "no prefix to map: the first result's target is not a CIDR block "
        .. "(give the prefix)"
    end
    layout(self, prefix)
  end
  self.total = self.total + 1
  local off = address.offset(self.prefix, r.addr)
  if not off then
    self.outside = self.outside + 1
    return true
  end
  local c = off >> self.shift
  self.results[c] = self.results[c] + 1
  local status = r.status
  if status == "reply" then
    local rtt = r.rtt_ms
    if type(rtt) ~= "number" then rtt = r.rtt end
    self.replies[c] = self.replies[c] + 1
    self.reply_results = self.reply_results + 1
    if type(rtt) == "number" and rtt == rtt and rtt ~= math_huge then
      self.rtt_sum[c] = self.rtt_sum[c] + rtt
    end
  else
    local counts = self.other[status] or self.other.error
    counts[c] = (counts[c] or 0) + 1
  end
  return true
end

-- The status that colours cell c ("none" without results).
local function cell_status(self, c)
  if self.replies[c] > 0 then return "reply" end
  if self.results[c] == 0 then return "none" end
  local best, best_count = "error", 0
  for _, status in ipairs(OTHERS) do
    local n = self.other[status][c]
    if n and n > best_count then
      best, best_count = status, n
    end
  end
  return best
end

-- The drawn position (col, row) -> the cell index.
local function cell_at(self, col, row)
  if self.odd then
    return hilbert.xy2d(self.side, row, col)
  end
  return hilbert.xy2d(self.side, col, row)
end

-- The range of the mean RTTs of the cells with replies, and the scale.
local function rtt_scale(self)
  local lo, hi = math_huge, -math_huge
  for c = 0, self.cells - 1 do
    local n = self.replies[c]
    if n > 0 then
      local mean = self.rtt_sum[c] / n
      if mean < lo then lo = mean end
      if mean > hi then hi = mean end
    end
  end
  if lo > hi then return nil end
  local log = lo > 0 and hi / lo > 10
  local function t_of(v)
    if hi <= lo then return 0.5 end
    if log then return math_log(v / lo) / math_log(hi / lo) end
    return (v - lo) / (hi - lo)
  end
  return { lo = lo, hi = hi, log = log, t_of = t_of }
end

--- The colour of every drawn cell, row by row, and the legend's counts:
-- calls `fn(col, row, color, status)` for each cell.
local function each_cell(self, fn)
  local scale = self.color == "rtt" and rtt_scale(self) or nil
  for row = 0, self.rows - 1 do
    for col = 0, self.cols - 1 do
      local c = cell_at(self, col, row)
      local status = cell_status(self, c)
      local color
      if status == "reply" and scale then
        -- 32 levels: the eye tells no more apart, and equal neighbours
        -- merge into one run (a smaller file).
        local t = scale.t_of(self.rtt_sum[c] / self.replies[c])
        color = colors.viridis(math.floor(t * 31 + 0.5) / 31)
      elseif status == "reply" and self.color == "rtt" then
        color = colors.viridis(0.5)
      elseif self.color == "rtt" and status ~= "none" then
        color = colors.STATUS.timeout
      else
        color = colors.STATUS[status]
      end
      fn(col, row, color, status)
    end
  end
  return scale
end

-- The sub-prefix drawn as a grid: about 16 x 16 blocks, each a square
-- (an even number of host bits) of at least one cell. nil when too small.
local function grid_bits(self)
  local bits = self.prefix.bits
  if bits < 6 then return nil end
  local bb = bits - 8
  if bb % 2 == 1 then bb = bb + 1 end
  if bb < 2 then bb = 2 end
  if bb < self.shift then bb = self.shift end
  if bb >= bits then return nil end
  return bb
end

local function thousands(n)
  local s = string_format("%d", n)
  return (s:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", ""))
end

--- The SVG of the map: the cells (runs of equal colour along each row,
-- `class="cells"`, one cell = one unit scaled to pixels), the grid of
-- sub-blocks, a title and a legend.
-- @treturn string
function Map:svg()
  if not self.prefix then
    error("map:svg: nothing was added and no prefix was given", 2)
  end
  local scale_px = math.max(1, 512 // self.cols)
  local w, h = self.cols * scale_px, self.rows * scale_px
  local top, left = 44, 10
  local legend_w = 190
  local b = svg.buffer()
  local width, height = left + w + 20 + legend_w, math.max(top + h + 30, top + 200)
  b:add(svg.open(width, height, "icmprun-map"))
  b:add('<rect width="100%" height="100%" fill="#fafafa"/>\n')
  local prefix = self.prefix
  local per_cell = 1 << self.shift
  b:addf('<text class="title" x="%d" y="18" font-size="14" font-weight="bold">%s</text>\n',
    left, escape(prefix.text))
  local gb = grid_bits(self)
  b:addf('<text class="subtitle" x="%d" y="34">%s addresses, %dx%d cells, %s address%s a '
    .. 'cell, Hilbert curve%s</text>\n', left, thousands(1 << prefix.bits), self.cols, self.rows,
    thousands(per_cell), per_cell == 1 and "" or "es",
    gb and string_format(", grid: /%d blocks", prefix.len + prefix.bits - gb) or "")
  b:addf('<g class="cells" data-cols="%d" data-rows="%d" data-addresses-per-cell="%d" '
    .. 'transform="translate(%d,%d) scale(%d)" shape-rendering="crispEdges">\n', self.cols,
    self.rows, per_cell, left, top, scale_px)
  local counts = {}
  local run_start, run_color, run_row
  local function flush(end_col)
    if run_color then
      b:addf('<rect class="cell-run" x="%d" y="%d" width="%d" height="1" fill="%s"/>\n',
        run_start, run_row, end_col - run_start, run_color)
    end
  end
  local scale = each_cell(self, function(col, row, color, status)
    counts[status] = (counts[status] or 0) + 1
    if row ~= run_row or color ~= run_color then
      flush(row ~= run_row and self.cols or col)
      run_start, run_color, run_row = col, color, row
    end
  end)
  flush(self.cols)
  b:add("</g>\n")
  -- The grid of sub-blocks: aligned runs of 4^k addresses are squares.
  if gb then
    local block = (1 << ((gb - self.shift) // 2)) * scale_px
    b:addf('<g class="grid" stroke="#ffffff" stroke-opacity="0.7" stroke-width="1" '
      .. 'data-prefix-len="%d">\n', prefix.len + prefix.bits - gb)
    for x = block, w - 1, block do
      b:addf('<line x1="%s" x2="%s" y1="%d" y2="%d"/>\n', num(left + x), num(left + x), top,
        top + h)
    end
    for y = block, h - 1, block do
      b:addf('<line x1="%d" x2="%d" y1="%s" y2="%s"/>\n', left, left + w, num(top + y),
        num(top + y))
    end
    b:add("</g>\n")
  end
  b:addf('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888888"/>\n',
    left, top, w, h)
  -- Legend.
  local lx, ly = left + w + 20, top
  b:addf('<g class="legend" transform="translate(%d,%d)">\n', lx, ly)
  local y = 0
  if self.color == "rtt" then
    b:add('<text x="0" y="9">mean RTT of replies</text>\n')
    y = 16
    if scale then
      for i = 0, 9 do
        b:addf('<rect class="legend-scale" x="%d" y="%d" width="16" height="12" fill="%s"/>\n',
          i * 16, y, colors.viridis(i / 9))
      end
      local function value_at(t)
        if scale.log then return scale.lo * (scale.hi / scale.lo) ^ t end
        return scale.lo + (scale.hi - scale.lo) * t
      end
      for _, t in ipairs({ 0, 0.5, 1 }) do
        b:addf('<text class="legend-tick" x="%s" y="%d" text-anchor="%s">%.3g</text>\n',
          num(t * 160), y + 24, t == 0 and "start" or t == 1 and "end" or "middle", value_at(t))
      end
      b:addf('<text x="0" y="%d">ms%s</text>\n', y + 38, scale.log and " (log scale)" or "")
    end
    y = y + 50
  end
  -- In RTT colours every cell without replies is one "no reply" entry.
  local entries = {}
  if self.color == "rtt" then
    local no_reply = self.rows * self.cols - (counts.reply or 0) - (counts.none or 0)
    entries[1] = { "no_reply", colors.STATUS.timeout, "no reply", no_reply }
  else
    for _, status in ipairs(colors.STATUS_ORDER) do
      if status ~= "none" then
        entries[#entries + 1] = { status, colors.STATUS[status], status, counts[status] or 0 }
      end
    end
  end
  entries[#entries + 1] = { "none", colors.STATUS.none, "no result", counts.none or 0 }
  for _, e in ipairs(entries) do
    b:addf('<g class="legend-entry" data-status="%s" data-cells="%d"><rect x="0" y="%d" '
      .. 'width="12" height="12" fill="%s" stroke="#999999"/><text x="18" y="%d">%s '
      .. '(%s cells)</text></g>\n', e[1], e[4], y, e[2], y + 10, e[3], thousands(e[4]))
    y = y + 18
  end
  b:addf('<text class="figures" x="0" y="%d">%s results, %s replies</text>\n', y + 14,
    thousands(self.total), thousands(self.reply_results))
  if self.outside > 0 then
    b:addf('<text class="figures" x="0" y="%d">%s outside %s (not drawn)</text>\n', y + 30,
      thousands(self.outside), escape(prefix.text))
  end
  b:add("</g>\n</svg>\n")
  return b:concat()
end

--- The side, in cells, of the grid's blocks (nil without a grid).
function Map:grid_block()
  local gb = grid_bits(self)
  return gb and 1 << ((gb - self.shift) // 2) or nil
end

--- The RGB pixels of the map, one per cell, row by row: calls
-- `fn(row, bytes)` with each row's `cols * 3` bytes (for PNG writers).
function Map:rows_rgb(fn)
  local row_bytes, current = {}, 0
  each_cell(self, function(col, row, color)
    if row ~= current then
      fn(current, table.concat(row_bytes))
      row_bytes, current = {}, row
    end
    row_bytes[col + 1] = string.char(tonumber(color:sub(2, 3), 16), tonumber(color:sub(4, 5), 16),
      tonumber(color:sub(6, 7), 16))
  end)
  fn(current, table.concat(row_bytes))
end

M.OTHERS = OTHERS

return M
