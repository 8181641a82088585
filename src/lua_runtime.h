/* SPDX-License-Identifier: MIT */
/* The Lua binding's runtime: one per lua_State, shared by its C files. */
#ifndef ICMPRUN_LUA_RUNTIME_H
#define ICMPRUN_LUA_RUNTIME_H

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "common.h"
#include "engine.h"

typedef struct ir_lua_runtime_s ir_lua_runtime_t;
typedef struct ir_lua_task_s ir_lua_task_t;
typedef struct ir_dup_counts_s ir_dup_counts_t;

/* The common header of every binding object that owns libuv handles or
 * requests (a sleep, a sweep, a name lookup, a signal watcher). The object
 * links itself into its runtime's list when it opens its first handle and
 * unlinks itself when it is freed. At shutdown the runtime calls each linked
 * object's `shutdown`, which closes that object's own handles and cancels
 * its own requests; the runtime never guesses an owner from a handle's type
 * (luv's src/luv.c keeps one header per handle for the same reason). */
typedef struct ir_lua_owner_s ir_lua_owner_t;
struct ir_lua_owner_s {
  ir_lua_owner_t* prev;
  ir_lua_owner_t* next;
  /* Closes the object's handles and cancels its requests; it is already
   * unlinked when this runs. Its memory is freed by its close callbacks. */
  void (*shutdown)(ir_lua_owner_t* self);
};

/* What a suspended task, or a blocking call, is waiting for, and what it gets
 * when the wait ends. Allocated by the primitive that waits; freed when both
 * the operation behind it has finished with it (`op_done`) and the waiting
 * side has taken its values or given up (`consumed`), whichever comes last. */
typedef enum ir_wait_kind_e {
  IR_WAIT_PROBE,   /* ping: an engine result, after an optional name lookup. */
  IR_WAIT_RESOLVE, /* resolve: a name lookup only. */
  IR_WAIT_SWEEP,   /* sweep: results, or a need for more targets. */
  IR_WAIT_SLEEP,   /* sleep: a one-shot timer. */
  IR_WAIT_JOIN,    /* join: another task's end, or a timeout. */
  IR_WAIT_FIRST,   /* first: the end of the first of several tasks. */
  IR_WAIT_AWAIT    /* await: a call of the resume function it handed out. */
} ir_wait_kind_t;

typedef struct ir_lua_waiter_s ir_lua_waiter_t;

/* One waiter's place in the list of joiners of one task it waits for (a join
 * has one, a wait for the first of n tasks has n). Owned by the waiter. */
typedef struct ir_join_link_s ir_join_link_t;
struct ir_join_link_s {
  ir_join_link_t* next;
  ir_join_link_t** pprev; /* NULL while not in a list. */
  ir_lua_waiter_t* waiter;
  ir_lua_task_t* task; /* The task waited for. */
};

struct ir_lua_waiter_s {
  ir_lua_runtime_t* rt;
  /* NULL for a blocking call outside any task, and once the task was
   * abandoned (detached): a detached waiter never reaches its task again. */
  ir_lua_task_t* task;
  /* Linked while its timer (sleep, join's timeout) is open or a name lookup
   * is in flight, so that shutdown closes the one and cancels the other. */
  ir_lua_owner_t owner;
  ir_wait_kind_t kind;
  bool done; /* The values are ready. */
  bool op_done;
  bool consumed;
  /* IR_WAIT_PROBE and IR_WAIT_RESOLVE */
  ir_probe_spec_t spec;
  char target[256]; /* The name being resolved, for messages. */
  ir_result_t result;
  char failure[384]; /* Non-empty: the call returns nil, failure, code. */
  int failure_code;  /* Negative errno or libuv error named by that code. */
  uv_getaddrinfo_t resolve;
  /* IR_WAIT_SLEEP, and IR_WAIT_JOIN with a timeout */
  uv_timer_t timer;
  uint64_t due_ns; /* uv_hrtime() at which the sleep or the timeout ends. */
  /* IR_WAIT_JOIN and IR_WAIT_FIRST: links in the joined tasks' lists, one
   * (`one_link`) or an array of nlinks; all leave their lists at once when
   * the wait is settled: a task ended, the timeout passed, or it was given up. */
  ir_join_link_t one_link;
  ir_join_link_t* links;
  int nlinks;
  bool settled;
  bool timed_out;
  ir_lua_task_t* joined; /* The task that ended (NULL on a timeout). */
  int winner;            /* Its index in links, from 0. */
  /* IR_WAIT_AWAIT: the resume function's pointer to this waiter, cleared when
   * the waiter is freed, so that a late resume finds nothing to wake. */
  ir_lua_waiter_t** backref;
};

