/* SPDX-License-Identifier: MIT */
/* Many targets on fixed schedules from one timer (see prober.h). */
#include "prober.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

/* A probe due within this of now goes out now. libuv's timers count whole
 * milliseconds, and the timer is armed for the whole milliseconds before the
 * first probe is due (see ir__arm): it fires up to a millisecond early, and
 * sends what is due before the end of the next one. So a probe leaves at
 * most a millisecond early, and is late only by what holds the loop; no
 * timer of 0 ms is armed for a probe still ahead (which would spin the
 * loop). */
#define IR_PROBER_EARLY_NS 1000000u

#define IR_PROBER_NS_PER_MS 1000000u

static ir_prober_target_t* ir__target_of(ir_heap_node_t* node) {
  return IR_CONTAINER_OF(node, ir_prober_target_t, due);
}

static void ir__free_target(ir_prober_t* prober, ir_prober_target_t* target) {
  uint32_t slot = target->id - 1;
  prober->slots[slot] = NULL;
  prober->free_ids[prober->nfree++] = slot;
  ir_prober_stats_free(&target->stats);
  free(target);
}

/* Frees the target if nothing holds it: not in flight, not under a
 * callback, and removed (or the prober closing). */
static void ir__release(ir_prober_t* prober, ir_prober_target_t* target) {
  if ((target->removed || prober->closing) && !target->in_flight && !target->busy) {
    ir__free_target(prober, target);
  }
}

static void ir__timer_cb(uv_timer_t* timer);

/* Counts the first probes of the targets added during the turn that has
 * just ended from now, its end, rather than from each add. A turn that adds
 * 10,000 targets runs for tens of milliseconds (the config, the adds, at
 * times a cycle of Lua's collector): counted from each add, the first
 * probes fell due while the loop was still adding and left up to 40 ms late,
 * and a pause inside the adds shifted every later target's phase, leaving a
 * gap of its length in each interval's schedule. */
static void ir__rebase(ir_prober_t* prober, uint64_t now) {
  for (uint32_t i = 0; i < prober->nadded; i++) {
    /* A slot freed and taken again in the same turn names the new target,
     * maybe twice: rebased twice to the same time. */
    ir_prober_target_t* target = ir_prober_get(prober, prober->added[i]);
    /* One sent already (by a hook of this prober's own turn adding it) is
     * on its own schedule. */
    if (target == NULL || !target->unsent || target->due.index == IR_HEAP_NONE) {
      continue;
    }
    ir_heap_remove(&prober->heap, &target->due);
    target->due.key = now + target->first_ns;
    target->due.tie = prober->tie++;
    /* Cannot fail: the removal left room in the heap's array. */
    (void)ir_heap_push(&prober->heap, &target->due);
  }
  prober->nadded = 0;
}

/* Notes a target added during this turn for ir__rebase. Out of memory, it
 * keeps the due time counted from its add. */
static void ir__note_added(ir_prober_t* prober, ir_prober_target_t* target) {
  if (prober->nadded == prober->added_cap) {
    uint32_t cap = prober->added_cap > 0 ? prober->added_cap * 2 : 64;
    uint32_t* added = cap > prober->added_cap
                          ? realloc(prober->added, (size_t)cap * sizeof(*added))
                          : NULL;
    if (added == NULL) {
      return;
    }
    prober->added = added;
    prober->added_cap = cap;
  }
  prober->added[prober->nadded++] = target->id;
}

/* Arms the timer to fire no later than the earliest due target: after the
 * whole milliseconds from now to it, rounded down. The kernel counts a
 * timer's wait from the moment the loop polls, not from the loop's clock (the
 * start of the turn, in whole ms): a timer armed for the due millisecond of
 * the loop's clock woke up to a millisecond past it (a bare loop keeping
 * 10,000 targets' schedule, nothing else running: up to 1.1-1.8 ms late
 * every second). */
