-- SPDX-License-Identifier: MIT

--- A small HTTP/1.1 server on luv, for the exporter's endpoints.
--
-- It runs on icmprun's own loop (`require "luv"` inside icmprun is bound to
-- it), so serving a scrape and probing share one thread and no locks. It
-- reads one request per connection (request line, headers, and a body of
-- `Content-Length` bytes), hands it to the handler, writes the response with
-- `Connection: close` and closes. That is all Prometheus and curl need; it
-- is not a general web server.
--
--     local server = http.listen("127.0.0.1:9374", function(req, respond)
--       respond(200, "text/plain", "hello\n")  -- now or later
--     end)
--
-- Every client is a stranger: a request that is not HTTP/1.x gets 400 (a
-- `Content-Length` that is not a plain decimal number too, and 413 past
-- 1 MiB of body), a head past 16 KiB gets 431 however it arrives, a request
-- that does not arrive whole within 10 s is dropped, and so is a client that
-- has not taken its response within 60 s. Bytes after a complete request
-- are not read: one request, one response. Lines may end in CRLF or a bare
-- LF, as RFC 9112 allows. Every luv callback runs under `pcall`: an error
-- in one is logged and closes that connection only, never the process.
-- @module icmprun.exporter.http
local uv = require "luv"

local M = {}

local ipairs, pcall, tonumber, tostring, type = ipairs, pcall, tonumber, tostring, type
local string_format = string.format
local table_concat = table.concat

