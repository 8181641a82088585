/* SPDX-License-Identifier: MIT */
/* A worker thread of a sweep: its own loop, engine and schedule. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sweep_workers_internal.h"

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
  ir__workers_target_release(data);
}

static const ir_sweep_ops_t ir__worker_ops = {ir__wops_now,    ir__wops_send,
                                              ir__wops_queued, ir__wops_cancel,
                                              ir__wops_wake,   ir__wops_release};

/* Adds the targets the schedule wants from the shared list; when one it
 * wants is not there yet, asks the caller's thread for more (which signals
 * when it has added some) and returns true. */
static bool ir__worker_take_targets(ir_worker_t* w) {
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
      return true;
    }
    int err = ir_sweep_add_target_data(w->core, t->source.text, &t->source.block, t);
    if (err != 0) {
      /* Out of memory: this target's addresses still end as errors. */
      ir__workers_target_release(t);
      ir_sweep_abandon(w->core, err);
      return false;
    }
  }
  return false;
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
    bool asked = false;
    for (int round = 0; round < 4; round++) {
      asked = ir__worker_take_targets(w);
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
    /* Rounds used up while the schedule still wants targets that are there
     * (a walk past many targets of other workers' chunks, with nothing in
     * flight to bring another turn): go on next turn. */
    if (!asked && ir_sweep_wants_target(w->core) &&
        ir_sweep_results(w->core) < p->ring_cap) {
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

/* The schedule of worker w: the sweep's, with its share of rate and window,
 * and the addresses shared out among the workers as they go. */
static ir_sweep_config_t ir__worker_sweep_config(ir_workers_t* p, uint32_t index) {
  ir_sweep_config_t c = p->config.sweep;
  c.worker_index = index;
  c.worker_count = p->count;
  c.rate = c.rate / p->count;
  c.window = (c.window + p->count - 1) / p->count;
  c.queue_max = 0;
  c.share = &p->share;
  return c;
}

void ir__worker_main(void* arg) {
  ir_worker_t* w = arg;
  ir_workers_t* p = w->pool;
  int err = uv_loop_init(&w->loop);
  ir_sweep_config_t c = ir__worker_sweep_config(p, w->index);
  if (err == 0 && ir_sweep_new(&c, &ir__worker_ops, w, &w->core) != 0) {
    uv_loop_close(&w->loop);
    err = -ENOMEM;
  }
  if (err != 0) {
    /* Not live: the others take the rest (the caller raises err). */
    atomic_fetch_sub(&p->share.live, 1);
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
