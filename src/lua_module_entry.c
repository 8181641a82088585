/* SPDX-License-Identifier: MIT */
/* Entry point of icmprun.so, so that stock Lua can `require "icmprun"`. */
#include <lauxlib.h>
#include <lua.h>
#include <string.h>
#include <signal.h>

#include "lua_runtime.h"

LUAMOD_API int luaopen_icmprun(lua_State* L);

LUAMOD_API int luaopen_icmprun(lua_State* L) {
  /* Before the loop and the sockets are opened: a host program started with
   * a standard stream closed would otherwise give its number to one. */
  int err = ir_lua_open_std_fds();
  if (err != 0) {
    return luaL_error(L,
                      "icmprun: a standard stream is closed and /dev/null "
                      "cannot be opened in its place: %s",
                      strerror(-err));
  }
  /* As in the icmprun command: a peer that hangs up is an EPIPE on that
   * socket, not the end of the Lua process (unless it chose otherwise). */
  struct sigaction current;
  if (sigaction(SIGPIPE, NULL, &current) == 0 && current.sa_handler == SIG_DFL) {
    signal(SIGPIPE, SIG_IGN);
  }
  return ir_lua_open(L);
}
