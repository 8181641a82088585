/* SPDX-License-Identifier: MIT */
/* luv on the engine's own loop: `require "luv"` gives scripts libuv's TCP,
 * timers, files and processes without a second loop or thread, so that a
 * luv server (the exporter's HTTP endpoint) and icmprun's probes share one
 * turn of the same loop. */
#include <lauxlib.h>
#include <lua.h>
#include <luv/lhandle.h>
#include <luv/luv.h>
#include <stdbool.h>

#include "common.h"
#include "lua_runtime.h"

#define IR_LUV_DEFERRED_KEY "icmprun.luv_deferred"

/* Whether the luv handle userdata at index 1 is still anchored in the
 * registry. luv anchors a handle's userdata (luv_handle_t's ref) until the
 * handle's close callback, so the collector can only reach an anchored one
 * when lua_close finalizes every object, reachable or not. */
static bool ir__luv_handle_anchored(lua_State* L) {
  uv_handle_t** box = lua_touserdata(L, 1);
  if (box == NULL || *box == NULL || (*box)->data == NULL) {
    return false;
  }
  const luv_handle_t* data = (*box)->data;
  lua_rawgeti(L, LUA_REGISTRYINDEX, data->ref); /* ud? */
  bool anchored = lua_rawequal(L, -1, 1);
  lua_pop(L, 1); /* */
  return anchored;
}

/* luv's handle finalizer, put off at lua_close for a handle whose close is
 * pending. luv frees such a handle at once, though it is still on the
 * loop's list of closing handles; lua_close finalizes the newest objects
 * first, luv's handles before the runtime, whose finalizer then runs the
 * loop, and libuv called luv's close callback on freed memory (stock lua5.4
 * exited 139 when a handle was closed after icmprun.run). So such a handle's
 * finalizer waits in the registry until the runtime has run the loop dry.
 * An open handle needs nothing: luv closes it and frees it in the close
 * callback, during that same run. Upvalues: luv's finalizer, the runtime. */
static int ir__luv_handle_gc(lua_State* L) {
  const ir_lua_runtime_t* rt = lua_touserdata(L, lua_upvalueindex(2));
  uv_handle_t** box = lua_touserdata(L, 1);
  if (rt->engine != NULL && rt->running_depth == 0 && box != NULL && *box != NULL &&
      uv_is_closing(*box) && ir__luv_handle_anchored(L)) {
    lua_getfield(L, LUA_REGISTRYINDEX, IR_LUV_DEFERRED_KEY); /* ud deferred */
    lua_pushvalue(L, 1);                                     /* ud deferred ud */
    lua_pushvalue(L, lua_upvalueindex(1));                   /* ud deferred ud gc */
    lua_rawset(L, -3);                                       /* ud deferred */
    return 0;
  }
  lua_pushvalue(L, lua_upvalueindex(1)); /* ud gc */
  lua_pushvalue(L, 1);                   /* ud gc ud */
  lua_call(L, 1, 0);                     /* ud */
  return 0;
}

void ir_lua_luv_run_deferred_gc(lua_State* L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, IR_LUV_DEFERRED_KEY) != LUA_TTABLE) {
    lua_pop(L, 1); /* */
    return;
  }
  lua_pushnil(L);                /* deferred nil */
  while (lua_next(L, -2) != 0) { /* deferred ud gc */
    lua_pushvalue(L, -2);        /* deferred ud gc ud */
    /* A finalizer's error would be a warning in Lua's own GC; here too. */
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) { /* deferred ud [err] */
      lua_warning(L, "icmprun: luv handle finalizer: ", 1);
      lua_warning(L, lua_tostring(L, -1) != NULL ? lua_tostring(L, -1) : "?", 0);
      lua_pop(L, 1); /* deferred ud */
    }
  }
  lua_pop(L, 1); /* */
  lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, IR_LUV_DEFERRED_KEY);
}

/* Wraps the __gc of every luv handle metatable (the keys of luv's registry
 * table "uv_handle") in ir__luv_handle_gc. */
static void ir__wrap_luv_handle_gc(lua_State* L) {
  lua_newtable(L);                                         /* deferred */
  lua_setfield(L, LUA_REGISTRYINDEX, IR_LUV_DEFERRED_KEY); /* */
  lua_getfield(L, LUA_REGISTRYINDEX, "uv_handle");         /* handles */
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1); /* */
    return;
  }
  lua_pushnil(L);                /* handles nil */
  while (lua_next(L, -2) != 0) { /* handles mt true */
    lua_pop(L, 1);               /* handles mt */
    int mt = lua_gettop(L);
    if (lua_istable(L, mt) && lua_getfield(L, mt, "__gc") == LUA_TFUNCTION &&
        lua_tocfunction(L, -1) != ir__luv_handle_gc) {    /* handles mt gc */
      lua_getfield(L, LUA_REGISTRYINDEX, IR_RUNTIME_KEY); /* handles mt gc rt */
      lua_pushcclosure(L, ir__luv_handle_gc, 2);          /* handles mt wrapped */
      lua_setfield(L, mt, "__gc");                        /* handles mt */
    }
    lua_settop(L, mt); /* handles mt */
  }
  lua_pop(L, 1); /* */
}

/* package.preload.luv: opens luv bound to the runtime's loop. luv keeps the
 * state it was bound to for its callbacks, which must be the main thread:
 * a script's coroutine may be suspended when a callback comes. */
static int ir__open_luv(lua_State* L) {
  int n = luaopen_luv(L); /* luv */
  ir__wrap_luv_handle_gc(L);
  return n;
}

void ir_lua_register_luv(lua_State* L, ir_lua_runtime_t* rt) {
  /* In stock Lua a script may have opened luv before icmprun: luv then runs
   * a loop of its own, which its module table closes when collected. Moving
   * luv to our loop would make that finalizer close ours instead, after the
   * runtime freed it; so luv stays where it is. */
  uv_loop_t* current = luv_context(rt->L)->loop;
  if (current != NULL && current != &rt->loop) {
    return;
  }
  luv_set_loop(rt->L, &rt->loop);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE); /* preload */
  lua_pushcfunction(L, ir__open_luv);                        /* preload open */
  lua_setfield(L, -2, "luv");                                /* preload */
  lua_pop(L, 1);                                             /* */
}
