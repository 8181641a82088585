-- SPDX-License-Identifier: MIT

--- Reads 8-bit RGB/RGBA PNG files (such as Chromium's screenshots) into
-- pixels, with lua-zlib for the inflate: enough for specs that look at
-- what a browser drew.
-- @module png_reader
local zlib = require "zlib"

local M = {}

local function paeth(a, b, c)
  local p = a + b - c
  local pa, pb, pc = math.abs(p - a), math.abs(p - b), math.abs(p - c)
  if pa <= pb and pa <= pc then return a elseif pb <= pc then return b end
  return c
end

--- Decodes a PNG: `{width, height, pixel = function(x, y) -> r, g, b}`,
-- or nil and why.
-- @tparam string data the file's bytes
function M.decode(data)
  if data:sub(1, 8) ~= "\137PNG\r\n\26\n" then return nil, "not a PNG" end
  local pos, idat = 9, {}
  local width, height, depth, ctype, interlace, _
  while pos <= #data do
    local len = string.unpack(">I4", data, pos)
    local kind = data:sub(pos + 4, pos + 7)
    local body = data:sub(pos + 8, pos + 7 + len)
    if kind == "IHDR" then
      width, height, depth, ctype, _, _, interlace = string.unpack(">I4I4BBBBB", body)
    elseif kind == "IDAT" then
      idat[#idat + 1] = body
    elseif kind == "IEND" then
      break
    end
    pos = pos + 12 + len
  end
  if depth ~= 8 or (ctype ~= 2 and ctype ~= 6) or interlace ~= 0 then
    return nil, string.format("unsupported PNG (depth %s, colour type %s, interlace %s)",
      tostring(depth), tostring(ctype), tostring(interlace))
  end
  local raw = zlib.inflate()(table.concat(idat))
  local bpp = ctype == 6 and 4 or 3
  local stride = width * bpp
  local rows = {}
  local prev = {}
  for x = 1, stride do prev[x] = 0 end
  local at = 1
  for y = 1, height do
    local filter = raw:byte(at)
    local line = { raw:byte(at + 1, at + stride) }
    at = at + 1 + stride
    for x = 1, stride do
      local a = x > bpp and line[x - bpp] or 0
      local b = prev[x]
      local c = x > bpp and prev[x - bpp] or 0
      local v = line[x]
      if filter == 1 then v = v + a
      elseif filter == 2 then v = v + b
      elseif filter == 3 then v = v + (a + b) // 2
      elseif filter == 4 then v = v + paeth(a, b, c) end
      line[x] = v & 255
    end
    rows[y] = line
    prev = line
  end
  return {
    width = width, height = height,
    pixel = function(x, y) -- 0-based
      local line = rows[y + 1]
      local i = x * bpp
      return line[i + 1], line[i + 2], line[i + 3]
    end,
  }
end

return M
