-- SPDX-License-Identifier: MIT

--- Scrape bodies served from C memory: render texts (`icmprun.render`)
-- handed to libmicrohttpd without a copy, whose memory must outlive every
-- response that reads it however the text's owner closes it, clients that
-- stop reading or hang up mid-body, and an exporter scraped meanwhile.
-- Loopback only.
local cli = require "cli"
local exporter = require "exporter"

-- An icmprun script: a server of render texts and clients on its own loop.
-- Each case's outcome is printed as `name=value` lines. MALLOC_PERTURB_
-- fills freed memory, and a second render of the same size is made after
-- a close, so that chunks read after they were freed are seen as wrong
-- bytes, not only under AddressSanitizer.
local SCRIPT = [=[
local icmprun = require "icmprun"
local http = require "icmprun.exporter.http"
local metrics = require "icmprun.exporter.metrics"
local prometheus = require "icmprun.report.prometheus"
local uv = require "luv"

local buckets = prometheus.histogram().buckets
-- Text of 5000 targets (about 10 MB): more than the sockets between a
-- server and a client that stops reading can hold.
local function render(round)
  local targets = {}
  for i = 1, 5000 do
    local t = metrics.new_target(metrics.label_key("host-" .. i, "127.0.0." .. (i % 250 + 1),
      { round = tostring(round) }), buckets)
    for k = 1, i % 7 + round do
      t:on_send()
      t:record({ status = "reply", rtt = (i * k * 0.0013) % 3, ttl = 60 + k })
    end
    targets[i] = t
  end
  return metrics.render_bodies(targets, buckets).plain[1]
end

local texts, done = {}, {}
local server = assert(http.listen("127.0.0.1:0", function(req, respond)
  local name = req.path:sub(2)
  respond(200, "text/plain", { texts[name] }, { on_done = function() done[name] = true end })
end))

local function wait_until(what, fn)
  for _ = 1, 2000 do
    if fn() then
      return
    end
    icmprun.sleep(5)
  end
  error("timed out waiting for " .. what)
end

-- A client that reads `first` bytes of /name, then stops reading.
local function client(name, first)
  local c = { got = {}, bytes = 0, eof = false, tcp = uv.new_tcp() }
  local function on_read(err, data)
    if err or not data then
      c.eof = true
      if not c.tcp:is_closing() then
        c.tcp:close()
      end
      return
    end
    c.got[#c.got + 1] = data
    c.bytes = c.bytes + #data
    if c.paused == nil and c.bytes >= first then
      c.paused = true
      c.tcp:read_stop()
    end
  end
  c.on_read = on_read
  c.tcp:connect("127.0.0.1", server.port, function(err)
    if err then
      c.eof, c.err = true, err
      return
    end
    c.tcp:write("GET /" .. name .. " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    c.tcp:read_start(on_read)
  end)
  wait_until(name .. "'s first bytes", function() return c.paused or c.eof end)
  icmprun.sleep(100) -- The server fills the sockets and waits for the client.
  return c
end

local function body_of(c)
  return (table.concat(c.got):match("^HTTP/1%.1 200 .-\r\n\r\n(.*)$"))
end

-- 1. A text closed while a client has read only part of it: that client
-- still gets all of it, later, while new renders take freed memory.
texts.a = render(1)
local expected = texts.a:string()
local a = client("a", 256 * 1024)
print("a_mid_body=" .. tostring(not a.eof and not done.a))
texts.a:close()
texts.a = nil
local other = render(2) -- Other bytes in chunks of A's size: A's, were they freed.
a.paused = false
a.tcp:read_start(a.on_read)
wait_until("a's end", function() return a.eof end)
local body = body_of(a) or ""
print("a_whole=" .. tostring(body == expected), "a_bytes=" .. #body, "expected=" .. #expected)
wait_until("a's on_done", function() return done.a end)
other:close()

-- 2. A client that hangs up mid-body, and the text closed after that.
texts.b = render(3)
local b = client("b", 256 * 1024)
b.tcp:close()
wait_until("b's on_done", function() return done.b end)
texts.b:close()
print("b_closed_err=" .. tostring(select(2, pcall(texts.b.string, texts.b))))

-- 3. The text closed first, then the client hangs up: freed by the response.
texts.c = render(4)
local c = client("c", 256 * 1024)
texts.c:close()
c.tcp:close()
wait_until("c's on_done", function() return done.c end)

-- 4. Twenty clients that never read past their first bytes, the text
-- closed, the server closed under them: each response frees its hold.
texts.d = render(5)
local stalled = {}
for i = 1, 20 do
  stalled[i] = client("d", 1)
end
texts.d:close()
local e = client("d", math.huge) -- Refused: the text is closed, the handler raised.
wait_until("e's end", function() return e.eof end)
print("closed_text_status=" .. tostring(table.concat(e.got):match("^HTTP/1%.1 (%d+)")))
server.close()
for i = 1, 20 do
  stalled[i].tcp:close()
end
icmprun.sleep(50)
print("done")
]=]

describe("scrape bodies served from C memory", function()
  it("outlive a close while clients read or hang up mid-body, and are freed after", function()
    local path = cli.temp_file(SCRIPT, ".lua")
    local r = cli.sh("MALLOC_PERTURB_=165 timeout 120 " .. cli.icmprun_cmdline({ path }))
    os.remove(path)
    assert.equal(0, r.code, r.stdout .. r.stderr)
    assert.matches("a_mid_body=true", r.stdout, 1, true)
    assert.matches("a_whole=true", r.stdout, 1, true)
    assert.matches("b_closed_err=render: the text is closed", r.stdout, 1, true)
    assert.matches("closed_text_status=500", r.stdout, 1, true)
    assert.matches("\ndone\n$", r.stdout)
  end)
end)

describe("the exporter's scrapes", function()
  local icmprun = require "icmprun"

  -- A scrape's request and a respond that keeps what it is given; a client
  -- that has `gone` is done at once, as respond does for a closed connection.
  local function scrape(exp, got, client)
    local req = { headers = { ["accept-encoding"] = client.gzip and "gzip" or nil },
      abort = function() client.aborted = true end }
    exp:scrape(req, function(status, _, body, opts)
      client.status, client.body, client.opts = status, body, opts
      got[#got + 1] = client
      if client.gone then
        opts.on_done()
      end
    end)
  end

  local function wait_for(got, n)
    for _ = 1, 2000 do
      if #got >= n then
        return
      end
      icmprun.sleep(1)
    end
    error("the scrape was not answered")
  end

  local function is_closed(text)
    local ok, err = pcall(text.size, text)
    return not ok and err:find("the text is closed", 1, true) ~= nil
  end

  it("close a render's texts once its last client is done, and not before", function()
    local exp = assert(require("icmprun.exporter").new({ groups = {}, log = function() end }))
    local plain, gzip, gone = { gzip = false }, { gzip = true }, { gzip = false, gone = true }
    local got = {}
    local open_after = {}
    icmprun.run(function()
      scrape(exp, got, gone) -- Done at once: must not close the others' texts.
      scrape(exp, got, plain)
      scrape(exp, got, gzip)
      wait_for(got, 3)
      open_after.gone = not is_closed(plain.body[1]) and not is_closed(gzip.body[1])
      plain.opts.on_done()
      open_after.plain = not is_closed(plain.body[1]) and not is_closed(gzip.body[1])
      gzip.opts.on_done()
    end)
    assert.equal(200, plain.status)
    assert.equal(200, gzip.status)
    assert.is_true(plain.body == gone.body, "clients of one render share its body")
    assert.is_true(open_after.gone, "a client gone at once closed the render under the others")
    assert.is_true(open_after.plain, "the first client done closed the render under the second")
    assert.is_true(is_closed(plain.body[1]), "the plain text is open after its last client")
    assert.is_true(is_closed(gzip.body[1]), "the gzip text is open after its last client")
  end)

  it("close the texts of a render dropped for a newer one, with its clients", function()
    local exp = assert(require("icmprun.exporter").new({ groups = {}, log = function() end }))
    local clients, got = {}, {}
    icmprun.run(function()
      for i = 1, 3 do -- Clients that never finish: a third render drops the first.
        clients[i] = { gzip = false }
        scrape(exp, got, clients[i])
        wait_for(got, i)
      end
    end)
    assert.is_true(clients[1].aborted)
    assert.is_true(is_closed(clients[1].body[1]))
    assert.is_nil(clients[2].aborted)
    assert.is_false(is_closed(clients[2].body[1]))
    assert.is_false(is_closed(clients[3].body[1]))
  end)
end)

describe("icmprun exporter serving renders from C memory", function()
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

  it("serves later scrapes whole while 20 clients never read, then hang up", function()
    path = cli.temp_file(exporter.many_targets(3000, "1s"), ".yml")
    server = exporter.start({ "--config", path })
    assert.is_nil(server.failed, server.output)
    local ask = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    local cases = {}
    for i = 1, 20 do
      -- Hang up after 3 s, mid-body: their renders are closed meanwhile.
      cases[i] = { send = { ask .. "\r\n" }, read = false, timeout = 3000 }
    end
    for i = 1, 4 do
      cases[20 + i] = { send = { ask .. (i % 2 == 0 and "Accept-Encoding: gzip\r\n" or "")
        .. "\r\n" }, start = 500 * i, timeout = 20000 }
    end
    local responses = server:raw(cases)
    for i = 21, 24 do
      local head, body = responses[i]:match("^(.-\r\n)\r\n(.*)$")
      assert.equal(200, exporter.status_of(responses[i] or ""), "scrape " .. i)
      if head:find("Content%-Encoding: gzip") then
        body = require("zlib").inflate()(body)
      end
      assert.equal(3000, exporter.parse(body).icmprun_exporter_targets, "scrape " .. i)
    end
    for _ = 1, 3 do
      assert.equal(3000, server:scrape().icmprun_exporter_targets)
    end
    assert.is_true(server:alive(), server:output())
  end)
end)
