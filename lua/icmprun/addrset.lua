-- SPDX-License-Identifier: MIT

--- Sets of IPv4 and IPv6 addresses as sorted, merged intervals, for sweeps
-- that must skip some blocks (a blocklist) or keep to some (an allowlist).
--
-- Lists are read in zmap's format: one CIDR block or address per line,
-- `#` starting a comment. A sweep's targets (addresses, CIDR blocks,
-- ranges) are cut by a set into the ranges that remain, which the sweep
-- expands lazily as it does any range, so a /8 less a few blocks costs a
-- few ranges, never a list of addresses.
--
--     local addrset = require "icmprun.addrset"
--     local blocked = assert(addrset.read("blocklist.conf"))
--     local kept, skipped = addrset.cut({ "10.0.0.0/8" }, nil, blocked)
--
-- Addresses are big-endian byte strings (4 bytes for IPv4, 16 for IPv6),
-- compared as strings: icmprun never changes the C locale, in which Lua
-- compares strings byte by byte.
-- @module icmprun.addrset
local M = {}

local ipairs, tonumber, type = ipairs, tonumber, type
local setmetatable = setmetatable
local string_byte, string_char, string_format = string.byte, string.char, string.format
local table_concat, table_sort = table.concat, table.sort

--- Parses a numeric IPv4 or IPv6 address (no scope, no name).
-- @tparam string text
-- @treturn ?string the address as 4 or 16 big-endian bytes, nil if not one
function M.parse(text)
  local a, b, c, d = text:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if a then
    a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
    if a > 255 or b > 255 or c > 255 or d > 255 then
      return nil
    end
    return string_char(a, b, c, d)
  end
  if not text:find(":", 1, true) or text:find("[^%x:.]") then
    return nil
  end
  -- A trailing dotted quad stands for the last two groups.
  local tail = ""
  local head, quad = text:match("^(.*:)(%d+%.%d+%.%d+%.%d+)$")
  if head then
    tail = M.parse(quad)
    if not tail then
      return nil
    end
    text = head .. "0:0"
  end
  local left, right = text:match("^(.-)::(.*)$")
  local function groups(part)
    local out = {}
    if part == "" then
      return out
    end
    for g in (part .. ":"):gmatch("([^:]*):") do
      if #g < 1 or #g > 4 then
        return nil
      end
      out[#out + 1] = tonumber(g, 16)
    end
    return out
  end
  local all
  if left then
    local l, r = groups(left), groups(right)
    if not l or not r or #l + #r > 7 then
      return nil
    end
    all = l
    for _ = 1, 8 - #l - #r do
      all[#all + 1] = 0
    end
    for _, g in ipairs(r) do
      all[#all + 1] = g
    end
  else
    all = groups(text)
    if not all or #all ~= 8 then
      return nil
    end
  end
  local bytes = {}
  for i, g in ipairs(all) do
    bytes[2 * i - 1], bytes[2 * i] = g >> 8, g & 0xff
  end
  local addr = string_char(table.unpack(bytes))
  return tail == "" and addr or addr:sub(1, 12) .. tail
end

--- The text of an address: dotted quad, or eight hex groups for IPv6.
-- @tparam string addr 4 or 16 bytes
-- @treturn string
function M.format(addr)
  if #addr == 4 then
    return string_format("%d.%d.%d.%d", string_byte(addr, 1, 4))
  end
  local groups = {}
  for i = 1, 16, 2 do
    local hi, lo = string_byte(addr, i, i + 1)
    groups[#groups + 1] = string_format("%x", hi * 256 + lo)
  end
  return table_concat(groups, ":")
end

-- The address after (step 1) or before (step -1) addr, or nil past the end.
local function step(addr, delta)
  local bytes = { string_byte(addr, 1, -1) }
  local edge = delta > 0 and 255 or 0
  for i = #bytes, 1, -1 do
    if bytes[i] ~= edge then
      bytes[i] = bytes[i] + delta
      return string_char(table.unpack(bytes))
    end
    bytes[i] = 255 - edge
  end
  return nil
end

--- The first and last address of a CIDR block ("10.0.0.0/8", "2001:db8::/32").
-- @tparam string text
-- @treturn[1] string first
-- @treturn[1] string last
-- @treturn[2] nil when `text` is not a CIDR block
function M.block(text)
  local base, bits = text:match("^([^/]+)/(%d+)$")
  local addr = base and M.parse(base)
  bits = tonumber(bits)
  if not addr or bits > #addr * 8 then
    return nil
  end
  local first, last = {}, {}
  for i = 1, #addr do
    local keep = bits - (i - 1) * 8
    local mask = keep >= 8 and 0xff or keep <= 0 and 0 or (0xff << (8 - keep)) & 0xff
    local byte = string_byte(addr, i)
    first[i] = byte & mask
    last[i] = (byte & mask) | (~mask & 0xff)
  end
  return string_char(table.unpack(first)), string_char(table.unpack(last))
end

--- The interval of a target: an address, a CIDR block or a range "a-b";
-- nil for anything else (a name).
-- @tparam string text
-- @treturn ?string first
-- @treturn ?string last
function M.interval(text)
  local addr = M.parse(text)
  if addr then
    return addr, addr
  end
  if text:find("/", 1, true) then
    return M.block(text)
  end
  local a, b = text:match("^([^-]+)%-([^-]+)$")
  a, b = a and M.parse(a), b and M.parse(b)
  if a and b and #a == #b and a <= b then
    return a, b
  end
  return nil
end

local Set = {}
Set.__index = Set

--- A set from a list of intervals {first, last}, sorted and merged.
-- @tparam[opt] {{string,string},...} intervals
function M.new(intervals)
  local list = {}
  for _, iv in ipairs(intervals or {}) do
    list[#list + 1] = { iv[1], iv[2] }
  end
  table_sort(list, function(x, y)
    if #x[1] ~= #y[1] then
      return #x[1] < #y[1]
    end
    return x[1] < y[1]
  end)
  local merged = {}
  for _, iv in ipairs(list) do
    local top = merged[#merged]
    local after = top and #top[2] == #iv[1] and step(top[2], 1)
    if top and #top[2] == #iv[1] and (iv[1] <= top[2] or iv[1] == after) then
      if iv[2] > top[2] then
        top[2] = iv[2]
      end
    else
      merged[#merged + 1] = iv
    end
  end
  return setmetatable({ intervals = merged }, Set)
end

--- Reads a list: one CIDR block or address per line, `#` comments.
-- @tparam string path a file, or "-" for standard input
-- @treturn[1] Set
-- @treturn[2] nil
-- @treturn[2] string what is wrong: the file, or the line that is no block
function M.read(path)
  local f = io.stdin
  if path ~= "-" then
    local err
    f, err = io.open(path, "r")
    if not f then
      return nil, err
    end
  end
  local intervals, n = {}, 0
  for line in f:lines() do
    n = n + 1
    local word = line:gsub("#.*", ""):match("^%s*(.-)%s*$")
    if word ~= "" then
      local first, last = M.block(word)
      if not first then
        first = M.parse(word)
        last = first
      end
      if not first then
        if f ~= io.stdin then
          f:close()
        end
        return nil, string_format("%s:%d: '%s' is not a CIDR block or an address", path, n,
          word)
      end
      intervals[#intervals + 1] = { first, last }
    end
  end
  if f ~= io.stdin then
    f:close()
  end
  return M.new(intervals)
end

--- Whether the set holds an address.
-- @tparam string addr 4 or 16 bytes
function Set:contains(addr)
  for _, iv in ipairs(self.intervals) do
    if #iv[1] == #addr and iv[1] <= addr and addr <= iv[2] then
      return true
    end
  end
  return false
end

-- The number of addresses in [first, last], as a float beyond 2^53.
local function size(first, last)
  local n = 0.0
  for i = 1, #first do
    n = n * 256 + (string_byte(last, i) - string_byte(first, i))
  end
  return n + 1
end
M.size = size

-- [first, last] less the set's intervals: the parts that remain.
local function subtract(set, first, last)
  local parts = { { first, last } }
  for _, iv in ipairs(set.intervals) do
    if #iv[1] == #first then
      local next_parts = {}
      for _, p in ipairs(parts) do
        if iv[2] < p[1] or iv[1] > p[2] then
          next_parts[#next_parts + 1] = p
        else
          if iv[1] > p[1] then
            next_parts[#next_parts + 1] = { p[1], step(iv[1], -1) }
          end
          if iv[2] < p[2] then
            next_parts[#next_parts + 1] = { step(iv[2], 1), p[2] }
          end
        end
      end
      parts = next_parts
    end
  end
  return parts
end

-- [first, last] within the set's intervals.
local function intersect(set, first, last)
  local parts = {}
  for _, iv in ipairs(set.intervals) do
    if #iv[1] == #first and not (iv[2] < first or iv[1] > last) then
      parts[#parts + 1] = { iv[1] > first and iv[1] or first, iv[2] < last and iv[2] or last }
    end
  end
  return parts
end

-- The target text of an interval: an address, or a range "a-b".
local function target_text(iv)
  if iv[1] == iv[2] then
    return M.format(iv[1])
  end
  return M.format(iv[1]) .. "-" .. M.format(iv[2])
end

--- Cuts a sweep's targets by an allowlist and a blocklist: each target that
-- is an address, block or range keeps only its addresses in `allow` (when
-- given) and not in `block`, as addresses and ranges. Names are resolved
-- with `resolve` (a function name -> address text or nil, message); one
-- that does not resolve is kept as it is, for the sweep to report.
-- @tparam {string,...} targets
-- @tparam ?Set allow
-- @tparam ?Set block
-- @tparam[opt] function resolve
-- @treturn {string,...} the targets that remain
-- @treturn number how many addresses were cut off (skipped)
function M.cut(targets, allow, block, resolve)
  local kept, skipped = {}, 0
  for _, target in ipairs(targets) do
    local first, last = M.interval(target)
    if not first and resolve then
      local addr = resolve(target)
      first = type(addr) == "string" and M.parse(addr)
      last = first
    end
    if not first then
      kept[#kept + 1] = target
    else
      local parts = allow and intersect(allow, first, last) or { { first, last } }
      if block then
        local rest = {}
        for _, p in ipairs(parts) do
          for _, q in ipairs(subtract(block, p[1], p[2])) do
            rest[#rest + 1] = q
          end
        end
        parts = rest
      end
      local remaining = 0
      for _, p in ipairs(parts) do
        kept[#kept + 1] = target_text(p)
        remaining = remaining + size(p[1], p[2])
      end
      skipped = skipped + size(first, last) - remaining
    end
  end
  return kept, skipped
end

--- How many intervals the set holds (after merging).
function Set:count()
  return #self.intervals
end

return M
