-- SPDX-License-Identifier: MIT

--- The bundled commands `icmprun ping` and `icmprun sweep`, black box, against
-- loopback and the test hosts of scripts/testnet (inside scripts/netns).
local cli = require "cli"
local background = require "background"
local cjson = require "cjson"
local csv = require "icmprun.report.csv"

-- The test network of scripts/testnet.
local NORMAL4, NORMAL6 = "198.51.100.2", "2001:db8:2::2"
local SILENT4, SILENT6 = "192.0.2.2", "2001:db8:1::2"
local FAR4, FAR6 = "192.0.2.130", "2001:db8:4::2" -- behind the router
local ROUTER4, ROUTER6 = "192.0.2.66", "2001:db8:3::2"
local BEYOND4, BEYOND6 = "192.0.2.200", "2001:db8:5::9" -- the router has no route
local DEAD4, DEAD6 = "203.0.113.9", "2001:db8:dead::1" -- no route here

local explain = cli.explain

local function run(...)
  return cli.icmprun_run({ ... })
end

local lines_of = cli.lines_of

-- Escapes a string for use in a Lua pattern.
local function literal(s)
  return (s:gsub("%p", "%%%0"))
end

describe("icmprun --list", function()
  it("lists ping and sweep with one line each", function()
    local r = run("--list")
    assert.equal(0, r.code, explain(r))
    assert.matches("\nping +send ICMP echo requests", "\n" .. r.stdout)
    assert.matches("\nsweep +list the addresses", "\n" .. r.stdout)
  end)
end)

