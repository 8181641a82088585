-- SPDX-License-Identifier: MIT

--- The bundled examples, black box, against loopback and the test hosts.
local cli = require "cli"

local explain = cli.explain

local function ping_example(args)
  local argv = { cli.source_dir .. "/examples/ping.lua" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return cli.icmprun_run(argv)
end

describe("examples/ping.lua", function()
  it("prints iputils ping's lines for ::1 and exits 0", function()
    local r = ping_example({ "-c", "5", "-i", "0.05", "::1" })
    assert.equal(0, r.code, explain(r))
    local lines = {}
    for line in r.stdout:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
    assert.equal("PING ::1(::1) 56 data bytes", lines[1])
    for n = 1, 5 do
      assert.matches("^64 bytes from ::1: icmp_seq=" .. n .. " ttl=64 time=%d+%.%d%d%d ms$",
        lines[1 + n])
    end
    assert.equal("", lines[7])
    assert.equal("--- ::1 ping statistics ---", lines[8])
    assert.matches("^5 packets transmitted, 5 received, 0%% packet loss, time %d+ms$", lines[9])
    assert.matches("^rtt min/avg/max/mdev = [%d.]+/[%d.]+/[%d.]+/[%d.]+ ms$", lines[10])
    assert.equal(10, #lines)
  end)

  it("prints IPv4's header with the IP datagram size", function()
    local r = ping_example({ "-c", "1", "-s", "100", "127.0.0.1" })
    assert.equal(0, r.code, explain(r))
    assert.matches("^PING 127%.0%.0%.1 %(127%.0%.0%.1%) 100%(128%) bytes of data%.\n" ..
      "108 bytes from 127%.0%.0%.1: icmp_seq=1 ttl=64", r.stdout)
  end)

  it("exits 1 with 100% loss when the host is silent", function()
    local r = ping_example({ "-c", "2", "-i", "0.05", "-W", "0.2", "192.0.2.2" })
    assert.equal(1, r.code, explain(r))
    assert.matches("2 packets transmitted, 0 received, 100%% packet loss", r.stdout)
    assert.not_matches("rtt min", r.stdout)
  end)

  it("reports an unreachable destination per probe", function()
    local r = ping_example({ "-c", "2", "-i", "0.05", "203.0.113.9" })
    assert.equal(1, r.code, explain(r))
    assert.matches("From 203%.0%.113%.9 icmp_seq=1 Destination Host Unreachable\n", r.stdout)
    assert.matches("2 packets transmitted, 0 received, %+2 errors, 100%% packet loss",
      r.stdout)
  end)

  it("exits 2 with a message for a name that does not resolve", function()
    local r = ping_example({ "-c", "1", "no-such-host.invalid" })
    assert.equal(2, r.code, explain(r))
    assert.matches("cannot resolve 'no%-such%-host%.invalid'", r.stderr)
  end)

  it("exits 2 with usage for an unknown option", function()
    local r = ping_example({ "--bogus", "::1" })
    assert.equal(2, r.code, explain(r))
    assert.matches("Usage: ping%.lua", r.stderr)
    assert.matches("unknown option '%-%-bogus'", r.stderr)
  end)
end)

describe("cmake --install", function()
  it("installs the command, the library, the module and the manual page", function()
    local build = cli.icmprun:match("^(.*)/[^/]*$")
    local prefix = cli.temp_dir()
    local r = cli.sh(string.format("cmake --install %s --prefix %s",
      cli.quote(build), cli.quote(prefix)))
    assert.equal(0, r.code, explain(r))
    for _, file in ipairs({
      "bin/icmprun", "share/man/man1/icmprun.1", "include/icmprun/engine.h",
    }) do
      assert.truthy(io.open(prefix .. "/" .. file), file .. " is missing")
    end
    local find = cli.sh("find " .. cli.quote(prefix) .. " -name '*.lua' -o -name 'icmprun.so'")
    assert.matches("/lua/5%.4/icmprun/stats%.lua\n", find.stdout)
    assert.matches("/lua/5%.4/icmprun%.so\n", find.stdout)
    local version = cli.sh(cli.quote(prefix .. "/bin/icmprun") .. " --version")
    assert.equal(0, version.code, explain(version))
    cli.remove_tree(prefix)
  end)
end)
