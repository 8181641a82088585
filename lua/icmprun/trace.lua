-- SPDX-License-Identifier: MIT

--- `icmprun.trace`: every hop of the path to a target, probed in parallel.
--
-- A round sends one echo request for every TTL from `first_ttl` to `max_ttl`
-- at once, each in a task of its own, and a new round starts every
-- `interval` ms whether or not the last one has its answers: so `count`
-- rounds take about `count * interval` plus one `timeout`, however many hops
-- there are, where traceroute waits hop after hop. Each answer updates its
-- hop at once (`trace:hops()`, `trace:summary()`); the iterator hands the
-- results out in the order they were sent (round by round, TTL by TTL), so a
-- hop comes after the hops before it, at most one timeout after its answer.
--
-- Routers answer a probe whose TTL runs out with an ICMP time exceeded error
-- (`ttl_exceeded`, with `rtt` and `from`); the target answers with an echo
-- reply; a router that cannot forward answers `unreachable`. The first TTL
-- that the target (or an unreachable error) answers is the end of the path:
-- with `stop_at_target` (the default) later rounds send nothing past it, and
-- results past it are counted in `past_end` rather than as hops.
--
-- With `flow = "stable"` (the default) every probe of a trace carries one
-- ICMP checksum (the engine's `flow` option, Paris traceroute's method), so
-- routers that balance load by hashing headers send them all one way.
-- @module icmprun.trace
local icmprun = require "icmprun"
local duration = require "icmprun.duration"
local stats = require "icmprun.stats"
local trace_sched = require "icmprun.trace_sched" -- src/trace_sched.c

local M = {}

local error, ipairs, pairs, math_huge, math_random = error, ipairs, pairs, math.huge,
  math.random
local setmetatable, string_format, tostring, type = setmetatable, string.format, tostring,
  type

local Trace = {}
Trace.__index = Trace

local DEFAULTS = {
  max_ttl = 30, first_ttl = 1, count = 3, interval = 250, timeout = 1000, size = 56,
  tos = 0, stop_at_target = true, flow = "stable",
}
local KNOWN = {
  max_ttl = true, first_ttl = true, count = true, interval = true, timeout = true,
  size = true, tos = true, family = true, stop_at_target = true, flow = true,
  source = true, interface = true,
}

-- One checking helper, one message shape: "trace: option 'x' must be ...".
local function check_integer(opts, name, min, max, allow_huge)
  local v = opts[name]
  if v == nil then
    return DEFAULTS[name]
  end
  if allow_huge and v == math_huge then
    return v
  end
  if type(v) ~= "number" or v % 1 ~= 0 or v < min or v > max then
    error(string_format("trace: option '%s' must be an integer in %d..%d, got %s", name,
      min, max, tostring(v)), 3)
  end
  return math.tointeger(v)
end

-- A duration option: milliseconds, or a string with a unit ("250ms", "1s").
local function check_duration(opts, name, min, max)
  local v = opts[name]
  if v == nil then
    return DEFAULTS[name]
  end
  local ms = duration.parse(v, "ms")
  if type(ms) ~= "number" or not (ms >= min and ms <= max) then
    error(string_format("trace: option '%s' must be milliseconds in %.0f..%.0f, or a duration "
      .. "with a unit (us, ms, s, m, h), got %s", name, min, max, tostring(v)), 3)
  end
  return ms
end