static void ir__arm(ir_prober_t* prober) {
  if (prober->closing) {
    return;
  }
  ir_heap_node_t* first = ir_heap_min(&prober->heap);
  if (first == NULL) {
    uv_timer_stop(&prober->timer);
    return;
  }
  if (prober->nadded > 0) {
    /* The loop's next turn rebases them, then sends what is due. */
    uv_timer_start(&prober->timer, ir__timer_cb, 0, 0);
    return;
  }
  uint64_t now = uv_hrtime();
  uint64_t wait_ms = first->key > now ? (first->key - now) / IR_PROBER_NS_PER_MS : 0;
  uv_timer_start(&prober->timer, ir__timer_cb, wait_ms, 0);
}

static void ir__schedule(ir_prober_t* prober, ir_prober_target_t* target,
                         uint64_t due) {
  target->due.key = due;
  target->due.tie = prober->tie++;
  if (ir_heap_push(&prober->heap, &target->due) != 0) {
    /* Out of memory for the heap's array: the target stops, and says so
     * the only way left, by its absence from the schedule. */
    return;
  }
}

/* The next probe of a target that has just had its result: one interval
 * after the last was due, or now if that is past (no burst to catch up). */
static void ir__reschedule(ir_prober_t* prober, ir_prober_target_t* target) {
  uint64_t due = target->due.key + target->interval_ns;
  uint64_t now = uv_hrtime();
  ir__schedule(prober, target, due < now ? now : due);
}

