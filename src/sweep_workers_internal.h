/* SPDX-License-Identifier: MIT */
/* What the two sides of sweep_workers share: the caller's (sweep_workers.c)
 * and each worker thread's (sweep_worker.c). Not a public header. */
#ifndef ICMPRUN_SWEEP_WORKERS_INTERNAL_H
#define ICMPRUN_SWEEP_WORKERS_INTERNAL_H

#include <stdatomic.h>

#include "sweep_workers.h"

/* One target as every worker sees it. Its source is what results point at
 * (text, serial). References: the pool's list until every worker has taken
 * it, each worker's schedule while it walks it or holds a result of it
 * (given back through ops.release), and each result in a ring or a batch.
 * Whichever thread drops the last one frees it. */
typedef struct ir_wtarget_s {
  ir_sweep_source_t source;
  atomic_int refs;
} ir_wtarget_t;

/* One worker thread. The fields above `lock` are the thread's own once it
 * runs; those below it are shared, read and written under `lock`. */
typedef struct ir_worker_s {
  ir_workers_t* pool;
  uint32_t index; /* 0-based. */
  uv_thread_t thread;
  bool joined; /* The caller's thread's. */

  uv_loop_t loop;
  ir_engine_t* engine;
  ir_sweep_t* core;
  uv_async_t async; /* The caller asks: stop, close, or the ring has room. */
  uv_timer_t timer;
  uv_idle_t idle;
  bool in_turn;
  bool finishing;
  bool stopped_core;
  bool closed_core;
  uint64_t sends;

  uv_mutex_t lock;
  ir_workers_item_t* ring;
  uint32_t head;
  uint32_t len;
  bool blocked;   /* The ring was full: tell the worker when it has room. */
  bool stop_req;  /* ir_workers_stop */
  bool close_req; /* ir_workers_close */
  bool alive;     /* async is open: the caller may signal it. */
  bool done;      /* The thread has ended its loop: join it. */
  int fatal;      /* It could not run (-ENOMEM), or open its socket. */
  char fatal_why[256];
  ir_counters_t counters;
  ir_counters_t reported; /* The caller's thread's: counters already summed. */
} ir_worker_t;

struct ir_workers_s {
  ir_workers_config_t config;
  void (*wake)(void* ctx);
  void* ctx;
  uv_async_t async; /* A worker has results, wants targets, or ended. */
  uint32_t count;
  ir_worker_t* workers;
  ir_sweep_share_t share; /* How the workers share the addresses out. */

  /* Targets, under targets_lock: list[i] is target number base + i; worker
   * w takes them in order, its next one being cursor[w]. */
  uv_mutex_t targets_lock;
  ir_wtarget_t** list;
  uint32_t list_len;
  uint32_t list_cap;
  uint64_t base;
  uint64_t* cursor;
  bool targets_done;

  /* The caller's thread's. */
  uint64_t expanded;
  uint64_t serials;
  ir_workers_item_t* batch; /* Results taken from the rings. */
  uint32_t batch_len;
  uint32_t batch_pos;
  uint32_t ring_cap;
  ir_workers_item_t* failures; /* Names that did not resolve, not yet taken. */
  uint32_t failures_len;
  uint32_t failures_cap;
  uint32_t next_ring; /* Round robin over the rings. */
  bool closing;
  uint32_t joined;
  void (*closed)(void* ctx);
};

/* Drops a reference to a target, freeing it with the last (any thread). */
void ir__workers_target_release(ir_wtarget_t* t);

/* The body of worker thread arg (an ir_worker_t*), started by ir_workers_new. */
void ir__worker_main(void* arg);

#endif
