-- SPDX-License-Identifier: MIT

--- One shard of the sweep benchmark's by-hand reference (shards.sh): an
-- unpaced sweep of shard I of N of a block, touching every result.
--
--   icmprun scripts/bench/shard-loop.lua CIDR I N
local icmprun = require "icmprun"

local block = assert(arg[1], "usage: shard-loop.lua CIDR I N")
local i, n = assert(tonumber(arg[2])), assert(tonumber(arg[3]))
local replies = 0
for r in icmprun.sweep(block, { rate = 0, timeout = 500, shard = { i, n } }) do
  if r.status == "reply" then replies = replies + 1 end
end
print(string.format("replies %d", replies))
