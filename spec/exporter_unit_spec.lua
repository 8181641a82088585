-- SPDX-License-Identifier: MIT

--- The exporter's systemd unit: installed by `cmake --install`, pointing
-- at the installed command, hardened, and not restarted in a loop on a
-- config mistake (status 2).
local cli = require "cli"

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local data = f:read("a")
  f:close()
  return data
end

describe("the exporter's systemd unit", function()
  it("is installed by cmake --install, hardened, with the command's path", function()
    local build = cli.icmprun:match("^(.*)/[^/]+$")
    local prefix = cli.temp_dir()
    local r = cli.sh(string.format("cmake --install %s --prefix %s", cli.quote(build),
      cli.quote(prefix)))
    assert.equal(0, r.code, r.stderr)
    local unit = slurp(prefix .. "/lib/systemd/system/icmprun-exporter.service")
    local default = slurp(prefix .. "/share/doc/icmprun/examples/icmprun-exporter.default")
    -- The path configured at build time, as the unit is generated then.
    local cache = slurp(build .. "/CMakeCache.txt")
    local bindir = (cache:match("CMAKE_INSTALL_PREFIX:PATH=([^\n]*)") or "") .. "/bin"
    cli.remove_tree(prefix)
    assert.truthy(unit, "the unit was not installed")
    assert.truthy(default, "the defaults file was not installed")
    assert.matches("\nExecStart=" .. bindir:gsub("%p", "%%%0") .. "/icmprun exporter ", unit)
    for _, line in ipairs({ "DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes",
      "RestartPreventExitStatus=2", "ExecReload=/bin/kill -HUP $MAINPID",
      "EnvironmentFile=-/etc/default/icmprun-exporter", "CapabilityBoundingSet=\n" }) do
      assert.truthy(unit:find("\n" .. line, 1, true), line)
    end
    -- CAP_NET_RAW only where raw sockets are needed: a commented drop-in.
    assert.is_nil(unit:find("\nAmbientCapabilities=CAP_NET_RAW", 1, true))
    assert.truthy(unit:find("#   AmbientCapabilities=CAP_NET_RAW", 1, true))
  end)

  it("passes systemd-analyze verify but for the command not installed here", function()
    if os.execute("command -v systemd-analyze >/dev/null") ~= true then
      pending("no systemd-analyze")
      return
    end
    local build = cli.icmprun:match("^(.*)/[^/]+$")
    local r = cli.sh("systemd-analyze verify " .. cli.quote(build .. "/icmprun-exporter.service"))
    for line in (r.stdout .. r.stderr):gmatch("[^\n]+") do
      assert.truthy(line:find("is not executable", 1, true) or line:find("man ", 1, true),
        line)
    end
  end)
end)
