-- SPDX-License-Identifier: MIT

--- `icmprun mtr`'s live view in a real terminal: tmux runs it in a pane, and
-- the specs read the screen back (capture-pane) and press keys (send-keys).
-- Over scripts/testnet's path: hop 3 silent, hop 5 the target.
local cli = require "cli"

local TARGET = "203.0.113.146"
-- A tmux server of our own, its socket in a directory of our own: tmux's
-- default directory (/tmp/tmux-UID) may belong to another user as seen
-- from the user namespace of an unprivileged run.
-- One server a test, never one that is still going away; the directory is
-- made on first use and removed by each describe's teardown.
local dir, servers = nil, 0
local function socket()
  dir = dir or (cli.sh("mktemp -d").stdout:gsub("\n$", ""))
  return dir .. "/tmux" .. servers
end

local function remove_dir()
  if dir then
    cli.sh("rm -rf " .. cli.quote(dir))
    dir = nil
  end
end

local function tmux(args)
  return cli.sh("tmux -S " .. cli.quote(socket()) .. " " .. args)
end

local function screen()
  return tmux("capture-pane -p -t live").stdout
end

local function sleep(seconds)
  os.execute("sleep " .. seconds)
end

-- Waits (at most 15 s) until the screen satisfies pred; returns the screen.
local function wait_for(pred, what)
  local text
  for _ = 1, 150 do
    text = screen()
    if pred(text) then
      return text
    end
    sleep(0.1)
  end
  error("timed out waiting for " .. what .. "; screen:\n" .. tostring(text), 2)
end

