/* SPDX-License-Identifier: MIT */
/* The scheduler: tasks (coroutines) on the loop, waiting, waking, errors. */
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "loop_slice.h"
#include "lua_runtime.h"

#define IR_TASKS_KEY "icmprun.tasks"
#define IR_SCRATCH_KEY "icmprun.scratch"
#define IR_TASK_META "icmprun.task"

static void ir__on_resume(uv_idle_t* idle);
static void ir__waiter_maybe_free(ir_lua_waiter_t* waiter);
static void ir__abandon_tasks(ir_lua_runtime_t* rt);
static int ir__copy_results(lua_State* L, ir_lua_task_t* task);
static void ir__walk_close(uv_handle_t* handle, void* arg);
static void ir__join_settle(ir_lua_waiter_t* waiter, ir_lua_task_t* ended, bool wake);
static void ir__link_remove(ir_join_link_t* link);

/* ---- Runtime ------------------------------------------------------------ */

ir_lua_runtime_t* ir_lua_runtime(lua_State* L) {
  lua_getfield(L, LUA_REGISTRYINDEX, IR_RUNTIME_KEY); /* rt */
  ir_lua_runtime_t* rt = lua_touserdata(L, -1);
  lua_pop(L, 1); /* */
  return rt;
}

/* Ends the runtime, once, at lua_close: abandons the tasks, closes the
 * engine, has every owner close its own, closes what others left open on
 * the loop (luv's handles) and runs the loop until it can be closed. */
static void ir__runtime_shutdown(ir_lua_runtime_t* rt) {
  if (rt->engine == NULL) {
    return;
  }
  /* From here on, waiters that are woken are only freed: no task resumes. */
  rt->closing = true;
  ir__abandon_tasks(rt);
  ir_engine_on_duplicate(rt->engine, NULL, NULL); /* Its table goes below. */
  ir_engine_close(rt->engine);
  rt->engine = NULL;
  ir_lua_duplicates_free(rt);
  /* Each object closes what it opened; a shutdown may free or unlink other
   * objects, so always take the list's first one afresh. */
  while (rt->owners.next != &rt->owners) {
    ir_lua_owner_t* owner = rt->owners.next;
    ir_lua_owner_unlink(owner);
    owner->shutdown(owner);
  }
  /* Inside a callback of this loop (os.exit(n, true) from a task) the loop
   * cannot be run again; the process is exiting anyway. */
  if (rt->running_depth > 0) {
    return;
  }
  /* As luv's loop_gc: close whatever is still open and run the loop until it
   * closes. A close callback of luv's may open a handle again, hence the
   * walk on every round. */
  do {
    uv_walk(&rt->loop, ir__walk_close, NULL);
    uv_run(&rt->loop, UV_RUN_DEFAULT);
  } while (uv_loop_close(&rt->loop) == UV_EBUSY);
  /* luv's handles whose close was pending are closed now: luv may free them. */
  ir_lua_luv_run_deferred_gc(rt->scratch);
}

static int ir__runtime_gc(lua_State* L) {
  ir__runtime_shutdown(lua_touserdata(L, 1));
  return 0;
}

/* What is still open once every owner has closed its own is not the
 * binding's: the runtime's resumer, and luv's handles, whose data is luv's
 * and is not touched here (luv frees a handle in its close callback, or in
 * a finalizer that lua_luv.c puts off until the loop has run dry). */
static void ir__walk_close(uv_handle_t* handle, void* arg) {
  (void)arg;
  if (!uv_is_closing(handle)) {
    uv_close(handle, NULL);
  }
}

void ir_lua_owner_link(ir_lua_runtime_t* rt, ir_lua_owner_t* owner,
                       void (*shutdown)(ir_lua_owner_t* self)) {
  owner->shutdown = shutdown;
  owner->prev = &rt->owners;
  owner->next = rt->owners.next;
  rt->owners.next->prev = owner;
  rt->owners.next = owner;
}

void ir_lua_owner_unlink(ir_lua_owner_t* owner) {
  if (owner->next == NULL) {
    return;
  }
  owner->prev->next = owner->next;
  owner->next->prev = owner->prev;
  owner->prev = NULL;
  owner->next = NULL;
}

