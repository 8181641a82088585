-- SPDX-License-Identifier: MIT

--- Pictures of results: SmokePing-style latency graphs, Hilbert-curve maps
-- of swept blocks, and self-contained HTML reports, all written as text
-- (SVG and HTML; PNG for maps when lua-zlib is installed).
--
--     local plot = require "icmprun.plot"
--     local g = plot.latency.new()               -- or plot.map.new{prefix = ...}
--     assert(plot.read("results.jsonl", function(r) g:add(r) end))
--     io.open("latency.svg", "w"):write(g:svg())
--     io.open("report.html", "w"):write(plot.report.latency(g:model()))
--
-- Results may also come straight from `icmprun.sweep` or `ping` (give
-- `plot.latency.new` a `clock` for their times).
-- @module icmprun.plot
local M = {}

--- `icmprun.plot.latency`: per-target latency graphs.
M.latency = require "icmprun.plot.latency"
--- `icmprun.plot.map`: Hilbert-curve maps of a block.
M.map = require "icmprun.plot.map"
--- `icmprun.plot.report`: the HTML pages.
M.report = require "icmprun.plot.report"
--- `icmprun.plot.png`: PNG images of maps (nil without lua-zlib).
M.png = require "icmprun.plot.png"

--- Reads result lines (JSON lines) from a file name, `"-"` (stdin) or a
-- handle, calling `fn(result, line_number)` for each; see
-- `icmprun.plot.input`.
M.read = require("icmprun.plot.input").read

return M
