-- SPDX-License-Identifier: MIT

--- Several callers pulling from one sweep iterator: each result goes to
-- exactly one of them, and every one of them ends when the sweep ends (or
-- raises the sweep's error). Loopback only.
local icmprun = require "icmprun"

--- A worker for icmprun.spawn: pulls results from the sweep until it ends,
-- letting the other tasks run after each (as a worker that does something
-- with each result would). Records "addr#n" keys into `into`.
local function worker(it, s, into)
  for r in it, s do
    into[#into + 1] = r.addr .. "#" .. r.n
    coroutine.yield()
  end
  return "done"
end

--- Asserts that the lists together hold each of `want` keys exactly once.
local function assert_partition(want, ...)
  local seen = {}
  local total = 0
  for _, list in ipairs({ ... }) do
    for _, key in ipairs(list) do
      assert.is_nil(seen[key], key .. " was handed out twice")
      seen[key] = true
      total = total + 1
    end
  end
  assert.equal(want, total)
end

describe("one sweep pulled by several callers", function()
  it("hands each result to exactly one of two tasks, and ends both", function()
    local a_got, b_got = {}, {}
    local a_end, b_end
    icmprun.run(function()
      local it, s = icmprun.sweep("127.0.0.0/24", { rate = 0, count = 2, interval = 10 })
      local a = icmprun.spawn(worker, it, s, a_got)
      local b = icmprun.spawn(worker, it, s, b_got)
      a_end, b_end = a:join(), b:join()
      s:close()
    end)
    assert.equal("done", a_end)
    assert.equal("done", b_end)
    assert.is_true(#a_got > 0, "the first task got nothing")
    assert.is_true(#b_got > 0, "the second task got nothing")
    assert_partition(512, a_got, b_got)
    assert.equal(0, icmprun.counters().pending)
  end)

  it("takes turns between two tasks whose loops never wait", function()
    -- The case of the issue: two tasks pull from one iterator and do nothing
    -- else; each used to finish, one of them with nothing.
    local got = { {}, {} }
    local it, s = icmprun.sweep("127.0.0.0/24", { rate = 0 })
    local tasks = {}
    for i = 1, 2 do
      tasks[i] = icmprun.spawn(function()
        for r in it, s do
          got[i][#got[i] + 1] = r.addr .. "#" .. r.n
        end
        return "done"
      end)
    end
    assert.equal("done", tasks[1]:join())
    assert.equal("done", tasks[2]:join())
    assert_partition(256, got[1], got[2])
    -- They take turns whenever both are ready: neither gets a small share.
    assert.is_true(#got[1] >= 64 and #got[2] >= 64,
      string.format("shares of %d and %d", #got[1], #got[2]))
    s:close()
  end)

  it("shares results between four tasks that only wait for them", function()
    -- No yield in the body: each task takes what is there when it resumes,
    -- and all four end with the sweep.
    local lists, ends = {}, {}
    icmprun.run(function()
      local it, s = icmprun.sweep("127.0.0.0/25", { rate = 2000 })
      local tasks = {}
      for i = 1, 4 do
        lists[i] = {}
        tasks[i] = icmprun.spawn(function()
          for r in it, s do
            lists[i][#lists[i] + 1] = r.addr .. "#" .. r.n
          end
          return "done"
        end)
      end
      for i = 1, 4 do
        ends[i] = tasks[i]:join()
      end
    end)
    assert.same({ "done", "done", "done", "done" }, ends)
    assert_partition(128, table.unpack(lists))
  end)

  it("shares results between plain Lua that blocks and a task", function()
    local task_got, main_got = {}, {}
    local it, s = icmprun.sweep("127.0.1.0/24", { rate = 0, count = 2, interval = 10 })
    local task = icmprun.spawn(worker, it, s, task_got)
    for r in it, s do
      main_got[#main_got + 1] = r.addr .. "#" .. r.n
      icmprun.sleep(0) -- Lets the task take its turn.
    end
    assert.equal("done", task:join())
    assert.is_true(#task_got > 0, "the task got nothing")
    assert.is_true(#main_got > 0, "plain Lua got nothing")
    assert_partition(512, task_got, main_got)
    s:close()
  end)

  it("raises a bad target in every puller once the results before it are out",
    function()
      local errs, got = {}, {}
      icmprun.run(function()
        local targets = { "127.0.0.0/28", "not a target" }
        local i = 0
        local it, s = icmprun.sweep(function()
          i = i + 1
          return targets[i]
        end, { rate = 0 })
        local tasks = {}
        for t = 1, 2 do
          got[t] = {}
          tasks[t] = icmprun.spawn(function()
            local ok, err = pcall(worker, it, s, got[t])
            errs[t] = not ok and tostring(err)
          end)
        end
        tasks[1]:join()
        tasks[2]:join()
        s:close()
      end)
      for t = 1, 2 do
        assert.is_string(errs[t], "puller " .. t .. " did not raise")
        assert.matches("not a target", errs[t], 1, true)
      end
      assert_partition(16, got[1], got[2])
    end)

  it("makes a closed sweep raise in a puller that still waits", function()
    local err
    icmprun.run(function()
      -- The silent route: nothing comes back before the close.
      local it, s = icmprun.sweep("2001:db8:beef::/124", { rate = 0, timeout = 5000 })
      local puller = icmprun.spawn(function()
        local ok, e = pcall(it, s)
        err = not ok and e
      end)
      icmprun.sleep(50)
      s:close()
      puller:join()
    end)
    assert.matches("sweep: used after it was closed", err, 1, true)
    assert.equal(0, icmprun.counters().pending)
  end)

  it("makes a closed sweep raise in plain Lua that blocks in it", function()
    -- The blocking call runs the loop; the task closes the sweep under it,
    -- and the call must look the sweep up again rather than use it.
    local it, s = icmprun.sweep("2001:db8:beef::/124", { rate = 0, timeout = 5000 })
    local closer = icmprun.spawn(function()
      icmprun.sleep(50)
      s:close()
    end)
    local ok, err = pcall(it, s)
    assert.is_false(ok)
    assert.matches("sweep: used after it was closed", err, 1, true)
    closer:join()
    collectgarbage()
    assert.equal(0, icmprun.counters().pending)
  end)
end)
