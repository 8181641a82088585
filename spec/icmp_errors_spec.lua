-- SPDX-License-Identifier: MIT

--- ICMP errors from a real router (scripts/testnet's "router" and "far"
-- hosts): destination unreachable and time exceeded come back through the
-- sockets' error queues as results naming the router, for both families and
-- both kinds of socket, with the router's round-trip time (from the kernel's
-- receive timestamp of the error) and the errno the kernel maps the error to
-- as `code`. IPv4 errors for the unreachable prefix are limited by the kernel
-- to a burst of 5 per sender, so this file asks for few of them.
local icmprun = require "icmprun"
local cli = require "cli"

local ROUTER = { [4] = "192.0.2.66", [6] = "2001:db8:3::2" }
local FAR = { [4] = "192.0.2.130", [6] = "2001:db8:4::2" }
local BEYOND = { [4] = "192.0.2.200", [6] = "2001:db8:5::1" }
local UNREACH = { [4] = { type = 3, code = 1 }, [6] = { type = 1, code = 0 } }
local EXCEEDED = { [4] = { type = 11, code = 0 }, [6] = { type = 3, code = 0 } }
-- The errno the kernel reports for each (RFC 1122 host unreachable; ICMPv6
-- "no route" is a network error; time exceeded is EHOSTUNREACH for both).
local UNREACH_CODE = { [4] = "EHOSTUNREACH", [6] = "ENETUNREACH" }

--- ping, and how long it took by the monotonic clock, which bounds its RTT.
local function timed_ping(target, opts)
  local start = icmprun.now()
  local r = icmprun.ping(target, opts)
  return r, icmprun.now() - start
end

--- Asserts that r carries the RTT of an answer that came within `elapsed` ms.
local function assert_rtt(r, elapsed)
  assert.is_number(r.rtt)
  assert.is_true(r.rtt > 0, tostring(r.rtt))
  assert.is_true(r.rtt <= elapsed, string.format("rtt %s > elapsed %s", r.rtt, elapsed))
end

--- The same probes through a raw socket, in a process of its own.
local function raw_ping(target, ttl)
  local r = cli.sh(string.format("ICMPRUN_SOCKET=raw %s -e %s", cli.quote(cli.icmprun),
    cli.quote(string.format([[
      local i = require "icmprun"
      local start = i.now()
      local r = i.ping(%q, { timeout = 1000, ttl = %d })
      local rtt_ok = type(r.rtt) == "number" and r.rtt > 0 and r.rtt <= i.now() - start
      print(i.info()[%q], r.status, r.from, r.icmp_type, r.icmp_code, r.code, rtt_ok)
    ]], target, ttl, target:find(":") and "ipv6" or "ipv4"))))
  assert.equal(0, r.code, r.stderr)
  return r.stdout
end

