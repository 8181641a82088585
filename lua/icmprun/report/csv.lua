-- SPDX-License-Identifier: MIT

--- CSV reports: a header row, then one row per result.
--
-- The default columns are
-- `target,addr,n,status,rtt_ms,ttl,seq,bytes,from,err,icmp_type,icmp_code`;
-- `rtt_ms` is the result's `rtt` and any other column name is the result
-- field of that name (`attempts`, `icmp_type`, ...). Absent values are empty
-- fields. Fields that hold a comma, a double quote, a carriage return or a
-- newline are quoted as RFC 4180 says (double quotes around, inner quotes
-- doubled). Rows end with "\n" (or `opts.eol`, such as "\r\n").
-- @module icmprun.report.csv
local handle = require "icmprun.report.handle"
local number = require "icmprun.report.number"

local M = {}

local error, ipairs, setmetatable, tostring, type =
  error, ipairs, setmetatable, tostring, type
local table_concat, table_unpack = table.concat, table.unpack

--- The default columns, in order.
M.COLUMNS = { "target", "addr", "n", "status", "rtt_ms", "ttl", "seq", "bytes", "from", "err",
  "icmp_type", "icmp_code" }

-- Column name -> result field, where they differ.
local FIELD_OF = { rtt_ms = "rtt" }

-- Numbers in the shortest form that reads back the same.
local function format_number(x)
  if number.is_finite(x) then
    return number.shortest(x)
  elseif x ~= x then
    return "nan"
  end
  return x > 0 and "inf" or "-inf"
end

--- Formats one field: nil is empty, numbers read back exactly, and a value
-- holding a comma, quote, CR or LF is quoted.
-- @param v
-- @treturn string
local function format_field(v)
  if v == nil then
    return ""
  end
  local s = type(v) == "number" and format_number(v) or tostring(v)
  if s:find('[,"\r\n]') then
    return '"' .. s:gsub('"', '""') .. '"'
  end
  return s
end
M.format_field = format_field