--- Limits of every server (a server's `opts` may override each).
M.LIMITS = {
  max_head = 16 * 1024,    -- request line and headers, bytes
  max_body = 1024 * 1024,  -- bytes
  max_headers = 100,       -- header lines
  request_ms = 10000,      -- to send a whole request
  response_ms = 60000,     -- to take a whole response
  max_connections = 16384, -- open at once; more are closed on accept
}

local REASONS = {
  [200] = "OK", [400] = "Bad Request", [401] = "Unauthorized", [404] = "Not Found",
  [405] = "Method Not Allowed", [413] = "Content Too Large",
  [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
  [501] = "Not Implemented", [503] = "Service Unavailable",
  [505] = "HTTP Version Not Supported",
}

-- A token of RFC 9110 (method and header names).
local TOKEN = "^[%w!#%$%%&'%*%+%-%.%^_`|~]+$"

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

-- Parses the request head (lines without their ends). Returns the request,
-- or nil, status, reason.
local function parse_head(lines, limits)
  local method, target, minor = lines[1]:match("^(%S+) (%S+) HTTP/1%.(%d)$")
  if not method then
    if lines[1]:match("^%S+ %S+ HTTP/%d+%.%d+$") then
      return nil, 505, "only HTTP/1.0 and HTTP/1.1 are served"
    end
    return nil, 400, "not an HTTP/1.x request line"
  end
  if not method:match(TOKEN) then
    return nil, 400, "the method is not a token"
  end
  if #lines - 1 > limits.max_headers then
    return nil, 431, "more than " .. limits.max_headers .. " header lines"
  end
  local headers = {}
  for i = 2, #lines do
    local name, value = lines[i]:match("^([^:]+):[ \t]*(.-)[ \t]*$")
    if not name or not name:match(TOKEN) then
      return nil, 400, "malformed header line " .. i
    end
    name = name:lower()
    if value:find("[%z\1-\8\10-\31\127]") then
      return nil, 400, "control characters in header " .. name
    end
    if headers[name] and name == "content-length" and headers[name] ~= value then
      return nil, 400, "two different Content-Length headers"
    end
    headers[name] = headers[name] and name ~= "content-length"
      and headers[name] .. ", " .. value or value
  end
  -- An absolute target (as proxies send) keeps only its path and query.
  local path_and_query = target:match("^[hH][tT][tT][pP][sS]?://[^/]*(/.*)$") or target
  if path_and_query:sub(1, 1) ~= "/" then
    return nil, 400, "the target is not a path"
  end
  local path, query = path_and_query:match("^([^?#]*)%??([^#]*)")
  return { method = method, target = target, path = M.unescape(path), query = query,
    version = "1." .. minor, headers = headers }
end

-- The length the request's body must have: an integer, or nil, status,
-- reason. Only plain decimal digits are a length: "1.5", "1e-300", "-1",
-- "+5" or " 5 5" are refused, never converted.
local function body_length(headers, limits)
  if headers["transfer-encoding"] then
    return nil, 501, "Transfer-Encoding is not supported; send Content-Length"
  end
  local text = headers["content-length"]
  if text == nil then
    return 0
  end
  if not text:match("^%d+$") or #text > 15 then
    return nil, 400, "Content-Length is not a decimal number of bytes"
  end
  local length = tonumber(text)
  if length > limits.max_body then
    return nil, 413, "the body is over " .. limits.max_body .. " bytes"
  end
  return length
end

-- The status line and headers of a response whose body is `length` bytes.
local function response_head(status, content_type, length, extra)
  local out = {
    "HTTP/1.1 ", status, " ", REASONS[status] or "Status", "\r\n",
    "Content-Type: ", content_type, "\r\n",
    "Content-Length: ", length, "\r\n",
  }
  for name, value in pairs(extra or {}) do
    out[#out + 1] = name .. ": " .. value .. "\r\n"
  end
  out[#out + 1] = "Connection: close\r\n\r\n"
  return table_concat(out)
end

-- The length of a body given as a string or a list of strings.
local function length_of(body)
  if type(body) == "string" then
    return #body
  end
  local length = 0
  for i = 1, #body do
    length = length + #body[i]
  end
  return length
end

--- Wraps a function that luv will call, so that an error in it goes to
-- `on_error(err)` (and then `cleanup()`, if given) instead of ending the
-- process: luv exits on an error in a callback.
-- @tparam function fn
-- @tparam function on_error
-- @tparam[opt] function cleanup
-- @treturn function
function M.protect(fn, on_error, cleanup)
  return function(...)
    local ok, err = xpcall(fn, debug.traceback, ...)
    if not ok then
      pcall(on_error, err)
      if cleanup then
        pcall(cleanup)
      end
    end
  end
end

-- Writes a body (a string, or a list of strings) and calls done(err). A
-- list is written a slice of about SLICE_BYTES at a time, each slice's
-- pieces as they are (one iovec a string, never joined), the next one from
-- the callback of the one before: libuv writes as much as the socket takes
-- at once, so one write of a 28 MB scrape to a fast reader would hold the
-- loop, and every probe due meanwhile, for as long as the copy takes. The
-- pieces are shared, never copied: clients given the same render share it.
local SLICE_BYTES = 256 * 1024
local function write_slices(client, body, protect, done)
  if type(body) == "string" then
    body = { body }
  end
  local next_piece = 1
  local write_next
  write_next = protect(function(err)
    if err or next_piece > #body then
      done(err)
      return
    end
    local first, bytes = next_piece, 0
    while next_piece <= #body and bytes < SLICE_BYTES do
      bytes = bytes + #body[next_piece]
      next_piece = next_piece + 1
    end
    local ok, write_err = client:write(table.move(body, first, next_piece - 1, 1, {}),
      write_next)
    if not ok then
      done(write_err) -- Failed at once (a closed socket): no callback comes.
    end
  end)
  write_next()
end

-- Finds the end of the head in the received chunks: returns the head's
-- lines and the bytes after it, or nil while it has not all come.
local function split_head(text)
  local head_end, body_start = text:find("\r?\n\r?\n")
  if not head_end then
    return nil
  end
  local lines = {}
  for line in text:sub(1, head_end - 1):gmatch("([^\n]*)\n?") do
    lines[#lines + 1] = line:gsub("\r$", "")
  end
  -- gmatch gives one empty match at the very end.
  if lines[#lines] == "" and #lines > 1 then
    lines[#lines] = nil
  end
  return lines, text:sub(body_start + 1), head_end
end

-- One connection: reads a request, calls the handler, writes, closes.
local function serve(server, client)
  local limits, on_error = server.limits, server.on_error
  local received, request, responded, closed = {}, nil, false, false
  local received_bytes, body_bytes = 0, 0
  local timer = uv.new_timer()
  local on_closed = {}

  local function close()
    if closed then
      return
    end
    closed = true
    server.connections = server.connections - 1
    timer:close()
    if not client:is_closing() then
      client:close()
    end
    for _, fn in ipairs(on_closed) do
      pcall(fn)
    end
  end

  local function protect(fn)
    return M.protect(fn, on_error, close)
  end

  -- Sends the response; `opts` may have `headers` (name -> value) and
  -- `on_done` (called once, when the response was written or the
  -- connection closed). For HEAD the body is counted, not sent.
  local function respond(status, content_type, body, opts)
    if responded or closed then
      if opts and opts.on_done then
        pcall(opts.on_done)
      end
      return
    end
    responded = true
    opts = opts or {}
    if opts.on_done then
      on_closed[#on_closed + 1] = opts.on_done
    end
    body = body or ""
    client:read_stop()
    -- A client that stops reading is dropped after response_ms.
    timer:stop()
    timer:start(limits.response_ms, 0, protect(close))
    local head = response_head(status, content_type, length_of(body), opts.headers)
    if request and request.method == "HEAD" then
      body = ""
    end
    write_slices(client, { head }, protect, function(err)
      if err then
        close()
        return
      end
      write_slices(client, body, protect, function(body_err)
        if body_err or not client:shutdown(protect(close)) then
          close()
        end
      end)
    end)
  end

  local function refuse(status, reason)
    respond(status, "text/plain", reason .. "\n")
  end

  local function dispatch()
    client:read_stop() -- One request a connection: what follows is not read.
    local ok, err = xpcall(server.handler, debug.traceback, request, respond)
    if not ok then
      on_error(err)
      respond(500, "text/plain", "internal error\n")
    end
  end

  -- The end of the head is looked for in each read and the three bytes
  -- before it only, so a head that trickles in a byte at a time costs a
  -- byte's work per read, not a copy of all of it; the limit is checked at
  -- every read, whether the head came in one piece or many.
  local tail = ""
  local function on_head_data(data)
    local window = tail .. data
    local _, found = window:find("\r?\n\r?\n")
    local head_end = found and received_bytes - #data - #tail + found
    if (head_end or received_bytes) > limits.max_head then
      return refuse(431, "request head over " .. limits.max_head .. " bytes")
    end
    if not found then
      tail = window:sub(-3)
      return
    end
    local text = table_concat(received)
    local lines, rest = split_head(text)
    local req, status, reason = parse_head(lines, limits)
    if not req then
      return refuse(status, reason)
    end
    local length
    length, status, reason = body_length(req.headers, limits)
    if not length then
      return refuse(status, reason)
    end
    request, received, body_bytes = req, { rest }, #rest
    request.length = length
    request.client = server.peer_of(client)
    request.abort = close
  end

  local function on_data(data)
    received[#received + 1] = data
    received_bytes = received_bytes + #data
    if not request then
      on_head_data(data)
      if not request then
        return
      end
    else
      body_bytes = body_bytes + #data
    end
    if body_bytes >= request.length then
      request.body = table_concat(received):sub(1, request.length)
      received = nil
      dispatch()
    end
  end

  timer:start(limits.request_ms, 0, protect(close))
  client:read_start(protect(function(err, data)
    if err or not data then
      close() -- A reset or the end before a whole request: nobody to answer.
    elseif not responded and not closed and (not request or received) then
      on_data(data)
    end
  end))
end

--- Listens and serves.
-- @tparam string address "host:port"; port 0 picks a free one
-- @tparam function handler `handler(request, respond)`: `request` has
--   `method`, `path` (decoded), `query` (raw), `headers` (lower-case
--   names), `body`, `client` (peer address) and `abort()` (closes the
--   connection); `respond(status, content_type, body, opts)` may be called
--   now or later, once; `body` is a string or a list of strings, shared and
--   never modified; `opts.headers` adds headers, `opts.on_done` is called
--   once the response is written or the connection is gone
-- @tparam[opt] table opts `on_error(err)` (an error in the handler or in a
--   callback; default: to stderr), `fd` (a socket already bound, to listen
--   on instead of `address`) and any of `M.LIMITS`
-- @treturn[1] table the server: `host`, `port`, `connections` (open now),
--   `close()`
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
  local host, port
  if opts.fd then
    host, port = "", 0 -- A socket already listening: systemd's socket activation.
  else
    host, port = M.parse_address(address)
    if not host then
      return nil, port
    end
  end
  local server = {
    handler = handler,
    limits = limits,
    connections = 0,
    on_error = opts.on_error or function(err)
      io.stderr:write("icmprun http: ", tostring(err), "\n")
    end,
    peer_of = function(client)
      local peer = client:getpeername()
      return peer and peer.ip
    end,
  }
  local tcp = uv.new_tcp()
  local ok, err
  if opts.fd then
    ok, err = tcp:open(opts.fd)
  else
    ok, err = tcp:bind(host, port)
  end
  if ok then
    ok, err = tcp:listen(1024, M.protect(function(listen_err)
      if listen_err then
        return
      end
      local client = uv.new_tcp()
      if not tcp:accept(client) then
        client:close()
        return
      end
      if server.connections >= limits.max_connections then
        client:close() -- Accepted only to be closed: the backlog drains.
        return
      end
      server.connections = server.connections + 1
      serve(server, client)
    end, function(e)
      server.on_error(e)
    end))
  end
  if not ok then
    tcp:close()
    return nil, string_format("cannot listen on %s: %s", address, tostring(err))
  end
  local bound = tcp:getsockname() or {}
  server.host, server.port = bound.ip or "?", bound.port or 0
  server.close = function()
    if not tcp:is_closing() then
      tcp:close()
    end
  end
  return server
end

return M
