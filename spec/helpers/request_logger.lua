-- SPDX-License-Identifier: MIT

--- A tiny HTTP server on loopback, run by stock lua5.4 with luv, that a
-- browser uses as its proxy: every request it gets (the page itself, and
-- anything the page might fetch from anywhere) is logged, one request
-- line per line; GET /NAME serves DIR/NAME, and a request for another
-- port of 127.0.0.1 (a server under test) is passed on to it.
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
  local buffer, handled = "", false
  client:read_start(function(err, chunk)
    if err or not chunk then
      if not client:is_closing() then client:close() end
      return
    end
    if handled then return end
    buffer = buffer .. chunk
    local head = buffer:match("^(.-)\r\n\r\n")
    if not head then return end
    handled = true
    local method, target = head:match("^(%S+) (%S+)")
    log:write(method or "?", " ", target or "?", "\n")
    local own = server:getsockname().port
    local port, rest = (target or ""):match("^http://127%.0%.0%.1:(%d+)(/.*)$")
    if port and tonumber(port) ~= own then
      -- Pass the request on, as HTTP/1.0 so the answer ends with the connection.
      local upstream = uv.new_tcp()
      upstream:connect("127.0.0.1", tonumber(port), function(cerr)
        if cerr then
          client:write("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", function()
            client:close()
          end)
          upstream:close()
          return
        end
        upstream:write(string.format("%s %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n\r\n", method,
          rest, port))
        upstream:read_start(function(rerr, data)
          if rerr or not data then
            upstream:close()
            client:shutdown(function() client:close() end)
          else
            client:write(data)
          end
        end)
      end)
      return
    end
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
