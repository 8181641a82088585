-- SPDX-License-Identifier: MIT

--- Headless Chromium for specs, driven over the DevTools protocol
-- (spec/helpers/cdp_driver.lua): the requests the page makes, its console
-- messages, values computed in the loaded page, a screenshot; and, through
-- a logging proxy, every request the whole browser makes.
-- @module browser
local cjson = require "cjson"
local cli = require "cli"

local M = {}

--- The Chromium binary, or nil and why not. Debian's /usr/bin/chromium is
-- a shell wrapper that sources /etc/chromium.d: API keys for Google's
-- services, remote extensions and extension loading, each of which makes
-- the browser talk to Google on its own. The browser itself is started
-- instead, with nothing but the flags below.
function M.find()
  local real = "/usr/lib/chromium/chromium"
  local f = io.open(real)
  if f then
    f:close()
    return real
  end
  local r = cli.sh("command -v chromium || command -v chromium-browser")
  local path = r.stdout:match("^(%S+)")
  if r.code ~= 0 or not path then
    return nil, "Chromium is not installed (Debian: apt-get install chromium; "
      .. "scripts/install-deps installs it)"
  end
  return path
end

--- Where the screenshots are kept: the build folder (beside icmprun).
function M.artefact_dir()
  local dir = (cli.icmprun:match("^(.*)/[^/]*$") or ".") .. "/screenshots"
  os.execute("mkdir -p " .. cli.quote(dir))
  return dir
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("a")
  f:close()
  return data
end

