--- Round-trip statistics as ping reports them: min/avg/max/mdev and loss.
-- Welford's running mean and variance keep memory constant per target.
-- @module icmprun.stats
local M = {}

local Stats = {}
Stats.__index = Stats

--- A new, empty statistics object.
-- @treturn Stats
function M.new()
  return setmetatable({
    sent = 0, received = 0, errors = 0,
    min = math.huge, max = -math.huge, mean = 0, m2 = 0,
  }, Stats)
end

--- Adds one result (a table from icmprun.ping).
-- @tparam table r the result
function Stats:add(r)
  self.sent = self.sent + 1
  if r.status == "reply" then
    local n = self.received + 1
    self.received = n
    local rtt = r.rtt
    if rtt < self.min then self.min = rtt end
    if rtt > self.max then self.max = rtt end
    local delta = rtt - self.mean
    self.mean = self.mean + delta / n
    self.m2 = self.m2 + delta * (rtt - self.mean)
  elseif r.status ~= "timeout" then
    self.errors = self.errors + 1
  end
end

--- Packet loss in percent (0 when nothing was sent).
function Stats:loss()
  if self.sent == 0 then return 0 end
  return (self.sent - self.received) * 100 / self.sent
end

--- The population standard deviation of the RTTs (iputils' mdev), or nil.
function Stats:stddev()
  if self.received == 0 then return nil end
  return math.sqrt(self.m2 / self.received)
end

--- min, avg, max, mdev in milliseconds, or nil when nothing answered.
function Stats:summary()
  if self.received == 0 then return nil end
  return self.min, self.mean, self.max, self:stddev()
end

return M
