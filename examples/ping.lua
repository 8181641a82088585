-- SPDX-License-Identifier: MIT

--- ping.lua: an iputils-ping look-alike, as a script.
--
-- The logic lives in the bundled command `icmprun ping`
-- (lua/icmprun/commands/ping.lua), which shows the basic campaign shape:
-- resolve once, send one probe per interval from its own task (so a slow
-- reply never delays the next send), print each reply as it arrives, and
-- finish with ping's summary (loss, min/avg/max/mdev), on Ctrl-C too. This
-- script shows how any script can run a bundled command: it is a module
-- whose `run(arg)` returns the exit status.
--
--   icmprun examples/ping.lua -c 5 ::1
--   icmprun examples/ping.lua -c 3 -i 0.2 -s 100 -t 32 127.0.0.1
--
-- Exit status as ping's: 0 if any reply came back, 1 if none, 2 on an error.
local ping = require "icmprun.commands.ping"

os.exit(ping.run(arg))
