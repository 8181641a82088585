/* SPDX-License-Identifier: MIT */
/* icmprun.on_signal: run a Lua function as a task when a signal arrives. */
#include <lauxlib.h>
#include <lua.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "lua_runtime.h"

#define IR_SIGNALS_KEY "icmprun.signals"

/* One watched signal. The handle comes first, so that the close callback can
 * free the whole from the handle's address. The registry table
 * IR_SIGNALS_KEY maps the signal number to the handler function, and minus
 * the number to the watcher. Allocated by on_signal; closed by on_signal(nil)
 * or by the runtime's shutdown through its owner header, and freed by the
 * close callback. */
typedef struct ir_signal_s {
  uv_signal_t handle;
  ir_lua_runtime_t* rt;
  ir_lua_owner_t owner;
} ir_signal_t;

static const struct {
  const char* name;
  int signum;
} ir__signals[] = {{"INT", SIGINT},   {"TERM", SIGTERM}, {"HUP", SIGHUP},
                   {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"QUIT", SIGQUIT}};

static void ir__signal_closed(uv_handle_t* handle) {
  free(handle); /* The ir_signal_t that starts with it. */
}

static void ir__signal_close(ir_signal_t* watcher) {
  ir_lua_owner_unlink(&watcher->owner);
  uv_close((uv_handle_t*)&watcher->handle, ir__signal_closed);
}

/* Shutdown: the registry's entry is left to lua_close; on_signal refuses
 * to run once the runtime is closing, so it is never used again. */
static void ir__signal_shutdown(ir_lua_owner_t* owner) {
  ir__signal_close(IR_CONTAINER_OF(owner, ir_signal_t, owner));
}

static const char* ir__signal_name(int signum) {
  for (size_t i = 0; i < IR_ARRAY_SIZE(ir__signals); i++) {
    if (ir__signals[i].signum == signum) {
      return ir__signals[i].name;
    }
  }
  return "?";
}

/* The handler runs as a new task, started on the loop's next turn. */
static void ir__on_signal(uv_signal_t* handle, int signum) {
  ir_signal_t* watcher = (ir_signal_t*)handle;
  ir_lua_runtime_t* rt = watcher->rt;
  if (rt->closing) {
    return;
  }
  lua_State* S = rt->scratch;
  lua_getfield(S, LUA_REGISTRYINDEX, IR_SIGNALS_KEY); /* signals */
  lua_rawgeti(S, -1, signum);                         /* signals fn */
  if (!lua_isfunction(S, -1)) {
    lua_settop(S, 0);
    return;
  }
  lua_remove(S, -2);                          /* fn */
  lua_pushstring(S, ir__signal_name(signum)); /* fn name */
  ir_lua_spawn(S, rt, 1);                     /* task */
  lua_settop(S, 0);                           /* */
}

/* icmprun.on_signal(name, fn | nil): "INT", "TERM", "HUP", "USR1", "USR2" or
 * "QUIT" (with or without "SIG"). While a handler is set, the signal no longer
 * ends the process: fn(name) runs as a task instead (it may os.exit). The
 * watcher does not keep the loop alive by itself. nil restores the default. */
static int ir__l_on_signal(lua_State* L) {
  ir_lua_runtime_t* rt = lua_touserdata(L, lua_upvalueindex(1));
  const char* name = luaL_checkstring(L, 1);
  if (strncmp(name, "SIG", 3) == 0) {
    name += 3;
  }
  int signum = 0;
  for (size_t i = 0; i < IR_ARRAY_SIZE(ir__signals); i++) {
    if (strcmp(name, ir__signals[i].name) == 0) {
      signum = ir__signals[i].signum;
    }
  }
  luaL_argcheck(L, signum != 0, 1, "signal must be INT, TERM, HUP, USR1, USR2 or QUIT");
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TFUNCTION);
  }
  if (rt->closing) {
    return luaL_error(L, "on_signal: icmprun is shutting down");
  }
  lua_getfield(L, LUA_REGISTRYINDEX, IR_SIGNALS_KEY); /* signals */
  lua_rawgeti(L, -1, -signum);                        /* signals watcher? */
  ir_signal_t* watcher = lua_touserdata(L, -1);
  lua_pop(L, 1); /* signals */
  if (lua_isnoneornil(L, 2)) {
    if (watcher != NULL) {
      ir__signal_close(watcher);
      lua_pushnil(L);              /* signals nil */
      lua_rawseti(L, -2, -signum); /* signals */
    }
    lua_pushnil(L);             /* signals nil */
    lua_rawseti(L, -2, signum); /* signals */
    return 0;
  }
  if (watcher == NULL) {
    watcher = calloc(1, sizeof(*watcher));
    if (watcher == NULL) {
      return luaL_error(L, "on_signal: out of memory");
    }
    watcher->rt = rt;
    uv_signal_init(&rt->loop, &watcher->handle);
    ir_lua_owner_link(rt, &watcher->owner, ir__signal_shutdown);
    int err = uv_signal_start(&watcher->handle, ir__on_signal, signum);
    if (err != 0) {
      ir__signal_close(watcher);
      return luaL_error(L, "on_signal: %s", uv_strerror(err));
    }
    uv_unref((uv_handle_t*)&watcher->handle);
    lua_pushlightuserdata(L, watcher); /* signals watcher */
    lua_rawseti(L, -2, -signum);       /* signals */
  }
  lua_pushvalue(L, 2);        /* signals fn */
  lua_rawseti(L, -2, signum); /* signals */
  return 0;
}

void ir_lua_register_signal(lua_State* L, int module_index) {
  module_index = lua_absindex(L, module_index);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, IR_SIGNALS_KEY); /* signals */
  lua_pop(L, 1);                                          /* */
  lua_getfield(L, LUA_REGISTRYINDEX, IR_RUNTIME_KEY);     /* rt */
  lua_pushcclosure(L, ir__l_on_signal, 1);                /* on_signal */
  lua_setfield(L, module_index, "on_signal");             /* */
}
