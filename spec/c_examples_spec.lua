-- SPDX-License-Identifier: MIT

--- The C examples (examples/c/) built against the installed engine library
-- with pkg-config, as a C user would, and run on loopback and the test hosts.
local cli = require "cli"

local explain = cli.explain

local build_dir = cli.icmprun:match("^(.*)/[^/]+$") or "."

-- A sanitizer build installs instrumented libraries: programs linking them
-- need the same flags.
local function sanitizer_flags()
  local f = io.open(build_dir .. "/CMakeCache.txt")
  local cache = f and f:read("a") or ""
  if f then
    f:close()
  end
  return cache:find("\nICMPRUN_SANITIZE:BOOL=ON\n", 1, true)
    and " -fsanitize=address,undefined" or ""
end

describe("examples/c against the installed engine", function()
  local dir
  setup(function()
    dir = cli.temp_dir()
    local r = cli.sh(string.format("cmake --install %s --prefix %s/prefix && cp -r %s/examples/c "
      .. "%s/c && PKG_CONFIG_PATH=%s/prefix/lib/pkgconfig make -C %s/c CFLAGS='-O2 -Wall -Wextra "
      .. "-Werror%s'", cli.quote(build_dir), dir, cli.quote(cli.source_dir), dir, dir, dir,
      sanitizer_flags()))
    assert(r.code == 0, explain(r))
  end)
  teardown(function()
    cli.remove_tree(dir)
  end)

  it("pinger prints a line per reply and a summary, exit 0", function()
    local r = cli.sh(dir .. "/c/pinger 127.0.0.1 3 50")
    assert.equal(0, r.code, explain(r))
    local lines = {}
    for line in r.stdout:gmatch("[^\n]+") do
      lines[#lines + 1] = line
    end
    assert.equal(5, #lines, r.stdout)
    assert.matches("^PING 127%.0%.0%.1: 56 data bytes %(%a+ socket%)$", lines[1])
    for i = 2, 4 do
      assert.matches("^64 bytes from 127%.0%.0%.1: icmp_seq=%d+ ttl=%d+ time=[%d.]+ ms$", lines[i])
    end
    assert.equal("3 packets transmitted, 3 received", lines[5])
  end)

  it("pinger reports a timeout from a silent host, exit 1", function()
    local r = cli.sh(dir .. "/c/pinger 192.0.2.2 1")
    assert.equal(1, r.code, explain(r))
    assert.matches("\n192%.0%.2%.2: icmp_seq=%d+ timeout\n1 packets transmitted, 0 received\n$",
      r.stdout)
  end)

  it("sweep lists every address of a loopback block once", function()
    local r = cli.sh(dir .. "/c/sweep 127.0.0.0/26 | sort -t. -k4 -n")
    assert.equal(0, r.code, explain(r))
    local expected = {}
    for i = 0, 63 do
      expected[#expected + 1] = "127.0.0." .. i .. "\n"
    end
    assert.equal(table.concat(expected), r.stdout)
  end)

  it("sweep lists nothing and exits 1 when nothing answers", function()
    local r = cli.sh(dir .. "/c/sweep 192.0.2.2/32")
    assert.equal(1, r.code, explain(r))
    assert.equal("", r.stdout)
  end)
end)
