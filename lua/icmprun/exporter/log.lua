-- SPDX-License-Identifier: MIT

--- The exporter's log lines, as smokeping_prober writes them (go-kit's
-- promlog): `--log.level` (debug, info, warn, error) and `--log.format`
-- (logfmt or json), one line a record on stderr.
--
--     ts=2026-11-28T23:10:00.123Z caller=exporter level=info msg="probing 3 target(s)"
--     {"ts":"2026-11-28T23:10:00.123Z","caller":"exporter","level":"info","msg":"..."}
--
-- A record is a message and optional fields (a list of name, value pairs,
-- kept in order). A write that fails (stderr closed, a full disk) is
-- dropped: logging never ends the process.
-- @module icmprun.exporter.log
local M = {}

local LEVELS = { debug = 1, info = 2, warn = 3, error = 4 }

--- The accepted levels and formats, for flags' checks.
M.LEVELS = { "debug", "info", "warn", "error" }
M.FORMATS = { "logfmt", "json" }

-- RFC 3339 time in UTC with milliseconds, from luv's wall clock.
local function timestamp()
  local uv = require "luv"
  local sec, usec = uv.gettimeofday()
  return os.date("!%Y-%m-%dT%H:%M:%S", sec) .. string.format(".%03dZ", usec // 1000)
end

-- A logfmt value: bare when it is a plain word, quoted and escaped otherwise.
local function logfmt_value(value)
  value = tostring(value)
  if value ~= "" and not value:find('[%s"=\\%c]') then
    return value
  end
  return '"' .. value:gsub('[\\"]', "\\%0"):gsub("\n", "\\n"):gsub("%c", function(c)
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

-- A JSON string.
local function json_value(value)
  return '"' .. tostring(value):gsub('[\\"]', "\\%0"):gsub("%c", function(c)
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

--- Formats one record.
-- @tparam string format "logfmt" or "json"
-- @tparam string level
-- @tparam string msg
-- @tparam[opt] {string,...} fields name, value, name, value...
-- @tparam[opt] string ts the time (default now)
-- @treturn string the line, without its newline
function M.format(format, level, msg, fields, ts)
  local pairs_ = { "ts", ts or timestamp(), "caller", "exporter", "level", level, "msg", msg }
  for i = 1, #(fields or {}), 2 do
    pairs_[#pairs_ + 1] = fields[i]
    pairs_[#pairs_ + 1] = fields[i + 1]
  end
  local out = {}
  if format == "json" then
    for i = 1, #pairs_, 2 do
      out[#out + 1] = json_value(pairs_[i]) .. ":" .. json_value(pairs_[i + 1])
    end
    return "{" .. table.concat(out, ",") .. "}"
  end
  for i = 1, #pairs_, 2 do
    out[#out + 1] = pairs_[i] .. "=" .. logfmt_value(pairs_[i + 1])
  end
  return table.concat(out, " ")
end

--- A logger.
-- @tparam[opt] table opts `level` (default "info"), `format` (default
--   "logfmt"), `write` (a function taking a line; default: stderr)
-- @treturn[1] table with `debug`, `info`, `warn`, `error`: functions of
--   (msg, fields), and `enabled(level)`
-- @treturn[2] nil, string what is wrong
function M.new(opts)
  opts = opts or {}
  local level, format = opts.level or "info", opts.format or "logfmt"
  if not LEVELS[level] then
    return nil, "log level '" .. tostring(level) .. "' is not one of debug, info, warn, error"
  end
  if format ~= "logfmt" and format ~= "json" then
    return nil, "log format '" .. tostring(format) .. "' is not logfmt or json"
  end
  local write = opts.write or function(line)
    pcall(io.stderr.write, io.stderr, line, "\n")
  end
  local logger = {}
  function logger.enabled(at)
    return LEVELS[at] >= LEVELS[level]
  end
  for name in pairs(LEVELS) do
    logger[name] = function(msg, fields)
      if LEVELS[name] >= LEVELS[level] then
        pcall(write, M.format(format, name, msg, fields))
      end
    end
  end
  return logger
end

return M