typedef enum ir_task_state_e {
  IR_TASK_READY,
  IR_TASK_RUNNING,
  IR_TASK_WAITING,
  IR_TASK_DONE
} ir_task_state_t;

/* A coroutine run by the scheduler. It is the userdata of the handle that
 * spawn returns, anchored in the registry while it has not finished, so that
 * it outlives every waiter that points at it. Its uservalue is its thread. */
struct ir_lua_task_s {
  lua_State* co;
  ir_task_state_t state;
  int start_args;          /* Arguments on co's stack for the first resume. */
  int nresults;            /* Values left on co's stack when done. */
  bool cancelled;          /* Ended by task:cancel(): joins get ECANCELED. */
  ir_lua_waiter_t* waiter; /* What it waits for, while WAITING. */
  ir_join_link_t* joiners; /* Waits of tasks that join this one. */
  ir_lua_task_t* next_ready;
  ir_lua_runtime_t* rt;
};

/* Owned by a userdata in the registry; its __gc closes the engine and the loop. */
struct ir_lua_runtime_s {
  lua_State* L;       /* The main thread: never used to run scripts. */
  lua_State* scratch; /* A thread for the scheduler's own stack work. */
  uv_loop_t loop;
  ir_engine_t* engine;
  uv_idle_t resumer; /* Resumes ready tasks; active while any are. */
  ir_lua_task_t* ready_head;
  ir_lua_task_t* ready_tail;
  ir_lua_task_t* batch_head; /* The ready tasks that the resumer runs now. */
  int live_tasks;            /* Spawned and not yet finished. */
  int running_depth;         /* > 0 while the loop runs: blocking calls refused. */
  bool failed;               /* A task raised an error: stop everything. */
  int error_ref;             /* Registry ref of that error's message. */
  bool closing;
  ir_lua_owner_t owners; /* Sentinel of the list of live binding objects. */
  /* What the engines of sweeps' worker threads counted, summed as their
   * results come (lua_sweep.c); icmprun.counters() adds it to the engine's. */
  ir_counters_t worker_counters;
  uint32_t workers_running; /* Their threads that have not ended yet. */
  /* The engine's duplicates per sender (lua_duplicates.c); NULL until one. */
  ir_dup_counts_t* duplicates;
  /* The thread that renders scrapes (lua_render.c), and its link in the
   * owner list; NULL until a render needs it. */
  struct ir_background_s* background;
  ir_lua_owner_t background_owner;
  /* The scheduling slice the loop's thread was granted (loop_slice.h), or
   * 0 when it keeps the kernel's. */
  uint64_t loop_slice_ns;
};

/* lua_tasks.c: the owner list. Linking and unlinking are O(1); unlinking an
 * object that is not linked does nothing. */
void ir_lua_owner_link(ir_lua_runtime_t* rt, ir_lua_owner_t* owner,
                       void (*shutdown)(ir_lua_owner_t* self));
void ir_lua_owner_unlink(ir_lua_owner_t* owner);

/* The waiter that an owner header belongs to (a sleep, a name lookup). */
static inline ir_lua_waiter_t* ir_lua_waiter_of_owner(ir_lua_owner_t* owner) {
  return IR_CONTAINER_OF(owner, ir_lua_waiter_t, owner);
}

/* lua_tasks.c */
ir_lua_runtime_t* ir_lua_runtime(lua_State* L);
int ir_lua_runtime_init(lua_State* L);
ir_lua_task_t* ir_lua_current_task(lua_State* L);
ir_lua_waiter_t* ir_lua_waiter_new(ir_lua_runtime_t* rt, ir_wait_kind_t kind,
                                   ir_lua_task_t* task);
void ir_lua_waiter_op_done(ir_lua_waiter_t* waiter);
void ir_lua_wake(ir_lua_waiter_t* waiter);
int ir_lua_wait(lua_State* L, ir_lua_waiter_t* waiter);
/* Like ir_lua_wait, but a task resumes in k (with the wait's values on top of
 * its stack) instead of returning to the caller; outside tasks it blocks and
 * returns the number of values pushed, and the caller goes on. */
