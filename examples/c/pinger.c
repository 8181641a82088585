/* SPDX-License-Identifier: MIT */
/* A small ping in C on icmprun's engine: COUNT echo requests to one address,
 * one every INTERVAL ms, each line and a summary as ping prints them.
 *
 *   cc pinger.c $(pkg-config --cflags --libs icmprun-engine) -o pinger
 *   ./pinger 127.0.0.1 3 200
 *
 * The engine is a libuv handle owner like any other: it runs on the caller's
 * loop, calls back once per probe with its result, and is freed by the loop
 * after ir_engine_close. */
#include <engine.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pinger_s {
  ir_engine_t* engine;
  uv_timer_t timer;
  ir_probe_spec_t spec;
  int count;    /* Probes to send. */
  int sent;     /* Probes queued so far. */
  int received; /* Replies. */
  int ended;    /* Results of any status. */
} pinger_t;

/* Called exactly once per probe, with its result. */
static void on_result(ir_engine_t* engine, const ir_result_t* r) {
  pinger_t* p = r->data;
  char addr[IR_ADDR_STRLEN];
  ir_addr_format(&r->addr, addr, sizeof(addr));
  if (r->status == IR_STATUS_REPLY) {
    p->received++;
    printf("%u bytes from %s: icmp_seq=%u ttl=%d time=%.3f ms\n", r->bytes, addr,
           r->seq, r->ttl, r->rtt_ms);
  } else {
    printf("%s: icmp_seq=%u %s\n", addr, r->seq, ir_status_name(r->status));
  }
  if (++p->ended == p->count) {
    /* Every probe has ended: closing the engine lets the loop finish. */
    uv_close((uv_handle_t*)&p->timer, NULL);
    ir_engine_close(engine);
  }
}

/* Sends the next probe on every tick of the timer. */
static void on_tick(uv_timer_t* timer) {
  pinger_t* p = timer->data;
  int err = ir_engine_probe(p->engine, &p->spec, on_result, p);
  if (err < 0) {
    /* A refused probe never calls back: count it as ended here. */
    fprintf(stderr, "pinger: %s\n", uv_strerror(err));
    p->count--;
  } else {
    p->sent++;
  }
  if (p->sent >= p->count) {
    uv_timer_stop(timer);
  }
  if (p->count == p->ended) {
    uv_close((uv_handle_t*)&p->timer, NULL);
    ir_engine_close(p->engine);
  }
}

int main(int argc, char** argv) {
  if (argc < 2 || argc > 4) {
    fprintf(stderr, "usage: pinger ADDRESS [COUNT [INTERVAL_MS]]\n");
    return 2;
  }
  pinger_t p = {0};
  p.count = argc > 2 ? atoi(argv[2]) : 3;
  int interval = argc > 3 ? atoi(argv[3]) : 1000;
  if (ir_addr_parse(argv[1], &p.spec.addr) != 0 || p.count < 1 || interval < 1) {
    fprintf(stderr,
            "pinger: need a numeric address, COUNT >= 1 and INTERVAL_MS >= 1\n");
    return 2;
  }
  p.spec.timeout_ms = IR_DEFAULT_TIMEOUT_MS;
  p.spec.size = IR_DEFAULT_SIZE;

  uv_loop_t loop;
  uv_loop_init(&loop);
  ir_engine_config_t config = {.socket_mode = IR_SOCKET_AUTO};
  int err = ir_engine_new(&loop, &config, &p.engine);
  if (err == 0) {
    err = ir_engine_open(p.engine, p.spec.addr.family);
  }
  if (err < 0) {
    const char* why =
        p.engine != NULL ? ir_engine_socket_error(p.engine, p.spec.addr.family) : NULL;
    fprintf(stderr, "pinger: %s\n", why != NULL ? why : uv_strerror(err));
    if (p.engine != NULL) {
      ir_engine_close(p.engine);
      uv_run(&loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&loop);
    return 2;
  }
  printf("PING %s: %u data bytes (%s socket)\n", argv[1], p.spec.size,
         ir_engine_socket_kind(p.engine, p.spec.addr.family));
  uv_timer_init(&loop, &p.timer);
  p.timer.data = &p;
  uv_timer_start(&p.timer, on_tick, 0, (uint64_t)interval);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  printf("%d packets transmitted, %d received\n", p.sent, p.received);
  return p.received > 0 ? 0 : 1;
}
