-- SPDX-License-Identifier: MIT

--- LuaRocks: `luarocks make` of icmprun from a copy of the checkout into a
-- temporary tree, then of the example shared library (a rock depending on
-- icmprun that adds a command and a module), whose command the tree's
-- icmprun runs and lists.
local cli = require "cli"

local explain = cli.explain

describe("luarocks make", function()
  local dir, tree, luarocks
  setup(function()
    dir = cli.temp_dir()
    tree = dir .. "/tree"
    -- HOME inside the temporary folder keeps luarocks' cache and config there.
    luarocks = string.format("HOME=%s luarocks --lua-version 5.4 --tree %s", cli.quote(dir),
      cli.quote(tree))
    -- A copy without build folders: luarocks builds in its own build.luarocks.
    local r = cli.sh(string.format("mkdir %s/src && tar -C %s --exclude='./build*' "
      .. "--exclude=./.git -cf - . | tar -C %s/src -xf -", dir, cli.quote(cli.source_dir), dir))
    assert(r.code == 0, explain(r))
  end)
  teardown(function()
    cli.remove_tree(dir)
  end)

  it("of the checkout installs a working icmprun into the tree", function()
    -- The run-time Lua modules come from Debian's packages, not from rocks.
    local r = cli.sh(string.format("cd %s/src && %s make --deps-mode=none icmprun-scm-1.rockspec",
      dir, luarocks))
    assert.equal(0, r.code, explain(r))
    r = cli.sh(string.format("cd / && %s/bin/icmprun sweep 127.0.0.1 ::1", tree))
    assert.equal(0, r.code, explain(r))
    assert.equal("127.0.0.1\n::1\n", r.stdout)
    r = cli.sh(luarocks .. " list --porcelain")
    assert.matches("^icmprun\tscm%-1\tinstalled\t", r.stdout)
  end)

  it("of the example library adds a command that icmprun runs and lists", function()
    local r = cli.sh(string.format("cd %s/src/examples/shared-library && %s make "
      .. "icmprun-teamtools-scm-1.rockspec", dir, luarocks))
    assert.equal(0, r.code, explain(r))
    r = cli.sh(string.format("cd / && %s/bin/icmprun checkup -c 2 127.0.0.1 192.0.2.2", tree))
    assert.equal(1, r.code, explain(r))
    assert.equal("127.0.0.1 up 2/2\n192.0.2.2 down 0/2\n", r.stdout)
    r = cli.sh(string.format("cd / && %s/bin/icmprun --list", tree))
    assert.equal(0, r.code, explain(r))
    assert.matches("\ncheckup +say whether each host is up[^\n]*  %["
      .. tree:gsub("%p", "%%%0") .. "/share/lua/5%.4/icmprun/commands/checkup%.lua%]\n",
      "\n" .. r.stdout)
  end)

  it("gives stock lua5.4 the library's module through luarocks path", function()
    local r = cli.sh(string.format([[eval "$(%s path)" && cd / && %s -e '
      local health = require "teamtools.health"
      local icmprun = require "icmprun"
      print(package.searchpath("icmprun", package.cpath))
      local tally = health.new()
      icmprun.run(function() tally:add(icmprun.ping("127.0.0.1")) end)
      local row = tally:rows()[1]
      print(row.addr, row.verdict)']], luarocks, cli.quote(cli.lua)))
    assert.equal(0, r.code, explain(r))
    assert.equal(tree .. "/lib/lua/5.4/icmprun.so\n127.0.0.1\tup\n", r.stdout)
  end)

  it("removed again, the command is unknown", function()
    local r = cli.sh(luarocks .. " remove icmprun-teamtools")
    assert.equal(0, r.code, explain(r))
    r = cli.sh(string.format("cd / && %s/bin/icmprun checkup 127.0.0.1", tree))
    assert.equal(1, r.code, explain(r))
    assert.matches("unknown command 'checkup'", r.stderr, 1, true)
  end)
end)
