-- SPDX-License-Identifier: MIT

--- `icmprun exporter` as a service that runs unattended: clients that hang
-- up, lie or never read, config mistakes at the edge of the engine's
-- limits, signal storms and a missing ICMP socket must not end it, and its
-- counters must still add up afterwards. Only loopback is probed.
local cli = require "cli"
local exporter = require "exporter"

local FIX = 'sysctl -w net.ipv4.ping_group_range="0 2147483647"'

local function yaml_file(text)
  return cli.temp_file(text, ".yml")
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

-- Checks that every target's counters agree in a scrape: each probe sent
-- has ended in one result but the one in flight, and the histogram counts
-- every reply. Returns the number of targets seen.
local function assert_consistent(samples)
  local targets = 0
  for series, sent in pairs(samples) do
    local labels = type(series) == "string" and series:match("^smokeping_requests_total{(.*)}$")
    if labels then
      targets = targets + 1
      local ended = 0
      for _, status in ipairs({ "reply", "timeout", "unreachable", "ttl_exceeded", "error" }) do
        ended = ended + samples["icmprun_results_total{" .. labels .. ',status="' .. status
          .. '"}']
      end
      assert.is_true(sent - ended == 0 or sent - ended == 1,
        labels .. ": sent " .. sent .. ", ended " .. ended)
      assert.equal(samples["icmprun_results_total{" .. labels .. ',status="reply"}'],
        samples["smokeping_response_duration_seconds_count{" .. labels .. "}"])
    end
  end
  return targets
end

-- The number of times the log says a reload worked.
local function reloads(server)
  local n = 0
  for _ in server:output():gmatch("reloaded: %d+ target") do
    n = n + 1
  end
  return n
end

