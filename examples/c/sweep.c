/* SPDX-License-Identifier: MIT */
/* A sweep in C on icmprun's engine: one echo request to every address of an
 * IPv4 block, at most WINDOW in flight at once; prints the addresses that
 * answer, as `fping -a` does.
 *
 *   cc sweep.c $(pkg-config --cflags --libs icmprun-engine) -o sweep
 *   ./sweep 127.0.0.0/28
 *
 * The engine takes any number of probes at once, each with its own timeout;
 * the window only keeps memory flat on a large block. Pacing, retries and
 * randomised order are what icmprun.sweep adds on top in the Lua binding. */
#include <arpa/inet.h>
#include <engine.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW 256

typedef struct sweep_s {
  ir_engine_t* engine;
  uint32_t next, last; /* Host-order addresses still to probe. */
  unsigned in_flight;
  unsigned answered;
  bool done; /* Every address has been queued. */
} sweep_t;

static void fill_window(sweep_t* s);

static void on_result(ir_engine_t* engine, const ir_result_t* r) {
  sweep_t* s = r->data;
  s->in_flight--;
  if (r->status == IR_STATUS_REPLY) {
    char addr[IR_ADDR_STRLEN];
    ir_addr_format(&r->addr, addr, sizeof(addr));
    printf("%s\n", addr);
    s->answered++;
  }
  fill_window(s);
  if (s->done && s->in_flight == 0) {
    ir_engine_close(engine);
  }
}

/* Queues probes until WINDOW are in flight or the block is done. Results
 * never come back from inside ir_engine_probe, so this never recurses. */
static void fill_window(sweep_t* s) {
  while (!s->done && s->in_flight < WINDOW) {
    ir_probe_spec_t spec = {.timeout_ms = IR_DEFAULT_TIMEOUT_MS,
                            .size = IR_DEFAULT_SIZE};
    spec.addr.family = AF_INET;
    uint32_t be = htonl(s->next);
    memcpy(spec.addr.bytes, &be, 4);
    if (ir_engine_probe(s->engine, &spec, on_result, s) == 0) {
      s->in_flight++;
    }
    if (s->next == s->last) {
      s->done = true;
    } else {
      s->next++;
    }
  }
}

int main(int argc, char** argv) {
  char text[64];
  const char* slash = argc == 2 ? strchr(argv[1], '/') : NULL;
  ir_addr_t base;
  int bits = slash != NULL ? atoi(slash + 1) : -1;
  if (slash == NULL || (size_t)(slash - argv[1]) >= sizeof(text) || bits < 8 ||
      bits > 32) {
    fprintf(stderr, "usage: sweep A.B.C.D/BITS (BITS from 8 to 32)\n");
    return 2;
  }
  memcpy(text, argv[1], (size_t)(slash - argv[1]));
  text[slash - argv[1]] = '\0';
  if (ir_addr_parse(text, &base) != 0 || base.family != AF_INET) {
    fprintf(stderr, "sweep: '%s' is not an IPv4 address\n", text);
    return 2;
  }
  uint32_t be;
  memcpy(&be, base.bytes, 4);
  uint32_t mask = bits == 32 ? 0xffffffffu : ~(0xffffffffu >> bits);
  sweep_t s = {.next = ntohl(be) & mask, .last = (ntohl(be) & mask) | ~mask};

  uv_loop_t loop;
  uv_loop_init(&loop);
  ir_engine_config_t config = {.socket_mode = IR_SOCKET_AUTO};
  int err = ir_engine_new(&loop, &config, &s.engine);
  if (err == 0 && (err = ir_engine_open(s.engine, AF_INET)) < 0) {
    fprintf(stderr, "sweep: %s\n", ir_engine_socket_error(s.engine, AF_INET));
    ir_engine_close(s.engine);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 2;
  }
  if (err < 0) {
    fprintf(stderr, "sweep: %s\n", uv_strerror(err));
    return 2;
  }
  fill_window(&s);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return s.answered > 0 ? 0 : 1;
}
