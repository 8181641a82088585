/* SPDX-License-Identifier: MIT */
/* icmprun.sweep: the binding of sweep.c's schedule to Lua and the loop. */
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common.h"
#include "lua_runtime.h"
#include "sweep.h"
#include "sweep_workers.h"
#include "targets.h"

#define IR_SWEEP_META "icmprun.sweep"
#define IR_SWEEP_DEFAULT_RATE 1000.0
#define IR_SWEEP_DEFAULT_WINDOW 131072
#define IR_SWEEP_DEFAULT_LIMIT 16777216.0 /* A /8. */

/* What this file adds to a sweep's schedule (sweep.c): where its targets
 * come from (a string, a table or an iterator function, and name lookups),
 * the loop's handles that pump it, and the calls of its iterator that wait.
 *
 * Allocated by icmprun.sweep. Its references (`refs`) are its userdata
 * until that is closed or collected, its two handles until both have closed,
 * every probe the engine still holds, and a name lookup until its callback
 * has run: freed on the last of them. It is linked into its runtime's owner
 * list for all its life, so that shutdown closes its handles and cancels its
 * lookup (ir__sweep_shutdown) however the script left it. */
typedef struct ir_lua_sweep_s {
  ir_lua_owner_t owner;
  ir_lua_runtime_t* rt;
  ir_sweep_t* core;      /* One worker: the schedule runs on this loop. */
  ir_workers_t* workers; /* Several: threads run it (sweep_workers.c). */
  int refs;
  bool closed;        /* Closed or shut down: nothing more is sent or handed out. */
  bool stopped;       /* stop(): nothing more is sent; what is known still comes. */
  char* target_error; /* A bad target found while expanding lazily: raised
                         once the results of the targets before it are out. */
  int family;         /* 4 or 6 when opts.family forces one, else 0. */
  uint32_t retries;   /* Results say their attempts only with retries. */
  uint64_t limit;     /* Addresses in all targets at most, for messages. */

  /* Targets: the next one in the script's targets, and the one resolving. */
  lua_Integer next_index; /* In a targets table (or 1 for a single string). */
  uint64_t target_serial; /* Source whose text is the userdata's uservalue 2. */
  bool resolving;
  char resolving_name[256];
  uv_getaddrinfo_t resolve;

  uv_timer_t timer; /* The next token, or the next probe's turn. */
  uv_idle_t refill; /* Pumps once a turn while results come or the engine is full. */
  bool handles_open;
  int closing_handles;

  /* Calls of the iterator that wait, oldest first: several tasks may pull
   * from one sweep. Each wake ends all their waits; each resumed call takes
   * a result if one is left, or waits again (see ir__sweep_step). */
  ir_lua_waiter_t** waiters;
  uint32_t waiters_len;
  uint32_t waiters_cap;
  /* Calls woken, or stepped aside, that have not run again yet: a call that
   * finds a result while others are about to run lets them go first. */
  uint32_t ready_pullers;
} ir_lua_sweep_t;

typedef struct ir_sweep_ref_s {
  ir_lua_sweep_t* sweep;
} ir_sweep_ref_t;

/* ---- Ownership ------------------------------------------------------------ */

static void ir__sweep_free(ir_lua_sweep_t* s) {
  ir_lua_owner_unlink(&s->owner);
  if (s->core != NULL) {
    ir_sweep_free(s->core);
  }
  free(s->waiters);
  free(s->target_error);
  free(s);
}

static void ir__sweep_release(ir_lua_sweep_t* s) {
  if (--s->refs == 0) {
    ir__sweep_free(s);
  }
}

/* The handles hold one reference together, dropped when both have closed. */
static void ir__on_handle_closed(uv_handle_t* handle) {
  ir_lua_sweep_t* s = handle->data;
  if (--s->closing_handles == 0) {
    ir__sweep_release(s);
  }
}

static void ir__sweep_close_handles(ir_lua_sweep_t* s) {
  if (s->handles_open) {
    s->handles_open = false;
    s->closing_handles = 2;
    uv_close((uv_handle_t*)&s->timer, ir__on_handle_closed);
    uv_close((uv_handle_t*)&s->refill, ir__on_handle_closed);
  }
}

/* Wakes every call of the iterator that waits: there are results, or one
 * of them must act. Finishing a wait never runs Lua, so the list cannot
 * change under this loop. */
static void ir__sweep_wake(ir_lua_sweep_t* s) {
  uint32_t n = s->waiters_len;
  s->waiters_len = 0;
  s->ready_pullers += n;
  for (uint32_t i = 0; i < n; i++) {
    ir_lua_finish_wait(s->waiters[i]);
  }
}

static bool ir__sweep_add_waiter(ir_lua_sweep_t* s, ir_lua_waiter_t* waiter) {
  if (s->waiters_len == s->waiters_cap) {
    uint32_t cap = s->waiters_cap ? s->waiters_cap * 2 : 4;
    ir_lua_waiter_t** grown = realloc(s->waiters, cap * sizeof(*grown));
    if (grown == NULL) {
      return false;
    }
    s->waiters = grown;
    s->waiters_cap = cap;
  }
  s->waiters[s->waiters_len++] = waiter;
  return true;
}

