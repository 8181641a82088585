/* SPDX-License-Identifier: MIT */
/* The engine's life cycle, probe pool, deadline expirer and result delivery. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common.h"
#include "engine_internal.h"
#include "packet_flow.h"

#define IR_PROBES_PER_CHUNK 1024

static void ir__on_expire(uv_timer_t* timer);
static void ir__on_flush(uv_prepare_t* prepare);
static void ir__on_retry(uv_timer_t* timer);

const char* ir_status_name(ir_status_t status) {
  switch (status) {
    case IR_STATUS_REPLY:
      return "reply";
    case IR_STATUS_TIMEOUT:
      return "timeout";
    case IR_STATUS_UNREACHABLE:
      return "unreachable";
    case IR_STATUS_TTL_EXCEEDED:
      return "ttl_exceeded";
    case IR_STATUS_ERROR:
      return "error";
  }
  return "error";
}

int ir_status_from_name(const char* name) {
  for (int status = IR_STATUS_REPLY; status <= IR_STATUS_ERROR; status++) {
    if (strcmp(name, ir_status_name((ir_status_t)status)) == 0) {
      return status;
    }
  }
  return -1;
}

void ir_result_blank(ir_result_t* out, ir_status_t status, const ir_addr_t* addr) {
  memset(out, 0, sizeof(*out));
  out->status = status;
  out->addr = *addr;
  out->ttl = out->icmp_type = out->icmp_code = -1;
  out->corrupt_offset = -1;
}

void ir_result_unsent(ir_result_t* out, const ir_addr_t* addr, int error, void* data) {
  ir_result_blank(out, IR_STATUS_ERROR, addr);
  out->error = error;
  out->data = data;
}

const char* ir_error_name(int err) {
  /* libuv's own codes (getaddrinfo's EAI_*, EOF) are not errno values, and
   * libuv names a value it does not know with a string it allocates, so
   * plain errno values are named by glibc. */
  const char* name = err < 0 && err > -4096 ? strerrorname_np(-err) : NULL;
  if (name != NULL) {
    return name;
  }
  switch (err) {
#define IR_UV_NAME(code, _) \
  case UV_##code:           \
    return #code;
    UV_ERRNO_MAP(IR_UV_NAME)
#undef IR_UV_NAME
    default:
      return "UNKNOWN";
  }
}

int ir_engine_new(uv_loop_t* loop, const ir_engine_config_t* config,
                  ir_engine_t** out) {
  ir_engine_t* engine = calloc(1, sizeof(*engine));
  if (engine == NULL) {
    return -ENOMEM;
  }
  engine->loop = loop;
  if (config != NULL) {
    engine->config = *config;
  }
  engine->v4.engine = engine;
  engine->v4.family = AF_INET;
  engine->v4.fd = -1;
  engine->v6.engine = engine;
  engine->v6.family = AF_INET6;
  engine->v6.fd = -1;
  ir_heap_init(&engine->deadlines);
  ir_table_init(&engine->in_flight);
  if (getrandom(&engine->run_cookie, sizeof(engine->run_cookie), GRND_NONBLOCK) < 0) {
    engine->run_cookie = (uint32_t)getpid() * 2654435761u ^ (uint32_t)uv_hrtime();
  }
  engine->next_token = 1;
  /* As libuv reads UV_THREADPOOL_SIZE: an override for any program on the
   * engine, so that its RTTs can be compared with our clock's. */
  const char* tx_stamp = getenv("ICMPRUN_TX_STAMP");
  if (tx_stamp != NULL && strcmp(tx_stamp, "user") == 0) {
    engine->config.tx_stamp = IR_TX_STAMP_USER;
  } else if (tx_stamp != NULL && strcmp(tx_stamp, "kernel") == 0) {
    engine->config.tx_stamp = IR_TX_STAMP_KERNEL;
  } else if (tx_stamp != NULL && strcmp(tx_stamp, "verify") == 0) {
    engine->config.tx_stamp = IR_TX_STAMP_VERIFY;
  } else if (tx_stamp != NULL && tx_stamp[0] != '\0' && strcmp(tx_stamp, "auto") != 0) {
    free(engine);
    return -EINVAL;
  }
  const char* tx_keys = getenv("ICMPRUN_TX_KEYS");
  if (tx_keys != NULL && strcmp(tx_keys, "counter") == 0) {
    engine->config.tx_keys_counter = true;
  }

  /* The expirer and retry timer keep the loop alive only while armed, which is
   * exactly while something is pending. The flusher is referenced only while
   * the send queue is not empty. */
  uv_timer_init(loop, &engine->expirer);
  engine->expirer.data = engine;
  uv_timer_init(loop, &engine->retry_timer);
  engine->retry_timer.data = engine;
  uv_idle_init(loop, &engine->kicker);
  engine->kicker.data = engine;
  uv_prepare_init(loop, &engine->flusher);
  engine->flusher.data = engine;
  uv_prepare_start(&engine->flusher, ir__on_flush);
  uv_unref((uv_handle_t*)&engine->flusher);
  *out = engine;
  return 0;
}

