/* SPDX-License-Identifier: MIT */
/* Unit tests for the sweep schedule on a fake clock and a fake sender: turn
 * order, pacing, retries with backoff, shards, the window, and stop/close with
 * probes in flight. */
#include "sweep.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "check.h"

#define MS 1000000ull
#define MAX_SENT 4096

/* One probe the sweep handed over. */
typedef struct sent_s {
  char addr[IR_ADDR_STRLEN];
  ir_addr_t raw;
  uint64_t at;
  uint32_t timeout_ms;
  void* data;
  bool done;
} sent_t;

/* The world the sweep sees: a clock that moves only when told, a sender
 * that records, and counters of what the sweep asked for. */
typedef struct fake_s {
  uint64_t now;
  uint32_t queued;
  int send_error;
  bool cancel_delivers; /* Cancel ends the probes at once (as the engine). */
  sent_t sent[MAX_SENT];
  size_t nsent;
  unsigned wakes;
  unsigned cancels;
} fake_t;

static uint64_t fake_now(void* ctx) {
  return ((fake_t*)ctx)->now;
}

static int fake_send(void* ctx, const ir_probe_spec_t* spec, void* data) {
  fake_t* f = ctx;
  if (f->send_error != 0) {
    return f->send_error;
  }
  if (f->nsent == MAX_SENT) {
    return -ENOBUFS;
  }
  sent_t* s = &f->sent[f->nsent++];
  ir_addr_format(&spec->addr, s->addr, sizeof(s->addr));
  s->raw = spec->addr;
  s->at = f->now;
  s->timeout_ms = spec->timeout_ms;
  s->data = data;
  s->done = false;
  return 0;
}

static uint32_t fake_queued(void* ctx) {
  return ((fake_t*)ctx)->queued;
}

/* Ends probe i with a status, as the engine would call back. */
static void finish(fake_t* f, size_t i, ir_status_t status, int error) {
  ir_result_t r;
  ir_result_blank(&r, status, &f->sent[i].raw);
  r.error = error;
  r.data = f->sent[i].data;
  f->sent[i].done = true;
  CHECK(ir_sweep_probe_done(&r) == f);
}

static void fake_cancel(void* ctx, const void* group) {
  fake_t* f = ctx;
  (void)group;
  f->cancels++;
  if (!f->cancel_delivers) {
    return;
  }
  for (size_t i = 0; i < f->nsent; i++) {
    if (!f->sent[i].done) {
      finish(f, i, IR_STATUS_ERROR, -ECANCELED);
    }
  }
}

static void fake_wake(void* ctx) {
  ((fake_t*)ctx)->wakes++;
}

/* Counts the targets given back: each data is an int counter. */
static void fake_release(void* ctx, void* data) {
  (void)ctx;
  (*(int*)data)++;
}

static const ir_sweep_ops_t fake_ops = {fake_now,    fake_send, fake_queued,
                                        fake_cancel, fake_wake, fake_release};

static fake_t* fake_new(void) {
  fake_t* f = calloc(1, sizeof(*f));
  f->now = 1000 * MS; /* Not zero: a sweep's times are absolute. */
  f->cancel_delivers = true;
  return f;
}

static ir_sweep_config_t config_default(void) {
  ir_sweep_config_t c;
  memset(&c, 0, sizeof(c));
  c.probe.timeout_ms = 1000;
  c.probe.size = 56;
  c.count = 1;
  c.interval_ms = 1000;
  c.rate = 0;
  c.backoff = 1.5;
  c.window = 100000;
  c.limit = 1u << 24;
  c.shard_count = 1;
  return c;
}

static ir_sweep_t* sweep_new(fake_t* f, const ir_sweep_config_t* c) {
  ir_sweep_t* s = NULL;
  CHECK_EQ_INT(ir_sweep_new(c, &fake_ops, f, &s), 0);
  return s;
}

static void add(ir_sweep_t* s, const char* text) {
  ir_block_t block;
  char why[128];
  CHECK_EQ_INT(ir_target_parse(text, &block, why, sizeof(why)), IR_TARGET_BLOCK);
  CHECK_EQ_INT(ir_sweep_add_target(s, text, &block), 0);
}

/* Pumps at every time the sweep asks for, up to `until` (absolute). */
static void run_until(fake_t* f, ir_sweep_t* s, uint64_t until) {
  for (;;) {
    ir_sweep_next_t next;
    ir_sweep_pump(s, &next);
    if (next.at_ns == 0 || next.at_ns > until) {
      f->now = until;
      return;
    }
    f->now = next.at_ns > f->now ? next.at_ns : f->now;
  }
}

