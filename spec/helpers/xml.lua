-- SPDX-License-Identifier: MIT

--- Parses XML (SVG) with lua-expat into a small tree, for specs that
-- check the structure of pictures: a malformed document fails the parse.
-- @module xml
local lxp = require "lxp"

local M = {}

--- Parses a document: the root element `{tag, attr, children, text}`, or
-- nil and the parser's message (with line and column).
-- @tparam string text
function M.parse(text)
  local root = { children = {} }
  local stack = { root }
  local parser = lxp.new({
    StartElement = function(_, tag, attr)
      local node = { tag = tag, attr = attr, children = {}, text = "" }
      local parent = stack[#stack]
      parent.children[#parent.children + 1] = node
      node.parent = parent
      stack[#stack + 1] = node
    end,
    EndElement = function()
      stack[#stack] = nil
    end,
    CharacterData = function(_, data)
      local node = stack[#stack]
      node.text = (node.text or "") .. data
    end,
  })
  local ok, msg, line, col = parser:parse(text)
  if ok then
    ok, msg, line, col = parser:parse()
  end
  parser:close()
  if not ok then
    return nil, string.format("%s at line %s, column %s", tostring(msg), tostring(line),
      tostring(col))
  end
  return root.children[1]
end

--- Every element under `node` (itself included) for which `pred(node)` holds.
function M.find_all(node, pred, out)
  out = out or {}
  if pred(node) then
    out[#out + 1] = node
  end
  for _, child in ipairs(node.children) do
    M.find_all(child, pred, out)
  end
  return out
end

--- Whether an element has the class `name` (among space-separated classes).
function M.has_class(node, name)
  local class = node.attr and node.attr.class
  if not class then return false end
  for c in class:gmatch("%S+") do
    if c == name then return true end
  end
  return false
end

--- Every element with the class `name`.
function M.by_class(node, name)
  return M.find_all(node, function(n) return M.has_class(n, name) end)
end

--- All the text under an element.
function M.text(node)
  local parts = { node.text or "" }
  for _, child in ipairs(node.children) do
    parts[#parts + 1] = M.text(child)
  end
  return table.concat(parts)
end

return M