describe("icmprun exporter as a service", function()
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

  -- Starts the exporter on `n` loopback targets and waits for their first
  -- probes to show in a scrape.
  local function start_many(n, interval)
    path = yaml_file(exporter.many_targets(n, interval))
    server = exporter.start({ "--config", path })
    assert.is_nil(server.failed, server.output)
    return server
  end

  it("goes on serving when clients hang up in the middle of a response", function()
    start_many(3000)
    for _ = 1, 3 do
      -- head exits after 100 bytes of a scrape of megabytes; curl then
      -- closes with most of it unread, and -m 0.05 gives up mid-way, as
      -- Prometheus does when a scrape times out.
      local r = cli.sh(string.format("curl -s %s/metrics | head -c 100", server.url))
      assert.matches("^# HELP", r.stdout)
      cli.sh(string.format("curl -s -m 0.05 -o /dev/null %s/metrics", server.url))
    end
    exporter.sleep(0.5)
    assert.is_true(server:alive(), "the exporter died: " .. server:output())
    local samples = server:scrape()
    assert.equal(3000, assert_consistent(samples))
    assert.equal(3000, samples.icmprun_exporter_targets)
  end)

  it("answers 400 to a Content-Length that is not a whole number of bytes", function()
    start_many(1)
    local lengths = { "1.5", "1e-300", "-1", "+5", "0x10", " ", "5, 5", "nan", "inf" }
    local cases = {}
    for i, length in ipairs(lengths) do
      cases[i] = { send = { "POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: " .. length
        .. "\r\n\r\n12345" } }
    end
    -- Over the limit: 413. Over what any integer holds: libmicrohttpd
    -- answers 413 or closes the connection; it is never a reload either.
    cases[#cases + 1] = { send = { "POST /-/reload HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n" } }
    cases[#cases + 1] = { send = { "POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: "
      .. "99999999999999999999999999\r\n\r\n12345" } }
    local responses = server:raw(cases)
    for i, length in ipairs(lengths) do
      assert.equal(400, exporter.status_of(responses[i]), "Content-Length: " .. length
        .. " got " .. responses[i])
    end
    assert.equal(413, exporter.status_of(responses[#cases - 1]))
    assert.is_true(responses[#cases] == "" or exporter.status_of(responses[#cases]) == 413,
      responses[#cases])
    assert.is_true(server:alive(), server:output())
    assert.equal(0, reloads(server))
    assert.equal(1, assert_consistent(server:scrape()))
  end)

  it("refuses config mistakes at the engine's limits at start, with status 2", function()
    local deep = "targets:\n- host: 127.0.0.1\n  labels: " .. string.rep("[", 100000) .. "\n"
    local cases = {
      { "targets:\n- host: " .. string.rep("a", 256) .. "\n",
        "targets[1].hosts[1]: a host name of 256 characters is longer than the 253" },
      { "targets:\n- host: 127.0.0.1\n  interval: 25h\n",
        "targets[1].interval: 25h is over the longest the engine waits, 24h" },
      { "targets:\n- host: 127.0.0.1\n  interval: 300000h\n",
        "targets[1].interval: 300000h is over" },
      { "targets:\n- host: 127.0.0.1\n  interval: 1ns\n", "targets[1].interval: 1ns is shorter" },
      { "targets:\n- host: 127.0.0.1\n  size: 65520\n",
        "targets[1].size: 65520 is not a whole number from 0 to 65507" },
      { deep, ":3:40: nested deeper than 32 levels" },
      { "targets:\n- host: 127.0.0.1\n  interval: 1s\n bad: [\n", ":4:2: not valid YAML: did not find expected key" },
    }
    for _, case in ipairs(cases) do
      local bad = yaml_file(case[1])
      local r = cli.sh("timeout 20 " .. cli.icmprun_cmdline({ "exporter", "--listen",
        "127.0.0.1:0", "--config", bad }))
      os.remove(bad)
      assert.equal(2, r.code, case[2] .. ": " .. r.stderr)
      assert.matches(case[2], r.stderr, 1, true)
    end
  end)

  it("refuses the same mistakes on a reload, with 500 and the reason, changing nothing", function()
    path = yaml_file("targets:\n- hosts: [127.0.0.1]\n  interval: 100ms\n")
    server = exporter.start({ "--config", path })
    assert.is_nil(server.failed, server.output)
    local one = 'smokeping_requests_total{host="127.0.0.1",ip="127.0.0.1"}'
    local cases = {
      { "targets:\n- host: " .. string.rep("a", 256) .. "\n", "a host name of 256 characters" },
      { "targets:\n- host: 127.0.0.2\n  interval: 25h\n", "25h is over the longest" },
      { "targets:\n- host: 127.0.0.2\n  interval: 300000h\n", "300000h is over the longest" },
      { "targets:\n- host: 127.0.0.2\n  size: 65508\n", "65508 is not a whole number" },
      { "targets: " .. string.rep("[", 50000) .. "\n", ":1:41: nested deeper than 32" },
    }
    for _, case in ipairs(cases) do
      cli.write_file(path, case[1])
      local code, body = server:request("/-/reload", "POST")
      assert.equal(500, code, case[2])
      assert.matches(case[2], body, 1, true)
    end
    local before = server:scrape()
    assert.equal(0, before.smokeping_prober_config_last_reload_successful)
    assert.equal(1, before.icmprun_exporter_targets)
    exporter.sleep(0.5)
    local after = server:scrape()
    assert.is_true(after[one] > before[one], "probing stopped")
    assert.is_true(server:alive())
    assert.equal(1, assert_consistent(after))
  end)

  it("refuses to start without ICMP sockets, with status 2 and the sysctl to run", function()
    -- A new namespace whose ping_group_range admits nobody, and no
    -- capability: neither datagram nor raw sockets can be opened.
    local inner = table.concat({
      "ip link set lo up",
      'sysctl -qw net.ipv4.ping_group_range="1 0" 2>/dev/null || :',
      "exec setpriv --inh-caps=-all --bounding-set=-all timeout 20 "
        .. cli.icmprun_cmdline({ "exporter", "--listen", "127.0.0.1:0", "127.0.0.1" }),
    }, "\n")
    local r = cli.sh("ICMPRUN_SOCKET=dgram unshare --net sh -c " .. cli.quote(inner))
    assert.equal(2, r.code, r.stderr)
    assert.matches("no ICMP socket for 127.0.0.1", r.stderr, 1, true)
    assert.matches(FIX, r.stderr, 1, true)
  end)

  it("does not act again on bytes sent after a complete request", function()
    start_many(2000)
    -- Stray bytes (not a request) after a complete reload, sent in pieces:
    -- one reload, one 200, and the garbage refused or closed, never taken
    -- as the reload again. (A complete second request after the first is
    -- a pipelined request of HTTP/1.1 keep-alive, and is served as one.)
    local send = { "POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" }
    for i = 2, 8 do
      send[i] = string.rep("x", 16)
    end
    send[9] = "\r\n\r\n"
    local responses = server:raw({ { send = send, gap = 10, timeout = 15000 } })
    assert.equal(200, exporter.status_of(responses[1]), responses[1])
    exporter.sleep(1)
    assert.equal(1, reloads(server))
    local _, ok_count = responses[1]:gsub("HTTP/1%.1 200 ", "")
    assert.equal(1, ok_count)
    assert.is_nil(responses[1]:find("\0TIMEOUT", 1, true))
    assert.equal(2000, assert_consistent(server:scrape()))
  end)

  it("coalesces a storm of SIGHUPs: at most three reloads after it", function()
    start_many(2000) -- A reload resolves 2,000 hosts: it takes a while.
    exporter.sleep(1) -- The handler is set just after the log line.
    -- 300 HUPs over a second or more, many of them while a reload runs.
    cli.sh(string.format("for i in $(seq 300); do kill -HUP %d; sleep 0.005; done",
      server.pid))
    local at_end = reloads(server)
    -- Settled: a reload logged, and no new one for a second.
    local settled = eventually(60, function()
      local n = reloads(server)
      exporter.sleep(1)
      return n > 0 and n == reloads(server) and n
    end)
    assert.truthy(settled, "reloads were still running a minute later")
    -- The one running when the storm ended, one for all that came during
    -- it, and one for signals the shell sent but the loop had not yet read:
    -- any more means each HUP queued a reload of its own.
    assert.is_true(settled - at_end <= 3, string.format("%d reloads after the storm "
      .. "(%d during it)", settled - at_end, at_end))
    assert.is_true(server:alive())
    assert.equal(2000, assert_consistent(server:scrape()))
  end)

  it("answers /-/healthy to GET and HEAD only, others with 405 and Allow", function()
    start_many(1)
    local methods = { "GET", "HEAD", "TRACE", "DELETE", "POST", "OPTIONS" }
    local cases = {}
    for i, method in ipairs(methods) do
      cases[i] = { send = { method .. " /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close"
        .. "\r\n\r\n" } }
    end
    cases[#cases + 1] = { send = { "DELETE /metrics HTTP/1.0\r\n\r\n" } }
    cases[#cases + 1] = { send = { "GET /-/reload HTTP/1.0\r\n\r\n" } }
    local responses = server:raw(cases)
    assert.equal(200, exporter.status_of(responses[1]))
    assert.matches("\r\n\r\nOK\n$", responses[1])
    assert.equal(200, exporter.status_of(responses[2]))
    assert.matches("Content%-Length: 3\r\n", responses[2])
    assert.matches("\r\n\r\n$", responses[2]) -- HEAD: no body
    for i = 3, 6 do
      assert.equal(405, exporter.status_of(responses[i]), methods[i])
      assert.matches("\r\nAllow: GET, HEAD\r\n", responses[i])
    end
    assert.matches("\r\nAllow: GET, HEAD\r\n", responses[7])
    assert.equal(405, exporter.status_of(responses[8]))
    assert.matches("\r\nAllow: POST, PUT\r\n", responses[8])
  end)

  it("answers requests whose lines end in a bare LF", function()
    start_many(1)
    local responses = server:raw({
      { send = { "GET /-/healthy HTTP/1.1\nHost: x\n\n" }, timeout = 3000 },
      { send = { "GET /metrics HTTP/1.0\n\n" }, timeout = 3000 },
    })
    assert.equal(200, exporter.status_of(responses[1]), responses[1])
    assert.equal(200, exporter.status_of(responses[2]), responses[2])
    assert.matches("smokeping_requests_total", responses[2])
  end)

  it("applies the head limit whether the head comes in one read or many", function()
    start_many(1)
    local big = "GET /metrics HTTP/1.1\r\nX-Big: " .. string.rep("a", 20000) .. "\r\n\r\n"
    local responses = server:raw({
      { send = { big } },
      { send = { big:sub(1, 10000), big:sub(10001) }, gap = 50 },
    })
    assert.equal(431, exporter.status_of(responses[1]), responses[1]:sub(1, 200))
    assert.equal(431, exporter.status_of(responses[2]), responses[2]:sub(1, 200))
    assert.is_true(server:alive())
  end)

  it("keeps one rendered copy for clients that never read", function()
    start_many(5000)
    server:scrape()
    -- Clients that ask at once and never read, held for 4 s; the memory
    -- after 3 s, for one such client and then for 20.
    local function rss_with(clients)
      local cases = {}
      for i = 1, clients do
        cases[i] = { send = { "GET /metrics HTTP/1.1\r\n\r\n" }, read = false, timeout = 4000 }
      end
      local watcher = io.popen(string.format(
        "unset LD_PRELOAD ASAN_OPTIONS; sleep 3; grep VmRSS /proc/%d/status", server.pid))
      server:raw(cases)
      local rss = tonumber(watcher:read("a"):match("(%d+) kB")) * 1024
      watcher:close()
      return rss
    end
    -- Warmed up first: the collector's garbage of a few renders is part of
    -- the memory of one client too.
    for _ = 1, 3 do
      server:scrape()
    end
    rss_with(1)
    local one = rss_with(1)
    local rss = rss_with(20)
    assert.is_true(rss < 1.5 * one, string.format("RSS %.1f MB with 20 clients that never "
      .. "read, %.1f MB with one", rss / 1e6, one / 1e6))
    assert.is_true(server:alive())
    assert.equal(5000, assert_consistent(server:scrape()))
  end)

  it("negotiates gzip; clients of one render get the same text, compressed or not", function()
    start_many(3000)
    local ask = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    local responses = server:raw({
      { send = { ask .. "Accept-Encoding: gzip\r\n\r\n" } },
      { send = { ask .. "\r\n" } },
      { send = { ask .. "Accept-Encoding: deflate, gzip;q=0\r\n\r\n" } },
    })
    local function split(response)
      local head, body = response:match("^(.-\r\n)\r\n(.*)$")
      return head, body
    end
    local zhead, zbody = split(responses[1])
    local head, body = split(responses[2])
    local qhead = split(responses[3])
    assert.matches("\r\nContent%-Encoding: gzip\r\n", zhead)
    assert.is_nil(head:find("Content-Encoding", 1, true))
    assert.is_nil(qhead:find("Content-Encoding", 1, true))
    assert.equal(tonumber(zhead:match("Content%-Length: (%d+)")), #zbody)
    local text = require("zlib").inflate()(zbody)
    -- Asked at once, so one render: the very same samples.
    assert.equal(body, text)
    assert.is_true(#zbody * 5 < #body, #zbody .. " bytes compressed of " .. #body)
    assert.equal(3000, assert_consistent(exporter.parse(text)))
    local check = exporter.promtool_check(text)
    assert.equal(0, check.code, check.stdout .. check.stderr)
  end)

  it("keeps line and column in YAML errors", function()
    path = yaml_file("targets:\n- hosts: [127.0.0.1\n  interval: 1s\n")
    local r = cli.icmprun_run({ "exporter", "--config", path })
    assert.equal(2, r.code)
    assert.matches(path .. ":%d+:%d+: not valid YAML: did not find expected ',' or ']'",
      r.stderr)
  end)
end)