/* Takes every result in the ring; returns how many there were. */
static unsigned drain(ir_sweep_t* s) {
  unsigned n = 0;
  while (ir_sweep_peek(s) != NULL) {
    ir_sweep_pop(s);
    n++;
  }
  return n;
}

static void test_turn_order(void) {
  /* Every address's first probe at once (unpaced), then each next probe one
   * interval after its previous turn, earliest first. */
  fake_t* f = fake_new();
  uint64_t t0 = f->now;
  ir_sweep_config_t c = config_default();
  c.count = 3;
  c.interval_ms = 100;
  ir_sweep_t* s = sweep_new(f, &c);
  add(s, "10.0.0.0/30");
  ir_sweep_targets_done(s);
  run_until(f, s, t0 + 250 * MS);
  CHECK_EQ_INT(f->nsent, 12);
  static const char* const order[] = {"10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3"};
  for (size_t i = 0; i < 12 && i < f->nsent; i++) {
    CHECK_EQ_STR(f->sent[i].addr, order[i % 4]);
    CHECK_EQ_INT(f->sent[i].at - t0, (i / 4) * 100 * MS);
  }
  for (size_t i = 0; i < f->nsent; i++) {
    finish(f, i, IR_STATUS_REPLY, 0);
  }
  /* Results in the order they came, numbered per address. */
  for (unsigned n = 1; n <= 3; n++) {
    for (size_t a = 0; a < 4; a++) {
      const ir_sweep_item_t* item = ir_sweep_peek(s);
      CHECK(item != NULL);
      if (item == NULL) {
        break;
      }
      CHECK_EQ_INT(item->n, n);
      CHECK_EQ_STR(item->source->text, "10.0.0.0/30");
      ir_sweep_pop(s);
    }
  }
  CHECK(ir_sweep_finished(s));
  ir_sweep_free(s);
  free(f);
}

static void test_turns_keep_order_across_targets(void) {
  /* Paced at 1000/s with count 2: the second probes of the first target
   * come before new addresses of the second whose turns are later. */
  fake_t* f = fake_new();
  uint64_t t0 = f->now;
  ir_sweep_config_t c = config_default();
  c.rate = 1000;
  c.count = 2;
  c.interval_ms = 5;
  ir_sweep_t* s = sweep_new(f, &c);
  add(s, "10.0.0.0/31");
  add(s, "10.0.1.0/27");
  ir_sweep_targets_done(s);
  run_until(f, s, t0 + 1000 * MS);
  CHECK_EQ_INT(f->nsent, 68);
  /* The burst of 10 takes the first 10 addresses at once, then one goes out
   * each millisecond... */
  for (size_t i = 0; i < 10; i++) {
    CHECK_EQ_INT(f->sent[i].at, t0);
  }
  for (size_t i = 10; i < f->nsent; i++) {
    CHECK(f->sent[i].at > f->sent[i - 1].at);
  }
  /* ... in the order of the turns: new addresses until t0 + 4 ms, then at
   * t0 + 5 ms 10.0.0.0's second probe (its turn) before the 15th address
   * (whose turn is t0 + 14 ms), then the other second probes of the burst. */
  CHECK_EQ_STR(f->sent[13].addr, "10.0.1.11");
  CHECK_EQ_STR(f->sent[14].addr, "10.0.0.0");
  CHECK(f->sent[14].at >= t0 + 5 * MS && f->sent[14].at < t0 + 5 * MS + 1000);
  CHECK_EQ_STR(f->sent[15].addr, "10.0.0.1");
  CHECK_EQ_STR(f->sent[16].addr, "10.0.1.0");
  ir_sweep_free(s);
  free(f);
}

static void test_pacing(void) {
  /* 100 probes a second allow a burst of one: one probe every 10 ms. */
  fake_t* f = fake_new();
  uint64_t t0 = f->now;
  ir_sweep_config_t c = config_default();
  c.rate = 100;
  ir_sweep_t* s = sweep_new(f, &c);
  add(s, "10.0.0.0/27");
  ir_sweep_targets_done(s);
  run_until(f, s, t0 + 10000 * MS);
  CHECK_EQ_INT(f->nsent, 32);
  for (size_t i = 0; i < f->nsent; i++) {
    uint64_t want = t0 + i * 10 * MS;
    CHECK(f->sent[i].at >= want && f->sent[i].at < want + 1000);
  }
  ir_sweep_free(s);
  free(f);

  /* 20,000 a second: a burst of 64 at once, then the rate over any second. */
  f = fake_new();
  t0 = f->now;
  c.rate = 20000;
  s = sweep_new(f, &c);
  add(s, "10.0.0.0/20");
  ir_sweep_targets_done(s);
  run_until(f, s, t0 + 100 * MS);
  size_t at_start = 0;
  for (size_t i = 0; i < f->nsent; i++) {
    at_start += f->sent[i].at == t0;
  }
  CHECK_EQ_INT(at_start, 64);
  /* 64 + 100 ms * 20/ms, give or take one token's rounding. */
  CHECK(f->nsent >= 64 + 1999 && f->nsent <= 64 + 2001);
  ir_sweep_free(s);
  free(f);
}