int ir_lua_runtime_init(lua_State* L) {
  if (ir_lua_runtime(L) != NULL) {
    return 0;
  }
  ir_lua_runtime_t* rt = lua_newuserdatauv(L, sizeof(*rt), 0); /* rt */
  memset(rt, 0, sizeof(*rt));
  rt->error_ref = LUA_NOREF;
  rt->owners.prev = &rt->owners;
  rt->owners.next = &rt->owners;
  int err = uv_loop_init(&rt->loop);
  if (err != 0) {
    return luaL_error(L, "icmprun: cannot create the event loop: %s", uv_strerror(err));
  }
  rt->loop_slice_ns =
      ir_loop_slice_request(ir_loop_slice_wanted(getenv("ICMPRUN_LOOP_SLICE")));
  ir_engine_config_t config = {.socket_mode = IR_SOCKET_AUTO, .send_buffer = 0};
  const char* sndbuf = getenv("ICMPRUN_SNDBUF");
  if (sndbuf != NULL) {
    config.send_buffer = atoi(sndbuf);
  }
  const char* mode = getenv("ICMPRUN_SOCKET");
  if (mode != NULL && strcmp(mode, "raw") == 0) {
    config.socket_mode = IR_SOCKET_RAW;
  } else if (mode != NULL && strcmp(mode, "dgram") == 0) {
    config.socket_mode = IR_SOCKET_DGRAM;
  }
  err = ir_engine_new(&rt->loop, &config, &rt->engine);
  if (err != 0) {
    uv_loop_close(&rt->loop);
    return luaL_error(L, "icmprun: cannot create the engine: %s", uv_strerror(err));
  }
  ir_lua_duplicates_attach(rt);
  uv_idle_init(&rt->loop, &rt->resumer);
  rt->resumer.data = rt;
  luaL_newmetatable(L, IR_RUNTIME_KEY);               /* rt mt */
  lua_pushcfunction(L, ir__runtime_gc);               /* rt mt gc */
  lua_setfield(L, -2, "__gc");                        /* rt mt */
  lua_setmetatable(L, -2);                            /* rt */
  lua_setfield(L, LUA_REGISTRYINDEX, IR_RUNTIME_KEY); /* */

  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD); /* main */
  rt->L = lua_tothread(L, -1);
  lua_pop(L, 1);                                      /* */
  rt->scratch = lua_newthread(L);                     /* scratch */
  lua_setfield(L, LUA_REGISTRYINDEX, IR_SCRATCH_KEY); /* */
  lua_newtable(L);                                    /* tasks */
  lua_setfield(L, LUA_REGISTRYINDEX, IR_TASKS_KEY);   /* */
  return 0;
}

/* ---- Waiters ------------------------------------------------------------ */

ir_lua_waiter_t* ir_lua_waiter_new(ir_lua_runtime_t* rt, ir_wait_kind_t kind,
                                   ir_lua_task_t* task) {
  ir_lua_waiter_t* waiter = calloc(1, sizeof(*waiter));
  if (waiter != NULL) {
    waiter->rt = rt;
    waiter->kind = kind;
    waiter->task = task;
  }
  return waiter;
}

static void ir__waiter_maybe_free(ir_lua_waiter_t* waiter) {
  if (waiter->op_done && waiter->consumed) {
    ir_lua_owner_unlink(&waiter->owner);
    if (waiter->backref != NULL) {
      *waiter->backref = NULL; /* An await's resume function lets go of it. */
    }
    if (waiter->links != &waiter->one_link) {
      free(waiter->links); /* A first's links; every one has left its list. */
    }
    free(waiter);
  }
}

void ir_lua_waiter_op_done(ir_lua_waiter_t* waiter) {
  waiter->op_done = true;
  ir__waiter_maybe_free(waiter);
}

static void ir__make_ready(ir_lua_runtime_t* rt, ir_lua_task_t* task) {
  task->state = IR_TASK_READY;
  task->next_ready = NULL;
  if (rt->ready_tail != NULL) {
    rt->ready_tail->next_ready = task;
  } else {
    rt->ready_head = task;
  }
  rt->ready_tail = task;
  if (!uv_is_active((uv_handle_t*)&rt->resumer)) {
    uv_idle_start(&rt->resumer, ir__on_resume);
  }
}

/* The operation behind a waiter has its values: resume its task on the next
 * turn of the loop (never from inside an engine callback), or let the
 * blocking call that spins the loop see `done`. */
void ir_lua_wake(ir_lua_waiter_t* waiter) {
  waiter->done = true;
  if (waiter->rt->closing) {
    waiter->consumed = true;
    return;
  }
  /* A wait that ends before its task has yielded (a failure found at once)
   * is picked up by ir_lua_wait itself, without a trip through the queue. */
  ir_lua_task_t* task = waiter->task;
  if (task != NULL && task->state == IR_TASK_WAITING && task->waiter == waiter) {
    ir__make_ready(waiter->rt, task);
  }
}

ir_lua_task_t* ir_lua_current_task(lua_State* L) {
  lua_getfield(L, LUA_REGISTRYINDEX, IR_TASKS_KEY); /* tasks */
  lua_pushthread(L);                                /* tasks thread */
  lua_rawget(L, -2);                                /* tasks task|nil */
  ir_lua_task_t* task = lua_touserdata(L, -1);
  lua_pop(L, 2); /* */
  return task;
}

static int ir__push_wait_values(lua_State* L, ir_lua_waiter_t* waiter) {
  switch (waiter->kind) {
    case IR_WAIT_PROBE:
    case IR_WAIT_RESOLVE:
      return ir_lua_push_probe_values(L, waiter);
    case IR_WAIT_SLEEP:
    case IR_WAIT_SWEEP:
    case IR_WAIT_AWAIT: /* Its values are in the resume function's box. */
      return 0;
    case IR_WAIT_JOIN:
      if (waiter->timed_out) {
        lua_pushnil(L);                                 /* nil */
        lua_pushliteral(L, "timeout");                  /* nil msg */
        lua_pushstring(L, ir_error_name(UV_ETIMEDOUT)); /* nil msg code */
        return 3;
      }
      return ir__copy_results(L, waiter->joined);
    case IR_WAIT_FIRST:
      lua_pushinteger(L, waiter->winner + 1); /* index; first's continuation */
      return 1;
  }
  return 0;
}

