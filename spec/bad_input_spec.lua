-- SPDX-License-Identifier: MIT

--- Bad input, black box: each case gets a clear message naming what was
-- wrong and a non-zero exit status, and nothing else is disturbed (a probe
-- made after a caught mistake still works).
local cli = require "cli"

--- Runs code with icmprun -e; returns the result.
local function run(code)
  return cli.icmprun_run({ "-e", "local icmprun = require 'icmprun'\n" .. code })
end

local explain = cli.explain

-- Each: the code, then a pattern its error message must match.
local CASES = {
  { "icmprun.ping('300.1.1.1')", "cannot resolve '300%.1%.1%.1'", returns_nil = true },
  { "icmprun.sweep('300.1.1.1')", "'300%.1%.1%.1' is not a valid IPv4 address" },
  { "icmprun.sweep('10.0.0.0/33')", "prefix length 33 is over 32" },
  { "icmprun.sweep('127.0.0.1-::1')", "mixes IPv4 and IPv6" },
  { "icmprun.sweep({})", "the targets table is empty" },
  { "icmprun.sweep('10.0.0.0/7')", "more than the limit of 16777216 addresses %(raise opts%.limit%)" },
  { "icmprun.sweep({'127.0.0.1', 5})", "targets%[2%] is a number, not a string" },
  { "icmprun.ping('127.0.0.1', {timeout = -1})", "option 'timeout' must be" },
  { "icmprun.ping('127.0.0.1', {size = 70000})", "option 'size' must be" },
  { "icmprun.ping('127.0.0.1', {ttl = 0})", "option 'ttl' must be an integer in 1..255, got 0" },
  { "icmprun.ping('127.0.0.1', {tos = 256})", "option 'tos' must be an integer in 0..255" },
  { "icmprun.sweep('127.0.0.1', {rate = -1})", "option 'rate' must be" },
  { "icmprun.sweep('127.0.0.1', {count = 0})", "option 'count' must be an integer in 1" },
  { "icmprun.sweep('127.0.0.1', {interval = -5})", "option 'interval' must be" },
  { "icmprun.sweep('127.0.0.1', {order = 'sideways'})", "option 'order' must be" },
  { "icmprun.sweep('127.0.0.1', {colour = 1})", "unknown option 'colour'" },
  { "icmprun.ping({})", "bad argument #1 to 'ping' %(string expected, got table%)" },
  { "icmprun.ping('127.0.0.1', 5)", "bad argument #2 to 'ping' %(table expected" },
  { "icmprun.resolve(nil)", "bad argument #1 to 'resolve'" },
  { "icmprun.sweep(5)", "bad argument #1 to 'sweep' %(string, table or function expected" },
  { "icmprun.sleep('soon')", "bad argument #1 to 'sleep' %(milliseconds must be >= 0 %(or a "
    .. "duration: \"500ms\", \"2s\"%)%)" },
  { "icmprun.spawn(42)", "bad argument #1 to 'spawn' %(function expected" },
  { "icmprun.run(42)", "bad argument #1 to 'run' %(function expected" },
  { "icmprun.on_signal('INT', 42)", "bad argument #2 to 'on_signal' %(function expected" },
  { "local t = icmprun.spawn(function() end); t.join(42)", "icmprun%.task expected" },
}

describe("bad input", function()
  for _, case in ipairs(CASES) do
    local code, pattern = case[1], case[2]
    it("is reported clearly: " .. code, function()
      local r
      if case.returns_nil then
        -- A runtime failure: nil and a message, which a script may assert.
        r = run("assert(" .. code .. ")")
      else
        r = run(code)
      end
      assert.equal(1, r.code, explain(r))
      assert.matches(pattern, r.stderr)
      assert.matches("stack traceback", r.stderr)
    end)
  end

  it("disturbs nothing else: the script goes on after a caught mistake", function()
    local r = run([[
      for _, bad in ipairs({ {ttl = 0}, {size = -1}, {timeout = 'x'} }) do
        assert(not pcall(icmprun.ping, '127.0.0.1', bad))
      end
      assert(not pcall(icmprun.sweep, '300.1.1.1'))
      local ok, err = pcall(function()
        for _ in icmprun.sweep(function() return '10.0.0.0/33' end) do end
      end)
      assert(not ok and err:find('prefix length 33'))
      print(icmprun.ping('127.0.0.1').status, icmprun.counters().pending)
    ]])
    assert.equal(0, r.code, explain(r))
    assert.equal("reply\t0\n", r.stdout)
  end)

  it("from a runtime error inside a sweep loop ends the run with a traceback", function()
    local r = run([[
      for r in icmprun.sweep('127.0.0.0/30', {rate = 0}) do
        if r.addr == '127.0.0.2' then error('bad result ' .. r.addr) end
      end
    ]])
    assert.equal(1, r.code, explain(r))
    assert.matches("bad result 127%.0%.0%.2", r.stderr)
    assert.matches("stack traceback", r.stderr)
  end)

  it("in a script file with a syntax error names the file and line", function()
    local r = cli.icmprun_script("local x = = 1\n")
    assert.equal(1, r.code, explain(r))
    assert.matches(":1: unexpected symbol", r.stderr)
  end)

  it("as a missing script file names the file", function()
    local r = cli.icmprun_run({ "/nonexistent/script.lua" })
    assert.equal(1, r.code, explain(r))
    assert.matches("cannot open /nonexistent/script%.lua", r.stderr)
  end)

  it("as an unknown flag to a bundled command is refused with its exit status", function()
    local r = cli.icmprun_run({ "fping", "--bogus", "127.0.0.1" })
    assert.equal(1, r.code, explain(r))
    assert.matches("fping: ", r.stderr)
    r = cli.icmprun_run({ "version", "--bogus" })
    assert.equal(2, r.code, explain(r))
  end)
end)
