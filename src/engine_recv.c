/* SPDX-License-Identifier: MIT */
/* The receive path: batched replies, the error queue, matching and RTTs. */
#include <errno.h>
#include <time.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "engine_internal.h"
#include "packet.h"
#include "packet_flow.h"

/* Control data we expect: a receive timestamp and the TTL or hop limit, or an
 * extended error with its offender address. Generous, as truncated control
 * data would lose the timestamp. */
#define IR_CONTROL_LEN 256

/* What the control messages of one datagram told us. */
typedef struct ir_ancillary_s {
  bool has_stamp;
  struct timespec stamp;
  int ttl;
  const struct sock_extended_err* ee;
} ir_ancillary_t;

static void ir__parse_control(struct msghdr* msg, ir_ancillary_t* out) {
  out->has_stamp = false;
  out->ttl = -1;
  out->ee = NULL;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
      memcpy(&out->stamp, CMSG_DATA(c), sizeof(out->stamp));
      out->has_stamp = true;
    } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPING) {
      /* With kernel send stamps on (engine_txstamp.c): the software stamp of
       * an arrival, or of a send on the error queue, in the first slot. */
      struct timespec ts[3];
      memcpy(ts, CMSG_DATA(c), sizeof(ts));
      if (ts[0].tv_sec != 0 || ts[0].tv_nsec != 0) {
        out->stamp = ts[0];
        out->has_stamp = true;
      }
    } else if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) ||
               (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT)) {
      memcpy(&out->ttl, CMSG_DATA(c), sizeof(int));
    } else if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR) ||
               (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR)) {
      out->ee = (const struct sock_extended_err*)CMSG_DATA(c);
    }
  }
}

/* The round trip in milliseconds. The kernel stamps arrival with the realtime
 * clock, which can be stepped; the monotonic time elapsed until now_ns (read
 * once the message was received) is an upper bound that cannot be. A
 * stamp-based RTT outside [0, that bound] means the clock moved, and the
 * monotonic figure is reported instead. */
static double ir__rtt_ms(ir_engine_t* engine, const ir_probe_t* probe,
                         const ir_ancillary_t* anc, uint64_t now_ns) {
  double mono_ms = (double)(now_ns - probe->sent_mono_ns) / 1e6;
  if (!anc->has_stamp) {
    return mono_ms;
  }
  double rt_ms = (double)(anc->stamp.tv_sec - probe->sent_realtime.tv_sec) * 1e3 +
                 (double)(anc->stamp.tv_nsec - probe->sent_realtime.tv_nsec) / 1e6;
  /* 0.1 ms allows for the two clocks being read a few instructions apart. */
  if (rt_ms < 0 || rt_ms > mono_ms + 0.1) {
    engine->counters.clock_steps++;
    return mono_ms;
  }
  return rt_ms;
}

/* True when the cookie bytes that came back are those this probe sent. A probe
 * with a payload shorter than the cookie is matched on what fits. */
static bool ir__cookie_matches(const ir_engine_t* engine, const ir_probe_t* probe,
                               const ir_icmp_msg_t* msg) {
  size_t expected = probe->spec.size < IR_COOKIE_LEN ? probe->spec.size : IR_COOKIE_LEN;
  if (msg->cookie_len < expected) {
    return false;
  }
  if (expected == 0) {
    return true;
  }
  /* The cookie is 8 big-endian bytes, run cookie first: as one number, the
   * bytes that came back are its top `expected` bytes. */
  uint64_t want = (uint64_t)engine->run_cookie << 32 | probe->token;
  uint64_t got = (uint64_t)msg->run_cookie << 32 | msg->token;
  uint64_t present = ~UINT64_C(0) << (8 * (IR_COOKIE_LEN - expected));
  return ((want ^ got) & present) == 0;
}

/* An answer that matches no probe in flight is counted, never reported:
 * - without our run cookie: corrupted if it came for a probe in flight (its
 *   address and sequence), foreign otherwise (someone else's ping);
 * - with it: by what became of the probe its token names. Still in flight,
 *   the answer came from the wrong source (foreign) or with the wrong
 *   sequence number; ended with a reply, it is a duplicate; ended otherwise
 *   or too long ago to remember, it is late. */
