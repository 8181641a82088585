/* SPDX-License-Identifier: MIT */
/* icmprun.info() and icmprun.counters(): their send timestamp fields, added
 * to what lua_probe.c reports; and icmprun.stats, the deprecated name of
 * counters(). */
#include <lauxlib.h>
#include <lua.h>
#include <sys/socket.h>

#include "common.h"
#include "lua_runtime.h"

/* info() -> the socket fields of the original info (upvalue 1), and
 * ipv4_tx_stamp / ipv6_tx_stamp = "kernel" | "user" for each open socket,
 * and tx_stamp: "kernel" when every open socket stamps its sends in the
 * kernel, "user" when one does not (or none is open). The original opens
 * both sockets first, so the answer is the one probes will get. The
 * stamp fields are the default sockets', whatever binding opts ask for. */
static int ir__l_info(lua_State* L) {
  int nargs = lua_gettop(L);             /* opts */
  lua_pushvalue(L, lua_upvalueindex(1)); /* opts info */
  lua_insert(L, 1);                      /* info opts */
  lua_call(L, nargs, 1);                 /* t */
  ir_lua_runtime_t* rt = lua_touserdata(L, lua_upvalueindex(2));
  static const struct {
    int family;
    const char* key;
  } families[] = {{AF_INET, "ipv4_tx_stamp"}, {AF_INET6, "ipv6_tx_stamp"}};
  int kernel = 0;
  int open = 0;
  for (size_t i = 0; i < IR_ARRAY_SIZE(families); i++) {
    const char* source =
        rt->engine != NULL ? ir_engine_tx_stamp(rt->engine, families[i].family) : NULL;
    if (source == NULL) {
      continue;
    }
    open++;
    kernel += source[0] == 'k';
    lua_pushstring(L, source);            /* t source */
    lua_setfield(L, -2, families[i].key); /* t */
  }
  lua_pushstring(L, open > 0 && kernel == open ? "kernel" : "user"); /* t source */
  lua_setfield(L, -2, "tx_stamp");                                   /* t */
  return 1;
}

/* counters() -> the original counters (upvalue 1), and tx_stamps (kernel send
 * timestamps matched to their probe), tx_stamps_unmatched (read but not
 * used) and tx_stamps_misattributed (ICMPRUN_TX_STAMP=verify only). */
static int ir__l_counters(lua_State* L) {
  lua_pushvalue(L, lua_upvalueindex(1)); /* counters */
  lua_call(L, 0, 1);                     /* t */
  ir_lua_runtime_t* rt = lua_touserdata(L, lua_upvalueindex(2));
  ir_counters_t c = {0};
  if (rt->engine != NULL) {
    ir_engine_counters(rt->engine, &c);
  }
  lua_pushinteger(L, (lua_Integer)c.tx_stamps);               /* t n */
  lua_setfield(L, -2, "tx_stamps");                           /* t */
  lua_pushinteger(L, (lua_Integer)c.tx_stamps_unmatched);     /* t n */
  lua_setfield(L, -2, "tx_stamps_unmatched");                 /* t */
  lua_pushinteger(L, (lua_Integer)c.tx_stamps_misattributed); /* t n */
  lua_setfield(L, -2, "tx_stamps_misattributed");             /* t */
  return 1;
}

/* Wraps module function `name` with f, which gets the original as upvalue 1
 * and the runtime as upvalue 2. */
static void ir__wrap(lua_State* L, int module_index, const char* name,
                     lua_CFunction f) {
  lua_getfield(L, module_index, name);                /* orig */
  lua_getfield(L, LUA_REGISTRYINDEX, IR_RUNTIME_KEY); /* orig rt */
  lua_pushcclosure(L, f, 2);                          /* wrapped */
  lua_setfield(L, module_index, name);                /* */
}

void ir_lua_register_txstamp(lua_State* L, int module_index) {
  module_index = lua_absindex(L, module_index);
  ir__wrap(L, module_index, "info", ir__l_info);
  ir__wrap(L, module_index, "counters", ir__l_counters);
  /* icmprun.stats() was the first name of counters(), and shared it with the
   * statistics module `icmprun.stats`; kept, deprecated, for old scripts. */
  lua_getfield(L, module_index, "counters"); /* counters */
  lua_setfield(L, module_index, "stats");    /* */
}
