-- SPDX-License-Identifier: MIT

--- examples/discover.lua, monitor.lua and campaign.lua, black box, against
-- loopback and the test hosts of scripts/testnet (inside scripts/netns).
local cli = require "cli"
local background = require "background"
local cjson = require "cjson"

local SILENT4, SILENT6 = "192.0.2.2", "2001:db8:1::2"
local DEAD4 = "203.0.113.9" -- an unreachable route here
local LOSSY_BLOCK = "2001:db8:7::/120" -- answers, dropping 1 reply in 10

local explain = cli.explain

local function example(name, args)
  local argv = { cli.source_dir .. "/examples/" .. name }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return cli.icmprun_run(argv)
end

local function example_argv(name, args)
  return { cli.source_dir .. "/examples/" .. name, table.unpack(args) }
end

local lines_of = cli.lines_of

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

describe("examples/discover.lua", function()
  it("lists the live hosts of a loopback block and a summary", function()
    local r = example("discover.lua", { "127.0.0.0/28" })
    assert.equal(0, r.code, explain(r))
    local lines = lines_of(r.stdout)
    assert.equal(17, #lines, r.stdout)
    local seen = {}
    for i = 1, 16 do
      local addr = lines[i]:match("^(127%.0%.0%.%d+) +%d+%.%d%d%d ms$")
      assert.truthy(addr, lines[i])
      seen[addr] = true
    end
    for i = 0, 15 do
      assert.is_true(seen["127.0.0." .. i], "127.0.0." .. i .. " is missing")
    end
    assert.matches("^16 live %(0 only on a retry%), 0 silent after 3 probes each, "
      .. "0 unreachable, 0 errors; 16 probes in %d+%.%d%d s$", lines[17])
  end)

  it("retries the silent addresses with backoff and counts what it cost", function()
    local r = example("discover.lua", { "--timeout", "100", "--retries", "2", "--backoff", "2",
      "127.0.0.0/30", SILENT4, SILENT6, DEAD4 })
    assert.equal(0, r.code, explain(r))
    local lines = lines_of(r.stdout)
    assert.equal(5, #lines, r.stdout)
    -- 4 probes that answered, 3 to each silent host, 1 over the dead route.
    local seconds = lines[5]:match("^4 live %(0 only on a retry%), 2 silent after 3 probes "
      .. "each, 1 unreachable, 0 errors; 11 probes in (%d+%.%d%d) s$")
    assert.truthy(seconds, lines[5])
    -- The silent hosts waited 100 + 200 + 400 ms.
    assert.is_true(tonumber(seconds) >= 0.69, lines[5])
  end)

  it("finds hosts that answered only on a retry", function()
    local r = example("discover.lua", { "--timeout", "100", "--retries", "3", LOSSY_BLOCK })
    assert.equal(0, r.code, explain(r))
    -- 1 reply in 10 is dropped: about 26 of 256 need a retry; that none
    -- does has a chance of 0.9^256, about 2e-12.
    local live, late = r.stdout:match("\n(%d+) live %((%d+) only on a retry%)")
    assert.truthy(live, r.stdout)
    assert.is_true(tonumber(live) >= 250, r.stdout)
    assert.is_true(tonumber(late) >= 1, r.stdout)
    assert.matches("\n2001:db8:7::%x+ +%d+%.%d%d%d ms  %(answered probe [234]%)\n", r.stdout)
  end)

  it("exits 1 when no host is live", function()
    local r = example("discover.lua", { "--timeout", "50", "--retries", "0", SILENT4 })
    assert.equal(1, r.code, explain(r))
    assert.matches("^0 live %(0 only on a retry%), 1 silent after 1 probes each", r.stdout)
  end)

  it("exits 2 with the sweep's message for a malformed block", function()
    local r = example("discover.lua", { "10.0.0.300/8" })
    assert.equal(2, r.code, explain(r))
    assert.equal("discover.lua: '10.0.0.300/8' is not a CIDR block: '10.0.0.300' is not an "
      .. "address\n", r.stderr)
  end)

  it("exits 2 for a bad option value", function()
    local r = example("discover.lua", { "--retries=-1", "::1" })
    assert.equal(2, r.code, explain(r))
    assert.matches("^discover%.lua: option 'retries' must be", r.stderr)
  end)

  it("has --help", function()
    local r = example("discover.lua", { "--help" })
    assert.equal(0, r.code, explain(r))
    assert.matches("^Usage: discover%.lua ", r.stdout)
    assert.matches("%-%-backoff", r.stdout)
  end)
end)

describe("examples/monitor.lua", function()
  --- Checks Prometheus text line by line against the exposition format;
  -- returns its samples as name{labels} -> value.
  local function parse_prometheus(text)
    assert.matches("\n$", text)
    local samples, types = {}, {}
    for _, line in ipairs(lines_of(text)) do
      local kind, name, rest = line:match("^# (%u+) ([%a_:][%w_:]*) (.*)$")
      if kind then
        assert.is_true(kind == "HELP" or kind == "TYPE", line)
        if kind == "TYPE" then
          assert.is_true(rest == "counter" or rest == "gauge" or rest == "histogram", line)
          types[name] = rest
        end
      else
        local series, value = line:match('^([%a_:][%w_:]*[^ ]*) (%S+)$')
        assert.truthy(series, line)
        local metric, labels = series:match("^([%a_:][%w_:]*)(.*)$")
        if labels ~= "" then
          -- {name="value",...}: rebuilt from its pairs, it must come out the same.
          local inner = labels:match("^{(.*)}$")
          assert.truthy(inner, line)
          local pairs_seen = {}
          for k, v in inner:gmatch('([%a_][%w_]*)="([^"\\]*)"') do
            pairs_seen[#pairs_seen + 1] = k .. '="' .. v .. '"'
          end
          assert.equal(inner, table.concat(pairs_seen, ","), line)
        end
        local family = metric:gsub("_bucket$", ""):gsub("_sum$", ""):gsub("_count$", "")
        assert.truthy(types[metric] or types[family], "no TYPE line before " .. line)
        local number = value == "+Inf" and math.huge or tonumber(value)
        assert.truthy(number, line)
        assert.is_nil(samples[series], "a sample repeats: " .. line)
        samples[series] = number
      end
    end
    return samples
  end

  it("prints a line per round and a table per address after --rounds", function()
    local r = example("monitor.lua", { "--rounds", "3", "--interval", "0.2", "--timeout",
      "100", "127.0.0.1", "::1", SILENT4 })
    assert.equal(0, r.code, explain(r))
    local lines = lines_of(r.stdout)
    assert.equal("round 1: 2/3 answered", lines[1])
    assert.equal("round 2: 2/3 answered", lines[2])
    assert.equal("round 3: 2/3 answered", lines[3])
    local seconds = lines[4]:match("^%-%-%- 3 rounds in (%d+%.%d) s %-%-%-$")
    assert.truthy(seconds, lines[4])
    -- Rounds start 0.2 s apart: the third at 0.4 s.
    assert.is_true(tonumber(seconds) >= 0.4, lines[4])
    assert.matches("^address +sent +recv +loss +min +avg +max +mdev$", lines[5])
    assert.matches("^127%.0%.0%.1 +3 +3 +0%.0%% +[%d.]+ +[%d.]+ +[%d.]+ +[%d.]+$", lines[6])
    assert.matches("^::1 +3 +3 +0%.0%% ", lines[7])
    assert.matches("^192%.0%.2%.2 +3 +0 +100%.0%% +%- +%- +%- +%-$", lines[8])
    assert.equal(8, #lines)
  end)

  it("rewrites a Prometheus text file each round", function()
    local dir = cli.temp_dir()
    local path = dir .. "/icmprun.prom"
    local r = example("monitor.lua", { "--rounds", "2", "--interval", "0.1", "--timeout",
      "100", "--prometheus", path, "127.0.0.0/31", SILENT6 })
    assert.equal(0, r.code, explain(r))
    local text = slurp(path)
    local leftovers = cli.sh("ls " .. cli.quote(dir))
    cli.remove_tree(dir)
    assert.equal("icmprun.prom\n", leftovers.stdout)
    local s = parse_prometheus(text)
    for _, addr in ipairs({ "127.0.0.0", "127.0.0.1" }) do
      -- The exporter's names and labels: host as given, ip as probed.
      local t = 'host="127.0.0.0/31",ip="' .. addr .. '"'
      assert.equal(2, s["smokeping_requests_total{" .. t .. "}"], text)
      assert.equal(2, s["icmprun_results_total{" .. t .. ',status="reply"}'], text)
      assert.equal(0, s["icmprun_results_total{" .. t .. ',status="timeout"}'], text)
      assert.equal(2, s["smokeping_response_duration_seconds_count{" .. t .. "}"], text)
      assert.equal(2, s["smokeping_response_duration_seconds_bucket{" .. t .. ',le="+Inf"}'], text)
      assert.is_true(s["smokeping_response_duration_seconds_sum{" .. t .. "}"] > 0, text)
      -- The buckets are cumulative: they never decrease as le grows.
      local buckets = {}
      for series, value in pairs(s) do
        local le = series:match("_bucket{" .. t:gsub("%p", "%%%0") .. ',le="([^"]+)"}$')
        if le then
          buckets[#buckets + 1] = { le == "+Inf" and math.huge or tonumber(le), value }
        end
      end
      table.sort(buckets, function(a, b) return a[1] < b[1] end)
      assert.equal(21, #buckets) -- smokeping_prober's 20, and +Inf
      for i = 2, #buckets do
        assert.is_true(buckets[i][2] >= buckets[i - 1][2], text)
      end
    end
    local t = 'host="' .. SILENT6 .. '",ip="' .. SILENT6 .. '"'
    assert.equal(2, s["smokeping_requests_total{" .. t .. "}"], text)
    assert.equal(2, s["icmprun_results_total{" .. t .. ',status="timeout"}'], text)
    assert.equal(0, s["smokeping_response_duration_seconds_count{" .. t .. "}"], text)
    assert.is_true(s["icmprun_engine_sent_total"] >= 6, text)
  end)

  it("writes JSON lines: every result, then a summary per address", function()
    local r = example("monitor.lua", { "--json", "--rounds", "3", "--interval", "0.05",
      "--timeout", "100", "::1", SILENT4 })
    assert.equal(0, r.code, explain(r))
    local results, summaries = {}, {}
    for _, line in ipairs(lines_of(r.stdout)) do
      local record = cjson.decode(line)
      if record.type == "result" then
        results[#results + 1] = record
      else
        assert.equal("summary", record.type)
        summaries[record.target] = record
      end
    end
    assert.equal(6, #results)
    assert.equal(3, summaries["::1"].sent)
    assert.equal(3, summaries["::1"].received)
    assert.equal(3, summaries[SILENT4].sent)
    assert.equal(100, summaries[SILENT4].loss_pct)
    assert.is_nil(summaries[SILENT4].avg_ms)
  end)

  it("summarises on Ctrl-C and exits 130", function()
    local r = background.interrupt(example_argv("monitor.lua", { "--interval", "0.1",
      "--timeout", "100", "127.0.0.1", SILENT4 }), "round 2:")
    assert.is_true(r.ready, r.output)
    assert.equal(130, r.code, r.output)
    local rounds = tonumber(r.output:match("\n%-%-%- (%d+) rounds in [%d.]+ s %-%-%-\n"))
    assert.truthy(rounds, r.output)
    assert.is_true(rounds >= 2, r.output)
    local sent, received = r.output:match("\n127%.0%.0%.1 +(%d+) +(%d+) ")
    assert.truthy(sent, r.output)
    assert.is_true(tonumber(sent) >= rounds, r.output)
    assert.equal(sent, received)
  end)

  it("ends its JSON lines with the summaries on Ctrl-C", function()
    local r = background.interrupt(example_argv("monitor.lua", { "--json", "--interval", "0.1",
      "::1" }), '"type":"result"', { delay = 0.25 })
    assert.equal(130, r.code, r.output)
    local lines = lines_of(r.output)
    local results = 0
    for i, line in ipairs(lines) do
      local record = cjson.decode(line)
      if i < #lines then
        assert.equal("result", record.type)
        results = results + 1
      else
        assert.equal("summary", record.type)
        assert.equal("::1", record.target)
        assert.equal(results, record.sent)
      end
    end
    assert.is_true(results >= 2, r.output)
  end)

  for _, case in ipairs({
    { { "--interval", "0", "::1" }, "option '%-%-interval': invalid duration '0'" },
    { { "--interval", "2x", "::1" }, "option '%-%-interval': invalid duration '2x'" },
    { { "--rounds", "1", "10.0.0.300/8" }, "'10%.0%.0%.300/8' is not a CIDR block" },
    { { "--rounds", "1", "--prometheus", "/nonexistent/dir/x.prom", "::1" },
      "cannot write /nonexistent/dir/x%.prom" },
    { {}, "missing argument 'targets'" },
  }) do
    it("exits 2 for: " .. table.concat(case[1], " "), function()
      local r = example("monitor.lua", case[1])
      assert.equal(2, r.code, explain(r))
      assert.matches("^monitor%.lua: " .. case[2], r.stderr)
    end)
  end

  it("has --help", function()
    local r = example("monitor.lua", { "--help" })
    assert.equal(0, r.code, explain(r))
    assert.matches("^Usage: monitor%.lua ", r.stdout)
    assert.matches("%-%-prometheus", r.stdout)
  end)
end)

describe("examples/campaign.lua", function()
  local dir
  before_each(function()
    dir = cli.temp_dir()
  end)
  after_each(function()
    cli.remove_tree(dir)
  end)

  local function campaign(targets, args)
    cli.write_files(dir, { ["targets.txt"] = targets })
    local argv = { "-o", dir .. "/out.jsonl" }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    argv[#argv + 1] = dir .. "/targets.txt"
    return example("campaign.lua", argv)
  end

  local TARGETS = table.concat({
    "# a campaign's targets",
    "127.0.0.1",
    "::1   # loopback, IPv6",
    "",
    "127.0.1.0/30",
    "   " .. SILENT4 .. "   # silent",
    "127.0.0.1",
    "",
  }, "\n")

  it("probes in waves, writes JSON lines and prints a table per target", function()
    local r = campaign(TARGETS, { "--waves", "3", "--wave-interval", "200", "--timeout",
      "100" })
    assert.equal(0, r.code, explain(r))
    local lines = lines_of(r.stdout)
    assert.matches("^target +sent +recv +loss +min +avg +max$", lines[1])
    assert.matches("^127%.0%.0%.1 +3 +3 +0%.0%% +[%d.]+ +[%d.]+ +[%d.]+$", lines[2])
    assert.matches("^::1 +3 +3 +0%.0%% ", lines[3])
    assert.matches("^127%.0%.1%.0/30 +12 +12 +0%.0%% ", lines[4])
    assert.matches("^192%.0%.2%.2 +3 +0 +100%.0%% +%- +%- +%-$", lines[5])
    assert.matches("^total +21 +18 +14%.3%% +[%d.]+ +[%d.]+ +[%d.]+$", lines[6])
    assert.matches("^3 waves, 21 results in .*/out%.jsonl, %d+%.%d%d s$", lines[7])
    assert.equal(7, #lines)

    local per_wave, first_ms = {}, {}
    local records = lines_of(slurp(dir .. "/out.jsonl"))
    -- The first line is the campaign's, with its start in jsonl's `time`.
    local head = cjson.decode(records[1])
    assert.equal("campaign", head.type)
    assert.equal(3, head.waves)
    for i = 2, #records do
      local line = records[i]
      local record = cjson.decode(line)
      assert.equal("result", record.type)
      assert.truthy(record.addr and record.status and record.target, line)
      assert.is_nil(record.t_ms, line)
      per_wave[record.wave] = (per_wave[record.wave] or 0) + 1
      local ms = (record.time - head.time) * 1000
      first_ms[record.wave] = math.min(first_ms[record.wave] or math.huge, ms)
    end
    assert.same({ 7, 7, 7 }, per_wave)
    -- Waves start on their schedule: 0, 200 and 400 ms.
    assert.is_true(first_ms[2] >= 200, tostring(first_ms[2]))
    assert.is_true(first_ms[3] >= 400, tostring(first_ms[3]))
  end)

  it("sends --count probes per address in each wave", function()
    local r = campaign("::1\n", { "--waves", "2", "--wave-interval", "50", "--count", "3",
      "--interval", "10" })
    assert.equal(0, r.code, explain(r))
    assert.matches("\n::1 +6 +6 +0%.0%% ", r.stdout)
  end)

  it("overlaps a slow wave with the next instead of delaying it", function()
    -- Each wave probes a silent host (a 1 s timeout) and loopback (a reply
    -- at once); waves start every 100 ms. Overlapped, every wave's reply
    -- comes before the first wave's timeout; one wave after another, the
    -- second wave's reply would come after it. Order, not speed, decides.
    local r = campaign(SILENT4 .. "\n127.0.0.1\n", { "--waves", "3", "--wave-interval",
      "100", "--timeout", "1000" })
    assert.equal(0, r.code, explain(r)) -- some replies came
    local seconds = tonumber(r.stdout:match("\n3 waves, 6 results in .*, (%d+%.%d%d) s\n"))
    assert.truthy(seconds, r.stdout)
    -- The last wave starts at 200 ms and waits 1 s for the silent host.
    assert.is_true(seconds >= 1.19, r.stdout)
    local records = lines_of(slurp(dir .. "/out.jsonl"))
    local events = {}
    for i = 2, #records do
      local record = cjson.decode(records[i])
      events[#events + 1] = string.format("%d %s", record.wave, record.status)
    end
    assert.same({ "1 reply", "2 reply", "3 reply", "1 timeout", "2 timeout", "3 timeout" },
      events)
  end)

  it("exits 2 naming the line of a malformed target, before sending", function()
    local r = campaign("127.0.0.1\n# two\n300.1.1.1\n", {})
    assert.equal(2, r.code, explain(r))
    assert.matches("^campaign%.lua: .*/targets%.txt:3: '300%.1%.1%.1' is not a valid IPv4 "
      .. "address\n$", r.stderr)
    assert.is_nil(io.open(dir .. "/out.jsonl"))
  end)

  it("exits 2 for a name that does not resolve", function()
    local r = campaign("127.0.0.1\nno-such-host.invalid\n", { "--waves", "1" })
    assert.equal(2, r.code, explain(r))
    assert.matches("no%-such%-host%.invalid", r.stderr)
  end)

  it("exits 2 for a file without targets or no file at all", function()
    local r = campaign("# nothing\n\n", {})
    assert.equal(2, r.code, explain(r))
    assert.matches("no targets", r.stderr)
    r = example("campaign.lua", { dir .. "/missing.txt" })
    assert.equal(2, r.code, explain(r))
    assert.matches("missing%.txt: No such file", r.stderr)
  end)

  it("has --help", function()
    local r = example("campaign.lua", { "--help" })
    assert.equal(0, r.code, explain(r))
    assert.matches("^Usage: campaign%.lua ", r.stdout)
    assert.matches("%-%-wave%-interval", r.stdout)
  end)
end)

describe("every example", function()
  for _, name in ipairs({ "ping.lua", "sweep.lua", "discover.lua", "monitor.lua",
    "campaign.lua" }) do
    it("has a comment header and --help: " .. name, function()
      -- The first doc comment, under the licence line.
      local header = slurp(cli.source_dir .. "/examples/" .. name):match("\n%-%-%- ([^\n]+)")
      assert.matches("^" .. name:gsub("%p", "%%%0") .. ": ", header)
      local r = example(name, { "--help" })
      assert.equal(0, r.code, explain(r))
      assert.matches("^Usage: " .. name:gsub("%p", "%%%0") .. " ", r.stdout)
      assert.equal("", r.stderr)
    end)
  end
end)

describe("examples/exporter.lua", function()
  it("serves, then after --seconds stops, prints its metrics and exits 0", function()
    local r = example("exporter.lua", { "--listen", "127.0.0.1:0", "--seconds", "1",
      "--print", "--interval", "100", "--site", "lab", "127.0.0.1", SILENT4 })
    assert.equal(0, r.code, explain(r))
    assert.matches("serving http://127%.0%.0%.1:%d+/metrics", r.stderr)
    local sent = tonumber(r.stdout:match(
      '\nsmokeping_requests_total{host="127%.0%.0%.1",ip="127%.0%.0%.1",site="lab"} (%d+)'))
    -- About 10 probes in 1 s at 100 ms; loose bounds for a busy machine.
    assert.is_true(sent and sent >= 5 and sent <= 12, tostring(sent))
    assert.matches('icmprun_results_total{host="192%.0%.2%.2",ip="192%.0%.2%.2",site="lab",'
      .. 'status="timeout"} %d+', r.stdout)
  end)

  it("exits 2 for an address it cannot listen on", function()
    local r = example("exporter.lua", { "--listen", "127.0.0.1:99999", "127.0.0.1" })
    assert.equal(2, r.code, explain(r))
    assert.matches("is not HOST:PORT", r.stderr)
  end)

  it("has --help", function()
    local r = example("exporter.lua", { "--help" })
    assert.equal(0, r.code)
    assert.matches("^Usage: exporter.lua", r.stdout)
  end)
end)
