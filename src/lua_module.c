/* SPDX-License-Identifier: MIT */
/* The icmprun module table: the script-facing API, assembled from its parts. */
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lua.h>
#include <unistd.h>

#include "lua_runtime.h"

#ifndef ICMPRUN_VERSION
#define ICMPRUN_VERSION "0.1.0"
#endif

/* icmprun.trace is written in Lua (lua/icmprun/trace.lua), on ping and
 * spawn; this stub loads it on the first call, so that scripts that never
 * trace never load it. A Lua function rather than a C one, so that the trace
 * may wait (resolve a name) across it. */
static const char ir__trace_stub[] =
    "local M = ...\n"
    "M.trace = function(...) return require('icmprun.trace').trace(...) end\n";

int ir_lua_open(lua_State* L) {
  ir_lua_runtime_init(L);
  lua_newtable(L); /* M */
  ir_lua_register_tasks(L, -1);
  ir_lua_register_probe(L, -1);
  ir_lua_register_txstamp(L, -1);
  ir_lua_register_sweep(L, -1);
  ir_lua_register_signal(L, -1);
  ir_lua_register_duplicates(L, -1);
  ir_lua_register_await(L, -1);
  ir_lua_register_prober(L, -1);
  lua_pushliteral(L, ICMPRUN_VERSION); /* M v */
  lua_setfield(L, -2, "version");      /* M */
  /* Under stock lua5.4 the module's first load is the start that counts;
   * the icmprun binary sets the moment its main() began instead. */
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e6); /* M t */
  lua_setfield(L, -2, "started");                   /* M */
  ir_lua_register_luv(L, ir_lua_runtime(L));
  ir_lua_register_httpd(L);
  ir_lua_register_render(L);
  ir_lua_register_embedded(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE); /* M preload */
  lua_pushcfunction(L, ir_lua_open_trace_sched);             /* M preload f */
  lua_setfield(L, -2, "icmprun.trace_sched");                /* M preload */
  lua_pop(L, 1);                                             /* M */
  if (luaL_loadbuffer(L, ir__trace_stub, sizeof(ir__trace_stub) - 1, "=icmprun") ==
      LUA_OK) {           /* M stub */
    lua_pushvalue(L, -2); /* M stub M */
    lua_call(L, 1, 0);    /* M */
  } else {
    return lua_error(L);
  }
  return 1;
}

int ir_lua_open_std_fds(void) {
  for (int fd = 0; fd <= 2; fd++) {
    if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) {
      continue;
    }
    /* The lower ones are open by now, so open() returns fd itself. */
    int got = open("/dev/null", O_RDWR);
    if (got < 0) {
      return -errno;
    }
    if (got != fd) {
      close(got);
      return -EBADF;
    }
  }
  return 0;
}
