-- SPDX-License-Identifier: MIT

--- `icmprun exporter`: a smokeping_prober-compatible Prometheus exporter.
--
--     icmprun exporter --listen 127.0.0.1:9374 --config targets.yml
--     icmprun exporter --config.file targets.yml --web.listen-address :9374
--     icmprun exporter -i 500ms 127.0.0.1 ::1
--
-- The config file is smokeping_prober's (`icmprun.exporter.config`), and so
-- are the flag names (`--config.file`, `--web.listen-address`,
-- `--web.telemetry-path`, `--buckets`, `-i/--ping.interval`,
-- `-s/--ping.size`, hosts as arguments), so that its users switch by
-- changing the command's name. SIGHUP or `POST /-/reload` reloads the
-- config without losing the counters of the targets that stay.
--
-- Exit status: 2 on a usage error (a bad flag, a config that does not load,
-- a host that does not resolve, an address that cannot be listened on); it
-- runs until stopped otherwise.
-- @module icmprun.commands.exporter
local icmprun = require "icmprun"
local cli = require "icmprun.cli"
local config = require "icmprun.exporter.config"
local exporter = require "icmprun.exporter"
local logging = require "icmprun.exporter.log"
local probe = require "icmprun.exporter.probe"

local M = {}

M.summary = "serve Prometheus metrics of targets pinged on their own intervals "
  .. "(smokeping_prober's config)"

local NAME = "icmprun exporter"

local function duration(option)
  return function(text)
    local ms = config.parse_duration(text)
    if not ms or ms <= 0 then
      return nil, string.format("option '%s': invalid argument '%s': a duration such as "
        .. "500ms or 1s", option, text)
    end
    return ms
  end
end

