-- SPDX-License-Identifier: MIT

--- The exporter's scrapes rendered in C (`icmprun.render`, through
-- `metrics.render_bodies`): the same bytes as the Lua renderer, each target
-- copied whole while the loop runs between slices, gzip that inflates to the
-- same text, and a live exporter whose counters agree from scrape to scrape.
-- Probes go to loopback only.
local icmprun = require "icmprun"
local cli = require "cli"
local exporter = require "exporter"
local metrics = require "icmprun.exporter.metrics"
local prometheus = require "icmprun.report.prometheus"
local zlib = require "zlib"

-- Targets whose counters cover what the text can hold: every status, TTLs
-- and none, RTTs in every bucket and above the last, sums that are whole
-- and that need 17 digits, label values to escape.
local function varied_targets(n, buckets)
  local statuses = { "reply", "timeout", "reply", "error", "unreachable", "reply",
    "ttl_exceeded", "reply" }
  local targets = {}
  for i = 1, n do
    local labels = { site = 'a"b\\c\n' .. i }
    if i % 3 == 0 then
      labels.zone = "z" .. i
    end
    local t = metrics.new_target(metrics.label_key("host-" .. i, "127.0." .. (i // 250) .. "."
      .. (i % 250 + 1), labels), buckets)
    for k = 1, i % #statuses do
      t:on_send()
      -- RTTs from microseconds to beyond the last bucket, most not exact in binary.
      t:record({ status = statuses[k], rtt = (i * 0.0137 * k) ^ (1 + k % 3), ttl = 60 + k })
    end
    if i % 5 == 0 then
      t:on_send() -- One in flight: sent, no result yet.
    end
    t:add_duplicates(i % 4) -- Duplicate replies from its address, as the exporter counts them.
    targets[i] = t
  end
  return targets
end

-- Runs fn as a task of icmprun and returns its results.
local function in_task(fn)
  return icmprun.run(fn)
end

local EXTRA = { "# HELP x_seconds A gauge after the engine's lines.", "# TYPE x_seconds gauge",
  "x_seconds 0.1" }

describe("the exporter's C renderer", function()
  it("writes the bytes of the Lua renderer, and gzip that inflates to them", function()
    for _, buckets in ipairs({ prometheus.histogram().buckets, { 0.001, 0.01, 0.1 } }) do
      local targets = varied_targets(700, buckets)
      local engine = icmprun.counters()
      local bodies = in_task(function()
        return metrics.render_bodies(targets, buckets, engine, EXTRA,
          function() return true, true end)
      end)
      local expected = metrics.render(targets, engine, EXTRA)
      -- Each body one text in C memory, not Lua strings.
      assert.equal(1, #bodies.plain)
      assert.equal(1, #bodies.gzip)
      assert.equal("userdata", type(bodies.plain[1]))
      local text = bodies.plain[1]:string()
      assert.equal(#expected, #text)
      assert.equal(#text, bodies.plain[1]:size())
      assert.is_true(expected == text, "the C text differs from the Lua text")
      assert.is_true(zlib.inflate()(bodies.gzip[1]:string()) == expected,
        "the gzip body does not inflate to the text")
      local check = exporter.promtool_check(text)
      assert.equal(0, check.code, check.stdout .. check.stderr)
    end
  end)

  it("writes what the Lua renderer writes with no targets, or nothing at all", function()
    local buckets = prometheus.histogram().buckets
    local none, tail_only = in_task(function()
      return metrics.render_bodies({}, buckets),
        metrics.render_bodies({}, buckets, icmprun.counters(), EXTRA)
    end)
    assert.equal(0, none.plain[1]:size())
    assert.equal("", none.plain[1]:string())
    assert.equal(metrics.render({}, icmprun.counters(), EXTRA), tail_only.plain[1]:string())
  end)

  it("makes only the bodies asked for", function()
    local buckets = prometheus.histogram().buckets
    local targets = varied_targets(50, buckets)
    local gzip_only = in_task(function()
      return metrics.render_bodies(targets, buckets, nil, nil, function() return false, true end)
    end)
    assert.is_nil(gzip_only.plain)
    assert.equal(metrics.render(targets), zlib.inflate()(gzip_only.gzip[1]:string()))
  end)

  it("copies each target whole while the loop runs between slices", function()
    local buckets = prometheus.histogram().buckets
    local targets = {}
    for i = 1, 3000 do
      targets[i] = metrics.new_target(metrics.label_key("h" .. i, "127.0.0.1", {}), buckets)
      targets[i]:on_send()
      targets[i]:record({ status = "reply", rtt = 1, ttl = 64 })
    end
    local saved = metrics.SNAPSHOT_SLICE_MS
    metrics.SNAPSHOT_SLICE_MS = 0 -- A slice of 32 targets a turn.
    local bodies = in_task(function()
      -- Probes go on meanwhile: every target gets one more result a turn.
      local rendering = true
      local prober = icmprun.spawn(function()
        while rendering do
          for _, t in ipairs(targets) do
            t:on_send()
            t:record({ status = "reply", rtt = 2, ttl = 64 })
          end
          icmprun.sleep(0)
        end
      end)
      local b = metrics.render_bodies(targets, buckets)
      rendering = false
      prober:join()
      return b
    end)
    metrics.SNAPSHOT_SLICE_MS = saved
    local s = exporter.parse(bodies.plain[1]:string())
    local first, last
    for i = 1, 3000 do
      local labels = '{host="h' .. i .. '",ip="127.0.0.1"}'
      local sent = s["smokeping_requests_total" .. labels]
      assert.equal(sent, s["icmprun_results_total" .. labels:sub(1, -2) .. ',status="reply"}'])
      assert.equal(sent, s["smokeping_response_duration_seconds_count" .. labels])
      first, last = first or sent, sent
    end
    -- The loop ran between slices: later targets were copied after more results.
    assert.equal(1, first)
    assert.is_true(last > 1, "no turn of the loop between the slices")
  end)

  it("refuses calls while the background thread has the job, and frees a job closed "
    .. "meanwhile", function()
    local render = require "icmprun.render"
    -- A layout of the caller's own: short names, to see them in the text.
    local layout = {
      headers = { "\n# A", "\n# B", "\n# C", "\n# D", "\n# E", "\n# F" },
      requests_name = "\nr", results_name = "\ns", statuses = metrics.STATUSES,
      status_labels = { ",a} ", ",b} ", ",c} ", ",d} ", ",e} " }, error_status = 5,
      bucket_name = "\nb", les = { ",le} " }, sum_name = "\nsum", count_name = "\nn",
      ttl_name = "\nt", send_errors_name = "\ne", duplicates_name = "\nd",
    }
    local targets = varied_targets(2000, prometheus.histogram().buckets)
    local busy_err, text = in_task(function()
      local job = render.new(layout)
      assert.equal(#targets + 1, job:add(targets, 1, 1e9))
      assert(job:start(""))
      local ok, err = pcall(job.text, job, "plain")
      job:close() -- Still on the background thread: freed when its step ends.
      icmprun.sleep(200)
      local again = render.new(layout)
      again:add(targets, 1, 1e9)
      assert(again:start(""))
      while again:ready() == false do
        icmprun.sleep(1)
      end
      local text <close> = again:text("plain")
      -- Moved out of the job, not copied: nothing is left there.
      assert(again:size("plain") == 0 and again:text("plain"):size() == 0)
      again:close()
      return not ok and err, text:string()
    end)
    assert.matches("busy on the background thread", busy_err)
    assert.equal("# A\nr{host=\"host-1\",", text:sub(1, 20))
    assert.equal(1, select(2, text:gsub("\n# E", "")))
  end)

  it("gives texts that refuse use once closed, and take a second close as no error",
    function()
    local buckets = prometheus.histogram().buckets
    local targets = varied_targets(300, buckets)
    local expected = metrics.render(targets)
    local results = in_task(function()
      local bodies = metrics.render_bodies(targets, buckets, nil, nil,
        function() return true, false end)
      local text = bodies.plain[1]
      local out = { size = text:size(), string = text:string() }
      text:close()
      text:close() -- Nothing more to free: no error, no double free.
      out.string_err = select(2, pcall(text.string, text))
      out.size_err = select(2, pcall(text.size, text))
      do
        local scoped <close> = metrics.render_bodies({}, buckets).plain[1]
        out.scoped = scoped
        out.empty = scoped:string()
      end
      out.scoped_err = select(2, pcall(out.scoped.string, out.scoped))
      out.wrong = select(2, pcall(text.size, {}))
      return out
    end)
    assert.equal(#expected, results.size)
    assert.is_true(expected == results.string, "the text's string differs from the Lua text")
    assert.equal("", results.empty)
    assert.matches("render: the text is closed", results.string_err, 1, true)
    assert.matches("render: the text is closed", results.size_err, 1, true)
    assert.matches("render: the text is closed", results.scoped_err, 1, true) -- By <close>.
    assert.matches("icmprun.render.text expected", results.wrong, 1, true)
  end)

  it("refuses a layout it cannot hold, naming what is wrong", function()
    local render = require "icmprun.render"
    assert.has_error(function() render.new({}) end,
      "render.new: layout.headers must be a list of strings")
    local ok, err = pcall(render.new, { headers = { "a", "b", "c", "d", "e", "f" },
      status_labels = { "x" }, statuses = { "reply", "error" } })
    assert.is_false(ok)
    assert.matches("statuses and status_labels differ", err)
  end)
end)

describe("icmprun exporter rendering in C", function()
  local server, path
  after_each(function()
    if server and server.stop then
      server:stop()
    end
    if path then
      os.remove(path)
    end
    server, path = nil, nil
  end)

  it("serves counters that agree within and across scrapes, plain and gzip", function()
    path = cli.temp_file(exporter.many_targets(400, "50ms"), ".yml")
    server = exporter.start({ "--config", path })
    assert.is_nil(server.failed, server.output)
    local previous = {}
    for round = 1, 6 do
      exporter.sleep(0.3)
      local text
      if round % 2 == 0 then
        local out = os.tmpname()
        local r = cli.sh(string.format("curl -s --compressed -D - -o %s %s/metrics", out,
          server.url))
        assert.matches("[Cc]ontent%-[Ee]ncoding: gzip", r.stdout)
        local f = assert(io.open(out, "rb"))
        text = f:read("a")
        f:close()
        os.remove(out)
      else
        local _, body = server:request("/metrics")
        text = body
      end
      local s = exporter.parse(text)
      local total_sent = 0
      for i = 1, 400 do
        local labels = string.format('{host="127.1.%d.%d",ip="127.1.%d.%d"}', i // 250,
          i % 250 + 1, i // 250, i % 250 + 1)
        local sent = s["smokeping_requests_total" .. labels]
        local ended = 0
        for _, status in ipairs(metrics.STATUSES) do
          ended = ended + s["icmprun_results_total" .. labels:sub(1, -2) .. ',status="'
            .. status .. '"}']
        end
        -- One probe at a time per target: at most one sent and not ended.
        assert.is_true(sent - ended == 0 or sent - ended == 1, labels)
        assert.equal(s["icmprun_results_total" .. labels:sub(1, -2) .. ',status="reply"}'],
          s["smokeping_response_duration_seconds_count" .. labels])
        assert.is_true(sent >= (previous[labels] or 0), "a counter went back: " .. labels)
        previous[labels] = sent
        total_sent = total_sent + sent
      end
      assert.is_true(total_sent > 0)
      assert.is_number(s.icmprun_exporter_max_send_delay_seconds)
      assert.equal(0, exporter.promtool_check(text).code)
    end
  end)

  it("answers concurrent scrapes, gzip and plain, alike", function()
    path = cli.temp_file(exporter.many_targets(2000, "1s"), ".yml")
    server = exporter.start({ "--config", path })
    assert.is_nil(server.failed, server.output)
    exporter.sleep(1)
    local outs = {}
    local cmds = {}
    for i = 1, 6 do
      outs[i] = os.tmpname()
      cmds[i] = string.format("curl -s %s -o %s %s/metrics &", i % 2 == 0 and "--compressed"
        or "", outs[i], server.url)
    end
    cli.sh(table.concat(cmds, " ") .. " wait")
    for i = 1, 6 do
      local f = assert(io.open(outs[i], "rb"))
      local text = f:read("a")
      f:close()
      os.remove(outs[i])
      local s = exporter.parse(text)
      assert.equal(2000, s.icmprun_exporter_targets, "scrape " .. i)
      assert.truthy(text:find("\nsmokeping_send_errors_total{host=\"127.1.8.1\"", 1, true))
    end
    assert.is_true(server:alive())
  end)
end)
