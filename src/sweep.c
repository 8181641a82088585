/* SPDX-License-Identifier: MIT */
/* A sweep's schedule: pacing, turns, retries, window, shards and results. */
#include "sweep.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "heap.h"

/* The longest timeout a resend may wait, as ping's own limit: a day. */
#define IR_SWEEP_MAX_TIMEOUT_MS 86400000.0

/* One address of a sweep: `count` probes spaced by `interval`. Lives until
 * the last of its probes has its final result. A free job keeps the free
 * list's link in its source field. */
typedef struct ir_job_s {
  ir_sweep_t* sweep;
  ir_sweep_source_t* source;
  ir_addr_t addr;
  ir_heap_node_t next_send; /* In sweep->schedule while waiting for its turn. */
  uint32_t next_n;          /* Number of the next probe to send, 1-based. */
  uint32_t live_shots;      /* Probes sent or waiting for a resend. */
} ir_job_t;

/* One probe of a job, through all its attempts: the data given to send. */
typedef struct ir_shot_s {
  ir_job_t* job;
  struct ir_shot_s* next_retry;
  uint32_t n;
  uint32_t attempt; /* 0 for the first send. */
  double timeout_ms;
} ir_shot_t;

/* Allocated by ir_sweep_new, freed by ir_sweep_free; owns its sources (with
 * the results and jobs that refer to them), jobs, shots and results. */
struct ir_sweep_s {
  ir_sweep_config_t config;
  ir_sweep_ops_t ops;
  void* ctx;
  bool closed;  /* Nothing more is sent or queued as a result. */
  bool stopped; /* Nothing more is sent. */
  bool pumping;
  bool exhausted; /* No more targets will be added. */
  int failure;    /* A negative errno: nothing more is sent. */
  int failure_family;
  int abandoned;          /* A negative errno: every probe owed ends as that error. */
  ir_shot_t* failed_shot; /* The shot whose send failed, until abandon or close. */

  /* Targets: the one being walked and the one behind it. */
  uint64_t expanded; /* Addresses in all targets so far, for the limit. */
  ir_sweep_source_t* current;
  ir_sweep_source_t* next_source;
  uint64_t sources_made;

  /* Sending. */
  ir_heap_t schedule;       /* Jobs whose next probe has a turn to wait for. */
  uint64_t schedule_ticket; /* Ties: equal turns keep their order. */
  ir_shot_t* retry_head;    /* Shots to resend, first come first served. */
  ir_shot_t* retry_tail;
  uint32_t in_flight; /* Shots handed over and not yet done. */
  double tokens;
  uint64_t tokens_at_ns;
  uint64_t start_ns;    /* New addresses' turns count from here. */
  uint64_t drawn;       /* Addresses drawn from the targets so far. */
  uint64_t sharded;     /* Addresses of this shard seen so far, for workers. */
  uint64_t claim_start; /* With config.share: the positions of the chunk */
  uint64_t claim_end;   /* this worker holds, [start, end). */
  bool sweeper;         /* The last worker abandoned: it claims what is left. */

  /* Results, a ring that grows as needed. */
  ir_sweep_item_t* results;
  uint32_t results_cap;
  uint32_t results_head;
  uint32_t results_len;

  /* Recycled jobs and shots: a sweep makes one of each per probe. */
  ir_job_t* free_jobs;
  ir_shot_t* free_shots;
};

/* ---- Ownership ------------------------------------------------------------ */

static void ir__source_release(ir_sweep_source_t* source) {
  if (source != NULL && --source->refs == 0) {
    ir_sweep_t* s = source->sweep;
    if (source->data != NULL && s->ops.release != NULL) {
      s->ops.release(s->ctx, source->data);
    }
    free(source->text);
    free(source);
  }
}