static void ir__count_unmatched(ir_engine_t* engine, const ir_icmp_msg_t* msg,
                                const ir_addr_t* from, const ir_probe_t* at_key) {
  ir_counters_t* c = &engine->counters;
  if (msg->cookie_len < IR_COOKIE_LEN || msg->run_cookie != engine->run_cookie) {
    if (at_key != NULL) {
      c->corrupted++;
    } else {
      c->foreign++;
    }
    return;
  }
  uint32_t age = engine->next_token - msg->token;
  if (age == 0 || age > engine->next_token - 1) {
    c->corrupted++; /* Our run, but a token never issued: a damaged payload. */
    return;
  }
  const ir_recent_t* slot = NULL;
  if (engine->recent != NULL && age <= IR_RECENT_SLOTS) {
    slot = &engine->recent[msg->token & (IR_RECENT_SLOTS - 1)];
    if (slot->token != msg->token) {
      slot = NULL;
    }
  }
  if (slot == NULL) {
    c->late++;
  } else if (slot->status == IR_RECENT_IN_FLIGHT) {
    if (!ir_addr_equal(from, &slot->probe->spec.addr)) {
      c->foreign++;
    } else {
      c->wrong_seq++;
    }
  } else if (slot->status == IR_STATUS_REPLY + 1) {
    c->duplicates++;
    if (engine->on_duplicate != NULL) {
      ir_duplicate_t dup = {.from = *from, .seq = msg->seq};
      engine->on_duplicate(engine, &dup, engine->on_duplicate_data);
    }
  } else {
    c->late++;
  }
}

void ir_engine_on_duplicate(ir_engine_t* engine, ir_duplicate_cb cb, void* data) {
  engine->on_duplicate = cb;
  engine->on_duplicate_data = data;
}

/* Where a flow-stable probe's payload first differs from `payload` (len
 * bytes), or IR_PAYLOAD_SAME. Its two flow bytes depend on the whole
 * message, so the request is encoded again, whole, into the engine's
 * scratch buffer (the send path is done with it between calls). */
static size_t ir__flow_payload_mismatch(ir_engine_t* engine, const ir_probe_t* probe,
                                        const uint8_t* payload, size_t len) {
  if (engine->send_buf == NULL &&
      (engine->send_buf = malloc(IR_ICMP_HEADER_LEN + IR_MAX_SIZE_V6)) == NULL) {
    return IR_PAYLOAD_SAME; /* Out of memory: judged by the cookie alone. */
  }
  size_t total = ir_packet_encode_flow_echo(
      engine->send_buf, IR_ICMP_HEADER_LEN + IR_MAX_SIZE_V6, probe->spec.addr.family, 0,
      probe->seq, engine->run_cookie, probe->token, probe->payload_stamp_ns,
      probe->spec.size, probe->spec.flow);
  if (total < IR_ICMP_HEADER_LEN + len) {
    return IR_PAYLOAD_SAME;
  }
  const uint8_t* want = engine->send_buf + IR_ICMP_HEADER_LEN;
  for (size_t i = 0; i < len; i++) {
    if (payload[i] != want[i]) {
      return i;
    }
  }
  return IR_PAYLOAD_SAME;
}

/* Compares an answer's payload with what probe sent: `have` bytes of it are in
 * the buffer, out of `total`. A difference in those bytes, or a length other
 * than the probe's, is noted on the probe (its result will say where) and in
 * the counters. Returns true when the payload is not what was sent. */
static bool ir__note_corrupt(ir_engine_t* engine, ir_probe_t* probe,
                             const uint8_t* payload, size_t have, size_t total) {
  size_t sent = probe->spec.size;
  size_t checked = have < sent ? have : sent;
  if (checked > IR_CHECKED_PAYLOAD) {
    checked = IR_CHECKED_PAYLOAD; /* The same limit whatever the IP header. */
  }
  size_t at = probe->spec.flow != 0
                  ? ir__flow_payload_mismatch(engine, probe, payload, checked)
                  : ir_packet_payload_mismatch_seeded(
                        payload, checked, engine->run_cookie, probe->token,
                        probe->payload_stamp_ns,
                        probe->spec.random_payload
                            ? IR_FILLER_SEED(engine->run_cookie, probe->token)
                            : 0);
  if (at == IR_PAYLOAD_SAME && total != sent) {
    at = total < sent ? total : sent; /* Cut short, or longer than sent. */
  }
  if (at == IR_PAYLOAD_SAME) {
    return false;
  }
  probe->corrupt_offset = (int32_t)at;
  engine->counters.corrupt_offset = at;
  return true;
}

