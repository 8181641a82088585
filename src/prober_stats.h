/* SPDX-License-Identifier: MIT */
/* One exporter target's counters and recent history. Pure code, no I/O. */
#ifndef ICMPRUN_PROBER_STATS_H
#define ICMPRUN_PROBER_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The counters are what /metrics writes of a target (smokeping_prober's
 * families): probes sent, results by status, the RTT histogram of the
 * replies, the last reply's TTL, duplicates. The history is what the status
 * page draws: a ring of IR_HISTORY_SLOTS one-minute slots, each closed into
 * its probes sent and answered and seven RTT quantiles stored as 16-bit
 * logarithms, and the open slot's RTTs (a uniform sample of at most
 * IR_HISTORY_RESERVOIR). Both were Lua tables updated by a Lua call per
 * result; kept here, a result costs no Lua at all, and the minute when
 * every target closes its slot at once makes no garbage. */

#define IR_HISTORY_SLOT_SECONDS 60
#define IR_HISTORY_SLOTS 180
#define IR_HISTORY_RESERVOIR 256
/* Per slot: sent, received (saturating at 65535), seven quantiles. */
#define IR_HISTORY_SLOT_FIELDS 9
#define IR_HISTORY_QUANTILES 7
/* Statuses counted: ir_status_t's, in its order. */
#define IR_STATS_STATUSES 5

typedef struct ir_history_s {
  uint16_t ring[IR_HISTORY_SLOTS][IR_HISTORY_SLOT_FIELDS];
  int64_t slot; /* The open slot: wall-clock seconds / 60. */
  uint32_t sent, received;
  uint64_t seen; /* RTTs offered to the reservoir in this slot. */
  float* rtts;   /* ms; grown to IR_HISTORY_RESERVOIR at most. */
  uint32_t nrtts, cap;
} ir_history_t;

typedef struct ir_prober_stats_s {
  int64_t sent;
  int64_t results[IR_STATS_STATUSES];
  int64_t replies;
  double rtt_sum; /* Seconds. */
  int64_t ttl;    /* Of the last reply, when has_ttl. */
  bool has_ttl;
  int64_t duplicates;
  int64_t* counts;       /* Replies per bucket (not cumulative); the last is +Inf. */
  ir_history_t* history; /* NULL until the first result. */
} ir_prober_stats_t;

/* Histogram bounds shared by every target of a prober, in seconds,
 * ascending. */
typedef struct ir_buckets_s {
  double* bounds;
  int n; /* counts has n + 1 entries. */
} ir_buckets_t;

/* Zeroed counters with room for the buckets; -ENOMEM. */
int ir_prober_stats_init(ir_prober_stats_t* stats, const ir_buckets_t* buckets);
void ir_prober_stats_free(ir_prober_stats_t* stats);

/* Counts one result: status (an ir_status_t), its RTT in ms and TTL (< 0:
 * none) when a reply, at wall-clock time now_s (for the history). `random`
 * is a 64-bit draw for the reservoir. Returns 0 or -ENOMEM (the history
 * could not be made or grown; the counters are counted all the same). */
int ir_prober_stats_record(ir_prober_stats_t* stats, const ir_buckets_t* buckets,
                           int status, double rtt_ms, int ttl, double now_s,
                           uint64_t random);

/* The 16-bit logarithm of an RTT in ms, and back (see prober_stats.c). */
uint16_t ir_history_encode(double ms);
double ir_history_decode(uint16_t v);

#endif
