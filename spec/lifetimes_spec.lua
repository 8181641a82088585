-- SPDX-License-Identifier: MIT

--- Lifetimes of the runtime's objects on the paths that crashed or leaked:
-- waits where a task cannot yield, waiters of abandoned tasks, a task error
-- that cannot be printed, closed standard streams, and luv handles still
-- closing when stock Lua closes its state.
--
-- Every case runs in a process of its own, through stock lua5.4 with the
-- module and through the icmprun command. In the sanitizer build the first
-- runs with AddressSanitizer preloaded and the second is linked with it (and
-- its leak checker), so a use-after-free or a leaked waiter fails the exit
-- status these specs assert.
local cli = require "cli"

-- A host of the test network that never answers: a probe to it stays in
-- flight until its timeout, long after the task that sent it is gone.
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
    .. "icmprun.run(function()\n" .. code .. "\nend)\n")
  local command = cli.icmprun_script("local icmprun = require 'icmprun'\n" .. code)
  return stock, command
end

describe("a wait where the task cannot yield", function()
  it("is refused inside a __gc metamethod, before anything is sent", function()
    -- The task that made the garbage ends at once and is collected while the
    -- refused probe would still be in flight.
    local stock, command = both([[
      icmprun.spawn(function()
        setmetatable({}, { __gc = function()
          print("ping", pcall(icmprun.ping, "]] .. SILENT .. [[", { timeout = 100 }))
          print("sleep", pcall(icmprun.sleep, 10))
        end })
        collectgarbage()
      end)
      icmprun.sleep(10)
      collectgarbage()
      collectgarbage()
      icmprun.sleep(150)
      print("sent", icmprun.counters().sent)
    ]])
    for _, r in ipairs({ stock, command }) do
      assert_clean(r)
      assert.equal("ping\tfalse\tping: cannot wait inside a __gc metamethod\n"
        .. "sleep\tfalse\tsleep: cannot wait inside a __gc metamethod\n"
        .. "sent\t0\n", r.stdout)
    end
  end)

  it("is refused in a table.sort comparator under pcall", function()
    local stock, command = both([[
      icmprun.spawn(function()
        local other = icmprun.spawn(function() end)
        for _, wait in ipairs({
          function() icmprun.ping("]] .. SILENT .. [[", { timeout = 100 }) end,
          function() icmprun.sleep(10) end,
          function() other:join() end,
        }) do
          local ok, err = pcall(table.sort, { 3, 1, 2 }, function(a, b)
            wait()
            return a < b
          end)
          print(ok, err:match("(%a+: cannot wait here): the task is inside a call from C "
            .. "that cannot yield"))
        end
      end)
      icmprun.sleep(10)
      collectgarbage()
      collectgarbage()
      icmprun.sleep(150)
      print("sent", icmprun.counters().sent)
    ]])
    for _, r in ipairs({ stock, command }) do
      assert_clean(r)
      assert.equal("false\tping: cannot wait here\n"
        .. "false\tsleep: cannot wait here\n"
        .. "false\tjoin: cannot wait here\n"
        .. "sent\t0\n", r.stdout)
    end
  end)

  it("is refused in a __gc outside any task in stock Lua, run included", function()
    local r = cli.lua_script([[
      local icmprun = require "icmprun"
      setmetatable({}, { __gc = function()
        print(pcall(icmprun.ping, "127.0.0.1"))
        print(pcall(icmprun.sleep, 1))
        print(pcall(icmprun.run, function() end))
      end })
      collectgarbage()
      print("sent", icmprun.counters().sent)
    ]])
    assert_clean(r)
    assert.equal("false\tping: cannot wait inside a __gc metamethod\n"
      .. "false\tsleep: cannot wait inside a __gc metamethod\n"
      .. "false\trun: cannot run the loop inside a __gc metamethod\n"
      .. "sent\t0\n", r.stdout)
  end)

  it("still waits in a task under pcall, which can yield", function()
    local stock, command = both([[
      print(pcall(function()
        icmprun.sleep(1)
        return icmprun.ping("127.0.0.1").status
      end))
    ]])
    for _, r in ipairs({ stock, command }) do
      assert_clean(r)
      assert.equal("true\treply\n", r.stdout)
    end
  end)
end)

describe("a run that a task's error ended", function()
  it("detaches the waiters of the tasks it abandoned (stock Lua)", function()
    -- The probe and the sleep of the abandoned tasks end during the second
    -- run, after their tasks were collected.
    local r = cli.lua_script([[
      local icmprun = require "icmprun"
      local ok, err = pcall(icmprun.run, function()
        icmprun.spawn(function() icmprun.ping("]] .. SILENT .. [[", { timeout = 100 }) end)
        icmprun.spawn(function() icmprun.ping("127.0.0.1") end)
        icmprun.spawn(function() icmprun.sleep(100) end)
        icmprun.spawn(function() icmprun.resolve("localhost") end)
        icmprun.sleep(1)
        error("boom")
      end)
      print(ok, (err:match("boom")))
      collectgarbage()
      collectgarbage()
      print(pcall(icmprun.run, function()
        icmprun.sleep(300)
        return "second run"
      end))
      local stats = icmprun.counters()
      print(stats.sent, stats.results)
    ]])
    assert_clean(r)
    assert.equal("false\tboom\ntrue\tsecond run\n2\t2\n", r.stdout)
  end)

  it("frees the waiters of the tasks it abandoned (icmprun)", function()
    local r = cli.icmprun_script([[
      local icmprun = require "icmprun"
      icmprun.spawn(function() icmprun.ping("]] .. SILENT .. [[", { timeout = 5000 }) end)
      icmprun.spawn(function() icmprun.sleep(5000) end)
      icmprun.spawn(function() icmprun.resolve("localhost") end)
      icmprun.sleep(1)
      error("boom")
    ]])
    assert.equal(1, r.code, r.stderr)
    assert.matches("boom", r.stderr)
    assert.not_matches("Sanitizer", r.stderr)
  end)
end)