static ir_sweep_source_t* ir__source_new(ir_sweep_t* s, const char* text) {
  ir_sweep_source_t* source = calloc(1, sizeof(*source));
  char* copy = strdup(text);
  if (source == NULL || copy == NULL) {
    free(source);
    free(copy);
    return NULL;
  }
  source->text = copy;
  source->text_len = strlen(copy);
  source->serial = ++s->sources_made;
  source->refs = 1;
  source->sweep = s;
  return source;
}

static void ir__shot_free(ir_sweep_t* s, ir_shot_t* shot) {
  shot->next_retry = s->free_shots;
  s->free_shots = shot;
}

/* A job ends when all its probes have been sent and have their results. */
static void ir__job_release(ir_job_t* job) {
  ir_sweep_t* s = job->sweep;
  if (job->live_shots == 0 && job->next_send.index == IR_HEAP_NONE &&
      job->next_n > s->config.count) {
    ir__source_release(job->source);
    job->source = (ir_sweep_source_t*)s->free_jobs;
    s->free_jobs = job;
  }
}

static void ir__wake(ir_sweep_t* s) {
  s->ops.wake(s->ctx);
}

static void ir__fail(ir_sweep_t* s, int err, int family) {
  if (s->failure == 0) {
    s->failure = err;
    s->failure_family = family;
  }
  ir__wake(s);
}

int ir_sweep_new(const ir_sweep_config_t* config, const ir_sweep_ops_t* ops, void* ctx,
                 ir_sweep_t** out) {
  ir_sweep_t* s = calloc(1, sizeof(*s));
  if (s == NULL) {
    return -ENOMEM;
  }
  s->config = *config;
  if (s->config.queue_max == 0) {
    s->config.queue_max = IR_SWEEP_QUEUE_MAX;
  }
  if (s->config.shard_count == 0) {
    s->config.shard_count = 1;
  }
  if (s->config.worker_count == 0) {
    s->config.worker_count = 1;
  }
  if (s->config.share != NULL) {
    s->claim_start = (uint64_t)s->config.worker_index * s->config.share->chunk;
    s->claim_end = s->claim_start + s->config.share->chunk;
  }
  s->config.probe.group = s;
  s->ops = *ops;
  s->ctx = ctx;
  s->tokens = fmin(IR_SWEEP_MAX_BURST, fmax(1.0, s->config.rate / 100.0));
  s->tokens_at_ns = ops->now(ctx);
  s->start_ns = s->tokens_at_ns;
  ir_heap_init(&s->schedule);
  *out = s;
  return 0;
}

/* Drops every result, every job and shot still held, and the targets. */
static void ir__drop_all(ir_sweep_t* s);

void ir_sweep_free(ir_sweep_t* s) {
  if (s == NULL) {
    return;
  }
  s->closed = true;
  ir__drop_all(s);
  while (s->free_shots != NULL) {
    ir_shot_t* shot = s->free_shots;
    s->free_shots = shot->next_retry;
    free(shot);
  }
  while (s->free_jobs != NULL) {
    ir_job_t* job = s->free_jobs;
    s->free_jobs = (ir_job_t*)job->source;
    free(job);
  }
  ir_heap_free(&s->schedule);
  free(s->results);
  free(s);
}

/* ---- Targets --------------------------------------------------------------- */

bool ir_sweep_wants_target(const ir_sweep_t* s) {
  return (s->current == NULL || s->next_source == NULL) && !s->exhausted &&
         !s->stopped && !s->closed && s->failure == 0;
}

int ir_sweep_add_target(ir_sweep_t* s, const char* text, const ir_block_t* block) {
  return ir_sweep_add_target_data(s, text, block, NULL);
}

int ir_sweep_add_target_data(ir_sweep_t* s, const char* text, const ir_block_t* block,
                             void* data) {
  if (s->current != NULL && s->next_source != NULL) {
    return -EBUSY; /* More than the two it wants: the order would be lost. */
  }
  if (block->count > s->config.limit - s->expanded || s->expanded > s->config.limit) {
    return -E2BIG;
  }
  ir_sweep_source_t* source = ir__source_new(s, text);
  if (source == NULL) {
    return -ENOMEM;
  }
  source->block = *block;
  source->data = data;
  ir_walk_init(&source->walk, block->count, s->config.random,
               s->config.seed ^ s->expanded);
  s->expanded += block->count;
  if (s->current == NULL) {
    s->current = source;
  } else {
    s->next_source = source;
  }
  return 0;
}

