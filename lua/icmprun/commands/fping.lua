-- SPDX-License-Identifier: MIT

--- `icmprun fping`: fping's command line, output and exit codes on icmprun.
--
-- Debian's fping 5.1 is the reference: the same options (bundled as its
-- option parser allows: `-aq`, `-c3`, `--count=3`, options after targets),
-- the same lines on the same streams, the same exit codes (0: every host
-- answered, 1: some did not, 2: a name did not resolve, 1 also for a bad
-- command line, 4: no socket). `-J` writes upstream fping's JSON lines
-- (fping 5.4 and later; 5.1 has no JSON). Options of fping that this
-- command cannot honour are refused, never ignored.
--
-- The command reads the options (`icmprun.commands.fping.options`), finds
-- the targets (`icmprun.commands.fping.targets`) and drives one
-- `icmprun.sweep` over all of them: `-p` is the sweep's per-address
-- interval, `-i` its rate (1000 / i probes per second), `-r`/`-B` its
-- retries and backoff. The lines come from `icmprun.report.fping`.
-- @module icmprun.commands.fping
local icmprun = require "icmprun"
local options = require "icmprun.commands.fping.options"
local report = require "icmprun.report.fping"
local targets = require "icmprun.commands.fping.targets"

local M = {}

M.summary = "fping 5.1's options, output and exit codes (-c -C -l -g -a -u -s -J ...)"

local io_stdout, io_stderr = io.stdout, io.stderr
local string_format = string.format
local math_min, math_max = math.min, math.max

-- Loop mode: probes per address until Ctrl-C (more than a year at -p 10).
local LOOP_COUNT = 1000000000

-- glibc's strerror texts (what fping prints) for send errors, by a
-- result's code.
local ERRNO_MESSAGES = {
  EHOSTUNREACH = "No route to host",
  ENETUNREACH = "Network is unreachable",
  EACCES = "Permission denied",
  EPERM = "Operation not permitted",
  EMSGSIZE = "Message too long",
  ENOBUFS = "No buffer space available",
  EINVAL = "Invalid argument",
  EADDRNOTAVAIL = "Cannot assign requested address",
  EHOSTDOWN = "Host is down",
  ECONNREFUSED = "Connection refused",
}

--- strerror's text for a failed result: by its code, else its own message.
local function errno_message(r)
  local text = ERRNO_MESSAGES[r.code] or r.err or "unknown error"
  return text:sub(1, 1):upper() .. text:sub(2)
end

-- fping 5.1's names for ICMP errors, by type (and code for unreachables).
local ICMP_TYPES = { [3] = "ICMP Unreachable", [4] = "ICMP Source Quench",
  [5] = "ICMP Redirect", [11] = "ICMP Time Exceeded", [12] = "ICMP Parameter Problem" }
local ICMP_UNREACH = { [0] = "ICMP Network Unreachable", "ICMP Host Unreachable",
  "ICMP Protocol Unreachable", "ICMP Port Unreachable",
  "ICMP Unreachable (Fragmentation Needed)", "ICMP Unreachable (Source Route Failed)",
  "ICMP Unreachable (Destination Network Unknown)",
  "ICMP Unreachable (Destination Host Unknown)",
  "ICMP Unreachable (Source Host Isolated)",
  "ICMP Unreachable (Communication with Network Prohibited)",
  "ICMP Unreachable (Communication with Host Prohibited)",
  "ICMP Unreachable (Network Unreachable For Type Of Service)",
  "ICMP Unreachable (Host Unreachable For Type Of Service)",
  "ICMP Unreachable (Communication Administratively Prohibited)",
  "ICMP Unreachable (Host Precedence Violation)",
  "ICMP Unreachable (Precedence cutoff in effect)" }

