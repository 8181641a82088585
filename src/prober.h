/* SPDX-License-Identifier: MIT */
/* Many targets, each probed on its own fixed schedule, from one timer. */
#ifndef ICMPRUN_PROBER_H
#define ICMPRUN_PROBER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "engine.h"
#include "heap.h"
#include "prober_stats.h"

/* The exporter's probing without a task per target: each target is sent a
 * probe every `interval`, one probe in flight at a time, its sends kept on a
 * grid (the next is due one interval after the last was due, so a late send
 * does not shift the ones after it; a target that fell more than an
 * interval behind goes on from now, without a burst). All targets' due
 * times are in one heap, served by one uv_timer; nothing per target runs
 * between its sends but the heap. A scripting layer on top (lua_prober.c)
 * is called once per send and once per result.
 *
 * Ten thousand coroutines, each sleeping between its pings, cost Lua's
 * collector a traversal of every one of their stacks in each cycle's atomic
 * step, which held the loop for tens of milliseconds: probes went out late
 * around every scrape. Here the schedule is a heap of C structs. */

typedef struct ir_prober_s ir_prober_t;
typedef struct ir_prober_target_s ir_prober_target_t;

/* Optional hooks (NULL: none). A probe of target `id` is about to be handed
 * to the engine, late_ns after it was due (0 when on time). */
typedef void (*ir_prober_send_cb)(ir_prober_t* prober, uint32_t id, uint64_t late_ns);
/* The one result of that probe, after it was counted. `refused` is 0, or
 * the negative errno with which the engine refused the probe (no socket, a
 * size the family cannot carry): the result is then an ERROR made here, and
 * `why` says what was wrong. Not called for a removed target, nor once the
 * prober is closing. */
typedef void (*ir_prober_result_cb)(ir_prober_t* prober, uint32_t id,
                                    const ir_result_t* result, int refused,
                                    const char* why);
/* A target's sends started to fail (`failing`, with `why`) or work again:
 * once per change, not per probe, for a log. */
typedef void (*ir_prober_failing_cb)(ir_prober_t* prober, uint32_t id, bool failing,
                                     const char* why);

typedef struct ir_prober_hooks_s {
  ir_prober_send_cb on_send;
  ir_prober_result_cb on_result;
  ir_prober_failing_cb on_failing;
  void* data;
} ir_prober_hooks_t;

struct ir_prober_target_s {
  ir_heap_node_t due; /* key: uv_hrtime() at which the next probe is due. */
  ir_probe_spec_t spec;
  uint64_t interval_ns;
  uint64_t first_ns; /* Its first probe's delay, from the end of the adding turn. */
  ir_prober_t* prober;
  uint32_t id;    /* Its slot + 1. */
  bool scheduled; /* false: counters only, never probed (interval 0). */
  bool in_flight;
  bool removed; /* Freed when its probe in flight ends. */
  bool busy;    /* A callback about it runs: not freed until it returns. */
  bool failing; /* Its last probe could not be sent. */
  bool unsent;  /* Its first probe has not gone out yet. */
  ir_prober_stats_t stats;
};

struct ir_prober_s {
  uv_loop_t* loop;
  /* Where the engine's pointer is kept (the runtime's), read at each use:
   * NULL once the engine closed, and then nothing more is sent. */
  ir_engine_t* const* engine;
  uv_timer_t timer;
  ir_heap_t heap;
  uint64_t tie; /* Orders equal due times by the order they were set. */
  /* Targets by id - 1; a free slot is NULL and on the free list. */
  ir_prober_target_t** slots;
  uint32_t nslots;
  uint32_t* free_ids;
  uint32_t nfree;
  uint32_t live; /* Targets not removed. */
  /* Ids of the targets added during this turn of the loop (see ir__rebase);
   * a removed one stays, and is passed over. */
  uint32_t* added;
  uint32_t nadded;
  uint32_t added_cap;
  uint32_t in_flight;
  ir_buckets_t buckets; /* Owned: the histogram's bounds. */
  uint64_t max_late_ns; /* The latest send since ir_prober_take_max_late. */
  uint64_t random;      /* State of the reservoirs' draws (splitmix64). */
  ir_prober_hooks_t hooks;
  bool closing;
  bool timer_closed;
  void (*closed)(ir_prober_t* prober);
};

/* Sets up a prober on loop and the engine *engine, with its timer; the
 * histogram's bounds (seconds, ascending, n of them) are copied. Returns 0
 * or a negative errno. */
int ir_prober_init(ir_prober_t* prober, uv_loop_t* loop, ir_engine_t* const* engine,
                   const double* bounds, int n, const ir_prober_hooks_t* hooks);

/* Adds a target whose first probe is due first_ns after the end of the
 * current turn of the loop (when the loop is next free to send it), then
 * one every interval_ns; interval_ns 0 makes a target of counters only,
 * never probed (results are counted with ir_prober_count_result). The spec
 * is copied (its group is the prober's). Returns its id (1 or more), or 0
 * when out of memory. */
uint32_t ir_prober_add(ir_prober_t* prober, const ir_probe_spec_t* spec,
                       uint64_t interval_ns, uint64_t first_ns);

/* Counts a result of a target as the prober counts its own: the counters,
 * and the history at wall-clock time now_s. */
void ir_prober_count_result(ir_prober_t* prober, ir_prober_target_t* target, int status,
                            double rtt_ms, int ttl, double now_s);

/* The latest any probe was sent past its due time since the last call, in
 * ns; starts again from 0. */
uint64_t ir_prober_take_max_late(ir_prober_t* prober);

/* Bytes the prober holds for its targets: their structs, counters and
 * histories (not the allocator's own overhead). */
size_t ir_prober_bytes(const ir_prober_t* prober);

/* The target with that id, or NULL when there is none (never was, or removed). */
ir_prober_target_t* ir_prober_get(ir_prober_t* prober, uint32_t id);

/* New probe options and interval for a target, from its next probe on; its
 * schedule (the next due time) is kept. The address stays the spec's. */
void ir_prober_update(ir_prober_t* prober, ir_prober_target_t* target,
                      const ir_probe_spec_t* spec, uint64_t interval_ns);

/* Stops probing a target. A probe of it in flight still ends, unreported. */
void ir_prober_remove(ir_prober_t* prober, ir_prober_target_t* target);

/* Stops everything: probes in flight are cancelled (their results are not
 * reported) and the timer is closed; `closed` is called from the timer's
 * close callback, after which the caller may free the prober's memory. */
void ir_prober_close(ir_prober_t* prober, void (*closed)(ir_prober_t* prober));

#endif
