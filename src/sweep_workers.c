/* SPDX-License-Identifier: MIT */
/* A sweep split over worker threads: targets out, results back, bounded. */
#include "sweep_workers_internal.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Targets kept ahead of the slowest worker, at most. */
#define IR_WORKERS_TARGETS_AHEAD 16

/* Addresses a worker claims at once in an unpaced sweep: few enough that a
 * worker slowed by other work on its core leaves the others little to wait
 * for at the end, enough that claiming (one atomic add) costs nothing. A
 * paced sweep claims one at a time, so that even a few addresses are spread
 * over the workers and the total rate is reached. */
#define IR_WORKERS_CHUNK 64

/* ---- Targets ------------------------------------------------------------- */

void ir__workers_target_release(ir_wtarget_t* t) {
  if (atomic_fetch_sub(&t->refs, 1) == 1) {
    free(t->source.text);
    free(t);
  }
}

static ir_wtarget_t* ir__target_new(ir_workers_t* p, const char* text) {
  ir_wtarget_t* t = calloc(1, sizeof(*t));
  char* copy = strdup(text);
  if (t == NULL || copy == NULL) {
    free(t);
    free(copy);
    return NULL;
  }
  t->source.text = copy;
  t->source.text_len = strlen(copy);
  t->source.serial = ++p->serials;
  atomic_init(&t->refs, 1);
  return t;
}

/* Drops the targets every worker has taken. Under targets_lock. */
static void ir__targets_trim(ir_workers_t* p) {
  uint64_t slowest = UINT64_MAX;
  for (uint32_t i = 0; i < p->count; i++) {
    slowest = p->cursor[i] < slowest ? p->cursor[i] : slowest;
  }
  uint32_t drop = 0;
  while (drop < p->list_len && p->base + drop < slowest) {
    ir__workers_target_release(p->list[drop++]);
  }
  if (drop > 0) {
    memmove(p->list, p->list + drop, (p->list_len - drop) * sizeof(*p->list));
    p->list_len -= drop;
    p->base += drop;
  }
}

bool ir_workers_wants_target(const ir_workers_t* p) {
  ir_workers_t* m = (ir_workers_t*)p;
  uv_mutex_lock(&m->targets_lock);
  ir__targets_trim(m);
  bool wants =
      !m->targets_done && !m->closing && m->list_len < IR_WORKERS_TARGETS_AHEAD;
  uv_mutex_unlock(&m->targets_lock);
  return wants;
}

static void ir__signal_workers(ir_workers_t* p) {
  for (uint32_t i = 0; i < p->count; i++) {
    ir_worker_t* w = &p->workers[i];
    uv_mutex_lock(&w->lock);
    if (w->alive) {
      uv_async_send(&w->async);
    }
    uv_mutex_unlock(&w->lock);
  }
}

int ir_workers_add_target(ir_workers_t* p, const char* text, const ir_block_t* block) {
  uint64_t limit = p->config.sweep.limit;
  if (block->count > limit || p->expanded > limit - block->count) {
    return -E2BIG;
  }
  ir_wtarget_t* t = ir__target_new(p, text);
  if (t == NULL) {
    return -ENOMEM;
  }
  t->source.block = *block;
  uv_mutex_lock(&p->targets_lock);
  if (p->list_len == p->list_cap) {
    uint32_t cap = p->list_cap ? p->list_cap * 2 : 16;
    ir_wtarget_t** grown = realloc(p->list, cap * sizeof(*grown));
    if (grown == NULL) {
      uv_mutex_unlock(&p->targets_lock);
      ir__workers_target_release(t);
      return -ENOMEM;
    }
    p->list = grown;
    p->list_cap = cap;
  }
  p->list[p->list_len++] = t;
  uv_mutex_unlock(&p->targets_lock);
  p->expanded += block->count;
  ir__signal_workers(p);
  return 0;
}

