-- SPDX-License-Identifier: MIT

--- A sweep over several worker threads (opts.workers): the same results as
-- one worker's, every probe ending in exactly one result, even when a
-- worker breaks, and break/stop with probes in flight in several workers.
local icmprun = require "icmprun"
local cli = require "cli"

-- Addresses of 2001:db8:beef::/64 are routed to the test network's silent
-- host: their probes stay in flight until their timeout.

--- Sweeps targets with n workers: the set of (address or target, n) -> status,
-- how many results, and how many came from each worker.
local function sweep(targets, n, opts)
  local o = { rate = 0, timeout = 500, workers = n }
  for k, v in pairs(opts or {}) do o[k] = v end
  local set, total, per_worker = {}, 0, {}
  for r in icmprun.sweep(targets, o) do
    local key = (r.addr or r.target) .. "#" .. tostring(r.n)
    assert.is_nil(set[key], "two results for " .. key)
    set[key] = r.status
    total = total + 1
    local w = r.worker or 0
    per_worker[w] = (per_worker[w] or 0) + 1
  end
  return set, total, per_worker
end

--- Waits (on the loop) until no worker thread runs and every probe counted
-- by icmprun.counters() has its result; returns the counters.
local function settled_stats()
  local s
  for _ = 1, 500 do
    s = icmprun.counters()
    if s.workers == 0 and s.pending == 0 then
      return s
    end
    icmprun.sleep(10)
  end
  return s
end

