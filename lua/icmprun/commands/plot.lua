-- SPDX-License-Identifier: MIT

--- `icmprun plot`: pictures of JSON lines results.
--
--     icmprun plot latency [FILE] [-o OUT.svg|.html] [--target ADDR] [--buckets N | --step S]
--     icmprun plot map [FILE] [-o OUT.svg|.html|.png] [--prefix CIDR] [--size N] [--color rtt]
--     icmprun plot report [FILE] -o OUT.html      (latency, as an HTML report)
--
-- FILE (default `-`, stdin) holds the JSON lines of `icmprun sweep --json`
-- or `icmprun.report.jsonl`; it is read one line at a time. The format of
-- the output follows OUT's extension (`--format` overrides it); without
-- `-o` an SVG goes to stdout.
--
-- Exit status: 0 when the picture was written, 2 on a usage error, an
-- unreadable input or a bad line (its number is named), 1 when the output
-- cannot be written.
-- @module icmprun.commands.plot
local cli = require "icmprun.cli"
local plot = require "icmprun.plot"

local M = {}

M.summary = "draw JSON lines results: latency graphs, a map of a block, an HTML report"

local io_stdout, string_format = io.stdout, string.format

local function build_parser(name)
  local parser = cli.parser(name, "Draw pictures of JSON lines results (icmprun sweep --json).",
    "Exit status: 0 when the picture was written, 1 when it could not be written, 2 on a "
    .. "usage error or a bad input line.")
  parser:help_max_width(80)
  parser:command_target("command")
  parser:require_command(true)
  local function common(c)
    c:argument("input", "JSON lines file ('-': stdin).", "-")
    c:option("-o --output", "Output file; its extension picks the format.")
    c:option("-f --format", "Output format, overriding the extension.")
    return c
  end
  local latency = common(cli.command(parser, "latency", "SmokePing-style graph per target "
    .. "(median coloured by loss, percentiles as smoke)."))
  latency:option("--target", "Only this target (its address).")
  latency:option("--buckets", "Most time buckets per graph (default 150).")
    :convert(cli.number_in("--buckets", 10, 100000, true))
  latency:option("--step", "Fixed bucket size in seconds, or 500ms, 5m... (instead "
    .. "of --buckets).")
    :convert(cli.duration_in("--step", "s", 0.001, 1e9))
  local report = common(cli.command(parser, "report", "The latency graphs and a sortable "
    .. "statistics table as one self-contained HTML file."))
  report:option("--target", "Only this target (its address).")
  report:option("--buckets", "Most time buckets per graph (default 150).")
    :convert(cli.number_in("--buckets", 10, 100000, true))
  report:option("--step", "Fixed bucket size in seconds, or 500ms, 5m... (instead "
    .. "of --buckets).")
    :convert(cli.duration_in("--step", "s", 0.001, 1e9))
  local map = common(cli.command(parser, "map", "A swept block on a Hilbert curve, cells "
    .. "coloured by status or RTT."))
  map:option("--prefix", "The block to draw (default: the first result's target).")
  map:option("--size", "Most cells a side (a power of two; larger blocks are downsampled).",
    "256"):convert(function(text)
      local n = math.tointeger(tonumber(text))
      if not n or n < 1 or n > plot.map.MAX_SIZE or n & (n - 1) ~= 0 then
        return nil, string_format("option '--size': invalid argument '%s': a power of two "
          .. "from 1 to %d", text, plot.map.MAX_SIZE)
      end
      return n
    end)
  map:option("--color", "Colour cells by 'status' or by mean 'rtt'.", "status")
    :choices({ "status", "rtt" })
  return parser
end

-- The output format: --format, else the extension of -o, else svg.
local function format_of(args, allowed)
  local format = args.format
  if not format and args.output then
    format = args.output:match("%.(%w+)$")
    format = format and format:lower()
  end
  format = format or "svg"
  for _, f in ipairs(allowed) do
    if f == format then return format end
  end
  return nil, string_format("cannot write '%s' here: the formats are %s", format,
    table.concat(allowed, ", "))
end

-- Reads every result into `sink(r)`; nil and a message naming the line on
-- a bad line or a result the picture cannot use.
local function read_into(input, sink)
  local line = 0
  local ok, count, err = pcall(plot.read, input, function(r, n)
    line = n
    local added, why = sink(r)
    if added == nil and why then
      error(why, 0)
    end
  end)
  if not ok then
    local message = tostring(count):gsub("^[^\n]-:%d+: ", ""):gsub("^latency:add: ", "")
    return nil, string_format("%s:%d: %s", input == "-" and "stdin" or input, line, message)
  end
  if not count then
    return nil, err
  end
  return count
end

-- Writes the picture to -o or stdout.
local function write_output(path, data)
  if not path or path == "-" then
    io_stdout:write(data)
    return true
  end
  local fh, err = io.open(path, "wb")
  if not fh then
    return nil, err
  end
  local written, werr = fh:write(data)
  local closed, cerr = fh:close()
  if not written or not closed then
    return nil, string_format("%s: %s", path, tostring(werr or cerr))
  end
  return true
end

local function run_latency(name, args, html_only)
  local format, ferr = format_of(args, html_only and { "html" } or { "svg", "html" })
  if html_only and not args.format and not args.output then format, ferr = "html", nil end
  if not format then return cli.fail(name, ferr, 2) end
  if args.step and args.buckets then
    return cli.fail(name, "give --buckets or --step, not both", 2)
  end
  local graph = plot.latency.new({ buckets = args.buckets, step = args.step })
  local count, err = read_into(args.input, function(r) graph:add(r) end)
  if not count then return cli.fail(name, err, 2) end
  local model = graph:model(args.target)
  if args.target and #model.panels == 0 then
    return cli.fail(name, string_format("no results for target '%s'", args.target), 2)
  end
  local data
  if format == "html" then
    data = plot.report.latency(model)
  else
    data = plot.latency.svg(model)
  end
  local ok, werr = write_output(args.output, data)
  if not ok then return cli.fail(name, werr, 1) end
  return 0
end

local function run_map(name, args)
  local format, ferr = format_of(args, { "svg", "html", "png" })
  if not format then return cli.fail(name, ferr, 2) end
  if format == "png" then
    local usable, why = plot.png.available()
    if not usable then return cli.fail(name, why, 2) end
  end
  local map, merr = plot.map.new({ prefix = args.prefix, size = args.size, color = args.color })
  if not map then return cli.fail(name, merr, 2) end
  local count, err = read_into(args.input, function(r) return map:add(r) end)
  if not count then return cli.fail(name, err, 2) end
  if not map.prefix then
    return cli.fail(name, "no results to map, and no --prefix", 2)
  end
  local data
  if format == "html" then
    data = plot.report.map(map)
  elseif format == "png" then
    data = assert(plot.png.map(map))
  else
    data = map:svg()
  end
  local ok, werr = write_output(args.output, data)
  if not ok then return cli.fail(name, werr, 1) end
  return 0
end

--- Runs the command.
-- @tparam table arg the command line (arg[0] is the command's name)
-- @treturn integer exit status
function M.run(arg)
  local name = tostring(arg[0] or "plot"):match("([^/]*)$")
  local args, status = cli.handle(build_parser(name), arg)
  if not args then
    return status
  end
  local sub = name .. " " .. args.command
  if args.command == "map" then
    return run_map(sub, args)
  end
  return run_latency(sub, args, args.command == "report")
end

return M
