/* The icmprun command: runs a Lua script's main chunk as a task on the loop. */
#include <lauxlib.h>
#include <lua.h>
#include <errno.h>
#include <fcntl.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lua_runtime.h"

#ifndef ICMPRUN_LUA_DIR
#define ICMPRUN_LUA_DIR "/usr/local/share/lua/5.4"
#endif

static const char ir_usage[] =
    "usage: icmprun [options] [script [args...]]\n"
    "       icmprun COMMAND [args...]   (a bundled command; see --list)\n"
    "\n"
    "Runs a Lua 5.4 script whose probes go through icmprun's ICMP engine.\n"
    "The script's main chunk runs as a task; icmprun exits when it and every\n"
    "task it spawned have finished.\n"
    "\n"
    "options:\n"
    "  -e CODE        run CODE (before the script, if one is given)\n"
    "  -l NAME        require module NAME into global NAME\n"
    "  -              read the script from standard input\n"
    "  --             stop handling options\n"
    "  --list         list the bundled commands\n"
    "  -v, --version  print the version\n"
    "  -h, --help     print this help\n"
    "\n"
    "Lua API (local icmprun = require \"icmprun\"):\n"
    "  icmprun.ping(target, {timeout=1000, size=56, ttl=64, tos=0, family=4|6})\n"
    "      -> {status=, addr=, from=, rtt=, seq=, ttl=, bytes=, err=} | nil, message\n"
    "      status: reply, timeout, unreachable, ttl_exceeded or error\n"
    "  icmprun.spawn(fn, ...) -> task; task:join() -> fn's results\n"
    "  icmprun.sleep(ms)   icmprun.now() -> monotonic ms\n"
    "  icmprun.info()      socket kinds in use   icmprun.stats()  engine counters\n"
    "\n"
    "Modules are found beside the script, on LUA_PATH, and in\n"
    "  " ICMPRUN_LUA_DIR
    "\n"
    "Environment: ICMPRUN_SOCKET=dgram|raw forces a socket kind.\n"
    "Unprivileged ping sockets need:\n"
    "  sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"\n";

typedef struct ir_options_s {
  int script_index; /* argv index of the script, 0 for none. */
  bool from_stdin;
  bool list;
} ir_options_t;

#define IR_COMMANDS_PREFIX "icmprun.commands."

/* Runs a bundled command: the module icmprun.commands.NAME returns a table
 * with `summary` (one line) and `run(arg)`, whose result is the exit status. */
static const char ir_command_bootstrap[] =
    "local name = ...\n"
    "local command = require('" IR_COMMANDS_PREFIX
    "' .. name)\n"
    "return command.run(arg)\n";

/* Lists the bundled commands, one line each, from package.preload. */
static const char ir_list_commands[] =
    "local names = {}\n"
    "for key in pairs(package.preload) do\n"
    "  local name = key:match('^" IR_COMMANDS_PREFIX
    "([%w_-]+)$')\n"
    "  if name then names[#names + 1] = name end\n"
    "end\n"
    "table.sort(names)\n"
    "for _, name in ipairs(names) do\n"
    "  local command = require('" IR_COMMANDS_PREFIX
    "' .. name)\n"
    "  print(string.format('%-10s %s', name, command.summary or ''))\n"
    "end\n";

/* True when NAME is not a file but a bundled command's name. */
static bool ir_is_command(lua_State* L, const char* name) {
  if (strchr(name, '/') != NULL || access(name, F_OK) == 0) {
    return false;
  }
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE); /* preload */
  lua_pushfstring(L, IR_COMMANDS_PREFIX "%s", name);     /* preload key */
  bool found = lua_rawget(L, -2) != LUA_TNIL;            /* preload loader */
  lua_pop(L, 2);                                         /* */
  return found;
}

static int ir_report(lua_State* L, int status) {
  if (status != LUA_OK) {
    const char* msg = lua_tostring(L, -1);
    fprintf(stderr, "icmprun: %s\n",
            msg != NULL ? msg : "(error object is not a string)");
    fflush(stderr);
    lua_pop(L, 1);
  }
  return status;
}

/* Puts the script's folder first on package.path and the installed library
 * folder last, so operators' shared modules are found from anywhere. */
