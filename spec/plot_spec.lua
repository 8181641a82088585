-- SPDX-License-Identifier: MIT

--- icmprun.plot and `icmprun plot`: each picture rendered from fixed input,
-- its SVG parsed by an XML parser (lua-expat) and its structure checked:
-- panels, cells, legend entries, loss colours, axes that cover the data.
local cli = require "cli"
local xml = require "xml"
local colors = require "icmprun.plot.colors"
local hilbert = require "icmprun.plot.hilbert"
local latency = require "icmprun.plot.latency"
local map = require "icmprun.plot.map"
local png_reader = require "png_reader"
local report = require "icmprun.plot.report"

local T0 = 1800000000 -- a multiple of 10 s, so fixed 10 s buckets start on it

local function result_line(addr, t, rtt, target)
  if rtt then
    return string.format('{"type":"result","target":"%s","addr":"%s","status":"reply",'
      .. '"rtt_ms":%s,"time":%.3f}', target or addr, addr, rtt, t)
  end
  return string.format('{"type":"result","target":"%s","addr":"%s","status":"timeout",'
    .. '"time":%.3f}', target or addr, addr, t)
end

-- Fixed input: 127.0.0.1 with 20 probes per 10 s bucket losing 0, 1, 2,
-- 10 of them, then a bucket with no probe (a gap), one losing all 20 and
-- one losing 19; ::1 answering every probe in 0.5 ms. RTTs of a bucket
-- are 1..20 ms, so its median is 10 ms and its max 20 ms.
local LOST = { 0, 1, 2, 10, nil, 20, 19 }
local function fixed_lines()
  local lines = {}
  for bucket = 0, 6 do
    local lost = LOST[bucket + 1]
    for i = 1, 20 do
      local t = T0 + bucket * 10 + i * 0.4
      if lost then
        lines[#lines + 1] = result_line("127.0.0.1", t, i > lost and i or nil)
      end
      lines[#lines + 1] = result_line("::1", t, 0.5)
    end
  end
  lines[#lines + 1] = '{"type":"summary","sent":280,"received":240}'
  return table.concat(lines, "\n") .. "\n"
end

local function parse(text)
  local root, err = xml.parse(text)
  assert(root, err)
  return root
end

local function panels_of(root)
  return xml.by_class(root, "panel")
end

local function run(args, stdin)
  return cli.icmprun_run(args, stdin)
end

describe("icmprun plot latency", function()
  local input
  setup(function()
    input = cli.temp_file(fixed_lines(), ".jsonl")
  end)
  teardown(function()
    os.remove(input)
  end)

  it("draws one panel per target, in the order they first appear", function()
    local r = run({ "plot", "latency", "--step", "10", input })
    assert.equal(0, r.code, r.stderr)
    local root = parse(r.stdout)
    assert.equal("svg", root.tag)
    local panels = panels_of(root)
    assert.equal(2, #panels)
    assert.equal("127.0.0.1", panels[1].attr["data-target"])
    assert.equal("::1", panels[2].attr["data-target"])
  end)

  it("takes --step with a unit, a bare number staying seconds", function()
    local bare = run({ "plot", "latency", "--step", "10", input })
    local with_unit = run({ "plot", "latency", "--step", "10000ms", input })
    assert.equal(0, with_unit.code, with_unit.stderr)
    assert.equal(bare.stdout, with_unit.stdout)
    local bad = run({ "plot", "latency", "--step", "10 fortnights", input })
    assert.equal(2, bad.code, bad.stderr)
    assert.matches("option '%-%-step': invalid duration '10 fortnights'", bad.stderr)
  end)

  it("colours each median by its bucket's loss with SmokePing's colours, and leaves gaps", function()
    local root = parse(run({ "plot", "latency", "--step", "10", input }).stdout)
    local panel = panels_of(root)[1]
    local medians = xml.by_class(panel, "median")
    -- Seven buckets: the gap has nothing, the bucket that lost all has no median.
    local expected = {
      { "0", "#26ff00" }, { "5", "#00b8ff" }, { "10", "#0059ff" }, { "50", "#dd00ff" },
      { "95", "#ff0000" },
    }
    assert.equal(#expected, #medians)
    for i, e in ipairs(expected) do
      assert.equal(e[1], medians[i].attr["data-loss"])
      assert.equal(e[2], medians[i].attr.stroke)
    end
    -- The median of 1..20 ms (nearest rank) is 10 ms, within the histogram's error.
    assert.near(10, tonumber(medians[1].attr["data-rtt"]), 10 * 0.045)
    assert.equal(1, #xml.by_class(panel, "loss-total"))
    -- Smoke: two runs of buckets with replies (0-3 and 6), three bands each.
    assert.equal(6, #xml.by_class(panel, "smoke"))
    -- The gap: no median, smoke or loss column between 40 s and 50 s.
    local t0, t1 = tonumber(panel.attr["data-t0"]), tonumber(panel.attr["data-t1"])
    local L = latency.LAYOUT
    local pw = L.width - L.left - L.right
    local gap_x0 = L.left + (T0 + 40 - t0) / (t1 - t0) * pw
    local gap_x1 = L.left + (T0 + 50 - t0) / (t1 - t0) * pw
    for _, m in ipairs(medians) do
      local x = tonumber(m.attr.d:match("^M([%d.]+)"))
      assert.is_false(x >= gap_x0 - 0.01 and x < gap_x1 - 0.01, "a median in the gap at " .. x)
    end
  end)

  it("uses each of SmokePing's loss colours, each up to its own edge", function()
    -- SmokePing's %lc for 20 pings: 0, 1, 2, 3, 4, 10 and 19 lost of 20.
    local g = latency.new({ step = 10 })
    local lost = { 0, 1, 2, 3, 4, 10, 11, 19 }
    for bucket, n in ipairs(lost) do
      for i = 1, 20 do
        g:add({ addr = "127.0.0.1", status = i > n and "reply" or "timeout", rtt_ms = 1,
          time = T0 + (bucket - 1) * 10 + i * 0.4 })
      end
    end
    local medians = xml.by_class(panels_of(parse(g:svg()))[1], "median")
    local expected = { "#26ff00", "#00b8ff", "#0059ff", "#5e00ff", "#7e00ff", "#dd00ff",
      "#ff0000", "#ff0000" }
    assert.equal(#expected, #medians)
    for i, color in ipairs(expected) do
      assert.equal(color, medians[i].attr.stroke, lost[i] .. " of 20 lost")
    end
    -- In percent, each row holds its upper edge; a hair above is the next.
    local edges = { { 0, "#26ff00" }, { 0.01, "#00b8ff" }, { 5, "#00b8ff" },
      { 5.01, "#0059ff" }, { 15, "#5e00ff" }, { 15.01, "#7e00ff" }, { 20, "#7e00ff" },
      { 20.01, "#dd00ff" }, { 50, "#dd00ff" }, { 50.01, "#ff0000" }, { 100, "#ff0000" } }
    for _, e in ipairs(edges) do
      assert.equal(e[2], colors.loss(e[1]), e[1] .. " %")
    end
  end)

  it("gives each panel a legend of every loss colour, the smoke and the figures", function()
    local root = parse(run({ "plot", "latency", "--step", "10", input }).stdout)
    for _, panel in ipairs(panels_of(root)) do
      local entries = xml.by_class(panel, "legend-entry")
      assert.equal(#colors.LOSS + 1, #entries)
      for i, row in ipairs(colors.LOSS) do
        assert.equal(row.color, entries[i].children[1].attr.fill)
      end
      local figures = xml.text(xml.by_class(panel, "figures")[1])
      assert.matches("loss [%d.]+ %%", figures)
      assert.matches("median [%d.]+ ms", figures)
      assert.matches("bucket 10 s", figures)
    end
    local first = xml.text(xml.by_class(panels_of(root)[1], "figures")[1])
    -- 0 + 1 + 2 + 10 + 20 + 19 lost of 120 sent.
    assert.matches("loss 43.33 %% %(52/120%)", first)
  end)

  it("has axes that cover the data", function()
    local root = parse(run({ "plot", "latency", "--step", "10", input }).stdout)
    local panel = panels_of(root)[1]
    local top = tonumber(panel.attr["data-rtt-top"])
    assert.is_true(top >= 20, "RTT axis tops at " .. top)
    local yticks = xml.by_class(panel, "ytick")
    assert.is_true(#yticks >= 3)
    assert.equal(0, tonumber(yticks[1].attr["data-value"]))
    assert.equal(top, tonumber(yticks[#yticks].attr["data-value"]))
    local t0, t1 = tonumber(panel.attr["data-t0"]), tonumber(panel.attr["data-t1"])
    assert.is_true(t0 <= T0 + 0.4 and t1 >= T0 + 68, "time axis " .. t0 .. " to " .. t1)
    local xticks = xml.by_class(panel, "xtick")
    assert.is_true(#xticks >= 2)
    for _, tick in ipairs(xticks) do
      local t = tonumber(tick.attr["data-t"])
      assert.is_true(t >= t0 and t <= t1)
      assert.equal(os.date("!%H:%M:%S", t), xml.text(tick)) -- real time labels
    end
  end)

  it("scales the RTT axis to the bulk of the data when a few outliers would squash it", function()
    local g = latency.new({ step = 10 })
    for i = 1, 200 do
      g:add({ addr = "::1", status = "reply", rtt_ms = i == 100 and 1000 or 1 + i % 3,
        time = T0 + i * 0.25 })
    end
    local root = parse(g:svg())
    local panel = panels_of(root)[1]
    assert.equal("1000", panel.attr["data-rtt-max"])
    local top = tonumber(panel.attr["data-rtt-top"])
    assert.is_true(top >= 3 and top < 10, "RTT axis tops at " .. top)
    assert.matches("smoke cut at", xml.text(xml.by_class(panel, "cut")[1]))
  end)

  it("reads stdin, and only --target when asked", function()
    local r = run({ "plot", "latency", "--target", "::1" }, fixed_lines())
    assert.equal(0, r.code, r.stderr)
    local panels = panels_of(parse(r.stdout))
    assert.equal(1, #panels)
    assert.equal("::1", panels[1].attr["data-target"])
    r = run({ "plot", "latency", "--target", "::2", input })
    assert.equal(2, r.code)
    assert.matches("no results for target '::2'", r.stderr)
  end)

  it("names the line of bad input and exits with 2", function()
    local bad = result_line("127.0.0.1", T0, 1) .. "\n{not json\n"
    local r = run({ "plot", "latency", "-" }, bad)
    assert.equal(2, r.code)
    assert.matches("stdin:2: not a JSON object", r.stderr)
    r = run({ "plot", "latency", "-" }, '{"type":"result","addr":"::1","status":"reply","time":1}\n')
    assert.equal(2, r.code)
    assert.matches("stdin:1: reply has no valid rtt", r.stderr)
    r = run({ "plot", "latency", "-" }, '{"type":"result","addr":"::1","status":"timeout"}\n')
    assert.equal(2, r.code)
    assert.matches("stdin:1: result has no time", r.stderr)
    r = run({ "plot", "latency", "/nonexistent/results.jsonl" })
    assert.equal(2, r.code)
    assert.matches("No such file", r.stderr)
    r = run({ "plot", "latency", "-o", "x.png", input })
    assert.equal(2, r.code)
    assert.matches("cannot write 'png'", r.stderr)
    r = run({ "plot", "latency", "-o", "/nonexistent/dir/x.svg", input })
    assert.equal(1, r.code)
  end)

  it("refuses times it cannot bucket", function()
    local g = latency.new()
    for _, t in ipairs({ -1, 1e300, 0 / 0, math.huge }) do
      assert.has_error(function() g:add({ addr = "::1", status = "timeout", time = t }) end,
        "latency:add: result time is out of range (Unix seconds)")
    end
  end)

  it("draws results straight from icmprun.sweep in a script", function()
    local r = cli.icmprun_script([[
      local icmprun = require "icmprun"
      local plot = require "icmprun.plot"
      local g = plot.latency.new({ clock = os.time })
      for res in icmprun.sweep({ "127.0.0.1", "::1" }, { count = 5, interval = 10, rate = 0 }) do
        g:add(res)
      end
      io.write(g:svg())
    ]])
    assert.equal(0, r.code, r.stderr)
    local panels = panels_of(parse(r.stdout))
    assert.equal(2, #panels)
    assert.is_true(#xml.by_class(panels[1], "median") >= 1)
    assert.matches("loss 0.00 %% %(0/5%)", xml.text(xml.by_class(panels[1], "figures")[1]))
  end)

  it("keeps at most --buckets buckets, merging them as the time covered grows", function()
    local g = latency.new({ buckets = 300 })
    -- One day of one probe every 2 s (43,200 results).
    for i = 0, 43199 do
      g:add({ addr = "127.0.0.1", status = i % 50 == 0 and "timeout" or "reply",
        rtt_ms = 1 + (i % 7), time = T0 + i * 2 })
    end
    local model = g:model()
    assert.equal(600, model.step) -- a day in 10 min buckets: 144 of them
    local buckets = model.panels[1].buckets
    assert.equal(144, #buckets)
    local sent = 0
    for _, b in ipairs(buckets) do sent = sent + b.sent end
    assert.equal(43200, sent)
    assert.equal(2, buckets[1].loss_pct)
  end)
end)

describe("icmprun plot report", function()
  it("writes one self-contained HTML file: the SVGs inline, one sortable row per target", function()
    local out = os.tmpname() .. ".html"
    local r = run({ "plot", "report", "--step", "10", "-o", out }, fixed_lines())
    assert.equal(0, r.code, r.stderr)
    local f = assert(io.open(out))
    local page = f:read("a")
    f:close()
    os.remove(out)
    local _, rows = page:gsub('<tr class="target"', "")
    assert.equal(2, rows)
    local _, svgs = page:gsub("<svg ", "")
    assert.equal(2, svgs)
    -- Each inline SVG is well-formed on its own.
    for doc in page:gmatch("(<svg .-</svg>)") do
      assert.equal(1, #panels_of(parse(doc)))
    end
    -- Nothing from elsewhere: the only URL is the SVG namespace, and the
    -- page's policy forbids fetches.
    for url in page:gmatch("https?://[^\"'%s<>]+") do
      assert.equal("http://www.w3.org/2000/svg", url)
    end
    assert.matches("Content%-Security%-Policy\" content=\"default%-src 'none'", page)
    assert.matches("addEventListener%(\"click\"", page) -- the sortable table
  end)

  it("has the statistics of each target in its row", function()
    local model = latency.new({ step = 10 })
    for line in fixed_lines():gmatch("[^\n]+") do
      local r = require("cjson").decode(line)
      if r.type == "result" then model:add(r) end
    end
    local page = report.latency(model:model())
    local row = page:match('<tr class="target" data%-target="127.0.0.1">(.-)</tr>')
    assert.truthy(row)
    local values = {}
    for v in row:gmatch('data%-value="([^"]*)"') do values[#values + 1] = v end
    -- sent, received, loss, min, avg, median, p95, max, mdev
    assert.same({ "120", "68" }, { values[1], values[2] })
    assert.near(100 * 52 / 120, tonumber(values[3]), 1e-6)
    assert.equal("1", values[4])
    assert.equal("20", values[8])
  end)
end)

-- JSON lines of a synthetic sweep of a block: every address once, with a
-- status chosen by `status_of(offset)`.
local function sweep_lines(prefix_text, first, count, status_of, addr_of)
  local lines = {}
  for off = 0, count - 1 do
    local status = status_of(off)
    local addr = addr_of(first, off)
    if status == "reply" then
      lines[#lines + 1] = string.format('{"type":"result","target":"%s","addr":"%s",'
        .. '"status":"reply","rtt_ms":%.3f,"time":1800000000}', prefix_text, addr,
        0.01 + off % 100)
    else
      lines[#lines + 1] = string.format('{"type":"result","target":"%s","addr":"%s",'
        .. '"status":"%s","time":1800000000}', prefix_text, addr, status)
    end
  end
  return table.concat(lines, "\n") .. "\n"
end

local function v4(base, off)
  local a = base + off
  return string.format("%d.%d.%d.%d", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255)
end

-- The cells drawn: the area of every run, and the area per fill colour.
local function coverage(root)
  local area, by_fill = 0, {}
  for _, rect in ipairs(xml.by_class(root, "cell-run")) do
    local a = tonumber(rect.attr.width) * tonumber(rect.attr.height)
    area = area + a
    by_fill[rect.attr.fill] = (by_fill[rect.attr.fill] or 0) + a
  end
  return area, by_fill
end

describe("icmprun plot map", function()
  -- 127.0.0.0/16: the /24s whose third octet is a multiple of 4 time out,
  -- 127.0.1.0/24 is unreachable, every other address answers.
  local function status16(off)
    local third = off >> 8
    if third == 1 then return "unreachable" end
    if third % 4 == 0 then return "timeout" end
    return "reply"
  end
  local lines16

  setup(function()
    lines16 = sweep_lines("127.0.0.0/16", 127 << 24, 65536, status16, v4)
  end)

  it("draws a /16 as 256 x 256 cells: 65,536 cells' worth of coverage", function()
    local r = run({ "plot", "map" }, lines16)
    assert.equal(0, r.code, r.stderr)
    local root = parse(r.stdout)
    local cells = xml.by_class(root, "cells")[1]
    assert.equal("256", cells.attr["data-cols"])
    assert.equal("256", cells.attr["data-rows"])
    assert.equal("1", cells.attr["data-addresses-per-cell"])
    local area, by_fill = coverage(root)
    assert.equal(65536, area)
    -- 64 /24s time out, one is unreachable, 191 answer.
    assert.equal(64 * 256, by_fill[colors.STATUS.timeout])
    assert.equal(256, by_fill[colors.STATUS.unreachable])
    assert.equal(191 * 256, by_fill[colors.STATUS.reply])
  end)

  it("walks a true Hilbert curve: every cell once, each step to a neighbour", function()
    -- Checked against the curve's definition, not against the module's own
    -- other function: the 2 x 2 base case, then for 256 x 256 a bijection
    -- whose consecutive cells touch and whose aligned runs of 4^k fill
    -- squares.
    local base = {}
    for d = 0, 3 do
      local x, y = hilbert.d2xy(2, d)
      base[#base + 1] = x .. "," .. y
    end
    assert.same({ "0,0", "0,1", "1,1", "1,0" }, base)
    local side, seen = 256, {}
    local px, py
    for d = 0, side * side - 1 do
      local x, y = hilbert.d2xy(side, d)
      assert.is_true(x >= 0 and x < side and y >= 0 and y < side)
      local key = y * side + x
      assert.is_nil(seen[key], "cell visited twice")
      seen[key] = true
      assert.equal(d, hilbert.xy2d(side, x, y))
      if px then
        assert.equal(1, math.abs(x - px) + math.abs(y - py), "a jump at " .. d)
      end
      px, py = x, y
      if d % 256 == 255 then -- the run of a /24: one 16 x 16 square
        local x0, y0 = hilbert.d2xy(side, d - 255)
        assert.equal(x0 // 16, x // 16)
        assert.equal(y0 // 16, y // 16)
      end
    end
  end)

  it("puts each address where the Hilbert curve does, and each /24 in a 16 x 16 square", function()
    local root = parse(run({ "plot", "map" }, lines16).stdout)
    -- The unreachable /24 (offsets 256..511) is the square of curve cells
    -- 256..511: every run of its colour lies inside that square.
    local x0, y0 = hilbert.d2xy(256, 256)
    local sx, sy = x0 // 16 * 16, y0 // 16 * 16
    for _, rect in ipairs(xml.by_class(root, "cell-run")) do
      if rect.attr.fill == colors.STATUS.unreachable then
        local x, y, w = tonumber(rect.attr.x), tonumber(rect.attr.y), tonumber(rect.attr.width)
        assert.is_true(x >= sx and x + w <= sx + 16 and y >= sy and y < sy + 16)
      end
    end
    local grid = xml.by_class(root, "grid")[1]
    assert.equal("24", grid.attr["data-prefix-len"])
    assert.equal(30, #grid.children) -- 15 vertical and 15 horizontal lines
  end)

  it("has a legend entry per status with its cells, and one for cells without results", function()
    local root = parse(run({ "plot", "map" }, lines16).stdout)
    local entries = xml.by_class(root, "legend-entry")
    local seen = {}
    for _, e in ipairs(entries) do
      seen[#seen + 1] = e.attr["data-status"]
      if e.attr["data-status"] == "reply" then
        assert.equal(tostring(191 * 256), e.attr["data-cells"])
      end
    end
    assert.same({ "reply", "timeout", "unreachable", "ttl_exceeded", "error", "none" }, seen)
  end)

  it("downsamples past --size, each cell an aligned run of addresses", function()
    local root = parse(run({ "plot", "map", "--size", "16" }, lines16).stdout)
    local cells = xml.by_class(root, "cells")[1]
    assert.equal("16", cells.attr["data-cols"])
    assert.equal("256", cells.attr["data-addresses-per-cell"])
    local area, by_fill = coverage(root)
    assert.equal(256, area)
    assert.equal(64, by_fill[colors.STATUS.timeout])
  end)

  it("colours cells by RTT on a perceptual scale with a legend", function()
    local root = parse(run({ "plot", "map", "--color", "rtt" }, lines16).stdout)
    assert.equal(65536, (coverage(root)))
    assert.equal(10, #xml.by_class(root, "legend-scale"))
    local _, by_fill = coverage(root)
    assert.equal(65 * 256, by_fill[colors.STATUS.timeout]) -- no reply: 64 + 1 /24s
  end)

  it("maps an IPv6 /112 and an odd number of host bits", function()
    local function v6(_, off)
      return string.format("fd00::%x:%x", 7, off)
    end
    local lines = sweep_lines("fd00::7:0/112", 0, 65536,
      function(off) return off % 3 == 0 and "timeout" or "reply" end, v6)
    local root = parse(run({ "plot", "map" }, lines).stdout)
    assert.equal(65536, (coverage(root)))
    -- A /17 holds 2^15 addresses: a 256 x 128 rectangle, half the curve.
    lines = sweep_lines("127.0.0.0/17", 127 << 24, 32768, function() return "reply" end, v4)
    root = parse(run({ "plot", "map" }, lines).stdout)
    local cells = xml.by_class(root, "cells")[1]
    assert.equal("256", cells.attr["data-cols"])
    assert.equal("128", cells.attr["data-rows"])
    local area, by_fill = coverage(root)
    assert.equal(32768, area)
    assert.equal(32768, by_fill[colors.STATUS.reply])
  end)

  it("counts results outside the prefix without drawing them", function()
    local m = assert(map.new({ prefix = "127.0.0.0/24" }))
    assert.is_true(m:add({ addr = "127.0.0.5", status = "reply", rtt = 1 }))
    assert.is_true(m:add({ addr = "127.0.1.5", status = "reply", rtt = 1 }))
    assert.is_true(m:add({ addr = "::1", status = "reply", rtt = 1 }))
    assert.equal(2, m.outside)
    local root = parse(m:svg())
    local _, by_fill = coverage(root)
    assert.equal(1, by_fill[colors.STATUS.reply])
    assert.matches("2 outside 127.0.0.0/24", m:svg())
  end)

  it("refuses what it cannot map, with a message", function()
    local r = run({ "plot", "map", "--prefix", "2001:db8::/64" }, "")
    assert.equal(2, r.code)
    assert.matches("at most 2%^32 addresses", r.stderr)
    r = run({ "plot", "map" }, result_line("127.0.0.1", T0, 1) .. "\n")
    assert.equal(2, r.code)
    assert.matches("give the prefix", r.stderr)
    r = run({ "plot", "map", "--size", "300" }, "")
    assert.equal(2, r.code)
    assert.matches("a power of two", r.stderr)
  end)

  it("writes a PNG of the cells through lua-zlib", function()
    local out = os.tmpname() .. ".png"
    local r = run({ "plot", "map", "-o", out }, lines16)
    assert.equal(0, r.code, r.stderr)
    local f = assert(io.open(out, "rb"))
    local png = f:read("a")
    f:close()
    os.remove(out)
    assert.equal("\137PNG\r\n\26\n", png:sub(1, 8))
    local width, height, depth, kind = string.unpack(">I4I4BB", png, 17)
    assert.same({ 512, 512, 8, 2 }, { width, height, depth, kind })
    local idat_len = string.unpack(">I4", png, 34)
    assert.equal("IDAT", png:sub(38, 41))
    local raw = require("zlib").inflate()(png:sub(42, 41 + idat_len))
    assert.equal((1 + 512 * 3) * 512, #raw)
    -- Each cell is 2 x 2 pixels in its status colour, where the SVG has it
    -- (the unreachable /24's square, a timed-out /24's, an answering
    -- one's), but for the white grid between the /24s' squares, drawn over
    -- the first pixels of a square's first row and column.
    local image = assert(png_reader.decode(png))
    local function hex(px, py)
      return string.format("#%02x%02x%02x", image.pixel(px, py))
    end
    local function hex_at(off)
      local x, y = hilbert.d2xy(256, off)
      return hex(2 * x + 1, 2 * y + 1)
    end
    for col = 1, 15 do
      assert.equal("#ffffff", hex(32 * col, 7))
      assert.equal("#ffffff", hex(7, 32 * col))
    end
    for _, off in ipairs({ 256, 300, 511 }) do
      assert.equal(colors.STATUS.unreachable, hex_at(off))
    end
    assert.equal(colors.STATUS.timeout, hex_at(4 * 256 + 17))
    assert.equal(colors.STATUS.reply, hex_at(2 * 256 + 17))
    assert.equal(colors.STATUS.reply, hex_at(65535))
  end)
end)
