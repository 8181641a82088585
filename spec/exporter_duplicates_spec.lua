-- SPDX-License-Identifier: MIT

--- Duplicate replies counted per host, as smokeping_prober labels them: real
-- duplicates made by an nftables `dup` rule that copies one loopback
-- address's echo replies (IPv4 and IPv6) back to us, so every reply from it
-- comes twice. Needs the private namespace of scripts/netns (root inside).
local cli = require "cli"
local exporter = require "exporter"

local DUPLICATED_V4, DUPLICATED_V6 = "127.1.0.2", "::1"

-- Copies every echo reply from the two addresses once more.
local function duplicate_replies()
  local r = cli.sh("nft -f -", string.format([[
table ip icmprun_dup {
  chain out {
    type filter hook output priority 0;
    ip saddr %s icmp type echo-reply dup to 127.0.0.1 device lo
  }
}
table ip6 icmprun_dup6 {
  chain out {
    type filter hook output priority 0;
    ip6 saddr %s icmpv6 type echo-reply dup to ::1 device lo
  }
}
]], DUPLICATED_V4, DUPLICATED_V6))
  assert(r.code == 0, "nft: " .. r.stderr)
end

-- Drops every echo request from now on: no more replies, so no more
-- duplicates, and the counts can be compared while nothing moves.
local function stop_replies()
  local r = cli.sh("nft -f -", [[
table inet icmprun_quiet {
  chain out {
    type filter hook output priority -10;
    icmp type echo-request drop
    icmpv6 type echo-request drop
  }
}
]])
  assert(r.code == 0, "nft: " .. r.stderr)
end

local function clean()
  for _, t in ipairs({ "ip icmprun_dup", "ip6 icmprun_dup6", "inet icmprun_quiet" }) do
    os.execute("nft delete table " .. t .. " 2>/dev/null")
  end
end

