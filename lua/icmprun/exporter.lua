-- SPDX-License-Identifier: MIT

--- A long-running prober with a Prometheus endpoint, on icmprun's own loop.
--
--     local exporter = require "icmprun.exporter"
--     local e = assert(exporter.new{config = "targets.yml"})  -- or groups = {...}
--     assert(e:start())            -- resolves, starts probing
--     assert(e:listen("127.0.0.1:9374"))
--     icmprun.on_signal("HUP", function() e:reload() end)
--
-- Each host of the config (see `icmprun.exporter.config`) is one target,
-- pinged every `interval` with one probe in flight at a time, by the
-- exporter's `icmprun.prober` (every target's schedule in one heap in C, not
-- a task per target: ten thousand sleeping coroutines made each cycle of
-- Lua's collector hold the loop for tens of milliseconds). The targets'
-- first probes are spread evenly over their interval, so that 10,000
-- targets at 1/s send 10 probes every millisecond, not 10,000 every second;
-- after that each keeps its own schedule (a late probe does not shift the
-- ones after it).
--
-- `reload` reads the config again. A target whose series labels (host, the
-- address it resolves to, the group's labels) are unchanged keeps its
-- counters and its schedule, and takes the new size, TOS, TTL, interval and
-- timeout from its next probe on: no gap, no reset. New targets start; the
-- series of removed ones leave the next scrape at once (a probe of theirs in
-- flight still ends, unseen). A config that does not load, or a host that
-- does not resolve, changes nothing: the old targets go on, and the reload
-- reports the error (and `smokeping_prober_config_last_reload_successful`
-- drops to 0).
--
-- Reloads are coalesced: any number of requests (SIGHUPs, POSTs) that come
-- while one runs are served together by one more run after it.
--
-- The HTTP endpoint serves `/metrics` (`icmprun.exporter.metrics`), `/` (the
-- status page, `icmprun.exporter.status`), `/-/healthy`, `/-/ready` and
-- `POST /-/reload`. Scrapes that come while a render is being made share it, and at most `MAX_HELD_RENDERS` renders are
-- kept for clients still taking one: a new render drops the clients still
-- reading the oldest, so clients that do not read cost a bounded amount of
-- memory, not one copy each.
-- @module icmprun.exporter
local icmprun = require "icmprun"
local config = require "icmprun.exporter.config"
local http = require "icmprun.exporter.http"
local logging = require "icmprun.exporter.log"
local metrics = require "icmprun.exporter.metrics"
local status = require "icmprun.exporter.status"
local probe = require "icmprun.exporter.probe"
local prometheus = require "icmprun.report.prometheus"

local M = {}

local Exporter = {}
Exporter.__index = Exporter

local string_format = string.format

-- The wall clock in seconds, from luv.
local function wall_clock()
  local uv = require "luv"
  local sec, usec = uv.gettimeofday()
  return sec + usec / 1e6
end

--- A new exporter; nothing runs until `start`.
-- @tparam table opts `config` (path of the YAML file) or `groups` (host
--   groups as `config.check` returns them); `buckets` (histogram bounds in
--   seconds, default smokeping_prober's); `logger` (from
--   `icmprun.exporter.log`, default: info and up as logfmt on stderr) or
--   `log` (a function taking each message, at every level)
-- @treturn[1] Exporter
-- @treturn[2] nil, string what is wrong with the options
function M.new(opts)
  opts = opts or {}
  if (opts.config == nil) == (opts.groups == nil) then
    return nil, "exporter: give either config (a file) or groups"
  end
  local ok, buckets = pcall(prometheus.histogram, opts.buckets)
  if not ok then
    return nil, "exporter: " .. tostring(buckets):gsub("^.-: ", "", 1)
  end
  local logger = opts.logger
  if not logger and opts.log then
    local write = opts.log
    logger = { enabled = function() return true end }
    for _, level in ipairs(logging.LEVELS) do
      logger[level] = function(msg)
        write(msg)
      end
    end
  end
  logger = logger or logging.new()
  return setmetatable({
    modules = opts.modules or { icmp = probe.DEFAULT_MODULE },
    config_path = opts.config,
    groups = opts.groups,
    buckets = buckets.buckets,
    logger = logger,
    log = logger.info,
    reload_waiters = {},
    renders = {},  -- renders still being written to clients, oldest first
    render_waiters = nil, -- while a render is made: who waits for it
    by_key = {},   -- label key -> target
    order = {},    -- targets in series order
    by_ip = {},    -- address -> its targets
    by_id = {},    -- prober's id -> target
    prober = nil,  -- icmprun.prober, made on first use
    duplicates_seen = {}, -- address -> icmprun.duplicates() counted so far
    reloading = false,
    reload_ok = 0,
    reload_time = 0,
    started_at = wall_clock(),
    scrape_seconds = 0,
    max_send_delay = 0, -- ms, as the last scrape reported it
  }, Exporter)
end

-- The groups of the config file, or the fixed ones.
function Exporter:read_groups()
  if self.config_path then
    return config.load(self.config_path)
  end
  return self.groups
end

-- Resolves every host of the groups (at once, each in a task of its own) and
-- returns the wanted targets in order, {key, host, ip, group}; or nil, err.
local function resolve_all(groups)
  local wanted, tasks = {}, {}
  for _, group in ipairs(groups) do
    for _, host in ipairs(group.hosts) do
      local entry = { host = host, group = group }
      wanted[#wanted + 1] = entry
      tasks[#tasks + 1] = icmprun.spawn(function()
        -- resolve raises on a name it cannot take (config.check refuses
        -- those first); a raise here must not end the exporter either.
        local ok, ip, err = pcall(icmprun.resolve, host,
          { family = group.family ~= 0 and group.family or nil })
        if ok then
          entry.ip, entry.err = ip, err
        else
          entry.err = tostring(ip):gsub("^bad argument #%d+ to '[^']*' %((.*)%)$", "%1")
        end
      end)
    end
  end
  for _, task in ipairs(tasks) do
    task:join()
  end
  local seen = {}
  for _, entry in ipairs(wanted) do
    if not entry.ip then
      return nil, string_format("host %s does not resolve: %s", entry.host, tostring(entry.err))
    end
    entry.key = metrics.label_key(entry.host, entry.ip, entry.group.labels)
    if seen[entry.key] then
      return nil, string_format("host %s (%s) is listed twice with the same labels",
        entry.host, entry.ip)
    end
    seen[entry.key] = true
  end
  return wanted
end

-- What ping is given for a group.
local function probe_options(group)
  return { timeout = group.timeout, size = group.size, tos = group.tos, ttl = group.ttl,
    source = group.source }
end

-- The exporter's prober (`icmprun.prober`), made on first use: every
-- target's schedule in one C heap, and its counters and status-page
-- history in C too, so that a probe costs no Lua at all. A probe that
-- cannot be sent (no socket, a size the family cannot carry, a source that
-- is not this host's) is an `error` result, counted in
-- smokeping_send_errors_total; the log hears of it when a target's sends
-- start to fail and when they work again, not per probe.
function Exporter:get_prober()
  if not self.prober then
    local by_id = self.by_id
    self.prober = icmprun.prober{
      buckets = self.buckets,
      on_failing = function(id, failing, why)
        local target = by_id[id]
        if failing then
          self.logger.warn("a probe could not be sent", { "ip", target.ip, "err", why })
        else
          self.logger.info("probes are sent again", { "ip", target.ip })
        end
      end,
      on_error = function(message)
        self.logger.error("error in a prober's callback: " .. message)
      end,
    }
  end
  return self.prober
end

-- The longest a probe went out past its due time since the last call, in
-- ms (the exporter's `max_send_delay`, reported at each scrape).
function Exporter:take_max_send_delay()
  return self.prober and self.prober:take_max_delay() or 0
end

--- Adds the duplicate replies that came since the last call to the targets
-- they came from (`target.duplicates`). The engine tells a duplicate by the
-- address it came from (`icmprun.duplicates()`), not by who probed it, so
-- targets that probe one address (two names for it, or one host in two
-- groups) each count its duplicates, as smokeping_prober's pinger per host
-- would see its own. Called before each render and before the targets
-- change, so that a target added by a reload starts at 0.
function Exporter:count_duplicates()
  local now, seen = icmprun.duplicates(), self.duplicates_seen
  for ip, total in pairs(now) do
    local new = total - (seen[ip] or 0)
    if new > 0 then
      seen[ip] = total
      for _, target in ipairs(self.by_ip[ip] or {}) do
        target:add_duplicates(new)
      end
    end
  end
end

-- Makes the wanted targets the running ones. Returns added, kept, removed.
function Exporter:apply(wanted)
  self:count_duplicates() -- Those so far go to the targets of the old config.
  local by_key, order = {}, {}
  local added, kept = 0, 0
  local prober = self:get_prober()
  for i, entry in ipairs(wanted) do
    local target = self.by_key[entry.key]
    local options, interval = probe_options(entry.group), entry.group.interval
    if target then
      kept = kept + 1
      prober:update(target.id, options, interval)
    else
      added = added + 1
      -- Spread the first probes over the interval, by position in the list.
      local id = prober:add(entry.ip, options, interval, interval * (i - 1) / #wanted)
      target = metrics.new_target(entry.key, self.buckets, prober, id)
      target.ip = entry.ip
      self.by_id[id] = target
    end
    target.options, target.interval = options, interval
    by_key[entry.key], order[i] = target, target
  end
  local removed = 0
  for key, target in pairs(self.by_key) do
    if not by_key[key] then
      self:remove_target(target)
      removed = removed + 1
    end
  end
  self.by_key, self.order = by_key, order
  self.by_ip = {}
  for _, target in ipairs(order) do
    local list = self.by_ip[target.ip] or {}
    list[#list + 1] = target
    self.by_ip[target.ip] = list
  end
  return added, kept, removed
end

-- Stops probing a target; a probe of it in flight ends unseen.
function Exporter:remove_target(target)
  self.prober:remove(target.id)
  self.by_id[target.id] = nil
  target.id = nil
end

-- Whether the engine has a socket for each family of the wanted targets:
-- nil, or why not (with the sysctl that fixes it). Without one, every probe
-- of those targets would be an error; better to refuse at once.
local function check_sockets(wanted)
  local info = icmprun.info()
  for _, entry in ipairs(wanted) do
    local family = entry.ip:find(":", 1, true) and "ipv6" or "ipv4"
    if not info[family] then
      return string_format("no ICMP socket for %s (%s): %s", entry.host, entry.ip,
        tostring(info[family .. "_error"]))
    end
  end
  return nil
end

-- Loads and applies the config. Returns the number of targets, or nil, err.
function Exporter:load()
  local groups, err = self:read_groups()
  local wanted
  if groups then
    wanted, err = resolve_all(groups)
  end
  if wanted then
    err = check_sockets(wanted)
    if err then
      wanted = nil
    end
  end
  if not wanted then
    self.reload_ok = 0
    return nil, err
  end
  local added, kept, removed = self:apply(wanted)
  self.reload_ok = 1
  self.reload_time = wall_clock()
  return #wanted, added, kept, removed
end

--- Loads the config and starts probing. Must run in a task (it resolves).
-- @treturn[1] integer the number of targets
-- @treturn[2] nil, string what is wrong
function Exporter:start()
  local n, err = self:load()
  if not n then
    return nil, err
  end
  self.log(string_format("probing %d target(s)", n))
  return n
end

--- Asks for a reload (see the module's text) and returns at once. Requests
-- made while a reload runs are served together by one more reload after
-- it, so a storm of SIGHUPs costs two reloads, not one each.
-- @tparam[opt] function on_result called with the reload's results (as
--   `reload` returns them) once a reload that began after this call ends
function Exporter:request_reload(on_result)
  self.reload_pending = true
  if on_result then
    self.reload_waiters[#self.reload_waiters + 1] = on_result
  end
  if self.reloading then
    return
  end
  self.reloading = true
  icmprun.spawn(function()
    while self.reload_pending do
      self.reload_pending = false
      local waiters = self.reload_waiters
      self.reload_waiters = {}
      local ok, n, added, kept, removed = pcall(self.load, self)
      if not ok then
        n, added = nil, "internal error: " .. tostring(n)
      end
      if n then
        self.log(string_format("reloaded: %d target(s), %d added, %d kept, %d removed", n,
          added, kept, removed))
      else
        self.logger.error("reload failed, the targets stay as they were: " .. added)
      end
      for _, waiter in ipairs(waiters) do
        local called, err = pcall(waiter, n, added)
        if not called then
          self.logger.error("error after a reload: " .. tostring(err))
        end
      end
    end
    self.reloading = false
  end)
end

--- Reads the config again and applies it (see the module's text). Must run
-- in a task; it waits for a reload that began after the call.
-- @treturn[1] integer the number of targets
-- @treturn[2] nil, string why nothing changed
function Exporter:reload()
  local result
  self:request_reload(function(n, err)
    result = { n, err }
  end)
  while not result do
    icmprun.sleep(5)
  end
  if result[1] then
    return result[1]
  end
  return nil, result[2]
end

--- Stops probing: no target is probed again (a probe in flight ends unseen).
function Exporter:stop()
  for _, target in ipairs(self.order) do
    self:remove_target(target)
  end
  self.by_key, self.order, self.by_ip = {}, {}, {}
  for _, server in ipairs(self.servers or {}) do
    server.close()
  end
  self.servers, self.server = nil, nil
end

-- The HTTP connections open now, on every address served.
function Exporter:connections()
  local n = 0
  for _, server in ipairs(self.servers or {}) do
    n = n + server.connections()
  end
  return n
end

-- The exporter's own samples: config state, targets, last scrape, process.
function Exporter:own_lines()
  local uv = require "luv"
  local usage = uv.getrusage()
  local cpu = usage.utime.sec + usage.utime.usec / 1e6 + usage.stime.sec
    + usage.stime.usec / 1e6
  local fv = prometheus.format_value
  return {
    "# HELP smokeping_prober_config_last_reload_successful Whether the last config load worked.",
    "# TYPE smokeping_prober_config_last_reload_successful gauge",
    "smokeping_prober_config_last_reload_successful " .. self.reload_ok,
    "# HELP smokeping_prober_config_last_reload_success_timestamp_seconds When the config "
      .. "was last loaded successfully.",
    "# TYPE smokeping_prober_config_last_reload_success_timestamp_seconds gauge",
    "smokeping_prober_config_last_reload_success_timestamp_seconds " .. fv(self.reload_time),
    "# HELP icmprun_exporter_targets Targets being probed.",
    "# TYPE icmprun_exporter_targets gauge",
    "icmprun_exporter_targets " .. #self.order,
    "# HELP icmprun_exporter_render_seconds Time taken to render the previous scrape "
      .. "(wall time; the loop runs on meanwhile).",
    "# TYPE icmprun_exporter_render_seconds gauge",
    "icmprun_exporter_render_seconds " .. fv(self.scrape_seconds),
    "# HELP icmprun_exporter_max_send_delay_seconds The longest a probe was sent past its "
      .. "scheduled time since the previous scrape.",
    "# TYPE icmprun_exporter_max_send_delay_seconds gauge",
    "icmprun_exporter_max_send_delay_seconds " .. fv(self.max_send_delay / 1000),
    "# HELP icmprun_exporter_http_connections HTTP connections open now.",
    "# TYPE icmprun_exporter_http_connections gauge",
    "icmprun_exporter_http_connections " .. self:connections(),
    "# HELP process_cpu_seconds_total User and system CPU time spent in seconds.",
    "# TYPE process_cpu_seconds_total counter",
    "process_cpu_seconds_total " .. fv(cpu),
    "# HELP process_resident_memory_bytes Resident memory size in bytes.",
    "# TYPE process_resident_memory_bytes gauge",
    "process_resident_memory_bytes " .. fv(uv.resident_set_memory()),
    "# HELP process_start_time_seconds Start time of the process since the Unix epoch.",
    "# TYPE process_start_time_seconds gauge",
    "process_start_time_seconds " .. fv(self.started_at),
  }
end

--- The Prometheus text of everything now, in pieces (see
-- `metrics.render_pieces`).
-- @tparam[opt] function pause see `metrics.render_pieces`
-- @treturn {string,...}
function Exporter:render_pieces(pause)
  local started = icmprun.now()
  self.max_send_delay = self:take_max_send_delay() -- The next scrape says what came since.
  local own = self:own_lines()
  self:count_duplicates()
  local pieces = metrics.render_pieces(self.order, icmprun.counters(), own, pause)
  self.scrape_seconds = (icmprun.now() - started) / 1000
  return pieces
end

--- The Prometheus text of everything now, rendered in C off the loop (see
-- `metrics.render_bodies`); must run in a task.
-- @tparam[opt] function wants see `metrics.render_bodies`
-- @treturn table `plain` and `gzip` bodies, each a list of one render text
function Exporter:render_bodies(wants)
  local started = icmprun.now()
  self.max_send_delay = self:take_max_send_delay() -- The next scrape says what came since.
  local own = self:own_lines()
  self:count_duplicates()
  local bodies = metrics.render_bodies(self.order, self.buckets, icmprun.counters(), own,
    wants)
  self.scrape_seconds = (icmprun.now() - started) / 1000
  return bodies
end

--- The Prometheus text of everything now.
-- @treturn string
function Exporter:render()
  return table.concat(self:render_pieces())
end


local METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"

--- Renders kept at most for clients still taking one (see the module's text).
M.MAX_HELD_RENDERS = 2

-- Closes a render's texts (`metrics.render_bodies`): their chunks are freed
-- at once, or, for those a response still reads, as soon as it is freed.
local function close_render(render)
  for _, body in pairs(render.bodies) do
    for _, piece in ipairs(body) do
      if type(piece) ~= "string" then
        piece:close()
      end
    end
  end
end

-- Keeps a finished render while clients take it; a new one beyond
-- MAX_HELD_RENDERS drops the clients still taking the oldest, and closes
-- it: its memory goes with the last of those clients.
function Exporter:hold_render(render)
  local live = {}
  for _, r in ipairs(self.renders) do
    if r.holders > 0 then
      live[#live + 1] = r
    end
  end
  while #live >= M.MAX_HELD_RENDERS do
    local oldest = table.remove(live, 1)
    self.logger.warn("dropping clients that have not taken an older scrape",
      { "clients", oldest.holders })
    for abort in pairs(oldest.aborts) do
      abort()
    end
    close_render(oldest)
  end
  live[#live + 1] = render
  self.renders = live
end

-- Whether a request's Accept-Encoding takes gzip (without q=0).
local function accepts_gzip(header)
  for coding in (header or ""):gmatch("[^,]+") do
    local name, params = coding:match("^%s*([%w%-%*]+)%s*(.*)$")
    if name and (name:lower() == "gzip" or name == "*") then
      local q = params:match("[qQ]%s*=%s*([%d.]+)")
      return not q or tonumber(q) ~= 0
    end
  end
  return false
end

-- Answers a scrape: joins the render being made, or starts one. It is
-- rendered in C (`metrics.render_bodies`): the targets' counters are copied
-- a fraction of a millisecond at a time, and the text is formatted (and
-- gzipped, once for every client that takes gzip, as Prometheus does) on
-- the runtime's background thread, so probes keep their schedule while a
-- scrape of 10,000 targets is made.
function Exporter:scrape(req, respond)
  local waiter = { respond = respond, abort = req.abort,
    gzip = accepts_gzip(req.headers["accept-encoding"]) }
  if self.render_waiters then
    table.insert(self.render_waiters, waiter)
    return
  end
  local waiters = { waiter }
  self.render_waiters = waiters
  local function wants()
    local plain, gzip = false, false
    for _, w in ipairs(waiters) do
      if w.gzip then
        gzip = true
      else
        plain = true
      end
    end
    return plain, gzip
  end
  icmprun.spawn(function()
    local ok, bodies = pcall(self.render_bodies, self, wants)
    self.render_waiters = nil
    if not ok then
      self.logger.error("error while rendering the metrics: " .. tostring(bodies))
      for _, w in ipairs(waiters) do
        w.respond(500, "text/plain", "internal error\n")
      end
      return
    end
    -- Every client counted before the first is answered: one that has gone
    -- already is done at once, and must not close the texts under the rest.
    local render = { holders = #waiters, aborts = {}, bodies = bodies }
    for _, w in ipairs(waiters) do
      render.aborts[w.abort] = true
    end
    self:hold_render(render)
    for _, w in ipairs(waiters) do
      local headers = { Vary = "Accept-Encoding" }
      local body = w.gzip and bodies.gzip or bodies.plain
      if body == bodies.gzip then
        headers["Content-Encoding"] = "gzip"
      end
      w.respond(200, METRICS_TYPE, body, { headers = headers,
        on_done = function()
          render.holders = render.holders - 1
          render.aborts[w.abort] = nil
          if render.holders == 0 then
            close_render(render) -- Its memory back now, not at the next GC cycle.
          end
        end })
    end
  end)
end

-- blackbox_exporter's /probe (see `icmprun.exporter.probe`).
function Exporter:probe_request(req, respond)
  local params = req.args
  local module_name = params.module or "icmp"
  local m = self.modules[module_name]
  if not m then
    return respond(400, "text/plain", string_format("Unknown module %q\n", module_name))
  end
  if m.unsupported then
    return respond(400, "text/plain", string_format("module %q uses the %s prober; icmprun "
      .. "serves the icmp prober only\n", module_name, m.unsupported))
  end
  local target = params.target
  if not target or target == "" then
    return respond(400, "text/plain", "Target parameter is missing\n")
  end
  if #target > config.LIMITS.max_name or target:find("[%s%c/]") then
    return respond(400, "text/plain", "Target parameter is not a host name or address\n")
  end
  local timeout, err = probe.timeout(req.headers, m)
  if not timeout then
    return respond(400, "text/plain", err .. "\n")
  end
  icmprun.spawn(function()
    local ok, text, success, why = pcall(probe.run, icmprun, target, m, timeout)
    if not ok then
      self.logger.error("error while probing: " .. tostring(text))
      return respond(500, "text/plain", "internal error\n")
    end
    if not success then
      self.logger.debug("probe failed", { "target", target, "module", module_name,
        "err", tostring(why) })
    end
    respond(200, METRICS_TYPE, text)
  end)
end

-- The methods each path answers; anything else gets 405 with `Allow`.
local READ = { GET = true, HEAD = true }
local WRITE = { POST = true, PUT = true }
local ALLOW_READ, ALLOW_WRITE = "GET, HEAD", "POST, PUT"

-- The HTTP handler.
function Exporter:handle(req, respond, metrics_path)
  local path = req.path
  local function allow(methods, text)
    if methods[req.method] then
      return true
    end
    respond(405, "text/plain", "method " .. req.method .. " is not allowed here\n",
      { headers = { Allow = text } })
    return false
  end
  if path == metrics_path then
    if allow(READ, ALLOW_READ) then
      self:scrape(req, respond)
    end
  elseif path == "/-/reload" then
    if allow(WRITE, ALLOW_WRITE) then
      self:request_reload(function(n, err)
        if n then
          respond(200, "text/plain", string_format("reloaded: %d target(s)\n", n))
        else
          respond(500, "text/plain", "reload failed: " .. err .. "\n")
        end
      end)
    end
  elseif path == "/probe" then
    if allow(READ, ALLOW_READ) then
      self:probe_request(req, respond)
    end
  elseif path == "/-/healthy" or path == "/-/ready" then
    if allow(READ, ALLOW_READ) then
      respond(200, "text/plain", "OK\n")
    end
  elseif path == "/" then
    if allow(READ, ALLOW_READ) then
      respond(200, "text/html; charset=utf-8", status.page(self, req.query, metrics_path,
        wall_clock()))
    end
  else
    respond(404, "text/plain", "not found; metrics are at " .. metrics_path .. "\n")
  end
end

-- Wraps a handler so that only requests with the users' Basic credentials
-- reach it; the others get 401 with a challenge.
local function with_basic_auth(handler, users)
  local web_config = require "icmprun.exporter.web_config"
  local check = web_config.checker(users, require("icmprun.httpd").crypt_check)
  local challenge = { ["WWW-Authenticate"] = 'Basic realm="icmprun exporter"' }
  return function(req, respond)
    if check(req.headers.authorization) then
      return handler(req, respond)
    end
    respond(401, "text/plain", "Unauthorized\n", { headers = challenge })
  end
end

--- Serves the endpoints over HTTP, their handlers on the loop
-- (`icmprun.exporter.http`: libmicrohttpd on a thread of its own).
-- @tparam string address "host:port" (port 0: any free one)
-- @tparam[opt="/metrics"] string metrics_path
-- @tparam[opt] table opts limits for `icmprun.exporter.http`; `tls`
--   ({cert = PEM, key = PEM}: HTTPS), `users` (name -> bcrypt hash: Basic
--   authentication), `fd` (a listening socket to serve instead of `address`)
-- @treturn[1] table the server (`host`, `port`, `close()`)
-- @treturn[2] nil, string why not
function Exporter:listen(address, metrics_path, opts)
  metrics_path = metrics_path or "/metrics"
  opts = opts or {}
  local options = {}
  for k, v in pairs(opts) do
    options[k] = v
  end
  options.on_error = function(err)
    self.logger.error("error while serving: " .. tostring(err))
  end
  local handler = function(req, respond)
    self:handle(req, respond, metrics_path)
  end
  if opts.users then
    handler = with_basic_auth(handler, opts.users)
  end
  local server, err = http.listen(address, handler, options)
  if not server then
    return nil, err
  end
  self.servers = self.servers or {}
  self.servers[#self.servers + 1] = server
  self.server = self.server or server
  return server
end

return M
