-- SPDX-License-Identifier: MIT

--- campaign.lua: probe the targets of a file in waves; JSON results and a table.
--
-- Shows a planned campaign: targets read from a file (one per line, `#`
-- starts a comment), probed in waves on a fixed schedule, each wave a task
-- of its own (icmprun.spawn), so a slow wave overlaps the next instead of
-- delaying it. Every result goes to a JSON lines file as it comes
-- (icmprun.report.jsonl), with the campaign's own field `wave`, after a
-- first line `{"type":"campaign", ...}` whose `time` is when it started (the
-- results' `time` is jsonl's: when each came). At the end a table gives
-- each target's sent/received/loss/min/avg/max, and a total row merged from
-- them (icmprun.stats' merge).
--
--   icmprun examples/campaign.lua --waves 3 --wave-interval 500 targets.txt
--   icmprun examples/campaign.lua --count 5 --interval 100 -o out.jsonl targets.txt
--
-- where targets.txt holds lines such as "127.0.0.1", "::1  # loopback",
-- "127.0.1.0/30" or "localhost".
--
-- Exit status: 0 if any target answered, 1 if none did, 2 on a usage error
-- (a bad option, a file that cannot be read or written, a malformed target).
local icmprun = require "icmprun"
local cli = require "icmprun.cli"
local jsonl = require "icmprun.report.jsonl"
local stats = require "icmprun.stats"

local parser = cli.parser("campaign.lua", "Probe the targets listed in a file in waves, "
  .. "write every result as a JSON line and print a table per target.")
parser:help_max_width(80)
parser:argument("file", "Targets, one per line; '#' starts a comment.")
parser:option("--waves", "How many waves.", "3")
  :convert(function(text) return math.tointeger(tonumber(text)) end)
parser:option("--wave-interval", "Milliseconds from the start of a wave to the next (or 2s, "
  .. "1m...).", "1000"):convert(cli.duration_in("--wave-interval", "ms", 0, icmprun.limits.max_interval))
parser:option("--count", "Probes per address in each wave.", "1")
  :convert(function(text) return math.tointeger(tonumber(text)) end)
parser:option("--interval", "Milliseconds between the probes to one address in a wave (or "
  .. "1s...).", "100"):convert(cli.duration_in("--interval", "ms", 0, icmprun.limits.max_interval))
parser:option("--timeout", "Milliseconds to wait for each reply (or 2s...).", "1000")
  :convert(cli.duration_in("--timeout", "ms", 1, icmprun.limits.max_timeout))
parser:option("--rate", "Probes per second in each wave (0: as fast as possible).", "1000")
  :convert(tonumber)
parser:option("-o --output", "The JSON lines file.", "campaign.jsonl")

local NAME = "campaign.lua"
local args, status = cli.handle(parser, arg)
if not args then
  os.exit(status)
end
if args.waves < 1 or args.wave_interval < 0 then
  os.exit(cli.fail(NAME, "--waves must be >= 1 and --wave-interval >= 0", 2))
end

--- Reads the targets of a file: one per line, blanks, repeats and `#`
-- comments skipped. Returns the targets and their line numbers, or nil and a message.
local function read_targets(path)
  local fh, err = io.open(path, "r")
  if not fh then
    return nil, err
  end
  local targets, lines, seen = {}, {}, {}
  local number = 0
  for line in fh:lines() do
    number = number + 1
    local target = line:gsub("#.*", ""):match("^%s*(.-)%s*$")
    -- A target listed twice is probed once: its row in the table is one.
    if target ~= "" and not seen[target] then
      seen[target] = true
      targets[#targets + 1] = target
      lines[#targets] = number
    end
  end
  fh:close()
  if #targets == 0 then
    return nil, path .. ": no targets"
  end
  return targets, lines
end

local targets, lines = read_targets(args.file)
if not targets then
  os.exit(cli.fail(NAME, lines, 2))
end
local opts = {
  count = args.count, interval = args.interval, timeout = args.timeout, rate = args.rate,
}
-- Malformed targets raise at the call, before anything is sent: check each
-- now, so that a typo on line 40 does not end the campaign in wave 2, and
-- name its line (by which call raised, never by reading the message).
for i, t in ipairs(targets) do
  local ok, err, checked = pcall(icmprun.sweep, t, opts)
  if not ok then
    -- Lua's "bad argument #1 to 'sweep' (...)": show what is in brackets.
    local message = tostring(err):match("%((.*)%)$") or tostring(err)
    os.exit(cli.fail(NAME, string.format("%s:%d: %s", args.file, lines[i], message), 2))
  end
  checked:close() -- it sent nothing: a sweep sends as it is iterated
end
local out, open_err = io.open(args.output, "w")
if not out then
  os.exit(cli.fail(NAME, open_err, 2))
end

local writer = jsonl.new(out)
local per_target = {} -- target text -> stats over all its addresses and waves
for _, t in ipairs(targets) do
  per_target[t] = stats.new()
end
-- The campaign's first line: its plan, and its start in jsonl's `time`.
writer:write({ type = "campaign", waves = args.waves, wave_interval_ms = args.wave_interval,
  targets = #targets, time = writer:now() })
local started = icmprun.now()

local results = 0

-- The first thing that makes the campaign fail: an error a wave raised, or a
-- target name that did not resolve.
local failure

--- One wave: waits for its start, then sweeps every target.
local function wave(k)
  icmprun.sleep(math.max(0, started + (k - 1) * args.wave_interval - icmprun.now()))
  for r in icmprun.sweep(targets, opts) do
    if r.addr == nil then
      -- A name that did not resolve: the campaign reports it and fails.
      failure = failure or string.format("target '%s': %s", r.target, r.err)
    end
    per_target[r.target]:add(r)
    local record = jsonl.result_record(r, writer:now())
    record.wave = k
    writer:write(record)
    results = results + 1
  end
end

-- An error in a task ends the whole run, so each wave catches its own and
-- the campaign reports the first.
local waves = {}
for k = 1, args.waves do
  waves[k] = icmprun.spawn(function()
    local done, why = pcall(wave, k)
    if not done then
      failure = failure or why
    end
  end)
end
for _, task in ipairs(waves) do
  task:join()
end
writer:close()
out:close()
if failure then
  io.stderr:write(NAME, ": ", (tostring(failure):gsub("^[^\n]-:%d+: ", "")), "\n")
  os.exit(2)
end

local total = stats.new()
local width = 6
for _, t in ipairs(targets) do
  width = math.max(width, #t)
end
local row = "%-" .. width .. "s %6s %6s %7s %9s %9s %9s"
print(string.format(row, "target", "sent", "recv", "loss", "min", "avg", "max"))
local function print_row(name, s)
  local min, avg, max = s:summary()
  local function ms(x) return x and string.format("%.3f", x) or "-" end
  print(string.format(row, name, s.sent, s.received, string.format("%.1f%%", s:loss()),
    ms(min), ms(avg), ms(max)))
end
for _, t in ipairs(targets) do
  print_row(t, per_target[t])
  total:merge(per_target[t])
end
print_row("total", total)
print(string.format("%d waves, %d results in %s, %.2f s", args.waves, results,
  args.output, (icmprun.now() - started) / 1000))
os.exit(total.received > 0 and 0 or 1)