/* ---- One schedule here, or several in worker threads ------------------------- */

static bool ir__wants_target(const ir_lua_sweep_t* s) {
  return s->workers != NULL ? ir_workers_wants_target(s->workers)
                            : ir_sweep_wants_target(s->core);
}

static void ir__targets_done(ir_lua_sweep_t* s) {
  if (s->workers != NULL) {
    ir_workers_targets_done(s->workers);
  } else {
    ir_sweep_targets_done(s->core);
  }
}

static int ir__add_target(ir_lua_sweep_t* s, const char* text,
                          const ir_block_t* block) {
  return s->workers != NULL ? ir_workers_add_target(s->workers, text, block)
                            : ir_sweep_add_target(s->core, text, block);
}

/* The oldest result, and in *worker the worker that made it (0: none). */
static const ir_sweep_item_t* ir__peek(ir_lua_sweep_t* s, uint32_t* worker) {
  *worker = 0;
  if (s->workers == NULL) {
    return ir_sweep_peek(s->core);
  }
  const ir_workers_item_t* taken = ir_workers_peek(s->workers);
  if (taken == NULL) {
    return NULL;
  }
  *worker = taken->worker;
  return &taken->item;
}

static void ir__pop(ir_lua_sweep_t* s) {
  if (s->workers != NULL) {
    ir_workers_pop(s->workers);
  } else {
    ir_sweep_pop(s->core);
  }
}

/* The workers' closing is over: their object is gone. */
static void ir__on_workers_closed(void* ctx) {
  ir_lua_sweep_t* s = ctx;
  s->workers = NULL;
  ir__sweep_release(s);
}

/* Stops expanding at a bad target; the iterator raises the message after
 * handing out the results of every target before it. */
static void ir__sweep_target_error(ir_lua_sweep_t* s, const char* message) {
  if (s->target_error == NULL) {
    s->target_error = strdup(message);
  }
  ir__targets_done(s);
  ir__sweep_wake(s);
}

/* ---- The schedule's view of the world (ir_sweep_ops_t) ---------------------- */

static void ir__on_shot_result(ir_engine_t* engine, const ir_result_t* result);

static uint64_t ir__ops_now(void* ctx) {
  (void)ctx;
  return uv_hrtime();
}

static int ir__ops_send(void* ctx, const ir_probe_spec_t* spec, void* data) {
  ir_lua_sweep_t* s = ctx;
  if (s->rt->engine == NULL) {
    return -ECANCELED;
  }
  int err = ir_engine_probe(s->rt->engine, spec, ir__on_shot_result, data);
  if (err == 0) {
    s->refs++; /* The engine's, until the probe's result. */
  }
  return err;
}

static uint32_t ir__ops_queued(void* ctx) {
  ir_lua_sweep_t* s = ctx;
  return s->rt->engine != NULL ? ir_engine_queued(s->rt->engine) : 0;
}

static void ir__ops_cancel(void* ctx, const void* group) {
  ir_lua_sweep_t* s = ctx;
  if (s->rt->engine != NULL) {
    ir_engine_cancel_group(s->rt->engine, group);
  }
}

static void ir__ops_wake(void* ctx) {
  ir__sweep_wake(ctx);
}

static const ir_sweep_ops_t ir__sweep_ops = {
    ir__ops_now, ir__ops_send, ir__ops_queued, ir__ops_cancel, ir__ops_wake, NULL};

/* ---- Pumping on the loop ----------------------------------------------------- */

static void ir__on_sweep_timer(uv_timer_t* timer);
static void ir__on_sweep_refill(uv_idle_t* idle);

/* Runs the schedule, and comes back when it says: at a time (the timer) or
 * on the loop's next turn (the idle handle). Never calls into Lua. */
static void ir__sweep_pump(ir_lua_sweep_t* s) {
  if (s->closed || s->workers != NULL) {
    return; /* Its handles are closing or closed. */
  }
  ir_sweep_next_t next;
  ir_sweep_pump(s->core, &next);
  if (next.at_ns != 0) {
    uint64_t now = uv_hrtime();
    uint64_t ms = next.at_ns > now ? ir_ns_to_ms_ceil(next.at_ns - now) : 0;
    uv_timer_start(&s->timer, ir__on_sweep_timer, ms, 0);
  }
  if (next.soon) {
    uv_idle_start(&s->refill, ir__on_sweep_refill);
  } else {
    uv_idle_stop(&s->refill);
  }
}

static void ir__on_sweep_timer(uv_timer_t* timer) {
  ir__sweep_pump(timer->data);
}

static void ir__on_sweep_refill(uv_idle_t* idle) {
  ir__sweep_pump(idle->data);
}

static void ir__on_shot_result(ir_engine_t* engine, const ir_result_t* result) {
  (void)engine;
  ir_lua_sweep_t* s = ir_sweep_probe_done(result);
  if (!s->closed) {
    /* Refill once per turn of the loop rather than once per result. */
    uv_idle_start(&s->refill, ir__on_sweep_refill);
  }
  ir__sweep_release(s); /* The engine's reference. */
}

