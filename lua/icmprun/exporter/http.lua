-- SPDX-License-Identifier: MIT

--- The exporter's HTTP server: libmicrohttpd, with its handlers on icmprun's
-- own loop.
--
-- Every listener is served by libmicrohttpd (`icmprun.httpd`,
-- src/lua_httpd.c) in its external epoll mode, on a thread of its own that
-- reads the requests and writes the bodies; the handlers run on the loop
-- that also sends the probes, which writes no body. MHD parses the requests,
-- keeps connections alive (HTTP/1.1 keep-alive and pipelining), writes HEAD
-- answers without their body, and brings TLS. This module adds what the
-- exporter asks of every request on top of it:
--
--     local server = http.listen("127.0.0.1:9374", function(req, respond)
--       respond(200, "text/plain", "hello\n")  -- now or later
--     end)
--
-- Every client is a stranger: a request head over 16 KiB gets 431 however
-- it arrives (MHD's own limit is its 64 KiB connection memory), a body
-- over 1 MiB 413, a `Content-Length` that is not plain digits 400 (MHD's
-- own check), a connection idle for 10 s is closed, and at most 16,384 are
-- open at once. An error in a handler is logged and answered 500; nothing a
-- client sends reaches the process. Some malformed requests MHD closes
-- without an answer (see the README).
-- @module icmprun.exporter.http
local M = {}

local ipairs, pairs, tonumber, tostring, type = ipairs, pairs, tonumber, tostring, type
local string_format = string.format
local table_concat, table_sort = table.concat, table.sort

--- Limits of every server (a server's `opts` may override each).
M.LIMITS = {
  max_head = 16 * 1024,    -- request line and headers, bytes
  max_body = 1024 * 1024,  -- bytes
  max_headers = 100,       -- header lines
  timeout = 10,            -- seconds a connection may stay idle
  max_connections = 16384, -- open at once; more are closed on accept
}

--- Splits "host:port", "[v6]:port" or ":port" (every IPv4 interface).
-- @tparam string text
-- @treturn[1] string host
-- @treturn[1] integer port
-- @treturn[2] nil, string what is wrong
function M.parse_address(text)
  local host, port = text:match("^%[([^%]]+)%]:(%d+)$")
  if not host then
    host, port = text:match("^([^:]*):(%d+)$")
  end
  port = tonumber(port)
  if not host or port > 65535 then
    return nil, "'" .. text .. "' is not HOST:PORT (such as 127.0.0.1:9374 or [::1]:9374)"
  end
  return host == "" and "0.0.0.0" or host, port
end

--- Decodes %XX escapes (and `+` as a space, in a query).
-- @tparam string text
-- @tparam boolean plus_is_space
-- @treturn string
function M.unescape(text, plus_is_space)
  if plus_is_space then
    text = text:gsub("%+", " ")
  end
  return (text:gsub("%%(%x%x)", function(hex)
    return string.char(tonumber(hex, 16))
  end))
end

--- Parses a query string into name -> value (the first of repeated names).
-- @tparam string query
-- @treturn table
function M.parse_query(query)
  local out = {}
  for pair in (query or ""):gmatch("[^&;]+") do
    local name, value = pair:match("^([^=]*)=?(.*)$")
    name = M.unescape(name, true)
    if out[name] == nil then
      out[name] = M.unescape(value, true)
    end
  end
  return out
end

-- A query string of decoded arguments (name -> value), in name order: what
-- handlers that read `req.query` get, as MHD hands over the arguments only.
local function query_of(args)
  local names = {}
  for name in pairs(args) do
    names[#names + 1] = name
  end
  table_sort(names)
  local function escape(s)
    return (s:gsub("[^%w%-%._~]", function(c)
      return string_format("%%%02X", c:byte())
    end))
  end
  for i, name in ipairs(names) do
    names[i] = escape(name) .. "=" .. escape(args[name])
  end
  return table_concat(names, "&")
end

-- A token of RFC 9110 (header names).
local TOKEN = "^[%w!#%$%%&'%*%+%-%.%^_`|~]+$"

-- What libmicrohttpd lets through but a request must not have: nil, or a
-- status and the reason. MHD parses leniently (RFC 9112 allows a server to
-- take some malformed lines its own way), so the headers it hands over are
-- checked as a strict server would: names are tokens (no space before the
-- colon, no empty name), values carry no control characters but tab, a
-- repeated Content-Length says one number, at most `max_headers` lines.
local function refusal(req, limits)
  if req.header_lines > limits.max_headers then
    return 431, "more than " .. limits.max_headers .. " header lines"
  end
  for name, value in pairs(req.headers) do
    if not name:match(TOKEN) then
      return 400, "malformed header name"
    end
    if value:find("[%z\1-\8\10-\31\127]") then
      return 400, "control characters in header " .. name
    end
  end
  local length = req.headers["content-length"]
  if length then
    local first = length:match("^(%d+)")
    for part in (length .. ","):gmatch("%s*([^,]*),") do
      if part ~= first then
        return 400, "two different Content-Length headers"
      end
    end
  end
  return nil
end

-- The bytes of a request head as it came: request line and header lines.
local function head_size(req)
  local size = #req.method + #req.path + 16
  for name, value in pairs(req.headers) do
    size = size + #name + #value + 4
  end
  for name, value in pairs(req.args) do
    size = size + #name + #value + 2
  end
  return size
end

--- Listens and serves.
-- @tparam string address "host:port"; port 0 picks a free one
-- @tparam function handler `handler(request, respond)`: `request` has
--   `method`, `path` (decoded), `args` (the decoded query), `query` (the
--   same as a string), `headers` (lower-case names), `body`, `client` (peer
--   address) and `abort()` (ends the connection if it has not taken its
--   answer); `respond(status, content_type, body, opts)` may be called now
--   or later, once; `body` is a string, a text of `icmprun.render`, or a
--   list of them, shared and never modified (a text closed meanwhile is
--   freed once the response is); `opts.headers` adds headers, `opts.on_done` is called
--   once the response is written or the connection is gone
-- @tparam[opt] table opts `on_error(err)` (an error in the handler; default:
--   to stderr), `fd` (a socket already listening, to serve instead of
--   `address`), `tls` ({cert = PEM, key = PEM}: HTTPS), and any of
--   `M.LIMITS`
-- @treturn[1] table the server: `host`, `port`, `tls`, `connections()`
--   (open now), `close()`
-- @treturn[2] nil, string why it cannot listen
function M.listen(address, handler, opts)
  if type(opts) == "function" then
    opts = { on_error = opts }
  end
  opts = opts or {}
  local limits = {}
  for name, default in pairs(M.LIMITS) do
    limits[name] = opts[name] or default
  end
  require "luv" -- The daemon is watched on luv's loop, icmprun's own.
  local httpd = require "icmprun.httpd"
  local host, port
  if not opts.fd then
    host, port = M.parse_address(address)
    if not host then
      return nil, port
    end
  end
  local on_error = opts.on_error or function(err)
    io.stderr:write("icmprun http: ", tostring(err), "\n")
  end
  local function serve(req, respond)
    if head_size(req) > limits.max_head then
      return respond(431, "text/plain", "request head over " .. limits.max_head .. " bytes\n")
    end
    local status, reason = refusal(req, limits)
    if status then
      return respond(status, "text/plain", reason .. "\n")
    end
    req.query = query_of(req.args)
    return handler(req, respond)
  end
  local tls = opts.tls
  local daemon, bound, bound_host = httpd.listen({ host = host, port = port, fd = opts.fd,
    cert = tls and tls.cert, key = tls and tls.key, handler = serve, on_error = on_error,
    max_body = limits.max_body, timeout = limits.timeout,
    connection_limit = limits.max_connections })
  if not daemon then
    return nil, "cannot listen on " .. address .. ": " .. tostring(bound)
  end
  return { host = bound_host ~= "" and bound_host or host, port = bound, tls = tls ~= nil,
    connections = function() return daemon:connections() end,
    close = function() daemon:close() end }
end

return M
