-- SPDX-License-Identifier: MIT

--- `icmprun traceroute`: traceroute's ICMP (`-I`) output, on `icmprun.trace`.
--
-- traceroute 2.1 (Debian's `traceroute`) is the reference: the same first
-- line, one line per hop with each probe's address (printed again only when
-- it changes), time ("%.3f ms") or "*", and the "!H"-style marks of ICMP
-- unreachable errors. Options: `-I` (accepted: ICMP echo is the only
-- method), `-n`, `-q` probes per hop, `-w` seconds to wait for each probe,
-- `-m` max TTL, `-f` first TTL, `-4/-6`, and the packet length (IP and ICMP
-- headers included) after the host. Every probe of every hop leaves at once,
-- so the whole trace takes about one `-w`.
--
-- Exit status as traceroute's: 0 once the trace is printed, 2 for a bad
-- option or a host that does not resolve.
-- @module icmprun.commands.traceroute
local icmprun = require "icmprun"
local cli = require "icmprun.cli"

local M = {}

M.summary = "print the hops to a host, like traceroute -I (-n -q -w -m -f -4 -6)"

local io_stderr, io_stdout = io.stderr, io.stdout
local string_format, table_concat = string.format, table.concat
local number_in, duration_in = cli.number_in, cli.duration_in

local function build_parser(name)
  local parser = cli.parser(name, "Print the path to a host, hop by hop, as traceroute -I "
    .. "does.", "Exit status: 0 once the path is printed; 2 for a bad option or host.")
  parser:help_max_width(80)
  parser:argument("host", "Address or host name.")
  parser:argument("packetlen", "Packet length in bytes, headers included.")
    :args("?"):convert(number_in("packetlen", 28, 65000, true))
  parser:flag("-I --icmp", "Use ICMP echo (the only method here).")
  parser:flag("-n", "Print addresses, not names.")
  parser:option("-q --queries", "Probes per hop.", "3"):convert(number_in("-q", 1, 10, true))
  parser:option("-w --wait", "Seconds to wait for each probe's answer (or 500ms...).", "5")
    :convert(function(text)
      -- traceroute takes MAX,HERE,NEAR; only MAX applies here.
      return duration_in("-w", "s", 0, 86400)((text:match("^[^,]*")))
    end)
  parser:option("-m --max-hops", "Last TTL to probe.", "30"):convert(number_in("-m", 1, 255, true))
  parser:option("-f --first", "First TTL to probe.", "1"):convert(number_in("-f", 1, 255, true))
  parser:option("-s --source", "Send from this address of this host.")
  parser:option("-i --interface", "Send through this interface.")
  parser:flag("-4", "Use IPv4 only.")
  parser:flag("-6", "Use IPv6 only.")
  return parser
end

-- traceroute's marks for ICMP unreachable codes; nil for none.
local MARKS4 = { [0] = "!N", [1] = "!H", [2] = "!P", [5] = "!S", [9] = "!X", [10] = "!X",
  [13] = "!X", [14] = "!V", [15] = "!C" }
local MARKS6 = { [0] = "!N", [1] = "!X", [3] = "!H" }

--- The mark after an unreachable answer's time ("!H"), or nil.
-- @tparam table r a result
function M.mark(r)
  if r.status ~= "unreachable" or not r.icmp_code then
    return nil
  end
  local v6 = r.addr:find(":", 1, true) ~= nil
  local mark = (v6 and MARKS6 or MARKS4)[r.icmp_code]
  if mark == nil and not (v6 and r.icmp_code == 4 or not v6 and r.icmp_code == 3) then
    mark = string_format("!<%d>", r.icmp_code)
  end
  return mark
end

--- One hop's line: its TTL, then each probe in the order sent.
-- @tparam integer ttl
-- @tparam table results the hop's results
-- @tparam function name address -> printed text
-- @treturn string
function M.format_hop(ttl, results, name)
  local parts = { string_format("%2d ", ttl) }
  local last_addr = nil
  for _, r in ipairs(results) do
    if r.from and r.rtt then
      if r.from ~= last_addr then
        parts[#parts + 1] = " " .. name(r.from)
        last_addr = r.from
      end
      parts[#parts + 1] = string_format("  %.3f ms", r.rtt)
      local mark = M.mark(r)
      if mark then
        parts[#parts + 1] = " " .. mark
      end
    else
      parts[#parts + 1] = " *"
    end
  end
  return table_concat(parts)
end

local function namer(numeric)
  if numeric then
    return function(addr) return addr end
  end
  local uv = require "luv"
  local cache = {}
  return function(addr)
    if cache[addr] == nil then
      cache[addr] = uv.getnameinfo({ ip = addr }) or addr
    end
    return cache[addr] .. " (" .. addr .. ")"
  end
end

--- Runs the command.
-- @tparam table arg the command line (arg[0] is the program's name)
-- @treturn integer exit status
function M.run(arg)
  local name = tostring(arg[0] or "traceroute"):match("([^/]*)$")
  local args, status = cli.handle(build_parser(name), arg, 2)
  if not args then
    return status
  end
  if args["4"] and args["6"] then
    return cli.fail(name, "-4 and -6 cannot go together", 2)
  end
  if args.first > args.max_hops then
    return cli.fail(name, "first hop out of range", 2)
  end
  local family = (args["4"] and 4) or (args["6"] and 6) or nil
  if args.source and not family then
    family = args.source:find(":", 1, true) and 6 or 4 -- The host resolves in it.
  end
  local addr, err = icmprun.resolve(args.host, { family = family })
  if not addr then
    io_stderr:write(args.host, ": ", tostring(err), "\n", string_format(
      "Cannot handle \"host\" cmdline arg `%s' on position 1 (argc %d)\n", args.host, #arg))
    return 2
  end
  local v6 = addr:find(":", 1, true) ~= nil
  local headers = v6 and 48 or 28
  local packetlen = math.max(args.packetlen or (v6 and 80 or 60), headers)
  local size = packetlen - headers
  io_stdout:write(string_format("traceroute to %s (%s), %d hops max, %d byte packets\n",
    args.host, addr, args.max_hops, packetlen))
  io_stdout:flush()

  local ok, it, tr = pcall(icmprun.trace, addr, {
    count = args.queries, interval = 0, timeout = args.wait * 1000, max_ttl = args.max_hops,
    first_ttl = args.first, size = size, family = family,
    flow = size >= 10 and "stable" or "vary",
    source = args.source, interface = args.interface,
  })
  if not ok then
    return cli.fail(name, tostring(it):gsub("^.-trace: ", ""), 2)
  end
  local by_ttl = {}
  local next_ttl = args.first
  local print_name = namer(args.n)
  -- A hop's line goes out once all its probes have ended and every line
  -- before it is out, so lines come in order as the answers allow.
  local function flush_ready()
    local last = tr.end_ttl or args.max_hops
    while next_ttl <= last and by_ttl[next_ttl] and #by_ttl[next_ttl] == args.queries do
      io_stdout:write(M.format_hop(next_ttl, by_ttl[next_ttl], print_name), "\n")
      io_stdout:flush()
      next_ttl = next_ttl + 1
    end
  end
  for hop, r in it, tr do
    if tr.failure then
      break
    end
    local list = by_ttl[hop.ttl] or {}
    by_ttl[hop.ttl] = list
    list[#list + 1] = r
    flush_ready()
  end
  if tr.failure then
    io_stderr:write(name, ": ", tr.failure, "\n")
    return 2
  end
  flush_ready()
  return 0
end

return M
