/* Entry point of icmprun.so, so that stock Lua can `require "icmprun"`. */
#include <lua.h>
#include <signal.h>

#include "lua_runtime.h"

LUAMOD_API int luaopen_icmprun(lua_State* L);

LUAMOD_API int luaopen_icmprun(lua_State* L) {
  /* As in the icmprun command: a peer that hangs up is an EPIPE on that
   * socket, not the end of the Lua process (unless it chose otherwise). */
  struct sigaction current;
  if (sigaction(SIGPIPE, NULL, &current) == 0 && current.sa_handler == SIG_DFL) {
    signal(SIGPIPE, SIG_IGN);
  }
  return ir_lua_open(L);
}