--- Starts the request logger serving `dir` on loopback.
-- @treturn table `{port, log = function() -> {request lines}, stop()}`
function M.serve(dir)
  local port_file, log_file = os.tmpname(), os.tmpname()
  os.remove(port_file)
  local pid_file = os.tmpname()
  cli.sh(string.format("%s %s %s %s %s > /dev/null 2>&1 & echo $! > %s", cli.quote(cli.lua),
    cli.quote(cli.source_dir .. "/spec/helpers/request_logger.lua"), cli.quote(dir),
    cli.quote(port_file), cli.quote(log_file), cli.quote(pid_file)))
  local pid = tonumber(slurp(pid_file))
  os.remove(pid_file)
  local port
  for _ = 1, 200 do
    port = tonumber(slurp(port_file) or "")
    if port then break end
    cli.sh("sleep 0.05")
  end
  assert(port, "the request logger did not start")
  os.remove(port_file)
  return {
    port = port,
    log = function()
      local lines = {}
      for line in (slurp(log_file) or ""):gmatch("[^\n]+") do lines[#lines + 1] = line end
      return lines
    end,
    stop = function()
      os.execute("kill " .. pid .. " 2>/dev/null")
      os.remove(log_file)
    end,
  }
end

-- The flags of every run: headless, a fresh profile, every request
-- through the logging proxy (loopback too: "<-loopback>" removes the
-- implicit bypass), and each of Chromium's own network chores turned off,
-- so that the proxy sees the page's requests and (below) nothing else:
-- background networking, the component updater (and the on-demand fetch
-- of the on-device AI models' manifest, which only a local manifest
-- override stops), the network time query, sync, pings, domain
-- reliability reports, phishing models, translation, the media router.
local function flags(proxy_port, profile)
  return {
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-dev-shm-usage", -- containers often have a tiny /dev/shm
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--no-pings",
    "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,Translate,MediaRouter,"
      .. "AutofillServerCommunication,CertificateTransparencyComponentUpdater",
    "--optimization-guide-manifest-override=" .. profile .. "/no-manifest",
    "--disable-client-side-phishing-detection", "--disable-domain-reliability",
    "--metrics-recording-only", "--user-data-dir=" .. profile,
    "--proxy-server=http://127.0.0.1:" .. proxy_port, "--proxy-bypass-list=<-loopback>",
  }
end

--- The one request of Chromium's own that no switch, preference or
-- policy turns off in Chromium 156: as each profile's network comes up,
-- its identity manager lists the Google accounts of the cookie jar
-- (IdentityManager::OnNetworkInitialized; chromiumembedded/cef#4276). It
-- is not the page's (the page's requests are the ones the DevTools
-- protocol reports for it), and it is matched exactly.
M.BROWSER_OWN = "CONNECT accounts.google.com:443"

--- The lines of a proxy log that are neither among `pages` (request lines
-- such as "GET http://127.0.0.1:PORT/report.html", as `M.open` returns
-- them) nor `M.BROWSER_OWN`.
-- @tparam {string,...} log
-- @tparam {string,...} pages
-- @treturn {string,...}
function M.foreign_requests(log, pages)
  local known = { [M.BROWSER_OWN] = true }
  for _, page in ipairs(pages) do known[page] = true end
  local foreign = {}
  for _, line in ipairs(log) do
    if not known[line] then foreign[#foreign + 1] = line end
  end
  return foreign
end

--- How many lines of a log are exactly `line`.
function M.count(log, line)
  local n = 0
  for _, l in ipairs(log) do
    if l == line then n = n + 1 end
  end
  return n
end

--- Opens `url` in a fresh headless Chromium driven over the DevTools
-- protocol: records every request of the page (and of any frame or worker
-- it starts), every console message, exception and log entry; once the
-- page has loaded, evaluates `opts.scripts` in it (their values, which
-- must be JSON, are returned) and takes a screenshot of `width` x `height`
-- to `opts.screenshot`.
-- @treturn table `{loaded, requests = {"GET url", ...}, console = {...},
-- values = {...}, error}`
function M.open(chromium, url, proxy_port, opts)
  local profile = cli.temp_dir()
  local job = {
    chromium = chromium, flags = flags(proxy_port, profile), url = url,
    width = opts.width or 1000, height = opts.height or 1000,
    screenshot = opts.screenshot, scripts = opts.scripts or {}, timeout_ms = 90000,
  }
  local job_file, result_file = cli.temp_file(cjson.encode(job), ".json"), os.tmpname()
  local r = cli.sh(string.format("timeout 120 %s %s %s %s", cli.quote(cli.lua),
    cli.quote(cli.source_dir .. "/spec/helpers/cdp_driver.lua"), cli.quote(job_file),
    cli.quote(result_file)))
  os.remove(job_file)
  cli.remove_tree(profile)
  local text = slurp(result_file) or ""
  os.remove(result_file)
  local ok, result = pcall(cjson.decode, text)
  if not ok or type(result) ~= "table" then
    return { loaded = false, requests = {}, console = {}, values = {},
      error = "the DevTools driver failed (" .. r.code .. "): " .. r.stderr }
  end
  local requests = {}
  for i, req in ipairs(result.requests) do
    requests[i] = req.method .. " " .. req.url
  end
  result.requests = requests
  if result.error == cjson.null then result.error = nil end
  return result
end

--- The share of pixels in a rectangle that differ from `background`.
-- @param image from png_reader.decode
function M.ink(image, x0, y0, w, h, background)
  local br, bg, bb = background[1], background[2], background[3]
  local inked, total = 0, 0
  for y = math.max(0, y0), math.min(image.height, y0 + h) - 1 do
    for x = math.max(0, x0), math.min(image.width, x0 + w) - 1 do
      local r, g, b = image.pixel(x, y)
      total = total + 1
      if math.abs(r - br) + math.abs(g - bg) + math.abs(b - bb) > 24 then
        inked = inked + 1
      end
    end
  end
  return total > 0 and inked / total or 0, total
end

--- Whether a colour (within a small distance) appears in a rectangle.
function M.has_color(image, x0, y0, w, h, hex)
  local cr, cg, cb = tonumber(hex:sub(2, 3), 16), tonumber(hex:sub(4, 5), 16),
    tonumber(hex:sub(6, 7), 16)
  for y = math.max(0, y0), math.min(image.height, y0 + h) - 1 do
    for x = math.max(0, x0), math.min(image.width, x0 + w) - 1 do
      local r, g, b = image.pixel(x, y)
      if math.abs(r - cr) + math.abs(g - cg) + math.abs(b - cb) <= 12 then
        return true
      end
    end
  end
  return false
end

--- A script for `opts.scripts`: where the elements of each selector are
-- drawn, `{[selector] = {{x, y, w, h}, ...}}` in CSS pixels of the viewport.
function M.layout_script(selectors)
  local list = {}
  for i, sel in ipairs(selectors) do list[i] = string.format("%q", sel) end
  return "(function () { var out = {}; [" .. table.concat(list, ",") .. "].forEach("
    .. "function (sel) { out[sel] = Array.prototype.map.call(document.querySelectorAll(sel),"
    .. " function (e) { var r = e.getBoundingClientRect(); return {x: Math.round(r.left),"
    .. " y: Math.round(r.top), w: Math.round(r.width), h: Math.round(r.height)}; }); });"
    .. " return out; })()"
end

return M