/* Pushes copies of a finished task's results (left on its stack) onto L, or
 * the failure of a cancelled task. */
static int ir__copy_results(lua_State* L, ir_lua_task_t* task) {
  if (task->cancelled) {
    luaL_checkstack(L, 3, NULL);
    lua_pushnil(L);                                 /* nil */
    lua_pushliteral(L, "cancelled");                /* nil msg */
    lua_pushstring(L, ir_error_name(UV_ECANCELED)); /* nil msg code */
    return 3;
  }
  int n = task->nresults;
  int first = lua_gettop(task->co) - n + 1;
  luaL_checkstack(L, n, "too many results to join");
  for (int i = 0; i < n; i++) {
    lua_pushvalue(task->co, first + i); /* (co) ... ri */
    lua_xmove(task->co, L, 1);          /* (L) ... ri */
  }
  return n;
}

/* A task's waiter when the task will never resume: detached from the task,
 * which may be collected from now on, and freed now if nothing else refers to
 * it, otherwise by the operation when it ends (a join's, when the joined
 * task leaves its list of joiners). */
static void ir__drop_waiter(ir_lua_waiter_t* waiter) {
  waiter->task = NULL;
  waiter->consumed = true;
  ir__waiter_maybe_free(waiter);
}

/* Ends every unfinished task without running it again. After a task error or
 * a deadlock the run is over, and no part of it may resume later. */
static void ir__abandon_tasks(ir_lua_runtime_t* rt) {
  lua_State* S = rt->scratch;
  rt->ready_head = rt->ready_tail = NULL;
  uv_idle_stop(&rt->resumer);
  rt->batch_head = NULL;
  lua_getfield(S, LUA_REGISTRYINDEX, IR_TASKS_KEY); /* tasks */
  lua_pushnil(S);                                   /* tasks nil */
  while (lua_next(S, -2) != 0) {                    /* tasks co task */
    ir_lua_task_t* task = lua_touserdata(S, -1);
    /* The joined side of each join ends here, without waking anyone. A
     * joiner is freed now if its own side is over too (its task was visited
     * already, or its blocking call gave up), otherwise when its task is
     * visited (or its timeout's timer has closed). */
    while (task->joiners != NULL) {
      ir__join_settle(task->joiners->waiter, task, false);
    }
    if (task->waiter != NULL) {
      ir__drop_waiter(task->waiter);
      task->waiter = NULL;
    }
    task->state = IR_TASK_DONE;
    task->nresults = 0;
    lua_pop(S, 1);        /* tasks co */
    lua_pushvalue(S, -1); /* tasks co co */
    lua_pushnil(S);       /* tasks co co nil */
    lua_rawset(S, -4);    /* tasks co */
  }
  lua_pop(S, 1); /* */
  rt->live_tasks = 0;
}

/* Pushes the pending task error onto L and clears it, ready for lua_error.
 * The run is over: the other tasks are abandoned. */
static void ir__take_error(lua_State* L, ir_lua_runtime_t* rt) {
  ir__abandon_tasks(rt);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->error_ref); /* msg */
  luaL_unref(L, LUA_REGISTRYINDEX, rt->error_ref);
  rt->error_ref = LUA_NOREF;
  rt->failed = false;
}

/* Runs the loop one turn at a time until *done, a task error, or a deadlock:
 * nothing left that could ever make progress. */
static void ir__spin(ir_lua_runtime_t* rt, const bool* done) {
  rt->running_depth++;
  while (!*done && !rt->failed) {
    int more = uv_run(&rt->loop, UV_RUN_ONCE);
    if (!more && !*done && rt->ready_head == NULL && !rt->failed) {
      break;
    }
  }
  rt->running_depth--;
}

void ir_lua_finish_wait(ir_lua_waiter_t* waiter) {
  waiter->op_done = true;
  ir_lua_wake(waiter);
  ir__waiter_maybe_free(waiter);
}

int ir_lua_wait_k(lua_State* L, ir_lua_waiter_t* waiter, lua_KContext ctx,
                  lua_KFunction k) {
  ir_lua_task_t* task = waiter->task;
  if (task != NULL && !waiter->done) {
    task->waiter = waiter;
    task->state = IR_TASK_WAITING;
    return lua_yieldk(L, 0, ctx, k);
  }
  return ir_lua_wait(L, waiter);
}

