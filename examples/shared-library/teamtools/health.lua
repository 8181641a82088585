-- SPDX-License-Identifier: MIT

--- A team's verdict on a host from its probe results: `up` when every
-- probe was answered, `degraded` when some were, `down` when none were.
-- A module shipped by the example rock, used by its `checkup` command and
-- by any script: `require "teamtools.health"`.
-- @module teamtools.health
local M = {}

local setmetatable = setmetatable

local Tally = {}
Tally.__index = Tally

--- A new tally of results per address, in the order addresses first appear.
function M.new()
  return setmetatable({ order = {}, by_addr = {} }, Tally)
end

--- Counts one result of `icmprun.ping` or `icmprun.sweep`.
-- @tparam table r a result
function Tally:add(r)
  local t = self.by_addr[r.addr]
  if not t then
    t = { addr = r.addr, sent = 0, received = 0 }
    self.by_addr[r.addr] = t
    self.order[#self.order + 1] = t
  end
  t.sent = t.sent + 1
  if r.status == "reply" then
    t.received = t.received + 1
  end
end

--- The verdict for `received` answers out of `sent` probes.
-- @tparam integer sent
-- @tparam integer received
-- @treturn string "up", "degraded" or "down"
function M.verdict(sent, received)
  if received == 0 then
    return "down"
  elseif received < sent then
    return "degraded"
  end
  return "up"
end

--- Each address with its verdict, in the order they first appeared.
-- @treturn {{addr=string,sent=integer,received=integer,verdict=string},...}
function Tally:rows()
  for _, t in ipairs(self.order) do
    t.verdict = M.verdict(t.sent, t.received)
  end
  return self.order
end

return M
