-- SPDX-License-Identifier: MIT

--- scripts/bench-trace's body, inside scripts/netns: times 30-hop traces of
-- 10 probes per hop by icmprun mtr, traceroute -I and mtr, alternating.
local build, rounds = arg[1], tonumber(arg[2])

local COUNT, INTERVAL, TIMEOUT = 10, 0.1, 1 -- probes per hop, s, s

-- Wall time of a shell command, in seconds, and whether it succeeded.
local function timed(cmd)
  local t0 = io.popen("date +%s.%N"):read("n")
  local ok = os.execute(cmd .. " >/dev/null 2>&1")
  local t1 = io.popen("date +%s.%N"):read("n")
  return t1 - t0, ok
end

local function median(xs)
  table.sort(xs)
  return xs[(#xs + 1) // 2]
end

local paths = {
  { name = "loop, 30 hops answering", target = "203.0.113.225" },
  { name = "30 silent hops", target = "2001:db8:beef::1" },
}
local tools = {
  { name = "icmprun mtr", cmd = string.format("%s/icmprun mtr -r -n -c %d -i %g -Z %g -m 30 ",
    build, COUNT, INTERVAL, TIMEOUT) },
  { name = "traceroute -I", cmd = string.format("traceroute -I -n -q %d -w %g -m 30 ", COUNT,
    TIMEOUT) },
  { name = "mtr", cmd = string.format("mtr -r -n -c %d -i %g -m 30 ", COUNT, INTERVAL) },
}

print(string.format("30 hops x %d probes, interval %g s, timeout %g s; medians of %d rounds",
  COUNT, INTERVAL, TIMEOUT, rounds))
print(string.format("icmprun's expectation: count x interval + timeout = %.1f s",
  COUNT * INTERVAL + TIMEOUT))
for _, path in ipairs(paths) do
  local times = {}
  for _, tool in ipairs(tools) do
    times[tool.name] = {}
  end
  for _ = 1, rounds do
    for _, tool in ipairs(tools) do
      local t, ok = timed(tool.cmd .. path.target)
      if not ok then
        io.stderr:write(tool.name, " failed on ", path.target, "\n")
      end
      table.insert(times[tool.name], t)
    end
  end
  print("\n" .. path.name .. " (" .. path.target .. ")")
  local ours = median(times["icmprun mtr"])
  for _, tool in ipairs(tools) do
    local m = median(times[tool.name])
    print(string.format("  %-14s %6.2f s   %5.1f x icmprun's time", tool.name, m, m / ours))
  end
end