describe("icmprun ping", function()
  --- Checks ping's summary lines; returns the numbers of the rtt line.
  local function check_summary(lines, first, host, sent, received, errors)
    assert.equal("", lines[first])
    assert.equal("--- " .. host .. " ping statistics ---", lines[first + 1])
    local loss = (sent - received) * 100 / sent
    assert.matches("^" .. sent .. " packets transmitted, " .. received .. " received"
      .. (errors and (", %+" .. errors .. " errors") or "")
      .. ", " .. literal(string.format("%g", loss)) .. "%% packet loss, time %d+ms$",
      lines[first + 2])
    if received == 0 then
      assert.equal("", lines[first + 3])
      assert.equal(first + 3, #lines)
      return
    end
    local min, avg, max, mdev = lines[first + 3]:match(
      "^rtt min/avg/max/mdev = (%d+%.%d%d%d)/(%d+%.%d%d%d)/(%d+%.%d%d%d)/(%d+%.%d%d%d) ms$")
    assert.truthy(min, lines[first + 3])
    min, avg, max, mdev = tonumber(min), tonumber(avg), tonumber(max), tonumber(mdev)
    assert.is_true(min <= avg and avg <= max, lines[first + 3])
    assert.is_true(mdev <= max - min + 0.001, lines[first + 3])
    assert.equal(first + 3, #lines)
  end

  for _, case in ipairs({
    { "127.0.0.1", "PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data." },
    { "::1", "PING ::1(::1) 56 data bytes" },
    { NORMAL4, "PING " .. NORMAL4 .. " (" .. NORMAL4 .. ") 56(84) bytes of data." },
    { NORMAL6, "PING " .. NORMAL6 .. "(" .. NORMAL6 .. ") 56 data bytes" },
  }) do
    local host, header = case[1], case[2]
    it("prints iputils ping's lines and summary for " .. host .. ", exit 0", function()
      local r = run("ping", "-c", "3", "-i", "0.05", host)
      assert.equal(0, r.code, explain(r))
      assert.equal("", r.stderr)
      local lines = lines_of(r.stdout)
      assert.equal(header, lines[1])
      local seen = {}
      for i = 2, 4 do
        local seq = lines[i]:match("^64 bytes from " .. literal(host)
          .. ": icmp_seq=(%d) ttl=64 time=%d+%.%d+ ms$")
        assert.truthy(seq, lines[i])
        seen[tonumber(seq)] = true
      end
      assert.same({ true, true, true }, seen)
      check_summary(lines, 5, host, 3, 3)
    end)
  end

  it("prints iputils' header, reply size and time with -s, -t and -Q", function()
    local r = run("ping", "-c", "1", "-s", "100", "-t", "32", "-Q", "0x10", "127.0.0.1")
    assert.equal(0, r.code, explain(r))
    local lines = lines_of(r.stdout)
    assert.equal("PING 127.0.0.1 (127.0.0.1) 100(128) bytes of data.", lines[1])
    assert.matches("^108 bytes from 127%.0%.0%.1: icmp_seq=1 ttl=64 time=%d+%.%d+ ms$",
      lines[2])
    check_summary(lines, 3, "127.0.0.1", 1, 1)
  end)

  it("names the host and the address it resolved to", function()
    local r = run("ping", "-c", "1", "-4", "localhost")
    assert.equal(0, r.code, explain(r))
    local lines = lines_of(r.stdout)
    assert.equal("PING localhost (127.0.0.1) 56(84) bytes of data.", lines[1])
    assert.matches("^64 bytes from 127%.0%.0%.1: icmp_seq=1 ", lines[2])
    check_summary(lines, 3, "localhost", 1, 1)
  end)

  it("prints only the header and the summary with -q", function()
    local r = run("ping", "-q", "-c", "2", "-i", "0.05", "::1")
    assert.equal(0, r.code, explain(r))
    local lines = lines_of(r.stdout)
    assert.equal("PING ::1(::1) 56 data bytes", lines[1])
    check_summary(lines, 2, "::1", 2, 2)
  end)

  for _, host in ipairs({ SILENT4, SILENT6 }) do
    it("exits 1 with 100% loss and no rtt line when " .. host .. " is silent", function()
      local r = run("ping", "-c", "2", "-i", "0.05", "-W", "0.2", host)
      assert.equal(1, r.code, explain(r))
      local lines = lines_of(r.stdout)
      assert.matches("^PING " .. literal(host), lines[1])
      check_summary(lines, 2, host, 2, 0)
    end)
  end

  for _, case in ipairs({
    { FAR4, ROUTER4, "Time to live exceeded" },
    { FAR6, ROUTER6, "Time exceeded: Hop limit" },
  }) do
    it("reports the router's time exceeded errors for " .. case[1], function()
      local r = run("ping", "-c", "2", "-i", "0.1", "-W", "0.5", "-t", "1", case[1])
      assert.equal(1, r.code, explain(r))
      -- The router's kernel rate-limits its errors: at least one comes back.
      assert.matches("\nFrom " .. literal(case[2]) .. " icmp_seq=%d " .. literal(case[3])
        .. "\n", r.stdout)
      assert.matches("\n2 packets transmitted, 0 received, %+%d errors, 100%% packet loss",
        r.stdout)
    end)
  end

  for _, case in ipairs({
    { BEYOND4, ROUTER4, "Destination Host Unreachable" },
    { BEYOND6, ROUTER6, "Destination unreachable: No route" },
    { DEAD4, DEAD4, "Destination Host Unreachable" },
    { DEAD6, DEAD6, "Destination unreachable: No route" },
  }) do
    it("reports " .. case[1] .. " unreachable in iputils' words", function()
      local r = run("ping", "-c", "1", "-W", "1", case[1])
      assert.equal(1, r.code, explain(r))
      assert.matches("\nFrom " .. literal(case[2]) .. " icmp_seq=1 " .. literal(case[3])
        .. "\n", r.stdout)
      assert.matches("\n1 packets transmitted, 0 received, %+1 errors, 100%% packet loss",
        r.stdout)
    end)
  end

  describe("exits 2", function()
    it("for a name that does not resolve", function()
      local r = run("ping", "-c", "1", "no-such-host.invalid")
      assert.equal(2, r.code, explain(r))
      assert.equal("", r.stdout)
      assert.matches("^ping: cannot resolve 'no%-such%-host%.invalid'", r.stderr)
    end)

    it("for an address of the other family than -4/-6 ask", function()
      local r = run("ping", "-6", "-c", "1", "127.0.0.1")
      assert.equal(2, r.code, explain(r))
      assert.matches("not an IPv6 address", r.stderr)
    end)

    for _, case in ipairs({
      { { "--bogus", "::1" }, "unknown option '%-%-bogus'" },
      { {}, "missing argument 'destination'" },
      { { "-c", "0", "::1" }, "option '%-c': invalid argument '0'" },
      { { "-c", "x", "::1" }, "option '%-c': invalid argument 'x'" },
      { { "-t", "256", "::1" }, "option '%-t': invalid argument '256'" },
      { { "-i", "0", "::1" }, "option '%-i': invalid duration '0'" },
      { { "-4", "-6", "::1" }, "only one %-4 or %-6" },
    }) do
      it("with usage for: " .. table.concat(case[1], " "), function()
        local r = cli.icmprun_run({ "ping", table.unpack(case[1]) })
        assert.equal(2, r.code, explain(r))
        assert.equal("", r.stdout)
        assert.matches("ping: " .. case[2], r.stderr)
      end)
    end
  end)

  it("prints its help with -h and exits 0", function()
    local r = run("ping", "-h")
    assert.equal(0, r.code, explain(r))
    assert.matches("^Usage: ping ", r.stdout)
    assert.matches("%-W", r.stdout)
  end)

  describe("on Ctrl-C", function()
    it("stops and prints the summary, exit 0 after replies", function()
      local r = background.interrupt({ "ping", "-i", "0.05", "127.0.0.1" }, "icmp_seq=3 ")
      assert.is_true(r.ready, r.output)
      assert.equal(0, r.code, r.output)
      local sent, received = r.output:match("\n(%d+) packets transmitted, (%d+) received")
      assert.truthy(sent, r.output)
      assert.is_true(tonumber(sent) >= 3, r.output)
      -- A probe in flight when Ctrl-C came counts as lost, as in ping.
      assert.is_true(tonumber(sent) - tonumber(received) <= 1, r.output)
      assert.matches("\n%-%-%- 127%.0%.0%.1 ping statistics %-%-%-\n", r.output)
      assert.matches("\nrtt min/avg/max/mdev = [%d.]+/[%d.]+/[%d.]+/[%d.]+ ms\n$", r.output)
    end)

    it("stops and prints the summary, exit 1 when nothing answered", function()
      local r = background.interrupt({ "ping", "-i", "0.05", "-W", "5", SILENT4 }, "PING ",
        { delay = 0.3 })
      assert.is_true(r.ready, r.output)
      assert.equal(1, r.code, r.output)
      assert.matches("\n%d+ packets transmitted, 0 received, 100%% packet loss, time %d+ms\n\n$",
        r.output)
    end)
  end)

  it("is what examples/ping.lua runs", function()
    local r = cli.icmprun_run({ cli.source_dir .. "/examples/ping.lua", "-c", "1", "::1" })
    assert.equal(0, r.code, explain(r))
    assert.matches("^PING ::1%(::1%) 56 data bytes\n64 bytes from ::1: icmp_seq=1 ", r.stdout)
  end)
end)

describe("icmprun.commands.ping's lines", function()
  local ping = require "icmprun.commands.ping"
  local stats = require "icmprun.stats"

  it("give the time with fewer decimals as it grows, as iputils does", function()
    assert.equal("0.046", ping.format_time(0.0456))
    assert.equal("1.23", ping.format_time(1.234))
    assert.equal("12.3", ping.format_time(12.34))
    assert.equal("123", ping.format_time(123.4))
  end)

  it("give iputils' summary: loss with %g, extras, rtt with mdev", function()
    local s = stats.new()
    s:add({ status = "reply", rtt = 1 })
    s:add({ status = "timeout" })
    s:add({ status = "reply", rtt = 3 })
    assert.equal("\n--- host ping statistics ---\n"
      .. "3 packets transmitted, 2 received, +1 duplicates, 33.3333% packet loss, time 2002ms\n"
      .. "rtt min/avg/max/mdev = 1.000/2.000/3.000/1.000 ms\n",
      ping.format_summary("host", { transmitted = 3, stats = s, time_ms = 2002,
        duplicates = 1, corrupted = 0 }))
    local none = stats.new()
    none:add({ status = "unreachable", err = "x" })
    assert.equal("\n--- host ping statistics ---\n"
      .. "2 packets transmitted, 0 received, +1 errors, 100% packet loss, time 5ms\n\n",
      ping.format_summary("host", { transmitted = 2, stats = none, time_ms = 5 }))
  end)

  it("give ICMP errors in iputils' words for both families", function()
    assert.equal("From 192.0.2.66 icmp_seq=4 Destination Host Unreachable",
      ping.format_result({ status = "unreachable", from = "192.0.2.66", icmp_type = 3,
        icmp_code = 1, err = "Destination Host Unreachable" }, 4, "192.0.2.200"))
    assert.equal("From 2001:db8:3::2 icmp_seq=1 Destination unreachable: Address unreachable",
      ping.format_result({ status = "unreachable", from = "2001:db8:3::2", icmp_type = 1,
        icmp_code = 3, err = "Destination unreachable: Address unreachable" }, 1,
      "2001:db8:5::9"))
    assert.equal("64 bytes from ::1: icmp_seq=2 ttl=64 time=0.050 ms",
      ping.format_result({ status = "reply", from = "::1", bytes = 64, ttl = 64, rtt = 0.05 },
        2, "::1"))
    assert.is_nil(ping.format_result({ status = "timeout" }, 3, "::1"))
  end)
end)

describe("icmprun sweep", function()
  --- The set of lines of a text, and how many there were.
  local function line_set(text)
    local set, n = {}, 0
    for _, line in ipairs(lines_of(text)) do
      set[line] = true
      n = n + 1
    end
    return set, n
  end

  it("lists every answering address of a block once, with nothing on stderr", function()
    local r = run("sweep", "127.0.0.0/28")
    assert.equal(0, r.code, explain(r))
    -- The progress display stays off when stderr is not a terminal.
    assert.equal("", r.stderr)
    local set, n = line_set(r.stdout)
    assert.equal(16, n)
    for i = 0, 15 do
      assert.is_true(set["127.0.0." .. i], "127.0.0." .. i .. " is missing")
    end
  end)

  it("lists the answering addresses only, of both families", function()
    local r = run("sweep", "-t", "100", "--retries", "0", "127.0.0.1", "::1", NORMAL4, NORMAL6,
      SILENT4, SILENT6, DEAD4, DEAD6)
    assert.equal(0, r.code, explain(r))
    local set, n = line_set(r.stdout)
    assert.equal(4, n, r.stdout)
    for _, addr in ipairs({ "127.0.0.1", "::1", NORMAL4, NORMAL6 }) do
      assert.is_true(set[addr], addr .. " is missing")
    end
  end)

  it("exits 1 with an empty list when nothing answers", function()
    local r = run("sweep", "-t", "100", "--retries", "0", SILENT4, SILENT6, DEAD4)
    assert.equal(1, r.code, explain(r))
    assert.equal("", r.stdout)
  end)

  it("lists an address once however many of its probes answer", function()
    local r = run("sweep", "-c", "3", "-p", "10", "127.0.0.0/30")
    assert.equal(0, r.code, explain(r))
    local _, n = line_set(r.stdout)
    assert.equal(4, n, r.stdout)
  end)

  it("writes every result as a JSON line, and a summary line, with --json", function()
    local r = run("sweep", "--json", "-c", "2", "-p", "10", "-t", "100", "--retries", "1",
      "127.0.0.0/31", "::1", SILENT4, DEAD4)
    assert.equal(0, r.code, explain(r))
    local results, summaries, by_status, attempts = 0, {}, {}, {}
    for _, line in ipairs(lines_of(r.stdout)) do
      local record = cjson.decode(line)
      if record.type == "result" then
        results = results + 1
        by_status[record.status] = (by_status[record.status] or 0) + 1
        assert.is_true(record.n == 1 or record.n == 2, line)
        if record.status == "reply" then
          assert.is_true(record.rtt_ms >= 0, line)
          assert.equal(record.addr, record.from)
        elseif record.status == "timeout" then
          assert.equal(SILENT4, record.addr)
          attempts[#attempts + 1] = record.attempts
        end
      else
        assert.equal("summary", record.type, line)
        summaries[#summaries + 1] = record
      end
    end
    assert.equal(10, results)
    assert.same({ reply = 6, timeout = 2, unreachable = 2 }, by_status)
    assert.same({ 2, 2 }, attempts)
    assert.equal(1, #summaries)
    assert.equal(10, summaries[1].sent)
    assert.equal(6, summaries[1].received)
    assert.equal(2, summaries[1].errors)
  end)

  it("writes every result as a CSV row after a header with --csv", function()
    local r = run("sweep", "--csv", "-t", "100", "--retries", "0", "127.0.0.1", SILENT4)
    assert.equal(0, r.code, explain(r))
    local rows = assert(csv.parse(r.stdout))
    assert.same(csv.COLUMNS, rows[1])
    assert.equal(3, #rows)
    local status = {}
    for i = 2, 3 do
      assert.equal(#csv.COLUMNS, #rows[i])
      status[rows[i][2]] = rows[i][4]
    end
    assert.same({ ["127.0.0.1"] = "reply", [SILENT4] = "timeout" }, status)
  end)

  it("writes the report to a file with -o and the list to stdout", function()
    local dir = cli.temp_dir()
    local path = dir .. "/out.jsonl"
    local r = run("sweep", "--json", "-o", path, "-t", "100", "--retries", "0", "::1",
      SILENT6)
    assert.equal(0, r.code, explain(r))
    assert.equal("::1\n", r.stdout)
    local f = assert(io.open(path))
    local text = f:read("a")
    f:close()
    cli.remove_tree(dir)
    local lines = lines_of(text)
    assert.equal(3, #lines)
    for _, line in ipairs(lines) do
      assert.truthy(cjson.decode(line).type, line)
    end
  end)

  it("retries a silent address with backoff", function()
    local icmprun = require "icmprun"
    local started = icmprun.now()
    local r = run("sweep", "--json", "-t", "100", "--retries", "2", "--backoff", "2", SILENT4)
    local took = icmprun.now() - started
    assert.equal(1, r.code, explain(r))
    local record = cjson.decode(lines_of(r.stdout)[1])
    assert.equal("timeout", record.status)
    assert.equal(3, record.attempts)
    -- Timeouts of 100, 200 and 400 ms one after another: at least 700 ms,
    -- where the same retries without backoff would take 300.
    assert.is_true(took >= 700, "three attempts took only " .. took .. " ms")
  end)

  it("visits the addresses in a repeatable random order with --random --seed", function()
    local a = run("sweep", "--random", "--seed", "7", "-r", "0", "127.0.0.0/26")
    local b = run("sweep", "--random", "--seed", "7", "-r", "0", "127.0.0.0/26")
    local plain = run("sweep", "-r", "0", "127.0.0.0/26")
    assert.equal(0, a.code, explain(a))
    local set, n = line_set(a.stdout)
    assert.equal(64, n)
    assert.same(set, (line_set(plain.stdout)))
    -- Replies come in the order of the sends on loopback.
    assert.equal(a.stdout, b.stdout)
    assert.not_equal(plain.stdout, a.stdout)
  end)

  it("resolves names in the family -4/-6 ask for", function()
    local r = run("sweep", "-4", "localhost")
    assert.equal(0, r.code, explain(r))
    assert.equal("127.0.0.1\n", r.stdout)
  end)

  it("prints a summary on stderr with -s", function()
    local r = run("sweep", "-s", "-t", "100", "--retries", "0", "127.0.0.0/30", SILENT4)
    assert.equal(0, r.code, explain(r))
    assert.matches("^5 results, 4 addresses answered, 4 replies, 1 timeouts, 0 errors, "
      .. "rtt min/avg/max = [%d.]+/[%d.]+/[%d.]+ ms\n$", r.stderr)
  end)

  it("draws its live view on stderr when it is a terminal, and clears it", function()
    if not cli.sh("command -v script").ok then
      pending("script(1) is not installed")
      return
    end
    local dir = cli.temp_dir()
    local out = dir .. "/list"
    -- script(1) gives the command a terminal; its own stdout is the transcript.
    local r = cli.sh("script -qec " .. cli.quote(cli.icmprun_cmdline({ "sweep", "-r", "100",
      "127.0.0.0/27" }) .. " > " .. cli.quote(out)) .. " /dev/null")
    local f = assert(io.open(out))
    local list = f:read("a")
    f:close()
    cli.remove_tree(dir)
    assert.equal(0, r.code, explain(r))
    local _, n = line_set(list)
    assert.equal(32, n)
    assert.matches("\rsweep: %d+/32 %(%d+%%%)", r.stdout)
    assert.matches("\nreplies %d+\27%[K", r.stdout)
    -- Cleared: back to the view's first line, and erased to the end.
    assert.matches("\r\27%[%d+A\27%[J$", r.stdout)
  end)

  describe("exits 2", function()
    for _, case in ipairs({
      { { "10.0.0.300/8" }, "'10%.0%.0%.300/8' is not a CIDR block" },
      { { "-6", "127.0.0.1" }, "target '127%.0%.0%.1' is not IPv6" },
      { { "no-such-host.invalid" }, "target 'no%-such%-host%.invalid' is not an address" },
      { {}, "no targets: give them as arguments or with %-f FILE" },
      { { "--bogus", "::1" }, "unknown option '%-%-bogus'" },
      { { "--json", "--csv", "::1" }, "option '%-%-csv' can not be used together" },
      { { "-o", "/tmp/x", "::1" }, "%-%-output needs %-%-json or %-%-csv" },
      { { "-r", "fast", "::1" }, "option '%-%-rate': invalid argument 'fast'" },
      { { "--json", "-o", "/nonexistent/dir/x", "::1" }, "/nonexistent/dir/x" },
    }) do
      it("for: " .. table.concat(case[1], " "), function()
        local r = cli.icmprun_run({ "sweep", table.unpack(case[1]) })
        assert.equal(2, r.code, explain(r))
        assert.equal("", r.stdout)
        assert.matches("^sweep: " .. case[2], r.stderr)
      end)
    end

    it("after listing the addresses before a name that does not resolve", function()
      local r = run("sweep", "127.0.0.1", "no-such-host.invalid")
      assert.equal(2, r.code, explain(r))
      assert.equal("127.0.0.1\n", r.stdout)
    end)

    it("after sweeping the targets behind a name that does not resolve", function()
      local r = run("sweep", "no-such-host.invalid", "127.0.0.1")
      assert.equal(2, r.code, explain(r))
      assert.equal("127.0.0.1\n", r.stdout)
      assert.matches("^sweep: target 'no%-such%-host%.invalid' is not an address", r.stderr)
    end)
  end)

  it("prints its help with --help and exits 0", function()
    local r = run("sweep", "--help")
    assert.equal(0, r.code, explain(r))
    assert.matches("^Usage: sweep ", r.stdout)
  end)

  it("stops on Ctrl-C, keeps what it found and exits 130", function()
    local r = background.interrupt({ "sweep", "-r", "20", "127.0.0.0/24" }, "127.0.0.3")
    assert.is_true(r.ready, r.output)
    assert.equal(130, r.code, r.output)
    local _, n = line_set(r.output)
    assert.is_true(n >= 4 and n < 256, r.output)
  end)

  it("ends a --json report with its summary after Ctrl-C", function()
    local r = background.interrupt({ "sweep", "--json", "-r", "20", "127.0.0.0/24" },
      '"addr":"127.0.0.3"')
    assert.equal(130, r.code, r.output)
    local lines = lines_of(r.output)
    for _, line in ipairs(lines) do
      cjson.decode(line)
    end
    local last = cjson.decode(lines[#lines])
    assert.equal("summary", last.type)
    assert.equal(#lines - 1, last.sent)
  end)
end)
