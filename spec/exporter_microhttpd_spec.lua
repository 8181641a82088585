-- SPDX-License-Identifier: MIT

--- `icmprun exporter` on libmicrohttpd, the server under every listener:
-- keep-alive, HEAD, methods, gzip, malformed requests that must not stop
-- it, and `--web.server` kept as a no-op. Loopback only.
local cli = require "cli"
local exporter = require "exporter"

describe("icmprun exporter on libmicrohttpd", function()
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

  local function start(n)
    path = cli.temp_file(exporter.many_targets(n, "200ms"), ".yml")
    server = exporter.start({ "--config", path })
    assert.is_nil(server.failed, server.output)
  end

  it("accepts --web.server microhttpd as a no-op and refuses the removed luv server", function()
    path = cli.temp_file(exporter.many_targets(1, "200ms"), ".yml")
    server = exporter.start({ "--web.server", "microhttpd", "--config", path })
    assert.is_nil(server.failed, server.output)
    assert.equal(200, (server:request("/-/healthy")))
    local r = cli.icmprun_run({ "exporter", "--web.server", "luv", "--config", path })
    assert.equal(2, r.code)
    assert.matches("'luv' is no longer available: libmicrohttpd", r.stderr, 1, true)
  end)

  it("keeps connections alive, answers HEAD, and 405 with Allow", function()
    start(10)
    local r = cli.sh(string.format("curl -sv -o /dev/null -o /dev/null %s/-/healthy %s/metrics",
      server.url, server.url))
    assert.matches("Re%-using existing connection", r.stderr)
    local responses = server:raw({
      { send = { "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" } },
      { send = { "DELETE /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" } },
      { send = { "GET /-/reload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" } },
      { send = { "GET /-/healthy HTTP/1.1\nHost: x\nConnection: close\n\n" } },
    })
    assert.equal(200, exporter.status_of(responses[1]))
    assert.matches("\r\n\r\n$", responses[1]) -- no body
    assert.is_true(tonumber(responses[1]:match("Content%-Length: (%d+)")) > 1000)
    assert.equal(405, exporter.status_of(responses[2]))
    assert.matches("\r\nAllow: GET, HEAD\r\n", responses[2])
    assert.matches("\r\nAllow: POST, PUT\r\n", responses[3])
    assert.equal(200, exporter.status_of(responses[4]), responses[4])
  end)

  it("shares one render between gzip and plain clients, which promtool accepts", function()
    start(1000)
    local ask = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    local responses = server:raw({
      { send = { ask .. "Accept-Encoding: gzip\r\n\r\n" } },
      { send = { ask .. "\r\n" } },
    })
    local zhead, zbody = responses[1]:match("^(.-\r\n)\r\n(.*)$")
    local _, body = responses[2]:match("^(.-\r\n)\r\n(.*)$")
    assert.matches("\r\nContent%-Encoding: gzip\r\n", zhead)
    assert.equal(body, require("zlib").inflate()(zbody))
    local check = exporter.promtool_check(body)
    assert.equal(0, check.code, check.stdout .. check.stderr)
  end)

  it("answers or closes malformed requests, and goes on serving", function()
    start(10)
    local bad = {
      "GET\r\n\r\n", "\0\0\0\0\r\n\r\n", "GET / HTTP/9.9\r\n\r\n",
      "POST /-/reload HTTP/1.1\r\nContent-Length: 1.5\r\n\r\n",
      "POST /-/reload HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
      "POST /-/reload HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
      "POST /-/reload HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n" .. string.rep("x", 100),
      "GET /metrics HTTP/1.1\r\nX-Big: " .. string.rep("a", 70000) .. "\r\n\r\n",
      string.rep("A", 70000),
    }
    local cases = {}
    for i, text in ipairs(bad) do
      cases[i] = { send = { text }, timeout = 20000 }
    end
    local responses = server:raw(cases)
    for i, response in ipairs(responses) do
      local status = exporter.status_of(response)
      -- A 4xx/5xx, or the connection closed with nothing (at the latest
      -- after MHD's 10 s of inactivity): never a 2xx, a reload, or a
      -- connection left open.
      assert.is_true(response == "" or (status and status >= 400),
        string.format("%q got %q", bad[i]:sub(1, 60), response:sub(1, 60)))
    end
    assert.is_true(server:alive(), server:output())
    assert.is_nil(server:output():find("reloaded", 1, true))
    assert.equal(10, server:scrape().icmprun_exporter_targets)
  end)

  it("holds a bounded memory for clients that never read", function()
    start(3000)
    for _ = 1, 3 do
      server:scrape()
    end
    local function rss_with(clients)
      local cases = {}
      for i = 1, clients do
        cases[i] = { send = { "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" }, read = false,
          timeout = 4000 }
      end
      local watcher = io.popen(string.format(
        "unset LD_PRELOAD ASAN_OPTIONS; sleep 3; grep VmRSS /proc/%d/status", server.pid))
      server:raw(cases)
      local rss = tonumber(watcher:read("a"):match("(%d+) kB")) * 1024
      watcher:close()
      return rss
    end
    rss_with(1)
    local one = rss_with(1)
    local twenty = rss_with(20)
    assert.is_true(twenty < 1.5 * one, string.format("%.1f MB with 20, %.1f MB with one",
      twenty / 1e6, one / 1e6))
    assert.is_true(server:alive())
  end)
end)