describe("sweep workers", function()
  local targets = { "127.0.0.0/24", "127.0.1.1", "127.0.1.2", "::1",
    "no-such-host.invalid", "127.0.2.0-127.0.2.9" }

  it("gives the same results as one worker, as sets of (address, n)", function()
    local one, one_total = sweep(targets, 1, { count = 2, interval = 20 })
    -- 256 + 2 + 1 + 10 addresses, two probes each, and the name's one result.
    assert.equal(269 * 2 + 1, one_total)
    assert.equal("error", one["no-such-host.invalid#nil"])
    for _, n in ipairs({ 2, 3 }) do
      local set, total, per_worker = sweep(targets, n, { count = 2, interval = 20 })
      assert.equal(one_total, total)
      assert.same(one, set)
      -- Every worker took a share (at least the chunk of 64 addresses it
      -- starts with), and only the name's failure has none.
      assert.equal(1, per_worker[0])
      for w = 1, n do
        assert.is_true((per_worker[w] or 0) >= 2 * 64, "worker " .. w .. " idle")
      end
      assert.is_nil(per_worker[n + 1])
    end
  end)

  it("takes a random order with a seed: the same union for any number", function()
    -- With a shard of the targets, which addresses are probed depends on the
    -- order; every number of workers must probe the same ones.
    local opts = { order = "random", seed = 99, shard = { 1, 3 } }
    local one, one_total = sweep("127.0.0.0/23", 1, opts)
    assert.equal(171, one_total)
    for _, n in ipairs({ 2, 3, 4 }) do
      local set, total = sweep("127.0.0.0/23", n, opts)
      assert.equal(one_total, total)
      assert.same(one, set)
    end
  end)

  it("resends after timeouts in each worker as one worker does", function()
    local results = {}
    for r in icmprun.sweep({ "127.0.0.0/28", "2001:db8:beef::/124" }, { workers = 2,
      rate = 0, timeout = 50, retries = 2, backoff = 1 }) do
      local key = r.addr
      assert.is_nil(results[key], "two results for " .. key)
      results[key] = r.status .. " " .. r.attempts
    end
    for i = 0, 15 do
      assert.equal("reply 1", results["127.0.0." .. i])
      local silent = i == 0 and "2001:db8:beef::" or string.format("2001:db8:beef::%x", i)
      assert.equal("timeout 3", results[silent])
    end
  end)

  it("keeps to the rate as a total, divided among the workers", function()
    -- 30 addresses at 100 a second: each of 2 workers sends 15 at 50 a
    -- second, one at once and then one every 20 ms, so the last leaves
    -- 280 ms after the first (each at the full rate would take 140 ms).
    local uv = require "luv"
    local first, last
    for r in icmprun.sweep("127.0.0.1-127.0.0.30", { workers = 2, rate = 100,
      timeout = 500 }) do
      assert.equal("reply", r.status)
      first = first or uv.hrtime()
      last = uv.hrtime()
    end
    assert.is_true((last - first) / 1e6 >= 250, (last - first) / 1e6 .. " ms")
  end)

  it("sums the workers' engine counters into icmprun.counters()", function()
    local before = settled_stats()
    local _, total = sweep("127.0.0.0/24", 2, { count = 3, interval = 10 })
    local after = settled_stats()
    assert.equal(0, after.workers)
    assert.equal(after.sent + after.cancelled + after.send_errors, after.results)
    assert.equal(768, total)
    assert.equal(768, after.sent - before.sent)
    assert.equal(768, after.replies - before.replies)
    assert.equal(768, after.results - before.results)
  end)

  it("cancels probes in flight in every worker on stop(), each as one result", function()
    -- Each worker starts with a chunk of 64 addresses, silent ones first
    -- and then loopback ones: once all 64 loopback addresses have answered,
    -- each worker has silent probes in flight.
    local it, s = icmprun.sweep({
      "2001:db8:beef::-2001:db8:beef::2a", "127.0.0.0-127.0.0.20",
      "2001:db8:beef::2b-2001:db8:beef::55", "127.0.0.21-127.0.0.41",
      "2001:db8:beef::56-2001:db8:beef::7f", "127.0.0.42-127.0.0.63",
    }, { workers = 3, rate = 0, timeout = 30000 })
    local replies, cancelled, by_worker, seen = 0, 0, {}, {}
    for r in it, s, nil, s do
      local key = r.addr .. "#" .. r.n
      assert.is_nil(seen[key], "two results for " .. key)
      seen[key] = true
      if r.status == "reply" then
        replies = replies + 1
        if replies == 64 then s:stop() end
      else
        assert.equal("error", r.status)
        assert.equal("ECANCELED", r.code)
        cancelled = cancelled + 1
        by_worker[r.worker] = true
      end
    end
    assert.equal(64, replies)
    assert.equal(128, cancelled)
    assert.is_true(by_worker[1] and by_worker[2] and by_worker[3])
    local st = settled_stats()
    assert.equal(0, st.workers)
    assert.equal(st.sent + st.cancelled + st.send_errors, st.results)
  end)

  it("ends probes in flight in several workers on break", function()
    local before = settled_stats()
    local replies, from = 0, {}
    -- Each worker starts with a chunk of 64 addresses, 54 silent ones and
    -- then 10 loopback ones: once both have had replies, both have their
    -- silent probes in flight.
    for r in icmprun.sweep({ "2001:db8:beef::-2001:db8:beef::35", "127.0.0.0-127.0.0.9",
      "2001:db8:beef::36-2001:db8:beef::6b", "127.0.0.10-127.0.0.19" }, { workers = 2,
      rate = 0, timeout = 30000 }) do
      if r.status == "reply" then
        replies = replies + 1
        from[r.worker] = true
      end
      if from[1] and from[2] then break end
    end
    local after = settled_stats()
    assert.equal(0, after.workers)
    -- Every probe sent ended in one result, and the silent ones (every one
    -- of them was in flight) ended cancelled: neither reply nor timeout.
    assert.equal(after.sent + after.cancelled + after.send_errors, after.results)
    assert.is_true(after.sent - before.sent >= 108 + replies)
    assert.equal(after.sent - before.sent, after.results - before.results)
    assert.equal(0, after.timeouts - before.timeouts)
    assert.is_true(after.results - after.replies - (before.results - before.replies) >= 108)
    -- And the runtime goes on: another sweep with workers works.
    local _, total = sweep("127.0.0.0/28", 2)
    assert.equal(16, total)
  end)

  it("reports a broken worker's unfinished probes as error results", function()
    -- The test hook: worker 2's sends fail with EIO after 30 probes.
    local r = cli.sh("ICMPRUN_TEST_WORKER_FAIL=2:30 " .. cli.icmprun_cmdline({
      cli.temp_file([[
local icmprun = require "icmprun"
local seen, counts = {}, {}
for r in icmprun.sweep("127.0.0.0/23", { workers = 3, rate = 0, count = 2,
  interval = 5, timeout = 500 }) do
  local key = r.addr .. "#" .. r.n
  assert(not seen[key], "two results for " .. key)
  seen[key] = true
  local k = r.worker .. " " .. r.status .. " " .. tostring(r.code)
  counts[k] = (counts[k] or 0) + 1
end
for k, v in pairs(counts) do print(k, v) end
]], ".lua") }))
    assert.equal(0, r.code, r.stderr)
    local counts = {}
    for k, v in r.stdout:gmatch("([^\t\n]+)\t(%d+)") do counts[k] = tonumber(v) end
    -- 512 addresses, 2 probes each. Worker 2 holds the chunk of 64
    -- addresses it starts with, 128 probes, when its 31st send fails: 30
    -- sent (answered, or cancelled while queued), every other one an EIO
    -- error. It claims no more: workers 1 and 3, unharmed, take the other
    -- 448 addresses between them (at least their own first chunks).
    assert.is_true(counts["1 reply nil"] >= 128)
    assert.is_true(counts["3 reply nil"] >= 128)
    assert.equal(896, counts["1 reply nil"] + counts["3 reply nil"])
    local replies = counts["2 reply nil"] or 0
    local cancelled = counts["2 error ECANCELED"] or 0
    assert.equal(98, counts["2 error EIO"])
    assert.equal(30, replies + cancelled)
    local n = 0
    for _ in pairs(counts) do n = n + 1 end
    assert.equal(3 + (replies > 0 and 1 or 0) + (cancelled > 0 and 1 or 0), n)
  end)

  it("reports a worker whose sockets cannot open as error results", function()
    -- A worker that breaks before its first probe: the chunk of 64
    -- addresses it starts with (the other worker takes the rest).
    local r = cli.sh("ICMPRUN_TEST_WORKER_FAIL=1:0 " .. cli.icmprun_cmdline({
      cli.temp_file([[
local icmprun = require "icmprun"
local n, errors = 0, 0
for r in icmprun.sweep({ "127.0.0.1", "127.0.0.2", "127.0.0.0/25" }, { workers = 2,
  rate = 0 }) do
  n = n + 1
  if r.worker == 1 then
    assert(r.status == "error" and r.code == "EIO", r.status)
    errors = errors + 1
  end
end
print(n, errors)
]], ".lua") }))
    assert.equal(0, r.code, r.stderr)
    assert.equal("130\t64\n", r.stdout)
  end)

  it("ends its threads when a script leaves a sweep running, in icmprun and in Lua", function()
    -- An error in the loop body closes the sweep while its workers run, and
    -- the script ends at once; a script that fails while a sweep has probes
    -- in flight in three workers ends the run. Neither may crash or hang.
    local closed = [[
local ok, err = pcall(function()
  for _ in icmprun.sweep("127.0.0.0/16", { workers = 2, rate = 0 }) do error("boom") end
end)
print(ok, (err:gsub("^.*: ", "")))
]]
    local failed = [[
local it, s = icmprun.sweep("2001:db8:beef::/120", { workers = 3, rate = 0,
  timeout = 60000 })
icmprun.spawn(function() it(s) end)
icmprun.sleep(100)
print(icmprun.counters().workers)
error("the end")
]]
    local require_line = 'local icmprun = require "icmprun"\n'
    for _, run in ipairs({
      function(body) return cli.icmprun_script(require_line .. body) end,
      function(body)
        return cli.lua_script(require_line .. "icmprun.run(function()\n" .. body .. "end)\n")
      end,
    }) do
      local r = run(closed)
      assert.equal(0, r.code, r.stderr)
      assert.equal("false\tboom\n", r.stdout)
      r = run(failed)
      assert.equal(1, r.code, r.stderr)
      assert.equal("3\n", r.stdout)
      assert.matches("the end", r.stderr)
    end
  end)

  it("gives each probe an error result with its code where no socket opens, as one worker does",
    function()
    -- A namespace where ping sockets are refused: a setting every worker
    -- meets. Each probe ends in one error result with the code (the error
    -- contract: no raise), and icmprun sweep says why once, with the fix.
    local script = cli.temp_file([[
local icmprun = require "icmprun"
local n = 0
local ok, err = pcall(function()
  for r in icmprun.sweep("127.0.0.0/29", { workers = 2, rate = 0 }) do
    assert(r.status == "error" and r.code == "EACCES", r.status)
    n = n + 1
  end
end)
print(ok, n, err)
]], ".lua")
    local inner = table.concat({ "set -e", "ip link set lo up",
      'sysctl -qw net.ipv4.ping_group_range="1 0"',
      "exec env ICMPRUN_SOCKET=dgram " .. cli.icmprun_cmdline({ script }) }, "\n")
    local r = cli.sh("unshare --net sh -c " .. cli.quote(inner))
    os.remove(script)
    assert.equal(0, r.code, r.stderr)
    assert.equal("true\t8\tnil\n", r.stdout)
    local inner_cli = table.concat({ "set -e", "ip link set lo up",
      'sysctl -qw net.ipv4.ping_group_range="1 0"',
      "exec env ICMPRUN_SOCKET=dgram " .. cli.icmprun_cmdline({ "sweep", "-j", "2", "-r",
        "0", "127.0.0.0/29" }) }, "\n")
    local c = cli.sh("unshare --net sh -c " .. cli.quote(inner_cli))
    assert.equal(1, c.code, c.stderr)
    local _, told = c.stderr:gsub("cannot open an IPv4 ICMP datagram socket[^\n]*ping_group_range",
      "")
    assert.equal(1, told, c.stderr)
  end)

  it("checks the option", function()
    assert.has_error(function() icmprun.sweep("127.0.0.1", { workers = 0 }) end)
    assert.has_error(function() icmprun.sweep("127.0.0.1", { workers = 1.5 }) end)
    assert.has_error(function() icmprun.sweep("127.0.0.1", { workers = "all" }) end)
    local _, total = sweep("127.0.0.0/29", "auto")
    assert.equal(8, total)
  end)
end)

