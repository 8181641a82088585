/* SPDX-License-Identifier: MIT */
/* Registers the embedded Lua library in package.preload. */
#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>

#include "lua_embed.h"
#include "lua_runtime.h"

/* package.preload loader for one embedded module; upvalue 1 is its index.
 * With ICMPRUN_LUA_SOURCE set to a source tree, the module is read from
 * there instead, so library changes can be tried without rebuilding. */
static int ir__load_embedded(lua_State* L) {
  const ir_embedded_module_t* mod =
      &ir_embedded_modules[lua_tointeger(L, lua_upvalueindex(1))];
  const char* tree = getenv("ICMPRUN_LUA_SOURCE");
  int status;
  if (tree != NULL && tree[0] != '\0') {
    const char* file = lua_pushfstring(L, "%s/%s", tree, mod->path); /* name path */
    status = luaL_loadfile(L, file);                                 /* name path f */
  } else {
    const char* chunkname = lua_pushfstring(L, "@%s", mod->path); /* name chunkname */
    status = luaL_loadbufferx(L, mod->source, mod->size, chunkname, "t");
  }
  if (status != LUA_OK) {
    return lua_error(L);
  }
  lua_pushstring(L, mod->name); /* ... f name */
  lua_call(L, 1, 1);            /* ... module */
  return 1;
}

void ir_lua_register_embedded(lua_State* L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE); /* preload */
  for (lua_Integer i = 0; ir_embedded_modules[i].name != NULL; i++) {
    lua_pushinteger(L, i);                            /* preload i */
    lua_pushcclosure(L, ir__load_embedded, 1);        /* preload loader */
    lua_setfield(L, -2, ir_embedded_modules[i].name); /* preload */
  }
  lua_pop(L, 1); /* */
}
