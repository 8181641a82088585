-- SPDX-License-Identifier: MIT

--- Black-box helper for `icmprun exporter`: starts it in the background on a
-- free port, fetches from it with curl, signals it, parses its metrics.
-- @module exporter
local cli = require "cli"

local M = {}

local function sleep(seconds)
  os.execute("sleep " .. seconds)
end
M.sleep = sleep

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then
    return ""
  end
  local data = f:read("a")
  f:close()
  return data
end

local Server = {}
Server.__index = Server

--- Starts `icmprun exporter --listen 127.0.0.1:0 ARGS...` and waits (up to
-- 10 s) until it says where it serves.
-- @tparam {string,...} args
-- @treturn Server with `pid`, `port`, `url`; or, if it did not start, a
--   table with `failed = true`, `code` and `output`
function M.start(args)
  local argv = { "exporter", "--listen", "127.0.0.1:0" }
  for _, a in ipairs(args) do
    argv[#argv + 1] = a
  end
  local out = os.tmpname()
  local p = assert(io.popen(string.format("( unset LD_PRELOAD ASAN_OPTIONS; exec %s ) >%s 2>&1 & echo $!",
    cli.icmprun_cmdline(argv), cli.quote(out))))
  local pid = tonumber(p:read("l"))
  p:close()
  local self = setmetatable({ pid = pid, log = out }, Server)
  for _ = 1, 200 do
    local scheme, port = slurp(out):match("serving (https?)://127%.0%.0%.1:(%d+)/")
    if port then
      self.port = tonumber(port)
      self.url = scheme .. "://127.0.0.1:" .. port
      return self
    end
    if not self:alive() then
      break
    end
    sleep(0.05)
  end
  self:stop()
  return { failed = true, output = slurp(out) }
end

--- Whether the process still runs.
function Server:alive()
  return os.execute("kill -0 " .. self.pid .. " 2>/dev/null") == true
end

--- Everything it has written to stdout and stderr so far.
function Server:output()
  return slurp(self.log)
end

--- An HTTP request; returns the status code and the body.
-- @tparam string path
-- @tparam[opt="GET"] string method
function Server:request(path, method)
  local r = cli.sh(string.format("curl -s -X %s -w '\\n%%{http_code}' %s", method or "GET",
    cli.quote(self.url .. path)))
  local body, code = r.stdout:match("^(.*)\n(%d+)$")
  return tonumber(code), body
end

--- The metrics now, as text and parsed (see `parse`).
function Server:scrape()
  local code, body = self:request("/metrics")
  assert(code == 200, "scrape failed with " .. tostring(code))
  return M.parse(body), body
end

--- Sends a signal ("HUP", "TERM", ...).
function Server:signal(name)
  os.execute("kill -" .. name .. " " .. self.pid)
end

--- Stops it (TERM, then KILL) and removes its log.
function Server:stop()
  if self:alive() then
    self:signal("TERM")
    for _ = 1, 100 do
      if not self:alive() then
        break
      end
      sleep(0.05)
    end
    if self:alive() then
      self:signal("KILL")
    end
  end
  os.remove(self.log)
end

--- Parses Prometheus text: `name{labels}` as written -> value, and
-- `families[name] = type` from the TYPE lines.
-- @tparam string text
-- @treturn table samples, with a `families` field
function M.parse(text)
  local samples, families = {}, {}
  for line in text:gmatch("[^\n]+") do
    local family, kind = line:match("^# TYPE (%S+) (%S+)$")
    if family then
      families[family] = kind
    elseif not line:match("^#") then
      local series, value = line:match("^(.-) (%S+)$")
      samples[series] = tonumber(value) or value
    end
  end
  samples.families = families
  return samples
end

-- A client in a process of its own (stock lua5.4 with luv on a loop of
-- its own): runs the connections of `cases` and writes each one's
-- outcome. A case is {send = {chunk, ...}, gap = ms between chunks,
-- read = false to never read, hold = ms to stay connected after sending,
-- start = ms after the start to connect}; its outcome is everything the
-- server sent until it closed (or until the case's `timeout`, default
-- 5000 ms: then with "\0TIMEOUT" appended), or "\0REFUSED".
local CLIENT = [=[
local uv = require "luv"
local port, cases, out_path = tonumber(arg[1]), dofile(arg[2]), arg[3]
local results = {}
for i, case in ipairs(cases) do
  local received = {}
  local tcp = uv.new_tcp()
  local finished = false
  local function finish(extra)
    if finished then return end
    finished = true
    results[i] = table.concat(received) .. (extra or "")
    if not tcp:is_closing() then tcp:close() end
  end
  local timer = uv.new_timer()
  timer:start(case.timeout or 5000, 0, function()
    timer:close()
    finish("\0TIMEOUT")
  end)
  local function connect()
    tcp:connect("127.0.0.1", port, function(err)
      if err then return finish("\0REFUSED") end
      if case.read ~= false then
        tcp:read_start(function(rerr, data)
          if rerr or not data then
            if not timer:is_closing() then timer:close() end
            return finish()
          end
          received[#received + 1] = data
        end)
      end
      local k = 0
      local function send_next()
        k = k + 1
        if finished or k > #case.send then return end
        tcp:write(case.send[k], function() end)
        if (case.gap or 0) > 0 then
          local t = uv.new_timer()
          t:start(case.gap, 0, function() t:close(); send_next() end)
        else
          send_next()
        end
      end
      send_next()
    end)
  end
  if (case.start or 0) > 0 then
    local t = uv.new_timer()
    t:start(case.start, 0, function() t:close(); connect() end)
  else
    connect()
  end
end
uv.run()
local f = assert(io.open(out_path, "w"))
f:write("return {")
for i = 1, #cases do f:write(string.format("%q,", results[i] or "")) end
f:write("}")
f:close()
]=]

-- Lua source of a value (strings, numbers, booleans and tables of them).
local function serialize(v)
  if type(v) == "table" then
    local out = {}
    for k, x in pairs(v) do
      out[#out + 1] = "[" .. serialize(k) .. "]=" .. serialize(x)
    end
    return "{" .. table.concat(out, ",") .. "}"
  end
  return string.format("%q", v)
end

--- Runs raw TCP connections to the server's port (see CLIENT above) at
-- once, and returns their outcomes in order.
-- @tparam {table,...} cases
-- @treturn {string,...}
function Server:raw(cases)
  local script = cli.temp_file(CLIENT, ".lua")
  local input = cli.temp_file("return " .. serialize(cases), ".lua")
  local out = os.tmpname()
  local r = cli.sh(string.format("%s %s %d %s %s", cli.quote(cli.lua), cli.quote(script),
    self.port, cli.quote(input), cli.quote(out)))
  os.remove(script)
  os.remove(input)
  assert(r.code == 0, "the client failed: " .. r.stderr)
  local results = dofile(out)
  os.remove(out)
  return results
end

--- The HTTP status of a raw response, or nil when there is none.
function M.status_of(response)
  return tonumber(response:match("^HTTP/1%.1 (%d%d%d) "))
end

--- The resident memory of the process now, in bytes (from /proc).
function Server:rss()
  return tonumber(slurp("/proc/" .. self.pid .. "/status"):match("VmRSS:%s*(%d+) kB")) * 1024
end

--- A config of `n` loopback targets 127.1.x.y at `interval`.
function M.many_targets(n, interval)
  local hosts = {}
  for i = 1, n do
    hosts[i] = string.format("127.1.%d.%d", i // 250, i % 250 + 1)
  end
  return string.format("targets:\n- hosts: [%s]\n  interval: %s\n",
    table.concat(hosts, ", "), interval or "1s")
end

--- Runs `promtool check metrics` on the text; returns the result.
function M.promtool_check(text)
  return cli.sh("promtool check metrics", text)
end

return M
