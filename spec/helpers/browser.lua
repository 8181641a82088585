--- Headless Chromium for specs: load a page through a logging proxy (so
-- that every request the page makes is seen), collect its console
-- messages, its DOM after scripts ran, and a screenshot.
-- @module browser
local cli = require "cli"

local M = {}

--- The Chromium binary, or nil and why not.
function M.find()
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

-- The flags of every run: headless, nothing of Chromium's own on the
-- network, a fresh profile, every request through the logging proxy
-- (loopback too: "<-loopback>" removes the implicit bypass).
local function flags(proxy_port, profile)
  return table.concat({
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-dev-shm-usage", -- containers often have a tiny /dev/shm
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--hide-scrollbars",
    -- Chromium's own clock check (clients2.google.com/time) is not the page's.
    "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,Translate,MediaRouter,"
      .. "AutofillServerCommunication,CertificateTransparencyComponentUpdater",
    "--disable-client-side-phishing-detection", "--disable-domain-reliability", "--no-pings",
    "--safebrowsing-disable-auto-update", "--metrics-recording-only",
    "--user-data-dir=" .. cli.quote(profile),
    "--proxy-server=http://127.0.0.1:" .. proxy_port, "--proxy-bypass-list='<-loopback>'",
    "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
  }, " ")
end

-- Chromium's own housekeeping, which no flag turns off in Debian's build
-- (its component updater and account check, keyed by the API keys in
-- /etc/chromium.d/apikeys), and the tab icon it asks the page's origin
-- for. Each is matched exactly, host and path; any other request fails.
local BROWSER_OWN = {
  "^CONNECT update%.googleapis%.com:443$",
  "^POST http://update%.googleapis%.com/service/update2/json",
  "^CONNECT accounts%.google%.com:443$",
  "^GET http://clients2%.google%.com/time/1/current",
  "^GET http://127%.0%.0%.1:%d+/favicon%.ico$",
}

--- The requests of a log that neither load `pages` (request lines such
-- as "GET http://127.0.0.1:PORT/report.html") nor are Chromium's own.
-- @tparam {string,...} log
-- @tparam {string,...} pages
-- @treturn {string,...}
function M.foreign_requests(log, pages)
  local foreign = {}
  for _, line in ipairs(log) do
    local known = false
    for _, page in ipairs(pages) do
      if line == page then known = true end
    end
    for _, pattern in ipairs(BROWSER_OWN) do
      if line:match(pattern) then known = true end
    end
    if not known then
      foreign[#foreign + 1] = line
    end
  end
  return foreign
end

--- Loads `url` twice: once dumping the DOM, once taking a screenshot of
-- `width` x `height` to `screenshot`.
-- @treturn table `{dom, console = {messages}, code, stderr}`
function M.load(chromium, url, proxy_port, opts)
  local profile = cli.temp_dir()
  local r = cli.sh(string.format("timeout 120 %s %s --dump-dom %s", cli.quote(chromium),
    flags(proxy_port, profile), cli.quote(url)))
  cli.remove_tree(profile)
  local result = { dom = r.stdout, code = r.code, stderr = r.stderr, console = {} }
  if opts.screenshot then
    -- On a loaded two-core machine Chromium now and then exits without
    -- writing the picture (seen once in many runs, with nothing on stderr
    -- to say why): try again, at most three times, and keep what it said.
    for _ = 1, 3 do
      profile = cli.temp_dir()
      local s = cli.sh(string.format("timeout 120 %s %s --window-size=%d,%d --screenshot=%s %s",
        cli.quote(chromium), flags(proxy_port, profile), opts.width, opts.height,
        cli.quote(opts.screenshot), cli.quote(url)))
      cli.remove_tree(profile)
      result.stderr = result.stderr .. s.stderr
      result.screenshot_code = s.code
      local shot = io.open(opts.screenshot, "rb")
      if shot then
        shot:close()
        break
      end
    end
  end
  -- Console messages (log, warning, error, uncaught exceptions, and the
  -- policy's refusals of a fetch) are logged as "...:CONSOLE(:N)] text".
  for line in result.stderr:gmatch("[^\n]+") do
    if line:find(":CONSOLE", 1, true) then
      result.console[#result.console + 1] = line
    end
  end
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

--- A script, appended to a copy of a page, that records where elements
-- are drawn: `data-layout` on <body>, one "selector-index,x,y,w,h" per line.
function M.layout_script(selectors)
  return [[<script>(function () {
  var out = [];
  ]] .. string.format("%q", table.concat(selectors, "|")):gsub("\\\n", "\\n") .. [[.split("|").forEach(function (sel) {
    document.querySelectorAll(sel).forEach(function (e, i) {
      var r = e.getBoundingClientRect();
      out.push([sel + "#" + i, Math.round(r.left), Math.round(r.top),
        Math.round(r.width), Math.round(r.height)].join(","));
    });
  });
  document.body.setAttribute("data-layout", out.join(";"));
})();</script>]]
end

--- Parses the `data-layout` of a dumped DOM: selector -> list of rects.
function M.layout(dom)
  local text = dom:match('data%-layout="([^"]*)"')
  local rects = {}
  if not text then return rects end
  for item in text:gmatch("[^;]+") do
    local sel, _, x, y, w, h = item:match("^(.-)#(%d+),(%-?%d+),(%-?%d+),(%d+),(%d+)$")
    if sel then
      rects[sel] = rects[sel] or {}
      local list = rects[sel]
      list[#list + 1] = { x = tonumber(x), y = tonumber(y), w = tonumber(w), h = tonumber(h) }
    end
  end
  return rects
end

return M
