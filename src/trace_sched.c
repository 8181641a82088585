/* SPDX-License-Identifier: MIT */
/* When a trace's probes go out: rounds of one probe per TTL, on time. */
#include "trace_sched.h"

#define IR_PAUSE_STEP_NS 1000000u /* A paused trace with no interval polls per ms. */

void ir_trace_sched_init(ir_trace_sched_t* s, int first_ttl, int max_ttl,
                         uint64_t count, uint64_t interval_ns, bool stop_at_target,
                         uint64_t now_ns) {
  s->first_ttl = first_ttl;
  s->max_ttl = max_ttl;
  s->end_ttl = 0;
  s->next_ttl = 0;
  s->count = count;
  s->rounds = 0;
  s->interval_ns = interval_ns;
  s->next_due_ns = now_ns;
  s->stop_at_target = stop_at_target;
  s->paused = false;
  s->stopped = false;
}

int ir_trace_sched_last_ttl(const ir_trace_sched_t* s) {
  if (s->stop_at_target && s->end_ttl != 0 && s->end_ttl < s->max_ttl)
    return s->end_ttl;
  return s->max_ttl;
}

/* Hands out the round's next TTL, ending the round after its last one: a
 * round started before the end was known still stops at the end. */
static ir_trace_step_t ir__send_next(ir_trace_sched_t* s, int* ttl, uint64_t* round) {
  *ttl = s->next_ttl;
  *round = s->rounds;
  s->next_ttl = s->next_ttl + 1;
  if (s->next_ttl > ir_trace_sched_last_ttl(s))
    s->next_ttl = 0;
  return IR_TRACE_SEND;
}

ir_trace_step_t ir_trace_sched_next(ir_trace_sched_t* s, uint64_t now_ns, int* ttl,
                                    uint64_t* round, uint64_t* due_ns) {
  if (s->stopped)
    return IR_TRACE_DONE;
  if (s->next_ttl != 0 && s->next_ttl <= ir_trace_sched_last_ttl(s))
    return ir__send_next(s, ttl, round);
  s->next_ttl = 0;
  if (s->rounds >= s->count)
    return IR_TRACE_DONE;
  if (s->paused) {
    *due_ns = now_ns + (s->interval_ns > 0 ? s->interval_ns : IR_PAUSE_STEP_NS);
    return IR_TRACE_WAIT;
  }
  if (now_ns < s->next_due_ns) {
    *due_ns = s->next_due_ns;
    return IR_TRACE_WAIT;
  }
  s->rounds++;
  /* Counted from the start, but a wake-up later than a whole interval does
   * not earn a burst of rounds to catch up: the next one is an interval on. */
  s->next_due_ns += s->interval_ns;
  if (s->next_due_ns <= now_ns)
    s->next_due_ns = now_ns + s->interval_ns;
  s->next_ttl = s->first_ttl;
  return ir__send_next(s, ttl, round);
}

void ir_trace_sched_end_at(ir_trace_sched_t* s, int ttl) {
  if (ttl >= s->first_ttl && (s->end_ttl == 0 || ttl < s->end_ttl))
    s->end_ttl = ttl;
}

void ir_trace_sched_pause(ir_trace_sched_t* s) {
  s->paused = true;
}

void ir_trace_sched_resume(ir_trace_sched_t* s, uint64_t now_ns) {
  s->paused = false;
  /* The rounds that fell due while paused are not made up: the next one
   * starts now, and the rest keep their interval from it. */
  if (s->next_due_ns < now_ns)
    s->next_due_ns = now_ns;
}

void ir_trace_sched_stop(ir_trace_sched_t* s) {
  s->stopped = true;
}