int ir__socket_start(ir_engine_t* engine, ir_socket_t* sock) {
  int err = ir__socket_open(sock, sock->family, &engine->config);
  if (err != 0) {
    return err;
  }
  err = uv_poll_init_socket(engine->loop, &sock->poll, sock->fd);
  if (err != 0) {
    ir__socket_close_fd(sock);
    sock->open_error = err;
    snprintf(sock->error_message, sizeof(sock->error_message),
             "cannot watch the ICMP socket: %s", uv_strerror(err));
    return err;
  }
  sock->poll.data = sock;
  sock->poll_started = true;
  ir__socket_update_poll(sock);
  return 0;
}

/* The socket of that family, opened on first use; NULL if it cannot be. */
ir_socket_t* ir__engine_socket(ir_engine_t* engine, int family) {
  ir_socket_t* sock = family == AF_INET ? &engine->v4 : &engine->v6;
  if (sock->fd < 0 && sock->open_error == 0 && !engine->closing) {
    (void)ir__socket_start(engine, sock);
  }
  return sock->fd >= 0 ? sock : NULL;
}

int ir_engine_open(ir_engine_t* engine, int family) {
  if (family != AF_INET && family != AF_INET6) {
    return -EAFNOSUPPORT;
  }
  ir_socket_t* sock = ir__engine_socket(engine, family);
  if (sock != NULL) {
    return 0;
  }
  ir_socket_t* failed = family == AF_INET ? &engine->v4 : &engine->v6;
  return failed->open_error != 0 ? failed->open_error : -EBADF;
}

const char* ir_engine_socket_error(const ir_engine_t* engine, int family) {
  const ir_socket_t* sock = family == AF_INET ? &engine->v4 : &engine->v6;
  return sock->open_error != 0 ? sock->error_message : NULL;
}

int ir_engine_open_for(ir_engine_t* engine, const ir_probe_spec_t* spec) {
  int family = spec->addr.family;
  if (!ir__spec_is_bound(spec) || (family != AF_INET && family != AF_INET6)) {
    return ir_engine_open(engine, family);
  }
  ir_socket_t* failed;
  int err;
  return ir__bound_socket(engine, spec, &failed, &err) != NULL ? 0 : err;
}

const char* ir_engine_socket_kind_for(const ir_engine_t* engine,
                                      const ir_probe_spec_t* spec) {
  int family = spec->addr.family;
  if (!ir__spec_is_bound(spec) || (family != AF_INET && family != AF_INET6)) {
    return ir_engine_socket_kind(engine, family);
  }
  const ir_socket_t* sock = ir__bound_find(engine, spec);
  return sock != NULL && sock->fd >= 0 ? ir__socket_kind_name(sock->kind) : NULL;
}

const char* ir_engine_probe_error(const ir_engine_t* engine,
                                  const ir_probe_spec_t* spec) {
  int family = spec->addr.family;
  if (family != AF_INET && family != AF_INET6) {
    return NULL;
  }
  if (!ir__spec_is_bound(spec)) {
    return ir_engine_socket_error(engine, family);
  }
  const ir_socket_t* sock = ir__bound_find(engine, spec);
  return sock != NULL && sock->open_error != 0 ? sock->error_message : NULL;
}

const char* ir_engine_socket_kind(const ir_engine_t* engine, int family) {
  const ir_socket_t* sock = family == AF_INET ? &engine->v4 : &engine->v6;
  return ir__socket_kind_name(sock->kind);
}

