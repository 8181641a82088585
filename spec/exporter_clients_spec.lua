-- SPDX-License-Identifier: MIT

--- `icmprun exporter` against clients that misbehave in numbers: a scripted
-- corpus of malformed requests, and thousands of idle and trickling
-- connections while a new client scrapes. Only loopback is used.
local cli = require "cli"
local exporter = require "exporter"

local CRLF = "\r\n"

-- The corpus: request texts, each sent whole on a connection of its own.
-- Every one must get a 4xx or 5xx answer, or be closed without one (as
-- libmicrohttpd does with some); none may end the exporter or reload it.
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

  it("answers (4xx/5xx) or closes each of 106 malformed requests, and goes on", function()
    path = cli.temp_file(exporter.many_targets(10, "100ms"), ".yml")
    server = exporter.start({ "--config", path })
    assert.is_nil(server.failed, server.output)
    local requests = corpus()
    assert.equal(106, #requests)
    local cases = {}
    for i, text in ipairs(requests) do
      cases[i] = { send = { text }, timeout = 15000 }
    end
    local responses = server:raw(cases)
    -- Requests libmicrohttpd reads leniently and serves as what they say: a
    -- request line split on runs of spaces (RFC 9112 allows it), and a NUL
    -- in a header value, which ends that value in MHD's parser. One of
    -- them is a reload: the only one the corpus may cause.
    local lenient = {}
    for _, line in ipairs({ "GET  / HTTP/1.1", "X: a\0b" }) do
      for i, text in ipairs(requests) do
        if text:find(line, 1, true) then
          lenient[i] = true
        end
      end
    end
    local answered, closed, served = 0, {}, 0
    for i, response in ipairs(responses) do
      local status = exporter.status_of(response)
      if lenient[i] then
        assert.equal(200, status, requests[i])
        served = served + 1
      elseif response == "" then
        -- libmicrohttpd closes some malformed requests without an answer.
        closed[#closed + 1] = string.format("%q", requests[i]:sub(1, 40))
      else
        -- An answer, 4xx or 5xx, and the connection closed after it: never
        -- a 2xx, never a connection left open (TIMEOUT), never a reload.
        assert.is_true(status ~= nil and status >= 400 and status <= 599
          and response:find("\0TIMEOUT", 1, true) == nil,
          string.format("%q got %q", requests[i]:sub(1, 80), response:sub(1, 80)))
        answered = answered + 1
      end
    end
    print(string.format("\n%d answered 4xx/5xx, %d closed without an answer:\n%s", answered,
      #closed, table.concat(closed, "\n")))
    assert.equal(4, served)
    assert.is_true(server:alive(), server:output())
    local _, reloads = server:output():gsub("reloaded:", "")
    assert.equal(1, reloads)
    local s = server:scrape()
    assert.equal(10, s.icmprun_exporter_targets)
    -- Every connection of the corpus is gone: the scrape's is the only one.
    assert.equal(1, s.icmprun_exporter_http_connections)
    -- The counters still agree: each target's probes sent have ended, but
    -- for at most the one in flight.
    for i = 1, 10 do
      local labels = string.format('host="127.1.0.%d",ip="127.1.0.%d"', i + 1, i + 1)
      local sent, ended = s["smokeping_requests_total{" .. labels .. "}"], 0
      for _, status in ipairs({ "reply", "timeout", "unreachable", "ttl_exceeded", "error" }) do
        ended = ended + s["icmprun_results_total{" .. labels .. ',status="' .. status .. '"}']
      end
      assert.is_true(sent > 0 and (sent == ended or sent == ended + 1), labels)
      assert.equal(ended, s["icmprun_results_total{" .. labels .. ',status="reply"}'])
    end
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
    local watcher = io.popen(string.format("unset LD_PRELOAD ASAN_OPTIONS; sleep 3; curl -s -o %s -w '%%{http_code} "
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
