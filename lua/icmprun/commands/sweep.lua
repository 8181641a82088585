-- SPDX-License-Identifier: MIT

--- `icmprun sweep`: list the addresses of some blocks that answer.
--
-- One `icmprun.sweep` over every target (addresses, CIDR blocks, ranges,
-- names): each address that answers is printed once, as soon as it does, one
-- per line, as `fping -a` prints them. A live view (done/total, rate, ETA,
-- the replies and other results so far, and a text histogram of the RTTs)
-- is redrawn in place on stderr when stderr is a terminal; nothing is drawn
-- otherwise.
--
-- `--json` or `--csv` report every result instead (JSON lines through
-- `icmprun.report.jsonl`, with one overall summary line at the end; CSV
-- through `icmprun.report.csv`); with `-o FILE` the report goes to that file
-- and the answering addresses still go to stdout.
--
-- Exit status: 0 if any address answered, 1 if none did, 2 on a usage error
-- (a bad option or a malformed target: the sweep stops at it; a name that
-- does not resolve: reported, and the other targets are still swept, as
-- fping does), 130 after Ctrl-C (what was known is still reported).
-- @module icmprun.commands.sweep
local icmprun = require "icmprun"
local addrset = require "icmprun.addrset"
local cli = require "icmprun.cli"
local csv = require "icmprun.report.csv"
local jsonl = require "icmprun.report.jsonl"
local progress = require "icmprun.progress"
local stats = require "icmprun.stats"

local M = {}

M.summary = "list the addresses of CIDR blocks that answer (--json/--csv for every result)"

local io_stderr, io_stdout = io.stderr, io.stdout
local string_format = string.format

local number_in, duration_in = cli.number_in, cli.duration_in

local function build_parser(name)
  local parser = cli.parser(name, "Probe every address of some blocks and list those that "
    .. "answer, one per line.", "Exit status: 0 if any address answered, 1 if none did, 2 "
    .. "on a usage error, 130 after Ctrl-C.")
  parser:help_max_width(80)
  parser:argument("targets", "Addresses, CIDR blocks (127.0.0.0/24), ranges "
    .. "(127.0.0.1-127.0.0.9) or host names."):args("*")
  parser:option("-f --file", "Read targets from this file, one per line ('#' starts a "
    .. "comment; - for standard input), besides those on the command line.")
  parser:option("-r --rate", "Probes per second over the whole sweep (0: as fast as "
    .. "possible).", "1000"):convert(number_in("--rate", 0, 1e9, false))
  parser:option("-t --timeout", "Milliseconds to wait for each reply (or 500ms, 2s...).",
    "1000"):convert(duration_in("--timeout", "ms", 1, icmprun.limits.max_timeout))
  parser:option("--retries", "Probes to resend to an address that did not answer.", "1")
    :convert(number_in("--retries", 0, 1000, true))
  parser:option("--backoff", "Timeout factor for each retry.", "1.5")
    :convert(number_in("--backoff", 1, 100, false))
  parser:option("-c --count", "Probes per address; an address that answers any of them "
    .. "is listed.", "1"):convert(number_in("--count", 1, 1e9, true))
  parser:option("-p --interval", "Milliseconds between the probes to one address (with "
    .. "--count; or 500ms, 2s...).", "1000"):convert(duration_in("--interval", "ms", 0, icmprun.limits.max_interval))
  parser:option("--size", "Payload bytes of each probe.", "56")
    :convert(number_in("--size", 0, icmprun.limits.max_size_v4, true))
  parser:option("--ttl", "IP time to live / IPv6 hop limit of each probe.")
    :convert(number_in("--ttl", 1, 255, true))
  parser:option("--tos", "TOS byte / IPv6 traffic class of each probe.")
    :convert(number_in("--tos", 0, 255, true))
  parser:option("--source", "Send every probe of this address's family from it "
    .. "(an address of this host).")
  parser:option("--interface", "Send every probe through this interface (a name, as "
    .. "`ip link` shows it).")
  parser:option("--blocklist", "Never probe the addresses of this file's CIDR blocks (one "
    .. "per line, '#' comments, as zmap's); they count as skipped. "
    .. "examples/blocklist-iana.conf lists IANA's special-purpose blocks.")
  parser:option("--allowlist", "Probe only the addresses of this file's CIDR blocks; the "
    .. "others count as skipped.")
  parser:option("--limit", "Most addresses the sweep may expand to (a /8 by default; "
    .. "raise it for larger blocks).")
    :convert(number_in("--limit", 1, 2 ^ 53, true))
  parser:flag("-4", "IPv4 only: names resolve to IPv4, IPv6 targets are refused.")
  parser:flag("-6", "IPv6 only: names resolve to IPv6, IPv4 targets are refused.")
  parser:flag("--random", "Probe the addresses of each block in a random order.")
  parser:option("--seed", "Seed of the random order, to repeat it.")
    :convert(number_in("--seed", 0, 2 ^ 53, true))
  parser:option("--shard", "Probe only shard I of N (I/N): N machines, each with its own "
    .. "I and the same targets, order and --seed, cover every address exactly once.")
    :convert(function(text)
      local i, n = text:match("^(%d+)/(%d+)$")
      i, n = tonumber(i), tonumber(n)
      if not i or i < 1 or i > n then
        return nil, string_format("option '--shard': invalid argument '%s': I/N with "
          .. "1 <= I <= N", text)
      end
      return { i, n }
    end)
  parser:option("-j --jobs", "Worker threads, each with its own sockets (a number, or "
    .. "'auto' for every CPU this process may use).", "1"):convert(function(text)
      if text == "auto" then return text end
      return number_in("--jobs", 1, 256, true)(text)
    end)
  parser:mutex(
    parser:flag("--json", "Write every result as a JSON line, and a summary line."),
    parser:flag("--csv", "Write every result as a CSV row, after a header row."))
  parser:option("-o --output", "Write the --json or --csv report to this file instead of "
    .. "stdout.")
  parser:flag("-s --stats", "Print a summary on stderr at the end.")
  return parser