static void test_backoff(void) {
  /* Two retries, each timeout twice the one before; only the last attempt is
   * a result, unless every attempt is asked for. */
  for (int every = 0; every <= 1; every++) {
    fake_t* f = fake_new();
    ir_sweep_config_t c = config_default();
    c.retries = 2;
    c.backoff = 2;
    c.probe.timeout_ms = 100;
    c.every_attempt = every;
    ir_sweep_t* s = sweep_new(f, &c);
    add(s, "10.0.0.7");
    ir_sweep_targets_done(s);
    for (size_t attempt = 0; attempt < 3; attempt++) {
      run_until(f, s, f->now);
      CHECK_EQ_INT(f->nsent, attempt + 1);
      CHECK_EQ_INT(f->sent[attempt].timeout_ms, 100u << attempt);
      CHECK_EQ_STR(f->sent[attempt].addr, "10.0.0.7");
      finish(f, attempt, IR_STATUS_TIMEOUT, 0);
    }
    run_until(f, s, f->now + 10000 * MS);
    CHECK_EQ_INT(f->nsent, 3);
    unsigned want = every ? 3 : 1;
    for (unsigned i = 0; i < want; i++) {
      const ir_sweep_item_t* item = ir_sweep_peek(s);
      CHECK(item != NULL);
      if (item != NULL) {
        CHECK_EQ_INT(item->result.status, IR_STATUS_TIMEOUT);
        CHECK_EQ_INT(item->attempt, every ? i : 2);
        CHECK_EQ_INT(item->n, 1);
        ir_sweep_pop(s);
      }
    }
    CHECK(ir_sweep_peek(s) == NULL);
    CHECK(ir_sweep_finished(s));
    ir_sweep_free(s);
    free(f);
  }

  /* A reply to the second attempt ends it: no third. */
  fake_t* f = fake_new();
  ir_sweep_config_t c = config_default();
  c.retries = 2;
  ir_sweep_t* s = sweep_new(f, &c);
  add(s, "10.0.0.7");
  ir_sweep_targets_done(s);
  run_until(f, s, f->now);
  finish(f, 0, IR_STATUS_TIMEOUT, 0);
  run_until(f, s, f->now);
  finish(f, 1, IR_STATUS_REPLY, 0);
  run_until(f, s, f->now + 10000 * MS);
  CHECK_EQ_INT(f->nsent, 2);
  const ir_sweep_item_t* item = ir_sweep_peek(s);
  CHECK(item != NULL && item->result.status == IR_STATUS_REPLY && item->attempt == 1);
  CHECK_EQ_INT(drain(s), 1);
  /* An unreachable answer is no timeout: never resent. */
  ir_sweep_free(s);
  f->nsent = 0;
  s = sweep_new(f, &c);
  add(s, "10.0.0.8");
  ir_sweep_targets_done(s);
  run_until(f, s, f->now);
  finish(f, 0, IR_STATUS_UNREACHABLE, 0);
  run_until(f, s, f->now + 10000 * MS);
  CHECK_EQ_INT(f->nsent, 1);
  CHECK_EQ_INT(drain(s), 1);
  ir_sweep_free(s);
  free(f);
}

static void test_shards(void) {
  /* n shards with the same targets, order and seed cover every address
   * exactly once, in parts that differ in size by at most one per target. */
  static const uint32_t counts[] = {1, 2, 3, 7, 256, 300};
  for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
    uint32_t n = counts[k];
    unsigned seen[300] = {0};
    size_t smallest = SIZE_MAX, largest = 0;
    for (uint32_t i = 0; i < n; i++) {
      fake_t* f = fake_new();
      ir_sweep_config_t c = config_default();
      c.random = true;
      c.seed = 42;
      c.shard_index = i;
      c.shard_count = n;
      ir_sweep_t* s = sweep_new(f, &c);
      add(s, "10.0.0.0/24");
      add(s, "10.0.1.0-10.0.1.43");
      ir_sweep_targets_done(s);
      run_until(f, s, f->now);
      for (size_t j = 0; j < f->nsent; j++) {
        /* 10.0.0.x is x, 10.0.1.x is 256 + x. */
        const uint8_t* b = f->sent[j].raw.bytes;
        unsigned host = (unsigned)b[2] * 256 + b[3];
        if (host < 300) {
          seen[host]++;
        }
      }
      smallest = f->nsent < smallest ? f->nsent : smallest;
      largest = f->nsent > largest ? f->nsent : largest;
      ir_sweep_close(s);
      ir_sweep_free(s);
      free(f);
    }
    for (unsigned h = 0; h < 300; h++) {
      CHECK_EQ_INT(seen[h], 1);
    }
    CHECK(largest - smallest <= 2);
  }
}

