-- SPDX-License-Identifier: MIT

--- Synthetic JSON lines for scripts/bench-plot, written to stdout in the
-- schema of icmprun.report.jsonl (nothing is probed):
--
--   lua5.4 scripts/bench/plot-input.lua map PREFIX_LEN   a sweep of 127.0.0.0/LEN
--   lua5.4 scripts/bench/plot-input.lua latency SECONDS TARGETS
--                                      1 s probes to 127.0.0.1..TARGETS
-- @script plot-input
local mode = arg[1]
local out, n = {}, 0
local function emit(line)
  n = n + 1
  out[n] = line
  if n == 10000 then
    io.write(table.concat(out, "\n"), "\n")
    out, n = {}, 0
  end
end

local T0 = 1800000000
if mode == "map" then
  local len = assert(tonumber(arg[2]), "map PREFIX_LEN")
  local count = 1 << (32 - len)
  local prefix = "127.0.0.0/" .. len
  for off = 0, count - 1 do
    local a = (127 << 24) + off
    local addr = string.format("%d.%d.%d.%d", a >> 24, a >> 16 & 255, a >> 8 & 255, a & 255)
    local block = off >> 8
    -- Every seventh /24 is silent, every 61st unreachable, the rest answer.
    if block % 61 == 5 then
      emit(string.format('{"type":"result","target":"%s","addr":"%s","status":"unreachable",'
        .. '"time":%.3f}', prefix, addr, T0 + off / 100000))
    elseif block % 7 == 3 then
      emit(string.format('{"type":"result","target":"%s","addr":"%s","status":"timeout",'
        .. '"time":%.3f}', prefix, addr, T0 + off / 100000))
    else
      emit(string.format('{"type":"result","target":"%s","addr":"%s","status":"reply",'
        .. '"rtt_ms":%.3f,"time":%.3f}', prefix, addr, 0.02 + (off % 97) * 0.001,
        T0 + off / 100000))
    end
  end
elseif mode == "latency" then
  local seconds = assert(tonumber(arg[2]), "latency SECONDS TARGETS")
  local targets = assert(tonumber(arg[3]), "latency SECONDS TARGETS")
  for s = 0, seconds - 1 do
    for i = 1, targets do
      local addr = "127.0." .. (i >> 8) .. "." .. (i & 255)
      -- Target i loses one probe in i + 10; RTTs wander with the hour.
      if (s + i) % (i + 10) == 0 then
        emit(string.format('{"type":"result","target":"%s","addr":"%s","status":"timeout",'
          .. '"time":%d}', addr, addr, T0 + s))
      else
        emit(string.format('{"type":"result","target":"%s","addr":"%s","status":"reply",'
          .. '"rtt_ms":%.3f,"time":%d}', addr, addr,
          0.05 + (s // 3600 % 5) * 0.01 + ((s * 7 + i) % 13) * 0.002, T0 + s))
      end
    end
  end
else
  error("usage: plot-input.lua map PREFIX_LEN | latency SECONDS TARGETS")
end
io.write(table.concat(out, "\n"), n > 0 and "\n" or "")
