-- SPDX-License-Identifier: MIT

--- Task tools: task:cancel(), task:join(timeout), icmprun.first,
-- icmprun.await and icmprun.every, with their misuse, errors inside their
-- callbacks, and lifetimes (cancelled, abandoned and shut-down waits).
--
-- Cases that count engine statistics, end the process or wait for a
-- deadlock run in a process of their own, through stock lua5.4 with the
-- module and through the icmprun command; in the sanitizer build both are
-- under AddressSanitizer, so a use-after-free or a leak fails their status.
local icmprun = require "icmprun"
local cli = require "cli"

-- A host of the test network that never answers.
local SILENT = "192.0.2.2"

--- Asserts a clean run: exit status 0 and no sanitizer report.
local function assert_clean(r)
  assert.equal(0, r.code, r.stderr)
  assert.not_matches("Sanitizer", r.stderr)
end

--- Runs code through stock Lua inside icmprun.run, and as an icmprun script.
-- @treturn table the stock Lua run, the icmprun run
local function both(code)
  local stock = cli.lua_script("local icmprun = require 'icmprun'\n"
    .. "icmprun.run(function()\n" .. code .. "\nend)\n", 60)
  local command = cli.icmprun_script("local icmprun = require 'icmprun'\n" .. code)
  return stock, command
end

--- Lua code that ends in a deadlock report unless a timer or a probe is
-- still open: the loop reports a deadlock only when nothing can wake a task
-- any more. It prints "deadlock" and how long the wait took.
local EXPECT_NOTHING_OPEN = [[
  local t0 = icmprun.now()
  local ok, err = pcall(icmprun.run, function()
    icmprun.await(function() end) -- resume is never called
  end)
  print(ok, (tostring(err):match("deadlock")), icmprun.now() - t0 < 20000)
]]

--- Lua code that prints whether the engine's counters add up: every probe
-- sent, cancelled before it was sent, or failed to send has one result.
local PRINT_STATS = [[
  local s = icmprun.counters()
  print("stats", s.sent, s.cancelled, s.send_errors, s.results, s.pending,
    s.sent + s.cancelled + s.send_errors == s.results)
]]

describe("inside a __gc metamethod", function()
  it("refuses the waits (join with a timeout, first, await) and allows cancel and stop",
    function()
      -- Stock Lua and icmprun: the finalizer runs while a task collects.
      local stock, command = both([[
        local sleeper = icmprun.spawn(function() icmprun.sleep(60000) end)
        local schedule = icmprun.every(60000, function() end)
        icmprun.spawn(function()
          setmetatable({}, { __gc = function()
            print("join", pcall(sleeper.join, sleeper, 10))
            print("first", pcall(icmprun.first, sleeper))
            print("await", pcall(icmprun.await, function(resume) resume() end))
            print("cancel", pcall(sleeper.cancel, sleeper))
            print("stop", pcall(schedule.stop, schedule))
          end })
          collectgarbage()
        end)
        icmprun.sleep(10)
        collectgarbage()
        collectgarbage()
        print("after", select(3, sleeper:join()), select(3, schedule:task():join()))
      ]])
      for _, r in ipairs({ stock, command }) do
        assert_clean(r)
        assert.equal("join\tfalse\tjoin: cannot wait inside a __gc metamethod\n"
          .. "first\tfalse\tfirst: cannot wait inside a __gc metamethod\n"
          .. "await\tfalse\tawait: cannot wait inside a __gc metamethod\n"
          .. "cancel\ttrue\ttrue\n"
          .. "stop\ttrue\n"
          .. "after\tECANCELED\tECANCELED\n", r.stdout)
      end
    end)
end)