describe("ICMP errors from a router", function()
  for _, family in ipairs({ 4, 6 }) do
    describe("over IPv" .. family, function()
      it("reach the far host two hops away", function()
        local r = icmprun.ping(FAR[family], { timeout = 1000 })
        assert.equal("reply", r.status)
        assert.equal(FAR[family], r.from)
      end)

      it("give ttl_exceeded from the router when the TTL runs out on the way", function()
        local r, elapsed = timed_ping(FAR[family], { timeout = 1000, ttl = 1 })
        assert.equal("ttl_exceeded", r.status)
        assert.equal(ROUTER[family], r.from)
        assert.equal(FAR[family], r.addr)
        assert.equal(EXCEEDED[family].type, r.icmp_type)
        assert.equal(EXCEEDED[family].code, r.icmp_code)
        assert_rtt(r, elapsed)
        assert.matches("exceeded", r.err)
        assert.equal("EHOSTUNREACH", r.code)
      end)

      it("give unreachable from the router for the prefix it declares unreachable",
        function()
          local r, elapsed = timed_ping(BEYOND[family], { timeout = 1000 })
          assert.equal("unreachable", r.status)
          assert.equal(ROUTER[family], r.from)
          assert.equal(UNREACH[family].type, r.icmp_type)
          assert.equal(UNREACH[family].code, r.icmp_code)
          assert.truthy(r.err)
          assert.equal(UNREACH_CODE[family], r.code)
          assert_rtt(r, elapsed)
        end)

      it("give unreachable even with ttl 1: the route is looked up first", function()
        local r = icmprun.ping(BEYOND[family], { timeout = 1000, ttl = 1 })
        assert.equal("unreachable", r.status)
        assert.equal(ROUTER[family], r.from)
      end)

      it("come back the same through a raw socket", function()
        assert.equal(table.concat({ "raw", "ttl_exceeded", ROUTER[family],
          EXCEEDED[family].type, EXCEEDED[family].code, "EHOSTUNREACH", "true" }, "\t")
          .. "\n", raw_ping(FAR[family], 1))
        assert.equal(table.concat({ "raw", "unreachable", ROUTER[family],
          UNREACH[family].type, UNREACH[family].code, UNREACH_CODE[family], "true" }, "\t")
          .. "\n", raw_ping(BEYOND[family], 64))
      end)
    end)
  end

  -- A code other than 0 on both families, so that a socket that loses the
  -- ICMP code (and reports 0 for every error) cannot pass: the router
  -- refuses these addresses as administratively prohibited (IPv4 type 3
  -- code 13, IPv6 type 1 code 1).
  describe("name the reason an address is unreachable", function()
    local PROHIBITED = { [4] = "192.0.2.241", [6] = "2001:db8:5::f:1" }
    -- The messages are iputils ping's words for these codes.
    local PROHIBIT = {
      [4] = { type = 3, code = 13, says = "Packet filtered" },
      [6] = { type = 1, code = 1, says = "[Pp]rohibited" },
    }
    setup(function()
      assert(cli.sh("ip netns exec router ip route add prohibit 192.0.2.240/28").code == 0)
      assert(cli.sh("ip netns exec router ip -6 route add prohibit 2001:db8:5::f:0/112")
        .code == 0)
    end)
    teardown(function()
      cli.sh("ip netns exec router ip route del prohibit 192.0.2.240/28")
      cli.sh("ip netns exec router ip -6 route del prohibit 2001:db8:5::f:0/112")
    end)

    for _, family in ipairs({ 4, 6 }) do
      local want = PROHIBIT[family]
      it("through a datagram socket (IPv" .. family .. ")", function()
        local r = icmprun.ping(PROHIBITED[family], { timeout = 1000 })
        assert.equal("unreachable", r.status)
        assert.equal(ROUTER[family], r.from)
        assert.equal(want.type, r.icmp_type)
        assert.equal(want.code, r.icmp_code)
        assert.matches(want.says, r.err)
      end)

      it("through a raw socket (IPv" .. family .. ")", function()
        assert.matches("^raw\tunreachable\t" .. ROUTER[family]:gsub("%.", "%%.") ..
          "\t" .. want.type .. "\t" .. want.code .. "\t",
          raw_ping(PROHIBITED[family], 64))
      end)
    end
  end)

  it("are counted as ICMP errors, never as replies or timeouts", function()
    local before = icmprun.counters()
    local r = icmprun.ping(FAR[6], { timeout = 1000, ttl = 1 })
    local after = icmprun.counters()
    assert.equal("ttl_exceeded", r.status)
    assert.equal(before.icmp_errors + 1, after.icmp_errors)
    assert.equal(before.replies, after.replies)
    assert.equal(before.timeouts, after.timeouts)
  end)

  -- More probes than the engine sends in a turn, so that it reads answers
  -- inline with its sockets out of epoll, where only a failed send tells it
  -- of the errors waiting. IPv4 only: the router does not rate-limit those,
  -- while its IPv6 errors would be too few for the tests above afterwards.
  it("all come back during a sweep at full speed, one result per probe", function()
    local results, errors = 0, 0
    for r in icmprun.sweep(FAR[4], { rate = 0, count = 600, interval = 0, ttl = 1,
      timeout = 1000 }) do
      results = results + 1
      assert.equal("ttl_exceeded", r.status)
      assert.equal(ROUTER[4], r.from)
      assert.is_number(r.rtt)
      errors = errors + 1
    end
    assert.equal(600, results)
    assert.equal(600, errors)
  end)
end)
