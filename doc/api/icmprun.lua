-- SPDX-License-Identifier: MIT

--- The module `icmprun`, written in C (src/lua_*.c): probes, sweeps and tasks.
--
-- This file is the reference for LDoc only; it is never loaded. The module
-- is built into the `icmprun` command (`require "icmprun"`, preloaded) and
-- into `icmprun.so` for stock `lua5.4`. `scripts/check-doc` fails when a
-- function of the module has no entry here.
--
-- Errors follow one contract: a caller's mistake (a wrong type, a value out
-- of range, an unknown option) raises an error naming the argument; a
-- failure at run time returns `nil, message, code`, where `code` is the
-- errno or libuv name (`"ENOENT"`, `"EAI_NONAME"`...) to branch on. A
-- timeout is a result, never an error.
--
-- Every probe ends in exactly one result, a table:
--
-- * `status`: `"reply"`, `"timeout"`, `"unreachable"`, `"ttl_exceeded"` or `"error"`
-- * `addr`: the probed address; `from`: who answered (nil on a timeout)
-- * `rtt`: milliseconds (a float), for replies and ICMP errors
-- * `seq`, `ttl` (of the answer), `bytes` (ICMP bytes received)
-- * `icmp_type`, `icmp_code`: of an ICMP error
-- * `err`, `code`: the message and its code, for `"error"` results
-- * from a sweep also `target` (as given), `n` (the probe's number for that
--   address, from 1) and, with retries, `attempts`
-- @module icmprun

local icmprun = {}

--- The version of icmprun, as `"0.1.0"`.
icmprun.version = "0.1.0"

--- When the process started, in milliseconds on `icmprun.now()`'s clock:
-- the moment the icmprun program began, before any Lua ran (or, under stock
-- `lua5.4`, the first `require "icmprun"`). `icmprun.now() - icmprun.started`
-- is the process's age; `icmprun fping -Q` counts its reports from it.
icmprun.started = 0