describe("duplicate replies per host", function()
  before_each(clean)
  after_each(clean)

  it("icmprun.duplicates() counts each sender's duplicates, as stats() does in all", function()
    duplicate_replies()
    local r = cli.icmprun_script([[
      local icmprun = require "icmprun"
      local replies = 0
      for _, addr in ipairs({ "127.1.0.2", "127.1.0.2", "127.1.0.2", "127.1.0.3",
                              "127.1.0.3", "::1" }) do
        local r = icmprun.ping(addr, { timeout = 1000 })
        if r.status == "reply" then replies = replies + 1 end
        icmprun.sleep(20) -- the copy comes right after the reply
      end
      local d, s = icmprun.duplicates(), icmprun.counters()
      print(replies, d["127.1.0.2"], d["127.1.0.3"], d["::1"], d.other, s.duplicates,
        s.late, s.results)
    ]])
    assert.equal(0, r.code, r.stderr)
    assert.equal("6\t3\tnil\t1\tnil\t4\t0\t6\n", r.stdout)
  end)

  it("icmprun.duplicates() counts 4,096 senders one by one, and the rest as other", function()
    local r = cli.sh("nft -f -", [[
table ip icmprun_dup {
  chain out {
    type filter hook output priority 0;
    ip saddr { 127.2.0.0/16, 127.3.0.0/16 } icmp type echo-reply dup to 127.0.0.1 device lo
  }
}
]])
    assert.equal(0, r.code, r.stderr)
    r = cli.icmprun_script([[
      local icmprun = require "icmprun"
      local replies = 0
      for _, block in ipairs({ "127.2.0.0/20", "127.3.0.0/25" }) do
        for r in icmprun.sweep(block, { timeout = 2000, rate = 20000 }) do
          if r.status == "reply" then replies = replies + 1 end
        end
      end
      icmprun.sleep(200) -- the last copies
      local d, s = icmprun.duplicates(), icmprun.counters()
      local addresses, sum, most = 0, 0, 0
      for addr, n in pairs(d) do
        if addr ~= "other" then
          addresses = addresses + 1
          most = math.max(most, n)
        end
        sum = sum + n
      end
      print(replies, addresses, d.other, sum, s.duplicates, most)
    ]])
    assert.equal(0, r.code, r.stderr)
    assert.equal("4224\t4096\t128\t4224\t4224\t1\n", r.stdout)
  end)

  it("labels smokeping_response_duplicates_total with the host that duplicated", function()
    duplicate_replies()
    -- 127.1.0.2 is listed twice (another label set): both probe it, and each
    -- counts every duplicate of that address.
    local path = cli.temp_file([[
targets:
- hosts: [127.1.0.2, 127.1.0.3, 127.1.0.4, "::1"]
  interval: 100ms
- hosts: [127.1.0.2]
  interval: 100ms
  labels: {copy: "yes"}
]], ".yml")
    local server = exporter.start({ "--config", path })
    assert.is_nil(server.failed, server.output)
    local ok, err = pcall(function()
      exporter.sleep(1.5)
      stop_replies()
      exporter.sleep(1.5) -- every probe in flight has timed out (100 ms)
      local s = server:scrape()
      local function series(name, host, ip, extra)
        return s[string.format('%s{host="%s",ip="%s"%s}', name, host, ip, extra or "")]
      end
      local function replies(host, ip, extra)
        return series("icmprun_results_total", host, ip, (extra or "") .. ',status="reply"')
      end
      local dup = "smokeping_response_duplicates_total"
      local copy = ',copy="yes"'
      local a, a_copy = replies("127.1.0.2", "127.1.0.2"), replies("127.1.0.2", "127.1.0.2", copy)
      assert.is_true(a > 0 and a_copy > 0)
      -- Exact: every reply from 127.1.0.2 came twice, and nothing moves now.
      assert.equal(a + a_copy, series(dup, "127.1.0.2", "127.1.0.2"))
      assert.equal(a + a_copy, series(dup, "127.1.0.2", "127.1.0.2", copy))
      assert.equal(replies("::1", "::1"), series(dup, "::1", "::1"))
      assert.is_true(replies("::1", "::1") > 0)
      for _, other in ipairs({ "127.1.0.3", "127.1.0.4" }) do
        assert.is_true(replies(other, other) > 0)
        assert.equal(0, series(dup, other, other))
      end
      assert.equal("counter", s.families[dup])
      -- The engine's own counters agree: every duplicate came from a target.
      assert.equal(a + a_copy + replies("::1", "::1"), s.icmprun_engine_duplicates_total)
      assert.equal(0, s.icmprun_engine_late_total)
      assert.equal(0, s.icmprun_engine_foreign_total)
      local sent, ended = 0, 0
      for _, host in ipairs({ { "127.1.0.2", "" }, { "127.1.0.2", copy }, { "127.1.0.3", "" },
                              { "127.1.0.4", "" }, { "::1", "" } }) do
        sent = sent + series("smokeping_requests_total", host[1], host[1], host[2])
        for _, status in ipairs({ "reply", "timeout", "unreachable", "ttl_exceeded", "error" }) do
          ended = ended + series("icmprun_results_total", host[1], host[1],
            host[2] .. ',status="' .. status .. '"')
        end
      end
      assert.equal(s.icmprun_engine_results_total, ended)
      assert.is_true(sent - ended <= 5) -- at most one probe in flight a target
      local check = exporter.promtool_check(select(2, server:scrape()))
      assert.equal(0, check.code, check.stdout .. check.stderr)
    end)
    server:stop()
    os.remove(path)
    assert(ok, err)
  end)

  it("starts a target added by a reload at 0, while the old ones keep counting", function()
    duplicate_replies()
    local config = "targets:\n- hosts: [127.1.0.2]\n  interval: 50ms\n"
    local path = cli.temp_file(config, ".yml")
    local server = exporter.start({ "--config", path })
    assert.is_nil(server.failed, server.output)
    local ok, err = pcall(function()
      exporter.sleep(1)
      cli.write_file(path, config .. "- hosts: [127.1.0.2]\n  interval: 50ms\n"
        .. "  labels: {copy: \"yes\"}\n")
      assert.equal(200, (server:request("/-/reload", "POST")))
      exporter.sleep(1)
      stop_replies()
      exporter.sleep(1)
      local s = server:scrape()
      local old = 'host="127.1.0.2",ip="127.1.0.2"'
      local new = old .. ',copy="yes"'
      local dup = "smokeping_response_duplicates_total"
      local function replies(labels)
        return s["icmprun_results_total{" .. labels .. ',status="reply"}']
      end
      -- The old target counts every duplicate of the address; the new one
      -- only those since the reload: its own replies' and the old one's
      -- since then, fewer than the old one's total.
      assert.equal(replies(old) + replies(new), s[dup .. "{" .. old .. "}"])
      assert.is_true(s[dup .. "{" .. new .. "}"] >= replies(new))
      assert.is_true(s[dup .. "{" .. new .. "}"] < s[dup .. "{" .. old .. "}"])
    end)
    server:stop()
    os.remove(path)
    assert(ok, err)
  end)
end)
