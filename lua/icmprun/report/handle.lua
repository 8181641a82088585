-- SPDX-License-Identifier: MIT

--- What the report writers (CSV, JSON lines) share about the file handle
-- they write to: the checks of their constructor's arguments, and flushing.
-- @module icmprun.report.handle
local M = {}

local error, type = error, type

--- Checks a writer constructor's handle and options; raises at the
-- constructor's caller, naming the constructor.
-- @tparam string name such as "csv.new"
-- @param fh anything with `write` (and `flush`), such as `io.stdout`
-- @param opts nil or a table
-- @treturn table opts, or an empty table
function M.check(name, fh, opts)
  if (type(fh) ~= "userdata" and type(fh) ~= "table") or fh.write == nil then
    error(name .. ": file handle expected, got " .. type(fh), 3)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(name .. ": options must be a table, got " .. type(opts), 3)
  end
  return opts or {}
end

--- Flushes a handle that can be flushed.
-- @treturn[1] true
-- @return[2] nil, error message from the handle
function M.flush(fh)
  if fh.flush then
    local ok, err = fh:flush()
    if not ok then
      return nil, err
    end
  end
  return true
end

return M
