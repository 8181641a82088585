/* SPDX-License-Identifier: MIT */
/* The icmprun command: runs a Lua script's main chunk as a task on the loop. */
#include <lauxlib.h>
#include <limits.h>
#include <lua.h>
#include <errno.h>
#include <fcntl.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "lua_runtime.h"

/* The installed library folders: absolute as configured, and relative to the
 * folder of the binary, so that an installed tree can be moved anywhere. */
#ifndef ICMPRUN_LUA_DIR
#define ICMPRUN_LUA_DIR "/usr/local/share/lua/5.4"
#endif
#ifndef ICMPRUN_LUA_DIR_FROM_BIN
#define ICMPRUN_LUA_DIR_FROM_BIN "../share/lua/5.4"
#endif
#ifndef ICMPRUN_C_DIR
#define ICMPRUN_C_DIR "/usr/local/lib/lua/5.4"
#endif
#ifndef ICMPRUN_C_DIR_FROM_BIN
#define ICMPRUN_C_DIR_FROM_BIN "../lib/lua/5.4"
#endif

static const char ir_usage[] =
    "usage: icmprun [options] [script [args...]]\n"
    "       icmprun COMMAND [args...]   (see --list)\n"
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
    "  --list         list the commands and where each comes from\n"
    "  -v, --version  print the version\n"
    "  -h, --help     print this help\n"
    "\n"
    "Lua API (local icmprun = require \"icmprun\"):\n"
    "  icmprun.ping(target, {timeout=1000, size=56, ttl=64, tos=0, family=4|6})\n"
    "      -> {status=, addr=, from=, rtt=, seq=, ttl=, bytes=, err=} | nil, message\n"
    "      status: reply, timeout, unreachable, ttl_exceeded or error\n"
    "  for r in icmprun.sweep(targets, {rate=1000, count=1, interval=1000, retries=0,\n"
    "                                  order=, seed=, shard=, limit=, ...}) do ... "
    "end\n"
    "      targets: address, name, CIDR block, range a-b, or a table/iterator of them\n"
    "  icmprun.spawn(fn, ...) -> task; task:join() -> fn's results\n"
    "  task:join(timeout_ms) -> results | nil, \"timeout\", \"ETIMEDOUT\"\n"
    "  task:cancel() -> true | false (ended already)\n"
    "  icmprun.first(t1, t2, ...) -> the first task to end, its results\n"
    "  icmprun.await(function(resume) ... end) -> what resume(...) was given\n"
    "  icmprun.every(ms, fn) -> handle (:stop()); fn(n, due) at start + n*ms\n"
    "  icmprun.prober{on_result=fn} -> p; p:add(addr, opts, interval) -> id:\n"
    "      many targets on fixed schedules, counters in C (p:stats(id))\n"
    "  icmprun.sleep(ms)   icmprun.now() -> monotonic ms\n"
    "  icmprun.resolve(name, {family=4|6}) -> address | nil, message\n"
    "  icmprun.on_signal(\"INT\"|\"TERM\"|\"HUP\"|\"QUIT\"|..., fn|nil)\n"
    "  icmprun.run(fn, ...)  (stock lua5.4) runs fn as a task until all tasks end\n"
    "  icmprun.info()      socket kinds in use   icmprun.counters() engine counters\n"
    "      (icmprun.stats() is the deprecated name of counters())\n"
    "  icmprun.duplicates() -> {[address] = duplicate replies from it}\n"
    "  for hop, r in icmprun.trace(target, {max_ttl=30, count=3, interval=250,\n"
    "                                      flow=\"stable\", ...}) do ... end\n"
    "      probes every hop at once; hops with addresses, loss and RTT statistics\n"
    "  icmprun.version     icmprun.STATUSES  the statuses, in order\n"
    "  icmprun.started     icmprun.now() when the process started\n"
    "  icmprun.limits      size, timeout, TTL and TOS limits of the options\n"
    "Failures return nil, message, code; caller mistakes raise. The reference:\n"
    "cmake --build build --target doc (LDoc, into build/doc/index.html).\n"
    "\n"
    "COMMAND is a bundled command, then icmprun/commands/COMMAND.lua on the\n"
    "module path, then a file; a script named with a '/' or '.lua' is always a\n"
    "file. Modules (and commands) are found beside the script, on ICMPRUN_PATH\n"
    "(folders separated by ':'), on LUA_PATH, in ~/.local/share/icmprun and in\n"
    "the installed library folder (named at the end of --help).\n"
    "\n"
    "Environment: ICMPRUN_SOCKET=dgram|raw forces a socket kind.\n"
    "Unprivileged ping sockets need:\n"
    "  sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"\n";