--- Sends one echo request and waits, in the calling task only, for its result.
-- Outside any task it blocks, running the loop (and any task) meanwhile.
-- @tparam string target an IPv4 or IPv6 address, or a host name (resolved on
--   libuv's thread pool, never blocking the loop)
-- @tparam[opt] table opts `timeout` (ms, default 1000; or a duration with a
--   unit: `"500ms"`, `"2s"`), `size` (payload bytes,
--   default 56; at most 65507 for IPv4, 65527 for IPv6), `ttl` (1..255), `tos`
--   (0..255), `family` (4 or 6, for a name), `source` (a numeric address of
--   this host to send from; it forces the family), `interface` (an interface
--   name: send through it, SO_BINDTODEVICE), `payload` (`"pattern"`, the
--   default, or `"random"`: pseudo-random filler, as fping -R, still checked
--   in the reply)
-- @treturn[1] table the result (see above)
-- @treturn[2] nil
-- @treturn[2] string message: a name that does not resolve, no socket allowed
-- @treturn[2] string code
function icmprun.ping(target, opts) end

--- Probes many targets at line rate: a generic-`for` iterator over results,
-- given as soon as they are known. Expansion is lazy (a /8 is never held in
-- memory); the sweep is the loop's to-be-closed value, so breaking out of the
-- loop stops it and cancels its probes in flight.
--
--     for r in icmprun.sweep("127.0.0.0/24", { rate = 20000 }) do
--       print(r.addr, r.status, r.rtt)
--     end
-- @param targets an address, a name, a CIDR block, a range
--   (`"127.0.0.1-127.0.0.9"`), an array of those, or an iterator function
--   returning them
-- @tparam[opt] table opts besides `ping`'s: `count` (probes per address, 1),
--   `interval` (ms between probes to one address, 1000; or `"1s"`...), `rate` (probes a second
--   for the whole sweep, 1000; 0 unpaced), `retries` (0), `backoff` (1.5),
--   `every_attempt`, `order` (`"sequential"` or `"random"`), `seed`, `shard`
--   (`{i, n}`), `limit` (most addresses, a /8), `window` (most in flight);
--   a `source` applies to the probes of its own family, the others leave
--   unbound; a probe whose source or interface cannot be bound is an
--   `error` result (`EADDRNOTAVAIL`, `ENODEV`)
-- @return the iterator function
-- @return the sweep object: `sweep:stop()` sends nothing more and cancels what
--   is in flight, while the loop still hands out what is known
-- @return nil, the control value
-- @return the sweep again, as the loop's to-be-closed value
function icmprun.sweep(targets, opts) end

--- Runs `fn(...)` as a task, concurrently with the caller on the same loop.
-- `task:join()` waits for it and returns `fn`'s results (or raises its error).
-- @tparam function fn
-- @param ... its arguments
-- @return the task
function icmprun.spawn(fn, ...) end

--- Waits for the first of several tasks to finish; the others keep running.
-- A task that has already finished is returned at once (the first such in
-- argument order).
-- @param ... tasks (from `spawn`)
-- @return the task that finished, then its results (for a cancelled task:
--   `nil, "cancelled", "ECANCELED"` after it)
function icmprun.first(...) end

--- Turns a callback into a wait of the calling task: `fn(resume)` runs at
-- once and must not wait; `await` returns what `resume(...)` is called
-- with. A second `resume`, or one after the task was cancelled or
-- abandoned, is ignored and returns false. An error in `fn` is raised here.
-- @tparam function fn called with `resume`, e.g. to hand it to luv
-- @return the values given to `resume`
function icmprun.await(fn) end

--- Calls `fn(n, due)` on a fixed schedule: the n-th call is due at start +
-- n × ms and never runs earlier. After a call that overran, the latest slot
-- already due runs at once and the slots before it are skipped (counted),
-- never a burst. An error in `fn` ends the run like any task error.
-- @tparam number|string ms the period, in milliseconds (1..86400000), or a
-- duration with a unit ("20ms", "1s")
-- @tparam function fn
-- @return a handle: `:stop()` starts no more calls, `:stats()` gives the
--   calls made and slots skipped, `:task()` the task that runs the schedule
function icmprun.every(ms, fn) end

--- Many targets, each probed on its own fixed schedule, with no task per
-- target: every target's due time is in one heap served by one timer, and
-- its counters (sent, results by status, an RTT histogram, the last TTL,
-- duplicates) and a three-hour history of one-minute slots (the exporter's
-- status page) are kept in C, so a probe runs no Lua unless a hook is
-- given. A target gets one probe in flight at a time; its probes stay on a
-- grid (one interval after the last was due; one that fell more than an
-- interval behind goes on from now). A probe that cannot be sent (no
-- socket, a size its family cannot carry) is an `error` result with its
-- `code`. A hook that raises costs that call only (`on_error` hears of it).
-- The prober stops when closed or collected; a probe in flight then ends
-- unreported. This is how `icmprun exporter` probes.
--
-- Methods: `p:add(address, opts, interval[, first])` -> id (opts as
-- `ping`'s; interval and first as durations, the first probe due `first`
-- after the end of the current turn of the loop, so that a turn adding
-- many targets does not make their first probes late; without an
-- interval, a target of counters only, for `record`); `p:update(id, opts, interval)`
-- (from its next probe on, its schedule kept); `p:remove(id)`;
-- `p:stats(id)` -> `sent`, `results` (status -> n), `counts` (replies per
-- bucket, the last +Inf), `rtt_sum` (s), `replies`, `ttl`, `duplicates`, or
-- nil once removed; `p:history(id)`; `p:record(id, r[, now])` and
-- `p:count_send(id)` (count a result or a send made elsewhere);
-- `p:add_duplicates(id, n)`; `p:take_max_delay()` -> ms, the latest a
-- probe left past its due time since the last call; `p:count()` ->
-- targets, probes in flight, bytes held; `p:close()`.
-- @tparam[opt] table opts `buckets` (histogram bounds in seconds,
--   ascending; default `prometheus.DEFAULT_BUCKETS`), and hooks, each
--   optional: `on_send(id, late_ms)`, `on_result(id, r)` (r as `ping`'s),
--   `on_failing(id, failing, why)` (once when a target's sends start to
--   fail, once when they work again), `on_error(message)`
-- @return the prober
function icmprun.prober(opts) end

--- Suspends the calling task for `ms` milliseconds; other tasks and probes
-- go on. Outside any task it blocks, running the loop meanwhile.
-- @tparam number|string ms milliseconds, or a duration with a unit ("500ms", "2s")
function icmprun.sleep(ms) end

--- A monotonic clock.
-- @treturn number milliseconds (a float) since an arbitrary start
function icmprun.now() end

--- Resolves a name as `ping` would, in the calling task.
-- @tparam string name
-- @tparam[opt] table opts `family` (4 or 6)
-- @treturn[1] string the address
-- @treturn[2] nil
-- @treturn[2] string message
-- @treturn[2] string code
function icmprun.resolve(name, opts) end

--- Opens the sockets and says which kind is in use, or why none could be opened.
-- @tparam[opt] table opts `source`, `interface` as `ping` takes them: the
--   sockets bound to them instead (codes `"EADDRNOTAVAIL"`, `"ENODEV"` when
--   they cannot be bound)
-- @treturn table `ipv4`, `ipv6`: `"dgram"` or `"raw"`, or nil with
--   `ipv4_error`, `ipv6_error` naming the cause and the fix and `ipv4_code`,
--   `ipv6_code` naming it for programs (`"EACCES"`, `"EPERM"`); `tx_stamp`,
--   `ipv4_tx_stamp`, `ipv6_tx_stamp`: `"kernel"` or `"user"`, where send
--   times come from; `loop_slice`: the scheduling slice in seconds that the
--   kernel granted the loop's thread (0.0001), absent when it keeps the
--   kernel's own (before Linux 6.12, or `ICMPRUN_LOOP_SLICE=default`;
--   `ICMPRUN_LOOP_SLICE=N` asks for N microseconds)
function icmprun.info(opts) end

--- The engine's counters, for the whole process. (Not to be confused with
-- the statistics module `icmprun.stats`, which computes loss and RTT
-- percentiles from results.)
-- @treturn table `sent`, `results`, `replies`, `timeouts`, `icmp_errors`,
--   `send_errors`, `send_retries` (of which `send_blocked`: EAGAIN),
--   `cancelled` (ended before they were sent), `pending`, and the answers that
--   never became results: `duplicates`, `late`, `corrupted` (and
--   `corrupt_offset`, the first differing byte of the last one), `wrong_seq`,
--   `foreign`, `malformed`; `clock_steps`; `tx_stamps`,
--   `tx_stamps_unmatched`, `tx_stamps_misattributed`
function icmprun.counters() end

