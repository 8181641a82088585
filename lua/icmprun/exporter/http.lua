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
-- A request that is not HTTP, or whose head passes 16 KiB or body 1 MiB,
-- gets 400 or 413; one that does not arrive within 10 s is dropped, and so is
-- a client that has not taken its response within 60 s.
-- @module icmprun.exporter.http
local uv = require "luv"

local M = {}

local MAX_HEAD = 16 * 1024
local MAX_BODY = 1024 * 1024
local IDLE_MS = 10000  -- to send a whole request
local WRITE_MS = 60000 -- to take a whole response

local REASONS = {
  [200] = "OK", [400] = "Bad Request", [404] = "Not Found", [405] = "Method Not Allowed",
  [413] = "Content Too Large", [500] = "Internal Server Error", [503] = "Service Unavailable",
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

-- Parses the request head. Returns the request or nil, status.
local function parse_head(head)
  local method, target, version = head:match("^(%u+) (%S+) HTTP/(%d%.%d)\r\n")
  if not method then
    return nil, 400
  end
  local headers = {}
  for name, value in head:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
    headers[name:lower()] = value
  end
  local path, query = target:match("^([^?]*)%??(.*)$")
  return { method = method, target = target, path = path, query = query,
    version = version, headers = headers }
end

-- The status line and headers of a response whose body is `length` bytes.
local function response_head(status, content_type, length)
  return table.concat({
    "HTTP/1.1 ", status, " ", REASONS[status] or "Status", "\r\n",
    "Content-Type: ", content_type, "\r\n",
    "Content-Length: ", length, "\r\n",
    "Connection: close\r\n\r\n" })
end

-- The length of a body given as a string or a list of strings.
local function body_length(body)
  if type(body) == "string" then
    return #body
  end
  local length = 0
  for i = 1, #body do
    length = length + #body[i]
  end
  return length
end

-- Writes a body (a string, or a list of strings) and calls done(err). A
-- list is written a slice of about SLICE_BYTES at a time, each slice's
-- pieces as they are (one iovec a string, never joined), the next one from
-- the callback of the one before: libuv writes as much as the socket takes
-- at once, so one write of a 28 MB scrape to a fast reader would hold the
-- loop, and every probe due meanwhile, for as long as the copy takes.
local SLICE_BYTES = 256 * 1024
local function write_slices(client, body, done)
  if type(body) == "string" then
    client:write(body, done)
    return
  end
  local next_piece = 1
  local function write_next(err)
    if err or next_piece > #body then
      done(err)
      return
    end
    local first, bytes = next_piece, 0
    while next_piece <= #body and bytes < SLICE_BYTES do
      bytes = bytes + #body[next_piece]
      next_piece = next_piece + 1
    end
    client:write(table.move(body, first, next_piece - 1, 1, {}), write_next)
  end
  write_next()
end

-- One connection: reads a request, calls the handler, writes, closes.
local function serve(client, handler, on_error)
  local buffer, request, responded, closed = "", nil, false, false
  local timer = uv.new_timer()

  local function close()
    if closed then
      return
    end
    closed = true
    timer:close()
    if not client:is_closing() then
      client:close()
    end
  end

  local function respond(status, content_type, body)
    if responded or closed then
      return
    end
    responded = true
    body = body or ""
    client:read_stop()
    -- A client that stops reading is dropped after WRITE_MS.
    timer:stop()
    timer:start(WRITE_MS, 0, close)
    client:write(response_head(status, content_type, body_length(body)))
    write_slices(client, body, function(err)
      if err or not client:shutdown(close) then
        close()
      end
    end)
  end

  local function dispatch()
    local ok, err = pcall(handler, request, respond)
    if not ok then
      on_error(err)
      respond(500, "text/plain", "internal error\n")
    end
  end

  timer:start(IDLE_MS, 0, close)
  client:read_start(function(err, data)
    if err or not data then
      close() -- A reset or the end before a whole request: nobody to answer.
      return
    end
    if responded then
      return
    end
    buffer = buffer .. data
    if not request then
      local head_end = buffer:find("\r\n\r\n", 1, true)
      if not head_end then
        if #buffer > MAX_HEAD then
          respond(400, "text/plain", "request head too large\n")
        end
        return
      end
      local status
      request, status = parse_head(buffer:sub(1, head_end + 1))
      if not request then
        respond(status, "text/plain", "malformed request\n")
        return
      end
      buffer = buffer:sub(head_end + 4)
      local length = tonumber(request.headers["content-length"] or "0")
      if not length or length < 0 or length > MAX_BODY then
        respond(413, "text/plain", "body too large\n")
        return
      end
      request.length = length
    end
    if #buffer >= request.length then
      request.body = buffer:sub(1, request.length)
      dispatch()
    end
  end)
end

--- Listens and serves.
-- @tparam string address "host:port"; port 0 picks a free one
-- @tparam function handler `handler(request, respond)`: `request` has
--   `method`, `path`, `query`, `headers` (lower-case names) and `body`;
--   `respond(status, content_type, body)` may be called now or later, once;
--   `body` is a string or a list of strings
-- @tparam[opt] function on_error called with the error when the handler
--   raises (the client gets 500); default: write it to stderr
-- @treturn[1] table the server: `host`, `port`, `close()`
-- @treturn[2] nil, string why it cannot listen
function M.listen(address, handler, on_error)
  on_error = on_error or function(err)
    io.stderr:write("icmprun http: ", tostring(err), "\n")
  end
  local host, port = M.parse_address(address)
  if not host then
    return nil, port
  end
  local tcp = uv.new_tcp()
  local ok, err = tcp:bind(host, port)
  if ok then
    ok, err = tcp:listen(128, function(listen_err)
      if listen_err then
        return
      end
      local client = uv.new_tcp()
      if tcp:accept(client) then
        serve(client, handler, on_error)
      else
        client:close()
      end
    end)
  end
  if not ok then
    tcp:close()
    return nil, "cannot listen on " .. address .. ": " .. tostring(err)
  end
  local bound = tcp:getsockname()
  return {
    host = bound.ip,
    port = bound.port,
    close = function()
      if not tcp:is_closing() then
        tcp:close()
      end
    end,
  }
end

return M
