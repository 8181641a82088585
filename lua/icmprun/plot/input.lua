-- SPDX-License-Identifier: MIT

--- Reads result records, one JSON object per line, from a file or stdin,
-- one line at a time (never the whole input at once).
--
-- The lines are those of `icmprun.report.jsonl` (the schema is in that
-- module and in the README): lines whose `type` is `"result"` are results;
-- summary lines and other records are skipped; blank lines too. A line
-- without a `type` but with a `status` is taken as a result, for scripts
-- that write their own JSON. A line that is not a JSON object stops the
-- read with a message naming the file and the line.
-- @module icmprun.plot.input
local cjson = require "cjson"

local M = {}

local io_open, io_stdin, pcall, type = io.open, io.stdin, pcall, type
local string_find, string_format, string_sub = string.find, string.format, string.sub

-- A private cjson instance: its settings do not leak to other users.
local json = cjson.new()

local decode = json.decode
-- JSON's null: a light userdata, which the consumers' type checks refuse.
local null = json.null

-- The shortened text of a bad line for a message.
local function excerpt(line)
  if #line > 60 then
    return string_sub(line, 1, 57) .. "..."
  end
  return line
end

--- Calls `fn(result, line_number)` for each result line of `source`.
-- @param source a file name, `"-"` for stdin, or an open file handle
-- @tparam function fn called with each decoded result table; what it raises
--   is raised from `read` too
-- @treturn[1] integer the number of results read
-- @return[2] nil, message (a file that cannot be opened or a bad line)
function M.read(source, fn)
  if type(fn) ~= "function" then
    error("input.read: function expected, got " .. type(fn), 2)
  end
  local fh, name
  if source == "-" or source == nil then
    fh, name = io_stdin, "stdin"
  elseif type(source) == "string" then
    local err
    fh, err = io_open(source, "rb")
    if not fh then
      return nil, err
    end
    name = source
  elseif io.type(source) == "file" then
    fh, name = source, "input"
  else
    error("input.read: file name or file handle expected, got " .. type(source), 2)
  end
  local count, lineno = 0, 0
  for line in fh:lines() do
    lineno = lineno + 1
    if string_find(line, "%S") then
      local ok, record = pcall(decode, line)
      if not ok or type(record) ~= "table" then
        if fh ~= io_stdin and type(source) == "string" then fh:close() end
        return nil, string_format("%s:%d: not a JSON object: %s", name, lineno, excerpt(line))
      end
      local kind = record.type
      if kind == "result" or (kind == nil and record.status ~= nil and record.status ~= null) then
        count = count + 1
        fn(record, lineno)
      end
    end
  end
  if fh ~= io_stdin and type(source) == "string" then
    fh:close()
  end
  return count
end

return M
