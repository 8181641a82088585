-- SPDX-License-Identifier: MIT

--- The exporter's HTTP server shares the loop with the probes: a large
-- response goes out a slice per turn of the loop (`IR_HTTPD_RUN_BUDGET`,
-- 256 KiB, in src/lua_httpd.c), never in one call that holds the probes due
-- meanwhile. Counted in turns of the loop, not timed. Loopback only.
local cli = require "cli"

describe("the exporter's HTTP server on a shared loop", function()
  it("writes a large body over many turns of the loop, whole and in order", function()
    local r = cli.icmprun_script([[
      local icmprun = require "icmprun"
      local http = require "icmprun.exporter.http"
      local uv = require "luv"
      -- 16 MiB of numbered lines, as a list of pieces (as a scrape's text).
      local pieces = {}
      for i = 1, 256 do
        pieces[i] = string.rep(string.format("%08d\n", i), 65536 // 9 + 1):sub(1, 65536)
      end
      local server = assert(http.listen("127.0.0.1:0", function(_, respond)
        respond(200, "text/plain", pieces)
      end))
      -- Turns of the loop: a check handle runs once a turn.
      local turns = 0
      local check = uv.new_check()
      check:start(function() turns = turns + 1 end)
      local got, eof = {}, false
      local first_turn, last_turn
      local tcp = uv.new_tcp()
      tcp:connect("127.0.0.1", server.port, function(err)
        assert(not err, err)
        tcp:write("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        tcp:read_start(function(rerr, data)
          if rerr or not data then
            eof = true
            tcp:close()
            return
          end
          first_turn = first_turn or turns
          last_turn = turns
          got[#got + 1] = data
        end)
      end)
      for _ = 1, 2000 do
        if eof then break end
        icmprun.sleep(5)
      end
      check:stop()
      server.close()
      local body = table.concat(got):match("^HTTP/1%.1 200 .-\r\n\r\n(.*)$")
      print("same=" .. tostring(body == table.concat(pieces)))
      print("turns=" .. (last_turn - first_turn))
      os.exit(0)
    ]])
    assert.equal(0, r.code, r.stderr)
    assert.matches("same=true", r.stdout, 1, true)
    -- 16 MiB at 256 KiB a turn is 64 turns; the client reads in its own
    -- slices, so count generously below that. Written in one call (as
    -- before the budget), the whole body arrived within a turn or two.
    local turns = tonumber(r.stdout:match("turns=(%d+)"))
    assert.is_true(turns >= 32, "the body arrived within " .. tostring(turns) .. " turns")
  end)
end)