typedef struct ir_options_s {
  int script_index; /* argv index of the script, 0 for none. */
  bool from_stdin;
  bool list;
  bool applet; /* Run by a command's name (a link named fping): no options. */
} ir_options_t;

/* The installed library folders this binary uses: the Lua one holds the
 * library's modules and shared commands, the C one Lua C modules. */
typedef struct ir_dirs_s {
  char lua[PATH_MAX];
  char c[PATH_MAX];
} ir_dirs_t;

/* out = "a/b"; false when it does not fit. */
static bool ir_join(char* out, size_t size, const char* a, const char* b) {
  int len = snprintf(out, size, "%s/%s", a, b);
  return len > 0 && (size_t)len < size;
}

/* out = the canonical form of path (no "bin/.."), or path if it has none. */
static void ir_set_real(char* out, size_t size, const char* path) {
  char* real = realpath(path, NULL);
  snprintf(out, size, "%s", real != NULL ? real : path);
  free(real);
}

/* Finds the library folders: beside the binary first, as configured or in
 * the layout of a LuaRocks tree (bin/ beside share/lua/5.4), so that a tree
 * installed with any prefix, or moved, finds its own library; the configured
 * absolute folders otherwise (a binary copied elsewhere alone). A candidate
 * holds when it has the library's icmprun/cli.lua. */
static void ir_find_dirs(ir_dirs_t* dirs) {
  snprintf(dirs->lua, sizeof(dirs->lua), "%s", ICMPRUN_LUA_DIR);
  snprintf(dirs->c, sizeof(dirs->c), "%s", ICMPRUN_C_DIR);
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) {
    return;
  }
  exe[n] = '\0';
  char* slash = strrchr(exe, '/');
  if (slash == NULL) {
    return;
  }
  *slash = '\0';
  static const char* const candidates[][2] = {
      {ICMPRUN_LUA_DIR_FROM_BIN, ICMPRUN_C_DIR_FROM_BIN},
      {"../share/lua/5.4", "../lib/lua/5.4"},
  };
  for (size_t i = 0; i < IR_ARRAY_SIZE(candidates); i++) {
    char lua[PATH_MAX], c[PATH_MAX], probe[PATH_MAX];
    if (ir_join(lua, sizeof(lua), exe, candidates[i][0]) &&
        ir_join(c, sizeof(c), exe, candidates[i][1]) &&
        ir_join(probe, sizeof(probe), lua, "icmprun/cli.lua") &&
        access(probe, R_OK) == 0) {
      ir_set_real(dirs->lua, sizeof(dirs->lua), lua);
      ir_set_real(dirs->c, sizeof(dirs->c), c);
      return;
    }
  }
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

/* Calls icmprun.dispatch's function FN with the string arguments given,
 * under the traceback handler; leaves its NRESULTS results on the stack. */
static int ir_dispatch_call(lua_State* L, const char* fn, const char* a, const char* b,
                            int nresults) {
  lua_getglobal(L, "require");            /* require */
  lua_pushliteral(L, "icmprun.dispatch"); /* require name */
  int status = lua_pcall(L, 1, 1, 0);     /* dispatch */
  if (status != LUA_OK) {
    return status;
  }
  lua_getfield(L, -1, fn); /* dispatch f */
  lua_remove(L, -2);       /* f */
  int nargs = 0;
  if (a != NULL) {
    lua_pushstring(L, a); /* f a */
    nargs++;
  }
  if (b != NULL) {
    lua_pushstring(L, b); /* f a b */
    nargs++;
  }
  return lua_pcall(L, nargs, nresults, 0); /* results... */
}

/* What NAME runs (icmprun.dispatch.resolve): 1 a command, 0 a file, -1 an
 * unknown name or an error, reported here. */
