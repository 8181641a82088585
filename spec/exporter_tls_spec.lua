-- SPDX-License-Identifier: MIT

--- `icmprun exporter --web.config.file`: exporter-toolkit's TLS and basic
-- auth, served by libmicrohttpd on the loop, and scraped by a real
-- Prometheus with its `tls_config` and `basic_auth`. Loopback only.
local cli = require "cli"
local exporter = require "exporter"

local PROMETHEUS_PORT = 19091
local PASSWORD = "s3cret pass"

-- A self-signed certificate for 127.0.0.1 and its key, made by openssl,
-- and a bcrypt hash of PASSWORD made by Python's crypt (libxcrypt): not by
-- the code under test.
local function make_files(dir)
  local r = cli.sh(string.format("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s "
    .. "-out %s -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1",
    cli.quote(dir .. "/tls.key"), cli.quote(dir .. "/tls.crt")))
  assert(r.code == 0, r.stderr)
  r = cli.sh("python3 -W ignore -c " .. cli.quote("import crypt, sys; print(crypt.crypt("
    .. "sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 10)))") .. " "
    .. cli.quote(PASSWORD))
  assert(r.code == 0, r.stderr)
  local hash = r.stdout:match("%S+")
  cli.write_files(dir, { ["web.yml"] = string.format([[
tls_server_config:
  cert_file: %s/tls.crt
  key_file: %s/tls.key
basic_auth_users:
  prometheus: "%s"
]], dir, dir, hash) })
  return hash
end

