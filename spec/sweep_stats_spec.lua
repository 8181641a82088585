-- SPDX-License-Identifier: MIT

--- icmprun.counters() adds up after a sweep is left early: every probe the
-- engine took ends in exactly one result, and probes cancelled before they
-- were sent have a counter of their own, so that
-- sent + cancelled + send_errors == results by arithmetic. Loopback only.
local icmprun = require "icmprun"

--- The change of every counter between two icmprun.counters() tables.
local function delta(before, after)
  local d = {}
  for k, v in pairs(after) do
    d[k] = v - (before[k] or 0)
  end
  return d
end

--- Asserts the sum over a delta of counters, with nothing pending.
local function assert_adds_up(d, after)
  assert.equal(0, after.pending, "probes still pending")
  assert.equal(d.results, d.sent + d.cancelled + d.send_errors,
    string.format("results %d ~= sent %d + cancelled %d + send_errors %d", d.results,
      d.sent, d.cancelled, d.send_errors))
end

describe("icmprun.counters() after a sweep is left early", function()
  it("counts probes stopped before they were sent as cancelled, not sent", function()
    local before = icmprun.counters()
    local handed, statuses = 0, {}
    icmprun.run(function()
      local it, s = icmprun.sweep("127.0.0.0/16", { rate = 0 })
      -- Both tasks run in the same turn of the loop: the first queues probes
      -- in the engine and waits, the second stops the sweep before the loop
      -- has had a chance to send any of them.
      local puller = icmprun.spawn(function()
        for r in it, s do
          handed = handed + 1
          statuses[r.status .. " " .. tostring(r.err)] = true
        end
      end)
      icmprun.spawn(function()
        s:stop()
      end)
      puller:join()
    end)
    local after = icmprun.counters()
    local d = delta(before, after)
    assert_adds_up(d, after)
    assert.equal(0, d.sent)
    assert.is_true(d.cancelled > 0, "nothing was queued")
    -- stop() hands out the cancelled probes' results: each exactly once.
    assert.equal(d.results, handed)
    assert.same({ ["error operation canceled"] = true }, statuses)
  end)

  it("adds up after break outside a task", function()
    local before = icmprun.counters()
    local n = 0
    for _ in icmprun.sweep("127.0.0.0/16", { rate = 0 }) do
      n = n + 1
      if n == 1000 then
        break
      end
    end
    local after = icmprun.counters()
    local d = delta(before, after)
    assert_adds_up(d, after)
    assert.is_true(d.sent >= 1000)
    assert.is_true(d.sent < 65536, "the whole sweep was sent")
  end)

  it("adds up after break inside a task, and a ping goes on", function()
    local before, after = icmprun.counters(), nil
    icmprun.run(function()
      local n = 0
      for _ in icmprun.sweep({ "127.0.0.0/16", "::1" }, { rate = 0 }) do
        n = n + 1
        if n == 300 then
          break
        end
      end
      after = icmprun.counters()
      assert.equal("reply", icmprun.ping("127.0.0.1").status)
    end)
    assert_adds_up(delta(before, after), after)
  end)

  it("hands out one result for each probe the engine took after stop()", function()
    local before = icmprun.counters()
    local handed = 0
    icmprun.run(function()
      local it, s = icmprun.sweep("127.0.0.0/16", { rate = 0 })
      for _ in it, s do
        handed = handed + 1
        if handed == 500 then
          s:stop()
        end
      end
    end)
    local after = icmprun.counters()
    local d = delta(before, after)
    assert_adds_up(d, after)
    assert.equal(d.results, handed)
  end)
end)
