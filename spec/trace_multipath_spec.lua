-- SPDX-License-Identifier: MIT

--- Flow stability on a real multipath: scripts/testnet's path1 balances
-- 203.0.113.168/29 and 2001:db8:ea::/47 over two branches (mpa then mpa2,
-- or mpb then mpb2) by an nftables hash of source, destination and ICMP
-- checksum, as load-balancing routers do; both branches end at mpend.
local icmprun = require "icmprun"
local cli = require "cli"

-- Per family: hop 1, each branch's two routers, and the target.
local NET = {
  [4] = { balancer = "203.0.113.130", a = { "203.0.113.154", "203.0.113.162" },
    b = { "203.0.113.158", "203.0.113.166" }, target = "203.0.113.170" },
  [6] = { balancer = "2001:db8:e1::2", a = { "2001:db8:e6::2", "2001:db8:e8::2" },
    b = { "2001:db8:e7::2", "2001:db8:e9::2" }, target = "2001:db8:ea::2" },
}

local function trace(target, opts)
  return icmprun.run(function()
    local it, tr = icmprun.trace(target, opts)
    assert(it, tr)
    return tr:wait()
  end)
end

local function sorted(list)
  local copy = { table.unpack(list) }
  table.sort(copy)
  return copy
end

local explain = cli.explain

-- The addresses of each hop row of an mtr report, continuation lines (a
-- further address of the hop above) included.
local function report_hops(text)
  local hops = {}
  for line in text:gmatch("[^\n]+") do
    local ttl, host = line:match("^ *(%d+)%.|%-%- (%S+)")
    if ttl then
      hops[#hops + 1] = { host }
    elseif #hops > 0 and line:match("^%s+%S+%s*$") then
      table.insert(hops[#hops], (line:match("%S+")))
    end
  end
  return hops
end

for _, family in ipairs({ 4, 6 }) do
  local net = NET[family]
  describe("a trace through a load-balancing router (IPv" .. family .. ")", function()
    it("keeps to one branch with flow = \"stable\": one router at each hop", function()
      local s = trace(net.target, { count = 24, interval = 5, timeout = 1000 })
      assert.is_true(s.reached)
      assert.equal(4, #s.hops)
      assert.same({ net.balancer }, s.hops[1].addrs)
      local branch = s.hops[2].addrs[1] == net.a[1] and net.a or net.b
      -- Every one of the 24 probes past hop 1 took the same branch, and
      -- the hop after it is that branch's second router.
      assert.same({ branch[1] }, s.hops[2].addrs)
      assert.same({ branch[2] }, s.hops[3].addrs)
      assert.equal(24, s.hops[2].received)
      assert.equal(24, s.hops[3].received)
      assert.same({ net.target }, s.hops[4].addrs)
    end)

    it("sees both branches with flow = \"vary\", at both diverging hops", function()
      -- 24 probes with 24 checksums: all on one branch once in 8 million.
      local s = trace(net.target, { count = 24, interval = 5, timeout = 1000,
        flow = "vary" })
      assert.is_true(s.reached)
      assert.same(sorted({ net.a[1], net.b[1] }), sorted(s.hops[2].addrs))
      assert.same(sorted({ net.a[2], net.b[2] }), sorted(s.hops[3].addrs))
      assert.same({ net.target }, s.hops[4].addrs)
    end)

    it("picks a branch per trace: stable traces use both branches between them",
      function()
        -- Each trace draws its own flow key. Sixteen traces all on one branch
        -- happen once in 32,768 runs.
        local seen = {}
        for _ = 1, 16 do
          local s = trace(net.target, { count = 3, interval = 5, timeout = 1000 })
          assert.equal(1, #s.hops[2].addrs)
          assert.equal(1, #s.hops[3].addrs)
          seen[s.hops[2].addrs[1]] = true
        end
        assert.is_true(seen[net.a[1]] and seen[net.b[1]])
      end)

    it("icmprun mtr shows one path where mtr shows both", function()
      local ours = cli.icmprun_run({ "mtr", "-r", "-n", "-c", "20", "-i", "0.02", "-Z",
        "1", net.target })
      assert.equal(0, ours.code, explain(ours))
      local hops = report_hops(ours.stdout)
      assert.equal(4, #hops)
      for i = 1, 4 do
        assert.equal(1, #hops[i], explain(ours))
      end
      assert.is_true(hops[2][1] == net.a[1] and hops[3][1] == net.a[2]
        or hops[2][1] == net.b[1] and hops[3][1] == net.b[2], explain(ours))
      -- Debian's mtr, whose checksum changes with each probe's sequence.
      local theirs = cli.sh("mtr -r -n -c 20 -i 0.1 " .. net.target)
      if theirs.code ~= 0 then
        pending("mtr does not run here: " .. theirs.stderr)
        return
      end
      local their_hops = report_hops(theirs.stdout)
      assert.same(sorted({ net.a[1], net.b[1] }), sorted(their_hops[2]), explain(theirs))
    end)
  end)
end