/* ---- Results ------------------------------------------------------------- */

/* Pushes the target text of a result. Results come in long runs from one
 * target (a CIDR block), so the Lua string of the last one is kept as
 * uservalue 2 of the sweep's userdata (at ud): one string made per target
 * rather than one interned per result. */
static void ir__push_target(lua_State* L, ir_lua_sweep_t* s, int ud,
                            const ir_sweep_source_t* source) {
  if (s->target_serial == source->serial) {
    lua_getiuservalue(L, ud, 2); /* text */
    return;
  }
  lua_pushlstring(L, source->text, source->text_len); /* text */
  lua_pushvalue(L, -1);                               /* text text */
  lua_setiuservalue(L, ud, 2);                        /* text */
  s->target_serial = source->serial;
}

/* Pushes the result of a target name that did not resolve: status "error",
 * err the message ping would return, code libuv's name of the error (such as
 * "EAI_NONAME"), and no address, probe number or attempts. */
static void ir__push_resolve_failure(lua_State* L, int keys,
                                     const ir_sweep_item_t* item) {
  lua_createtable(L, 0, 4);                                   /* r */
  lua_rawgeti(L, keys, IR_KEY_STATUS);                        /* r key */
  lua_rawgeti(L, keys, IR_KEY_STATUS_BASE + IR_STATUS_ERROR); /* r key status */
  lua_rawset(L, -3);                                          /* r */
  lua_rawgeti(L, keys, IR_KEY_ERR);                           /* r key */
  lua_pushfstring(L, "cannot resolve '%s': %s", item->source->text,
                  uv_strerror(item->failure));   /* r key err */
  lua_rawset(L, -3);                             /* r */
  lua_pushstring(L, uv_err_name(item->failure)); /* r code */
  lua_setfield(L, -2, "code");                   /* r */
}

/* Pushes the oldest result: ping's fields, plus target, n and attempts. The
 * sweep's userdata is at ud. */
static void ir__results_pop(lua_State* L, ir_lua_sweep_t* s, int keys, int ud,
                            const ir_sweep_item_t* item, uint32_t worker) {
  if (item->failure != 0) {
    ir__push_resolve_failure(L, keys, item);
  } else {
    ir_lua_push_result(L, keys, &item->result, 3); /* r */
    ir_lua_set_integer(L, keys, IR_KEY_N, item->n);
    if (s->retries > 0) {
      ir_lua_set_integer(L, keys, IR_KEY_ATTEMPTS, item->attempt + 1);
    }
  }
  lua_rawgeti(L, keys, IR_KEY_TARGET);     /* r key */
  ir__push_target(L, s, ud, item->source); /* r key target */
  lua_rawset(L, -3);                       /* r */
  if (worker > 0) {
    lua_pushinteger(L, worker);    /* r worker */
    lua_setfield(L, -2, "worker"); /* r */
  }
  ir__pop(s);
}

/* ---- Targets --------------------------------------------------------------- */

/* Adds a name's lookup failure (a libuv error) as its result. */
static void ir__add_resolve_failure(ir_lua_sweep_t* s, const char* name, int err) {
  int added = s->workers != NULL ? ir_workers_add_failure(s->workers, name, err)
                                 : ir_sweep_add_failure(s->core, name, err);
  if (added != 0) {
    ir__sweep_target_error(s, "sweep: out of memory for results");
  }
}

/* Adds a block as the next target, or stops at it with the reason. */
static void ir__add_block(ir_lua_sweep_t* s, const char* text,
                          const ir_block_t* block) {
  int err = ir__add_target(s, text, block);
  if (err == 0) {
    return;
  }
  char message[512];
  if (err == -E2BIG) {
    snprintf(message, sizeof(message),
             "sweep: target '%s' takes the sweep over its limit of %llu addresses "
             "(raise opts.limit)",
             text, (unsigned long long)s->limit);
  } else {
    snprintf(message, sizeof(message), "sweep: target '%s': %s", text, strerror(-err));
  }
  ir__sweep_target_error(s, message);
}

static void ir__on_target_resolved(uv_getaddrinfo_t* req, int status,
                                   struct addrinfo* res) {
  ir_lua_sweep_t* s = req->data;
  s->resolving = false;
  ir_block_t block;
  memset(&block, 0, sizeof(block));
  block.count = 1;
  if (!s->closed && !s->stopped) {
    if (status != 0 || res == NULL ||
        ir_addr_from_sockaddr(res->ai_addr, &block.first)) {
      ir__add_resolve_failure(s, s->resolving_name,
                              status != 0 ? status : UV_EAI_NODATA);
    } else if (ir__add_target(s, s->resolving_name, &block) != 0) {
      ir__sweep_target_error(s, "sweep: more addresses than the limit allows");
    } else {
      ir__sweep_wake(s);
      ir__sweep_pump(s);
    }
  }
  uv_freeaddrinfo(res);
  ir__sweep_release(s);
}

