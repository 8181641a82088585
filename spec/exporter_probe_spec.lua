-- SPDX-License-Identifier: MIT

--- blackbox_exporter's ICMP prober as a drop-in: `/probe?target=&module=`
-- with its module config and metric names. Probes go to loopback and to
-- the test hosts of scripts/testnet only.
local cli = require "cli"
local exporter = require "exporter"
local probe = require "icmprun.exporter.probe"

local SILENT = "192.0.2.2" -- answers nothing (scripts/testnet)
local FAR = "192.0.2.130" -- one hop behind the test router

local FAMILIES = { "probe_dns_lookup_time_seconds", "probe_duration_seconds",
  "probe_icmp_duration_seconds", "probe_ip_addr_hash", "probe_ip_protocol", "probe_success" }

describe("exporter /probe (blackbox_exporter's ICMP prober)", function()
  local server, path
  after_each(function()
    if server and server.stop then
      server:stop()
    end
    server = nil
    if path then
      os.remove(path)
      path = nil
    end
  end)

  it("hashes addresses as blackbox_exporter does (FNV-1a of the bytes)", function()
    assert.equal(3668918509, probe.ip_hash("127.0.0.1"))
    assert.equal(1751717746, probe.ip_hash("::1"))
    assert.equal(probe.ip_hash("127.0.0.1"), probe.ip_hash("::ffff:127.0.0.1"))
  end)

  it("answers with blackbox_exporter's series, which promtool accepts", function()
    server = exporter.start({ "127.0.0.1" })
    assert.is_nil(server.failed, server.output)
    local code, body = server:request("/probe?target=127.0.0.1&module=icmp")
    assert.equal(200, code)
    local s = exporter.parse(body)
    for _, family in ipairs(FAMILIES) do
      assert.equal("gauge", s.families[family], family)
    end
    assert.equal("gauge", s.families.probe_icmp_reply_hop_limit)
    assert.equal(1, s.probe_success)
    assert.equal(4, s.probe_ip_protocol)
    assert.equal(3668918509, s.probe_ip_addr_hash)
    assert.equal(64, s.probe_icmp_reply_hop_limit)
    assert.is_true(s['probe_icmp_duration_seconds{phase="rtt"}'] > 0)
    assert.is_number(s['probe_icmp_duration_seconds{phase="resolve"}'])
    assert.is_number(s['probe_icmp_duration_seconds{phase="setup"}'])
    local check = exporter.promtool_check(body)
    assert.equal(0, check.code, check.stdout .. check.stderr)
    -- IPv6, preferred by default; the module defaults to icmp.
    s = exporter.parse(select(2, server:request("/probe?target=%3A%3A1")))
    assert.equal(1, s.probe_success)
    assert.equal(6, s.probe_ip_protocol)
  end)

  it("fails a silent host within the scrape's timeout less half a second", function()
    server = exporter.start({ "127.0.0.1" })
    assert.is_nil(server.failed, server.output)
    local r = cli.sh(string.format("curl -s -H 'X-Prometheus-Scrape-Timeout-Seconds: 1' "
      .. "'%s/probe?target=%s&module=icmp'", server.url, SILENT))
    local s = exporter.parse(r.stdout)
    assert.equal(0, s.probe_success)
    assert.is_nil(s.probe_icmp_reply_hop_limit)
    assert.equal(0, s['probe_icmp_duration_seconds{phase="rtt"}'])
    assert.is_true(s.probe_duration_seconds >= 0.45, tostring(s.probe_duration_seconds))
  end)

  it("reads blackbox_exporter's modules: protocol, fallback, payload size, TTL", function()
    path = cli.temp_file([[
modules:
  icmp:
    prober: icmp
  ttl1:
    prober: icmp
    timeout: 2s
    icmp:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
      payload_size: 100
      dont_fragment: false
      ttl: 1
  v6only:
    prober: icmp
    icmp:
      preferred_ip_protocol: ip6
      ip_protocol_fallback: false
]], ".yml")
    server = exporter.start({ "--blackbox.config.file", path, "127.0.0.1" })
    assert.is_nil(server.failed, server.output)
    -- TTL 1: the probe dies at the router.
    local s = exporter.parse(select(2, server:request("/probe?target=" .. FAR .. "&module=ttl1")))
    assert.equal(0, s.probe_success)
    assert.equal(4, s.probe_ip_protocol)
    s = exporter.parse(select(2, server:request("/probe?target=127.0.0.1&module=ttl1")))
    assert.equal(1, s.probe_success)
    -- An IPv4 address with IPv6 only and no fallback.
    s = exporter.parse(select(2, server:request("/probe?target=127.0.0.1&module=v6only")))
    assert.equal(0, s.probe_success)
    assert.equal(0, s.probe_ip_protocol)
    local code, body = server:request("/probe?target=127.0.0.1&module=nope")
    assert.equal(400, code)
    assert.matches('Unknown module "nope"', body, 1, true)
    code, body = server:request("/probe?module=icmp")
    assert.equal(400, code)
    assert.matches("Target parameter is missing", body, 1, true)
    assert.equal(405, (server:request("/probe?target=127.0.0.1", "POST")))
  end)

  it("matches Debian's blackbox_exporter side by side, with its own config file", function()
    local peer = cli.sh("command -v prometheus-blackbox-exporter").stdout:match("%S+")
    local blackbox_yml = "/etc/prometheus/blackbox.yml"
    if not peer or not io.open(blackbox_yml) then
      pending("prometheus-blackbox-exporter is not installed")
      return
    end
    server = exporter.start({ "--blackbox.config.file", blackbox_yml, "127.0.0.1" })
    assert.is_nil(server.failed, server.output)
    -- A fixed port: inside the private namespace of scripts/netns it is ours.
    local port = 19116
    local p = io.popen(string.format("unset LD_PRELOAD ASAN_OPTIONS; %s --config.file %s "
      .. "--web.listen-address 127.0.0.1:%d >/dev/null 2>&1 & echo $!", peer, blackbox_yml, port))
    local peer_pid = p:read("l")
    p:close()
    local function fetch(base, target)
      local r = cli.sh(string.format("curl -s -g -H 'X-Prometheus-Scrape-Timeout-Seconds: 1' "
        .. "'%s/probe?target=%s&module=icmp'", base, target))
      return r.stdout
    end
    for _ = 1, 50 do
      if fetch("http://127.0.0.1:" .. port, "127.0.0.1") ~= "" then
        break
      end
      exporter.sleep(0.1)
    end
    local ok, err = pcall(function()
      for _, target in ipairs({ "127.0.0.1", "::1", SILENT }) do
        local theirs = exporter.parse(fetch("http://127.0.0.1:" .. port, target))
        local ours = exporter.parse(fetch(server.url, target))
        -- The same families and types, and the same series.
        assert.same(theirs.families, ours.families)
        for series in pairs(theirs) do
          assert.is_not_nil(ours[series], target .. ": " .. tostring(series))
        end
        for series in pairs(ours) do
          assert.is_not_nil(theirs[series], target .. ": " .. tostring(series))
        end
        for _, name in ipairs({ "probe_success", "probe_ip_protocol", "probe_ip_addr_hash",
          "probe_icmp_reply_hop_limit" }) do
          assert.equal(theirs[name], ours[name], target .. ": " .. name)
        end
      end
      -- Its file's other modules are there, and refused by name.
      local code, body = server:request("/probe?target=127.0.0.1&module=http_2xx")
      assert.equal(400, code)
      assert.matches('module "http_2xx" uses the http prober', body, 1, true)
    end)
    os.execute("kill " .. peer_pid)
    assert(ok, err)
  end)

  it("refuses module settings it cannot honour, with status 2", function()
    local cases = {
      { "modules:\n  m:\n    prober: icmp\n    icmp:\n      dont_fragment: true\n",
        "modules.m.icmp.dont_fragment: is not supported" },
      { "modules:\n  m:\n    prober: 5\n", "modules.m.prober: 5 is not supported" },
      { "modules:\n  m:\n    prober: icmp\n    icmp:\n      ttl: 300\n",
        "modules.m.icmp.ttl: 300 is not a whole number" },
      { "modules:\n  m:\n    prober: icmp\n    timeout: 25h\n", "modules.m.timeout: 25h" },
    }
    for _, case in ipairs(cases) do
      local file = cli.temp_file(case[1], ".yml")
      local r = cli.icmprun_run({ "exporter", "--blackbox.config.file", file, "127.0.0.1" })
      os.remove(file)
      assert.equal(2, r.code, r.stderr)
      assert.matches(case[2], r.stderr, 1, true)
    end
  end)
end)
