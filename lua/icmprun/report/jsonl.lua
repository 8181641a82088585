-- SPDX-License-Identifier: MIT

--- JSON lines reports: one JSON object per line, per result and per summary.
--
-- Every line is a complete JSON object with a `type` field; keys come in a
-- fixed order (`type` first) and absent values are left out, never written as
-- `null`. Numbers are written in the shortest form that reads back to the
-- same double; values that JSON cannot carry (infinities, NaN) are left out.
--
-- `{"type":"result", ...}`, one per probe result:
--
-- * `target` (string): what the script asked for (sweep results);
-- * `addr` (string): the address probed;
-- * `n` (integer): the probe number for this address, from 1 (sweep);
-- * `status` (string): `reply`, `timeout`, `unreachable`, `ttl_exceeded` or `error`;
-- * `rtt_ms` (number): the round-trip time in milliseconds (replies, and
--   ICMP errors: the round trip to the router that sent the error);
-- * `ttl`, `seq`, `bytes` (integers): from the reply;
-- * `from` (string): who answered (the target, or a router for ICMP errors);
-- * `err` (string): the error message (`error` results);
-- * `code` (string): the error's errno name beside `err` (`"EHOSTUNREACH"`);
-- * `icmp_type`, `icmp_code` (integers): of an ICMP error;
-- * `corrupt_offset` (integer): the first differing byte of a damaged answer;
-- * `attempts` (integer): probes sent for this result, retries included;
-- * `time` (number): the result's own `time` if it has one, else when the
--   line was written: Unix time in seconds with a fraction (microseconds
--   where luv is available, whole seconds otherwise).
--
-- `{"type":"summary", ...}`, one per target (or one overall, without
-- `target`): `target`, then the fields of `Stats:to_table()` — `sent`,
-- `received`, `loss_pct`, `min_ms`, `avg_ms`, `max_ms`, `mdev_ms`,
-- `p50_ms`, `p90_ms`, `p95_ms`, `p99_ms` (the RTT fields absent when nothing
-- answered), `errors`, `by_status` (object: status -> count), `counters`
-- (object, when engine counters were recorded) — and `time`.
--
-- `Writer:write` writes any other record (with keys sorted after `type`).
--
-- Strings are written as cjson writes them, but for `/`, which is left
-- unescaped so that `grep '"127.0.0.0/24"'` finds what it looks for.
-- @module icmprun.report.jsonl
local cjson = require "cjson"

local handle = require "icmprun.report.handle"
local number = require "icmprun.report.number"

local M = {}

local error, ipairs, pairs, pcall, require = error, ipairs, pairs, pcall, require
local tostring, type, setmetatable = tostring, type, setmetatable
local table_concat, table_sort = table.concat, table.sort

-- A private cjson instance: settings changed here do not leak to other users.
local json = cjson.new()

--- The keys of a result line, in order.
M.RESULT_FIELDS = {
  "type", "target", "addr", "n", "status", "rtt_ms", "ttl", "seq", "bytes", "from", "err",
  "code", "icmp_type", "icmp_code", "corrupt_offset", "attempts", "time",
}

--- The keys of a summary line, in order.
M.SUMMARY_FIELDS = {
  "type", "target", "sent", "received", "loss_pct", "min_ms", "avg_ms", "max_ms", "mdev_ms",
  "p50_ms", "p90_ms", "p95_ms", "p99_ms", "errors", "by_status", "counters", "time",
}

-- Encodes a string as JSON, leaving '/' as it is: cjson writes "\/", which
-- is valid JSON but defeats a grep for "127.0.0.0/24". Every '/' cjson
-- writes is escaped, and a backslash it writes is doubled, so each "\/" is
-- one escaped '/'.
local function encode_string(s)
  return (json.encode(s):gsub("\\/", "/"))
end

--- Formats a number as JSON, or returns nil for one JSON cannot carry.
-- @tparam number x
-- @treturn ?string
local function encode_number(x)
  if number.is_finite(x) then
    return number.shortest(x)
  end
  return nil
end

local encode_value

-- Whether t is a non-empty sequence 1..#t and nothing else.
local function is_array(t)
  local n = #t
  if n == 0 then
    return false
  end
  local count = 0
  for _ in pairs(t) do
    count = count + 1
  end
  return count == n
end

