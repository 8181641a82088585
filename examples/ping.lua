--- ping.lua: an iputils-ping look-alike written as an icmprun script.
--
-- Shows the basic campaign shape: resolve once, send one probe per interval
-- from its own task (so a slow reply never delays the next send), print each
-- reply as it arrives, and finish with ping's summary (loss, min/avg/max/mdev).
--
--   icmprun examples/ping.lua -c 5 ::1
--   icmprun examples/ping.lua -c 3 -i 0.2 -s 100 -t 32 127.0.0.1
--
-- Exit status as ping's: 0 if any reply came back, 1 if none, 2 on an error.
local icmprun = require "icmprun"
local argparse = require "argparse"
local stats = require "icmprun.stats"

local parser = argparse("ping.lua", "Send ICMP echo requests, like iputils ping.")
parser:argument("destination", "Address or host name.")
parser:option("-c --count", "Stop after sending this many probes.", "4"):convert(tonumber)
parser:option("-i --interval", "Seconds between probes.", "1"):convert(tonumber)
parser:option("-W --timeout", "Seconds to wait for each reply.", "1"):convert(tonumber)
parser:option("-s --size", "Payload bytes.", "56"):convert(tonumber)
parser:option("-t --ttl", "IP time to live / IPv6 hop limit."):convert(tonumber)
parser:option("-Q --tos", "TOS byte / IPv6 traffic class."):convert(tonumber)
parser:flag("-4", "Use IPv4 only.")
parser:flag("-6", "Use IPv6 only.")
parser:flag("-q --quiet", "Print only the summary.")

local ok, args = parser:pparse(arg)
if not ok then
  io.stderr:write(parser:get_usage(), "\n\nping.lua: ", args, "\n")
  os.exit(2)
end
if not args.count or args.count < 1 or args.count % 1 ~= 0 then
  io.stderr:write("ping.lua: -c needs a whole number of probes >= 1\n")
  os.exit(2)
end
if not args.interval or args.interval < 0 then
  io.stderr:write("ping.lua: -i needs a number of seconds >= 0\n")
  os.exit(2)
end

local family = (args["4"] and 4) or (args["6"] and 6) or nil
local addr, err = icmprun.resolve(args.destination, { family = family })
if not addr then
  io.stderr:write("ping.lua: ", err, "\n")
  os.exit(2)
end
local v6 = addr:find(":", 1, true) ~= nil
local opts = {
  timeout = (args.timeout or 1) * 1000,
  size = args.size, ttl = args.ttl, tos = args.tos,
}

if v6 then
  print(string.format("PING %s(%s) %d data bytes", args.destination, addr, args.size))
else
  print(string.format("PING %s (%s) %d(%d) bytes of data.", args.destination, addr,
    args.size, args.size + 28))
end

local describe = {
  unreachable = "Destination Host Unreachable",
  ttl_exceeded = "Time to live exceeded",
}

local function report(n, r)
  if args.quiet then return end
  if r.status == "reply" then
    print(string.format("%d bytes from %s: icmp_seq=%d ttl=%d time=%.3f ms",
      r.bytes, r.from, n, r.ttl or 0, r.rtt))
  elseif r.status ~= "timeout" then
    print(string.format("From %s icmp_seq=%d %s", r.from or addr, n,
      describe[r.status] or r.err or r.status))
  end
  io.stdout:flush()
end

local summary = stats.new()
local started = icmprun.now()
local tasks = {}
for n = 1, args.count do
  tasks[n] = icmprun.spawn(function()
    local r, perr = icmprun.ping(addr, opts)
    if not r then
      io.stderr:write("ping.lua: ", perr, "\n")
      os.exit(2)
    end
    summary:add(r)
    report(n, r)
  end)
  if n < args.count then
    icmprun.sleep(args.interval * 1000)
  end
end
for _, task in ipairs(tasks) do
  task:join()
end

print()
print(string.format("--- %s ping statistics ---", args.destination))
local errors = summary.errors > 0 and string.format(", +%d errors", summary.errors) or ""
print(string.format("%d packets transmitted, %d received%s, %.4g%% packet loss, time %dms",
  summary.sent, summary.received, errors, summary:loss(),
  math.floor(icmprun.now() - started)))
local min, avg, max, mdev = summary:summary()
if min then
  print(string.format("rtt min/avg/max/mdev = %.3f/%.3f/%.3f/%.3f ms", min, avg, max, mdev))
end
os.exit(summary.received > 0 and 0 or 1)