/* The wall clock in seconds, for the history's one-minute slots. */
static double ir__wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* splitmix64: the reservoirs' draws need to be uniform, not secret. */
static uint64_t ir__next_random(ir_prober_t* prober) {
  uint64_t z = (prober->random += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

void ir_prober_count_result(ir_prober_t* prober, ir_prober_target_t* target, int status,
                            double rtt_ms, int ttl, double now_s) {
  /* Out of memory for the history costs the status page a dot, no more:
   * the counters are counted all the same. */
  (void)ir_prober_stats_record(&target->stats, &prober->buckets, status, rtt_ms, ttl,
                               now_s, ir__next_random(prober));
}

/* Counts a result, tells of a change in the target's sends, and hands the
 * result on; then the target is freed if it went meanwhile, or scheduled. */
static void ir__finish(ir_prober_t* prober, ir_prober_target_t* target,
                       const ir_result_t* r, int refused, const char* why) {
  if (!target->removed && !prober->closing) {
    ir_prober_count_result(prober, target, (int)r->status,
                           r->status == IR_STATUS_REPLY ? r->rtt_ms : -1, r->ttl,
                           ir__wall_now());
    /* A send that failed, whether the engine refused it here or the
     * socket did later, is what a log wants to hear of once. */
    bool failing = r->status == IR_STATUS_ERROR && r->error != -ECANCELED;
    const ir_prober_hooks_t* hooks = &prober->hooks;
    target->busy = true;
    if (failing != target->failing) {
      target->failing = failing;
      if (hooks->on_failing != NULL) {
        hooks->on_failing(prober, target->id, failing,
                          why != NULL ? why : uv_strerror(r->error));
      }
    }
    if (hooks->on_result != NULL && !target->removed && !prober->closing) {
      hooks->on_result(prober, target->id, r, refused, why);
    }
    target->busy = false;
  }
  if (target->removed || prober->closing) {
    ir__release(prober, target);
    return;
  }
  ir__reschedule(prober, target);
}

static void ir__on_result(ir_engine_t* engine, const ir_result_t* result) {
  (void)engine;
  ir_prober_target_t* target = result->data;
  ir_prober_t* prober = target->prober;
  target->in_flight = false;
  prober->in_flight--;
  ir__finish(prober, target, result, 0, NULL);
  ir__arm(prober);
}

/* Sends the due probe of a target (out of the heap). */
static void ir__send(ir_prober_t* prober, ir_prober_target_t* target,
                     uint64_t late_ns) {
  ir_engine_t* engine = *prober->engine;
  if (engine == NULL) {
    return; /* Shutting down: it stays off the schedule. */
  }
  target->stats.sent++;
  target->unsent = false;
  if (late_ns > prober->max_late_ns) {
    prober->max_late_ns = late_ns;
  }
  if (prober->hooks.on_send != NULL) {
    target->busy = true;
    prober->hooks.on_send(prober, target->id, late_ns);
    target->busy = false;
    if (target->removed || prober->closing) {
      ir__release(prober, target);
      return;
    }
  }
  engine = *prober->engine; /* A callback may have run: look again. */
  char why[384] = "";
  int err;
  if (target->spec.addr.family == AF_INET && target->spec.size > IR_MAX_SIZE_V4) {
    /* The options allowed IPv6's larger size; the address decides, as for
     * icmprun.ping. */
    err = -EMSGSIZE;
    snprintf(why, sizeof(why), "size %u is over the IPv4 maximum of %u",
             target->spec.size, (unsigned)IR_MAX_SIZE_V4);
  } else if (engine == NULL) {
    err = -ECANCELED;
  } else {
    err = ir_engine_probe(engine, &target->spec, ir__on_result, target);
    if (err == 0) {
      target->in_flight = true;
      prober->in_flight++;
      return;
    }
    const char* said = ir_engine_probe_error(engine, &target->spec);
    if (said != NULL) {
      snprintf(why, sizeof(why), "%s", said);
    }
  }
  if (why[0] == '\0') {
    snprintf(why, sizeof(why), "%s", uv_strerror(err));
  }
  /* Refused: the result is an error, made here, and the target goes on. */
  ir_result_t r;
  ir_result_unsent(&r, &target->spec.addr, err, target);
  ir__finish(prober, target, &r, err, why);
}

size_t ir_prober_bytes(const ir_prober_t* prober) {
  size_t bytes = prober->nslots * (sizeof(*prober->slots) + sizeof(*prober->free_ids)) +
                 prober->heap.cap * sizeof(*prober->heap.nodes);
  for (uint32_t i = 0; i < prober->nslots; i++) {
    const ir_prober_target_t* t = prober->slots[i];
    if (t != NULL) {
      bytes += sizeof(*t) + ((size_t)prober->buckets.n + 1) * sizeof(*t->stats.counts);
      if (t->stats.history != NULL) {
        bytes += sizeof(*t->stats.history) + t->stats.history->cap * sizeof(float);
      }
    }
  }
  return bytes;
}

uint64_t ir_prober_take_max_late(ir_prober_t* prober) {
  uint64_t late = prober->max_late_ns;
  prober->max_late_ns = 0;
  return late;
}

static void ir__timer_cb(uv_timer_t* timer) {
  ir_prober_t* prober = timer->data;
  uint64_t now = uv_hrtime();
  ir__rebase(prober, now);
  ir_heap_node_t* first;
  while (!prober->closing && (first = ir_heap_min(&prober->heap)) != NULL &&
         first->key <= now + IR_PROBER_EARLY_NS) {
    ir_heap_pop(&prober->heap);
    ir__send(prober, ir__target_of(first), now > first->key ? now - first->key : 0);
  }
  ir__arm(prober);
}

int ir_prober_init(ir_prober_t* prober, uv_loop_t* loop, ir_engine_t* const* engine,
                   const double* bounds, int n, const ir_prober_hooks_t* hooks) {
  memset(prober, 0, sizeof(*prober));
  prober->loop = loop;
  prober->engine = engine;
  prober->hooks = *hooks;
  prober->random = uv_hrtime();
  ir_heap_init(&prober->heap);
  prober->buckets.bounds = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
  if (prober->buckets.bounds == NULL) {
    return -ENOMEM;
  }
  memcpy(prober->buckets.bounds, bounds, (size_t)n * sizeof(double));
  prober->buckets.n = n;
  int rc = uv_timer_init(loop, &prober->timer);
  if (rc != 0) {
    free(prober->buckets.bounds);
    return rc;
  }
  prober->timer.data = prober;
  return 0;
}

/* Makes room for one more slot; false when out of memory. */
static bool ir__grow(ir_prober_t* prober) {
  uint32_t cap = prober->nslots > 0 ? prober->nslots * 2 : 64;
  if (cap <= prober->nslots) {
    return false;
  }
  ir_prober_target_t** slots = realloc(prober->slots, cap * sizeof(*slots));
  if (slots == NULL) {
    return false;
  }
  prober->slots = slots;
  uint32_t* free_ids = realloc(prober->free_ids, cap * sizeof(*free_ids));
  if (free_ids == NULL) {
    return false; /* The slots grew: kept, harmless. */
  }
  prober->free_ids = free_ids;
  /* New slots go on the free list highest first, so that ids are handed
   * out in ascending order. */
  for (uint32_t i = cap; i > prober->nslots; i--) {
    slots[i - 1] = NULL;
    free_ids[prober->nfree++] = i - 1;
  }
  prober->nslots = cap;
  return true;
}

uint32_t ir_prober_add(ir_prober_t* prober, const ir_probe_spec_t* spec,
                       uint64_t interval_ns, uint64_t first_ns) {
  if (prober->closing || (prober->nfree == 0 && !ir__grow(prober))) {
    return 0;
  }
  ir_prober_target_t* target = calloc(1, sizeof(*target));
  if (target == NULL) {
    return 0;
  }
  if (ir_prober_stats_init(&target->stats, &prober->buckets) != 0) {
    free(target);
    return 0;
  }
  uint32_t slot = prober->free_ids[--prober->nfree];
  prober->slots[slot] = target;
  target->id = slot + 1;
  target->prober = prober;
  target->due.index = IR_HEAP_NONE;
  target->spec = *spec;
  target->spec.group = prober;
  target->interval_ns = interval_ns;
  target->scheduled = interval_ns > 0;
  prober->live++;
  if (!target->scheduled) {
    return target->id;
  }
  target->first_ns = first_ns;
  target->unsent = true;
  ir__schedule(prober, target, uv_hrtime() + first_ns);
  if (target->due.index == IR_HEAP_NONE) {
    prober->live--;
    ir__free_target(prober, target);
    return 0;
  }
  ir__note_added(prober, target);
  ir__arm(prober);
  return target->id;
}

ir_prober_target_t* ir_prober_get(ir_prober_t* prober, uint32_t id) {
  if (id == 0 || id > prober->nslots) {
    return NULL;
  }
  ir_prober_target_t* target = prober->slots[id - 1];
  return target != NULL && !target->removed ? target : NULL;
}

void ir_prober_update(ir_prober_t* prober, ir_prober_target_t* target,
                      const ir_probe_spec_t* spec, uint64_t interval_ns) {
  ir_addr_t addr = target->spec.addr;
  target->spec = *spec;
  target->spec.addr = addr;
  target->spec.group = prober;
  if (target->scheduled && interval_ns > 0) {
    target->interval_ns = interval_ns;
  }
}

void ir_prober_remove(ir_prober_t* prober, ir_prober_target_t* target) {
  if (target->removed) {
    return;
  }
  target->removed = true;
  prober->live--;
  ir_heap_remove(&prober->heap, &target->due);
  ir__release(prober, target);
  ir__arm(prober);
}

static void ir__timer_closed(uv_handle_t* handle) {
  ir_prober_t* prober = handle->data;
  prober->timer_closed = true;
  ir_heap_free(&prober->heap);
  free(prober->added);
  prober->added = NULL;
  prober->nadded = 0;
  free(prober->buckets.bounds);
  prober->buckets.bounds = NULL;
  free(prober->slots);
  free(prober->free_ids);
  prober->slots = NULL;
  prober->free_ids = NULL;
  if (prober->closed != NULL) {
    prober->closed(prober);
  }
}

void ir_prober_close(ir_prober_t* prober, void (*closed)(ir_prober_t* prober)) {
  if (prober->closing) {
    return;
  }
  prober->closing = true;
  prober->closed = closed;
  while (ir_heap_pop(&prober->heap) != NULL) {
  }
  /* Probes in flight end now, each with a cancelled result that frees its
   * target (unreported: the prober is closing). */
  if (*prober->engine != NULL && prober->in_flight > 0) {
    ir_engine_cancel_group(*prober->engine, prober);
  }
  for (uint32_t i = 0; i < prober->nslots; i++) {
    ir_prober_target_t* target = prober->slots[i];
    if (target != NULL) {
      ir__release(prober, target);
    }
  }
  uv_close((uv_handle_t*)&prober->timer, ir__timer_closed);
}
