-- SPDX-License-Identifier: MIT

--- icmprun.progress: what it draws, how often, and that it stays silent
-- when disabled or when its stream is not a terminal.
local progress = require "icmprun.progress"
local cli = require "cli"

--- A stream in memory that records each write.
local function memory_stream()
  local s = { writes = {} }
  function s:write(...)
    self.writes[#self.writes + 1] = table.concat({ ... })
    return self
  end
  function s.flush() end
  function s:text()
    return table.concat(self.writes)
  end
  return s
end

--- A clock the test moves by hand.
local function manual_clock()
  local c = { t = 100 }
  c.now = function() return c.t end
  return c
end

describe("icmprun.progress", function()
  it("draws done/total, rate and ETA, in place", function()
    local stream, clock = memory_stream(), manual_clock()
    local p = progress.new({ total = 100, stream = stream, enabled = true, clock = clock.now })
    p:update(0)
    assert.equal("\r0/100 (0%)  0.0/s  ETA ?", stream:text())
    clock.t = clock.t + 2
    p:update(50)
    -- 50 done in 2 s: 25 per second, 50 left: 2 s.
    assert.equal("\r50/100 (50%)  25.0/s  ETA 2s", stream.writes[2])
  end)

  it("redraws at most every interval", function()
    local stream, clock = memory_stream(), manual_clock()
    local p = progress.new({ total = 9, stream = stream, enabled = true, clock = clock.now,
      interval = 0.5 })
    p:update(1)
    for i = 2, 8 do
      clock.t = clock.t + 0.125 -- exact in binary, so the test is too
      p:update(i)
    end
    -- Drawn at t = 0 and t = 0.5 (i = 5), not at every update.
    assert.equal(2, #stream.writes)
    assert.matches("^\r5/9 ", stream.writes[2])
    clock.t = clock.t + 0.5
    p:tick()
    assert.equal(3, #stream.writes)
    assert.matches("^\r9/9 %(100%%%)  .*ETA 0s$", stream.writes[3])
  end)

  it("blanks out what is left of a longer line", function()
    local stream, clock = memory_stream(), manual_clock()
    local p = progress.new({ stream = stream, enabled = true, clock = clock.now, interval = 0 })
    clock.t = clock.t + 1
    p:update(123456)
    clock.t = clock.t + 1000
    p:update(123457)
    local first, second = stream.writes[1], stream.writes[2]
    assert.equal("\r123456  123k/s", first)
    -- 123457 in 1001 s: 123 per second, a character shorter, blanked.
    assert.equal("\r123457  123/s ", second)
  end)

  it("clears the line when finished and is silent after", function()
    local stream, clock = memory_stream(), manual_clock()
    local p = progress.new({ total = 4, stream = stream, enabled = true, clock = clock.now })
    p:update(1)
    local width = #stream.writes[1] - 1
    p:finish()
    assert.equal("\r" .. string.rep(" ", width) .. "\r", stream.writes[2])
    clock.t = clock.t + 10
    p:update(2)
    p:finish()
    assert.equal(2, #stream.writes)
  end)

  it("blanks the line on clear and draws it again at the next redraw", function()
    local stream, clock = memory_stream(), manual_clock()
    local p = progress.new({ total = 4, stream = stream, enabled = true, clock = clock.now })
    p:update(1)
    local width = #stream.writes[1] - 1
    p:clear()
    assert.equal("\r" .. string.rep(" ", width) .. "\r", stream.writes[2])
    p:clear() -- nothing on screen: nothing to blank
    p:update(2) -- within the interval: not yet
    assert.equal(2, #stream.writes)
    clock.t = clock.t + 1
    p:update(3)
    assert.matches("^\r3/4 ", stream.writes[3])
    p:finish()
    p:clear()
    assert.equal(4, #stream.writes)
  end)

  it("finishes without output when nothing was drawn", function()
    local stream = memory_stream()
    progress.new({ stream = stream, enabled = true, clock = os.clock }):finish()
    assert.equal("", stream:text())
  end)

  it("is silent when disabled", function()
    local stream = memory_stream()
    local p = progress.new({ total = 3, stream = stream, enabled = false })
    p:update(1)
    p:tick()
    p:finish()
    assert.equal("", stream:text())
    assert.equal(2, p.done)
  end)

  it("is disabled by default on a stream that is not a terminal", function()
    assert.is_false(progress.new({ stream = memory_stream() }).enabled)
    -- stderr is a file here, as in any run whose stderr is redirected.
    local r = cli.sh(string.format("%s -e %s 2>/dev/null", cli.quote(cli.lua), cli.quote(
      'package.path = "lua/?.lua;" .. package.path; ' ..
      'local p = require("icmprun.progress").new{ total = 1 }; ' ..
      'p:update(1); p:finish(); print(p.enabled, require("icmprun.progress").is_terminal(io.stderr))')))
    assert.equal(0, r.code, r.stderr)
    assert.equal("false\tfalse\n", r.stdout)
  end)

  it("has a monotonic default clock in seconds", function()
    local clock = progress.default_clock()
    local a = clock()
    local b = clock()
    assert.is_number(a)
    assert.is_true(b >= a)
    -- The specs run with icmprun.so on LUA_CPATH: a failed require is a
    -- broken build, never a reason to skip the comparison.
    local icmprun = require "icmprun"
    -- icmprun.now() counts milliseconds: the clock is the same in seconds.
    assert.is_true(math.abs(clock() - icmprun.now() / 1000) < 1)
  end)

  it("formats durations and rates", function()
    assert.equal("0s", progress.format_duration(0.2))
    assert.equal("59s", progress.format_duration(59))
    assert.equal("1:05", progress.format_duration(65))
    assert.equal("2:00:01", progress.format_duration(7201))
    assert.equal("?", progress.format_duration(math.huge))
    assert.equal("2.5", progress.format_rate(2.5))
    assert.equal("250", progress.format_rate(250))
    assert.equal("38k", progress.format_rate(38000))
    assert.equal("46M", progress.format_rate(46e6))
  end)

  it("refuses bad options", function()
    assert.has_error(function() progress.new({ total = "many" }) end,
      "progress.new: option 'total' must be a number >= 0")
    assert.has_error(function() progress.new({ interval = -1 }) end,
      "progress.new: option 'interval' must be a number of seconds >= 0, or a duration "
        .. "with a unit (us, ms, s, m, h)")
    assert.has_error(function() progress.new({ interval = "soon" }) end,
      "progress.new: option 'interval' must be a number of seconds >= 0, or a duration "
        .. "with a unit (us, ms, s, m, h)")
    assert.equal(0.25, progress.new({ interval = "250ms", enabled = false }).interval)
    assert.has_error(function() progress.new(3) end,
      "progress.new: options must be a table, got number")
    assert.has_error(function() progress.new({ enabled = false }):update("x") end,
      "progress:update: number expected, got string")
  end)
  describe("as a live view", function()
    it("counts results and draws an RTT histogram under the progress line", function()
      local stream, clock = memory_stream(), manual_clock()
      local p = progress.new({ total = 10, stream = stream, enabled = true, clock = clock.now,
        view = true, label = "sweep" })
      p:result({ status = "reply", rtt = 0.015 })
      p:result({ status = "reply", rtt = 0.015 })
      p:result({ status = "reply", rtt = 1.5 })
      p:result({ status = "timeout" })
      local lines = p:view_lines(p.done, 1)
      assert.equal("sweep: 4/10 (40%)  4.0/s  ETA 2s", lines[1])
      assert.equal("replies 3  timeout 1", lines[2])
      -- One row a doubling, from the fastest reply's to the slowest's.
      assert.equal(1 + 1 + 8, #lines)
      assert.matches("0.01%-0.02 ms |#+ 2$", lines[3])
      assert.matches("1.28%-2.56 ms |#+ 1$", lines[10])
      assert.matches("0.02%-0.04 ms | 0$", lines[4])
    end)

    it("redraws over its own lines and clears them when finished", function()
      local stream, clock = memory_stream(), manual_clock()
      local p = progress.new({ total = 10, stream = stream, enabled = true, clock = clock.now,
        view = true, interval = 0 })
      p:result({ status = "reply", rtt = 0.5 })
      local first = stream.writes[1]
      assert.equal("\r", first:sub(1, 1))
      assert.is_nil(first:find("\27%[%d+A")) -- nothing drawn yet to go back over
      p:result({ status = "reply", rtt = 0.5 })
      -- Three lines on screen: back up two, rewrite each, clear below.
      assert.equal("\r\27[2A", stream.writes[2]:sub(1, 5))
      assert.matches("\27%[J$", stream.writes[2])
      p:finish()
      assert.equal("\r\27[2A\27[J", stream.writes[#stream.writes])
    end)

    it("draws nothing when disabled, and still counts", function()
      local stream = memory_stream()
      local p = progress.new({ total = 10, stream = stream, enabled = false, view = true })
      p:result({ status = "reply", rtt = 1 })
      p:finish()
      assert.equal("", stream:text())
      assert.equal(1, p.done)
    end)
  end)
end)