const char* ir_engine_tx_stamp(const ir_engine_t* engine, int family) {
  const ir_socket_t* sock = family == AF_INET ? &engine->v4 : &engine->v6;
  if (sock->fd < 0) {
    return NULL;
  }
  return sock->tx_stamping ? "kernel" : "user";
}

uint32_t ir_engine_pending(const ir_engine_t* engine) {
  return engine->pending;
}

uint32_t ir_engine_queued(const ir_engine_t* engine) {
  return engine->queued;
}

void ir_engine_counters(const ir_engine_t* engine, ir_counters_t* out) {
  *out = engine->counters;
}

void ir_engine_get_config(const ir_engine_t* engine, ir_engine_config_t* out) {
  *out = engine->config;
}

/* Watch for replies, unless the flusher reads them inline; for writability
 * only while a send is blocked, and only then does the poll handle keep the
 * loop alive. */
void ir__socket_update_poll(ir_socket_t* sock) {
  if (!sock->poll_started || sock->engine->closing) {
    return;
  }
  if (sock->engine->reading_inline && !sock->want_writable) {
    uv_poll_stop(&sock->poll);
    return;
  }
  int events = UV_READABLE | (sock->want_writable ? UV_WRITABLE : 0);
  uv_poll_start(&sock->poll, events, ir__on_socket_event);
  if (sock->want_writable) {
    uv_ref((uv_handle_t*)&sock->poll);
  } else {
    uv_unref((uv_handle_t*)&sock->poll);
  }
}

static ir_probe_t* ir__probe_alloc(ir_engine_t* engine) {
  if (engine->free_probes == NULL) {
    ir_probe_chunk_t* chunk =
        malloc(sizeof(*chunk) + IR_PROBES_PER_CHUNK * sizeof(ir_probe_t));
    if (chunk == NULL) {
      return NULL;
    }
    chunk->next = engine->chunks;
    engine->chunks = chunk;
    for (int i = IR_PROBES_PER_CHUNK - 1; i >= 0; i--) {
      chunk->probes[i].next = engine->free_probes;
      engine->free_probes = &chunk->probes[i];
    }
  }
  ir_probe_t* probe = engine->free_probes;
  engine->free_probes = probe->next;
  memset(probe, 0, sizeof(*probe));
  probe->deadline.index = IR_HEAP_NONE;
  probe->corrupt_offset = -1;
  return probe;
}

static void ir__probe_release(ir_engine_t* engine, ir_probe_t* probe) {
  probe->state = IR_PROBE_FREE;
  probe->next = engine->free_probes;
  engine->free_probes = probe;
}

int ir_engine_probe(ir_engine_t* engine, const ir_probe_spec_t* spec, ir_result_cb cb,
                    void* data) {
  if (engine->closing) {
    return -ECANCELED;
  }
  int family = spec->addr.family;
  if (family != AF_INET && family != AF_INET6) {
    return -EAFNOSUPPORT;
  }
  uint32_t max_size = family == AF_INET ? IR_MAX_SIZE_V4 : IR_MAX_SIZE_V6;
  if (spec->size > max_size || spec->ttl < 0 || spec->ttl > 255 || spec->tos < 0 ||
      spec->tos > 255 || cb == NULL ||
      (spec->flow != 0 && spec->size < IR_FLOW_MIN_SIZE) ||
      (spec->flow != 0 && spec->random_payload)) {
    return -EINVAL;
  }
  ir_socket_t* sock;
  if (!ir__spec_is_bound(spec)) {
    sock = ir__engine_socket(engine, family);
    if (sock == NULL) {
      return ir_engine_open(engine, family);
    }
  } else {
    ir_socket_t* failed;
    int err;
    sock = ir__bound_socket(engine, spec, &failed, &err);
    if (sock == NULL) {
      return err;
    }
  }
  ir_probe_t* probe = ir__probe_alloc(engine);
  if (probe == NULL) {
    return -ENOMEM;
  }
  probe->spec = *spec;
  probe->sock = sock;
  probe->cb = cb;
  probe->data = data;
  probe->token = engine->next_token++;
  probe->state = IR_PROBE_QUEUED;
  if (engine->send_tail != NULL) {
    engine->send_tail->next = probe;
  } else {
    engine->send_head = probe;
  }
  engine->send_tail = probe;
  engine->pending++;
  engine->queued++;
  uv_ref((uv_handle_t*)&engine->flusher);
  return 0;
}

