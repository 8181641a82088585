-- SPDX-License-Identifier: MIT

--- Tasks through the Lua module: spawn, join, sleep, now, run, and how errors
-- and deadlocks end a run.
local icmprun = require "icmprun"
local cli = require "cli"

-- Upper bounds on time only catch what is absurd on a busy shared machine.
-- A timer fires at its deadline, never before, and on a quiet loop within
-- this many milliseconds after it (libuv counts whole milliseconds, and a
-- shared machine may be slow to schedule us).
local LATE_MS = 50

describe("icmprun tasks", function()
  describe("spawn", function()
    it("returns a task handle with a join method", function()
      local task = icmprun.spawn(function() end)
      assert.is_userdata(task)
      assert.is_function(task.join)
      assert.matches("^icmprun%.task", tostring(task))
      task:join()
    end)

    it("passes the extra arguments to the function, nils included", function()
      local task = icmprun.spawn(function(...)
        return table.pack(...)
      end, "a", nil, 3)
      assert.same({ n = 3, "a", nil, 3 }, task:join())
    end)

    it("runs the function only when the loop runs, not inside spawn", function()
      local ran = false
      local task = icmprun.spawn(function()
        ran = true
      end)
      assert.is_false(ran)
      task:join()
      assert.is_true(ran)
    end)
  end)

  describe("join", function()
    it("returns every result of the function, in order", function()
      local task = icmprun.spawn(function()
        return 1, "two", nil, 4
      end)
      assert.same({ n = 4, 1, "two", nil, 4 }, table.pack(task:join()))
    end)

    it("returns nothing for a function that returns nothing", function()
      local task = icmprun.spawn(function() end)
      assert.equal(0, select("#", task:join()))
    end)

    it("returns the results again on a task that has finished", function()
      local task = icmprun.spawn(function()
        return "x", "y"
      end)
      icmprun.sleep(20) -- The task finishes meanwhile.
      assert.matches("%(done%)", tostring(task))
      assert.same({ n = 2, "x", "y" }, table.pack(task:join()))
      assert.same({ n = 2, "x", "y" }, table.pack(task:join()))
    end)

    it("lets several tasks join one task", function()
      local results = icmprun.run(function()
        local shared = icmprun.spawn(function()
          icmprun.sleep(30)
          return "shared"
        end)
        local joiners = {}
        for i = 1, 3 do
          joiners[i] = icmprun.spawn(function()
            return shared:join() .. i
          end)
        end
        local out = {}
        for i, t in ipairs(joiners) do
          out[i] = t:join()
        end
        return out
      end)
      assert.same({ "shared1", "shared2", "shared3" }, results)
    end)

    it("refuses a task joining itself", function()
      assert.error_matches(function()
        icmprun.run(function()
          local me
          me = icmprun.spawn(function()
            icmprun.sleep(1)
            return me:join()
          end)
          return me:join()
        end)
      end, "cannot join itself")
    end)
  end)

  describe("sleep", function()
    it("sleeps at least the time asked for", function()
      local t0 = icmprun.now()
      icmprun.sleep(100)
      local took = icmprun.now() - t0
      assert.is_true(took >= 100, "slept only " .. took .. " ms")
      assert.is_true(took < 100 + LATE_MS, "slept " .. took .. " ms")
    end)

    it("takes a duration with a unit, as the options do", function()
      local t0 = icmprun.now()
      icmprun.sleep("50ms")
      local took = icmprun.now() - t0
      assert.is_true(took >= 50 and took < 50 + LATE_MS, "slept " .. took .. " ms")
      t0 = icmprun.now()
      icmprun.sleep("0.1s")
      took = icmprun.now() - t0
      assert.is_true(took >= 100 and took < 100 + LATE_MS, "slept " .. took .. " ms")
      for _, bad in ipairs({ "soon", "-5ms", "5 parsecs", "5ms\0junk" }) do
        assert.has_error(function() icmprun.sleep(bad) end,
          "bad argument #1 to 'sleep' (milliseconds must be >= 0 (or a duration: \"500ms\", "
          .. "\"2s\"))")
      end
    end)

    it("never returns before the time asked for, wherever in a millisecond it starts",
      function()
        -- The loop's clock counts whole milliseconds: a sleep that started
        -- late in one must still last its full time.
        local early = {}
        icmprun.run(function()
          for i = 1, 1000 do
            local t = icmprun.now()
            local offset = (i * 0.137) % 1
            while icmprun.now() - t < offset do -- Start at varied sub-ms points.
            end
            local t0 = icmprun.now()
            icmprun.sleep(1)
            local took = icmprun.now() - t0
            if took < 1 then
              early[#early + 1] = string.format("%.3f", took)
            end
          end
        end)
        assert.same({}, early, "sleep(1) returned after only these ms: "
          .. table.concat(early, ", "))
      end)

    it("lets other tasks run while one task sleeps", function()
      local log, took = {}, nil
      icmprun.run(function()
        local t0 = icmprun.now()
        local other = icmprun.spawn(function()
          for i = 1, 3 do
            log[#log + 1] = "other " .. i
            icmprun.sleep(10)
          end
        end)
        icmprun.sleep(100)
        took = icmprun.now() - t0
        log[#log + 1] = "main"
        other:join()
      end)
      assert.same({ "other 1", "other 2", "other 3", "main" }, log)
      assert.is_true(took >= 100, "slept only " .. took .. " ms")
      assert.is_true(took < 100 + LATE_MS, "slept " .. took .. " ms")
    end)

    it("lets spawned tasks run while plain Lua blocks in a call", function()
      local log = {}
      local task = icmprun.spawn(function()
        icmprun.sleep(20)
        log[#log + 1] = "task"
      end)
      icmprun.sleep(200)
      log[#log + 1] = "main"
      assert.same({ "task", "main" }, log)
      task:join()
    end)

    it("sleeps concurrent tasks at once, not one after another", function()
      -- Order, not speed: at once, every task has started its sleep before
      -- any wakes; one after another, the second would start after the
      -- first woke. And none wakes before its own 100 ms.
      local started, woke = {}, {}
      icmprun.run(function()
        local tasks = {}
        for i = 1, 20 do
          tasks[i] = icmprun.spawn(function()
            started[i] = icmprun.now()
            icmprun.sleep(100)
            woke[i] = icmprun.now()
          end)
        end
        for _, t in ipairs(tasks) do
          t:join()
        end
      end)
      assert.equal(20, #started)
      assert.equal(20, #woke)
      local last_start, first_wake = -math.huge, math.huge
      for i = 1, 20 do
        assert.is_true(woke[i] - started[i] >= 100,
          "a sleep woke after only " .. (woke[i] - started[i]) .. " ms")
        last_start, first_wake = math.max(last_start, started[i]), math.min(first_wake, woke[i])
      end
      assert.is_true(last_start < first_wake, "a task began its sleep after another woke")
    end)
  end)

  describe("now", function()
    it("returns milliseconds as a number that never goes back", function()
      local last = icmprun.now()
      assert.is_number(last)
      for _ = 1, 10000 do
        local t = icmprun.now()
        assert(t >= last, "now() went back")
        last = t
      end
    end)

    it("advances with time, in milliseconds", function()
      local t0 = icmprun.now()
      icmprun.sleep(50)
      local d = icmprun.now() - t0
      assert.is_true(d >= 50 and d < 50 + LATE_MS, "50 ms measured as " .. d)
    end)
  end)

  describe("run", function()
    it("returns the function's results", function()
      assert.same({ n = 3, "a", nil, 3 }, table.pack(icmprun.run(function(x, y)
        return x, nil, y
      end, "a", 3)))
    end)

    it("waits for every task the function spawned", function()
      local done = false
      icmprun.run(function()
        icmprun.spawn(function()
          icmprun.sleep(50)
          done = true
        end)
      end)
      assert.is_true(done)
    end)

    it("raises a task's error with its message and a traceback", function()
      local ok, err = pcall(icmprun.run, function()
        error("boom in main task")
      end)
      assert.is_false(ok)
      assert.matches("tasks_spec%.lua:%d+: boom in main task", err)
      assert.matches("stack traceback:", err)
    end)

    it("raises the error of a spawned task, never swallows it", function()
      local ok, err = pcall(icmprun.run, function()
        icmprun.spawn(function()
          icmprun.sleep(10)
          error("boom in spawned task")
        end)
        return "main task done first"
      end)
      assert.is_false(ok)
      assert.matches("tasks_spec%.lua:%d+: boom in spawned task", err)
      assert.matches("stack traceback:", err)
    end)

    it("ends the other tasks of a failed run: none of them runs later", function()
      -- In a process of its own: tasks left over would run in other specs.
      local r = cli.lua_script([[
        local icmprun = require "icmprun"
        local ok = pcall(icmprun.run, function()
          icmprun.spawn(function() error("fail") end)
          icmprun.sleep(50)
          print("the failed run's main task went on")
        end)
        assert(not ok)
        icmprun.sleep(200)
        print(icmprun.run(function() return "next run" end))
      ]])
      assert.equal(0, r.code, r.stderr)
      assert.equal("next run\n", r.stdout)
    end)

    it("raises an error object that is not a string as a message naming its type",
      function()
        -- In a process of its own: busted replaces `error` in specs.
        local r = cli.lua_script([[
          local icmprun = require "icmprun"
          local ok, err = pcall(icmprun.run, function() error({ code = 1 }) end)
          print(ok, err)
        ]])
        assert.equal(0, r.code, r.stderr)
        assert.matches("^false\t%(error object is a table value%)", r.stdout)
      end)

    it("is usable again after a task failed", function()
      pcall(icmprun.run, function()
        error("first run fails")
      end)
      assert.equal("fine", icmprun.run(function()
        icmprun.sleep(1)
        return "fine"
      end))
    end)
  end)

  describe("closing Lua", function()
    -- Each in a process of its own, which ends with tasks still waiting.
    for _, case in ipairs({
      { "sleeps", 'icmprun.sleep(10000)' },
      { "waits for a ping", 'icmprun.ping("192.0.2.2", { timeout = 10000 })' },
    }) do
      it("while a task " .. case[1] .. " ends cleanly", function()
        local r = cli.lua_script([[
          local icmprun = require "icmprun"
          icmprun.spawn(function() ]] .. case[2] .. [[ end)
          icmprun.sleep(20) -- The task is now waiting.
          print("closing")
        ]])
        assert.equal(0, r.code, "exit " .. r.code .. " " .. r.stderr)
        assert.equal("closing\n", r.stdout)
      end)
    end
  end)

  describe("coroutines", function()
    it("survive a plain coroutine.yield() inside a task", function()
      local log = {}
      local result = icmprun.run(function()
        local t = icmprun.spawn(function()
          for i = 1, 3 do
            log[#log + 1] = "yielder " .. i
            coroutine.yield("ignored", i)
          end
          return "yielder done"
        end)
        local other = icmprun.spawn(function()
          log[#log + 1] = "other"
        end)
        other:join()
        return t:join()
      end)
      assert.equal("yielder done", result)
      -- The plain yield let the other task run in between.
      assert.same({ "yielder 1", "other", "yielder 2", "yielder 3" }, log)
    end)

    it("may be used freely inside a task when they do not wait", function()
      local result = icmprun.run(function()
        local gen = coroutine.wrap(function()
          for i = 1, 3 do
            coroutine.yield(i)
          end
        end)
        icmprun.sleep(1)
        return gen() + gen() + gen()
      end)
      assert.equal(6, result)
    end)

    it("refuse a wait from a coroutine icmprun did not start, telling to spawn",
      function()
        assert.error_matches(function()
          icmprun.run(function()
            local co = coroutine.wrap(function()
              icmprun.sleep(1)
            end)
            co()
          end)
        end, "use icmprun%.spawn")
      end)
  end)

  describe("a deadlock", function()
    -- Each run is a process of its own: the module's state after a deadlock
    -- must not leak into the other specs, and a hang ends in `timeout`.
    -- The sockets are opened first: they must not keep the loop alive.
    local PAIR = [[
      local icmprun = require "icmprun"
      assert(icmprun.ping("127.0.0.1").status == "reply")
      -- Two tasks that join each other; returns the first.
      local function pair()
        local a, b
        a = icmprun.spawn(function() icmprun.sleep(10); return b:join() end)
        b = icmprun.spawn(function() icmprun.sleep(10); return a:join() end)
        return a
      end
    ]]

    it("is reported as an error by run rather than hanging", function()
      local r = cli.lua_script(PAIR .. [[
        print(pcall(icmprun.run, function() return pair():join() end))
      ]], 30)
      assert.equal(0, r.code, r.stderr)
      assert.matches("^false\tdeadlock", r.stdout)
    end)

    it("is reported as an error by a blocking join rather than hanging", function()
      local r = cli.lua_script(PAIR .. [[
        local a = pair()
        print(pcall(a.join, a))
      ]], 30)
      assert.equal(0, r.code, r.stderr)
      assert.matches("^false\t.*deadlock", r.stdout)
    end)

    it("leaves the module usable for the next run", function()
      local r = cli.lua_script(PAIR .. [[
        assert(not pcall(icmprun.run, function() return pair():join() end))
        print(icmprun.run(function() icmprun.sleep(1); return "next run" end))
      ]], 30)
      assert.equal(0, r.code, r.stderr)
      assert.equal("next run\n", r.stdout)
    end)
  end)
end)
