/* SPDX-License-Identifier: MIT */
/* Unit tests for ir_every: due times on a fixed grid, late calls, skipped slots. */
#include "every.h"

#include <stdint.h>

#include "check.h"

#define MS UINT64_C(1000000)

/* Calls that end before the next slot keep every slot, at its due time. */
static void test_on_time(void) {
  ir_every_t e;
  ir_every_init(&e, 5000 * MS, 100 * MS);
  CHECK_EQ_INT(ir_every_due(&e, 0), 5000 * MS);
  CHECK_EQ_INT(ir_every_due(&e, 3), 5300 * MS);
  uint64_t slot = 0;
  for (int i = 0; i < 1000; i++) {
    /* Each call ends 99 ms after its slot was due: just in time. */
    uint64_t next = ir_every_after(&e, slot, ir_every_due(&e, slot) + 99 * MS);
    CHECK_EQ_INT(next, slot + 1);
    slot = next;
  }
  CHECK_EQ_INT(e.skipped, 0);
  /* The grid does not drift however late each call started: slot 1000 is due
   * exactly 1000 periods after the start. */
  CHECK_EQ_INT(ir_every_due(&e, slot), 5000 * MS + 1000 * 100 * MS);
}

/* A call that ends exactly when the next slot is due, or a little after it,
 * runs that slot late rather than skipping it. */
static void test_just_late(void) {
  ir_every_t e;
  ir_every_init(&e, 0, 100 * MS);
  CHECK_EQ_INT(ir_every_after(&e, 0, 100 * MS), 1);
  CHECK_EQ_INT(ir_every_after(&e, 1, 199 * MS + 999999), 2);
  CHECK_EQ_INT(e.skipped, 0);
}

/* A call that overruns several periods: the latest due slot runs at once,
 * those before it are skipped and counted, and the grid is kept. */
static void test_overrun(void) {
  ir_every_t e;
  ir_every_init(&e, 1000 * MS, 100 * MS);
  /* Slot 0 ran from 1000 ms to 1350 ms: slots 1, 2, 3 came due meanwhile. */
  uint64_t next = ir_every_after(&e, 0, 1350 * MS);
  CHECK_EQ_INT(next, 3);
  CHECK_EQ_INT(e.skipped, 2);
  CHECK_EQ_INT(ir_every_due(&e, next), 1300 * MS);
  /* Slot 3 ran late and ended at 1360 ms: slot 4 is due at 1400 ms. */
  CHECK_EQ_INT(ir_every_after(&e, 3, 1360 * MS), 4);
  CHECK_EQ_INT(e.skipped, 2);
}

/* A clock read before the start (the first call ran early) never moves the
 * schedule backwards, and a huge period does not overflow the division. */
static void test_edges(void) {
  ir_every_t e;
  ir_every_init(&e, 1000 * MS, 100 * MS);
  CHECK_EQ_INT(ir_every_after(&e, 0, 500 * MS), 1);
  ir_every_init(&e, 0, 0); /* A zero period is taken as 1 ns, never divides by 0. */
  CHECK_EQ_INT(ir_every_after(&e, 0, 10), 10);
  ir_every_init(&e, 0, UINT64_MAX / 2);
  CHECK_EQ_INT(ir_every_after(&e, 0, 5), 1);
  CHECK_EQ_INT(e.skipped, 0);
}

int main(void) {
  test_on_time();
  test_just_late();
  test_overrun();
  test_edges();
  return check_summary();
}
