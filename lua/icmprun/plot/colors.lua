-- SPDX-License-Identifier: MIT

--- The colours of the pictures: SmokePing's loss colours, the status
-- colours of maps, and a perceptual scale (viridis) for RTTs.
-- @module icmprun.plot.colors
local M = {}

local math_floor, string_format = math.floor, string.format

--- SmokePing's default loss colours (Smokeping.pm, `%lc` for 20 pings):
-- a step's median is drawn in the colour of the first row whose `max`
-- (lost pings out of 20, here in percent) is at least the step's loss.
-- SmokePing has no colour for 20/20 (no median is left to draw); the
-- last row here takes every loss above 50 %.
M.LOSS = {
  { max = 0, color = "#26ff00", label = "0" },
  { max = 5, color = "#00b8ff", label = "\u{2264}5%" },
  { max = 10, color = "#0059ff", label = "\u{2264}10%" },
  { max = 15, color = "#5e00ff", label = "\u{2264}15%" },
  { max = 20, color = "#7e00ff", label = "\u{2264}20%" },
  { max = 50, color = "#dd00ff", label = "\u{2264}50%" },
  { max = 100, color = "#ff0000", label = ">50%" },
}

--- The loss colour of a loss in percent.
-- @tparam number pct from 0 to 100
-- @treturn string "#rrggbb"
function M.loss(pct)
  local rows = M.LOSS
  for i = 1, #rows do
    if pct <= rows[i].max + 1e-9 then
      return rows[i].color
    end
  end
  return rows[#rows].color
end

--- The grey levels of the smoke, outermost band first: min..max,
-- p10..p90, p25..p75 (SmokePing draws each ping's rank in a grey whose
-- darkness grows towards the median; three bands keep the file small).
M.SMOKE = { "#e4e4e4", "#c4c4c4", "#9a9a9a" }

--- The colour of each result status on a map, and of cells without data.
M.STATUS = {
  reply = "#1a9850",
  timeout = "#3b3b3b",
  unreachable = "#d73027",
  ttl_exceeded = "#fdae61",
  error = "#984ea3",
  none = "#f2f2f2",
}

--- The order of the statuses in a map's legend.
M.STATUS_ORDER = { "reply", "timeout", "unreachable", "ttl_exceeded", "error", "none" }

-- Viridis (matplotlib's perceptually uniform map), sampled at 9 points.
local VIRIDIS = {
  { 68, 1, 84 }, { 71, 44, 122 }, { 59, 81, 139 }, { 44, 113, 142 }, { 33, 144, 141 },
  { 39, 173, 129 }, { 92, 200, 99 }, { 170, 220, 50 }, { 253, 231, 37 },
}

--- The viridis colour at `t` in [0, 1] (clamped), interpolated linearly.
-- @tparam number t
-- @treturn string "#rrggbb"
function M.viridis(t)
  if t ~= t or t < 0 then t = 0 elseif t > 1 then t = 1 end
  local pos = t * (#VIRIDIS - 1)
  local i = math_floor(pos)
  if i >= #VIRIDIS - 1 then i = #VIRIDIS - 2 end
  local f = pos - i
  local a, b = VIRIDIS[i + 1], VIRIDIS[i + 2]
  return string_format("#%02x%02x%02x", math_floor(a[1] + (b[1] - a[1]) * f + 0.5),
    math_floor(a[2] + (b[2] - a[2]) * f + 0.5), math_floor(a[3] + (b[3] - a[3]) * f + 0.5))
end

return M
