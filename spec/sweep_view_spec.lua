-- SPDX-License-Identifier: MIT

--- The live terminal view of `icmprun sweep`, checked in a real pty: tmux
-- runs the sweep in a pane, and the spec reads the screen tmux shows.
local cli = require "cli"

local function tmux_available()
  return cli.sh("command -v tmux").code == 0
end

-- A tmux server of our own (its own socket), so nothing else is touched.
local function tmux(socket, args)
  return cli.sh("tmux -L " .. cli.quote(socket) .. " " .. args)
end

local function screen(socket)
  return tmux(socket, "capture-pane -p").stdout
end

local function sleep(seconds)
  cli.sh("sleep " .. seconds)
end

describe("icmprun sweep's live view", function()
  it("needs tmux", function()
    assert(tmux_available(), "TMUX MISSING, THE PTY CHECK DID NOT RUN (apt-get install tmux)")
  end)

  if not tmux_available() then return end

  it("draws progress, rate, replies and an RTT histogram in place, and clears it at the end", function()
    local socket = "icmprun-view-" .. os.time() .. "-" .. math.random(1e6)
    local cmd = string.format("%s sweep --rate 1000 127.0.0.0/20 >/dev/null; echo exit=$?; "
      .. "sleep 600", cli.quote(cli.icmprun))
    local r = tmux(socket, "new-session -d -x 100 -y 30 " .. cli.quote(cmd))
    assert.equal(0, r.code, r.stderr)
    local ok, err = pcall(function()
      -- Wait for the view to show some hundreds of results (or the end).
      local text, done
      for _ = 1, 600 do
        text = screen(socket)
        done = tonumber(text:match("sweep: (%d+)/4096"))
        if (done and done >= 300) or text:find("exit=") then break end
        sleep(0.1)
      end
      assert.truthy(done, "no view on the screen:\n" .. text)
      local lines = {}
      for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
      -- One progress line: each redraw went over the previous one.
      local progress, replies, histogram = 0, nil, 0
      for _, line in ipairs(lines) do
        if line:match("^sweep: %d+/4096 %(%d+%%%)  [%d.k]+/s  ETA ") then
          progress = progress + 1
        end
        replies = replies or tonumber(line:match("^replies (%d+)"))
        local n = line:match(" ms |#+ (%d+)$")
        if n then histogram = histogram + tonumber(n) end
      end
      assert.equal(1, progress, text)
      assert.truthy(replies, text)
      assert.is_true(replies > 0, text)
      -- The histogram counts every reply shown (one frame, drawn at once).
      assert.equal(replies, histogram, text)
      -- At the end the view is cleared and nothing of it is left.
      for _ = 1, 600 do
        text = screen(socket)
        if text:find("exit=") then break end
        sleep(0.1)
      end
      assert.matches("exit=0", text)
      assert.is_nil(text:find("sweep:", 1, true), text)
      assert.is_nil(text:find("replies", 1, true), text)
    end)
    tmux(socket, "kill-server")
    assert(ok, err)
  end)

  it("draws nothing when stderr is not a terminal", function()
    local r = cli.icmprun_run({ "sweep", "--rate", "0", "127.0.0.0/28" })
    assert.equal(0, r.code)
    assert.equal("", r.stderr)
  end)
end)
