-- SPDX-License-Identifier: MIT

--- Exporter soak benchmark: `icmprun exporter` with many loopback targets
-- at one probe per second each, scraped every second, for a while. Prints,
-- per minute and overall: CPU % (of one core), RSS, scrape latency (median,
-- p99, max), scrape size and probes per second; then the counters checked
-- against each other, and how late probes left beside a bare libuv loop
-- keeping the same schedule in the same run (scripts/bench/baretimer.c).
-- Then, when smokeping_prober is installed (Debian's
-- prometheus-smokeping-prober), icmprun and it side by side with fewer
-- targets for a shorter time (it starts its pingers one by one, and slows
-- down as it goes: it could not start 10,000 here), and the ratios. Run
-- through scripts/bench-exporter, which builds icmprun and enters the private
-- network namespace.
--
--   lua5.4 scripts/bench/run-exporter.lua BUILD_DIR [SECONDS] [TARGETS]
--     [PEER_SECONDS] [PEER_TARGETS]
local build = assert(arg[1], "usage: run-exporter.lua BUILD_DIR [SECONDS] [TARGETS] "
  .. "[PEER_SECONDS] [PEER_TARGETS]")
local soak_seconds = tonumber(arg[2] or "600")
local soak_targets = tonumber(arg[3] or "10000")
local peer_seconds = tonumber(arg[4] or "120")
local peer_targets = tonumber(arg[5] or "1000")

local function sh_read(cmd)
  local p = assert(io.popen(cmd))
  local text = p:read("a")
  p:close()
  return text
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

-- A file name in memory (tmpfs) for each scrape's body. On disk, curl's
-- 28 MB a second kept the kernel's block-I/O workers (nice -20) on a core for
-- milliseconds at a time: the exporter's loop waited for a core, and the
-- benchmark measured its own disk writes as the exporter's lateness.
local function memory_tmpname()
  local path = string.format("/dev/shm/icmprun-bench-%d-%d", os.time(), math.random(1 << 30))
  local f = io.open(path, "w")
  if not f then return os.tmpname() end
  f:close()
  return path
end

-- The last `bytes` of a file: where a scrape of icmprun's keeps the engine's
-- and the exporter's own lines, after every target's. Reading 28 MB and
-- matching patterns over it every second made this benchmark a CPU hog
-- beside the exporter it measures.
local function read_tail(path, bytes)
  local f = io.open(path, "rb")
  if not f then return nil end
  local size = f:seek("end")
  f:seek("set", math.max(0, size - bytes))
  local text = f:read("a")
  f:close()
  return text
end

local CLK_TCK = tonumber(sh_read("getconf CLK_TCK"))

local function now()
  return tonumber(sh_read("date +%s.%N"))
end

