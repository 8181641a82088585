-- SPDX-License-Identifier: MIT

--- `icmprun ping`: iputils ping's options, lines, summary and exit codes.
--
-- iputils 20221126 is the reference, as `ping -n` prints (no reverse
-- lookups): the same header, reply and error lines, the same summary with
-- mdev, and its exit codes (0: some reply came back, 1: none did, 2: an
-- error such as a bad option or a name that does not resolve). Without `-c`
-- it pings until Ctrl-C, which prints the summary, as ping does.
--
-- Each probe runs in a task of its own, so a slow or lost reply never delays
-- the next send; `-W` is each probe's timeout (iputils waits that long for
-- the last reply), and a reply that comes later is not counted.
--
-- `examples/ping.lua` runs this command; so does `icmprun ping`.
-- @module icmprun.commands.ping
local icmprun = require "icmprun"
local cli = require "icmprun.cli"
local stats = require "icmprun.stats"

local M = {}

M.summary = "send ICMP echo requests to one host, like iputils ping (-c -i -W -w -s -t -Q -I -D -q)"

local io_stderr, io_stdout = io.stderr, io.stdout
local math_floor = math.floor
local string_format = string.format
local table_concat = table.concat

--- iputils' time line rule: fewer decimals as the RTT grows.
-- @tparam number ms
-- @treturn string
function M.format_time(ms)
  if ms >= 99.95 then
    return string_format("%.0f", ms)
  elseif ms >= 9.995 then
    return string_format("%.1f", ms)
  elseif ms >= 1 then
    return string_format("%.2f", ms)
  end
  return string_format("%.3f", ms)
end

local number_in, duration_in = cli.number_in, cli.duration_in

local function build_parser(name)
  local parser = cli.parser(name, "Send ICMP echo requests to a host and report the "
    .. "replies, as iputils ping does.", "Exit status: 0 if any reply came back, 1 if "
    .. "none did, 2 on an error.")
  parser:help_max_width(80)
  parser:argument("destination", "Address or host name.")
  parser:option("-c --count", "Stop after sending this many probes (default: until Ctrl-C).")
    :convert(number_in("-c", 1, math.maxinteger, true))
  parser:option("-i --interval", "Seconds between probes (or 200ms, 2s...).", "1")
    :convert(duration_in("-i", "s", 0.002, 86400))
  parser:option("-W --timeout", "Seconds to wait for each reply (or 500ms...).", "10")
    :convert(duration_in("-W", "s", 0.001, 86400))
  parser:option("-w --deadline", "Seconds before ping exits, however many probes went "
    .. "out; with -c, it stops early once that many replies came back.")
    :convert(duration_in("-w", "s", 0.001, 86400 * 365))
  parser:option("-s --size", "Payload bytes.", "56"):convert(number_in("-s", 0, icmprun.limits.max_size_v4, true))
  parser:option("-t --ttl", "IP time to live / IPv6 hop limit.")
    :convert(number_in("-t", 1, 255, true))
  parser:option("-Q --tos", "TOS byte / IPv6 traffic class (decimal or 0x hex).")
    :convert(number_in("-Q", 0, 255, true))
  parser:option("-I --interface", "Send from this source address, or through this "
    .. "interface (a name, as `ip link` shows it).")
  parser:flag("-4", "Use IPv4 only.")
  parser:flag("-6", "Use IPv6 only.")
  parser:flag("-q --quiet", "Print only the first line and the summary.")
  parser:flag("-D --timestamp", "Print the Unix time before each line, as [1700000000.123456].")
  parser:flag("-a --audible", "Ring the terminal's bell (\\a) for each reply.")
  -- iputils' -n turns reverse lookups off; icmprun ping never makes any.
  parser:flag("-n --numeric", "Numeric output only (always so; taken for habit).")
  return parser
end

-- iputils prefixes ICMPv6 destination-unreachable codes with the type; the
-- engine's text (`r.err`) is the code alone there ("No route").

