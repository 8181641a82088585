-- SPDX-License-Identifier: MIT

--- Black-box helper for the Ctrl-C paths: runs icmprun in the background,
-- waits until its output shows a given text, sends it a signal and returns
-- its exit status and output.
-- @module background
local cli = require "cli"

local M = {}

--- Runs `icmprun ARGS...` with stdout and stderr in one file, waits (up to
-- `wait` seconds, default 10) until that output holds `ready` (a plain
-- string on one line: grep takes a newline as a second pattern), sends
-- `signal` (default "INT") and waits for the process to end.
-- The signal is sent after the wait even when `ready` never showed: the
-- assertions on the output then say what happened instead.
-- @tparam {string,...} args
-- @tparam string ready
-- @tparam[opt] table opts `signal`, `wait` (seconds), `delay` (seconds to
--   wait after `ready` showed, before the signal)
-- @treturn table {code = exit status, output = stdout and stderr,
--   ready = whether `ready` showed before the signal}
function M.interrupt(args, ready, opts)
  assert(not ready:find("\n"), "ready must be one line")
  opts = opts or {}
  local out = os.tmpname()
  local tries = math.floor((opts.wait or 10) / 0.05)
  local r = cli.sh(string.format([[
    %s > %s 2>&1 &
    pid=$!
    ready=no
    for _ in $(seq %d); do
      if grep -qF -- %s %s; then ready=yes; break; fi
      sleep 0.05
    done
    sleep %s
    kill -%s $pid
    wait $pid
    echo "exit $? $ready"]], cli.icmprun_cmdline(args), cli.quote(out), tries,
    cli.quote(ready), cli.quote(out), tostring(opts.delay or 0), opts.signal or "INT"))
  local f = assert(io.open(out, "rb"))
  local output = f:read("a")
  f:close()
  os.remove(out)
  local code, seen = r.stdout:match("exit (%d+) (%a+)")
  return { code = tonumber(code), output = output, ready = seen == "yes" }
end

return M
