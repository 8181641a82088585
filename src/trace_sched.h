/* SPDX-License-Identifier: MIT */
/* When a trace's probes go out: rounds of one probe per TTL. Pure code. */
#ifndef ICMPRUN_TRACE_SCHED_H
#define ICMPRUN_TRACE_SCHED_H

#include <stdbool.h>
#include <stdint.h>

/* A trace probes every TTL from first_ttl to the last one in each round, all
 * at once, and starts a round every interval, counted from the start so that
 * one late wake-up does not push every later round back. Once the path's
 * end is known (the target, or an unreachable error, answered at end_ttl),
 * rounds stop there if stop_at_target. A pause holds the rounds; a resume
 * starts the next one at once if it fell due meanwhile; a stop ends them.
 * The caller gives the time (any monotonic nanoseconds), so tests run on a
 * fake clock. Owned by the caller, no allocation; all fields private. */
typedef struct ir_trace_sched_s {
  int first_ttl;
  int max_ttl;
  int end_ttl;  /* 0 while unknown. */
  int next_ttl; /* Next TTL of the round under way; 0 between rounds. */
  uint64_t count;
  uint64_t rounds; /* Rounds started. */
  uint64_t interval_ns;
  uint64_t next_due_ns; /* When the next round starts. */
  bool stop_at_target;
  bool paused;
  bool stopped;
} ir_trace_sched_t;

typedef enum ir_trace_step_e {
  IR_TRACE_SEND, /* Send one probe now: *ttl, in round *round (from 1). */
  IR_TRACE_WAIT, /* Nothing to send before *due_ns: ask again then. */
  IR_TRACE_DONE  /* Every round has been sent, or the trace was stopped. */
} ir_trace_step_t;

/* count rounds (UINT64_MAX: until stopped), the first starting at now_ns.
 * 1 <= first_ttl <= max_ttl <= 255, which the caller has checked. */
void ir_trace_sched_init(ir_trace_sched_t* s, int first_ttl, int max_ttl,
                         uint64_t count, uint64_t interval_ns, bool stop_at_target,
                         uint64_t now_ns);

/* What to do at now_ns. A paused trace waits one interval at a time (or a
 * millisecond with no interval), so that a resume is seen within that. */
ir_trace_step_t ir_trace_sched_next(ir_trace_sched_t* s, uint64_t now_ns, int* ttl,
                                    uint64_t* round, uint64_t* due_ns);

/* The path ends at ttl (it only ever comes nearer): later probes stop there. */
void ir_trace_sched_end_at(ir_trace_sched_t* s, int ttl);

/* The last TTL a round probes now: the end when known and stop_at_target,
 * otherwise max_ttl. */
int ir_trace_sched_last_ttl(const ir_trace_sched_t* s);

void ir_trace_sched_pause(ir_trace_sched_t* s);
void ir_trace_sched_resume(ir_trace_sched_t* s, uint64_t now_ns);
void ir_trace_sched_stop(ir_trace_sched_t* s);

#endif