--- Formats a row (a list of values, nil allowed up to `n`) without its line end.
-- @tparam table values
-- @tparam[opt=#values] integer n the number of fields
-- @treturn string
function M.format_row(values, n)
  local parts = {}
  for i = 1, n or #values do
    parts[i] = format_field(values[i])
  end
  return table_concat(parts, ",")
end

--- Parses one record: a line without its line end (a quoted field may span
-- lines if the record passed holds them).
-- @tparam string line
-- @treturn[1] {string,...} the fields (empty fields are "")
-- @return[2] nil, message when a quoted field is malformed
function M.parse_line(line)
  if type(line) ~= "string" then
    error("csv.parse_line: string expected, got " .. type(line), 2)
  end
  local fields = {}
  local pos, len = 1, #line
  while true do
    if line:sub(pos, pos) == '"' then
      local parts = {}
      local i = pos + 1
      while true do
        local q = line:find('"', i, true)
        if not q then
          return nil, "unterminated quoted field at column " .. pos
        end
        parts[#parts + 1] = line:sub(i, q - 1)
        if line:sub(q + 1, q + 1) == '"' then
          parts[#parts + 1] = '"'
          i = q + 2
        else
          pos = q + 1
          break
        end
      end
      fields[#fields + 1] = table_concat(parts)
      local c = line:sub(pos, pos)
      if c == "," then
        pos = pos + 1
      elseif pos > len then
        return fields
      else
        return nil, "unexpected character after a quoted field at column " .. pos
      end
    else
      local comma = line:find(",", pos, true)
      local field = line:sub(pos, (comma or len + 1) - 1)
      if field:find('"', 1, true) then
        return nil, "quote inside an unquoted field at column " .. pos
      end
      fields[#fields + 1] = field
      if not comma then
        return fields
      end
      pos = comma + 1
    end
  end
end

--- Parses a whole document into records, keeping newlines inside quoted
-- fields. Rows may end with "\n" or "\r\n"; a final line end is optional.
-- @tparam string text
-- @treturn[1] {{string,...},...}
-- @return[2] nil, message
function M.parse(text)
  if type(text) ~= "string" then
    error("csv.parse: string expected, got " .. type(text), 2)
  end
  local records = {}
  if text == "" then
    return records
  end
  local pending = nil -- a record whose quoted field continues on the next line
  -- Lua 5.4's gmatch yields no empty match after a final "\n".
  for line in text:gmatch("([^\n]*)\n?") do
    local record = pending and (pending .. "\n" .. line) or line
    local _, quotes = record:gsub('"', "")
    if quotes % 2 == 1 then
      pending = record -- the line end is inside a quoted field: keep any "\r"
    else
      pending = nil
      local fields, err = M.parse_line((record:gsub("\r$", "")))
      if not fields then
        return nil, "row " .. (#records + 1) .. ": " .. err
      end
      records[#records + 1] = fields
    end
  end
  if pending then
    return nil, "unterminated quoted field at the end"
  end
  return records
end

local Writer = {}
Writer.__index = Writer

--- A writer of CSV rows to a file handle.
-- @param fh anything with `write` (and `flush`), such as `io.stdout`
-- @tparam[opt] table opts `columns` (list of column names, default
--   `COLUMNS`), `header` (false to leave the header row out), `eol` (row
--   end, default "\n")
-- @treturn Writer
function M.new(fh, opts)
  opts = handle.check("csv.new", fh, opts)
  local columns = opts.columns or M.COLUMNS
  if type(columns) ~= "table" or #columns == 0 then
    error("csv.new: option 'columns' must be a non-empty list of names", 2)
  end
  for i, name in ipairs(columns) do
    if type(name) ~= "string" then
      error("csv.new: column " .. i .. " is not a string", 2)
    end
  end
  return setmetatable({
    fh = fh,
    columns = { table_unpack(columns) },
    header_done = opts.header == false,
    eol = opts.eol or "\n",
    rows = 0,
  }, Writer)
end

-- Writes one line; true, or nil and the error of the handle.
local function write_line(self, line)
  local ok, err = self.fh:write(line, self.eol)
  if not ok then
    return nil, err
  end
  return true
end

-- Writes the header row unless it was already written.
local function header(self)
  if self.header_done then
    return true
  end
  self.header_done = true
  return write_line(self, M.format_row(self.columns))
end

--- Writes the row of one result (after the header row, the first time).
-- @tparam table r a result from icmprun.ping or icmprun.sweep
-- @treturn[1] true
-- @return[2] nil, error message from the handle
function Writer:result(r)
  if type(r) ~= "table" then
    error("csv writer:result: result table expected, got " .. type(r), 2)
  end
  local ok, err = header(self)
  if not ok then
    return nil, err
  end
  local values = {}
  for i, name in ipairs(self.columns) do
    values[i] = r[FIELD_OF[name] or name]
  end
  self.rows = self.rows + 1
  return write_line(self, M.format_row(values, #self.columns))
end

--- Writes a row of any values (after the header row, the first time), for
-- callers with columns of their own.
-- @tparam table values a list, nil allowed up to the number of columns
-- @treturn[1] true
-- @return[2] nil, error message from the handle
function Writer:row(values)
  if type(values) ~= "table" then
    error("csv writer:row: list expected, got " .. type(values), 2)
  end
  local ok, err = header(self)
  if not ok then
    return nil, err
  end
  self.rows = self.rows + 1
  return write_line(self, M.format_row(values, #self.columns))
end

--- Writes the header row if no row was written (so that even an empty
-- report has its header), then flushes. The handle stays open: it belongs
-- to the caller.
-- @treturn[1] true
-- @return[2] nil, error message from the handle
function Writer:close()
  local ok, err = header(self)
  if not ok then
    return nil, err
  end
  return handle.flush(self.fh)
end

return M
