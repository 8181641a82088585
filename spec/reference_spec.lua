-- SPDX-License-Identifier: MIT

--- The API reference: --help and the manual page name every function of
-- the module icmprun, and scripts/check-doc (LDoc) fails on an undocumented
-- public function.
local cli = require "cli"

local explain = cli.explain

local HAVE_LDOC = os.execute("command -v ldoc >/dev/null 2>&1") == true

-- The names of the module's functions (and version), as the binary has them.
local function module_names()
  local r = cli.icmprun_run({ "-e", [[
    local names = {}
    for k in pairs(require "icmprun") do names[#names + 1] = k end
    table.sort(names)
    print(table.concat(names, " "))]] })
  assert(r.code == 0, explain(r))
  local names = {}
  for name in r.stdout:gmatch("%S+") do
    names[#names + 1] = name
  end
  return names
end

describe("the API reference", function()
  it("--help names every function of the module", function()
    local help = cli.icmprun_run({ "--help" })
    assert.equal(0, help.code, explain(help))
    local names = module_names()
    assert.is_true(#names >= 10, table.concat(names, " "))
    for _, name in ipairs(names) do
      assert.matches("icmprun." .. name, help.stdout, 1, true)
    end
  end)

  it("the manual page names every function of the module", function()
    local f = assert(io.open(cli.source_dir .. "/doc/icmprun.1"))
    local page = f:read("a")
    f:close()
    for _, name in ipairs(module_names()) do
      assert.matches("icmprun." .. name, page, 1, true)
    end
  end)

  local check = HAVE_LDOC and it or pending
  check("scripts/check-doc names a public function without an LDoc comment", function()
    local dir = cli.temp_dir()
    local r = cli.sh(string.format([[
      cd %s && cp -r lua doc config.ld scripts %s/ && cd %s &&
      printf 'function M.undocumented() end\nreturn M\n' > lua/icmprun/tail.lua &&
      printf -- '--- A module for the test.\n-- @module icmprun.tail\nlocal M = {}\n' |
        cat - lua/icmprun/tail.lua > lua/icmprun/t && mv lua/icmprun/t lua/icmprun/tail.lua &&
      %s scripts/check-doc %s/out %s]], cli.quote(cli.source_dir), dir, dir,
      cli.quote(cli.lua), dir, cli.quote(cli.icmprun)))
    cli.remove_tree(dir)
    assert.equal(1, r.code, explain(r))
    assert.equal("lua/icmprun/tail.lua:4: M.undocumented has no LDoc comment (---)\n", r.stderr)
  end)
end)
