-- SPDX-License-Identifier: MIT

--- exporter.lua: the Prometheus exporter as a library, from a script.
--
-- Shows `icmprun.exporter` without a config file: the host groups are built
-- in Lua (here one group, with a label from the command line), the exporter
-- probes them and serves /metrics on the same loop, and the script decides
-- when it ends: after --seconds, it stops probing and serving, can print the
-- last metrics, and icmprun exits once the targets' tasks have finished.
-- `icmprun exporter` is the same library behind smokeping_prober's flags.
--
--   icmprun examples/exporter.lua 127.0.0.1 ::1
--   icmprun examples/exporter.lua --seconds 3 --print --interval 200 --site lab ::1
--
-- Exit status: 0 after --seconds, 2 on a usage error (a bad option, a host
-- that does not resolve, an address it cannot listen on).
local icmprun = require "icmprun"
local cli = require "icmprun.cli"
local exporter = require "icmprun.exporter"

local parser = cli.parser("exporter.lua", "Ping hosts on an interval and serve Prometheus "
  .. "metrics on HTTP; optionally stop after a while and print them.")
parser:help_max_width(80)
parser:argument("hosts", "Addresses or host names."):args("+")
parser:option("--listen", "HOST:PORT to serve on (port 0: any free one).", "127.0.0.1:9374")
parser:option("--interval", "Milliseconds between the probes of each host (or 500ms, 2s...).",
  "1000"):convert(cli.duration_in("--interval", "ms", 1, icmprun.limits.max_interval))
parser:option("--site", "Value of a `site` label on every series.", "local")
parser:option("--seconds", "Stop after this many seconds, or 500ms, 2m... (default: run "
  .. "until killed).")
  :convert(cli.duration_in("--seconds", "s", 0, 1e9))
parser:flag("--print", "Print the metrics to stdout when stopping.")

local args, status = cli.handle(parser, arg)
if not args then
  os.exit(status)
end

local e = assert(exporter.new({
  groups = { {
    hosts = args.hosts, interval = args.interval, timeout = args.interval, family = 0,
    size = 56, tos = 0, labels = { site = args.site },
  } },
}))
local ok, err = e:start()
if ok then
  ok, err = e:listen(args.listen)
end
if not ok then
  os.exit(cli.fail("exporter.lua", err))
end
e.log(string.format("serving http://%s:%d/metrics", ok.host, ok.port))

if args.seconds then
  icmprun.sleep(args.seconds * 1000)
  if args.print then
    io.write(e:render())
  end
  e:stop() -- The targets' tasks end after their probe in flight; then icmprun does.
else
  while true do
    icmprun.sleep(icmprun.limits.max_timeout)
  end
end
