/* SPDX-License-Identifier: MIT */
/* One thread for work that may wait (the exporter's render and gzip), at the
 * lowest priority, that the loop's thread hands work to and never waits on.
 *
 * Why not libuv's thread pool: a pool thread that finishes wakes the loop
 * with uv_async_send, and libuv 1.44's loop spins while a sender is between
 * the two halves of that call. Lower the pool thread's priority (so that it
 * does not push the loop off a core) and a sender preempted there keeps the
 * loop spinning for milliseconds: probes leave late. Here the loop hands an
 * item over with one atomic exchange and a sem_post, and learns that it is
 * done by reading an atomic of its own (the item's owner polls), so the
 * thread's priority can be as low as it likes. */
#ifndef ICMPRUN_BACKGROUND_H
#define ICMPRUN_BACKGROUND_H

#include <stdbool.h>

typedef struct ir_background_s ir_background_t;
typedef struct ir_background_item_s ir_background_item_t;

struct ir_background_item_s {
  ir_background_item_t* next; /* The hand-over list's; not the caller's. */
  /* Runs on the background thread. `cancelled`: the thread is stopping and
   * the item did not start; it must end at once (and may free itself). */
  void (*run)(ir_background_item_t* item, bool cancelled);
};

/* Starts the thread. Returns 0 or a negative errno. */
int ir_background_start(ir_background_t** out);

/* Hands an item over; it runs soon, on the thread. Never blocks. */
void ir_background_submit(ir_background_t* bg, ir_background_item_t* item);

/* Runs what started to its end, every item still waiting with `cancelled`
 * set, joins the thread and frees it. From the thread that started it. */
void ir_background_stop(ir_background_t* bg);

#endif
