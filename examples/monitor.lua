-- SPDX-License-Identifier: MIT

--- monitor.lua: ping a list of targets every N seconds until Ctrl-C.
--
-- Shows a long-running campaign: rounds on a fixed schedule (a slow round
-- does not shift the next ones), statistics per address that grow round by
-- round (icmprun.stats), two live outputs, and a summary when the operator
-- stops it (icmprun.on_signal: Ctrl-C runs a task that prints and exits 130).
--
-- * `--prometheus FILE` rewrites FILE after every round with the Prometheus
--   text of the counts so far (icmprun.report.prometheus), written to a
--   temporary file and renamed, so a scraper (node_exporter's textfile
--   collector, say) never reads half a file;
-- * `--json` writes every result to stdout as a JSON line as it comes, and
--   the summary as JSON summary lines (icmprun.report.jsonl);
-- * otherwise each round prints one line, and the summary is a table.
--
--   icmprun examples/monitor.lua --interval 5 127.0.0.1 ::1
--   icmprun examples/monitor.lua --prometheus /tmp/icmprun.prom 127.0.0.0/30
--   icmprun examples/monitor.lua --json --rounds 3 --interval 0.5 ::1
--
-- Exit status: 0 after --rounds rounds, 130 after Ctrl-C, 2 on a usage
-- error (a bad option, a malformed target, a file that cannot be written).
local icmprun = require "icmprun"
local cli = require "icmprun.cli"
local jsonl = require "icmprun.report.jsonl"
local prometheus = require "icmprun.report.prometheus"
local stats = require "icmprun.stats"

local parser = cli.parser("monitor.lua", "Ping targets every few seconds until Ctrl-C; "
  .. "write Prometheus text or JSON lines; summarise per address at the end.")
parser:help_max_width(80)
parser:argument("targets", "Addresses, blocks or host names."):args("+")
parser:option("--interval", "Seconds from the start of a round to the next (or 500ms, 1m...).",
  "10"):convert(cli.duration_in("--interval", "s", 0.001, 86400))
parser:option("--rounds", "Stop after this many rounds (default: until Ctrl-C).")
  :convert(function(text) return math.tointeger(tonumber(text)) end)
parser:option("--timeout", "Milliseconds to wait for each reply (or 2s...).", "1000")
  :convert(cli.duration_in("--timeout", "ms", 1, icmprun.limits.max_timeout))
parser:option("--prometheus", "Rewrite this file with Prometheus text after each round.")
parser:flag("--json", "Write every result, and the summary, as JSON lines to stdout.")

local args, status = cli.handle(parser, arg)
if not args then
  os.exit(status)
end
if args.interval <= 0 or (args.rounds and args.rounds < 1) then
  os.exit(cli.fail("monitor.lua", "--interval must be > 0 and --rounds >= 1", 2))
end

-- Statistics per address, in the order the addresses first answered or
-- failed; `names` keeps the target an address came from when it differs
-- (a block, a host name), for the Prometheus `host` label.
local per_addr, order, names = {}, {}, {}
local json = args.json and jsonl.new(io.stdout, { flush = true })
local started = icmprun.now()
local rounds_done = 0

local function stats_of(r)
  -- A name that did not resolve has no address: its row is the name.
  local addr = r.addr or r.target
  local s = per_addr[addr]
  if not s then
    s = stats.new()
    per_addr[addr] = s
    order[#order + 1] = addr
    if r.target ~= addr then
      names[addr] = r.target
    end
  end
  return s
end

-- Writes the Prometheus text of everything so far, replacing the file at
-- once: readers see the previous round's file or this one, never a mix.
local function write_prometheus()
  local entries = {}
  for i, addr in ipairs(order) do
    -- Labelled as the exporter labels its series: the name as given, the
    -- address probed.
    entries[i] = { host = names[addr] or addr, ip = addr, stats = per_addr[addr] }
  end
  local text = prometheus.render(entries, { engine = icmprun.counters() })
  local tmp = args.prometheus .. ".tmp"
  local fh, err = io.open(tmp, "w")
  if not fh then
    return nil, err
  end
  fh:write(text)
  fh:close()
  return os.rename(tmp, args.prometheus)
end

local function print_summary()
  if json then
    for _, addr in ipairs(order) do
      json:summary(addr, per_addr[addr])
    end
    json:close()
    return
  end
  print(string.format("--- %d rounds in %.1f s ---", rounds_done,
    (icmprun.now() - started) / 1000))
  print(string.format("%-39s %5s %5s %6s %9s %9s %9s %9s", "address", "sent", "recv", "loss",
    "min", "avg", "max", "mdev"))
  for _, addr in ipairs(order) do
    local s = per_addr[addr]
    local min, avg, max, mdev = s:summary()
    local function ms(x) return x and string.format("%.3f", x) or "-" end
    print(string.format("%-39s %5d %5d %5.1f%% %9s %9s %9s %9s", addr, s.sent, s.received,
      s:loss(), ms(min), ms(avg), ms(max), ms(mdev)))
  end
  io.stdout:flush()
end

-- Ctrl-C: whatever round is under way, the summary covers the rounds so far
-- and the results of this one that are known.
icmprun.on_signal("INT", function()
  print_summary()
  os.exit(130)
end)

--- Runs one round: one probe to every address, results recorded as they come.
local function round(n)
  local sent, received = 0, 0
  for r in icmprun.sweep(args.targets, { timeout = args.timeout }) do
    stats_of(r):add(r)
    sent = sent + 1
    if r.status == "reply" then
      received = received + 1
    end
    if json then
      json:result(r)
    end
  end
  rounds_done = n
  if args.prometheus then
    local ok, err = write_prometheus()
    if not ok then
      error("cannot write " .. args.prometheus .. ": " .. tostring(err), 0)
    end
  end
  if not json then
    print(string.format("round %d: %d/%d answered", n, received, sent))
    io.stdout:flush()
  end
end

local ok, err = pcall(function()
  local n = 0
  while not args.rounds or n < args.rounds do
    n = n + 1
    round(n)
    if not args.rounds or n < args.rounds then
      -- Rounds start on a fixed schedule, whatever the last one took.
      local next_start = started + n * args.interval * 1000
      icmprun.sleep(math.max(0, next_start - icmprun.now()))
    end
  end
end)
if not ok then
  -- A malformed target or an unwritable file: the first round says so.
  local message = tostring(err):gsub("^[^\n]-:%d+: ", "")
  message = message:match("^bad argument #%d+ to '[^']*' %((.*)%)$") or message
  io.stderr:write("monitor.lua: ", message, "\n")
  os.exit(2)
end
icmprun.on_signal("INT", nil)
print_summary()
