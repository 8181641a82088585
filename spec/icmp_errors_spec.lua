--- ICMP errors from a real router (scripts/testnet's "router" and "far"
-- hosts): destination unreachable and time exceeded come back through the
-- sockets' error queues as results naming the router, for both families and
-- both kinds of socket. IPv4 errors for the unreachable prefix are limited by
-- the kernel to a burst of 5 per sender, so this file asks for few of them.
local icmprun = require "icmprun"
local cli = require "cli"

local ROUTER = { [4] = "192.0.2.66", [6] = "2001:db8:3::2" }
local FAR = { [4] = "192.0.2.130", [6] = "2001:db8:4::2" }
local BEYOND = { [4] = "192.0.2.200", [6] = "2001:db8:5::1" }
local UNREACH = { [4] = { type = 3, code = 1 }, [6] = { type = 1, code = 0 } }
local EXCEEDED = { [4] = { type = 11, code = 0 }, [6] = { type = 3, code = 0 } }

--- The same probes through a raw socket, in a process of its own.
local function raw_ping(target, ttl)
  local r = cli.sh(string.format("ICMPRUN_SOCKET=raw %s -e %s", cli.quote(cli.icmprun),
    cli.quote(string.format([[
      local i = require "icmprun"
      local r = i.ping(%q, { timeout = 1000, ttl = %d })
      print(i.info()[%q], r.status, r.from, r.icmp_type, r.icmp_code, r.err)
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
        local r = icmprun.ping(FAR[family], { timeout = 1000, ttl = 1 })
        assert.equal("ttl_exceeded", r.status)
        assert.equal(ROUTER[family], r.from)
        assert.equal(FAR[family], r.addr)
        assert.equal(EXCEEDED[family].type, r.icmp_type)
        assert.equal(EXCEEDED[family].code, r.icmp_code)
        -- The router's answer has its round trip: the hop's latency.
        assert.is_number(r.rtt)
        assert.is_true(r.rtt > 0 and r.rtt < 1000, "rtt " .. tostring(r.rtt))
        assert.matches("exceeded", r.err)
      end)

      it("give unreachable from the router for the prefix it declares unreachable",
        function()
          local r = icmprun.ping(BEYOND[family], { timeout = 1000 })
          assert.equal("unreachable", r.status)
          assert.equal(ROUTER[family], r.from)
          assert.equal(UNREACH[family].type, r.icmp_type)
          assert.equal(UNREACH[family].code, r.icmp_code)
          assert.truthy(r.err)
          assert.is_true(r.rtt > 0 and r.rtt < 1000, "rtt " .. tostring(r.rtt))
        end)

      it("give unreachable even with ttl 1: the route is looked up first", function()
        local r = icmprun.ping(BEYOND[family], { timeout = 1000, ttl = 1 })
        assert.equal("unreachable", r.status)
        assert.equal(ROUTER[family], r.from)
      end)

      it("come back the same through a raw socket", function()
        assert.matches("^raw\tttl_exceeded\t" .. ROUTER[family]:gsub("%.", "%%.") ..
          "\t" .. EXCEEDED[family].type .. "\t0\t", raw_ping(FAR[family], 1))
        assert.matches("^raw\tunreachable\t" .. ROUTER[family]:gsub("%.", "%%.") ..
          "\t" .. UNREACH[family].type .. "\t", raw_ping(BEYOND[family], 64))
      end)
    end)
  end

  it("are counted as ICMP errors, never as replies or timeouts", function()
    local before = icmprun.stats()
    local r = icmprun.ping(FAR[6], { timeout = 1000, ttl = 1 })
    local after = icmprun.stats()
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
      errors = errors + 1
    end
    assert.equal(600, results)
    assert.equal(600, errors)
  end)
end)
