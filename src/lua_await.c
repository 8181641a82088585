/* SPDX-License-Identifier: MIT */
/* icmprun.await (a callback as a task's wait) and icmprun.every (a fixed schedule). */
#include <lauxlib.h>
#include <lua.h>
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "every.h"
#include "lua_runtime.h"

#define IR_RESUME_META "icmprun.resume"
#define IR_EVERY_META "icmprun.every"

/* ---- await ---------------------------------------------------------------- */

/* The resume function's state, its upvalue. Its uservalue is the table of
 * values resume was called with. `waiter` is NULL once the await is over
 * (resumed and taken, cancelled, abandoned): a later call does nothing. The
 * waiter clears it when it is freed (its backref), and this box clears the
 * waiter's backref if it is collected first. */
typedef struct ir_resume_box_s {
  ir_lua_waiter_t* waiter;
} ir_resume_box_t;

/* resume(...) -> true if it ended the wait, false if it was over already. */
static int ir__l_resume(lua_State* L) {
  int n = lua_gettop(L);
  ir_resume_box_t* box = lua_touserdata(L, lua_upvalueindex(1));
  ir_lua_waiter_t* waiter = box->waiter;
  if (waiter == NULL || waiter->done) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_createtable(L, n, 1); /* args values */
  for (int i = 1; i <= n; i++) {
    lua_pushvalue(L, i);   /* args values vi */
    lua_rawseti(L, -2, i); /* args values */
  }
  lua_pushinteger(L, n);                 /* args values n */
  lua_setfield(L, -2, "n");              /* args values */
  lua_pushvalue(L, lua_upvalueindex(1)); /* args values box */
  lua_insert(L, -2);                     /* args box values */
  lua_setiuservalue(L, -2, 1);           /* args box */
  ir_lua_wake(waiter);
  lua_pushboolean(L, 1);
  return 1;
}

static int ir__resume_box_gc(lua_State* L) {
  ir_resume_box_t* box = lua_touserdata(L, 1);
  if (box->waiter != NULL) {
    box->waiter->backref = NULL;
    box->waiter = NULL;
  }
  return 0;
}

/* await's end: the box (index 2) holds the values resume was called with. */
static int ir__await_done(lua_State* L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  lua_settop(L, 2);                               /* fn box */
  if (lua_getiuservalue(L, 2, 1) != LUA_TTABLE) { /* fn box values */
    return 0;
  }
  lua_getfield(L, 3, "n"); /* fn box values n */
  int n = (int)lua_tointeger(L, -1);
  lua_pop(L, 1); /* fn box values */
  luaL_checkstack(L, n, "too many values to resume with");
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, 3, i); /* fn box values v1 ... vi */
  }
  return n;
}

/* icmprun.await(fn) -> the values resume was called with. fn(resume) runs
 * at once and must not wait; it hands resume to a callback (luv's). */
static int ir__l_await(lua_State* L) {
  ir_lua_runtime_t* rt = lua_touserdata(L, lua_upvalueindex(1));
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1); /* fn */
  ir_lua_task_t* task = ir_lua_check_can_wait(L, rt, "await");
  ir_resume_box_t* box = lua_newuserdatauv(L, sizeof(*box), 1); /* fn box */
  box->waiter = NULL;
  luaL_setmetatable(L, IR_RESUME_META);
  ir_lua_waiter_t* waiter = ir_lua_waiter_new(rt, IR_WAIT_AWAIT, task);
  if (waiter == NULL) {
    return luaL_error(L, "await: out of memory");
  }
  /* Nothing but the box refers to the waiter: its operation is done as far
   * as freeing goes; the wait ends when resume is called. */
  waiter->op_done = true;
  waiter->backref = &box->waiter;
  box->waiter = waiter;
  lua_pushvalue(L, 1);                   /* fn box fn */
  lua_pushvalue(L, 2);                   /* fn box fn box */
  lua_pushcclosure(L, ir__l_resume, 1);  /* fn box fn resume */
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) { /* fn box [err] */
    /* Nothing waits: a resume called later finds no waiter. */
    waiter->consumed = true;
    ir_lua_waiter_op_done(waiter);
    return lua_error(L);
  }
  if (task != NULL && !waiter->done) {
    return ir_lua_wait_k(L, waiter, 0, ir__await_done);
  }
  /* Resumed inside fn already, or outside any task: this blocks, running
   * the loop, until resume is called. Pushes nothing. */
  ir_lua_wait(L, waiter);
  return ir__await_done(L, LUA_OK, 0);
}

/* ---- every ---------------------------------------------------------------- */

/* The handle that every returns. Its uservalues: 1 the function, 2 the task
 * that runs the schedule (whose first argument is this handle). Owns no
 * libuv handle: the task's sleeps are waiters with their own timers. */
typedef struct ir_every_handle_s {
  ir_lua_runtime_t* rt;
  ir_lua_task_t* task;
  ir_every_t schedule;
  uint64_t slot; /* The slot running, or waited for. */
  lua_Integer calls;
  bool in_call;
  bool stopped;
} ir_every_handle_t;

enum { IR_EVERY_START = 0, IR_EVERY_WOKEN, IR_EVERY_CALLED };

