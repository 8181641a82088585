-- SPDX-License-Identifier: MIT

--- `icmprun exporter` and its library: smokeping_prober's config, the
-- metrics, spreading, reloads that keep counters, and bad input. Probes go
-- to loopback and to the test hosts of scripts/testnet only.
local icmprun = require "icmprun"
local cli = require "cli"
local config = require "icmprun.exporter.config"
local exporter = require "exporter"
local nftcount = require "nftcount"
local metrics = require "icmprun.exporter.metrics"

local SILENT = "192.0.2.2" -- answers nothing (scripts/testnet)
local FAR = "192.0.2.130" -- one hop behind the test router

local function yaml_file(text)
  return cli.temp_file(text, ".yml")
end

local rewrite = cli.write_file

-- The value of one series, by metric name and label text (without braces).
local function value(samples, name, labels)
  return samples[name .. "{" .. labels .. "}"]
end

-- Waits up to `seconds` until `check()` is true; returns its last value.
local function eventually(seconds, check)
  local result
  for _ = 1, math.floor(seconds / 0.1) do
    result = check()
    if result then
      return result
    end
    exporter.sleep(0.1)
  end
  return check()
end

describe("exporter config", function()
  it("reads smokeping_prober's format with its defaults", function()
    local groups = assert(config.parse([[
targets:
- hosts:
  - 127.0.0.1
  - "::1"
  labels:
    site: lab
    rack: 5
- host: 127.0.0.2
  interval: 1m30s
  network: ip4
  size: 100
  tos: 16
  ttl: 9
  timeout: 250ms
]]))
    assert.same({ "127.0.0.1", "::1" }, groups[1].hosts)
    assert.equal(1000, groups[1].interval)
    assert.equal(1000, groups[1].timeout) -- the interval, by default
    assert.equal(0, groups[1].family)
    assert.equal(56, groups[1].size)
    assert.equal(0, groups[1].tos)
    assert.is_nil(groups[1].ttl)
    assert.same({ site = "lab", rack = "5" }, groups[1].labels)
    assert.same({ "127.0.0.2" }, groups[2].hosts)
    assert.equal(90000, groups[2].interval)
    assert.equal(4, groups[2].family)
    assert.equal(100, groups[2].size)
    assert.equal(16, groups[2].tos)
    assert.equal(9, groups[2].ttl)
    assert.equal(250, groups[2].timeout)
  end)

  it("parses Go durations", function()
    assert.equal(1500, config.parse_duration("1.5s"))
    assert.equal(3720000, config.parse_duration("1h2m"))
    assert.equal(0.25, config.parse_duration("250us"))
    assert.equal(500, config.parse_duration("500ms"))
    assert.is_nil(config.parse_duration("5"))
    assert.is_nil(config.parse_duration("1x"))
    assert.is_nil(config.parse_duration(""))
  end)

  it("refuses mistakes with a message naming where they are", function()
    local cases = {
      { "targets:\n- host: a\n  interval: 1x\n", 'targets[1].interval: "1x" is not a duration' },
      { "targets:\n- host: a\n  interval: 5\n", "targets[1].interval: 5 has no unit" },
      { "targets:\n- host: a\n  intervl: 1s\n", "targets[1]: unknown key intervl" },
      { "targets:\n- host: a\n  protocol: udp\n", 'targets[1].protocol: "udp" is not supported' },
      { "targets:\n- host: a\n  network: ip5\n", 'targets[1].network: "ip5" must be ip, ip4 or ip6' },
      { "targets:\n- host: a\n  size: 70000\n", "targets[1].size: 70000 is not a whole number" },
      { "targets:\n- host: a\n  tos: 1.5\n", "targets[1].tos: 1.5 is not a whole number" },
      { "targets:\n- host: a\n  ttl: 0\n", "targets[1].ttl: 0 is not a whole number from 1" },
      { "targets:\n- host: a\n  source: here\n",
        'targets[1].source: "here" is not a numeric IPv4 or IPv6 address' },
      { "targets:\n- host: a\n  source: 256.0.0.1\n", "targets[1].source: \"256.0.0.1\" is not" },
      { "targets:\n- host: a\n  network: ip6\n  source: 127.0.0.1\n",
        "targets[1].source: 127.0.0.1 is not an address of network ip6" },
      { "targets:\n- host: a\n  interval: 1s\n  timeout: 2s\n",
        "targets[1].timeout: must not be longer than the interval" },
      { "targets:\n- hosts: []\n", "targets[1]: has no hosts" },
      { "targets:\n- host: a\n- hosts: [b, 7]\n", "targets[2].hosts[2]: 7 is not a host" },
      { "targets:\n- host: a\n  labels: {ip: x}\n", "targets[1].labels.ip: is set by the exporter" },
      { "targets:\n- host: a\n  labels: {0bad: x}\n", "targets[1].labels.0bad: is not a valid" },
      { "targets: [\n", "not valid YAML" },
      { "target:\n- host: a\n", "config: unknown key target" },
      { "targets: 5\n", "targets: must be a list of host groups" },
    }
    for _, case in ipairs(cases) do
      local groups, err = config.parse(case[1], "t.yml")
      assert.is_nil(groups, case[1])
      assert.truthy(err:find("t.yml: " .. case[2], 1, true) or err:find(case[2], 1, true),
        "for " .. case[1] .. " got: " .. err)
    end
  end)

  it("names a config file that cannot be read", function()
    local groups, err = config.load("/nonexistent/targets.yml")
    assert.is_nil(groups)
    assert.matches("cannot read the config: /nonexistent/targets.yml", err, 1, true)
  end)
end)