-- ICMPv6 errors, as later fping versions name them (5.1 does not decode
-- them and prints nothing): by type, then by code.
local ICMP6_TYPES = {
  [1] = { "ICMPv6 Destination Unreachable", { [0] = "No route to destination",
    "Communication with destination administratively prohibited",
    "Beyond scope of source address", "Address unreachable", "Port unreachable",
    "Source address failed ingress/egress policy", "Reject route to destination",
    "Error in Source Routing Header", "Headers too long", "Error in P-Route" } },
  [3] = { "ICMPv6 Time Exceeded", { [0] = "Hop limit exceeded in transit",
    "Fragment reassembly time exceeded" } },
  [4] = { "ICMPv6 Parameter Problem", { [0] = "Erroneous header field encountered",
    "Unrecognized Next Header type encountered",
    "Unrecognized IPv6 option encountered" } },
}

--- fping's warning for an ICMP error that answered one of our probes.
local function icmp_error_message(r, host)
  local from, what = r.from or r.addr
  if r.addr:find(":", 1, true) then
    local kind = ICMP6_TYPES[r.icmp_type]
    if r.icmp_type == 2 then
      what = "ICMPv6 Packet Too Big"
    elseif kind then
      what = string_format("%s (%s)", kind[1],
        kind[2][r.icmp_code] or string_format("Code %d", r.icmp_code))
    else
      what = string_format("ICMPv6 Type %d Code %d", r.icmp_type, r.icmp_code)
    end
    return string_format("%s from %s for ICMPv6 Echo Request sent to %s\n", what, from,
      host)
  end
  if r.icmp_type == 3 then
    what = ICMP_UNREACH[r.icmp_code] or "ICMP Unreachable (Invalid Code)"
  else
    what = ICMP_TYPES[r.icmp_type] or string_format("ICMP %d", r.icmp_type)
  end
  return string_format("%s from %s for ICMP Echo sent to %s\n", what, from, host)
end

--- The wall clock in Unix seconds, for -D: luv's gettimeofday when luv is
-- there (icmprun.now is monotonic), whole seconds otherwise.
local function wall_clock()
  local ok, uv = pcall(require, "luv")
  if ok and type(uv) == "table" and uv.gettimeofday then
    return function()
      local s, us = uv.gettimeofday()
      return s + us / 1e6
    end
  end
  return os.time
end

--- A tally as `icmprun.report.fping` reads it (the fields of an
-- `icmprun.stats` object that fping shows), kept small: a sweep of a /16
-- holds one per host.
local function new_tally()
  return { sent = 0, received = 0 }
end

--- Counts one probe's outcome: its RTT (ms), or nil for a loss.
local function tally_add(t, rtt)
  t.sent = t.sent + 1
  if rtt then
    local n = t.received + 1
    t.received = n
    t.sum = (t.sum or 0) + rtt
    t.mean = t.sum / n
    if n == 1 or rtt < t.min then
      t.min = rtt
    end
    if n == 1 or rtt > t.max then
      t.max = rtt
    end
  end
end

--- The engine's counters that fping's -s reports, as a difference from
-- `base` (they count for the whole process).
local function engine_counts(base)
  local c = icmprun.counters()
  local now = {
    sent = c.sent + c.send_errors,
    received = c.replies + c.duplicates + c.late,
    other_icmp = c.icmp_errors,
  }
  if base then
    for k, v in pairs(base) do
      now[k] = now[k] - v
    end
  end
  return now
end

-- ---- A run: its hosts, its counts, and the lines of each result ------------

