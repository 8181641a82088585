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

  it("refuses what it cannot do yet with status 2 and a reason", function()
    local cases = {
      { { "--web.config.file", "/etc/web.yml" }, "--web.config.file: TLS and basic auth are not "
        .. "supported" },
      { { "--web.systemd-socket" }, "--web.systemd-socket: socket activation is not supported" },
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