int ir_lua_wait(lua_State* L, ir_lua_waiter_t* waiter) {
  ir_lua_task_t* task = waiter->task;
  if (task != NULL && !waiter->done) {
    task->waiter = waiter;
    task->state = IR_TASK_WAITING;
    return lua_yield(L, 0);
  }
  /* A blocking call from plain Lua (stock lua5.4, busted): drive the loop
   * here, which also runs any spawned tasks, until this call has its values. */
  ir_lua_runtime_t* rt = waiter->rt;
  if (!waiter->done) {
    ir__spin(rt, &waiter->done);
  }
  if (!waiter->done) {
    waiter->consumed = true; /* The operation frees it when it ends. */
    ir__waiter_maybe_free(waiter);
    if (rt->failed) {
      ir__take_error(L, rt);
      return lua_error(L);
    }
    ir__abandon_tasks(rt);
    return luaL_error(L, "deadlock: every task is waiting for another");
  }
  int n = ir__push_wait_values(L, waiter);
  waiter->consumed = true;
  ir__waiter_maybe_free(waiter);
  return n;
}

/* ---- Tasks -------------------------------------------------------------- */

static void ir__unanchor(ir_lua_runtime_t* rt, ir_lua_task_t* task) {
  lua_State* S = rt->scratch;
  lua_getfield(S, LUA_REGISTRYINDEX, IR_TASKS_KEY); /* tasks */
  lua_pushthread(task->co);                         /* (on co) thread */
  lua_xmove(task->co, S, 1);                        /* tasks thread */
  lua_pushnil(S);                                   /* tasks thread nil */
  lua_rawset(S, -3);                                /* tasks */
  lua_pop(S, 1);                                    /* */
}

static void ir__task_finish(ir_lua_runtime_t* rt, ir_lua_task_t* task, int nresults) {
  task->state = IR_TASK_DONE;
  task->nresults = nresults;
  rt->live_tasks--;
  /* Each settle takes its waiter's links out of every list, this one's
   * head included. */
  while (task->joiners != NULL) {
    ir__join_settle(task->joiners->waiter, task, true);
  }
  ir__unanchor(rt, task);
}

/* Pushes the text of a task's error that is not a string or a number: its
 * __tostring's, or its type. Run under lua_pcall. */
static int ir__describe_error(lua_State* L) {
  if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
    return 1; /* err text */
  }
  lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  return 1;
}

/* A task raised an error: keep its message with the task's traceback, and stop
 * the loop so that the run ends with it. Errors are never swallowed. */
static void ir__task_failed(ir_lua_runtime_t* rt, ir_lua_task_t* task) {
  lua_State* S = rt->scratch;
  lua_xmove(task->co, S, 1); /* err */
  const char* msg = lua_tostring(S, -1);
  if (msg == NULL) {
    /* The error's __tostring is the script's code and may raise in turn;
     * nothing around the scheduler would catch that. */
    lua_pushcfunction(S, ir__describe_error); /* err describe */
    lua_pushvalue(S, -2);                     /* err describe err */
    if (lua_pcall(S, 1, 1, 0) == LUA_OK) {    /* err text */
      msg = lua_tostring(S, -1);
    } else { /* err why */
      const char* why = lua_tostring(S, -1);
      msg =
          lua_pushfstring(S, "(error object is a %s value whose __tostring raised: %s)",
                          luaL_typename(S, -2), why != NULL ? why : "?");
    } /* err text|(why text) */
  }
  luaL_traceback(S, task->co, msg, 0); /* err ... tb */
  if (rt->error_ref == LUA_NOREF) {
    rt->error_ref = luaL_ref(S, LUA_REGISTRYINDEX); /* err [str] */
  }
  lua_settop(S, 0); /* */
  rt->failed = true;
  ir__task_finish(rt, task, 0);
  uv_stop(&rt->loop);
}

static void ir__resume(ir_lua_runtime_t* rt, ir_lua_task_t* task) {
  lua_State* co = task->co;
  int nargs = task->start_args;
  task->start_args = 0;
  ir_lua_waiter_t* waiter = task->waiter;
  if (waiter != NULL) {
    task->waiter = NULL;
    nargs = ir__push_wait_values(co, waiter);
    waiter->consumed = true;
    ir__waiter_maybe_free(waiter);
  }
  task->state = IR_TASK_RUNNING;
  int nresults = 0;
  int status = lua_resume(co, NULL, nargs, &nresults);
  if (status == LUA_YIELD) {
    if (task->state == IR_TASK_RUNNING) {
      /* A plain coroutine.yield() in a task: let the others run first. */
      lua_pop(co, nresults);
      ir__make_ready(rt, task);
    }
    return;
  }
  if (status == LUA_OK) {
    ir__task_finish(rt, task, nresults);
  } else {
    ir__task_failed(rt, task);
  }
}

static void ir__on_resume(uv_idle_t* idle) {
  ir_lua_runtime_t* rt = idle->data;
  /* Only the tasks ready now: those that become ready while these run wait
   * for the next turn, so the loop keeps reading replies in between. The
   * batch is the runtime's, so that a task it holds can be cancelled. */
  rt->batch_head = rt->ready_head;
  rt->ready_head = rt->ready_tail = NULL;
  while (rt->batch_head != NULL && !rt->failed) {
    ir_lua_task_t* task = rt->batch_head;
    rt->batch_head = task->next_ready;
    task->next_ready = NULL;
    ir__resume(rt, task);
  }
  rt->batch_head = NULL;
  if (rt->ready_head == NULL) {
    uv_idle_stop(idle);
  }
}

/* Creates a task for the function and nargs arguments on top of L, moving
 * them to its thread; leaves the task's handle on L. */
