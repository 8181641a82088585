-- SPDX-License-Identifier: MIT

--- The loop's thread asks the kernel for its shortest scheduling slice, so
-- that a woken loop takes a core at once instead of after the running task's
-- slice (src/loop_slice.h): icmprun.info() says what was granted, the kernel
-- agrees, ICMPRUN_LOOP_SLICE=default keeps the kernel's slice, and commands a
-- script starts do not inherit the short one. No probe is sent.
local cli = require "cli"

-- Linux grants custom slices from 6.12 on.
local function kernel_has_custom_slices()
  local major, minor = io.popen("uname -r"):read("l"):match("^(%d+)%.(%d+)")
  major, minor = tonumber(major), tonumber(minor)
  return major > 6 or (major == 6 and minor >= 12)
end

-- What a script sees: info().loop_slice, the slice the kernel reports for the
-- script's own thread, and the one it reports for a command the script runs.
local SCRIPT = [[
  local icmprun = require "icmprun"
  local function slice(path)
    local f = io.open(path)
    local text = f and f:read("a") or ""
    if f then f:close() end
    return text:match("se%.slice%s*:%s*(%d+)") or "none"
  end
  local child = io.popen("cat /proc/self/sched"):read("a"):match("se%.slice%s*:%s*(%d+)")
  print(string.format("info=%s own=%s child=%s", tostring(icmprun.info().loop_slice),
    slice("/proc/thread-self/sched"), child or "none"))
]]

local function run(env)
  local r = cli.sh(env .. " " .. cli.quote(cli.icmprun) .. " -e " .. cli.quote(SCRIPT))
  assert.equal(0, r.code, r.stderr)
  local fields = {}
  for key, value in r.stdout:gmatch("(%S+)=(%S+)") do
    fields[key] = value
  end
  return fields
end

describe("the loop's scheduling slice", function()
  it("is the kernel's shortest, as info() says, and not a child's", function()
    local seen = run("")
    if not kernel_has_custom_slices() then
      assert.equal("nil", seen.info)
      return
    end
    assert.equal(1e-4, tonumber(seen.info))
    assert.equal("100000", seen.own)
    assert.is_not.equal("100000", seen.child)
  end)

  it("stays the kernel's with ICMPRUN_LOOP_SLICE=default", function()
    local seen = run("ICMPRUN_LOOP_SLICE=default")
    assert.equal("nil", seen.info)
    assert.is_not.equal("100000", seen.own)
  end)

  it("is what ICMPRUN_LOOP_SLICE asks for in microseconds, and names a bad setting",
    function()
      local seen = run("ICMPRUN_LOOP_SLICE=2500")
      if kernel_has_custom_slices() then
        assert.equal(0.0025, tonumber(seen.info))
        assert.equal("2500000", seen.own)
      end
      for _, bad in ipairs({ "99", "100001", "1ms", "-5", "fast" }) do
        local r = cli.sh("ICMPRUN_LOOP_SLICE=" .. bad .. " " .. cli.quote(cli.icmprun)
          .. " -e " .. cli.quote(SCRIPT))
        assert.equal(0, r.code, r.stderr)
        assert.matches("ICMPRUN_LOOP_SLICE=" .. bad:gsub("%p", "%%%0")
          .. ': expected "default" or microseconds from 100 to 100000', r.stderr)
        if kernel_has_custom_slices() then
          assert.matches("info=0.0001 ", r.stdout)
        end
      end
    end)
end)
