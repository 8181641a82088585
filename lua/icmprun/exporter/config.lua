-- SPDX-License-Identifier: MIT

--- The exporter's target list: smokeping_prober's YAML format, checked.
--
-- The file is a `targets:` list of host groups, as smokeping_prober reads
-- it, so that its users switch by changing one command:
--
--     targets:
--     - hosts: [127.0.0.1, ::1]   # or `host: one` for a single one
--       interval: 1s              # Go duration; default 1s
--       network: ip               # ip (either family), ip4 or ip6
--       protocol: icmp            # icmp only
--       size: 56                  # payload bytes, default 56
--       tos: 0                    # IPv4 TOS / IPv6 traffic class
--       labels: {site: lab}       # added to every series of these hosts
--
-- icmprun adds two optional keys of its own: `ttl` (1..255, the TTL or hop
-- limit of the probes) and `timeout` (a duration, at most the interval and
-- by default equal to it: each host has one probe in flight at a time).
--
-- Every mistake is refused with a message naming where it is, such as
-- `targets[2].interval: "1x" is not a duration (such as 500ms, 1s, 1m30s)`;
-- unknown keys are refused too, since a misspelt key would otherwise be
-- dropped without a word. Values are checked against the engine's own
-- limits here, before anything is applied, so that a config that loads never
-- fails later at a probe: intervals and timeouts from 1 ms (intervals) to
-- 24 h, payload sizes the family can carry, host names of at most 253
-- characters. The YAML itself is walked event by event before it is
-- decoded: nesting deeper than 32, more than a million nodes (aliases
-- counted as what they expand to) or a file over 16 MiB is refused at once,
-- and a syntax error names its line and column. A group's `source` (smokeping_prober's) is
-- the numeric address its probes leave from; its family is the family its hosts resolve in.
-- @module icmprun.exporter.config
local M = {}

local error, ipairs, pairs, tostring, type = error, ipairs, pairs, tostring, type
local math_type = math.type
local string_format = string.format
local table_concat, table_sort = table.concat, table.sort

--- Defaults of a host group, as smokeping_prober's.
M.DEFAULTS = { interval = 1000, network = "ip", protocol = "icmp", size = 56, tos = 0 }

local GROUP_KEYS = {
  hosts = true, host = true, interval = true, network = true, protocol = true,
  size = true, tos = true, ttl = true, timeout = true, labels = true, source = true,
}

-- Labels the exporter sets itself, which a group may not set.
local RESERVED_LABELS = { host = true, ip = true, le = true, status = true }

--- Limits of a config, the engine's where there is one.
local engine_limits = require("icmprun").limits
M.LIMITS = {
  max_interval = engine_limits.max_timeout, -- ms: ping's longest timeout, 24 h
  min_interval = 1,        -- ms: a shorter one would be a busy loop
  max_name = 253,          -- characters of a DNS name
  max_size_v4 = engine_limits.max_size_v4, -- payload bytes in one IPv4 datagram
  max_size_v6 = engine_limits.max_size_v6, -- and in one IPv6 datagram
  max_depth = 32,          -- nesting of YAML collections
  max_nodes = 1000000,     -- YAML nodes, aliases expanded
  max_bytes = 16 * 1024 * 1024,
}
local LIMITS = M.LIMITS

local UNITS = { ns = 1e-6, us = 1e-3, ["µs"] = 1e-3, ["μs"] = 1e-3, ms = 1, s = 1000,
  m = 60000, h = 3600000 }

--- Parses a Go duration ("1s", "500ms", "1m30s", "1.5s") into milliseconds.
-- @tparam string text
-- @treturn[1] number milliseconds
-- @treturn[2] nil when the text is not a duration
function M.parse_duration(text)
  if type(text) ~= "string" or text == "" then
    return nil
  end
  local total, pos = 0, 1
  while pos <= #text do
    local value, unit, after = text:match("^(%d*%.?%d*)([^%d%.]+)()", pos)
    if not value or value == "" or value == "." or not UNITS[unit] then
      return nil
    end
    total = total + tonumber(value) * UNITS[unit]
    pos = after
  end
  return total
end

-- Raises a configuration error about `where`, at the caller's caller.
local function refuse(where, fmt, ...)
  error({ config_error = where .. ": " .. string_format(fmt, ...) })
end

local function check_duration(value, where)
  if type(value) == "number" then
    refuse(where, "%s has no unit; give a duration such as 500ms or 1s", tostring(value))
  end
  local ms = M.parse_duration(value)
  if not ms then
    refuse(where, "%q is not a duration (such as 500ms, 1s, 1m30s)", tostring(value))
  end
  if ms <= 0 then
    refuse(where, "must be more than zero")
  end
  if ms > LIMITS.max_interval then
    refuse(where, "%s is over the longest the engine waits, 24h", tostring(value))
  end
  return ms
end

local function check_integer(value, where, min, max)
  if math_type(value) ~= "integer" or value < min or value > max then
    refuse(where, "%s is not a whole number from %d to %d", tostring(value), min, max)
  end
  return value