ir_lua_task_t* ir_lua_spawn(lua_State* L, ir_lua_runtime_t* rt, int nargs) {
  int first = lua_gettop(L) - nargs;                            /* The function. */
  ir_lua_task_t* task = lua_newuserdatauv(L, sizeof(*task), 1); /* f args task */
  memset(task, 0, sizeof(*task));
  task->rt = rt;
  luaL_setmetatable(L, IR_TASK_META);
  lua_State* co = lua_newthread(L); /* f args task co */
  task->co = co;
  lua_getfield(L, LUA_REGISTRYINDEX, IR_TASKS_KEY); /* f args task co tasks */
  lua_pushvalue(L, -2);                             /* ... co tasks co */
  lua_pushvalue(L, -4);                             /* ... co tasks co task */
  lua_rawset(L, -3);                                /* f args task co tasks */
  lua_pop(L, 1);                                    /* f args task co */
  lua_setiuservalue(L, -2, 1);                      /* f args task */
  lua_rotate(L, first, 1);                          /* task f args */
  lua_xmove(L, co, nargs + 1);                      /* task */
  task->start_args = nargs;
  rt->live_tasks++;
  ir__make_ready(rt, task);
  return task;
}

static int ir__l_spawn(lua_State* L) {
  ir_lua_runtime_t* rt = lua_touserdata(L, lua_upvalueindex(1));
  luaL_checktype(L, 1, LUA_TFUNCTION);
  ir_lua_spawn(L, rt, lua_gettop(L) - 1);
  return 1;
}

/* ---- Timers of waiters (sleep, join's timeout) ---------------------------- */

static void ir__on_waiter_timer_closed(uv_handle_t* handle) {
  ir_lua_waiter_op_done(handle->data);
}

/* Closes a waiter's timer if it is open; its close callback ends the
 * waiter's operation. */
static void ir__waiter_timer_close(ir_lua_waiter_t* waiter) {
  if (waiter->owner.next == NULL) {
    return; /* Not open, or closing already. */
  }
  ir_lua_owner_unlink(&waiter->owner);
  uv_close((uv_handle_t*)&waiter->timer, ir__on_waiter_timer_closed);
}

static void ir__on_waiter_timer(uv_timer_t* timer) {
  ir_lua_waiter_t* waiter = timer->data;
  /* libuv's clock counts whole milliseconds, so a timer can fire up to one
   * millisecond before the precise deadline: never wake early. */
  uint64_t now = uv_hrtime();
  if (now < waiter->due_ns) {
    uv_timer_start(timer, ir__on_waiter_timer, ir_ns_to_ms_ceil(waiter->due_ns - now),
                   0);
    return;
  }
  if (waiter->kind == IR_WAIT_JOIN) {
    ir__join_settle(waiter, NULL, true); /* Timed out; closes the timer. */
    return;
  }
  ir_lua_wake(waiter);
  ir__waiter_timer_close(waiter);
}

/* Shutdown of a timer that has not fired: nobody will take its values. It
 * is unlinked already. */
static void ir__waiter_timer_shutdown(ir_lua_owner_t* owner) {
  ir_lua_waiter_t* waiter = ir_lua_waiter_of_owner(owner);
  waiter->task = NULL;
  waiter->consumed = true;
  if (waiter->kind == IR_WAIT_JOIN && !waiter->settled) {
    /* Its link leaves its list; the close below ends the operation. */
    waiter->settled = true;
    ir__link_remove(&waiter->one_link);
  }
  uv_close((uv_handle_t*)&waiter->timer, ir__on_waiter_timer_closed);
}

/* Opens the waiter's timer for due_ns (uv_hrtime()) and links it. */
static void ir__waiter_timer_start(ir_lua_runtime_t* rt, ir_lua_waiter_t* waiter,
                                   uint64_t due_ns) {
  uv_timer_init(&rt->loop, &waiter->timer);
  waiter->timer.data = waiter;
  ir_lua_owner_link(rt, &waiter->owner, ir__waiter_timer_shutdown);
  waiter->due_ns = due_ns;
  uv_update_time(&rt->loop);
  uint64_t now = uv_hrtime();
  uint64_t ms = due_ns > now ? ir_ns_to_ms_ceil(due_ns - now) : 0;
  uv_timer_start(&waiter->timer, ir__on_waiter_timer, ms, 0);
}

ir_lua_waiter_t* ir_lua_sleep_start(ir_lua_runtime_t* rt, ir_lua_task_t* task,
                                    uint64_t due_ns) {
  ir_lua_waiter_t* waiter = ir_lua_waiter_new(rt, IR_WAIT_SLEEP, task);
  if (waiter != NULL) {
    ir__waiter_timer_start(rt, waiter, due_ns);
  }
  return waiter;
}

/* ---- Joins: join, join with a timeout, first ------------------------------ */

static void ir__link_add(ir_join_link_t* link, ir_lua_waiter_t* waiter,
                         ir_lua_task_t* task) {
  link->waiter = waiter;
  link->task = task;
  link->next = task->joiners;
  if (link->next != NULL) {
    link->next->pprev = &link->next;
  }
  link->pprev = &task->joiners;
  task->joiners = link;
}

