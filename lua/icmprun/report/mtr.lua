-- SPDX-License-Identifier: MIT

--- mtr 0.95's report, JSON and CSV formats, from `icmprun.trace` hops.
--
-- mtr keeps round trips as whole microseconds and loss in thousandths of a
-- percent, and prints them divided by 1000: `stat` turns a hop into those
-- integers (truncated as mtr's C casts truncate), and the writers print them
-- with mtr's formats, column widths and quirks (a 100.0% loss overwrites its
-- own "%" sign with the next column, as mtr's fixed-offset snprintf does).
-- Pure functions: no I/O, no clock.
-- @module icmprun.report.mtr
local M = {}

local ipairs, math_floor, math_sqrt = ipairs, math.floor, math.sqrt
local string_format, string_rep, table_concat = string.format, string.rep, table.concat

--- The report columns: title, width, and which `stat` field they print.
M.FIELDS = {
  { title = "Loss%", width = 6, format = " %4.1f%%", key = "loss", scaled = true },
  { title = "Snt", width = 6, format = " %5d", key = "snt" },
  { title = " ", width = 1, format = " ", key = nil },
  { title = "Last", width = 6, format = " %5.1f", key = "last", scaled = true },
  { title = "Avg", width = 6, format = " %5.1f", key = "avg", scaled = true },
  { title = "Best", width = 6, format = " %5.1f", key = "best", scaled = true },
  { title = "Wrst", width = 6, format = " %5.1f", key = "wrst", scaled = true },
  { title = "StDev", width = 6, format = " %5.1f", key = "stdev", scaled = true },
}

local function usec(ms)
  return ms and math_floor(ms * 1000) or 0
end

--- A hop record of `icmprun.trace` as mtr's integers: snt, rcv, drop, loss
-- (thousandths of a percent), and last, best, avg, wrst, stdev in whole
-- microseconds. StDev is the sample standard deviation, as mtr computes it.
-- @tparam table hop a hop record (`trace:hops()`)
-- @treturn table
function M.stat(hop)
  local s = hop.stats
  local n = hop.received
  local t = { snt = hop.sent, rcv = n, drop = hop.done - n, loss = 0, last = 0, best = 0,
    avg = 0, wrst = 0, stdev = 0 }
  -- Probes in flight count neither as lost nor as answered (mtr's transit).
  if hop.done > 0 then
    t.loss = math_floor(1000 * (100 - 100.0 * n / hop.done))
  end
  if n > 0 then
    t.last, t.best, t.wrst, t.avg = usec(hop.last_ms), usec(s.min), usec(s.max), usec(s.mean)
    if n > 1 then
      t.stdev = math_floor(math_sqrt(s.m2 / (n - 1)) * 1000)
    end
  end
  return t
end

--- The hops mtr shows: up to the end of the path (the target, or an
-- unreachable error) when known; otherwise up to one past the last hop that
-- answered (mtr's net_max), none when no hop answered.
-- @tparam table hops hop records, first TTL first
-- @tparam ?integer end_ttl
-- @treturn table
function M.shown(hops, end_ttl)
  local last = 0
  for i, hop in ipairs(hops) do
    if end_ttl and hop.ttl == end_ttl then
      last = i
      break
    end
    if hop.addr then
      last = i + 1
    end
  end
  if last > #hops then
    last = #hops
  end
  local out = {}
  for i = 1, last do
    out[i] = hops[i]
  end
  return out
end

-- Writes text at byte offset `at` of line, cutting what was there: mtr
-- builds its lines with snprintf(buf + len, ...) at fixed offsets.
local function put(line, at, text)
  if #line < at then
    line = line .. string_rep(" ", at - #line)
  end
  return line:sub(1, at) .. text
end

local function fields_text(line, at, st)
  for _, f in ipairs(M.FIELDS) do
    local text
    if f.key == nil then
      text = f.format
    elseif f.scaled then
      text = string_format(f.format, st[f.key] / 1000)
    else
      text = string_format(f.format, st[f.key])
    end
    line = put(line, at, text)
    at = at + f.width
  end
  return line
end

--- The numeric columns of one row, as the report prints them after the
-- host name (mtr's live view prints the same).
-- @tparam table st from `stat`
-- @treturn string
function M.fields_line(st)
  return fields_text("", 0, st)
end

--- The column titles above `fields_line`.
function M.fields_header()
  local line = ""
  local at = 0
  for _, f in ipairs(M.FIELDS) do
    line = put(line, at, string_format("%" .. f.width .. "s", f.title))
    at = at + f.width
  end
  return line
end

--- mtr's report (`-r`): the Start line, the HOST line and one row per hop,
-- each answering address after the first on a line of its own.
-- @tparam table t `local_name`, `start` (text), `hops` (records to show),
--   `name` (function: address -> text to print), `wide` (boolean)
-- @treturn string the lines, each ending with a newline
function M.report(t)
  local names = {}
  local len_hosts = 33
  if t.wide then
    len_hosts = #t.local_name
  end
  for i, hop in ipairs(t.hops) do
    names[i] = hop.addr and t.name(hop.addr) or "???"
    if t.wide and #names[i] > len_hosts then
      len_hosts = #names[i]
    end
  end
  local out = { "Start: " .. t.start }
  local header = string_format("HOST: %-" .. len_hosts .. "s", t.local_name)
  local at = t.wide and #header or len_hosts
  for _, f in ipairs(M.FIELDS) do
    header = put(header, at, string_format("%" .. f.width .. "s", f.title))
    at = at + f.width
  end
  out[#out + 1] = header
  for i, hop in ipairs(t.hops) do
    local row = string_format(" %2d.|-- %-" .. len_hosts .. "s", hop.ttl, names[i])
    out[#out + 1] = fields_text(row, t.wide and #row or len_hosts, M.stat(hop))
    for _, addr in ipairs(hop.addrs) do
      if addr ~= hop.addr then
        out[#out + 1] = "    " .. t.name(addr)
      end
    end
  end
  return table_concat(out, "\n") .. "\n"
end

-- A number of thousandths as mtr's JSON prints value / 1000.0: the shortest
-- decimal, with at least one digit after the point.
local function json_number(thousandths)
  local text = string_format("%d.%03d", thousandths // 1000, thousandths % 1000)
  text = text:gsub("0+$", "")
  if text:sub(-1) == "." then
    text = text .. "0"
  end
  return text
end
M.json_number = json_number

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return string_format("\\u%04x", c:byte())
  end) .. '"'
end

--- mtr's `--json` document, indented as mtr (jansson) indents it.
-- @tparam table t `local_name`, `dst`, `tos`, `tests`, `psize`, `hops`, `name`
-- @treturn string
function M.json(t)
  local hubs = {}
  for i, hop in ipairs(t.hops) do
    local st = M.stat(hop)
    hubs[i] = table_concat({
      "            {",
      '                "count": ' .. hop.ttl .. ",",
      '                "host": ' .. json_string(hop.addr and t.name(hop.addr) or "???") .. ",",
      '                "Loss%": ' .. json_number(st.loss) .. ",",
      '                "Snt": ' .. st.snt .. ",",
      '                "Last": ' .. json_number(st.last) .. ",",
      '                "Avg": ' .. json_number(st.avg) .. ",",
      '                "Best": ' .. json_number(st.best) .. ",",
      '                "Wrst": ' .. json_number(st.wrst) .. ",",
      '                "StDev": ' .. json_number(st.stdev),
      "            }",
    }, "\n")
  end
  return table_concat({
    "{",
    '    "report": {',
    '        "mtr": {',
    '            "src": ' .. json_string(t.local_name) .. ",",
    '            "dst": ' .. json_string(t.dst) .. ",",
    '            "tos": ' .. t.tos .. ",",
    '            "tests": ' .. t.tests .. ",",
    '            "psize": ' .. json_string(tostring(t.psize)),
    "        },",
    #hubs > 0 and ('        "hubs": [\n' .. table_concat(hubs, ",\n") .. "\n        ]")
      or '        "hubs": []',
    "    }",
    "}",
  }, "\n") .. "\n"
end

--- mtr's `--csv` lines: a header, then one line per hop.
-- @tparam table t `version`, `start_time` (seconds since the epoch), `dst`,
--   `hops`, `name`
-- @treturn string
function M.csv(t)
  local out = { "Mtr_Version,Start_Time,Status,Host,Hop,Ip,Loss%,Snt, ,Last,Avg,Best,Wrst,StDev," }
  for _, hop in ipairs(t.hops) do
    local st = M.stat(hop)
    out[#out + 1] = string_format("%s,%d,OK,%s,%d,%s,%.2f,%d,%d,%.2f,%.2f,%.2f,%.2f,%.2f",
      t.version, t.start_time, t.dst, hop.ttl, hop.addr and t.name(hop.addr) or "???",
      st.loss / 1000, st.snt, st.drop, st.last / 1000, st.avg / 1000, st.best / 1000,
      st.wrst / 1000, st.stdev / 1000)
  end
  return table_concat(out, "\n") .. "\n"
end

return M
