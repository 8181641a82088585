-- SPDX-License-Identifier: MIT

--- The Hilbert curve: the distance along the curve <-> the cell (x, y) of a
-- 2^order x 2^order square.
--
-- Consecutive distances stay next to each other in the square, and every
-- aligned run of 4^k distances fills a 2^k x 2^k square: so a CIDR block
-- drawn this way shows each of its sub-blocks as one compact square (xkcd
-- 195 and the IPv4 census maps draw the address space so). The functions
-- are the classic iterative ones (Wikipedia's "Hilbert curve" d2xy/xy2d).
-- @module icmprun.plot.hilbert
local M = {}

--- The cell of distance `d` on the curve of a `side` x `side` square.
-- @tparam integer side a power of two
-- @tparam integer d from 0 to side^2 - 1
-- @treturn integer x
-- @treturn integer y
function M.d2xy(side, d)
  local x, y = 0, 0
  local s = 1
  local t = d
  while s < side do
    local rx = (t // 2) & 1
    local ry = (t ~ rx) & 1
    if ry == 0 then
      if rx == 1 then
        x = s - 1 - x
        y = s - 1 - y
      end
      x, y = y, x
    end
    x = x + s * rx
    y = y + s * ry
    t = t // 4
    s = s * 2
  end
  return x, y
end

--- The distance on the curve of cell (x, y) of a `side` x `side` square.
-- @tparam integer side a power of two
-- @tparam integer x
-- @tparam integer y
-- @treturn integer
function M.xy2d(side, x, y)
  local d = 0
  local s = side // 2
  while s > 0 do
    local rx = (x & s) > 0 and 1 or 0
    local ry = (y & s) > 0 and 1 or 0
    d = d + s * s * ((3 * rx) ~ ry)
    if ry == 0 then
      if rx == 1 then
        x = side - 1 - x
        y = side - 1 - y
      end
      x, y = y, x
    end
    s = s // 2
  end
  return d
end

return M