static void test_window(void) {
  /* No more than `window` probes in flight: one more for each that ends. */
  fake_t* f = fake_new();
  ir_sweep_config_t c = config_default();
  c.window = 4;
  ir_sweep_t* s = sweep_new(f, &c);
  add(s, "10.0.0.0/29");
  ir_sweep_targets_done(s);
  run_until(f, s, f->now);
  CHECK_EQ_INT(f->nsent, 4);
  CHECK_EQ_INT(ir_sweep_in_flight(s), 4);
  finish(f, 2, IR_STATUS_REPLY, 0);
  run_until(f, s, f->now);
  CHECK_EQ_INT(f->nsent, 5);
  CHECK_EQ_STR(f->sent[4].addr, "10.0.0.4");
  for (size_t i = 0; i < 8; i++) {
    if (i < f->nsent && !f->sent[i].done) {
      finish(f, i, IR_STATUS_REPLY, 0);
    }
    run_until(f, s, f->now);
  }
  CHECK_EQ_INT(f->nsent, 8);
  CHECK_EQ_INT(drain(s), 8);
  CHECK(ir_sweep_finished(s));
  ir_sweep_free(s);
  free(f);

  /* A full engine queue: nothing is handed over, and the caller is asked to
   * come back on the next turn of its loop. */
  f = fake_new();
  f->queued = IR_SWEEP_QUEUE_MAX;
  s = sweep_new(f, &c);
  add(s, "10.0.0.0/29");
  ir_sweep_targets_done(s);
  ir_sweep_next_t next;
  ir_sweep_pump(s, &next);
  CHECK(next.soon);
  CHECK_EQ_INT(f->nsent, 0);
  f->queued = 0;
  ir_sweep_pump(s, &next);
  CHECK(!next.soon);
  CHECK_EQ_INT(f->nsent, 4);
  ir_sweep_close(s);
  ir_sweep_free(s);
  free(f);
}

static void test_targets(void) {
  /* One target walked and one ready behind it; a third is refused, and so
   * is one over the limit. A failure is a result of its own. */
  fake_t* f = fake_new();
  ir_sweep_config_t c = config_default();
  c.limit = 10;
  ir_sweep_t* s = sweep_new(f, &c);
  CHECK(ir_sweep_wants_target(s));
  add(s, "10.0.0.0/30");
  CHECK(ir_sweep_wants_target(s));
  ir_block_t block;
  char why[64];
  ir_target_parse("10.0.1.0/29", &block, why, sizeof(why));
  CHECK_EQ_INT(ir_sweep_add_target(s, "10.0.1.0/29", &block), -E2BIG);
  add(s, "10.0.1.0/30");
  CHECK(!ir_sweep_wants_target(s));
  ir_target_parse("10.0.2.0", &block, why, sizeof(why));
  CHECK_EQ_INT(ir_sweep_add_target(s, "10.0.2.0", &block), -EBUSY);
  unsigned wakes = f->wakes;
  CHECK_EQ_INT(ir_sweep_add_failure(s, "no-such.example", -3008), 0);
  CHECK(f->wakes > wakes);
  const ir_sweep_item_t* item = ir_sweep_peek(s);
  CHECK(item != NULL && item->failure == -3008);
  if (item != NULL) {
    CHECK_EQ_STR(item->source->text, "no-such.example");
  }
  ir_sweep_pop(s);
  /* Walking the first target asks for another. */
  wakes = f->wakes;
  run_until(f, s, f->now);
  CHECK_EQ_INT(f->nsent, 8);
  CHECK(f->wakes > wakes);
  CHECK(ir_sweep_wants_target(s));
  CHECK(!ir_sweep_finished(s));
  ir_sweep_targets_done(s);
  CHECK(!ir_sweep_wants_target(s));
  for (size_t i = 0; i < f->nsent; i++) {
    finish(f, i, IR_STATUS_REPLY, 0);
  }
  CHECK_EQ_INT(drain(s), 8);
  CHECK(ir_sweep_finished(s));
  ir_sweep_free(s);
  free(f);
}

