/* A sweep split over worker threads: targets out, results back, bounded. */
#include "sweep_workers.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Targets kept ahead of the slowest worker, at most. */
#define IR_WORKERS_TARGETS_AHEAD 16

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

/* ---- Targets ------------------------------------------------------------- */

static void ir__target_release(ir_wtarget_t* t) {
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
    ir__target_release(p->list[drop++]);
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
      ir__target_release(t);
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

/* ---- A worker's thread ------------------------------------------------------ */

static void ir__worker_turn(ir_worker_t* w);

static void ir__on_worker_idle(uv_idle_t* idle) {
  ir__worker_turn(idle->data);
}

static void ir__on_worker_timer(uv_timer_t* timer) {
  ir__worker_turn(timer->data);
}

static void ir__on_worker_async(uv_async_t* async) {
  ir__worker_turn(async->data);
}

/* Comes back on the loop's next turn, once per turn however many results. */
static void ir__worker_soon(ir_worker_t* w) {
  if (!w->finishing && !w->in_turn) {
    uv_idle_start(&w->idle, ir__on_worker_idle);
  }
}

static void ir__on_worker_result(ir_engine_t* engine, const ir_result_t* result) {
  (void)engine;
  ir__worker_soon(ir_sweep_probe_done(result));
}

static uint64_t ir__wops_now(void* ctx) {
  (void)ctx;
  return uv_hrtime();
}

static int ir__wops_send(void* ctx, const ir_probe_spec_t* spec, void* data) {
  ir_worker_t* w = ctx;
  const ir_workers_config_t* c = &w->pool->config;
  if (w->engine == NULL) {
    return -ENETDOWN;
  }
  if (c->fail_worker == w->index + 1 && w->sends >= c->fail_after) {
    return -EIO; /* The test hook: this worker's socket "broke". */
  }
  int err = ir_engine_probe(w->engine, spec, ir__on_worker_result, data);
  if (err == 0) {
    w->sends++;
  }
  return err;
}

static uint32_t ir__wops_queued(void* ctx) {
  ir_worker_t* w = ctx;
  return w->engine != NULL ? ir_engine_queued(w->engine) : 0;
}

static void ir__wops_cancel(void* ctx, const void* group) {
  ir_worker_t* w = ctx;
  if (w->engine != NULL) {
    ir_engine_cancel_group(w->engine, group);
  }
}

static void ir__wops_wake(void* ctx) {
  ir__worker_soon(ctx);
}

static void ir__wops_release(void* ctx, void* data) {
  (void)ctx;
  ir__target_release(data);
}

static const ir_sweep_ops_t ir__worker_ops = {ir__wops_now,    ir__wops_send,
                                              ir__wops_queued, ir__wops_cancel,
                                              ir__wops_wake,   ir__wops_release};

/* Adds the targets the schedule wants from the shared list; when one it
 * wants is not there yet, asks the caller's thread for more. */
static void ir__worker_take_targets(ir_worker_t* w) {
  ir_workers_t* p = w->pool;
  while (ir_sweep_wants_target(w->core)) {
    ir_wtarget_t* t = NULL;
    bool done = false;
    uv_mutex_lock(&p->targets_lock);
    uint64_t next = p->cursor[w->index];
    if (next < p->base + p->list_len) {
      t = p->list[next - p->base];
      atomic_fetch_add(&t->refs, 1); /* The schedule's, until ops.release. */
      p->cursor[w->index] = next + 1;
    } else {
      done = p->targets_done;
    }
    uv_mutex_unlock(&p->targets_lock);
    if (t == NULL) {
      if (done) {
        ir_sweep_targets_done(w->core);
      } else {
        uv_async_send(&p->async); /* Ask for more. */
      }
      return;
    }
    int err = ir_sweep_add_target_data(w->core, t->source.text, &t->source.block, t);
    if (err != 0) {
      /* Out of memory: this target's addresses still end as errors. */
      ir__target_release(t);
      ir_sweep_abandon(w->core, err);
      return;
    }
  }
}

/* Moves the schedule's results into the ring, as many as fit, and publishes
 * the engine's counters with them. */
static void ir__worker_flush(ir_worker_t* w) {
  ir_workers_t* p = w->pool;
  uint32_t moved = 0;
  uv_mutex_lock(&w->lock);
  const ir_sweep_item_t* item;
  while (w->len < p->ring_cap && (item = ir_sweep_peek(w->core)) != NULL) {
    ir_wtarget_t* t = item->source->data;
    ir_workers_item_t* slot = &w->ring[(w->head + w->len++) % p->ring_cap];
    slot->item = *item;
    slot->item.source = &t->source;
    slot->worker = w->index + 1;
    atomic_fetch_add(&t->refs, 1); /* The result's, until taken. */
    ir_sweep_pop(w->core);
    moved++;
  }
  w->blocked = ir_sweep_peek(w->core) != NULL;
  if (w->engine != NULL) {
    ir_engine_counters(w->engine, &w->counters);
  }
  uv_mutex_unlock(&w->lock);
  if (moved > 0) {
    uv_async_send(&p->async);
  }
}

static void ir__on_worker_handle_closed(uv_handle_t* handle) {
  (void)handle;
}

/* Ends the worker: its handles and engine close, and its loop runs dry. */
static void ir__worker_finish(ir_worker_t* w) {
  w->finishing = true;
  uv_mutex_lock(&w->lock);
  if (w->engine != NULL) {
    ir_engine_counters(w->engine, &w->counters);
  }
  w->alive = false;
  uv_mutex_unlock(&w->lock);
  uv_close((uv_handle_t*)&w->async, ir__on_worker_handle_closed);
  uv_close((uv_handle_t*)&w->timer, ir__on_worker_handle_closed);
  uv_close((uv_handle_t*)&w->idle, ir__on_worker_handle_closed);
  if (w->engine != NULL) {
    ir_engine_close(w->engine);
    w->engine = NULL;
  }
}

/* Gives up sending after a failed send. A socket that cannot be opened is
 * the host's setting, not this worker's fault: the caller raises it too. */
static void ir__worker_abandon(ir_worker_t* w) {
  int family = 0;
  int err = ir_sweep_failure(w->core, &family);
  const char* why =
      w->engine != NULL ? ir_engine_socket_error(w->engine, family) : NULL;
  if (why != NULL) {
    uv_mutex_lock(&w->lock);
    if (w->fatal == 0) {
      w->fatal = err;
      snprintf(w->fatal_why, sizeof(w->fatal_why), "%s", why);
    }
    uv_mutex_unlock(&w->lock);
  }
  ir_sweep_abandon(w->core, err);
}

/* One turn of the worker: what the caller asked, targets, sending, results,
 * and the end. Comes back when the schedule says (timer, idle), when results
 * come (idle) or when the caller signals (async). */
static void ir__worker_turn(ir_worker_t* w) {
  ir_workers_t* p = w->pool;
  if (w->finishing) {
    return;
  }
  w->in_turn = true;
  uv_idle_stop(&w->idle);
  uv_mutex_lock(&w->lock);
  bool stop = w->stop_req;
  bool close = w->close_req;
  uv_mutex_unlock(&w->lock);
  if (close && !w->closed_core) {
    w->closed_core = true;
    ir_sweep_close(w->core);
  } else if (stop && !w->stopped_core) {
    w->stopped_core = true;
    ir_sweep_stop(w->core);
  }
  ir_sweep_next_t next = {0, false};
  if (!w->closed_core) {
    /* Taking a target may let the pump go on, and the pump may use one up. */
    for (int round = 0; round < 4; round++) {
      ir__worker_take_targets(w);
      if (ir_sweep_failure(w->core, NULL) != 0) {
        ir__worker_abandon(w);
      }
      if (ir_sweep_results(w->core) >= p->ring_cap) {
        break; /* The ring is full: nothing more until the caller takes some. */
      }
      ir_sweep_pump(w->core, &next);
      if (ir_sweep_failure(w->core, NULL) != 0) {
        continue; /* Abandoned at the top of the next round. */
      }
      if (!ir_sweep_wants_target(w->core)) {
        break;
      }
    }
    if (ir_sweep_failure(w->core, NULL) != 0) {
      ir__worker_abandon(w);
      next.soon = true;
    }
    ir__worker_flush(w);
  }
  w->in_turn = false;
  bool over =
      w->closed_core ? ir_sweep_in_flight(w->core) == 0 : ir_sweep_finished(w->core);
  if (over) {
    ir__worker_finish(w);
    return;
  }
  if (next.at_ns != 0) {
    uint64_t now = uv_hrtime();
    uint64_t ms = next.at_ns > now ? (next.at_ns - now + 999999) / 1000000 : 0;
    uv_timer_start(&w->timer, ir__on_worker_timer, ms, 0);
  }
  if (next.soon) {
    uv_idle_start(&w->idle, ir__on_worker_idle);
  }
}

/* The schedule of worker w: the sweep's, with its share of rate and window. */
static ir_sweep_config_t ir__worker_sweep_config(const ir_workers_t* p,
                                                 uint32_t index) {
  ir_sweep_config_t c = p->config.sweep;
  c.worker_index = index;
  c.worker_count = p->count;
  c.rate = c.rate / p->count;
  c.window = (c.window + p->count - 1) / p->count;
  c.queue_max = 0;
  return c;
}

static void ir__worker_main(void* arg) {
  ir_worker_t* w = arg;
  ir_workers_t* p = w->pool;
  int err = uv_loop_init(&w->loop);
  ir_sweep_config_t c = ir__worker_sweep_config(p, w->index);
  if (err == 0 && ir_sweep_new(&c, &ir__worker_ops, w, &w->core) != 0) {
    uv_loop_close(&w->loop);
    err = -ENOMEM;
  }
  if (err != 0) {
    uv_mutex_lock(&w->lock);
    w->fatal = err;
    w->done = true;
    uv_mutex_unlock(&w->lock);
    uv_async_send(&p->async);
    return;
  }
  uv_async_init(&w->loop, &w->async, ir__on_worker_async);
  w->async.data = w;
  uv_timer_init(&w->loop, &w->timer);
  w->timer.data = w;
  uv_idle_init(&w->loop, &w->idle);
  w->idle.data = w;
  int engine_err = ir_engine_new(&w->loop, &p->config.engine, &w->engine);
  if (engine_err != 0) {
    w->engine = NULL;
    ir_sweep_abandon(w->core, engine_err);
  }
  uv_mutex_lock(&w->lock);
  w->alive = true;
  uv_mutex_unlock(&w->lock);
  ir__worker_turn(w);
  while (uv_run(&w->loop, UV_RUN_DEFAULT) != 0) {
  }
  uv_loop_close(&w->loop);
  ir_sweep_free(w->core); /* Gives its targets back. */
  w->core = NULL;
  uv_mutex_lock(&w->lock);
  w->done = true;
  uv_mutex_unlock(&w->lock);
  uv_async_send(&p->async);
}

/* ---- The caller's side ------------------------------------------------------- */

static void ir__item_release(ir_workers_item_t* slot) {
  ir__target_release(
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
    ir__target_release(p->list[i]);
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
