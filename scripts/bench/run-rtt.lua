-- SPDX-License-Identifier: MIT

--- RTT benchmark: five ways of pinging one veth test host, in alternating
-- rounds, quiet and then under a 100,000 pps sweep to another host. Run
-- through scripts/bench-rtt, which builds icmprun and enters the private
-- network namespace.
--
--   lua5.4 scripts/bench/run-rtt.lua BUILD_DIR [ROUNDS] [PROBES_PER_ROUND]
local build = assert(arg[1], "usage: run-rtt.lua BUILD_DIR [ROUNDS] [PROBES]")
local rounds = tonumber(arg[2] or "5")
local probes = tonumber(arg[3] or "300")

local TARGET = "198.51.100.2"            -- "normal" in scripts/testnet
local LOAD_TARGETS = "2001:db8:7::/104"  -- "lossy" answers for all of them
local LOAD_RATE = 100000
local INTERVAL_MS = 5
local icmprun = build .. "/icmprun"

--- Runs a shell command; returns everything it printed (stdout and stderr).
local function capture(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local text = p:read("a")
  p:close()
  return text
end

--- Appends every number matched by pattern in text to list.
local function collect(list, text, pattern)
  for v in text:gmatch(pattern) do list[#list + 1] = tonumber(v) end
end

local sweep_script = os.tmpname()
do
  local f = assert(io.open(sweep_script, "w"))
  f:write(string.format([[
    local icmprun = require "icmprun"
    for r in icmprun.sweep(%q, { count = %d, interval = %d }) do
      if r.rtt then io.write(string.format("rtt=%%.6f\n", r.rtt)) end
    end
  ]], TARGET, probes, INTERVAL_MS))
  f:close()
end

local seconds = string.format("%.3f", INTERVAL_MS / 1000)
local tools = {
  {
    name = "iputils ping",
    run = function(list)
      collect(list, capture(string.format("ping -n -c %d -i %s %s", probes, seconds, TARGET)),
        "time=([%d.]+) ms")
    end,
  },
  {
    name = "fping",
    run = function(list)
      local text = capture(string.format("fping -C %d -p %d -q %s", probes, INTERVAL_MS,
        TARGET))
      collect(list, text:match(":([%d.%s-]+)") or "", "([%d.]+)")
    end,
  },
  {
    name = "icmprun ping",
    run = function(list)
      collect(list, capture(string.format("%s ping -c %d -i %s %s", icmprun, probes, seconds,
        TARGET)), "time=([%d.]+) ms")
    end,
  },
  {
    -- As before kernel send stamps: our clock read before the send call.
    name = "icmprun user",
    run = function(list)
      collect(list, capture(string.format("env ICMPRUN_TX_STAMP=user %s ping -c %d -i %s %s",
        icmprun, probes, seconds, TARGET)), "time=([%d.]+) ms")
    end,
  },
  {
    name = "icmprun sweep",
    run = function(list)
      collect(list, capture(icmprun .. " " .. sweep_script), "rtt=([%d.]+)")
    end,
  },
}

local function percentile(sorted, p)
  if #sorted == 0 then return 0 / 0 end
  local i = math.max(1, math.min(#sorted, math.ceil(p * #sorted)))
  return sorted[i]
end

--- Runs `rounds` rounds of every tool in turn and prints the table.
local function phase(title)
  local rtts = {}
  for _, tool in ipairs(tools) do rtts[tool.name] = {} end
  for _ = 1, rounds do
    for _, tool in ipairs(tools) do tool.run(rtts[tool.name]) end
  end
  local sorted = {}
  for name, list in pairs(rtts) do
    table.sort(list)
    sorted[name] = list
  end
  local reference = percentile(sorted["iputils ping"], 0.5)
  print(string.format("%s: %d rounds x %d probes every %d ms to %s, RTT in ms", title,
    rounds, probes, INTERVAL_MS, TARGET))
  print(string.format("%-14s %6s %8s %8s %8s %8s %12s", "tool", "n", "min", "median", "p99",
    "max", "median-ipu"))
  for _, tool in ipairs(tools) do
    local s = sorted[tool.name]
    local median = percentile(s, 0.5)
    print(string.format("%-14s %6d %8.3f %8.3f %8.3f %8.3f %+9.1f us", tool.name, #s,
      s[1] or 0 / 0, median, percentile(s, 0.99), s[#s] or 0 / 0,
      (median - reference) * 1000))
  end
end

-- Neighbour discovery and ARP first, so that no tool pays for it.
capture(string.format("ping -n -c 1 %s; ping -n -c 1 2001:db8:7::1", TARGET))

phase("quiet")

-- The load: a sweep at 100,000 probes a second to the lossy host, for as long
-- as the second phase takes; ended by its pid (it is ours).
local load_script = os.tmpname()
do
  local f = assert(io.open(load_script, "w"))
  f:write(string.format([[
    local icmprun = require "icmprun"
    local n = 0
    for _ in icmprun.sweep(%q, { rate = %d, timeout = 500 }) do n = n + 1 end
  ]], LOAD_TARGETS, LOAD_RATE))
  f:close()
end
local pid = capture(string.format("%s %s >/dev/null 2>&1 & echo $!", icmprun, load_script))
  :match("(%d+)")
capture("sleep 1")
local function now() return tonumber(capture("date +%s.%N")) end
local load_before = capture("grep -E 'to-lossy' /proc/net/dev")
local t0 = now()
phase(string.format("under a %d pps sweep to the lossy host", LOAD_RATE))
local load_after = capture("grep -E 'to-lossy' /proc/net/dev")
local elapsed = now() - t0
os.execute("kill " .. pid)
-- Packets sent on the veth to the lossy host: the load's real rate.
local function tx_packets(line)
  local fields = {}
  for v in line:match(":(.*)"):gmatch("%d+") do fields[#fields + 1] = tonumber(v) end
  return fields[10]
end
print(string.format("load: %.0f probes/s sent to the lossy host during the phase",
  (tx_packets(load_after) - tx_packets(load_before)) / elapsed))
os.remove(sweep_script)
os.remove(load_script)