int ir_lua_wait_k(lua_State* L, ir_lua_waiter_t* waiter, lua_KContext ctx,
                  lua_KFunction k);
/* The operation behind a waiter has ended: wake its task, and free the waiter
 * if nobody will take its values any more. */
void ir_lua_finish_wait(ir_lua_waiter_t* waiter);
void ir_lua_register_tasks(lua_State* L, int module_index);
/* Starts a sleep of the task until uv_hrtime() reaches due_ns: a waiter with
 * its own timer, linked as an owner. Returns NULL when out of memory. */
ir_lua_waiter_t* ir_lua_sleep_start(ir_lua_runtime_t* rt, ir_lua_task_t* task,
                                    uint64_t due_ns);
/* Ends a task that is ready or waiting (see task:cancel in lua_tasks.c).
 * Returns false for a finished task; raises for a running one, and with the
 * error of a __close handler of the task if one raised. */
bool ir_lua_task_cancel(lua_State* L, ir_lua_task_t* task);
/* The task handle at index idx, or a raised argument error. */
ir_lua_task_t* ir_lua_check_task(lua_State* L, int idx);

/* lua_await.c: icmprun.await and icmprun.every. */
void ir_lua_register_await(lua_State* L, int module_index);

/* lua_probe.c: pushes a waiter's values; returns how many. */
int ir_lua_push_probe_values(lua_State* L, ir_lua_waiter_t* waiter);
/* lua_probe.c: the task of a ping or resolve wait was cancelled (the waiter
 * is consumed already): cancels its name lookup or its engine probe. The
 * waiter may be freed by this call. */
void ir_lua_probe_cancel(ir_lua_waiter_t* waiter);
void ir_lua_register_probe(lua_State* L, int module_index);

/* lua_txstamp.c: adds the send timestamp fields to icmprun.info() and
 * icmprun.counters() (and its deprecated name icmprun.stats()); called after
 * ir_lua_register_probe. */
void ir_lua_register_txstamp(lua_State* L, int module_index);

/* lua_options.c: option tables. Each raises an argument error naming the
 * option on a wrong type, a value out of range or an unknown name. */
void ir_lua_opt_number(lua_State* L, int opts, const char* name, double min, double max,
                       bool integer, double* value);
/* Reads opts.name as a duration in milliseconds: a number (milliseconds), or
 * a string with a unit ("500ms", "2s", "1.5m", "250us"; bare: milliseconds),
 * within [min, max] milliseconds; absent keeps *ms. */
void ir_lua_opt_duration(lua_State* L, int opts, const char* name, double min,
                         double max, double* ms);
/* Reads argument arg as a duration in milliseconds, a number or a string
 * with a unit as for options ("500ms", "2s"); NaN for a string that is not
 * one, so that the caller's range check refuses it with its own message. */
lua_Number ir_lua_check_duration(lua_State* L, int arg);
void ir_lua_check_option_names(lua_State* L, int opts, const char* const* extra);
/* Fills spec (all but the address) from the probe options at index opts, or
 * defaults when absent, also allowing the names in extra (NULL-terminated, or
 * NULL). Returns the forced family: 0, 4 or 6. */
int ir_lua_probe_options(lua_State* L, int opts, ir_probe_spec_t* spec,
                         const char* const* extra);

/* lua_tasks.c: may a waiting primitive run here? Returns the current task, or
 * NULL to block; raises in a coroutine that icmprun did not start. */
ir_lua_task_t* ir_lua_check_can_wait(lua_State* L, ir_lua_runtime_t* rt,
                                     const char* fname);

/* lua_result.c: result tables. Field names are interned once in a "keys"
 * table; pass its stack index (or an upvalue index) to these. */
enum {
  IR_KEY_STATUS = 1,
  IR_KEY_ADDR,
  IR_KEY_TARGET,
  IR_KEY_N,
  IR_KEY_SEQ,
  IR_KEY_FROM,
  IR_KEY_RTT,
  IR_KEY_BYTES,
  IR_KEY_TTL,
  IR_KEY_ICMP_TYPE,
  IR_KEY_ICMP_CODE,
  IR_KEY_ERR,
  IR_KEY_ATTEMPTS,
  IR_KEY_CODE,
  IR_KEY_CORRUPT_OFFSET,
  IR_KEY_TX_STAMP,
  IR_KEY_STATUS_BASE /* Status strings follow, indexed by ir_status_t. */
};
/* Pushes an address as text. */
void ir_lua_push_addr(lua_State* L, const ir_addr_t* addr);
/* Pushes the keys table. */
void ir_lua_push_keys(lua_State* L);
/* t[key] = value, with t on top of the stack. */
void ir_lua_set_integer(lua_State* L, int keys, int key, lua_Integer value);
/* Pushes a result table with ping's fields, sized for extra_fields more. */
void ir_lua_push_result(lua_State* L, int keys, const ir_result_t* r, int extra_fields);