local function check_options(opts)
  if opts == nil then
    opts = {}
  elseif type(opts) ~= "table" then
    error("trace: options must be a table, got " .. type(opts), 3)
  end
  for k in pairs(opts) do
    if not KNOWN[k] then
      error("trace: unknown option '" .. tostring(k) .. "'", 3)
    end
  end
  local o = {
    max_ttl = check_integer(opts, "max_ttl", 1, 255),
    first_ttl = check_integer(opts, "first_ttl", 1, 255),
    count = check_integer(opts, "count", 1, math.maxinteger, true),
    interval = check_duration(opts, "interval", 0, icmprun.limits.max_interval),
    timeout = check_duration(opts, "timeout", 0, icmprun.limits.max_timeout),
    size = check_integer(opts, "size", 0, icmprun.limits.max_size_v4),
    tos = check_integer(opts, "tos", 0, 255),
    family = opts.family,
    source = opts.source,
    interface = opts.interface,
    stop_at_target = opts.stop_at_target,
    flow = opts.flow or DEFAULTS.flow,
  }
  if o.flow == "stable" and o.size < 10 then
    error("trace: flow \"stable\" needs a size of at least 10, got " .. o.size, 3)
  end
  if o.count == math_huge and o.interval <= 0 then
    error("trace: option 'count' = math.huge needs an 'interval' above 0", 3)
  end
  if o.first_ttl > o.max_ttl then
    error(string_format("trace: option 'first_ttl' (%d) is past 'max_ttl' (%d)",
      o.first_ttl, o.max_ttl), 3)
  end
  if o.family ~= nil and o.family ~= 4 and o.family ~= 6 then
    error("trace: option 'family' must be 4 or 6, got " .. tostring(o.family), 3)
  end
  if o.source ~= nil or o.interface ~= nil then
    -- ping's own check of the two, with its message; a binding that fails
    -- (an address not on this host) is the first probe's failure instead.
    local ok, why = pcall(icmprun.info, { source = o.source, interface = o.interface,
      family = o.family })
    if not ok then
      error("trace: " .. (tostring(why):match("%((option .*)%)$") or tostring(why)), 3)
    end
    if o.source ~= nil and o.family == nil then
      o.family = o.source:find(":", 1, true) and 6 or 4 -- The target resolves in it.
    end
  end
  if o.stop_at_target == nil then
    o.stop_at_target = true
  elseif type(o.stop_at_target) ~= "boolean" then
    error("trace: option 'stop_at_target' must be a boolean, got "
      .. type(o.stop_at_target), 3)
  end
  if o.flow ~= "stable" and o.flow ~= "vary" then
    error("trace: option 'flow' must be \"stable\" or \"vary\", got " .. tostring(o.flow), 3)
  end
  return o
end

-- A hop's record, updated by every result of its TTL.
local function new_hop(ttl)
  return {
    ttl = ttl,
    addrs = {},   -- every address that answered, in the order first seen
    answers = {}, -- address -> answers from it
    -- sent counts probes as they leave, done as they end: a probe in flight
    -- is sent and not yet lost, so loss is lost / done, as in mtr.
    sent = 0, done = 0, received = 0, lost = 0,
    stats = stats.new(), -- round trips of the answers, whoever gave them
  }
end

--- Starts a trace to `target` (an address or a host name). Resolves the name
-- first (waiting in the calling task); returns `iterator, trace` (use as
-- `for hop, r in iterator, trace do`), or `nil, message, code` when the name
-- does not resolve. Bad options raise.
-- @tparam string target
-- @tparam[opt] table opts max_ttl (30), first_ttl (1), count (3 probes per hop;
--   `math.huge`: until `trace:stop()`), interval (ms between rounds, 250),
--   timeout (ms, 1000), size (payload bytes, 56; at least 10 with flow
--   "stable"), tos (0),
--   family (4 or 6), stop_at_target (true), flow ("stable" or "vary"),
--   source (an address of this host to send from; the target resolves in
--   its family), interface (a name: send through it)
function M.trace(target, opts)
  if type(target) ~= "string" then
    error("trace: target must be a string, got " .. type(target), 2)
  end
  local o = check_options(opts)
  local addr, err, code = icmprun.resolve(target, { family = o.family })
  if not addr then
    return nil, err, code
  end
  local self = setmetatable({
    target = target, addr = addr, opts = o,
    -- One flow key per trace: every probe of it sums to the same checksum.
    flow_key = o.flow == "stable" and math_random(1, 65535) or nil,
    hop_list = {},    -- ttl -> hop record
    end_ttl = nil,    -- the first TTL the target or an unreachable error answered
    past_end = 0,     -- results past the end of the path, not counted as hops
    generation = 1,   -- bumped by reset: older results are no longer counted
    pending = {},     -- FIFO of probe tasks the iterator has not handed out
    head = 1, tail = 0,
    stopped = false, paused = false,
    started = icmprun.now(),
  }, Trace)
  -- When which probe goes out is the C scheduler's business (fake-clock
  -- tests in spec/c/test_trace_sched.c); this module sends and counts.
  self.sched = trace_sched.new(o.first_ttl, o.max_ttl, o.count, o.interval,
    o.stop_at_target, self.started)
  for ttl = o.first_ttl, o.max_ttl do
    self.hop_list[ttl] = new_hop(ttl)
  end
  self.scheduler = icmprun.spawn(Trace._schedule, self)
  return Trace._next, self