static void ir_set_paths(lua_State* L, const char* script) {
  lua_getglobal(L, "package"); /* package */
  lua_getfield(L, -1, "path"); /* package path */
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (script != NULL) {
    const char* slash = strrchr(script, '/');
    if (slash != NULL) {
      luaL_addlstring(&b, script, (size_t)(slash - script));
    } else {
      luaL_addchar(&b, '.');
    }
    luaL_addstring(&b, "/?.lua;");
    if (slash != NULL) {
      luaL_addlstring(&b, script, (size_t)(slash - script));
    } else {
      luaL_addchar(&b, '.');
    }
    luaL_addstring(&b, "/?/init.lua;");
  }
  lua_pushvalue(L, -2); /* package path B path */
  luaL_addvalue(&b);
  luaL_addstring(&b, ";" ICMPRUN_LUA_DIR "/?.lua;" ICMPRUN_LUA_DIR "/?/init.lua");
  luaL_pushresult(&b);         /* package path newpath */
  lua_setfield(L, -3, "path"); /* package path */
  lua_pop(L, 2);               /* */
}

/* The global `arg` as lua.c makes it: arg[0] the script, its arguments from
 * 1, and the interpreter and options at negative indices. */
static void ir_create_arg(lua_State* L, int argc, char** argv, int script) {
  int base = script > 0 ? script : argc;
  lua_createtable(L, argc - base, base); /* arg */
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);   /* arg a */
    lua_rawseti(L, -2, i - base); /* arg */
  }
  lua_setglobal(L, "arg"); /* */
}

static int ir_run_chunk(lua_State* L, int nargs) {
  return ir_report(L, ir_lua_run_main(L, nargs));
}

static int ir_run_script(lua_State* L, int argc, char** argv, const ir_options_t* opts,
                         int* exit_code) {
  const char* name = opts->from_stdin ? NULL : argv[opts->script_index];
  bool command = name != NULL && ir_is_command(L, name);
  int status = command ? luaL_loadbuffer(L, ir_command_bootstrap,
                                         sizeof(ir_command_bootstrap) - 1, "=icmprun")
                       : luaL_loadfile(L, name); /* chunk */
  if (status != LUA_OK) {
    return ir_report(L, status);
  }
  if (command) {
    lua_pushstring(L, name); /* chunk name */
    status = ir_run_chunk(L, 1);
    /* A command's result is its exit status (nil or true: 0, false: 1). */
    if (status == LUA_OK && lua_gettop(L) > 0) {
      if (lua_isinteger(L, 1)) {
        *exit_code = (int)lua_tointeger(L, 1);
      } else if (lua_isboolean(L, 1)) {
        *exit_code = lua_toboolean(L, 1) ? 0 : 1;
      }
    }
    lua_settop(L, 0);
    return status;
  }
  int first = opts->script_index + 1;
  int nargs = argc - first;
  luaL_checkstack(L, nargs, "too many arguments to script");
  for (int i = first; i < argc; i++) {
    lua_pushstring(L, argv[i]); /* chunk args... */
  }
  status = ir_run_chunk(L, nargs);
  lua_settop(L, 0);
  return status;
}

/* First pass over the options: where the script is, and whether the
 * command line is usable at all. Returns -1 after printing an error. */
static int ir_scan_options(int argc, char** argv, ir_options_t* opts, bool* has_e) {
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    if (strcmp(a, "--") == 0) {
      if (i + 1 < argc)
        opts->script_index = i + 1;
      return 0;
    }
    if (strcmp(a, "-") == 0) {
      opts->script_index = i;
      opts->from_stdin = true;
      return 0;
    }
    if (a[0] != '-') {
      opts->script_index = i;
      return 0;
    }
    if (strcmp(a, "-e") == 0 || strcmp(a, "-l") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "icmprun: '%s' needs an argument\n%s", a, ir_usage);
        return -1;
      }
      *has_e = *has_e || a[1] == 'e';
      i++;
    } else if (strcmp(a, "--list") == 0) {
      opts->list = true;
    } else if (strcmp(a, "-h") != 0 && strcmp(a, "--help") != 0 &&
               strcmp(a, "-v") != 0 && strcmp(a, "--version") != 0) {
      fprintf(stderr, "icmprun: unrecognized option '%s'\n%s", a, ir_usage);
      return -1;
    }
  }
  return 0;
}

