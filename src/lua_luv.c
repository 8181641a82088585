/* luv on the engine's own loop: `require "luv"` gives scripts libuv's TCP,
 * timers, files and processes without a second loop or thread, so that a
 * luv server (the exporter's HTTP endpoint) and icmprun's probes share one
 * turn of the same loop. */
#include <lauxlib.h>
#include <lua.h>
#include <luv/luv.h>

#include "lua_runtime.h"

/* package.preload.luv: opens luv bound to the runtime's loop. luv keeps the
 * state it was bound to for its callbacks, which must be the main thread:
 * a script's coroutine may be suspended when a callback comes. */
static int ir__open_luv(lua_State* L) {
  return luaopen_luv(L);
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
