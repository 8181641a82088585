--- A long-running prober with a Prometheus endpoint, on icmprun's own loop.
--
--     local exporter = require "icmprun.exporter"
--     local e = assert(exporter.new{config = "targets.yml"})  -- or groups = {...}
--     assert(e:start())            -- resolves, starts probing
--     assert(e:listen("127.0.0.1:9374"))
--     icmprun.on_signal("HUP", function() e:reload() end)
--
-- Each host of the config (see `icmprun.exporter.config`) is one target,
-- pinged every `interval` by a task of its own with one probe in flight at a
-- time. The targets' first probes are spread evenly over their interval, so
-- that 10,000 targets at 1/s send 10 probes every millisecond, not 10,000
-- every second; after that each keeps its own schedule (a late probe does not
-- shift the ones after it).
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
-- The HTTP endpoint serves `/metrics` (`icmprun.exporter.metrics`), `/` (the
-- status page, `icmprun.exporter.status`), `/-/healthy`, and `POST /-/reload`.
-- @module icmprun.exporter
local icmprun = require "icmprun"
local config = require "icmprun.exporter.config"
local http = require "icmprun.exporter.http"
local metrics = require "icmprun.exporter.metrics"
local status = require "icmprun.exporter.status"
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
--   seconds, default smokeping_prober's); `log` (function taking a line,
--   default: to stderr)
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
  return setmetatable({
    config_path = opts.config,
    groups = opts.groups,
    buckets = buckets.buckets,
    log = opts.log or function(line)
      io.stderr:write("icmprun exporter: ", line, "\n")
    end,
    by_key = {},   -- label key -> target
    order = {},    -- targets in series order
    reloading = false,
    reload_ok = 0,
    reload_time = 0,
    started_at = wall_clock(),
    scrape_seconds = 0,
    max_send_delay = 0, -- ms, since the previous scrape
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
        local ip, err = icmprun.resolve(host, { family = group.family ~= 0 and group.family or nil })
        entry.ip, entry.err = ip, err
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
  return { timeout = group.timeout, size = group.size, tos = group.tos, ttl = group.ttl }
end

-- The task of one target: a probe every interval, until it is removed.
-- Each send's delay past its scheduled time feeds the exporter's
-- `max_send_delay` (ms, since the previous scrape): the sign of a loop too
-- busy to keep the schedule.
local function run_target(exporter, target, first_delay)
  local next_at = icmprun.now() + first_delay
  icmprun.sleep(first_delay)
  while not target.removed do
    local now = icmprun.now()
    if now - next_at > exporter.max_send_delay then
      exporter.max_send_delay = now - next_at
    end
    target:on_send()
    local r = icmprun.ping(target.ip, target.options)
    target:record(r)
    status.record(target, r, wall_clock()) -- the status page's history
    next_at = next_at + target.interval
    now = icmprun.now()
    if next_at < now then
      next_at = now -- Fell behind (a busy loop): go on from now, without a burst.
    end
    icmprun.sleep(next_at - now)
  end
end

-- Makes the wanted targets the running ones. Returns added, kept, removed.
function Exporter:apply(wanted)
  local by_key, order = {}, {}
  local added, kept = 0, 0
  for i, entry in ipairs(wanted) do
    local target = self.by_key[entry.key]
    if target then
      kept = kept + 1
    else
      added = added + 1
      target = metrics.new_target(entry.key, self.buckets)
      target.ip = entry.ip
    end
    target.options = probe_options(entry.group)
    target.interval = entry.group.interval
    by_key[entry.key], order[i] = target, target
    if not target.task then
      -- Spread the first probes over the interval, by position in the list.
      local delay = entry.group.interval * (i - 1) / #wanted
      target.task = icmprun.spawn(run_target, self, target, delay)
    end
  end
  local removed = 0
  for key, target in pairs(self.by_key) do
    if not by_key[key] then
      target.removed = true
      removed = removed + 1
    end
  end
  self.by_key, self.order = by_key, order
  return added, kept, removed
end

-- Loads and applies the config. Returns the number of targets, or nil, err.
function Exporter:load()
  local groups, err = self:read_groups()
  local wanted
  if groups then
    wanted, err = resolve_all(groups)
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

--- Reads the config again and applies it (see the module's text). Must run
-- in a task; reloads asked for while one runs wait for it, in turn.
-- @treturn[1] integer the number of targets
-- @treturn[2] nil, string why nothing changed
function Exporter:reload()
  while self.reloading do
    icmprun.sleep(10)
  end
  self.reloading = true
  local ok, n, added, kept, removed = pcall(self.load, self)
  self.reloading = false
  if not ok then
    error(n, 0)
  end
  if not n then
    self.log("reload failed, the targets stay as they were: " .. added)
    return nil, added
  end
  self.log(string_format("reloaded: %d target(s), %d added, %d kept, %d removed", n, added,
    kept, removed))
  return n
end

--- Stops probing: every target's task ends after its probe in flight.
function Exporter:stop()
  for _, target in ipairs(self.order) do
    target.removed = true
  end
  self.by_key, self.order = {}, {}
  if self.server then
    self.server.close()
    self.server = nil
  end
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
  local own = self:own_lines()
  self.max_send_delay = 0 -- Reported: the next scrape says what came since.
  local pieces = metrics.render_pieces(self.order, icmprun.stats(), own, pause)
  self.scrape_seconds = (icmprun.now() - started) / 1000
  return pieces
end

-- Lets the loop turn once: sends, replies and other tasks go on.
local function let_loop_run()
  icmprun.sleep(0)
end

--- The Prometheus text of everything now.
-- @treturn string
function Exporter:render()
  return table.concat(self:render_pieces())
end


-- The HTTP handler.
function Exporter:handle(req, respond, metrics_path)
  local path = req.path
  if path == metrics_path then
    if req.method ~= "GET" then
      return respond(405, "text/plain", "use GET\n")
    end
    -- Rendered in a task that lets the loop run every few hundred targets:
    -- a scrape of 10,000 targets takes a few hundred ms, which would
    -- otherwise hold every probe due meanwhile.
    icmprun.spawn(function()
      local ok, pieces = pcall(self.render_pieces, self, let_loop_run)
      if ok then
        respond(200, "text/plain; version=0.0.4; charset=utf-8", pieces)
      else
        self.log("error while rendering the metrics: " .. tostring(pieces))
        respond(500, "text/plain", "internal error\n")
      end
    end)
    return
  elseif path == "/-/reload" then
    if req.method ~= "POST" and req.method ~= "PUT" then
      return respond(405, "text/plain", "use POST to reload\n")
    end
    icmprun.spawn(function()
      local n, err = self:reload()
      if n then
        respond(200, "text/plain", string_format("reloaded: %d target(s)\n", n))
      else
        respond(500, "text/plain", "reload failed: " .. err .. "\n")
      end
    end)
  elseif path == "/-/healthy" or path == "/-/ready" then
    respond(200, "text/plain", "OK\n")
  elseif path == "/" then
    respond(200, "text/html; charset=utf-8", status.page(self, req.query, metrics_path,
      wall_clock()))
  else
    respond(404, "text/plain", "not found; metrics are at " .. metrics_path .. "\n")
  end
end

--- Serves the endpoints over HTTP on the loop.
-- @tparam string address "host:port" (port 0: any free one)
-- @tparam[opt="/metrics"] string metrics_path
-- @treturn[1] table the server (`host`, `port`, `close()`)
-- @treturn[2] nil, string why not
function Exporter:listen(address, metrics_path)
  metrics_path = metrics_path or "/metrics"
  local server, err = http.listen(address, function(req, respond)
    self:handle(req, respond, metrics_path)
  end, function(handler_err)
    self.log("error while serving: " .. tostring(handler_err))
  end)
  if not server then
    return nil, err
  end
  self.server = server
  return server
end

return M
