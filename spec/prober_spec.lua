-- SPDX-License-Identifier: MIT

--- icmprun.prober: many targets on fixed schedules from one timer, their
-- counters and history kept in C (the exporter's probing).
local icmprun = require "icmprun"

-- Runs fn in a task and returns what it returns.
local function run(fn)
  local out
  icmprun.run(function()
    out = table.pack(fn())
  end)
  return table.unpack(out, 1, out.n)
end

describe("icmprun.prober", function()
  it("probes each target on its own grid, one probe in flight, and counts it in C", function()
    local sends, results = {}, {}
    local p, a, b, started = run(function()
      local started = icmprun.now()
      local p = icmprun.prober{
        buckets = { 0.001, 0.01, 0.1 },
        on_send = function(id, late)
          assert(late >= 0)
          sends[#sends + 1] = { id, icmprun.now() - started }
        end,
        on_result = function(id, r)
          results[#results + 1] = { id, r.status, r.addr }
        end,
      }
      local a = p:add("127.0.0.1", { timeout = 500 }, 100, 0)
      local b = p:add("::1", { timeout = "500ms" }, "250ms", "30ms")
      icmprun.sleep(640)
      local targets, in_flight = p:count()
      assert.same({ 2, 0 }, { targets, in_flight })
      p:remove(a)
      p:remove(b)
      return p, a, b, started
    end)
    assert.is_number(started)
    -- a at 0, 100, ..., 600 ms; b at 30, 280, 530 ms. Never before its turn
    -- (half a millisecond early at most: the timer's unit is a millisecond),
    -- and none skipped or doubled.
    local per = { [a] = {}, [b] = {} }
    for _, s in ipairs(sends) do
      table.insert(per[s[1]], s[2])
    end
    assert.equal(7, #per[a])
    assert.equal(3, #per[b])
    for k, at in ipairs(per[a]) do
      assert.is_true(at >= (k - 1) * 100 - 1, string.format("a's probe %d at %.3f", k, at))
    end
    for k, at in ipairs(per[b]) do
      assert.is_true(at >= 30 + (k - 1) * 250 - 1, string.format("b's probe %d at %.3f", k, at))
    end
    -- Every probe sent had its result, each of its own target.
    assert.equal(#sends, #results)
    for _, r in ipairs(results) do
      assert.equal("reply", r[2])
      assert.equal(r[1] == a and "127.0.0.1" or "::1", r[3])
    end
    -- Removed: no counters any more, and the id is refused.
    assert.is_nil(run(function() return p:stats(a) end))
    assert.has_error(function() p:remove(a) end)
    p:close()
  end)

  it("counts first probes from the end of the turn that added them", function()
    -- A turn that adds many targets runs long (the exporter's 10,000 take
    -- tens of milliseconds, longer with a cycle of Lua's collector in
    -- them). Counted from each add, the first probes fell due while the
    -- loop was still busy and left late all at once at its end.
    local N, BUSY_MS = 100, 150
    local sends = {}
    local late_ms, ids = run(function()
      local turn_end
      local p = icmprun.prober{
        on_send = function(id) sends[#sends + 1] = { id, icmprun.now() - turn_end } end,
      }
      local ids = {}
      for i = 1, N do
        ids[i] = p:add("127.0.0.1", { timeout = 500 }, 1000, (i - 1) * 1000 / N)
      end
      -- The rest of a long turn.
      local t = icmprun.now()
      repeat until icmprun.now() - t >= BUSY_MS
      turn_end = icmprun.now()
      icmprun.sleep(400)
      local late = p:take_max_delay()
      p:close()
      return late, ids
    end)
    local first = {}
    for _, s in ipairs(sends) do
      first[s[1]] = first[s[1]] or s[2]
    end
    -- Spread over the interval from the turn's end: target k's first probe
    -- goes (k - 1) * 10 ms after it (a millisecond early at most), not at
    -- once; none of them BUSY_MS late.
    for k = 1, 40 do
      local at = first[ids[k]]
      assert.is_number(at, "no probe of target " .. k)
      assert.is_true(at >= (k - 1) * 1000 / N - 1, string.format("target %d's first probe "
        .. "%.3f ms after the turn", k, at))
    end
    assert.is_true(late_ms < BUSY_MS / 2, string.format("probes %.1f ms late", late_ms))
  end)

  it("keeps counters and history as the exporter's metrics and status page read them", function()
    local stats, history = run(function()
      local p = icmprun.prober{ buckets = { 0.001, 0.01, 0.1 } }
      local id = p:add("127.0.0.1", { timeout = 500 }, 20, 0)
      icmprun.sleep(110)
      p:remove(id)
      local other = p:add(nil, nil, nil) -- counters only
      for _, r in ipairs({ { status = "reply", rtt = 0.5, ttl = 64 },
        { status = "reply", rtt = 50, ttl = 62 }, { status = "timeout" } }) do
        p:count_send(other)
        p:record(other, r, 1800000000 + 5)
      end
      p:add_duplicates(other, 2)
      local s, h = p:stats(other), p:history(other)
      p:close()
      return s, h
    end)
    assert.same({ reply = 2, timeout = 1, unreachable = 0, ttl_exceeded = 0, error = 0 },
      stats.results)
    assert.equal(3, stats.sent)
    assert.same({ 1, 0, 1, 0 }, stats.counts)
    assert.near(0.0505, stats.rtt_sum, 1e-12)
    assert.equal(62, stats.ttl)
    assert.equal(2, stats.duplicates)
    assert.equal(30000000, history.slot)
    assert.equal(3, history.sent)
    assert.equal(2, history.received)
    assert.equal(180 * 18, #history.ring)
    assert.same({ 0.5, 50 }, history.rtts)
  end)

  it("makes a refused send an error result, says so once, and goes on", function()
    local failing, results = {}, {}
    local stats = run(function()
      local p = icmprun.prober{
        on_failing = function(id, is_failing, why)
          failing[#failing + 1] = { id, is_failing, why }
        end,
        on_result = function(_, r)
          results[#results + 1] = r
        end,
      }
      -- 65510 bytes: over IPv4's maximum, so the engine refuses each probe.
      local id = p:add("127.0.0.1", { size = 65510, timeout = 200 }, 20, 0)
      icmprun.sleep(105)
      p:update(id, { size = 56, timeout = 200 }, 20)
      icmprun.sleep(105)
      local s = p:stats(id)
      p:close()
      return s
    end)
    assert.is_true(stats.results.error >= 4, tostring(stats.results.error))
    assert.is_true(stats.results.reply >= 4, tostring(stats.results.reply))
    assert.equal(stats.sent, stats.results.error + stats.results.reply)
    -- One report that the sends fail (with the reason), one that they work.
    assert.equal(2, #failing)
    assert.is_true(failing[1][2])
    assert.matches("size 65510 is over the IPv4 maximum", failing[1][3])
    assert.is_false(failing[2][2])
    assert.equal("error", results[1].status)
    assert.equal("EMSGSIZE", results[1].code)
    assert.matches("over the IPv4 maximum", results[1].err)
  end)

  it("survives callbacks that raise, remove their own target or close the prober", function()
    local errors, sends = {}, 0
    local after = run(function()
      local p
      p = icmprun.prober{
        on_send = function(id)
          sends = sends + 1
          if id == 1 then error("boom in on_send") end
        end,
        on_result = function(id)
          if id == 2 then p:remove(id) end -- its own target, from its callback
          if sends >= 12 then p:close() end
        end,
        on_error = function(message) errors[#errors + 1] = message end,
      }
      assert.equal(1, p:add("127.0.0.1", nil, 10, 0))
      assert.equal(2, p:add("127.0.0.2", nil, 10, 0))
      icmprun.sleep(300)
      return table.pack(pcall(p.count, p))
    end)
    -- Closed from a callback: it refuses work, and nothing ran after it.
    assert.is_false(after[1])
    assert.matches("closed", after[2])
    assert.is_true(#errors >= 5)
    assert.matches("boom in on_send", errors[1])
    assert.matches("stack traceback", errors[1])
    -- Target 2 went after its first result; target 1 went on until the close.
    assert.is_true(sends >= 12 and sends <= 14, tostring(sends))
  end)

  it("leaves a target removed during a scrape out of it, in both renderers", function()
    local metrics = require "icmprun.exporter.metrics"
    local buckets = { 0.001, 0.01 }
    local saved = metrics.SNAPSHOT_SLICE_MS
    metrics.SNAPSHOT_SLICE_MS = 0 -- A slice of 32 targets a turn.
    local c_text, lua_text = run(function()
      local p = icmprun.prober{ buckets = buckets }
      local targets = {}
      for i = 1, 200 do
        local id = p:add(nil, nil, nil)
        targets[i] = metrics.new_target(metrics.label_key("h" .. i, "127.0.0.1", {}), buckets,
          p, id)
        targets[i]:on_send()
        targets[i]:record({ status = "reply", rtt = 0.5, ttl = 64 })
      end
      -- Remove the last target while the snapshot is taken, slice by slice,
      -- as a reload between two turns of the loop would.
      local remover = icmprun.spawn(function()
        icmprun.sleep(0)
        p:remove(targets[200].id)
        targets[200].id = nil
      end)
      local bodies = metrics.render_bodies(targets, buckets)
      remover:join()
      local parts = {}
      for i, piece in ipairs(bodies.plain) do
        parts[i] = type(piece) == "string" and piece or piece:string()
      end
      return table.concat(parts), metrics.render(targets)
    end)
    metrics.SNAPSHOT_SLICE_MS = saved
    for _, text in ipairs({ c_text, lua_text }) do
      assert.matches('smokeping_requests_total{host="h199",ip="127.0.0.1"} 1\n', text, 1, true)
      assert.is_nil(text:find('host="h200"', 1, true))
    end
  end)

  it("refuses bad arguments with a message naming them", function()
    run(function()
      local p = icmprun.prober()
      assert.has_error(function() p:add("not an address", nil, 10) end,
        "bad argument #1 to 'add' (must be an IPv4 or IPv6 address)")
      assert.has_error(function() p:add("127.0.0.1", nil, 0) end)
      assert.has_error(function() p:add("127.0.0.1", nil, "25h") end)
      assert.has_error(function() p:add("127.0.0.1", { bogus = 1 }, 10) end)
      assert.has_error(function() p:record(99, { status = "reply" }) end)
      assert.has_error(function() icmprun.prober{ on_send = 1 } end)
      assert.has_error(function() icmprun.prober{ buckets = { 0.1, 0.01 } } end)
      p:close()
      p:close() -- twice is fine
    end)
  end)

  it("stops probing when it is collected, with probes in flight", function()
    local sent = run(function()
      local before = icmprun.counters().sent
      do
        local p = icmprun.prober()
        for i = 1, 50 do
          p:add("127.0.0." .. i, { timeout = 1000 }, 10, 0)
        end
        icmprun.sleep(25)
      end
      collectgarbage()
      collectgarbage()
      local at_gc = icmprun.counters().sent
      icmprun.sleep(100)
      return { at_gc - before, icmprun.counters().sent - at_gc }
    end)
    assert.is_true(sent[1] >= 50)
    assert.equal(0, sent[2])
  end)
end)