describe("a task error whose __tostring raises", function()
  local CODE = [[
    icmprun.spawn(function()
      error(setmetatable({}, { __tostring = function() error("bad tostring") end }))
    end)
  ]]

  it("ends icmprun with a clear message and status 1", function()
    local r = cli.icmprun_script("local icmprun = require 'icmprun'\n" .. CODE)
    assert.equal(1, r.code, r.stderr)
    assert.matches("error object is a table value whose __tostring raised: "
      .. "[^\n]*bad tostring", r.stderr)
    assert.not_matches("PANIC", r.stderr)
  end)

  it("makes icmprun.run raise that message in stock Lua", function()
    local r = cli.lua_script([[
      local icmprun = require "icmprun"
      local ok, err = pcall(icmprun.run, function()
        ]] .. CODE .. [[
      end)
      print(ok, (err:match("__tostring raised: [^\n]*bad tostring") ~= nil))
    ]])
    assert_clean(r)
    assert.equal("false\ttrue\n", r.stdout)
  end)
end)

describe("a closed standard stream", function()
  -- The script reports on stderr unless that is the closed one, and on
  -- stdout otherwise; a socket that took fd 0-2 would make icmprun abort at
  -- exit, and print write into it.
  local SCRIPT = [[
    local icmprun = require "icmprun"
    local function main()
      local status = icmprun.ping("127.0.0.1").status
      io.stderr:write("stderr ", status, "\n")
      print("stdout " .. status)
    end
    -- In the icmprun command the script is a task already.
    if ... == "command" then main() else icmprun.run(main) end
  ]]

  for fd = 0, 2 do
    it("is opened on /dev/null, fd " .. fd, function()
      local path = cli.temp_file(SCRIPT, ".lua")
      local command = cli.sh(string.format("%s %s command %d>&-",
        cli.quote(cli.icmprun), cli.quote(path), fd))
      local preload = os.getenv("LD_PRELOAD")
      local stock = cli.sh(string.format("%s%s %s %d>&-",
        preload and ("LD_PRELOAD=" .. cli.quote(preload) .. " ")
          or "", cli.quote(cli.lua), cli.quote(path), fd))
      os.remove(path)
      for _, r in ipairs({ command, stock }) do
        assert.equal(0, r.code, r.stderr)
        assert.equal(fd == 1 and "" or "stdout reply\n", r.stdout)
        assert.equal(fd == 2 and "" or "stderr reply\n", r.stderr)
      end
    end)
  end
end)

describe("luv handles at exit", function()
  it("ends cleanly when a handle is closed after icmprun.run returns", function()
    local r = cli.lua_script([[
      local icmprun = require "icmprun"
      local uv = require "luv"
      local timer
      icmprun.run(function()
        timer = uv.new_timer()
        timer:start(5, 0, function() end)
        icmprun.sleep(20)
      end)
      local tcp = uv.new_tcp()
      timer:close(function() print("closed") end)
      tcp:close()
      print("done")
    ]])
    assert_clean(r)
    -- The loop does not run again after run returned: the close callback
    -- comes when the module ends the loop at exit.
    assert.equal("done\nclosed\n", r.stdout)
  end)

  it("ends cleanly with a sweep left open and a luv handle opened after it", function()
    local code = [[
      local icmprun = require "icmprun"
      local it, sweep = icmprun.sweep({ "127.0.0.1", "127.0.0.2" }, { rate = 0 })
      print(it(sweep).status)
      local uv = require "luv"
      local timer = uv.new_timer()
      timer:start(1000, 0, function() end)
      local idle = uv.new_idle()
      idle:close()
      print("done")
    ]]
    local stock = cli.lua_script("require('icmprun').run(function()\n" .. code .. "\nend)")
    local command = cli.icmprun_script(code)
    for _, r in ipairs({ stock, command }) do
      assert_clean(r)
      assert.equal("reply\ndone\n", r.stdout)
    end
  end)

  it("runs the exporter example to its end", function()
    local preload = os.getenv("LD_PRELOAD")
    local r = cli.sh(string.format(
      "cd %s && %stimeout 60 %s examples/exporter.lua --seconds 1 --interval 100 "
        .. "--listen 127.0.0.1:0 --print 127.0.0.1",
      cli.quote(cli.source_dir),
      preload and ("LD_PRELOAD=" .. cli.quote(preload) .. " ")
        or "", cli.quote(cli.lua)))
    assert_clean(r)
    assert.matches('icmprun_results_total{[^}]*status="reply"} [1-9]', r.stdout)
  end)
end)