local function bucket_list(text)
  local out = {}
  for item in (text .. ","):gmatch("([^,]*),") do
    local x = tonumber(item)
    if not x or x <= 0 or (#out > 0 and x <= out[#out]) then
      return nil, string.format("option '--buckets': invalid argument '%s': positive "
        .. "numbers of seconds in increasing order, separated by commas", text)
    end
    out[#out + 1] = x
  end
  return out
end

local function build_parser()
  local parser = cli.parser(NAME, "Ping targets on their own intervals and serve the "
    .. "results as Prometheus metrics (smokeping_prober's config file and metric names).",
    "SIGHUP or POST /-/reload reloads the config; counters of unchanged targets are kept.")
  parser:help_max_width(80)
  parser:argument("hosts", "Hosts to ping, besides (or instead of) a config file."):args("*")
  parser:option("--listen --web.listen-address", "Address to serve on, HOST:PORT "
    .. "([::]:9374 for every IPv6 and IPv4 one); repeatable for several.")
    :target("listen"):count("*")
  parser:option("--config --config.file", "smokeping_prober YAML file of target groups.")
    :target("config")
  parser:option("--web.telemetry-path", "Path of the metrics.", "/metrics"):target("path")
  parser:option("--buckets", "Histogram bucket bounds in seconds, comma-separated "
    .. "(default: smokeping_prober's, 50us doubling to 26.2144s).")
    :convert(bucket_list)
  parser:option("-i --ping.interval", "Interval of the hosts given as arguments.", "1s")
    :target("interval"):convert(duration("--ping.interval"))
  parser:option("-s --ping.size", "Payload bytes of the hosts given as arguments.", "56")
    :target("size"):convert(cli.number_in("--ping.size", 0, icmprun.limits.max_size_v4, true))
  parser:option("--blackbox.config.file", "blackbox_exporter's YAML file of modules for "
    .. "/probe (ICMP modules; default: one module, icmp, with its defaults).")
    :target("blackbox_config")
  parser:option("--log.level", "Only log messages with the given severity or above: "
    .. "debug, info, warn, error.", "info"):target("log_level")
    :choices(logging.LEVELS)
  parser:option("--log.format", "Output format of log messages: logfmt, json.", "logfmt")
    :target("log_format"):choices(logging.FORMATS)
  parser:flag("--privileged", "Accepted for smokeping_prober's sake; icmprun picks "
    .. "datagram or raw sockets itself.")
  parser:flag("--no-privileged", "Accepted, as --privileged."):target("no_privileged")
  parser:option("-O --ping.tos", "TOS of the hosts given as arguments (0-255, or 0x00).",
    "0"):target("tos"):convert(function(text)
      local n = math.tointeger(tonumber(text))
      if not n or n < 0 or n > 255 then
        return nil, "option '--ping.tos': invalid argument '" .. text .. "': 0 to 255"
      end
      return n
    end)
  parser:option("--web.config.file", "exporter-toolkit's file that enables TLS "
    .. "(tls_server_config) and basic auth (basic_auth_users, bcrypt).")
    :target("web_config")
  -- Kept for command lines written when a small server in Lua was the
  -- default and this chose libmicrohttpd: it now serves every listener.
  parser:option("--web.server", "Accepted for compatibility: libmicrohttpd serves every "
    .. "listener (microhttpd is the only value).", "microhttpd"):target("web_server")
    :convert(function(text)
      if text ~= "microhttpd" then
        return nil, "option '--web.server': '" .. text .. "' is no longer available: "
          .. "libmicrohttpd (microhttpd) serves every listener"
      end
      return text
    end)
  parser:flag("--web.systemd-socket", "Use systemd socket activation listeners instead "
    .. "of --web.listen-address."):target("systemd_socket")
  parser:flag("--version", "Print the version and exit."):target("version")
  return parser
end

-- The host groups of the command line's hosts, or nil when there are none.
local function argument_groups(args)
  if #args.hosts == 0 then
    return nil
  end
  return config.check({ targets = { { hosts = args.hosts, size = args.size, tos = args.tos,
    interval = string.format("%.6fms", args.interval) } } })
end

-- The sockets systemd passed (socket activation: LISTEN_PID is ours, and
-- LISTEN_FDS of them from fd 3 on), or nil, why not.
local function systemd_sockets()
  local pid, count = tonumber(os.getenv("LISTEN_PID")), tonumber(os.getenv("LISTEN_FDS"))
  if not pid or not count or count < 1 then
    return nil, "no sockets were passed (LISTEN_PID and LISTEN_FDS are not set)"
  end
  if pid ~= require("luv").os_getpid() then
    return nil, "the sockets were passed to process " .. pid .. ", not to this one"
  end
  local fds = {}
  for i = 1, count do
    fds[i] = 2 + i
  end
  return fds
end

--- Runs the command.
-- @tparam table arg the command line
-- @treturn integer exit status
function M.run(arg)
  -- A long-running server whose 10,000 target tables and tasks are old and
  -- touched every second: the generational collector (icmprun's default,
  -- best for sweeps) re-traverses them at each minor collection. Measured
  -- with 10,000 targets scraped every second, incremental mode took about a
  -- fifth less CPU and 5% less memory.
  collectgarbage("incremental")
  local args, status = cli.handle(build_parser(), arg)
  if not args then
    return status
  end
  if args.version then
    io.stdout:write("icmprun exporter ", icmprun.version, "\n")
    return 0
  end
  local web
  if args.web_config then
    local web_err
    web, web_err = require("icmprun.exporter.web_config").load(args.web_config)
    if not web then
      return cli.fail(NAME, "--web.config.file: " .. web_err)
    end
  end
  local sockets
  if args.systemd_socket then
    local why
    sockets, why = systemd_sockets()
    if not sockets then
      return cli.fail(NAME, "--web.systemd-socket: " .. why)
    end
  end
  if #args.listen == 0 then
    args.listen = { "127.0.0.1:9374" }
  end
  if not args.config and #args.hosts == 0 then
    return cli.fail(NAME, "give a config file (--config FILE) or hosts to ping")
  end
  if args.config and #args.hosts > 0 then
    return cli.fail(NAME, "give either a config file or hosts, not both")
  end
  local groups, err = argument_groups(args)
  if #args.hosts > 0 and not groups then
    return cli.fail(NAME, err)
  end
  local modules
  if args.blackbox_config then
    modules, err = probe.load_modules(args.blackbox_config)
    if not modules then
      return cli.fail(NAME, err)
    end
  end
  local logger = assert(logging.new({ level = args.log_level, format = args.log_format }))
  local e
  e, err = exporter.new({ config = args.config, groups = groups, buckets = args.buckets,
    logger = logger, modules = modules })
  if not e then
    return cli.fail(NAME, err)
  end
  local n
  n, err = e:start()
  if not n then
    return cli.fail(NAME, err)
  end
  for i, address in ipairs(sockets or args.listen) do
    local server
    server, err = e:listen(sockets and "systemd socket " .. i or address, args.path, {
      tls = web and web.tls,
      users = web and web.users, fd = sockets and address })
    if not server then
      e:stop()
      return cli.fail(NAME, err)
    end
    local shown = server.host:find(":", 1, true) and "[" .. server.host .. "]" or server.host
    e.log(string.format("serving %s://%s:%d%s", server.tls and "https" or "http", shown,
      server.port, args.path))
  end
  icmprun.on_signal("HUP", function()
    if args.config then
      e:request_reload() -- Coalesced: a storm of HUPs costs two reloads.
    else
      e.log("SIGHUP: no config file to reload")
    end
  end)
  -- Runs until a signal ends the process, with no targets too (a reload may
  -- add some): icmprun ends when its tasks have, and this one never does.
  -- It paces Lua's collector meanwhile, so that a cycle never holds the loop.
  require("icmprun.exporter.collector").run(icmprun)
end

return M
