-- SPDX-License-Identifier: MIT

--- `icmprun version`: prints the version and the socket kinds in use.
-- The smallest bundled command, and an example of the command contract: a
-- module returning `summary` (one line for `icmprun --list`) and
-- `run(arg)`, whose result is the exit status.
-- @module icmprun.commands.version
local icmprun = require "icmprun"

local M = {}

M.summary = "print the version and which ICMP sockets can be opened"

--- Runs the command.
-- @tparam table arg the command line (arg[0] is the command's name)
-- @treturn integer exit status
function M.run(arg)
  if arg[1] then
    io.stderr:write("icmprun version: takes no arguments, got '", arg[1], "'\n")
    return 2
  end
  local info = icmprun.info()
  print("icmprun " .. icmprun.version)
  print("ipv4: " .. (info.ipv4 or ("unavailable: " .. info.ipv4_error)))
  print("ipv6: " .. (info.ipv6 or ("unavailable: " .. info.ipv6_error)))
  return 0
end

return M
