-- SPDX-License-Identifier: MIT

--- CIDR prefixes and the offset of an address inside one, for maps.
--
-- Only what a map needs: a prefix of at most 2^32 addresses (any IPv4
-- prefix, an IPv6 prefix of /96 or longer), and the offset of an address
-- from its first one. Addresses are parsed as text (the JSON lines carry
-- text), IPv6 with `::` and an embedded IPv4 tail.
-- @module icmprun.plot.address
local M = {}

local math_type, string_format, string_gmatch, string_match = math.type, string.format,
  string.gmatch, string.match
local tonumber, type = tonumber, type

--- An IPv4 address as a 32-bit integer, or nil.
-- @tparam string s
-- @treturn ?integer
function M.ipv4(s)
  local a, b, c, d = string_match(s, "^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  if a > 255 or b > 255 or c > 255 or d > 255 then return nil end
  return ((a * 256 + b) * 256 + c) * 256 + d
end

--- An IPv6 address as 8 integer groups (a table), or nil.
-- @tparam string s
-- @treturn ?table
function M.ipv6(s)
  if type(s) ~= "string" or not s:find(":", 1, true) then return nil end
  local head, tail = s:match("^(.-)::(.*)$")
  local function groups(text, out)
    if text == "" then return out end
    for part in string_gmatch(text .. ":", "([^:]*):") do
      local v4 = M.ipv4(part)
      if v4 then
        out[#out + 1] = v4 >> 16
        out[#out + 1] = v4 & 0xffff
      else
        if not part:match("^%x%x?%x?%x?$") then return nil end
        out[#out + 1] = tonumber(part, 16)
      end
    end
    return out
  end
  local g
  if head then
    local h, t = groups(head, {}), groups(tail, {})
    if not h or not t or #h + #t > 7 then return nil end
    g = h
    for _ = 1, 8 - #h - #t do g[#g + 1] = 0 end
    for _, v in ipairs(t) do g[#g + 1] = v end
  else
    g = groups(s, {})
    if not g or #g ~= 8 then return nil end
  end
  return g
end

--- Parses a CIDR prefix of at most 2^32 addresses.
-- @tparam string text such as "127.0.0.0/16" or "fd00::/112"
-- @treturn[1] table `{text, family, len, bits (host bits), base}`
-- @return[2] nil, message
function M.prefix(text)
  if type(text) ~= "string" then
    return nil, "prefix must be a string"
  end
  local addr, len = string_match(text, "^([^/]+)/(%d+)$")
  len = tonumber(len)
  if not addr then
    return nil, string_format("'%s' is not a CIDR prefix (such as 127.0.0.0/16)", text)
  end
  local v4 = M.ipv4(addr)
  if v4 then
    if len > 32 then return nil, string_format("'%s': an IPv4 prefix is at most /32", text) end
    local bits = 32 - len
    local base = v4 >> bits << bits
    return { text = text, family = 4, len = len, bits = bits, base = base }
  end
  local g = M.ipv6(addr)
  if not g then
    return nil, string_format("'%s' is not a CIDR prefix (such as 127.0.0.0/16)", text)
  end
  if len > 128 then return nil, string_format("'%s': an IPv6 prefix is at most /128", text) end
  if len < 96 then
    return nil, string_format("'%s': a map holds at most 2^32 addresses (an IPv6 /96)", text)
  end
  local bits = 128 - len
  local low = ((g[7] << 16) | g[8]) >> bits << bits
  return { text = text, family = 6, len = len, bits = bits,
    high = { g[1], g[2], g[3], g[4], g[5], g[6] }, base = low }
end

--- The offset of `addr` from the first address of `prefix`, or nil when it
-- is not inside.
-- @tparam table prefix from `M.prefix`
-- @tparam string addr
-- @treturn ?integer
function M.offset(prefix, addr)
  if type(addr) ~= "string" then return nil end
  local low
  if prefix.family == 4 then
    low = M.ipv4(addr)
    if not low then return nil end
  else
    local g = M.ipv6(addr)
    if not g then return nil end
    local high = prefix.high
    for i = 1, 6 do
      if g[i] ~= high[i] then return nil end
    end
    low = (g[7] << 16) | g[8]
  end
  local off = low - prefix.base
  if math_type(off) ~= "integer" or off < 0 or off >= (1 << prefix.bits) then
    return nil
  end
  return off
end

return M
