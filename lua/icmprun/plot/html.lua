-- SPDX-License-Identifier: MIT

--- Self-contained HTML pages: inline SVG, inline style, a sortable table,
-- and a Content-Security-Policy that forbids every fetch, so a page that
-- loads at all has loaded everything it needs from itself.
-- @module icmprun.plot.html
local svg = require "icmprun.plot.svg"

local M = {}

local ipairs, string_format, type = ipairs, string.format, type
local escape = svg.escape

-- Nothing may be fetched: no scripts, styles, images, fonts or connections
-- from anywhere; only the inline style and script of the page itself.
local CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
  .. "img-src data:"

local STYLE = [[
body { font-family: sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.5em; }
table.stats { border-collapse: collapse; margin: 1em 0; }
table.stats th, table.stats td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
table.stats th { background: #eee; cursor: pointer; user-select: none; }
table.stats td:first-child, table.stats th:first-child { text-align: left; }
table.stats th.asc::after { content: " \25B2"; } table.stats th.desc::after { content: " \25BC"; }
.figure { margin: 0.5em 0; } .note { color: #666; font-size: 0.9em; }
nav a { margin-right: 0.6em; }
]]

-- Sorts a table.stats by the clicked column: numbers by data-value, text
-- otherwise; a second click reverses.
local SCRIPT = [[
(function () {
  function key(cell) {
    var v = cell.getAttribute("data-value");
    return v === null ? cell.textContent : (v === "" ? Infinity : parseFloat(v));
  }
  document.querySelectorAll("table.stats").forEach(function (table) {
    var heads = table.querySelectorAll("thead th");
    heads.forEach(function (th, col) {
      th.addEventListener("click", function () {
        var asc = !th.classList.contains("asc");
        heads.forEach(function (h) { h.classList.remove("asc", "desc"); });
        th.classList.add(asc ? "asc" : "desc");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[col]), y = key(b.cells[col]);
          var c = (typeof x === "number" && typeof y === "number") ? x - y :
            String(x).localeCompare(String(y));
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
]]

--- A whole HTML document.
-- @tparam string title
-- @tparam string body HTML
-- @tparam[opt] table opts `refresh` (seconds: the page reloads itself)
-- @treturn string
function M.page(title, body, opts)
  local refresh = ""
  if opts and type(opts.refresh) == "number" then
    refresh = string_format('<meta http-equiv="refresh" content="%d">\n', opts.refresh)
  end
  -- The empty data: icon keeps the browser from asking the server for
  -- /favicon.ico: opening the page makes no request at all.
  return string_format('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
    .. '<meta http-equiv="Content-Security-Policy" content="%s">\n'
    .. '<link rel="icon" href="data:,">\n%s'
    .. '<title>%s</title>\n<style>%s</style></head>\n<body>\n%s\n<script>%s</script>\n'
    .. '</body></html>\n', CSP, refresh, escape(title), STYLE, body, SCRIPT)
end

local function cell(value, fmt)
  if value == nil then
    return '<td data-value="">-</td>'
  end
  return string_format('<td data-value="%.10g">%s</td>', value, string_format(fmt, value))
end

--- The statistics table of some targets, one row each, sortable by any
-- column (a click on its head).
-- @tparam table rows a list of `{label = string, stats = Stats}`
-- @treturn string HTML
function M.stats_table(rows)
  local b = svg.buffer()
  b:add('<table class="stats"><thead><tr><th>target</th><th>sent</th><th>received</th>'
    .. '<th>loss %</th><th>min ms</th><th>avg ms</th><th>median ms</th><th>p95 ms</th>'
    .. '<th>max ms</th><th>mdev ms</th></tr></thead>\n<tbody>\n')
  for _, row in ipairs(rows) do
    local s = row.stats
    local min, avg, max, mdev = s:summary()
    b:addf('<tr class="target" data-target="%s"><td>%s</td>', escape(row.key or row.label),
      escape(row.label))
    b:add(cell(s.sent, "%d"), cell(s.received, "%d"), cell(s:loss(), "%.2f"),
      cell(min, "%.3f"), cell(avg, "%.3f"), cell(s:percentile(50), "%.3f"),
      cell(s:percentile(95), "%.3f"), cell(max, "%.3f"), cell(mdev, "%.3f"), "</tr>\n")
  end
  b:add("</tbody></table>\n")
  return b:concat()
end

return M