int ir_workers_add_failure(ir_workers_t* p, const char* text, int failure) {
  if (p->failures_len == p->failures_cap) {
    uint32_t cap = p->failures_cap ? p->failures_cap * 2 : 8;
    ir_workers_item_t* grown = realloc(p->failures, cap * sizeof(*grown));
    if (grown == NULL) {
      return -ENOMEM;
    }
    p->failures = grown;
    p->failures_cap = cap;
  }
  ir_wtarget_t* t = ir__target_new(p, text);
  if (t == NULL) {
    return -ENOMEM;
  }
  ir_workers_item_t* slot = &p->failures[p->failures_len++];
  memset(slot, 0, sizeof(*slot));
  slot->item.source = &t->source;
  slot->item.failure = failure;
  p->wake(p->ctx);
  return 0;
}

void ir_workers_targets_done(ir_workers_t* p) {
  uv_mutex_lock(&p->targets_lock);
  bool was = p->targets_done;
  p->targets_done = true;
  uv_mutex_unlock(&p->targets_lock);
  if (!was) {
    ir__signal_workers(p);
  }
}

/* ---- The caller's side ------------------------------------------------------- */

static void ir__item_release(ir_workers_item_t* slot) {
  ir__workers_target_release(
      (ir_wtarget_t*)((char*)slot->item.source - offsetof(ir_wtarget_t, source)));
}

static void ir__pool_free(ir_workers_t* p) {
  for (uint32_t i = p->batch_pos; i < p->batch_len; i++) {
    ir__item_release(&p->batch[i]);
  }
  for (uint32_t i = 0; i < p->failures_len; i++) {
    ir__item_release(&p->failures[i]);
  }
  for (uint32_t i = 0; i < p->count; i++) {
    ir_worker_t* w = &p->workers[i];
    for (uint32_t k = 0; k < w->len; k++) {
      ir__item_release(&w->ring[(w->head + k) % p->ring_cap]);
    }
    free(w->ring);
    uv_mutex_destroy(&w->lock);
  }
  for (uint32_t i = 0; i < p->list_len; i++) {
    ir__workers_target_release(p->list[i]);
  }
  uv_mutex_destroy(&p->targets_lock);
  free(p->list);
  free(p->cursor);
  free(p->batch);
  free(p->failures);
  free(p->workers);
  free(p);
}

static void ir__on_pool_closed(uv_handle_t* handle) {
  ir_workers_t* p = handle->data;
  void (*closed)(void*) = p->closed;
  void* ctx = p->ctx;
  ir__pool_free(p);
  if (closed != NULL) {
    closed(ctx);
  }
}

/* Joins the workers that have ended; once all have, the pool closes. */
static void ir__reap(ir_workers_t* p) {
  uint32_t reaped = 0;
  for (uint32_t i = 0; i < p->count; i++) {
    ir_worker_t* w = &p->workers[i];
    if (w->joined) {
      continue;
    }
    uv_mutex_lock(&w->lock);
    bool done = w->done;
    uv_mutex_unlock(&w->lock);
    if (done) {
      uv_thread_join(&w->thread);
      w->joined = true;
      p->joined++;
      reaped++;
    }
  }
  if (reaped > 0) {
    ir_workers_counters(p); /* Their last counts, before they leave `running`. */
    if (p->config.running != NULL) {
      *p->config.running -= reaped;
    }
  }
  if (p->closing && p->joined == p->count && !uv_is_closing((uv_handle_t*)&p->async)) {
    ir_workers_counters(p);
    uv_close((uv_handle_t*)&p->async, ir__on_pool_closed);
  }
}

static void ir__on_pool_async(uv_async_t* async) {
  ir_workers_t* p = async->data;
  ir_workers_counters(p);
  ir__reap(p);
  if (!p->closing) {
    p->wake(p->ctx);
  }
}

/* Takes the next batch of results: names that did not resolve first, then
 * each ring in turn; a worker waiting for room is told it has some. */
