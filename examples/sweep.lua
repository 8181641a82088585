-- SPDX-License-Identifier: MIT

--- sweep.lua: find which addresses of some blocks answer, with a summary.
--
-- Shows icmprun.sweep: targets expand lazily, results come as soon as they
-- are known, and a silent address costs one timeout, not a wait per probe.
--
--   icmprun examples/sweep.lua 127.0.0.0/24 ::1
local icmprun = require "icmprun"
local cli = require "icmprun.cli"

local parser = cli.parser("sweep.lua", "Sweep some blocks and say which addresses answer.")
parser:argument("targets", "Addresses, CIDR blocks, ranges or host names."):args("+")
local args, status = cli.handle(parser, arg)
if not args then
  os.exit(status)
end

local alive, silent, other = 0, 0, 0
for r in icmprun.sweep(args.targets, { rate = 10000, timeout = 500, retries = 1 }) do
  if r.status == "reply" then
    alive = alive + 1
    print(string.format("%-40s alive  %.3f ms", r.addr, r.rtt))
  elseif r.status == "timeout" then
    silent = silent + 1
  else
    other = other + 1
    -- A target name that did not resolve has no address.
    print(string.format("%-40s %s", r.addr or r.target, r.err or r.status))
  end
end
print(string.format("%d alive, %d silent, %d other", alive, silent, other))
-- Nothing alive is a failure, as for fping; otherwise end normally, so that
-- icmprun closes everything (scripts/valgrind-check relies on it).
if alive == 0 then os.exit(1) end