/* The next target text from the script's targets (uservalue 1 of the sweep's
 * userdata at ud): a string once, a table's items in order, or an iterator
 * function's values. Pushes it, or nothing when the targets are exhausted. */
static bool ir__next_target_text(lua_State* L, ir_lua_sweep_t* s, int ud) {
  lua_getiuservalue(L, ud, 1); /* targets */
  int type = lua_type(L, -1);
  if (type == LUA_TSTRING) {
    if (s->next_index++ > 1) {
      lua_pop(L, 1); /* */
      return false;
    }
    return true; /* text */
  }
  if (type == LUA_TTABLE) {
    lua_rawgeti(L, -1, s->next_index++); /* targets text */
    lua_remove(L, -2);                   /* text */
  } else {
    s->next_index++;
    lua_call(L, 0, 1); /* text */
  }
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1); /* */
    return false;
  }
  if (lua_type(L, -1) != LUA_TSTRING) {
    luaL_error(L, "sweep: target #%d is a %s, not a string", (int)s->next_index - 1,
               luaL_typename(L, -1));
  }
  return true;
}

/* Adds targets while the schedule wants them (one walked, one ready behind
 * it) and no name is resolving, in Lua context so that an iterator of
 * targets can run (its own errors propagate at once). A bad target ends the
 * expansion and is raised after the results of the targets before it. */
static void ir__pull_targets(lua_State* L, ir_lua_sweep_t* s, int ud) {
  while (ir__wants_target(s) && !s->resolving) {
    if (!ir__next_target_text(L, s, ud)) {
      ir__targets_done(s);
      break;
    }
    const char* text = lua_tostring(L, -1);
    ir_block_t block;
    char why[256];
    char message[512];
    switch (ir_target_parse(text, &block, why, sizeof(why))) {
      case IR_TARGET_BLOCK:
        if (s->family != 0 &&
            block.first.family != (s->family == 4 ? AF_INET : AF_INET6)) {
          snprintf(message, sizeof(message), "sweep: target '%s' is not IPv%d", text,
                   s->family);
          ir__sweep_target_error(s, message);
        } else {
          ir__add_block(s, text, &block);
        }
        break;
      case IR_TARGET_NAME: {
        snprintf(s->resolving_name, sizeof(s->resolving_name), "%s", text);
        s->resolve.data = s;
        int err = ir_lua_getaddrinfo(&s->rt->loop, &s->resolve, ir__on_target_resolved,
                                     s->resolving_name, s->family);
        if (err != 0) {
          ir__add_resolve_failure(s, text, err);
          break;
        }
        s->resolving = true;
        s->refs++; /* The lookup's, until its callback. */
        break;
      }
      case IR_TARGET_INVALID:
        snprintf(message, sizeof(message), "sweep: %s", why);
        ir__sweep_target_error(s, message);
        break;
    }
    lua_pop(L, 1); /* */
  }
}

/* ---- The iterator ---------------------------------------------------------- */

static bool ir__sweep_finished(ir_lua_sweep_t* s) {
  if (s->resolving) {
    return false;
  }
  return s->workers != NULL ? ir_workers_finished(s->workers)
                            : ir_sweep_finished(s->core);
}

/* The schedule's failure (one worker), or a worker that could not run. */
static int ir__failure(ir_lua_sweep_t* s, int* family) {
  *family = 0;
  if (s->workers == NULL) {
    return ir_sweep_failure(s->core, family);
  }
  /* Raised once every worker has ended and handed its results out, so that
   * each address has its error result first, whichever worker ends first. */
  int err = ir_workers_failure(s->workers, NULL, NULL, 0);
  return err != 0 && ir_workers_finished(s->workers) ? err : 0;
}

/* Raises the schedule's failure: the engine's reason for a socket when it
 * has one, else the errno's text. */
static int ir__raise_failure(lua_State* L, ir_lua_sweep_t* s, int err, int family) {
  ir__sweep_wake(s); /* The other pullers raise it too. */
  if (err == -ENOMEM) {
    return luaL_error(L, "sweep: out of memory");
  }
  if (s->workers != NULL) {
    char because[256] = "";
    ir_workers_failure(s->workers, NULL, because, sizeof(because));
    return luaL_error(L, "sweep: %s", because[0] != '\0' ? because : uv_strerror(err));
  }
  const char* why =
      s->rt->engine != NULL ? ir_engine_socket_error(s->rt->engine, family) : NULL;
  return luaL_error(L, "sweep: %s", why != NULL ? why : uv_strerror(err));
}

/* The sweep argument of the iterator. Upvalue 2 is the sweep metatable:
 * comparing with it spares luaL_checkudata's lookup by name per result. */
static ir_sweep_ref_t* ir__check_sweep(lua_State* L) {
  ir_sweep_ref_t* ref = lua_touserdata(L, 1);
  bool ok = ref != NULL && lua_getmetatable(L, 1); /* mt */
  if (ok) {
    ok = lua_rawequal(L, -1, lua_upvalueindex(2));
    lua_pop(L, 1); /* */
  }
  if (!ok) {
    luaL_typeerror(L, 1, IR_SWEEP_META);
  }
  return ref;
}