-- CPU seconds (user + system) and RSS in bytes of a process.
local function usage(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  local status = read_file("/proc/" .. pid .. "/status")
  if not stat or not status then return nil end
  local fields = {}
  for field in stat:match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = field end
  -- After the command name: state is field 3, utime 14 and stime 15.
  local cpu = (tonumber(fields[12]) + tonumber(fields[13])) / CLK_TCK
  local rss = tonumber(status:match("VmRSS:%s+(%d+) kB")) * 1024
  return cpu, rss
end

-- The targets: loopback addresses from 127.1.0.1 on, in groups of 1000.
local function write_config(path, n_targets)
  local lines = { "targets:" }
  local per_group = 1000
  for first = 0, n_targets - 1, per_group do
    lines[#lines + 1] = "- interval: 1s"
    lines[#lines + 1] = "  hosts:"
    for i = first, math.min(first + per_group, n_targets) - 1 do
      local k = i + 1
      lines[#lines + 1] = string.format("  - 127.%d.%d.%d", 1 + k // 65536, k // 256 % 256,
        k % 256)
    end
  end
  local f = assert(io.open(path, "w"))
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
end

local function percentile(sorted, p)
  if #sorted == 0 then return 0 end
  return sorted[math.max(1, math.ceil(#sorted * p))]
end

-- Sums a metric over all its series in a scrape.
local function sum_metric(text, name, label_filter)
  local total = 0
  for series, value in text:gmatch("\n(" .. name .. "[^\n]-) ([^ \n]+)") do
    if not label_filter or series:find(label_filter, 1, true) then
      total = total + tonumber(value)
    end
  end
  return total
end

-- Checks a final scrape: every target's probes ended or are the one in
-- flight; replies match the histogram. Returns a list of findings.
local function check_counters(text, n_targets)
  local sent = sum_metric("\n" .. text, "smokeping_requests_total{")
  local count = sum_metric("\n" .. text, "smokeping_response_duration_seconds_count{")
  local replies = sum_metric("\n" .. text, "icmprun_results_total{", 'status="reply"')
  local ended = sum_metric("\n" .. text, "icmprun_results_total{")
  local timeouts = sum_metric("\n" .. text, "icmprun_results_total{", 'status="timeout"')
  local engine_sent = tonumber(text:match("\nicmprun_engine_sent_total (%d+)"))
  return {
    string.format("probes sent %d, ended %d (in flight at the scrape: %d, at most %d)",
      sent, ended, sent - ended, n_targets),
    string.format("replies %d = histogram count %d: %s", replies, count,
      replies == count and "yes" or "NO"),
    string.format("timeouts %d", timeouts),
    string.format("engine sent %d, exporter counted %d", engine_sent or -1, sent),
    (sent - ended >= 0 and sent - ended <= n_targets and replies == count)
      and "counters: consistent" or "counters: INCONSISTENT",
  }
end

-- Clients that send a scrape and never read its answer, for `seconds`: a
-- lua5.4 with luv in the background. Returns its pid.
local NON_READERS = [[
local uv = require "luv"
local host, port, n, seconds = arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4])
for _ = 1, n do
  local tcp = uv.new_tcp()
  tcp:connect(host, port, function(err)
    if not err then tcp:write("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") end
  end)
end
local t = uv.new_timer()
t:start(seconds * 1000, 0, function() os.exit(0) end)
uv.run()
]]
local function start_non_readers(listen, n, seconds)
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(NON_READERS)
  f:close()
  local host, port = listen:match("^(.*):(%d+)$")
  return tonumber(sh_read(string.format("lua5.4 %s %s %s %d %d >/dev/null 2>&1 & echo $!",
    script, host, port, n, seconds))), script
end

-- Starts the bare loop (scripts/bench/baretimer.c) for `seconds`, keeping
-- the schedule of `n_targets`; returns the file it will write its figures to.
local function start_bare_timer(seconds, n_targets)
  local out = memory_tmpname()
  os.remove(out)
  os.execute(string.format("%s/icmprun_baretimer %d %d %s >/dev/null 2>&1 &", build, seconds,
    n_targets, out))
  return out
end

-- What the bare loop wrote to `out`, once it has (it ends a moment after
-- the soak): each second as { ended = wall-clock time, worst = its worst
-- lateness in seconds }.
local function bare_timer_seconds(out)
  for _ = 1, 50 do
    local text = read_file(out)
    if text then
      os.remove(out)
      local seconds = {}
      for ended, ns in text:gmatch("(%S+) (%d+)\n") do
        seconds[#seconds + 1] = { ended = tonumber(ended), worst = tonumber(ns) / 1e9 }
      end
      return seconds
    end
    os.execute("sleep 0.2")
  end
  return nil
end

-- The bare loop's worst lateness over the wall-clock interval (from, to].
local function bare_worst_within(seconds, from, to)
  local worst = 0
  for _, second in ipairs(seconds) do
    if second.ended > from and second.ended - 1 < to then
      worst = math.max(worst, second.worst)
    end
  end
  return worst
end

local function run(tool, n_targets, seconds)
  io.write(string.format("\n== %s: %d targets at 1/s, scraped every second, %d s\n",
    tool.name, n_targets, seconds))
  local log = os.tmpname()
  local pid = tonumber(sh_read(string.format("%s >%s 2>&1 & echo $!", tool.cmd, log)))
  -- Wait until it serves (smokeping_prober starts its pingers one by one
  -- first).
  local launched = now()
  while not os.execute("curl -sf -o /dev/null http://" .. tool.listen .. "/metrics") do
    if now() - launched > 600 or not usage(pid) then
      io.write(tool.name, " did not start within 600 s:\n", (read_file(log) or ""):sub(-2000))
      os.execute("kill -9 " .. pid .. " 2>/dev/null")
      return nil
    end
    os.execute("sleep 0.2")
  end
  local started = now()
  io.write(string.format("serving after %.1f s\n", started - launched))
  local cpu0 = usage(pid)
  local minute = { latencies = {}, cpu = cpu0, t = started }
  local all_latencies, rows = {}, {}
  local body = memory_tmpname()
  local size = 0
  local first_sent
  -- One row a minute (and one for the rest at the end).
  local function report_row(sent)
    local cpu, rss = usage(pid)
    local t = now()
    table.sort(minute.latencies)
    local row = {
      t = t - started, cpu = (cpu - minute.cpu) / (t - minute.t) * 100, rss = rss,
      p50 = percentile(minute.latencies, 0.5), p99 = percentile(minute.latencies, 0.99),
      max = minute.latencies[#minute.latencies],
      rate = (sent - (minute.sent or first_sent)) / (t - minute.t),
    }
    rows[#rows + 1] = row
    io.write(string.format("%6.0f s  CPU %5.1f%%  RSS %7.1f MB  scrape p50 %6.1f ms "
      .. "p99 %6.1f ms max %6.1f ms  %7.2f MB  %8.0f probes/s%s\n", row.t, row.cpu,
      rss / 1e6, row.p50 * 1000, row.p99 * 1000, row.max * 1000, size / 1e6, row.rate,
      minute.delay and string.format("  sends late by %.0f ms at most", minute.delay * 1000)
      or ""))
    io.flush()
    minute = { latencies = {}, cpu = cpu, t = t, sent = sent }
  end
  local sent, max_delay
  local delays = {} -- each scrape's worst lateness since the scrape before
  local spans = {} -- and the same as { from, to, delay } on the wall clock
  local last_scrape = started
  local bare_out = tool.check and start_bare_timer(seconds, n_targets)
  while now() - started < seconds do
    local tick = now()
    local out = sh_read(string.format("curl -s -o %s -w '%%{time_total} %%{size_download}' "
      .. "http://%s/metrics", body, tool.listen))
    local latency, bytes = out:match("^(%S+) (%S+)$")
    latency, size = tonumber(latency), tonumber(bytes)
    minute.latencies[#minute.latencies + 1] = latency
    all_latencies[#all_latencies + 1] = latency
    local tail
    if tool.sent_total then
      tail = read_tail(body, 1 << 16)
      sent = tonumber(tail:match("\n" .. tool.sent_total .. " (%S+)"))
    else
      tail = read_file(body)
      sent = sum_metric("\n" .. tail, tool.sent_metric)
    end
    local delay = tonumber(tail:match("\nicmprun_exporter_max_send_delay_seconds (%S+)"))
    if delay then
      delays[#delays + 1] = delay
      spans[#spans + 1] = { from = last_scrape, to = tick + latency, delay = delay }
      last_scrape = tick + latency
      minute.delay = math.max(minute.delay or 0, delay)
      max_delay = math.max(max_delay or 0, delay)
    end
    first_sent = first_sent or sent
    if tick - minute.t >= 60 then
      report_row(sent)
    end
    local rest = 1 - (now() - tick)
    if rest > 0 then os.execute(string.format("sleep %.3f", rest)) end
  end
  if #minute.latencies > 0 then
    report_row(sent)
  end
  local last_text = read_file(body)
  local cpu1, rss1 = usage(pid)
  local elapsed = now() - started
  -- Then 20 clients that ask and never read, for 20 s while the scrapes go
  -- on: the memory they cost, against the figure of one client above.
  local held_rss
  if tool.non_readers then
    local np, script = start_non_readers(tool.listen, 20, 20)
    local phase = now()
    held_rss = rss1
    while now() - phase < 20 do
      sh_read(string.format("curl -s -o /dev/null http://%s/metrics", tool.listen))
      local _, rss = usage(pid)
      held_rss = math.max(held_rss, rss or 0)
      os.execute("sleep 1")
    end
    os.execute("kill " .. np .. " 2>/dev/null")
    os.remove(script)
    io.write(string.format("20 clients that never read, 20 s: RSS %.1f MB at most, "
      .. "x%.2f the one-client figure (%.1f MB)\n", held_rss / 1e6, held_rss / rss1,
      rss1 / 1e6))
  end
  os.execute("kill " .. pid .. " 2>/dev/null; sleep 0.5; kill -9 " .. pid .. " 2>/dev/null")
  os.remove(body)
  os.remove(log)
  table.sort(all_latencies)
  local summary = {
    cpu = (cpu1 - cpu0) / elapsed * 100,
    rss_first = rows[1].rss, rss_last = rss1,
    p50 = percentile(all_latencies, 0.5), p99 = percentile(all_latencies, 0.99),
    max = all_latencies[#all_latencies], size = size,
  }
  io.write(string.format("overall: CPU %.1f%%, RSS %.1f MB at the first report and "
    .. "%.1f MB at the end (x%.2f), scrape p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
    summary.cpu, summary.rss_first / 1e6, summary.rss_last / 1e6,
    summary.rss_last / summary.rss_first, summary.p50 * 1000, summary.p99 * 1000,
    summary.max * 1000))
  if max_delay then
    table.sort(delays)
    io.write(string.format("  probes sent late by %.1f ms at most (schedule kept while "
      .. "scraped); each second's worst: median %.1f ms, p90 %.1f ms\n", max_delay * 1000,
      percentile(delays, 0.5) * 1000, percentile(delays, 0.9) * 1000))
  end
  local bare_seconds = bare_out and bare_timer_seconds(bare_out)
  if bare_seconds and #bare_seconds > 0 then
    local bare = {}
    for i, second in ipairs(bare_seconds) do bare[i] = second.worst end
    local bare_max = math.max(table.unpack(bare))
    table.sort(bare)
    io.write(string.format("  a bare libuv loop beside it, same schedule, clock and slice: late by "
      .. "%.1f ms at most; each second's worst: median %.1f ms, p90 %.1f ms\n",
      bare_max * 1000, percentile(bare, 0.5) * 1000, percentile(bare, 0.9) * 1000))
    if max_delay then
      local function ratio(a, b) return b > 0 and string.format("x%.1f", a / b) or "n/a" end
      io.write(string.format("  exporter / bare loop: worst lateness %s, median second %s, "
        .. "p90 second %s\n", ratio(max_delay, bare_max),
        ratio(percentile(delays, 0.5), percentile(bare, 0.5)),
        ratio(percentile(delays, 0.9), percentile(bare, 0.9))))
      -- Whether the machine held both at once: the exporter's five latest
      -- intervals between scrapes, and the bare loop's worst in each.
      table.sort(spans, function(a, b) return a.delay > b.delay end)
      local latest = {}
      for i = 1, math.min(5, #spans) do
        latest[i] = string.format("%.1f (%.1f)", spans[i].delay * 1000,
          bare_worst_within(bare_seconds, spans[i].from, spans[i].to) * 1000)
      end
      io.write("  the exporter's latest seconds, ms (the bare loop's worst in the same "
        .. "interval): ", table.concat(latest, ", "), "\n")
    end
  end
  if tool.check then
    for _, line in ipairs(check_counters(last_text, n_targets)) do io.write("  ", line, "\n") end
  end
  return summary
end

local function icmprun_tool(config)
  return { name = "icmprun exporter", listen = "127.0.0.1:19374", check = true,
    non_readers = true,
    sent_total = "icmprun_engine_sent_total",
    cmd = string.format("%s/icmprun exporter --listen 127.0.0.1:19374 --config %s", build,
      config) }
end

-- The soak.
local config = os.tmpname()
write_config(config, soak_targets)
run(icmprun_tool(config), soak_targets, soak_seconds)

-- Side by side with smokeping_prober; Debian names the command
-- prometheus-smokeping-prober.
local peer_cmd = sh_read("command -v prometheus-smokeping-prober || command -v smokeping_prober")
  :match("%S+")
if not peer_cmd or peer_seconds <= 0 then
  io.write("\nsmokeping_prober is not installed: no peer to compare with\n")
  os.remove(config)
  return
end
write_config(config, peer_targets)
local mine = run(icmprun_tool(config), peer_targets, peer_seconds)
local peer = run({ name = "smokeping_prober", listen = "127.0.0.1:19375",
  sent_metric = "smokeping_requests_total{",
  cmd = string.format("%s --web.listen-address=127.0.0.1:19375 --config.file=%s", peer_cmd,
    config) }, peer_targets, peer_seconds)
os.remove(config)
if mine and peer then
  io.write(string.format("\nsmokeping_prober / icmprun, %d targets: CPU x%.1f, final RSS "
    .. "x%.1f, scrape p50 x%.1f, p99 x%.1f (above 1: icmprun uses less)\n", peer_targets,
    peer.cpu / mine.cpu, peer.rss_last / mine.rss_last, peer.p50 / mine.p50,
    peer.p99 / mine.p99))
end
