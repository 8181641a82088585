-- SPDX-License-Identifier: MIT

--- Counts the probes that leave this namespace, by the header fields they
-- carry, with nftables counters on the output hook. Specs use it to assert
-- that every probe carried the TOS, TTL and size asked for, rather than only
-- that a reply came back (a reply comes back whatever the TOS was).
-- Needs the private namespace of scripts/netns (root inside it).
-- @module nftcount
local cli = require "cli"

local M = {}

local TABLE = "icmprun_probes"

local function nft(script)
  local r = cli.sh("nft -f -", script)
  assert(r.code == 0, "nft failed: " .. r.stderr .. "\n" .. script)
end

--- The nft script of this helper's table: a counter for each name (with
-- the prefix n_, since "all" and "size" are nft keywords) and one chain on
-- the hook, with the rules (each ending in its `counter name n_...`).
local function table_script(chain, hook, names, rules)
  local lines = { "table inet " .. TABLE .. " {" }
  for _, name in ipairs(names) do
    lines[#lines + 1] = "  counter n_" .. name .. " { }"
  end
  lines[#lines + 1] = "  chain " .. chain .. " {"
  lines[#lines + 1] = "    type filter hook " .. hook .. " priority 0; policy accept;"
  for _, rule in ipairs(rules) do
    lines[#lines + 1] = "    " .. rule
  end
  lines[#lines + 1] = "  }"
  lines[#lines + 1] = "}"
  return table.concat(lines, "\n") .. "\n"
end

--- The header match of an echo request to `addr` (IPv4 or IPv6).
local function echo_to(addr)
  if addr:find(":", 1, true) then
    return "ip6 daddr " .. addr .. " icmpv6 type echo-request"
  end
  return "ip daddr " .. addr .. " icmp type echo-request"
end

--- Starts counting echo requests to `addr`: all of them, and those whose TOS
-- (IPv4) or traffic class (IPv6) byte, TTL / hop limit, and size are the ones
-- given. `size` is the ICMP payload in bytes. `pattern = true` counts those
-- whose payload bytes 16..19 (after cookie and stamp) are the fixed filler,
-- byte i = i. Replaces any earlier counting.
-- @tparam string addr a literal address
-- @tparam table want {tos = n, ttl = n, size = n, pattern = true}; each is optional
function M.start(addr, want)
  local v6 = addr:find(":", 1, true) ~= nil
  local base = echo_to(addr)
  -- The TOS byte is bits 8..15 of the IPv4 header; the traffic class is
  -- bits 4..11 of the IPv6 header. Raw payload matches compare the whole
  -- byte, where `ip dscp` would ignore the two ECN bits.
  local rules = { "counter name n_all" }
  local counters = { "all" }
  if want.tos then
    rules[#rules + 1] = (v6 and "@nh,4,8 " or "@nh,8,8 ") .. want.tos .. " counter name n_tos"
    counters[#counters + 1] = "tos"
  end
  if want.ttl then
    rules[#rules + 1] = (v6 and "ip6 hoplimit " or "ip ttl ") .. want.ttl .. " counter name n_ttl"
    counters[#counters + 1] = "ttl"
  end
  if want.size then
    -- IPv4 counts the whole datagram (20-byte header, 8-byte ICMP header);
    -- IPv6 counts the payload after its fixed header.
    local length = v6 and want.size + 8 or want.size + 28
    rules[#rules + 1] = (v6 and "ip6 length " or "ip length ") .. length .. " counter name n_size"
    counters[#counters + 1] = "size"
  end
  if want.pattern then
    -- Payload byte p is at bit (8 + p) * 8 of the ICMP (transport) header.
    rules[#rules + 1] = "@th,192,32 0x10111213 counter name n_pattern"
    counters[#counters + 1] = "pattern"
  end
  for i, rule in ipairs(rules) do
    rules[i] = base .. " " .. rule
  end
  M.stop()
  nft(table_script("out", "output", counters, rules))
end

--- The packet count of each counter: {all = n, tos = n, ttl = n, size = n}.
function M.read()
  local r = cli.sh("nft list counters table inet " .. TABLE)
  assert(r.code == 0, "nft list failed: " .. r.stderr)
  local counts = {}
  for name, packets in r.stdout:gmatch("counter n_(%w+) {%s*packets (%d+)") do
    counts[name] = tonumber(packets)
  end
  return counts
end

--- Stops counting (removes the table, if there is one).
function M.stop()
  cli.sh("nft delete table inet " .. TABLE .. " 2>/dev/null")
end

--- Starts counting, on a test host of scripts/testnet, the packets that
-- arrive there, with a counter for each match: `counters` maps a name
-- (letters and digits) to a whole nft match, such as
-- "ip saddr 198.51.100.5 icmp type echo-request" or
-- "iifname eth-local2 icmpv6 type echo-request". Specs use it to see where
-- probes came from (source address, interface), which the prober's side
-- cannot show. Replaces any earlier counting on that host.
-- @tparam string host the namespace, such as "normal"
-- @tparam table counters name -> match
function M.start_at(host, counters)
  local names, rules = {}, {}
  for name, match in pairs(counters) do
    names[#names + 1] = name
    rules[#rules + 1] = match .. " counter name n_" .. name
  end
  M.stop_at(host)
  local script = table_script("in", "input", names, rules)
  local r = cli.sh("ip netns exec " .. host .. " nft -f -", script)
  assert(r.code == 0, "nft failed: " .. r.stderr .. "\n" .. script)
end

--- The packet count of each counter started on host by start_at.
function M.read_at(host)
  local r = cli.sh("ip netns exec " .. host .. " nft list counters table inet " .. TABLE)
  assert(r.code == 0, "nft list failed: " .. r.stderr)
  local counts = {}
  for name, packets in r.stdout:gmatch("counter n_(%w+) {%s*packets (%d+)") do
    counts[name] = tonumber(packets)
  end
  return counts
end

--- Stops counting on host.
function M.stop_at(host)
  cli.sh("ip netns exec " .. host .. " nft delete table inet " .. TABLE .. " 2>/dev/null")
end

return M
