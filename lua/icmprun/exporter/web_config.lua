-- SPDX-License-Identifier: MIT

--- exporter-toolkit's web config file (given with the flag web.config.file), as
-- smokeping_prober and blackbox_exporter read it:
--
--     tls_server_config:
--       cert_file: /etc/icmprun/tls.crt
--       key_file: /etc/icmprun/tls.key
--     basic_auth_users:
--       prometheus: $2y$10$...   # bcrypt, as htpasswd -B makes it
--
-- TLS is served by libmicrohttpd (`icmprun.httpd`); the passwords are
-- checked with libcrypt's `crypt_r`. Keys icmprun cannot honour (client
-- certificates, TLS versions and ciphers, HTTP/2, headers) are refused by
-- name rather than ignored: a security setting that silently does nothing
-- is worse than a refusal.
-- @module icmprun.exporter.web_config
local config = require "icmprun.exporter.config"

local M = {}

local string_format = string.format

local function read(path, what)
  local file, err = io.open(path, "rb")
  if not file then
    return nil, string_format("cannot read the %s: %s", what, err)
  end
  local text = file:read("a")
  file:close()
  return text
end

local TLS_KEYS = { cert_file = true, key_file = true, cert = true, key = true,
  client_auth_type = true }

--- Parses the YAML text of a web config.
-- @tparam string text
-- @tparam string name where it came from
-- @treturn[1] table `tls` ({cert = PEM, key = PEM} or nil) and `users`
--   (name -> bcrypt hash, or nil)
-- @treturn[2] nil, string what is wrong
function M.parse(text, name)
  local shaped, err = config.check_shape(text, name)
  if not shaped then
    return nil, err
  end
  local ok, doc = pcall(require("lyaml").load, text)
  if not ok then
    return nil, name .. ": not valid YAML: " .. tostring(doc)
  end
  if doc == nil or doc == require("lyaml").null then
    doc = {}
  end
  if type(doc) ~= "table" then
    return nil, name .. ": must be a map"
  end
  local out = {}
  for key in pairs(doc) do
    if key ~= "tls_server_config" and key ~= "basic_auth_users" then
      return nil, string_format("%s: %s is not supported by icmprun (only "
        .. "tls_server_config and basic_auth_users)", name, tostring(key))
    end
  end
  local tls = doc.tls_server_config
  if tls ~= nil then
    if type(tls) ~= "table" then
      return nil, name .. ": tls_server_config must be a map"
    end
    for key in pairs(tls) do
      if not TLS_KEYS[key] then
        return nil, string_format("%s: tls_server_config.%s is not supported by icmprun",
          name, tostring(key))
      end
    end
    if tls.client_auth_type ~= nil and tls.client_auth_type ~= "NoClientCert" then
      return nil, name .. ": tls_server_config.client_auth_type: client certificates are "
        .. "not supported by icmprun"
    end
    local cert, key = tls.cert, tls.key
    if tls.cert_file then
      cert, err = read(tls.cert_file, "TLS certificate")
      if not cert then
        return nil, name .. ": tls_server_config.cert_file: " .. err
      end
    end
    if tls.key_file then
      key, err = read(tls.key_file, "TLS key")
      if not key then
        return nil, name .. ": tls_server_config.key_file: " .. err
      end
    end
    if type(cert) ~= "string" or type(key) ~= "string" then
      return nil, name .. ": tls_server_config needs cert_file and key_file"
    end
    out.tls = { cert = cert, key = key }
  end
  local users = doc.basic_auth_users
  if users ~= nil then
    if type(users) ~= "table" then
      return nil, name .. ": basic_auth_users must be a map of names to bcrypt hashes"
    end
    out.users = {}
    for user, hash in pairs(users) do
      if type(user) ~= "string" or type(hash) ~= "string" or not hash:match("^%$2[aby]%$") then
        return nil, string_format("%s: basic_auth_users.%s: the password must be a bcrypt "
          .. "hash ($2y$...)", name, tostring(user))
      end
      out.users[user] = hash
    end
  end
  return out
end

--- Reads and parses a web config file.
-- @tparam string path
function M.load(path)
  local text, err = read(path, "web config")
  if not text then
    return nil, err
  end
  return M.parse(text, path)
end

-- Standard base64, decoded; nil if it is not base64.
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64_decode(text)
  text = text:gsub("=+$", "")
  if text:find("[^%w%+/]") then
    return nil
  end
  local out, bits, nbits = {}, 0, 0
  for i = 1, #text do
    bits = (bits << 6) | (B64:find(text:sub(i, i), 1, true) - 1)
    nbits = nbits + 6
    if nbits >= 8 then
      nbits = nbits - 8
      out[#out + 1] = string.char((bits >> nbits) & 0xff)
    end
  end
  return table.concat(out)
end
M.base64_decode = base64_decode

--- A checker of requests' Basic credentials against the users. bcrypt is
-- slow on purpose (tens of ms, on the loop's thread), so a pair that
-- passed is remembered, as exporter-toolkit does: Prometheus sends the same
-- one every scrape.
-- @tparam table users name -> bcrypt hash
-- @tparam function crypt_check (password, hash) -> boolean
-- @treturn function (authorization header) -> boolean
function M.checker(users, crypt_check)
  local passed, passed_count = {}, 0
  return function(header)
    local encoded = header and header:match("^[Bb]asic%s+(%S+)%s*$")
    local pair = encoded and base64_decode(encoded)
    local user, password = (pair or ""):match("^([^:]*):(.*)$")
    local hash = user and users[user]
    if not hash then
      return false
    end
    local key = user .. "\0" .. password .. "\0" .. hash
    if passed[key] then
      return true
    end
    if not crypt_check(password, hash) then
      return false
    end
    if passed_count >= 64 then
      passed, passed_count = {}, 0
    end
    passed[key], passed_count = true, passed_count + 1
    return true
  end
end

return M