/* How a call of the iterator (re)starts: the continuation's context. */
enum { IR_STEP_CALLED = 0, IR_STEP_WOKEN, IR_STEP_STEPPED_ASIDE };

/* Whether a fresh call that finds a result should first let the pullers
 * that are about to run take theirs: only in a task, which can yield. */
static bool ir__should_step_aside(lua_State* L, ir_lua_sweep_t* s) {
  if (s->ready_pullers == 0 || !lua_isyieldable(L)) {
    return false;
  }
  ir_lua_task_t* task = ir_lua_current_task(L);
  return task != NULL && task->state == IR_TASK_RUNNING;
}

/* One call of the iterator. Several tasks may pull from one sweep: each
 * result goes to exactly one of them, and every one of them sees the end
 * (nil) or the sweep's error once the results are out. They take turns: a
 * call that finds a result while other pullers are about to run (woken, or
 * stepped aside themselves) yields once to let them go first, so a task
 * whose loop body never waits does not take every result. A single puller
 * never steps aside. */
static int ir__sweep_step(lua_State* L, int status, lua_KContext ctx) {
  (void)status;
  ir_sweep_ref_t* ref = ir__check_sweep(L);
  if (ctx != IR_STEP_CALLED && ref->sweep != NULL && ref->sweep->ready_pullers > 0) {
    ref->sweep->ready_pullers--;
  }
  for (;;) {
    /* Looked up afresh after every wait: another task may have closed it. */
    ir_lua_sweep_t* s = ref->sweep;
    if (s == NULL || s->closed) {
      return luaL_error(L, "sweep: used after it was closed");
    }
    uint32_t worker = 0;
    const ir_sweep_item_t* item = ir__peek(s, &worker);
    if (item != NULL) {
      if (ctx == IR_STEP_CALLED && ir__should_step_aside(L, s)) {
        s->ready_pullers++;
        return lua_yieldk(L, 0, IR_STEP_STEPPED_ASIDE, ir__sweep_step);
      }
      ir__results_pop(L, s, lua_upvalueindex(1), 1, item, worker);
      return 1;
    }
    int family = 0;
    int err = ir__failure(s, &family);
    if (err != 0) {
      return ir__raise_failure(L, s, err, family);
    }
    ir__pull_targets(L, s, 1);
    ir__sweep_pump(s);
    if (ir__peek(s, &worker) != NULL || ir__failure(s, &family) != 0) {
      continue;
    }
    /* The pump used up the current target: take the next one now rather
     * than wait for a result to come back first. */
    if (ir__wants_target(s) && !s->resolving) {
      continue;
    }
    if (ir__sweep_finished(s)) {
      /* This call may have ended it (its targets ran out): the others that
       * wait would otherwise never hear of it. */
      ir__sweep_wake(s);
      if (s->target_error != NULL) {
        return luaL_error(L, "%s", s->target_error);
      }
      return 0;
    }
    ir_lua_task_t* task = ir_lua_check_can_wait(L, s->rt, "sweep");
    ir_lua_waiter_t* waiter = ir_lua_waiter_new(s->rt, IR_WAIT_SWEEP, task);
    if (waiter == NULL) {
      return luaL_error(L, "sweep: out of memory");
    }
    if (!ir__sweep_add_waiter(s, waiter)) {
      waiter->consumed = true;
      ir_lua_waiter_op_done(waiter); /* Frees it. */
      return luaL_error(L, "sweep: out of memory");
    }
    if (task != NULL) {
      return ir_lua_wait_k(L, waiter, IR_STEP_WOKEN, ir__sweep_step);
    }
    ir_lua_wait(L, waiter); /* Blocks, running the loop; pushes nothing. */
    if (ref->sweep != NULL && ref->sweep->ready_pullers > 0) {
      ref->sweep->ready_pullers--; /* This call was woken, and runs again. */
    }
  }
}

static int ir__l_sweep_next(lua_State* L) {
  return ir__sweep_step(L, LUA_OK, IR_STEP_CALLED);
}

/* sweep:stop(): nothing more is sent, probes in flight are cancelled and end
 * as "error" results (err "operation canceled"), and the loop goes on with
 * the results already known, then ends. Every probe sent still has exactly
 * one result. For a SIGINT handler that wants a summary of what was done. */
static int ir__l_sweep_stop(lua_State* L) {
  ir_sweep_ref_t* ref = luaL_checkudata(L, 1, IR_SWEEP_META);
  ir_lua_sweep_t* s = ref->sweep;
  if (s != NULL && !s->stopped && !s->closed) {
    s->stopped = true;
    uv_timer_stop(&s->timer);
    uv_idle_stop(&s->refill);
    if (s->resolving) {
      /* Its answer would be dropped: the end need not wait for it. */
      uv_cancel((uv_req_t*)&s->resolve);
    }
    if (s->workers != NULL) {
      ir_workers_stop(s->workers);
    } else {
      ir_sweep_stop(s->core);
    }
    ir__sweep_wake(s);
  }
  return 0;
}

