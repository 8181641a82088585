-- SPDX-License-Identifier: MIT

--- The exporter's HTTP server writes bodies on a thread of its own
-- (src/lua_httpd.c), never on the loop's thread, which the probes share
-- with the Lua handlers: a 28 MB scrape written from the loop's thread kept
-- it on a core past its scheduling slice, and probes due meanwhile waited
-- for the next tick. Measured in CPU time of each thread (the kernel's
-- schedstat), not in wall time. Loopback only.
local cli = require "cli"

describe("the exporter's HTTP server beside the loop", function()
  it("writes a large body whole, on its own thread, not the loop's", function()
    local out = cli.temp_file("", ".body")
    local r = cli.icmprun_script(string.format([[
      local icmprun = require "icmprun"
      local http = require "icmprun.exporter.http"
      local uv = require "luv"
      -- CPU time, in ns, of this process's thread `tid`.
      local pid = uv.os_getpid()
      local function cpu_ns(tid)
        local f = assert(io.open(string.format("/proc/%%d/task/%%d/schedstat", pid, tid)))
        local ns = tonumber(f:read("a"):match("^(%%d+)"))
        f:close()
        return ns
      end
      -- The thread named for the HTTP server, once it runs.
      local function http_tid()
        local dir = assert(uv.fs_scandir(string.format("/proc/%%d/task", pid)))
        for name in function() return uv.fs_scandir_next(dir) end do
          local f = io.open(string.format("/proc/%%d/task/%%s/comm", pid, name))
          if f then
            local comm = f:read("l")
            f:close()
            if comm == "icmprun-httpd" then return tonumber(name) end
          end
        end
      end
      -- 64 MiB of numbered lines, as a list of pieces (as a scrape's text).
      local pieces = {}
      for i = 1, 1024 do
        pieces[i] = string.rep(string.format("%%08d\n", i), 65536 // 9 + 1):sub(1, 65536)
      end
      local start, done
      local server = assert(http.listen("127.0.0.1:0", function(_, respond)
        local tid = http_tid()
        start = { loop = cpu_ns(pid), http = tid and cpu_ns(tid), tid = tid }
        respond(200, "text/plain", pieces, { on_done = function()
          done = { loop = cpu_ns(pid), http = start.tid and cpu_ns(start.tid) }
        end })
      end))
      os.execute(string.format("curl -s -o %%s http://127.0.0.1:%%d/ &", %q, server.port))
      for _ = 1, 1200 do
        if done then break end
        icmprun.sleep(50)
      end
      server.close()
      local f = assert(io.open(%q, "rb"))
      print("same=" .. tostring(f:read("a") == table.concat(pieces)))
      f:close()
      print("thread=" .. tostring(start and start.tid ~= nil))
      if done and start.tid then
        print(string.format("loop_ms=%%.3f http_ms=%%.3f", (done.loop - start.loop) / 1e6,
          (done.http - start.http) / 1e6))
      end
      os.exit(0)
    ]], out, out))
    os.remove(out)
    assert.equal(0, r.code, r.stderr)
    assert.matches("same=true", r.stdout, 1, true)
    assert.matches("thread=true", r.stdout, 1, true)
    local loop_ms, http_ms = r.stdout:match("loop_ms=(%S+) http_ms=(%S+)")
    loop_ms, http_ms = tonumber(loop_ms), tonumber(http_ms)
    assert.is_true(loop_ms ~= nil, r.stdout)
    -- Writing 64 MiB through loopback TCP is tens of milliseconds of CPU
    -- (21-31 ms here); the loop's thread meanwhile lists the pieces and
    -- wakes to poll for the end (about 1 ms). Copying the pieces on the
    -- loop's thread alone costs it more than a fifth of the writing.
    assert.is_true(loop_ms < http_ms / 5, string.format(
      "the loop's thread spent %.1f ms of CPU while the body went out, the HTTP thread %.1f ms",
      loop_ms, http_ms))
  end)
end)
