/* SPDX-License-Identifier: MIT */
/* Small helpers shared by the engine and the Lua binding, defined once. */
#ifndef ICMPRUN_COMMON_H
#define ICMPRUN_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* The struct that holds `member` at address ptr (libuv's uv-common.h). */
#define IR_CONTAINER_OF(ptr, type, member) \
  ((type*)((char*)(ptr)-offsetof(type, member)))

/* Elements of an array (not of a pointer). */
#define IR_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Nanoseconds to whole milliseconds, rounded up: libuv's timers count
 * milliseconds, and a timer must never fire before the deadline it is for. */
static inline uint64_t ir_ns_to_ms_ceil(uint64_t ns) {
  return ns / 1000000u + (ns % 1000000u != 0);
}

/* The registry key of the Lua binding's runtime userdata. */
#define IR_RUNTIME_KEY "icmprun.runtime"

/* The longest timeout, interval or sleep any option accepts: one day, in
 * milliseconds. Longer waits are a script's loop, not one timer. */
#define IR_MAX_WAIT_MS 86400000

#endif