/* Ends a sweep for good, for close and for the runtime's shutdown: nothing
 * more is sent, what is in flight is cancelled, nothing more is handed out,
 * a name lookup is cancelled and the handles close. The lookup's callback
 * still runs (with UV_EAI_CANCELED, or its answer when it had started
 * already) and drops the lookup's reference; until then the struct stays. */
static void ir__sweep_end(ir_lua_sweep_t* s) {
  if (s->closed) {
    return;
  }
  s->closed = true;
  if (s->workers != NULL) {
    ir_workers_close(s->workers, ir__on_workers_closed); /* Holds a reference. */
  } else {
    ir_sweep_close(s->core);
  }
  if (s->resolving) {
    uv_cancel((uv_req_t*)&s->resolve); /* UV_EBUSY once it runs: then it ends. */
  }
  ir__sweep_close_handles(s);
  ir__sweep_wake(s);
}

/* The runtime shuts down (ir__runtime_gc): the userdata may live on until
 * lua_close collects it, and then only drops its reference. */
static void ir__sweep_shutdown(ir_lua_owner_t* owner) {
  ir_lua_sweep_t* s = IR_CONTAINER_OF(owner, ir_lua_sweep_t, owner);
  ir__sweep_end(s);
  if (s->workers != NULL) {
    /* The runtime closes every handle left after this: the workers' wake-up
     * handle must not be one of them while their threads still use it. */
    ir_workers_wait(s->workers);
  }
}

/* __close and __gc: see ir__sweep_end. */
static int ir__l_sweep_close(lua_State* L) {
  ir_sweep_ref_t* ref = luaL_checkudata(L, 1, IR_SWEEP_META);
  ir_lua_sweep_t* s = ref->sweep;
  if (s == NULL) {
    return 0;
  }
  ref->sweep = NULL;
  ir__sweep_end(s);
  ir__sweep_release(s);
  return 0;
}

/* ---- Options and the call -------------------------------------------------- */

static const char* const ir__sweep_options[] = {
    "count", "interval", "rate",          "retries", "backoff", "order", "seed",
    "limit", "window",   "every_attempt", "shard",   "workers", NULL};

/* opts.shard = {i, n}: this sweep is shard i of n (1 <= i <= n). With a
 * random order, every shard must walk the same permutation, so the seed must
 * be given. */
static void ir__sweep_shard_read(lua_State* L, ir_sweep_config_t* c, bool has_seed) {
  c->shard_index = 0;
  c->shard_count = 1;
  if (lua_getfield(L, 2, "shard") == LUA_TNIL) { /* shard */
    lua_pop(L, 1);                               /* */
    return;
  }
  lua_Integer i = 0, n = 0;
  if (lua_type(L, -1) == LUA_TTABLE) {
    lua_rawgeti(L, -1, 1); /* shard i */
    lua_rawgeti(L, -2, 2); /* shard i n */
    i = lua_isinteger(L, -2) ? lua_tointeger(L, -2) : 0;
    n = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
    lua_pop(L, 2); /* shard */
  }
  lua_pop(L, 1); /* */
  if (n < 1 || n > 1000000 || i < 1 || i > n) {
    luaL_argerror(L, 2,
                  "option 'shard' must be {i, n} with integers 1 <= i <= n <= 1000000");
  }
  if (n > 1 && c->random && !has_seed) {
    luaL_argerror(L, 2,
                  "option 'shard' with order \"random\" needs the 'seed' that "
                  "every shard shares");
  }
  c->shard_index = (uint32_t)(i - 1);
  c->shard_count = (uint32_t)n;
}

