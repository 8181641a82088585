-- SPDX-License-Identifier: MIT

--- Sweep benchmark: icmprun against fping and a bare sendmmsg/recvmmsg loop,
-- the same /16 of loopback, in alternating rounds of one run; then icmprun on
-- a /12 to show that memory stays flat. Run through scripts/bench-sweep, which
-- builds everything and enters the private network namespace.
--
--   lua5.4 scripts/bench/run-sweep.lua BUILD_DIR [ROUNDS]
local build = assert(arg[1], "usage: run-sweep.lua BUILD_DIR [ROUNDS]")
local rounds = tonumber(arg[2] or "5")

local cjson = require "cjson"

--- Runs a command once under GNU time: returns its peak RSS in KiB and
-- everything it printed (to count its replies).
local function measured(cmd)
  local out = os.tmpname()
  local ok = os.execute(string.format("/usr/bin/time -f 'RSS %%M' %s > %s 2>&1", cmd, out))
  local f = assert(io.open(out))
  local text = f:read("a")
  f:close()
  os.remove(out)
  local rss = text:match("RSS (%d+)")
  assert(ok and rss, "command failed: " .. cmd .. "\n" .. text)
  return tonumber(rss), text
end

--- Times each command once, in order, with hyperfine (no shell in between,
-- so only the command itself is timed). Returns their wall seconds.
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

local tools = {
  {
    name = "icmprun",
    cmd = build .. "/icmprun scripts/bench/sweep-loop.lua 127.0.0.0/16",
    replies = function(text) return tonumber(text:match("replies (%d+)")) end,
  },
  {
    -- The same sweep with every send time from our clock, and with every
    -- probe stamped by the kernel: what send timestamps cost, by default
    -- (the kernel stamps only until the queue stays full) and when forced.
    name = "icmprun user",
    cmd = "env ICMPRUN_TX_STAMP=user " .. build .. "/icmprun scripts/bench/sweep-loop.lua 127.0.0.0/16",
    replies = function(text) return tonumber(text:match("replies (%d+)")) end,
  },
  {
    name = "icmprun kern",
    cmd = "env ICMPRUN_TX_STAMP=kernel " .. build .. "/icmprun scripts/bench/sweep-loop.lua 127.0.0.0/16",
    replies = function(text) return tonumber(text:match("replies (%d+)")) end,
  },
  {
    name = "fping",
    cmd = "fping -c1 -i 0 -t 500 -r 0 -q -g 127.0.0.0/16",
    replies = function(text)
      local n = 0
      for _ in text:gmatch("xmt/rcv/%%loss = 1/1/0%%") do n = n + 1 end
      return n
    end,
  },
  {
    name = "bare loop",
    cmd = build .. "/icmprun_bareloop 127.0.0.0/16",
    replies = function(text) return tonumber(text:match("replies (%d+)")) end,
  },
}

local function median(list)
  local sorted = {}
  for i, v in ipairs(list) do sorted[i] = v end
  table.sort(sorted)
  local n = #sorted
  if n % 2 == 1 then return sorted[(n + 1) // 2] end
  return (sorted[n // 2] + sorted[n // 2 + 1]) / 2
end

-- One run of each under GNU time for peak RSS and replies; then rounds that
-- alternate the tools, so that a machine that speeds up or slows down affects
-- all of them alike, and ratios taken round by round.
local runs, cmds = {}, {}
for i, tool in ipairs(tools) do
  local rss, text = measured(tool.cmd)
  runs[tool.name] = { rss = rss, replies = tool.replies(text), wall = {}, rate = {} }
  cmds[i] = tool.cmd
end
for round = 1, rounds do
  local walls = timed_round(cmds)
  for i, tool in ipairs(tools) do
    local r = runs[tool.name]
    r.wall[round] = walls[i]
    r.rate[round] = r.replies / walls[i]
  end
end

print(string.format("sweep of 127.0.0.0/16, %d rounds, medians:", rounds))
print(string.format("%-12s %9s %12s %10s %9s", "tool", "wall s", "pings/s", "peak RSS", "replies"))
for _, tool in ipairs(tools) do
  local r = runs[tool.name]
  print(string.format("%-12s %9.3f %12.0f %7.1f MB %9d", tool.name, median(r.wall),
    median(r.rate), r.rss / 1024, r.replies))
end

local versus_fping, versus_bare, versus_user, kernel_user = {}, {}, {}, {}
for round = 1, rounds do
  local own = runs.icmprun.rate[round]
  versus_fping[round] = own / runs.fping.rate[round]
  versus_bare[round] = own / runs["bare loop"].rate[round]
  versus_user[round] = own / runs["icmprun user"].rate[round]
  kernel_user[round] = runs["icmprun kern"].rate[round] / runs["icmprun user"].rate[round]
end
print(string.format("icmprun / fping      pings/s ratio: %.2f (rounds: %.2f to %.2f)",
  median(versus_fping), math.min(table.unpack(versus_fping)),
  math.max(table.unpack(versus_fping))))
print(string.format("icmprun / bare loop  pings/s ratio: %.2f (rounds: %.2f to %.2f)",
  median(versus_bare), math.min(table.unpack(versus_bare)),
  math.max(table.unpack(versus_bare))))

print(string.format("default / user stamps pings/s ratio: %.3f (rounds: %.3f to %.3f)",
  median(versus_user), math.min(table.unpack(versus_user)),
  math.max(table.unpack(versus_user))))
print(string.format("kernel / user stamps  pings/s ratio: %.3f (rounds: %.3f to %.3f)",
  median(kernel_user), math.min(table.unpack(kernel_user)),
  math.max(table.unpack(kernel_user))))

-- Flat memory: a /12 is 16 times the addresses of a /16.
local big_cmd = build .. "/icmprun scripts/bench/sweep-loop.lua 127.0.0.0/12"
local big_rss, big_text = measured(big_cmd)
local big_wall = timed_round({ big_cmd })[1]
local big_replies = tonumber(big_text:match("replies (%d+)"))
print(string.format("icmprun 127.0.0.0/12: %d replies in %.3f s (%.0f pings/s), peak RSS %.1f MB",
  big_replies, big_wall, big_replies / big_wall, big_rss / 1024))
print(string.format("peak RSS /12 over /16: %.2f", big_rss / runs.icmprun.rss))
