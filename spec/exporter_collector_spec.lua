-- SPDX-License-Identifier: MIT

--- The exporter's paced garbage collector (icmprun.exporter.collector): Lua's
-- automatic collector is stopped, each period collects for at most its budget,
-- every cycle ends and gives the memory back, and a new cycle waits for the
-- heap to grow. Driven by a fake clock and a fake sleep, so the figures do
-- not depend on the machine. No probe is sent.
local collector = require "icmprun.exporter.collector"

-- A clock that moves `tick` milliseconds each time it is read.
local function fake_clock(tick)
  local t = 0
  return function()
    t = t + tick
    return t
  end
end

-- Garbage: `n` tables of a few hundred bytes that nothing refers to.
local function make_garbage(n)
  for i = 1, n do
    local _ = { i, tostring(i), { i } }
  end
end

describe("the exporter's paced collector", function()
  after_each(function()
    collectgarbage("restart")
    collectgarbage("incremental")
  end)

  it("stops collecting when its budget is spent, before the cycle ends", function()
    collectgarbage("incremental", 0, 0, 1)
    collectgarbage("stop")
    collectgarbage()
    collectgarbage("stop")
    make_garbage(200000)
    local reads = 0
    local clock = fake_clock(0.01)
    local ended = collector.step(function()
      reads = reads + 1
      return clock()
    end, 0.25)
    -- 0.25 ms at 0.01 ms a read: the first read sets the deadline, then one
    -- read after each basic step until it passes.
    assert.is_false(ended)
    assert.equal(26, reads)
  end)

  it("ends a cycle in budgeted periods and gives the memory back", function()
    collectgarbage()
    local live = collectgarbage("count")
    make_garbage(300000) -- Tens of megabytes, with the collector stopped.
    collectgarbage("incremental", 0, 0, 1)
    collectgarbage("stop")
    make_garbage(300000)
    local peak = collectgarbage("count")
    assert.is_true(peak > live + 10000)
    -- Two cycles: the one that was under way when the collector stopped
    -- may have started before the garbage was made.
    local periods, cycles = 0, 0
    local clock = fake_clock(0.001)
    while cycles < 2 do
      periods = periods + 1
      if collector.step(clock, 0.25) then
        cycles = cycles + 1
      end
      assert.is_true(periods < 100000, "the cycles never ended")
    end
    assert.is_true(periods > 1, "one period did the whole cycle: nothing was paced")
    assert.is_true(collectgarbage("count") < live + (peak - live) / 4)
  end)

  it("runs for ever with the automatic collector off, and keeps the heap bounded", function()
    collectgarbage()
    local live = collectgarbage("count")
    local periods, highest = 0, 0
    local clock = fake_clock(0.002)
    local fake = {
      now = clock,
      sleep = function(ms)
        assert.equal(collector.PERIOD_MS, ms)
        assert.is_false(collectgarbage("isrunning"))
        periods = periods + 1
        make_garbage(200) -- Some garbage each period, as scrapes make.
        highest = math.max(highest, collectgarbage("count"))
        if periods == 5000 then
          error("enough", 0)
        end
      end,
    }
    local ok, err = pcall(collector.run, fake)
    assert.is_false(ok)
    assert.equal("enough", err)
    -- 5,000 periods made a million tables, 3 million objects: some 200 MB
    -- unless they are collected. Paced, the heap stays within a pause's
    -- growth (twice what a cycle leaves) and the garbage made while a cycle
    -- runs (here 2.6 times the live heap at most).
    assert.is_true(highest < live * 3 + 1024, "highest " .. highest .. " KB, live " .. live)
  end)
end)
