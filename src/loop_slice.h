/* SPDX-License-Identifier: MIT */
/* A short scheduling slice for the loop's thread, so that it gets a core
 * within a fraction of a millisecond of its timer, even from a process that
 * holds the core.
 *
 * Linux's EEVDF scheduler lets the task on a core finish its slice (1.4 ms
 * here) before a woken task of the same priority takes the core, and
 * without a timer tick in between that stretches to the tick (4 ms at
 * HZ=250): probes of a loop woken behind a scraping client left 3 to 5 ms
 * late. Since Linux 6.12 a task may ask for a shorter slice (sched_attr's
 * sched_runtime on SCHED_OTHER, 0.1 to 100 ms, no privilege needed); a
 * woken task with a shorter slice than the running one's takes the core at
 * once. Its share of CPU does not change; only when it runs. */
#ifndef ICMPRUN_LOOP_SLICE_H
#define ICMPRUN_LOOP_SLICE_H

#include <stdint.h>

/* The slice the loop's thread asks for by default. */
#define IR_LOOP_SLICE_NS 100000u
/* What the kernel accepts. */
#define IR_LOOP_SLICE_MIN_NS 100000u
#define IR_LOOP_SLICE_MAX_NS 100000000u

/* The slice to ask for, from ICMPRUN_LOOP_SLICE (NULL or empty when unset): "default"
 * keeps the kernel's (0), a whole number of microseconds in the kernel's
 * range asks for that. Anything else is named on stderr, and the default
 * asked for. */
uint64_t ir_loop_slice_wanted(const char* setting);

/* Asks for a slice of slice_ns (0: asks nothing) for the calling thread,
 * keeping its policy and nice value. Returns the slice the kernel then
 * reports, or 0 when it has none to report (a kernel before 6.12 takes the
 * call and ignores sched_runtime; an older one refuses it). */
uint64_t ir_loop_slice_request(uint64_t slice_ns);

#endif
