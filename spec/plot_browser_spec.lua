-- SPDX-License-Identifier: MIT

--- The HTML report of `icmprun plot` in a real browser: headless Chromium,
-- driven over the DevTools protocol and behind a logging proxy, loads it;
-- no console message, no request but the page itself; the table has one row per target, and the screenshot (kept in
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

  -- The sorting script of the report, run in the loaded page: clicks the
  -- "loss %" head twice and returns the order of the rows after each click.
  local SORT = [[(function () {
  var th = document.querySelectorAll("table.stats thead th")[3];
  function order() {
    return Array.prototype.map.call(document.querySelectorAll("tr.target"),
      function (tr) { return tr.getAttribute("data-target"); }).join(" ");
  }
  th.click(); var up = order(); th.click(); return [up, order()];
})()]]

  it("loads with no console message and no request but the page, and draws each part", function()
    local dir = cli.temp_dir()
    local r = cli.icmprun_run({ "plot", "report", "-o", dir .. "/report.html" }, lines())
    assert.equal(0, r.code, r.stderr)

    local server = browser.serve(dir)
    local shot = browser.artefact_dir() .. "/plot-report.png"
    os.remove(shot)
    local url = "http://127.0.0.1:" .. server.port .. "/report.html"
    local seen = browser.open(chromium, url, server.port, {
      screenshot = shot, width = 1000, height = 1400,
      scripts = { browser.layout_script({ ".figure", "tr.target", "table.stats" }), SORT },
    })
    local proxied = server.log()
    server:stop()
    cli.remove_tree(dir)

    assert.is_nil(seen.error)
    assert.is_true(seen.loaded)
    assert.same({}, seen.console)
    -- The page asked for itself and for nothing else (no icon, no font,
    -- no script): exactly one request, seen by the DevTools protocol...
    assert.same({ "GET " .. url }, seen.requests)
    -- ... and by the proxy that every request of the browser goes through.
    assert.same({}, browser.foreign_requests(proxied, seen.requests))
    assert.equal(1, browser.count(proxied, "GET " .. url))

    local rects = seen.values[1]
    local figures, trs = rects[".figure"], rects["tr.target"]
    -- One panel and one table row per target.
    assert.equal(#TARGETS, #figures)
    assert.equal(#TARGETS, #trs)

    -- Sorted by loss: the lossy target last going up, first going down.
    local up, down = seen.values[2][1], seen.values[2][2]
    assert.matches(" 127%.0%.0%.2$", up)
    assert.matches("^127%.0%.0%.2 ", down)
    for _, addr in ipairs(TARGETS) do
      assert.truthy(up:find(addr, 1, true))
    end

    local data = assert(io.open(shot, "rb"), "no screenshot"):read("a")
    local image = assert(png_reader.decode(data))
    assert.equal(1000, image.width)
    local paper = { 0xfa, 0xfa, 0xfa }
    for i, fig in ipairs(figures) do
      assert.is_true(fig.y + fig.h <= image.height, "panel " .. i .. " is below the screenshot")
      local ink = browser.ink(image, fig.x, fig.y, fig.w, fig.h, paper)
      assert.is_true(ink > 0.05, string.format("panel %d is blank (%.3f inked)", i, ink))
      -- The median of a loss-free minute is drawn in SmokePing's green.
      assert.is_true(browser.has_color(image, fig.x, fig.y, fig.w, fig.h, "#26ff00"))
    end
    -- The lossy target's panel shows the colour of 25 % loss (<= 50 %).
    assert.is_true(browser.has_color(image, figures[2].x, figures[2].y, figures[2].w,
      figures[2].h, "#dd00ff"))
    for i, tr in ipairs(trs) do
      local ink = browser.ink(image, tr.x, tr.y, tr.w, tr.h, { 255, 255, 255 })
      assert.is_true(ink > 0.02, string.format("table row %d is blank (%.3f)", i, ink))
    end
    -- Beside the panels the page is blank paper.
    local right = figures[1].x + 820
    local ink = browser.ink(image, right, figures[1].y, image.width - right, figures[1].h, paper)
    assert.equal(0, ink)
  end)

  it("sees a page's own fetches and console errors (the checks above can fail)", function()
    local dir = cli.temp_dir()
    cli.write_file(dir .. "/leaky.html", '<!DOCTYPE html><html><head><meta charset="utf-8">'
      .. '<link rel="icon" href="data:,"><title>leaky</title></head><body>'
      .. '<img src="/elsewhere.png"><script>console.error("broken");</script></body></html>')
    local server = browser.serve(dir)
    local url = "http://127.0.0.1:" .. server.port .. "/leaky.html"
    local seen = browser.open(chromium, url, server.port, {})
    local proxied = server.log()
    server:stop()
    cli.remove_tree(dir)
    assert.is_nil(seen.error)
    local base = "http://127.0.0.1:" .. server.port
    assert.same({ "GET " .. url, "GET " .. base .. "/elsewhere.png" }, seen.requests)
    assert.equal(1, browser.count(proxied, "GET " .. base .. "/elsewhere.png"))
    -- The console.error, and the failed load of the image (a 404).
    local text = table.concat(seen.console, "\n")
    assert.matches("error: broken", text, 1, true)
    assert.matches("404", text, 1, true)
  end)
end)
