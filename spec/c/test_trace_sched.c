/* SPDX-License-Identifier: MIT */
/* Unit tests for the trace scheduler, on a fake clock. */
#include "trace_sched.h"

#include <stdint.h>

#include "check.h"

#define MS 1000000u

/* Takes every probe due at now; returns how many, and the TTLs in order. */
static int drain(ir_trace_sched_t* s, uint64_t now, int* ttls, uint64_t* due,
                 ir_trace_step_t* last) {
  int n = 0, ttl = 0;
  uint64_t round = 0;
  ir_trace_step_t step;
  while ((step = ir_trace_sched_next(s, now, &ttl, &round, due)) == IR_TRACE_SEND) {
    ttls[n++] = ttl;
  }
  *last = step;
  return n;
}

/* Each round sends every TTL at once, and the rounds keep their time from
 * the start: count rounds span (count - 1) intervals. */
static void test_rounds_on_time(void) {
  ir_trace_sched_t s;
  int ttls[64];
  uint64_t due = 0;
  ir_trace_step_t step;
  ir_trace_sched_init(&s, 1, 30, 3, 100 * MS, true, 1000 * MS);
  CHECK_EQ_INT(drain(&s, 1000 * MS, ttls, &due, &step), 30);
  CHECK_EQ_INT(ttls[0], 1);
  CHECK_EQ_INT(ttls[29], 30);
  CHECK_EQ_INT(step, IR_TRACE_WAIT);
  CHECK_EQ_INT(due, 1100 * MS);
  /* Early: nothing yet. A little late: the round, and the next stays on the
   * start's grid. */
  CHECK_EQ_INT(drain(&s, 1099 * MS, ttls, &due, &step), 0);
  CHECK_EQ_INT(drain(&s, 1130 * MS, ttls, &due, &step), 30);
  CHECK_EQ_INT(due, 1200 * MS);
  CHECK_EQ_INT(drain(&s, 1200 * MS, ttls, &due, &step), 30);
  CHECK_EQ_INT(step, IR_TRACE_DONE);
  CHECK_EQ_INT(s.rounds, 3);
}

/* Once the end is known, rounds stop there, also the round under way. */
static void test_stop_at_target(void) {
  ir_trace_sched_t s;
  int ttl = 0;
  uint64_t round = 0, due = 0;
  int ttls[64];
  ir_trace_step_t step;
  ir_trace_sched_init(&s, 1, 30, 2, 10 * MS, true, 0);
  for (int i = 0; i < 3; i++) {
    CHECK_EQ_INT(ir_trace_sched_next(&s, 0, &ttl, &round, &due), IR_TRACE_SEND);
  }
  ir_trace_sched_end_at(&s, 5);
  CHECK_EQ_INT(drain(&s, 0, ttls, &due, &step), 2); /* 4 and 5 */
  CHECK_EQ_INT(ttls[1], 5);
  CHECK_EQ_INT(drain(&s, 10 * MS, ttls, &due, &step), 5);
  CHECK_EQ_INT(step, IR_TRACE_DONE);
  /* The end only comes nearer. */
  ir_trace_sched_end_at(&s, 9);
  CHECK_EQ_INT(ir_trace_sched_last_ttl(&s), 5);
  ir_trace_sched_end_at(&s, 4);
  CHECK_EQ_INT(ir_trace_sched_last_ttl(&s), 4);

  /* Without stop_at_target, every TTL in every round. */
  ir_trace_sched_init(&s, 3, 8, 1, 10 * MS, false, 0);
  ir_trace_sched_end_at(&s, 5);
  CHECK_EQ_INT(drain(&s, 0, ttls, &due, &step), 6);
  CHECK_EQ_INT(ttls[0], 3);
  CHECK_EQ_INT(ttls[5], 8);
}

/* A pause holds the rounds; a resume starts the one that fell due at once,
 * without making up the others. */
static void test_pause(void) {
  ir_trace_sched_t s;
  int ttls[8];
  uint64_t due = 0;
  ir_trace_step_t step;
  ir_trace_sched_init(&s, 1, 2, UINT64_MAX, 100 * MS, true, 0);
  CHECK_EQ_INT(drain(&s, 0, ttls, &due, &step), 2);
  ir_trace_sched_pause(&s);
  CHECK_EQ_INT(drain(&s, 500 * MS, ttls, &due, &step), 0);
  CHECK_EQ_INT(step, IR_TRACE_WAIT);
  CHECK_EQ_INT(due, 600 * MS);
  ir_trace_sched_resume(&s, 550 * MS);
  CHECK_EQ_INT(drain(&s, 550 * MS, ttls, &due, &step), 2);
  CHECK_EQ_INT(due, 650 * MS);
  CHECK_EQ_INT(s.rounds, 2);
  /* With no interval, a paused trace looks again a millisecond later. */
  ir_trace_sched_init(&s, 1, 1, 5, 0, true, 0);
  ir_trace_sched_pause(&s);
  CHECK_EQ_INT(drain(&s, 7 * MS, ttls, &due, &step), 0);
  CHECK_EQ_INT(due, 8 * MS);
}

/* A stop ends everything, also a round under way; a late wake-up gets one
 * round, not a burst. */
static void test_stop_and_late(void) {
  ir_trace_sched_t s;
  int ttl = 0, ttls[8];
  uint64_t round = 0, due = 0;
  ir_trace_step_t step;
  ir_trace_sched_init(&s, 1, 5, 10, 100 * MS, true, 0);
  CHECK_EQ_INT(ir_trace_sched_next(&s, 0, &ttl, &round, &due), IR_TRACE_SEND);
  CHECK_EQ_INT(round, 1);
  ir_trace_sched_stop(&s);
  CHECK_EQ_INT(ir_trace_sched_next(&s, 0, &ttl, &round, &due), IR_TRACE_DONE);

  ir_trace_sched_init(&s, 1, 1, 10, 100 * MS, true, 0);
  CHECK_EQ_INT(drain(&s, 0, ttls, &due, &step), 1);
  CHECK_EQ_INT(drain(&s, 1000 * MS, ttls, &due, &step), 1);
  CHECK_EQ_INT(step, IR_TRACE_WAIT);
  CHECK_EQ_INT(due, 1100 * MS);
}

/* Zero interval: every round at once; one round of one TTL is the least. */
static void test_edges(void) {
  ir_trace_sched_t s;
  int ttls[256];
  uint64_t due = 0;
  ir_trace_step_t step;
  ir_trace_sched_init(&s, 1, 3, 4, 0, true, 0);
  CHECK_EQ_INT(drain(&s, 0, ttls, &due, &step), 12);
  CHECK_EQ_INT(step, IR_TRACE_DONE);
  ir_trace_sched_init(&s, 255, 255, 1, 0, true, 0);
  CHECK_EQ_INT(drain(&s, 0, ttls, &due, &step), 1);
  CHECK_EQ_INT(ttls[0], 255);
  CHECK_EQ_INT(step, IR_TRACE_DONE);
}

int main(void) {
  test_rounds_on_time();
  test_stop_at_target();
  test_pause();
  test_stop_and_late();
  test_edges();
  return check_summary();
}
