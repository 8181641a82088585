-- SPDX-License-Identifier: MIT

--- Durations as people type them: `250us`, `500ms`, `2s`, `1.5m`, `1h`, or
-- a bare number in the unit the caller has always used. One reading for
-- every command line (`icmprun.cli.duration_in`) and for the Lua library's
-- options (`icmprun.trace`); the C binding reads `timeout` and `interval`
-- of `ping` and `sweep` the same way.
-- @module icmprun.duration
local M = {}

local tonumber, type = tonumber, type

--- Milliseconds in each unit a duration may carry.
M.UNITS = { us = 0.001, ms = 1, s = 1000, m = 60000, h = 3600000 }

--- Reads a duration into `unit`: a number is already in `unit`; a string is
-- a plain decimal number (no sign, no hex, no `inf`), optionally followed
-- by one of `M.UNITS`, with spaces allowed around both. A bare number in a
-- string is in `unit`.
-- @tparam number|string value
-- @tparam string unit a key of `M.UNITS`: of a bare number and of the result
-- @treturn ?number the duration in `unit`, or nil when `value` is not one
function M.parse(value, unit)
  local scale = M.UNITS[unit]
  if not scale then
    error("duration.parse: unit must be one of us, ms, s, m, h, got " .. tostring(unit), 2)
  end
  if type(value) == "number" then
    return value
  elseif type(value) ~= "string" then
    return nil
  end
  local text, suffix = value:match("^%s*(%d*%.?%d*[eE]?[+-]?%d*)%s*(%a*)%s*$")
  if not text or not text:find("^%.?%d") then
    return nil
  end
  local x = tonumber(text)
  if x and suffix ~= "" then
    local factor = M.UNITS[suffix]
    x = factor and x * factor / scale
  end
  return x
end

return M
