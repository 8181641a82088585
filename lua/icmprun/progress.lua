-- SPDX-License-Identifier: MIT

--- A progress display for long runs: done/total, rate and ETA on one line,
-- or, as a live view (`view = true`), that line plus the replies and other
-- results so far and a small text histogram of the RTTs (fed by `result`).
--
-- It redraws in place ("\r", and ANSI cursor-up for the view's lines) at
-- most every `interval` seconds, and only when its stream is a terminal
-- (unless told otherwise), so output piped to a file or read by a test
-- stays clean. `finish` clears what it drew.
--
--     local progress = require "icmprun.progress"
--     local p = progress.new{ total = 65536 }
--     for r in icmprun.sweep("10.0.0.0/16") do p:tick() ... end
--     p:finish()
-- @module icmprun.progress
local duration = require "icmprun.duration"

local M = {}

local error, pcall, require, setmetatable, type = error, pcall, require, setmetatable, type
local io_stderr, io_stdout = io.stderr, io.stdout
local math_floor, math_huge, math_log = math.floor, math.huge, math.log
local os_clock, os_execute = os.clock, os.execute
local string_format, string_rep = string.format, string.rep
local table_concat = table.concat

--- The default clock, in seconds: icmprun's monotonic `now()` (which counts
-- milliseconds) when the icmprun module can be loaded, else `os.clock`
-- (processor time: a poor stand-in, only for plain Lua).
-- @treturn function
function M.default_clock()
  local ok, icmprun = pcall(require, "icmprun")
  if ok and type(icmprun) == "table" and type(icmprun.now) == "function" then
    local now = icmprun.now
    return function()
      return now() / 1000
    end
  end
  return os_clock
end

--- Whether a stream is a terminal: asks `test -t` about stdout and stderr
-- (one shell run); any other stream counts as not a terminal.
-- @param stream
-- @treturn boolean
function M.is_terminal(stream)
  local fd
  if stream == io_stderr then
    fd = 2
  elseif stream == io_stdout then
    fd = 1
  else
    return false
  end
  return os_execute("test -t " .. fd) == true
end