void ir_sweep_targets_done(ir_sweep_t* s) {
  s->exhausted = true;
}

/* ---- Results --------------------------------------------------------------- */

/* A new slot at the end of the ring, or NULL when out of memory. */
static ir_sweep_item_t* ir__results_append(ir_sweep_t* s) {
  if (s->results_len == s->results_cap) {
    uint32_t cap = s->results_cap ? s->results_cap * 2 : 256;
    ir_sweep_item_t* grown = malloc(cap * sizeof(*grown));
    if (grown == NULL) {
      return NULL;
    }
    for (uint32_t i = 0; i < s->results_len; i++) {
      grown[i] = s->results[(s->results_head + i) % s->results_cap];
    }
    free(s->results);
    s->results = grown;
    s->results_cap = cap;
    s->results_head = 0;
  }
  s->results_len++;
  return &s->results[(s->results_head + s->results_len - 1) % s->results_cap];
}

static void ir__results_push_probe(ir_sweep_t* s, const ir_result_t* result,
                                   ir_job_t* job, uint32_t n, uint32_t attempt) {
  ir_sweep_item_t* slot = ir__results_append(s);
  if (slot == NULL) {
    ir__fail(s, -ENOMEM, 0);
    return;
  }
  slot->result = *result;
  slot->source = job->source;
  job->source->refs++;
  slot->n = n;
  slot->attempt = attempt;
  slot->failure = 0;
}

static void ir__results_push(ir_sweep_t* s, const ir_result_t* result,
                             const ir_shot_t* shot) {
  ir__results_push_probe(s, result, shot->job, shot->n, shot->attempt);
}

/* The result of a probe that an abandoned sweep will never send. */
static void ir__results_push_abandoned(ir_sweep_t* s, ir_job_t* job, uint32_t n,
                                       uint32_t attempt) {
  ir_result_t result;
  ir_result_unsent(&result, &job->addr, s->abandoned, NULL);
  ir__results_push_probe(s, &result, job, n, attempt);
}

int ir_sweep_add_failure(ir_sweep_t* s, const char* text, int failure) {
  ir_sweep_source_t* source = ir__source_new(s, text);
  ir_sweep_item_t* slot = source != NULL ? ir__results_append(s) : NULL;
  if (slot == NULL) {
    ir__source_release(source);
    return -ENOMEM;
  }
  memset(slot, 0, sizeof(*slot));
  slot->source = source;
  slot->failure = failure;
  ir__wake(s);
  return 0;
}

const ir_sweep_item_t* ir_sweep_peek(const ir_sweep_t* s) {
  return s->results_len > 0 ? &s->results[s->results_head] : NULL;
}

void ir_sweep_pop(ir_sweep_t* s) {
  if (s->results_len == 0) {
    return;
  }
  ir_sweep_item_t* item = &s->results[s->results_head];
  ir__source_release((ir_sweep_source_t*)item->source);
  s->results_head = (s->results_head + 1) % s->results_cap;
  s->results_len--;
}

uint32_t ir_sweep_results(const ir_sweep_t* s) {
  return s->results_len;
}

/* ---- Sending --------------------------------------------------------------- */

