-- SPDX-License-Identifier: MIT

--- Exact accounting under loss and back-pressure: every probe ends in exactly
-- one result, and the numbers agree with what the network really did. The
-- "lossy" test host drops a random 1 in 10 of its echo replies and counts
-- them in an nftables counter; the "slow" host sits behind a token bucket.
local icmprun = require "icmprun"
local cli = require "cli"

--- Echo replies the lossy host has dropped so far.
local function dropped()
  local r = cli.sh("ip netns exec lossy nft list counter inet lossy dropped")
  assert.equal(0, r.code, r.stderr)
  return tonumber(r.stdout:match("packets (%d+)"))
end

describe("accounting", function()
  setup(function()
    -- Neighbour discovery first, so that no probe waits on it. (Its reply
    -- may be dropped too; every test reads the counter afresh.)
    icmprun.ping("2001:db8:6::2", { timeout = 500 })
  end)

  it("gives as many timeouts as replies were dropped, over 131,072 probes", function()
    local before, sent_before = dropped(), icmprun.counters().sent
    local seen, by_status, results = {}, {}, 0
    for r in icmprun.sweep("2001:db8:7::/112",
      { rate = 0, count = 2, interval = 0, timeout = 1000 }) do
      results = results + 1
      by_status[r.status] = (by_status[r.status] or 0) + 1
      local key = r.addr .. "#" .. r.n
      assert.is_nil(seen[key], "second result for " .. key)
      seen[key] = true
    end
    local drops = dropped() - before
    local sent = icmprun.counters().sent - sent_before
    assert.equal(131072, results)
    assert.equal(131072, sent)
    assert.equal(drops, by_status.timeout)
    assert.equal(sent, by_status.reply + by_status.timeout)
    assert.is_true(drops > 131072 * 0.08 and drops < 131072 * 0.12,
      "a 1 in 10 drop rule dropped " .. drops)
    assert.equal(0, icmprun.counters().pending)
  end)

  it("counts every resend: drops = resends + final timeouts", function()
    local before, sent_before = dropped(), icmprun.counters().sent
    local results, timeouts, attempts = 0, 0, 0
    for r in icmprun.sweep("2001:db8:7::1:0/116",
      { rate = 0, timeout = 300, retries = 2, backoff = 1 }) do
      results = results + 1
      attempts = attempts + r.attempts
      if r.status == "timeout" then
        timeouts = timeouts + 1
        assert.equal(3, r.attempts)
      end
    end
    local drops = dropped() - before
    local sent = icmprun.counters().sent - sent_before
    local resends = sent - results
    assert.equal(4096, results)
    assert.equal(sent, attempts)
    assert.equal(drops, resends + timeouts)
    assert.is_true(resends > 0, "the drop rule should have forced resends")
  end)

  it("loses no probe when sends meet a full socket buffer", function()
    local r = cli.sh("ICMPRUN_SNDBUF=4096 " .. cli.quote(cli.icmprun) .. " -e " .. cli.quote([[
      local icmprun = require "icmprun"
      icmprun.ping("2001:db8:8::2")
      local before = icmprun.counters()
      local replies, results = 0, 0
      for r in icmprun.sweep("2001:db8:8::2",
        { rate = 0, count = 2000, interval = 0, size = 1000, timeout = 5000 }) do
        results = results + 1
        if r.status == "reply" then replies = replies + 1 end
      end
      local after = icmprun.counters()
      print(results, replies, after.sent - before.sent,
        after.send_blocked - before.send_blocked)
    ]]))
    assert.equal(0, r.code, r.stderr)
    local results, replies, sent, blocked = r.stdout:match("^(%d+)\t(%d+)\t(%d+)\t(%d+)")
    assert.equal("2000", results)
    assert.equal("2000", replies)
    assert.equal("2000", sent)
    -- Counted as EAGAIN alone (not ENOBUFS or other retries): the README
    -- says hundreds.
    assert.is_true(tonumber(blocked) >= 100, "the small buffer pushed back only " ..
      blocked .. " times")
  end)
end)
