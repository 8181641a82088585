-- SPDX-License-Identifier: MIT

--- Options typed from habit: ping's -n, -w, -D; sweep's -f, --size, --ttl,
-- --tos, --limit; durations with units (500ms, 2s) wherever a command takes
-- a time, bare numbers keeping each command's own unit.
local cli = require "cli"

local explain = cli.explain

local function run(...)
  return cli.icmprun_run({ ... })
end

describe("icmprun.cli.duration_in", function()
  local icli = require "icmprun.cli"

  it("takes bare numbers in the command's unit and numbers with units", function()
    local seconds = icli.duration_in("-i", "s", 0.002, 86400)
    assert.equal(1.5, seconds("1.5"))
    assert.equal(0.5, seconds("500ms"))
    assert.equal(2, seconds("2s"))
    assert.equal(90, seconds("1.5m"))
    assert.equal(3600, seconds("1h"))
    local ms = icli.duration_in("-t", "ms", 1, 86400000)
    assert.equal(250, ms("250"))
    assert.equal(2000, ms("2s"))
    assert.equal(1.5, ms("1500us"))
    assert.equal(1000, ms("1e3"))
  end)

  it("refuses unknown units, junk and values out of range, naming the option", function()
    local ms = icli.duration_in("--timeout", "ms", 1, 1000)
    for _, bad in ipairs({ "2x", "ms", "", "1s2", "-5", "2s ms", "0.5ms", "2s0", "nan" }) do
      local value, message = ms(bad)
      assert.is_nil(value, bad)
      assert.matches("^option '%-%-timeout': invalid duration '", message)
    end
    assert.has_error(function() icli.duration_in("-x", "days", 0, 1) end)
  end)
end)

