-- SPDX-License-Identifier: MIT

--- Sharding a sweep across machines, as zmap's --shards/--shard: shard i of
-- n probes a deterministic, disjoint part of the target space, and the n
-- shards together cover it exactly once.
local icmprun = require "icmprun"
local cli = require "cli"

--- The addresses each shard of n probes, in the order they were probed.
local function shards(targets, n, opts)
  local parts = {}
  for i = 1, n do
    local o = { rate = 0, timeout = 500, shard = { i, n } }
    for k, v in pairs(opts or {}) do o[k] = v end
    parts[i] = {}
    for r in icmprun.sweep(targets, o) do parts[i][#parts[i] + 1] = r.addr end
  end
  return parts
end

--- Checks that parts are disjoint and cover exactly `total` addresses.
local function assert_partition(parts, total)
  local owner, count = {}, 0
  for i, part in ipairs(parts) do
    for _, addr in ipairs(part) do
      assert.is_nil(owner[addr], addr .. " is in shards " .. tostring(owner[addr]) ..
        " and " .. i)
      owner[addr] = i
      count = count + 1
    end
  end
  assert.equal(total, count)
end

describe("sharding", function()
  local targets = { "127.0.0.0/24", "127.0.1.0/30", "::1" }

  for _, n in ipairs({ 1, 2, 3, 5, 16 }) do
    it("splits the targets into " .. n .. " disjoint shards that cover them", function()
      assert_partition(shards(targets, n), 261)
      assert_partition(shards(targets, n, { order = "random", seed = 7 }), 261)
    end)
  end

  it("gives shards of about equal size", function()
    for _, part in ipairs(shards("127.0.0.0/22", 4, { order = "random", seed = 3 })) do
      assert.equal(256, #part)
    end
  end)

  it("is deterministic for a seed, and another seed splits differently", function()
    -- Compared as sets: results come in the order replies arrive, which is
    -- not the shard's business; which addresses each shard holds is.
    local function as_sets(parts)
      for _, part in ipairs(parts) do table.sort(part) end
      return parts
    end
    local a = as_sets(shards("127.0.0.0/24", 3, { order = "random", seed = 11 }))
    local b = as_sets(shards("127.0.0.0/24", 3, { order = "random", seed = 11 }))
    local c = as_sets(shards("127.0.0.0/24", 3, { order = "random", seed = 12 }))
    assert.equal(256, #a[1] + #a[2] + #a[3])
    assert.same(a, b)
    assert.are_not.same(a[1], c[1])
  end)

  it("refuses a random order without a shared seed, and bad shards", function()
    assert.error_matches(function()
      icmprun.sweep("127.0.0.0/24", { order = "random", shard = { 1, 2 } })
    end, "needs the 'seed' that every shard shares")
    for _, bad in ipairs({ { 0, 2 }, { 3, 2 }, { 1, 0 }, { 1.5, 2 }, "1/2" }) do
      assert.error_matches(function()
        icmprun.sweep("127.0.0.0/24", { shard = bad })
      end, "option 'shard' must be")
    end
  end)

  it("is offered by icmprun sweep as --shard I/N", function()
    local seen, total = {}, 0
    for i = 1, 3 do
      local r = cli.icmprun_run({ "sweep", "--rate", "0", "--random", "--seed", "5",
        "--shard", i .. "/3", "127.0.0.0/26" })
      assert.equal(0, r.code, r.stderr)
      for addr in r.stdout:gmatch("[^\n]+") do
        assert.is_nil(seen[addr], addr .. " twice")
        seen[addr] = true
        total = total + 1
      end
    end
    assert.equal(64, total)
    local bad = cli.icmprun_run({ "sweep", "--shard", "4/3", "127.0.0.1" })
    assert.equal(2, bad.code)
    assert.matches("%-%-shard", bad.stderr)
  end)
end)
