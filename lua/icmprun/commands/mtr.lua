-- SPDX-License-Identifier: MIT

--- `icmprun mtr`: mtr 0.95's report mode and a live view, on `icmprun.trace`.
--
-- Options as mtr's: `-r -c N` report, `-w` wide report, `-n` no reverse
-- lookups, `-b` names and addresses, `-j/--json`, `-C/--csv`, `-4/-6`, `-i`
-- seconds between rounds, `-m` max TTL, `-f` first TTL, `-s` packet size
-- (IP and ICMP headers included, as mtr counts it), `-Q` TOS, `-Z` seconds
-- each probe waits for its answer. The report's columns and numbers are
-- mtr's (`icmprun.report.mtr`). Unlike mtr, every hop is probed at once in
-- each round, so `-c N` takes about N intervals plus one timeout; and it
-- needs no setuid helper: ping sockets are enough.
--
-- On a terminal without -r, --json or --csv, a live view redraws the hop
-- table every interval (`icmprun.commands.mtr.live`).
--
-- Exit status as mtr's: 0 once the report is printed, also when the host
-- does not resolve (mtr 0.95 prints the error and exits 0); 1 for a bad
-- option or argument.
-- @module icmprun.commands.mtr
local icmprun = require "icmprun"
local cli = require "icmprun.cli"
local mtr_report = require "icmprun.report.mtr"

local M = {}

M.summary = "trace the path to a host with mtr's report, JSON, CSV or live view"

local io_stderr, io_stdout = io.stderr, io.stdout
local number_in, duration_in = cli.number_in, cli.duration_in

local function build_parser(name)
  local parser = cli.parser(name, "Probe every hop of the path to a host, as mtr does.",
    "Exit status: 0 once the report is printed; 1 for a bad option.")
  parser:help_max_width(80)
  parser:argument("host", "Address or host name.")
  parser:flag("-r --report", "Report mode: probe, then print the hop table.")
  parser:flag("-w --report-wide", "Wide report: addresses are never cut.")
  parser:option("-c --report-cycles", "Rounds to send (default: 10 in a report, "
    .. "until q in the live view).")
    :convert(number_in("-c", 1, 1000000, true))
  parser:flag("-n --no-dns", "Print addresses, not names.")
  parser:flag("-b --show-ips", "Print names and addresses.")
  parser:flag("-j --json", "Report as JSON.")
  parser:flag("-C --csv", "Report as CSV.")
  parser:flag("-4", "Use IPv4 only.")
  parser:flag("-6", "Use IPv6 only.")
  parser:option("-i --interval", "Seconds between rounds (or 500ms, 2s...).", "1")
    :convert(duration_in("-i", "s", 0.001, 86400))
  parser:option("-m --max-ttl", "Last TTL to probe.", "30"):convert(number_in("-m", 1, 255, true))
  parser:option("-f --first-ttl", "First TTL to probe.", "1")
    :convert(number_in("-f", 1, 255, true))
  parser:option("-s --psize", "Packet size in bytes, IP and ICMP headers included.", "64")
    :convert(number_in("-s", 28, 65535, true))
  parser:option("-Q --tos", "TOS byte / IPv6 traffic class.", "0")
    :convert(number_in("-Q", 0, 255, true))
  parser:option("-Z --timeout", "Seconds each probe waits for its answer (or 500ms...).", "5")
    :convert(duration_in("-Z", "s", 0.001, 86400))
  return parser
end

-- Payload bytes for mtr's packet size: it counts the IP header (20 bytes,
-- 40 for IPv6) and the ICMP header (8).
local function payload_size(psize, addr)
  local size = psize - (addr:find(":", 1, true) and 48 or 28)
  return size > 0 and size or 0
end

-- mtr's address text: the name (reverse lookup) unless -n, with the
-- address too under -b. Names are looked up once each, after probing in
-- report mode: luv's synchronous getnameinfo holds the loop meanwhile.
local function namer(args)
  if args.no_dns then
    return function(addr) return addr end
  end
  local uv = require "luv"
  local cache = {}
  return function(addr)
    local name = cache[addr]
    if name == nil then
      local info = uv.getnameinfo({ ip = addr })
      name = info or false
      cache[addr] = name
    end
    if not name or name == addr then
      return addr
    end
    return args.show_ips and (name .. " (" .. addr .. ")") or name
  end
end

local function local_name()
  local ok, uv = pcall(require, "luv")
  local name = ok and uv.os_gethostname() or nil
  return name or "localhost"
end

--- Writes the report of a finished (or stopped) trace in the chosen format.
-- @param tr the trace
-- @tparam table args parsed options
-- @tparam table t `start` (os.time() at the start)
function M.print_report(tr, args, t)
  local hops = mtr_report.shown(tr:hops(), tr.end_ttl)
  local name = namer(args)
  if args.json then
    io_stdout:write(mtr_report.json({ local_name = local_name(), dst = args.host,
      tos = args.tos, tests = args.report_cycles, psize = args.psize, hops = hops,
      name = name }))
  elseif args.csv then
    io_stdout:write(mtr_report.csv({ version = "icmprun." .. icmprun.version,
      start_time = t.start, dst = args.host, hops = hops, name = name }))
  else
    io_stdout:write(mtr_report.report({ local_name = local_name(),
      start = os.date("%Y-%m-%dT%H:%M:%S%z", t.start), hops = hops, name = name,
      wide = args.report_wide }))
  end
  io_stdout:flush()
end

--- Runs the command.
-- @tparam table arg the command line (arg[0] is the program's name)
-- @treturn integer exit status
function M.run(arg)
  local name = tostring(arg[0] or "mtr"):match("([^/]*)$")
  local args, status = cli.handle(build_parser(name), arg, 1)
  if not args then
    return status
  end
  if args["4"] and args["6"] then
    return cli.fail(name, "-4 and -6 cannot go together", 1)
  end
  if args.first_ttl > args.max_ttl then
    return cli.fail(name, "first TTL (-f) is past the max TTL (-m)", 1)
  end
  local family = (args["4"] and 4) or (args["6"] and 6) or nil
  local addr, err = icmprun.resolve(args.host, { family = family })
  if not addr then
    -- mtr 0.95 reports this and exits 0.
    io_stderr:write(name, ": Failed to resolve host: ", args.host, ": ", tostring(err), "\n")
    return 0
  end
  local size = payload_size(args.psize, addr)
  local live = not (args.report or args.report_wide or args.json or args.csv)
    and require("luv").guess_handle(1) == "tty"
  local start = os.time()
  if not live then
    args.report_cycles = args.report_cycles or 10
  end
  local it, tr = icmprun.trace(addr, {
    count = args.report_cycles or math.huge, interval = args.interval * 1000,
    timeout = args.timeout * 1000, max_ttl = args.max_ttl, first_ttl = args.first_ttl,
    size = size, tos = args.tos, family = family,
    -- The flow bytes need room after the cookie; smaller probes vary.
    flow = size >= 10 and "stable" or "vary",
  })
  if not it then
    io_stderr:write(name, ": ", tostring(tr), "\n")
    return 0
  end
  if live then
    local view = require "icmprun.commands.mtr.live"
    return view.run(tr, it, args, { start = start, print_report = M.print_report })
  end
  -- Ctrl-C stops sending; the report covers what was sent.
  icmprun.on_signal("INT", function() tr:stop() end)
  while it(tr) do end
  icmprun.on_signal("INT", nil)
  if tr.failure then
    -- As mtr when mtr-packet cannot open its sockets.
    return cli.fail(name, tr.failure, 1)
  end
  M.print_report(tr, args, { start = start })
  return 0
end

return M
