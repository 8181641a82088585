-- SPDX-License-Identifier: MIT

--- `icmprun fping`, black box, side by side with Debian's fping 5.1: the same
-- flags against loopback and the test network of scripts/netns, comparing
-- exit codes and output lines once RTTs, timestamps and clock times are
-- replaced by placeholders. Short -p, -t and -i keep every run brief.
local cli = require "cli"
local nftcount = require "nftcount"
local cjson = require "cjson"

local HAVE_FPING = os.execute("command -v fping >/dev/null 2>&1") == true

local explain = cli.explain

--- Replaces what differs from run to run (RTTs, times) by placeholders.
local function normalize(text)
  local lines = {}
  for line in text:gmatch("([^\n]*)\n") do
    line = line:gsub("^%[%d+%.%d+%] ", "[T] ")          -- -D timestamps
      :gsub("^%[%d%d:%d%d:%d%d%]$", "[T]")             -- -Q interval headers
      :gsub("[%d.e+-]+ ms", "X ms")
      :gsub("%([%d.]+ avg", "(X avg")
      :gsub("min/avg/max = [%d.]+/[%d.]+/[%d.]+", "min/avg/max = X/X/X")
      :gsub("[%d.]+ sec %(elapsed", "X sec (elapsed")
    -- -C lists: "host : 0.045 - 0.050".
    local head, list = line:match("^(%S+ +:)([ %d.-]+)$")
    if head then
      line = head .. list:gsub("[%d.]+", "X")
    end
    lines[#lines + 1] = line
  end
  return lines
end

local function sorted(lines)
  local copy = { table.unpack(lines) }
  table.sort(copy)
  return copy
end

--- The lines that do not match a pattern.
local function drop(lines, pattern)
  local kept = {}
  for _, line in ipairs(lines) do
    if not line:match(pattern) then
      kept[#kept + 1] = line
    end
  end
  return kept
end

local function quote_args(args)
  local parts = {}
  for i, a in ipairs(args) do
    parts[i] = cli.quote(a)
  end
  return table.concat(parts, " ")
end

local function fping_cmdline(args)
  return "fping " .. quote_args(args)
end

local function icmprun_cmdline(args)
  return cli.icmprun .. " fping " .. quote_args(args)
end

--- Runs icmprun fping with the arguments.
local function icmprun_fping(args, stdin)
  return cli.sh(icmprun_cmdline(args), stdin)
end

--- Runs both with the same arguments and asserts the same exit status and
-- the same normalized lines; `sort_stdout` compares per-probe lines as a set
-- where their order depends on timing, `drop_stderr` leaves out the stderr
-- lines that match a pattern.
local function assert_same(args, opts)
  opts = opts or {}
  local ref = cli.sh(fping_cmdline(args), opts.stdin)
  local got = cli.sh(icmprun_cmdline(args), opts.stdin)
  local why = "fping " .. table.concat(args, " ") .. "\n--- fping:\n" .. explain(ref)
    .. "\n--- icmprun fping:\n" .. explain(got)
  assert.equal(ref.code, got.code, why)
  local ref_out, got_out = normalize(ref.stdout), normalize(got.stdout)
  if opts.sort_stdout then
    ref_out, got_out = sorted(ref_out), sorted(got_out)
  end
  assert.same(ref_out, got_out, why)
  local ref_err, got_err = normalize(ref.stderr), normalize(got.stderr)
  if opts.drop_stderr then
    ref_err, got_err = drop(ref_err, opts.drop_stderr), drop(got_err, opts.drop_stderr)
  end
  assert.same(ref_err, got_err, why)
  return ref, got
end

--- An `it` that compares with the real fping, pending where it is missing.
local function compare(description, args, opts)
  if HAVE_FPING then
    it(description, function()
      assert_same(args, opts)
    end)
  else
    pending(description .. " (fping is not installed)")
  end
end

describe("icmprun.report.fping", function()
  local report = require "icmprun.report.fping"

  it("formats RTTs with fping's three significant digits", function()
    assert.same({ "0.045", "0.999", "1.23", "12.3", "123", "999999", "1.235e+06", "-1" },
      { report.ms(0.0454), report.ms(0.9994), report.ms(1.234), report.ms(12.34),
        report.ms(123.4), report.ms(999999.4), report.ms(1234567), report.ms(-1) })
  end)

  it("formats the lines of count mode, padded to the longest name", function()
    local t = { sent = 2, received = 1, min = 0.04, max = 0.04, mean = 0.04 }
    assert.equal("::1       : [1], 64 bytes, 0.040 ms (0.040 avg, 50% loss)\n",
      report.reply("::1", 9, 1, 64, 0.04, t))
    assert.equal("[1700000000.12345] ::1 : [0], timed out (NaN avg, 100% loss)\n",
      report.timeout("::1", 3, 0, { sent = 1, received = 0 }, 1700000000.123451))
    assert.equal("::1     : xmt/rcv/%loss = 2/1/50%, min/avg/max = 0.040/0.040/0.040\n",
      report.summary("::1", 7, t))
    assert.equal("h : xmt/rcv/%return = 2/3/150%, min/avg/max = 0.040/0.040/0.040\n",
      report.summary("h", 1, { sent = 2, received = 3, min = 0.04, max = 0.04,
        mean = 0.04 }))
    assert.equal("h : xmt/rcv/%loss = 0/0/0%\n", report.summary("h", 1,
      { sent = 0, received = 0 }))
    assert.equal("h   : 0.040 - 12.3\n",
      report.rtt_list("h", 3, { 0.04, false, 12.3 }, 3))
  end)

  it("formats the default mode's lines and fping's -s block", function()
    assert.equal("h is alive (0.045 ms)\n", report.alive("h", true, 0.045))
    assert.equal("h\n", report.alive("h", false))
    assert.equal("h is unreachable\n", report.unreachable("h", true))
    assert.equal(table.concat({ "", "       2 targets", "       1 alive",
      "       1 unreachable", "       0 unknown addresses", "",
      "       2 timeouts (waiting for response)", "       4 ICMP Echos sent",
      "       2 ICMP Echo Replies received", "       0 other ICMP received", "",
      " 0.048 ms (min round trip time)", " 0.055 ms (avg round trip time)",
      " 0.061 ms (max round trip time)", "        0.111 sec (elapsed real time)",
      "", "" },
      "\n"), report.global_stats({ targets = 2, alive = 1, unreachable = 1, unknown = 0,
        timeouts = 2, sent = 4, received = 2, other_icmp = 0, min = 0.048, avg = 0.055,
        max = 0.061, elapsed = 0.111 }))
  end)

  it("writes JSON lines that parse, whatever the host name holds", function()
    local name = 'odd "name"\\\n\1'
    local lines = {
      report.json_reply(name, 0, 64, 0.045, 1700000000.5),
      report.json_timeout(name, 1),
      report.json_summary(name, { sent = 2, received = 1, min = 1, max = 1, mean = 1 }),
      report.json_rtt_list(name, { 0.045 }, 2),
      report.json_interval(name, { sent = 0, received = 0 }, 1700000000),
      report.json_warning(name, "Name or service not known"),
    }
    for _, line in ipairs(lines) do
      assert.equal("\n", line:sub(-1))
      local kind, body = next(cjson.decode(line))
      assert.equal(name, body.host, kind)
    end
    assert.same({ 0.045, cjson.null }, cjson.decode(lines[4]).vSum.values)
  end)
end)

describe("icmprun fping", function()
  it("is listed by icmprun --list", function()
    local r = cli.icmprun_run({ "--list" })
    assert.equal(0, r.code, explain(r))
    assert.matches("\nfping +%S", "\n" .. r.stdout)
  end)

  describe("count mode (-c)", function()
    compare("prints each reply and a summary per host",
      { "-c", "3", "-p", "20", "127.0.0.1", "::1" })
    compare("accepts -c3, --count=3 and --count 3 alike",
      { "-c2", "--count=2", "--count", "2", "-p", "20", "127.0.0.1" })
    compare("takes bundled options as fping's parser does (-c3q is -c 3q)",
      { "-c3q", "-p", "20", "127.0.0.1" })
    compare("with -q prints only the summaries", { "-c", "2", "-q", "-p", "20",
      "127.0.0.1", "198.51.100.2", "2001:db8:2::2" })
    compare("with -D puts a timestamp before each line",
      { "-D", "-c", "2", "-p", "20", "127.0.0.1" })
    compare("with -b reports the bytes received", { "-c", "1", "-b", "100",
      "127.0.0.1", "::1" })
    compare("with -H and -O still reaches the directly connected host",
      { "-c", "1", "-H", "1", "-O", "0x10", "198.51.100.2", "2001:db8:2::2" })
    compare("with -a or -u prints no line per reply", { "-c", "1", "-a", "-p", "20",
      "127.0.0.1" })
    compare("takes options after the targets and stops at --",
      { "127.0.0.1", "-c", "2", "-p", "20", "--", "::1" })
  end)

  describe("a silent host", function()
    compare("times out in count mode, exit 1",
      { "-c", "2", "-p", "20", "-t", "50", "192.0.2.2", "2001:db8:1::2" })
    compare("is unreachable in the default mode after its retries, exit 1",
      { "-t", "30", "-r", "1", "127.0.0.1", "192.0.2.2" })
  end)

  describe("an unreachable route", function()
    compare("counts failed sends in count mode, silently",
      { "-c", "2", "-p", "20", "203.0.113.5", "2001:db8:dead::1" })
    compare("reports the failed send in the default mode",
      { "-t", "30", "-r", "1", "127.0.0.1", "203.0.113.5" })
  end)

  describe("ICMP errors from a router", function()
    -- The kernel rate-limits a router's ICMP errors (a burst of about 5,
    -- then 1 a second, and the IPv4 budget is shared with icmp_errors_spec),
    -- so a probe may get its error or simply time out: the warning lines may
    -- differ, every other line is the same either way. These runs ask for
    -- IPv6 errors, but one. fping 5.1 never reports ICMPv6 errors; icmprun
    -- fping does.
    local warning = "^ICMP"
    compare("count as timeouts in count mode", { "-c", "2", "-p", "50", "-t", "100",
      "-H", "1", "2001:db8:4::2", "2001:db8:5::1" },
      { sort_stdout = true, drop_stderr = warning })
    compare("make a host unreachable in the default mode", { "-H", "1", "-t", "50",
      "-r", "0", "2001:db8:4::2", "127.0.0.1" }, { drop_stderr = warning })

    it("are retried in the default mode while retries are left, as fping does", function()
      -- Five seconds refill the router's budget of IPv4 errors (see above),
      -- so that each of the three probes gets its error back.
      local r = cli.sh("sleep 5; " .. icmprun_cmdline({ "-s", "-r", "2", "-t", "100",
        "192.0.2.200" }))
      assert.equal(1, r.code, explain(r))
      assert.equal("192.0.2.200 is unreachable\n", r.stdout)
      local _, errors = r.stderr:gsub("ICMP Host Unreachable from 192%.0%.2%.66 for ICMP Echo "
        .. "sent to 192%.0%.2%.200\n", "")
      assert.equal(3, errors, r.stderr)
      assert.matches("\n +3 ICMP Echos sent\n", r.stderr)
      assert.matches("\n +3 other ICMP received\n", r.stderr)
    end)

    it("are reported on stderr as fping reports them", function()
      assert.equal(0, cli.sh("ip netns exec router sysctl -qw net.ipv4.icmp_ratelimit=0").code)
      local r = icmprun_fping({ "-c", "1", "-t", "200", "-H", "1", "192.0.2.130",
        "2001:db8:4::2", "2001:db8:5::1" })
      assert.equal(1, r.code, explain(r))
      local formats = {
        ["192.0.2.130"] = "^ICMP Time Exceeded from 192%.0%.2%.66 for ICMP Echo sent to "
          .. "192%.0%.2%.130$",
        ["2001:db8:4::2"] = "^ICMPv6 Time Exceeded %(Hop limit exceeded in transit%) "
          .. "from 2001:db8:3::2 for ICMPv6 Echo Request sent to 2001:db8:4::2$",
        ["2001:db8:5::1"] = "^ICMPv6 Destination Unreachable %(No route to destination%) "
          .. "from 2001:db8:3::2 for ICMPv6 Echo Request sent to 2001:db8:5::1$",
      }
      -- The router sends time exceeded without a rate limit (set below) and
      -- its IPv6 unreachable errors without one (scripts/testnet), so every
      -- error comes back, one line each, in fping's words.
      local seen = {}
      for _, line in ipairs(normalize(r.stderr)) do
        if line:match("^ICMP") then
          local host = line:match("sent to (%S+)$")
          assert.truthy(formats[host], line)
          assert.matches(formats[host], line)
          assert.is_nil(seen[host], "two lines for " .. host)
          seen[host] = true
        end
      end
      assert.same({ ["192.0.2.130"] = true, ["2001:db8:4::2"] = true,
        ["2001:db8:5::1"] = true }, seen)
      assert.same(sorted({ "192.0.2.130   : [0], timed out (NaN avg, 100% loss)",
        "2001:db8:4::2 : [0], timed out (NaN avg, 100% loss)",
        "2001:db8:5::1 : [0], timed out (NaN avg, 100% loss)" }),
        sorted(normalize(r.stdout)))
    end)
  end)

  describe("-C", function()
    compare("lists every RTT, with - for losses",
      { "-C", "3", "-p", "20", "-t", "50", "127.0.0.1", "192.0.2.2" },
      { sort_stdout = true })
    compare("with -q prints only the lists", { "-C", "2", "-q", "-p", "20", "-t", "50",
      "127.0.0.1", "192.0.2.2", "203.0.113.5", "2001:db8:dead::1" })
  end)

  describe("-g", function()
    compare("sweeps a CIDR block without its network and broadcast addresses",
      { "-g", "127.0.0.0/29" })
    compare("sweeps a /31 and a /32 whole", { "-c", "1", "-q", "-g", "127.0.0.0/31" })
    compare("sweeps a start and end address", { "-g", "127.0.0.1", "127.0.0.3" })
    compare("generates nothing for an end before the start, exit 1",
      { "-g", "127.0.0.3", "127.0.0.1" })
    compare("refuses a bad prefix length", { "-g", "127.0.0.0/33" })
    compare("refuses IPv6", { "-g", "::1/126" })
    compare("refuses what is not an address", { "-g", "foo/24" })
  end)

  describe("the default mode", function()
    compare("says which hosts are alive", { "127.0.0.1", "::1", "198.51.100.2" })
    compare("-a lists only the hosts that answered",
      { "-a", "-t", "30", "-r", "1", "127.0.0.1", "192.0.2.2", "::1" })
    compare("-u lists only the hosts that did not",
      { "-u", "-t", "30", "-r", "1", "127.0.0.1", "192.0.2.2", "::1" })
    compare("-e adds the RTT", { "-e", "127.0.0.1", "::1" })
    compare("-q prints nothing but keeps the exit status",
      { "-q", "-t", "30", "-r", "0", "127.0.0.1", "192.0.2.2" })
    compare("prints a repeated target once per time it is given",
      { "127.0.0.1", "127.0.0.1" })
  end)

  describe("-s", function()
    compare("adds the global statistics in count mode",
      { "-s", "-c", "2", "-p", "20", "-t", "50", "127.0.0.1", "192.0.2.2" },
      { sort_stdout = true })
    compare("counts every retry's timeout in the default mode",
      { "-s", "-t", "30", "-r", "2", "192.0.2.2", "127.0.0.1" })
    compare("counts failed sends as sent", { "-s", "-q", "-c", "3", "-p", "20",
      "203.0.113.5" })
  end)

  describe("targets", function()
    local file

    before_each(function()
      file = cli.temp_file("127.0.0.1\n# a comment\n\n  ::1 and more words\n")
    end)

    after_each(function()
      os.remove(file)
    end)

    it("come from -f FILE, from -f - and from standard input", function()
      if not HAVE_FPING then
        return pending("fping is not installed")
      end
      assert_same({ "-f", file })
      local text = "127.0.0.1\n::1\n"
      assert_same({ "-f", "-" }, { stdin = text })
      assert_same({}, { stdin = text })
    end)

    compare("-f cannot open a missing file, exit 4", { "-f", "/nonexistent/targets" })
    compare("a name that does not resolve: a warning and exit 2",
      { "nosuch.invalid", "127.0.0.1" })
    compare("-q hides the warning, not the exit status",
      { "-q", "-c", "1", "-p", "20", "nosuch.invalid", "127.0.0.1" })
    compare("-4 refuses an IPv6 address", { "-4", "::1", "127.0.0.1" })
    compare("-6 refuses an IPv4 address", { "-6", "-c", "1", "127.0.0.1", "::1" })
  end)

  describe("command-line errors", function()
    compare("an unknown option: exit 1 (not 3)", { "-Z", "127.0.0.1" })
    compare("an unknown long option", { "--frobnicate", "127.0.0.1" })
    compare("a long option without its argument", { "127.0.0.1", "--count" })
    compare("a long option with an argument it does not take", { "--alive=3",
      "127.0.0.1" })
    compare("an option without its argument", { "-c" })
    compare("-a with -u", { "-a", "-u", "127.0.0.1" })
    compare("-c with -l", { "-c", "2", "-l", "127.0.0.1" })
    compare("-4 with -6", { "-4", "-6", "127.0.0.1" })
    compare("a TTL out of range", { "-H", "300", "127.0.0.1" })
    compare("a backoff out of range", { "-B", "10", "127.0.0.1" })
    compare("a size out of range", { "-b", "70000", "127.0.0.1" })

    it("a bad value prints the usage on stderr, exit 1", function()
      for _, args in ipairs({ { "-c", "0", "127.0.0.1" }, { "-t", "abc", "127.0.0.1" },
        { "-g", "127.0.0.1" }, { "-f", "x", "127.0.0.1" } }) do
        local r = icmprun_fping(args)
        assert.equal(1, r.code, explain(r))
        assert.equal("", r.stdout)
        assert.matches("^Usage: fping %[options%] %[targets%.%.%.%]\n", r.stderr)
        if HAVE_FPING then
          local ref = cli.sh(fping_cmdline(args))
          assert.equal(ref.code, r.code)
          assert.equal(ref.stderr:match("^[^\n]*"), r.stderr:match("^[^\n]*"))
        end
      end
    end)

    it("-R sends random payloads, each reply checked against what was sent", function()
      -- On the wire: plain probes carry the filler byte i = i at payload
      -- bytes 16..19; with -R (--random) none does. The replies echo the
      -- random bytes, and the engine compares every byte with what it sent:
      -- a reply counts only if they agree.
      for _, addr in ipairs({ "127.0.0.1", "::1" }) do
        for _, random in ipairs({ false, true }) do
          nftcount.start(addr, { pattern = true })
          local args = { "-c", "5", "-p", "20", "-b", "200", addr }
          if random then
            table.insert(args, 1, "-R")
          end
          local r = icmprun_fping(args)
          local counts = nftcount.read()
          nftcount.stop()
          assert.equal(0, r.code, explain(r))
          assert.matches("xmt/rcv/%%loss = 5/5/0%%", r.stderr)
          assert.equal(5, counts.all)
          assert.equal(random and 0 or 5, counts.pattern, addr .. " -R " .. tostring(random))
        end
      end
      local r = icmprun_fping({ "--random", "-c", "1", "127.0.0.1" })
      assert.equal(0, r.code, explain(r))
    end)

    it("-h prints the usage on stdout, exit 0", function()
      local r = icmprun_fping({ "-h" })
      assert.equal(0, r.code, explain(r))
      assert.matches("^Usage: fping %[options%] %[targets%.%.%.%]\n", r.stdout)
      assert.matches("\n   %-J, %-%-json ", r.stdout)
    end)

    it("-v prints the version, exit 0", function()
      local r = icmprun_fping({ "-v" })
      assert.equal(0, r.code, explain(r))
      assert.matches("^fping: Version 5%.1 %(icmprun %d+%.%d+%.%d+%)\n$", r.stdout)
    end)
  end)

  describe("-l", function()
    --- Runs a loop for a moment, then sends it SIGINT.
    local function interrupted(cmdline)
      return cli.sh("timeout --preserve-status -s INT 0.5 " .. cmdline)
    end

    it("prints the summary on Ctrl-C and exits with fping's status", function()
      for _, case in ipairs({ { "127.0.0.1", code = 0 }, { "192.0.2.2", code = 1 } }) do
        local args = { "-l", "-p", "100", case[1] }
        local got = interrupted(icmprun_cmdline(args))
        assert.equal(case.code, got.code, explain(got))
        local lines = normalize(got.stderr)
        assert.equal("", lines[1], explain(got))
        local sent, received = lines[2]:match("^" .. case[1]:gsub("%.", "%%.")
          .. " : xmt/rcv/%%loss = (%d+)/(%d+)/")
        assert.truthy(sent, explain(got))
        assert.truthy(tonumber(sent) >= 3, explain(got))
        assert.equal(case.code == 0 and sent or "0", received)
        assert.equal(tonumber(sent), #normalize(got.stdout), explain(got))
        if HAVE_FPING then
          local ref = interrupted(fping_cmdline(args))
          assert.equal(ref.code, got.code)
          assert.equal(normalize(ref.stdout)[1], normalize(got.stdout)[1])
          assert.equal(#normalize(ref.stderr), #lines)
        end
      end
    end)

    it("with -Q prints interval summaries instead of each reply", function()
      local args = { "-l", "-Q", "0.2", "-p", "50", "127.0.0.1" }
      local got = interrupted(icmprun_cmdline(args))
      assert.equal(0, got.code, explain(got))
      assert.equal("", got.stdout)
      local lines = normalize(got.stderr)
      assert.equal("[T]", lines[1], explain(got))
      assert.matches("^127%.0%.0%.1 : xmt/rcv/%%loss = %d+/%d+/0%%", lines[2])
      assert.matches("^127%.0%.0%.1 : xmt/rcv/%%loss = %d+/%d+/0%%", lines[#lines])
      if HAVE_FPING then
        local ref = interrupted(fping_cmdline(args))
        assert.equal(ref.code, got.code)
        assert.equal(normalize(ref.stderr)[1], lines[1])
      end
    end)
  end)

  describe("-Q in count mode", function()
    it("prints interval summaries, then the final ones", function()
      local args = { "-c", "4", "-p", "100", "-t", "50", "-Q", "0.15", "127.0.0.1",
        "192.0.2.2" }
      local got = icmprun_fping(args)
      assert.equal(1, got.code, explain(got))
      assert.equal("", got.stdout)
      local lines = normalize(got.stderr)
      assert.equal("[T]", lines[1], explain(got))
      assert.equal("127.0.0.1 : xmt/rcv/%loss = 4/4/0%, min/avg/max = X/X/X",
        lines[#lines - 1])
      assert.equal("192.0.2.2 : xmt/rcv/%loss = 4/0/100%", lines[#lines])
      if HAVE_FPING then
        local ref = cli.sh(fping_cmdline(args))
        local ref_lines = normalize(ref.stderr)
        assert.equal(ref.code, got.code)
        assert.same({ ref_lines[#ref_lines - 1], ref_lines[#ref_lines] },
          { lines[#lines - 1], lines[#lines] })
      end
    end)
  end)

  describe("-Q counts from the start of the process", function()
    -- fping starts its report clock at its own start; icmprun fping starts
    -- it when the process began, not after the Lua start-up (fping's own
    -- suite kills `fping -l -Q 1` 2 s after starting it and wants two
    -- reports). A script that spends 1.5 s before running the command with
    -- the process's own arguments shows it: the report due 2 s after the
    -- start falls inside the 1 s run (two probes at -p 1000); counted from
    -- the run's start, it would be due after the run's end. Given a table
    -- of its own, the command is a run within the script, and counts from
    -- its own start: no interval report.
    local SCRIPT = [[
      local icmprun = require "icmprun"
      icmprun.sleep(1500)
      local fping = require "icmprun.commands.fping"
      if OWN then
        return fping.run({ [0] = "fping", table.unpack(arg) })
      end
      return fping.run(arg)
    ]]
    local ARGS = { "-c", "2", "-p", "1000", "-Q", "2", "127.0.0.1" }

    local function interval_headers(r)
      local n = 0
      for _, line in ipairs(normalize(r.stderr)) do
        n = n + (line == "[T]" and 1 or 0)
      end
      return n
    end

    it("when run with the process's arguments", function()
      local r = cli.icmprun_script("local OWN = false\n" .. SCRIPT, ARGS)
      assert.equal(0, r.code, explain(r))
      assert.equal(1, interval_headers(r), explain(r))
      assert.matches("127%.0%.0%.1 : xmt/rcv/%%loss = 2/2/0%%", r.stderr)
    end)

    it("but from its own start when given a table of its own", function()
      local r = cli.icmprun_script("local OWN = true\n" .. SCRIPT, ARGS)
      assert.equal(0, r.code, explain(r))
      assert.equal(0, interval_headers(r), explain(r))
      assert.matches("127%.0%.0%.1 : xmt/rcv/%%loss = 2/2/0%%", r.stderr)
    end)

    it("icmprun.started is the process's start, before any Lua ran", function()
      -- The process has existed at least as long as its main thread has run
      -- on a CPU (which counts the loader's and Lua's start-up too): an
      -- icmprun.started taken when the module opened would be younger. The
      -- main thread's time, not os.clock()'s sum over all threads, which
      -- can outrun the clock when threads run side by side.
      local r = cli.icmprun_script([[
        local icmprun = require "icmprun"
        local f = assert(io.open("/proc/thread-self/schedstat"))
        local cpu_ms = tonumber(f:read("n")) / 1e6
        f:close()
        local age = icmprun.now() - icmprun.started
        icmprun.sleep(200)
        print(age >= cpu_ms, icmprun.now() - icmprun.started >= age + 200)
      ]])
      assert.equal(0, r.code, explain(r))
      assert.equal("true\ttrue\n", r.stdout)
    end)
  end)

  describe("-J (upstream fping's JSON lines; Debian's 5.1 has no -J)", function()
    --- Every stdout line is one JSON object with one key; returns them.
    local function json_lines(r)
      local records = {}
      for line in r.stdout:gmatch("([^\n]*)\n") do
        local ok, value = pcall(cjson.decode, line)
        assert.is_true(ok, "not JSON: " .. line)
        local kind, body = next(value)
        assert.is_nil(next(value, kind), line)
        records[#records + 1] = { kind = kind, body = body, line = line }
      end
      return records
    end

    it("writes a line per reply and a summary per host", function()
      local r = icmprun_fping({ "-J", "-c", "2", "-p", "20", "127.0.0.1" })
      assert.equal(0, r.code, explain(r))
      assert.equal("", r.stderr)
      local n = "%d+%.?%d*"
      local lines = normalize(r.stdout)
      assert.equal(3, #lines, explain(r))
      for i = 0, 1 do
        assert.matches('^{"resp": {"host": "127%.0%.0%.1", "seq": ' .. i
          .. ', "size": 64, "rtt": ' .. n .. '}}$', lines[i + 1])
      end
      assert.matches('^{"summary": {"host": "127%.0%.0%.1", "xmt": 2, "rcv": 2, '
        .. '"loss": 0, "rttMin": ' .. n .. ', "rttAvg": ' .. n .. ', "rttMax": ' .. n
        .. '}}$', lines[3])
      json_lines(r)
    end)

    it("writes timeouts, -C lists with null, -D timestamps and -s stats", function()
      local r = icmprun_fping({ "-J", "-C", "2", "-p", "20", "-t", "50", "-D", "-s",
        "127.0.0.1", "192.0.2.2" })
      assert.equal(1, r.code, explain(r))
      assert.equal("", r.stderr)
      local kinds = {}
      for _, rec in ipairs(json_lines(r)) do
        kinds[rec.kind] = (kinds[rec.kind] or 0) + 1
        if rec.kind == "resp" or rec.kind == "timeout" then
          assert.matches('^{"' .. rec.kind
            .. '": {"timestamp": "%d+%.%d%d%d%d%d", "host": ', rec.line)
        end
      end
      assert.same({ resp = 2, timeout = 2, vSum = 2, stats = 1 }, kinds)
      local records = json_lines(r)
      assert.matches('^{"vSum": {"host": "127%.0%.0%.1", "values": %[[%d.]+, [%d.]+%]}}$',
        records[5].line)
      assert.equal('{"vSum": {"host": "192.0.2.2", "values": [null, null]}}',
        records[6].line)
      local stats = records[7].body
      assert.same({ 2, 1, 1, 0, 2, 4, 2, 0 }, { stats.targets, stats.alive,
        stats.unreachable, stats.unknownAddresses, stats.timeouts, stats.icmpEchosSent,
        stats.icmpEchoRepliesReceived, stats.otherIcmpReceived })
    end)

    it("agrees with fping's text output on the same probes", function()
      if not HAVE_FPING then
        return pending("fping is not installed")
      end
      local args = { "-C", "3", "-q", "-p", "20", "-t", "50", "127.0.0.1", "192.0.2.2",
        "203.0.113.5" }
      local ref = cli.sh(fping_cmdline(args))
      table.insert(args, 1, "-J")
      local got = icmprun_fping(args)
      assert.equal(ref.code, got.code, explain(got))
      local from_json = {}
      for _, rec in ipairs(json_lines(got)) do
        local marks = {}
        for i = 1, 3 do
          marks[i] = rec.body["values"][i] == cjson.null and "-" or "X"
        end
        from_json[#from_json + 1] = rec.body.host .. " : " .. table.concat(marks, " ")
      end
      local from_text = {}
      for _, line in ipairs(normalize(ref.stderr)) do
        from_text[#from_text + 1] = line:gsub(" +:", " :")
      end
      assert.same(from_text, from_json)
    end)

    it("reports a name that does not resolve as a warning line, exit 2", function()
      local r = icmprun_fping({ "-J", "-c", "1", "-q", "host.invalid" })
      assert.equal(2, r.code, explain(r))
      assert.equal("", r.stderr)
      assert.matches('^{"warning": {"host": "host%.invalid", "message": "[^"]+"}}\n$',
        r.stdout)
    end)

    it("needs -c, -C or -l", function()
      local r = icmprun_fping({ "-J", "127.0.0.1" })
      assert.equal(1, r.code, explain(r))
      assert.equal("", r.stdout)
      assert.equal("fping: option -J, --json requires -c, -C, or -l\n", r.stderr)
    end)
  end)
  describe("options added for habit (-A -d -n -o -x -M -N)", function()
    compare("-A shows targets by address", { "-4", "-A", "localhost" })
    compare("-n shows an address by its name", { "-n", "127.0.0.1" })
    compare("-d looks every target up again", { "-d", "127.0.0.1", "localhost" })
    compare("-A with -n shows both", { "-A", "-n", "127.0.0.1" })
    compare("-d and -n together are refused", { "-d", "-n", "127.0.0.1" })
    compare("-n and -d together are refused", { "-n", "-d", "127.0.0.1" })
    compare("-o adds the outage time to the summary", { "-o", "-q", "-c", "3", "-p", "50",
      "127.0.0.1" })
    compare("-o counts lost probes times the period", { "-o", "-c", "3", "-p", "50", "-t",
      "50", "192.0.2.2" })
    compare("-x says enough hosts answered, exit 0", { "-x", "1", "127.0.0.1", "192.0.2.2",
      "-t", "50", "-r", "0" })
    compare("-x says not enough hosts answered, exit 1", { "-x", "2", "127.0.0.1",
      "192.0.2.2", "-t", "50", "-r", "0" })
    it("-x with a count of 0 prints the usage, exit 1", function()
      local r = icmprun_fping({ "-x", "0", "127.0.0.1" })
      assert.equal(1, r.code, explain(r))
      assert.matches("^Usage: fping %[options%] %[targets%.%.%.%]\n", r.stderr)
      assert.matches("\n   %-x, %-%-reachable=N ", r.stderr)
    end)
    compare("-M is taken (IPv4 probes carry DF)", { "-M", "127.0.0.1" })
    compare("-m pings every address of a name", { "-m", "localhost" })
    compare("-m with -A shows each address", { "-A", "-m", "localhost" })

    it("-X (upstream's, not 5.1's) ends as soon as enough hosts answered", function()
      local r = icmprun_fping({ "-X", "1", "--generate", "127.0.0.0/29" })
      assert.equal(0, r.code, explain(r))
      assert.equal("Enough hosts reachable (required: 1, reachable: 1)\n", r.stdout)
      assert.equal("", r.stderr)
      r = icmprun_fping({ "-X", "2", "-r", "0", "-t", "50", "127.0.0.1", "192.0.2.2" })
      assert.equal(1, r.code, explain(r))
      assert.equal("Not enough hosts reachable (required: 2, reachable: 1)\n", r.stdout)
    end)

    it("-N writes netdata's charts on each -Q report", function()
      local r = icmprun_fping({ "-c", "3", "-p", "400", "-Q", "0.3", "-N", "127.0.0.1" })
      assert.equal(0, r.code, explain(r))
      local id = "fping%.127_0_0_1"
      assert.matches("^CHART " .. id .. "_packets '' 'FPing Packets for host 127%.0%.0%.1' "
        .. "packets '127%.0%.0%.1' fping%.packets line 110020 0\n"
        .. "DIMENSION xmt sent absolute 1 1\nDIMENSION rcv received absolute 1 1\n"
        .. "BEGIN " .. id .. "_packets\nSET xmt = 1\nSET rcv = 1\nEND\n"
        .. "CHART " .. id .. "_quality '' 'FPing Quality for host 127%.0%.0%.1' percentage "
        .. "'127%.0%.0%.1' fping%.quality area 110010 0\nDIMENSION returned '' absolute 1 1\n"
        .. "BEGIN " .. id .. "_quality\nSET returned = 100\nEND\n"
        .. "CHART " .. id .. "_latency '' 'FPing Latency for host 127%.0%.0%.1' ms "
        .. "'127%.0%.0%.1' fping%.latency area 110000 0\n"
        .. "DIMENSION min minimum absolute 1 1000000\nDIMENSION max maximum absolute 1 1000000"
        .. "\nDIMENSION avg average absolute 1 1000000\n"
        .. "BEGIN " .. id .. "_latency\nSET min = %d+\nSET avg = %d+\nSET max = %d+\nEND\n"
        .. "BEGIN " .. id .. "_packets\n", r.stdout)
      -- The charts are defined once; later reports only set values.
      local _, charts = r.stdout:gsub("\nCHART ", "")
      assert.equal(2, charts)
      assert.matches("^127%.0%.0%.1 : xmt/rcv/%%loss = 3/3/0%%", r.stderr)
    end)
  end)
end)