--- The text after "From ADDR icmp_seq=N " for a result that is neither a
-- reply nor a timeout, in iputils' words.
-- @tparam table r the result
-- @tparam boolean v6 whether the destination is IPv6
-- @treturn string
function M.error_text(r, v6)
  if r.icmp_type == nil then
    -- No ICMP message: the kernel refused the send, as it does over an
    -- unreachable route. iputils fails at connect() there; we report it
    -- per probe, in the words the router's ICMP error would have had.
    if r.status == "unreachable" then
      return v6 and "Destination unreachable: No route" or "Destination Host Unreachable"
    end
    return r.err or r.status
  end
  return r.err or r.status
end

--- The `-D` prefix: `[1700000000.123456] `, the Unix time in microseconds.
-- @tparam number time Unix time in seconds
-- @treturn string
function M.format_timestamp(time)
  return string_format("[%.6f] ", time)
end

--- The wall clock in Unix seconds (icmprun.now is monotonic): luv's
-- gettimeofday, or whole seconds without luv.
local function wall_clock()
  local ok, uv = pcall(require, "luv")
  if ok and type(uv) == "table" and uv.gettimeofday then
    local s, us = uv.gettimeofday()
    return s + us / 1e6
  end
  return os.time()
end

--- The line iputils prints on SIGQUIT, without stopping: received and sent
-- so far, the loss, and min/avg/ewma/max, where ewma is its moving average
-- (each RTT weighs 1/8), all in iputils' integer microseconds.
-- @tparam table t `transmitted`, `stats` (a Stats object), `ewma` (iputils'
--   rtt*8 accumulator in microseconds, 0 before any reply)
-- @treturn string
function M.format_status(t)
  local s = t.stats
  local loss = t.transmitted > 0 and (t.transmitted - s.received) * 100 // t.transmitted or 0
  local line = string_format("\r%d/%d packets, %d%% loss", s.received, t.transmitted, loss)
  local min, avg, max = s:summary()
  if min then
    local function us(ms)
      local x = math_floor(ms * 1000 + 0.5)
      return string_format("%d.%03d", x // 1000, x % 1000)
    end
    line = line .. string_format(", min/avg/ewma/max = %s/%s/%d.%03d/%s ms", us(min), us(avg),
      t.ewma // 8000, (t.ewma // 8) % 1000, us(max))
  end
  return line .. "\n"
end

--- ping's first line.
-- @tparam string destination as the user typed it
-- @tparam string addr the address it resolved to
-- @tparam integer size payload bytes
-- @treturn string
-- @tparam[opt] string source the source address of -I, which iputils names
function M.format_header(destination, addr, size, source)
  local from = source and string_format(" from %s :", source) or ""
  if addr:find(":", 1, true) then
    return string_format("PING %s(%s)%s %d data bytes", destination, addr, from, size)
  end
  -- IPv4's line also gives the IP datagram's size: 20 bytes of IP header
  -- and 8 of ICMP header around the payload.
  return string_format("PING %s (%s)%s %d(%d) bytes of data.", destination, addr, from,
    size, size + 28)
end

--- What -I names, as iputils tells them apart: a numeric address is a
-- source address, anything else an interface (whose name, in Linux, never
-- holds a ':').
-- @tparam string value
-- @treturn ?string source address
-- @treturn ?string interface name
-- @treturn ?integer the source's family (4 or 6)
function M.split_interface(value)
  if value:find(":", 1, true) then
    return value, nil, 6
  elseif value:match("^%d+%.%d+%.%d+%.%d+$") then
    return value, nil, 4
  end
  return nil, value, nil
end

--- The line of one result (nil for a timeout, which ping does not print).
-- @tparam table r the result
-- @tparam integer n its icmp_seq, from 1
-- @tparam string addr the destination's address
-- @treturn ?string
function M.format_result(r, n, addr)
  if r.status == "timeout" then
    return nil
  elseif r.status == "reply" then
    return string_format("%d bytes from %s: icmp_seq=%d%s time=%s ms", r.bytes,
      r.from or addr, n, r.ttl and (" ttl=" .. r.ttl) or "", M.format_time(r.rtt))
  end
  return string_format("From %s icmp_seq=%d %s", r.from or addr, n,
    M.error_text(r, addr:find(":", 1, true) ~= nil))
end

--- ping's summary: the statistics header, the counts line and the rtt line
-- (or the empty line iputils prints instead when nothing answered).
-- @tparam string destination as the user typed it
-- @tparam table t `transmitted`, `time_ms`, `stats` (a Stats object of the
--   results), `duplicates` and `corrupted` (engine counters)
-- @treturn string the lines, each ending with a newline, after an empty one
function M.format_summary(destination, t)
  local s = t.stats
  local extras = {}
  if (t.duplicates or 0) > 0 then
    extras[#extras + 1] = string_format(", +%d duplicates", t.duplicates)
  end
  if (t.corrupted or 0) > 0 then
    extras[#extras + 1] = string_format(", +%d corrupted", t.corrupted)
  end
  if s.errors > 0 then
    extras[#extras + 1] = string_format(", +%d errors", s.errors)
  end
  if t.transmitted > 0 then
    -- Probes still in flight count as sent and not received, as in ping.
    extras[#extras + 1] = string_format(", %g%% packet loss, time %dms",
      (t.transmitted - s.received) * 100 / t.transmitted, t.time_ms)
  end
  local min, avg, max, mdev = s:summary()
  return string_format("\n--- %s ping statistics ---\n%d packets transmitted, %d received%s\n%s\n",
    destination, t.transmitted, s.received, table_concat(extras),
    min and string_format("rtt min/avg/max/mdev = %.3f/%.3f/%.3f/%.3f ms", min, avg, max, mdev)
      or "")
end

-- Parses the command line: the arguments, or nil and the exit status.
local function parse(name, argv)
  local parser = build_parser(name)
  local args, message, status = cli.parse(parser, argv)
  if not args then
    if status ~= 0 then
      io_stderr:write(parser:get_usage(), "\n\n")
    end
    return nil, cli.fail(name, message, status)
  end
  if args["4"] and args["6"] then
    return nil, cli.fail(name, "only one -4 or -6 option may be specified", 2)
  end
  return args
end

--- Runs the command.
-- @tparam table arg the command line (arg[0] is the program's name)
-- @treturn integer exit status
function M.run(arg)
  local name = tostring(arg[0] or "ping"):match("([^/]*)$")
  local args, status = parse(name, arg)
  if not args then
    return status
  end
  local family = (args["4"] and 4) or (args["6"] and 6) or nil
  local source, interface, source_family
  if args.interface then
    source, interface, source_family = M.split_interface(args.interface)
    if source_family and family and source_family ~= family then
      return cli.fail(name, string_format("-I %s is not an IPv%d address", source, family), 2)
    end
    -- The destination is looked up in the source's family, as in iputils.
    family = family or source_family
  end
  local addr, err = icmprun.resolve(args.destination, { family = family })
  if not addr then
    return cli.fail(name, err, 2)
  end
  local opts = { timeout = args.timeout * 1000, size = args.size, ttl = args.ttl, tos = args.tos,
    source = source, interface = interface }
  -- A source or interface that is not one ends ping before its header; one
  -- that cannot be bound ends it at the first probe, with the socket's
  -- reason. Exit status 2 either way, as iputils fails at bind() or
  -- SO_BINDTODEVICE.
  if interface and (#interface > 15 or interface:find("[/%s]")) then
    return cli.fail(name, string_format("-I %s: not an address nor an interface name", interface), 2)
  end
  io_stdout:write(M.format_header(args.destination, addr, args.size, source), "\n")
  io_stdout:flush()

  local results = stats.new()
  local counters_before = icmprun.counters()
  local transmitted = 0
  local started = icmprun.now()
  -- iputils' "time" runs from the first send to the last thing that
  -- happened: a send or an answer (timeouts do not count).
  local last_activity = started
  local failure = nil -- why a probe could not be made at all (no socket)

  local deadline = args.deadline and started + args.deadline * 1000
  local ewma = 0 -- iputils' moving average of RTTs, times 8, in microseconds
  local function summary()
    local counters = stats.delta(counters_before, icmprun.counters())
    io_stdout:write(M.format_summary(args.destination, {
      transmitted = transmitted, stats = results,
      time_ms = math_floor(last_activity - started + 0.5),
      duplicates = counters.duplicates, corrupted = counters.corrupted,
    }))
    io_stdout:flush()
    -- With -w and -c, fewer replies than -c by the deadline is a failure.
    if deadline and args.count and results.received < args.count then
      return 1
    end
    return results.received > 0 and 0 or 1
  end

  -- Ctrl-C ends ping with its summary. The handler runs as a task while
  -- probes may still be in flight: they count as lost, as in ping.
  icmprun.on_signal("INT", function()
    os.exit(summary())
  end)
  -- Ctrl-\ (SIGQUIT) prints the running statistics and goes on, as in ping.
  icmprun.on_signal("QUIT", function()
    io_stderr:write(M.format_status({ transmitted = transmitted, stats = results, ewma = ewma }))
    io_stderr:flush()
  end)

  -- One task per probe, so that the next send never waits for a reply.
  local function probe(n)
    local called, r, perr = pcall(icmprun.ping, addr, opts)
    if not called then
      -- Only a -I address that is not one gets here: say what the option
      -- check said, without the Lua call around it.
      r, perr = nil, tostring(r):match("%((option .*)%)$") or tostring(r)
    end
    if not r then
      failure = failure or perr
      transmitted = transmitted - 1 -- nothing went out
      return
    end
    if r.status ~= "timeout" then
      last_activity = icmprun.now()
    end
    if r.status == "reply" then
      local rtt_us = math_floor(r.rtt * 1000 + 0.5)
      ewma = ewma == 0 and rtt_us * 8 or ewma + rtt_us - ewma // 8
      if args.audible then
        io_stdout:write("\a")
      end
    end
    results:add(r)
    local line = not args.quiet and M.format_result(r, n, addr)
    if line then
      io_stdout:write(args.timestamp and M.format_timestamp(wall_clock()) or "", line, "\n")
      io_stdout:flush()
    end
  end

  -- -w: at the deadline ping ends with its summary, probes in flight
  -- counting as lost. The watch naps in short steps so that it ends soon
  -- after a run that finishes first.
  local finished = false
  if deadline then
    icmprun.spawn(function()
      while not finished do
        local left = deadline - icmprun.now()
        if left <= 0 then
          os.exit(summary())
        end
        icmprun.sleep(left < 50 and left or 50)
      end
    end)
  end

  -- Whether to send another probe: -c of them; with -w, until the deadline,
  -- or until -c replies came back.
  local function more(n)
    if deadline then
      return args.count == nil or results.received < args.count
    end
    return args.count == nil or n < args.count
  end

  local in_flight = {} -- n -> task, while its probe is out
  local n = 0
  while not failure and more(n) do
    n = n + 1
    local seq = n
    transmitted = transmitted + 1
    last_activity = icmprun.now()
    in_flight[seq] = icmprun.spawn(function()
      probe(seq)
      in_flight[seq] = nil
    end)
    if more(n) then
      icmprun.sleep(args.interval * 1000)
    end
  end
  for _, task in pairs(in_flight) do
    task:join()
  end
  finished = true
  icmprun.on_signal("INT", nil)
  icmprun.on_signal("QUIT", nil)
  if failure then
    return cli.fail(name, failure, 2)
  end
  return summary()
end

return M
