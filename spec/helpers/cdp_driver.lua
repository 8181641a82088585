-- SPDX-License-Identifier: MIT

--- Drives headless Chromium over the DevTools protocol (a pipe on fds 3
-- and 4, so no debugging port is opened): loads one page, records every
-- request any page target makes, every console message, uncaught
-- exception and log entry, evaluates scripts in the loaded page, and takes
-- a screenshot. Run by stock lua5.4 with luv and cjson:
--
--     lua5.4 cdp_driver.lua JOB.json RESULT.json
--
-- JOB: {chromium, flags = {...}, url, width, height, screenshot = path?,
-- scripts = {js...}, settle_ms}. RESULT: {loaded, requests = {{method,
-- url}}, console = {text}, values = {value of each script}, error?}.
-- @script cdp_driver
local cjson = require "cjson"
local uv = require "luv"

local job_path, result_path = arg[1], arg[2]
local job = cjson.decode(assert(io.open(job_path)):read("a"))

local result = { loaded = false, requests = {}, console = {}, values = {} }

local function finish(err)
  result.error = err
  local f = assert(io.open(result_path, "w"))
  f:write(cjson.encode(result))
  f:close()
end

-- The browser reads commands from its fd 3 and writes answers and events
-- to its fd 4, each message a JSON text ended by a NUL byte.
local to_browser, from_browser = uv.new_pipe(false), uv.new_pipe(false)
local stderr_pipe = uv.new_pipe(false)
local args = {}
for _, flag in ipairs(job.flags) do args[#args + 1] = flag end
args[#args + 1] = "--remote-debugging-pipe"
args[#args + 1] = "about:blank"
local child
child = uv.spawn(job.chromium, {
  args = args,
  stdio = { nil, nil, stderr_pipe, to_browser, from_browser },
}, function()
  child:close()
  for _, h in ipairs({ to_browser, from_browser, stderr_pipe }) do
    if not h:is_closing() then h:close() end
  end
end)
assert(child, "could not start " .. job.chromium)

-- Chromium's own log (stderr) is drained so that it never blocks; console
-- messages come through the protocol, not from there.
stderr_pipe:read_start(function() end)

local next_id, waiting, session = 0, {}, nil
local on_event -- set below

local function send(method, params, callback, session_id)
  next_id = next_id + 1
  waiting[next_id] = callback or function() end
  to_browser:write(cjson.encode({ id = next_id, method = method,
    params = params or {},
    sessionId = session_id }) .. "\0")
end

local buffer = ""
from_browser:read_start(function(err, chunk)
  if err or not chunk then return end
  buffer = buffer .. chunk
  while true do
    local nul = buffer:find("\0", 1, true)
    if not nul then break end
    local message = cjson.decode(buffer:sub(1, nul - 1))
    buffer = buffer:sub(nul + 1)
    if message.id and waiting[message.id] then
      local callback = waiting[message.id]
      waiting[message.id] = nil
      callback(message.result, message.error)
    elseif message.method then
      on_event(message.method, message.params or {}, message.sessionId)
    end
  end
end)

local deadline = uv.new_timer()
local function quit(err)
  if result.done then return end
  result.done = true
  finish(err)
  deadline:stop()
  send("Browser.close", nil, function()
    -- Chromium exits on its own after Browser.close.
  end)
  -- If it does not, it is ended: a spec must not hang on a browser.
  local kill = uv.new_timer()
  kill:start(10000, 0, function()
    if not child:is_closing() then child:kill("sigkill") end
    kill:close()
  end)
  kill:unref()
end
deadline:start(job.timeout_ms or 60000, 0, function() quit("the page did not load in time") end)

local function json_text(value)
  if value == nil or value == cjson.null then return "" end
  if type(value) == "table" then return cjson.encode(value) end
  return tostring(value)
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64_decode(text)
  local value, bits, out = 0, 0, {}
  for c in text:gmatch("[%w+/]") do
    value = (value << 6) | (B64:find(c, 1, true) - 1)
    bits = bits + 6
    if bits >= 8 then
      bits = bits - 8
      out[#out + 1] = string.char((value >> bits) & 0xff)
    end
  end
  return table.concat(out)
end

local function after_load()
  local scripts, i = job.scripts or {}, 0
  local function next_script()
    i = i + 1
    if i > #scripts then
      if not job.screenshot then return quit() end
      return send("Page.captureScreenshot", { format = "png" }, function(shot, err)
        if not shot then return quit("screenshot failed: " .. json_text(err)) end
        local f = assert(io.open(job.screenshot, "wb"))
        f:write(base64_decode(shot.data))
        f:close()
        quit()
      end, session)
    end
    send("Runtime.evaluate", { expression = scripts[i], returnByValue = true },
      function(r, err)
        if not r or r.exceptionDetails then
          return quit("script " .. i .. " failed: " .. json_text(err or r.exceptionDetails))
        end
        result.values[i] = r.result.value
        next_script()
      end, session)
  end
  next_script()
end

function on_event(method, params)
  if method == "Network.requestWillBeSent" then
    local r = params.request
    result.requests[#result.requests + 1] = { method = r.method, url = r.url }
  elseif method == "Runtime.consoleAPICalled" then
    local parts = {}
    for _, a in ipairs(params.args or {}) do
      parts[#parts + 1] = json_text(a.value or a.description)
    end
    result.console[#result.console + 1] = params.type .. ": " .. table.concat(parts, " ")
  elseif method == "Runtime.exceptionThrown" then
    local d = params.exceptionDetails or {}
    result.console[#result.console + 1] = "exception: " .. json_text(d.text) .. " "
      .. json_text(d.exception and d.exception.description)
  elseif method == "Log.entryAdded" then
    local e = params.entry
    result.console[#result.console + 1] = e.level .. " (" .. e.source .. "): " .. e.text
      .. (e.url and (" " .. e.url) or "")
  elseif method == "Page.loadEventFired" and not result.loaded then
    -- The load of the blank page the target opened with may be reported
    -- late: only the page asked for counts.
    send("Runtime.evaluate", { expression = "location.href", returnByValue = true },
      function(r)
        if result.loaded or not r or r.result.value == "about:blank" then return end
        result.loaded = true
        -- A short pause after the load event lets anything the page starts
        -- late (a timer, a lazy image) show itself before the checks.
        local settle = uv.new_timer()
        settle:start(job.settle_ms or 500, 0, function()
          settle:close()
          after_load()
        end)
      end, session)
  end
end

-- Open a page target, attach to it (one flat session), turn on the
-- domains whose events are recorded, size the viewport, then navigate.
send("Target.createTarget", { url = "about:blank" }, function(target, err)
  if not target then return quit("no target: " .. json_text(err)) end
  send("Target.attachToTarget", { targetId = target.targetId, flatten = true },
    function(attached, aerr)
      if not attached then return quit("could not attach: " .. json_text(aerr)) end
      session = attached.sessionId
      local steps = {
        { "Network.enable", {} },
        { "Runtime.enable", {} },
        { "Log.enable", {} },
        { "Page.enable", {} },
        { "Emulation.setDeviceMetricsOverride", { width = job.width or 1000,
          height = job.height or 1000, deviceScaleFactor = 1, mobile = false } },
      }
      local i = 0
      local function step()
        i = i + 1
        if i > #steps then
          return send("Page.navigate", { url = job.url }, function(nav, nerr)
            if not nav or nav.errorText then
              quit("navigation failed: " .. json_text(nerr or nav.errorText))
            end
          end, session)
        end
        send(steps[i][1], steps[i][2], function(_, serr)
          if serr then return quit(steps[i][1] .. " failed: " .. json_text(serr)) end
          step()
        end, session)
      end
      step()
    end)
end)

uv.run()
