/* SPDX-License-Identifier: MIT */
/* The floor for the exporter benchmark's lateness: a bare libuv loop that
 * keeps the exporter's schedule (TARGETS deadlines a second, each at a
 * random phase of its own, repeating every second) and does nothing else.
 * It arms its timer and measures the way the exporter's prober does (a timer
 * for the whole milliseconds from now to the next deadline, rounded down; on
 * firing, what is due within the next millisecond leaves now, late by now
 * less its deadline), and asks for the same scheduling slice as icmprun's
 * loop (src/loop_slice.c). Run beside the exporter, it shows how late this
 * machine lets a loop that holds nothing wake.
 *
 *   baretimer SECONDS TARGETS OUT
 *       writes a line a second to OUT when done: the wall-clock time the
 *       second ended (seconds since the epoch) and its worst lateness (ns),
 *       so that its seconds can be matched to the exporter's */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <uv.h>

#include "loop_slice.h"

#define NS_PER_MS 1000000u
#define NS_PER_S 1000000000u
#define EARLY_NS NS_PER_MS /* as the prober's IR_PROBER_EARLY_NS */

typedef struct {
  uv_timer_t timer;
  uint64_t* phases; /* Each target's offset in the second, ascending. */
  size_t ntargets;
  size_t next;         /* The target due next, */
  uint64_t second;     /* in the schedule's second that starts here. */
  uint64_t due;        /* The next deadline: second + phases[next]. */
  uint64_t stop_at;    /* The end of the run. */
  uint64_t second_end; /* The end of the second being measured. */
  uint64_t worst;      /* Its worst lateness so far. */
  uint64_t* worsts;    /* Each second's worst. */
  double* ends;        /* When each second ended, on the wall clock. */
  size_t nworsts;
  size_t cap;
} bare_timer_t;

static void on_timer(uv_timer_t* timer);

/* As the prober's ir__arm: whole milliseconds from now to the next
 * deadline, rounded down. */
static void arm(bare_timer_t* b) {
  uint64_t now = uv_hrtime();
  uv_timer_start(&b->timer, on_timer, b->due > now ? (b->due - now) / NS_PER_MS : 0, 0);
}

static void on_timer(uv_timer_t* timer) {
  bare_timer_t* b = timer->data;
  uint64_t now = uv_hrtime();
  while (b->due <= now + EARLY_NS) {
    if (now > b->due && now - b->due > b->worst) {
      b->worst = now - b->due;
    }
    if (++b->next == b->ntargets) {
      b->next = 0;
      b->second += NS_PER_S;
    }
    b->due = b->second + b->phases[b->next];
  }
  if (now >= b->second_end && b->nworsts < b->cap) {
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    b->ends[b->nworsts] = (double)wall.tv_sec + (double)wall.tv_nsec / 1e9;
    b->worsts[b->nworsts++] = b->worst;
    b->worst = 0;
    b->second_end += NS_PER_S;
  }
  if (now < b->stop_at) {
    arm(b);
  } else {
    uv_close((uv_handle_t*)timer, NULL);
  }
}

static int by_value(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  long seconds = argc == 4 ? strtol(argv[1], NULL, 10) : 0;
  long targets = argc == 4 ? strtol(argv[2], NULL, 10) : 0;
  if (seconds <= 0 || targets <= 0) {
    fprintf(stderr, "usage: baretimer SECONDS TARGETS OUT\n");
    return 2;
  }
  const char* out_path = argv[3];
  ir_loop_slice_request(IR_LOOP_SLICE_NS);
  bare_timer_t b = {0};
  b.cap = (size_t)seconds + 1;
  b.worsts = calloc(b.cap, sizeof(*b.worsts));
  b.ends = calloc(b.cap, sizeof(*b.ends));
  b.ntargets = (size_t)targets;
  b.phases = calloc(b.ntargets, sizeof(*b.phases));
  if (b.worsts == NULL || b.ends == NULL || b.phases == NULL) {
    perror("baretimer");
    return 1;
  }
  /* Spread as the prober spreads its targets' first probes. */
  srand48((long)uv_hrtime());
  for (size_t i = 0; i < b.ntargets; i++) {
    b.phases[i] = (uint64_t)(drand48() * NS_PER_S);
  }
  qsort(b.phases, b.ntargets, sizeof(*b.phases), by_value);
  uv_loop_t* loop = uv_default_loop();
  uv_timer_init(loop, &b.timer);
  b.timer.data = &b;
  uint64_t start = uv_hrtime();
  b.second = start;
  b.due = start + b.phases[0];
  b.second_end = start + NS_PER_S;
  b.stop_at = start + (uint64_t)seconds * NS_PER_S;
  arm(&b);
  uv_run(loop, UV_RUN_DEFAULT);
  /* Written aside and renamed: whoever waits for OUT reads it whole. */
  char part[4096];
  snprintf(part, sizeof(part), "%s.part", out_path);
  FILE* out = fopen(part, "w");
  if (out == NULL) {
    perror(part);
    return 1;
  }
  for (size_t i = 0; i < b.nworsts; i++) {
    fprintf(out, "%.3f %llu\n", b.ends[i], (unsigned long long)b.worsts[i]);
  }
  free(b.worsts);
  free(b.ends);
  free(b.phases);
  if (fclose(out) != 0 || rename(part, out_path) != 0) {
    perror(out_path);
    return 1;
  }
  return 0;
}