static void ir__handle_reply(ir_socket_t* sock, const uint8_t* buf, size_t len,
                             struct msghdr* hdr, uint64_t now_ns) {
  ir_engine_t* engine = sock->engine;
  bool raw_v4 = sock->kind == IR_KIND_RAW && sock->family == AF_INET;
  size_t kept = len < IR_RECV_BUFLEN ? len : IR_RECV_BUFLEN;
  /* The checksum covers the whole message, so it is checked only when all of
   * it is in the buffer; the kernel checks it for datagram and ICMPv6 sockets. */
  ir_icmp_msg_t msg;
  if (ir_packet_decode(buf, kept, sock->family, raw_v4, raw_v4 && len == kept, &msg) !=
      0) {
    engine->counters.malformed++;
    return;
  }
  if (!ir_packet_is_echo_reply(sock->family, msg.type)) {
    engine->counters.foreign++;
    return;
  }
  if (sock->kind == IR_KIND_RAW && msg.id != sock->ident) {
    engine->counters.foreign++; /* Another program's ping on this host. */
    return;
  }
  ir_addr_t from;
  if (ir_addr_from_sockaddr(hdr->msg_name, &from) != 0) {
    engine->counters.malformed++;
    return;
  }
  /* Where the echo payload starts in buf, and how long it is in all. */
  size_t ip_len = raw_v4 ? (size_t)(buf[0] & 0x0f) * 4 : 0;
  const uint8_t* payload = buf + ip_len + IR_ICMP_HEADER_LEN;
  size_t payload_len = len - ip_len - IR_ICMP_HEADER_LEN;
  ir_probe_t* probe = ir_table_find(&engine->in_flight, &from, msg.seq);
  if (probe != NULL && probe->sock != sock) {
    /* Sequence numbers are unique per target across all sockets, so this is
     * another socket's probe: its own socket hears the answer (the kernel
     * gives each datagram socket its own identifier). Never its result. */
    engine->counters.foreign++;
    return;
  }
  if (probe == NULL || !ir__cookie_matches(engine, probe, &msg)) {
    uint64_t corrupted = engine->counters.corrupted;
    ir__count_unmatched(engine, &msg, &from, probe);
    if (probe != NULL && engine->counters.corrupted != corrupted) {
      ir__note_corrupt(engine, probe, payload, kept - ip_len - IR_ICMP_HEADER_LEN,
                       payload_len);
    }
    return;
  }
  /* The cookie says whose answer this is; the rest of the payload must be
   * what was sent too, or the path damaged it: counted, never a reply. */
  if (ir__note_corrupt(engine, probe, payload, kept - ip_len - IR_ICMP_HEADER_LEN,
                       payload_len)) {
    engine->counters.corrupted++;
    return;
  }
  ir_ancillary_t anc;
  ir__parse_control(hdr, &anc);
  ir_result_t result;
  ir__result_init(probe, IR_STATUS_REPLY, &result);
  result.from = from;
  result.has_from = true;
  result.rtt_ms = ir__rtt_ms(engine, probe, &anc, now_ns);
  result.ttl = anc.ttl >= 0 ? anc.ttl : msg.ttl;
  result.bytes = (uint32_t)(len - ip_len);
  ir__probe_finish(engine, probe, &result);
}

/* Reads every queued reply, a batch per system call. */
void ir__read_replies(ir_socket_t* sock) {
  struct mmsghdr msgs[IR_RECV_BATCH];
  struct iovec iovs[IR_RECV_BATCH][2];
  struct sockaddr_storage names[IR_RECV_BATCH];
  union {
    char buf[IR_CONTROL_LEN];
    struct cmsghdr align;
  } controls[IR_RECV_BATCH];
  ir_engine_t* engine = sock->engine;
  for (;;) {
    for (int i = 0; i < IR_RECV_BATCH; i++) {
      iovs[i][0].iov_base = engine->recv_bufs[i];
      iovs[i][0].iov_len = IR_RECV_BUFLEN;
      iovs[i][1].iov_base = engine->recv_overflow;
      iovs[i][1].iov_len = sizeof(engine->recv_overflow);
      memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
      msgs[i].msg_hdr.msg_name = &names[i];
      msgs[i].msg_hdr.msg_namelen = sizeof(names[i]);
      msgs[i].msg_hdr.msg_iov = iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 2;
      msgs[i].msg_hdr.msg_control = controls[i].buf;
      msgs[i].msg_hdr.msg_controllen = sizeof(controls[i].buf);
    }
    int n = recvmmsg(sock->fd, msgs, IR_RECV_BATCH, MSG_DONTWAIT, NULL);
    /* The send stamps of these replies' probes were queued before the
     * replies came: read them before matching (and free their buffer space
     * even when no reply came). */
    ir__txstamp_before_replies(sock);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return; /* EAGAIN: drained. */
    }
    /* One clock read serves the whole batch: it is later than every arrival
     * in it, which is all the RTT check needs. */
    uint64_t now_ns = uv_hrtime();
    for (int i = 0; i < n; i++) {
      ir__handle_reply(sock, engine->recv_bufs[i], msgs[i].msg_len, &msgs[i].msg_hdr,
                       now_ns);
    }
    if (n < IR_RECV_BATCH) {
      return;
    }
  }
}