describe("icmprun exporter over TLS with basic auth", function()
  local server, dir, prometheus_pid
  after_each(function()
    if prometheus_pid then
      os.execute("kill " .. prometheus_pid .. "; sleep 0.5; kill -9 " .. prometheus_pid
        .. " 2>/dev/null")
      prometheus_pid = nil
    end
    if server and server.stop then
      server:stop()
    end
    server = nil
    if dir then
      cli.remove_tree(dir)
      dir = nil
    end
  end)

  it("checks bcrypt hashes with libcrypt, and Basic credentials", function()
    dir = cli.temp_dir()
    local hash = make_files(dir)
    -- Through the icmprun command: in a sanitizer build the spec's own
    -- lua5.4 gets ASan preloaded before libcrypt, whose crypt_r ASan's
    -- interceptor then cannot find.
    local r = cli.icmprun_script([[
      local httpd = require "icmprun.httpd"
      local web_config = require "icmprun.exporter.web_config"
      local password, hash = arg[1], arg[2]
      local function basic(user, pass)
        local b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        local s, out = user .. ":" .. pass, {}
        for i = 1, #s, 3 do
          local a, b, c = s:byte(i, i + 2)
          local n = (a << 16) | ((b or 0) << 8) | (c or 0)
          for k = 0, 3 do
            local shift = 18 - 6 * k
            out[#out + 1] = (k <= 1 or (k == 2 and b) or (k == 3 and c))
              and b64:sub(((n >> shift) & 63) + 1, ((n >> shift) & 63) + 1) or "="
          end
        end
        return "Basic " .. table.concat(out)
      end
      local check = web_config.checker({ prometheus = hash }, httpd.crypt_check)
      print(httpd.crypt_check(password, hash), httpd.crypt_check(password .. "x", hash),
        httpd.crypt_check(password, "$2y$10$notahash"),
        check(basic("prometheus", password)), check(basic("prometheus", password)),
        check(basic("prometheus", "nope")), check(basic("other", password)),
        check("Basic !!!"), check(nil))
    ]], { PASSWORD, hash })
    assert.equal(0, r.code, r.stderr)
    -- Right, wrong, not a hash; the pair twice (the second remembered),
    -- a wrong password, an unknown user, not base64, no header.
    assert.equal("true\tfalse\tfalse\ttrue\ttrue\tfalse\tfalse\tfalse\tfalse\n", r.stdout)
  end)

  it("serves HTTPS only to the users, and Prometheus scrapes it", function()
    dir = cli.temp_dir()
    make_files(dir)
    server = exporter.start({ "--web.config.file", dir .. "/web.yml", "--ping.interval",
      "200ms", "127.0.0.1" })
    assert.is_nil(server.failed, server.output)
    assert.matches("^https://", server.url)
    local port, base = server.port, server.url
    local curl = "curl -s --cacert " .. cli.quote(dir .. "/tls.crt") .. " "
    local function get(extra, path)
      local r = cli.sh(curl .. extra .. " -D - -o /dev/null " .. cli.quote(base .. path))
      return tonumber(r.stdout:match("^HTTP/1%.1 (%d+)")), r.stdout
    end
    local user = "-u " .. cli.quote("prometheus:" .. PASSWORD)
    assert.equal(200, (get(user, "/metrics")))
    local code, head = get("", "/metrics")
    assert.equal(401, code)
    assert.matches('WWW%-Authenticate: Basic realm="icmprun exporter"', head)
    assert.equal(401, (get("-u prometheus:wrong", "/metrics")))
    local _, zhead = get(user .. " -H 'Accept-Encoding: gzip'", "/metrics")
    assert.matches("Content%-Encoding: gzip", zhead)
    -- Plain HTTP to the TLS port gets no answer.
    local plain = cli.sh("curl -s -m 3 -o /dev/null -w '%{http_code}' http://127.0.0.1:" .. port
      .. "/metrics")
    assert.equal("000", plain.stdout)
    -- The text over TLS passes promtool.
    local text = cli.sh(curl .. user .. " " .. cli.quote(base .. "/metrics")).stdout
    local check = exporter.promtool_check(text)
    assert.equal(0, check.code, check.stdout .. check.stderr)

    -- Prometheus with tls_config and basic_auth; it asks for gzip.
    cli.write_files(dir, { ["prometheus.yml"] = string.format([[
global:
  scrape_interval: 1s
scrape_configs:
- job_name: icmprun
  scheme: https
  tls_config:
    ca_file: %s/tls.crt
  basic_auth:
    username: prometheus
    password: %q
  static_configs:
  - targets: ['127.0.0.1:%d']
]], dir, PASSWORD, port) })
    local p = assert(io.popen(string.format(
      "( unset LD_PRELOAD ASAN_OPTIONS; exec prometheus --config.file=%s --storage.tsdb.path=%s "
      .. "--web.listen-address=127.0.0.1:%d ) >%s 2>&1 & echo $!",
      cli.quote(dir .. "/prometheus.yml"), cli.quote(dir .. "/data"), PROMETHEUS_PORT,
      cli.quote(dir .. "/prometheus.log"))))
    prometheus_pid = tonumber(p:read("l"))
    p:close()
    local answer
    for _ = 1, 300 do
      answer = cli.sh(string.format("curl -s -G --data-urlencode %s "
        .. "http://127.0.0.1:%d/api/v1/query", cli.quote(
        'query=smokeping_requests_total{job="icmprun",host="127.0.0.1"}'), PROMETHEUS_PORT))
        .stdout
      if answer:find('"value":%[[%d.]+,"%d+"%]') then
        break
      end
      exporter.sleep(0.2)
    end
    local log = io.open(dir .. "/prometheus.log"):read("a")
    assert.matches('"value":%[[%d.]+,"%d+"%]', answer, nil, false, log:sub(-2000))
    local up = cli.sh(string.format("curl -s -G --data-urlencode %s "
      .. "http://127.0.0.1:%d/api/v1/query", cli.quote('query=up{job="icmprun"}'),
      PROMETHEUS_PORT)).stdout
    assert.matches('"value":%[[%d.]+,"1"%]', up)
  end)

  it("refuses web config settings it cannot honour, with status 2", function()
    dir = cli.temp_dir()
    local cases = {
      { "tls_server_config:\n  cert_file: /x\n  key_file: /y\n  client_auth_type: "
        .. "RequireAndVerifyClientCert\n", "client certificates are not supported" },
      { "tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /y\n",
        "cannot read the TLS certificate" },
      { "basic_auth_users:\n  prometheus: plaintext\n", "must be a bcrypt hash" },
      { "http_server_config:\n  http2: true\n", "http_server_config is not supported" },
      { "tls_server_config:\n  cert_file: " .. dir .. "/bad\n  key_file: " .. dir .. "/bad\n",
        "not valid PEM" },
    }
    cli.write_files(dir, { bad = "not a certificate" })
    for _, case in ipairs(cases) do
      local file = cli.temp_file(case[1], ".yml")
      local r = cli.icmprun_run({ "exporter", "--listen", "127.0.0.1:0", "--web.config.file",
        file, "127.0.0.1" })
      os.remove(file)
      assert.equal(2, r.code, r.stderr)
      assert.matches(case[2], r.stderr, 1, true)
    end
  end)
end)
