/* SPDX-License-Identifier: MIT */
/* The trace scheduler (trace_sched.c) for lua/icmprun/trace.lua. */
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdint.h>

#include "lua_runtime.h"
#include "trace_sched.h"

#define IR_TRACE_SCHED_MT "icmprun.trace_sched"

/* Milliseconds (icmprun.now()'s unit) to the scheduler's nanoseconds. */
static uint64_t ir__ns(lua_State* L, int arg) {
  lua_Number ms = luaL_checknumber(L, arg);
  luaL_argcheck(L, ms >= 0 && ms < 1e15, arg, "milliseconds must be >= 0");
  return (uint64_t)(ms * 1e6);
}

static ir_trace_sched_t* ir__check(lua_State* L) {
  return luaL_checkudata(L, 1, IR_TRACE_SCHED_MT);
}

/* new(first_ttl, max_ttl, count, interval_ms, stop_at_target, now_ms); count
 * may be math.huge. trace.lua has checked the values; this only converts. */
static int ir__l_new(lua_State* L) {
  lua_Integer first = luaL_checkinteger(L, 1);
  lua_Integer max = luaL_checkinteger(L, 2);
  lua_Number count = luaL_checknumber(L, 3);
  uint64_t interval = ir__ns(L, 4);
  bool stop_at_target = lua_toboolean(L, 5);
  uint64_t now = ir__ns(L, 6);
  luaL_argcheck(L, first >= 1 && first <= max && max <= 255, 1, "TTLs out of range");
  luaL_argcheck(L, count >= 1, 3, "count must be >= 1");
  ir_trace_sched_t* s = lua_newuserdatauv(L, sizeof(*s), 0); /* s */
  ir_trace_sched_init(s, (int)first, (int)max,
                      count >= 1.8e19 ? UINT64_MAX : (uint64_t)count, interval,
                      stop_at_target, now);
  luaL_setmetatable(L, IR_TRACE_SCHED_MT);
  return 1;
}

/* s:next(now_ms) -> "send", ttl, round | "wait", due_ms | "done" */
static int ir__l_next(lua_State* L) {
  ir_trace_sched_t* s = ir__check(L);
  int ttl = 0;
  uint64_t round = 0, due = 0;
  switch (ir_trace_sched_next(s, ir__ns(L, 2), &ttl, &round, &due)) {
    case IR_TRACE_SEND:
      lua_pushliteral(L, "send");             /* "send" */
      lua_pushinteger(L, ttl);                /* "send" ttl */
      lua_pushinteger(L, (lua_Integer)round); /* "send" ttl round */
      return 3;
    case IR_TRACE_WAIT:
      lua_pushliteral(L, "wait");               /* "wait" */
      lua_pushnumber(L, (lua_Number)due / 1e6); /* "wait" due */
      return 2;
    default:
      lua_pushliteral(L, "done"); /* "done" */
      return 1;
  }
}

static int ir__l_end_at(lua_State* L) {
  ir_trace_sched_end_at(ir__check(L), (int)luaL_checkinteger(L, 2));
  return 0;
}

static int ir__l_last_ttl(lua_State* L) {
  lua_pushinteger(L, ir_trace_sched_last_ttl(ir__check(L)));
  return 1;
}

static int ir__l_rounds(lua_State* L) {
  lua_pushinteger(L, (lua_Integer)ir__check(L)->rounds);
  return 1;
}

static int ir__l_pause(lua_State* L) {
  ir_trace_sched_pause(ir__check(L));
  return 0;
}

static int ir__l_resume(lua_State* L) {
  ir_trace_sched_resume(ir__check(L), ir__ns(L, 2));
  return 0;
}

static int ir__l_stop(lua_State* L) {
  ir_trace_sched_stop(ir__check(L));
  return 0;
}

int ir_lua_open_trace_sched(lua_State* L) {
  static const luaL_Reg methods[] = {
      {"next", ir__l_next},         {"end_at", ir__l_end_at},
      {"last_ttl", ir__l_last_ttl}, {"rounds", ir__l_rounds},
      {"pause", ir__l_pause},       {"resume", ir__l_resume},
      {"stop", ir__l_stop},         {NULL, NULL}};
  if (luaL_newmetatable(L, IR_TRACE_SCHED_MT)) { /* mt */
    luaL_newlib(L, methods);                     /* mt methods */
    lua_setfield(L, -2, "__index");              /* mt */
  }
  lua_pop(L, 1);                   /* */
  lua_createtable(L, 0, 1);        /* M */
  lua_pushcfunction(L, ir__l_new); /* M new */
  lua_setfield(L, -2, "new");      /* M */
  return 1;
}
