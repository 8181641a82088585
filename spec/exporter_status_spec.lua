-- SPDX-License-Identifier: MIT

--- The exporter's status page: its bounded history (a ring of one-minute
-- slots per target), the page for 10,000 targets (paginated), and the page
-- of a running exporter in headless Chromium.
local browser = require "browser"
local cli = require "cli"
local exporter = require "exporter"
local png_reader = require "png_reader"
local metrics = require "icmprun.exporter.metrics"
local status = require "icmprun.exporter.status"
local xml = require "xml"

local T = 1800000000 -- a whole minute

-- A target as the exporter keeps them (of counters only: results are fed
-- with status.record, at the times the spec chooses).
local BUCKETS = { 0.001, 0.01, 0.1 }
local function target(i)
  local ip = string.format("127.%d.%d.%d", i >> 16 & 255, i >> 8 & 255, i & 255)
  local t = metrics.new_target(string.format('{host="h%d",ip="%s"', i, ip), BUCKETS)
  t.ip = ip
  return t
end

-- Feeds a target one probe a second from `from` for `seconds`.
local function feed(t, from, seconds, rtt_of, lost_of)
  for s = 0, seconds - 1 do
    local lost = lost_of and lost_of(s)
    status.record(t, lost and { status = "timeout" } or { status = "reply", rtt = rtt_of(s) },
      from + s)
  end
end

