-- SPDX-License-Identifier: MIT

--- Installing anywhere: `cmake --install` to a temporary prefix, then the
-- installed command and stock lua5.4 used from there, away from the source
-- tree; the installed library folder as a place for shared commands; and
-- configure's check of the Lua modules needed at run time.
local cli = require "cli"

local explain = cli.explain

-- The build folder holding the icmprun under test.
local build_dir = cli.icmprun:match("^(.*)/[^/]+$") or "."

--- Installs the build under test into a new temporary prefix.
local function install()
  local dir = cli.temp_dir()
  local r = cli.sh(string.format("cmake --install %s --prefix %s", cli.quote(build_dir),
    cli.quote(dir .. "/prefix")))
  assert(r.code == 0, explain(r))
  return dir
end

-- Runs a shell line in `cwd` with no variable pointing into the source tree.
local function sh_away(cwd, line)
  return cli.sh(string.format("cd %s && unset ICMPRUN_LUA_SOURCE ICMPRUN_SOURCE_DIR "
    .. "ICMPRUN_PATH LUA_PATH LUA_CPATH LUA_PATH_5_4 LUA_CPATH_5_4 && HOME=%s && %s",
    cli.quote(cwd), cli.quote(cwd), line))
end

describe("cmake --install to a temporary prefix", function()
  local dir, prefix
  setup(function()
    dir = install()
    prefix = dir .. "/prefix"
    assert(os.execute("mkdir " .. cli.quote(dir .. "/elsewhere")))
  end)
  teardown(function()
    cli.remove_tree(dir)
  end)

  it("gives a command that runs from there, away from the source tree", function()
    local r = sh_away(dir .. "/elsewhere", cli.quote(prefix .. "/bin/icmprun")
      .. " sweep 127.0.0.1")
    assert.equal(0, r.code, explain(r))
    assert.equal("127.0.0.1\n", r.stdout)
    r = sh_away(dir .. "/elsewhere", cli.quote(prefix .. "/bin/icmprun") .. " --help")
    assert.equal(0, r.code, explain(r))
    assert.matches("\nInstalled library folder: " .. prefix:gsub("%p", "%%%0")
      .. "/share/lua/5%.4\n$", r.stdout)
  end)

  it("whose library folder holds shared modules and commands", function()
    local lib = prefix .. "/share/lua/5.4"
    assert(os.execute("test -f " .. cli.quote(lib .. "/icmprun/cli.lua")))
    cli.write_files(lib, {
      ["teammod.lua"] = "return { where = 'the installed folder' }",
      ["icmprun/commands/installed.lua"] = [[
        local teammod = require "teammod"
        return { summary = "a command in the installed folder",
                 run = function(arg) print("installed", teammod.where, arg[1]) return 0 end }
      ]],
    })
    local icmprun = cli.quote(prefix .. "/bin/icmprun")
    local r = sh_away(dir .. "/elsewhere", icmprun .. " installed x")
    assert.equal(0, r.code, explain(r))
    assert.equal("installed\tthe installed folder\tx\n", r.stdout)
    r = sh_away(dir .. "/elsewhere", icmprun .. " --list")
    assert.equal(0, r.code, explain(r))
    assert.matches("\ninstalled +a command in the installed folder  %[" .. lib:gsub("%p", "%%%0")
      .. "/icmprun/commands/installed%.lua%]\n", "\n" .. r.stdout)
    -- The installed copies of the bundled commands are not "hidden" files.
    assert.not_matches("hides", r.stdout, 1, true)
  end)

  it("still finds its library after the whole prefix is moved", function()
    local moved = dir .. "/moved"
    assert(os.execute(string.format("cp -a %s %s", cli.quote(prefix), cli.quote(moved))))
    cli.write_file(moved .. "/share/lua/5.4/movedmod.lua", "return 'found in the moved prefix'")
    local r = sh_away(dir .. "/elsewhere", cli.quote(moved .. "/bin/icmprun")
      .. " -e 'print((require \"movedmod\"))'")
    cli.remove_tree(moved)
    assert.equal(0, r.code, explain(r))
    assert.equal("found in the moved prefix\n", r.stdout)
  end)

  it("serves stock lua5.4 with the LUA_PATH and LUA_CPATH the README gives", function()
    -- The README's two lines, with PREFIX replaced.
    local readme = assert(io.open(cli.source_dir .. "/README.md")):read("a")
    local exports = readme:match("\n(export LUA_PATH=[^\n]+\nexport LUA_CPATH=[^\n]+)\n")
    assert.is_string(exports, "the README gives the two paths")
    exports = exports:gsub("PREFIX", prefix)
    local preload = os.getenv("LD_PRELOAD")
    local r = sh_away(dir .. "/elsewhere", exports .. " && "
      .. (preload and ("LD_PRELOAD=" .. cli.quote(preload) .. " ") or "")
      .. cli.quote(cli.lua) .. [[ -e '
        local icmprun = require "icmprun"
        print(package.searchpath("icmprun", package.cpath))
        print(package.searchpath("icmprun.cli", package.path))
        icmprun.run(function()
          print(icmprun.ping("127.0.0.1").status)
        end)']])
    assert.equal(0, r.code, explain(r))
    assert.equal(prefix .. "/lib/lua/5.4/icmprun.so\n" .. prefix
      .. "/share/lua/5.4/icmprun/cli.lua\nreply\n", r.stdout)
  end)

  it("installs a pkg-config file that names the prefix it lies in", function()
    local r = sh_away(dir .. "/elsewhere", "PKG_CONFIG_PATH=" .. cli.quote(prefix
      .. "/lib/pkgconfig") .. " pkg-config --cflags --libs icmprun-engine")
    assert.equal(0, r.code, explain(r))
    assert.matches("-I" .. prefix:gsub("%p", "%%%0") .. "/lib/pkgconfig/%.%./%.%./include/icmprun",
      r.stdout)
    assert.matches("-L" .. prefix:gsub("%p", "%%%0") .. "/lib/pkgconfig/%.%./%.%./lib ", r.stdout)
  end)
end)

describe("configure", function()
  it("fails and names each run-time Lua module it cannot find", function()
    local dir = cli.temp_dir()
    -- Paths where nothing is found stand for a machine without the modules.
    local r = cli.sh(string.format("LUA_PATH='%s/?.lua' LUA_CPATH='%s/?.so' cmake -S %s -B %s",
      dir, dir, cli.quote(cli.source_dir), cli.quote(dir .. "/build")))
    cli.remove_tree(dir)
    assert.is_not.equal(0, r.code, explain(r))
    for _, dep in ipairs({ "luv (Debian package lua-luv)", "cjson (Debian package lua-cjson)",
      "argparse (Debian package lua-argparse)", "lyaml (Debian package lua-yaml)" }) do
      assert.matches(dep, r.stderr:gsub("\n%s*", " "), 1, true)
    end
    assert.matches("scripts/install-deps installs them", r.stderr:gsub("\n%s*", " "), 1, true)
  end)
end)