static void ir__expirer_rearm(ir_engine_t* engine) {
  ir_heap_node_t* first = ir_heap_min(&engine->deadlines);
  if (first == NULL) {
    uv_timer_stop(&engine->expirer);
    engine->expirer_due_ns = 0;
    return;
  }
  /* Already armed for this deadline or an earlier one: when it fires, the
   * callback re-arms for whatever is first then. This keeps the per-probe cost
   * of a busy sweep to a heap push. */
  if (engine->expirer_due_ns != 0 && engine->expirer_due_ns <= first->key) {
    return;
  }
  uint64_t now = uv_hrtime();
  uint64_t wait_ns = first->key > now ? first->key - now : 0;
  /* Round up: the timer has millisecond resolution and must never fire before
   * the deadline; a timer that fires early anyway just re-arms. */
  uint64_t wait_ms = ir_ns_to_ms_ceil(wait_ns);
  uv_timer_start(&engine->expirer, ir__on_expire, wait_ms, 0);
  engine->expirer_due_ns = first->key;
}

ir_recent_t* ir__recent_slot(ir_engine_t* engine, uint32_t token) {
  if (engine->recent == NULL) {
    engine->recent = calloc(IR_RECENT_SLOTS, sizeof(ir_recent_t));
    if (engine->recent == NULL) {
      return NULL;
    }
  }
  return &engine->recent[token & (IR_RECENT_SLOTS - 1)];
}

/* Called by the send path once the probe is on the wire and in the table. */
void ir__probe_arm(ir_engine_t* engine, ir_probe_t* probe) {
  probe->state = IR_PROBE_IN_FLIGHT;
  ir_recent_t* slot = ir__recent_slot(engine, probe->token);
  if (slot != NULL) {
    slot->token = probe->token;
    slot->status = IR_RECENT_IN_FLIGHT;
    slot->probe = probe;
  }
  probe->deadline.key =
      probe->sent_mono_ns + (uint64_t)probe->spec.timeout_ms * 1000000u;
  probe->deadline.tie = probe->token;
  if (ir_heap_push(&engine->deadlines, &probe->deadline) != 0) {
    /* Out of memory for the heap: end the probe now rather than lose it. */
    ir_result_t result;
    ir__result_init(probe, IR_STATUS_ERROR, &result);
    result.error = -ENOMEM;
    ir__probe_finish(engine, probe, &result);
    return;
  }
  ir__expirer_rearm(engine);
}

void ir__result_init(const ir_probe_t* probe, ir_status_t status, ir_result_t* out) {
  ir_result_blank(out, status, &probe->spec.addr);
  out->seq = probe->seq;
  out->corrupt_offset = probe->corrupt_offset;
  out->data = probe->data;
  if (probe->state == IR_PROBE_IN_FLIGHT) {
    out->sent = probe->sent_realtime;
    out->tx_kernel = probe->tx_kernel;
  }
}

static void ir__count(ir_counters_t* counters, const ir_result_t* result) {
  counters->results++;
  switch (result->status) {
    case IR_STATUS_REPLY:
      counters->replies++;
      break;
    case IR_STATUS_TIMEOUT:
      counters->timeouts++;
      break;
    default:
      if (result->icmp_type >= 0) {
        counters->icmp_errors++;
      } else if (result->error != -ECANCELED) {
        counters->send_errors++;
      }
      break;
  }
}

/* The single exit of every probe: out of the heap and the table, remembered
 * for late/duplicate accounting, counted, reported once, recycled. */
void ir__probe_finish(ir_engine_t* engine, ir_probe_t* probe, ir_result_t* result) {
  ir_heap_remove(&engine->deadlines, &probe->deadline);
  if (probe->state == IR_PROBE_IN_FLIGHT) {
    ir_table_remove_hashed(&engine->in_flight, &probe->spec.addr, probe->seq,
                           probe->key_hash);
    /* Unless a newer probe in flight has taken the slot over. */
    ir_recent_t* slot = ir__recent_slot(engine, probe->token);
    if (slot != NULL &&
        (slot->status != IR_RECENT_IN_FLIGHT || slot->token == probe->token)) {
      slot->token = probe->token;
      slot->status = (uint8_t)(result->status + 1);
      slot->probe = NULL;
    }
  }
  /* A send that failed is queued too, but counted as a send error. */
  if (probe->state == IR_PROBE_QUEUED && result->error == -ECANCELED) {
    engine->counters.cancelled++;
  }
  probe->state = IR_PROBE_FREE;
  engine->pending--;
  ir__count(&engine->counters, result);
  probe->cb(engine, result);
  ir__probe_release(engine, probe);
}

