/* SPDX-License-Identifier: MIT */
/* A sweep's schedule: which probe goes out when, and what comes back. */
#ifndef ICMPRUN_SWEEP_H
#define ICMPRUN_SWEEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "targets.h"

/* A sweep probes the addresses of its targets (blocks, added as they are
 * needed), `count` times each, one `interval` apart, paced by a token bucket
 * (`rate` probes a second, bursts of at most min(64, rate / 100)), with at
 * most `window` probes in flight, a timeout resent `retries` times with a
 * timeout `backoff` times longer each time, and only the addresses of its
 * shard. Results wait in a ring until the caller takes them.
 *
 * It is pure policy: no Lua, no libuv handle, no clock of its own. The caller
 * gives it a clock and a way to send (ir_sweep_ops_t), calls ir_sweep_pump
 * when the sweep says (ir_sweep_next_t), and hands each probe's result back
 * with ir_sweep_probe_done. Tests drive it with a fake clock and sender. */
typedef struct ir_sweep_s ir_sweep_t;

#define IR_SWEEP_MAX_BURST 64.0
/* Probes a sweep leaves queued in the engine at most by default: two of the
 * engine's batches. What is queued is not in flight yet; the rest can wait
 * in the sweep, as addresses not yet drawn. */
#define IR_SWEEP_QUEUE_MAX 512

typedef struct ir_sweep_config_s {
  ir_probe_spec_t probe; /* For every probe but its address; group is set. */
  uint32_t count;        /* Probes per address, >= 1. */
  double interval_ms;    /* Between the turns of one address's probes. */
  double rate;           /* Probes a second; 0 for unpaced. */
  uint32_t retries;      /* Resends after a timeout. */
  double backoff;        /* Each resend's timeout over the one before, >= 1. */
  bool every_attempt;    /* A result for every attempt, not only the last. */
  uint32_t window;       /* Probes in flight at most, >= 1. */
  uint32_t queue_max;    /* Probes left queued in the engine at most; 0: 512. */
  bool random;           /* Walk each target in a permutation of seed. */
  uint64_t seed;
  uint64_t limit;       /* Addresses in all targets together at most. */
  uint32_t shard_index; /* 0-based: this sweep is shard index + 1 ... */
  uint32_t shard_count; /* ... of shard_count (>= 1). */
  /* Within its shard, this sweep takes every worker_count-th address counted
   * across all its targets, from the worker_index-th (0-based): sweeps that
   * are given the same targets split them exactly, even targets of one
   * address each, which a shard of each walk would all leave to shard 1. */
  uint32_t worker_index;
  uint32_t worker_count; /* >= 1; 0 is taken as 1. */
  /* Optional (may be NULL): workers that share this out as they go instead
   * of taking every worker_count-th address (see ir_sweep_share_t). */
  struct ir_sweep_share_s* share;
} ir_sweep_config_t;

/* Addresses shared out among workers as they go, so that a worker whose
 * core is busy with other work does not leave the others idle at the end
 * while it finishes a fixed share. The positions of the shard (counted as
 * for worker_index) are cut into chunks of `chunk`; worker i starts with
 * chunk i, and whenever a worker has walked past its chunk it claims the
 * next one nobody has. Each chunk is one worker's, so the workers still
 * probe every address exactly once between them.
 *
 * A worker that is abandoned claims nothing more: the others take the
 * rest, and only the addresses of the chunk it holds end as its errors.
 * The last worker to be abandoned (live reaches 0) claims every chunk left,
 * so that those addresses end as errors too, never as a gap. Shared by the
 * workers' sweeps (any thread), owned by whoever made them; set next_chunk
 * to the number of workers and live to that number before the first pump. */
typedef struct ir_sweep_share_s {
  _Atomic uint64_t next_chunk; /* The first chunk nobody has claimed. */
  _Atomic uint32_t live;       /* Workers not abandoned. */
  uint32_t chunk;              /* Positions in a chunk, >= 1. */
} ir_sweep_share_t;

/* What a sweep needs from the world. ctx is the caller's pointer. */
typedef struct ir_sweep_ops_s {
  /* A monotonic clock in nanoseconds. */
  uint64_t (*now)(void* ctx);
  /* Hands one probe over (as ir_engine_probe does). Returns 0, and later
   * ir_sweep_probe_done gets its one result with result->data == data; or a
   * negative errno, and then it never does. */
  int (*send)(void* ctx, const ir_probe_spec_t* spec, void* data);
  /* Probes handed over and not yet on the wire (ir_engine_queued). */
  uint32_t (*queued)(void* ctx);
  /* Ends every probe handed over with spec.group == group at once, each
   * through ir_sweep_probe_done before it returns (ir_engine_cancel_group). */
  void (*cancel)(void* ctx, const void* group);
  /* There are results to take, or targets to add, or the sweep has ended:
   * whoever waits on it should look. Never called from ir_sweep_new. */
  void (*wake)(void* ctx);
  /* Optional (may be NULL): a target added with data is done with, once its
   * walk and the last result that refers to it are gone. */
  void (*release)(void* ctx, void* data);
} ir_sweep_ops_t;