static void test_send_failure(void) {
  fake_t* f = fake_new();
  ir_sweep_config_t c = config_default();
  ir_sweep_t* s = sweep_new(f, &c);
  add(s, "10.0.0.0/29");
  ir_sweep_targets_done(s);
  /* A probe the engine refuses (no socket for its family) ends in one error
   * result with the reason, and the sweep goes on with the others. */
  f->send_error = -EAFNOSUPPORT;
  unsigned wakes = f->wakes;
  run_until(f, s, f->now);
  int family = 0;
  CHECK_EQ_INT(ir_sweep_failure(s, &family), 0);
  CHECK(f->wakes > wakes);
  unsigned errors = 0;
  for (const ir_sweep_item_t* item; (item = ir_sweep_peek(s)) != NULL;
       ir_sweep_pop(s)) {
    CHECK_EQ_INT(item->result.status, IR_STATUS_ERROR);
    CHECK_EQ_INT(item->result.error, -EAFNOSUPPORT);
    CHECK_EQ_INT(item->n, 1);
    errors++;
  }
  CHECK_EQ_INT(errors, 8);
  CHECK_EQ_INT(f->nsent, 0);
  CHECK(ir_sweep_finished(s));
  ir_sweep_close(s);
  ir_sweep_free(s);
  free(f);

  /* Out of memory is the sweep's own failure: nothing more is sent. */
  f = fake_new();
  s = sweep_new(f, &c);
  add(s, "10.0.0.0/29");
  ir_sweep_targets_done(s);
  f->send_error = -ENOMEM;
  run_until(f, s, f->now);
  CHECK_EQ_INT(ir_sweep_failure(s, &family), -ENOMEM);
  f->send_error = 0;
  run_until(f, s, f->now + 1000 * MS);
  CHECK_EQ_INT(f->nsent, 0);
  ir_sweep_close(s);
  ir_sweep_free(s);
  free(f);
}

/* Four addresses, three probes each, one retry: the first probes are out,
 * 10.0.0.0's has timed out (waiting for its resend), 10.0.0.1 answered. */
static ir_sweep_t* sweep_in_flight(fake_t* f) {
  ir_sweep_config_t c = config_default();
  c.count = 3;
  c.retries = 1;
  ir_sweep_t* s = sweep_new(f, &c);
  add(s, "10.0.0.0/30");
  ir_sweep_targets_done(s);
  run_until(f, s, f->now);
  CHECK_EQ_INT(f->nsent, 4);
  finish(f, 0, IR_STATUS_TIMEOUT, 0);
  finish(f, 1, IR_STATUS_REPLY, 0);
  return s;
}

static void test_stop_in_flight(void) {
  /* stop(): nothing more is sent, what is in flight is cancelled through
   * the sender, the probe waiting for a resend ends as the timeout it was,
   * and every result known is still handed out. */
  fake_t* f = fake_new();
  ir_sweep_t* s = sweep_in_flight(f);
  ir_sweep_stop(s);
  CHECK_EQ_INT(f->cancels, 1);
  CHECK_EQ_INT(ir_sweep_in_flight(s), 0);
  run_until(f, s, f->now + 10000 * MS);
  CHECK_EQ_INT(f->nsent, 4);
  unsigned replies = 0, timeouts = 0, cancelled = 0;
  const ir_sweep_item_t* item;
  while ((item = ir_sweep_peek(s)) != NULL) {
    replies += item->result.status == IR_STATUS_REPLY;
    timeouts += item->result.status == IR_STATUS_TIMEOUT;
    cancelled += item->result.error == -ECANCELED;
    ir_sweep_pop(s);
  }
  CHECK_EQ_INT(replies, 1);
  CHECK_EQ_INT(timeouts, 1);
  CHECK_EQ_INT(cancelled, 2);
  CHECK(ir_sweep_finished(s));
  CHECK(!ir_sweep_wants_target(s));
  ir_sweep_free(s);
  free(f);
}

