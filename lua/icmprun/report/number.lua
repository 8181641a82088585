-- SPDX-License-Identifier: MIT

--- Numbers as text for the report formats: the shortest form that reads
-- back to the same value, so that a consumer sees the RTT icmprun measured,
-- and nothing longer. Shared by the CSV, JSON lines and Prometheus writers,
-- which differ only in how they spell the values that are not finite.
-- @module icmprun.report.number
local M = {}

local tonumber = tonumber
local math_huge, math_type = math.huge, math.type
local string_format = string.format

--- Whether x is a finite number (not NaN, not an infinity).
-- @tparam number x
-- @treturn boolean
function M.is_finite(x)
  return x == x and x ~= math_huge and x ~= -math_huge
end

--- Formats a finite number: an integer as it is, a float in the shortest of
-- 15, 16 or 17 significant digits that reads back the same.
-- @tparam number x finite
-- @treturn string
function M.shortest(x)
  if math_type(x) == "integer" then
    return string_format("%d", x)
  end
  for precision = 15, 16 do
    local s = string_format("%." .. precision .. "g", x)
    if tonumber(s) == x then
      return s
    end
  end
  return string_format("%.17g", x)
end

return M
