-- SPDX-License-Identifier: MIT

--- Black-box helpers: run the icmprun command and other programs, capture
-- their exit status, standard output and standard error.
-- @module cli
local M = {}

--- The icmprun binary under test (set by ctest; a build/ default otherwise).
M.icmprun = os.getenv("ICMPRUN_BIN") or "build/icmprun"

--- The source tree (examples/, scripts/).
M.source_dir = os.getenv("ICMPRUN_SOURCE_DIR") or "."

--- The stock Lua interpreter, for runs of the module outside icmprun.
M.lua = os.getenv("ICMPRUN_LUA") or "lua5.4"

--- Quotes a string for /bin/sh.
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("a")
  f:close()
  return data
end

--- Writes text to a file, replacing what it held.
-- @tparam string path
-- @tparam string data
local function spit(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end
M.write_file = spit

--- Writes text to a new temporary file whose name ends in `suffix`.
-- @tparam string text the file's contents
-- @tparam[opt=""] string suffix such as ".lua"
-- @treturn string the path; remove it with `os.remove` when done
function M.temp_file(text, suffix)
  -- os.tmpname creates the file it names: that placeholder is not needed
  -- once the suffixed file exists.
  local base = os.tmpname()
  local path = base .. (suffix or "")
  spit(path, text)
  if path ~= base then
    os.remove(base)
  end
  return path
end

--- The text of a run (`sh`, `icmprun_run`...) for assertion messages: its
-- exit status, standard output and standard error.
-- @tparam table r {code, stdout, stderr}
-- @treturn string
function M.explain(r)
  return string.format("exit %s\nstdout:\n%s\nstderr:\n%s", tostring(r.code),
    tostring(r.stdout), tostring(r.stderr or ""))
end

--- The lines of a text, each without its newline (a last line without one
-- is left out, as an unfinished line).
-- @tparam string text
-- @treturn {string,...}
function M.lines_of(text)
  local lines = {}
  for line in text:gmatch("([^\n]*)\n") do
    lines[#lines + 1] = line
  end
  return lines
end

--- Runs a shell command line; returns a table {code, stdout, stderr}.
-- @tparam string cmdline passed to /bin/sh as it is
-- @tparam[opt] string stdin text fed to the command's standard input
function M.sh(cmdline, stdin)
  local out, err, inp = os.tmpname(), os.tmpname(), os.tmpname()
  spit(inp, stdin or "")
  -- In a sanitizer build the spec host (stock lua5.4) runs with the sanitizer
  -- runtimes preloaded for icmprun.so; the programs a spec starts must not
  -- inherit them (the icmprun binary links them itself). M.lua_script puts
  -- the preload back for the Lua it starts.
  local ok, how, code = os.execute(string.format("( unset LD_PRELOAD ASAN_OPTIONS; %s ) <%s >%s 2>%s",
    cmdline, M.quote(inp), M.quote(out), M.quote(err)))
  local result = { stdout = slurp(out), stderr = slurp(err) }
  if how == "exit" then
    result.code = code
  else
    result.code = 128 + code -- killed by a signal
  end
  result.ok = ok == true
  os.remove(out)
  os.remove(err)
  os.remove(inp)
  return result
end

--- The command line that runs icmprun with the given arguments (each quoted).
-- @tparam {string,...} args
-- @treturn string
function M.icmprun_cmdline(args)
  local parts = { M.quote(M.icmprun) }
  for _, a in ipairs(args) do
    parts[#parts + 1] = M.quote(a)
  end
  return table.concat(parts, " ")
end

--- Runs icmprun with the given arguments (each quoted).
-- @tparam {string,...} args
-- @tparam[opt] string stdin
function M.icmprun_run(args, stdin)
  return M.sh(M.icmprun_cmdline(args), stdin)
end

--- Runs Lua code as a script file through icmprun: returns the run's result.
-- @tparam string code the script
-- @tparam[opt] {string,...} args script arguments
function M.icmprun_script(code, args)
  local path = M.temp_file(code, ".lua")
  local argv = { path }
  for _, a in ipairs(args or {}) do
    argv[#argv + 1] = a
  end
  local result = M.icmprun_run(argv)
  os.remove(path)
  result.script = path
  return result
end

--- Runs Lua code as a script through stock Lua, in a process of its own, so
-- that what it does to the module's state cannot leak into the caller's.
-- `timeout` guards against a hang: a run that hangs ends with code 124.
-- @tparam string code the script; `require "icmprun"` loads the built module
-- @tparam[opt=60] number seconds how long it may run
function M.lua_script(code, seconds)
  local path = M.temp_file(code, ".lua")
  local preload = os.getenv("LD_PRELOAD")
  -- Under the sanitizers, stock lua5.4 runs with their runtimes preloaded
  -- for icmprun.so, and so does every program it starts (sh, curl...).
  -- LeakSanitizer is left off there, as the runtime issue's own command does
  -- (lua5.4 itself is not built for it, and its tracer crashed or hung at
  -- the exit of such programs on this machine); ASan's memory errors and
  -- UBSan stay on, and the icmprun binary keeps its leak checks.
  local result = M.sh(string.format("%stimeout %d %s %s",
    preload and ("LD_PRELOAD=" .. M.quote(preload) .. " ASAN_OPTIONS=detect_leaks=0 ") or "",
    seconds or 60, M.quote(M.lua), M.quote(path)))
  os.remove(path)
  return result
end

--- A new empty temporary directory.
-- @treturn string its path; remove it with `cli.remove_tree`
function M.temp_dir()
  local path = os.tmpname()
  os.remove(path)
  assert(os.execute("mkdir -m 700 " .. M.quote(path)))
  return path
end

--- Removes a directory made by `temp_dir` and everything in it.
-- @tparam string path
function M.remove_tree(path)
  assert(path:match("^/tmp/"), "refusing to remove a tree outside /tmp")
  os.execute("rm -rf " .. M.quote(path))
end

--- Writes files under a directory: `files` maps relative names to contents.
-- @tparam string dir
-- @tparam {[string]=string} files
function M.write_files(dir, files)
  for name, text in pairs(files) do
    spit(dir .. "/" .. name, text)
  end
end

return M