-- Encodes the fields of t named in order (all of t's string keys, sorted,
-- when order is nil), leaving out absent and unencodable values.
local function encode_object(t, order, level)
  if order == nil then
    order = {}
    for k in pairs(t) do
      if type(k) ~= "string" then
        error("jsonl: object keys must be strings, got " .. type(k), level)
      end
      order[#order + 1] = k
    end
    table_sort(order)
  end
  local parts = {}
  for _, k in ipairs(order) do
    local v = t[k]
    if v ~= nil then
      local encoded = encode_value(v, level + 1)
      if encoded then
        parts[#parts + 1] = encode_string(k) .. ":" .. encoded
      end
    end
  end
  return "{" .. table_concat(parts, ",") .. "}"
end

-- Encodes one value; nil for a number that JSON cannot carry.
function encode_value(v, level)
  local kind = type(v)
  if kind == "string" then
    return encode_string(v)
  elseif kind == "number" then
    return encode_number(v)
  elseif kind == "boolean" then
    return tostring(v)
  elseif kind == "table" then
    if is_array(v) then
      local parts = {}
      for i, item in ipairs(v) do
        parts[i] = encode_value(item, level + 1) or "null"
      end
      return "[" .. table_concat(parts, ",") .. "]"
    end
    return encode_object(v, nil, level + 1)
  end
  error("jsonl: cannot encode a " .. kind, level)
end

--- Encodes a table as one line of JSON (without the newline): the keys in
-- `order` first, in that order, then the others sorted. Absent values and
-- numbers JSON cannot carry are left out.
-- @tparam table t
-- @tparam[opt] {string,...} order
-- @treturn string
function M.encode(t, order)
  if type(t) ~= "table" then
    error("jsonl.encode: table expected, got " .. type(t), 2)
  end
  local keys, listed = {}, {}
  for _, k in ipairs(order or {}) do
    keys[#keys + 1] = k
    listed[k] = true
  end
  local rest = {}
  for k in pairs(t) do
    if not listed[k] then
      if type(k) ~= "string" then
        error("jsonl.encode: object keys must be strings, got " .. type(k), 2)
      end
      rest[#rest + 1] = k
    end
  end
  table_sort(rest)
  for _, k in ipairs(rest) do
    keys[#keys + 1] = k
  end
  return encode_object(t, keys, 3)
end

-- The wall clock in Unix seconds: luv's gettimeofday (microseconds) when luv
-- can be loaded, os.time (whole seconds) otherwise.
local function default_clock()
  local ok, uv = pcall(require, "luv")
  if ok and type(uv) == "table" and type(uv.gettimeofday) == "function" then
    return function()
      local sec, usec = uv.gettimeofday()
      return sec + usec / 1e6
    end
  end
  return os.time
end

--- The record of a result line, as a plain table (see the module's schema).
-- @tparam table r a result from icmprun.ping or icmprun.sweep
-- @tparam[opt] number time Unix seconds
-- @treturn table
function M.result_record(r, time)
  if type(r) ~= "table" then
    error("jsonl.result_record: result table expected, got " .. type(r), 2)
  end
  return {
    type = "result",
    target = r.target, addr = r.addr, n = r.n, status = r.status, rtt_ms = r.rtt,
    ttl = r.ttl, seq = r.seq, bytes = r.bytes, from = r.from, err = r.err,
    code = r.code, icmp_type = r.icmp_type, icmp_code = r.icmp_code,
    corrupt_offset = r.corrupt_offset, attempts = r.attempts,
    time = time,
  }
end

--- The record of a summary line, as a plain table (see the module's schema).
-- @tparam ?string target nil for an overall summary
-- @param s a Stats object, or the table of its `to_table()`
-- @tparam[opt] number time Unix seconds
-- @treturn table
function M.summary_record(target, s, time)
  if type(s) ~= "table" then
    error("jsonl.summary_record: statistics expected, got " .. type(s), 2)
  end
  local t = type(s.to_table) == "function" and s:to_table() or s
  local record = {}
  for k, v in pairs(t) do
    record[k] = v
  end
  record.type = "summary"
  record.target = target
  record.time = time
  return record
end

local Writer = {}
Writer.__index = Writer

--- A writer of JSON lines to a file handle.
-- @param fh anything with `write` (and `flush`), such as `io.stdout`
-- @tparam[opt] table opts `clock` (a function returning Unix seconds, for
--   the `time` field), `flush` (flush after every line, for live consumers
--   of a pipe; off by default)
-- @treturn Writer
function M.new(fh, opts)
  opts = handle.check("jsonl.new", fh, opts)
  if opts.clock ~= nil and type(opts.clock) ~= "function" then
    error("jsonl.new: option 'clock' must be a function", 2)
  end
  return setmetatable({
    fh = fh,
    clock = opts.clock or default_clock(),
    flush_each = opts.flush and true or false,
    lines = 0,
  }, Writer)
end

-- Writes one encoded line; true, or nil and the error of the handle.
local function write_line(self, line)
  local ok, err = self.fh:write(line, "\n")
  if not ok then
    return nil, err
  end
  self.lines = self.lines + 1
  if self.flush_each then
    return handle.flush(self.fh)
  end
  return true
end

--- Writes the line of one result.
-- @tparam table r a result from icmprun.ping or icmprun.sweep
-- @treturn[1] true
-- @return[2] nil, error message from the handle
function Writer:result(r)
  if type(r) ~= "table" then
    error("jsonl writer:result: result table expected, got " .. type(r), 2)
  end
  local time = type(r.time) == "number" and r.time or self.clock()
  return write_line(self, encode_object(M.result_record(r, time), M.RESULT_FIELDS, 3))
end

--- Writes the summary line of a target (or, with a nil target, an overall one).
-- @tparam ?string target
-- @param s a Stats object, or the table of its `to_table()`
-- @treturn[1] true
-- @return[2] nil, error message from the handle
function Writer:summary(target, s)
  if type(s) ~= "table" then
    error("jsonl writer:summary: statistics expected, got " .. type(s), 2)
  end
  if target ~= nil and type(target) ~= "string" then
    target = tostring(target)
  end
  local record = M.summary_record(target, s, self.clock())
  return write_line(self, M.encode(record, M.SUMMARY_FIELDS))
end

--- The writer's clock, as it stamps `time`: for records written with
-- `write` that should carry the same `time` as results do.
-- @treturn number Unix seconds
function Writer:now()
  return self.clock()
end

--- Writes any record: `type` first, then its other keys sorted.
-- @tparam table record with string keys; must have a string `type`
-- @treturn[1] true
-- @return[2] nil, error message from the handle
function Writer:write(record)
  if type(record) ~= "table" or type(record.type) ~= "string" then
    error("jsonl writer:write: table with a string 'type' expected", 2)
  end
  return write_line(self, M.encode(record, { "type" }))
end

--- Flushes the handle. The handle stays open: it belongs to the caller.
-- @treturn[1] true
-- @return[2] nil, error message from the handle
function Writer:close()
  return handle.flush(self.fh)
end

return M
