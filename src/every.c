/* SPDX-License-Identifier: MIT */
/* The schedule of icmprun.every: see every.h. */
#include "every.h"

void ir_every_init(ir_every_t* every, uint64_t start_ns, uint64_t period_ns) {
  every->start_ns = start_ns;
  every->period_ns = period_ns > 0 ? period_ns : 1;
  every->skipped = 0;
}

uint64_t ir_every_due(const ir_every_t* every, uint64_t slot) {
  return every->start_ns + slot * every->period_ns;
}

uint64_t ir_every_after(ir_every_t* every, uint64_t done, uint64_t now_ns) {
  uint64_t next = done + 1;
  if (now_ns > every->start_ns) {
    /* The latest slot whose due time has come. */
    uint64_t latest_due = (now_ns - every->start_ns) / every->period_ns;
    if (latest_due > next) {
      every->skipped += latest_due - next;
      next = latest_due;
    }
  }
  return next;
}
