/* SPDX-License-Identifier: MIT */
/* The exporter's prober arms its timer to fire no later than its first probe
 * is due, and no more than a millisecond before: checked for first probes at
 * every phase of a millisecond. libuv's timers count whole milliseconds,
 * and the kernel counts them from the moment the loop polls, not from the
 * loop's clock; a timer armed for the due millisecond of the loop's clock
 * fired up to a millisecond late. */
#include <stdint.h>
#include <uv.h>

#include "check.h"
#include "prober.h"

#define NS_PER_MS 1000000u

static void on_closed(ir_prober_t* prober) {
  (void)prober;
}

int main(void) {
  uv_loop_t loop;
  CHECK_EQ_INT(uv_loop_init(&loop), 0);
  ir_engine_t* engine = NULL; /* None: nothing is sent. */
  const double bounds[] = {0.001};
  const ir_prober_hooks_t hooks = {0};
  ir_prober_t prober;
  CHECK_EQ_INT(ir_prober_init(&prober, &loop, &engine, bounds, 1, &hooks), 0);
  const ir_probe_spec_t spec = {0};
  int late = 0, early = 0, tried = 0;
  /* From over a millisecond: a first probe due within one goes at once. */
  for (uint64_t first_us = 1100; first_us < 4100; first_us += 7) {
    uint32_t id = ir_prober_add(&prober, &spec, 1000u * NS_PER_MS, first_us * 1000u);
    ir_prober_target_t* target = ir_prober_get(&prober, id);
    if (!CHECK(target != NULL)) {
      break;
    }
    /* The adding turn ends: the next one counts the first probe from its
     * start and arms the timer for it, somewhere in [before, after]. The
     * kernel's wait starts no sooner: a preempted test only widens the
     * bounds. */
    uint64_t before = uv_hrtime();
    uv_run(&loop, UV_RUN_NOWAIT);
    uint64_t after = uv_hrtime();
    if (!CHECK(target->due.index != IR_HEAP_NONE)) {
      break;
    }
    /* The wait armed is the timer's expiry on the loop's clock less that
     * clock as it was at the arm: between before's whole ms and the clock
     * now (the run reads it again after its poll, past a ms boundary at
     * times). The least wait from the latest clock says "late", the
     * most from the earliest says "early": neither on a wait not armed. */
    uint64_t expiry_ms = uv_now(&loop) + uv_timer_get_due_in(&prober.timer);
    uint64_t least_wait_ns = (expiry_ms - uv_now(&loop)) * NS_PER_MS;
    uint64_t most_wait_ns = (expiry_ms - before / NS_PER_MS) * NS_PER_MS;
    uint64_t due = target->due.key;
    if (before + least_wait_ns > due) {
      late++;
      fprintf(stderr, "first probe in %llu us: the timer fires %llu us after it\n",
              (unsigned long long)first_us,
              (unsigned long long)((before + least_wait_ns - due) / 1000));
    }
    if (after + most_wait_ns + NS_PER_MS < due) {
      early++;
      fprintf(stderr, "first probe in %llu us: the timer fires %llu us before it\n",
              (unsigned long long)first_us,
              (unsigned long long)((due - after - most_wait_ns) / 1000));
    }
    tried++;
    ir_prober_remove(&prober, target);
  }
  CHECK(tried > 400);
  CHECK_EQ_INT(late, 0);
  CHECK_EQ_INT(early, 0);
  ir_prober_close(&prober, on_closed);
  CHECK_EQ_INT(uv_run(&loop, UV_RUN_DEFAULT), 0);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
  return check_summary();
}
