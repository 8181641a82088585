-- SPDX-License-Identifier: MIT

--- Status page benchmark: the time to render one page of the exporter's
-- status page, for 10,000 and 100,000 targets with three full hours of
-- history each. Run by icmprun through scripts/bench-status.
--
--   icmprun scripts/bench/run-status.lua [REPEATS]
local status = require "icmprun.exporter.status"

local repeats = tonumber(arg[1] or "5")
local NOW = 1800000000 + 3 * 3600 -- wall-clock seconds at the end of the history
local START = NOW - 3 * 3600

-- A target as the exporter keeps it, with every slot of its ring filled
-- (one probe every 20 s for three hours, RTTs from 0.3 to 1.9 ms and a
-- lost probe now and then) and the open minute holding a few probes.
local function target(i)
  local ip = string.format("127.%d.%d.%d", i >> 16 & 255, i >> 8 & 255, i & 255)
  local t = { key = string.format('{host="h%d",ip="%s"', i, ip), ip = ip }
  for s = 0, 3 * 3600 - 1, 20 do
    local lost = (s // 20 + i) % 37 == 0
    status.record(t, lost and { status = "timeout" }
      or { status = "reply", rtt = 0.3 + ((s + i) % 17) * 0.1 }, START + s)
  end
  return t
end

local function median(list)
  table.sort(list)
  return list[(#list + 1) // 2]
end

local function clock_ms()
  return os.clock() * 1000
end

-- Distinct histories for the first POOL targets; past them, targets share
-- a history (their own key and address): a page's work is the same, and
-- the benchmark does not need 100,000 x 3 hours of feeding.
local POOL = 10000
collectgarbage()
local before = collectgarbage("count")
local pool = {}
local feed_start = clock_ms()
for i = 1, POOL do pool[i] = target(i) end
local feed_ms = clock_ms() - feed_start
collectgarbage()
local per_target = (collectgarbage("count") - before) * 1024 / POOL
print(string.format("history: %.0f bytes per target (ring %d bytes), %d targets fed "
  .. "three hours each in %.1f s", per_target, status.RING_BYTES, POOL, feed_ms / 1000))

for _, n in ipairs({ 10000, 100000 }) do
  local order = {}
  for i = 1, n do
    if i <= POOL then
      order[i] = pool[i]
    else
      local ip = string.format("127.%d.%d.%d", i >> 16 & 255, i >> 8 & 255, i & 255)
      order[i] = { key = string.format('{host="h%d",ip="%s"', i, ip), ip = ip,
        history = pool[(i - 1) % POOL + 1].history }
    end
  end
  local exporter = { order = order }
  local pages = (n + status.PER_PAGE - 1) // status.PER_PAGE
  for _, p in ipairs({ 1, pages // 2, pages }) do
    local times, size = {}, 0
    for r = 1, repeats do
      local t0 = clock_ms()
      local page = status.page(exporter, "page=" .. p, "/metrics", NOW)
      times[r] = clock_ms() - t0
      size = #page
    end
    table.sort(times)
    print(string.format("%6d targets, page %4d of %4d: %6.1f ms CPU (median of %d; "
      .. "min %.1f, max %.1f), %d KB", n, p, pages, median(times), repeats, times[1],
      times[#times], size // 1024))
  end
end