void* ir_sweep_probe_done(const ir_result_t* result) {
  ir_shot_t* shot = result->data;
  ir_job_t* job = shot->job;
  ir_sweep_t* s = job->sweep;
  s->in_flight--;
  bool retry = !s->closed && !s->stopped && result->status == IR_STATUS_TIMEOUT &&
               shot->attempt < s->config.retries;
  if (!s->closed && (!retry || s->config.every_attempt)) {
    ir__results_push(s, result, shot);
  }
  if (retry) {
    /* fping's meaning: resend after the timeout, waiting longer each time. */
    shot->attempt++;
    shot->timeout_ms =
        fmin(shot->timeout_ms * s->config.backoff, IR_SWEEP_MAX_TIMEOUT_MS);
    shot->next_retry = NULL;
    if (s->retry_tail != NULL) {
      s->retry_tail->next_retry = shot;
    } else {
      s->retry_head = shot;
    }
    s->retry_tail = shot;
  } else {
    ir__shot_free(s, shot);
    job->live_shots--;
    ir__job_release(job);
  }
  if (!s->closed) {
    ir__wake(s);
  }
  return s->ctx;
}

/* A shot for the job's next probe, whose turn came at due_ns; the probe after
 * it is due one interval later (not one interval after it was really sent,
 * so that a sweep that falls behind catches up instead of drifting). */
static ir_shot_t* ir__job_next_shot(ir_sweep_t* s, ir_job_t* job, uint64_t due_ns) {
  ir_shot_t* shot = s->free_shots;
  if (shot != NULL) {
    s->free_shots = shot->next_retry;
  } else if ((shot = malloc(sizeof(*shot))) == NULL) {
    return NULL;
  }
  shot->job = job;
  shot->next_retry = NULL;
  shot->n = job->next_n++;
  shot->attempt = 0;
  shot->timeout_ms = s->config.probe.timeout_ms;
  job->live_shots++;
  if (job->next_n <= s->config.count) {
    job->next_send.key = due_ns + (uint64_t)(s->config.interval_ms * 1e6);
    job->next_send.tie = s->schedule_ticket++;
    if (ir_heap_push(&s->schedule, &job->next_send) != 0) {
      job->next_n = s->config.count + 1; /* No further probes. */
      ir__fail(s, -ENOMEM, 0);
    }
  }
  return shot;
}

/* Whether the address at this position of a target's walk is this shard's.
 * Shard i of n takes positions i, i + n, ... of each walk, as zmap does:
 * disjoint shards that together cover every address once, given the same
 * targets, order and seed. */
static bool ir__in_shard(const ir_sweep_t* s, uint64_t position) {
  return position % s->config.shard_count == s->config.shard_index;
}

/* Whether this position of the shard is in the chunk this worker holds,
 * claiming the next free chunk once it has walked past its own. A claim
 * made exactly at the end of the chunk held is never behind the walk: every
 * chunk claimed so far, this worker's included, is below next_chunk. */
static bool ir__in_claim(ir_sweep_t* s, uint64_t position) {
  ir_sweep_share_t* share = s->config.share;
  if (position >= s->claim_end) {
    if (s->abandoned != 0 && !s->sweeper) {
      return false; /* Broken: the workers still live take the rest. */
    }
    uint64_t chunk = atomic_fetch_add(&share->next_chunk, 1);
    s->claim_start = chunk * share->chunk;
    s->claim_end = s->claim_start + share->chunk;
  }
  return position >= s->claim_start;
}

/* Whether the next address of this shard is this worker's: counted across
 * all targets, so that workers given the same targets take turns even when
 * each target is a single address. */
static bool ir__in_worker(ir_sweep_t* s) {
  if (s->config.share == NULL) {
    return s->sharded++ % s->config.worker_count == s->config.worker_index;
  }
  return ir__in_claim(s, s->sharded++);
}

/* A job for the current target's next address of this shard, or NULL when
 * the targets added so far are done (or out of memory: then failed). */