static void ir__link_remove(ir_join_link_t* link) {
  if (link->pprev == NULL) {
    return;
  }
  *link->pprev = link->next;
  if (link->next != NULL) {
    link->next->pprev = link->pprev;
  }
  link->next = NULL;
  link->pprev = NULL;
}

/* Settles a join or first wait, once: `ended` is the task that ended (NULL
 * for a timeout, or when the wait was given up); every link leaves its
 * list, and the timer, if any, closes. With `wake`, the waiting task (or
 * blocking call) gets its values; without it, nobody will take them. */
static void ir__join_settle(ir_lua_waiter_t* waiter, ir_lua_task_t* ended, bool wake) {
  if (waiter->settled) {
    return;
  }
  waiter->settled = true;
  for (int i = 0; i < waiter->nlinks; i++) {
    if (waiter->links[i].task == ended && waiter->joined == NULL && ended != NULL) {
      waiter->joined = ended;
      waiter->winner = i;
    }
    ir__link_remove(&waiter->links[i]);
  }
  waiter->timed_out = ended == NULL && wake;
  if (wake) {
    ir_lua_wake(waiter);
  }
  if (waiter->timer.type == UV_TIMER) {
    ir__waiter_timer_close(waiter); /* Its close ends the operation. */
  } else {
    waiter->op_done = true; /* No timer was ever opened. */
  }
  ir__waiter_maybe_free(waiter);
}

ir_lua_task_t* ir_lua_check_task(lua_State* L, int idx) {
  return luaL_checkudata(L, idx, IR_TASK_META);
}

/* task:join([timeout_ms]) -> the task's results | nil, "timeout", "ETIMEDOUT"
 * | nil, "cancelled", "ECANCELED". A timeout leaves the task running. */
static int ir__l_join(lua_State* L) {
  ir_lua_task_t* task = ir_lua_check_task(L, 1);
  lua_Number timeout = -1;
  if (!lua_isnoneornil(L, 2)) {
    timeout = ir_lua_check_duration(L, 2);
    luaL_argcheck(
        L, timeout >= 0 && timeout < 1e12, 2,
        "timeout must be milliseconds >= 0 (or a duration: \"500ms\", \"2s\")");
  }
  if (task->state == IR_TASK_DONE) {
    return ir__copy_results(L, task);
  }
  ir_lua_task_t* self = ir_lua_check_can_wait(L, task->rt, "join");
  if (self == task) {
    return luaL_error(L, "a task cannot join itself");
  }
  ir_lua_waiter_t* waiter = ir_lua_waiter_new(task->rt, IR_WAIT_JOIN, self);
  if (waiter == NULL) {
    return luaL_error(L, "join: out of memory");
  }
  waiter->links = &waiter->one_link;
  waiter->nlinks = 1;
  ir__link_add(&waiter->one_link, waiter, task);
  if (timeout >= 0) {
    ir__waiter_timer_start(task->rt, waiter, uv_hrtime() + (uint64_t)(timeout * 1e6));
  }
  return ir_lua_wait(L, waiter);
}

/* first's continuation: the index of the task that ended is on top. */
static int ir__first_done(lua_State* L, int status, lua_KContext ctx) {
  (void)status;
  int nargs = (int)ctx;
  int winner = (int)lua_tointeger(L, -1);
  lua_settop(L, nargs);     /* t1 ... tn */
  lua_pushvalue(L, winner); /* t1 ... tn task */
  return 1 + ir__copy_results(L, lua_touserdata(L, winner));
}

/* icmprun.first(t1, t2, ...) -> the first task to end, and its results (or
 * nil, "cancelled", "ECANCELED"). The others keep running. */
static int ir__l_first(lua_State* L) {
  int n = lua_gettop(L);
  luaL_argcheck(L, n > 0, 1, "tasks expected");
  ir_lua_task_t* self = ir_lua_current_task(L);
  for (int i = 1; i <= n; i++) {
    ir_lua_task_t* task = ir_lua_check_task(L, i);
    luaL_argcheck(L, task != self, i, "a task cannot wait for itself");
  }
  for (int i = 1; i <= n; i++) {
    if (((ir_lua_task_t*)lua_touserdata(L, i))->state == IR_TASK_DONE) {
      lua_pushinteger(L, i); /* t1 ... tn i */
      return ir__first_done(L, LUA_OK, n);
    }
  }
  ir_lua_runtime_t* rt = ir_lua_check_task(L, 1)->rt;
  self = ir_lua_check_can_wait(L, rt, "first");
  ir_lua_waiter_t* waiter = ir_lua_waiter_new(rt, IR_WAIT_FIRST, self);
  ir_join_link_t* links = waiter != NULL ? calloc((size_t)n, sizeof(*links)) : NULL;
  if (links == NULL) {
    free(waiter);
    return luaL_error(L, "first: out of memory");
  }
  waiter->links = links;
  waiter->nlinks = n;
  for (int i = 0; i < n; i++) {
    ir__link_add(&links[i], waiter, lua_touserdata(L, i + 1));
  }
  if (self != NULL) {
    return ir_lua_wait_k(L, waiter, n, ir__first_done);
  }
  ir_lua_wait(L, waiter); /* Blocks; pushes the index. */
  return ir__first_done(L, LUA_OK, n);
}

