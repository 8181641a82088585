-- SPDX-License-Identifier: MIT

--- PNG images of maps through lua-zlib (Debian's `lua-zlib`, a thin binding
-- of zlib): the format's chunks are a few lines; zlib does the deflate and
-- the CRC. Without lua-zlib, `available()` says why and `map` returns nil.
-- @module icmprun.plot.png
local M = {}

local pcall, require = pcall, require
local string_pack, string_rep, table_concat = string.pack, string.rep, table.concat

local ok, zlib = pcall(require, "zlib")

--- Whether PNG can be written: true, or false and why not.
function M.available()
  if ok and type(zlib) == "table" and zlib.deflate and zlib.crc32 then
    return true
  end
  return false, "PNG needs lua-zlib (Debian: apt-get install lua-zlib)"
end

-- One chunk: length, type, data, CRC of type and data.
local function chunk(kind, data)
  return string_pack(">I4", #data) .. kind .. data .. string_pack(">I4", zlib.crc32()(kind .. data))
end

--- The PNG of a map: one `scale` x `scale` square of pixels per cell, the
-- grid of sub-blocks in white, 8-bit RGB. Rows are compressed as they are
-- made.
-- @param map a map from `icmprun.plot.map` with results added
-- @treturn[1] string the PNG file's bytes
-- @return[2] nil, message
function M.map(map)
  local usable, why = M.available()
  if not usable then
    return nil, why
  end
  local scale = math.max(1, 512 // map.cols)
  local width, height = map.cols * scale, map.rows * scale
  local block = map:grid_block() -- cells a side of a grid block, or nil
  local deflate = zlib.deflate(9)
  local parts = {}
  local white = "\255\255\255"
  map:rows_rgb(function(row, rgb)
    local pixels = {}
    for col = 0, map.cols - 1 do
      local px = rgb:sub(col * 3 + 1, col * 3 + 3)
      local cell = string_rep(px, scale)
      if block and col > 0 and col % block == 0 then
        cell = white .. cell:sub(4)
      end
      pixels[col + 1] = cell
    end
    local line = "\0" .. table_concat(pixels)
    local grid_line = "\0" .. string_rep(white, width)
    for i = 0, scale - 1 do
      local on_grid = block and row > 0 and row % block == 0 and i == 0
      parts[#parts + 1] = deflate(on_grid and grid_line or line)
    end
  end)
  parts[#parts + 1] = deflate("", "finish")
  return "\137PNG\r\n\26\n"
    .. chunk("IHDR", string_pack(">I4I4BBBBB", width, height, 8, 2, 0, 0, 0))
    .. chunk("IDAT", table_concat(parts))
    .. chunk("IEND", "")
end

return M
