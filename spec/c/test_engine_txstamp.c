/* SPDX-License-Identifier: MIT */
/* The engine's send times of one sendmmsg batch: the kernel's, one per probe,
 * against our clock's single read for the whole batch. Needs the private
 * test network of scripts/netns (ping sockets on loopback). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <uv.h>

#include "check.h"
#include "engine.h"

/* One send batch: as many probes as one sendmmsg call takes (IR_MMSG_BATCH),
 * queued together so that the flusher sends them in one call. */
#define BATCH 64

typedef struct run_s {
  ir_result_t results[BATCH];
  int count;
} run_t;

static void on_result(ir_engine_t* engine, const ir_result_t* result) {
  (void)engine;
  run_t* run = result->data;
  run->results[run->count++] = *result;
}

static int64_t ns_of(const struct timespec* t) {
  return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

/* Sends BATCH probes to 127.0.0.1..BATCH and fills run with their results,
 * in the order they were queued (and sent). */
static void probe_batch(ir_tx_stamp_mode_t mode, run_t* run) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  ir_engine_config_t config = {.tx_stamp = mode};
  ir_engine_t* engine = NULL;
  CHECK_EQ_INT(ir_engine_new(&loop, &config, &engine), 0);
  CHECK_EQ_INT(ir_engine_open(engine, AF_INET), 0);
  run_t unordered = {.count = 0};
  for (int i = 0; i < BATCH; i++) {
    char text[32];
    snprintf(text, sizeof(text), "127.0.0.%d", i + 1);
    ir_probe_spec_t spec = {.timeout_ms = 500, .size = 56};
    CHECK_EQ_INT(ir_addr_parse(text, &spec.addr), 0);
    CHECK_EQ_INT(ir_engine_probe(engine, &spec, on_result, &unordered), 0);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(unordered.count, BATCH);
  /* Results come in reply order; put them back in send order. */
  run->count = 0;
  for (int i = 0; i < BATCH; i++) {
    for (int j = 0; j < unordered.count; j++) {
      if (unordered.results[j].addr.bytes[3] == i + 1) {
        run->results[run->count++] = unordered.results[j];
      }
    }
  }
  CHECK_EQ_INT(run->count, BATCH);
  ir_engine_close(engine);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
}

int main(void) {
  run_t run;
  /* Kernel stamps: each probe of the batch has its own send time, strictly
   * later than the one sent before it, and before its reply. */
  probe_batch(IR_TX_STAMP_AUTO, &run);
  int distinct = 0;
  for (int i = 0; i < run.count; i++) {
    CHECK_EQ_INT(run.results[i].status, IR_STATUS_REPLY);
    CHECK(run.results[i].tx_kernel);
    CHECK(run.results[i].rtt_ms > 0);
    if (i > 0 && ns_of(&run.results[i].sent) > ns_of(&run.results[i - 1].sent)) {
      distinct++;
    }
  }
  CHECK_EQ_INT(distinct, BATCH - 1);

  /* Our clock: one read before the call serves the whole batch. */
  probe_batch(IR_TX_STAMP_USER, &run);
  int shared = 0;
  for (int i = 0; i < run.count; i++) {
    CHECK(!run.results[i].tx_kernel);
    if (ns_of(&run.results[i].sent) == ns_of(&run.results[0].sent)) {
      shared++;
    }
  }
  CHECK_EQ_INT(shared, BATCH);
  return check_summary();
}
