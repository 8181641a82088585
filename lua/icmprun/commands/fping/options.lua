-- SPDX-License-Identifier: MIT

--- The command line of `icmprun fping`, read as fping 5.1 reads it.
--
-- fping's option parser (optparse) takes options after targets, stops at
-- `--`, bundles short options (`-aq`), and takes an option's argument from
-- the rest of its word or the next one (`-c3`, `-c 3`, `--count=3`,
-- `--count 3`; `-c3q` is a count of "3q", read as 3). Numbers are read as
-- fping's C calls read them (`sscanf`, `atoi`), with its checks and
-- messages in its order. The settings then say which lines fping prints:
-- `verbose` ("is alive"), `per_recv` (a line per probe), `alive`,
-- `unreachable`, `quiet`.
-- @module icmprun.commands.fping.options
local icmprun = require "icmprun"

local M = {}

local string_format = string.format
local math_min = math.min

-- fping's limits (fping.c and options.h of 5.1).
local MAX_PING_DATA = 65536 - 40 - 8
local AUTOTUNE_TIMEOUT_MAX = 2000
local MIN_BACKOFF, MAX_BACKOFF = 1.0, 5.0
-- The sweep's own limits, which fping's options could exceed.
local MAX_RETRIES, MAX_COUNT, MAX_MS = 1000, 1000000000, icmprun.limits.max_timeout

--- fping's options: short letter, long name, whether it takes an argument.
local OPTIONS = {
  { "4", "ipv4" }, { "6", "ipv6" }, { "a", "alive" },
  { "A", "addr" },
  { "b", "size", arg = true }, { "B", "backoff", arg = true },
  { "c", "count", arg = true }, { "C", "vcount", arg = true },
  { "d", "rdns" }, { "D", "timestamp" },
  { "e", "elapsed" }, { "f", "file", arg = true }, { "g", "generate" },
  { "h", "help" }, { "H", "ttl", arg = true }, { "i", "interval", arg = true },
  { "I", "iface", arg = true },
  { "j", "jobs", arg = true }, -- icmprun's own: worker threads.
  { "J", "json" }, { "l", "loop" },
  { "m", "all" },
  { "M", "dontfrag" },
  { "n", "name" },
  { "N", "netdata" },
  { "o", "outage" },
  { "O", "tos", arg = true }, { "p", "period", arg = true }, { "q", "quiet" },
  { "Q", "squiet", arg = true }, { "r", "retry", arg = true },
  { "R", "random" }, { "s", "stats" },
  { "S", "src", arg = true },
  { "t", "timeout", arg = true }, { "T", nil, arg = true }, { "u", "unreach" },
  { "v", "version" },
  { "x", "reachable", arg = true }, { "X", "fast-reachable", arg = true },
}

local by_short, by_long = {}, {}
for _, o in ipairs(OPTIONS) do
  by_short[o[1]] = o
  if o[2] then
    by_long[o[2]] = o
  end
end

