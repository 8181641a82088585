-- SPDX-License-Identifier: MIT

--- Which ICMP sockets icmprun opens, black box: datagram sockets by default,
-- raw sockets when datagram ones are refused (or forced), and the error that
-- names the fix when neither is allowed. Permissions are changed only inside
-- network namespaces nested in the test one, so the test network is untouched.
local cli = require "cli"

-- The sysctl that the error message must name, exactly.
local FIX = 'sysctl -w net.ipv4.ping_group_range="0 2147483647"'

local explain = cli.explain

--- Runs a script through icmprun with env settings prepended (a string such
-- as "ICMPRUN_SOCKET=raw ", may be empty). Returns the run's result.
local function run(code, env)
  local path = cli.temp_file(code, ".lua")
  local r = cli.sh((env or "") .. cli.icmprun_cmdline({ path }))
  os.remove(path)
  return r
end

-- Shell commands that set net.ipv4.ping_group_range in a new namespace. In a
-- user namespace (scripts/netns without root) only our own group can be
-- named, so "0 0" opens the range there; and "1 0" cannot be written there,
-- but a new namespace starts with that empty range anyway. The specs below
-- check the effect (raw sockets, or none) rather than the setting.
local ALLOW_DGRAM = 'sysctl -qw net.ipv4.ping_group_range="0 2147483647" 2>/dev/null'
  .. ' || sysctl -qw net.ipv4.ping_group_range="0 0"'
local REFUSE_DGRAM = 'sysctl -qw net.ipv4.ping_group_range="1 0" 2>/dev/null || :'

--- Runs a script through icmprun in a new network namespace with only
-- loopback, nested in the test one.
-- @tparam string code the script
-- @tparam table how `dgram`: "allowed" or "refused" by ping_group_range;
--   `env`: settings such as "ICMPRUN_SOCKET=raw "; `drop_caps`: run without
--   any capability (so without CAP_NET_RAW); `setup`: more shell commands
local function run_isolated(code, how)
  local path = cli.temp_file(code, ".lua")
  local inner = table.concat({
    "set -e",
    "ip link set lo up",
    how.dgram == "allowed" and ALLOW_DGRAM or REFUSE_DGRAM,
    how.setup or ":",
    "exec env " .. (how.env or "")
      .. (how.drop_caps and "setpriv --inh-caps=-all --bounding-set=-all " or "")
      .. cli.icmprun_cmdline({ path }),
  }, "\n")
  local r = cli.sh("unshare --net sh -c " .. cli.quote(inner))
  os.remove(path)
  return r
end

-- Prints the socket kinds, then one line per address: status and who answered.
local PROBE_LOOPBACK = [[
  local icmprun = require "icmprun"
  local info = icmprun.info()
  print(info.ipv4, info.ipv6)
  for _, addr in ipairs({ "127.0.0.1", "::1" }) do
    local r = assert(icmprun.ping(addr, { timeout = 2000 }))
    print(addr, r.status, r.from, r.bytes)
  end
]]

local LOOPBACK_REPLIES = "127.0.0.1\treply\t127.0.0.1\t64\n::1\treply\t::1\t64\n"