--- The state of one run. A host is its own tally (see new_tally) plus
-- `name` (as given), `addr`, `rtts` (-C: RTT or false per probe) and
-- `split` (the interval's tally, once -Q or SIGQUIT asked for one).
-- `by_addr` maps an address to its host, or to the list of hosts sharing
-- it (a target given twice is two hosts, as in fping).
local Run = {}
Run.__index = Run

local function new_run(o, started)
  return setmetatable({
    o = o, out = io_stdout, err = io_stderr,
    start = started or icmprun.now(), base = engine_counts(),
    hosts = {}, by_addr = {}, shares = {}, width = 0,
    unknown = 0, alive = 0, timeouts = 0, replies = 0, rtt_sum = 0,
    splitting = false, finished = false,
    wall = o.timestamp and wall_clock() or function() return nil end,
  }, Run)
end

-- Adds a host to probe: `name` as it is shown, `addr` the address probed.
function Run:add_host(name, addr)
  local h = new_tally()
  h.name, h.addr = name, addr
  h.rtts = self.o.report_all and {} or nil
  self.hosts[#self.hosts + 1] = h
  self.width = math_max(self.width, #name)
  local prev = self.by_addr[addr]
  if prev == nil then
    self.by_addr[addr] = h
  elseif prev.name then
    self.by_addr[addr] = { prev, h }
  else
    prev[#prev + 1] = h
  end
end

-- Counts a target that did not resolve, and says so as fping does.
function Run:add_unknown(name, message)
  self.unknown = self.unknown + 1
  if not self.o.quiet then
    self.err:write(report.name_error(name, message))
  end
  if self.o.json then
    self.out:write(report.json_warning(name, message))
  end
end

--- The host a result belongs to. A repeated address is several hosts:
-- each takes its share of the results for one probe and attempt.
function Run:host_of(r)
  local list = self.by_addr[r.target]
  if list.name then
    return list
  end
  local key = string_format("%s#%d#%d", r.target, r.n, r.attempts or 1)
  local k = (self.shares[key] or 0) + 1
  self.shares[key] = k < #list and k or nil
  return list[math_min(k, #list)]
end

--- Counts an outcome in the host's tally (and interval): an RTT or nil.
function Run:count(h, rtt)
  tally_add(h, rtt)
  if self.splitting then
    h.split = h.split or new_tally()
    tally_add(h.split, rtt)
  end
  if rtt then
    if h.received == 1 then
      self.alive = self.alive + 1
    end
    self.replies = self.replies + 1
    self.rtt_sum = self.rtt_sum + rtt
    self.rtt_min = math_min(self.rtt_min or rtt, rtt)
    self.rtt_max = math_max(self.rtt_max or rtt, rtt)
  end
end

--- Count and loop modes: a line per reply and per timeout.
function Run:on_count_result(h, r)
  local o, index = self.o, r.n - 1
  if r.status == "reply" then
    self:count(h, r.rtt)
    if o.report_all then
      h.rtts[r.n] = r.rtt
    end
    if o.per_recv then
      local time = self.wall()
      self.out:write(o.json and report.json_reply(h.name, index, r.bytes, r.rtt, time)
        or report.reply(h.name, self.width, index, r.bytes, r.rtt, h, time))
    end
    return
  end
  -- An ICMP error is reported, then counts as the timeout fping sees later.
  if r.icmp_type ~= nil and not o.quiet then
    self.err:write(icmp_error_message(r, h.name))
  end
  self:count(h, nil)
  if o.report_all then
    h.rtts[r.n] = false
  end
  -- A failed send has no timeout, and fping says nothing of it here.
  if r.status == "timeout" or r.icmp_type ~= nil then
    self.timeouts = self.timeouts + 1
    if o.per_recv then
      local time = self.wall()
      self.out:write(o.json and report.json_timeout(h.name, index, time)
        or report.timeout(h.name, self.width, index, h, time))
    end
  end
end

--- The default mode: a line for each host that answers.
function Run:on_alive_result(h, r, retrying)
  local o = self.o
  if r.status == "reply" then
    self:count(h, r.rtt)
    if h.received == 1 and (o.verbose or o.alive) then
      self.out:write(report.alive(h.name, o.verbose, o.elapsed and r.rtt or nil))
    end
    if o.fast_reachable and self.alive >= o.min_reachable then
      -- -X: enough hosts answered; the verdict now, without waiting.
      self.out:write(string_format("Enough hosts reachable (required: %d, reachable: %d)\n",
        o.min_reachable, self.alive))
      self.out:flush()
      os.exit(0)
    end
  elseif r.status == "timeout" or r.icmp_type ~= nil then
    if r.icmp_type ~= nil and not o.quiet then
      self.err:write(icmp_error_message(r, h.name))
    end
    self.timeouts = self.timeouts + 1
    self:count(h, nil)
    if r.icmp_type ~= nil and not retrying then
      self:retry_after_error(h, r)
    end
  else
    self:count(h, nil)
    if o.verbose then
      self.err:write(report.send_error(h.name, errno_message(r)))
    end
  end
end

--- After an ICMP error, fping waits out the probe's timeout and tries again
-- while retries are left, as after a silence; a sweep ends a probe at the
-- error. So the remaining attempts are made here, in a task of their own:
-- each after the previous one's timeout (times the backoff), until a reply,
-- or the retries run out. The run waits for these tasks before it ends.
function Run:retry_after_error(h, r)
  local o = self.o
  local attempt = r.attempts or 1
  if attempt > o.retry then
    return
  end
  local backoff = o.backoff_on and o.backoff or 1
  local opts = { size = o.size, tos = o.tos, ttl = o.ttl > 0 and o.ttl or nil,
    source = o.source, interface = o.interface, payload = o.random and "random" or nil }
  -- A source of the other family does not apply to this host's probes.
  if o.source and (o.source_family == 6) ~= (h.addr:find(":", 1, true) ~= nil) then
    opts.source = nil
  end
  self.retries = self.retries or {}
  self.retries[#self.retries + 1] = icmprun.spawn(function()
    local last = r
    while attempt <= o.retry do
      local timeout = o.timeout * backoff ^ (attempt - 1)
      local wait = last.status == "timeout" and 0 or timeout - (last.rtt or 0)
      if wait > 0 then
        icmprun.sleep(wait)
      end
      attempt = attempt + 1
      opts.timeout = math_max(1, o.timeout * backoff ^ (attempt - 1))
      local next_r = icmprun.ping(h.addr, opts)
      if not next_r then
        return -- No socket any more: nothing more can be sent.
      end
      next_r.attempts, next_r.target, next_r.n = attempt, r.target, r.n
      self:on_alive_result(h, next_r, true)
      if next_r.status ~= "timeout" and next_r.icmp_type == nil then
        return -- A reply, or a send that failed: fping stops there too.
      end
      last = next_r
    end
  end)
end

--- The -Q report (and SIGQUIT's): each host's tally since the last one.
-- Before the first, the interval is the whole run so far.
function Run:print_splits()
  local o, t = self.o, os.time()
  if o.netdata then
    for _, h in ipairs(self.hosts) do
      local split = self.splitting and (h.split or new_tally()) or h
      self.out:write(report.netdata(h.name, split, o.report_interval, not self.netdata_sent))
      h.split = nil
    end
    self.netdata_sent = true
    self.splitting = true
    return
  end
  if not o.json then
    if o.verbose or o.per_recv then
      self.err:write("\n")
    end
    self.err:write(report.interval_header(t))
  end
  for _, h in ipairs(self.hosts) do
    local split = self.splitting and (h.split or new_tally()) or h
    if o.json then
      self.out:write(report.json_interval(h.name, split, t))
    else
      self.err:write(report.summary(h.name, self.width, split, o.outage and o.period))
    end
    h.split = nil
  end
  self.splitting = true
end

--- Prints what fping prints at the end; returns its exit status.
function Run:finish()
  local o, out, err = self.o, self.out, self.err
  self.finished = true
  local unreachable = 0
  for _, h in ipairs(self.hosts) do
    if h.received == 0 then
      unreachable = unreachable + 1
      if o.verbose or o.unreachable then
        out:write(report.unreachable(h.name, o.verbose))
      end
    end
  end
  if o.count_on or o.loop then
    if not o.json and (o.verbose or o.per_recv) then
      err:write("\n")
    end
    for _, h in ipairs(self.hosts) do
      if o.json then
        out:write(o.report_all and report.json_rtt_list(h.name, h.rtts, h.sent)
          or report.json_summary(h.name, h))
      else
        err:write(o.report_all and report.rtt_list(h.name, self.width, h.rtts, h.sent)
          or report.summary(h.name, self.width, h, o.outage and o.period))
      end
    end
  end
  if o.stats then
    local c = engine_counts(self.base)
    local g = {
      targets = #self.hosts, alive = self.alive, unreachable = unreachable,
      unknown = self.unknown, timeouts = self.timeouts, sent = c.sent,
      received = c.received, other_icmp = c.other_icmp, min = self.rtt_min,
      max = self.rtt_max, avg = self.replies > 0 and self.rtt_sum / self.replies or nil,
      elapsed = (icmprun.now() - self.start) / 1000,
    }
    if o.json then
      out:write(report.json_stats(g))
    else
      err:write(report.global_stats(g))
    end
  end
  if o.min_reachable then
    -- fping -x: the verdict is whether enough hosts answered.
    local reachable = #self.hosts - unreachable
    out:write(string_format("%s hosts reachable (required: %d, reachable: %d)\n",
      reachable >= o.min_reachable and "Enough" or "Not enough", o.min_reachable, reachable))
    out:flush()
    return reachable >= o.min_reachable and 0 or 1
  end
  out:flush()
  if self.unknown > 0 then
    return 2
  end
  return self.alive == #self.hosts and 0 or 1
end

--- Ctrl-C ends the run with the summary of what has come back so far;
-- SIGQUIT prints an interval report; -Q prints one every so often.
function Run:watch()
  icmprun.on_signal("INT", function()
    if not self.finished then
      os.exit(self:finish())
    end
  end)
  icmprun.on_signal("QUIT", function()
    self:print_splits()
  end)
  local o = self.o
  if o.report_interval > 0 and (o.count_on or o.loop) then
    -- Polls in short naps, so that the run ends soon after the sweep does.
    icmprun.spawn(function()
      local every = o.report_interval * 1000
      local next_at = self.start + every
      while not self.finished do
        local now = icmprun.now()
        if now >= next_at then
          self:print_splits()
          while now >= next_at do
            next_at = next_at + every
          end
        else
          icmprun.sleep(math_min(next_at - now, 100))
        end
      end
    end)
  end
end

--- The sweep's options for fping's settings.
local function sweep_options(o)
  local count_mode = o.count_on or o.loop
  return {
    timeout = o.timeout, size = o.size, tos = o.tos,
    ttl = o.ttl > 0 and o.ttl or nil,
    -- The engine applies a source to probes of its own family only, as
    -- fping binds only that family's socket.
    source = o.source, interface = o.interface,
    payload = o.random and "random" or nil,
    count = o.loop and LOOP_COUNT or o.count,
    interval = o.period,
    rate = o.interval > 0 and math_min(1000 / o.interval, 1e9) or 0,
    retries = count_mode and 0 or o.retry,
    backoff = o.backoff_on and o.backoff or 1,
    every_attempt = not count_mode,
    workers = o.jobs,
  }
end

--- Sweeps every host and hands each result to its handler.
function Run:sweep()
  local o = self.o
  local opts = sweep_options(o)
  local handle = (o.count_on or o.loop) and self.on_count_result or self.on_alive_result
  local addrs = {}
  for i, h in ipairs(self.hosts) do
    addrs[i] = h.addr
  end
  for r in icmprun.sweep(addrs, opts) do
    -- fping drops a reply slower than the probe's timeout (only a timeout
    -- below the engine's millisecond resolution lets one through): it then
    -- counts as a timeout.
    local timeout = o.timeout * opts.backoff ^ ((r.attempts or 1) - 1)
    if r.status == "reply" and r.rtt > timeout then
      r = { status = "timeout", n = r.n, attempts = r.attempts, target = r.target,
        addr = r.addr }
    end
    handle(self, self:host_of(r), r)
  end
  for _, task in ipairs(self.retries or {}) do
    task:join()
  end
end

--- How hosts are shown: as given; by address (-A); by the name reverse
-- DNS gives for an address given (-n), or for every target (-d). A lookup
-- that fails shows the address, as getnameinfo does. As in fping, lookups
-- are made one by one before probing starts.
local function display_name(o)
  local reverse
  if o.rdns or o.by_name then
    local ok, uv = pcall(require, "luv")
    reverse = function(addr)
      if not ok then
        return addr
      end
      local host = uv.getnameinfo({ ip = addr })
      return host or addr
    end
  end
  return function(name, addr)
    if o.by_address then
      -- With -n or -d too, fping shows both: "localhost (127.0.0.1)".
      return (o.rdns or o.by_name) and string_format("%s (%s)", reverse(addr), addr) or addr
    elseif o.rdns or (o.by_name and (name == addr or name:find("^[%d.]+$")
        or name:find(":", 1, true))) then
      return reverse(addr)
    end
    return name
  end
end

--- Binds as fping does before it reads its targets: -I on every socket
-- (fping: status 1, perror's line), -S on its family's (status 4, as any
-- failed system call). Returns nil, or the exit status after the message.
local function check_binding(o, err)
  if not o.source and not o.interface then
    return nil
  end
  local info = icmprun.info({ source = o.source, interface = o.interface })
  local function strerror(family)
    return (info[family .. "_error"] or ""):match(": ([^:]*)$") or "unknown error"
  end
  for _, family in ipairs({ "ipv4", "ipv6" }) do
    if o.interface and info[family .. "_code"] == "ENODEV" then
      err:write("binding to specific interface (SO_BINTODEVICE): ", strerror(family), "\n")
      return 1
    end
  end
  local family = o.source and (o.source_family == 6 and "ipv6" or "ipv4")
  local code = family and info[family .. "_code"]
  if code == "EADDRNOTAVAIL" or code == "EINVAL" or code == "EADDRINUSE" then
    err:write(string_format("%s: cannot bind source address : %s\n", o.prog, strerror(family)))
    return 4
  end
  return nil
end

local function run(o, operands, started)
  io_stdout:setvbuf("line") -- As fping: lines reach a pipe as they are printed.
  local bind_status = check_binding(o, io_stderr)
  if bind_status then
    return bind_status
  end
  local self = new_run(o, started)
  local display = display_name(o)
  targets.each(o, operands, function(name, addr)
    self:add_host(display(name, addr), addr)
  end, function(name, message)
    self:add_unknown(name, message)
  end)
  if #self.hosts == 0 then
    return self.unknown > 0 and 2 or 1
  end
  -- Every family the hosts need must have its socket before anything is
  -- sent (the sweep could not send to it at all): fping's system-call
  -- failure, status 4, with the reason icmprun.info() gives.
  local info, need = icmprun.info(), {}
  for _, h in ipairs(self.hosts) do
    need[h.addr:find(":", 1, true) and "ipv6" or "ipv4"] = true
  end
  for _, family in ipairs({ "ipv4", "ipv6" }) do
    if need[family] and not info[family] then
      self.err:write(string_format("%s: can't create socket (%s)\n", o.prog,
        info[family .. "_error"] or "unknown error"))
      return 4
    end
  end
  self:watch()
  self:sweep()
  return self:finish()
end

--- Runs the command.
-- @tparam table arg the command line (arg[0] is the command's name)
-- @treturn integer exit status
function M.run(arg)
  local prog = arg[0] or "fping"
  local argv = {}
  for i = 1, #arg do
    argv[i] = arg[i]
  end
  -- Run as the program (`icmprun fping ...`, given the process's own `arg`),
  -- the run starts when the process did, as fping's own start does: its
  -- -Q reports and -s elapsed time count from there, not from the end of
  -- the Lua start-up. Called from a script with a table of its own, the run
  -- starts now.
  local started = rawequal(arg, _G.arg) and icmprun.started or nil
  local ok, status = xpcall(function()
    local o, operands = options.parse(argv, prog)
    return run(o, operands, started)
  end, function(e)
    -- A command-line failure is an exit; anything else is a bug, kept
    -- with its traceback.
    return options.is_exit(e) and e or debug.traceback(tostring(e), 2)
  end)
  if ok then
    return status
  end
  if not options.is_exit(status) then
    error(status, 0)
  end
  local stream = status.status == 0 and io_stdout or io_stderr
  if status.message then
    stream:write(status.message, "\n")
  else
    stream:write(options.usage(prog))
  end
  return status.status
end

return M
