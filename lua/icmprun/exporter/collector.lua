-- SPDX-License-Identifier: MIT

--- Lua's garbage collector, paced by the exporter so that it never holds
-- the loop for long.
--
-- Left to itself, Lua's incremental collector does work in proportion to
-- each allocation: a scrape's 30 KB tail string bought a step that swept the
-- whole heap, and every minute or two a single turn of the loop freed 8 MB
-- in 10-18 ms while the probes due meanwhile waited (traced: the turns that
-- held the loop that long were the ones where Lua's heap shrank, and with
-- the collector stopped there were none). Here the automatic collector is
-- stopped, and `run` does the same work a little at a time: basic steps
-- (one object traversed, or a hundred swept) for at most `BUDGET_MS` of
-- every `PERIOD_MS`, and between cycles it waits, as the collector's own
-- pause does, until the heap has grown by `PAUSE` of what the last cycle
-- left. The collector's total work is the same; only when it runs changes.
-- @module icmprun.exporter.collector
local M = {}

--- Milliseconds of collection at most per period.
M.BUDGET_MS = 0.25
--- Milliseconds from one period's start to the next.
M.PERIOD_MS = 5
--- Growth of the heap, as a fraction of what the last cycle left, before
-- the next cycle starts (Lua's default pause of 200 waits for 1.0).
M.PAUSE = 1.0

--- Collects for at most `budget_ms` of the clock `now` (milliseconds):
-- basic steps until the budget is spent or the cycle ends.
-- @treturn boolean whether a cycle ended
function M.step(now, budget_ms)
  local deadline = now() + budget_ms
  repeat
    if collectgarbage("step", 0) then
      return true
    end
  until now() >= deadline
  return false
end

--- Runs the paced collector in the calling task, for ever. Stops the
-- automatic collector first (for the whole Lua state).
-- @tparam table icmprun the module (`now`, `sleep`)
function M.run(icmprun)
  -- The smallest basic step: one singlestep of Lua's collector.
  collectgarbage("incremental", 0, 0, 1)
  collectgarbage("stop")
  local resume_at = 0 -- Heap size (KB) that starts the next cycle.
  local collecting = true
  while true do
    if not collecting and collectgarbage("count") >= resume_at then
      collecting = true
    end
    if collecting and M.step(icmprun.now, M.BUDGET_MS) then
      collecting = false
      resume_at = collectgarbage("count") * (1 + M.PAUSE)
    end
    icmprun.sleep(M.PERIOD_MS)
  end
end

return M
