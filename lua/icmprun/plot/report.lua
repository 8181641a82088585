-- SPDX-License-Identifier: MIT

--- The HTML pages of `icmprun plot`: the latency report (every panel's
-- SVG inline and a sortable statistics table) and the map page.
-- @module icmprun.plot.report
local axis = require "icmprun.plot.axis"
local html = require "icmprun.plot.html"
local latency = require "icmprun.plot.latency"
local svg = require "icmprun.plot.svg"

local M = {}

local ipairs, string_format = ipairs, string.format
local escape = svg.escape

--- The self-contained HTML report of a latency model (`Graph:model()`).
-- @tparam table model
-- @tparam[opt] table opts `title`, and `panel_svg`'s options
-- @treturn string
function M.latency(model, opts)
  opts = opts or {}
  local title = opts.title or "icmprun latency report"
  local b = svg.buffer()
  b:addf("<h1>%s</h1>\n", escape(title))
  if model.t0 then
    b:addf('<p class="note">%d results, %d targets, from %s to %s UTC, buckets of %s.</p>\n',
      model.results, #model.panels, os.date("!%Y-%m-%d %H:%M:%S", math.floor(model.t0)),
      os.date("!%Y-%m-%d %H:%M:%S", math.floor(model.t1)), axis.duration(model.step))
  else
    b:add('<p class="note">No results.</p>\n')
  end
  b:add("<h2>Targets</h2>\n")
  b:add(html.stats_table(model.panels))
  b:add("<h2>Latency</h2>\n")
  for i, doc in ipairs(latency.panel_documents(model, opts)) do
    b:addf('<div class="figure" id="panel-%d">%s</div>\n', i, doc)
  end
  return html.page(title, b:concat())
end

--- The HTML page of a map (`map.new(...)`, results added).
-- @tparam table map
-- @treturn string
function M.map(map)
  local title = "icmprun map of " .. map.prefix.text
  return html.page(title, string_format('<h1>%s</h1>\n<div class="figure">%s</div>\n',
    escape(title), map:svg()))
end

return M
