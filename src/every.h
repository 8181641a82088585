/* SPDX-License-Identifier: MIT */
/* The schedule of icmprun.every: fixed slots that never drift. Pure code. */
#ifndef ICMPRUN_EVERY_H
#define ICMPRUN_EVERY_H

#include <stdint.h>

/* Slot n is due at start_ns + n * period_ns, whatever the calls cost: the
 * schedule is computed from the start, never from the end of the last call,
 * so that errors do not add up (fping -p and smokeping keep such a grid). */
typedef struct ir_every_s {
  uint64_t start_ns;
  uint64_t period_ns; /* > 0. */
  uint64_t skipped;   /* Slots that came and went during a longer call. */
} ir_every_t;

void ir_every_init(ir_every_t* every, uint64_t start_ns, uint64_t period_ns);

/* When slot n is due. */
uint64_t ir_every_due(const ir_every_t* every, uint64_t slot);

/* The slot to run after slot `done` ended at now_ns. Normally done + 1, run
 * at its due time. If the call overran, the latest slot already due runs at
 * once (late) and the ones before it are skipped and counted: one late call
 * catches up with the grid instead of a burst of calls. */
uint64_t ir_every_after(ir_every_t* every, uint64_t done, uint64_t now_ns);

#endif
