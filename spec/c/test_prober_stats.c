/* SPDX-License-Identifier: MIT */
/* Unit tests for an exporter target's counters and one-minute history. */
#include "prober_stats.h"

#include <math.h>
#include <stdint.h>

#include "check.h"

#define T0 1800000000.0 /* A whole minute. */

static const double bounds[] = {0.001, 0.01, 0.1};
static const ir_buckets_t buckets = {(double*)bounds, 3};

/* Counters as smokeping_prober's families count: per status, replies per
 * bucket (a bound is inclusive), the sum in seconds, the last TTL. */
static void test_counters(void) {
  ir_prober_stats_t s;
  CHECK_EQ_INT(ir_prober_stats_init(&s, &buckets), 0);
  CHECK_EQ_INT(ir_prober_stats_record(&s, &buckets, 0, 0.5, 64, T0, 1), 0);
  CHECK_EQ_INT(ir_prober_stats_record(&s, &buckets, 0, 1.0, 63, T0, 2), 0);
  CHECK_EQ_INT(ir_prober_stats_record(&s, &buckets, 0, 50, 62, T0, 3), 0);
  CHECK_EQ_INT(ir_prober_stats_record(&s, &buckets, 0, 500, -1, T0, 4), 0);
  CHECK_EQ_INT(ir_prober_stats_record(&s, &buckets, 1, -1, -1, T0, 5), 0);
  CHECK_EQ_INT(ir_prober_stats_record(&s, &buckets, 4, -1, -1, T0, 6), 0);
  CHECK_EQ_INT(s.results[0], 4);
  CHECK_EQ_INT(s.results[1], 1);
  CHECK_EQ_INT(s.results[4], 1);
  CHECK_EQ_INT(s.replies, 4);
  CHECK_EQ_INT(s.counts[0], 2); /* 0.5 ms and 1 ms exactly */
  CHECK_EQ_INT(s.counts[1], 0);
  CHECK_EQ_INT(s.counts[2], 1);
  CHECK_EQ_INT(s.counts[3], 1); /* +Inf */
  CHECK(fabs(s.rtt_sum - 0.5515) < 1e-12);
  CHECK(s.has_ttl);
  CHECK_EQ_INT(s.ttl, 62); /* The last reply had none: the one before stays. */
  CHECK(s.history != NULL);
  CHECK_EQ_INT(s.history->sent, 6);
  CHECK_EQ_INT(s.history->received, 4);
  ir_prober_stats_free(&s);
}

/* The logarithm is the status page's (status.lua's encode), 0.034 % apart. */
static void test_encoding(void) {
  static const double ms[] = {0.0001, 0.0173, 0.5, 1, 12.3, 999, 60000, 420000};
  for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
    double back = ir_history_decode(ir_history_encode(ms[i]));
    CHECK(fabs(back - ms[i]) <= ms[i] * 0.0005);
  }
  CHECK_EQ_INT(ir_history_encode(0), 1);
  CHECK_EQ_INT(ir_history_encode(1e12), 65535);
  /* status.lua: floor(log2(1 / 1e-4) * 2048 + 0.5) + 1 */
  CHECK_EQ_INT(ir_history_encode(1), 27214);
}

/* A minute's RTTs become its seven nearest-rank quantiles when the next
 * minute starts; a minute with no probe is blanked, not left stale. */
static void test_slots(void) {
  ir_prober_stats_t s;
  CHECK_EQ_INT(ir_prober_stats_init(&s, &buckets), 0);
  for (int i = 0; i < 60; i++) {
    ir_prober_stats_record(&s, &buckets, 0, i + 1, 64, T0 + i, (uint64_t)i);
  }
  ir_prober_stats_record(&s, &buckets, 1, -1, -1, T0 + 60, 0);
  ir_history_t* h = s.history;
  int64_t first = (int64_t)(T0 / 60);
  CHECK_EQ_INT(h->slot, first + 1);
  const uint16_t* closed = h->ring[first % IR_HISTORY_SLOTS];
  CHECK_EQ_INT(closed[0], 60);
  CHECK_EQ_INT(closed[1], 60);
  CHECK_EQ_INT(closed[2], ir_history_encode(1));  /* min */
  CHECK_EQ_INT(closed[5], ir_history_encode(30)); /* median: rank 30 of 60 */
  CHECK_EQ_INT(closed[8], ir_history_encode(60)); /* max */
  /* Three minutes on, the two in between are blank. */
  uint16_t* stale = h->ring[(first + 2) % IR_HISTORY_SLOTS];
  stale[0] = 99; /* As if from three hours ago. */
  ir_prober_stats_record(&s, &buckets, 0, 2, 64, T0 + 4 * 60, 0);
  CHECK_EQ_INT(h->ring[(first + 1) % IR_HISTORY_SLOTS][0], 1); /* the timeout */
  CHECK_EQ_INT(h->ring[(first + 1) % IR_HISTORY_SLOTS][1], 0);
  CHECK_EQ_INT(stale[0], 0);
  CHECK_EQ_INT(h->slot, first + 4);
  ir_prober_stats_free(&s);
}

/* A busy minute keeps a sample of RESERVOIR RTTs, no more. */
static void test_reservoir(void) {
  ir_prober_stats_t s;
  CHECK_EQ_INT(ir_prober_stats_init(&s, &buckets), 0);
  uint64_t x = 12345;
  for (int i = 0; i < 10000; i++) {
    x = x * 6364136223846793005u + 1442695040888963407u;
    ir_prober_stats_record(&s, &buckets, 0, i % 100, 64, T0 + i / 1000.0, x >> 11);
  }
  CHECK_EQ_INT(s.history->nrtts, IR_HISTORY_RESERVOIR);
  CHECK_EQ_INT(s.history->cap, IR_HISTORY_RESERVOIR);
  CHECK_EQ_INT(s.history->sent, 10000);
  CHECK_EQ_INT(s.history->seen, 10000);
  ir_prober_stats_free(&s);
}

int main(void) {
  test_counters();
  test_encoding();
  test_slots();
  test_reservoir();
  return check_summary();
}