-- The hop rows on screen: ttl -> { host, snt }.
local function rows(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do
    local ttl, host, rest = line:match("^ +(%d+)%. (%S+)%s+(.*)$")
    if ttl then
      local nums = {}
      for n in rest:gmatch("[%d.]+") do
        nums[#nums + 1] = tonumber(n)
      end
      out[tonumber(ttl)] = { host = host, snt = nums[2] }
    end
  end
  return out
end

local function start()
  servers = servers + 1
  local cmd = cli.icmprun_cmdline({ "mtr", "-n", "-i", "0.1", "-Z", "1", TARGET })
  local r = tmux(string.format("new-session -d -s live -x 110 -y 24 %s",
    cli.quote(cmd .. "; echo EXIT=$?; sleep 30")))
  assert.equal(0, r.code, r.stderr)
end

describe("icmprun mtr's live view", function()
  before_each(function()
    if cli.sh("command -v tmux").code ~= 0 then
      error("tmux is not installed (scripts/install-deps)")
    end
  end)
  after_each(function()
    tmux("kill-server")
  end)
  teardown(remove_dir)

  it("redraws the hop table in place, pauses, resets, and prints the report on Ctrl-C",
    function()
      start()
      local text = wait_for(function(t)
        local r = rows(t)
        -- Ten probes: hop 2, which drops 1 in 4, has answered by then.
        return r[5] and r[5].snt and r[5].snt >= 10
      end, "five hops with ten probes each")
      local r = rows(text)
      assert.equal("203.0.113.130", r[1].host)
      assert.equal("203.0.113.134", r[2].host)
      assert.equal("???", r[3].host)
      assert.equal("203.0.113.142", r[4].host)
      assert.equal(TARGET, r[5].host)
      -- In place: one title and one header on the screen, however many redraws.
      local _, titles = text:gsub("My traceroute", "")
      assert.equal(1, titles)
      local _, headers = text:gsub("Loss%%%s+Snt", "")
      assert.equal(1, headers)
      -- It keeps counting.
      local before = r[1].snt
      wait_for(function(t) return (rows(t)[1].snt or 0) >= before + 3 end, "more probes")

      -- p pauses: the counts stand still.
      tmux("send-keys -t live p")
      wait_for(function(t) return t:find("[paused]", 1, true) end, "[paused]")
      sleep(0.6) -- six intervals, and probes that were out have ended
      local paused = rows(screen())[1].snt
      sleep(0.6)
      assert.equal(paused, rows(screen())[1].snt)

      -- r resets every count, keeping the hops.
      tmux("send-keys -t live r")
      text = wait_for(function(t) return rows(t)[1] and rows(t)[1].snt == 0 end, "Snt 0")
      r = rows(text)
      for ttl = 1, 5 do
        assert.equal(0, r[ttl].snt)
      end
      assert.equal("???", r[3].host)

      -- p again resumes.
      tmux("send-keys -t live p")
      wait_for(function(t)
        return not t:find("[paused]", 1, true) and (rows(t)[1].snt or 0) >= 2
      end, "counting again")

      -- Ctrl-C leaves the view and prints mtr's report.
      tmux("send-keys -t live C-c")
      text = wait_for(function(t) return t:find("EXIT=", 1, true) end, "the exit")
      assert.matches("EXIT=0", text)
      assert.matches("Start: ", text)
      assert.matches("HOST: %S+%s+Loss%%   Snt   Last   Avg  Best  Wrst StDev", text)
      assert.matches("  1%.|%-%- 203%.0%.113%.130 ", text)
      assert.matches("  5%.|%-%- 203%.0%.113%.146 ", text)
      assert.is_nil(text:find("My traceroute", 1, true))
    end)

  it("quits on q at once, with no report, and gives the terminal back", function()
    start()
    wait_for(function(t) return rows(t)[5] ~= nil end, "the hops")
    tmux("send-keys -t live q")
    local text = wait_for(function(t) return t:find("EXIT=", 1, true) end, "the exit")
    assert.matches("EXIT=0", text)
    assert.is_nil(text:find("HOST:", 1, true))
    assert.is_nil(text:find("My traceroute", 1, true))
    -- The terminal is back in cooked mode: what is typed now is echoed.
    tmux("send-keys -t live typed-back")
    wait_for(function(t) return t:find("typed-back", 1, true) end, "the echo")
  end)

  it("stops on SIGINT too, printing the report", function()
    start()
    wait_for(function(t) return rows(t)[5] ~= nil end, "the hops")
    local shell = tmux("list-panes -t live -F '#{pane_pid}'").stdout:match("%d+")
    -- The shell in the pane runs icmprun as its only child.
    local child = cli.sh("pgrep -P " .. shell).stdout:match("%d+")
    assert.is_truthy(child)
    assert.equal(0, cli.sh("kill -INT " .. child).code)
    local text = wait_for(function(t) return t:find("EXIT=", 1, true) end, "the exit")
    assert.matches("EXIT=0", text)
    assert.matches("HOST: ", text)
  end)
end)

describe("icmprun mtr's live view with -c", function()
  it("leaves by itself after the last round, as mtr's display does", function()
    local cmd = cli.icmprun_cmdline({ "mtr", "-n", "-c", "5", "-i", "0.05", "-Z", "0.3",
      TARGET })
    servers = servers + 1
    local r = tmux(string.format("new-session -d -s live -x 110 -y 24 %s",
      cli.quote(cmd .. "; echo EXIT=$?; sleep 30")))
    assert.equal(0, r.code, r.stderr)
    local text = wait_for(function(t) return t:find("EXIT=", 1, true) end, "the exit")
    tmux("kill-server")
    assert.matches("EXIT=0", text)
    assert.is_nil(text:find("HOST:", 1, true))
  end)
  teardown(remove_dir)
end)

describe("icmprun mtr without a terminal", function()
  it("prints the report, as with -r", function()
    local r = cli.icmprun_run({ "mtr", "-n", "-c", "2", "-i", "0.05", "-Z", "0.5", TARGET })
    assert.equal(0, r.code, r.stderr)
    assert.matches("^Start: ", r.stdout)
    assert.matches("\n  5%.|%-%- 203%.0%.113%.146 ", r.stdout)
  end)
end)