describe("ICMP sockets", function()
  describe("by default", function()
    it("are datagram sockets where ping_group_range allows them", function()
      local r = run(PROBE_LOOPBACK)
      assert.equal(0, r.code, explain(r))
      assert.equal("dgram\tdgram\n" .. LOOPBACK_REPLIES, r.stdout)
    end)

    it("fall back to raw sockets when datagram ones are refused", function()
      local r = run_isolated(PROBE_LOOPBACK, { dgram = "refused" })
      assert.equal(0, r.code, explain(r))
      assert.equal("raw\traw\n" .. LOOPBACK_REPLIES, r.stdout)
    end)

    it("still ping IPv4 on a host without IPv6", function()
      local r = run_isolated([[
        local icmprun = require "icmprun"
        print(icmprun.ping("127.0.0.1").status)
        local r, msg = icmprun.ping("::1", { timeout = 500 })
        print(r and r.status ~= "reply" or msg ~= nil)
        print(icmprun.ping("127.0.0.1").status)
      ]], {
        dgram = "allowed",
        setup = "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
          .. "net.ipv6.conf.default.disable_ipv6=1",
      })
      assert.equal(0, r.code, explain(r))
      assert.equal("reply\ntrue\nreply\n", r.stdout)
    end)
  end)

  describe("with ICMPRUN_SOCKET=raw", function()
    it("are raw sockets, and replies still match their probes", function()
      local r = run([[
        local icmprun = require "icmprun"
        local info = icmprun.info()
        print(info.ipv4, info.ipv6)
        for _, addr in ipairs({ "127.0.0.1", "::1", "198.51.100.2", "2001:db8:2::2" }) do
          local r = assert(icmprun.ping(addr, { size = 100 }))
          print(addr, r.status, r.from, r.bytes, r.rtt > 0, math.type(r.seq))
        end
        for _, addr in ipairs({ "192.0.2.2", "2001:db8:1::2" }) do
          print(addr, icmprun.ping(addr, { timeout = 200 }).status)
        end
        for _, addr in ipairs({ "203.0.113.5", "2001:db8:dead::1" }) do
          print(addr, icmprun.ping(addr).status)
        end
      ]], "ICMPRUN_SOCKET=raw ")
      assert.equal(0, r.code, explain(r))
      assert.equal(table.concat({
        "raw\traw",
        "127.0.0.1\treply\t127.0.0.1\t108\ttrue\tinteger",
        "::1\treply\t::1\t108\ttrue\tinteger",
        "198.51.100.2\treply\t198.51.100.2\t108\ttrue\tinteger",
        "2001:db8:2::2\treply\t2001:db8:2::2\t108\ttrue\tinteger",
        "192.0.2.2\ttimeout",
        "2001:db8:1::2\ttimeout",
        "203.0.113.5\tunreachable",
        "2001:db8:dead::1\tunreachable",
        "",
      }, "\n"), r.stdout)
    end)

    it("count another program's echo replies as foreign, never as results", function()
      -- While this run waits on the silent host, another icmprun (on datagram
      -- sockets) pings loopback; its replies reach our raw sockets too.
      local other = "ICMPRUN_SOCKET=dgram " .. cli.icmprun_cmdline({ "-e", [[
        local icmprun = require "icmprun"
        for _ = 1, 5 do
          assert(icmprun.ping("127.0.0.1").status == "reply")
          assert(icmprun.ping("::1").status == "reply")
        end
      ]] })
      local r = run(string.format([[
        local icmprun = require "icmprun"
        assert(icmprun.info().ipv4 == "raw")
        local t4 = icmprun.spawn(icmprun.ping, "192.0.2.2", { timeout = 1500 })
        local t6 = icmprun.spawn(icmprun.ping, "2001:db8:1::2", { timeout = 1500 })
        icmprun.sleep(10) -- Both probes are out.
        assert(os.execute(%q))
        print(t4:join().status, t6:join().status)
        local s = icmprun.counters()
        print(s.results, s.replies, s.foreign >= 10)
      ]], other), "ICMPRUN_SOCKET=raw ")
      assert.equal(0, r.code, explain(r))
      assert.equal("timeout\ttimeout\n2\t0\ttrue\n", r.stdout)
    end)
  end)

  describe("with ICMPRUN_SOCKET=dgram where datagram sockets are refused", function()
    it("do not fall back to raw: ping returns nil and the fix", function()
      local r = run_isolated([[
        local icmprun = require "icmprun"
        print(icmprun.ping("127.0.0.1"))
      ]], { dgram = "refused", env = "ICMPRUN_SOCKET=dgram " })
      assert.equal(0, r.code, explain(r))
      assert.matches("^nil\t", r.stdout)
      assert.truthy(r.stdout:find(FIX, 1, true), r.stdout)
    end)
  end)

  describe("when neither kind is allowed", function()
    local refused = { dgram = "refused", drop_caps = true }

    it("make ping return nil and a message that names the fix", function()
      local r = run_isolated([[
        local icmprun = require "icmprun"
        for _, addr in ipairs({ "127.0.0.1", "::1" }) do
          local r, msg = icmprun.ping(addr)
          print(r, msg)
        end
        local info = icmprun.info()
        print(info.ipv4, info.ipv6)
        print(info.ipv4_error)
        print(info.ipv6_error)
      ]], refused)
      assert.equal(0, r.code, explain(r))
      local lines = {}
      for line in r.stdout:gmatch("[^\n]+") do
        lines[#lines + 1] = line
      end
      assert.equal(5, #lines, r.stdout)
      assert.matches("^nil\t", lines[1])
      assert.matches("^nil\t", lines[2])
      assert.equal("nil\tnil", lines[3])
      for _, i in ipairs({ 1, 2, 4, 5 }) do
        assert.truthy(lines[i]:find(FIX, 1, true), lines[i])
      end
    end)

    it("make a script that asserts its ping exit non-zero with the fix", function()
      local r = run_isolated([[
        local icmprun = require "icmprun"
        assert(icmprun.ping("127.0.0.1"))
        print("not reached")
      ]], refused)
      assert.equal(1, r.code, explain(r))
      assert.equal("", r.stdout)
      assert.truthy(r.stderr:find(FIX, 1, true), r.stderr)
      assert.matches("stack traceback:", r.stderr)
    end)
  end)
end)