describe("icmprun ping", function()
  it("takes -n as iputils does, and -i/-W with units", function()
    local r = run("ping", "-n", "-c", "2", "-i", "50ms", "-W", "1s", "127.0.0.1")
    assert.equal(0, r.code, explain(r))
    assert.matches("\n2 packets transmitted, 2 received, 0%% packet loss", r.stdout)
  end)

  it("prints the Unix time before each reply with -D", function()
    local before = os.time()
    local r = run("ping", "-D", "-c", "2", "-i", "0.05", "127.0.0.1")
    assert.equal(0, r.code, explain(r))
    local stamps = {}
    for stamp in r.stdout:gmatch("\n%[(%d+%.%d%d%d%d%d%d)%] 64 bytes from 127%.0%.0%.1: ") do
      stamps[#stamps + 1] = tonumber(stamp)
    end
    assert.equal(2, #stamps, r.stdout)
    assert.is_true(stamps[1] >= before - 1 and stamps[1] <= os.time() + 1)
    assert.is_true(stamps[2] >= stamps[1])
  end)

  it("ends at the -w deadline with the summary, sending until then", function()
    local r = run("ping", "-w", "0.5", "-i", "0.1", "127.0.0.1")
    assert.equal(0, r.code, explain(r))
    local sent, received = r.stdout:match("\n(%d+) packets transmitted, (%d+) received")
    -- Probes at 0, 100, ... ms until 500 ms: five or six, load permitting.
    assert.is_true(tonumber(sent) >= 3 and tonumber(sent) <= 6, r.stdout)
    assert.is_true(tonumber(received) >= tonumber(sent) - 1, r.stdout)
  end)

  it("with -w and -c stops once -c replies came back, exit 0", function()
    local r = run("ping", "-w", "30", "-c", "2", "-i", "0.05", "127.0.0.1")
    assert.equal(0, r.code, explain(r))
    assert.matches("\n2 packets transmitted, 2 received", r.stdout)
  end)

  it("with -w and -c exits 1 when fewer replies came by the deadline", function()
    local r = run("ping", "-w", "300ms", "-c", "2", "-i", "0.1", "192.0.2.2")
    assert.equal(1, r.code, explain(r))
    assert.matches(" 0 received, 100%% packet loss", r.stdout)
  end)

  it("rings the bell before each reply with -a", function()
    local r = run("ping", "-a", "-c", "2", "-i", "0.05", "127.0.0.1")
    assert.equal(0, r.code, explain(r))
    local _, bells = r.stdout:gsub("\a64 bytes from 127%.0%.0%.1: ", "")
    assert.equal(2, bells, r.stdout)
  end)

  it("prints the running statistics on SIGQUIT and goes on", function()
    local r = cli.sh(string.format([[
      cd "$(mktemp -d)" || exit 1
      %s ping -i 0.05 127.0.0.1 >out.$$ 2>err.$$ &
      pid=$!
      for _ in $(seq 200); do [ "$(grep -c 'bytes from' out.$$)" -ge 3 ] && break; sleep 0.05; done
      kill -QUIT $pid
      for _ in $(seq 200); do grep -q packets err.$$ && break; sleep 0.05; done
      sleep 0.2
      kill -INT $pid
      wait $pid
      echo "exit $?"
      cat err.$$ out.$$ >&2
      tr -d '\r' <err.$$
      rm -f out.$$ err.$$ && rmdir "$PWD"]], cli.quote(cli.icmprun)))
    assert.equal(0, r.code, explain(r))
    local received, sent, loss, min, avg, ewma, max = r.stdout:match(
      "^exit 0\n(%d+)/(%d+) packets, (%d+)%% loss, min/avg/ewma/max = ([%d.]+)/([%d.]+)/([%d.]+)"
      .. "/([%d.]+) ms\n$")
    assert.is_string(received, r.stdout)
    assert.is_true(tonumber(received) >= 3 and tonumber(sent) >= tonumber(received))
    assert.is_true(tonumber(loss) <= 100)
    assert.is_true(tonumber(min) <= tonumber(avg) and tonumber(avg) <= tonumber(max))
    assert.is_true(tonumber(min) <= tonumber(ewma) and tonumber(ewma) <= tonumber(max))
    -- It went on after SIGQUIT: the summary at Ctrl-C counts more probes.
    local total = r.stderr:match("\n(%d+) packets transmitted")
    assert.is_true(tonumber(total) > tonumber(sent), r.stderr)
  end)

  it("refuses a duration with an unknown unit, exit 2", function()
    local r = run("ping", "-i", "2x", "127.0.0.1")
    assert.equal(2, r.code, explain(r))
    assert.matches("ping: option '%-i': invalid duration '2x'", r.stderr)
  end)
end)

describe("icmprun sweep", function()
  it("reads targets from a file with -f, comments and blank lines allowed", function()
    local path = cli.temp_file("127.0.0.1   # the first\n# a comment\n\n  ::1 more words\n")
    local r = run("sweep", "-f", path, "127.0.0.3")
    os.remove(path)
    assert.equal(0, r.code, explain(r))
    local lines = {}
    for line in r.stdout:gmatch("[^\n]+") do
      lines[#lines + 1] = line
    end
    table.sort(lines)
    assert.same({ "127.0.0.1", "127.0.0.3", "::1" }, lines)
  end)

  it("reads targets from standard input with -f -", function()
    local r = cli.icmprun_run({ "sweep", "-f", "-" }, "127.0.0.0/30\n")
    assert.equal(0, r.code, explain(r))
    assert.equal(4, select(2, r.stdout:gsub("\n", "")), r.stdout)
  end)

  it("says what is wrong with a missing file and with no targets, exit 2", function()
    local r = run("sweep", "-f", "/nonexistent/targets")
    assert.equal(2, r.code, explain(r))
    assert.equal("sweep: /nonexistent/targets: No such file or directory\n", r.stderr)
    r = run("sweep")
    assert.equal(2, r.code, explain(r))
    assert.equal("sweep: no targets: give them as arguments or with -f FILE\n", r.stderr)
  end)

  it("sends probes of --size bytes", function()
    local r = run("sweep", "--json", "--size", "100", "127.0.0.1")
    assert.equal(0, r.code, explain(r))
    assert.matches('"bytes":108', r.stdout, 1, true)
  end)

  it("sends probes with --ttl: one hop gets the router's time exceeded", function()
    local r = run("sweep", "--json", "--ttl", "1", "-t", "2s", "192.0.2.130")
    assert.equal(1, r.code, explain(r))
    assert.matches('"status":"ttl_exceeded"', r.stdout, 1, true)
    assert.matches('"from":"192.0.2.66"', r.stdout, 1, true)
  end)

  it("takes --tos, and refuses one out of range", function()
    local r = run("sweep", "--tos", "16", "127.0.0.1")
    assert.equal(0, r.code, explain(r))
    r = run("sweep", "--tos", "256", "127.0.0.1")
    assert.equal(2, r.code, explain(r))
    assert.matches("option '%-%-tos'", r.stderr)
  end)

  it("keeps to --limit, and its message names the option", function()
    local r = run("sweep", "--limit", "4", "127.0.0.0/29")
    assert.equal(2, r.code, explain(r))
    assert.equal("sweep: target '127.0.0.0/29' takes the sweep over its limit of 4 addresses "
      .. "(raise it with --limit)\n", r.stderr)
    r = run("sweep", "--limit", "8", "127.0.0.0/29")
    assert.equal(0, r.code, explain(r))
  end)

  it("takes -t and -p with units, bare numbers staying milliseconds", function()
    local r = run("sweep", "-c", "2", "-p", "50ms", "-t", "1s", "--json", "127.0.0.1")
    assert.equal(0, r.code, explain(r))
    r = run("sweep", "-t", "500", "-s", "192.0.2.2")
    assert.equal(1, r.code, explain(r))
    r = run("sweep", "-p", "1 fortnight", "127.0.0.1")
    assert.equal(2, r.code, explain(r))
    assert.matches("option '%-%-interval': invalid duration '1 fortnight'", r.stderr)
  end)
end)

describe("durations with units in the Lua API's options", function()
  local icmprun = require "icmprun"

  it("ping's timeout takes milliseconds or a duration with a unit", function()
    -- A silent host: the timeout is the whole wait, never shorter.
    local t0 = icmprun.now()
    local r = icmprun.ping("192.0.2.2", { timeout = "250ms" })
    local waited = icmprun.now() - t0
    assert.equal("timeout", r.status)
    assert.is_true(waited >= 250, tostring(waited))
    t0 = icmprun.now()
    r = icmprun.ping("192.0.2.2", { timeout = "0.3s" })
    waited = icmprun.now() - t0
    assert.equal("timeout", r.status)
    assert.is_true(waited >= 300, tostring(waited))
    -- A bare number in a string stays milliseconds, as a number does.
    assert.equal("reply", icmprun.ping("127.0.0.1", { timeout = "1000" }).status)
  end)

  it("a sweep's interval and timeout take units", function()
    local t0 = icmprun.now()
    local n = 0
    for r in icmprun.sweep("127.0.0.1", { count = 3, interval = "0.1s", timeout = "1s" }) do
      assert.equal("reply", r.status)
      n = n + 1
    end
    assert.equal(3, n)
    -- Three probes 100 ms apart: at least 200 ms from the first to the last.
    assert.is_true(icmprun.now() - t0 >= 200)
  end)

  it("refuses a duration it cannot read, naming the option", function()
    for _, bad in ipairs({ "2x", "fast", "-5ms", "1s2", "", "0x10", "inf", "2 s s", "5\0s",
      "1e400ms", "5\n" }) do
      assert.error_matches(function()
        icmprun.ping("127.0.0.1", { timeout = bad })
      end, "option 'timeout' must be milliseconds in 0%.%.%d+, or a duration with a unit", nil,
        false, bad)
    end
    assert.error_matches(function()
      icmprun.sweep("127.0.0.1", { interval = "2 days" })
    end, "option 'interval' must be milliseconds")
    assert.error_matches(function()
      icmprun.ping("127.0.0.1", { timeout = "25h" }) -- over a day
    end, "option 'timeout' must be milliseconds in 0%.%.")
  end)

  it("a trace's interval and timeout take units", function()
    local trace = require "icmprun.trace"
    local hops = 0
    for hop in trace.trace("127.0.0.1", { count = 1, interval = "10ms", timeout = "0.5s" }) do
      assert.equal("127.0.0.1", hop.addrs and hop.addrs[1] or hop.addr or "127.0.0.1")
      hops = hops + 1
    end
    assert.equal(1, hops)
    assert.error_matches(function()
      trace.trace("127.0.0.1", { interval = "soon" })
    end, "trace: option 'interval' must be milliseconds in 0%.%.%d+, or a duration")
  end)

  it("icmprun.duration reads numbers with units into the caller's unit", function()
    local duration = require "icmprun.duration"
    assert.equal(2000, duration.parse("2s", "ms"))
    assert.equal(0.25, duration.parse("250ms", "s"))
    assert.equal(250, duration.parse("250", "ms"))
    assert.equal(7, duration.parse(7, "s"))
    assert.is_nil(duration.parse("2x", "ms"))
    assert.is_nil(duration.parse({}, "ms"))
  end)
end)

describe("durations with units in every command that takes a time", function()
  it("mtr -i and -Z, bare numbers staying seconds", function()
    local r = run("mtr", "-r", "-n", "-c", "2", "-i", "100ms", "-Z", "1s", "127.0.0.1")
    assert.equal(0, r.code, explain(r))
    assert.matches("127%.0%.0%.1", r.stdout)
    r = run("mtr", "-r", "-c", "1", "-i", "1x", "127.0.0.1")
    assert.equal(1, r.code, explain(r)) -- mtr's status for a bad option
    assert.matches("option '%-i': invalid duration '1x'", r.stderr)
  end)

  it("traceroute -w, bare numbers staying seconds", function()
    local r = run("traceroute", "-n", "-w", "500ms", "127.0.0.1")
    assert.equal(0, r.code, explain(r))
    assert.matches("127%.0%.0%.1", r.stdout)
    r = run("traceroute", "-w", "soon", "127.0.0.1")
    assert.equal(2, r.code, explain(r))
    assert.matches("option '%-w': invalid duration 'soon'", r.stderr)
  end)
end)
