-- SPDX-License-Identifier: MIT

--- icmprun.cli: argparse parsers that return instead of exiting, and the
-- messages and exit statuses scripts give on --help and on mistakes.
local icli = require "icmprun.cli"
local cli = require "cli"

local explain = cli.explain

--- A parser like a small campaign script's.
local function campaign_parser()
  local p = icli.parser("campaign", "Ping targets in waves.")
  p:argument("targets", "Targets to ping."):args("+")
  p:option("-c --count", "Probes per target.", "3"):convert(tonumber)
  p:flag("-q --quiet", "Print only the summary.")
  return p
end

--- Runs Lua code with stock Lua and the library from the source tree.
local function lua_run(code)
  return cli.sh(string.format("%s -e %s", cli.quote(cli.lua),
    cli.quote('package.path = "lua/?.lua;" .. package.path\n' .. code)))
end

describe("icmprun.cli", function()
  describe("parse", function()
    it("returns the arguments", function()
      local args = icli.parse(campaign_parser(), { "-c", "5", "127.0.0.1", "::1" })
      assert.same({ "127.0.0.1", "::1" }, args.targets)
      assert.equal(5, args.count)
      assert.is_falsy(args.quiet)
    end)

    it("ignores arg[0] and the interpreter's arguments", function()
      local argv = { [-1] = "icmprun", [0] = "campaign.lua", "-q", "192.0.2.1" }
      local args = icli.parse(campaign_parser(), argv)
      assert.same({ "192.0.2.1" }, args.targets)
      assert.equal(3, args.count)
      assert.is_true(args.quiet)
    end)

    it("returns nil, the message and 2 on a mistake, without exiting", function()
      local args, msg, status = icli.parse(campaign_parser(), { "-x", "127.0.0.1" })
      assert.is_nil(args)
      assert.matches("^unknown option '%-x'", msg)
      assert.equal(2, status)
      args, msg = icli.parse(campaign_parser(), {})
      assert.is_nil(args)
      assert.equal("missing argument 'targets'", msg)
    end)

    it("returns nil, the help text and 0 on --help, without exiting", function()
      for _, flag in ipairs({ "-h", "--help" }) do
        local args, text, status = icli.parse(campaign_parser(), { flag })
        assert.is_nil(args)
        assert.equal(0, status)
        assert.matches("^Usage: campaign %[%-h%]", text)
        assert.truthy(text:find("Ping targets in waves.", 1, true))
        assert.truthy(text:find("-c <count>", 1, true))
      end
    end)

    it("gives a subcommand's help", function()
      local p = icli.parser("tool")
      local show = icli.command(p, "show", "Show things.")
      show:flag("-a --all", "Everything.")
      local args, text, status = icli.parse(p, { "show", "--help" })
      assert.is_nil(args)
      assert.equal(0, status)
      assert.matches("^Usage: tool show %[%-h%] %[%-a%]", text)
      args = icli.parse(p, { "show", "-a" })
      assert.is_true(args.show)
      assert.is_true(args.all)
    end)

    it("lets errors of the caller's own actions through", function()
      local p = icli.parser("x")
      p:flag("--boom"):action(function() error("boom in action") end)
      assert.error_matches(function() icli.parse(p, { "--boom" }) end, "boom in action")
    end)

    it("refuses what is not a parser or a list", function()
      assert.has_error(function() icli.parse({}, {}) end,
        "cli.parse: argparse parser expected, got table")
      assert.has_error(function() icli.parse(campaign_parser(), "-q") end,
        "cli.parse: argument list expected, got string")
      assert.has_error(function() icli.parser(nil) end, "cli.parser: name must be a string, got nil")
    end)
  end)

  describe("fail", function()
    it("writes 'NAME: message' to stderr and returns the code", function()
      local r = lua_run([[
        local cli = require "icmprun.cli"
        print(cli.fail("campaign", "no targets"), cli.fail("campaign", "bad count", 1))
      ]])
      assert.equal(0, r.code, explain(r))
      assert.equal("2\t1\n", r.stdout)
      assert.equal("campaign: no targets\ncampaign: bad count\n", r.stderr)
    end)

    it("prints the help of parse to stdout and returns 0, whatever the code", function()
      local r = lua_run([[
        local cli = require "icmprun.cli"
        local p = cli.parser("campaign", "Ping targets in waves.")
        local args, msg = cli.parse(p, { "--help" })
        os.exit(cli.fail("campaign", msg, 1))
      ]])
      assert.equal(0, r.code, explain(r))
      assert.matches("^Usage: campaign %[%-h%]\n\nPing targets in waves.\n", r.stdout)
      assert.equal("", r.stderr)
    end)
  end)

  describe("handle", function()
    it("returns the arguments, or nil and the status after reporting", function()
      local r = lua_run([[
        local cli = require "icmprun.cli"
        local p = cli.parser("campaign")
        p:option("-c"):convert(tonumber)
        local args = cli.handle(p, { "-c", "4" })
        print(args.c)
        print(select(2, cli.handle(p, { "-z" }, 1)))
        print(select(2, cli.handle(p, { "-h" })))
      ]])
      assert.equal(0, r.code, explain(r))
      assert.matches("^4\n1\nUsage: campaign %[%-h%] %[%-c <c>%]\n.*\n0\n$", r.stdout)
      assert.matches("^campaign: unknown option '%-z'", r.stderr)
    end)
  end)

  describe("inside icmprun", function()
    it("gives a script --help, a usage error and its arguments", function()
      local script = [[
        local cli = require "icmprun.cli"
        local p = cli.parser("probe", "Probe a target.")
        p:argument("target")
        local args, msg, status = cli.parse(p, arg)
        if not args then return os.exit(cli.fail("probe", msg, status)) end
        print("target " .. args.target)
      ]]
      local help = cli.icmprun_script(script, { "--help" })
      assert.equal(0, help.code, explain(help))
      assert.matches("^Usage: probe %[%-h%] <target>\n", help.stdout)
      local bad = cli.icmprun_script(script, { "-x" })
      assert.equal(2, bad.code, explain(bad))
      assert.matches("^probe: unknown option '%-x'", bad.stderr)
      local ok = cli.icmprun_script(script, { "::1" })
      assert.equal(0, ok.code, explain(ok))
      assert.equal("target ::1\n", ok.stdout)
    end)

    it("embeds every library module", function()
      -- Every .lua file under lua/, found on disk rather than listed here,
      -- so that a module added later cannot be left out unnoticed.
      local find = io.popen("cd " .. cli.quote(cli.source_dir) .. "/lua && find . -name '*.lua'")
      local names = {}
      for path in find:lines() do
        names[#names + 1] = path:gsub("^%./", ""):gsub("%.lua$", ""):gsub("/init$", "")
          :gsub("/", ".")
      end
      find:close()
      table.sort(names)
      assert.is_true(#names >= 20, "found only " .. #names .. " modules under lua/")
      local r = cli.icmprun_run({ "-e", "local names = " .. string.format("%q", table.concat(names, " ")) .. [[
        for name in names:gmatch("%S+") do
          assert(package.preload[name], name .. " is not embedded")
          assert(require(name) ~= nil, name .. " returned nothing")
        end
        print("ok")
      ]] })
      assert.equal(0, r.code, explain(r))
      assert.equal("ok\n", r.stdout)
    end)
  end)
end)
