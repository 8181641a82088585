--- A tiny HTTP server on loopback, run by stock lua5.4 with luv, that a
-- browser uses as its proxy: every request it gets (the page itself, and
-- anything the page might fetch from anywhere) is logged, one request
-- line per line; GET /NAME serves DIR/NAME.
--
--     lua5.4 request_logger.lua DIR PORT_FILE LOG_FILE
-- @script request_logger
local uv = require "luv"

local dir, port_file, log_file = arg[1], arg[2], arg[3]
local log = assert(io.open(log_file, "w"))
log:setvbuf("line")

local server = uv.new_tcp()
assert(server:bind("127.0.0.1", 0))
assert(server:listen(64, function()
  local client = uv.new_tcp()
  server:accept(client)
  local buffer = ""
  client:read_start(function(err, chunk)
    if err or not chunk then
      client:close()
      return
    end
    buffer = buffer .. chunk
    local head = buffer:match("^(.-)\r\n\r\n")
    if not head then return end
    local method, target = head:match("^(%S+) (%S+)")
    log:write(method or "?", " ", target or "?", "\n")
    local path = (target or ""):gsub("^https?://[^/]*", "")
    local name = path:match("^/([%w%-_.]+)$")
    local f = method == "GET" and name and io.open(dir .. "/" .. name, "rb")
    local status, ctype, body = "404 Not Found", "text/plain", "not found\n"
    if f then
      body = f:read("a")
      f:close()
      status = "200 OK"
      ctype = name:match("%.png$") and "image/png" or "text/html; charset=utf-8"
    end
    client:write(string.format("HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
      .. "Connection: close\r\n\r\n", status, ctype, #body) .. body, function()
      client:close()
    end)
  end)
end))
local f = assert(io.open(port_file, "w"))
f:write(server:getsockname().port, "\n")
f:close()
uv.run()