/* ---- Cancelling --------------------------------------------------------- */

/* The task of a waiter was cancelled: the waiter is detached from it, and
 * what it waited for ends now or is left to free the waiter when it ends. */
static void ir__waiter_cancel(ir_lua_waiter_t* waiter) {
  waiter->task = NULL;
  waiter->consumed = true;
  switch (waiter->kind) {
    case IR_WAIT_PROBE:
    case IR_WAIT_RESOLVE:
      ir_lua_probe_cancel(waiter);
      return;
    case IR_WAIT_SLEEP:
      ir__waiter_timer_close(waiter);
      ir__waiter_maybe_free(waiter); /* If its timer had closed already. */
      return;
    case IR_WAIT_JOIN:
    case IR_WAIT_FIRST:
      ir__join_settle(waiter, NULL, false);
      return;
    case IR_WAIT_SWEEP: /* The sweep frees it when it next wakes its pullers. */
    case IR_WAIT_AWAIT: /* Nothing else holds it but the resume function. */
      ir__waiter_maybe_free(waiter);
      return;
  }
}

/* Takes a ready task out of the queue it is in: the next turn's, or the
 * batch being resumed now. */
static void ir__unready(ir_lua_runtime_t* rt, ir_lua_task_t* task) {
  ir_lua_task_t* prev = NULL;
  for (ir_lua_task_t* t = rt->ready_head; t != NULL; prev = t, t = t->next_ready) {
    if (t == task) {
      if (prev != NULL) {
        prev->next_ready = task->next_ready;
      } else {
        rt->ready_head = task->next_ready;
      }
      if (rt->ready_tail == task) {
        rt->ready_tail = prev;
      }
      task->next_ready = NULL;
      return;
    }
  }
  for (ir_lua_task_t** link = &rt->batch_head; *link != NULL;
       link = &(*link)->next_ready) {
    if (*link == task) {
      *link = task->next_ready;
      task->next_ready = NULL;
      return;
    }
  }
}

/* Closes a coroutine's pending to-be-closed variables, as coroutine.close. */
static int ir__close_thread(lua_State* co, lua_State* from) {
#if LUA_VERSION_RELEASE_NUM >= 50406
  return lua_closethread(co, from);
#else
  (void)from;
  return lua_resetthread(co);
#endif
}

bool ir_lua_task_cancel(lua_State* L, ir_lua_task_t* task) {
  ir_lua_runtime_t* rt = task->rt;
  if (task->state == IR_TASK_DONE) {
    return false;
  }
  if (task->state == IR_TASK_RUNNING) {
    luaL_error(L,
               "cancel: the task is running; a task cannot cancel itself "
               "(return from it, or raise an error)");
  }
  if (task->state == IR_TASK_READY) {
    ir__unready(rt, task);
  }
  ir_lua_waiter_t* waiter = task->waiter;
  task->waiter = NULL;
  /* Done before any of its code runs again (its __close handlers below), so
   * that they see it ended: joining it returns ECANCELED, cancelling it
   * again does nothing. */
  task->state = IR_TASK_DONE;
  task->cancelled = true;
  if (waiter != NULL) {
    ir__waiter_cancel(waiter);
  }
  /* As coroutine.close: its to-be-closed variables are closed, so a sweep
   * that it iterates with a for loop stops and cancels its probes. */
  int status = ir__close_thread(task->co, L);
  if (status != LUA_OK) {
    luaL_checkstack(L, 1, NULL);
    lua_xmove(task->co, L, 1); /* err */
  }
  ir__task_finish(rt, task, 0);
  if (status != LUA_OK) {
    lua_error(L); /* A __close handler of the task raised this. */
  }
  return true;
}

/* task:cancel() -> true if it ended the task, false if it had ended. */
static int ir__l_cancel(lua_State* L) {
  ir_lua_task_t* task = ir_lua_check_task(L, 1);
  lua_pushboolean(L, ir_lua_task_cancel(L, task));
  return 1;
}

static int ir__l_task_tostring(lua_State* L) {
  ir_lua_task_t* task = luaL_checkudata(L, 1, IR_TASK_META);
  static const char* const names[] = {"ready", "running", "waiting", "done"};
  lua_pushfstring(L, "icmprun.task (%s): %p",
                  task->cancelled ? "cancelled" : names[task->state], (void*)task);
  return 1;
}

/* Whether a waiting primitive may run here: in a task it yields; outside any
 * task it blocks, but only while the loop is not already running. Checked
 * before anything is started, so that a refused wait leaves nothing behind
 * (a probe or a timer that would outlive the call and wake a task that
 * never waited for it). */