static int ir_resolve(lua_State* L, const char* name) {
  int status = ir_dispatch_call(L, "resolve", name, NULL, 2); /* kind why */
  if (status != LUA_OK) {
    ir_report(L, status);
    return -1;
  }
  const char* kind = lua_tostring(L, -2);
  int result = kind == NULL ? -1 : strcmp(kind, "command") == 0 ? 1 : 0;
  if (result < 0) {
    const char* why = lua_tostring(L, -1);
    fprintf(stderr, "icmprun: %s\n", why != NULL ? why : "unknown command");
  }
  lua_pop(L, 2); /* */
  return result;
}

/* Names the process after the command it runs, so that `pidof fping` and
 * `pkill fping` find `icmprun fping` as they find fping: the kernel's name
 * (the one pkill matches, at most 15 bytes) by prctl, and the command line
 * (argv[0], which pidof and ps show) rewritten in place as "NAME ARGS...".
 * The argument strings lie one after another in one block, and the new text
 * is never longer than the old (it drops at least "icmprun"), so it fits; the
 * rest of the block is zeroed. argv must not be read after this. */
static void ir_name_process(int argc, char** argv, int command) {
  prctl(PR_SET_NAME, argv[command], 0, 0, 0);
  for (int i = 1; i < argc; i++) {
    if (argv[i] != argv[i - 1] + strlen(argv[i - 1]) + 1) {
      return; /* Not one block: leave the command line alone. */
    }
  }
  char* start = argv[0];
  char* end = argv[argc - 1] + strlen(argv[argc - 1]) + 1;
  size_t size = (size_t)(end - argv[command]);
  char* text = malloc(size);
  if (text == NULL) {
    return;
  }
  memcpy(text, argv[command], size);
  memset(start, 0, (size_t)(end - start));
  memcpy(start, text, size);
  free(text);
}

/* Appends "DIR/?.lua;DIR/?/init.lua;" (or a template with a '?' as it is)
 * to the buffer. */
static void ir_add_lua_dir(luaL_Buffer* b, const char* dir, size_t len) {
  if (memchr(dir, '?', len) != NULL) {
    luaL_addlstring(b, dir, len);
    luaL_addchar(b, ';');
    return;
  }
  luaL_addlstring(b, dir, len);
  luaL_addstring(b, "/?.lua;");
  luaL_addlstring(b, dir, len);
  luaL_addstring(b, "/?/init.lua;");
}

/* package.path and package.cpath for modules and commands shared among
 * operators: ICMPRUN_PATH's folders first (separated by ':' as in PATH, or by
 * ';' as in LUA_PATH), then
 * LUA_PATH or Lua's default, then the user's ~/.local/share/icmprun
 * ($XDG_DATA_HOME/icmprun), then the installed library folder. */
static void ir_set_paths(lua_State* L, const ir_dirs_t* dirs) {
  lua_getglobal(L, "package"); /* package */
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  const char* shared = getenv("ICMPRUN_PATH");
  for (const char* p = shared; p != NULL && *p != '\0';) {
    size_t len = strcspn(p, ":;");
    if (len > 0) {
      ir_add_lua_dir(&b, p, len);
    }
    p = p[len] != '\0' ? p + len + 1 : NULL;
  }
  lua_getfield(L, -2, "path"); /* package B path */
  luaL_addvalue(&b);
  luaL_addchar(&b, ';');
  const char* data = getenv("XDG_DATA_HOME");
  const char* home = getenv("HOME");
  char user[PATH_MAX];
  int len = data != NULL && data[0] == '/'
                ? snprintf(user, sizeof(user), "%s/icmprun", data)
                : snprintf(user, sizeof(user), "%s/.local/share/icmprun",
                           home != NULL ? home : "");
  if ((data != NULL && data[0] == '/') || (home != NULL && home[0] == '/')) {
    if (len > 0 && (size_t)len < sizeof(user)) {
      ir_add_lua_dir(&b, user, (size_t)len);
    }
  }
  luaL_addstring(&b, dirs->lua);
  luaL_addstring(&b, "/?.lua;");
  luaL_addstring(&b, dirs->lua);
  luaL_addstring(&b, "/?/init.lua");
  luaL_pushresult(&b);          /* package newpath */
  lua_setfield(L, -2, "path");  /* package */
  lua_getfield(L, -1, "cpath"); /* package cpath */
  lua_pushfstring(L, "%s;%s/?.so", lua_tostring(L, -1),
                  dirs->c);     /* package cpath new */
  lua_setfield(L, -3, "cpath"); /* package cpath */
  lua_pop(L, 2);                /* */
}