describe("exporter metrics", function()
  local buckets = { 0.001, 0.01, 0.1 }

  local function target_with(results)
    local t = metrics.new_target(metrics.label_key("h", "127.0.0.1", { site = 'a"b' }), buckets)
    for _, r in ipairs(results) do
      t:on_send()
      t:record(r)
    end
    return t
  end

  it("counts sends, results by status, and RTT buckets exactly", function()
    local t = target_with({
      { status = "reply", rtt = 0.5, ttl = 64 },  -- 0.5 ms: first bucket
      { status = "reply", rtt = 1.0, ttl = 63 },  -- 1 ms exactly: still the first
      { status = "reply", rtt = 50, ttl = 62 },   -- third
      { status = "reply", rtt = 500, ttl = 61 },  -- above the last: +Inf only
      { status = "timeout" }, { status = "unreachable" }, { status = "error" },
    })
    t:add_duplicates(3) -- as the exporter counts them from icmprun.duplicates()
    local text = metrics.render({ t }, { sent = 7, duplicates = 3, malformed = 1,
      corrupted = 1, pending = 0 })
    local s = exporter.parse(text)
    local labels = 'host="h",ip="127.0.0.1",site="a\\"b"'
    assert.equal(7, value(s, "smokeping_requests_total", labels))
    assert.equal(4, value(s, "icmprun_results_total", labels .. ',status="reply"'))
    assert.equal(1, value(s, "icmprun_results_total", labels .. ',status="timeout"'))
    assert.equal(1, value(s, "icmprun_results_total", labels .. ',status="unreachable"'))
    assert.equal(0, value(s, "icmprun_results_total", labels .. ',status="ttl_exceeded"'))
    assert.equal(1, value(s, "smokeping_send_errors_total", labels))
    local h = "smokeping_response_duration_seconds"
    assert.equal(2, value(s, h .. "_bucket", labels .. ',le="0.001"'))
    assert.equal(2, value(s, h .. "_bucket", labels .. ',le="0.01"'))
    assert.equal(3, value(s, h .. "_bucket", labels .. ',le="0.1"'))
    assert.equal(4, value(s, h .. "_bucket", labels .. ',le="+Inf"'))
    assert.equal(4, value(s, h .. "_count", labels))
    assert.near(0.5515, value(s, h .. "_sum", labels), 1e-12)
    assert.equal(61, value(s, "smokeping_response_ttl", labels))
    assert.equal(3, value(s, "smokeping_response_duplicates_total", labels))
    assert.equal(2, s.smokeping_receive_errors_total)
    assert.equal(7, s.icmprun_engine_sent_total)
    assert.equal(0, s.icmprun_engine_pending)
    assert.equal("histogram", s.families[h])
    assert.equal("gauge", s.families.smokeping_response_ttl)
    local check = exporter.promtool_check(text)
    assert.equal(0, check.code, check.stdout .. check.stderr)
  end)

  it("pauses every few hundred targets when asked, and renders the same", function()
    local targets = {}
    for i = 1, 1200 do
      targets[i] = target_with({ { status = "reply", rtt = i / 100, ttl = 64 } })
      targets[i].key = metrics.label_key("h" .. i, "127.0.0.1", {})
    end
    local pauses = 0
    local pieces = metrics.render_pieces(targets, nil, nil, function()
      pauses = pauses + 1
    end)
    -- 1200 targets, a pause after each 500 (all of a target's families at once).
    assert.equal(2, pauses)
    assert.equal(metrics.render(targets), table.concat(pieces))
  end)

  it("renders each target whole between pauses, so its counters agree", function()
    local targets = {}
    for i = 1, 1200 do
      targets[i] = target_with({ { status = "reply", rtt = 1, ttl = 64 } })
      targets[i].key = metrics.label_key("h" .. i, "127.0.0.1", {})
    end
    -- Probes go on while the loop runs in a pause: every target gets more.
    local text = table.concat(metrics.render_pieces(targets, nil, nil, function()
      for _, t in ipairs(targets) do
        t:on_send()
        t:record({ status = "reply", rtt = 2, ttl = 64 })
      end
    end))
    local s = exporter.parse(text)
    for i = 1, 1200 do
      local labels = 'host="h' .. i .. '",ip="127.0.0.1"'
      local sent = value(s, "smokeping_requests_total", labels)
      assert.equal(sent, value(s, "icmprun_results_total", labels .. ',status="reply"'))
      assert.equal(sent, value(s, "smokeping_response_duration_seconds_count", labels))
    end
    assert.equal(1, value(s, "smokeping_requests_total", 'host="h1",ip="127.0.0.1"'))
    assert.equal(3, value(s, "smokeping_requests_total", 'host="h1200",ip="127.0.0.1"'))
  end)

  it("leaves out the TTL of a target that never had a reply", function()
    local text = metrics.render({ target_with({ { status = "timeout" } }) })
    assert.is_nil(text:find("\nsmokeping_response_ttl{", 1, true))
    assert.equal(0, exporter.promtool_check(text).code)
  end)
end)

describe("icmprun exporter", function()
  local server, path
  after_each(function()
    if server and server.stop then
      server:stop()
    end
    server = nil
    if path then
      os.remove(path)
      path = nil
    end
  end)

  it("serves the counters of its targets, which add up", function()
    path = yaml_file(string.format([[
targets:
- hosts: [127.0.0.1, "::1"]
  interval: 100ms
  labels: {site: lab}
- hosts: [%s]
  interval: 200ms
  timeout: 100ms
  ttl: 7
]], SILENT))
    server = exporter.start({ "--config", path })
    assert.is_nil(server.failed, server.output)
    local v4 = 'host="127.0.0.1",ip="127.0.0.1",site="lab"'
    local silent = 'host="' .. SILENT .. '",ip="' .. SILENT .. '"'
    local s = eventually(10, function()
      local s = server:scrape()
      return (value(s, "smokeping_requests_total", v4) or 0) >= 10
        and (value(s, "icmprun_results_total", silent .. ',status="timeout"') or 0) >= 3 and s
    end)
    assert.truthy(s, "the targets were not probed")
    for _, labels in ipairs({ v4, 'host="::1",ip="::1",site="lab"' }) do
      local sent = value(s, "smokeping_requests_total", labels)
      local replies = value(s, "icmprun_results_total", labels .. ',status="reply"')
      -- At most the probe in flight has no result yet.
      assert.is_true(sent - replies == 0 or sent - replies == 1, labels)
      assert.equal(replies, value(s, "smokeping_response_duration_seconds_count", labels))
      assert.equal(replies, value(s, "smokeping_response_duration_seconds_bucket",
        labels .. ',le="+Inf"'))
      assert.equal(64, value(s, "smokeping_response_ttl", labels))
      assert.equal(0, value(s, "icmprun_results_total", labels .. ',status="timeout"'))
    end
    local sent = value(s, "smokeping_requests_total", silent)
    local timeouts = value(s, "icmprun_results_total", silent .. ',status="timeout"')
    assert.is_true(sent - timeouts == 0 or sent - timeouts == 1)
    assert.equal(0, value(s, "smokeping_response_duration_seconds_count", silent))
    assert.is_nil(value(s, "smokeping_response_ttl", silent))
    assert.equal(3, s.icmprun_exporter_targets)
    assert.equal(1, s.smokeping_prober_config_last_reload_successful)
    assert.is_true(s.icmprun_exporter_max_send_delay_seconds >= 0)
    assert.is_true(s.process_resident_memory_bytes > 0)
    assert.is_number(s.icmprun_engine_sent_total)
  end)

  it("passes promtool's checks, and answers the other paths as Prometheus tools do", function()
    server = exporter.start({ "127.0.0.1" })
    assert.is_nil(server.failed, server.output)
    local _, text = server:scrape()
    local check = exporter.promtool_check(text)
    assert.equal(0, check.code, check.stdout .. check.stderr)
    local code, body = server:request("/")
    assert.equal(200, code)
    assert.matches('href="/metrics"', body, 1, true)
    assert.equal(200, (server:request("/-/healthy")))
    assert.equal(404, (server:request("/nothing")))
    assert.equal(405, (server:request("/-/reload", "GET")))
    assert.equal(405, (server:request("/metrics", "POST")))
    -- Not HTTP at all: closed without an answer (libmicrohttpd's way with
    -- a request line it cannot parse) or 400, and the server goes on.
    local r = cli.sh(string.format("printf 'hello\\r\\n\\r\\n' | curl -s -m 2 telnet://127.0.0.1:%d",
      server.port))
    assert.is_true(r.stdout == "" or r.stdout:match("^HTTP/1.1 400") ~= nil, r.stdout)
    assert.equal(200, (server:request("/metrics")))
  end)

  it("spreads the first probes of its targets over the interval", function()
    -- 40 targets at 1 s: the prober's schedule, observed through the send
    -- times of each target (its on_send, wrapped). Target i (from 1) is due at
    -- (i - 1) * 25 ms, then every 1000 ms. A loaded machine may send late,
    -- never early; so the checks are "not before its turn", the order of
    -- the first probes, and how many probes each target sent.
    local r = cli.icmprun_script([[
      local icmprun = require "icmprun"
      local exporter = require "icmprun.exporter"
      local hosts = {}
      for i = 1, 40 do hosts[i] = "127.0.0." .. i end
      local sends = {}
      local e
      local new_prober = icmprun.prober
      icmprun.prober = function(handlers)
        local on_send = handlers.on_send
        handlers.on_send = function(id, late)
          local ip = e.by_id[id].ip
          sends[ip] = sends[ip] or {}
          table.insert(sends[ip], icmprun.now())
          return on_send(id, late)
        end
        return new_prober(handlers)
      end
      e = assert(exporter.new{groups = {{hosts = hosts, interval = 1000, timeout = 1000,
        family = 0, size = 56, tos = 0, labels = {}}}, log = function() end})
      local started = icmprun.now()
      assert(e:start())
      -- The last target's third probe is due at 2975 ms.
      icmprun.sleep(3600)
      e:stop()
      for i, ip in ipairs(hosts) do
        local t = sends[ip] or {}
        local offsets = {}
        for k, at in ipairs(t) do offsets[k] = string.format("%.3f", at - started) end
        print(i, table.concat(offsets, " "))
      end
      os.exit(0)
    ]])
    assert.equal(0, r.code, r.stderr)
    local firsts = {}
    for i, offsets in r.stdout:gmatch("(%d+)\t([^\n]*)\n") do
      i = tonumber(i)
      local k = 0
      for at in offsets:gmatch("%S+") do
        k = k + 1
        local due = (i - 1) * 25 + (k - 1) * 1000
        -- The prober's timer is armed to the nearest millisecond and sends
        -- what is due within half a millisecond: allow it 1 ms, no more.
        assert.is_true(tonumber(at) >= due - 1,
          string.format("target %d sent probe %d at %s ms, due at %d ms", i, k, at, due))
        if k == 1 then firsts[i] = tonumber(at) end
      end
      -- Every probe due by 2975 ms was sent by 3600 ms, and none beyond
      -- its schedule (a 1.5 s interval would send two; a burst, five).
      assert.is_true(k == 3 or k == 4, string.format("target %d sent %d probes", i, k))
    end
    assert.equal(40, #firsts)
    -- In list order: target i's first probe never before target i-1's.
    for i = 2, 40 do
      assert.is_true(firsts[i] >= firsts[i - 1],
        string.format("target %d went first at %.3f, before target %d at %.3f",
          i, firsts[i], i - 1, firsts[i - 1]))
    end
  end)

  it("reloads on POST /-/reload and SIGHUP, keeping the counters of unchanged targets", function()
    path = yaml_file("targets:\n- hosts: [127.0.0.1, 127.0.0.2]\n  interval: 100ms\n")
    server = exporter.start({ "--config", path })
    assert.is_nil(server.failed, server.output)
    local one = 'host="127.0.0.1",ip="127.0.0.1"'
    local two = 'host="127.0.0.2",ip="127.0.0.2"'
    local three = 'host="127.0.0.3",ip="127.0.0.3"'
    local before = eventually(10, function()
      local s = server:scrape()
      return (value(s, "smokeping_requests_total", one) or 0) >= 10 and s
    end)
    assert.truthy(before)

    -- POST: 127.0.0.2 leaves, 127.0.0.3 comes, 127.0.0.1 stays with new options.
    rewrite(path, "targets:\n- hosts: [127.0.0.1, 127.0.0.3]\n  interval: 100ms\n  size: 200\n")
    local code, body = server:request("/-/reload", "POST")
    assert.equal(200, code, body)
    assert.matches("reloaded: 2 target", body)
    local after = server:scrape()
    assert.is_true(value(after, "smokeping_requests_total", one)
      >= value(before, "smokeping_requests_total", one), "the counter went back")
    assert.is_nil(value(after, "smokeping_requests_total", two))
    assert.is_not_nil(value(after, "smokeping_requests_total", three))

    -- No gap: across a reload, the kept target is still probed every
    -- 100 ms. Counted against the time that passed between the two scrapes
    -- (a millisecond clock; the scrapes' own time counted both ways), so a
    -- slow machine changes the window, not the verdict: a pause of 300 ms
    -- or more, or a second task probing the target, shows.
    local before_s0 = icmprun.now()
    local s0 = value(server:scrape(), "smokeping_requests_total", one)
    local after_s0 = icmprun.now()
    rewrite(path, "targets:\n- hosts: [127.0.0.1]\n  interval: 100ms\n")
    server:signal("HUP")
    exporter.sleep(1)
    local before_s1 = icmprun.now()
    local s1 = server:scrape()
    local after_s1 = icmprun.now()
    local probes = value(s1, "smokeping_requests_total", one) - s0
    local least, most = (before_s1 - after_s0) / 100, (after_s1 - before_s0) / 100
    assert.is_true(probes >= math.floor(least) - 3 and probes <= math.ceil(most) + 1,
      string.format("%d probes in %.0f to %.0f ms", probes, least * 100, most * 100))
    assert.is_nil(value(s1, "smokeping_requests_total", three))
    assert.equal(1, s1.icmprun_exporter_targets)
    assert.matches("reloaded: 1 target%(s%), 0 added, 1 kept, 1 removed", server:output())
    -- Counters still add up after the reloads.
    local sent = value(s1, "smokeping_requests_total", one)
    local replies = value(s1, "icmprun_results_total", one .. ',status="reply"')
    assert.is_true(sent - replies == 0 or sent - replies == 1)
  end)

  it("gives each target its own options, and takes new ones on a reload", function()
    -- With TTL 1 the far host's probes die at the router: ttl_exceeded, not
    -- replies (the router's errors are rate-limited, so some may time out).
    path = yaml_file(string.format([[
targets:
- hosts: [%s]
  interval: 300ms
  timeout: 250ms
  ttl: 1
- hosts: [127.0.0.41]
  interval: 300ms
  size: 1400
  tos: 40
]], FAR))
    -- Every probe of the second group leaves with its size and TOS.
    nftcount.start("127.0.0.41", { size = 1400, tos = 40 })
    server = exporter.start({ "--config", path })
    assert.is_nil(server.failed, server.output)
    local far = 'host="' .. FAR .. '",ip="' .. FAR .. '"'
    local s = eventually(10, function()
      local s = server:scrape()
      return (value(s, "icmprun_results_total", far .. ',status="ttl_exceeded"') or 0) >= 3 and s
    end)
    assert.truthy(s, "no ttl_exceeded results for TTL 1")
    assert.equal(0, value(s, "icmprun_results_total", far .. ',status="reply"'))
    assert.is_true(value(s, "icmprun_results_total",
      'host="127.0.0.41",ip="127.0.0.41",status="reply"') > 0)
    local counts = nftcount.read()
    nftcount.stop()
    assert.is_true(counts.all > 0)
    assert.same({ all = counts.all, size = counts.all, tos = counts.all }, counts)

    -- The same target without a TTL: its counters stay, and replies come.
    rewrite(path, string.format("targets:\n- hosts: [%s]\n  interval: 300ms\n", FAR))
    assert.equal(200, (server:request("/-/reload", "POST")))
    local before = value(server:scrape(), "icmprun_results_total", far .. ',status="ttl_exceeded"')
    assert.is_true(before >= 3, "the counter was reset")
    s = eventually(10, function()
      local now = server:scrape()
      return (value(now, "icmprun_results_total", far .. ',status="reply"') or 0) >= 2 and now
    end)
    assert.truthy(s, "no replies after the TTL was dropped")
    assert.equal(63, value(s, "smokeping_response_ttl", far)) -- one router on the way back
  end)

  it("keeps its targets when a reload fails, and says why", function()
    path = yaml_file("targets:\n- hosts: [127.0.0.1]\n  interval: 100ms\n")
    server = exporter.start({ "--config", path })
    assert.is_nil(server.failed, server.output)
    local started = server:scrape()
    exporter.sleep(0.2)
    rewrite(path, "targets:\n- hosts: [127.0.0.1]\n  interval: soon\n")
    local code, body = server:request("/-/reload", "POST")
    assert.equal(500, code)
    assert.matches('targets[1].interval: "soon" is not a duration', body, 1, true)
    local s = server:scrape()
    assert.equal(0, s.smokeping_prober_config_last_reload_successful)
    -- The success time is still that of the start.
    assert.equal(started.smokeping_prober_config_last_reload_success_timestamp_seconds,
      s.smokeping_prober_config_last_reload_success_timestamp_seconds)
    local one = 'host="127.0.0.1",ip="127.0.0.1"'
    local n = value(s, "smokeping_requests_total", one)
    exporter.sleep(0.5)
    assert.is_true(value(server:scrape(), "smokeping_requests_total", one) > n,
      "probing stopped after a failed reload")
    assert.matches("reload failed, the targets stay as they were", server:output())
  end)

  it("refuses bad input with a message and status 2", function()
    local cases = {
      { { "exporter" }, "give a config file" },
      { { "exporter", "--config", "/nonexistent.yml" }, "cannot read the config: /nonexistent.yml" },
      { { "exporter", "--listen", "nowhere", "127.0.0.1" }, "'nowhere' is not HOST:PORT" },
      { { "exporter", "-i", "fast", "127.0.0.1" }, "option '--ping.interval': invalid argument 'fast'" },
      { { "exporter", "--buckets", "0.1,0.01", "127.0.0.1" }, "option '--buckets'" },
      { { "exporter", "no-such-host.invalid" }, "host no-such-host.invalid does not resolve" },
    }
    for _, case in ipairs(cases) do
      local r = cli.icmprun_run(case[1])
      assert.equal(2, r.code, table.concat(case[1], " ") .. ": " .. r.stderr)
      assert.matches(case[2], r.stderr, 1, true)
    end
    local bad = yaml_file("targets:\n- hosts: [127.0.0.1]\n  size: big\n")
    local r = cli.icmprun_run({ "exporter", "--config", bad })
    os.remove(bad)
    assert.equal(2, r.code)
    assert.matches("targets[1].size: big is not a whole number", r.stderr, 1, true)
  end)

  it("takes hosts, interval, size and buckets from the command line", function()
    nftcount.start("127.0.0.42", { size = 24 })
    server = exporter.start({ "-i", "100ms", "-s", "24", "--buckets", "0.001,0.5",
      "127.0.0.42" })
    assert.is_nil(server.failed, server.output)
    local labels = 'host="127.0.0.42",ip="127.0.0.42"'
    local s = eventually(10, function()
      local s = server:scrape()
      return (value(s, "smokeping_requests_total", labels) or 0) >= 2 and s
    end)
    assert.truthy(s, "never probed")
    -- -i 100ms: about ten probes in a second, where the default interval
    -- (1 s) would give one or two.
    local first = value(s, "smokeping_requests_total", labels)
    exporter.sleep(1.0)
    s = server:scrape()
    local sent = value(s, "smokeping_requests_total", labels) - first
    assert.is_true(sent >= 5, sent .. " probes in a second")
    -- -s 24: every probe carried 24 bytes of payload.
    local counts = nftcount.read()
    nftcount.stop()
    assert.is_true(counts.all >= 5)
    assert.equal(counts.all, counts.size)
    local h = "smokeping_response_duration_seconds_bucket"
    assert.is_number(value(s, h, labels .. ',le="0.001"'))
    assert.is_number(value(s, h, labels .. ',le="0.5"'))
    assert.is_number(value(s, h, labels .. ',le="+Inf"'))
    assert.is_nil(value(s, h, labels .. ',le="5e-05"')) -- not the default buckets
  end)

  it("refuses a port that is taken", function()
    server = exporter.start({ "127.0.0.1" })
    assert.is_nil(server.failed, server.output)
    local r = cli.icmprun_run({ "exporter", "--listen", "127.0.0.1:" .. server.port, "127.0.0.1" })
    assert.equal(2, r.code)
    assert.matches("cannot listen on 127.0.0.1:" .. server.port, r.stderr, 1, true)
  end)
end)