local USAGE = [[
Usage: %s [options] [targets...]

Probing options:
   -4, --ipv4         only ping IPv4 addresses
   -6, --ipv6         only ping IPv6 addresses
   -b, --size=BYTES   amount of ping data to send, in bytes (default: 56)
   -B, --backoff=N    set exponential backoff factor to N (default: 1.5)
   -c, --count=N      count mode: send N pings to each target
   -f, --file=FILE    read list of targets from a file ( - means stdin)
   -g, --generate     generate target list (only if no -f specified)
                      (give start and end IP in the target list, or a CIDR address)
                      (ex. %s -g 192.168.1.0 192.168.1.255 or %s -g 192.168.1.0/24)
   -H, --ttl=N        set the IP TTL value (Time To Live hops)
   -I, --iface=IFACE  bind to a particular interface
   -j, --jobs=N       icmprun: N worker threads, each with its own sockets
                      (a number up to 256, or "auto": one per usable CPU)
   -l, --loop         loop mode: send pings forever
   -m, --all          use all IPs of provided hostnames (e.g. IPv4 and IPv6), use with -A
   -O, --tos=N        set the type of service (tos) flag on the ICMP packets
   -p, --period=MSEC  interval between ping packets to one target (in ms)
                      (in loop and count modes, default: 1000 ms)
   -r, --retry=N      number of retries (default: 3)
   -R, --random       random packet data (to foil link data compression)
   -S, --src=IP       set source address
   -t, --timeout=MSEC individual target initial timeout (default: 500 ms,
                      except with -l/-c/-C, where it's the -p period up to 2000 ms)

Output options:
   -a, --alive        show targets that are alive
   -A, --addr         show targets by address
   -C, --vcount=N     same as -c, report results in verbose format
   -d, --rdns         show targets by name (force reverse-DNS lookup)
   -D, --timestamp    print timestamp before each output line
   -e, --elapsed      show elapsed time on return packets
   -i, --interval=MSEC  interval between sending ping packets (default: 10 ms)
   -J, --json         output in JSON lines (with -c, -C or -l)
   -n, --name         show targets by name (reverse-DNS lookup for target IPs)
   -N, --netdata      output compatible for netdata (-l -Q are required)
   -o, --outage       show the accumulated outage time (lost packets * packet interval)
   -q, --quiet        quiet (don't show per-target/per-ping results)
   -Q, --squiet=SECS  same as -q, but add interval summary every SECS seconds
   -s, --stats        print final stats
   -u, --unreach      show targets that are unreachable
   -v, --version      show version
   -x, --reachable=N  shows if >=N hosts are reachable or not
   -X, --fast-reachable=N exits true immediately when N hosts are found

Probing options taken for compatibility:
   -M, --dontfrag     set the Don't Fragment flag (icmprun sets it on every
                      IPv4 probe; one larger than the path MTU is fragmented)
]]

-- ---- Numbers, as fping's C calls read them ----------------------------------

--- sscanf("%f"): the longest decimal number at the start, or nil.
local function scan_float(s)
  local num = s:match("^%s*([+-]?%d+%.?%d*[eE][+-]?%d+)")
    or s:match("^%s*([+-]?%.%d+[eE][+-]?%d+)")
    or s:match("^%s*([+-]?%d+%.?%d*)") or s:match("^%s*([+-]?%.%d+)")
  return num and tonumber(num)
end

--- atoi: the leading integer, or 0.
-- @tparam string s
-- @treturn integer
function M.atoi(s)
  return tonumber(s:match("^%s*([+-]?%d+)") or "0")
end
local atoi = M.atoi

--- sscanf("%u"): the leading integer (negative ones wrap, as in C), or nil.
local function scan_unsigned(s)
  local n = tonumber(s:match("^%s*([+-]?%d+)") or "")
  if n and n < 0 then
    n = n % 4294967296
  end
  return n
end

--- sscanf("%i"): decimal, 0x hexadecimal or 0 octal, or nil.
local function scan_int(s)
  local sign, hex = s:match("^%s*([+-]?)0[xX](%x+)")
  local n = hex and tonumber(hex, 16)
  if not n then
    local oct
    sign, oct = s:match("^%s*([+-]?)0([0-7]*)")
    n = oct and (oct == "" and 0 or tonumber(oct, 8))
  end
  if not n then
    sign, n = s:match("^%s*([+-]?)(%d+)")
    n = n and tonumber(n)
  end
  return n and (sign == "-" and -n or n)
end

--- The family of a numeric address, as inet_pton reads it (4 or 6), or nil:
-- what fping's -S takes.
-- @tparam string s
-- @treturn ?integer
function M.source_family(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if a then
    for _, octet in ipairs({ a, b, c, d }) do
      if #octet > 3 or tonumber(octet) > 255 then
        return nil
      end
    end
    return 4
  end
  -- The probe options check the rest of an IPv6 address's syntax.
  if s:find(":", 1, true) and s:match("^[%x:.]+$") and
      pcall(icmprun.info, { source = s, family = 6 }) then
    return 6
  end
  return nil
end

-- ---- The command line ------------------------------------------------------

--- A command-line failure: the message (nil for the usage text) and status.
local Exit = {}

--- Ends the command with fping's message and exit status: raises an error
-- that `is_exit` recognises. A nil message stands for the usage text.
-- @tparam ?string message
-- @tparam[opt=1] integer status
function M.fail(message, status)
  error(setmetatable({ message = message, status = status or 1 }, Exit), 0)
end
local fail = M.fail

--- Whether an error is one that `fail` raised.
function M.is_exit(e)
  return getmetatable(e) == Exit
end

--- Splits the command line as fping's option parser (optparse) does:
-- options may follow targets, `--` ends them, short options bundle, and an
-- option's argument is the rest of its word or the next word. Calls
-- `on_option(o, value, shown)` for each option in order; returns the targets.
local function parse_command_line(argv, prog, on_option)
  local targets = {}
  local i = 1
  local function invalid(msg, what)
    fail(string_format("%s: %s -- '%s'\nsee 'fping -h' for usage information", prog,
      msg, what))
  end
  while argv[i] ~= nil do
    local a = argv[i]
    i = i + 1
    if a == "--" then
      for j = i, #argv do
        targets[#targets + 1] = argv[j]
      end
      break
    elseif a:sub(1, 2) == "--" then
      local name, value = a:match("^%-%-([^=]*)=(.*)$")
      name = name or a:sub(3)
      local o = by_long[name]
      if o == nil then
        invalid("invalid option", a:sub(3))
      elseif o.arg then
        if value == nil then
          value = argv[i]
          if value == nil then
            invalid("option requires an argument", name)
          end
          i = i + 1
        end
      elseif value ~= nil then
        invalid("option takes no arguments", name)
      end
      on_option(o, value, "--" .. name)
    elseif a:sub(1, 1) == "-" and #a > 1 then
      local k = 2
      while k <= #a do
        local c = a:sub(k, k)
        local o = by_short[c]
        if o == nil then
          invalid("invalid option", c)
        end
        local value
        if o.arg then
          if k < #a then
            value = a:sub(k + 1)
          else
            value = argv[i]
            if value == nil then
              invalid("option requires an argument", c)
            end
            i = i + 1
          end
          k = #a
        end
        on_option(o, value, "-" .. c)
        k = k + 1
      end
    else
      targets[#targets + 1] = a
    end
  end
  return targets
end

--- Reads the options into a settings table, with fping 5.1's checks and
-- messages, in its order; returns it and the targets. Raises through
-- `fail` on a bad command line, and for -h and -v.
-- @tparam {string,...} argv the arguments
-- @tparam string prog the name in messages ("fping")
-- @treturn table the settings
-- @treturn {string,...} the targets
function M.parse(argv, prog)
  local o = {
    prog = prog, verbose = true, backoff_on = true, retry = 3, timeout = 500,
    interval = 10, period = 1000, backoff = 1.5, size = 56, count = 1, ttl = 0, tos = 0,
    report_interval = 0,
  }
  local function usage_error()
    fail(nil, 1)
  end
  local function float_option(value)
    local v = scan_float(value)
    if v == nil or v < 0 then
      usage_error()
    end
    return v
  end
  local actions = {
    ["4"] = function()
      if o.family == 6 then
        fail(prog .. ": can't specify both -4 and -6")
      end
      o.family = 4
    end,
    ["6"] = function()
      if o.family == 4 then
        fail(prog .. ": can't specify both -4 and -6")
      end
      o.family = 6
    end,
    t = function(v) o.timeout = float_option(v); o.timeout_on = true end,
    r = function(v) o.retry = scan_unsigned(v) or usage_error() end,
    i = function(v) o.interval = float_option(v) end,
    p = function(v) o.period = float_option(v) end,
    c = function(v)
      o.count = atoi(v)
      if o.count <= 0 then
        usage_error()
      end
      o.count_on = true
    end,
    C = function(v)
      o.count = atoi(v)
      if o.count <= 0 then
        usage_error()
      end
      o.count_on, o.report_all = true, true
    end,
    b = function(v) o.size = scan_unsigned(v) or usage_error() end,
    h = function() fail(nil, 0) end,
    q = function() o.verbose, o.quiet = false, true end,
    Q = function(v)
      o.verbose, o.quiet = false, true
      o.report_interval = float_option(v)
    end,
    e = function() o.elapsed = true end,
    B = function(v)
      o.backoff = scan_float(v) or 0
      if o.backoff == 0 then
        usage_error()
      end
    end,
    s = function() o.stats = true end,
    D = function() o.timestamp = true end,
    l = function() o.loop, o.backoff_on = true, false end,
    u = function() o.unreachable = true end,
    a = function() o.alive = true end,
    H = function(v)
      o.ttl = atoi(v)
      if o.ttl == 0 then
        usage_error()
      end
    end,
    v = function()
      fail(string_format("%s: Version 5.1 (icmprun %s)", prog, icmprun.version), 0)
    end,
    f = function(v) o.filename = v end,
    g = function() o.generate = true end,
    T = function() end, -- Ignored, as fping ignores it (compatibility with 2.4).
    O = function(v) o.tos = scan_int(v) or usage_error() end,
    J = function() o.json = true end,
    A = function() o.by_address = true end,
    n = function()
      if o.rdns then
        fail(prog .. ": use either one of -d or -n")
      end
      o.by_name = true
    end,
    d = function()
      if o.by_name then
        fail(prog .. ": use either one of -d or -n")
      end
      o.rdns = true
    end,
    -- icmprun's engine sets DF on every IPv4 probe already (sockets.c).
    M = function() o.dontfrag = true end,
    N = function() o.netdata = true end,
    o = function() o.outage = true end,
    R = function() o.random = true end,
    x = function(v)
      o.min_reachable = atoi(v)
      if o.min_reachable <= 0 then
        usage_error()
      end
    end,
    X = function(v)
      o.min_reachable = atoi(v)
      if o.min_reachable <= 0 then
        usage_error()
      end
      o.fast_reachable = true
    end,
    m = function() o.all = true end,
    -- fping binds the socket of the address's family; a second -S of the
    -- other family would bind the other one, which icmprun cannot (one
    -- source per run), so it is refused rather than ignored.
    S = function(v)
      local family = M.source_family(v)
      if family == nil then
        fail(string_format("%s: can't parse source address: %s", prog, v))
      elseif o.source and o.source_family ~= family then
        fail(string_format("%s: icmprun fping takes one -S address (one family)", prog))
      end
      o.source, o.source_family = v, family
    end,
    I = function(v) o.interface = v end,
    j = function(v)
      local n = v == "auto" and v or math.tointeger(tonumber(v))
      if n == nil or (n ~= "auto" and (n < 1 or n > 256)) then
        fail(string_format("%s: -j/--jobs must be a number from 1 to 256 or auto, not %s",
          prog, v))
      end
      o.jobs = n
    end,
  }
  local targets = parse_command_line(argv, prog, function(opt, value)
    actions[opt[1]](value)
  end)

  if o.ttl > 255 or o.ttl < 0 then
    fail(string_format("%s: ttl %d out of range", prog, o.ttl % 4294967296))
  end
  if o.unreachable and o.alive then
    fail(prog .. ": specify only one of a, u")
  end
  if o.count_on and o.loop then
    fail(prog .. ": specify only one of c, l")
  end
  if o.json and not o.count_on and not o.loop then
    fail(prog .. ": option -J, --json requires -c, -C, or -l")
  end
  if o.size > MAX_PING_DATA then
    fail(string_format("%s: data size %d not valid, must be lower than %d", prog, o.size,
      MAX_PING_DATA))
  end
  if o.backoff > MAX_BACKOFF or o.backoff < MIN_BACKOFF then
    fail(string_format("%s: backoff factor %.1f not valid, must be between %.1f and %.1f",
      prog, o.backoff, MIN_BACKOFF, MAX_BACKOFF))
  end
  -- Values fping would take but icmprun's engine cannot honour.
  if o.tos < 0 or o.tos > 255 then
    fail(string_format("%s: tos %d out of range (icmprun fping takes 0 to 255)", prog,
      o.tos))
  end
  if o.retry > MAX_RETRIES then
    fail(string_format("%s: retry %d out of range (icmprun fping takes 0 to %d)", prog,
      o.retry, MAX_RETRIES))
  end
  if o.count > MAX_COUNT then
    fail(string_format("%s: count %d out of range (icmprun fping takes 1 to %d)", prog,
      o.count, MAX_COUNT))
  end
  for _, name in ipairs({ "timeout", "period", "interval" }) do
    if o[name] > MAX_MS then
      fail(string_format("%s: %s %g ms out of range (icmprun fping takes at most %d)",
        prog, name, o[name], MAX_MS))
    end
  end

  -- Which lines are printed, as fping 5.1 decides it.
  if o.alive or o.unreachable or o.min_reachable then
    o.verbose = false
  end
  if o.count_on then
    o.per_recv = o.verbose
    o.alive, o.unreachable, o.verbose = false, false, false
  end
  if o.loop then
    o.per_recv = o.report_interval == 0
    o.alive, o.unreachable, o.verbose = false, false, false
  end
  -- In count and loop modes the timeout defaults to the period, at most 2 s.
  if (o.loop or o.count_on) and not o.timeout_on then
    o.timeout = math_min(o.period, AUTOTUNE_TIMEOUT_MAX)
  end
  return o, targets
end

--- fping's usage text, for the supported options.
-- @tparam string prog
-- @treturn string
function M.usage(prog)
  return string_format(USAGE, prog, prog, prog)
end

return M
