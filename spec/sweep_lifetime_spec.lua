-- SPDX-License-Identifier: MIT

--- A sweep's life: closed, broken out of or left to the collector while one
-- of its target names is still being resolved, in the icmprun command and in
-- stock Lua, twenty runs each, none may abort (under the sanitizer build,
-- none may touch freed memory either).
--
-- No name resolves in the test namespace, and a lookup there fails at once.
-- So each run gets a mount namespace of its own (`unshare --mount`, inside
-- the private namespace of scripts/netns) whose /etc/resolv.conf names a
-- server on the blackhole route of scripts/testnet: queries vanish, and each
-- lookup waits out the resolver's timeout while the script closes the sweep.
local cli = require "cli"

-- The resolver's timeout in seconds: every lookup of a name takes this long.
local DNS_TIMEOUT = 3
local RUNS = 20

local resolv_conf

--- The shell command that runs `cmd` with the silent name server.
local function with_silent_dns(cmd)
  return string.format("unshare --mount sh -c %s",
    cli.quote(string.format("mount --bind %s /etc/resolv.conf && exec %s",
      cli.quote(resolv_conf), cmd)))
end

--- Runs `script` RUNS times at once (they mostly wait for the resolver) with
-- `runner` ("icmprun" or "lua"); returns one {code, stdout, stderr} per run.
local function run_many(script, runner, env)
  local path = cli.temp_file(script, ".lua")
  local dir = cli.temp_dir()
  local cmd
  if runner == "lua" then
    local preload = os.getenv("LD_PRELOAD")
    cmd = string.format("env %s %s %s", preload and ("LD_PRELOAD=" .. cli.quote(preload)) or "",
      cli.quote(cli.lua), cli.quote(path))
  else
    cmd = string.format("%s %s", cli.quote(cli.icmprun), cli.quote(path))
  end
  cmd = string.format("env %s timeout 120 %s", env or "", cmd)
  local lines = {}
  for i = 1, RUNS do
    lines[#lines + 1] = string.format("( %s >%s/%d.out 2>%s/%d.err; echo $? >%s/%d.rc ) &",
      with_silent_dns(cmd), dir, i, dir, i, dir, i)
  end
  lines[#lines + 1] = "wait"
  -- cli.sh drops LD_PRELOAD for what it starts; the lua runner puts it back.
  local r = cli.sh(table.concat(lines, "\n"))
  assert(r.code == 0, r.stderr)
  local runs = {}
  for i = 1, RUNS do
    local function slurp(suffix)
      local f = assert(io.open(string.format("%s/%d.%s", dir, i, suffix)))
      local text = f:read("a")
      f:close()
      return text
    end
    runs[i] = { code = tonumber(slurp("rc")), stdout = slurp("out"), stderr = slurp("err") }
  end
  cli.remove_tree(dir)
  os.remove(path)
  return runs
end

--- Asserts that every run exited 0, printed `want` and nothing on stderr.
local function assert_all_clean(runs, want)
  for i, r in ipairs(runs) do
    assert.equal(0, r.code, "run " .. i .. " failed: " .. r.stderr)
    assert.equal("", r.stderr, "run " .. i)
    assert.equal(want, r.stdout, "run " .. i)
  end
end

-- Each script checks that the close came while the name was still being
-- resolved: well before the resolver's timeout, with the lookup started at
-- once (the first target's result needs no lookup, and the name is pulled
-- in as soon as the first target is taken).
local CLOSE_AT_END = [[
  local icmprun = require "icmprun"
  local t0 = icmprun.now()
  local it, s = icmprun.sweep({ "127.0.0.1", "a-name-that-does-not-resolve.example" },
    { rate = 0 })
  print(it(s).status)
  s:close()
  print(icmprun.now() - t0 < %d)
]]

local BREAK_AT_END = [[
  local icmprun = require "icmprun"
  local t0 = icmprun.now()
  for r in icmprun.sweep { "127.0.0.1", "a-name-that-does-not-resolve.example" } do
    print(r.status)
    break
  end
  print(icmprun.now() - t0 < %d)
]]

-- Two sweeps on a thread pool of one: the first's lookup occupies the only
-- thread, so the second's is still queued when it is closed, and uv_cancel
-- takes it back (the callback runs with UV_EAI_CANCELED), while the first's
-- cannot be taken back and ends with its timeout. Both paths in one run.
local TWO_LOOKUPS = [[
  local icmprun = require "icmprun"
  local t0 = icmprun.now()
  local a_it, a = icmprun.sweep({ "127.0.0.1", "first-name.example" }, { rate = 0 })
  local b_it, b = icmprun.sweep({ "127.0.0.2", "second-name.example" }, { rate = 0 })
  print(a_it(a).status, b_it(b).status)
  a:close()
  b:close()
  print(icmprun.now() - t0 < %d)
]]

-- Left to the collector: neither closed nor broken out of, so the sweep's
-- __gc and the runtime's shutdown meet at the end of the script.
local LEFT_OPEN = [[
  local icmprun = require "icmprun"
  local t0 = icmprun.now()
  local it, s = icmprun.sweep({ "127.0.0.1", "a-name-that-does-not-resolve.example" },
    { rate = 0 })
  print(it(s).status)
  print(icmprun.now() - t0 < %d)
  SWEEP = s -- A global: still referenced when the state closes.
]]

describe("a sweep ended while a target name is being resolved", function()
  setup(function()
    resolv_conf = cli.temp_file(string.format(
      "nameserver 2001:db8:beef::53\noptions timeout:%d attempts:1\n", DNS_TIMEOUT))
  end)

  teardown(function()
    os.remove(resolv_conf)
  end)

  local bound = DNS_TIMEOUT * 1000

  it("waits for the resolver here: a lookup is pending for its timeout", function()
    local path = cli.temp_file([[
      local icmprun = require "icmprun"
      local t0 = icmprun.now()
      icmprun.resolve("a-name-that-does-not-resolve.example")
      print(icmprun.now() - t0 >= ]] .. bound - 50 .. [[)
    ]], ".lua")
    local r = cli.sh(with_silent_dns(cli.quote(cli.icmprun) .. " " .. cli.quote(path)))
    os.remove(path)
    assert.equal(0, r.code, r.stderr)
    assert.equal("true\n", r.stdout)
  end)

  it("is closed at the end of an icmprun script, " .. RUNS .. " runs without abort",
    function()
      assert_all_clean(run_many(CLOSE_AT_END:format(bound), "icmprun"), "reply\ntrue\n")
    end)

  it("is broken out of at the end of an icmprun script, " .. RUNS .. " runs", function()
    assert_all_clean(run_many(BREAK_AT_END:format(bound), "icmprun"), "reply\ntrue\n")
  end)

  it("is closed with one lookup still queued (cancelled) and one running", function()
    assert_all_clean(run_many(TWO_LOOKUPS:format(bound), "icmprun", "UV_THREADPOOL_SIZE=1"),
      "reply\treply\ntrue\n")
  end)

  it("is left open at the end of an icmprun script", function()
    assert_all_clean(run_many(LEFT_OPEN:format(bound), "icmprun"), "reply\ntrue\n")
  end)

  it("is closed, broken out of or left open in stock Lua with the module", function()
    -- Under stock Lua the runtime shuts down when lua_close collects it.
    assert_all_clean(run_many(CLOSE_AT_END:format(bound), "lua"), "reply\ntrue\n")
    assert_all_clean(run_many(BREAK_AT_END:format(bound), "lua"), "reply\ntrue\n")
    assert_all_clean(run_many(LEFT_OPEN:format(bound), "lua"), "reply\ntrue\n")
  end)
end)