/* Reads the options table at index 2 into c; returns the forced family. */
static int ir__sweep_options_read(lua_State* L, ir_sweep_config_t* c) {
  double count = 1, interval = 1000, rate = IR_SWEEP_DEFAULT_RATE, retries = 0,
         backoff = 1.5, limit = IR_SWEEP_DEFAULT_LIMIT,
         window = IR_SWEEP_DEFAULT_WINDOW, seed = -1;
  memset(c, 0, sizeof(*c));
  c->shard_count = 1;
  int family = ir_lua_probe_options(L, 2, &c->probe, ir__sweep_options);
  if (!lua_isnoneornil(L, 2)) {
    ir_lua_opt_number(L, 2, "count", 1, 1e9, true, &count);
    ir_lua_opt_duration(L, 2, "interval", 0, 86400000, &interval);
    lua_getfield(L, 2, "rate"); /* rate */
    if (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) == HUGE_VAL) {
      rate = 0; /* math.huge: unpaced. */
    } else {
      ir_lua_opt_number(L, 2, "rate", 0, 1e9, false, &rate);
    }
    lua_pop(L, 1); /* */
    ir_lua_opt_number(L, 2, "retries", 0, 1000, true, &retries);
    ir_lua_opt_number(L, 2, "backoff", 1, 100, false, &backoff);
    ir_lua_opt_number(L, 2, "limit", 1, 9007199254740992.0, true, &limit);
    ir_lua_opt_number(L, 2, "window", 1, 16777216, true, &window);
    ir_lua_opt_number(L, 2, "seed", 0, 9007199254740992.0, true, &seed);
    lua_getfield(L, 2, "order"); /* order */
    const char* order = lua_tostring(L, -1);
    if (!lua_isnil(L, -1) && (order == NULL || (strcmp(order, "sequential") != 0 &&
                                                strcmp(order, "random") != 0))) {
      luaL_argerror(L, 2, "option 'order' must be \"sequential\" or \"random\"");
    }
    c->random = order != NULL && strcmp(order, "random") == 0;
    lua_pop(L, 1);                       /* */
    lua_getfield(L, 2, "every_attempt"); /* every */
    c->every_attempt = lua_toboolean(L, -1);
    lua_pop(L, 1); /* */
    ir__sweep_shard_read(L, c, seed >= 0);
  }
  c->count = (uint32_t)count;
  c->interval_ms = interval;
  c->rate = rate;
  c->retries = (uint32_t)retries;
  c->backoff = backoff;
  c->limit = (uint64_t)limit;
  c->window = (uint32_t)window;
  if (seed < 0) {
    if (getrandom(&c->seed, sizeof(c->seed), GRND_NONBLOCK) < 0) {
      c->seed = uv_hrtime();
    }
  } else {
    c->seed = (uint64_t)seed;
  }
  return family;
}

/* opts.workers: a number of threads (1 .. IR_WORKERS_MAX), or "auto" for
 * the CPUs this process may run on. 1 (the default) runs the schedule on the
 * script's own loop, as before workers existed. */
static uint32_t ir__sweep_workers_read(lua_State* L) {
  if (lua_isnoneornil(L, 2)) {
    return 1;
  }
  uint32_t n = 1;
  lua_getfield(L, 2, "workers"); /* workers */
  if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "auto") == 0) {
    n = ir_workers_cpus();
    n = n > IR_WORKERS_MAX ? IR_WORKERS_MAX : n;
  } else if (!lua_isnil(L, -1)) {
    double value = 1;
    ir_lua_opt_number(L, 2, "workers", 1, IR_WORKERS_MAX, true, &value);
    n = (uint32_t)value;
  }
  lua_pop(L, 1); /* */
  return n;
}

/* The test hook of sweep_workers.h: ICMPRUN_TEST_WORKER_FAIL="K:M" makes
 * worker K's sends fail (EIO) once it has sent M probes. */
static void ir__sweep_fail_hook(ir_workers_config_t* c) {
  const char* hook = getenv("ICMPRUN_TEST_WORKER_FAIL");
  unsigned worker = 0;
  unsigned long long after = 0;
  if (hook != NULL && sscanf(hook, "%u:%llu", &worker, &after) == 2) {
    c->fail_worker = worker;
    c->fail_after = after;
  }
}

static void ir__on_workers_wake(void* ctx) {
  ir__sweep_wake(ctx);
}

/* Starts the worker threads of a sweep of n > 1 workers. */
static int ir__sweep_start_workers(ir_lua_sweep_t* s, const ir_sweep_config_t* config,
                                   uint32_t n) {
  ir_workers_config_t wc;
  memset(&wc, 0, sizeof(wc));
  wc.sweep = *config;
  wc.workers = n;
  wc.counters_sum = &s->rt->worker_counters;
  wc.running = &s->rt->workers_running;
  ir_engine_get_config(s->rt->engine, &wc.engine);
  ir__sweep_fail_hook(&wc);
  return ir_workers_new(&s->rt->loop, &wc, ir__on_workers_wake, s, &s->workers);
}

/* Checks every item of a targets table now, so that a malformed one or an
 * expansion over the limit fails at the call, before anything is sent. */
static void ir__check_target_table(lua_State* L, uint64_t limit) {
  lua_Integer n = luaL_len(L, 1);
  if (n == 0) {
    luaL_argerror(L, 1, "the targets table is empty");
  }
  uint64_t total = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i); /* text */
    if (lua_type(L, -1) != LUA_TSTRING) {
      luaL_argerror(L, 1,
                    lua_pushfstring(L, "targets[%I] is a %s, not a string", i,
                                    luaL_typename(L, -1)));
    }
    const char* text = lua_tostring(L, -1);
    ir_block_t block;
    char why[256];
    ir_target_kind_t kind = ir_target_parse(text, &block, why, sizeof(why));
    if (kind == IR_TARGET_INVALID) {
      luaL_argerror(L, 1, why);
    }
    if (kind == IR_TARGET_BLOCK) {
      total = block.count > UINT64_MAX - total ? UINT64_MAX : total + block.count;
      if (total > limit) {
        luaL_argerror(
            L, 1,
            lua_pushfstring(L,
                            "target '%s' takes the sweep over its limit of %I "
                            "addresses (raise opts.limit)",
                            text, (lua_Integer)limit));
      }
    }
    lua_pop(L, 1); /* */
  }
}