/* The task's body, resumed in turn after each sleep and each call. */
static int ir__every_step(lua_State* L, int status, lua_KContext ctx) {
  (void)status;
  ir_every_handle_t* h = lua_touserdata(L, 1);
  for (;;) {
    if (ctx == IR_EVERY_CALLED) {
      lua_settop(L, 1); /* h */
      h->in_call = false;
      h->calls++;
      if (h->stopped) {
        return 0;
      }
      h->slot = ir_every_after(&h->schedule, h->slot, uv_hrtime());
    }
    uint64_t due = ir_every_due(&h->schedule, h->slot);
    if (ctx != IR_EVERY_WOKEN && due > uv_hrtime()) {
      ir_lua_waiter_t* waiter = ir_lua_sleep_start(h->rt, h->task, due);
      if (waiter == NULL) {
        return luaL_error(L, "every: out of memory");
      }
      return ir_lua_wait_k(L, waiter, IR_EVERY_WOKEN, ir__every_step);
    }
    h->in_call = true;
    lua_getiuservalue(L, 1, 1);                          /* h fn */
    lua_pushinteger(L, (lua_Integer)h->slot);            /* h fn n */
    lua_pushnumber(L, (lua_Number)due / 1e6);            /* h fn n due */
    lua_callk(L, 2, 0, IR_EVERY_CALLED, ir__every_step); /* h */
    ctx = IR_EVERY_CALLED;
  }
}

static int ir__every_body(lua_State* L) {
  return ir__every_step(L, LUA_OK, IR_EVERY_START);
}

/* icmprun.every(ms, fn) -> handle. fn(n, due) runs for slot n (from 0),
 * due at start + n * ms (on icmprun.now()'s clock), never earlier. */
static int ir__l_every(lua_State* L) {
  ir_lua_runtime_t* rt = lua_touserdata(L, lua_upvalueindex(1));
  lua_Number ms = ir_lua_check_duration(L, 1);
  luaL_argcheck(L, ms >= 1 && ms <= IR_MAX_WAIT_MS, 1,
                "period must be milliseconds in 1..86400000 (or a duration: \"20ms\", "
                "\"1s\")");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 2);                                           /* ms fn */
  ir_every_handle_t* h = lua_newuserdatauv(L, sizeof(*h), 2); /* ms fn h */
  memset(h, 0, sizeof(*h));
  h->rt = rt;
  luaL_setmetatable(L, IR_EVERY_META);
  lua_pushvalue(L, 2);        /* ms fn h fn */
  lua_setiuservalue(L, 3, 1); /* ms fn h */
  ir_every_init(&h->schedule, uv_hrtime(), (uint64_t)(ms * 1e6));
  lua_pushcfunction(L, ir__every_body); /* ms fn h body */
  lua_pushvalue(L, 3);                  /* ms fn h body h */
  h->task = ir_lua_spawn(L, rt, 1);     /* ms fn h task */
  lua_setiuservalue(L, 3, 2);           /* ms fn h */
  return 1;
}

static ir_every_handle_t* ir__check_every(lua_State* L) {
  return luaL_checkudata(L, 1, IR_EVERY_META);
}

/* handle:stop(): no call starts after this. A call under way (stop from
 * inside fn, or while fn waits) runs to its end; between calls, the task
 * ends at once and its timer is closed. */
static int ir__l_every_stop(lua_State* L) {
  ir_every_handle_t* h = ir__check_every(L);
  h->stopped = true;
  if (!h->in_call) {
    ir_lua_task_cancel(L, h->task);
  }
  return 0;
}

/* handle:stats() -> calls made, slots skipped. */
static int ir__l_every_stats(lua_State* L) {
  ir_every_handle_t* h = ir__check_every(L);
  lua_pushinteger(L, h->calls);
  lua_pushinteger(L, (lua_Integer)h->schedule.skipped);
  return 2;
}

/* handle:task() -> the task that runs the schedule (to join it, or to wait
 * for it among others with icmprun.first). */
static int ir__l_every_task(lua_State* L) {
  ir__check_every(L);
  lua_getiuservalue(L, 1, 2); /* h task */
  return 1;
}

void ir_lua_register_await(lua_State* L, int module_index) {
  module_index = lua_absindex(L, module_index);
  if (luaL_newmetatable(L, IR_RESUME_META)) { /* mt */
    lua_pushcfunction(L, ir__resume_box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);                             /* */
  if (luaL_newmetatable(L, IR_EVERY_META)) { /* mt */
    static const luaL_Reg methods[] = {{"stop", ir__l_every_stop},
                                       {"stats", ir__l_every_stats},
                                       {"task", ir__l_every_task},
                                       {NULL, NULL}};
    luaL_newlib(L, methods);        /* mt methods */
    lua_setfield(L, -2, "__index"); /* mt */
  }
  lua_pop(L, 1); /* */
  static const luaL_Reg funcs[] = {
      {"await", ir__l_await}, {"every", ir__l_every}, {NULL, NULL}};
  lua_pushvalue(L, module_index);                     /* M */
  lua_getfield(L, LUA_REGISTRYINDEX, IR_RUNTIME_KEY); /* M rt */
  luaL_setfuncs(L, funcs, 1);                         /* M */
  lua_pop(L, 1);                                      /* */
}
