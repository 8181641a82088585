-- SPDX-License-Identifier: MIT

--- `icmprun checkup HOST...`: says whether each host is up, degraded or down.
-- The command shipped by the example rock: installed as
-- icmprun/commands/checkup.lua into the rocks tree, where `icmprun` finds
-- it and `icmprun --list` shows it.
-- @module icmprun.commands.checkup
local icmprun = require "icmprun"
local cli = require "icmprun.cli"
local health = require "teamtools.health"

local M = {}

M.summary = "say whether each host is up, degraded or down (examples/shared-library)"

--- Runs the command.
-- @tparam table arg the command line
-- @treturn integer 0 when every host is up, 1 otherwise, 2 on a usage error
function M.run(arg)
  local parser = cli.parser("icmprun checkup", "Say whether each host is up, degraded or down.")
  parser:argument("hosts", "Addresses, blocks or names."):args("+")
  parser:option("-c --count", "Probes per host.", "3"):convert(cli.number_in("-c", 1, 1000, true))
  parser:option("-t --timeout", "Milliseconds to wait for each reply (or 1s...).", "500")
    :convert(cli.duration_in("-t", "ms", 1, 60000))
  local args, status = cli.handle(parser, arg)
  if not args then
    return status
  end
  local tally = health.new()
  for r in icmprun.sweep(args.hosts, { count = args.count, interval = 50, timeout = args.timeout }) do
    tally:add(r)
  end
  local all_up = true
  for _, row in ipairs(tally:rows()) do
    print(string.format("%s %s %d/%d", row.addr, row.verdict, row.received, row.sent))
    all_up = all_up and row.verdict == "up"
  end
  return all_up and 0 or 1
end

return M
