-- SPDX-License-Identifier: MIT

--- icmprun.trace over scripts/testnet's path: path1 .. path4, then pathend.
-- Hop 2 drops 1 in 4 of its time exceeded errors (nftables counter "inet
-- hoploss dropped" in path2), hop 3 sends none, hop 4 rejects 203.0.113.240/28
-- and 2001:db8:ef::/64 as unreachable.
local icmprun = require "icmprun"
local cli = require "cli"

-- Whether this process may become nobody (uid 65534) with no capability at
-- all: as root, yes; in the user namespace that scripts/netns makes for a
-- user, nobody is not mapped, and the whole run is unprivileged anyway.
local function can_be_nobody()
  local r = cli.sh("setpriv --reuid=nobody --regid=nogroup --clear-groups "
    .. "--inh-caps=-all --bounding-set=-all true")
  if r.code ~= 0 then
    pending("cannot switch to nobody here: " .. r.stderr)
    return false
  end
  return true
end

local PATH = {
  [4] = { "203.0.113.130", "203.0.113.134", "203.0.113.138", "203.0.113.142",
    "203.0.113.146" },
  [6] = { "2001:db8:e1::2", "2001:db8:e2::2", "2001:db8:e3::2", "2001:db8:e4::2",
    "2001:db8:e5::2" },
}
local BLOCKED = { [4] = "203.0.113.241", [6] = "2001:db8:ef::1" }
local UNREACH = { [4] = { type = 3, code = 1 }, [6] = { type = 1, code = 3 } }
local EXCEEDED = { [4] = 11, [6] = 3 }

local function nft(ns, args)
  local r = cli.sh("ip netns exec " .. ns .. " nft " .. args)
  assert.equal(0, r.code, r.stderr)
  return r.stdout
end

-- Time exceeded errors that hop 2 has dropped so far.
local function hop2_dropped()
  local out = nft("path2", "list counter inet hoploss dropped")
  return tonumber(out:match("packets (%d+)"))
end

local function trace(target, opts)
  return icmprun.run(function()
    local results = {}
    local it, tr = icmprun.trace(target, opts)
    assert(it, tr)
    for hop, r in it, tr do
      results[#results + 1] = { ttl = hop.ttl, r = r }
    end
    return tr:summary(), results, tr
  end)
end

for _, family in ipairs({ 4, 6 }) do
  local path = PATH[family]
  describe("trace over IPv" .. family, function()
    it("lists the hops in order, each by the router that answered", function()
      -- Ten probes a hop: hop 2, which drops 1 in 4, loses all ten once in
      -- a million runs.
      local s = trace(path[5], { count = 10, interval = 20, timeout = 500 })
      assert.equal(5, #s.hops)
      assert.equal(5, s.end_ttl)
      assert.is_true(s.reached)
      for ttl, hop in ipairs(s.hops) do
        assert.equal(ttl, hop.ttl)
        assert.equal(10, hop.sent)
        if ttl ~= 3 then
          assert.same({ path[ttl] }, hop.addrs)
          assert.equal(path[ttl], hop.addr)
          assert.is_true(hop.received >= 1)
          assert.is_true(hop.min_ms > 0 and hop.min_ms <= hop.avg_ms
            and hop.avg_ms <= hop.max_ms)
          assert.is_number(hop.stddev_ms)
          assert.is_number(hop.p50_ms)
        end
      end
      for ttl = 1, 4 do
        if ttl ~= 3 then
          assert.equal(EXCEEDED[family], s.hops[ttl].icmp_type)
          assert.is_false(s.hops[ttl].reached)
        end
      end
      -- Only the last hop is the target, and it answered with echo replies.
      assert.is_true(s.hops[5].reached)
      assert.equal(10, s.hops[5].received)
      assert.is_nil(s.hops[5].icmp_type)
    end)

    it("shows the silent hop as no answer at all", function()
      local s = trace(path[5], { count = 4, interval = 20, timeout = 300 })
      local hop = s.hops[3]
      assert.equal(4, hop.sent)
      assert.equal(0, hop.received)
      assert.equal(100, hop.loss_pct)
      assert.same({}, hop.addrs)
      assert.is_nil(hop.addr)
      assert.is_nil(hop.avg_ms)
    end)

    it("counts hop 2's losses exactly as its nftables counter drops them", function()
      local before = hop2_dropped()
      local s = trace(path[5], { count = 40, interval = 5, timeout = 300 })
      local dropped = hop2_dropped() - before
      local hop = s.hops[2]
      assert.equal(40, hop.sent)
      assert.equal(dropped, hop.sent - hop.received)
      assert.is_true(dropped > 0, "1 in 4 dropped, yet none of 40 was")
      -- The other routers lose nothing.
      assert.equal(40, s.hops[1].received)
      assert.equal(40, s.hops[4].received)
      assert.equal(40, s.hops[5].received)
    end)

    it("ends at the router that reports the target unreachable", function()
      local s = trace(BLOCKED[family], { count = 3, interval = 20, timeout = 300 })
      assert.is_false(s.reached)
      assert.equal(4, s.end_ttl)
      assert.equal(4, #s.hops)
      local last = s.hops[4]
      assert.is_true(last.unreachable)
      assert.equal(path[4], last.addr)
      assert.equal(UNREACH[family].type, last.icmp_type)
      assert.equal(UNREACH[family].code, last.icmp_code)
      assert.equal(3, last.received)
      assert.is_number(last.avg_ms)
    end)

    it("probes every hop at once: hop 4 answers before hop 3's probe times out",
      function()
        -- Sent one TTL after another, hop 4 would wait for hop 3's timeout.
        local timeout = 3000
        local t0, first4, last3
        icmprun.run(function()
          t0 = icmprun.now()
          local it, tr = icmprun.trace(path[5], { count = 1, timeout = timeout })
          for hop in it, tr do
            if hop.ttl == 3 then last3 = icmprun.now() end
          end
          first4 = tr:hops()[4].first_answer_ms
        end)
        assert.is_true(first4 < timeout, "hop 4 answered after " .. first4 .. " ms")
        assert.is_true(last3 - t0 >= timeout)
      end)

    it("hands every probe out once, and each ends in exactly one result", function()
      local before = icmprun.counters()
      -- Rounds 50 ms apart: the target (10 ms away) has answered before
      -- round 2, however loaded the machine.
      local s, results = trace(path[5], { count = 5, interval = 50, timeout = 300,
        max_ttl = 12 })
      local after = icmprun.counters()
      local sent = 0
      for _, hop in ipairs(s.hops) do
        sent = sent + hop.sent
      end
      assert.equal(5 * 5, #results)
      assert.equal(#results, sent)
      -- Round 1 probes all twelve TTLs; the seven past the target are
      -- counted apart, and later rounds stop at the target.
      assert.equal(7, s.past_end)
      assert.equal(sent + s.past_end, after.results - before.results)
      assert.equal(after.sent - before.sent, after.results - before.results)
    end)

    it("without stop_at_target, probes every TTL in every round", function()
      local s = trace(path[5], { count = 2, interval = 10, timeout = 300, max_ttl = 8,
        stop_at_target = false })
      assert.equal(0, s.past_end)
      assert.equal(8, #s.hops)
      for ttl = 5, 8 do
        assert.is_true(s.hops[ttl].reached)
        assert.equal(2, s.hops[ttl].sent)
      end
    end)

    it("starts at first_ttl and stops at max_ttl", function()
      local s = trace(path[5], { count = 1, first_ttl = 2, max_ttl = 4, timeout = 300 })
      assert.equal(3, #s.hops)
      assert.same({ 2, 3, 4 }, { s.hops[1].ttl, s.hops[2].ttl, s.hops[3].ttl })
      assert.equal(path[4], s.hops[3].addr)
      assert.is_false(s.reached)
    end)
  end)
end

describe("a running trace", function()
  local TARGET = PATH[4][5]

  it("stops: no round starts after stop, and the iterator ends", function()
    local s, handed, at_stop = icmprun.run(function()
      local it, tr = icmprun.trace(TARGET, { count = math.huge, interval = 20,
        timeout = 200 })
      local n, rounds = 0, nil
      for _ in it, tr do
        n = n + 1
        if n == 12 then
          tr:stop()
          rounds = tr:summary().rounds
        end
      end
      return tr:summary(), n, rounds
    end)
    -- Rounds went on while the iterator waited for the silent hop's
    -- timeouts; none started after the stop, and every probe sent was
    -- handed out.
    assert.is_true(at_stop >= 3)
    assert.equal(at_stop, s.rounds)
    local sent = 0
    for _, hop in ipairs(s.hops) do
      sent = sent + hop.sent
      assert.equal(hop.sent, hop.done)
    end
    assert.equal(sent, handed)
  end)

  it("pauses, resumes, and resets the counts but keeps the hops", function()
    icmprun.run(function()
      local it, tr = icmprun.trace(TARGET, { count = math.huge, interval = 10,
        timeout = 200 })
      icmprun.spawn(function() for _ in it, tr do end end)
      icmprun.sleep(100)
      tr:pause()
      icmprun.sleep(50) -- the round under way goes out, then none
      local rounds = tr:summary().rounds
      icmprun.sleep(100)
      assert.equal(rounds, tr:summary().rounds)
      tr:reset()
      local hops = tr:summary().hops
      assert.equal(5, #hops)
      assert.equal(0, hops[1].sent)
      assert.equal("203.0.113.130", hops[1].addr)
      tr:resume()
      icmprun.sleep(100)
      local s = tr:summary()
      assert.is_true(s.rounds > rounds)
      assert.is_true(s.hops[1].sent > 0 and s.hops[1].sent <= s.rounds - rounds)
      tr:stop()
    end)
  end)
end)

describe("flow-stable traces", function()
  setup(function()
    -- path1 collects the checksum of every echo request that reaches it.
    local r = cli.sh("ip netns exec path1 nft -f -", [[
table inet flowcheck {
  set sums4 { typeof icmp checksum; flags dynamic; }
  set sums6 { typeof icmpv6 checksum; flags dynamic; }
  chain pre {
    type filter hook prerouting priority 0;
    icmp type echo-request add @sums4 { icmp checksum }
    icmpv6 type echo-request add @sums6 { icmpv6 checksum }
  }
}
]])
    assert.equal(0, r.code, r.stderr)
  end)
  teardown(function()
    cli.sh("ip netns exec path1 nft delete table inet flowcheck")
  end)

  local function checksums(set)
    local out = nft("path1", "list set inet flowcheck " .. set)
    local elements = out:match("elements = {([^}]*)}") or ""
    local n = 0
    for _ in elements:gmatch("%d+") do
      n = n + 1
    end
    return n
  end

  for _, family in ipairs({ 4, 6 }) do
    local set = "sums" .. family
    it("keep one ICMP checksum over every probe (IPv" .. family .. ")", function()
      nft("path1", "flush set inet flowcheck " .. set)
      local s = trace(PATH[family][5], { count = 10, interval = 5, timeout = 300 })
      assert.is_number(s.flow_key)
      assert.equal(1, checksums(set))
    end)

    it("vary the checksum with flow = \"vary\" (IPv" .. family .. ")", function()
      nft("path1", "flush set inet flowcheck " .. set)
      local s = trace(PATH[family][5], { count = 10, interval = 5, timeout = 300,
        flow = "vary" })
      assert.is_nil(s.flow_key)
      -- 10 rounds of 5 probes, plus round 1's probes past the target.
      assert.is_true(checksums(set) > 25, "only " .. checksums(set) .. " checksums")
    end)
  end
end)

describe("trace's arguments", function()
  it("raise for a bad option, naming it", function()
    local cases = {
      { { max_ttl = 0 }, "max_ttl" }, { { count = 1.5 }, "count" },
      { { first_ttl = 9, max_ttl = 3 }, "first_ttl" }, { { flow = "fixed" }, "flow" },
      { { size = 4 }, "size" }, { { family = 5 }, "family" }, { { bogus = 1 }, "bogus" },
      { { stop_at_target = 1 }, "stop_at_target" }, { { interval = -1 }, "interval" },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(icmprun.trace, "127.0.0.1", case[1])
      assert.is_false(ok)
      assert.matches(case[2], err)
    end
    assert.has_error(function() icmprun.trace(42) end)
  end)

  it("return nil and a message for a name that does not resolve", function()
    local it, err = icmprun.run(function()
      return icmprun.trace("no-such-host.invalid", { count = 1 })
    end)
    assert.is_nil(it)
    assert.is_string(err)
  end)

  it("refuse count = math.huge with no interval: rounds would never yield", function()
    local ok, err = pcall(icmprun.trace, "127.0.0.1", { count = math.huge, interval = 0 })
    assert.is_false(ok)
    assert.matches("interval", err)
  end)

  it("take a size below 10 only with flow = \"vary\"", function()
    local s = trace("127.0.0.1", { count = 1, size = 0, flow = "vary" })
    assert.is_true(s.reached)
    assert.equal(1, #s.hops)
  end)
end)

describe("a trace as an unprivileged user", function()
  it("works with ping sockets and no capabilities at all", function()
    if not can_be_nobody() then return end
    local script = cli.temp_file([[
      local icmprun = require "icmprun"
      local it, tr = icmprun.trace("203.0.113.146", { count = 2, interval = 10,
        timeout = 300 })
      local s = tr:wait()
      for _, hop in ipairs(s.hops) do
        print(hop.ttl, hop.addr or "*", hop.received)
      end
      print(icmprun.info().ipv4)
    ]], ".lua")
    os.execute("chmod a+r " .. cli.quote(script))
    local r = cli.sh(string.format(
      "setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all "
      .. "--bounding-set=-all %s %s", cli.quote(cli.icmprun), cli.quote(script)))
    os.remove(script)
    assert.equal(0, r.code, r.stderr)
    assert.equal(table.concat({
      "1\t203.0.113.130\t2", "3\t*\t0", "4\t203.0.113.142\t2",
      "5\t203.0.113.146\t2", "dgram", "" }, "\n"),
      -- Hop 2 drops a random 1 in 4 of its errors: with 2 probes it may
      -- answer both, one or (1 time in 16) neither.
      (r.stdout:gsub("2\t203.0.113.134\t%d\n", ""):gsub("2\t%*\t0\n", "")))
  end)
end)