static void ir__on_expire(uv_timer_t* timer) {
  ir_engine_t* engine = timer->data;
  engine->expirer_due_ns = 0;
  uint64_t now = uv_hrtime();
  /* Take every expired probe off the heap first, as libuv does with timers,
   * so that callbacks that queue new probes cannot disturb this pass. */
  ir_probe_t* expired = NULL;
  ir_probe_t** tail = &expired;
  for (;;) {
    ir_heap_node_t* first = ir_heap_min(&engine->deadlines);
    if (first == NULL || first->key > now) {
      break;
    }
    ir_heap_pop(&engine->deadlines);
    ir_probe_t* probe = IR_CONTAINER_OF(first, ir_probe_t, deadline);
    *tail = probe;
    tail = &probe->next;
  }
  *tail = NULL;
  while (expired != NULL) {
    ir_probe_t* probe = expired;
    expired = probe->next;
    ir_result_t result;
    ir__result_init(probe, IR_STATUS_TIMEOUT, &result);
    if (probe->corrupt_offset >= 0) {
      result.error = -EBADMSG; /* Only a damaged answer came back. */
    }
    ir__probe_finish(engine, probe, &result);
  }
  ir__expirer_rearm(engine);
}

static void ir__on_kick(uv_idle_t* idle) {
  (void)idle; /* Being active is its whole job. */
}

/* Switches inline reading on or off: see ir__on_flush. */
static void ir__set_reading_inline(ir_engine_t* engine, bool on) {
  if (engine->reading_inline == on) {
    return;
  }
  engine->reading_inline = on;
  ir__each_socket(engine, ir__socket_update_poll);
}

static void ir__read_if_open(ir_socket_t* sock) {
  if (sock->fd >= 0) {
    ir__read_replies(sock);
  }
}

/* Reads the replies that have come in on every socket. */
static void ir__read_inline(ir_engine_t* engine) {
  ir__read_if_open(&engine->v4);
  ir__read_if_open(&engine->v6);
  /* Bound sockets only when there are any: the default path stays two
   * checks, as before there were bound ones. */
  for (ir_socket_t* sock = engine->bound; sock != NULL; sock = sock->next_bound) {
    ir__read_if_open(sock);
  }
}

/* Runs before the loop polls, on every turn. While probes stay queued from
 * one turn to the next (a sweep at full speed), the loop never sleeps, and
 * the replies are read here instead of announced: a socket in epoll costs
 * the kernel a wake-up callback for every datagram that arrives, a few per
 * cent of a loopback ping. Reading and sending then take turns a send batch
 * at a time, as the bare sendmmsg/recvmmsg loop does, so the replies to one
 * batch are read before the next goes out and the kernel's queue stays
 * short. Once the queue is empty or blocked, the sockets go back into epoll
 * (which reports what arrived in between), so an idle loop sleeps until a
 * reply comes. An ICMP error that arrives meanwhile fails the next send,
 * which reads the error queue. */
static void ir__on_flush(uv_prepare_t* prepare) {
  ir_engine_t* engine = prepare->data;
  if (engine->reading_inline) {
    for (unsigned batch = 0; batch < IR_SEND_BATCH / IR_MMSG_BATCH &&
                             engine->send_head != NULL && !engine->send_blocked;
         batch++) {
      ir__read_inline(engine);
      ir__send_flush(engine, IR_MMSG_BATCH);
    }
  } else {
    ir__send_flush(engine, IR_SEND_BATCH);
  }
  if (engine->send_head == NULL) {
    uv_unref((uv_handle_t*)&engine->flusher);
  }
  bool busy = engine->send_head != NULL && !engine->send_blocked;
  if (busy) {
    uv_idle_start(&engine->kicker, ir__on_kick);
  } else {
    uv_idle_stop(&engine->kicker);
  }
  ir__set_reading_inline(engine, busy && !engine->closing);
}