/* One target's text and addresses. Results keep their source alive. */
typedef struct ir_sweep_source_s {
  char* text;
  size_t text_len;
  uint64_t serial; /* Unique within its sweep, from 1. */
  int refs;
  ir_block_t block;
  ir_walk_t walk;
  void* data; /* The caller's, from ir_sweep_add_target_data. */
  ir_sweep_t* sweep;
} ir_sweep_source_t;

/* A result waiting to be taken. */
typedef struct ir_sweep_item_s {
  ir_result_t result;
  const ir_sweep_source_t* source;
  uint32_t n;       /* Which of the address's probes, from 1. */
  uint32_t attempt; /* 0 for the first send. */
  /* Not 0: the source is a target that could not be resolved (this is the
   * caller's error code), and the item has no result, address or probe. */
  int failure;
} ir_sweep_item_t;

/* When the caller must pump again: at the monotonic time at_ns (0: no time
 * is due), and/or on the next turn of its loop (the engine's queue was full). */
typedef struct ir_sweep_next_s {
  uint64_t at_ns;
  bool soon;
} ir_sweep_next_t;

/* Creates a sweep, its token bucket full and its turns counted from now.
 * Returns 0 or -ENOMEM; *out is set only on success. */
int ir_sweep_new(const ir_sweep_config_t* config, const ir_sweep_ops_t* ops, void* ctx,
                 ir_sweep_t** out);
/* Frees a sweep with nothing in flight (close it first). */
void ir_sweep_free(ir_sweep_t* sweep);

/* ---- Targets: added by the caller as the sweep needs them ---- */

/* Whether the sweep wants another target: it keeps one being walked and one
 * ready behind it, so that turns keep their order across targets. */
bool ir_sweep_wants_target(const ir_sweep_t* sweep);
/* Adds a block of addresses as the next target. Returns 0, -E2BIG when it
 * takes the sweep over its limit, -EBUSY when the sweep did not want one
 * (ir_sweep_wants_target), or -ENOMEM; nothing is added then. */
int ir_sweep_add_target(ir_sweep_t* sweep, const char* text, const ir_block_t* block);
/* As ir_sweep_add_target, with the caller's data kept in the source (results
 * point at it) until ops->release is given it back. */
int ir_sweep_add_target_data(ir_sweep_t* sweep, const char* text,
                             const ir_block_t* block, void* data);
/* Adds a result for a target that gives no addresses (a name that does not
 * resolve): failure is the caller's nonzero code. Returns 0 or -ENOMEM. */
int ir_sweep_add_failure(ir_sweep_t* sweep, const char* text, int failure);
/* No more targets will be added. */
void ir_sweep_targets_done(ir_sweep_t* sweep);

/* ---- Sending ---- */

/* Sends whatever pacing, the window and the turns allow now: resends first,
 * then addresses whose next probe is due, then new addresses, each in the
 * order of its turn. Says in *next when to call again. Never reentrant: a
 * call from inside ops does nothing. */
void ir_sweep_pump(ir_sweep_t* sweep, ir_sweep_next_t* next);
/* One probe's result (result->data is the data given to ops->send): queued
 * as a result, resent, or dropped after close. Returns the sweep's ctx. */
void* ir_sweep_probe_done(const ir_result_t* result);

/* ---- Results ---- */

/* The oldest result, or NULL when there is none. */
const ir_sweep_item_t* ir_sweep_peek(const ir_sweep_t* sweep);
/* Drops the oldest result (after the caller has taken what it needs). */
void ir_sweep_pop(ir_sweep_t* sweep);
uint32_t ir_sweep_results(const ir_sweep_t* sweep);

/* ---- The end ---- */

/* Nothing more is sent: the probes handed over are cancelled (their results
 * still come, as ERROR -ECANCELED), and probes that wait for a resend end
 * as the timeouts they were. The results known are still handed out. */
void ir_sweep_stop(ir_sweep_t* sweep);
/* Gives up sending for good, as a worker whose sockets failed must, yet
 * still ends every probe the sweep owes with exactly one result: the probes
 * in flight are cancelled (ERROR -ECANCELED), and every other probe of this
 * sweep's addresses, in the targets added so far and those still to be added,
 * ends as ERROR with err (a negative errno) without being sent, including
 * the one whose send failed. ir_sweep_pump then makes those results, at most
 * queue_max a call, instead of sending. Clears ir_sweep_failure. Does nothing
 * once the sweep was stopped or closed (nothing more is owed then). */
void ir_sweep_abandon(ir_sweep_t* sweep, int err);
/* As stop, and nothing more is handed out: results are dropped. */
void ir_sweep_close(ir_sweep_t* sweep);
/* All targets added and walked, nothing in flight or waiting, no result left. */
bool ir_sweep_finished(const ir_sweep_t* sweep);
/* Probes handed over and not yet done. */
uint32_t ir_sweep_in_flight(const ir_sweep_t* sweep);
/* Why the sweep failed, or 0: a negative errno from ops->send (*family is
 * the probe's AF_INET or AF_INET6, for the engine's socket error) or -ENOMEM.
 * A failed sweep sends nothing more. */
int ir_sweep_failure(const ir_sweep_t* sweep, int* family);

#endif
