-- SPDX-License-Identifier: MIT

--- The icmprun command, black box: options, scripts and their arguments, exit
-- status and messages, errors with tracebacks, waiting for tasks, require.
local cli = require "cli"

local explain = cli.explain

describe("icmprun command", function()
  describe("with a script", function()
    it("passes arg[0], the arguments in arg and in ...", function()
      local r = cli.icmprun_script([[
        print(arg[0], arg[1], arg[2], #arg)
        print(select("#", ...), ...)
      ]], { "one", "two words" })
      assert.equal(0, r.code, explain(r))
      assert.equal(r.script .. "\tone\ttwo words\t2\n2\tone\ttwo words\n", r.stdout)
      assert.equal("", r.stderr)
    end)

    it("puts the interpreter and options at negative indices of arg", function()
      local r = cli.icmprun_script("print(arg[-1])")
      assert.equal(0, r.code, explain(r))
      assert.equal(cli.icmprun .. "\n", r.stdout)
    end)

    it("injects no global besides what lua provides", function()
      local r = cli.icmprun_script([[
        print(rawget(_G, "icmprun"), type(require "icmprun"))
      ]])
      assert.equal(0, r.code, explain(r))
      assert.equal("nil\ttable\n", r.stdout)
    end)
  end)

  describe("option", function()
    it("-e runs code", function()
      local r = cli.icmprun_run({ "-e", "print(6 * 7)" })
      assert.equal(0, r.code, explain(r))
      assert.equal("42\n", r.stdout)
    end)

    it("-e runs before the script", function()
      local path = cli.temp_file("print('script', X)", ".lua")
      local r = cli.icmprun_run({ "-e", "X = 1 print('e')", path })
      os.remove(path)
      assert.equal(0, r.code, explain(r))
      assert.equal("e\nscript\t1\n", r.stdout)
    end)

    it("- reads the script from standard input", function()
      local r = cli.icmprun_run({ "-", "a", "b" }, "print('stdin', ...)")
      assert.equal(0, r.code, explain(r))
      assert.equal("stdin\ta\tb\n", r.stdout)
    end)

    it("-l requires a module into a global", function()
      local r = cli.icmprun_run({ "-l", "string", "-e", "print(string.rep('x', 3))" })
      assert.equal(0, r.code, explain(r))
      assert.equal("xxx\n", r.stdout)
    end)

    it("--help prints the usage and exits 0", function()
      local r = cli.icmprun_run({ "--help" })
      assert.equal(0, r.code, explain(r))
      assert.matches("usage: icmprun", r.stdout)
      assert.matches("ping_group_range", r.stdout)
    end)

    it("--version prints the version and exits 0", function()
      local r = cli.icmprun_run({ "--version" })
      assert.equal(0, r.code, explain(r))
      assert.matches("^icmprun %d+%.%d+%.%d+", r.stdout)
      -- The module reports the same version.
      local v = cli.icmprun_run({ "-e", "print(require('icmprun').version)" })
      assert.equal(0, v.code, explain(v))
      assert.truthy(r.stdout:find(v.stdout:match("^(%S+)"), 1, true), r.stdout)
    end)

    it("that is unknown exits non-zero, naming it", function()
      local r = cli.icmprun_run({ "--frobnicate" })
      assert.not_equal(0, r.code)
      assert.matches("%-%-frobnicate", r.stderr)
      assert.equal("", r.stdout)
    end)

    it("-e without its code exits non-zero", function()
      local r = cli.icmprun_run({ "-e" })
      assert.not_equal(0, r.code)
      assert.matches("%-e", r.stderr)
    end)

    it("none at all: prints the usage and exits non-zero", function()
      local r = cli.icmprun_run({})
      assert.not_equal(0, r.code)
      assert.matches("usage: icmprun", r.stderr)
    end)
  end)

  describe("failures", function()
    it("a missing script: exits non-zero, naming the file", function()
      local r = cli.icmprun_run({ "/nonexistent/no-such-script.lua" })
      assert.not_equal(0, r.code)
      assert.truthy(r.stderr:find("/nonexistent/no-such-script.lua", 1, true), r.stderr)
    end)

    it("a syntax error: exits non-zero with file:line", function()
      local r = cli.icmprun_script("local x = 1\nlocal = 2\n")
      assert.not_equal(0, r.code)
      assert.truthy(r.stderr:find(r.script .. ":2:", 1, true), r.stderr)
      assert.equal("", r.stdout)
    end)

    it("a runtime error in the main chunk: exits 1 with message and traceback",
      function()
        local r = cli.icmprun_script([[
          local function fail() error("main chunk failed") end
          print("before")
          fail()
          print("after")
        ]])
        assert.equal(1, r.code, explain(r))
        assert.equal("before\n", r.stdout)
        assert.truthy(r.stderr:find(r.script .. ":1: main chunk failed", 1, true),
          r.stderr)
        assert.matches("stack traceback:", r.stderr)
        assert.matches("in local 'fail'", r.stderr)
      end)

    it("a runtime error in -e code: exits 1 with message and traceback", function()
      local r = cli.icmprun_run({ "-e", "error('from -e')" })
      assert.equal(1, r.code, explain(r))
      assert.matches("from %-e", r.stderr)
      assert.matches("stack traceback:", r.stderr)
    end)

    it("an error in a spawned task: exits 1 with message and traceback, "
      .. "even when the main chunk ends normally", function()
        local r = cli.icmprun_script([[
          local icmprun = require "icmprun"
          local function fail() error("spawned task failed") end
          icmprun.spawn(function() icmprun.sleep(50); fail() end)
          print("main chunk done")
        ]])
        assert.equal(1, r.code, explain(r))
        assert.equal("main chunk done\n", r.stdout)
        assert.truthy(r.stderr:find(r.script .. ":2: spawned task failed", 1, true),
          r.stderr)
        assert.matches("stack traceback:", r.stderr)
      end)

    it("an error in a spawned task stops the run", function()
      local r = cli.icmprun_script([[
        local icmprun = require "icmprun"
        icmprun.spawn(function() error("stop here") end)
        icmprun.sleep(200)
        print("main chunk went on")
      ]])
      assert.equal(1, r.code, explain(r))
      assert.equal("", r.stdout)
      assert.matches("stop here", r.stderr)
    end)

    it("a deadlock: exits 1 with a message instead of hanging", function()
      local r = cli.sh("timeout 30 " .. cli.icmprun_cmdline({ "-e", [[
        local icmprun = require "icmprun"
        local a, b
        a = icmprun.spawn(function() return b:join() end)
        b = icmprun.spawn(function() return a:join() end)
      ]] }))
      assert.equal(1, r.code, explain(r))
      assert.matches("deadlock", r.stderr)
    end)
  end)

  describe("os.exit", function()
    it("exits with its status, keeping the output printed before", function()
      local r = cli.icmprun_script([[
        io.write("partial line, ")
        print("then a full one")
        io.stderr:write("to stderr\n")
        os.exit(3)
      ]])
      assert.equal(3, r.code)
      assert.equal("partial line, then a full one\n", r.stdout)
      assert.equal("to stderr\n", r.stderr)
    end)

    it("exits from inside a task while others wait", function()
      local r = cli.icmprun_script([[
        local icmprun = require "icmprun"
        icmprun.spawn(function() icmprun.sleep(10000) end)
        icmprun.spawn(function() icmprun.sleep(20); print("exiting"); os.exit(true) end)
      ]])
      assert.equal(0, r.code, explain(r))
      assert.equal("exiting\n", r.stdout)
    end)
  end)

  describe("tasks", function()
    it("are waited for after the main chunk returns", function()
      local r = cli.icmprun_script([[
        local icmprun = require "icmprun"
        icmprun.spawn(function()
          icmprun.sleep(200)
          print("task done")
        end)
        print("main chunk done")
      ]])
      assert.equal(0, r.code, explain(r))
      assert.equal("main chunk done\ntask done\n", r.stdout)
    end)

    it("run concurrently with the main chunk", function()
      local r = cli.icmprun_script([[
        local icmprun = require "icmprun"
        local t = icmprun.spawn(function() print("task"); return "joined" end)
        icmprun.sleep(10)
        print("main", t:join())
      ]])
      assert.equal(0, r.code, explain(r))
      assert.equal("task\nmain\tjoined\n", r.stdout)
    end)
  end)

  describe("require", function()
    local dir

    before_each(function()
      dir = cli.temp_dir()
    end)

    after_each(function()
      cli.remove_tree(dir)
    end)

    it("finds a module beside the script, from any working directory", function()
      assert(os.execute("mkdir " .. cli.quote(dir .. "/campaign")))
      cli.write_files(dir, {
        ["campaign/main.lua"] = 'print(require("helper").greet(...))',
        ["campaign/helper.lua"] = 'return { greet = function(n) return "hello " .. n end }',
      })
      local r = cli.sh("cd / && " .. cli.icmprun_cmdline({ dir .. "/campaign/main.lua", "ops" }))
      assert.equal(0, r.code, explain(r))
      assert.equal("hello ops\n", r.stdout)
    end)

    it("finds a module on LUA_PATH", function()
      cli.write_files(dir, { ["shared.lua"] = 'return { answer = 42 }' })
      local r = cli.sh("LUA_PATH=" .. cli.quote(dir .. "/?.lua;;") .. " "
        .. cli.icmprun_cmdline({ "-e", 'print(require("shared").answer)' }))
      assert.equal(0, r.code, explain(r))
      assert.equal("42\n", r.stdout)
    end)

    it("finds the embedded library without any path", function()
      local r = cli.sh("cd / && LUA_PATH=';' " .. cli.icmprun_cmdline({ "-e", [[
        local stats = require "icmprun.stats"
        local s = stats.new()
        s:add({ status = "reply", rtt = 2 })
        s:add({ status = "timeout" })
        print(s:loss(), package.preload["icmprun.stats"] ~= nil)
      ]] }))
      assert.equal(0, r.code, explain(r))
      assert.equal("50.0\ttrue\n", r.stdout)
    end)
  end)

  describe("icmprun.ping", function()
    it("works from a script, on both families", function()
      local r = cli.icmprun_script([[
        local icmprun = require "icmprun"
        for _, addr in ipairs({ "127.0.0.1", "::1" }) do
          local r = assert(icmprun.ping(addr))
          print(r.status, r.from, r.rtt > 0)
        end
      ]])
      assert.equal(0, r.code, explain(r))
      assert.equal("reply\t127.0.0.1\ttrue\nreply\t::1\ttrue\n", r.stdout)
    end)

    it("yields only the calling task: concurrent probes share the wait", function()
      local r = cli.icmprun_script([[
        local icmprun = require "icmprun"
        local t0 = icmprun.now()
        local tasks = {}
        for i = 1, 5 do
          tasks[i] = icmprun.spawn(icmprun.ping, "192.0.2.2", { timeout = 400 })
        end
        for _, t in ipairs(tasks) do assert(t:join().status == "timeout") end
        -- One after another they would take 2000 ms.
        local took = icmprun.now() - t0
        print(took >= 400, took < 1600)
      ]])
      assert.equal(0, r.code, explain(r))
      assert.equal("true\ttrue\n", r.stdout)
    end)
  end)
end)
