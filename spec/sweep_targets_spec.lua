-- SPDX-License-Identifier: MIT

--- icmprun.sweep's targets and options: addresses, CIDR blocks, ranges, host
-- names, tables and iterator functions; the limit on a sweep's size; and the
-- errors that malformed targets and bad options raise.
-- Runs inside scripts/netns: loopback and the test hosts of scripts/testnet
-- are the only addresses probed. Sweeps of /0 blocks are created and closed,
-- never iterated.
local icmprun = require "icmprun"
local cli = require "cli"

--- Runs a sweep to its end; returns its results.
local function collect(targets, opts)
  local results = {}
  for r in icmprun.sweep(targets, opts) do
    results[#results + 1] = r
  end
  return results
end

--- Runs a sweep that must fail from inside the loop; returns the results
-- that came before the error, and the error.
local function collect_until_error(targets, opts)
  local results = {}
  local ok, err = pcall(function()
    for r in icmprun.sweep(targets, opts) do
      results[#results + 1] = r
    end
  end)
  assert.is_false(ok, "the sweep ended without an error")
  return results, tostring(err)
end

--- Calls icmprun.sweep, which must raise at once; returns the message.
-- Nothing may have been sent.
local function call_error(targets, opts)
  local sent = icmprun.counters().sent
  local ok, err = pcall(icmprun.sweep, targets, opts)
  assert.is_false(ok, "icmprun.sweep accepted its arguments")
  assert.equal(sent, icmprun.counters().sent, "a probe was sent")
  return tostring(err)
end

--- Asserts that a message contains each of the given plain strings.
local function assert_mentions(message, ...)
  for _, part in ipairs({ ... }) do
    if not message:find(part, 1, true) then
      error(string.format("%q does not mention %q", message, part), 2)
    end
  end
end

--- The sorted addresses of results, and how many results each target has.
local function summary(results)
  local addrs, targets = {}, {}
  for i, r in ipairs(results) do
    addrs[i] = r.addr
    targets[r.target] = (targets[r.target] or 0) + 1
  end
  table.sort(addrs)
  return addrs, targets
end

--- Creates a sweep and closes it without taking a single result.
local function create_and_close(targets, opts)
  local sent = icmprun.counters().sent
  local _, _, _, closing = icmprun.sweep(targets, opts)
  closing:close()
  assert.equal(sent, icmprun.counters().sent, "a sweep that was never iterated sent")
  assert.equal(0, icmprun.counters().pending)
end

describe("icmprun.sweep targets", function()
  describe("in every form", function()
    for _, addr in ipairs({ "127.0.0.1", "::1" }) do
      it("sweeps a single address (" .. addr .. ")", function()
        local results = collect(addr)
        assert.equal(1, #results)
        assert.equal(addr, results[1].addr)
        assert.equal(addr, results[1].target)
        assert.equal("reply", results[1].status)
        assert.equal(1, results[1].n)
      end)
    end

    it("sweeps a CIDR block from its first address, host bits cleared", function()
      local addrs, targets = summary(collect("127.0.0.5/30"))
      assert.same({ "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7" }, addrs)
      assert.same({ ["127.0.0.5/30"] = 4 }, targets)
    end)

    it("sweeps a /32 and a /128 as one address each", function()
      local addrs, targets = summary(collect({ "127.0.0.1/32", "::1/128" }))
      assert.same({ "127.0.0.1", "::1" }, addrs)
      assert.same({ ["127.0.0.1/32"] = 1, ["::1/128"] = 1 }, targets)
    end)

    it("sweeps a range with both ends included", function()
      local results = collect("127.0.0.1-127.0.0.200", { rate = 0 })
      assert.equal(200, #results)
      local seen = {}
      for _, r in ipairs(results) do
        assert.equal("127.0.0.1-127.0.0.200", r.target)
        assert.equal("reply", r.status)
        seen[r.addr] = true
      end
      for i = 1, 200 do
        assert.is_true(seen["127.0.0." .. i], "127.0.0." .. i .. " was not swept")
      end
    end)

    it("sweeps a range across an octet and a range of one address", function()
      local addrs, targets = summary(collect({ "127.0.0.254-127.0.1.1",
        "127.0.2.9-127.0.2.9", "::1-::1" }))
      assert.same({ "127.0.0.254", "127.0.0.255", "127.0.1.0", "127.0.1.1",
        "127.0.2.9", "::1" }, addrs)
      assert.same({ ["127.0.0.254-127.0.1.1"] = 4, ["127.0.2.9-127.0.2.9"] = 1,
        ["::1-::1"] = 1 }, targets)
    end)

    it("resolves a host name and names it as the target", function()
      local results = collect("localhost", { family = 4 })
      assert.equal(1, #results)
      assert.equal("127.0.0.1", results[1].addr)
      assert.equal("localhost", results[1].target)
      assert.equal("reply", results[1].status)
    end)

    it("sweeps a table of addresses, blocks, ranges and names", function()
      local results = collect({ "127.0.0.1", "::1", "127.0.1.0/30",
        "127.0.2.1-127.0.2.3", "localhost" })
      local _, targets = summary(results)
      assert.same({ ["127.0.0.1"] = 1, ["::1"] = 1, ["127.0.1.0/30"] = 4,
        ["127.0.2.1-127.0.2.3"] = 3, ["localhost"] = 1 }, targets)
      assert.equal(10, #results)
      for _, r in ipairs(results) do
        assert.equal("reply", r.status, r.target .. " " .. r.addr)
      end
    end)
  end)

  describe("from an iterator function", function()
    --- An iterator over the given strings that counts its calls.
    local function iterator(list)
      local state = { calls = 0 }
      state.fn = function()
        state.calls = state.calls + 1
        return list[state.calls]
      end
      return state
    end

    it("sweeps each string it returns until nil, and calls it no further",
      function()
        local it = iterator({ "127.0.0.1", "::1", "127.0.1.0/30", "127.0.2.1-127.0.2.2" })
        local _, targets = summary(collect(it.fn))
        assert.same({ ["127.0.0.1"] = 1, ["::1"] = 1, ["127.0.1.0/30"] = 4,
          ["127.0.2.1-127.0.2.2"] = 2 }, targets)
        assert.equal(5, it.calls)
      end)

    it("is called lazily, as the sweep needs targets", function()
      -- At 100 probes per second (a burst of 1), the first result comes
      -- when a target or two have been sent.
      local list = {}
      for i = 1, 50 do
        list[i] = "127.0.3." .. i
      end
      local it = iterator(list)
      local calls_at_first, n = nil, 0
      for r in icmprun.sweep(it.fn, { rate = 100 }) do
        calls_at_first = calls_at_first or it.calls
        assert.equal(r.addr, r.target)
        n = n + 1
      end
      assert.equal(50, n)
      assert.equal(51, it.calls)
      assert.is_true(calls_at_first <= 10, calls_at_first
        .. " targets were taken before the first result")
    end)

    it("raises a malformed target when it is reached, after the first results",
      function()
        local list = { "127.0.0.1", "127.0.0.2", "300.1.1.1", "127.0.0.3" }
        local ok, err = pcall(create_and_close, iterator(list).fn)
        assert.is_true(ok, "raised at the call: " .. tostring(err))
        local it = iterator(list)
        local results
        results, err = collect_until_error(it.fn)
        assert_mentions(err, "sweep: ", "'300.1.1.1' is not a valid IPv4 address")
        assert.same({ "127.0.0.1", "127.0.0.2" }, (summary(results)))
        assert.equal(2, #results)
        for _, r in ipairs(results) do
          assert.equal("reply", r.status)
        end
        assert.equal(3, it.calls)
        assert.equal(0, icmprun.counters().pending)
        assert.equal("reply", icmprun.ping("127.0.0.1").status)
      end)

    it("raises a malformed target reached inside a task", function()
      local it = iterator({ "127.0.0.1", "10.0.0.0/33" })
      local ok, err = pcall(icmprun.run, collect, it.fn)
      assert.is_false(ok)
      assert_mentions(tostring(err), "sweep: ", "prefix length 33 is over 32 in '10.0.0.0/33'")
    end)

    it("raises when its targets go over the limit, naming the limit", function()
      local it = iterator({ "127.0.0.0/24", "127.0.1.0/24" })
      local results, err = collect_until_error(it.fn, { limit = 300, rate = 0 })
      assert_mentions(err, "sweep: ", "'127.0.1.0/24'", "limit of 300",
        "raise opts.limit")
      assert.equal(256, #results)
    end)

    it("raises a value that is not a string, naming its type", function()
      local it = iterator({ "127.0.0.1", 42 })
      local _, err = collect_until_error(it.fn)
      assert_mentions(err, "sweep: ", "number", "not a string")
    end)

    it("passes on an error the iterator raises", function()
      local calls = 0
      local _, err = collect_until_error(function()
        calls = calls + 1
        if calls == 2 then
          error("targets ran dry")
        end
        return "127.0.0.1"
      end)
      assert_mentions(err, "targets ran dry")
    end)
  end)

  describe("that do not resolve", function()
    --- Asserts that r is the result of target name that did not resolve.
    local function assert_unresolved(name, r)
      assert.equal("error", r.status)
      assert.equal(name, r.target)
      assert.is_nil(r.addr)
      assert.is_nil(r.n)
      assert.matches("^cannot resolve '" .. name:gsub("%-", "%%-") .. "': .", r.err)
      -- libuv's name of the resolver's error: no name resolves here, so
      -- it is one of these, depending on how the resolver fails.
      assert.is_truthy(({ EAI_NONAME = true, EAI_AGAIN = true, EAI_FAIL = true,
        EAI_NODATA = true })[r.code], "code " .. tostring(r.code))
    end

    it("become one error result each, with err and code, and the sweep goes on",
      function()
        local ok, err = pcall(icmprun.sweep, "a-b")
        assert.is_true(ok, "raised at the call: " .. tostring(err))
        local results = collect({ "127.0.0.1", "a-b", "127.0.0.2", "c-d" }, { count = 2,
          interval = 10 })
        assert.equal(6, #results)
        local by_target = {}
        for _, r in ipairs(results) do
          by_target[r.target] = by_target[r.target] or {}
          table.insert(by_target[r.target], r)
        end
        assert.equal(1, #by_target["a-b"], "a name that does not resolve has one result")
        assert.equal(1, #by_target["c-d"])
        assert_unresolved("a-b", by_target["a-b"][1])
        assert_unresolved("c-d", by_target["c-d"][1])
        for _, t in ipairs({ "127.0.0.1", "127.0.0.2" }) do
          assert.equal(2, #by_target[t])
          assert.equal("reply", by_target[t][1].status)
        end
        assert.equal(0, icmprun.counters().pending)
      end)

    it("become error results inside a task and from an iterator", function()
      local results
      icmprun.run(function()
        local list, i = { "a-b", "127.0.0.1" }, 0
        results = collect(function()
          i = i + 1
          return list[i]
        end)
      end)
      assert.equal(2, #results)
      assert_unresolved("a-b", results[1])
      assert.equal("reply", results[2].status)
    end)

    it("say EAI_NONAME where the resolver knows the name does not exist", function()
      -- Hosts from files only, in a mount namespace of this run's own: the
      -- resolver answers at once that the name is unknown.
      local conf = cli.temp_file("hosts: files\n")
      local script = cli.temp_file([[
        local icmprun = require "icmprun"
        for r in icmprun.sweep({ "no-such-host.invalid", "localhost" }, { family = 4 }) do
          print(r.target, r.status, r.code, r.err, r.addr)
        end
      ]], ".lua")
      local r = cli.sh(string.format("unshare --mount sh -c %s", cli.quote(string.format(
        "mount --bind %s /etc/nsswitch.conf && exec %s %s", cli.quote(conf),
        cli.quote(cli.icmprun), cli.quote(script)))))
      os.remove(conf)
      os.remove(script)
      assert.equal(0, r.code, r.stderr)
      assert.equal("no-such-host.invalid\terror\tEAI_NONAME\tcannot resolve "
        .. "'no-such-host.invalid': unknown node or service\tnil\n"
        .. "localhost\treply\tnil\tnil\t127.0.0.1\n", r.stdout)
    end)
  end)

  describe("that are malformed", function()
    for _, case in ipairs({
      { "300.1.1.1", "'300.1.1.1' is not a valid IPv4 address" },
      { "1.2.3.4.5", "'1.2.3.4.5' is not a valid IPv4 address" },
      { "10.0.0.0/33", "prefix length 33 is over 32 in '10.0.0.0/33'" },
      { "2001:db8::/129", "prefix length 129 is over 128 in '2001:db8::/129'" },
      { "10.0.0.0/", "'10.0.0.0/'" },
      { "10.0.0.0/x", "'10.0.0.0/x'" },
      { "10.0.0/8", "'10.0.0/8'" },
      { "2001:db8::g", "'2001:db8::g' is not a valid IPv6 address" },
      { "127.0.0.9-127.0.0.1", "'127.0.0.9-127.0.0.1'" },
      { "127.0.0.1-::1", "'127.0.0.1-::1'" },
      { "127.0.0.1-300.0.0.1", "'127.0.0.1-300.0.0.1'" },
      { " 127.0.0.1", "' 127.0.0.1'" },
      { "a b", "'a b'" },
      { "", "empty" },
    }) do
      it("raises at the call for '" .. case[1] .. "', naming what is wrong", function()
        local err = call_error(case[1])
        assert_mentions(err, "bad argument #1", case[2])
      end)
    end

    it("raises at the call for a malformed target anywhere in a table", function()
      local err = call_error({ "127.0.0.1", "::1", "300.1.1.1" })
      assert_mentions(err, "bad argument #1", "'300.1.1.1' is not a valid IPv4 address")
      err = call_error({ "127.0.0.1", "10.0.0.0/33" })
      assert_mentions(err, "bad argument #1", "prefix length 33 is over 32")
    end)

    it("raises at the call for an empty table", function()
      assert_mentions(call_error({}), "bad argument #1", "the targets table is empty")
    end)

    it("raises at the call for a table item that is not a string", function()
      assert_mentions(call_error({ "127.0.0.1", 5 }), "bad argument #1", "number",
        "not a string")
      assert_mentions(call_error({ {} }), "bad argument #1", "table", "not a string")
    end)

    it("raises at the call for targets of the wrong type", function()
      for _, targets in ipairs({ 42, true }) do
        assert_mentions(call_error(targets), "bad argument #1")
      end
      local sent = icmprun.counters().sent
      local ok, err = pcall(icmprun.sweep)
      assert.is_false(ok)
      assert_mentions(tostring(err), "bad argument #1")
      assert.equal(sent, icmprun.counters().sent)
    end)
  end)

  describe("over the limit", function()
    it("refuses a /0 by default, naming the limit and how to raise it", function()
      assert_mentions(call_error("0.0.0.0/0"), "bad argument #1", "'0.0.0.0/0'",
        "limit of 16777216", "opts.limit")
    end)

    it("accepts a /0 when the limit is raised", function()
      create_and_close("0.0.0.0/0", { limit = 2 ^ 32 })
    end)

    it("refuses an IPv6 /0 at any limit", function()
      assert_mentions(call_error("::/0", { limit = 2 ^ 53 }), "'::/0'", "limit")
      create_and_close("2001:db8::/96", { limit = 2 ^ 32 })
    end)

    it("accepts exactly the limit and refuses one address more", function()
      create_and_close("127.0.0.0/8")
      create_and_close({ "127.0.0.0/9", "127.128.0.0/9" })
      assert_mentions(call_error({ "127.0.0.0/9", "127.128.0.0/9", "127.0.0.1" }),
        "bad argument #1", "limit of 16777216", "opts.limit")
      local results = collect("127.0.4.0/24", { limit = 256, rate = 0 })
      assert.equal(256, #results)
      assert_mentions(call_error("127.0.4.0/23", { limit = 256 }), "'127.0.4.0/23'",
        "limit of 256")
      assert_mentions(call_error({ "127.0.4.0/24", "::1" }, { limit = 256 }),
        "limit of 256")
    end)
  end)
end)

describe("icmprun.sweep options", function()
  for _, case in ipairs({
    { "count = 0", { count = 0 }, "'count'" },
    { "count = 1.5", { count = 1.5 }, "'count'" },
    { "count = 'three'", { count = "three" }, "'count'" },
    { "rate = -1", { rate = -1 }, "'rate'" },
    { "interval = -1", { interval = -1 }, "'interval'" },
    { "timeout = -1", { timeout = -1 }, "'timeout'" },
    { "retries = -1", { retries = -1 }, "'retries'" },
    { "backoff = 0.5", { backoff = 0.5 }, "'backoff'" },
    { "order = 'sideways'", { order = "sideways" }, "'order'" },
    { "order = 1", { order = 1 }, "'order'" },
    { "seed = 1.5", { seed = 1.5 }, "'seed'" },
    { "limit = 0", { limit = 0 }, "'limit'" },
    { "window = 0", { window = 0 }, "'window'" },
    { "size = -1", { size = -1 }, "'size'" },
    { "ttl = 0", { ttl = 0 }, "'ttl'" },
    { "tos = 256", { tos = 256 }, "'tos'" },
    { "family = 5", { family = 5 }, "'family'" },
    { "an unknown option", { bogus = 1 }, "unknown option 'bogus'" },
    { "an option in the wrong case", { count = 1, Count = 2 }, "unknown option 'Count'" },
  }) do
    it("raise at the call for " .. case[1] .. ", naming it", function()
      assert_mentions(call_error("127.0.0.1", case[2]), "bad argument #2", case[3])
    end)
  end

  it("raise at the call for options that are not a table", function()
    assert_mentions(call_error("127.0.0.1", 42), "bad argument #2")
  end)

  it("accept the documented values", function()
    create_and_close("127.0.0.1", { timeout = 1, size = 0, ttl = 255, tos = 0,
      family = 4, count = 1, interval = 0, rate = math.huge, retries = 0,
      backoff = 1, every_attempt = false, order = "sequential", seed = 0,
      limit = 1, window = 1 })
    create_and_close("::1", { family = 6, rate = 0, order = "random", seed = 42 })
  end)

  it("refuse a target of the other family than opts.family, naming it", function()
    for _, case in ipairs({ { "127.0.0.1", 6 }, { "::1", 4 } }) do
      local ok, err = pcall(collect, case[1], { family = case[2] })
      assert.is_false(ok, case[1] .. " was swept with family " .. case[2])
      assert_mentions(tostring(err), case[1])
    end
  end)

  it("send probes of the size asked for", function()
    for _, case in ipairs({ { 0, 8 }, { 1000, 1008 } }) do
      local results = collect({ "127.0.0.1-127.0.0.2", "::1" }, { size = case[1] })
      assert.equal(3, #results)
      for _, r in ipairs(results) do
        assert.equal("reply", r.status)
        assert.equal(case[2], r.bytes)
      end
    end
  end)

  it("send probes with ttl and tos set, on the wire", function()
    local nftcount = require "nftcount"
    for _, addr in ipairs({ "127.0.0.1", "::1" }) do
      nftcount.start(addr, { ttl = 1, tos = 0x10 })
      local results = collect({ addr }, { ttl = 1, tos = 0x10, count = 3, interval = 10 })
      local counts = nftcount.read()
      nftcount.stop()
      assert.equal(3, #results)
      for _, r in ipairs(results) do
        assert.equal("reply", r.status)
      end
      assert.same({ all = 3, ttl = 3, tos = 3 }, counts)
    end
  end)
end)

describe("icmprun.sweep's values", function()
  it("are the iterator, the sweep, nil and the sweep again to close it", function()
    local v = table.pack(icmprun.sweep("127.0.0.1"))
    assert.equal(4, v.n)
    assert.is_function(v[1])
    assert.is_userdata(v[2])
    assert.is_nil(v[3])
    assert.equal(v[2], v[4])
    local r = v[1](v[2], v[3])
    assert.equal("reply", r.status)
    assert.is_nil(v[1](v[2], r))
    v[4]:close()
  end)
end)
