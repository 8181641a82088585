-- SPDX-License-Identifier: MIT

--- Report formats: JSON lines parsed back with cjson, CSV parsed back, and
-- Prometheus text checked line by line against the exposition format.
local cjson = require "cjson"
local stats = require "icmprun.stats"
local jsonl = require "icmprun.report.jsonl"
local csv = require "icmprun.report.csv"
local prometheus = require "icmprun.report.prometheus"

--- A file handle in memory: `write` and `flush` as io's, the text in `text()`.
local function memory_file()
  local parts = {}
  local f = { flushes = 0 }
  function f:write(...)
    for i = 1, select("#", ...) do
      parts[#parts + 1] = tostring((select(i, ...)))
    end
    return self
  end
  function f:flush()
    self.flushes = self.flushes + 1
    return self
  end
  function f.text()
    return table.concat(parts)
  end
  return f
end

--- A handle whose writes fail as a full disk's do.
local function full_disk()
  return {
    write = function() return nil, "No space left on device", 28 end,
    flush = function() return nil, "No space left on device", 28 end,
  }
end

--- The lines of a text that ends with a newline.
local function lines_of(text)
  assert.equal("\n", text:sub(-1), "the text must end with a newline")
  local out = {}
  for line in text:gmatch("([^\n]*)\n") do
    out[#out + 1] = line
  end
  return out
end

-- Results of every kind, as icmprun.ping and icmprun.sweep return them.
local RESULTS = {
  { status = "reply", target = "127.0.0.0/30", addr = "127.0.0.1", n = 1, rtt = 0.0123456789,
    ttl = 64, seq = 1, bytes = 64, from = "127.0.0.1", attempts = 1 },
  { status = "timeout", target = "127.0.0.0/30", addr = "127.0.0.2", n = 1, seq = 2, attempts = 3 },
  { status = "timeout", target = "192.0.2.41", addr = "192.0.2.41", n = 1, seq = 5,
    err = "the answer's payload differs from what was sent at byte 28", code = "EBADMSG",
    corrupt_offset = 28 },
  { status = "unreachable", target = "192.0.2.9", addr = "192.0.2.9", n = 2, seq = 3,
    from = "192.0.2.1", icmp_type = 3, icmp_code = 1, rtt = 0.25, code = "EHOSTUNREACH",
    err = "Destination Host Unreachable" },
  { status = "ttl_exceeded", target = "2001:db8::9", addr = "2001:db8::9", n = 1, seq = 4,
    from = "2001:db8::1", icmp_type = 3, icmp_code = 0, rtt = 0.5, code = "EHOSTUNREACH" },
  { status = "error", target = "::1", addr = "::1", n = 1,
    err = 'sendto: "bad", worse\nand a line', code = "EINVAL" },
}

describe("icmprun.report.jsonl", function()
  local function written(fn, opts)
    local f = memory_file()
    local w = jsonl.new(f, opts or { clock = function() return 1700000000.25 end })
    fn(w)
    assert.is_true(w:close())
    return lines_of(f.text()), f
  end

  it("writes one parseable line per result, with every field", function()
    local lines = written(function(w)
      for _, r in ipairs(RESULTS) do
        assert.is_true(w:result(r))
      end
    end)
    assert.equal(#RESULTS, #lines)
    for i, line in ipairs(lines) do
      assert.matches('^{"type":"result",', line)
      local obj = cjson.decode(line)
      local r = RESULTS[i]
      assert.equal("result", obj.type)
      assert.equal(1700000000.25, obj.time)
      local expected = {
        type = "result", time = 1700000000.25, target = r.target, addr = r.addr, n = r.n,
        status = r.status, rtt_ms = r.rtt, ttl = r.ttl, seq = r.seq, bytes = r.bytes,
        from = r.from, err = r.err, code = r.code, icmp_type = r.icmp_type,
        icmp_code = r.icmp_code, corrupt_offset = r.corrupt_offset, attempts = r.attempts,
      }
      assert.same(expected, obj)
    end
  end)

  it("keeps an RTT exactly and leaves absent fields out", function()
    local lines = written(function(w)
      w:result({ status = "reply", addr = "::1", rtt = 0.1 + 0.2 })
      w:result({ status = "timeout", addr = "::1" })
    end)
    assert.equal(0.1 + 0.2, cjson.decode(lines[1]).rtt_ms)
    assert.equal('{"type":"result","addr":"::1","status":"timeout","time":1700000000.25}', lines[2])
  end)

  it("never writes infinities or NaN", function()
    local lines = written(function(w)
      w:result({ status = "reply", addr = "::1", rtt = 0 / 0 })
      w:result({ status = "reply", addr = "::1", rtt = math.huge })
      w:summary("empty", stats.new())
      w:write({ type = "custom", list = { 1, -math.huge, 3 }, x = 0 / 0 })
    end)
    for _, line in ipairs(lines) do
      assert.is_nil(line:lower():find("inf"), line)
      assert.is_nil(line:lower():find("nan"), line)
      cjson.decode(line)
    end
    assert.is_nil(cjson.decode(lines[1]).rtt_ms)
    assert.same({ 1, cjson.null, 3 }, cjson.decode(lines[4]).list)
  end)

  it("writes a summary with the statistics' fields", function()
    local s = stats.new()
    for _, rtt in ipairs({ 1, 2, 3, 4 }) do
      s:add({ status = "reply", rtt = rtt })
    end
    s:add({ status = "timeout" })
    s:add_counters({ duplicates = 2, late = 1 })
    local lines = written(function(w)
      assert.is_true(w:summary("localhost", s))
      assert.is_true(w:summary(nil, stats.new()))
    end)
    assert.matches('^{"type":"summary","target":"localhost",', lines[1])
    local obj = cjson.decode(lines[1])
    assert.equal("summary", obj.type)
    assert.equal("localhost", obj.target)
    assert.equal(5, obj.sent)
    assert.equal(4, obj.received)
    assert.equal(20, obj.loss_pct)
    assert.equal(1, obj.min_ms)
    assert.equal(2.5, obj.avg_ms)
    assert.equal(4, obj.max_ms)
    assert.equal(s:stddev(), obj.mdev_ms)
    assert.equal(s:percentile(50), obj.p50_ms)
    assert.equal(s:percentile(90), obj.p90_ms)
    assert.equal(s:percentile(95), obj.p95_ms)
    assert.equal(s:percentile(99), obj.p99_ms)
    assert.equal(0, obj.errors)
    assert.same({ reply = 4, timeout = 1, unreachable = 0, ttl_exceeded = 0, error = 0 },
      obj.by_status)
    assert.same({ duplicates = 2, late = 1 }, obj.counters)
    assert.equal(1700000000.25, obj.time)

    -- Nothing answered: no RTT fields at all, and no target for an overall one.
    local empty = cjson.decode(lines[2])
    assert.same({ "by_status", "errors", "loss_pct", "received", "sent", "time", "type" },
      (function()
        local keys = {}
        for k in pairs(empty) do keys[#keys + 1] = k end
        table.sort(keys)
        return keys
      end)())
  end)

  it("carries any string through JSON", function()
    local weird = 'quote " backslash \\ slash / tab \t newline \n nul-free é'
    local lines = written(function(w)
      w:result({ status = "error", target = weird, err = weird })
    end)
    local obj = cjson.decode(lines[1])
    assert.equal(weird, obj.target)
    assert.equal(weird, obj.err)
  end)

  it("writes other records with type first", function()
    local lines = written(function(w)
      w:write({ type = "start", targets = 3, name = "campaign" })
    end)
    assert.equal('{"type":"start","name":"campaign","targets":3}', lines[1])
    assert.has_error(function() jsonl.new(memory_file()):write({ x = 1 }) end,
      "jsonl writer:write: table with a string 'type' expected")
  end)

  it("stamps lines with the wall clock by default", function()
    local lines = written(function(w)
      w:result({ status = "timeout" })
    end, {})
    local t = cjson.decode(lines[1]).time
    assert.is_true(math.abs(t - os.time()) < 5, "time " .. t)
  end)

  it("flushes after each line when asked", function()
    local _, f = written(function(w)
      w:result(RESULTS[1])
      w:result(RESULTS[2])
    end, { flush = true, clock = os.time })
    assert.equal(3, f.flushes) -- two lines and close
  end)

  it("writes to a real file", function()
    local f = assert(io.tmpfile())
    local w = jsonl.new(f)
    w:result(RESULTS[1])
    w:close()
    f:seek("set")
    assert.equal("127.0.0.1", cjson.decode(f:read("l")).addr)
    f:close()
  end)

  it("returns the handle's error", function()
    local w = jsonl.new(full_disk())
    local ok, err = w:result(RESULTS[1])
    assert.is_nil(ok)
    assert.equal("No space left on device", err)
    assert.is_nil((w:close()))
  end)

  it("refuses what is not a handle or a result", function()
    assert.has_error(function() jsonl.new("out.json") end, "jsonl.new: file handle expected, got string")
    assert.has_error(function() jsonl.new(memory_file()):result(nil) end,
      "jsonl writer:result: result table expected, got nil")
  end)
end)

describe("icmprun.report.csv", function()
  it("parses RFC 4180 fields", function()
    assert.same({ "a", "b,c", 'd"e', "" }, csv.parse_line('a,"b,c","d""e",'))
    assert.same({ "" }, csv.parse_line(""))
    assert.same({ "", "" }, csv.parse_line(","))
    assert.same({ "x\ny" }, csv.parse_line('"x\ny"'))
    assert.same({ '"' }, csv.parse_line('""""'))
    local fields, err = csv.parse_line('"open')
    assert.is_nil(fields)
    assert.matches("unterminated", err)
    assert.is_nil((csv.parse_line('"a"b')))
    assert.is_nil((csv.parse_line('a"b')))
  end)

  it("writes a header then one row per result, and they parse back", function()
    local f = memory_file()
    local w = csv.new(f)
    for _, r in ipairs(RESULTS) do
      assert.is_true(w:result(r))
    end
    assert.is_true(w:close())
    local records = assert(csv.parse(f.text()))
    assert.same(csv.COLUMNS, records[1])
    assert.same({ "target", "addr", "n", "status", "rtt_ms", "ttl", "seq", "bytes", "from", "err",
      "icmp_type", "icmp_code" }, records[1])
    assert.equal(#RESULTS + 1, #records)
    for i, r in ipairs(RESULTS) do
      local row = records[i + 1]
      assert.equal(12, #row)
      assert.equal(r.target, row[1])
      assert.equal(r.addr, row[2])
      assert.equal(r.n, tonumber(row[3]))
      assert.equal(r.status, row[4])
      assert.equal(r.rtt, tonumber(row[5]))
      assert.equal(r.ttl, tonumber(row[6]))
      assert.equal(r.seq, tonumber(row[7]))
      assert.equal(r.bytes, tonumber(row[8]))
      assert.equal(r.from or "", row[9])
      assert.equal(r.err or "", row[10])
      assert.equal(r.icmp_type, tonumber(row[11]))
      assert.equal(r.icmp_code, tonumber(row[12]))
    end
    -- The error message holds a quote, a comma and a newline.
    assert.equal('sendto: "bad", worse\nand a line', records[#RESULTS + 1][10])
  end)

  it("quotes only the fields that need it", function()
    local f = memory_file()
    local w = csv.new(f, { columns = { "target", "err", "rtt_ms" } })
    w:result({ target = "a,b", err = 'say "hi"', rtt = 1.5 })
    w:result({ target = "plain" })
    w:close()
    assert.equal('target,err,rtt_ms\n"a,b","say ""hi""",1.5\nplain,,\n', f.text())
  end)

  it("takes other columns and row values", function()
    local f = memory_file()
    local w = csv.new(f, { columns = { "addr", "attempts", "icmp_type" }, eol = "\r\n" })
    w:result(RESULTS[2])
    w:row({ "total", 3 })
    w:close()
    assert.equal("addr,attempts,icmp_type\r\n127.0.0.2,3,\r\ntotal,3,\r\n", f.text())
    assert.same({ { "addr", "attempts", "icmp_type" }, { "127.0.0.2", "3", "" },
      { "total", "3", "" } }, csv.parse(f.text()))
  end)

  it("writes the header even when nothing else comes", function()
    local f = memory_file()
    csv.new(f):close()
    assert.equal(table.concat(csv.COLUMNS, ",") .. "\n", f.text())
    local g = memory_file()
    csv.new(g, { header = false }):close()
    assert.equal("", g.text())
  end)

  it("returns the handle's error", function()
    local ok, err = csv.new(full_disk()):result(RESULTS[1])
    assert.is_nil(ok)
    assert.equal("No space left on device", err)
  end)

  it("refuses bad options", function()
    assert.has_error(function() csv.new(memory_file(), { columns = {} }) end,
      "csv.new: option 'columns' must be a non-empty list of names")
    assert.has_error(function() csv.new(memory_file(), { columns = { 1 } }) end,
      "csv.new: column 1 is not a string")
    assert.has_error(function() csv.new(nil) end,
      "csv.new: file handle expected, got nil")
  end)
end)

--- A parser of the Prometheus text exposition format (0.0.4), strict enough
-- to catch what a scraper would reject.
local exposition = {}

local NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*"
local LABEL = "[a-zA-Z_][a-zA-Z0-9_]*"

--- Parses `{a="x",b="y"}` at the start of s: labels (in order) and the rest.
function exposition.labels(s)
  local labels, order = {}, {}
  if s:sub(1, 1) ~= "{" then
    return labels, order, s
  end
  local pos = 2
  while s:sub(pos, pos) ~= "}" do
    local name = s:match("^" .. LABEL, pos)
    assert(name, "label name expected at: " .. s:sub(pos))
    pos = pos + #name
    assert(s:sub(pos, pos + 1) == '="', "=\" expected after label " .. name)
    pos = pos + 2
    local value = {}
    while true do
      local c = s:sub(pos, pos)
      assert(c ~= "" and c ~= "\n", "unterminated label value")
      if c == "\\" then
        local e = s:sub(pos + 1, pos + 1)
        local unescaped = ({ ["\\"] = "\\", ['"'] = '"', n = "\n" })[e]
        assert(unescaped, "bad escape \\" .. e)
        value[#value + 1] = unescaped
        pos = pos + 2
      elseif c == '"' then
        pos = pos + 1
        break
      else
        value[#value + 1] = c
        pos = pos + 1
      end
    end
    assert(labels[name] == nil, "label " .. name .. " twice")
    labels[name] = table.concat(value)
    order[#order + 1] = name
    local c = s:sub(pos, pos)
    if c == "," then
      pos = pos + 1
    else
      assert(c == "}", ", or } expected after a label value")
    end
  end
  return labels, order, s:sub(pos + 1)
end

--- Parses a value: a float, +Inf, -Inf or NaN.
function exposition.value(s)
  if s == "+Inf" then return math.huge end
  if s == "-Inf" then return -math.huge end
  if s == "NaN" then return 0 / 0 end
  -- A decimal float as Go's ParseFloat reads it: digits, an optional point
  -- and fraction, an optional exponent (no hex, no spaces, no "inf").
  local mantissa = s:match("^(.-)[eE][-+]?%d+$") or s
  assert(mantissa:match("^[-+]?%d+%.?%d*$") or mantissa:match("^[-+]?%.%d+$"),
    "bad value '" .. s .. "'")
  return assert(tonumber(s))
end

--- Parses a whole exposition: families (name -> {type, help, samples}) in the
-- order they appear; samples {name, labels, order, value}. Asserts the rules
-- of the format on the way.
function exposition.parse(text)
  assert.equal("\n", text:sub(-1), "the exposition must end with a newline")
  local families, order, current = {}, {}, nil
  local function family_of(sample_name)
    for _, suffix in ipairs({ "_bucket", "_sum", "_count", "" }) do
      local base = suffix == "" and sample_name or sample_name:match("^(.*)" .. suffix .. "$")
      local f = base and families[base]
      if f and (suffix == "" or f.type == "histogram" or f.type == "summary") then
        return f
      end
    end
  end
  for line in text:gmatch("([^\n]*)\n") do
    assert.are_not.equal("", line, "no empty lines")
    local help_name, help = line:match("^# HELP (" .. NAME .. ") (.*)$")
    local type_name, kind = line:match("^# TYPE (" .. NAME .. ") (%a+)$")
    if help_name then
      -- Only \\ and \n are escapes in HELP text.
      assert(not help:gsub("\\[\\n]", ""):find("\\", 1, true), "bad escape in HELP: " .. help)
      assert(families[help_name] == nil, "HELP after the family began: " .. help_name)
      families[help_name] = { name = help_name, help = help, samples = {} }
      order[#order + 1] = help_name
      current = families[help_name]
    elseif type_name then
      assert(kind == "counter" or kind == "gauge" or kind == "histogram" or kind == "summary"
        or kind == "untyped", "bad type " .. kind)
      local f = families[type_name]
      assert(f and f == current, "TYPE must follow the HELP of its family: " .. type_name)
      assert(f.type == nil, "TYPE twice for " .. type_name)
      assert(#f.samples == 0, "TYPE after samples of " .. type_name)
      f.type = kind
    else
      assert(line:sub(1, 1) ~= "#", "unexpected comment: " .. line)
      local name = line:match("^" .. NAME)
      assert(name, "sample name expected: " .. line)
      local labels, label_order, rest = exposition.labels(line:sub(#name + 1))
      local value = rest:match("^ (%S+)$")
      assert(value, "one space and a value expected after the labels: " .. line)
      local f = family_of(name)
      assert(f, "sample of an undeclared family: " .. line)
      assert(f == current, "samples of " .. f.name .. " are not together")
      assert(f.type, "sample before TYPE: " .. line)
      f.samples[#f.samples + 1] = { name = name, labels = labels, order = label_order,
        value = exposition.value(value) }
    end
  end
  return families, order
end

--- The samples of a family named `name` whose labels include `want`.
local function select_samples(family, name, want)
  local out = {}
  for _, s in ipairs(family.samples) do
    local ok = s.name == name
    for k, v in pairs(want or {}) do
      ok = ok and s.labels[k] == v
    end
    if ok then out[#out + 1] = s end
  end
  return out
end

--- Checks every histogram of a parsed exposition: per label set, buckets in
-- increasing `le`, cumulative counts, `+Inf` last and equal to `_count`.
local function check_histograms(families)
  for _, f in pairs(families) do
    if f.type == "histogram" then
      local series = {}
      for _, s in ipairs(f.samples) do
        local key = {}
        for _, k in ipairs(s.order) do
          if k ~= "le" then key[#key + 1] = k .. "=" .. s.labels[k] end
        end
        key = table.concat(key, ",")
        series[key] = series[key] or { buckets = {} }
        local entry = series[key]
        if s.name == f.name .. "_bucket" then
          assert(s.labels.le, "bucket without le")
          entry.buckets[#entry.buckets + 1] = { le = exposition.value(s.labels.le), count = s.value }
        elseif s.name == f.name .. "_sum" then
          entry.sum = s.value
        elseif s.name == f.name .. "_count" then
          entry.count = s.value
        end
      end
      for key, entry in pairs(series) do
        assert(#entry.buckets > 0, "no buckets for " .. key)
        for i = 2, #entry.buckets do
          assert(entry.buckets[i].le > entry.buckets[i - 1].le, "le not increasing for " .. key)
          assert(entry.buckets[i].count >= entry.buckets[i - 1].count, "not cumulative: " .. key)
        end
        local last = entry.buckets[#entry.buckets]
        assert.equal(math.huge, last.le, "last bucket must be +Inf: " .. key)
        assert.equal(entry.count, last.count, "+Inf must equal _count: " .. key)
        assert.is_number(entry.sum, "_sum missing: " .. key)
      end
    end
  end
end

describe("icmprun.report.prometheus", function()
  -- RTTs (ms) with values on, just under and just over bucket bounds.
  local RTTS = { 0.01, 0.05, 0.0500001, 0.07, 0.1, 0.2, 0.25, 1.6384, 3, 12.8, 100, 26214.4, 40000 }

  local function sample_stats(opts)
    local s = stats.new(opts)
    for _, rtt in ipairs(RTTS) do
      s:add({ status = "reply", rtt = rtt })
    end
    s:add({ status = "timeout" })
    s:add({ status = "timeout" })
    s:add({ status = "unreachable" })
    return s
  end

  local function count_le(seconds)
    local n = 0
    for _, rtt in ipairs(RTTS) do
      if rtt / 1000 <= seconds then n = n + 1 end
    end
    return n
  end

  it("documents smokeping_prober's default buckets", function()
    assert.equal(20, #prometheus.DEFAULT_BUCKETS)
    for i = 0, 19 do
      assert.equal(0.00005 * 2 ^ i, prometheus.DEFAULT_BUCKETS[i + 1])
    end
  end)

  it("renders counters and an exact histogram in the exposition format", function()
    local s = sample_stats()
    s:add_counters({ duplicates = 2, late = 1 })
    local text = prometheus.render({
      { host = "localhost", ip = "127.0.0.1", labels = { site = "lab" }, stats = s, ttl = 64 },
      { target = "empty", stats = stats.new() },
    })
    local families, order = exposition.parse(text)
    assert.same({ "smokeping_requests_total", "icmprun_results_total",
      "smokeping_response_duration_seconds", "smokeping_response_ttl",
      "smokeping_send_errors_total", "smokeping_response_duplicates_total",
      "icmprun_duplicates_total", "icmprun_late_total" }, order)
    -- Duplicates per target, from its counters, as the exporter labels them.
    assert.equal(2, families.smokeping_response_duplicates_total.samples[1].value)
    assert.equal(0, families.smokeping_response_duplicates_total.samples[2].value)
    assert.equal("counter", families.smokeping_requests_total.type)
    assert.equal("counter", families.icmprun_results_total.type)
    assert.equal("histogram", families.smokeping_response_duration_seconds.type)
    assert.equal("gauge", families.smokeping_response_ttl.type)
    check_histograms(families)

    local req = families.smokeping_requests_total.samples
    assert.equal(2, #req)
    assert.same({ "host", "ip", "site" }, req[1].order)
    assert.same({ host = "localhost", ip = "127.0.0.1", site = "lab" }, req[1].labels)
    assert.equal(#RTTS + 3, req[1].value)
    -- An entry with only a target has it as both its name and its address.
    assert.same({ host = "empty", ip = "empty" }, req[2].labels)
    assert.equal(0, req[2].value)

    local resp = families.icmprun_results_total
    local expected = { reply = #RTTS, timeout = 2, unreachable = 1, ttl_exceeded = 0, error = 0 }
    for status, count in pairs(expected) do
      local got = select_samples(resp, "icmprun_results_total", { host = "localhost", status = status })
      assert.equal(1, #got, status)
      assert.equal(count, got[1].value, status)
    end
    assert.equal(10, #resp.samples)

    -- The TTL only for the entry that gave one; send errors for each.
    assert.equal(1, #families.smokeping_response_ttl.samples)
    assert.equal(64, families.smokeping_response_ttl.samples[1].value)
    assert.equal(2, #families.smokeping_send_errors_total.samples)

    local h = families.smokeping_response_duration_seconds
    local buckets = select_samples(h, "smokeping_response_duration_seconds_bucket", { host = "localhost" })
    assert.equal(21, #buckets)
    for i, b in ipairs(prometheus.DEFAULT_BUCKETS) do
      assert.equal(b, exposition.value(buckets[i].labels.le))
      assert.equal(count_le(b), buckets[i].value, "le=" .. buckets[i].labels.le)
    end
    assert.equal("5e-05", buckets[1].labels.le)
    assert.equal("26.2144", buckets[20].labels.le)
    assert.equal("+Inf", buckets[21].labels.le)
    local sum = select_samples(h, "smokeping_response_duration_seconds_sum", { host = "localhost" })[1]
    local total = 0
    for _, rtt in ipairs(RTTS) do total = total + rtt / 1000 end
    assert.is_true(math.abs(sum.value - total) < 1e-9)
    local empty = select_samples(h, "smokeping_response_duration_seconds_count", { host = "empty" })[1]
    assert.equal(0, empty.value)

    assert.equal(2, families.icmprun_duplicates_total.samples[1].value)
    assert.equal(1, families.icmprun_late_total.samples[1].value)
  end)

  it("names, types and labels its series as the exporter does, in the same units", function()
    -- One naming for reports and the exporter: the same results, counted
    -- by the exporter's metrics and by statistics, give the same families
    -- (name, type, HELP) and the same samples (name, labels, value).
    local metrics = require "icmprun.exporter.metrics"
    local results = {
      { status = "reply", rtt = 0.2, ttl = 64 }, { status = "reply", rtt = 3, ttl = 63 },
      { status = "timeout" }, { status = "error", code = "ENETUNREACH" },
      { status = "unreachable" },
    }
    local key = metrics.label_key("localhost", "127.0.0.1", { site = "lab" })
    local target = metrics.new_target(key, prometheus.DEFAULT_BUCKETS)
    local s = stats.new({ histogram = prometheus.histogram() })
    for _, r in ipairs(results) do
      target:on_send()
      target:record(r)
      s:add(r)
    end
    local engine = { sent = 5, results = 5, duplicates = 1, malformed = 2, corrupted = 1,
      pending = 0 }
    local exporter_families, exporter_order = exposition.parse(metrics.render({ target }, engine))
    local report_families, report_order = exposition.parse(prometheus.render({
      { host = "localhost", ip = "127.0.0.1", labels = { site = "lab" }, stats = s, ttl = 63 },
    }, { engine = engine }))
    assert.same(exporter_order, report_order)
    local function lines(family)
      local out = {}
      for _, sample in ipairs(family.samples) do
        local labels = {}
        for _, name in ipairs(sample.order) do
          labels[#labels + 1] = name .. "=" .. sample.labels[name]
        end
        out[#out + 1] = sample.name .. "{" .. table.concat(labels, ",") .. "} "
          .. prometheus.format_value(sample.value)
      end
      return out
    end
    for _, name in ipairs(exporter_order) do
      local want, got = exporter_families[name], report_families[name]
      assert.equal(want.type, got.type, name)
      assert.equal(want.help, got.help, name)
      assert.same(lines(want), lines(got), name)
    end
  end)

  it("escapes label values", function()
    local target = 'we"ird\\name\nline'
    local text = prometheus.render({ { target = target, stats = sample_stats() } })
    assert.truthy(text:find('host="we\\"ird\\\\name\\nline"', 1, true))
    local families = exposition.parse(text)
    assert.equal(target, families.smokeping_requests_total.samples[1].labels.host)
    assert.equal(target, families.smokeping_requests_total.samples[1].labels.ip)
  end)

  it("counts custom buckets exactly with an attached histogram", function()
    local bounds = { 0.00006, 0.0001, 0.00025, 0.003, 0.1 }
    local s = sample_stats({ histogram = prometheus.histogram(bounds) })
    local families = exposition.parse(prometheus.render({ { target = "t", stats = s } }))
    check_histograms(families)
    local h = families.smokeping_response_duration_seconds
    local buckets = select_samples(h, "smokeping_response_duration_seconds_bucket")
    assert.equal(#bounds + 1, #buckets)
    for i, b in ipairs(bounds) do
      assert.equal(count_le(b), buckets[i].value, "le=" .. b)
    end
  end)

  it("merges attached histograms with the statistics", function()
    local a = sample_stats({ histogram = prometheus.histogram() })
    local b = sample_stats({ histogram = prometheus.histogram() })
    a:merge(b)
    assert.equal(2 * #RTTS, a.histogram.count)
    local cumulative = a.histogram:cumulative()
    for i, bound in ipairs(prometheus.DEFAULT_BUCKETS) do
      assert.equal(2 * count_le(bound), cumulative[i])
      assert.equal(a:count_le(bound * 1000), cumulative[i])
    end
    assert.has_error(function()
      prometheus.histogram({ 1, 2 }):merge(prometheus.histogram({ 1, 3 }))
    end, "histogram:merge: the buckets differ")
  end)

  it("takes buckets from the options", function()
    local s = sample_stats()
    local families = exposition.parse(prometheus.render({ { target = "t", stats = s } },
      { buckets = { 0.0001, 0.0256, 1 } }))
    check_histograms(families)
    local buckets = families.smokeping_response_duration_seconds.samples
    assert.equal("0.0001", buckets[1].labels.le)
    assert.equal(count_le(0.0001), buckets[1].value)
    assert.equal(count_le(0.0256), buckets[2].value)
    assert.equal(count_le(1), buckets[3].value)
  end)

  it("renders engine counters and the pending gauge", function()
    local engine = { sent = 10, results = 9, late = 1, pending = 1, duplicates = 0 }
    local families, order = exposition.parse(prometheus.render({}, { engine = engine }))
    assert.same({ "smokeping_receive_errors_total", "icmprun_engine_duplicates_total", "icmprun_engine_late_total",
      "icmprun_engine_pending", "icmprun_engine_results_total", "icmprun_engine_sent_total" }, order)
    assert.equal("gauge", families.icmprun_engine_pending.type)
    assert.equal(1, families.icmprun_engine_pending.samples[1].value)
    assert.equal(10, families.icmprun_engine_sent_total.samples[1].value)
    assert.same({}, families.icmprun_engine_sent_total.samples[1].labels)
  end)

  it("renders the corrupt offset as a gauge, not a counter", function()
    local engine = { corrupted = 2, corrupt_offset = 28 }
    local families, order = exposition.parse(prometheus.render({}, { engine = engine }))
    assert.same({ "smokeping_receive_errors_total", "icmprun_engine_corrupt_offset",
      "icmprun_engine_corrupted_total" }, order)
    assert.equal(2, families.smokeping_receive_errors_total.samples[1].value)
    assert.equal("gauge", families.icmprun_engine_corrupt_offset.type)
    assert.equal(28, families.icmprun_engine_corrupt_offset.samples[1].value)
  end)

  it("renders nothing for nothing", function()
    assert.equal("", prometheus.render({}))
  end)

  it("refuses entries that would break the format", function()
    local s = stats.new()
    assert.has_error(function()
      prometheus.render({ { target = "a", stats = s }, { target = "a", stats = s } })
    end, "prometheus.render: entries 1 and 2 have the same labels")
    assert.has_error(function()
      prometheus.render({ { target = "a", stats = s, labels = { ["bad-name"] = "x" } } })
    end, "prometheus.render: entry 1: invalid label name 'bad-name'")
    assert.has_error(function()
      prometheus.render({ { target = "a", stats = s, labels = { status = "x" } } })
    end)
    assert.has_error(function() prometheus.render({ { stats = s } }) end,
      "prometheus.render: entry 1 has no target (or host and ip)")
    assert.has_error(function() prometheus.render({ { target = "a" } }) end,
      "prometheus.render: entry 1 has no stats object")
    assert.has_error(function()
      prometheus.render({ { target = "a", stats = s } }, { buckets = { 2, 1 } })
    end)
  end)

  it("formats values as the exposition format reads them", function()
    assert.equal("3", prometheus.format_value(3))
    assert.equal("0.1", prometheus.format_value(0.1))
    assert.equal("0.30000000000000004", prometheus.format_value(0.1 + 0.2))
    assert.equal("+Inf", prometheus.format_value(math.huge))
    assert.equal("-Inf", prometheus.format_value(-math.huge))
    assert.equal("NaN", prometheus.format_value(0 / 0))
  end)

  describe("the spec's own exposition parser", function()
    it("rejects what is not the format", function()
      for _, bad in ipairs({
        "metric 1", -- no family declared
        "# HELP m help\n# TYPE m counter\nm{a=\"x} 1\n",
        "# HELP m help\n# TYPE m counter\nm{a=\"\\t\"} 1\n",
        "# HELP m help\n# TYPE m counter\nm  1\n",
        "# HELP m help\n# TYPE m counter\nm one\n",
        "# HELP m help\n# TYPE m blah\n",
        "# HELP m help\nm 1\n",
        "# HELP h help\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# HELP h help\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
      }) do
        assert.has_error(function()
          check_histograms((exposition.parse(bad .. (bad:sub(-1) == "\n" and "" or "\n"))))
        end, nil, bad)
      end
    end)
  end)
end)

describe("one schema for reports", function()
  it("JSON lines leave '/' unescaped, and strings still read back exactly", function()
    local f = memory_file()
    local w = jsonl.new(f, { clock = function() return 1 end })
    local tricky = { "127.0.0.0/24", "a\\/b", "\\\\/", "/", "2001:db8::/32\n\"x\"" }
    for _, text in ipairs(tricky) do
      w:write({ type = "custom", target = text })
    end
    w:result({ status = "reply", target = "127.0.0.0/24", addr = "127.0.0.1" })
    assert.is_true(w:close())
    local lines = lines_of(f.text())
    for i, text in ipairs(tricky) do
      assert.equal(text, cjson.decode(lines[i]).target)
    end
    assert.matches('"target":"127.0.0.0/24"', lines[1], 1, true)
    assert.matches('"target":"127.0.0.0/24"', lines[#lines], 1, true)
    assert.is_nil(lines[1]:find("\\/", 1, true))
  end)

  it("CSV has the ICMP type and code of an error", function()
    assert.same({ "target", "addr", "n", "status", "rtt_ms", "ttl", "seq", "bytes", "from",
      "err", "icmp_type", "icmp_code" }, csv.COLUMNS)
    local f = memory_file()
    local w = csv.new(f)
    local unreachable = RESULTS[4]
    assert.equal("unreachable", unreachable.status)
    w:result(unreachable)
    assert.is_true(w:close())
    local lines = lines_of(f.text())
    assert.equal("target,addr,n,status,rtt_ms,ttl,seq,bytes,from,err,icmp_type,icmp_code",
      lines[1])
    assert.equal("192.0.2.9,192.0.2.9,2,unreachable,0.25,,3,,192.0.2.1,"
      .. "Destination Host Unreachable,3,1", lines[2])
  end)
end)
