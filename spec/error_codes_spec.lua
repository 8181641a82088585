-- SPDX-License-Identifier: MIT

--- The error contract: a caller's mistake raises; a failure at run time
-- returns nil, a message and a code (the errno or libuv name: "EACCES",
-- "EAI_NONAME"...); every result with `err` carries `code` beside it.
-- Programs branch on the code, never on the wording of the message.
-- Routes and permissions change only in namespaces nested in the test one.
-- (A corrupted answer's EBADMSG is shown in spec/faults_spec.lua, ICMP
-- errors' codes in spec/icmp_errors_spec.lua.)
local icmprun = require "icmprun"
local cli = require "cli"

local explain = cli.explain

--- Runs icmprun with args in a new network namespace with only loopback
-- up, after the shell commands of `setup`; `env` is prepended to the
-- command (settings such as "ICMPRUN_SOCKET=dgram ").
local function run_isolated_args(args, setup, env)
  local inner = table.concat({
    "set -e",
    "ip link set lo up",
    setup or ":",
    "exec env " .. (env or "") .. cli.icmprun_cmdline(args),
  }, "\n")
  return cli.sh("unshare --net sh -c " .. cli.quote(inner))
end

--- The same for a script.
local function run_isolated(code, setup, env)
  local path = cli.temp_file(code, ".lua")
  local r = run_isolated_args({ path }, setup, env)
  os.remove(path)
  return r
end

-- A namespace where datagram ICMP sockets are refused (a new namespace's
-- ping_group_range is empty) and nothing may open raw ones.
local NO_SOCKETS = 'sysctl -qw net.ipv4.ping_group_range="1 0" 2>/dev/null || :'
local NO_CAPS = "setpriv --inh-caps=-all --bounding-set=-all "

-- Reads results: one line per ping, status then code, then message or err.
local PING_BOTH = [[
  local icmprun = require "icmprun"
  for _, addr in ipairs({ "127.0.0.1", "::1" }) do
    local r, msg, code = icmprun.ping(addr)
    print(r, code, msg ~= nil)
  end
  local info = icmprun.info()
  print(info.ipv4_code, info.ipv6_code)
]]

describe("the error contract", function()
  describe("when the socket cannot be opened", function()
    it("returns nil, message, EACCES where datagram sockets are refused", function()
      local r = run_isolated(PING_BOTH, NO_SOCKETS, "ICMPRUN_SOCKET=dgram ")
      assert.equal(0, r.code, explain(r))
      assert.equal("nil\tEACCES\ttrue\nnil\tEACCES\ttrue\nEACCES\tEACCES\n", r.stdout)
    end)

    it("returns nil, message, EPERM where raw sockets need a capability too", function()
      local r = run_isolated(PING_BOTH, NO_SOCKETS, NO_CAPS)
      assert.equal(0, r.code, explain(r))
      assert.equal("nil\tEPERM\ttrue\nnil\tEPERM\ttrue\nEPERM\tEPERM\n", r.stdout)
    end)

    it("makes each probe of a sweep an error result with the code, and the sweep goes on",
      function()
        local r = run_isolated([[
          local icmprun = require "icmprun"
          local n, codes = 0, {}
          for res in icmprun.sweep({ "127.0.0.0/30", "::1" }, { count = 2, rate = 0 }) do
            n = n + 1
            assert(res.status == "error" and res.err and res.addr and res.n, res.status)
            codes[res.code] = (codes[res.code] or 0) + 1
          end
          local s = icmprun.counters()
          print(n, codes.EACCES, s.sent, s.results)
        ]], NO_SOCKETS, "ICMPRUN_SOCKET=dgram ")
        assert.equal(0, r.code, explain(r))
        -- 5 addresses, 2 probes each: 10 results, none sent; the engine's
        -- own count is of probes it took, and it took none.
        assert.equal("10\t10\t0\t0\n", r.stdout)
      end)

    it("makes icmprun sweep say once per family why, and exit 1", function()
      local r = run_isolated_args({ "sweep", "-r", "0", "127.0.0.0/29", "::1" }, NO_SOCKETS,
        "ICMPRUN_SOCKET=dgram ")
      assert.equal(1, r.code, explain(r))
      assert.equal("", r.stdout)
      local _, lines = r.stderr:gsub("ping_group_range", "")
      assert.equal(2, lines, r.stderr)
    end)

    it("gives no code in info() for a family that opens", function()
      local info = icmprun.info()
      assert.equal("dgram", info.ipv4)
      assert.is_nil(info.ipv4_code)
      assert.is_nil(info.ipv4_error)
    end)
  end)

  describe("for a name", function()
    it("that does not resolve returns nil, message, a getaddrinfo code", function()
      local r, msg, code = icmprun.ping("no-such-host.invalid")
      assert.is_nil(r)
      assert.truthy(msg:find("no-such-host.invalid", 1, true), msg)
      -- Which one depends on the resolver: no such name, or no DNS server
      -- to ask (as in the test namespace).
      assert.is_truthy(({ EAI_NONAME = true, EAI_AGAIN = true, EAI_NODATA = true })[code],
        tostring(code))
      local addr, msg2, code2 = icmprun.resolve("no-such-host.invalid")
      assert.is_nil(addr)
      assert.is_string(msg2)
      assert.equal(code, code2)
    end)

    it("of the other family returns nil, message, EAI_ADDRFAMILY", function()
      for _, call in ipairs({ icmprun.ping, icmprun.resolve }) do
        local r, msg, code = call("::1", { family = 4 })
        assert.is_nil(r)
        assert.truthy(msg:find("::1", 1, true), msg)
        assert.equal("EAI_ADDRFAMILY", code)
        r, msg, code = call("127.0.0.1", { family = 6 })
        assert.is_nil(r)
        assert.truthy(msg:find("127.0.0.1", 1, true), msg)
        assert.equal("EAI_ADDRFAMILY", code)
      end
    end)
  end)

  describe("for a send the kernel refuses", function()
    -- Run apart so that these routes exist nowhere else.
    local ROUTES = table.concat({
      "ip route add prohibit 192.0.2.1/32",
      "ip route add blackhole 192.0.2.2/32",
      "ip route add unreachable 192.0.2.3/32",
      "ip -6 route add prohibit 2001:db8::1/128",
      "ip -6 route add blackhole 2001:db8::2/128",
      "ip -6 route add unreachable 2001:db8::3/128",
    }, "\n")

    it("gives a result with the send's errno as code, beside err", function()
      local r = run_isolated([[
        local icmprun = require "icmprun"
        for _, addr in ipairs({ "192.0.2.1", "192.0.2.2", "192.0.2.3",
            "2001:db8::1", "2001:db8::2", "2001:db8::3" }) do
          local r = icmprun.ping(addr, { timeout = 500 })
          print(r.status, r.code, type(r.err), r.icmp_type, r.rtt)
        end
        local s = icmprun.counters()
        print(s.send_errors, s.results)
      ]], ROUTES)
      assert.equal(0, r.code, explain(r))
      assert.equal(table.concat({
        "error\tEACCES\tstring\tnil\tnil", -- prohibit
        "error\tEINVAL\tstring\tnil\tnil", -- blackhole
        "unreachable\tEHOSTUNREACH\tstring\tnil\tnil", -- unreachable: no ICMP error
        "error\tEACCES\tstring\tnil\tnil",
        "error\tEINVAL\tstring\tnil\tnil",
        "unreachable\tEHOSTUNREACH\tstring\tnil\tnil",
        "6\t6",
      }, "\n") .. "\n", r.stdout)
    end)

    it("reads as strerror's text in icmprun fping, chosen by the code", function()
      local r = run_isolated_args({ "fping", "-r", "0", "-t", "100", "192.0.2.1",
        "192.0.2.2", "2001:db8::3" }, ROUTES)
      assert.equal(1, r.code, explain(r))
      assert.equal(table.concat({
        "192.0.2.1: error while sending ping: Permission denied",
        "192.0.2.2: error while sending ping: Invalid argument",
        "2001:db8::3: error while sending ping: No route to host",
      }, "\n") .. "\n", r.stderr)
    end)
  end)

  describe("for results that went well", function()
    it("gives no code to a reply or a timeout", function()
      local r = icmprun.ping("127.0.0.1", { timeout = 1000 })
      assert.equal("reply", r.status)
      assert.is_nil(r.code)
      assert.is_nil(r.err)
      -- The silent test host never answers.
      r = icmprun.ping("192.0.2.2", { timeout = 50 })
      assert.equal("timeout", r.status)
      assert.is_nil(r.code)
      assert.is_nil(r.err)
    end)
  end)

  describe("for a caller's mistake", function()
    it("raises, naming the argument, and returns nothing", function()
      local cases = {
        { function() return icmprun.ping() end, "bad argument #1 to 'ping'" },
        { function() return icmprun.ping("127.0.0.1", { size = -1 }) end, "'size'" },
        { function() return icmprun.ping("127.0.0.1", { timeout = "x" }) end, "'timeout'" },
        { function() return icmprun.ping("127.0.0.1", { bogus = 1 }) end, "'bogus'" },
        { function() return icmprun.resolve("") end, "bad argument #1 to 'resolve'" },
      }
      for _, case in ipairs(cases) do
        local ok, err = pcall(case[1])
        assert.is_false(ok)
        assert.truthy(tostring(err):find(case[2], 1, true), tostring(err))
      end
    end)
  end)

  describe("exports", function()
    it("STATUSES in the engine's order", function()
      assert.same({ "reply", "timeout", "unreachable", "ttl_exceeded", "error" },
        icmprun.STATUSES)
    end)

    it("limits that are the options' real limits", function()
      local l = icmprun.limits
      assert.equal(65507, l.max_size_v4)
      assert.equal(65527, l.max_size_v6)
      assert.equal(86400000, l.max_timeout)
      -- At each limit the option is accepted; one past it raises.
      assert.is_true(pcall(icmprun.ping, "::1", { size = l.max_size_v6, timeout = 1 }))
      assert.is_false(pcall(icmprun.ping, "::1", { size = l.max_size_v6 + 1 }))
      assert.is_false(pcall(icmprun.ping, "127.0.0.1", { size = l.max_size_v4 + 1 }))
      assert.is_false(pcall(icmprun.ping, "127.0.0.1", { timeout = l.max_timeout + 1 }))
      assert.is_false(pcall(icmprun.ping, "127.0.0.1", { ttl = l.max_ttl + 1 }))
      assert.is_false(pcall(icmprun.ping, "127.0.0.1", { tos = l.max_tos + 1 }))
    end)
  end)
end)