end

-- Counts one result into its hop, unless a reset came since it was sent or
-- it is past the end of the path.
function Trace:_record(ttl, generation, r)
  if generation ~= self.generation then
    return
  end
  if self.end_ttl and ttl > self.end_ttl and self.opts.stop_at_target then
    self.past_end = self.past_end + 1
    return
  end
  local hop = self.hop_list[ttl]
  hop.done = hop.done + 1
  hop.last_status = r.status
  if r.from and r.rtt then
    hop.received = hop.received + 1
    hop.last_ms = r.rtt
    hop.first_answer_ms = hop.first_answer_ms or icmprun.now() - self.started
    hop.addr = r.from
    if not hop.answers[r.from] then
      hop.addrs[#hop.addrs + 1] = r.from
      hop.answers[r.from] = 0
    end
    hop.answers[r.from] = hop.answers[r.from] + 1
    hop.stats:add({ status = "reply", rtt = r.rtt })
    if r.icmp_type then
      hop.icmp_type, hop.icmp_code, hop.err = r.icmp_type, r.icmp_code, r.err
    end
    if r.status == "reply" then
      hop.reached = true
    elseif r.status == "unreachable" then
      hop.unreachable = true
    end
    -- The path ends at the first TTL the target, or a router that cannot go
    -- further, answered.
    if (r.status == "reply" or r.status == "unreachable")
      and (self.end_ttl == nil or ttl < self.end_ttl) then
      self:_set_end(ttl)
    end
  else
    hop.lost = hop.lost + 1
    hop.stats:add({ status = r.status == "error" and "error" or "timeout" })
  end
end

-- The path ends at ttl. Answers already counted past it (they came before
-- the answer that ends the path) move to past_end, as if they had come later.
function Trace:_set_end(ttl)
  self.end_ttl = ttl
  self.sched:end_at(ttl)
  if not self.opts.stop_at_target then
    return
  end
  for t = ttl + 1, self.opts.max_ttl do
    local hop = self.hop_list[t]
    -- Probes still in flight there are counted when they end (_record).
    if hop.done > 0 then
      self.past_end = self.past_end + hop.done
      self.hop_list[t] = new_hop(t)
    end
  end
end

-- One probe, in a task of its own: its result goes to its hop as soon as it
-- comes; the iterator picks up (hop, result) when it reaches this task.
function Trace:_probe(ttl, generation)
  local r, err, code = icmprun.ping(self.addr, {
    ttl = ttl, timeout = self.opts.timeout, size = self.opts.size, tos = self.opts.tos,
    flow = self.flow_key, source = self.opts.source, interface = self.opts.interface,
  })
  if r == nil then
    -- No probe could be made (no socket for this family, say): the same
    -- would happen to every later one, so the trace stops, saying why, and
    -- this probe ends in an error result of its own.
    self.failure, self.failure_code = self.failure or err, self.failure_code or code
    self:stop()
    r = { status = "error", addr = self.addr, err = err, code = code }
  end
  self:_record(ttl, generation, r)
  return ttl, generation, r
end

-- The last TTL a round probes: up to the end of the path once it is known.
function Trace:_last_ttl()
  return self.sched:last_ttl()
end

-- Sends each probe when the scheduler says, in a task of its own, and
-- sleeps until it says the next one is due; returns when it says done.
function Trace:_schedule()
  local sched = self.sched
  while true do
    local step, value = sched:next(icmprun.now())
    if step == "send" then
      local hop = self.hop_list[value]
      hop.sent = hop.sent + 1
      self.tail = self.tail + 1
      self.pending[self.tail] = icmprun.spawn(Trace._probe, self, value, self.generation)
    elseif step == "wait" then
      self.next_due = value
      local wait = value - icmprun.now()
      icmprun.sleep(wait > 0 and wait or 0)
    else
      break
    end
  end
  self.scheduled_all = true
end

-- The iterator: the next (hop, result) in the order the probes were sent,
-- waiting for it if need be; results not counted in a hop (past the end of
-- the path, or from before a reset) are skipped. Ends when every round has
-- been handed out.
function Trace._next(self)
  while true do
    if self.head <= self.tail then
      local task = self.pending[self.head]
      self.pending[self.head] = nil
      self.head = self.head + 1
      local ttl, generation, r = task:join()
      if generation == self.generation and not (self.opts.stop_at_target
        and self.end_ttl and ttl > self.end_ttl) then
        return self.hop_list[ttl], r
      end
    elseif self.scheduled_all then
      self.finished = true -- every probe has ended and been handed out
      return nil
    else
      -- Everything sent has been handed out: the next probes leave when the
      -- scheduler said they would (paused: when it looks again).
      local wait = (self.next_due or 0) - icmprun.now()
      icmprun.sleep(wait > 0 and wait or 0)
    end
  end
end

--- Waits for every probe of the trace and returns `trace:summary()`.
function Trace:wait()
  while Trace._next(self) do end
  self.scheduler:join()
  return self:summary()
end

--- Stops sending: no round starts after this; probes in flight still end in
-- their results, which the iterator hands out.
function Trace:stop()
  self.stopped = true
  self.sched:stop()
end

--- Holds the rounds until `resume`.
function Trace:pause()
  self.paused = true
  self.sched:pause()
end

--- Lets the rounds go on after `pause`, the next one at once.
function Trace:resume()
  self.paused = false
  self.sched:resume(icmprun.now())
end

--- Forgets every hop's counts (mtr's `r` key), keeping the addresses seen
-- and the end of the path; probes in flight when it is called are not
-- counted.
function Trace:reset()
  self.generation = self.generation + 1
  for ttl, old in pairs(self.hop_list) do
    local hop = new_hop(ttl)
    hop.addr, hop.addrs = old.addr, old.addrs
    for _, addr in ipairs(old.addrs) do
      hop.answers[addr] = 0
    end
    self.hop_list[ttl] = hop
  end
