-- SPDX-License-Identifier: MIT

--- Axis ticks: "nice" RTT ticks (1, 2, 5 times a power of ten) and time
-- ticks on round wall-clock steps, with their labels.
-- @module icmprun.plot.axis
local M = {}

local math_ceil, math_floor, math_log = math.ceil, math.floor, math.log
local os_date, string_format = os.date, string.format

--- Ticks from 0 covering `max`: the tick step, the top of the axis (a
-- multiple of the step, at least `max`) and the tick values.
-- @tparam number max the largest value to show (> 0; else 1 is used)
-- @tparam[opt=5] integer wanted about how many intervals
-- @treturn number step
-- @treturn number top
-- @treturn {number,...} ticks, 0 first
function M.nice(max, wanted)
  wanted = wanted or 5
  if max ~= max or max <= 0 or max == math.huge then
    max = 1
  end
  local raw = max / wanted
  local magnitude = 10 ^ math_floor(math_log(raw, 10))
  local step = magnitude * 10
  for _, f in ipairs({ 1, 2, 2.5, 5, 10 }) do
    if f * magnitude >= raw then
      step = f * magnitude
      break
    end
  end
  local n = math_ceil(max / step - 1e-9)
  if n < 1 then n = 1 end
  local ticks = {}
  for i = 0, n do
    ticks[#ticks + 1] = i * step
  end
  return step, n * step, ticks
end

--- A tick value as a short label ("0", "0.25", "12").
function M.label(value)
  local s = string_format("%.6g", value)
  return s
end

-- Time steps in seconds that read well on a clock.
local TIME_STEPS = {
  1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
  43200, 86400, 172800, 604800, 1209600, 2592000,
}

--- Time ticks between `t0` and `t1` (Unix seconds, UTC): at most `max`
-- ticks on a round step, each `{t = seconds, label = text}`.
-- @tparam number t0
-- @tparam number t1
-- @tparam[opt=8] integer max
-- @treturn table ticks
-- @treturn number the step in seconds
function M.time_ticks(t0, t1, max)
  max = max or 8
  local span = t1 - t0
  if span ~= span or span <= 0 then span = 1 end
  local step = TIME_STEPS[#TIME_STEPS]
  for _, s in ipairs(TIME_STEPS) do
    if span / s <= max then
      step = s
      break
    end
  end
  local fmt
  if step < 60 then
    fmt = "!%H:%M:%S"
  elseif step < 86400 then
    fmt = "!%H:%M"
  else
    fmt = "!%m-%d"
  end
  local ticks = {}
  local t = math_ceil(t0 / step) * step
  while t <= t1 + 1e-9 do
    ticks[#ticks + 1] = { t = t, label = os_date(fmt, math_floor(t)) }
    t = t + step
  end
  return ticks, step
end

--- A duration in seconds as text ("20 ms", "2 s", "5 min", "1 h", "1 d").
-- @tparam number seconds
-- @treturn string
function M.duration(seconds)
  if seconds < 1 then
    return string_format("%g ms", seconds * 1000)
  elseif seconds < 60 then
    return string_format("%g s", seconds)
  elseif seconds < 3600 then
    return string_format("%g min", seconds / 60)
  elseif seconds < 86400 then
    return string_format("%g h", seconds / 3600)
  end
  return string_format("%g d", seconds / 86400)
end

return M