--- Formats a duration in seconds as `S s`, `M:SS` or `H:MM:SS`.
-- @tparam number seconds
-- @treturn string
function M.format_duration(seconds)
  if seconds ~= seconds or seconds == math_huge or seconds < 0 then
    return "?"
  end
  local s = math_floor(seconds + 0.5)
  if s < 60 then
    return s .. "s"
  elseif s < 3600 then
    return string_format("%d:%02d", s // 60, s % 60)
  end
  return string_format("%d:%02d:%02d", s // 3600, s // 60 % 60, s % 60)
end

--- Formats a rate with k/M suffixes above ten thousand.
-- @tparam number rate per second
-- @treturn string
function M.format_rate(rate)
  if rate ~= rate or rate == math_huge then
    return "?"
  elseif rate >= 1e7 then
    return string_format("%.0fM", rate / 1e6)
  elseif rate >= 1e4 then
    return string_format("%.0fk", rate / 1e3)
  elseif rate >= 100 then
    return string_format("%.0f", rate)
  end
  return string_format("%.1f", rate)
end

local Progress = {}
Progress.__index = Progress

--- A new progress display.
-- @tparam[opt] table opts
-- @tparam[opt] integer opts.total the count at which the work is done (no
--   total: no ETA)
-- @param[opt=io.stderr] opts.stream where to draw (anything with `write`)
-- @tparam[opt] boolean opts.enabled draw or not; nil: only when `stream` is
--   a terminal (checked once, here)
-- @tparam[opt=0.2] number|string opts.interval seconds between redraws, or
--   a duration with a unit (`"250ms"`)
-- @tparam[opt] function opts.clock returns seconds (`default_clock()`)
-- @tparam[opt] string opts.label a prefix such as "sweep"
-- @tparam[opt] boolean opts.view draw the live view (several lines) rather
--   than one line
-- @treturn Progress
function M.new(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("progress.new: options must be a table, got " .. type(opts), 2)
  end
  opts = opts or {}
  if opts.total ~= nil and (type(opts.total) ~= "number" or opts.total < 0) then
    error("progress.new: option 'total' must be a number >= 0", 2)
  end
  local interval = duration.parse(opts.interval or 0.2, "s")
  if type(interval) ~= "number" or interval ~= interval or interval < 0 then
    error("progress.new: option 'interval' must be a number of seconds >= 0, or a "
      .. "duration with a unit (us, ms, s, m, h)", 2)
  end
  if opts.clock ~= nil and type(opts.clock) ~= "function" then
    error("progress.new: option 'clock' must be a function", 2)
  end
  local stream = opts.stream or io_stderr
  local enabled = opts.enabled
  if enabled == nil then
    enabled = M.is_terminal(stream)
  end
  local self = setmetatable({
    total = opts.total,
    stream = stream,
    enabled = enabled and true or false,
    interval = interval,
    label = opts.label,
    done = 0,
    width = 0, -- the length of the line on screen, to blank it out
    finished = false,
    view = opts.view and true or false,
    lines = 0, -- lines of the view on screen (the cursor is on the last)
    by_status = {}, -- status -> results, for the view
    replies = 0,
    histogram = {}, -- RTT bin -> replies (HISTOGRAM_BINS bins a doubling)
  }, Progress)
  if self.enabled then
    self.clock = opts.clock or M.default_clock()
    self.started = self.clock()
  end
  return self
end

--- The text of the line for `done` after `elapsed` seconds (without "\r").
-- @treturn string
function Progress:line(done, elapsed)
  local rate = elapsed > 0 and done / elapsed or 0
  local text
  if self.total then
    local pct = self.total > 0 and done * 100 / self.total or 100
    text = string_format("%d/%d (%d%%)  %s/s", done, self.total, math_floor(pct), M.format_rate(rate))
    if done >= self.total then
      text = text .. "  ETA 0s"
    elseif rate > 0 then
      text = text .. "  ETA " .. M.format_duration((self.total - done) / rate)
    else
      text = text .. "  ETA ?"
    end
  else
    text = string_format("%d  %s/s", done, M.format_rate(rate))
  end
  if self.label then
    text = self.label .. ": " .. text
  end
  return text
end

--- Lines of the RTT histogram in the view, at most.
M.HISTOGRAM_ROWS = 8

--- Width of the histogram's longest bar, in characters.
M.HISTOGRAM_WIDTH = 40

-- The bin of an RTT in ms: one per doubling, bin 0 from 0.01 to 0.02 ms.
local function rtt_bin(rtt)
  if rtt <= 0.01 then return 0 end
  return math_floor(math_log(rtt / 0.01, 2))
end

local function bin_label(bin)
  return string_format("%15s ms", string_format("%.3g-%.3g", 0.01 * 2 ^ bin, 0.01 * 2 ^ (bin + 1)))
end

--- The lines of the live view (without escapes): the progress line, the
-- counts of results, and the RTT histogram (the `HISTOGRAM_ROWS` bins that
-- hold the most replies' range, from the lowest bin with any).
-- @treturn {string,...}
function Progress:view_lines(done, elapsed)
  local lines = { self:line(done, elapsed) }
  local other = {}
  for status, n in pairs(self.by_status) do
    if status ~= "reply" then
      other[#other + 1] = string_format("%s %d", status, n)
    end
  end
  table.sort(other)
  lines[2] = string_format("replies %d%s", self.replies,
    #other > 0 and ("  " .. table_concat(other, "  ")) or "")
  local lo, hi
  for bin in pairs(self.histogram) do
    if not lo or bin < lo then lo = bin end
    if not hi or bin > hi then hi = bin end
  end
  if lo then
    local folded = hi - lo + 1 > M.HISTOGRAM_ROWS
    if folded then
      lo = hi - M.HISTOGRAM_ROWS + 1 -- the slowest rows; faster replies fold into the first
    end
    local counts, most = {}, 0
    for bin, n in pairs(self.histogram) do
      local row = bin < lo and lo or bin
      counts[row] = (counts[row] or 0) + n
    end
    for bin = lo, hi do
      if (counts[bin] or 0) > most then most = counts[bin] end
    end
    for bin = lo, hi do
      local n = counts[bin] or 0
      local bar = most > 0 and math_floor(n * M.HISTOGRAM_WIDTH / most + 0.5) or 0
      if n > 0 and bar == 0 then bar = 1 end
      local label = (folded and bin == lo)
        and string_format("%15s ms", string_format("<%.3g", 0.01 * 2 ^ (lo + 1))) or bin_label(bin)
      lines[#lines + 1] = string_format("%s |%s %d", label, string_rep("#", bar), n)
    end
  end
  return lines
end

-- Moves the cursor to the start of the view's first line.
local function to_top(self)
  if self.lines > 1 then
    return "\r\27[" .. (self.lines - 1) .. "A"
  end
  return "\r"
end

-- Draws the line (or the view) now, blanking what is left of a longer
-- previous one.
local function draw(self, now)
  if self.view then
    local lines = self:view_lines(self.done, now - self.started)
    local out = { to_top(self) }
    for i, text in ipairs(lines) do
      out[#out + 1] = (i > 1 and "\n" or "") .. text .. "\27[K"
    end
    -- Lines left over from a taller previous view are cleared.
    out[#out + 1] = "\27[J"
    self.stream:write(table_concat(out))
    self.lines = #lines
    self.width = 1
  else
    local text = self:line(self.done, now - self.started)
    local pad = self.width > #text and string_rep(" ", self.width - #text) or ""
    self.stream:write("\r", text, pad)
    self.width = #text
  end
  if self.stream.flush then
    self.stream:flush()
  end
  self.drawn_at = now
end

--- Sets the count done (and optionally a new total); redraws if `interval`
-- has passed since the last redraw. Silent when disabled or finished.
-- @tparam number done
-- @tparam[opt] number total
function Progress:update(done, total)
  if type(done) ~= "number" then
    error("progress:update: number expected, got " .. type(done), 2)
  end
  self.done = done
  if total ~= nil then
    self.total = total
  end
  if not self.enabled or self.finished then
    return
  end
  local now = self.clock()
  if self.drawn_at == nil or now - self.drawn_at >= self.interval then
    draw(self, now)
  end
end

--- Counts one result (a table with `status` and, for a reply, `rtt` or
-- `rtt_ms`) for the view, and adds one to the count done, as `tick` does.
-- @tparam table r
function Progress:result(r)
  if not self.enabled then
    self.done = self.done + 1
    return
  end
  local status = r.status
  self.by_status[status] = (self.by_status[status] or 0) + 1
  if status == "reply" then
    self.replies = self.replies + 1
    local rtt = r.rtt or r.rtt_ms
    if type(rtt) == "number" then
      local bin = rtt_bin(rtt)
      self.histogram[bin] = (self.histogram[bin] or 0) + 1
    end
  end
  self:update(self.done + 1)
end

--- Adds `n` (default 1) to the count done, as `update` does.
-- @tparam[opt=1] number n
function Progress:tick(n)
  self:update(self.done + (n or 1))
end

-- Blanks the line (or the view) on screen, leaving the cursor at its start.
local function blank(self)
  if self.enabled and self.width > 0 then
    if self.view then
      self.stream:write(to_top(self), "\27[J")
      self.lines = 0
    else
      self.stream:write("\r", string_rep(" ", self.width), "\r")
    end
    if self.stream.flush then
      self.stream:flush()
    end
    self.width = 0
  end
end

--- Blanks the line for now, so that other output to the same terminal (a
-- line on stdout, say) does not land in the middle of it; the next redraw,
-- still at most every `interval`, draws it again.
function Progress:clear()
  if not self.finished then
    blank(self)
  end
end

--- Clears the line (the display leaves nothing behind); later updates are
-- silent.
function Progress:finish()
  if self.finished then
    return
  end
  self.finished = true
  blank(self)
end

return M
