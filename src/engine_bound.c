/* SPDX-License-Identifier: MIT */
/* Sockets bound to a source address or an interface: found by binding, opened
 * on first use, one per (family, source, device) for all probes that ask. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

/* How long a bound socket whose bind failed refuses probes with that error
 * before it is tried again (ms): long enough that a sweep over many targets
 * does not make a socket per probe, short enough that a daemon picks up an
 * address added to the host. */
#define IR_BIND_RETRY_MS 1000

/* The source address that applies to spec's probe: its own family's only. */
static bool ir__spec_source(const ir_probe_spec_t* spec) {
  return spec->source.family != AF_UNSPEC && spec->source.family == spec->addr.family;
}

bool ir__spec_is_bound(const ir_probe_spec_t* spec) {
  return spec->device[0] != '\0' || ir__spec_source(spec);
}

static bool ir__binding_equal(const ir_socket_t* sock, const ir_probe_spec_t* spec) {
  if (sock->family != spec->addr.family ||
      strncmp(sock->device, spec->device, IR_DEVICE_LEN) != 0) {
    return false;
  }
  bool has_source = ir__spec_source(spec);
  if (has_source != (sock->source.family != AF_UNSPEC)) {
    return false;
  }
  return !has_source || ir_addr_equal(&sock->source, &spec->source);
}

const ir_socket_t* ir__bound_find(const ir_engine_t* engine,
                                  const ir_probe_spec_t* spec) {
  for (ir_socket_t* sock = engine->bound; sock != NULL; sock = sock->next_bound) {
    if (ir__binding_equal(sock, spec)) {
      return sock;
    }
  }
  return NULL;
}

/* A new closed socket with spec's binding, on the engine's list. */
static ir_socket_t* ir__bound_new(ir_engine_t* engine, const ir_probe_spec_t* spec) {
  ir_socket_t* sock = calloc(1, sizeof(*sock));
  if (sock == NULL) {
    return NULL;
  }
  sock->engine = engine;
  sock->family = spec->addr.family;
  sock->fd = -1;
  if (ir__spec_source(spec)) {
    sock->source = spec->source;
  }
  /* The spec's name need not end in a NUL; ours does. */
  memcpy(sock->device, spec->device, IR_DEVICE_LEN);
  sock->device[IR_DEVICE_LEN - 1] = '\0';
  sock->next_bound = engine->bound;
  engine->bound = sock;
  return sock;
}

ir_socket_t* ir__bound_socket(ir_engine_t* engine, const ir_probe_spec_t* spec,
                              ir_socket_t** failed, int* err) {
  *failed = NULL;
  if (strnlen(spec->device, IR_DEVICE_LEN) == IR_DEVICE_LEN) {
    *err = -ENODEV; /* No interface has a name this long. */
    return NULL;
  }
  ir_socket_t* sock = (ir_socket_t*)ir__bound_find(engine, spec);
  if (sock == NULL && (sock = ir__bound_new(engine, spec)) == NULL) {
    *err = -ENOMEM;
    return NULL;
  }
  if (sock->fd >= 0) {
    return sock;
  }
  uint64_t now = uv_now(engine->loop);
  if (engine->closing) {
    *err = -ECANCELED;
  } else if (sock->open_error != 0 && now < sock->retry_open_at) {
    *err = sock->open_error;
  } else {
    *err = ir__socket_start(engine, sock);
    if (*err == 0) {
      return sock;
    }
    sock->retry_open_at = now + IR_BIND_RETRY_MS;
  }
  *failed = sock;
  return NULL;
}

void ir__each_socket(ir_engine_t* engine, void (*fn)(ir_socket_t* sock)) {
  fn(&engine->v4);
  fn(&engine->v6);
  for (ir_socket_t* sock = engine->bound; sock != NULL; sock = sock->next_bound) {
    fn(sock);
  }
}
