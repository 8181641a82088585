-- SPDX-License-Identifier: MIT

--- `icmprun mtr`'s live view: the hop table redrawn in place on a terminal.
--
-- It runs until `q`, or for `-c` rounds when given (then it leaves as `q`
-- does, as mtr's display does).
--
-- The screen is redrawn every interval (at most every second, at least every
-- tenth of a second) from the trace's live hop records. Keys, read raw from
-- the terminal through luv: `q` quits, `p` pauses and resumes the rounds,
-- `r` resets the statistics; Ctrl-C (the key, or SIGINT) leaves the view and
-- prints the report of what was measured, as `-r` would have.
-- @module icmprun.commands.mtr.live
local icmprun = require "icmprun"
local uv = require "luv"
local mtr_report = require "icmprun.report.mtr"

local M = {}

local io_stdout, string_format, table_concat = io.stdout, string.format, table.concat

local ENTER = "\27[?1049h\27[?25l" -- the alternate screen, no cursor
local LEAVE = "\27[?25h\27[?1049l"

-- The lines of one screen, `cols` wide.
local function screen(tr, args, cols, paused)
  local fields = mtr_report.fields_header()
  local host_width = cols - #fields - 5
  if host_width < 16 then
    host_width = 16
  end
  local lines = {
    string_format("%" .. (cols // 2 + 16) .. "s", "My traceroute  [icmprun " .. icmprun.version .. "]"),
    string_format("%s -> %s (%s)    %s", (uv.os_gethostname() or "localhost"), args.host,
      tr.addr, os.date("%Y-%m-%dT%H:%M:%S%z")),
    "Keys:  q quit   p pause/resume   r reset statistics" .. (paused and "   [paused]" or ""),
    string_format(" %-" .. (host_width + 3) .. "s%s", "Host", fields),
  }
  for _, hop in ipairs(mtr_report.shown(tr:hops(), tr.end_ttl)) do
    local name = hop.addr or "???"
    lines[#lines + 1] = string_format(" %2d. %-" .. host_width .. "s", hop.ttl,
      name:sub(1, host_width)) .. mtr_report.fields_line(mtr_report.stat(hop))
  end
  return lines
end

local function draw(lines)
  io_stdout:write("\27[H", table_concat(lines, "\27[K\r\n"), "\27[K\r\n\27[J")
  io_stdout:flush()
end

--- Runs the view until `q` or Ctrl-C; returns the exit status.
-- @param tr the trace (`count = math.huge`)
-- @tparam function it its iterator
-- @tparam table args the command's parsed options
-- @tparam table t `start` and `print_report(tr, args, t)`
function M.run(tr, it, args, t)
  local input = uv.new_tty(0, true)
  local output = uv.new_tty(1, false)
  local cols = 80
  local ended = nil -- "quit" or "report"
  local dirty = true
  if output then
    local w = output:get_winsize()
    cols = w or cols
  end
  if input then
    input:set_mode(1) -- raw: keys one at a time, Ctrl-C as a key
    input:read_start(function(err, data)
      if err or not data then
        ended = ended or "quit"
        return
      end
      for key in data:gmatch(".") do
        if key == "q" or key == "Q" then
          ended = ended or "quit"
        elseif key == "\3" then
          ended = ended or "report"
        elseif key == "p" or key == "P" then
          if tr.paused then tr:resume() else tr:pause() end
        elseif key == "r" or key == "R" then
          tr:reset()
        end
        dirty = true
      end
    end)
  end
  icmprun.on_signal("INT", function() ended = ended or "report" end)

  -- The iterator is drained so that handed-out probes do not pile up.
  icmprun.spawn(function()
    while it(tr) do end
  end)

  io_stdout:write(ENTER)
  local period = math.max(100, math.min(1000, args.interval * 1000))
  local next_draw = icmprun.now()
  -- Keys are read by a luv callback, outside any task: it only sets flags,
  -- which this loop looks at every 50 ms. Whatever goes wrong in it, the
  -- terminal is given back before the error goes on.
  local ok, err = pcall(function()
    while not ended and not tr.failure do
      -- With -c, the view ends once the last round's probes have ended.
      if tr.finished then
        draw(screen(tr, args, cols, tr.paused))
        ended = "quit"
        break
      end
      if dirty or icmprun.now() >= next_draw then
        draw(screen(tr, args, cols, tr.paused))
        dirty = false
        next_draw = icmprun.now() + period
      end
      icmprun.sleep(50)
    end
  end)
  tr:stop()
  io_stdout:write(LEAVE)
  io_stdout:flush()
  if input then
    input:read_stop()
    uv.tty_reset_mode()
    input:close()
  end
  if output then
    output:close()
  end
  icmprun.on_signal("INT", nil)
  if not ok then
    error(err, 0)
  end
  if tr.failure then
    io.stderr:write("mtr: ", tr.failure, "\n")
    os.exit(1)
  end
  if ended == "report" then
    t.print_report(tr, args, t)
  end
  -- Probes still in flight are not waited for: mtr leaves at once too.
  io_stdout:flush()
  os.exit(0)
end

return M
