-- SPDX-License-Identifier: MIT

--- `icmprun exporter` against clients that misbehave in numbers: a scripted
-- corpus of malformed requests, and thousands of idle and trickling
-- connections while a new client scrapes. Only loopback is used.
local cli = require "cli"
local exporter = require "exporter"

local CRLF = "\r\n"

-- The corpus: request texts, each sent whole on a connection of its own.
-- Every one must get a 4xx or 5xx answer (or, for a head that never ends,
-- be waited for); none may end the exporter or reload it.
local function corpus()
  local out = {}
  local function add(text)
    out[#out + 1] = text
  end
  local lines = {
    "GET", "GET /", "GET / HTTP/2.0", "GET / HTTP/1.1 extra", "GET  / HTTP/1.1",
    " GET / HTTP/1.1", "GET / HTTP/1", "GET / http/1.1", "GET / HTTP/1.1\0", "GET\t/ HTTP/1.1",
    "G(T / HTTP/1.1", "GET metrics HTTP/1.1", "GET http://x HTTP/1.1", "GET ?a HTTP/1.1",
    "\0\0\0\0", "\22\3\1\2\0\1\0\1\252\3\3", "PRI * HTTP/2.0", "GET / HTTP/9.9",
    "POST /-/reload HTTP/1.1 x", "GET /" .. string.rep("a", 17000) .. " HTTP/1.1",
    "DELETE /-/reload HTTP/1.1", "TRACE /-/healthy HTTP/1.1", "CONNECT 127.0.0.1:1 HTTP/1.1",
    "OPTIONS * HTTP/1.1", "GET /nothing HTTP/1.1", "POST /metrics HTTP/1.1",
    "GET /metrics%00 HTTP/1.1", "GET /%zz HTTP/1.1", "\255\254GET / HTTP/1.1",
  }
  -- Each bad request line with CRLF and with bare LF endings.
  for _, line in ipairs(lines) do
    add(line .. CRLF .. "Host: x" .. CRLF .. CRLF)
    add(line .. "\n\n")
  end
  local headers = {
    "NoColon", "Host : x", " folded: x", "Bad Header: x", "X: a\0b", "X: a\1b",
    ": empty", "X-Big: " .. string.rep("b", 17000), "Content-Length: 1.5",
    "Content-Length: 1e-300", "Content-Length: -1", "Content-Length: +1",
    "Content-Length: 0x10", "Content-Length: 99999999999999999999", "Content-Length: 1 1",
    "Content-Length: ", "Content-Length: nan", "Content-Length: 2000000",
    "Content-Length: 1" .. CRLF .. "Content-Length: 2", "Transfer-Encoding: chunked",
    "Transfer-Encoding: gzip, chunked", "Content-Length: 3" .. CRLF .. "Transfer-Encoding: chunked",
  }
  -- Each bad header on a reload (which must not happen) and on a scrape.
  for _, header in ipairs(headers) do
    add("POST /-/reload HTTP/1.1" .. CRLF .. header .. CRLF .. CRLF .. "abc")
    add("GET /metrics HTTP/1.1" .. CRLF .. header .. CRLF .. CRLF)
  end
  local many = { "GET /metrics HTTP/1.1" }
  for i = 1, 101 do
    many[#many + 1] = "X-" .. i .. ": y"
  end
  add(table.concat(many, CRLF) .. CRLF .. CRLF)
  add(string.rep("A", 20000))
  add(string.rep(CRLF, 9000))
  add(string.rep("\n", 17000))
  return out
end

describe("icmprun exporter against many misbehaving clients", function()
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

  it("answers a corpus of more than 100 malformed requests with 4xx/5xx and goes on", function()
    path = cli.temp_file(exporter.many_targets(10, "100ms"), ".yml")
    server = exporter.start({ "--config", path })
    assert.is_nil(server.failed, server.output)
    local requests = corpus()
    assert.is_true(#requests >= 100, #requests .. " requests")
    local cases = {}
    for i, text in ipairs(requests) do
      cases[i] = { send = { text }, timeout = 15000 }
    end
    local responses = server:raw(cases)
    for i, response in ipairs(responses) do
      local status = exporter.status_of(response)
      assert.is_true(status ~= nil and status >= 400 and status <= 599,
        string.format("%q got %q", requests[i]:sub(1, 80), response:sub(1, 80)))
    end
    assert.is_true(server:alive(), server:output())
    assert.is_nil(server:output():find("reloaded", 1, true))
    local s = server:scrape()
    assert.equal(10, s.icmprun_exporter_targets)
    local sent = s['smokeping_requests_total{host="127.1.0.2",ip="127.1.0.2"}']
    assert.is_true(sent > 0)
  end)

  it("serves a new client while 2,000 idle and 2,000 trickling connections are open", function()
    path = cli.temp_file(exporter.many_targets(100), ".yml")
    server = exporter.start({ "--config", path })
    assert.is_nil(server.failed, server.output)
    local cases = {}
    for i = 1, 2000 do
      cases[#cases + 1] = { send = {}, timeout = 6000, start = i % 500 }
    end
    local head = "GET /metrics HTTP/1.1" .. CRLF .. "Host: x" .. CRLF .. "X-Slow: "
    for i = 1, 2000 do
      local chunks = {}
      for k = 1, #head do
        chunks[k] = head:sub(k, k)
      end
      cases[#cases + 1] = { send = chunks, gap = 200, timeout = 6000, start = i % 500 }
    end
    -- 3 s in, with all of them connected: a scrape, timed by curl.
    local out = os.tmpname()
    local watcher = io.popen(string.format("unset LD_PRELOAD; sleep 3; curl -s -o %s -w '%%{http_code} "
      .. "%%{time_total}' %s/metrics", out, server.url))
    server:raw(cases)
    local code, seconds = watcher:read("a"):match("^(%d+) ([%d.]+)")
    watcher:close()
    local f = assert(io.open(out))
    local s = exporter.parse(f:read("a"))
    f:close()
    os.remove(out)
    assert.equal("200", code)
    print(string.format("\nscrape with %d connections open: %.1f ms",
      s.icmprun_exporter_http_connections, tonumber(seconds) * 1000))
    -- The scrape itself counts as one.
    assert.is_true(s.icmprun_exporter_http_connections >= 4001,
      tostring(s.icmprun_exporter_http_connections))
    assert.equal(100, s.icmprun_exporter_targets)
    assert.is_true(server:alive())
  end)
end)
