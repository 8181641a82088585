-- SPDX-License-Identifier: MIT

--- `require "luv"` inside icmprun (and after `require "icmprun"` in stock
-- Lua) is luv bound to icmprun's own loop: its handles run beside probes and
-- tasks, and a script that uses both ends cleanly.
local cli = require "cli"

-- A TCP echo over loopback and a ping at the same time, on one loop.
local SCRIPT = [[
  local icmprun = require "icmprun"
  local uv = require "luv"
  local server = uv.new_tcp()
  assert(server:bind("127.0.0.1", 0))
  local port = server:getsockname().port
  server:listen(16, function()
    local c = uv.new_tcp()
    server:accept(c)
    c:read_start(function(_, data)
      if data then c:write("echo:" .. data, function() c:close() end) end
    end)
  end)
  local echoed
  local client = uv.new_tcp()
  client:connect("127.0.0.1", port, function()
    client:write("hi")
    client:read_start(function(_, data)
      if data then echoed = data; client:close(); server:close() end
    end)
  end)
  local fired = false
  local timer = uv.new_timer()
  timer:start(50, 0, function() fired = true; timer:close() end)
  local r = icmprun.ping("127.0.0.1")
  icmprun.sleep(100) -- the timer and the echo run while this task sleeps
  print(r.status, echoed, fired)
]]

describe("luv on icmprun's loop", function()
  it("runs luv handles beside probes in icmprun", function()
    local r = cli.icmprun_script(SCRIPT)
    assert.equal(0, r.code, r.stderr)
    assert.equal("reply\techo:hi\ttrue\n", r.stdout)
  end)

  it("does the same in stock Lua through icmprun.run", function()
    local r = cli.lua_script("require('icmprun').run(function()\n" .. SCRIPT .. "\nend)")
    assert.equal(0, r.code, r.stderr)
    assert.equal("reply\techo:hi\ttrue\n", r.stdout)
  end)

  it("leaves luv on its own loop in stock Lua when it was opened first", function()
    -- luv's own loop must stay luv's: nothing closes icmprun's loop twice.
    local r = cli.lua_script([[
      local uv = require "luv"
      local icmprun = require "icmprun"
      local fired = false
      local timer = uv.new_timer()
      timer:start(10, 0, function() fired = true; timer:close() end)
      uv.run()
      local status = icmprun.run(function() return icmprun.ping("127.0.0.1").status end)
      print(status, fired)
    ]])
    assert.equal(0, r.code, r.stderr)
    assert.equal("reply\ttrue\n", r.stdout)
  end)
end)
