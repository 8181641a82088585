-- SPDX-License-Identifier: MIT

--- How `icmprun NAME` finds what to run, and what the listing of commands shows.
--
-- As git and kubectl find their plugins, a name is looked up in order:
--
-- 1. a bundled command, the module `icmprun.commands.NAME` in the binary;
-- 2. a command on the path: `icmprun/commands/NAME.lua` (or
--    `.../NAME/init.lua`) found on `package.path`, which the icmprun command
--    builds from `ICMPRUN_PATH`, `LUA_PATH`, `~/.local/share/icmprun` and
--    the installed library folder;
-- 3. only then a file named NAME.
--
-- A name with a `/` in it or ending in `.lua` is always a file, so
-- `./sweep` or `sweep.lua` runs the script even though `sweep` is a command;
-- a bare `sweep` in a folder holding a file or folder of that name still
-- runs the command.
--
-- A command is a module returning `summary` (one line for `--list`) and
-- `run(arg)`, whose result is the exit status (an integer, or a boolean).
-- @module icmprun.dispatch
local M = {}

local error, io_open, ipairs, pairs, pcall, require, tostring, type = error, io.open,
  ipairs, pairs, pcall, require, tostring, type
local package_searchpath = package.searchpath
local string_format = string.format
local table_concat, table_sort = table.concat, table.sort

--- The module name prefix of every command.
M.PREFIX = "icmprun.commands."

-- What a command's name may hold: a dot would be a folder on the path.
local NAME_PATTERN = "^[%w_][%w_-]*$"

--- True when `name` can only name a file: it has a folder in it, or ends in `.lua`.
-- @tparam string name
function M.is_file_name(name)
  return name:find("/", 1, true) ~= nil or name:sub(-4) == ".lua"
end

--- True when `name` is shaped like a command's name.
-- @tparam string name
function M.is_command_name(name)
  return name:match(NAME_PATTERN) ~= nil
end

--- Where the command `name` comes from, without loading it.
-- @tparam string name
-- @treturn[1] string "bundled", or the file on the path that holds it
-- @treturn[2] nil when there is no such command
function M.locate(name)
  if not M.is_command_name(name) then
    return nil
  end
  if package.preload[M.PREFIX .. name] ~= nil then
    return "bundled"
  end
  return (package_searchpath(M.PREFIX .. name, package.path))
end

-- Levenshtein distance, for the "did you mean" of a mistyped name.
local function distance(a, b)
  local previous = {}
  for j = 0, #b do
    previous[j] = j
  end
  for i = 1, #a do
    local current = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local best = previous[j] + 1
      if current[j - 1] + 1 < best then
        best = current[j - 1] + 1
      end
      if previous[j - 1] + cost < best then
        best = previous[j - 1] + cost
      end
      current[j] = best
    end
    previous = current
  end
  return previous[#b]
end

-- The command names in the folders that the `?` templates of `path` lead to.
-- A template `DIR/?.lua` is searched as `DIR/icmprun/commands/NAME.lua`, so
-- the folder `DIR/icmprun/commands/` is listed and each entry that would
-- complete the template is a candidate; `locate` then says which file wins.
local function names_on_path(path, found)
  local ok, uv = pcall(require, "luv")
  if not ok then
    return found
  end
  local folder = M.PREFIX:gsub("%.", "/")
  for template in path:gmatch("[^;]+") do
    local before, after = template:match("^([^?]*)%?([^?]*)$")
    if before then
      local dir = before .. folder
      local scan = uv.fs_scandir(dir)
      while scan do
        local entry = uv.fs_scandir_next(scan)
        if not entry then
          break
        end
        local name
        if after:sub(1, 1) == "/" then
          name = entry
        elseif #after > 0 and entry:sub(-#after) == after then
          name = entry:sub(1, -#after - 1)
        end
        if name and M.is_command_name(name) then
          found[name] = true
        end
      end
    end
  end
  return found
end

--- Every command: bundled ones and those on `package.path`.
-- @treturn {{name=string,origin=string,summary=string,shadowed={string,...}},...}
--   sorted by name; `origin` is "bundled" or a file; `shadowed` lists files on
--   the path that a bundled command of the same name hides (outside
--   `library_dir`, which holds the installed copies of the bundled ones).
-- @tparam[opt] string library_dir the installed library folder
function M.list(library_dir)
  local names = {}
  for key in pairs(package.preload) do
    local name = type(key) == "string" and key:sub(1, #M.PREFIX) == M.PREFIX
      and key:sub(#M.PREFIX + 1)
    if name and M.is_command_name(name) then
      names[name] = true
    end
  end
  names_on_path(package.path, names)
  local commands = {}
  for name in pairs(names) do
    local origin = M.locate(name)
    local entry = { name = name, origin = origin, shadowed = {} }
    if origin == "bundled" then
      local file = package_searchpath(M.PREFIX .. name, package.path)
      if file and not (library_dir and file:sub(1, #library_dir + 1) == library_dir .. "/") then
        entry.shadowed[1] = file
      end
    end
    local loaded, command = pcall(require, M.PREFIX .. name)
    if not loaded then
      entry.summary = "(cannot be loaded: " .. tostring(command):gsub("\n.*", "") .. ")"
    elseif type(command) ~= "table" or type(command.run) ~= "function" then
      entry.summary = "(not a command: the module returns no run function)"
    else
      entry.summary = tostring(command.summary or "")
    end
    commands[#commands + 1] = entry
  end
  table_sort(commands, function(a, b)
    return a.name < b.name
  end)
  return commands
end

--- Prints `list` as `icmprun --list` shows it: name, summary, origin.
-- @tparam[opt] string library_dir as for `list`
function M.print_list(library_dir)
  local out = io.stdout
  for _, c in ipairs(M.list(library_dir)) do
    out:write(string_format("%-10s %s  [%s]\n", c.name, c.summary, c.origin))
    for _, file in ipairs(c.shadowed) do
      out:write(string_format("%-10s (hides %s: a bundled command wins)\n", "", file))
    end
  end
end

--- What `icmprun NAME` runs.
-- @tparam string name
-- @treturn[1] string "command" or "file"
-- @treturn[2] nil
-- @treturn[2] string why not: an unknown name, with the nearest command
function M.resolve(name)
  if M.is_file_name(name) then
    return "file"
  end
  if M.locate(name) then
    return "command"
  end
  local f = io_open(name, "r")
  if f then
    f:close()
    return "file"
  end
  local best, best_distance = nil, 3
  for _, c in ipairs(M.list()) do
    local d = distance(name, c.name)
    if d < best_distance then
      best, best_distance = c.name, d
    end
  end
  local parts = { string_format("unknown command '%s', and no file of that name", name) }
  if best then
    parts[#parts + 1] = string_format(" (did you mean '%s'?)", best)
  end
  parts[#parts + 1] = "; 'icmprun --list' lists the commands"
  return nil, table_concat(parts)
end

--- Loads the command `name` and runs it with `arg`.
-- @tparam string name
-- @tparam table arg the command line, arg[0] being the name
-- @return the command's exit status
function M.run(name, arg)
  local command = require(M.PREFIX .. name)
  if type(command) ~= "table" or type(command.run) ~= "function" then
    error(string_format("command '%s' (%s) returns no run function", name,
      tostring(M.locate(name))), 0)
  end
  return command.run(arg)
end

return M
