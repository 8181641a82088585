-- SPDX-License-Identifier: MIT

--- smokeping_prober's command-line flags, accepted by `icmprun exporter`
-- with the same meaning. Only loopback is used.
local cli = require "cli"
local exporter = require "exporter"

describe("icmprun exporter's smokeping_prober flags", function()
  local server
  after_each(function()
    if server and server.stop then
      server:stop()
    end
    server = nil
  end)

  it("serves on every --web.listen-address given, [::] included", function()
    server = exporter.start({ "--web.listen-address", "[::1]:0", "--web.listen-address",
      "[::]:0", "--privileged", "-O", "0x10", "--ping.interval", "100ms", "127.0.0.1" })
    assert.is_nil(server.failed, server.output)
    local output = server:output()
    local v6 = tonumber(output:match("serving http://%[::1%]:(%d+)/metrics"))
    local any = tonumber(output:match("serving http://%[::%]:(%d+)/metrics"))
    assert.truthy(v6 and any, output)
    for _, url in ipairs({ server.url, "http://[::1]:" .. v6, "http://[::1]:" .. any,
      "http://127.0.0.1:" .. any }) do
      local r = cli.sh("curl -s -g " .. cli.quote(url .. "/metrics"))
      assert.matches('smokeping_requests_total{host="127.0.0.1"', r.stdout, 1, true)
    end
  end)

  it("accepts --no-privileged, --log.* and --version", function()
    -- Runs until stopped (timeout's 124), and at warn writes no info line.
    local quiet = cli.sh("timeout 2 " .. cli.icmprun_cmdline({ "exporter", "--listen",
      "127.0.0.1:0", "--no-privileged", "--log.level=warn", "--log.format=logfmt",
      "127.0.0.1" }))
    assert.equal(124, quiet.code, quiet.stderr)
    assert.equal("", quiet.stderr)
    local r = cli.icmprun_run({ "exporter", "--version" })
    assert.equal(0, r.code)
    assert.matches("^icmprun exporter %d+%.%d+", r.stdout)
  end)

  it("runs on Debian's smokeping_prober files unchanged, with its series", function()
    local peer = cli.sh("command -v prometheus-smokeping-prober").stdout:match("%S+")
    local yml, default = "/etc/prometheus/smokeping_prober.yml",
      "/etc/default/prometheus-smokeping-prober"
    if not peer or not io.open(yml) or not io.open(default) then
      pending("prometheus-smokeping-prober is not installed")
      return
    end
    -- The package's ARGS, as its unit passes them: split by the shell.
    local args = cli.sh(". " .. default .. "; for a in $ARGS; do echo \"$a\"; done").stdout
    local argv = { "--config.file", yml }
    for a in args:gmatch("[^\n]+") do
      argv[#argv + 1] = a
    end
    server = exporter.start(argv)
    assert.is_nil(server.failed, server.output)
    -- A fixed port: inside the private namespace of scripts/netns it is ours.
    local port = 19376
    local p = io.popen(string.format("unset LD_PRELOAD ASAN_OPTIONS; %s --web.listen-address "
      .. "127.0.0.1:%d %s >/dev/null 2>&1 & echo $!", peer, port, args:gsub("\n", " ")))
    local peer_pid = p:read("l")
    p:close()
    local ok, err = pcall(function()
      -- Both have probed for a while (smokeping_prober waits a second first).
      exporter.sleep(3)
      local their_text = cli.sh("curl -s http://127.0.0.1:" .. port .. "/metrics").stdout
      local theirs = exporter.parse(their_text)
      local ours, our_text = server:scrape()
      local families = { "smokeping_requests_total", "smokeping_response_duration_seconds",
        "smokeping_response_ttl", "smokeping_prober_config_last_reload_successful",
        "smokeping_prober_config_last_reload_success_timestamp_seconds" }
      for _, family in ipairs(families) do
        assert.equal(theirs.families[family], ours.families[family], family)
      end
      -- Every series of theirs is ours too (labels and le bounds), but for
      -- their build's identity.
      for series in pairs(theirs) do
        if type(series) == "string" and series:match("^smokeping_")
          and not series:match("^smokeping_prober_build_info") then
          assert.is_not_nil(ours[series], series .. "\ntheirs:\n" .. their_text:sub(1, 3000)
            .. "\nours:\n" .. our_text:sub(1, 1500))
        end
      end
      assert.is_true(ours['smokeping_requests_total{host="localhost",ip="127.0.0.1"}'] > 0)
    end)
    os.execute("kill " .. peer_pid)
    assert(ok, err)
  end)

  it("serves the sockets systemd passes with --web.systemd-socket", function()
    if not cli.sh("command -v systemd-socket-activate").stdout:match("%S") then
      pending("no systemd-socket-activate")
      return
    end
    for i, extra in ipairs({ {}, { "--web.server", "microhttpd" } }) do
      -- Fixed ports: inside the private namespace of scripts/netns they are ours.
      local port = 19377 + i
      local argv = { "exporter", "--web.systemd-socket" }
      table.move(extra, 1, #extra, #argv + 1, argv)
      argv[#argv + 1] = "127.0.0.1"
      local log = os.tmpname()
      local p = io.popen(string.format("unset LD_PRELOAD ASAN_OPTIONS; exec systemd-socket-activate -l "
        .. "127.0.0.1:%d %s >%s 2>&1 & echo $!", port, cli.icmprun_cmdline(argv),
        cli.quote(log)))
      local pid = p:read("l")
      p:close()
      -- The first connection starts it (systemd-socket-activate execs it).
      local r
      for _ = 1, 50 do
        r = cli.sh(string.format("curl -s -m 5 http://127.0.0.1:%d/metrics", port))
        if r.stdout ~= "" then
          break
        end
        exporter.sleep(0.1)
      end
      local output = io.open(log):read("a")
      os.execute("kill " .. pid)
      os.remove(log)
      assert.matches('smokeping_requests_total{host="127.0.0.1"', r.stdout, 1, true)
      assert.matches("serving http://127.0.0.1:" .. port .. "/metrics", output, 1, true)
    end
  end)

  it("refuses what it cannot do with status 2 and a reason", function()
    local cases = {
      { { "--web.config.file", "/nonexistent/web.yml" }, "--web.config.file: cannot read the "
        .. "web config: /nonexistent/web.yml" },
      { { "--web.systemd-socket" }, "--web.systemd-socket: no sockets were passed" },
      { { "-O", "256" }, "option '--ping.tos': invalid argument '256'" },
    }
    for _, case in ipairs(cases) do
      local argv = { "exporter" }
      table.move(case[1], 1, #case[1], 2, argv)
      argv[#argv + 1] = "127.0.0.1"
      local r = cli.icmprun_run(argv)
      assert.equal(2, r.code, r.stderr)
      assert.matches(case[2], r.stderr, 1, true)
    end
  end)
end)