/* The status an extended error stands for, from the ICMP type of its family. */
static ir_status_t ir__error_status(const struct sock_extended_err* ee) {
  if (ee->ee_origin == SO_EE_ORIGIN_ICMP) {
    if (ee->ee_type == IR_ICMP4_DEST_UNREACH)
      return IR_STATUS_UNREACHABLE;
    if (ee->ee_type == IR_ICMP4_TIME_EXCEEDED)
      return IR_STATUS_TTL_EXCEEDED;
  } else if (ee->ee_origin == SO_EE_ORIGIN_ICMP6) {
    if (ee->ee_type == IR_ICMP6_DEST_UNREACH)
      return IR_STATUS_UNREACHABLE;
    if (ee->ee_type == IR_ICMP6_TIME_EXCEEDED)
      return IR_STATUS_TTL_EXCEEDED;
  }
  return IR_STATUS_ERROR;
}

bool ir__handle_error(ir_socket_t* sock, const uint8_t* buf, size_t len,
                      struct msghdr* hdr) {
  ir_engine_t* engine = sock->engine;
  ir_ancillary_t anc;
  ir__parse_control(hdr, &anc);
  if (anc.ee != NULL && anc.ee->ee_origin == SO_EE_ORIGIN_TIMESTAMPING) {
    if (anc.ee->ee_info == SCM_TSTAMP_SND) {
      ir__txstamp_match(sock, anc.ee->ee_data, anc.has_stamp ? &anc.stamp : NULL, buf,
                        len);
    }
    return false;
  }
  /* Our own kernel's note of a send it refused (EMSGSIZE), which the send
   * path has already dealt with: nothing to match or count. */
  if (anc.ee != NULL && anc.ee->ee_origin == SO_EE_ORIGIN_LOCAL) {
    return true;
  }
  ir_icmp_msg_t msg;
  ir_addr_t dest;
  /* The queued payload is the echo request we sent (possibly cut short by the
   * router), addressed to the probe's destination. */
  if (anc.ee == NULL ||
      ir_packet_decode(buf, len, sock->family, false, false, &msg) != 0 ||
      ir_addr_from_sockaddr(hdr->msg_name, &dest) != 0) {
    engine->counters.malformed++;
    return true;
  }
  if (sock->kind == IR_KIND_RAW && msg.id != sock->ident) {
    return true; /* Raw sockets also hear about other programs' probes. */
  }
  ir_probe_t* probe = ir_table_find(&engine->in_flight, &dest, msg.seq);
  if (probe != NULL && probe->sock != sock) {
    engine->counters.foreign++; /* Another socket's probe, as for replies. */
    return true;
  }
  if (probe == NULL || !ir__cookie_matches(engine, probe, &msg)) {
    ir__count_unmatched(engine, &msg, &dest, probe);
    return true;
  }
  const struct sock_extended_err* ee = anc.ee;
  ir_result_t result;
  ir__result_init(probe, ir__error_status(ee), &result);
  if (ee->ee_origin == SO_EE_ORIGIN_ICMP || ee->ee_origin == SO_EE_ORIGIN_ICMP6) {
    result.icmp_type = ee->ee_type;
    result.icmp_code = ee->ee_code;
    result.rtt_ms = ir__rtt_ms(engine, probe, &anc, uv_hrtime());
  }
  result.error = -(int)ee->ee_errno;
  const struct sockaddr* offender = SO_EE_OFFENDER(ee);
  if (offender->sa_family != AF_UNSPEC &&
      ir_addr_from_sockaddr(offender, &result.from) == 0) {
    result.has_from = true;
  }
  ir__probe_finish(engine, probe, &result);
  return true;
}

void ir__on_socket_event(uv_poll_t* handle, int status, int events) {
  ir_socket_t* sock = handle->data;
  ir_engine_t* engine = sock->engine;
  if (status < 0) {
    /* libuv reports POLLERR as an error and stops the handle. On these sockets
     * POLLERR only means that the error queue holds ICMP errors, so read them,
     * read any replies, and watch again. */
    ir__drain_error_queue(sock);
    ir__read_replies(sock);
    ir__socket_update_poll(sock);
    return;
  }
  if (events & UV_READABLE) {
    ir__read_replies(sock);
  }
  if ((events & UV_WRITABLE) && sock->want_writable) {
    sock->want_writable = false;
    ir__socket_update_poll(sock);
    engine->send_blocked = false;
    ir__send_flush(engine, IR_SEND_BATCH);
  }
}