static ir_job_t* ir__next_job(ir_sweep_t* s) {
  uint64_t index = 0;
  while (s->current != NULL) {
    if (ir_walk_next(&s->current->walk, &index)) {
      if (ir__in_shard(s, s->current->walk.emitted - 1) && ir__in_worker(s)) {
        break;
      }
      continue;
    }
    /* On to the target behind it, and ask for another. */
    ir__source_release(s->current);
    s->current = s->next_source;
    s->next_source = NULL;
    if (!s->exhausted) {
      ir__wake(s);
    }
  }
  if (s->current == NULL) {
    return NULL;
  }
  ir_job_t* job = s->free_jobs;
  if (job != NULL) {
    s->free_jobs = (ir_job_t*)job->source;
    memset(job, 0, sizeof(*job));
  } else if ((job = calloc(1, sizeof(*job))) == NULL) {
    ir__fail(s, -ENOMEM, 0);
    return NULL;
  }
  s->drawn++;
  job->sweep = s;
  job->source = s->current;
  job->source->refs++;
  ir_block_address(&s->current->block, index, &job->addr);
  job->next_send.index = IR_HEAP_NONE;
  job->next_n = 1;
  return job;
}

/* Whether a send the engine refused is about that probe alone (its family
 * has no socket, its size or options do not fit, its source or interface
 * cannot be bound), rather than a failure of the sweep (out of memory, the
 * engine closed, a worker broken). */
static bool ir__refused_probe(int err) {
  return err == -EACCES || err == -EPERM || err == -EAFNOSUPPORT ||
         err == -EPROTONOSUPPORT || err == -EMSGSIZE || err == -EINVAL ||
         err == -EADDRNOTAVAIL || err == -ENODEV;
}

static bool ir__send_shot(ir_sweep_t* s, ir_shot_t* shot) {
  ir_probe_spec_t spec = s->config.probe;
  spec.addr = shot->job->addr;
  spec.timeout_ms = (uint32_t)ceil(shot->timeout_ms);
  int err = s->ops.send(s->ctx, &spec, shot);
  if (err == 0) {
    s->in_flight++;
    return true;
  }
  ir_job_t* job = shot->job;
  if (ir__refused_probe(err)) {
    /* The engine refused this probe (no socket for its family, a size the
     * family cannot carry...): the probe's one result is an error with the
     * reason, as ping returns it, and the sweep goes on with the others. */
    ir_result_t result;
    ir_result_unsent(&result, &spec.addr, err, shot);
    if (!s->closed) {
      ir__results_push(s, &result, shot);
    }
    ir__shot_free(s, shot);
    job->live_shots--;
    ir__job_release(job);
    ir__wake(s);
    return false;
  }
  (void)job;
  /* Kept (still live in its job) so that an abandon can end it as an error;
   * a close drops it. */
  s->failed_shot = shot;
  ir__fail(s, err, spec.addr.family);
  return false;
}

/* Adds the tokens earned since the last refill, up to the burst. */
static void ir__refill_tokens(ir_sweep_t* s, uint64_t now) {
  double burst = fmin(IR_SWEEP_MAX_BURST, fmax(1.0, s->config.rate / 100.0));
  s->tokens =
      fmin(burst, s->tokens + (double)(now - s->tokens_at_ns) * s->config.rate / 1e9);
  s->tokens_at_ns = now;
}

/* The next shot whose turn has come, or NULL (then *wake_at is the next
 * turn, or 0 when none is known; or the sweep failed, out of memory). Probes go in the
 * order of their turns, as fping schedules them: a new address's first probe has its
 * turn at start + drawn / rate and goes first on a tie; unpaced, new addresses come
 * first. */