end

--- The hop records, first TTL first, up to the end of the path when known
-- (with stop_at_target), else up to max_ttl.
-- Live objects: read them, do not change them.
function Trace:hops()
  local out = {}
  local last = self:_last_ttl()
  for ttl = self.opts.first_ttl, last do
    out[#out + 1] = self.hop_list[ttl]
  end
  return out
end

--- One hop as a plain table: ttl, addrs (list), addr (the latest to answer),
-- sent, done (probes that ended), received, loss_pct (of those ended), last_ms, min_ms, avg_ms, max_ms, stddev_ms (the
-- population's, as ping's mdev), p50_ms, p90_ms, p95_ms, p99_ms, icmp_type,
-- icmp_code, err, reached (the target answered at this hop), unreachable,
-- first_answer_ms (when the first answer came, from the trace's start).
function M.hop_table(hop)
  local s = hop.stats:to_table()
  local addrs = {}
  for i, a in ipairs(hop.addrs) do
    addrs[i] = a
  end
  return {
    ttl = hop.ttl, addrs = addrs, addr = hop.addr,
    sent = hop.sent, done = hop.done, received = hop.received,
    loss_pct = hop.done > 0 and 100 * hop.lost / hop.done or 0,
    last_ms = hop.last_ms, min_ms = s.min_ms, avg_ms = s.avg_ms, max_ms = s.max_ms,
    stddev_ms = s.mdev_ms, p50_ms = s.p50_ms, p90_ms = s.p90_ms, p95_ms = s.p95_ms,
    p99_ms = s.p99_ms,
    icmp_type = hop.icmp_type, icmp_code = hop.icmp_code, err = hop.err,
    reached = hop.reached or false, unreachable = hop.unreachable or false,
    first_answer_ms = hop.first_answer_ms,
  }
end

--- A snapshot: target, addr, flow_key (nil with flow "vary"), rounds,
-- reached (the target answered), end_ttl, past_end, failure and
-- failure_code (why probes could not be made, which stopped the trace), and
-- hops (plain tables, see `hop_table`, first TTL first).
function Trace:summary()
  local hops = {}
  local reached = false
  for i, hop in ipairs(self:hops()) do
    hops[i] = M.hop_table(hop)
    reached = reached or hops[i].reached
  end
  return {
    target = self.target, addr = self.addr, flow_key = self.flow_key,
    rounds = self.sched:rounds(), reached = reached, end_ttl = self.end_ttl,
    past_end = self.past_end, failure = self.failure, failure_code = self.failure_code,
    hops = hops,
  }
end

return M
