--- The HTML report of `icmprun plot` in a real browser: headless Chromium
-- loads it through a logging proxy; no console message, no request but the
-- page's own; the table has one row per target, and the screenshot (kept in
-- the build folder) has ink where the panels and rows are, the loss colours
-- inside the panels, and blank paper beside them.
local browser = require "browser"
local cli = require "cli"
local png_reader = require "png_reader"

local T0 = 1800000000
local TARGETS = { "127.0.0.1", "127.0.0.2", "::1" }

-- Ten minutes of one probe a second to three targets; the second loses a
-- probe in four during the middle minutes.
local function lines()
  local out = {}
  for s = 0, 599 do
    for i, addr in ipairs(TARGETS) do
      local lost = i == 2 and s >= 200 and s < 400 and s % 4 == 0
      if lost then
        out[#out + 1] = string.format('{"type":"result","addr":"%s","status":"timeout",'
          .. '"time":%d}', addr, T0 + s)
      else
        out[#out + 1] = string.format('{"type":"result","addr":"%s","status":"reply",'
          .. '"rtt_ms":%.3f,"time":%d}', addr, 0.04 * i + (s % 13) * 0.01, T0 + s)
      end
    end
  end
  return table.concat(out, "\n") .. "\n"
end

describe("the HTML report in headless Chromium", function()
  local chromium, why = browser.find()

  it("is available (Chromium is installed)", function()
    -- Not a silent pass: without Chromium this spec fails and says so.
    assert(chromium, "CHROMIUM MISSING, THE BROWSER CHECKS DID NOT RUN: " .. tostring(why))
  end)

  if not chromium then return end

  it("loads with no console message and no request but the page, and draws each part", function()
    local dir = cli.temp_dir()
    local page = dir .. "/report.html"
    local r = cli.icmprun_run({ "plot", "report", "-o", page }, lines())
    assert.equal(0, r.code, r.stderr)
    -- A copy that also records where the figures and rows are drawn.
    local f = assert(io.open(page))
    local html = f:read("a")
    f:close()
    -- ... and, after that, clicks the "loss %" head twice and records the
    -- order of the rows after each click (the table's own sorting script).
    local sort_script = [[<script>(function () {
  var th = document.querySelectorAll("table.stats thead th")[3];
  function order() {
    return Array.prototype.map.call(document.querySelectorAll("tr.target"),
      function (tr) { return tr.getAttribute("data-target"); }).join(" ");
  }
  th.click(); var up = order(); th.click(); var down = order();
  document.body.setAttribute("data-sorted", up + "|" + down);
})();</script>]]
    local measured = html:gsub("</body>", function()
      return browser.layout_script({ ".figure", "tr.target", "table.stats" }) .. sort_script
        .. "</body>"
    end)
    cli.write_file(dir .. "/measured.html", measured)

    local server = browser.serve(dir)
    local shot = browser.artefact_dir() .. "/plot-report.png"
    os.remove(shot)
    local plain = browser.load(chromium, "http://127.0.0.1:" .. server.port .. "/report.html",
      server.port, {})
    local seen = browser.load(chromium, "http://127.0.0.1:" .. server.port .. "/measured.html",
      server.port, { screenshot = shot, width = 1000, height = 1400 })
    local requests = server.log()
    server:stop()
    cli.remove_tree(dir)

    assert.equal(0, plain.code, plain.stderr)
    assert.equal(0, seen.code, seen.stderr)
    assert.same({}, plain.console)
    assert.same({}, seen.console)
    -- Every request went through the proxy: the pages, and nothing else
    -- but Chromium's own housekeeping (see browser.foreign_requests).
    local base = "http://127.0.0.1:" .. server.port
    assert.same({}, browser.foreign_requests(requests,
      { "GET " .. base .. "/report.html", "GET " .. base .. "/measured.html" }))
    local pages = 0
    for _, line in ipairs(requests) do
      if line:find("/report.html", 1, true) or line:find("/measured.html", 1, true) then
        pages = pages + 1
      end
    end
    assert.equal(3, pages) -- the report once, the measured copy for the DOM and the screenshot

    -- The DOM after scripts ran: one row per target.
    local _, rows = plain.dom:gsub('<tr class="target"', "")
    assert.equal(#TARGETS, rows)
    for _, addr in ipairs(TARGETS) do
      assert.truthy(plain.dom:find('data-target="' .. addr .. '"', 1, true))
    end

    -- Sorted by loss: the lossy target last going up, first going down.
    local up, down = seen.dom:match('data%-sorted="([^|"]*)|([^"]*)"')
    assert.truthy(up, "the sorting script did not run")
    assert.matches(" 127%.0%.0%.2$", up)
    assert.matches("^127%.0%.0%.2 ", down)

    local data = assert(io.open(shot, "rb"), "no screenshot"):read("a")
    local image = assert(png_reader.decode(data))
    local rects = browser.layout(seen.dom)
    local figures, trs = rects[".figure"] or {}, rects["tr.target"] or {}
    assert.equal(#TARGETS, #figures)
    assert.equal(#TARGETS, #trs)
    local paper = { 0xfa, 0xfa, 0xfa }
    for i, fig in ipairs(figures) do
      assert.is_true(fig.y + fig.h <= image.height, "panel " .. i .. " is below the screenshot")
      local ink = browser.ink(image, fig.x, fig.y, fig.w, fig.h, paper)
      assert.is_true(ink > 0.05, string.format("panel %d is blank (%.3f inked)", i, ink))
      -- The median of a loss-free minute is drawn in SmokePing's green.
      assert.is_true(browser.has_color(image, fig.x, fig.y, fig.w, fig.h, "#26ff00"))
    end
    -- The lossy target's panel shows the colour of 25 % loss (<= 50 %).
    local lossy = figures[2]
    assert.is_true(browser.has_color(image, lossy.x, lossy.y, lossy.w, lossy.h, "#dd00ff"))
    for i, tr in ipairs(trs) do
      local ink = browser.ink(image, tr.x, tr.y, tr.w, tr.h, { 255, 255, 255 })
      assert.is_true(ink > 0.02, string.format("table row %d is blank (%.3f)", i, ink))
    end
    -- Beside the panels the page is blank paper.
    local right = figures[1].x + 820
    local ink = browser.ink(image, right, figures[1].y, image.width - right, figures[1].h, paper)
    assert.equal(0, ink)
  end)
end)