local function figures_of(page)
  local docs = {}
  for doc in page:gmatch('<div class="figure"[^>]*>(<svg .-</svg>)</div>') do
    docs[#docs + 1] = doc
  end
  return docs
end

describe("the exporter's status history", function()
  it("keeps each minute's loss and quantiles, and only the last three hours", function()
    local t = target(1)
    -- Minute 0: RTTs 1..60 ms, none lost. Minute 1: every fourth lost.
    feed(t, T, 60, function(s) return s + 1 end)
    feed(t, T + 60, 60, function() return 2 end, function(s) return s % 4 == 0 end)
    -- Nothing in minute 2; minute 3 starts.
    feed(t, T + 180, 1, function() return 3 end)
    local ex = { order = { t } }
    local page = status.page(ex, "", "/metrics", T + 181)
    local root = assert(xml.parse(figures_of(page)[1]))
    local medians = xml.by_class(root, "median")
    assert.equal(3, #medians)
    assert.equal("0", medians[1].attr["data-loss"])
    assert.near(30, tonumber(medians[1].attr["data-rtt"]), 30 * 0.001) -- nearest rank of 1..60
    assert.equal("25", medians[2].attr["data-loss"])
    assert.equal("#dd00ff", medians[2].attr.stroke)
    assert.equal("0", medians[3].attr["data-loss"])
    -- Three hours later the first minutes are gone from the ring.
    feed(t, T + 3 * 3600 + 60, 1, function() return 4 end)
    page = status.page(ex, "", "/metrics", T + 3 * 3600 + 61)
    root = assert(xml.parse(figures_of(page)[1]))
    medians = xml.by_class(root, "median")
    assert.equal(2, #medians) -- minute 3 is still within the last 180, and the new one
    assert.equal(tostring(status.RING_BYTES), tostring(#t:history().ring))
  end)

  it("stores RTTs within 0.05 % and keeps a bounded sample of a busy minute", function()
    for _, ms in ipairs({ 0.0001, 0.0173, 0.5, 1, 12.3, 999, 60000, 420000 }) do
      assert.near(ms, status.decode(status.encode(ms)), ms * 0.0005)
    end
    local t = target(2)
    for i = 1, 10000 do
      status.record(t, { status = "reply", rtt = i % 100 }, T + i / 1000)
    end
    assert.equal(status.RESERVOIR, #t:history().rtts)
    assert.equal(10000, t:history().sent)
  end)

  it("holds a few KB per target (measured)", function()
    -- The history is kept in C by the targets' prober, which counts what
    -- it holds (the allocator's overhead aside); the Lua side of a target
    -- is measured by the collector.
    local prober = target(0).prober
    collectgarbage()
    local lua_before, c_before = collectgarbage("count") * 1024, select(3, prober:count())
    local targets = {}
    for i = 1, 1000 do
      local t = target(i)
      -- Three hours of one probe a second would take long to feed here:
      -- one probe a minute fills every slot of the ring just the same, and
      -- the open slot then holds a full minute of one-a-second RTTs.
      for m = 0, status.SLOTS - 1 do
        status.record(t, { status = "reply", rtt = 1 + m % 7 }, T + m * 60)
      end
      for s = 1, 59 do
        status.record(t, { status = "reply", rtt = 1 }, T + (status.SLOTS - 1) * 60 + s)
      end
      targets[i] = t
    end
    collectgarbage()
    local per_target = (collectgarbage("count") * 1024 - lua_before
      + select(3, prober:count()) - c_before) / #targets
    print(string.format("\nstatus history: %.0f bytes per target (ring %d bytes)", per_target,
      status.RING_BYTES))
    assert.is_true(per_target < 8192, string.format("%.0f bytes per target", per_target))
    assert.equal(1000, #targets)
  end)
end)

describe("the status page with 10,000 targets", function()
  local ex
  setup(function()
    local order = {}
    for i = 1, 10000 do
      local t = target(i)
      feed(t, T, 3, function() return 0.05 end)
      order[i] = t
    end
    ex = { order = order }
  end)

  it("shows one page of targets at a time, each with a graph and a row", function()
    local page = status.page(ex, "", "/metrics", T + 3)
    local _, rows = page:gsub('<tr class="target"', "")
    assert.equal(status.PER_PAGE, rows)
    local figures = figures_of(page)
    assert.equal(status.PER_PAGE, #figures)
    for _, doc in ipairs(figures) do
      assert.truthy(xml.parse(doc))
    end
    assert.matches("page 1 of 200", page)
    assert.matches('<a href="%?page=2">next</a>', page)
    assert.matches('http%-equiv="refresh" content="30"', page)
    local last = status.page(ex, "page=200", "/metrics", T + 3)
    assert.truthy(last:find('data-target="127.0.39.16"', 1, true)) -- target 10,000
    assert.matches('<a href="%?page=199">previous</a>', last)
    -- Out of range pages are clamped, not errors.
    assert.matches("page 200 of 200", status.page(ex, "page=999", "/metrics", T + 3))
    assert.matches("page 1 of 200", status.page(ex, "page=0", "/metrics", T + 3))
  end)
end)

-- A list of `n` targets, each made (with three seconds of probes) when it
-- is first read; `reads()` counts the reads of its elements.
local function virtual_targets(n)
  local made, reads = {}, 0
  local list = setmetatable({}, {
    __len = function() return n end,
    __index = function(_, i)
      if math.type(i) ~= "integer" or i < 1 or i > n then return nil end
      reads = reads + 1
      if not made[i] then
        made[i] = target(i)
        feed(made[i], T, 3, function() return 0.05 end)
      end
      return made[i]
    end,
  })
  return list, function() return reads end
end

describe("the status page's work", function()
  -- What keeps a page under a second at 10,000 targets (or any number) is
  -- that it reads only its own targets: its work and its size are those of
  -- one page, whatever the total. (Its time is measured, not asserted:
  -- scripts/bench-status prints it; the README has the figures.)
  it("reads only the targets it shows, at 10,000 targets as at a million", function()
    local sizes = {}
    for _, n in ipairs({ 10000, 1000000 }) do
      local pages = (n + status.PER_PAGE - 1) // status.PER_PAGE
      for _, p in ipairs({ 1, pages // 2, pages }) do
        local order, reads = virtual_targets(n)
        local page = status.page({ order = order }, "page=" .. p, "/metrics", T + 3)
        local shown = math.min(status.PER_PAGE, n - (p - 1) * status.PER_PAGE)
        assert.equal(shown, reads(), string.format("page %d of %d targets", p, n))
        local _, rows = page:gsub('<tr class="target"', "")
        assert.equal(shown, rows)
        assert.equal(shown, #figures_of(page))
        assert.matches(string.format("page %d of %d", p, pages), page)
        sizes[#sizes + 1] = #page
      end
    end
    -- Pages 1 of 10,000 and of a million targets differ only in the digits
    -- of the counts and addresses they print.
    assert.is_true(math.abs(sizes[1] - sizes[4]) < 200,
      string.format("%d bytes against %d", sizes[1], sizes[4]))
  end)

  it("keeps a target's history in a fixed ring however long it runs", function()
    local t = target(3)
    -- Ten hours of one probe every 10 s, with a gap of two hours: the ring
    -- stays one string of its size, the open minute's sample bounded.
    for s = 0, 10 * 3600, 10 do
      if s < 4 * 3600 or s >= 6 * 3600 then
        status.record(t, { status = "reply", rtt = 1 + s % 7 }, T + s)
      end
      assert.equal(status.RING_BYTES, #t:history().ring)
      assert.is_true(#t:history().rtts <= status.RESERVOIR)
    end
    local keys = 0
    for _ in pairs(t:history()) do keys = keys + 1 end
    local page = status.page({ order = { t } }, "", "/metrics", T + 10 * 3600)
    local medians = xml.by_class(assert(xml.parse(figures_of(page)[1])), "median")
    assert.equal(status.SLOTS, #medians) -- three hours of minutes, each with probes
    -- A burst of probes within one minute adds no field and no slot.
    for i = 1, 5000 do
      status.record(t, { status = "reply", rtt = i % 50 }, T + 10 * 3600 + i / 1000)
    end
    local after = 0
    for _ in pairs(t:history()) do after = after + 1 end
    assert.equal(keys, after)
    assert.equal(status.RING_BYTES, #t:history().ring)
    assert.equal(status.RESERVOIR, #t:history().rtts)
  end)
end)

describe("the status page of a running exporter in headless Chromium", function()
  local chromium, why = browser.find()

  it("is available (Chromium is installed)", function()
    assert(chromium, "CHROMIUM MISSING, THE BROWSER CHECKS DID NOT RUN: " .. tostring(why))
  end)

  if not chromium then return end

  it("loads with no console message and no request but the page, a graph and row each", function()
    local server = exporter.start({ "-i", "100ms", "127.0.0.1", "127.0.0.2", "::1" })
    assert.is_nil(server.failed, server.output)
    -- Wait until each target has answered some probes (a scrape shows it).
    for _ = 1, 100 do
      local _, text = server:scrape()
      local _, answered = (text or ""):gsub('smokeping_requests_total{[^}]*} [1-9]', "")
      if answered >= 3 then break end
      exporter.sleep(0.1)
    end
    local dir = cli.temp_dir()
    local proxy = browser.serve(dir)
    local shot = browser.artefact_dir() .. "/exporter-status.png"
    os.remove(shot)
    local url = server.url .. "/"
    local seen = browser.open(chromium, url, proxy.port, {
      screenshot = shot, width = 900, height = 1200,
      scripts = { browser.layout_script({ ".figure", "tr.target" }) },
    })
    local proxied = proxy.log()
    proxy:stop()
    cli.remove_tree(dir)
    server:stop()

    assert.is_nil(seen.error)
    assert.is_true(seen.loaded)
    assert.same({}, seen.console)
    -- The page asked for itself and nothing else, as the DevTools protocol
    -- and the proxy that all of the browser's requests go through saw it.
    assert.same({ "GET " .. url }, seen.requests)
    assert.same({}, browser.foreign_requests(proxied, seen.requests))
    assert.equal(1, browser.count(proxied, "GET " .. url))

    local image = assert(png_reader.decode(assert(io.open(shot, "rb")):read("a")))
    local rects = seen.values[1]
    local figures = rects[".figure"]
    assert.equal(3, #figures)
    assert.equal(3, #rects["tr.target"])
    for i, tr in ipairs(rects["tr.target"]) do
      local ink = browser.ink(image, tr.x, tr.y, tr.w, tr.h, { 255, 255, 255 })
      assert.is_true(ink > 0.02, string.format("table row %d is blank (%.3f)", i, ink))
    end
    for i, fig in ipairs(figures) do
      assert.is_true(fig.y + fig.h <= image.height, "graph " .. i .. " is below the screenshot")
      local ink = browser.ink(image, fig.x, fig.y, fig.w, fig.h, { 0xfa, 0xfa, 0xfa })
      assert.is_true(ink > 0.05, string.format("graph %d is blank (%.3f)", i, ink))
      -- This minute's median, loss-free, in SmokePing's green.
      assert.is_true(browser.has_color(image, fig.x, fig.y, fig.w, fig.h, "#26ff00"),
        "no median drawn in graph " .. i)
    end
  end)
end)