static ir_shot_t* ir__next_shot(ir_sweep_t* s, uint64_t now, uint64_t* wake_at) {
  if (s->retry_head != NULL) {
    ir_shot_t* shot = s->retry_head;
    s->retry_head = shot->next_retry;
    if (s->retry_head == NULL) {
      s->retry_tail = NULL;
    }
    return shot;
  }
  ir_heap_node_t* due = ir_heap_min(&s->schedule);
  bool due_now = due != NULL && due->key <= now;
  uint64_t new_turn =
      s->config.rate > 0
          ? s->start_ns + (uint64_t)((double)s->drawn * 1e9 / s->config.rate)
          : now;
  ir_job_t* job = NULL;
  if (!due_now || new_turn <= due->key) {
    job = ir__next_job(s);
  }
  ir_shot_t* shot = NULL;
  if (job != NULL) {
    shot = ir__job_next_shot(s, job, new_turn < now ? new_turn : now);
  } else if (due_now) {
    ir_heap_pop(&s->schedule);
    shot = ir__job_next_shot(s, IR_CONTAINER_OF(due, ir_job_t, next_send), due->key);
  }
  if (job != NULL || due_now) {
    if (shot == NULL) {
      ir__fail(s, -ENOMEM, 0);
    }
    return shot;
  }
  /* Nothing to send now: the caller may have targets to add, or (found only
   * now, when a token came) nothing is left at all. */
  ir__wake(s);
  *wake_at = due != NULL ? due->key : 0;
  return NULL;
}

/* The pump of an abandoned sweep: every probe still owed, of the jobs that
 * wait for a turn and then of the addresses not yet drawn, becomes an error
 * result, queue_max at most a call so that the caller can hand them on. */
static void ir__pump_abandoned(ir_sweep_t* s, ir_sweep_next_t* next) {
  uint32_t budget = s->config.queue_max;
  while (budget > 0 && s->failure == 0) {
    ir_heap_node_t* node = ir_heap_pop(&s->schedule);
    ir_job_t* job =
        node != NULL ? IR_CONTAINER_OF(node, ir_job_t, next_send) : ir__next_job(s);
    if (job == NULL) {
      break;
    }
    for (; job->next_n <= s->config.count && budget > 0; budget--) {
      ir__results_push_abandoned(s, job, job->next_n++, 0);
    }
    if (job->next_n <= s->config.count) {
      job->next_send.key = 0; /* The rest on the next call, first. */
      job->next_send.tie = s->schedule_ticket++;
      if (ir_heap_push(&s->schedule, &job->next_send) != 0) {
        job->next_n = s->config.count + 1;
        ir__fail(s, -ENOMEM, 0);
      }
    }
    ir__job_release(job);
  }
  next->soon = budget == 0;
  ir__wake(s);
}

void ir_sweep_abandon(ir_sweep_t* s, int err) {
  if (s->closed || s->stopped || s->abandoned != 0) {
    return;
  }
  s->abandoned = err != 0 ? err : -EIO;
  s->failure = 0;
  if (s->config.share != NULL) {
    s->sweeper = atomic_fetch_sub(&s->config.share->live, 1) == 1;
  }
  if (s->in_flight > 0) {
    s->ops.cancel(s->ctx, s);
  }
  if (s->failed_shot != NULL) {
    ir_shot_t* shot = s->failed_shot;
    s->failed_shot = NULL;
    shot->next_retry = s->retry_head;
    s->retry_head = shot;
    if (s->retry_tail == NULL) {
      s->retry_tail = shot;
    }
  }
  while (s->retry_head != NULL) {
    ir_shot_t* shot = s->retry_head;
    s->retry_head = shot->next_retry;
    ir_job_t* job = shot->job;
    ir__results_push_abandoned(s, job, shot->n, shot->attempt);
    job->live_shots--;
    ir__shot_free(s, shot);
    ir__job_release(job);
  }
  s->retry_tail = NULL;
  ir__wake(s);
}