/* Creates a task for the function and nargs arguments on top of L, moving
 * them to its thread; leaves the task's handle on L. */
ir_lua_task_t* ir_lua_spawn(lua_State* L, ir_lua_runtime_t* rt, int nargs);

/* lua_prober.c: icmprun.prober. */
void ir_lua_register_prober(lua_State* L, int module_index);
/* The counters of target `id` of the prober at stack index idx (raises if
 * it is not one), or NULL when it has no such target or is closed; *ncounts
 * is the length of their histogram's counts. */
const struct ir_prober_stats_s* ir_lua_prober_stats(lua_State* L, int idx,
                                                    lua_Integer id, int* ncounts);

/* lua_signal.c */
void ir_lua_register_signal(lua_State* L, int module_index);

/* lua_duplicates.c: icmprun.duplicates(), the count of duplicate replies per
 * sender; attach hooks it to rt's engine, free releases it at shutdown. */
void ir_lua_register_duplicates(lua_State* L, int module_index);
void ir_lua_duplicates_attach(ir_lua_runtime_t* rt);
void ir_lua_duplicates_free(ir_lua_runtime_t* rt);

/* lua_probe.c: starts resolving name on libuv's thread pool (the loop never
 * blocks), for family 4, 6 or 0 (either). Returns 0 or a libuv error. */
int ir_lua_getaddrinfo(uv_loop_t* loop, uv_getaddrinfo_t* req, uv_getaddrinfo_cb cb,
                       const char* name, int family);

/* lua_sweep.c */
void ir_lua_register_sweep(lua_State* L, int module_index);

/* lua_luv.c: makes `require "luv"` open luv on the runtime's loop. */
void ir_lua_register_luv(lua_State* L, ir_lua_runtime_t* rt);
/* lua_luv.c: runs the finalizers of luv handles that lua_close reached
 * while their close was pending; call once the loop has run dry. */
void ir_lua_luv_run_deferred_gc(lua_State* L);

/* Puts icmprun.httpd (libmicrohttpd on the loop, lua_httpd.c) in
 * package.preload. */
void ir_lua_register_httpd(lua_State* L);

/* Puts icmprun.render (the exporter's scrapes rendered in libuv's thread
 * pool, lua_render.c) in package.preload. */
void ir_lua_register_render(lua_State* L);

/* lua_alloc.c: the icmprun command's allocator for its Lua state. The pool
 * must outlive the state: free it only after lua_close. */
typedef struct ir_lua_pool_s ir_lua_pool_t;
ir_lua_pool_t* ir_lua_pool_new(void);
void ir_lua_pool_free(ir_lua_pool_t* pool);
void* ir_lua_pool_alloc(void* ud, void* ptr, size_t osize, size_t nsize);

/* lua_embed.c */
void ir_lua_register_embedded(lua_State* L);

/* lua_trace.c: the loader of the module icmprun.trace_sched (trace.lua's
 * round scheduler), put in package.preload by ir_lua_open. */
int ir_lua_open_trace_sched(lua_State* L);

/* lua_module.c: builds the module table (used by main and by the C module). */
int ir_lua_open(lua_State* L);
/* lua_module.c: opens /dev/null on each of fds 0, 1 and 2 that is closed, so
 * that no socket or loop descriptor takes a standard stream's number (print
 * would write into it, and libuv refuses to close fds 0-2). Returns 0, or a
 * negative errno when /dev/null cannot be opened. */
int ir_lua_open_std_fds(void);

/* Runs a function as a task and drives the loop until every task has
 * finished. The function is on L's stack with its nargs arguments above it;
 * all of them are moved to the task. Returns LUA_OK with the function's
 * results on L, or an error status with the message (and the traceback of
 * the task that failed) on top of L. */
int ir_lua_run_main(lua_State* L, int nargs);

#endif