/* Puts the script's folder first on package.path, so a script finds the
 * modules beside it wherever it is run from. */
static void ir_add_script_dir(lua_State* L, const char* script) {
  lua_getglobal(L, "package"); /* package */
  const char* slash = strrchr(script, '/');
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  ir_add_lua_dir(&b, slash != NULL ? script : ".",
                 slash != NULL ? (size_t)(slash - script) : 1);
  lua_getfield(L, -2, "path"); /* package B path */
  luaL_addvalue(&b);
  luaL_pushresult(&b);         /* package newpath */
  lua_setfield(L, -2, "path"); /* package */
  lua_pop(L, 1);               /* */
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

/* Runs a command (icmprun.dispatch.run) as the main task; its result is the
 * exit status (nil or true: 0, false: 1, an integer as it is). */
static const char ir_command_bootstrap[] =
    "local name = ...\n"
    "return require('icmprun.dispatch').run(name, arg)\n";

static int ir_run_command(lua_State* L, const char* name, int* exit_code) {
  int status =
      luaL_loadbuffer(L, ir_command_bootstrap, sizeof(ir_command_bootstrap) - 1,
                      "=icmprun"); /* chunk */
  if (status != LUA_OK) {
    return ir_report(L, status);
  }
  int base = lua_gettop(L);    /* ... chunk */
  lua_pushstring(L, name);     /* ... chunk name */
  status = ir_run_chunk(L, 1); /* ... results */
  if (status == LUA_OK && lua_gettop(L) >= base) {
    if (lua_isinteger(L, base)) {
      *exit_code = (int)lua_tointeger(L, base);
    } else if (lua_isboolean(L, base)) {
      *exit_code = lua_toboolean(L, base) ? 0 : 1;
    }
  }
  lua_settop(L, base - 1); /* ... */
  return status;
}

static int ir_run_script(lua_State* L, int argc, char** argv, const ir_options_t* opts,
                         int* exit_code) {
  const char* name = opts->from_stdin ? NULL : argv[opts->script_index];
  if (name != NULL) {
    int kind = ir_resolve(L, name);
    if (kind < 0) {
      return LUA_ERRRUN;
    }
    if (opts->applet && kind != 1) {
      fprintf(stderr,
              "icmprun: run as '%s', which names no command; 'icmprun --list' lists "
              "them\n",
              name);
      return LUA_ERRRUN;
    }
    if (kind == 1) {
      /* The name is copied to the Lua stack before argv is rewritten. */
      const char* command = lua_pushstring(L, name); /* name */
      if (!opts->applet) {
        ir_name_process(argc, argv, opts->script_index);
      }
      int status = ir_run_command(L, command, exit_code);
      lua_settop(L, 0); /* */
      return status;
    }
    ir_add_script_dir(L, name);
  }
  int status = luaL_loadfile(L, name); /* chunk */
  if (status != LUA_OK) {
    return ir_report(L, status);
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

/* The program's own name, without its folder. */
static const char* ir_program_name(const char* argv0) {
  const char* slash = strrchr(argv0, '/');
  return slash != NULL ? slash + 1 : argv0;
}

/* When this process began (its fork), on uv_hrtime()'s clock: now less the
 * time it has certainly existed, which is the main thread's CPU time plus its
 * waits on a run queue (/proc/self/schedstat's second field, when the kernel
 * keeps it). Before main() the dynamic loader has run for milliseconds
 * (libmicrohttpd brings GnuTLS, whose set-up runs at load time), longer on a
 * busy machine. The CPU time is read right after the clock, never before: a
 * process that has not blocked since its fork has existed exactly as long as
 * it ran, and CPU time read earlier (before the fopen below, say) would miss
 * what ran in between and make the start later than it was. One thread's
 * time, not the process's: threads started before main() (a sanitizer's) run
 * at the same time as it, and their sum can exceed the time that passed. */
static uint64_t ir_process_start_ns(void) {
  uint64_t waited_ns = 0;
  FILE* f = fopen("/proc/self/schedstat", "r");
  if (f != NULL) {
    unsigned long long on_cpu = 0, waiting = 0;
    if (fscanf(f, "%llu %llu", &on_cpu, &waiting) == 2) {
      waited_ns = waiting;
    }
    fclose(f);
  }
  uint64_t now = uv_hrtime();
  uint64_t age_ns = waited_ns;
  struct timespec cpu;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu) == 0) {
    age_ns += (uint64_t)cpu.tv_sec * 1000000000u + (uint64_t)cpu.tv_nsec;
  }
  return age_ns < now ? now - age_ns : now;
}

int main(int argc, char** argv) {
  /* The moment the process started, on icmprun.now()'s clock: commands
   * that report "every N seconds since start", as fping -Q does, count from
   * there rather than from the end of the Lua start-up. */
  uint64_t started_ns = ir_process_start_ns();
  /* First of all: a socket or the loop must never take fd 0, 1 or 2 (print
   * would write into it, and libuv aborts when it closes one of them). */
  int fd_err = ir_lua_open_std_fds();
  if (fd_err != 0) {
    /* Lost if stderr is the closed one; the exit status still says it. */
    fprintf(stderr,
            "icmprun: a standard stream is closed and /dev/null cannot be "
            "opened in its place: %s\n",
            strerror(-fd_err));
    return 1;
  }
  ir_options_t opts = {0, false, false, false};
  /* A client that hangs up mid-response is an EPIPE on that connection, not
   * the end of the process. */
  signal(SIGPIPE, SIG_IGN);
  bool has_e = false;
  /* Busybox-style: run through a link named after a command (fping ->
   * icmprun), the program is `icmprun NAME` and every argument is the
   * command's. Any name starting with "icmprun" is icmprun itself. */
  const char* program = ir_program_name(argv[0]);
  char** applet_argv = NULL;
  if (program[0] != '\0' && strncmp(program, "icmprun", strlen("icmprun")) != 0) {
    applet_argv = malloc(((size_t)argc + 2) * sizeof(char*));
    if (applet_argv == NULL) {
      fprintf(stderr, "icmprun: not enough memory\n");
      return 1;
    }
    applet_argv[0] = argv[0];
    applet_argv[1] = (char*)program;
    memcpy(applet_argv + 2, argv + 1, (size_t)argc * sizeof(char*));
    argv = applet_argv;
    argc++;
    opts.script_index = 1;
    opts.applet = true;
  } else if (ir_scan_options(argc, argv, &opts, &has_e) != 0) {
    return 1;
  }
  int stop = opts.script_index > 0 ? opts.script_index : argc;
  for (int i = 1; i < stop; i++) {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      fputs(ir_usage, stdout);
      ir_dirs_t dirs;
      ir_find_dirs(&dirs);
      printf("Installed library folder: %s\n", dirs.lua);
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

  /* The engine refuses an unknown value (ir_engine_new), which would fail the
   * module's loading below, outside any protected call: say it here. */
  const char* tx_stamp = getenv("ICMPRUN_TX_STAMP");
  if (tx_stamp != NULL && tx_stamp[0] != '\0' && strcmp(tx_stamp, "auto") != 0 &&
      strcmp(tx_stamp, "kernel") != 0 && strcmp(tx_stamp, "user") != 0 &&
      strcmp(tx_stamp, "verify") != 0) {
    fprintf(stderr,
            "icmprun: ICMPRUN_TX_STAMP must be \"auto\", \"kernel\", \"user\" or "
            "\"verify\", not \"%s\"\n",
            tx_stamp);
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
  luaL_requiref(L, "icmprun", ir_lua_open, 0);     /* icmprun */
  lua_pushnumber(L, (lua_Number)started_ns / 1e6); /* icmprun started */
  lua_setfield(L, -2, "started");                  /* icmprun */
  lua_pop(L, 1);                                   /* */
  ir_dirs_t dirs;
  ir_find_dirs(&dirs);
  ir_set_paths(L, &dirs);
  ir_create_arg(L, argc, argv, opts.script_index);

  int exit_code = 0;
  int status = ir_run_options(L, argv, stop);
  if (status == LUA_OK && opts.list) {
    status = ir_report(L, ir_dispatch_call(L, "print_list", dirs.lua, NULL, 0));
  } else if (status == LUA_OK && opts.script_index > 0) {
    status = ir_run_script(L, argc, argv, &opts, &exit_code);
  }
  lua_close(L);
  ir_lua_pool_free(pool);
  free(applet_argv);
  fflush(stdout);
  return status == LUA_OK ? exit_code : 1;
}
