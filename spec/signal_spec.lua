-- SPDX-License-Identifier: MIT

--- icmprun.on_signal and bundled commands, black box: a handler runs as a
-- task when the signal comes; `icmprun NAME` runs a bundled command.
local cli = require "cli"

local explain = cli.explain

--- Starts icmprun on a script in the background, sends it `signal` once it
-- has said "ready", and returns the run's result.
local function interrupted(code, signal)
  local path = cli.temp_file(code, ".lua")
  local out = os.tmpname()
  local r = cli.sh(string.format([[
    %s %s > %s 2>&1 &
    pid=$!
    for _ in $(seq 100); do grep -q ready %s && break; sleep 0.05; done
    kill -%s $pid
    wait $pid
    echo "exit $?"
    cat %s]], cli.quote(cli.icmprun), cli.quote(path), cli.quote(out), cli.quote(out),
    signal, cli.quote(out)))
  os.remove(path)
  os.remove(out)
  r.code = tonumber(r.stdout:match("^exit (%d+)"))
  r.output = r.stdout:gsub("^exit %d+\n", "")
  return r
end

describe("icmprun.on_signal", function()
  it("runs the handler as a task on SIGINT, which may print and exit 130", function()
    local r = interrupted([[
      local icmprun = require "icmprun"
      local replies = 0
      icmprun.on_signal("INT", function(name)
        print("summary after " .. name .. ": " .. replies .. " replies")
        os.exit(130)
      end)
      print("ready")
      io.stdout:flush()
      for _ = 1, 100 do
        if icmprun.ping("127.0.0.1").status == "reply" then replies = replies + 1 end
        icmprun.sleep(50)
      end
      print("not interrupted")
    ]], "INT")
    assert.equal(130, r.code, explain(r))
    assert.matches("summary after INT: %d+ replies\n", r.output)
    assert.not_matches("not interrupted", r.output)
  end)

  it("accepts SIG-prefixed names and restores the default with nil", function()
    local r = interrupted([[
      local icmprun = require "icmprun"
      icmprun.on_signal("SIGTERM", function() print("handled") end)
      icmprun.on_signal("TERM", nil)
      print("ready")
      io.stdout:flush()
      icmprun.sleep(5000)
    ]], "TERM")
    assert.equal(128 + 15, r.code, explain(r))
    assert.not_matches("handled", r.output)
  end)

  it("does not keep icmprun running by itself", function()
    local r = cli.icmprun_run({ "-e", [[
      require("icmprun").on_signal("INT", function() end)
      print("done")
    ]] })
    assert.equal(0, r.code, explain(r))
    assert.equal("done\n", r.stdout)
  end)

  it("rejects a signal it does not know", function()
    local r = cli.icmprun_run({ "-e", [[require("icmprun").on_signal("KILL", print)]] })
    assert.equal(1, r.code, explain(r))
    assert.matches("signal must be INT, TERM, HUP, USR1, USR2 or QUIT", r.stderr)
  end)
end)

describe("SIGINT during a sweep", function()
  it("stops sending, hands out what is known, lets the script summarise, exits 130",
    function()
      local r = interrupted([[
        local icmprun = require "icmprun"
        local next_result, sweep = icmprun.sweep(
          { "127.0.0.1", "::1", "192.0.2.2", "2001:db8:2::2" },
          { rate = 0, count = 100000, interval = 10, timeout = 500 })
        local sent_at_stop
        icmprun.on_signal("INT", function()
          sent_at_stop = icmprun.counters().sent
          sweep:stop()
        end)
        local by_status, results = {}, 0
        for r in next_result, sweep, nil, sweep do
          results = results + 1
          by_status[r.status] = (by_status[r.status] or 0) + 1
          if results == 40 then print("ready") io.stdout:flush() end
        end
        local stats = icmprun.counters()
        for _ = 1, 2000 do io.write("x") end -- Output must not be cut short.
        print()
        print(string.format("at stop %d", sent_at_stop))
        print(string.format("results %d sent %d unsent %d replies %d timeouts %d cancelled %d",
          results, stats.sent, stats.cancelled, by_status.reply or 0, by_status.timeout or 0,
          by_status.error or 0))
        os.exit(130)
      ]], "INT")
      assert.equal(130, r.code, explain(r))
      assert.matches(string.rep("x", 2000) .. "\n", r.output)
      local results, sent, unsent, replies, timeouts, cancelled = r.output:match(
        "results (%d+) sent (%d+) unsent (%d+) replies (%d+) timeouts (%d+) cancelled (%d+)\n$")
      assert.truthy(results, r.output)
      -- Every probe has exactly one result: those sent, and those stop()
      -- found still queued to be sent (a loaded machine leaves some there),
      -- which end cancelled without leaving.
      assert.equal(tonumber(results), sent + unsent)
      assert.is_true(tonumber(unsent) <= tonumber(cancelled), r.output)
      assert.equal(tonumber(results), replies + timeouts + cancelled)
      assert.is_true(tonumber(replies) >= 30)
      -- Not one probe leaves after stop().
      assert.equal(sent, r.output:match("at stop (%d+)\n"))
    end)
end)

describe("bundled commands", function()
  it("are listed by --list, one line each", function()
    local r = cli.icmprun_run({ "--list" })
    assert.equal(0, r.code, explain(r))
    assert.matches("\nversion +print the version", "\n" .. r.stdout)
  end)

  it("run as icmprun NAME, with the exit status the command returns", function()
    local r = cli.icmprun_run({ "version" })
    assert.equal(0, r.code, explain(r))
    assert.matches("^icmprun %d+%.%d+%.%d+\nipv4: dgram\nipv6: dgram\n$", r.stdout)
    r = cli.icmprun_run({ "version", "extra" })
    assert.equal(2, r.code, explain(r))
    assert.matches("takes no arguments", r.stderr)
  end)

  it("win over a file of the same name, which runs when named with a folder", function()
    local dir = cli.temp_dir()
    cli.write_files(dir, { version = "print('the file')" })
    local r = cli.sh("cd " .. cli.quote(dir) .. " && " .. cli.quote(cli.icmprun) .. " version"
      .. " && " .. cli.quote(cli.icmprun) .. " ./version")
    cli.remove_tree(dir)
    assert.equal(0, r.code, explain(r))
    assert.matches("^icmprun %d+%.%d+%.%d+\nipv4: dgram\nipv6: dgram\nthe file\n$", r.stdout)
  end)

  it("are not found for a name that is neither a file nor a command", function()
    local r = cli.icmprun_run({ "no-such-command" })
    assert.equal(1, r.code, explain(r))
    assert.matches("unknown command 'no%-such%-command', and no file of that name", r.stderr)
  end)
end)