end

local function check_hosts(group, where)
  local hosts = group.hosts
  if hosts == nil and group.host ~= nil then
    hosts = { group.host }
  end
  if type(hosts) ~= "table" or #hosts == 0 then
    refuse(where, "has no hosts (give `hosts:` as a list, or `host:`)")
  end
  local out = {}
  for i, host in ipairs(hosts) do
    local at = where .. ".hosts[" .. i .. "]"
    if type(host) ~= "string" or host == "" then
      refuse(at, "%s is not a host name or address", tostring(host))
    end
    if #host > LIMITS.max_name then
      refuse(at, "a host name of %d characters is longer than the %d a name may have",
        #host, LIMITS.max_name)
    end
    if host:find("[%s%c/\\]") then
      refuse(at, "%q is not a host name or address", host)
    end
    out[i] = host
  end
  return out
end

local function check_labels(labels, where)
  if labels == nil then
    return {}
  end
  if type(labels) ~= "table" then
    refuse(where, "must be a map of label names to values")
  end
  local out = {}
  for name, value in pairs(labels) do
    local at = where .. "." .. tostring(name)
    if type(name) ~= "string" or not name:match("^[a-zA-Z_][a-zA-Z0-9_]*$")
      or name:match("^__") then
      refuse(at, "is not a valid Prometheus label name")
    end
    if RESERVED_LABELS[name] then
      refuse(at, "is set by the exporter itself")
    end
    local kind = type(value)
    if kind ~= "string" and kind ~= "number" and kind ~= "boolean" then
      refuse(at, "must be a string, a number or a boolean")
    end
    out[name] = tostring(value)
  end
  return out
end

--- The family of a numeric address (4 or 6), or nil for anything else;
-- the probe options check an IPv6 address's syntax in full.
-- @param text
-- @treturn ?integer
function M.address_family(text)
  if type(text) ~= "string" then
    return nil
  end
  local a, b, c, d = text:match("^(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)%.(%d%d?%d?)$")
  if a then
    local ok = tonumber(a) < 256 and tonumber(b) < 256 and tonumber(c) < 256 and tonumber(d) < 256
    return ok and 4 or nil
  end
  return text:match("^[%x:.]*:[%x:.]*$") and 6 or nil
end

local function check_group(group, where)
  if type(group) ~= "table" then
    refuse(where, "must be a map with `hosts:`")
  end
  local unknown = {}
  for key in pairs(group) do
    if not GROUP_KEYS[key] then
      unknown[#unknown + 1] = tostring(key)
    end
  end
  if #unknown > 0 then
    table_sort(unknown)
    refuse(where, "unknown key %s", table_concat(unknown, ", "))
  end
  local protocol = group.protocol or M.DEFAULTS.protocol
  if protocol ~= "icmp" then
    refuse(where .. ".protocol", "%q is not supported; icmprun sends ICMP echo only",
      tostring(protocol))
  end
  local network = group.network or M.DEFAULTS.network
  local family = ({ ip = 0, ip4 = 4, ip6 = 6 })[network]
  if not family then
    refuse(where .. ".network", "%q must be ip, ip4 or ip6", tostring(network))
  end
  if group.source ~= nil then
    local source_family = M.address_family(group.source)
    if not source_family then
      refuse(where .. ".source", "%q is not a numeric IPv4 or IPv6 address",
        tostring(group.source))
    elseif family ~= 0 and family ~= source_family then
      refuse(where .. ".source", "%s is not an address of network %s", group.source, network)
    end
    family = source_family -- The hosts resolve in the source's family.
  end
  local interval = M.DEFAULTS.interval
  if group.interval ~= nil then
    interval = check_duration(group.interval, where .. ".interval")
    if interval < LIMITS.min_interval then
      refuse(where .. ".interval", "%s is shorter than 1ms", tostring(group.interval))
    end
  end
  local timeout = interval
  if group.timeout ~= nil then
    timeout = check_duration(group.timeout, where .. ".timeout")
    if timeout > interval then
      refuse(where .. ".timeout", "must not be longer than the interval (%s ms)",
        tostring(interval))
    end
  end
  return {
    hosts = check_hosts(group, where),
    interval = interval,
    timeout = timeout,
    family = family,
    network = network,
    size = group.size == nil and M.DEFAULTS.size
      or check_integer(group.size, where .. ".size", 0,
        family == 6 and LIMITS.max_size_v6 or LIMITS.max_size_v4),
    tos = group.tos == nil and M.DEFAULTS.tos
      or check_integer(group.tos, where .. ".tos", 0, 255),
    ttl = group.ttl ~= nil and check_integer(group.ttl, where .. ".ttl", 1, 255) or nil,
    labels = check_labels(group.labels, where .. ".labels"),
    source = group.source,
  }
end

--- Checks a decoded configuration (the table YAML gives).
-- @tparam table doc
-- @treturn[1] {table,...} the host groups, each `{hosts, interval, timeout,
--   family (0, 4, 6), network, size, tos, ttl, labels, source}`, times in ms
-- @treturn[2] nil, string the first mistake
function M.check(doc)
  local ok, groups = pcall(function()
    if type(doc) ~= "table" then
      refuse("config", "must be a map with a `targets:` list")
    end
    for key in pairs(doc) do
      if key ~= "targets" then
        refuse("config", "unknown key %s", tostring(key))
      end
    end
    local targets = doc.targets
    if type(targets) ~= "table" or (next(targets) ~= nil and #targets == 0) then
      refuse("targets", "must be a list of host groups")
    end
    local out = {}
    for i, group in ipairs(targets) do
      out[i] = check_group(group, "targets[" .. i .. "]")
    end
    return out
  end)
  if ok then
    return groups
  end
  if type(groups) == "table" and groups.config_error then
    return nil, groups.config_error
  end
  error(groups, 0)
end

-- "at document: 1, line: 3, column: 1" in libyaml's messages, as "3:1".
local function yaml_error(name, message)
  local line, column = tostring(message):match("line: (%d+), column: (%d+)")
  local first = tostring(message):match("^[^\n]*"):gsub(" at document: %d+, line: %d+, "
    .. "column: %d+", "")
  if line then
    return string_format("%s:%s:%s: not valid YAML: %s", name, line, column, first)
  end
  return name .. ": not valid YAML: " .. first
end

--- Walks the YAML events of `text` before it is decoded, so that a
-- document too deep or too large is refused at once, in time linear in
-- its length (libyaml's parser keeps its own stack, never the C one).
-- @tparam string text
-- @tparam string name where it came from, for messages
-- @treturn[1] true
-- @treturn[2] nil, string what is wrong, with its line and column
function M.check_shape(text, name)
  if #text > LIMITS.max_bytes then
    return nil, string_format("%s: the file has %d bytes, more than %d", name, #text,
      LIMITS.max_bytes)
  end
  local yaml = require "yaml"
  local ok, err = pcall(function()
    local next_event = yaml.parser(text)
    -- Each open collection counts its nodes, so that an anchored one's size
    -- is known when an alias repeats it.
    local depth, nodes, open, anchored = 0, 0, {}, {}
    local function count(n, mark)
      nodes = nodes + n
      for i = 1, #open do
        open[i].nodes = open[i].nodes + n
      end
      if nodes > LIMITS.max_nodes then
        error({ at = mark, msg = "more than " .. LIMITS.max_nodes .. " nodes" })
      end
    end
    for event in next_event do
      local kind, mark = event.type, event.start_mark
      if kind == "MAPPING_START" or kind == "SEQUENCE_START" then
        depth = depth + 1
        if depth > LIMITS.max_depth then
          error({ at = mark, msg = "nested deeper than " .. LIMITS.max_depth .. " levels" })
        end
        count(1, mark)
        open[#open + 1] = { nodes = 0, anchor = event.anchor }
      elseif kind == "MAPPING_END" or kind == "SEQUENCE_END" then
        depth = depth - 1
        local closed = table.remove(open)
        if closed.anchor then
          anchored[closed.anchor] = closed.nodes + 1
        end
      elseif kind == "SCALAR" then
        count(1, mark)
        if event.anchor then
          anchored[event.anchor] = 1
        end
      elseif kind == "ALIAS" then
        count(anchored[event.anchor] or 1, mark)
      end
    end
  end)
  if ok then
    return true
  end
  if type(err) == "table" and err.at then
    return nil, string_format("%s:%d:%d: %s", name, err.at.line + 1, err.at.column + 1,
      err.msg)
  end
  return nil, yaml_error(name, err)
end

--- Parses YAML text and checks it.
-- @tparam string text
-- @tparam[opt="config"] string name where it came from, for messages
-- @treturn[1] {table,...} the host groups (see `check`)
-- @treturn[2] nil, string what is wrong
function M.parse(text, name)
  name = name or "config"
  local shaped, shape_err = M.check_shape(text, name)
  if not shaped then
    return nil, shape_err
  end
  local lyaml = require "lyaml"
  local ok, doc = pcall(lyaml.load, text)
  if not ok then
    -- lyaml's message starts "LINE:COLUMN: " (after its own source position).
    local line, column, msg = tostring(doc):match("(%d+):(%d+): ([^\n]*)$")
    if line then
      return nil, string_format("%s:%s:%s: not valid YAML: %s", name, line, column, msg)
    end
    return nil, name .. ": not valid YAML: " .. tostring(doc)
  end
  if doc == nil or doc == lyaml.null then
    doc = { targets = {} }
  end
  local groups, err = M.check(doc)
  if not groups then
    return nil, name .. ": " .. err
  end
  return groups
end

--- Reads a file and parses it.
-- @tparam string path
-- @treturn[1] {table,...} the host groups (see `check`)
-- @treturn[2] nil, string what is wrong, naming the file
function M.load(path)
  local file, err = io.open(path, "rb")
  if not file then
    return nil, "cannot read the config: " .. err
  end
  local text = file:read("a")
  file:close()
  return M.parse(text, path)
end

return M
