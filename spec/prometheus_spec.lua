-- SPDX-License-Identifier: MIT

--- A real Prometheus server (Debian's `prometheus`, on loopback, with its
-- own temporary storage) scrapes `icmprun exporter`: the target is up and
-- the series are queryable through Prometheus's HTTP API.
local cli = require "cli"
local exporter = require "exporter"

-- Inside the private network namespace of scripts/netns the port is ours.
local PROMETHEUS_PORT = 19090

local function query(expr)
  local r = cli.sh(string.format("curl -s -G --data-urlencode %s http://127.0.0.1:%d/api/v1/query",
    cli.quote("query=" .. expr), PROMETHEUS_PORT))
  return r.stdout
end

-- Queries until the answer matches `pattern` (up to `seconds`); returns the
-- last answer.
local function query_until(expr, pattern, seconds)
  local answer
  for _ = 1, seconds * 5 do
    answer = query(expr)
    if answer:find(pattern) then
      break
    end
    exporter.sleep(0.2)
  end
  return answer
end

describe("prometheus scraping icmprun exporter", function()
  local server, dir, prometheus_pid
  after_each(function()
    if prometheus_pid then
      os.execute("kill " .. prometheus_pid .. "; sleep 0.5; kill -9 " .. prometheus_pid
        .. " 2>/dev/null")
    end
    if server then
      server:stop()
    end
    if dir then
      cli.remove_tree(dir)
    end
  end)

  it("sees the target up and its series", function()
    dir = cli.temp_dir()
    cli.write_files(dir, { ["targets.yml"] = [[
targets:
- hosts: [127.0.0.1, "::1"]
  interval: 200ms
  labels: {site: lab}
]] })
    server = exporter.start({ "--config", dir .. "/targets.yml" })
    assert.is_nil(server.failed, server.output)
    cli.write_files(dir, { ["prometheus.yml"] = string.format([[
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
- job_name: icmprun
  static_configs:
  - targets: ['127.0.0.1:%d']
]], server.port) })
    local p = assert(io.popen(string.format(
      "( unset LD_PRELOAD ASAN_OPTIONS; exec prometheus --config.file=%s --storage.tsdb.path=%s "
      .. "--web.listen-address=127.0.0.1:%d ) >%s 2>&1 & echo $!",
      cli.quote(dir .. "/prometheus.yml"), cli.quote(dir .. "/data"), PROMETHEUS_PORT,
      cli.quote(dir .. "/prometheus.log"))))
    prometheus_pid = tonumber(p:read("l"))
    p:close()

    -- Prometheus starts, scrapes every second; give it up to 60 s.
    local up = query_until('up{job="icmprun"}', '"value":%[[%d.]+,"1"%]', 60)
    local log = io.open(dir .. "/prometheus.log"):read("a")
    assert.matches('"value":%[[%d.]+,"1"%]', up, nil, false, "prometheus log:\n" .. log)

    local sent = query('smokeping_requests_total{job="icmprun",host="127.0.0.1",site="lab"}')
    assert.matches('"status":"success"', sent)
    local n = tonumber(sent:match('"value":%[[%d.]+,"(%d+)"%]'))
    assert.is_true(n and n > 0, sent)
    -- A rate needs two scrapes.
    local rate = query_until('sum by (host) (rate(icmprun_results_total{status="reply"}[5s]))',
      '"host":"::1"', 20)
    assert.matches('"host":"::1"', rate)
    local buckets = query('count(smokeping_response_duration_seconds_bucket{host="::1"})')
    assert.matches('"value":%[[%d.]+,"21"%]', buckets) -- 20 bounds and +Inf

    -- And promtool agrees with the text Prometheus parsed.
    local _, text = server:scrape()
    local check = exporter.promtool_check(text)
    assert.equal(0, check.code, check.stdout .. check.stderr)
  end)
end)
