-- SPDX-License-Identifier: MIT

--- Command-line helpers on lua-argparse for scripts and bundled commands.
--
-- argparse's own `parse` prints and calls `os.exit` on `--help` and on
-- errors; inside icmprun only `main` ends the process, so these helpers
-- turn both into return values:
--
--     local cli = require "icmprun.cli"
--     local parser = cli.parser("discover", "Find the live hosts of a block.")
--     parser:argument("cidr", "Block to sweep.")
--     local args, msg, status = cli.parse(parser, arg)
--     if not args then return cli.fail("discover", msg, status) end
--
-- or, in one call, `local args, status = cli.handle(parser, arg)`.
-- @module icmprun.cli
local argparse = require "argparse"
local duration = require "icmprun.duration"

local M = {}

local error, pcall, setmetatable, tostring, type = error, pcall, setmetatable, tostring, type
local io_stderr, io_stdout = io.stderr, io.stdout

-- Parser -> {help = text} while a --help is being handled. Weak keys: a
-- parser that is dropped takes its entry with it.
local help_requests = setmetatable({}, { __mode = "k" })

-- Parser -> the name given to cli.parser, for handle's messages.
local names = setmetatable({}, { __mode = "k" })

-- The last help text handed out by parse, so that fail prints it (to
-- stdout, with status 0) even when its caller passed another status.
local last_help = nil

-- The message argparse raises (as a string) to stop at --help.
local HELP_SIGNAL = "icmprun.cli: help requested"

-- Replaces the -h/--help flag of a parser or command with one that records
-- the help text and stops the parse instead of printing and exiting.
local function install_help(p, root)
  p:add_help({
    action = function()
      help_requests[root] = { help = p:get_help() }
      error(HELP_SIGNAL, 0)
    end,
  })
  return p
end

--- A new argparse parser whose `-h/--help` does not exit (see `parse`).
-- @tparam string name the program's name, as usage lines show it
-- @tparam[opt] string description
-- @tparam[opt] string epilog text after the options in --help
-- @return an argparse parser
function M.parser(name, description, epilog)
  if type(name) ~= "string" then
    error("cli.parser: name must be a string, got " .. type(name), 2)
  end
  local p = argparse(name, description, epilog)
  names[p] = name
  return install_help(p, p)
end

--- Adds a subcommand whose `-h/--help` does not exit either.
-- @param parser a parser from `cli.parser`
-- @tparam string name
-- @tparam[opt] string description
-- @return the argparse command
function M.command(parser, name, description)
  if type(name) ~= "string" then
    error("cli.command: name must be a string, got " .. type(name), 2)
  end
  local root = parser._icmprun_root or parser
  local c = parser:command(name, description)
  c._icmprun_root = root
  return install_help(c, root)
end

--- Parses a command line without exiting.
-- @param parser a parser from `cli.parser`
-- @tparam table argv the arguments, `argv[1]` first (such as `arg`; `arg[0]`
--   and negative indices are ignored)
-- @treturn[1] table the parsed arguments
-- @return[2] nil, the help text, 0: `-h/--help` was given (print the text to
--   stdout and exit with 0, which `fail` does)
-- @return[3] nil, the error message (such as "unknown option '-x'"), 2
function M.parse(parser, argv)
  if type(parser) ~= "table" or type(parser.pparse) ~= "function" then
    error("cli.parse: argparse parser expected, got " .. type(parser), 2)
  end
  if type(argv) ~= "table" then
    error("cli.parse: argument list expected, got " .. type(argv), 2)
  end
  local args = {}
  for i = 1, #argv do
    args[i] = tostring(argv[i])
  end
  help_requests[parser] = nil
  local ok, parsed, result = pcall(parser.pparse, parser, args)
  local help = help_requests[parser]
  help_requests[parser] = nil
  if help then
    last_help = help.help
    return nil, help.help, 0
  end
  if not ok then
    error(parsed, 0) -- an error in an action of the caller's: not ours to hide
  end
  if not parsed then
    return nil, result, 2
  end
  return result
end

--- Reports a failure: writes "NAME: message" to stderr and returns `code`
-- (default 2) for the caller to return or exit with. When `message` is a
-- help text from `parse` (or `code` is 0), it is written to stdout as it is
-- and 0 is returned instead, so `cli.fail(name, msg, 1)` after `parse` does
-- the right thing for `--help` too.
-- @tparam string name
-- @tparam string message
-- @tparam[opt=2] integer code
-- @treturn integer the exit status
function M.fail(name, message, code)
  message = tostring(message)
  if code == 0 or message == last_help then
    io_stdout:write(message, message:sub(-1) == "\n" and "" or "\n")
    return 0
  end
  io_stderr:write(tostring(name), ": ", message, "\n")
  return code or 2
end

--- `parse`, then `fail` on help or error: the parsed arguments, or nil and
-- the exit status (0 after --help; `code`, default 2, after an error).
-- @param parser a parser from `cli.parser`
-- @tparam table argv
-- @tparam[opt=2] integer code the status for a usage error
-- @treturn[1] table the parsed arguments
-- @return[2] nil, exit status
function M.handle(parser, argv, code)
  local args, message, status = M.parse(parser, argv)
  if args then
    return args
  end
  local name = names[parser] or parser._name
  if status == 0 then
    return nil, M.fail(name, message, 0)
  end
  return nil, M.fail(name, message, code or status)
end

--- An argparse converter for a number in [min, max], an integer if asked,
-- whose message names the option, the value and the range.
-- @tparam string option the option's name, as the user types it
-- @tparam number min
-- @tparam number max
-- @tparam boolean integral
-- @treturn function for `parser:option(...):convert(...)`
function M.number_in(option, min, max, integral)
  return function(text)
    local x = tonumber(text)
    if integral and x then
      x = math.tointeger(x)
    end
    if x == nil or x ~= x or x < min or x > max then
      return nil, string.format("option '%s': invalid argument '%s': %s %s to %s", option,
        text, integral and "an integer from" or "a number from", min, max)
    end
    return x
  end
end

--- An argparse converter for a duration: a bare number in the command's own
-- historical `unit` ("s" or "ms"), or a number with a unit (`250us`, `500ms`,
-- `2s`, `1.5m`, `1h`), so that one spelling works in every command. The
-- value is returned in `unit`, and must lie in [min, max] of that unit.
-- (`icmprun.duration` reads it, as the library's options are read.)
-- @tparam string option the option's name, as the user types it
-- @tparam string unit "s" or "ms": the unit of bare numbers and of the result
-- @tparam number min
-- @tparam number max
-- @treturn function for `parser:option(...):convert(...)`
function M.duration_in(option, unit, min, max)
  if not duration.UNITS[unit] then
    error("cli.duration_in: unit must be one of us, ms, s, m, h, got " .. tostring(unit), 2)
  end
  return function(text)
    local x = duration.parse(text, unit)
    if x == nil or x ~= x or x < min or x > max then
      return nil, string.format("option '%s': invalid duration '%s': a number of %s, or a "
        .. "number with a unit (us, ms, s, m, h), from %s%s to %s%s", option, text,
        unit == "s" and "seconds" or "milliseconds", min, unit, max, unit)
    end
    return x
  end
end

return M
