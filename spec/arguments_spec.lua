-- SPDX-License-Identifier: MIT

--- Caller mistakes raise an error that names the argument or option at fault;
-- runtime failures (an unknown name) are not mistakes and return nil, message.
local icmprun = require "icmprun"

-- Every probe here is refused before it is sent; loopback all the same.
local V4, V6 = "127.0.0.1", "::1"

--- Asserts that ping(target, opts) raises an error about argument #2 whose
-- message names the option and contains each further plain string.
local function assert_bad_option(target, opts, option, ...)
  local ok, err, msg = pcall(icmprun.ping, target, opts)
  assert.is_false(ok, string.format("ping did not raise for option '%s' (it returned %s, %s)",
    option, tostring(err), tostring(msg)))
  assert.is_string(err)
  assert.truthy(err:find("bad argument #2", 1, true), err)
  assert.truthy(err:find("option '" .. option .. "'", 1, true), err)
  for _, text in ipairs({ ... }) do
    assert.truthy(err:find(text, 1, true), err)
  end
end

describe("icmprun.ping argument checks", function()
  describe("option timeout", function()
    it("rejects a negative timeout", function()
      assert_bad_option(V4, { timeout = -1 }, "timeout", "-1")
    end)

    it("rejects a timeout that is not a number", function()
      assert_bad_option(V4, { timeout = {} }, "timeout", "table")
    end)

    it("rejects a string that is not a duration, naming it", function()
      -- Strings with a unit ("500ms", "2s") are durations; this is none.
      assert_bad_option(V4, { timeout = "soon" }, "timeout", "'soon'", "(us, ms, s, m, h)")
    end)

    it("rejects a timeout over a day", function()
      assert_bad_option(V4, { timeout = 86400001 }, "timeout")
    end)
  end)

  describe("option size", function()
    it("rejects 65508 to an IPv4 address, over its largest datagram", function()
      assert_bad_option(V4, { size = 65508 }, "size", "65508")
    end)

    it("rejects 65528 to an IPv6 address, over its largest datagram", function()
      assert_bad_option(V6, { size = 65528 }, "size", "65528")
    end)

    it("rejects a size that is not an integer", function()
      assert_bad_option(V4, { size = 56.5 }, "size", "integer")
    end)

    it("rejects a negative size", function()
      assert_bad_option(V6, { size = -1 }, "size")
    end)
  end)

  describe("option ttl", function()
    it("rejects 0", function()
      assert_bad_option(V4, { ttl = 0 }, "ttl", "1..255")
    end)

    it("rejects 256", function()
      assert_bad_option(V6, { ttl = 256 }, "ttl", "1..255")
    end)
  end)

  describe("option tos", function()
    it("rejects 256", function()
      assert_bad_option(V4, { tos = 256 }, "tos", "0..255")
    end)

    it("rejects -1", function()
      assert_bad_option(V4, { tos = -1 }, "tos", "0..255")
    end)
  end)

  describe("option family", function()
    it("rejects 5", function()
      assert_bad_option(V4, { family = 5 }, "family", "4 or 6")
    end)

    it("rejects a family that is not a number", function()
      assert_bad_option(V4, { family = "inet" }, "family")
    end)
  end)

  describe("the options table", function()
    it("rejects an unknown option key, naming it", function()
      assert_bad_option(V4, { timout = 100 }, "timout", "unknown")
    end)

    it("rejects options that are not a table", function()
      assert.error_matches(function()
        icmprun.ping(V4, "timeout=100")
      end, "bad argument #2 .*table expected")
    end)
  end)

  describe("the target", function()
    it("rejects a missing target", function()
      assert.error_matches(function()
        icmprun.ping()
      end, "bad argument #1 .*string expected")
    end)

    it("rejects a target that is not a string", function()
      assert.error_matches(function()
        icmprun.ping({ V4 })
      end, "bad argument #1 .*string expected, got table")
    end)

    it("rejects an empty target", function()
      assert.error_matches(function()
        icmprun.ping("")
      end, "bad argument #1 ")
    end)
  end)

  it("checks the options before a name is looked up", function()
    assert_bad_option("localhost", { ttl = 0 }, "ttl")
  end)

  it("does not count a refused call as a probe", function()
    local before = icmprun.counters()
    pcall(icmprun.ping, V4, { ttl = 0 })
    pcall(icmprun.ping, V4, { bogus = true })
    assert.equal(before.sent, icmprun.counters().sent)
  end)
end)

describe("task primitive argument checks", function()
  it("sleep rejects a negative time", function()
    assert.error_matches(function()
      icmprun.sleep(-1)
    end, "bad argument #1 .*sleep")
  end)

  it("sleep rejects a time that is neither a number nor a duration", function()
    assert.error_matches(function()
      icmprun.sleep({})
    end, "bad argument #1 .*number expected")
    assert.error_matches(function()
      icmprun.sleep("1 fortnight")
    end, "bad argument #1 .*milliseconds must be >= 0 %(or a duration")
  end)

  it("spawn rejects what is not a function", function()
    assert.error_matches(function()
      icmprun.spawn(42)
    end, "bad argument #1 .*function expected, got number")
    assert.error_matches(function()
      icmprun.spawn()
    end, "bad argument #1 .*function expected")
  end)

  it("join rejects what is not a task", function()
    local task = icmprun.spawn(function() end)
    local join = task.join
    assert.error_matches(function()
      join({})
    end, "bad argument #1 .*icmprun%.task expected, got table")
    assert.error_matches(function()
      join(42)
    end, "bad argument #1 .*icmprun%.task expected, got number")
    task:join()
  end)

  it("run rejects what is not a function", function()
    assert.error_matches(function()
      icmprun.run("print(1)")
    end, "bad argument #1 .*function expected, got string")
  end)
end)
