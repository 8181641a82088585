--- A one-line progress display for long runs: done/total, rate and ETA.
--
-- It redraws in place ("\r") at most every `interval` seconds, and only when
-- its stream is a terminal (unless told otherwise), so output piped to a file
-- or read by a test stays clean. `finish` clears the line.
--
--     local progress = require "icmprun.progress"
--     local p = progress.new{ total = 65536 }
--     for r in icmprun.sweep("10.0.0.0/16") do p:tick() ... end
--     p:finish()
-- @module icmprun.progress
local M = {}

local error, pcall, require, setmetatable, type = error, pcall, require, setmetatable, type
local io_stderr, io_stdout = io.stderr, io.stdout
local math_floor, math_huge = math.floor, math.huge
local os_clock, os_execute = os.clock, os.execute
local string_format, string_rep = string.format, string.rep

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
-- @tparam[opt=0.2] number opts.interval seconds between redraws
-- @tparam[opt] function opts.clock returns seconds (`default_clock()`)
-- @tparam[opt] string opts.label a prefix such as "sweep"
-- @treturn Progress
function M.new(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("progress.new: options must be a table, got " .. type(opts), 2)
  end
  opts = opts or {}
  if opts.total ~= nil and (type(opts.total) ~= "number" or opts.total < 0) then
    error("progress.new: option 'total' must be a number >= 0", 2)
  end
  local interval = opts.interval or 0.2
  if type(interval) ~= "number" or interval < 0 then
    error("progress.new: option 'interval' must be a number of seconds >= 0", 2)
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

-- Draws the line now, blanking what is left of a longer previous one.
local function draw(self, now)
  local text = self:line(self.done, now - self.started)
  local pad = self.width > #text and string_rep(" ", self.width - #text) or ""
  self.stream:write("\r", text, pad)
  if self.stream.flush then
    self.stream:flush()
  end
  self.width = #text
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

--- Adds `n` (default 1) to the count done, as `update` does.
-- @tparam[opt=1] number n
function Progress:tick(n)
  self:update(self.done + (n or 1))
end

-- Blanks the line on screen, leaving the cursor at its start.
local function blank(self)
  if self.enabled and self.width > 0 then
    self.stream:write("\r", string_rep(" ", self.width), "\r")
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