static void ir__refill(ir_workers_t* p) {
  p->batch_len = p->batch_pos = 0;
  while (p->failures_len > 0 && p->batch_len < p->ring_cap) {
    p->batch[p->batch_len++] = p->failures[0];
    memmove(p->failures, p->failures + 1, --p->failures_len * sizeof(*p->failures));
  }
  for (uint32_t k = 0; k < p->count && p->batch_len < p->ring_cap; k++) {
    ir_worker_t* w = &p->workers[(p->next_ring + k) % p->count];
    uv_mutex_lock(&w->lock);
    uint32_t take = w->len;
    if (take > p->ring_cap - p->batch_len) {
      take = p->ring_cap - p->batch_len;
    }
    for (uint32_t i = 0; i < take; i++) {
      p->batch[p->batch_len++] = w->ring[w->head];
      w->head = (w->head + 1) % p->ring_cap;
    }
    w->len -= take;
    if (take > 0 && w->blocked && w->alive) {
      uv_async_send(&w->async);
    }
    uv_mutex_unlock(&w->lock);
  }
  p->next_ring = (p->next_ring + 1) % p->count;
}

const ir_workers_item_t* ir_workers_peek(ir_workers_t* p) {
  if (p->batch_pos == p->batch_len && !p->closing) {
    ir__refill(p);
  }
  return p->batch_pos < p->batch_len ? &p->batch[p->batch_pos] : NULL;
}

void ir_workers_pop(ir_workers_t* p) {
  if (p->batch_pos < p->batch_len) {
    ir__item_release(&p->batch[p->batch_pos++]);
  }
}

void ir_workers_stop(ir_workers_t* p) {
  for (uint32_t i = 0; i < p->count; i++) {
    ir_worker_t* w = &p->workers[i];
    uv_mutex_lock(&w->lock);
    w->stop_req = true;
    if (w->alive) {
      uv_async_send(&w->async);
    }
    uv_mutex_unlock(&w->lock);
  }
  ir_workers_targets_done(p);
}

bool ir_workers_finished(ir_workers_t* p) {
  if (ir_workers_peek(p) != NULL) {
    return false;
  }
  ir__reap(p);
  for (uint32_t i = 0; i < p->count; i++) {
    ir_worker_t* w = &p->workers[i];
    uv_mutex_lock(&w->lock);
    bool over = w->done && w->len == 0;
    uv_mutex_unlock(&w->lock);
    if (!over) {
      return false;
    }
  }
  return true;
}

int ir_workers_failure(const ir_workers_t* p, uint32_t* worker, char* why,
                       size_t why_len) {
  for (uint32_t i = 0; i < p->count; i++) {
    ir_worker_t* w = &p->workers[i];
    uv_mutex_lock(&w->lock);
    int fatal = w->fatal;
    if (fatal != 0 && why_len > 0) {
      snprintf(why, why_len, "%s", w->fatal_why);
    }
    uv_mutex_unlock(&w->lock);
    if (fatal != 0) {
      if (worker != NULL) {
        *worker = i + 1;
      }
      return fatal;
    }
  }
  return 0;
}

void ir_workers_counters(ir_workers_t* p) {
  ir_counters_t* sum = p->config.counters_sum;
  if (sum == NULL) {
    return;
  }
  for (uint32_t i = 0; i < p->count; i++) {
    ir_worker_t* w = &p->workers[i];
    uv_mutex_lock(&w->lock);
    ir_counters_t now = w->counters;
    uv_mutex_unlock(&w->lock);
    uint64_t* to = (uint64_t*)sum;
    const uint64_t* a = (const uint64_t*)&now;
    const uint64_t* b = (const uint64_t*)&w->reported;
    for (size_t k = 0; k < sizeof(now) / sizeof(uint64_t); k++) {
      if (k == offsetof(ir_counters_t, corrupt_offset) / sizeof(uint64_t)) {
        if (a[k] != b[k]) {
          to[k] = a[k]; /* A level, not a count. */
        }
        continue;
      }
      to[k] += a[k] - b[k];
    }
    w->reported = now;
  }
}

