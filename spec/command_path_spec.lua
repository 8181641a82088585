-- SPDX-License-Identifier: MIT

--- How `icmprun NAME` finds what to run: bundled commands, then commands on
-- the path (ICMPRUN_PATH, LUA_PATH, ~/.local/share/icmprun), then files;
-- `--list`; a program named after a command; the process named after it.
local cli = require "cli"

local explain = cli.explain

-- A command module that prints its name, its arguments and a tag, and exits
-- with status 3 so that the status is seen to come from it.
local function command_source(tag)
  return string.format([[
    return {
      summary = "the %s command",
      run = function(arg)
        print(%q, arg[0], table.concat(arg, ","))
        return 3
      end,
    }
  ]], tag, tag)
end

-- Runs a shell line in `dir` with icmprun as $I.
local function sh_in(dir, line, stdin)
  return cli.sh(string.format("cd %s && I=%s && %s", cli.quote(dir), cli.quote(cli.icmprun),
    line), stdin)
end

describe("icmprun NAME", function()
  local dir
  before_each(function()
    dir = cli.temp_dir()
    assert(os.execute("mkdir -p " .. cli.quote(dir) .. "/team/icmprun/commands "
      .. cli.quote(dir) .. "/home/.local/share/icmprun/icmprun/commands "
      .. cli.quote(dir) .. "/work"))
  end)
  after_each(function()
    cli.remove_tree(dir)
  end)

  describe("finds a command on the path", function()
    it("in an ICMPRUN_PATH folder, runs it with its arguments and exit status", function()
      cli.write_file(dir .. "/team/icmprun/commands/teamcmd.lua", command_source("team"))
      local r = sh_in(dir .. "/work", "ICMPRUN_PATH=../nothere\\;" .. dir
        .. "/team $I teamcmd a 'b c'")
      assert.equal(3, r.code, explain(r))
      assert.equal("team\tteamcmd\ta,b c\n", r.stdout)
      assert.equal("", r.stderr)
    end)

    it("in ~/.local/share/icmprun", function()
      cli.write_file(dir .. "/home/.local/share/icmprun/icmprun/commands/mine.lua",
        command_source("mine"))
      local r = sh_in(dir .. "/work", "HOME=" .. cli.quote(dir .. "/home") .. " $I mine x")
      assert.equal(3, r.code, explain(r))
      assert.equal("mine\tmine\tx\n", r.stdout)
    end)

    it("on LUA_PATH, as a folder with init.lua", function()
      assert(os.execute("mkdir -p " .. cli.quote(dir) .. "/team/icmprun/commands/folder"))
      cli.write_file(dir .. "/team/icmprun/commands/folder/init.lua", command_source("folder"))
      local r = sh_in(dir .. "/work", "LUA_PATH=" .. cli.quote(dir .. "/team/?/init.lua")
        .. " $I folder")
      assert.equal(3, r.code, explain(r))
      assert.equal("folder\tfolder\t\n", r.stdout)
    end)

    it("and a command's modules beside it on the same path", function()
      cli.write_files(dir .. "/team", {
        ["icmprun/commands/uses.lua"] = [[
          local helper = require "teamlib"
          return { summary = "uses a module", run = function() print(helper.greet()) end }
        ]],
        ["teamlib.lua"] = "return { greet = function() return 'hello from teamlib' end }",
      })
      -- Folders separated by ':' as in PATH (or ';' as in LUA_PATH, above).
      local r = sh_in(dir .. "/work", "ICMPRUN_PATH=/nothere:" .. cli.quote(dir .. "/team")
        .. " $I uses")
      assert.equal(0, r.code, explain(r))
      assert.equal("hello from teamlib\n", r.stdout)
    end)

    it("reports a command's error with its traceback, exit 1", function()
      cli.write_file(dir .. "/team/icmprun/commands/fails.lua", [[
        return { summary = "fails", run = function() error("broken on purpose") end }
      ]])
      local r = sh_in(dir .. "/work", "ICMPRUN_PATH=" .. cli.quote(dir .. "/team") .. " $I fails")
      assert.equal(1, r.code, explain(r))
      assert.matches("fails.lua:1: broken on purpose", r.stderr, 1, true)
      assert.matches("stack traceback", r.stderr, 1, true)
    end)
  end)

  describe("--list", function()
    it("shows bundled and path commands with where each comes from", function()
      cli.write_file(dir .. "/team/icmprun/commands/teamcmd.lua", command_source("team"))
      cli.write_file(dir .. "/home/.local/share/icmprun/icmprun/commands/mine.lua",
        command_source("mine"))
      local r = sh_in(dir .. "/work", "HOME=" .. cli.quote(dir .. "/home") .. " ICMPRUN_PATH="
        .. cli.quote(dir .. "/team") .. " $I --list")
      assert.equal(0, r.code, explain(r))
      local out = "\n" .. r.stdout
      assert.matches("\nsweep +list the addresses[^\n]*%[bundled%]\n", out)
      assert.matches("\nping +send ICMP echo requests[^\n]*%[bundled%]\n", out)
      assert.matches("\nteamcmd +the team command  %[" .. dir:gsub("%p", "%%%0")
        .. "/team/icmprun/commands/teamcmd%.lua%]\n", out)
      assert.matches("\nmine +the mine command  %[" .. dir:gsub("%p", "%%%0")
        .. "/home/%.local/share/icmprun/icmprun/commands/mine%.lua%]\n", out)
    end)

    it("says which path file a bundled command hides, and lists broken ones", function()
      cli.write_file(dir .. "/team/icmprun/commands/ping.lua", command_source("fake ping"))
      cli.write_file(dir .. "/team/icmprun/commands/notacommand.lua", "return 42")
      cli.write_file(dir .. "/team/icmprun/commands/syntax.lua", "return {")
      local r = sh_in(dir .. "/work", "ICMPRUN_PATH=" .. cli.quote(dir .. "/team") .. " $I --list")
      assert.equal(0, r.code, explain(r))
      assert.matches("\nping +send ICMP echo[^\n]*%[bundled%]\n +%(hides [^\n]*/team/icmprun/"
        .. "commands/ping%.lua: a bundled command wins%)\n", "\n" .. r.stdout)
      assert.matches("\nnotacommand +%(not a command", "\n" .. r.stdout)
      assert.matches("\nsyntax +%(cannot be loaded: ", "\n" .. r.stdout)
      -- The bundled ping still runs.
      r = sh_in(dir .. "/work", "ICMPRUN_PATH=" .. cli.quote(dir .. "/team")
        .. " $I ping -c 1 127.0.0.1")
      assert.equal(0, r.code, explain(r))
      assert.matches("^PING 127%.0%.0%.1", r.stdout)
    end)
  end)

  describe("in a folder holding files named like commands", function()
    before_each(function()
      cli.write_files(dir .. "/work", {
        sweep = "",
        ping = "print('the file named ping')",
        ["sweep.lua"] = "print('the file sweep.lua', ...)",
      })
      assert(os.execute("mkdir " .. cli.quote(dir .. "/work/exporter")))
    end)

    it("an empty file named sweep does not shadow the command", function()
      local r = sh_in(dir .. "/work", "$I sweep 127.0.0.1")
      assert.equal(0, r.code, explain(r))
      assert.equal("127.0.0.1\n", r.stdout)
    end)

    it("a Lua file named ping does not run instead of the command", function()
      local r = sh_in(dir .. "/work", "$I ping -c 1 127.0.0.1")
      assert.equal(0, r.code, explain(r))
      assert.matches("^PING 127%.0%.0%.1", r.stdout)
    end)

    it("a folder named exporter does not hide the command", function()
      local r = sh_in(dir .. "/work", "$I exporter --help")
      assert.equal(0, r.code, explain(r))
      assert.matches("^Usage: icmprun exporter", r.stdout)
    end)

    it("a file named with a folder or .lua runs the file", function()
      local r = sh_in(dir .. "/work", "$I ./ping && $I sweep.lua x")
      assert.equal(0, r.code, explain(r))
      assert.equal("the file named ping\nthe file sweep.lua\tx\n", r.stdout)
    end)

    it("a file whose name is no command runs as a script", function()
      cli.write_file(dir .. "/work/myscript", "print('my script', ...)")
      local r = sh_in(dir .. "/work", "$I myscript 1")
      assert.equal(0, r.code, explain(r))
      assert.equal("my script\t1\n", r.stdout)
    end)
  end)

  it("says a name is unknown, suggests the nearest, and points to --list", function()
    local r = sh_in(dir .. "/work", "$I swep 127.0.0.1")
    assert.equal(1, r.code, explain(r))
    assert.equal("", r.stdout)
    assert.equal("icmprun: unknown command 'swep', and no file of that name (did you mean "
      .. "'sweep'?); 'icmprun --list' lists the commands\n", r.stderr)
    r = sh_in(dir .. "/work", "$I zzzzzzzz")
    assert.equal(1, r.code, explain(r))
    assert.equal("icmprun: unknown command 'zzzzzzzz', and no file of that name; "
      .. "'icmprun --list' lists the commands\n", r.stderr)
  end)

  describe("run through a link named after a command", function()
    it("fping -> icmprun runs icmprun fping with every argument", function()
      local r = sh_in(dir .. "/work", "ln -s \"$I\" fping && ./fping -c 1 -q 127.0.0.1")
      assert.equal(0, r.code, explain(r))
      assert.matches("^127%.0%.0%.1 +: xmt/rcv/%%loss = 1/1/0%%", r.stderr)
    end)

    it("passes options icmprun itself would take to the command", function()
      local r = sh_in(dir .. "/work", "ln -s \"$I\" fping && ./fping -v")
      assert.equal(0, r.code, explain(r))
      assert.matches("fping", r.stdout)
    end)

    it("named after no command, says so", function()
      local r = sh_in(dir .. "/work", "ln -s \"$I\" nothing && ./nothing -c 1 127.0.0.1")
      assert.equal(1, r.code, explain(r))
      assert.equal("icmprun: run as 'nothing', which names no command; 'icmprun --list' "
        .. "lists them\n", r.stderr)
    end)
  end)

  it("names the process after the command, so pidof and pkill find it", function()
    local r = sh_in(dir .. "/work", [[
      $I fping -l -p 100 127.0.0.1 >out 2>&1 &
      pid=$!
      for _ in $(seq 100); do grep -q 127.0.0.1 out && break; sleep 0.05; done
      echo "comm $(cat /proc/$pid/comm)"
      echo "cmdline $(tr '\0' ' ' </proc/$pid/cmdline | sed 's/ *$//')"
      pidof fping | tr ' ' '\n' | grep -qx "$pid" && echo "pidof found it"
      # -P: only this shell's child, never another fping on the machine.
      pkill -P "$(ps -o ppid= -p $pid | tr -d ' ')" -x fping && echo "pkill found it"
      sleep 0.2
      kill $pid 2>/dev/null && echo "pkill missed it"
      wait $pid
      echo "status $?"
    ]])
    assert.equal(0, r.code, explain(r))
    assert.matches("comm fping\n", r.stdout, 1, true)
    assert.matches("cmdline fping -l -p 100 127.0.0.1\n", r.stdout, 1, true)
    assert.matches("pidof found it\npkill found it\nstatus 143\n", r.stdout, 1, true)
  end)
end)
