-- SPDX-License-Identifier: MIT

--- Every probe carries the TOS, TTL and size it was asked for. A reply comes
-- back whatever those were, so these specs count the echo requests that
-- leave with each header field (nftables counters on the output hook,
-- spec/helpers/nftcount.lua) through every way of asking: the Lua API's
-- ping and sweep, `icmprun ping -Q -t -s`, `icmprun fping -O -H -b`, on
-- datagram and raw sockets, for both families.
-- Runs inside scripts/netns: loopback is the only address probed.
local cli = require "cli"
local nftcount = require "nftcount"

local WANT = { tos = 0x28, ttl = 7, size = 100 }
-- The Lua API's options, and the same for a script run by the binary.
local OPTS = "{ tos = 0x28, ttl = 7, size = 100, timeout = 1000 }"
local ADDRS = { { "IPv4", "127.0.0.31" }, { "IPv6", "::1" } }
local SOCKETS = { "dgram", "raw" }

--- Asserts that all `n` echo requests counted had every wanted field.
local function assert_every_probe(n, what)
  local counts = nftcount.read()
  assert.equal(n, counts.all, what .. ": echo requests sent")
  assert.equal(n, counts.tos, what .. ": requests with TOS / traffic class 0x28")
  assert.equal(n, counts.ttl, what .. ": requests with TTL / hop limit 7")
  assert.equal(n, counts.size, what .. ": requests with a 100-byte payload")
end

local explain = cli.explain

--- Runs the icmprun binary with a socket kind; returns cli.sh's table.
local function icmprun(socket, args)
  return cli.sh("ICMPRUN_SOCKET=" .. socket .. " " .. cli.quote(cli.icmprun) .. " " .. args)
end

describe("probe options reach the wire", function()
  after_each(nftcount.stop)

  for _, family in ipairs(ADDRS) do
    local name, addr = family[1], family[2]
    for _, socket in ipairs(SOCKETS) do
      local where = name .. ", " .. socket .. " socket"

      it("icmprun.ping sets tos, ttl and size (" .. where .. ")", function()
        nftcount.start(addr, WANT)
        local script = cli.temp_file(string.format([[
          local icmprun = require "icmprun"
          for _ = 1, 3 do
            local r = assert(icmprun.ping(%q, %s))
            assert(r.status == "reply", r.status)
            assert(r.bytes == 108, "bytes " .. tostring(r.bytes))
          end
        ]], addr, OPTS), ".lua")
        local r = icmprun(socket, cli.quote(script))
        os.remove(script)
        assert.equal(0, r.code, explain(r))
        assert_every_probe(3, where)
      end)

      it("icmprun.sweep sets tos, ttl and size (" .. where .. ")", function()
        nftcount.start(addr, WANT)
        local script = cli.temp_file(string.format([[
          local icmprun = require "icmprun"
          local opts = %s
          opts.count, opts.interval, opts.rate = 4, 10, 0
          local replies = 0
          for r in icmprun.sweep({ %q }, opts) do
            assert(r.status == "reply", r.status)
            replies = replies + 1
          end
          assert(replies == 4, "replies " .. replies)
        ]], OPTS, addr), ".lua")
        local r = icmprun(socket, cli.quote(script))
        os.remove(script)
        assert.equal(0, r.code, explain(r))
        assert_every_probe(4, where)
      end)

      it("icmprun ping -Q -t -s sets them (" .. where .. ")", function()
        nftcount.start(addr, WANT)
        local r = icmprun(socket, "ping -c 3 -i 0.01 -Q 0x28 -t 7 -s 100 " .. addr)
        assert.equal(0, r.code, explain(r))
        assert.matches("3 received", r.stdout)
        assert_every_probe(3, where)
      end)

      it("icmprun fping -O -H -b sets them (" .. where .. ")", function()
        nftcount.start(addr, WANT)
        local r = icmprun(socket, "fping -c 3 -p 20 -O 0x28 -H 7 -b 100 " .. addr)
        assert.equal(0, r.code, explain(r))
        assert_every_probe(3, where)
      end)
    end
  end
end)
