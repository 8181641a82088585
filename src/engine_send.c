/* SPDX-License-Identifier: MIT */
/* The send path: sequence numbers, encoding, per-probe TTL/TOS, send errors. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

#include "engine_internal.h"
#include "packet.h"
#include "packet_flow.h"

/* Picks a sequence number not in flight to this address. The counter is per
 * socket, shared by all addresses: the in-flight key is (address, sequence),
 * so only probes to one address compete for the 65,536 numbers. */
static bool ir__pick_seq(ir_engine_t* engine, ir_socket_t* sock, ir_probe_t* probe) {
  for (uint32_t tries = 0; tries <= UINT16_MAX; tries++) {
    uint16_t seq = sock->next_seq++;
    uint32_t hash = ir_table_hash(&probe->spec.addr, seq);
    if (ir_table_find_hashed(&engine->in_flight, &probe->spec.addr, seq, hash) ==
        NULL) {
      probe->seq = seq;
      probe->key_hash = hash;
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

/* Fills one message of a batch for probe: the encoded echo request in buf,
 * its destination, and TTL/TOS as control messages, so probes with different
 * values share the socket without a setsockopt per probe. */
static void ir__prepare_message(ir_engine_t* engine, ir_socket_t* sock,
                                ir_probe_t* probe, uint64_t stamp, uint8_t* buf,
                                ir_send_slot_t* slot, struct mmsghdr* mmsg) {
  size_t len;
  if (probe->spec.flow != 0) {
    len = ir_packet_encode_flow_echo(buf, IR_ICMP_HEADER_LEN + probe->spec.size,
                                     sock->family, sock->ident, probe->seq,
                                     engine->run_cookie, probe->token, stamp,
                                     probe->spec.size, probe->spec.flow);
  } else {
    uint64_t seed = probe->spec.random_payload
                        ? IR_FILLER_SEED(engine->run_cookie, probe->token)
                        : 0;
    len = ir_packet_encode_echo_seeded(
        buf, IR_ICMP_HEADER_LEN + probe->spec.size, sock->family, sock->ident,
        probe->seq, engine->run_cookie, probe->token, stamp, probe->spec.size, seed);
  }
  socklen_t dest_len = ir_addr_to_sockaddr(&probe->spec.addr, &slot->dest);
  slot->iov.iov_base = buf;
  slot->iov.iov_len = len;
  size_t control_len = 0;
  bool v4 = sock->family == AF_INET;
  if (probe->spec.ttl > 0) {
    control_len =
        ir__add_int_cmsg(slot->control.buf, control_len, v4 ? IPPROTO_IP : IPPROTO_IPV6,
                         v4 ? IP_TTL : IPV6_HOPLIMIT, probe->spec.ttl);
  }
  if (probe->spec.tos > 0) {
    control_len =
        ir__add_int_cmsg(slot->control.buf, control_len, v4 ? IPPROTO_IP : IPPROTO_IPV6,
                         v4 ? IP_TOS : IPV6_TCLASS, probe->spec.tos);
  }
  control_len = ir__txstamp_add_cmsg(sock, probe, slot->control.buf, control_len);
  memset(mmsg, 0, sizeof(*mmsg));
  mmsg->msg_hdr.msg_name = &slot->dest;
  mmsg->msg_hdr.msg_namelen = dest_len;
  mmsg->msg_hdr.msg_iov = &slot->iov;
  mmsg->msg_hdr.msg_iovlen = 1;
  mmsg->msg_hdr.msg_control = control_len ? slot->control.buf : NULL;
  mmsg->msg_hdr.msg_controllen = control_len;
}

/* Sends one IPv4 probe larger than the path MTU. The socket refuses to
 * fragment (see ir__configure in sockets.c), so this one send goes with the
 * kernel's default strategy, which fragments it, as any ping does. */
static int ir__send_fragmented(ir_socket_t* sock, struct mmsghdr* msg) {
  int fragment = IP_PMTUDISC_WANT;
  int refuse = IP_PMTUDISC_DO;
  (void)setsockopt(sock->fd, IPPROTO_IP, IP_MTU_DISCOVER, &fragment, sizeof(fragment));
  int sent = sendmmsg(sock->fd, msg, 1, MSG_DONTWAIT);
  int err = errno;
  (void)setsockopt(sock->fd, IPPROTO_IP, IP_MTU_DISCOVER, &refuse, sizeof(refuse));
  return sent < 0 ? -err : sent;
}

/* Sends the first probes of the queue in one sendmmsg: consecutive probes of
 * the head's socket (its family and binding), at most IR_MMSG_BATCH and `budget`, with
 * sequence numbers. A payload too large for a batch slot goes alone through the big
 * buffer. Every probe of a batch gets the send time taken just before the call. Returns
 * how many were sent (from the head), or a negative errno that belongs to the head
 * probe. */
static int ir__send_batch(ir_engine_t* engine, ir_socket_t* sock, unsigned budget) {
  struct mmsghdr msgs[IR_MMSG_BATCH];
  unsigned n = 0;
  struct timespec now_rt;
  clock_gettime(CLOCK_REALTIME, &now_rt);
  uint64_t mono = uv_hrtime();
  uint64_t stamp = (uint64_t)now_rt.tv_sec * 1000000000u + (uint64_t)now_rt.tv_nsec;
  for (ir_probe_t* probe = engine->send_head;
       probe != NULL && n < budget && n < IR_MMSG_BATCH && probe->sock == sock;
       probe = probe->next) {
    /* Alone: a payload too big for a slot, or one to fragment. */
    bool alone = probe->spec.size > IR_SLOT_PAYLOAD || probe->fragment;
    if (alone && n > 0) {
      break;
    }
    if (!probe->has_seq) {
      if (!ir__pick_seq(engine, sock, probe)) {
        if (n == 0) {
          return -EBUSY;
        }
        break;
      }
      probe->has_seq = true;
    }
    uint8_t* buf;
    if (probe->spec.size > IR_SLOT_PAYLOAD) {
      if (engine->send_buf == NULL &&
          (engine->send_buf = malloc(IR_ICMP_HEADER_LEN + IR_MAX_SIZE_V6)) == NULL) {
        return -ENOMEM;
      }
      buf = engine->send_buf;
    } else {
      buf = engine->slot_bufs[n];
    }
    ir__prepare_message(engine, sock, probe, stamp, buf, &engine->slots[n], &msgs[n]);
    probe->sent_realtime = now_rt;
    probe->payload_stamp_ns = stamp;
    probe->sent_mono_ns = mono;
    n++;
    if (alone) {
      break;
    }
  }
  if (n == 1 && engine->send_head->fragment) {
    return ir__send_fragmented(sock, msgs);
  }
  int sent = sendmmsg(sock->fd, msgs, n, MSG_DONTWAIT);
  return sent < 0 ? -errno : sent;
}

static void ir__dequeue_head(ir_engine_t* engine) {
  ir_probe_t* probe = engine->send_head;
  engine->queued--;
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

void ir__send_flush(ir_engine_t* engine, unsigned budget) {
  while (!engine->send_blocked && engine->send_head != NULL && budget > 0) {
    ir_probe_t* head = engine->send_head;
    ir_socket_t* sock = head->sock;
    int sent = ir__send_batch(engine, sock, budget);
    if (sent > 0) {
      budget -= (unsigned)sent;
      engine->counters.sent += (uint64_t)sent;
      for (int i = 0; i < sent; i++) {
        ir_probe_t* probe = engine->send_head;
        ir__dequeue_head(engine);
        ir__txstamp_sent(sock, probe);
        if (ir_table_insert_hashed(&engine->in_flight, &probe->spec.addr, probe->seq,
                                   probe->key_hash, probe) != 0) {
          ir__fail_probe(engine, probe, -ENOMEM);
          continue;
        }
        ir__probe_arm(engine, probe);
      }
      continue;
    }
    int err = sent;
    if (err == -EINTR || sent == 0) {
      continue;
    }
    if (err == -EBUSY || err == -ENOMEM) {
      ir__dequeue_head(engine);
      ir__fail_probe(engine, head, err);
      continue;
    }
    /* A full socket buffer is back-pressure, not a failure: the probe stays at
     * the head of the queue until the socket drains (EAGAIN) or a moment has
     * passed (ENOBUFS, which no poll event announces). */
    if (err == -EAGAIN || err == -EWOULDBLOCK) {
      engine->counters.send_retries++;
      engine->counters.send_blocked++;
      engine->send_blocked = true;
      sock->want_writable = true;
      ir__socket_update_poll(sock);
      return;
    }
    if (err == -ENOBUFS) {
      (void)ir__txstamp_send_failed(sock, err);
      engine->counters.send_retries++;
      ir__send_retry_later(engine);
      return;
    }
    /* Larger than the path MTU, which the IPv4 socket refuses to fragment:
     * send it again alone, fragmented. */
    if (err == -EMSGSIZE && sock->family == AF_INET && !head->fragment) {
      head->fragment = true;
      engine->counters.send_retries++;
      continue;
    }
    /* With IP_RECVERR, an ICMP error that arrived for an earlier probe is also
     * left pending on the socket, and the next send fails with it without
     * sending anything. So the error is this probe's only if the error queue
     * holds nothing that accounts for it; otherwise reading the queue ends
     * the earlier probes, clears the pending error, and we send again. */
    head->send_attempts++;
    if (head->send_attempts < IR_SEND_ATTEMPTS && ir__drain_error_queue(sock) > 0) {
      engine->counters.send_retries++;
      continue;
    }
    if (ir__txstamp_send_failed(sock, err)) {
      continue; /* Sent again without the timestamp key it refused. */
    }
    ir__dequeue_head(engine);
    ir__fail_probe(engine, head, err);
  }
}