static void test_close_in_flight(void) {
  /* close(): as stop, and nothing more is handed out. */
  fake_t* f = fake_new();
  ir_sweep_t* s = sweep_in_flight(f);
  ir_sweep_close(s);
  CHECK_EQ_INT(f->cancels, 1);
  CHECK(ir_sweep_peek(s) == NULL);
  CHECK(ir_sweep_finished(s));
  run_until(f, s, f->now + 10000 * MS);
  CHECK_EQ_INT(f->nsent, 4);
  ir_sweep_free(s);
  free(f);

  /* A sender whose cancel ends its probes later (an engine that has gone):
   * the results that come after close are dropped and free their probes. */
  f = fake_new();
  f->cancel_delivers = false;
  s = sweep_in_flight(f);
  unsigned wakes = f->wakes;
  ir_sweep_close(s);
  CHECK_EQ_INT(ir_sweep_in_flight(s), 2);
  finish(f, 2, IR_STATUS_REPLY, 0);
  finish(f, 3, IR_STATUS_ERROR, -ECANCELED);
  CHECK_EQ_INT(ir_sweep_in_flight(s), 0);
  CHECK(ir_sweep_peek(s) == NULL);
  CHECK_EQ_INT(f->wakes, wakes);
  ir_sweep_free(s);
  free(f);
}

static void test_workers(void) {
  /* n workers with the same targets (single addresses and blocks), inside
   * each of two shards, cover the shard's addresses exactly once between
   * them, and single-address targets are spread rather than all left to
   * worker 1. */
  static const char* const targets[] = {"10.0.0.1", "10.0.0.2",    "10.0.0.3",
                                        "10.0.0.4", "10.0.1.0/25", "10.0.0.5"};
  for (uint32_t n = 1; n <= 4; n++) {
    unsigned seen[2][512];
    memset(seen, 0, sizeof(seen));
    for (uint32_t shard = 0; shard < 2; shard++) {
      unsigned singles_of_worker1 = 0;
      for (uint32_t w = 0; w < n; w++) {
        fake_t* f = fake_new();
        ir_sweep_config_t c = config_default();
        c.random = true;
        c.seed = 7;
        c.shard_index = shard;
        c.shard_count = 2;
        c.worker_index = w;
        c.worker_count = n;
        ir_sweep_t* s = sweep_new(f, &c);
        for (size_t t = 0; t < sizeof(targets) / sizeof(targets[0]); t++) {
          while (!ir_sweep_wants_target(s)) {
            run_until(f, s, f->now);
          }
          add(s, targets[t]);
        }
        ir_sweep_targets_done(s);
        run_until(f, s, f->now);
        for (size_t j = 0; j < f->nsent; j++) {
          const uint8_t* b = f->sent[j].raw.bytes;
          seen[shard][(unsigned)b[2] * 256 + b[3]]++;
          if (w == 0 && b[2] == 0) {
            singles_of_worker1++;
          }
        }
        ir_sweep_close(s);
        ir_sweep_free(s);
        free(f);
      }
      if (shard == 0 && n > 1) {
        CHECK(singles_of_worker1 < 5);
      }
    }
    /* A single address is position 0 of its walk: shard 1's. The /25's
     * positions alternate between the shards. */
    for (unsigned h = 0; h < 512; h++) {
      bool single = h >= 1 && h <= 5;
      bool block = h >= 256 && h < 384;
      CHECK_EQ_INT(seen[0][h] + seen[1][h], single || block ? 1 : 0);
      CHECK_EQ_INT(seen[1][h], single ? 0 : seen[1][h]);
    }
    unsigned in_shard2 = 0;
    for (unsigned h = 256; h < 384; h++) {
      in_shard2 += seen[1][h];
    }
    CHECK_EQ_INT(in_shard2, 64);
  }
}

/* ---- Workers that share the addresses out as they go ---- */

#define SHARED_MAX 3

/* Workers on fake clocks sharing one sweep of 10.0.0.0/26 and 10.0.1.0/28
 * (80 addresses) in chunks of 4, at most 2 probes in flight each. */
typedef struct shared_s {
  ir_sweep_share_t share;
  fake_t* f[SHARED_MAX];
  ir_sweep_t* s[SHARED_MAX];
  unsigned n;
  unsigned seen[2][256]; /* Results for 10.0.X.Y: [X][Y]. */
  unsigned replies[SHARED_MAX];
  unsigned errors[SHARED_MAX]; /* EIO, as the abandon makes them. */
} shared_t;

static void shared_new(shared_t* sh, unsigned n) {
  memset(sh, 0, sizeof(*sh));
  sh->n = n;
  atomic_init(&sh->share.next_chunk, n);
  atomic_init(&sh->share.live, n);
  sh->share.chunk = 4;
  for (unsigned w = 0; w < n; w++) {
    ir_sweep_config_t c = config_default();
    c.window = 2;
    c.worker_index = w;
    c.worker_count = n;
    c.share = &sh->share;
    sh->f[w] = fake_new();
    sh->s[w] = sweep_new(sh->f[w], &c);
    add(sh->s[w], "10.0.0.0/26");
    add(sh->s[w], "10.0.1.0/28");
    ir_sweep_targets_done(sh->s[w]);
  }
}

