-- SPDX-License-Identifier: MIT

--- blackbox_exporter's ICMP prober, as a drop-in: `GET /probe?target=HOST&
-- module=icmp` pings HOST once and answers with blackbox_exporter's metric
-- names, types and help texts (`probe_success`, `probe_duration_seconds`,
-- `probe_icmp_duration_seconds{phase}`, `probe_icmp_reply_hop_limit`,
-- `probe_ip_protocol`, `probe_ip_addr_hash`,
-- `probe_dns_lookup_time_seconds`), so that a Prometheus job written for
-- blackbox_exporter (relabelling the target into `?target=`) works
-- unchanged.
--
-- Modules are blackbox_exporter's YAML (`modules: NAME: {prober: icmp,
-- timeout, icmp: {preferred_ip_protocol, ip_protocol_fallback,
-- payload_size, dont_fragment, ttl}}`); without a file there is one module,
-- `icmp`, with blackbox_exporter's defaults (IPv6 preferred, falling back to
-- IPv4; its 28-byte payload). Modules of other probers (http, tcp, dns...)
-- may stay in the file, as in blackbox_exporter's own; a probe asking for
-- one gets 400 and the reason. Its ICMP keys that icmprun cannot honour
-- (`dont_fragment: true`, `source_ip_address`) are refused when the file is
-- read, not ignored. The timeout is the module's, bounded as
-- blackbox_exporter bounds it by Prometheus's
-- `X-Prometheus-Scrape-Timeout-Seconds` less half a second (120 s without).
-- @module icmprun.exporter.probe
local config = require "icmprun.exporter.config"
local prometheus = require "icmprun.report.prometheus"

local M = {}

local string_format = string.format

--- blackbox_exporter's defaults of an ICMP module.
M.DEFAULT_MODULE = { prober = "icmp", preferred = 6, fallback = true, size = 28, ttl = nil,
  timeout = nil }

local MODULE_KEYS = { prober = true, timeout = true, icmp = true }
local ICMP_KEYS = { preferred_ip_protocol = true, ip_protocol_fallback = true,
  payload_size = true, dont_fragment = true, ttl = true, source_ip_address = true,
  ip_protocol = true }

local function refuse(where, fmt, ...)
  error({ probe_error = where .. ": " .. string_format(fmt, ...) }, 0)
end

local function check_module(name, m)
  local where = "modules." .. tostring(name)
  if type(m) ~= "table" then
    refuse(where, "must be a map")
  end
  if m.prober ~= "icmp" and type(m.prober) == "string" then
    -- blackbox_exporter's own file has http, tcp, dns... modules: kept by
    -- name, so that a probe asking for one is told why it cannot be had.
    return { unsupported = m.prober }
  end
  for key in pairs(m) do
    if not MODULE_KEYS[key] then
      refuse(where, "key %s is not supported by icmprun (ICMP modules only)", tostring(key))
    end
  end
  if m.prober ~= "icmp" then
    refuse(where .. ".prober", "%s is not supported; icmprun serves the icmp prober only",
      tostring(m.prober))
  end
  local out = { prober = "icmp", preferred = 6, fallback = true, size = 28 }
  if m.timeout ~= nil then
    local ms = config.parse_duration(m.timeout)
    if not ms or ms <= 0 or ms > config.LIMITS.max_interval then
      refuse(where .. ".timeout", "%s is not a duration from 1ms to 24h", tostring(m.timeout))
    end
    out.timeout = ms
  end
  local icmp = m.icmp or {}
  if type(icmp) ~= "table" then
    refuse(where .. ".icmp", "must be a map")
  end
  for key in pairs(icmp) do
    if not ICMP_KEYS[key] then
      refuse(where .. ".icmp", "unknown key %s", tostring(key))
    end
  end
  local preferred = icmp.preferred_ip_protocol or icmp.ip_protocol
  if preferred ~= nil then
    out.preferred = ({ ip4 = 4, ip6 = 6 })[preferred]
    if not out.preferred then
      refuse(where .. ".icmp.preferred_ip_protocol", "%s must be ip4 or ip6", tostring(preferred))
    end
  end
  if icmp.ip_protocol_fallback ~= nil then
    if type(icmp.ip_protocol_fallback) ~= "boolean" then
      refuse(where .. ".icmp.ip_protocol_fallback", "must be true or false")
    end
    out.fallback = icmp.ip_protocol_fallback
  end
  if icmp.payload_size ~= nil then
    if math.type(icmp.payload_size) ~= "integer" or icmp.payload_size < 0
      or icmp.payload_size > config.LIMITS.max_size_v4 then
      refuse(where .. ".icmp.payload_size", "%s is not a whole number from 0 to %d",
        tostring(icmp.payload_size), config.LIMITS.max_size_v4)
    end
    out.size = icmp.payload_size > 0 and icmp.payload_size or 28
  end
  if icmp.ttl ~= nil then
    if math.type(icmp.ttl) ~= "integer" or icmp.ttl < 1 or icmp.ttl > 255 then
      refuse(where .. ".icmp.ttl", "%s is not a whole number from 1 to 255", tostring(icmp.ttl))
    end
    out.ttl = icmp.ttl
  end
  if icmp.dont_fragment == true then
    refuse(where .. ".icmp.dont_fragment", "is not supported: icmprun does not set DF")
  end
  if icmp.source_ip_address ~= nil then
    refuse(where .. ".icmp.source_ip_address", "is not supported: icmprun does not bind "
      .. "probes to a source address")
  end
  return out
end

--- Parses blackbox_exporter's YAML config, keeping its ICMP modules.
-- @tparam string text
-- @tparam[opt="config"] string name for messages
-- @treturn[1] table name -> module
-- @treturn[2] nil, string what is wrong
function M.parse_modules(text, name)
  name = name or "config"
  local shaped, err = config.check_shape(text, name)
  if not shaped then
    return nil, err
  end
  local ok, doc = pcall(require("lyaml").load, text)
  if not ok then
    return nil, name .. ": not valid YAML: " .. tostring(doc)
  end
  local modules
  ok, err = pcall(function()
    if type(doc) ~= "table" or type(doc.modules) ~= "table" then
      refuse("config", "must be a map with `modules:`")
    end
    modules = {}
    for module_name, m in pairs(doc.modules) do
      modules[module_name] = check_module(module_name, m)
    end
  end)
  if not ok then
    return nil, name .. ": " .. (type(err) == "table" and err.probe_error or tostring(err))
  end
  return modules
end

--- Reads a blackbox_exporter config file (see `parse_modules`).
function M.load_modules(path)
  local file, err = io.open(path, "rb")
  if not file then
    return nil, "cannot read the blackbox config: " .. err
  end
  local text = file:read("a")
  file:close()
  return M.parse_modules(text, path)
end

--- FNV-1a (32 bits) of the address's bytes, as blackbox_exporter's
-- `probe_ip_addr_hash`: 4 bytes for IPv4, 16 for IPv6.
-- @tparam string ip
-- @treturn integer
function M.ip_hash(ip)
  local bytes = {}
  local mapped = ip:match("^::[fF][fF][fF][fF]:(%d+%.%d+%.%d+%.%d+)$")
  if mapped then
    ip = mapped -- An IPv4-mapped address hashes as its IPv4 address, as in Go.
  end
  if ip:find(":", 1, true) then
    local head, tail = ip:match("^(.-)::(.*)$")
    local function groups(text)
      local out = {}
      for g in text:gmatch("[^:]+") do
        out[#out + 1] = g
      end
      return out
    end
    local left, right = groups(head or ip), groups(tail or "")
    local all = {}
    for _, g in ipairs(left) do
      all[#all + 1] = g
    end
    for _ = 1, 8 - #left - #right do
      all[#all + 1] = "0"
    end
    for _, g in ipairs(right) do
      all[#all + 1] = g
    end
    for _, g in ipairs(all) do
      local v = tonumber(g, 16)
      bytes[#bytes + 1] = v >> 8
      bytes[#bytes + 1] = v & 0xff
    end
  else
    for octet in ip:gmatch("%d+") do
      bytes[#bytes + 1] = tonumber(octet)
    end
  end
  local h = 2166136261
  for _, b in ipairs(bytes) do
    h = ((h ~ b) * 16777619) & 0xffffffff
  end
  return h
end

-- Resolves as blackbox_exporter's chooseProtocol: the preferred family,
-- then the other one when fallback is on. Returns the address or nil.
local function choose_address(icmprun, target, m)
  local literal_family = target:find(":", 1, true) and 6
    or (target:match("^%d+%.%d+%.%d+%.%d+$") and 4)
  if literal_family then
    if literal_family ~= m.preferred and not m.fallback then
      return nil, "the address is not of the preferred protocol"
    end
    return target
  end
  local ok, ip, err = pcall(icmprun.resolve, target, { family = m.preferred })
  if ok and ip then
    return ip
  end
  if m.fallback then
    ok, ip, err = pcall(icmprun.resolve, target, { family = m.preferred == 6 and 4 or 6 })
    if ok and ip then
      return ip
    end
  end
  return nil, tostring(ok and err or ip)
end

-- One gauge family as blackbox_exporter's registry writes it.
local function gauge(out, name, help, samples)
  out[#out + 1] = "# HELP " .. name .. " " .. help
  out[#out + 1] = "# TYPE " .. name .. " gauge"
  for _, sample in ipairs(samples) do
    out[#out + 1] = name .. sample[1] .. " " .. prometheus.format_value(sample[2])
  end
end

--- Probes a target once with a module; returns the exposition text. Must
-- run in a task.
-- @tparam table icmprun the icmprun module
-- @tparam string target
-- @tparam table m a module (see `parse_modules`)
-- @tparam number timeout ms
-- @treturn string
-- @treturn boolean whether the probe succeeded
-- @treturn[opt] string why not
function M.run(icmprun, target, m, timeout)
  local started = icmprun.now()
  local ip, why = choose_address(icmprun, target, m)
  local resolved = icmprun.now()
  local rtt, hop_limit, success = 0, nil, false
  local setup = 0
  if ip then
    local sent = icmprun.now()
    setup = (sent - resolved) / 1000
    local ok, r, err = pcall(icmprun.ping, ip, { timeout = timeout, size = m.size, ttl = m.ttl })
    if ok and r and r.status == "reply" then
      success, rtt, hop_limit = true, r.rtt / 1000, r.ttl
    else
      why = ok and (r and r.status or tostring(err)) or tostring(r)
    end
  end
  local lookup = (resolved - started) / 1000
  local out = {}
  gauge(out, "probe_dns_lookup_time_seconds",
    "Returns the time taken for probe dns lookup in seconds", { { "", lookup } })
  gauge(out, "probe_duration_seconds", "Returns how long the probe took to complete in seconds",
    { { "", (icmprun.now() - started) / 1000 } })
  gauge(out, "probe_icmp_duration_seconds", "Duration of icmp request by phase", {
    { '{phase="resolve"}', ip and lookup or 0 },
    { '{phase="rtt"}', rtt },
    { '{phase="setup"}', setup },
  })
  if hop_limit then
    gauge(out, "probe_icmp_reply_hop_limit", "Replied packet hop limit (TTL for ipv4)",
      { { "", hop_limit } })
  end
  gauge(out, "probe_ip_addr_hash",
    "Specifies the hash of IP address. It's useful to detect if the IP address changes.",
    { { "", ip and M.ip_hash(ip) or 0 } })
  gauge(out, "probe_ip_protocol", "Specifies whether probe ip protocol is IP4 or IP6",
    { { "", ip and (ip:find(":", 1, true) and 6 or 4) or 0 } })
  gauge(out, "probe_success", "Displays whether or not the probe was a success",
    { { "", success and 1 or 0 } })
  out[#out + 1] = ""
  return table.concat(out, "\n"), success, why
end

--- The timeout of a probe (ms), as blackbox_exporter computes it: the
-- scrape's timeout less 0.5 s (120 s when Prometheus did not say), and
-- the module's if that is shorter.
-- @tparam table headers the request's (lower-case names)
-- @tparam table m the module
-- @treturn[1] number ms
-- @treturn[2] nil, string a header that is not a number
function M.timeout(headers, m)
  local seconds = 120
  local header = headers["x-prometheus-scrape-timeout-seconds"]
  if header then
    local n = tonumber(header)
    if not n or n ~= n or n <= 0 or n > 86400 then
      return nil, "X-Prometheus-Scrape-Timeout-Seconds is not a number of seconds"
    end
    seconds = math.max(n - 0.5, 0.001)
  end
  local ms = seconds * 1000
  if m.timeout and m.timeout < ms then
    ms = m.timeout
  end
  return ms
end

return M