/* Second pass: -e and -l in order, each run as a task like the script. */
static int ir_run_options(lua_State* L, char** argv, int stop) {
  for (int i = 1; i < stop; i++) {
    if (strcmp(argv[i], "-e") == 0) {
      int status =
          luaL_loadbuffer(L, argv[i + 1], strlen(argv[i + 1]), "=(command line)");
      status = status == LUA_OK ? ir_run_chunk(L, 0) : ir_report(L, status);
      lua_settop(L, 0);
      if (status != LUA_OK)
        return status;
      i++;
    } else if (strcmp(argv[i], "-l") == 0) {
      lua_getglobal(L, "require");                      /* require */
      lua_pushstring(L, argv[i + 1]);                   /* require name */
      int status = ir_report(L, lua_pcall(L, 1, 1, 0)); /* mod */
      if (status != LUA_OK)
        return status;
      lua_setglobal(L, argv[i + 1]); /* */
      i++;
    }
  }
  return LUA_OK;
}

/* A daemon started with stdin, stdout or stderr closed would hand those
 * numbers to its first sockets, and a log line would then go to a client
 * or a probe socket: each closed one is opened on /dev/null instead. */
static void ir_open_std_fds(void) {
  for (int fd = 0; fd <= 2; fd++) {
    if (fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
      int opened = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
      if (opened > 2) {
        close(opened); /* Cannot happen: the lowest free number is fd. */
      }
    }
  }
}

int main(int argc, char** argv) {
  ir_options_t opts = {0, false, false};
  ir_open_std_fds();
  /* A client that hangs up mid-response is an EPIPE on that connection, not
   * the end of the process. */
  signal(SIGPIPE, SIG_IGN);
  bool has_e = false;
  if (ir_scan_options(argc, argv, &opts, &has_e) != 0) {
    return 1;
  }
  int stop = opts.script_index > 0 ? opts.script_index : argc;
  for (int i = 1; i < stop; i++) {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      fputs(ir_usage, stdout);
      return 0;
    }
    if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--version") == 0) {
      printf("icmprun %s (%s, libuv %s)\n", ICMPRUN_VERSION, LUA_RELEASE,
             uv_version_string());
      return 0;
    }
    if (strcmp(argv[i], "-e") == 0 || strcmp(argv[i], "-l") == 0) {
      i++;
    }
  }
  if (opts.script_index == 0 && !has_e && !opts.list) {
    fputs(ir_usage, stderr);
    return 1;
  }

  /* luaL_newstate's panic and warning functions, with the pool's allocator
   * from the first block the libraries allocate. */
  ir_lua_pool_t* pool = ir_lua_pool_new();
  lua_State* L = pool != NULL ? luaL_newstate() : NULL;
  if (L == NULL) {
    ir_lua_pool_free(pool);
    fprintf(stderr, "icmprun: cannot create the Lua state: not enough memory\n");
    return 1;
  }
  lua_setallocf(L, ir_lua_pool_alloc, pool);
  luaL_openlibs(L);
  /* The collector's mode of the stand-alone lua: generational collection
   * suits scripts that make many short-lived tables, as a sweep makes one per
   * result, and spares re-marking everything that lives long. */
  lua_gc(L, LUA_GCGEN, 0, 0);
  luaL_requiref(L, "icmprun", ir_lua_open, 0); /* icmprun */
  lua_pop(L, 1);                               /* */
  ir_set_paths(
      L, opts.from_stdin || opts.script_index == 0 ? NULL : argv[opts.script_index]);
  ir_create_arg(L, argc, argv, opts.script_index);

  int exit_code = 0;
  int status = ir_run_options(L, argv, stop);
  if (status == LUA_OK && opts.list) {
    status =
        luaL_loadbuffer(L, ir_list_commands, sizeof(ir_list_commands) - 1, "=icmprun");
    status = status == LUA_OK ? ir_run_chunk(L, 0) : ir_report(L, status);
  } else if (status == LUA_OK && opts.script_index > 0) {
    status = ir_run_script(L, argc, argv, &opts, &exit_code);
  }
  lua_close(L);
  ir_lua_pool_free(pool);
  fflush(stdout);
  return status == LUA_OK ? exit_code : 1;
}