/* One turn of worker w: it pumps, abandons if a send failed (as a worker
 * thread does), every probe it sent is answered, and its results are taken. */
static void shared_turn(shared_t* sh, unsigned w) {
  fake_t* f = sh->f[w];
  ir_sweep_t* s = sh->s[w];
  ir_sweep_next_t next;
  ir_sweep_pump(s, &next);
  int err = ir_sweep_failure(s, NULL);
  if (err != 0) {
    ir_sweep_abandon(s, err);
  }
  for (size_t i = 0; i < f->nsent; i++) {
    if (!f->sent[i].done) {
      finish(f, i, IR_STATUS_REPLY, 0);
    }
  }
  const ir_sweep_item_t* item;
  while ((item = ir_sweep_peek(s)) != NULL) {
    const uint8_t* b = item->result.addr.bytes;
    sh->seen[b[2]][b[3]]++;
    sh->replies[w] += item->result.status == IR_STATUS_REPLY;
    sh->errors[w] +=
        item->result.status == IR_STATUS_ERROR && item->result.error == -EIO;
    ir_sweep_pop(s);
  }
}

/* Turns, worker w taking turns[w] of every round, until all have finished;
 * then every address has exactly one result. */
static void shared_run(shared_t* sh, const unsigned* turns) {
  bool all = false;
  for (int round = 0; round < 1000 && !all; round++) {
    all = true;
    for (unsigned w = 0; w < sh->n; w++) {
      for (unsigned t = 0; t < turns[w] && !ir_sweep_finished(sh->s[w]); t++) {
        shared_turn(sh, w);
      }
      all = all && ir_sweep_finished(sh->s[w]);
    }
  }
  CHECK(all);
  for (unsigned y = 0; y < 256; y++) {
    CHECK_EQ_INT(sh->seen[0][y], y < 64 ? 1 : 0);
    CHECK_EQ_INT(sh->seen[1][y], y < 16 ? 1 : 0);
  }
}

static void shared_free(shared_t* sh) {
  for (unsigned w = 0; w < sh->n; w++) {
    ir_sweep_free(sh->s[w]);
    free(sh->f[w]);
  }
}

static void test_shared_workers(void) {
  /* A worker that gets three turns for the other's one (its core is free,
   * the other's busy) probes more of the addresses, and the two together
   * probe each exactly once. */
  shared_t sh;
  shared_new(&sh, 2);
  shared_run(&sh, (const unsigned[]){3, 1});
  CHECK_EQ_INT(sh.replies[0] + sh.replies[1], 80);
  CHECK(sh.replies[0] >= 2 * sh.replies[1]);
  CHECK(sh.replies[1] >= 4); /* At least the chunk it starts with. */
  shared_free(&sh);
}

static void test_shared_abandon(void) {
  /* Worker 2 of 3 breaks after its first two probes: the other two of the
   * chunk it holds end as its errors, it claims no more, and the others
   * probe the rest. */
  shared_t sh;
  shared_new(&sh, 3);
  shared_turn(&sh, 1);
  CHECK_EQ_INT(sh.f[1]->nsent, 2);
  sh.f[1]->send_error = -EIO;
  shared_run(&sh, (const unsigned[]){1, 1, 1});
  CHECK_EQ_INT(sh.replies[1], 2);
  CHECK_EQ_INT(sh.errors[1], 2);
  CHECK_EQ_INT(sh.replies[0] + sh.replies[2], 76);
  CHECK_EQ_INT(sh.errors[0] + sh.errors[2], 0);
  shared_free(&sh);

  /* Both of 2 break, one after the other: the last one ends every address
   * left as an error, never a gap. */
  shared_new(&sh, 2);
  shared_turn(&sh, 0);
  sh.f[0]->send_error = -EIO;
  shared_turn(&sh, 1);
  shared_turn(&sh, 0); /* Abandoned, not the last: holds chunk 0. */
  shared_turn(&sh, 1);
  sh.f[1]->send_error = -EIO;
  shared_run(&sh, (const unsigned[]){1, 1});
  CHECK_EQ_INT(sh.replies[0] + sh.errors[0], 4);
  CHECK_EQ_INT(sh.replies[0], 2);
  CHECK_EQ_INT(sh.replies[1], 4);
  CHECK_EQ_INT(sh.errors[1], 80 - 4 - 4);
  shared_free(&sh);
}

/* The results left in the ring: counts of each status, and of each
 * (address's last byte, n) pair in seen. */