ir_lua_task_t* ir_lua_check_can_wait(lua_State* L, ir_lua_runtime_t* rt,
                                     const char* fname) {
  /* Lua stops its collector while a finalizer runs, and lua_gc then answers
   * -1 (Lua 5.4.4 and later): neither yielding nor driving the loop from
   * inside the collector is safe. */
  if (lua_gc(L, LUA_GCISRUNNING) < 0) {
    luaL_error(L, "%s: cannot wait inside a __gc metamethod", fname);
  }
  if (rt->closing) {
    luaL_error(L, "%s: icmprun is shutting down", fname);
  }
  ir_lua_task_t* task = ir_lua_current_task(L);
  if (task != NULL && !lua_isyieldable(L)) {
    luaL_error(L,
               "%s: cannot wait here: the task is inside a call from C that "
               "cannot yield (a metamethod, or a function such as table.sort's "
               "comparator); wait outside it",
               fname);
  }
  if (task == NULL && rt->running_depth > 0) {
    luaL_error(L,
               "%s: called from a coroutine that icmprun did not start; "
               "use icmprun.spawn",
               fname);
  }
  return task;
}

static int ir__l_sleep(lua_State* L) {
  ir_lua_runtime_t* rt = lua_touserdata(L, lua_upvalueindex(1));
  lua_Number ms = ir_lua_check_duration(L, 1);
  luaL_argcheck(L, ms >= 0 && ms < 1e12, 1,
                "milliseconds must be >= 0 (or a duration: \"500ms\", \"2s\")");
  ir_lua_task_t* task = ir_lua_check_can_wait(L, rt, "sleep");
  ir_lua_waiter_t* waiter =
      ir_lua_sleep_start(rt, task, uv_hrtime() + (uint64_t)(ms * 1e6));
  if (waiter == NULL) {
    return luaL_error(L, "sleep: out of memory");
  }
  return ir_lua_wait(L, waiter);
}

static int ir__l_now(lua_State* L) {
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e6);
  return 1;
}

int ir_lua_run_main(lua_State* L, int nargs) {
  ir_lua_runtime_t* rt = ir_lua_runtime(L);
  ir_lua_task_t* task = ir_lua_spawn(L, rt, nargs); /* task */
  bool deadlock = false;
  rt->running_depth++;
  while (rt->live_tasks > 0 && !rt->failed) {
    int more = uv_run(&rt->loop, UV_RUN_ONCE);
    if (!more && rt->live_tasks > 0 && rt->ready_head == NULL && !rt->failed) {
      deadlock = true;
      break;
    }
  }
  rt->running_depth--;
  if (rt->failed) {
    lua_pop(L, 1);         /* */
    ir__take_error(L, rt); /* msg */
    return LUA_ERRRUN;
  }
  if (deadlock) {
    lua_pop(L, 1); /* */
    lua_pushfstring(L, "deadlock: %d task(s) are waiting for each other",
                    rt->live_tasks);
    ir__abandon_tasks(rt);
    return LUA_ERRRUN;
  }
  int n = ir__copy_results(L, task); /* task results */
  lua_remove(L, -(n + 1));           /* results */
  return LUA_OK;
}

/* icmprun.run(fn, ...): run fn as a task and wait for every task (for stock
 * Lua; icmprun runs the script's main chunk this way itself). */
static int ir__l_run(lua_State* L) {
  ir_lua_runtime_t* rt = lua_touserdata(L, lua_upvalueindex(1));
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (lua_gc(L, LUA_GCISRUNNING) < 0) { /* See ir_lua_check_can_wait. */
    return luaL_error(L, "run: cannot run the loop inside a __gc metamethod");
  }
  if (rt->running_depth > 0) {
    return luaL_error(L, "run: the loop is already running; use icmprun.spawn");
  }
  /* The stack holds only fn and its arguments, which go to the task; what
   * is left afterwards is fn's results. */
  int status = ir_lua_run_main(L, lua_gettop(L) - 1);
  if (status != LUA_OK) {
    return lua_error(L);
  }
  return lua_gettop(L);
}

void ir_lua_register_tasks(lua_State* L, int module_index) {
  module_index = lua_absindex(L, module_index);
  if (luaL_newmetatable(L, IR_TASK_META)) { /* mt */
    lua_newtable(L);                        /* mt methods */
    lua_pushcfunction(L, ir__l_join);       /* mt methods join */
    lua_setfield(L, -2, "join");            /* mt methods */
    lua_pushcfunction(L, ir__l_cancel);     /* mt methods cancel */
    lua_setfield(L, -2, "cancel");          /* mt methods */
    lua_setfield(L, -2, "__index");         /* mt */
    lua_pushcfunction(L, ir__l_task_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1); /* */
  static const luaL_Reg funcs[] = {
      {"spawn", ir__l_spawn}, {"sleep", ir__l_sleep}, {"run", ir__l_run}, {NULL, NULL}};
  lua_getfield(L, LUA_REGISTRYINDEX, IR_RUNTIME_KEY); /* rt */
  lua_pushvalue(L, module_index);                     /* rt M */
  lua_insert(L, -2);                                  /* M rt */
  luaL_setfuncs(L, funcs, 1);                         /* M */
  lua_pop(L, 1);                                      /* */
  lua_pushcfunction(L, ir__l_now);
  lua_setfield(L, module_index, "now");
  lua_pushcfunction(L, ir__l_first);
  lua_setfield(L, module_index, "first");
}
