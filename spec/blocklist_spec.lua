-- SPDX-License-Identifier: MIT

--- Blocklists and allowlists: icmprun.addrset's sets of address intervals,
-- and `icmprun sweep --blocklist/--allowlist`, whose skipped addresses are
-- never probed and are counted.
local cli = require "cli"
local cjson = require "cjson"
local addrset = require "icmprun.addrset"

local explain = cli.explain

describe("icmprun.addrset", function()
  it("parses and formats both families", function()
    assert.equal("\127\0\0\1", addrset.parse("127.0.0.1"))
    assert.equal("127.0.0.1", addrset.format(addrset.parse("127.0.0.1")))
    assert.equal("2001:db8:0:0:0:0:0:1", addrset.format(addrset.parse("2001:db8::1")))
    assert.equal("0:0:0:0:0:0:0:1", addrset.format(addrset.parse("::1")))
    assert.equal("0:0:0:0:0:ffff:c000:201", addrset.format(addrset.parse("::ffff:192.0.2.1")))
    assert.equal("1:2:3:4:5:6:7:8", addrset.format(addrset.parse("1:2:3:4:5:6:7:8")))
    for _, bad in ipairs({ "256.0.0.1", "1.2.3", "1:2:3:4:5:6:7:8:9", "1::2::3", "12345::",
      "localhost", "", "::g", "1.2.3.4/8" }) do
      assert.is_nil(addrset.parse(bad), bad)
    end
  end)

  it("gives a block's first and last address, at every edge", function()
    local function block(text)
      local first, last = addrset.block(text)
      return addrset.format(first) .. " " .. addrset.format(last)
    end
    assert.equal("10.0.0.0 10.255.255.255", block("10.1.2.3/8"))
    assert.equal("0.0.0.0 255.255.255.255", block("0.0.0.0/0"))
    assert.equal("127.0.0.1 127.0.0.1", block("127.0.0.1/32"))
    assert.equal("100.64.0.0 100.127.255.255", block("100.64.0.0/10"))
    assert.equal("2001:db8:0:0:0:0:0:0 2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
      block("2001:db8::/32"))
    assert.is_nil(addrset.block("10.0.0.0/33"))
    assert.is_nil(addrset.block("::/129"))
  end)

  it("merges overlapping and adjacent blocks", function()
    local set = addrset.new({ { addrset.block("10.0.0.0/9") }, { addrset.block("10.128.0.0/9") },
      { addrset.block("10.1.0.0/16") }, { addrset.block("::/0") } })
    assert.equal(2, set:count())
    assert.is_true(set:contains(addrset.parse("10.200.0.1")))
    assert.is_false(set:contains(addrset.parse("11.0.0.0")))
    assert.is_true(set:contains(addrset.parse("ffff::1")))
  end)

  it("cuts targets into the ranges left, and counts what it cut", function()
    local block = addrset.new({ { addrset.block("127.0.0.2/31") }, { addrset.block("127.0.0.8/32") },
      { addrset.block("2001:db8::/127") } })
    local kept, skipped = addrset.cut({ "127.0.0.0/28", "2001:db8::/126", "127.0.0.2",
      "localhost" }, nil, block)
    assert.same({ "127.0.0.0-127.0.0.1", "127.0.0.4-127.0.0.7", "127.0.0.9-127.0.0.15",
      "2001:db8:0:0:0:0:0:2-2001:db8:0:0:0:0:0:3", "localhost" }, kept)
    assert.equal(3 + 2 + 1, skipped)
    local allow = addrset.new({ { addrset.block("127.0.0.4/30") } })
    kept, skipped = addrset.cut({ "127.0.0.0/24", "127.0.0.1-127.0.0.5" }, allow, block)
    assert.same({ "127.0.0.4-127.0.0.7", "127.0.0.4-127.0.0.5" }, kept)
    assert.equal(252 + 3, skipped)
  end)

  it("cuts at the ends of the address space without wrapping", function()
    local block = addrset.new({ { addrset.block("0.0.0.0/8") }, { addrset.block("255.0.0.0/8") } })
    local kept = addrset.cut({ "0.0.0.0/0" }, nil, block)
    assert.same({ "1.0.0.0-254.255.255.255" }, kept)
    kept = addrset.cut({ "0.0.0.0/0" }, nil, addrset.new({ { addrset.block("0.0.0.0/0") } }))
    assert.same({}, kept)
  end)

  it("resolves names with the function given, and keeps those that do not resolve", function()
    local block = addrset.new({ { addrset.block("127.0.0.1/32") } })
    local kept, skipped = addrset.cut({ "here", "nowhere" }, nil, block, function(name)
      return name == "here" and "127.0.0.1" or nil
    end)
    assert.same({ "nowhere" }, kept)
    assert.equal(1, skipped)
  end)
end)