static unsigned drain_counting(ir_sweep_t* s, unsigned seen[256][4], int* errors,
                               int err) {
  unsigned total = 0;
  const ir_sweep_item_t* item;
  while ((item = ir_sweep_peek(s)) != NULL) {
    seen[item->result.addr.bytes[3]][item->n]++;
    if (item->result.status == IR_STATUS_ERROR && item->result.error == err) {
      (*errors)++;
    }
    total++;
    ir_sweep_pop(s);
  }
  return total;
}

static void test_abandon(void) {
  /* A sweep whose sends fail part way, then is abandoned: the probe whose
   * send failed, those in flight (cancelled), a resend that waits, the later
   * probes of addresses begun, and every address not yet drawn (also of a
   * target added after) each end in exactly one result. */
  fake_t* f = fake_new();
  int released = 0;
  ir_sweep_config_t c = config_default();
  c.count = 3;
  c.interval_ms = 100;
  c.retries = 1;
  c.window = 6;
  c.queue_max = 5; /* Several pumps to make all the abandoned results. */
  ir_sweep_t* s = sweep_new(f, &c);
  ir_block_t block;
  char why[64];
  CHECK_EQ_INT(ir_target_parse("10.0.0.0/28", &block, why, sizeof(why)),
               IR_TARGET_BLOCK);
  CHECK_EQ_INT(ir_sweep_add_target_data(s, "10.0.0.0/28", &block, &released), 0);
  run_until(f, s, f->now);
  CHECK_EQ_INT(f->nsent, 6);
  finish(f, 0, IR_STATUS_REPLY, 0);
  finish(f, 1, IR_STATUS_TIMEOUT, 0); /* Waits for its resend. */
  f->send_error = -EIO;
  run_until(f, s, f->now);
  CHECK_EQ_INT(ir_sweep_failure(s, NULL), -EIO);
  unsigned seen[256][4];
  memset(seen, 0, sizeof(seen));
  int errors = 0;
  unsigned total = drain_counting(s, seen, &errors, -EIO);
  ir_sweep_abandon(s, -EIO);
  CHECK_EQ_INT(ir_sweep_failure(s, NULL), 0);
  CHECK_EQ_INT(ir_sweep_in_flight(s), 0); /* Cancelled, as the engine does. */
  ir_block_t more;
  CHECK_EQ_INT(ir_target_parse("10.0.0.16/30", &more, why, sizeof(why)),
               IR_TARGET_BLOCK);
  int pumps = 0;
  bool added = false;
  for (; pumps < 100 && !ir_sweep_finished(s); pumps++) {
    ir_sweep_next_t next;
    ir_sweep_pump(s, &next);
    total += drain_counting(s, seen, &errors, -EIO);
    if (!added && ir_sweep_wants_target(s)) {
      CHECK_EQ_INT(ir_sweep_add_target_data(s, "10.0.0.16/30", &more, &released), 0);
      ir_sweep_targets_done(s);
      added = true;
    }
  }
  CHECK(added);
  CHECK(ir_sweep_finished(s));
  CHECK(pumps > 3);
  CHECK_EQ_INT(f->nsent, 6); /* Nothing more was sent. */
  CHECK_EQ_INT(total, 20 * 3);
  for (unsigned h = 0; h < 20; h++) {
    for (unsigned n = 1; n <= 3; n++) {
      CHECK_EQ_INT(seen[h][n], 1);
    }
  }
  /* All but the reply and the four cancelled probes are the abandon's. */
  CHECK_EQ_INT(errors, 60 - 1 - 4);
  CHECK_EQ_INT(released, 2);
  ir_sweep_free(s);
  free(f);
}

static void test_abandon_after_stop(void) {
  /* A stopped sweep owes nothing more: abandon adds no result. */
  fake_t* f = fake_new();
  ir_sweep_t* s = sweep_in_flight(f);
  ir_sweep_stop(s);
  unsigned before = ir_sweep_results(s);
  ir_sweep_abandon(s, -EIO);
  ir_sweep_next_t next;
  ir_sweep_pump(s, &next);
  CHECK_EQ_INT(ir_sweep_results(s), before);
  drain(s);
  CHECK(ir_sweep_finished(s));
  ir_sweep_free(s);
  free(f);
}

int main(void) {
  test_turn_order();
  test_turns_keep_order_across_targets();
  test_pacing();
  test_backoff();
  test_shards();
  test_window();
  test_targets();
  test_send_failure();
  test_stop_in_flight();
  test_close_in_flight();
  test_workers();
  test_shared_workers();
  test_shared_abandon();
  test_abandon();
  test_abandon_after_stop();
  return check_summary();
}