describe("--jobs", function()
  --- The lines of a command's standard output, sorted.
  local function sorted_lines(args)
    local r = cli.icmprun_run(args)
    local lines = {}
    for line in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = line end
    table.sort(lines)
    return r, lines
  end

  it("sweeps with worker threads in `icmprun sweep -j/--jobs`", function()
    local r1, one = sorted_lines({ "sweep", "-r", "0", "127.0.0.0/24", "::1" })
    assert.equal(0, r1.code, r1.stderr)
    assert.equal(257, #one)
    for _, jobs in ipairs({ { "-j", "2" }, { "--jobs", "3" }, { "--jobs", "auto" } }) do
      local r, lines = sorted_lines({ "sweep", "-r", "0", jobs[1], jobs[2],
        "127.0.0.0/24", "::1" })
      assert.equal(0, r.code, r.stderr)
      assert.same(one, lines)
    end
    local r = cli.icmprun_run({ "sweep", "-j", "0", "127.0.0.1" })
    assert.equal(2, r.code)
    assert.matches("option '%-%-jobs': invalid argument '0'", r.stderr)
  end)

  it("takes -j/--jobs in `icmprun fping` for -g and target lists", function()
    local r1, one = sorted_lines({ "fping", "-i", "0", "-g", "127.0.0.0/25" })
    assert.equal(0, r1.code, r1.stderr)
    assert.equal(126, #one)
    local r2, two = sorted_lines({ "fping", "-i", "0", "-j", "2", "-g", "127.0.0.0/25" })
    assert.equal(0, r2.code, r2.stderr)
    assert.same(one, two)
    local r3, three = sorted_lines({ "fping", "--jobs=3", "-c", "2", "-q", "-i", "0",
      "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4" })
    assert.equal(0, r3.code, r3.stderr)
    assert.equal(0, #three)
    assert.equal(4, select(2, r3.stderr:gsub("xmt/rcv/%%loss = 2/2/0%%", "")))
    local bad = cli.icmprun_run({ "fping", "-j", "x", "127.0.0.1" })
    assert.is_true(bad.code ~= 0)
    assert.matches("%-j/%-%-jobs must be a number from 1 to 256 or auto, not x", bad.stderr)
  end)
end)
