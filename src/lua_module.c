/* The icmprun module table: the script-facing API, assembled from its parts. */
#include <lauxlib.h>
#include <lua.h>

#include "lua_runtime.h"

#ifndef ICMPRUN_VERSION
#define ICMPRUN_VERSION "0.1.0"
#endif

int ir_lua_open(lua_State* L) {
  ir_lua_runtime_init(L);
  lua_newtable(L); /* M */
  ir_lua_register_tasks(L, -1);
  ir_lua_register_probe(L, -1);
  ir_lua_register_sweep(L, -1);
  ir_lua_register_signal(L, -1);
  lua_pushliteral(L, ICMPRUN_VERSION); /* M v */
  lua_setfield(L, -2, "version");      /* M */
  ir_lua_register_luv(L, ir_lua_runtime(L));
  ir_lua_register_httpd(L);
  ir_lua_register_embedded(L);
  return 1;
}