/* Checks a single target string now, as a table's items are. */
static void ir__check_target_string(lua_State* L, uint64_t limit) {
  ir_block_t block;
  char why[256];
  ir_target_kind_t kind = ir_target_parse(lua_tostring(L, 1), &block, why, sizeof(why));
  if (kind == IR_TARGET_INVALID) {
    luaL_argerror(L, 1, why);
  }
  if (kind == IR_TARGET_BLOCK && block.count > limit) {
    luaL_argerror(L, 1,
                  lua_pushfstring(L,
                                  "target '%s' expands to more than the limit of %I "
                                  "addresses (raise opts.limit)",
                                  lua_tostring(L, 1), (lua_Integer)limit));
  }
}

/* icmprun.sweep(targets, opts) -> iterator, sweep, nil, sweep (to-be-closed) */
static int ir__l_sweep(lua_State* L) {
  ir_lua_runtime_t* rt = lua_touserdata(L, lua_upvalueindex(1));
  int type = lua_type(L, 1);
  luaL_argexpected(L,
                   type == LUA_TSTRING || type == LUA_TTABLE || type == LUA_TFUNCTION,
                   1, "string, table or function");
  ir_sweep_config_t config;
  int family = ir__sweep_options_read(L, &config);
  uint32_t workers = ir__sweep_workers_read(L);
  if (type == LUA_TTABLE) {
    ir__check_target_table(L, config.limit);
  } else if (type == LUA_TSTRING) {
    ir__check_target_string(L, config.limit);
  }
  if (rt->engine == NULL) {
    return luaL_error(L, "sweep: the icmprun runtime has shut down");
  }

  lua_pushvalue(L, lua_upvalueindex(2)); /* next */
  /* Uservalue 1: the targets; 2: the text of the last target handed out. */
  ir_sweep_ref_t* ref = lua_newuserdatauv(L, sizeof(*ref), 2); /* next ud */
  ref->sweep = NULL;
  luaL_setmetatable(L, IR_SWEEP_META);
  lua_pushvalue(L, 1);         /* next ud targets */
  lua_setiuservalue(L, -2, 1); /* next ud */
  ir_lua_sweep_t* s = calloc(1, sizeof(*s));
  if (s == NULL) {
    return luaL_error(L, "sweep: out of memory");
  }
  s->rt = rt;
  s->family = family;
  s->retries = config.retries;
  s->limit = config.limit;
  s->next_index = 1;
  if (workers > 1) {
    int err = ir__sweep_start_workers(s, &config, workers);
    if (err != 0) {
      free(s); /* The workers' object frees itself (it has no ctx to call). */
      return luaL_error(L, "sweep: cannot start %d workers: %s", (int)workers,
                        uv_strerror(err));
    }
  } else if (ir_sweep_new(&config, &ir__sweep_ops, s, &s->core) != 0) {
    free(s);
    return luaL_error(L, "sweep: out of memory");
  }
  s->refs = s->workers != NULL ? 3 : 2; /* The userdata, the handles, workers. */
  ir_lua_owner_link(rt, &s->owner, ir__sweep_shutdown);
  uv_timer_init(&rt->loop, &s->timer);
  s->timer.data = s;
  uv_idle_init(&rt->loop, &s->refill);
  s->refill.data = s;
  s->handles_open = true;
  ref->sweep = s;
  lua_pushnil(L);       /* next ud nil */
  lua_pushvalue(L, -2); /* next ud nil ud */
  return 4;
}

void ir_lua_register_sweep(lua_State* L, int module_index) {
  module_index = lua_absindex(L, module_index);
  if (luaL_newmetatable(L, IR_SWEEP_META)) { /* mt */
    lua_pushcfunction(L, ir__l_sweep_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, ir__l_sweep_close);
    lua_setfield(L, -2, "__gc");
    lua_newtable(L); /* mt methods */
    lua_pushcfunction(L, ir__l_sweep_close);
    lua_setfield(L, -2, "close");
    lua_pushcfunction(L, ir__l_sweep_stop);
    lua_setfield(L, -2, "stop");
    ir_lua_push_keys(L);                      /* mt methods keys */
    lua_pushvalue(L, -3);                     /* mt methods keys mt */
    lua_pushcclosure(L, ir__l_sweep_next, 2); /* mt methods next */
    lua_setfield(L, -2, "next");
    lua_setfield(L, -2, "__index"); /* mt */
  }
  lua_pop(L, 1);                                      /* */
  lua_getfield(L, LUA_REGISTRYINDEX, IR_RUNTIME_KEY); /* rt */
  ir_lua_push_keys(L);                                /* rt keys */
  luaL_getmetatable(L, IR_SWEEP_META);                /* rt keys mt */
  lua_pushcclosure(L, ir__l_sweep_next, 2);           /* rt next */
  lua_pushcclosure(L, ir__l_sweep, 2);                /* sweep */
  lua_setfield(L, module_index, "sweep");             /* */
}
