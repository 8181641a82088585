/* SPDX-License-Identifier: MIT */
/* One exporter target's counters and recent history (see prober_stats.h). */
#include "prober_stats.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* RTTs as 16-bit logarithms: 2048 steps a doubling from 100 ns (1e-4 ms),
 * so 0.034 % apart, up to 2^32 x 100 ns (over 7 minutes: any timeout).
 * The status page (lua/icmprun/exporter/status.lua) decodes them. */
#define IR_LOG_STEPS 2048.0
#define IR_LOG_BASE 1e-4

uint16_t ir_history_encode(double ms) {
  if (!(ms > IR_LOG_BASE)) {
    return 1;
  }
  double v = floor(log2(ms / IR_LOG_BASE) * IR_LOG_STEPS + 0.5) + 1;
  return v > 65535 ? 65535 : (uint16_t)v;
}

double ir_history_decode(uint16_t v) {
  return IR_LOG_BASE * exp2((v - 1) / IR_LOG_STEPS);
}

static uint16_t ir__sat16(uint32_t n) {
  return n > 65535 ? 65535 : (uint16_t)n;
}

static int ir__float_cmp(const void* a, const void* b) {
  float x = *(const float*)a, y = *(const float*)b;
  return (x > y) - (x < y);
}

/* Closes the open slot into the ring: its counts, and the seven quantiles
 * (min, p10, p25, median, p75, p90, max; nearest rank) of its RTTs. */
static void ir__close_slot(ir_history_t* h) {
  static const double fractions[IR_HISTORY_QUANTILES] = {0,    0.10, 0.25, 0.50,
                                                         0.75, 0.90, 1};
  uint16_t* out = h->ring[h->slot % IR_HISTORY_SLOTS];
  memset(out, 0, sizeof(h->ring[0]));
  out[0] = ir__sat16(h->sent);
  if (h->nrtts == 0) {
    return;
  }
  out[1] = ir__sat16(h->received);
  qsort(h->rtts, h->nrtts, sizeof(*h->rtts), ir__float_cmp);
  for (int i = 0; i < IR_HISTORY_QUANTILES; i++) {
    double rank = ceil(fractions[i] * h->nrtts - 1e-9);
    uint32_t r = rank < 1 ? 1 : (uint32_t)rank;
    out[2 + i] = ir_history_encode(h->rtts[r - 1]);
  }
}

/* Moves the open slot to `slot`, closing the current one and blanking the
 * slots skipped (no probe in them), so that old data never shows as new. */
static void ir__advance(ir_history_t* h, int64_t slot) {
  ir__close_slot(h);
  int64_t skipped = slot - h->slot - 1;
  if (skipped > IR_HISTORY_SLOTS) {
    skipped = IR_HISTORY_SLOTS;
  }
  for (int64_t k = 1; k <= skipped; k++) {
    memset(h->ring[(h->slot + k) % IR_HISTORY_SLOTS], 0, sizeof(h->ring[0]));
  }
  h->slot = slot;
  h->sent = h->received = 0;
  h->seen = 0;
  h->nrtts = 0;
}

/* Keeps an RTT of the open slot: all of the first IR_HISTORY_RESERVOIR,
 * then each with equal probability (Algorithm R). */
static int ir__keep_rtt(ir_history_t* h, double ms, uint64_t random) {
  h->seen++;
  if (h->nrtts < IR_HISTORY_RESERVOIR) {
    if (h->nrtts == h->cap) {
      uint32_t cap = h->cap > 0 ? h->cap * 2 : 64;
      float* rtts = realloc(h->rtts, cap * sizeof(*rtts));
      if (rtts == NULL) {
        return -ENOMEM;
      }
      h->rtts = rtts;
      h->cap = cap;
    }
    h->rtts[h->nrtts++] = (float)ms;
    return 0;
  }
  uint64_t j = random % h->seen;
  if (j < IR_HISTORY_RESERVOIR) {
    h->rtts[j] = (float)ms;
  }
  return 0;
}

int ir_prober_stats_init(ir_prober_stats_t* stats, const ir_buckets_t* buckets) {
  memset(stats, 0, sizeof(*stats));
  stats->counts = calloc((size_t)buckets->n + 1, sizeof(*stats->counts));
  return stats->counts != NULL ? 0 : -ENOMEM;
}

void ir_prober_stats_free(ir_prober_stats_t* stats) {
  free(stats->counts);
  if (stats->history != NULL) {
    free(stats->history->rtts);
    free(stats->history);
  }
  memset(stats, 0, sizeof(*stats));
}

/* The first bucket whose bound is at least x (n for +Inf), as
 * prometheus.bucket_index less one. */
static int ir__bucket_of(const ir_buckets_t* buckets, double x) {
  int lo = 0, hi = buckets->n;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (x <= buckets->bounds[mid]) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}

int ir_prober_stats_record(ir_prober_stats_t* stats, const ir_buckets_t* buckets,
                           int status, double rtt_ms, int ttl, double now_s,
                           uint64_t random) {
  if (status >= 0 && status < IR_STATS_STATUSES) {
    stats->results[status]++;
  }
  bool reply = status == 0 && rtt_ms >= 0;
  if (reply) {
    double seconds = rtt_ms / 1000;
    stats->counts[ir__bucket_of(buckets, seconds)]++;
    stats->rtt_sum += seconds;
    stats->replies++;
    if (ttl >= 0) {
      stats->ttl = ttl;
      stats->has_ttl = true;
    }
  }
  int64_t slot = (int64_t)floor(now_s / IR_HISTORY_SLOT_SECONDS);
  ir_history_t* h = stats->history;
  if (h == NULL) {
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
      return -ENOMEM;
    }
    h->slot = slot;
    stats->history = h;
  } else if (slot > h->slot) {
    ir__advance(h, slot);
  }
  h->sent++;
  if (reply) {
    h->received++;
    return ir__keep_rtt(h, rtt_ms, random);
  }
  return 0;
}