describe("icmprun sweep --blocklist/--allowlist", function()
  local dir
  before_each(function()
    dir = cli.temp_dir()
  end)
  after_each(function()
    cli.remove_tree(dir)
  end)

  -- The addresses a --json run probed, sorted.
  local function probed(stdout)
    local addrs = {}
    for line in stdout:gmatch("[^\n]+") do
      local record = cjson.decode(line)
      if record.type == "result" then
        addrs[#addrs + 1] = record.addr
      end
    end
    table.sort(addrs)
    return addrs
  end

  it("never probes a blocklisted address, and counts it as skipped", function()
    cli.write_file(dir .. "/block.conf", "# test\n127.0.0.2/31   # two\n\n127.0.0.8\n")
    local r = cli.icmprun_run({ "sweep", "--json", "-s", "--blocklist", dir .. "/block.conf",
      "127.0.0.0/28" })
    assert.equal(0, r.code, explain(r))
    local expected = {}
    for i = 0, 15 do
      if i ~= 2 and i ~= 3 and i ~= 8 then
        expected[#expected + 1] = "127.0.0." .. i
      end
    end
    table.sort(expected)
    assert.same(expected, probed(r.stdout))
    assert.matches("^13 results, 13 addresses answered, 13 replies, 0 timeouts, 0 errors, "
      .. "3 skipped", r.stderr)
  end)

  it("probes only allowlisted addresses, less the blocklisted ones", function()
    cli.write_files(dir, { ["allow.conf"] = "127.0.0.4/30\n::1\n",
      ["block.conf"] = "127.0.0.5\n" })
    local r = cli.icmprun_run({ "sweep", "--json", "-s", "--allowlist", dir .. "/allow.conf",
      "--blocklist", dir .. "/block.conf", "127.0.0.0/28", "::1", "localhost" })
    assert.equal(0, r.code, explain(r))
    assert.same({ "127.0.0.4", "127.0.0.6", "127.0.0.7", "::1" }, probed(r.stdout))
    assert.matches(", 14 skipped", r.stderr, 1, true)
  end)

  it("with the shipped IANA list skips loopback and documentation blocks", function()
    local r = cli.icmprun_run({ "sweep", "-s", "--blocklist", cli.source_dir
      .. "/examples/blocklist-iana.conf", "127.0.0.0/30", "::1", "192.0.2.0/30" })
    assert.equal(1, r.code, explain(r))
    assert.equal("", r.stdout)
    assert.equal("sweep: nothing left to probe: 9 addresses skipped\n0 results, 0 addresses "
      .. "answered, 0 replies, 0 timeouts, 0 errors, 9 skipped\n", r.stderr)
  end)

  it("names the file and line of an entry that is no block, exit 2", function()
    cli.write_file(dir .. "/bad.conf", "10.0.0.0/8\nnot-a-block\n")
    local r = cli.icmprun_run({ "sweep", "--blocklist", dir .. "/bad.conf", "127.0.0.1" })
    assert.equal(2, r.code, explain(r))
    assert.equal("sweep: --blocklist: " .. dir .. "/bad.conf:2: 'not-a-block' is not a CIDR "
      .. "block or an address\n", r.stderr)
    r = cli.icmprun_run({ "sweep", "--allowlist", dir .. "/none", "127.0.0.1" })
    assert.equal(2, r.code, explain(r))
    assert.matches("^sweep: %-%-allowlist: .*none: No such file or directory\n$", r.stderr)
  end)
end)
