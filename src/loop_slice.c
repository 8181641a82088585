/* SPDX-License-Identifier: MIT */
/* The loop thread's scheduling slice (see loop_slice.h). */
#include "loop_slice.h"

#include <errno.h>
#include <linux/sched.h>
#include <linux/sched/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* glibc 2.36 has no wrappers for these. */
static int ir__sched_getattr(struct sched_attr* attr) {
  memset(attr, 0, sizeof(*attr));
  return (int)syscall(SYS_sched_getattr, 0, attr, sizeof(*attr), 0);
}

uint64_t ir_loop_slice_wanted(const char* setting) {
  if (setting == NULL || setting[0] == '\0') {
    return IR_LOOP_SLICE_NS;
  }
  if (strcmp(setting, "default") == 0) {
    return 0;
  }
  char* end;
  errno = 0;
  unsigned long long us = strtoull(setting, &end, 10);
  if (errno == 0 && end != setting && *end == '\0' && setting[0] != '-' &&
      us >= IR_LOOP_SLICE_MIN_NS / 1000 && us <= IR_LOOP_SLICE_MAX_NS / 1000) {
    return (uint64_t)us * 1000;
  }
  fprintf(
      stderr,
      "icmprun: ICMPRUN_LOOP_SLICE=%s: expected \"default\" or microseconds from %u to "
      "%u; asking for %u\n",
      setting, IR_LOOP_SLICE_MIN_NS / 1000, IR_LOOP_SLICE_MAX_NS / 1000,
      IR_LOOP_SLICE_NS / 1000);
  return IR_LOOP_SLICE_NS;
}

uint64_t ir_loop_slice_request(uint64_t slice_ns) {
  struct sched_attr attr;
  if (slice_ns == 0) {
    return 0;
  }
  if (ir__sched_getattr(&attr) != 0 || attr.sched_policy != SCHED_NORMAL) {
    return 0; /* A real-time or idle policy is the caller's choice: kept. */
  }
  attr.sched_runtime = slice_ns;
  /* Threads and processes started from here (the render thread, libuv's
   * pool, commands a script runs) keep the kernel's slice. */
  attr.sched_flags = SCHED_FLAG_RESET_ON_FORK;
  if (syscall(SYS_sched_setattr, 0, &attr, 0) != 0 || ir__sched_getattr(&attr) != 0) {
    return 0;
  }
  /* Before 6.12 the field reads back as 0 (or as whatever the kernel keeps
   * there for SCHED_OTHER): only a slice as asked counts as granted. */
  return attr.sched_runtime == slice_ns ? slice_ns : 0;
}
