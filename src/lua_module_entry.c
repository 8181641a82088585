/* Entry point of icmprun.so, so that stock Lua can `require "icmprun"`. */
#include <lua.h>

#include "lua_runtime.h"

LUAMOD_API int luaopen_icmprun(lua_State* L);

LUAMOD_API int luaopen_icmprun(lua_State* L) {
  return ir_lua_open(L);
}