end

--- The targets of a file (or "-", standard input): the first word of each
-- line, after removing what follows a '#'. The whole file is read before
-- the sweep starts, so a slow pipe never holds up the loop.
-- @tparam string path
-- @treturn[1] {string,...}
-- @treturn[2] nil
-- @treturn[2] string why the file cannot be read
function M.read_targets(path)
  local f = io.stdin
  if path ~= "-" then
    local err
    f, err = io.open(path, "r")
    if not f then
      return nil, err
    end
  end
  local targets = {}
  for line in f:lines() do
    local word = line:gsub("#.*", ""):match("^%s*(%S+)")
    if word then
      targets[#targets + 1] = word
    end
  end
  if f ~= io.stdin then
    f:close()
  end
  return targets
end

--- How many addresses a target holds, when that is cheap to know: a CIDR
-- block, a single address, an IPv4 range or a name (one). nil for an IPv6
-- range, whose size the progress display can do without, and for a block
-- too large to count in integers (beyond 2^53 addresses).
-- @tparam string target
-- @treturn ?integer
function M.target_size(target)
  local prefix = target:match("/(%d+)$")
  if prefix then
    local bits = (target:find(":", 1, true) and 128 or 32) - tonumber(prefix)
    return bits <= 53 and 1 << bits or nil
  end
  local first, last = target:match("^([%d.]+)%-([%d.]+)$")
  if first then
    local function value(a)
      local x = 0
      for octet in a:gmatch("%d+") do
        x = x * 256 + tonumber(octet)
      end
      return x
    end
    return value(last) - value(first) + 1
  end
  if target:find("-", 1, true) and target:find(":", 1, true) then
    return nil
  end
  return 1
end

-- The total number of results a sweep will give, or nil if unknown.
local function expected_results(targets, count)
  local total = 0
  for _, t in ipairs(targets) do
    local size = M.target_size(t)
    if not size then return nil end
    total = total + size * count
  end
  return total
end

-- The message of an error raised by icmprun.sweep, without the position
-- and the "bad argument" wrapping meant for programmers.
local function plain(message)
  message = tostring(message):gsub("^[^\n]-:%d+: ", "")
  message = message:match("^bad argument #%d+ to '[^']*' %((.*)%)$") or message
  message = message:gsub("%(raise opts%.limit%)", "(raise it with --limit)")
  return (message:gsub("^sweep: ", ""))
end

-- Opens the --json/--csv report: the writer (nil without one) and the file
-- handle it writes to, or nil, nil and the message of a file that cannot be
-- created.
local function open_report(args)
  local fh = io_stdout
  if args.output then
    local err
    fh, err = io.open(args.output, "w")
    if not fh then
      return nil, nil, err
    end
  end
  if args.json then
    return jsonl.new(fh), fh
  elseif args.csv then
    return csv.new(fh), fh
  end
  return nil, fh
end

-- The -s line: counts, and the RTTs when anything answered.
local function stats_line(overall, alive, skipped)
  local min, avg, max = overall:summary()
  return string_format("%d results, %d addresses answered, %d replies, %d timeouts, %d errors%s%s",
    overall.sent, alive, overall.received, overall.by_status.timeout, overall.errors,
    skipped > 0 and string_format(", %.0f skipped", skipped) or "",
    min and string_format(", rtt min/avg/max = %.3f/%.3f/%.3f ms", min, avg, max) or "")
end

--- Runs the command.
-- @tparam table arg the command line (arg[0] is the program's name)
-- @treturn integer exit status
function M.run(arg)
  local name = tostring(arg[0] or "sweep"):match("([^/]*)$")
  local args, status = cli.handle(build_parser(name), arg)
  if not args then
    return status
  end
  if args["4"] and args["6"] then
    return cli.fail(name, "only one of -4 and -6 may be given", 2)
  end
  if args.output and not (args.json or args.csv) then
    return cli.fail(name, "--output needs --json or --csv", 2)
  end
  local targets = args.targets
  if args.file then
    local from_file, why = M.read_targets(args.file)
    if not from_file then
      return cli.fail(name, why, 2)
    end
    table.move(targets, 1, #targets, #from_file + 1, from_file)
    targets = from_file
  end
  if #targets == 0 then
    return cli.fail(name, "no targets: give them as arguments or with -f FILE", 2)
  end
  local skipped = 0
  if args.blocklist or args.allowlist then
    local lists = {}
    for _, which in ipairs({ "allowlist", "blocklist" }) do
      if args[which] then
        local set, why = addrset.read(args[which])
        if not set then
          return cli.fail(name, string_format("--%s: %s", which, why), 2)
        end
        lists[which] = set
      end
    end
    local family = (args["4"] and 4) or (args["6"] and 6) or nil
    targets, skipped = addrset.cut(targets, lists.allowlist, lists.blocklist, function(target)
      local ok, addr = pcall(icmprun.resolve, target, { family = family })
      return ok and addr or nil
    end)
    if #targets == 0 then
      -- Every address was cut off: nothing answered, since nothing was sent.
      io_stderr:write(string_format("%s: nothing left to probe: %.0f addresses skipped\n",
        name, skipped))
      if args.stats then
        io_stderr:write(stats_line(stats.new(), 0, skipped), "\n")
      end
      return 1
    end
  end
  -- A source or interface that cannot be bound stops the sweep before it
  -- starts, with the socket's reason: every probe would fail the same way.
  if args.source or args.interface then
    local checked, info = pcall(icmprun.info, { source = args.source, interface = args.interface })
    if not checked then
      return cli.fail(name, plain(info), 2)
    end
    local source_family = args.source and (args.source:find(":", 1, true) and "ipv6" or "ipv4")
    for _, family in ipairs({ "ipv4", "ipv6" }) do
      local code = info[family .. "_code"]
      if (code == "ENODEV" and args.interface) or (family == source_family and code) then
        return cli.fail(name, info[family .. "_error"], 2)
      end
    end
  end
  local ok, iterate, sweep, control, closing = pcall(icmprun.sweep, targets, {
    size = args.size, ttl = args.ttl, tos = args.tos, limit = args.limit,
    rate = args.rate, timeout = args.timeout, retries = args.retries,
    backoff = args.backoff, count = args.count, interval = args.interval,
    family = (args["4"] and 4) or (args["6"] and 6) or nil,
    order = args.random and "random" or nil, seed = args.seed, shard = args.shard,
    workers = args.jobs, source = args.source, interface = args.interface,
  })
  if not ok then
    return cli.fail(name, plain(iterate), 2)
  end
  local writer, report_fh, open_err = open_report(args)
  if not report_fh then
    closing:close() -- nothing was sent: a sweep sends as it is iterated
    return cli.fail(name, open_err, 2)
  end
  -- The list of answering addresses goes to stdout unless the report does.
  local list = writer == nil or args.output ~= nil

  local overall = stats.new()
  local answered = {} -- address -> true, only needed when an address has several probes
  local alive = 0
  local bar = progress.new({ total = expected_results(targets, args.count),
    stream = io_stderr, label = name, view = true })
  -- When the list and the live view share a terminal, the view is
  -- blanked before each address, so that addresses never land inside it.
  local share_terminal = list and bar.enabled and progress.is_terminal(io_stdout)
  local interrupted = false
  local unresolved = false
  -- Codes for which the engine has no socket for a family: said once per
  -- family, with the engine's reason (which names the fix).
  local NO_SOCKET = { EACCES = true, EPERM = true, EAFNOSUPPORT = true,
    EADDRNOTAVAIL = true, ENODEV = true }
  local told_no_socket = {}
  icmprun.on_signal("INT", function()
    -- Send nothing more; the probes in flight end (as "operation canceled"
    -- errors) and everything known is still reported.
    interrupted = true
    sweep:stop()
  end)

  local swept, err = pcall(function()
    for r in iterate, sweep, control, closing do
      -- A target name that did not resolve: a result with no address.
      if r.addr == nil then
        unresolved = true
        if bar.enabled then
          bar:clear() -- The message goes to the progress line's stream.
        end
        io_stderr:write(string_format("%s: target '%s' is not an address, CIDR block, "
          .. "range or a host name that resolves (%s)\n", name, r.target, r.err))
        goto continue
      end
      if r.status == "error" and NO_SOCKET[r.code] then
        local family = r.addr:find(":", 1, true) and "ipv6" or "ipv4"
        local why = icmprun.info({ source = args.source, interface = args.interface })[family .. "_error"]
        if why and not told_no_socket[family] then
          told_no_socket[family] = true
          if bar.enabled then
            bar:clear()
          end
          io_stderr:write(string_format("%s: %s\n", name, why))
        end
      end
      overall:add(r)
      bar:result(r)
      if writer then
        writer:result(r)
      end
      if r.status == "reply" and not answered[r.addr] then
        answered[r.addr] = args.count > 1 or nil
        alive = alive + 1
        if list then
          if share_terminal then
            bar:clear()
          end
          io_stdout:write(r.addr, "\n")
          io_stdout:flush()
        end
      end
      ::continue::
    end
  end)
  bar:finish()
  icmprun.on_signal("INT", nil)
  if args.json then
    writer:summary(nil, overall)
  end
  if writer then
    writer:close()
  end
  if report_fh ~= io_stdout then
    report_fh:close()
  end
  if args.stats then
    io_stderr:write(stats_line(overall, alive, skipped), "\n")
  end
  if not swept then
    return cli.fail(name, plain(err), 2)
  end
  if interrupted then
    return 130
  end
  return unresolved and 2 or (alive > 0 and 0 or 1)
end

return M
