-- SPDX-License-Identifier: MIT

--- `icmprun exporter` as a daemon: fds 0-2 that were closed, errors in
-- callbacks and in probes that must not end it, and logs as
-- smokeping_prober writes them. Only loopback is probed.
local cli = require "cli"
local exporter = require "exporter"
local log = require "icmprun.exporter.log"

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then
    return ""
  end
  local data = f:read("a")
  f:close()
  return data
end

describe("icmprun exporter as a daemon", function()
  it("opens closed fds 0 and 1 on /dev/null before anything else", function()
    local logfile = os.tmpname()
    local p = io.popen(string.format("( unset LD_PRELOAD ASAN_OPTIONS; exec %s 0<&- 1>&- 2>%s ) & echo $!",
      cli.icmprun_cmdline({ "exporter", "--listen", "127.0.0.1:0", "127.0.0.1" }),
      cli.quote(logfile)))
    local pid = tonumber(p:read("l"))
    p:close()
    local port
    for _ = 1, 100 do
      port = slurp(logfile):match("serving http://127%.0%.0%.1:(%d+)/")
      if port then
        break
      end
      exporter.sleep(0.05)
    end
    local fd0 = cli.sh("readlink /proc/" .. pid .. "/fd/0").stdout
    local fd1 = cli.sh("readlink /proc/" .. pid .. "/fd/1").stdout
    local scrape = cli.sh("curl -s -m 5 http://127.0.0.1:" .. tostring(port) .. "/metrics")
    os.execute("kill " .. pid)
    os.remove(logfile)
    assert.truthy(port, "it did not start")
    assert.equal("/dev/null\n", fd0)
    assert.equal("/dev/null\n", fd1)
    assert.matches("smokeping_requests_total", scrape.stdout)
  end)

  it("survives clients that hang up as a library in stock lua5.4 too", function()
    -- icmprun.so ignores SIGPIPE when loaded, unless the program chose a
    -- disposition itself: a scrape cut short is an EPIPE, not the end.
    local r = cli.lua_script([[
      local icmprun = require "icmprun"
      local uv = require "luv"
      local exporter = require "icmprun.exporter"
      local hosts = {}
      for i = 1, 3000 do
        hosts[i] = string.format("127.1.%d.%d", i // 250, i % 250 + 1)
      end
      icmprun.run(function()
        local e = assert(exporter.new{groups = {{hosts = hosts, interval = 1000,
          timeout = 1000, family = 0, size = 56, tos = 0, labels = {}}}, log = function() end})
        assert(e:start())
        local server = assert(e:listen("127.0.0.1:0"))
        for i = 1, 6 do
          local done = false
          -- curl must not inherit the sanitizer runtimes that a sanitizer
          -- build preloads into this lua5.4: under them it never connects.
          local cmd = "unset LD_PRELOAD ASAN_OPTIONS; " .. (i % 2 == 1
            and "curl -s http://127.0.0.1:%d/metrics | head -c 100"
            or "curl -s -m 0.05 -o /dev/null http://127.0.0.1:%d/metrics")
          local handle = uv.spawn("sh", { args = { "-c", string.format(cmd .. " >/dev/null",
            server.port) } }, function() done = true end)
          assert(handle)
          while not done do icmprun.sleep(10) end
        end
        icmprun.sleep(300)
        print("still serving", #e:render() > 100000)
        e:stop()
      end)
    ]], 120)
    assert.equal(0, r.code, r.stderr)
    assert.equal("still serving\ttrue\n", r.stdout)
  end)

  it("counts a probe that cannot be sent as an error result, and goes on", function()
    -- Three groups: one probed as usual; one whose size IPv4 cannot carry
    -- (65510 bytes: the engine refuses every probe); one whose sends make a
    -- callback of the prober raise, as a bug in one would.
    local r = cli.icmprun_script([[
      local icmprun = require "icmprun"
      local exporter = require "icmprun.exporter"
      local e
      local new_prober = icmprun.prober
      icmprun.prober = function(hooks)
        hooks.on_send = function(id)
          if e.by_id[id].ip == "127.0.0.3" then error("sending: boom") end
        end
        return new_prober(hooks)
      end
      local lines = {}
      local function group(host, size)
        return { hosts = { host }, interval = 50, timeout = 50, family = 0, size = size,
          tos = 0, labels = {} }
      end
      e = assert(exporter.new{groups = {group("127.0.0.1", 56),
        group("127.0.0.2", 65510), group("127.0.0.3", 56)},
        log = function(line) lines[#lines + 1] = line end})
      assert(e:start())
      icmprun.sleep(600)
      print(e:render())
      e:stop()
      io.stderr:write(table.concat(lines, "\n"))
      os.exit(0)
    ]])
    assert.equal(0, r.code, r.stderr)
    local s = exporter.parse(r.stdout)
    local function labels(ip)
      return 'host="' .. ip .. '",ip="' .. ip .. '"'
    end
    local refused = labels("127.0.0.2")
    local sent = s["smokeping_requests_total{" .. refused .. "}"]
    assert.is_true(sent >= 5, "127.0.0.2 sent " .. tostring(sent))
    assert.equal(sent, s["smokeping_send_errors_total{" .. refused .. "}"])
    assert.equal(sent, s["icmprun_results_total{" .. refused .. ',status="error"}'])
    -- The raising callback costs its own call: the target is still probed
    -- and counted, and the error is logged with where it came from.
    for _, ip in ipairs({ "127.0.0.1", "127.0.0.3" }) do
      assert.is_true(s["icmprun_results_total{" .. labels(ip) .. ',status="reply"}'] >= 5, ip)
      assert.equal(0, s["smokeping_send_errors_total{" .. labels(ip) .. "}"])
    end
    assert.matches("error in a prober's callback: .*sending: boom", r.stderr)
    -- Logged once per target when its sends start to fail, not per probe.
    local _, warnings = r.stderr:gsub("a probe could not be sent", "")
    assert.equal(1, warnings)
  end)

  it("logs an error in a handler or a callback and serves the next client", function()
    -- A handler that raises, and a response whose on_done raises (called
    -- from libmicrohttpd's completion, in C): each is logged, neither ends
    -- the process, and the next client is served.
    local r = cli.icmprun_script([[
      local icmprun = require "icmprun"
      local http = require "icmprun.exporter.http"
      local uv = require "luv"
      local errors = {}
      local server = assert(http.listen("127.0.0.1:0", function(req, respond)
        if req.path == "/boom" then error("in the handler") end
        if req.path == "/done" then
          return respond(200, "text/plain", "done\n",
            { on_done = function() error("in a callback") end })
        end
        respond(200, "text/plain", "fine\n")
      end, { on_error = function(err) errors[#errors + 1] = err end }))
      local function get(path)
        local done, out = false, {}
        local tcp = uv.new_tcp()
        tcp:connect("127.0.0.1", server.port, function()
          tcp:read_start(function(err, data)
            if err or not data then tcp:close(); done = true; return end
            out[#out + 1] = data
          end)
          tcp:write("GET " .. path .. " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        end)
        while not done do icmprun.sleep(5) end
        return (table.concat(out):match("^HTTP/1.1 (%d+)"))
      end
      local results = { get("/boom"), get("/done"), get("/fine") }
      icmprun.sleep(50)
      server.close()
      print(results[1], results[2], results[3], #errors)
      io.stderr:write(table.concat(errors, "\n"))
    ]])
    assert.equal(0, r.code, r.stderr)
    assert.equal("500\t200\t200\t2\n", r.stdout)
    assert.matches("in the handler", r.stderr, 1, true)
    assert.matches("in a callback", r.stderr, 1, true)
  end)

  describe("logs", function()
    it("are logfmt or JSON records as smokeping_prober's", function()
      local line = log.format("logfmt", "info", 'probing 3 "targets"', { "n", 3 },
        "2026-11-28T23:10:00.123Z")
      assert.equal('ts=2026-11-28T23:10:00.123Z caller=exporter level=info '
        .. 'msg="probing 3 \\"targets\\"" n=3', line)
      line = log.format("json", "warn", "a\nb", { "ip", "::1" }, "2026-11-28T23:10:00.123Z")
      assert.equal('{"ts":"2026-11-28T23:10:00.123Z","caller":"exporter","level":"warn",'
        .. '"msg":"a\\u000ab","ip":"::1"}', line)
    end)

    it("leave out records below the level", function()
      local lines = {}
      local logger = assert(log.new({ level = "warn", write = function(l)
        lines[#lines + 1] = l
      end }))
      logger.debug("d")
      logger.info("i")
      logger.warn("w")
      logger.error("e")
      assert.equal(2, #lines)
      assert.matches("level=warn msg=w$", lines[1])
      assert.matches("level=error msg=e$", lines[2])
      assert.is_nil(log.new({ level = "loud" }))
      assert.is_nil(log.new({ format = "xml" }))
    end)

    it("are chosen with --log.level and --log.format", function()
      local server = exporter.start({ "--log.format", "json", "--log.level", "debug",
        "127.0.0.1" })
      assert.is_nil(server.failed, server.output)
      local output = server:output()
      server:stop()
      local first = output:match("[^\n]+")
      assert.matches('^{"ts":"%d+%-%d+%-%d+T[%d:.]+Z","caller":"exporter","level":"info",'
        .. '"msg":"probing 1 target%(s%)"}$', first)
      local r = cli.icmprun_run({ "exporter", "--log.level", "loud", "127.0.0.1" })
      assert.equal(2, r.code)
      assert.matches("--log.level", r.stderr, 1, true)
    end)
  end)
end)