void ir_sweep_pump(ir_sweep_t* s, ir_sweep_next_t* next) {
  next->at_ns = 0;
  next->soon = false;
  if (s->abandoned != 0 && !s->pumping && !s->closed && !s->stopped) {
    s->pumping = true;
    ir__pump_abandoned(s, next);
    s->pumping = false;
    return;
  }
  if (s->pumping || s->closed || s->stopped || s->failure != 0) {
    return;
  }
  s->pumping = true;
  uint64_t now = s->ops.now(s->ctx);
  if (s->config.rate > 0) {
    ir__refill_tokens(s, now);
  }
  while (s->in_flight < s->config.window && s->failure == 0) {
    /* Keep only a few batches waiting in the engine's queue; the caller
     * pumps again on its loop's next turn. */
    if (s->ops.queued(s->ctx) >= s->config.queue_max) {
      next->soon = true;
      break;
    }
    if (s->config.rate > 0 && s->tokens < 1.0) {
      next->at_ns = now + (uint64_t)((1.0 - s->tokens) * 1e9 / s->config.rate) + 1;
      break;
    }
    uint64_t wake_at = 0;
    ir_shot_t* shot = ir__next_shot(s, now, &wake_at);
    if (shot == NULL) {
      next->at_ns = wake_at;
      break;
    }
    if (!ir__send_shot(s, shot)) {
      if (s->failure != 0) {
        break;
      }
      /* Refused by the engine: its error result waits for the script. It
       * takes its turn of the rate like any probe, and no more such results
       * than a window's worth are left waiting at once. */
      if (s->results_len >= s->config.window) {
        s->tokens -= 1.0;
        next->soon = true;
        break;
      }
    }
    s->tokens -= 1.0;
  }
  s->pumping = false;
}

/* ---- The end --------------------------------------------------------------- */

/* Ends the shots waiting for a resend (as timeouts, unless closed) and the
 * turns still to come. */
static void ir__wind_down(ir_sweep_t* s) {
  s->exhausted = true;
  if (s->in_flight > 0) {
    s->ops.cancel(s->ctx, s);
  }
  if (s->failed_shot != NULL) {
    /* Its send failed: the sweep's failure says so, not a result. */
    ir_shot_t* shot = s->failed_shot;
    ir_job_t* job = shot->job;
    s->failed_shot = NULL;
    job->live_shots--;
    ir__shot_free(s, shot);
    ir__job_release(job);
  }
  while (s->retry_head != NULL) {
    ir_shot_t* shot = s->retry_head;
    s->retry_head = shot->next_retry;
    ir_job_t* job = shot->job;
    if (!s->closed) {
      /* Its last attempt timed out, and no more will be made. */
      ir_result_t result;
      ir_result_blank(&result, IR_STATUS_TIMEOUT, &job->addr);
      shot->attempt--;
      ir__results_push(s, &result, shot);
    }
    job->live_shots--;
    ir__shot_free(s, shot);
    ir__job_release(job);
  }
  s->retry_tail = NULL;
  ir_heap_node_t* node;
  while ((node = ir_heap_pop(&s->schedule)) != NULL) {
    ir_job_t* job = IR_CONTAINER_OF(node, ir_job_t, next_send);
    job->next_n = s->config.count + 1;
    ir__job_release(job);
  }
  ir__source_release(s->current);
  ir__source_release(s->next_source);
  s->current = s->next_source = NULL;
}

static void ir__drop_all(ir_sweep_t* s) {
  ir__wind_down(s);
  while (s->results_len > 0) {
    ir_sweep_pop(s);
  }
}

void ir_sweep_stop(ir_sweep_t* s) {
  if (!s->stopped && !s->closed) {
    s->stopped = true;
    ir__wind_down(s);
    ir__wake(s);
  }
}

void ir_sweep_close(ir_sweep_t* s) {
  if (!s->closed) {
    s->closed = true;
    ir__drop_all(s);
  }
}

bool ir_sweep_finished(const ir_sweep_t* s) {
  return s->exhausted && s->current == NULL && s->next_source == NULL &&
         s->in_flight == 0 && s->retry_head == NULL && s->schedule.len == 0 &&
         s->results_len == 0;
}

uint32_t ir_sweep_in_flight(const ir_sweep_t* s) {
  return s->in_flight;
}

int ir_sweep_failure(const ir_sweep_t* s, int* family) {
  if (family != NULL) {
    *family = s->failure_family;
  }
  return s->failure;
}
