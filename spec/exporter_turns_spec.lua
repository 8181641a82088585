-- SPDX-License-Identifier: MIT

--- The exporter's HTTP server shares the loop with the probes: a large
-- response goes out a slice per turn of the loop (`IR_HTTPD_RUN_BUDGET`,
-- 256 KiB, in src/lua_httpd.c), never in one call that holds the probes due
-- meanwhile. Counted in turns of the loop, not timed. Loopback only.
local cli = require "cli"

describe("the exporter's HTTP server on a shared loop", function()
  it("writes a large body over many turns of the loop, whole and in order", function()
    local out = cli.temp_file("", ".body")
    local r = cli.icmprun_script(string.format([[
      local icmprun = require "icmprun"
      local http = require "icmprun.exporter.http"
      local uv = require "luv"
      -- 16 MiB of numbered lines, as a list of pieces (as a scrape's text).
      local pieces = {}
      for i = 1, 256 do
        pieces[i] = string.rep(string.format("%%08d\n", i), 65536 // 9 + 1):sub(1, 65536)
      end
      -- Turns of the loop: a check handle runs once a turn.
      local turns = 0
      local check = uv.new_check()
      check:start(function() turns = turns + 1 end)
      local asked, done
      local server = assert(http.listen("127.0.0.1:0", function(_, respond)
        asked = turns
        respond(200, "text/plain", pieces, { on_done = function() done = turns end })
      end))
      -- The client is another process (on its own core, reading as fast as
      -- it can): what the server writes in one turn is not held back by a
      -- client that shares its loop.
      os.execute(string.format("curl -s -o %%s http://127.0.0.1:%%d/ &", %q, server.port))
      for _ = 1, 2000 do
        if done then break end
        icmprun.sleep(5)
      end
      check:stop()
      server.close()
      local f = assert(io.open(%q, "rb"))
      print("same=" .. tostring(f:read("a") == table.concat(pieces)))
      f:close()
      print("turns=" .. tostring(done and asked and done - asked))
      os.exit(0)
    ]], out, out))
    os.remove(out)
    assert.equal(0, r.code, r.stderr)
    assert.matches("same=true", r.stdout, 1, true)
    -- 16 MiB at 256 KiB a turn is at least 64 turns. Run again within the
    -- same turn (a 0 ms timer restarted from its own callback, as libuv
    -- 1.44 runs it), the server wrote the whole body in one or two.
    local turns = tonumber(r.stdout:match("turns=(%d+)"))
    assert.is_true(turns ~= nil and turns >= 64, "the body went out within "
      .. tostring(turns) .. " turns")
  end)
end)
