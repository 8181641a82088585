-- SPDX-License-Identifier: MIT

--- Probes bound to a source address or an interface, seen on the wire: the
-- normal test host counts (nftables, spec/helpers/nftcount.lua) the echo
-- requests that reach it by source address and by the link they came in on,
-- for every way of asking: the Lua API's `source` and `interface`, `icmprun
-- ping -I`, `icmprun fping -S/-I`, `icmprun sweep --source/--interface` and
-- the exporter's `source:`; an address that is not this host's, or an
-- interface that does not exist, gives its error and exit status; results
-- of differently bound sockets probing one target at once stay apart.
-- Runs inside scripts/netns: our side of the normal host's link has a second
-- address, and a second link (to-normal2) reaches it (scripts/testnet).
local cli = require "cli"
local exporter = require "exporter"
local nftcount = require "nftcount"

local FAMILIES = {
  { name = "IPv4", target = "198.51.100.2", source = "198.51.100.5", bad = "198.51.100.9",
    ip = "ip", echo = "icmp type echo-request" },
  { name = "IPv6", target = "2001:db8:2::2", source = "2001:db8:2::5", bad = "2001:db8:2::9",
    ip = "ip6", echo = "icmpv6 type echo-request" },
}
local HOST = "normal"

--- Counts, on the normal host, the family's echo requests to the target:
-- all of them, those from the second source address, and those that came
-- over each link.
local function count(f)
  nftcount.start_at(HOST, {
    all = f.ip .. " daddr " .. f.target .. " " .. f.echo,
    source = f.ip .. " saddr " .. f.source .. " " .. f.echo,
    link1 = "iifname eth-local " .. f.echo,
    link2 = "iifname eth-local2 " .. f.echo,
  })
end

local explain = cli.explain

local function icmprun(socket, args)
  return cli.sh("ICMPRUN_SOCKET=" .. socket .. " " .. cli.icmprun_cmdline(args))
end

local function script(socket, code)
  local path = cli.temp_file(code, ".lua")
  local r = icmprun(socket, { path })
  os.remove(path)
  return r
end

describe("probes bound to a source address or an interface", function()
  after_each(function()
    nftcount.stop_at(HOST)
  end)

  for _, f in ipairs(FAMILIES) do
    for _, socket in ipairs({ "dgram", "raw" }) do
      local where = f.name .. ", " .. socket .. " socket"

      it("leave from opts.source with icmprun.ping and sweep (" .. where .. ")", function()
        count(f)
        local r = script(socket, string.format([[
          local icmprun = require "icmprun"
          local T, S = %q, %q
          for _ = 1, 3 do
            local r = assert(icmprun.ping(T, { source = S, timeout = 2000 }))
            assert(r.status == "reply", r.status)
          end
          local n = 0
          for r in icmprun.sweep({ T }, { source = S, count = 4, interval = 10, rate = 0,
              timeout = 2000 }) do
            assert(r.status == "reply", r.status)
            n = n + 1
          end
          assert(n == 4, "sweep results " .. n)
          for _ = 1, 2 do
            assert(assert(icmprun.ping(T, { timeout = 2000 })).status == "reply")
          end
        ]], f.target, f.source))
        assert.equal(0, r.code, explain(r))
        local c = nftcount.read_at(HOST)
        assert.equal(9, c.all, "echo requests that arrived")
        assert.equal(7, c.source, "from " .. f.source .. " (the 2 unbound ones are not)")
        assert.equal(9, c.link1, "over the usual link")
      end)

      it("go through opts.interface with icmprun.ping and sweep (" .. where .. ")", function()
        count(f)
        local r = script(socket, string.format([[
          local icmprun = require "icmprun"
          local T = %q
          for _ = 1, 3 do
            local r = assert(icmprun.ping(T, { interface = "to-normal2", timeout = 2000 }))
            assert(r.status == "reply", r.status)
          end
          local n = 0
          for r in icmprun.sweep({ T }, { interface = "to-normal2", count = 4, interval = 10,
              rate = 0, timeout = 2000 }) do
            assert(r.status == "reply", r.status)
            n = n + 1
          end
          assert(n == 4, "sweep results " .. n)
          for _ = 1, 2 do
            assert(assert(icmprun.ping(T, { timeout = 2000 })).status == "reply")
          end
        ]], f.target))
        assert.equal(0, r.code, explain(r))
        local c = nftcount.read_at(HOST)
        assert.equal(9, c.all, "echo requests that arrived")
        assert.equal(7, c.link2, "over to-normal2")
        assert.equal(2, c.link1, "over the usual link (unbound)")
      end)

      it("keep the results of differently bound sockets apart, one target at once ("
          .. where .. ")", function()
        count(f)
        -- Three sweeps of one target interleave their probes: unbound, from
        -- the second address, and over the second link. Each must get back
        -- exactly its own 40 replies.
        local r = script(socket, string.format([[
          local icmprun = require "icmprun"
          local T, S = %q, %q
          local binds = { {}, { source = S }, { interface = "to-normal2" } }
          local tasks = {}
          for i, b in ipairs(binds) do
            tasks[i] = icmprun.spawn(function()
              local opts = { count = 40, interval = 2, rate = 0, timeout = 3000,
                source = b.source, interface = b.interface }
              local seen, n = {}, 0
              for r in icmprun.sweep({ T }, opts) do
                assert(r.status == "reply", i .. ": " .. r.status)
                assert(not seen[r.n], i .. ": probe " .. r.n .. " twice")
                seen[r.n], n = true, n + 1
              end
              return n
            end)
          end
          for i, t in ipairs(tasks) do
            local n = t:join()
            assert(n == 40, i .. ": " .. tostring(n))
          end
          local s = icmprun.counters()
          print(s.foreign, s.wrong_seq, s.late, s.duplicates, s.corrupted)
        ]], f.target, f.source))
        assert.equal(0, r.code, explain(r))
        local c = nftcount.read_at(HOST)
        assert.equal(120, c.all)
        assert.equal(40, c.source, "from " .. f.source)
        assert.equal(40, c.link2, "over to-normal2")
        local foreign, wrong_seq, late, dup, corrupt =
          r.stdout:match("^(%d+)%s+(%d+)%s+(%d+)%s+(%d+)%s+(%d+)")
        assert.equal("0", wrong_seq, "replies with a wrong sequence number")
        assert.equal("0", late)
        assert.equal("0", dup)
        assert.equal("0", corrupt)
        -- A raw socket hears every echo reply of the host, those of the
        -- other sockets too, and counts them as foreign; datagram sockets
        -- only hear their own.
        if socket == "dgram" then
          assert.equal("0", foreign, "replies heard on the wrong socket")
        end
      end)
    end

    it("are refused with a reason and a code when they cannot be bound (" .. f.name .. ")",
        function()
      count(f)
      local r = script("dgram", string.format([[
        local icmprun = require "icmprun"
        local T, BAD = %q, %q
        local r, msg, code = icmprun.ping(T, { source = BAD })
        assert(r == nil and code == "EADDRNOTAVAIL", tostring(code))
        assert(msg:find("ICMP socket to source address " .. BAD .. ": Cannot assign", 1, true), msg)
        r, msg, code = icmprun.ping(T, { interface = "nosuch0" })
        assert(r == nil and code == "ENODEV", tostring(code))
        assert(msg:find("to interface 'nosuch0': No such device", 1, true), msg)
        -- A sweep gives each probe its error result and goes on.
        local n = 0
        for r in icmprun.sweep({ T, T }, { source = BAD, count = 2, interval = 1 }) do
          assert(r.status == "error" and r.code == "EADDRNOTAVAIL", r.status .. " " .. tostring(r.code))
          n = n + 1
        end
        assert(n == 4, "results " .. n)
        -- Mistakes in the options raise, naming the option.
        local ok, e = pcall(icmprun.ping, T, { source = "here" })
        assert(not ok and e:find("option 'source' must be a numeric IPv4 or IPv6 address", 1, true), e)
        ok, e = pcall(icmprun.ping, T, { interface = string.rep("x", 16) })
        assert(not ok and e:find("option 'interface' must be an interface name", 1, true), e)
        ok, e = pcall(icmprun.sweep, { T }, { source = BAD, family = %d })
        assert(not ok and e:find("is not an IPv", 1, true), e)
        -- The info call checks a binding up front.
        local info = icmprun.info({ source = BAD })
        assert(info[%q] == "EADDRNOTAVAIL", tostring(info[%q]))
      ]], f.target, f.bad, f.name == "IPv4" and 6 or 4,
        f.name == "IPv4" and "ipv4_code" or "ipv6_code",
        f.name == "IPv4" and "ipv4_code" or "ipv6_code"))
      assert.equal(0, r.code, explain(r))

      r = icmprun("dgram", { "ping", "-c", "2", "-i", "0.01", "-I", f.bad, f.target })
      assert.equal(2, r.code, explain(r))
      assert.matches("ping: cannot bind the IPv%d ICMP socket to source address " .. f.bad:gsub("%.", "%%.")
        .. ": Cannot assign requested address", r.stderr)
      r = icmprun("dgram", { "ping", "-c", "2", "-I", "nosuch0", f.target })
      assert.equal(2, r.code, explain(r))
      assert.matches("interface 'nosuch0': No such device", r.stderr, 1, true)
      -- fping's own words and statuses: 4 for a source it cannot bind, 1
      -- for an interface.
      r = icmprun("dgram", { "fping", "-S", f.bad, f.target })
      assert.equal(4, r.code, explain(r))
      assert.equal("", r.stdout)
      assert.equal("fping: cannot bind source address : Cannot assign requested address\n", r.stderr)
      r = icmprun("dgram", { "fping", "-I", "nosuch0", f.target })
      assert.equal(1, r.code, explain(r))
      assert.equal("binding to specific interface (SO_BINTODEVICE): No such device\n", r.stderr)
      r = icmprun("dgram", { "fping", "-S", "bla", f.target })
      assert.equal(1, r.code, explain(r))
      assert.equal("fping: can't parse source address: bla\n", r.stderr)
      r = icmprun("dgram", { "sweep", "--source", f.bad, f.target })
      assert.equal(2, r.code, explain(r))
      assert.matches("Cannot assign requested address", r.stderr, 1, true)
      assert.equal(0, nftcount.read_at(HOST).all, "nothing may be sent")
    end)

    it("ping -I, fping -S/-I and sweep --source/--interface bind them (" .. f.name .. ")",
        function()
      count(f)
      local runs = {
        { "ping", "-c", "3", "-i", "0.01", "-I", f.source, f.target },
        { "ping", "-c", "2", "-i", "0.01", "-I", "to-normal2", f.target },
        { "fping", "-c", "3", "-p", "20", "-S", f.source, f.target },
        { "fping", "-c", "2", "-p", "20", "-I", "to-normal2", f.target },
        { "sweep", "-c", "3", "-p", "10", "--source", f.source, f.target },
        { "sweep", "-c", "2", "-p", "10", "--interface", "to-normal2", f.target },
      }
      for _, args in ipairs(runs) do
        local r = icmprun("dgram", args)
        assert.equal(0, r.code, table.concat(args, " ") .. ": " .. explain(r))
      end
      local r = icmprun("dgram", { "ping", "-c", "1", "-I", f.source, f.target })
      assert.matches(" from " .. f.source:gsub("%.", "%%.") .. " :", r.stdout)
      local c = nftcount.read_at(HOST)
      assert.equal(16, c.all)
      assert.equal(10, c.source, "from " .. f.source .. " (-I ADDR, -S, --source)")
      assert.equal(6, c.link2, "over to-normal2 (-I IFACE, --interface)")
    end)
  end

  it("icmprun.trace and traceroute -s/-i send every probe of the trace bound", function()
    -- Over the four-router path of scripts/testnet: every probe that reaches
    -- its end came from the source; the routers' answers found their way
    -- back to it.
    nftcount.start_at("pathend", {
      all = "ip daddr 203.0.113.146 icmp type echo-request",
      source = "ip saddr 198.51.100.5 icmp type echo-request",
    })
    local r = script("dgram", [[
      local icmprun = require "icmprun"
      local it, tr = assert(icmprun.trace("203.0.113.146", { source = "198.51.100.5",
        count = 2, interval = 10, timeout = 1000 }))
      local hops = {}
      for hop, res in it, tr do
        if res.status ~= "timeout" then hops[hop.ttl] = res.from end
      end
      assert(not tr.failure, tr.failure)
      assert(hops[1] == "203.0.113.130" and hops[5] == "203.0.113.146",
        tostring(hops[1]) .. " " .. tostring(hops[5]))
      local ok, e = pcall(icmprun.trace, "203.0.113.146", { source = "nowhere" })
      assert(not ok and e:find("trace: option 'source' must be a numeric", 1, true), e)
      local it2, tr2 = assert(icmprun.trace("203.0.113.146", { source = "198.51.100.9",
        count = 1, timeout = 300 }))
      for _ in it2, tr2 do end
      assert(tr2.failure and tr2.failure:find("Cannot assign requested address", 1, true),
        tostring(tr2.failure))
    ]])
    assert.equal(0, r.code, explain(r))
    r = icmprun("dgram", { "traceroute", "-n", "-q", "1", "-w", "1", "-s", "198.51.100.5",
      "203.0.113.146" })
    assert.equal(0, r.code, explain(r))
    assert.matches("\n 5  203%.0%.113%.146 ", r.stdout)
    local c = nftcount.read_at("pathend")
    nftcount.stop_at("pathend")
    assert.is_true(c.all >= 3, "probes reached the end of the path")
    assert.equal(c.all, c.source, "every one from 198.51.100.5")
    r = icmprun("dgram", { "traceroute", "-i", "nosuch0", "203.0.113.146" })
    assert.equal(2, r.code, explain(r))
    assert.matches("No such device", r.stderr, 1, true)
  end)

  it("binds a group's probes to its source: (the exporter's config)", function()
    -- Both families from the second address, and a group whose source is
    -- not this host's: its probes are send errors, and nothing goes out.
    nftcount.start_at(HOST, {
      all4 = "ip daddr 198.51.100.2 icmp type echo-request",
      src4 = "ip saddr 198.51.100.5 icmp type echo-request",
      all6 = "ip6 daddr 2001:db8:2::2 icmpv6 type echo-request",
      src6 = "ip6 saddr 2001:db8:2::5 icmpv6 type echo-request",
    })
    local path = cli.temp_file([[
targets:
- hosts: [198.51.100.2]
  interval: 100ms
  source: 198.51.100.5
- hosts: ["2001:db8:2::2"]
  interval: 100ms
  source: "2001:db8:2::5"
- hosts: [198.51.100.2]
  interval: 100ms
  source: 198.51.100.9
  labels: {group: bad}
]], ".yml")
    local server = exporter.start({ "--config", path })
    assert.is_nil(server.failed, server.output)
    local function sum(samples, name, pattern)
      local total = 0
      for key, v in pairs(samples) do
        if key:sub(1, #name + 1) == name .. "{" and key:find(pattern) then
          total = total + v
        end
      end
      return total
    end
    local ok, samples
    for _ = 1, 100 do
      samples = server:scrape()
      ok = sum(samples, "icmprun_results_total", 'ip="198%.51%.100%.2".*status="reply"') >= 3
        and sum(samples, "icmprun_results_total", 'ip="2001:db8:2::2".*status="reply"') >= 3
        and sum(samples, "smokeping_send_errors_total", 'group="bad"') >= 3
      if ok then
        break
      end
      exporter.sleep(0.1)
    end
    server:stop()
    os.remove(path)
    assert.is_true(ok, "replies from both groups and send errors of the bad one")
    local c = nftcount.read_at(HOST)
    assert.is_true(c.all4 >= 3 and c.all6 >= 3, "probes arrived")
    assert.equal(c.all4, c.src4, "every IPv4 probe came from 198.51.100.5")
    assert.equal(c.all6, c.src6, "every IPv6 probe came from 2001:db8:2::5")
  end)
end)
