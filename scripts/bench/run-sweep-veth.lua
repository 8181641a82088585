-- SPDX-License-Identifier: MIT

--- Sweep benchmark over a veth path: icmprun with 1..N workers, zmap, fping
-- and the bare loop each sweep 198.18.0.0/16, answered by the AnyIP
-- namespace of scripts/bench/anyip, in interleaved rounds of one run; then
-- icmprun with two workers on a loopback /12, for memory per worker. Run
-- through `scripts/bench-sweep --path veth`, which builds everything, enters
-- the private network namespace and sets the path up.
--
--   lua5.4 scripts/bench/run-sweep-veth.lua BUILD_DIR ROUNDS WORKERS IFACE SOURCE GW_MAC
local build, rounds, max_workers, iface, source, gw = table.unpack(arg, 1, 6)
assert(gw, "usage: run-sweep-veth.lua BUILD_DIR ROUNDS WORKERS IFACE SOURCE GW_MAC")
rounds, max_workers = tonumber(rounds), tonumber(max_workers)

local cjson = require "cjson"

local BLOCK = "198.18.0.0/16"

--- Runs a command once (through sh) under GNU time: its peak RSS in KiB and
-- everything it printed (to count its replies).
local function measured(cmd)
  local out = os.tmpname()
  local ok = os.execute(string.format("/usr/bin/time -f 'RSS %%M' sh -c '%s' > %s 2>&1",
    cmd, out))
  local f = assert(io.open(out))
  local text = f:read("a")
  f:close()
  os.remove(out)
  local rss = text:match("RSS (%d+)%s*$")
  assert(ok and rss, "command failed: " .. cmd .. "\n" .. text)
  return tonumber(rss), text
end

--- Times each command once, in order, with hyperfine (no shell in between).
local function timed_round(cmds)
  local json = os.tmpname()
  local argv = { "hyperfine -N --runs 1 --style none --output null --export-json", json }
  for _, cmd in ipairs(cmds) do argv[#argv + 1] = "'" .. cmd .. "'" end
  assert(os.execute(table.concat(argv, " ") .. " > /dev/null"), "hyperfine failed")
  local f = assert(io.open(json))
  local report = cjson.decode(f:read("a"))
  f:close()
  os.remove(json)
  local walls = {}
  for i, result in ipairs(report.results) do walls[i] = result.mean end
  return walls
end

local function icmprun_replies(text) return tonumber(text:match("replies (%d+)")) end

local tools = {}
for n = 1, max_workers do
  local cmd = string.format("%s/icmprun scripts/bench/sweep-loop.lua %s %d", build, BLOCK, n)
  tools[#tools + 1] = { name = "icmprun w=" .. n, cmd = cmd, count = cmd,
    replies = icmprun_replies }
end
-- The same work split by hand: two processes, shard 1/2 and 2/2.
local shards = string.format("scripts/bench/shards.sh %s/icmprun %s 2", build, BLOCK)
tools[#tools + 1] = {
  name = "2 processes", cmd = shards, count = shards,
  replies = function(text)
    local n = 0
    for r in text:gmatch("replies (%d+)") do n = n + tonumber(r) end
    return n
  end,
}
local zmap = string.format("zmap -q -M icmp_echoscan -r 0 -c 0 -b /dev/null -i %s -S %s "
  .. "-G %s %s -o", iface, source, gw, BLOCK)
tools[#tools + 1] = {
  name = "zmap", cmd = zmap .. " /dev/null", count = zmap .. " -",
  replies = function(text)
    local n = 0
    for _ in text:gmatch("\n198%.18%.%d+%.%d+") do n = n + 1 end
    return n
  end,
}
local fping = "fping -c1 -i 0 -t 500 -r 0 -q -g " .. BLOCK
tools[#tools + 1] = {
  name = "fping", cmd = fping, count = fping,
  replies = function(text)
    local n = 0
    for _ in text:gmatch("xmt/rcv/%%loss = 1/1/0%%") do n = n + 1 end
    return n
  end,
}
local bare = build .. "/icmprun_bareloop " .. BLOCK
tools[#tools + 1] = { name = "bare loop", cmd = bare, count = bare,
  replies = icmprun_replies }

local function median(list)
  local sorted = {}
  for i, v in ipairs(list) do sorted[i] = v end
  table.sort(sorted)
  local n = #sorted
  if n % 2 == 1 then return sorted[(n + 1) // 2] end
  return (sorted[n // 2] + sorted[n // 2 + 1]) / 2
end

-- One run of each under GNU time for peak RSS and replies (zmap's printed
-- with a newline first, so that its log lines cannot be counted); then
-- rounds that interleave all of them, each timed with its replies from
-- that first run (icmprun and the bare loop always get every reply here).
--- The load average over the last minute: the machine may be shared, and
-- extra workers only gain what other work leaves of the cores.
local function load()
  local f = io.open("/proc/loadavg")
  if not f then return "?" end
  local one = f:read("l"):match("^(%S+)")
  f:close()
  return one
end
local load_before = load()

local runs, cmds = {}, {}
for i, tool in ipairs(tools) do
  local rss, text = measured(tool.count)
  runs[i] = { rss = rss, replies = tool.replies("\n" .. text), wall = {} }
  cmds[i] = tool.cmd
end
for round = 1, rounds do
  local walls = timed_round(cmds)
  for i in ipairs(tools) do runs[i].wall[round] = walls[i] end
end

print(string.format("sweep of %s over veth (AnyIP namespace), %d rounds, medians "
  .. "(load %s before, %s after):", BLOCK, rounds, load_before, load()))
print(string.format("%-12s %8s %10s %10s %8s", "tool", "wall s", "pings/s", "peak RSS",
  "replies"))
for i, tool in ipairs(tools) do
  local r = runs[i]
  print(string.format("%-12s %8.3f %10.0f %7.1f MB %8d", tool.name, median(r.wall),
    r.replies / median(r.wall), r.rss / 1024, r.replies))
end

--- The ratio of speeds (the inverse of the walls) of tools a and b, round by
-- round: median, least and most.
local function ratio(a, b)
  local list = {}
  for round = 1, rounds do list[round] = runs[b].wall[round] / runs[a].wall[round] end
  return string.format("%.2f (rounds %.2f to %.2f)", median(list),
    math.min(table.unpack(list)), math.max(table.unpack(list)))
end
local index = {}
for i, tool in ipairs(tools) do index[tool.name] = i end
for n = 1, max_workers do
  local me = index["icmprun w=" .. n]
  print(string.format("icmprun w=%d speed over: w=1 %s, zmap %s, fping %s, bare loop %s", n,
    ratio(me, index["icmprun w=1"]), ratio(me, index.zmap), ratio(me, index.fping),
    ratio(me, index["bare loop"])))
end
print(string.format("2 processes speed over: w=1 %s, zmap %s", ratio(index["2 processes"],
  index["icmprun w=1"]), ratio(index["2 processes"], index.zmap)))

-- Memory per worker: two workers on a loopback /12 (16 times the
-- addresses; the AnyIP block is only a /16) against one worker's /16.
local big = string.format("%s/icmprun scripts/bench/sweep-loop.lua 127.0.0.0/12 2", build)
local big_rss, big_text = measured(big)
print(string.format("icmprun w=2 127.0.0.0/12: %d replies, peak RSS %.1f MB, %.2f times "
  .. "w=1's on the /16", icmprun_replies(big_text), big_rss / 1024,
  big_rss / runs[index["icmprun w=1"]].rss))