static void ir__on_retry(uv_timer_t* timer) {
  ir_engine_t* engine = timer->data;
  engine->send_blocked = false;
  ir__send_flush(engine, IR_SEND_BATCH);
}

/* Used by the send path after ENOBUFS: no poll event announces free buffers
 * in the device queue, so try again shortly. */
void ir__send_retry_later(ir_engine_t* engine) {
  engine->send_blocked = true;
  uv_timer_start(&engine->retry_timer, ir__on_retry, 1, 0);
}

static void ir__cancel_list(ir_engine_t* engine, ir_probe_t* list) {
  while (list != NULL) {
    ir_probe_t* probe = list;
    list = probe->next;
    probe->next = NULL;
    ir_result_t result;
    ir__result_init(probe, IR_STATUS_ERROR, &result);
    result.error = -ECANCELED;
    ir__probe_finish(engine, probe, &result);
  }
}

unsigned ir_engine_cancel_group(ir_engine_t* engine, const void* group) {
  ir_probe_t* cancelled = NULL;
  unsigned count = 0;
  /* Out of the send queue, keeping the others in order. */
  ir_probe_t** link = &engine->send_head;
  ir_probe_t* last = NULL;
  while (*link != NULL) {
    ir_probe_t* probe = *link;
    if (probe->spec.group == group) {
      engine->queued--;
      *link = probe->next;
      probe->next = cancelled;
      cancelled = probe;
      count++;
    } else {
      last = probe;
      link = &probe->next;
    }
  }
  engine->send_tail = last;
  /* In flight: collected first, since finishing reorders the heap. */
  for (uint32_t i = 0; i < engine->deadlines.len; i++) {
    ir_probe_t* probe =
        IR_CONTAINER_OF(engine->deadlines.nodes[i], ir_probe_t, deadline);
    if (probe->spec.group == group) {
      probe->next = cancelled;
      cancelled = probe;
      count++;
    }
  }
  ir__cancel_list(engine, cancelled);
  ir__expirer_rearm(engine);
  return count;
}

static void ir__on_handle_closed(uv_handle_t* handle) {
  ir_engine_t* engine = handle->data;
  if (handle->type == UV_POLL) {
    engine = ((ir_socket_t*)handle->data)->engine;
  }
  if (--engine->open_handles > 0) {
    return;
  }
  ir_heap_free(&engine->deadlines);
  ir_table_free(&engine->in_flight);
  while (engine->chunks != NULL) {
    ir_probe_chunk_t* next = engine->chunks->next;
    free(engine->chunks);
    engine->chunks = next;
  }
  free(engine->recent);
  free(engine->send_buf);
  ir__each_socket(engine, ir__txstamp_free);
  while (engine->bound != NULL) {
    ir_socket_t* next = engine->bound->next_bound;
    free(engine->bound);
    engine->bound = next;
  }
  free(engine);
}

static void ir__close_handle(ir_engine_t* engine, uv_handle_t* handle) {
  engine->open_handles++;
  uv_close(handle, ir__on_handle_closed);
}

/* Closes one socket of a closing engine: its poll handle (the engine is freed
 * once every handle's close callback has run), then its fd. */
static void ir__socket_close(ir_socket_t* sock) {
  if (sock->poll_started) {
    ir__close_handle(sock->engine, (uv_handle_t*)&sock->poll);
    sock->poll_started = false;
  }
  ir__socket_close_fd(sock);
}

void ir_engine_close(ir_engine_t* engine) {
  engine->closing = true;
  /* Every probe still pending gets its one result before anything goes. */
  ir_probe_t* queued = engine->send_head;
  engine->send_head = engine->send_tail = NULL;
  engine->queued = 0;
  ir__cancel_list(engine, queued);
  ir_heap_node_t* node;
  while ((node = ir_heap_pop(&engine->deadlines)) != NULL) {
    ir_probe_t* probe = IR_CONTAINER_OF(node, ir_probe_t, deadline);
    probe->next = NULL;
    ir__cancel_list(engine, probe);
  }
  ir__each_socket(engine, ir__socket_close);
  ir__close_handle(engine, (uv_handle_t*)&engine->expirer);
  ir__close_handle(engine, (uv_handle_t*)&engine->retry_timer);
  ir__close_handle(engine, (uv_handle_t*)&engine->flusher);
  ir__close_handle(engine, (uv_handle_t*)&engine->kicker);
}
