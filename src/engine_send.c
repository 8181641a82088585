/* The send path: sequence numbers, encoding, per-probe TTL/TOS, send errors. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include "engine_internal.h"
#include "packet.h"

/* Picks a sequence number not in flight to this address. The counter is per
 * socket, shared by all addresses: the in-flight key is (address, sequence),
 * so only probes to one address compete for the 65,536 numbers. */
static bool ir__pick_seq(ir_engine_t* engine, ir_socket_t* sock, ir_probe_t* probe) {
  for (uint32_t tries = 0; tries <= UINT16_MAX; tries++) {
    uint16_t seq = sock->next_seq++;
    if (ir_table_find(&engine->in_flight, &probe->spec.addr, seq) == NULL) {
      probe->seq = seq;
      return true;
    }
  }
  return false;
}

static size_t ir__add_int_cmsg(char* control, size_t used, int level, int type,
                               int value) {
  struct cmsghdr* cmsg = (struct cmsghdr*)(control + used);
  cmsg->cmsg_level = level;
  cmsg->cmsg_type = type;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cmsg), &value, sizeof(int));
  return used + CMSG_SPACE(sizeof(int));
}

/* One sendmsg. TTL and TOS travel as control messages, so probes with
 * different values can share the socket without a setsockopt per probe.
 * Returns 0 or a negative errno. */
static int ir__send_one(ir_engine_t* engine, ir_socket_t* sock, ir_probe_t* probe) {
  size_t need = IR_ICMP_HEADER_LEN + probe->spec.size;
  if (engine->send_buf == NULL) {
    engine->send_buf = malloc(IR_ICMP_HEADER_LEN + IR_MAX_SIZE_V6);
    if (engine->send_buf == NULL) {
      return -ENOMEM;
    }
  }
  struct timespec now_rt;
  clock_gettime(CLOCK_REALTIME, &now_rt);
  uint64_t stamp = (uint64_t)now_rt.tv_sec * 1000000000u + (uint64_t)now_rt.tv_nsec;
  size_t len = ir_packet_encode_echo(engine->send_buf, need, sock->family, sock->ident,
                                     probe->seq, engine->run_cookie, probe->token,
                                     stamp, probe->spec.size);
  struct sockaddr_storage dest;
  socklen_t dest_len = ir_addr_to_sockaddr(&probe->spec.addr, &dest);
  struct iovec iov = {.iov_base = engine->send_buf, .iov_len = len};
  union {
    char buf[2 * CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control;
  size_t control_len = 0;
  bool v4 = sock->family == AF_INET;
  if (probe->spec.ttl > 0) {
    control_len =
        ir__add_int_cmsg(control.buf, control_len, v4 ? IPPROTO_IP : IPPROTO_IPV6,
                         v4 ? IP_TTL : IPV6_HOPLIMIT, probe->spec.ttl);
  }
  if (probe->spec.tos > 0) {
    control_len =
        ir__add_int_cmsg(control.buf, control_len, v4 ? IPPROTO_IP : IPPROTO_IPV6,
                         v4 ? IP_TOS : IPV6_TCLASS, probe->spec.tos);
  }
  struct msghdr msg = {
      .msg_name = &dest,
      .msg_namelen = dest_len,
      .msg_iov = &iov,
      .msg_iovlen = 1,
      .msg_control = control_len ? control.buf : NULL,
      .msg_controllen = control_len,
  };
  probe->sent_realtime = now_rt;
  probe->sent_mono_ns = uv_hrtime();
  if (sendmsg(sock->fd, &msg, MSG_DONTWAIT) < 0) {
    return -errno;
  }
  return 0;
}

static void ir__dequeue_head(ir_engine_t* engine) {
  ir_probe_t* probe = engine->send_head;
  engine->send_head = probe->next;
  if (engine->send_head == NULL) {
    engine->send_tail = NULL;
  }
  probe->next = NULL;
}

/* A send that failed for good becomes the probe's result: unreachable for
 * routing errors, error (with the errno) for the rest. */
static void ir__fail_probe(ir_engine_t* engine, ir_probe_t* probe, int err) {
  bool unreachable = err == -EHOSTUNREACH || err == -ENETUNREACH;
  ir_result_t result;
  ir__result_init(probe, unreachable ? IR_STATUS_UNREACHABLE : IR_STATUS_ERROR,
                  &result);
  result.error = err;
  ir__probe_finish(engine, probe, &result);
}

void ir__send_flush(ir_engine_t* engine) {
  while (!engine->send_blocked && engine->send_head != NULL) {
    ir_probe_t* probe = engine->send_head;
    ir_socket_t* sock = probe->spec.addr.family == AF_INET ? &engine->v4 : &engine->v6;
    if (probe->send_attempts == 0 && !ir__pick_seq(engine, sock, probe)) {
      ir__dequeue_head(engine);
      ir__fail_probe(engine, probe, -EBUSY);
      continue;
    }
    int err = ir__send_one(engine, sock, probe);
    if (err == 0) {
      ir__dequeue_head(engine);
      engine->counters.sent++;
      if (ir_table_insert(&engine->in_flight, &probe->spec.addr, probe->seq, probe) !=
          0) {
        ir__fail_probe(engine, probe, -ENOMEM);
        continue;
      }
      ir__probe_arm(engine, probe);
      continue;
    }
    if (err == -EINTR) {
      continue;
    }
    /* A full socket buffer is back-pressure, not a failure: the probe stays at
     * the head of the queue until the socket drains (EAGAIN) or a moment has
     * passed (ENOBUFS, which no poll event announces). */
    if (err == -EAGAIN || err == -EWOULDBLOCK) {
      engine->counters.send_retries++;
      engine->send_blocked = true;
      sock->want_writable = true;
      ir__socket_update_poll(sock);
      return;
    }
    if (err == -ENOBUFS || err == -ENOMEM) {
      engine->counters.send_retries++;
      ir__send_retry_later(engine);
      return;
    }
    /* With IP_RECVERR, an ICMP error that arrived for an earlier probe is also
     * left pending on the socket, and the next send fails with it without
     * sending anything. So the error is this probe's only if the error queue
     * holds nothing that accounts for it; otherwise reading the queue ends
     * the earlier probes, clears the pending error, and we send again. */
    probe->send_attempts++;
    if (probe->send_attempts < IR_SEND_ATTEMPTS && ir__drain_error_queue(sock) > 0) {
      engine->counters.send_retries++;
      continue;
    }
    ir__dequeue_head(engine);
    ir__fail_probe(engine, probe, err);
  }
}
