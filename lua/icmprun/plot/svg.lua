-- SPDX-License-Identifier: MIT

--- Small helpers to write SVG (and HTML) as text: escaping, compact numbers,
-- and a buffer of pieces joined once at the end.
--
-- Pictures are built as a list of strings and concatenated once, so a map
-- of 65,536 cells costs one allocation per piece and one join, not a
-- quadratic chain of concatenations.
-- @module icmprun.plot.svg
local M = {}

local math_floor, string_format, string_gsub = math.floor, string.format, string.gsub
local table_concat, tostring, type = table.concat, tostring, type

local ESCAPES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;",
  ["'"] = "&#39;" }

--- Escapes text for XML character data and attribute values.
-- @tparam string s
-- @treturn string
function M.escape(s)
  return (string_gsub(tostring(s), "[&<>\"']", ESCAPES))
end

--- A coordinate with at most two decimals and no trailing zeros.
-- @tparam number x
-- @treturn string
function M.num(x)
  if x == math_floor(x) and x > -1e15 and x < 1e15 then
    return string_format("%d", x)
  end
  local s = string_format("%.2f", x):gsub("0+$", ""):gsub("%.$", "")
  return s
end

local Buffer = {}
Buffer.__index = Buffer

--- A new buffer: `b:add(...)` appends pieces, `b:concat()` joins them.
function M.buffer()
  return setmetatable({ n = 0 }, Buffer)
end

--- Appends each argument (strings or numbers) as a piece.
function Buffer:add(...)
  local n = self.n
  for i = 1, select("#", ...) do
    n = n + 1
    self[n] = (select(i, ...))
  end
  self.n = n
  return self
end

--- Appends a formatted piece (`string.format`).
function Buffer:addf(fmt, ...)
  local n = self.n + 1
  self[n] = string_format(fmt, ...)
  self.n = n
  return self
end

--- The pieces joined.
function Buffer:concat()
  return table_concat(self, "", 1, self.n)
end

--- The opening tag of an SVG document of `width` x `height` pixels, with
-- the XML namespace (so that it stands alone as a file and inline in HTML).
-- @tparam number width
-- @tparam number height
-- @tparam[opt] string class
-- @treturn string
function M.open(width, height, class)
  return string_format('<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" '
    .. 'viewBox="0 0 %s %s"%s font-family="sans-serif" font-size="11">\n',
    M.num(width), M.num(height), M.num(width), M.num(height),
    type(class) == "string" and (' class="' .. M.escape(class) .. '"') or "")
end

return M
