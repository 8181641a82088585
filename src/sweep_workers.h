/* SPDX-License-Identifier: MIT */
/* A sweep split over worker threads, each with its own loop, engine and schedule. */
#ifndef ICMPRUN_SWEEP_WORKERS_H
#define ICMPRUN_SWEEP_WORKERS_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "engine.h"
#include "sweep.h"
#include "targets.h"

/* One sweep run by `workers` threads. Each thread has its own libuv loop,
 * its own engine (so its own two ICMP sockets: the kernel spreads their
 * work over the cores) and its own schedule (sweep.c) configured as worker
 * i of n: the workers are given the same targets in the same order and
 * share the addresses out in chunks as they go (ir_sweep_share_t: worker i
 * starts with chunk i, then each claims the next free chunk when it is done
 * with its own), so that together they probe every address of the sweep
 * exactly once, and a worker whose core is busy with other work takes fewer.
 * The rate and the window are the sweep's totals, split evenly.
 *
 * The caller's thread (the one that owns `loop`) adds the targets, already
 * parsed and resolved, and takes the results: each worker moves its results
 * into a ring of its own (at most `ring` of them, a mutex per ring) and
 * wakes the caller's loop with a uv_async_t; the caller takes them in
 * batches. A worker whose ring is full sends nothing more until the caller
 * has taken some: memory stays bounded by ring + window per worker.
 *
 * A worker whose engine cannot be made, or whose sends fail, gives up
 * sending (ir_sweep_abandon): each probe it still owes (in flight, or of
 * the chunk it holds) comes back as an error result, and the others take
 * the rest; when every worker has given up, the last one ends every
 * address left as an error: never a gap. Every function here but the worker threads'
 * own runs on the caller's thread. */
typedef struct ir_workers_s ir_workers_t;

#define IR_WORKERS_MAX 256
#define IR_WORKERS_RING 4096

typedef struct ir_workers_config_s {
  ir_sweep_config_t sweep;   /* The whole sweep's: rate and window are totals. */
  ir_engine_config_t engine; /* For each worker's engine. */
  uint32_t workers;          /* 1..IR_WORKERS_MAX. */
  uint32_t ring;             /* Results a worker holds for the caller; 0: 4096. */
  /* Worker counters (engine counters of every worker) are added into this,
   * on the caller's thread, as they come (see ir_workers_counters). */
  ir_counters_t* counters_sum;
  /* Worker threads running: raised as they start, lowered (after their last
   * counters were added) as they are joined, on the caller's thread. */
  uint32_t* running;
  /* A test hook: worker fail_worker (1-based; 0: none) has every send fail
   * with -EIO once it has sent fail_after probes, as a socket that broke. */
  uint32_t fail_worker;
  uint64_t fail_after;
} ir_workers_config_t;

/* A result taken from a worker. item.source is the target's text; worker
 * is 1-based, 0 for a target name that did not resolve. */
typedef struct ir_workers_item_s {
  ir_sweep_item_t item;
  uint32_t worker;
} ir_workers_item_t;

/* Starts the workers. wake(ctx) is called on loop's thread whenever results
 * came, a worker wants targets, or a worker ended. Returns 0 or a negative
 * errno (no thread is left running then); *out is set only on success. */
int ir_workers_new(uv_loop_t* loop, const ir_workers_config_t* config,
                   void (*wake)(void* ctx), void* ctx, ir_workers_t** out);

/* Whether more targets are wanted now (a few are kept ready ahead of the
 * slowest worker). */
bool ir_workers_wants_target(const ir_workers_t* workers);
/* Adds a block as the next target of every worker. Returns 0, -E2BIG over
 * the sweep's limit, or -ENOMEM. */
int ir_workers_add_target(ir_workers_t* workers, const char* text,
                          const ir_block_t* block);
/* Adds the result of a target that gives no addresses (as ir_sweep_add_failure). */
int ir_workers_add_failure(ir_workers_t* workers, const char* text, int failure);
void ir_workers_targets_done(ir_workers_t* workers);

/* The oldest result taken, or NULL when none has come yet. */
const ir_workers_item_t* ir_workers_peek(ir_workers_t* workers);
void ir_workers_pop(ir_workers_t* workers);

/* As ir_sweep_stop, in every worker. */
void ir_workers_stop(ir_workers_t* workers);
/* Every worker has ended and every result was taken. */
bool ir_workers_finished(ir_workers_t* workers);
/* A worker that could not run at all (out of memory), or whose family's
 * socket cannot be opened (a setting of this host that every worker and a
 * sweep without workers meet alike, raised as one worker raises it): its
 * negative errno, *worker its number, and why the engine's reason for the
 * socket (empty if none); 0 when no worker failed so. Its addresses still
 * give their error results first. */
int ir_workers_failure(const ir_workers_t* workers, uint32_t* worker, char* why,
                       size_t why_len);
/* Adds what the workers' engines counted since the last call into
 * config.counters_sum. */
void ir_workers_counters(ir_workers_t* workers);

/* As ir_sweep_close, in every worker: results are dropped. The threads end
 * on their own; once all have, the object is freed on the loop's thread and
 * closed(ctx) is called. The loop must run for that. */
void ir_workers_close(ir_workers_t* workers, void (*closed)(void* ctx));

/* After ir_workers_close, for a loop that is shutting down (whose handles
 * are about to be closed for good): waits here until every thread has ended
 * (a closed worker ends at once), then closes as ir_workers_close would. */
void ir_workers_wait(ir_workers_t* workers);

/* The CPUs this process may run on (sched_getaffinity), at least 1. */
uint32_t ir_workers_cpus(void);

#endif
