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
  local p = assert(io.popen(string.format("( unset LD_PRELOAD; exec %s ) >%s 2>&1 & echo $!",
    cli.icmprun_cmdline(argv), cli.quote(out))))
  local pid = tonumber(p:read("l"))
  p:close()
  local self = setmetatable({ pid = pid, log = out }, Server)
  for _ = 1, 200 do
    local port = slurp(out):match("serving http://127%.0%.0%.1:(%d+)/")
    if port then
      self.port = tonumber(port)
      self.url = "http://127.0.0.1:" .. port
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

--- Runs `promtool check metrics` on the text; returns the result.
function M.promtool_check(text)
  return cli.sh("promtool check metrics", text)
end

return M
