-- SPDX-License-Identifier: MIT

--- discover.lua: find the live hosts of a block, retrying the silent ones.
--
-- Shows icmprun.sweep's retries with backoff. Every address gets one probe;
-- one that has not answered when its timeout passes is asked again, each
-- time waiting `backoff` times longer (100 ms, 200 ms, 400 ms ... with
-- --timeout 100 --backoff 2), so a host that lost a packet or answers slowly
-- is still found, while a live host costs one probe only. Each result comes
-- once per address, with `attempts` saying how many probes it took: the
-- summary counts the hosts that answered only on a retry and what the
-- retries cost.
--
--   icmprun examples/discover.lua 127.0.0.0/28
--   icmprun examples/discover.lua --retries 3 --backoff 2 --timeout 100 127.0.0.0/24 ::1
--
-- Exit status: 0 if any host is live, 1 if none is, 2 on a usage error.
local icmprun = require "icmprun"
local cli = require "icmprun.cli"

local parser = cli.parser("discover.lua", "Find the live hosts of some blocks: sweep them, "
  .. "retrying the addresses that stay silent with a growing timeout.")
parser:help_max_width(80)
parser:argument("blocks", "CIDR blocks, ranges or addresses."):args("+")
parser:option("--retries", "Probes to resend to a silent address.", "2")
  :convert(function(text) return math.tointeger(tonumber(text)) end)
parser:option("--backoff", "Timeout factor for each retry.", "2"):convert(tonumber)
parser:option("--timeout", "Milliseconds to wait for the first probe's reply (or 1s...).",
  "250"):convert(cli.duration_in("--timeout", "ms", 1, icmprun.limits.max_timeout))
parser:option("--rate", "Probes per second (0: as fast as possible).", "1000")
  :convert(tonumber)

local args, status = cli.handle(parser, arg)
if not args then
  os.exit(status)
end

--- Sweeps the blocks, prints each live host as it answers and a summary.
-- A silent address's result comes after all its attempts; a live one's
-- after the first reply, so live hosts are printed as soon as they answer.
-- @treturn integer the number of live hosts
local function discover()
  local started = icmprun.now()
  local live, late, silent, unreachable, errors, probes = 0, 0, 0, 0, 0, 0
  for r in icmprun.sweep(args.blocks, { retries = args.retries, backoff = args.backoff,
    timeout = args.timeout, rate = args.rate }) do
    -- A sweep without retries gives no `attempts`: each result is one probe.
    local attempts = r.attempts or 1
    probes = probes + attempts
    if r.status == "reply" then
      live = live + 1
      local retried = ""
      if attempts > 1 then
        late = late + 1
        retried = string.format("  (answered probe %d)", attempts)
      end
      print(string.format("%-39s %8.3f ms%s", r.addr, r.rtt, retried))
    elseif r.status == "timeout" then
      silent = silent + 1
    elseif r.status == "unreachable" then
      unreachable = unreachable + 1
    else
      errors = errors + 1
    end
  end
  print(string.format("%d live (%d only on a retry), %d silent after %d probes each, "
    .. "%d unreachable, %d errors; %d probes in %.2f s",
    live, late, silent, args.retries + 1, unreachable, errors, probes,
    (icmprun.now() - started) / 1000))
  return live
end

local ok, live = pcall(discover)
if not ok then
  -- A malformed block, a bad option value or a name that does not resolve:
  -- the sweep's message says which; its position in this file does not help.
  local message = tostring(live):gsub("^[^\n]-:%d+: ", "")
  message = message:match("^bad argument #%d+ to '[^']*' %((.*)%)$") or message
  io.stderr:write("discover.lua: ", message, "\n")
  os.exit(2)
end
os.exit(live > 0 and 0 or 1)