describe("task:cancel()", function()
  it("ends a waiting task, whose join then returns nil, cancelled, ECANCELED", function()
    icmprun.run(function()
      local reached = false
      local t = icmprun.spawn(function()
        icmprun.sleep(60000)
        reached = true
      end)
      icmprun.sleep(10)
      assert.matches("%(waiting%)", tostring(t))
      assert.is_true(t:cancel())
      assert.matches("%(cancelled%)", tostring(t))
      assert.same({ n = 3, nil, "cancelled", "ECANCELED" }, table.pack(t:join()))
      assert.same({ n = 3, nil, "cancelled", "ECANCELED" }, table.pack(t:join(10)))
      icmprun.sleep(20)
      assert.is_false(reached)
    end)
  end)

  it("closes the timer of the sleep it cancels", function()
    -- With the 60 s timer still open, the loop would not report a deadlock.
    local r = cli.lua_script([[
      local icmprun = require "icmprun"
      icmprun.run(function()
        local t = icmprun.spawn(function() icmprun.sleep(60000) end)
        icmprun.sleep(10)
        t:cancel()
      end)
    ]] .. EXPECT_NOTHING_OPEN, 30)
    assert_clean(r)
    assert.equal("false\tdeadlock\ttrue\n", r.stdout)
  end)

  it("ends a task that is ready and has never run, which then never runs", function()
    local ran = false
    local t = icmprun.spawn(function()
      ran = true
    end)
    assert.is_true(t:cancel())
    icmprun.sleep(10)
    assert.is_false(ran)
    assert.equal("cancelled", select(2, t:join()))
  end)

  it("ends a ready task in the batch being resumed, before its turn", function()
    -- Both tasks are ready in the same turn of the loop: the first one runs
    -- first and cancels the second before it starts.
    local ran = false
    icmprun.run(function()
      local b
      local a = icmprun.spawn(function()
        return b:cancel()
      end)
      b = icmprun.spawn(function()
        ran = true
      end)
      assert.is_true(a:join())
    end)
    assert.is_false(ran)
  end)

  it("does nothing to a finished task, whose results stay", function()
    local t = icmprun.spawn(function()
      return "done", 2
    end)
    assert.same({ n = 2, "done", 2 }, table.pack(t:join()))
    assert.is_false(t:cancel())
    assert.same({ n = 2, "done", 2 }, table.pack(t:join()))
  end)

  it("refuses to cancel the running task from inside it", function()
    icmprun.run(function()
      local t
      t = icmprun.spawn(function()
        local ok, err = pcall(t.cancel, t)
        -- And from a plain coroutine inside it: the task is still running.
        local ok2, err2 = coroutine.wrap(function()
          return pcall(t.cancel, t)
        end)()
        return ok, err, ok2, err2
      end)
      local ok, err, ok2, err2 = t:join()
      assert.is_false(ok)
      assert.matches("a task cannot cancel itself", err)
      assert.is_false(ok2)
      assert.matches("a task cannot cancel itself", err2)
    end)
  end)

  it("raises on something that is not a task", function()
    local t = icmprun.spawn(function() end)
    assert.error_matches(function()
      t.cancel({})
    end, "bad argument #1.*icmprun%.task expected")
    t:join()
  end)

  it("runs the task's to-be-closed variables, as coroutine.close", function()
    local log = {}
    icmprun.run(function()
      local t = icmprun.spawn(function()
        local _ <close> = setmetatable({}, { __close = function(_, err)
          log[#log + 1] = "closed " .. tostring(err)
        end })
        icmprun.sleep(60000)
      end)
      icmprun.sleep(10)
      t:cancel()
      log[#log + 1] = "after cancel"
    end)
    assert.same({ "closed nil", "after cancel" }, log)
  end)

  it("raises the error of a to-be-closed variable in the caller, task ended", function()
    icmprun.run(function()
      local t = icmprun.spawn(function()
        local _ <close> = setmetatable({}, { __close = function()
          error("close failed")
        end })
        icmprun.sleep(60000)
      end)
      icmprun.sleep(10)
      local ok, err = pcall(t.cancel, t)
      assert.is_false(ok)
      assert.matches("close failed", err)
      assert.equal("cancelled", select(2, t:join()))
      assert.is_false(t:cancel())
    end)
  end)

  it("refuses a wait inside a to-be-closed variable's handler", function()
    icmprun.run(function()
      local t = icmprun.spawn(function()
        local _ <close> = setmetatable({}, { __close = function()
          icmprun.sleep(10)
        end })
        icmprun.sleep(60000)
      end)
      icmprun.sleep(10)
      local ok, err = pcall(t.cancel, t)
      assert.is_false(ok)
      assert.matches("sleep: cannot wait here", err)
    end)
  end)

  it("leaves a task that joins it with nil, cancelled, ECANCELED", function()
    icmprun.run(function()
      local sleeper = icmprun.spawn(function() icmprun.sleep(60000) end)
      local joiner = icmprun.spawn(function()
        return table.pack(sleeper:join())
      end)
      icmprun.sleep(10)
      sleeper:cancel()
      assert.same({ n = 3, nil, "cancelled", "ECANCELED" }, joiner:join())
    end)
  end)

  it("ends a task that joins another, which keeps running", function()
    icmprun.run(function()
      local joined = icmprun.spawn(function()
        icmprun.sleep(30)
        return "joined ran to its end"
      end)
      local joiner = icmprun.spawn(function()
        joined:join()
        error("the cancelled joiner resumed")
      end)
      icmprun.sleep(5)
      joiner:cancel()
      assert.equal("joined ran to its end", joined:join())
    end)
  end)

  describe("of a task with a ping in flight", function()
    it("cancels the engine's probe: one result, counted, nothing left", function()
      -- The probe has left the socket: it was sent, and its one result is
      -- the cancellation. The deadlock check shows nothing is left open.
      local stock, command = both([[
        local t = icmprun.spawn(function()
          return icmprun.ping("]] .. SILENT .. [[", { timeout = 60000 })
        end)
        icmprun.sleep(50)
        print("cancel", t:cancel(), t:join())
      ]] .. PRINT_STATS)
      for _, r in ipairs({ stock, command }) do
        assert_clean(r)
        assert.equal("cancel\ttrue\tnil\tcancelled\tECANCELED\n"
          .. "stats\t1\t0\t0\t1\t0\ttrue\n", r.stdout)
      end
    end)

    it("cancels a probe not sent yet: counted as cancelled, never sent", function()
      local stock, command = both([[
        local t = icmprun.spawn(function()
          return icmprun.ping("]] .. SILENT .. [[", { timeout = 60000 })
        end)
        icmprun.spawn(function() t:cancel() end) -- runs right after t yields
        icmprun.sleep(20)
      ]] .. PRINT_STATS)
      for _, r in ipairs({ stock, command }) do
        assert_clean(r)
        assert.equal("stats\t0\t1\t0\t1\t0\ttrue\n", r.stdout)
      end
    end)

    it("leaves no probe or timer open", function()
      local r = cli.lua_script([[
        local icmprun = require "icmprun"
        icmprun.run(function()
          local t = icmprun.spawn(function()
            return icmprun.ping("]] .. SILENT .. [[", { timeout = 60000 })
          end)
          icmprun.sleep(20)
          t:cancel()
        end)
      ]] .. EXPECT_NOTHING_OPEN, 30)
      assert_clean(r)
      assert.equal("false\tdeadlock\ttrue\n", r.stdout)
    end)

    it("keeps one result per probe when many are cancelled at every stage", function()
      -- 300 tasks ping a silent host or a loopback address; a third are
      -- cancelled before they run, a third after one turn, and the rest
      -- later, when the loopback pings have their replies and the silent
      -- ones are in flight. Tasks pinging a name are cancelled during
      -- the lookup. Every probe that was started ends in exactly one result.
      local stock, command = both([[
        local started, tasks = 0, {}
        for i = 1, 300 do
          local target = i % 2 == 0 and "]] .. SILENT .. [[" or "127.0.0." .. (i % 250 + 1)
          tasks[i] = icmprun.spawn(function()
            started = started + 1
            return icmprun.ping(target, { timeout = 60000 })
          end)
        end
        local lookups = {}
        for i = 1, 10 do
          lookups[i] = icmprun.spawn(function()
            icmprun.ping("localhost", { timeout = 60000 })
            error("a cancelled lookup resumed")
          end)
        end
        for i = 1, 300, 3 do tasks[i]:cancel() end
        icmprun.sleep(0)
        for _, t in ipairs(lookups) do t:cancel() end
        for i = 2, 300, 3 do tasks[i]:cancel() end
        icmprun.sleep(30)
        local replies, cancelled = 0, 0
        for i = 1, 300 do
          if tasks[i]:cancel() then cancelled = cancelled + 1 end
          local r = tasks[i]:join()
          if r and r.status == "reply" then replies = replies + 1 end
        end
        print("late cancels and replies", cancelled > 0, replies > 0)
        local s = icmprun.counters()
        print("one result per started probe", started > 0, s.results == started)
      ]] .. PRINT_STATS)
      for _, r in ipairs({ stock, command }) do
        assert_clean(r)
        assert.matches("^late cancels and replies\ttrue\ttrue\n"
          .. "one result per started probe\ttrue\ttrue\n"
          .. "stats\t%d+\t%d+\t0\t%d+\t0\ttrue\n$", r.stdout)
      end
    end)
  end)

  describe("of a task iterating a sweep", function()
    it("closes a sweep iterated by its for loop: no probe is sent after", function()
      local stock, command = both([[
        local got = 0
        local t = icmprun.spawn(function()
          for _ in icmprun.sweep("127.0.0.0/24", { rate = 200 }) do
            got = got + 1
          end
        end)
        while got < 5 do icmprun.sleep(5) end
        t:cancel()
        local sent = icmprun.counters().sent
        icmprun.sleep(100)
        print("stopped", icmprun.counters().sent == sent, sent < 256)
      ]] .. PRINT_STATS)
      for _, r in ipairs({ stock, command }) do
        assert_clean(r)
        assert.matches("^stopped\ttrue\ttrue\n", r.stdout)
        -- The sweep's probes not yet sent were cancelled; nothing pending.
        assert.matches("\nstats\t%d+\t%d+\t0\t%d+\t0\ttrue\n$", r.stdout)
      end
    end)

    it("leaves a sweep held outside the task to its owner", function()
      local stock, command = both([[
        local next_result, sweep = icmprun.sweep("127.0.0.0/29", { rate = 100 })
        local first = {}
        local t = icmprun.spawn(function()
          for r in next_result, sweep do first[#first + 1] = r.addr end
        end)
        while #first < 2 do icmprun.sleep(1) end
        t:cancel()
        local rest = 0
        for _ in next_result, sweep do rest = rest + 1 end
        print("results", #first + rest)
      ]])
      for _, r in ipairs({ stock, command }) do
        assert_clean(r)
        assert.equal("results\t8\n", r.stdout)
      end
    end)
  end)
end)

describe("task:join(timeout_ms)", function()
  it("returns nil, timeout, ETIMEDOUT after the timeout, and leaves the task running",
    function()
      icmprun.run(function()
        local t = icmprun.spawn(function()
          icmprun.sleep(100)
          return "finished"
        end)
        local t0 = icmprun.now()
        assert.same({ n = 3, nil, "timeout", "ETIMEDOUT" }, table.pack(t:join(30)))
        local took = icmprun.now() - t0
        assert.is_true(took >= 30, "timed out after only " .. took .. " ms")
        -- A duration with a unit, as the options take one.
        t0 = icmprun.now()
        assert.same({ n = 3, nil, "timeout", "ETIMEDOUT" }, table.pack(t:join("20ms")))
        took = icmprun.now() - t0
        assert.is_true(took >= 20, "timed out after only " .. took .. " ms")
        assert.matches("%(waiting%)", tostring(t))
        assert.equal("finished", t:join())
      end)
    end)

  it("returns the task's results when it ends first", function()
    icmprun.run(function()
      local t = icmprun.spawn(function()
        icmprun.sleep(10)
        return "a", nil, "c"
      end)
      assert.same({ n = 3, "a", nil, "c" }, table.pack(t:join(60000)))
    end)
  end)

  it("closes its timer when the task ends first", function()
    local r = cli.lua_script([[
      local icmprun = require "icmprun"
      icmprun.run(function()
        local t = icmprun.spawn(function() icmprun.sleep(5) end)
        t:join(60000)
      end)
    ]] .. EXPECT_NOTHING_OPEN, 30)
    assert_clean(r)
    assert.equal("false\tdeadlock\ttrue\n", r.stdout)
  end)

  it("with 0 times out at once on a running task, returns a finished one's results",
    function()
      icmprun.run(function()
        local t = icmprun.spawn(function()
          icmprun.sleep(20)
          return 7
        end)
        assert.equal("timeout", select(2, t:join(0)))
        assert.equal(7, t:join())
        assert.equal(7, t:join(0))
      end)
    end)

  it("blocks with a timeout outside any task (stock Lua)", function()
    local t = icmprun.spawn(function()
      icmprun.sleep(200)
      return "late"
    end)
    assert.equal("ETIMEDOUT", select(3, t:join(20)))
    assert.equal("late", t:join())
  end)

  it("lets several tasks time out on one task at different times", function()
    icmprun.run(function()
      local slow = icmprun.spawn(function()
        icmprun.sleep(80)
        return "slow"
      end)
      local short = icmprun.spawn(function() return (slow:join(10)) end)
      local long = icmprun.spawn(function() return (slow:join(60000)) end)
      assert.is_nil(short:join())
      assert.equal("slow", long:join())
    end)
  end)

  it("raises on a timeout that is not a number >= 0", function()
    local t = icmprun.spawn(function() end)
    assert.error_matches(function()
      t:join(-1)
    end, "bad argument #1 to 'join'.*timeout must be milliseconds >= 0")
    assert.error_matches(function()
      t:join("soon")
    end, "bad argument #1 to 'join'.*timeout must be milliseconds >= 0 %(or a duration")
    assert.error_matches(function()
      t:join({})
    end, "bad argument #1 to 'join'.*number expected")
    t:join()
  end)
end)

describe("icmprun.first", function()
  it("returns the first task to end and its results; the others keep running",
    function()
      icmprun.run(function()
        local slow = icmprun.spawn(function()
          icmprun.sleep(60)
          return "slow"
        end)
        local fast = icmprun.spawn(function()
          icmprun.sleep(10)
          return "fast", 2
        end)
        local t, a, b = icmprun.first(slow, fast)
        assert.equal(fast, t)
        assert.same({ "fast", 2 }, { a, b })
        assert.matches("%(waiting%)", tostring(slow))
        assert.equal("slow", slow:join())
      end)
    end)

  it("returns a task that has finished already at once, the first in order", function()
    icmprun.run(function()
      local waiting = icmprun.spawn(function() icmprun.sleep(60000) end)
      local done1 = icmprun.spawn(function() return 1 end)
      local done2 = icmprun.spawn(function() return 2 end)
      icmprun.sleep(5)
      local t, v = icmprun.first(waiting, done2, done1)
      assert.equal(done2, t)
      assert.equal(2, v)
      waiting:cancel()
    end)
  end)

  it("returns a cancelled task with nil, cancelled, ECANCELED", function()
    icmprun.run(function()
      local a = icmprun.spawn(function() icmprun.sleep(60000) end)
      local b = icmprun.spawn(function() icmprun.sleep(60000) end)
      icmprun.spawn(function()
        icmprun.sleep(10)
        b:cancel()
      end)
      assert.same({ n = 4, b, nil, "cancelled", "ECANCELED" },
        table.pack(icmprun.first(a, b)))
      a:cancel()
    end)
  end)

  it("blocks outside any task (stock Lua)", function()
    local a = icmprun.spawn(function()
      icmprun.sleep(40)
      return "a"
    end)
    local b = icmprun.spawn(function()
      icmprun.sleep(5)
      return "b"
    end)
    local t, v = icmprun.first(a, b)
    assert.equal(b, t)
    assert.equal("b", v)
    assert.equal("a", a:join())
  end)

  it("leaves the other tasks unharmed when the waiting task is cancelled", function()
    icmprun.run(function()
      local a = icmprun.spawn(function()
        icmprun.sleep(20)
        return "a"
      end)
      local b = icmprun.spawn(function()
        icmprun.sleep(30)
        return "b"
      end)
      local waiter = icmprun.spawn(function()
        icmprun.first(a, b)
        error("the cancelled waiter resumed")
      end)
      icmprun.sleep(5)
      waiter:cancel()
      assert.equal("a", a:join())
      assert.equal("b", b:join())
    end)
  end)

  it("raises on no tasks, a value that is not a task, and the calling task", function()
    assert.error_matches(function()
      icmprun.first()
    end, "bad argument #1.*tasks expected")
    local t = icmprun.spawn(function() end)
    assert.error_matches(function()
      icmprun.first(t, "x")
    end, "bad argument #2.*icmprun%.task expected")
    t:join()
    icmprun.run(function()
      local me
      me = icmprun.spawn(function()
        local other = icmprun.spawn(function() icmprun.sleep(5) end)
        return pcall(icmprun.first, other, me)
      end)
      local ok, err = me:join()
      assert.is_false(ok)
      assert.matches("bad argument #2.*a task cannot wait for itself", err)
    end)
  end)

  it("is refused where the task cannot yield", function()
    icmprun.run(function()
      local other = icmprun.spawn(function() icmprun.sleep(5) end)
      local ok, err = pcall(table.sort, { 2, 1 }, function(x, y)
        icmprun.first(other)
        return x < y
      end)
      assert.is_false(ok)
      assert.matches("first: cannot wait here", err)
    end)
  end)
end)

describe("icmprun.await", function()
  local uv = require "luv"

  it("returns the values a luv timer's callback resumed it with", function()
    icmprun.run(function()
      local timer = uv.new_timer()
      local t0 = icmprun.now()
      local a, b, c = icmprun.await(function(resume)
        timer:start(20, 0, function()
          timer:close()
          resume("fired", nil, 3)
        end)
      end)
      assert.same({ "fired", nil, 3 }, { a, b, c })
      assert.is_true(icmprun.now() - t0 >= 19)
    end)
  end)

  it("turns uv.getnameinfo into a wait: a reverse lookup without polling", function()
    icmprun.run(function()
      local host, service = icmprun.await(function(resume)
        assert(uv.getnameinfo({ ip = "127.0.0.1", port = 80 }, function(err, h, s)
          resume(h, s, err)
        end))
      end)
      assert.is_string(host)
      assert.is_string(service)
    end)
  end)

  it("lets other tasks run while it waits", function()
    local log = {}
    icmprun.run(function()
      local other = icmprun.spawn(function()
        log[#log + 1] = "other"
      end)
      local timer = uv.new_timer()
      icmprun.await(function(resume)
        timer:start(10, 0, function()
          timer:close()
          resume()
        end)
      end)
      log[#log + 1] = "awaited"
      other:join()
    end)
    assert.same({ "other", "awaited" }, log)
  end)

  it("returns at once when resume is called inside the function", function()
    icmprun.run(function()
      assert.same({ n = 3, 1, nil, 3 }, table.pack(icmprun.await(function(resume)
        assert.is_true(resume(1, nil, 3))
      end)))
      assert.same({ n = 0 }, table.pack(icmprun.await(function(resume)
        resume()
      end)))
    end)
  end)

  it("ignores a second resume, which returns false", function()
    icmprun.run(function()
      local again
      local v = icmprun.await(function(resume)
        assert.is_true(resume("first"))
        again = resume
        assert.is_false(resume("second"))
      end)
      assert.equal("first", v)
      assert.is_false(again("third"))
    end)
  end)

  it("blocks outside any task (stock Lua), running the loop", function()
    local timer = uv.new_timer()
    local v = icmprun.await(function(resume)
      timer:start(5, 0, function()
        timer:close()
        resume("blocked")
      end)
    end)
    assert.equal("blocked", v)
  end)

  it("raises the function's error, and a later resume does nothing", function()
    icmprun.run(function()
      local saved
      local ok, err = pcall(icmprun.await, function(resume)
        saved = resume
        error("setup failed")
      end)
      assert.is_false(ok)
      assert.matches("setup failed", err)
      assert.is_false(saved("late"))
    end)
  end)

  it("refuses a wait inside the function, which must not wait", function()
    icmprun.run(function()
      local ok, err = pcall(icmprun.await, function()
        icmprun.sleep(1)
      end)
      assert.is_false(ok)
      assert.matches("sleep: cannot wait here", err)
    end)
  end)

  it("raises on a value that is not a function", function()
    assert.error_matches(function()
      icmprun.await(42)
    end, "bad argument #1.*function expected")
  end)

  it("is refused where the task cannot yield, before the function runs", function()
    icmprun.run(function()
      local ran = false
      local ok, err = pcall(table.sort, { 2, 1 }, function(x, y)
        icmprun.await(function()
          ran = true
        end)
        return x < y
      end)
      assert.is_false(ok)
      assert.matches("await: cannot wait here", err)
      assert.is_false(ran)
    end)
  end)

  it("is cleaned up when its task is cancelled: a later resume does nothing",
    function()
      icmprun.run(function()
        local saved
        local t = icmprun.spawn(function()
          icmprun.await(function(resume)
            saved = resume
          end)
          error("the cancelled task resumed")
        end)
        icmprun.sleep(5)
        t:cancel()
        collectgarbage()
        assert.is_false(saved("after cancel"))
        icmprun.sleep(5)
      end)
    end)

  it("survives a resume from a luv callback after its task was cancelled", function()
    local stock, command = both([[
      local uv = require "luv"
      local t = icmprun.spawn(function()
        icmprun.await(function(resume)
          local timer = uv.new_timer()
          timer:start(30, 0, function()
            timer:close()
            print("resumed after cancel", resume("too late"))
          end)
        end)
        error("the cancelled task resumed")
      end)
      icmprun.sleep(5)
      t:cancel()
      collectgarbage()
      icmprun.sleep(60)
    ]])
    for _, r in ipairs({ stock, command }) do
      assert_clean(r)
      assert.equal("resumed after cancel\tfalse\n", r.stdout)
    end
  end)

  it("survives a resume from a luv callback after a failed run abandoned it", function()
    -- Stock Lua: the run fails while a task awaits a luv timer, and the
    -- timer fires later, in a blocking call, and calls resume.
    local r = cli.lua_script([[
      local icmprun = require "icmprun"
      local uv = require "luv"
      print(pcall(icmprun.run, function()
        icmprun.spawn(function()
          icmprun.await(function(resume)
            local timer = uv.new_timer()
            timer:start(30, 0, function()
              timer:close()
              print("resumed after abandon", resume("too late"))
            end)
          end)
        end)
        icmprun.sleep(5)
        error("run fails", 0)
      end))
      collectgarbage()
      icmprun.sleep(60)
    ]])
    assert_clean(r)
    assert.matches("^false\trun fails", r.stdout)
    assert.matches("\nresumed after abandon\tfalse\n$", r.stdout)
  end)

  it("ends cleanly when Lua closes while a task awaits", function()
    local r = cli.lua_script([[
      local icmprun = require "icmprun"
      local uv = require "luv"
      local timer = uv.new_timer()
      icmprun.spawn(function()
        icmprun.await(function(resume)
          timer:start(60000, 0, function() resume() end)
        end)
      end)
      icmprun.sleep(10)
      print("closing")
    ]])
    assert_clean(r)
    assert.equal("closing\n", r.stdout)
  end)
end)

describe("icmprun.every", function()
  it("calls fn on a fixed grid: call n due at start + n * ms, never earlier",
    function()
      local calls, h = {}, nil
      icmprun.run(function()
        -- The period as a duration with a unit, which means 20 ms as 20 does.
        h = icmprun.every("20ms", function(n, due)
          calls[#calls + 1] = { n = n, due = due, at = icmprun.now() }
          -- (A loaded machine may skip a slot: never wait for one number.)
          if n >= 9 then
            h:stop()
          end
        end)
        h:task():join()
      end)
      local made, skipped = h:stats()
      assert.equal(#calls, made)
      assert.equal(calls[#calls].n + 1, made + skipped)
      local start = calls[1].due
      assert.equal(0, calls[1].n)
      for i, c in ipairs(calls) do
        assert.is_true(i == 1 or c.n > calls[i - 1].n)
        -- The grid is computed from the start, so it cannot drift: every due
        -- time is start + n * 20 exactly (within float rounding).
        assert.is_true(math.abs(c.due - (start + 20 * c.n)) < 1e-6,
          "call " .. c.n .. " due at " .. (c.due - start))
        assert.is_true(c.at >= c.due, "call " .. c.n .. " ran "
          .. (c.due - c.at) .. " ms early")
      end
    end)

  it("runs the latest due slot late after a long call and skips those before",
    function()
      local calls, ended = {}, nil
      local h
      icmprun.run(function()
        h = icmprun.every(50, function(n, due)
          calls[#calls + 1] = { n = n, due = due, at = icmprun.now() }
          if n == 0 then
            icmprun.sleep(125) -- overruns slots 1 and 2
            ended = icmprun.now()
          else
            h:stop()
          end
        end)
      end)
      assert.equal(2, #calls)
      local second = calls[2]
      -- The next call is the latest slot that was due when the long call
      -- ended, run at once: never one whose time had not come, never an
      -- older one that has been overtaken.
      local latest = math.floor((ended - calls[1].due) / 50)
      assert.is_true(second.n >= 2 and second.n >= latest, "ran slot " .. second.n)
      assert.is_true(second.at >= second.due)
      assert.is_true(second.due <= ended + 1e-6, "slot " .. second.n .. " was not due")
      local calls_made, skipped = h:stats()
      assert.equal(2, calls_made)
      assert.equal(second.n - 1, skipped)
    end)

  it("stops between calls at once, closing its timer", function()
    local r = cli.lua_script([[
      local icmprun = require "icmprun"
      local n = 0
      icmprun.run(function()
        local h = icmprun.every(60000, function() n = n + 1 end)
        icmprun.sleep(10)
        h:stop()
        h:stop() -- twice is fine
        print("stopped", n, select(3, h:task():join()))
      end)
    ]] .. EXPECT_NOTHING_OPEN, 30)
    assert_clean(r)
    assert.equal("stopped\t1\tECANCELED\nfalse\tdeadlock\ttrue\n", r.stdout)
  end)

  it("lets a call under way finish when stopped from another task", function()
    local log = {}
    icmprun.run(function()
      local h = icmprun.every(10, function(n)
        log[#log + 1] = "start " .. n
        icmprun.sleep(30)
        log[#log + 1] = "end " .. n
      end)
      icmprun.sleep(10)
      h:stop()
      h:task():join()
    end)
    assert.same({ "start 0", "end 0" }, log)
  end)

  it("ends the run with fn's error and its traceback", function()
    local ok, err = pcall(icmprun.run, function()
      icmprun.every(5, function(n)
        if n >= 2 then
          error("every failed at " .. n)
        end
      end)
    end)
    assert.is_false(ok)
    assert.matches("task_tools_spec%.lua:%d+: every failed at %d+", err)
    assert.matches("stack traceback:", err)
  end)

  it("raises on a period outside 1..86400000 ms or a missing function", function()
    for _, bad in ipairs({ 0, 0.5, -1, 86400001, 0 / 0 }) do
      assert.error_matches(function()
        icmprun.every(bad, function() end)
      end, "bad argument #1.*period must be milliseconds in 1%.%.86400000")
    end
    assert.error_matches(function()
      icmprun.every("often", function() end)
    end, "bad argument #1.*period must be milliseconds in 1%.%.86400000 %(or a duration")
    assert.error_matches(function()
      icmprun.every("0ms", function() end)
    end, "bad argument #1.*period must be milliseconds in 1%.%.86400000")
    assert.error_matches(function()
      icmprun.every({}, function() end)
    end, "bad argument #1.*number expected")
    assert.error_matches(function()
      icmprun.every(10)
    end, "bad argument #2.*function expected")
  end)

  it("ends cleanly when Lua closes with a schedule running", function()
    local r = cli.lua_script([[
      local icmprun = require "icmprun"
      icmprun.every(5, function() icmprun.ping("]] .. SILENT .. [[", { timeout = 60000 }) end)
      icmprun.sleep(30)
      print("closing")
    ]])
    assert_clean(r)
    assert.equal("closing\n", r.stdout)
  end)

  it("keeps icmprun running until stopped, then exits 0", function()
    local r = cli.icmprun_script([[
      local icmprun = require "icmprun"
      local h
      h = icmprun.every(5, function(n)
        if n >= 3 then h:stop() end
      end)
      print("main chunk done")
    ]])
    assert_clean(r)
    assert.equal("main chunk done\n", r.stdout)
  end)
end)