--- Deprecated: the old name of `icmprun.counters`, which it shared with the
-- statistics module `icmprun.stats`. Still works and returns the same table;
-- new scripts call `icmprun.counters()`.
-- @treturn table the engine's counters, as `icmprun.counters()`
function icmprun.stats() end

--- The duplicate replies since the start, by the address each came from (a
-- reply is matched to its probe by its sender, so a copy of one comes from
-- the probed host). Their sum is `stats().duplicates` of this thread's
-- engine (sweeps' worker engines not included).
-- @treturn table address -> count; past 4,096 addresses, further ones are
--   counted under `other`
function icmprun.duplicates() end

--- Traces the path to `target`, probing every hop of a round at once, with
-- flow-stable probes by default (one ICMP checksum for the whole trace, as
-- Paris traceroute). Loads the library module `icmprun.trace`; see it for
-- the hop records and the trace's methods.
-- @tparam string target an address or a host name
-- @tparam[opt] table opts `max_ttl` (30), `first_ttl` (1), `count` (probes
--   per hop, 3), `interval` (ms between rounds, 250), `timeout` (ms, 1000;
--   both also as durations with a unit, `"250ms"`, `"1s"`),
--   `size`, `tos`, `family`, `stop_at_target` (true), `flow` (`"stable"` or
--   `"vary"`), `source`, `interface` (as `ping`'s)
-- @return an iterator of `hop, result` and the trace, or `nil, message, code`
function icmprun.trace(target, opts) end

--- The statuses a result can have, in order: `"reply"`, `"timeout"`,
-- `"unreachable"`, `"ttl_exceeded"`, `"error"`.
-- @table icmprun.STATUSES
icmprun.STATUSES = {}

--- The limits of the probe options, which scripts and commands check their
-- own options against: `max_size_v4` (65507), `max_size_v6` (65527),
-- `max_timeout` and `max_interval` (86400000 ms), `max_ttl`, `max_tos` (255),
-- `default_size` (56), `default_timeout` (1000), `checked_payload` (1500).
-- @table icmprun.limits
icmprun.limits = {}

--- Runs `fn(name)` as a task when the signal arrives, instead of the default
-- action (the process ending); `nil` restores the default. The watcher never
-- keeps icmprun running by itself.
-- @tparam string name `"INT"`, `"TERM"`, `"HUP"`, `"USR1"`, `"USR2"` or `"QUIT"`
-- @tparam ?function fn
function icmprun.on_signal(name, fn) end

--- For stock Lua: runs `fn(...)` as a task and drives the loop until every
-- task has finished (the `icmprun` command runs a script's main chunk so).
-- @tparam function fn
-- @param ... its arguments
-- @return `fn`'s results
function icmprun.run(fn, ...) end

return icmprun
