-- SPDX-License-Identifier: MIT

--- The icmprun side of the sweep benchmark: one unpaced sweep of a block,
-- with a Lua loop that touches every result, as a campaign script would.
--
--   icmprun scripts/bench/sweep-loop.lua 127.0.0.0/16 [WORKERS]
local icmprun = require "icmprun"

local block = assert(arg[1], "usage: sweep-loop.lua CIDR [WORKERS]")
local workers = tonumber(arg[2] or "1")
local replies, results, rtt_sum = 0, 0, 0
for r in icmprun.sweep(block, { rate = 0, count = 1, timeout = 500,
  workers = workers }) do
  results = results + 1
  if r.status == "reply" then
    replies = replies + 1
    rtt_sum = rtt_sum + r.rtt
  end
end
print(string.format("results %d replies %d mean_rtt_ms %.4f", results, replies,
  replies > 0 and rtt_sum / replies or 0))
