-- SPDX-License-Identifier: MIT

--- fping-style text and JSON lines, as Debian's fping 5.1 prints them.
--
-- Pure formatting: every function returns one line (or, for the global
-- statistics, a block of lines) ending in a newline, and writes nothing, so
-- a campaign can send them to any file handle. fping itself writes reply,
-- timeout, alive and unreachable lines to standard output and the summaries
-- and statistics to standard error; JSON lines all go to standard output.
--
-- A *tally* is any table with the fields of `icmprun.stats` objects: `sent`
-- (probes with a final outcome), `received` (replies), and, once something
-- answered, `min`, `max` and `mean` (milliseconds). Probe numbers are fping's
-- indices, from 0 (a sweep's `r.n - 1`).
--
-- The JSON lines follow the `-J, --json` output of upstream fping (5.4 and
-- later; 5.1 has no JSON): `{"resp": {...}}`, `{"timeout": {...}}`,
-- `{"summary": {...}}`, `{"vSum": {...}}`, `{"intSum": {...}}`,
-- `{"stats": {...}}` and `{"warning": {...}}`, each a complete object.
-- @module icmprun.report.fping
local M = {}

local string_format, string_rep = string.format, string.rep
local table_concat = table.concat
local math_floor = math.floor

--- An RTT in milliseconds with fping's precision: three significant digits
-- below 100 ms (`0.045`, `1.23`, `12.3`), whole milliseconds above.
-- @tparam number ms
-- @treturn string
function M.ms(ms)
  if ms < 0 then
    return string_format("%.2g", ms)
  elseif ms < 1 then
    return string_format("%.3f", ms)
  elseif ms < 10 then
    return string_format("%.2f", ms)
  elseif ms < 100 then
    return string_format("%.1f", ms)
  elseif ms < 1000000 then
    return string_format("%.0f", ms)
  end
  return string_format("%.3e", ms)
end

--- A host name left-aligned in `width` columns, as fping's `%-*s`.
local function pad(host, width)
  local n = width - #host
  return n > 0 and host .. string_rep(" ", n) or host
end

--- The percentage fping shows after a tally: `"0% loss"`, or `"N% return"`
-- when more replies than probes came back (duplicates).
local function loss_text(t)
  if t.received <= t.sent then
    return string_format("%d%% loss", math_floor((t.sent - t.received) * 100 / t.sent))
  end
  return string_format("%d%% return", math_floor(t.received * 100 / t.sent))
end

--- The `[1700000000.12345] ` prefix of `-D`, or "" without a time.
-- @tparam ?number time Unix time in seconds
-- @treturn string
function M.timestamp(time)
  if time == nil then
    return ""
  end
  return string_format("[%.5f] ", time)
end

--- A reply in count or loop mode:
-- `host : [0], 64 bytes, 0.045 ms (0.045 avg, 0% loss)`.
-- @tparam string host the name shown
-- @tparam integer width the column width (the longest host name)
-- @tparam integer index the probe's index, from 0
-- @tparam integer bytes ICMP bytes received
-- @tparam number rtt milliseconds
-- @param tally the host's tally, this reply included
-- @tparam[opt] number time Unix time for `-D`
-- @treturn string
function M.reply(host, width, index, bytes, rtt, tally, time)
  return string_format("%s%s : [%d], %d bytes, %s ms (%s avg, %s)\n", M.timestamp(time),
    pad(host, width), index, bytes, M.ms(rtt), M.ms(tally.mean), loss_text(tally))
end

--- A timeout in count or loop mode:
-- `host : [1], timed out (NaN avg, 100% loss)`.
-- @tparam string host
-- @tparam integer width
-- @tparam integer index
-- @param tally the host's tally, this timeout included
-- @tparam[opt] number time Unix time for `-D`
-- @treturn string
function M.timeout(host, width, index, tally, time)
  local avg = tally.received > 0 and M.ms(tally.mean) or "NaN"
  return string_format("%s%s : [%d], timed out (%s avg, %s)\n", M.timestamp(time),
    pad(host, width), index, avg, loss_text(tally))
end

--- The default mode's line for a host that answered: `host is alive`, only
-- `host` with `-a`, and `(0.045 ms)` after it with `-e`.
-- @tparam string host
-- @tparam boolean verbose true for the `is alive` form
-- @tparam[opt] number rtt milliseconds, for `-e`
-- @treturn string
function M.alive(host, verbose, rtt)
  return host .. (verbose and " is alive" or "")
    .. (rtt and string_format(" (%s ms)", M.ms(rtt)) or "") .. "\n"
end

--- The default mode's line for a host that never answered:
-- `host is unreachable`, or only `host` with `-u`.
-- @tparam string host
-- @tparam boolean verbose
-- @treturn string
function M.unreachable(host, verbose)
  return host .. (verbose and " is unreachable" or "") .. "\n"
end

--- A failed send in the default mode:
-- `host: error while sending ping: No route to host`.
-- @tparam string host
-- @tparam string message the system's message
-- @treturn string
function M.send_error(host, message)
  return string_format("%s: error while sending ping: %s\n", host, message)
end

--- A name that did not resolve: `host: Name or service not known`.
-- @tparam string host
-- @tparam string message
-- @treturn string
function M.name_error(host, message)
  return string_format("%s: %s\n", host, message)
end

--- A per-host summary (count and loop modes, and `-Q` intervals):
-- `host : xmt/rcv/%loss = 3/3/0%, min/avg/max = 0.040/0.045/0.050`.
-- @tparam string host
-- @tparam integer width
-- @param tally
-- @tparam[opt] number outage_period with `-o`: the period (ms) a lost probe counts for
-- @treturn string
function M.summary(host, width, tally, outage_period)
  local parts = { pad(host, width), " :" }
  if tally.received <= tally.sent then
    local loss = tally.sent > 0 and (tally.sent - tally.received) * 100 / tally.sent or 0
    parts[#parts + 1] = string_format(" xmt/rcv/%%loss = %d/%d/%d%%", tally.sent,
      tally.received, math_floor(loss))
    if outage_period then
      -- fping -o: the time without answers, as lost probes times the period.
      parts[#parts + 1] = string_format(", outage(ms) = %d",
        math_floor((tally.sent - tally.received) * outage_period))
    end
  else
    parts[#parts + 1] = string_format(" xmt/rcv/%%return = %d/%d/%d%%", tally.sent,
      tally.received, math_floor(tally.received * 100 / tally.sent))
  end
  if tally.received > 0 then
    parts[#parts + 1] = string_format(", min/avg/max = %s/%s/%s", M.ms(tally.min),
      M.ms(tally.mean), M.ms(tally.max))
  end
  parts[#parts + 1] = "\n"
  return table_concat(parts)
end

--- The `-C` line: every probe's RTT, `-` for those that got no reply:
-- `host : 0.045 - 0.050`.
-- @tparam string host
-- @tparam integer width
-- @tparam table rtts rtts[i] is probe i's RTT (from 1), or false
-- @tparam integer count how many probes to list
-- @treturn string
function M.rtt_list(host, width, rtts, count)
  local parts = { pad(host, width), " :" }
  for i = 1, count do
    local rtt = rtts[i]
    parts[#parts + 1] = rtt and " " .. M.ms(rtt) or " -"
  end
  parts[#parts + 1] = "\n"
  return table_concat(parts)
end

--- fping 5.1's `-N` (netdata) report of one host for one interval: the
-- packets, quality and latency charts (their definitions only the first
-- time, `first`), latencies in nanoseconds. netdata's fping plugin reads it.
-- @tparam string host the target as given
-- @tparam table tally the interval's tally
-- @tparam number interval_s the report interval in seconds
-- @tparam boolean first whether to define the charts
-- @treturn string
function M.netdata(host, tally, interval_s, first)
  local id = host:gsub("[^%w]", "_")
  local lines = {}
  local function add(fmt, ...)
    lines[#lines + 1] = string_format(fmt, ...)
  end
  if first then
    add("CHART fping.%s_packets '' 'FPing Packets for host %s' packets '%s' fping.packets "
      .. "line 110020 %.0f", id, host, host, interval_s)
    add("DIMENSION xmt sent absolute 1 1")
    add("DIMENSION rcv received absolute 1 1")
  end
  add("BEGIN fping.%s_packets", id)
  add("SET xmt = %d", tally.sent)
  add("SET rcv = %d", tally.received)
  add("END")
  if first then
    add("CHART fping.%s_quality '' 'FPing Quality for host %s' percentage '%s' fping.quality "
      .. "area 110010 %.0f", id, host, host, interval_s)
    add("DIMENSION returned '' absolute 1 1")
  end
  add("BEGIN fping.%s_quality", id)
  add("SET returned = %d", tally.sent > 0 and tally.received * 100 // tally.sent or 0)
  add("END")
  if first then
    add("CHART fping.%s_latency '' 'FPing Latency for host %s' ms '%s' fping.latency area "
      .. "110000 %.0f", id, host, host, interval_s)
    add("DIMENSION min minimum absolute 1 1000000")
    add("DIMENSION max maximum absolute 1 1000000")
    add("DIMENSION avg average absolute 1 1000000")
  end
  add("BEGIN fping.%s_latency", id)
  if tally.received > 0 then
    add("SET min = %d", math_floor(tally.min * 1e6))
    add("SET avg = %d", math_floor(tally.mean * 1e6))
    add("SET max = %d", math_floor(tally.max * 1e6))
  end
  add("END")
  return table_concat(lines, "\n") .. "\n"
end

--- The header of a `-Q` interval report: `[23:11:20]`, local time.
-- @tparam[opt] number time Unix time (now by default)
-- @treturn string
function M.interval_header(time)
  return os.date("[%H:%M:%S]", time and math_floor(time) or nil) .. "\n"
end

--- The `-s` block, blank lines included. `g` holds the counts `targets`,
-- `alive`, `unreachable`, `unknown`, `timeouts`, `sent`, `received` and
-- `other_icmp`; `min`, `avg` and `max` (milliseconds, absent when nothing
-- answered); and `elapsed` (seconds).
-- @tparam table g
-- @treturn string
function M.global_stats(g)
  local lines = {
    "",
    string_format(" %7d targets", g.targets),
    string_format(" %7d alive", g.alive),
    string_format(" %7d unreachable", g.unreachable),
    string_format(" %7d unknown addresses", g.unknown),
    "",
    string_format(" %7d timeouts (waiting for response)", g.timeouts),
    string_format(" %7d ICMP Echos sent", g.sent),
    string_format(" %7d ICMP Echo Replies received", g.received),
    string_format(" %7d other ICMP received", g.other_icmp),
    "",
    string_format(" %s ms (min round trip time)", M.ms(g.min or 0)),
    string_format(" %s ms (avg round trip time)", M.ms(g.avg or 0)),
    string_format(" %s ms (max round trip time)", M.ms(g.max or 0)),
    string_format(" %12.3f sec (elapsed real time)", g.elapsed),
    "",
    "",
  }
  return table_concat(lines, "\n")
end

-- ---- JSON lines ------------------------------------------------------------

local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

--- A JSON string literal (fping writes names raw; these are always valid).
local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string_format("\\u%04x", c:byte())
  end) .. '"'
end
M.json_string = quote

--- The `"timestamp": "...", ` field of `-D`, or "".
local function json_time(time)
  if time == nil then
    return ""
  end
  return string_format('"timestamp": "%.5f", ', time)
end

--- The xmt, rcv, loss (or return) and RTT fields of a tally.
local function json_tally(t)
  local s
  if t.received <= t.sent then
    local loss = t.sent > 0 and (t.sent - t.received) * 100 / t.sent or 0
    s = string_format('"xmt": %d, "rcv": %d, "loss": %d', t.sent, t.received,
      math_floor(loss))
  else
    s = string_format('"xmt": %d, "rcv": %d, "return": %d', t.sent, t.received,
      math_floor(t.received * 100 / t.sent))
  end
  if t.received > 0 then
    s = s .. string_format(', "rttMin": %s, "rttAvg": %s, "rttMax": %s', M.ms(t.min),
      M.ms(t.mean), M.ms(t.max))
  end
  return s
end

--- `{"resp": {"host": "127.0.0.1", "seq": 0, "size": 64, "rtt": 0.045}}`
-- @tparam string host
-- @tparam integer index
-- @tparam integer bytes
-- @tparam number rtt
-- @tparam[opt] number time Unix time for `-D`
-- @treturn string
function M.json_reply(host, index, bytes, rtt, time)
  return string_format('{"resp": {%s"host": %s, "seq": %d, "size": %d, "rtt": %s}}\n',
    json_time(time), quote(host), index, bytes, M.ms(rtt))
end

--- `{"timeout": {"host": "192.0.2.2", "seq": 0}}`
-- @tparam string host
-- @tparam integer index
-- @tparam[opt] number time
-- @treturn string
function M.json_timeout(host, index, time)
  return string_format('{"timeout": {%s"host": %s, "seq": %d}}\n', json_time(time),
    quote(host), index)
end

--- `{"summary": {"host": ..., "xmt": 2, "rcv": 2, "loss": 0, "rttMin": ...}}`
-- @tparam string host
-- @param tally
-- @treturn string
function M.json_summary(host, tally)
  return string_format('{"summary": {"host": %s, %s}}\n', quote(host), json_tally(tally))
end

--- `{"vSum": {"host": ..., "values": [0.045, null]}}`, the `-C` list.
-- @tparam string host
-- @tparam table rtts as for `rtt_list`
-- @tparam integer count
-- @treturn string
function M.json_rtt_list(host, rtts, count)
  local values = {}
  for i = 1, count do
    values[i] = rtts[i] and M.ms(rtts[i]) or "null"
  end
  return string_format('{"vSum": {"host": %s, "values": [%s]}}\n', quote(host),
    table_concat(values, ", "))
end

--- `{"intSum": {"time": 1700000000,"host": ..., "xmt": ...}}`, a `-Q`
-- interval (fping writes no space after the time's comma).
-- @tparam string host
-- @param tally the interval's tally
-- @tparam number time Unix time in seconds
-- @treturn string
function M.json_interval(host, tally, time)
  return string_format('{"intSum": {"time": %d,"host": %s, %s}}\n', math_floor(time),
    quote(host), json_tally(tally))
end

--- `{"stats": {"targets": 1, ...}}`, the `-s` statistics; `g` as for
-- `global_stats`.
-- @tparam table g
-- @treturn string
function M.json_stats(g)
  return string_format('{"stats": {"targets": %d, "alive": %d, "unreachable": %d, '
    .. '"unknownAddresses": %d, "timeouts": %d, "icmpEchosSent": %d, '
    .. '"icmpEchoRepliesReceived": %d, "otherIcmpReceived": %d, "rttMin": %s, '
    .. '"rttAvg": %s, "rttMax": %s, "elapsed": %.3f}}\n', g.targets, g.alive,
    g.unreachable, g.unknown, g.timeouts, g.sent, g.received, g.other_icmp,
    M.ms(g.min or 0), M.ms(g.avg or 0), M.ms(g.max or 0), g.elapsed)
end

--- `{"warning": {"host": "x.invalid", "message": "Name or service not known"}}`
-- @tparam string host
-- @tparam string message
-- @treturn string
function M.json_warning(host, message)
  return string_format('{"warning": {"host": %s, "message": %s}}\n', quote(host),
    quote(message))
end

return M