void ir_workers_close(ir_workers_t* p, void (*closed)(void* ctx)) {
  if (p->closing) {
    return;
  }
  p->closing = true;
  p->closed = closed;
  for (uint32_t i = 0; i < p->count; i++) {
    ir_worker_t* w = &p->workers[i];
    uv_mutex_lock(&w->lock);
    w->close_req = true;
    if (w->alive) {
      uv_async_send(&w->async);
    }
    uv_mutex_unlock(&w->lock);
  }
  ir_workers_targets_done(p);
  ir__reap(p);
}

void ir_workers_wait(ir_workers_t* p) {
  for (uint32_t i = 0; i < p->count; i++) {
    ir_worker_t* w = &p->workers[i];
    if (!w->joined) {
      uv_thread_join(&w->thread); /* Then done is set: ir__reap joins no more. */
      w->joined = true;
      p->joined++;
      if (p->config.running != NULL) {
        (*p->config.running)--;
      }
    }
  }
  ir__reap(p);
}

uint32_t ir_workers_cpus(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) {
    return 1;
  }
  int n = CPU_COUNT(&set);
  return n > 0 ? (uint32_t)n : 1;
}

int ir_workers_new(uv_loop_t* loop, const ir_workers_config_t* config,
                   void (*wake)(void* ctx), void* ctx, ir_workers_t** out) {
  if (config->workers < 1 || config->workers > IR_WORKERS_MAX) {
    return -EINVAL;
  }
  ir_workers_t* p = calloc(1, sizeof(*p));
  if (p == NULL) {
    return -ENOMEM;
  }
  p->config = *config;
  p->wake = wake;
  p->ctx = ctx;
  p->count = config->workers;
  atomic_init(&p->share.next_chunk, p->count);
  atomic_init(&p->share.live, p->count);
  p->share.chunk = config->sweep.rate > 0 ? 1 : IR_WORKERS_CHUNK;
  p->ring_cap = config->ring != 0 ? config->ring : IR_WORKERS_RING;
  p->workers = calloc(p->count, sizeof(*p->workers));
  p->cursor = calloc(p->count, sizeof(*p->cursor));
  p->batch = malloc(p->ring_cap * sizeof(*p->batch));
  bool ok = p->workers != NULL && p->cursor != NULL && p->batch != NULL;
  for (uint32_t i = 0; ok && i < p->count; i++) {
    p->workers[i].ring = malloc(p->ring_cap * sizeof(*p->workers[i].ring));
    ok = p->workers[i].ring != NULL;
  }
  if (!ok) {
    if (p->workers != NULL) {
      for (uint32_t i = 0; i < p->count; i++) {
        free(p->workers[i].ring);
      }
    }
    free(p->workers);
    free(p->cursor);
    free(p->batch);
    free(p);
    return -ENOMEM;
  }
  uv_mutex_init(&p->targets_lock);
  for (uint32_t i = 0; i < p->count; i++) {
    p->workers[i].pool = p;
    p->workers[i].index = i;
    uv_mutex_init(&p->workers[i].lock);
  }
  uv_async_init(loop, &p->async, ir__on_pool_async);
  p->async.data = p;
  for (uint32_t i = 0; i < p->count; i++) {
    int err = uv_thread_create(&p->workers[i].thread, ir__worker_main, &p->workers[i]);
    if (err != 0) {
      /* The ones started end at once; they are joined here, briefly. */
      p->closing = true;
      for (uint32_t k = i; k < p->count; k++) {
        p->workers[k].done = true;
        p->workers[k].joined = true;
        p->joined++;
      }
      for (uint32_t k = 0; k < i; k++) {
        ir_worker_t* w = &p->workers[k];
        uv_mutex_lock(&w->lock);
        w->close_req = true;
        if (w->alive) {
          uv_async_send(&w->async);
        }
        uv_mutex_unlock(&w->lock);
      }
      ir_workers_targets_done(p);
      for (uint32_t k = 0; k < i; k++) {
        uv_thread_join(&p->workers[k].thread);
      }
      if (p->config.running != NULL) {
        *p->config.running -= i;
      }
      uv_close((uv_handle_t*)&p->async, ir__on_pool_closed);
      return err;
    }
    if (p->config.running != NULL) {
      (*p->config.running)++;
    }
  }
  *out = p;
  return 0;
}
