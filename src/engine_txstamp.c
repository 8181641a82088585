/* SPDX-License-Identifier: MIT */
/* Kernel send timestamps: asking for them, matching each to its probe, and
 * reading the error queue that they share with ICMP errors. */
#include <errno.h>
#include <time.h>
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "engine_internal.h"
#include "packet.h"

/* The probe a send timestamp key was given to. */
typedef struct ir_tx_key_s {
  uint32_t key;
  uint32_t token;
} ir_tx_key_t;

/* Newer than the headers of some C libraries (Linux 6.9). */
#ifndef SOF_TIMESTAMPING_OPT_RX_FILTER
#define SOF_TIMESTAMPING_OPT_RX_FILTER (1 << 17)
#endif

/* For the socket: SOFTWARE: report software stamps; OPT_TSONLY: loop a send
 * stamp back alone, not with a copy of the datagram, which is cheaper;
 * OPT_ID: number the stamps so that each can be told apart (see
 * ir__txstamp_sent); OPT_RX_FILTER: but not on replies, which keep their
 * SO_TIMESTAMPNS stamp (the same realtime clock) and would otherwise carry
 * a second, larger control message with the same time, a few per cent of a
 * sweep. A kernel without OPT_RX_FILTER gets IR_TX_FLAGS_OLD: replies are
 * stamped through SO_TIMESTAMPING alone (RX_SOFTWARE), SO_TIMESTAMPNS off.
 * Each message that is to be stamped asks for TX_SOFTWARE itself
 * (IR_TX_RECORD): the device stamps it as it takes it (loopback, veth and
 * most drivers do), after the send queue and any qdisc, as close to the wire
 * as software gets. */
#define IR_TX_FLAGS                                                                    \
  (SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_TSONLY | SOF_TIMESTAMPING_OPT_ID | \
   SOF_TIMESTAMPING_OPT_RX_FILTER)
#define IR_TX_FLAGS_OLD                                                                \
  (SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_TSONLY | SOF_TIMESTAMPING_OPT_ID | \
   SOF_TIMESTAMPING_RX_SOFTWARE)
#define IR_TX_RECORD SOF_TIMESTAMPING_TX_SOFTWARE

/* Control data of one error-queue message: an extended error with its
 * offender address, and a timestamp. */
#define IR_ERRQUEUE_CONTROL_LEN 256

/* The flags for the socket, less OPT_TSONLY to verify. */
static int ir__flags(const ir_socket_t* sock, int flags) {
  return sock->tx_verify ? flags & ~SOF_TIMESTAMPING_OPT_TSONLY : flags;
}

static int ir__set_flags(int fd, int flags) {
  return setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof(flags));
}

void ir__txstamp_enable(ir_socket_t* sock, const ir_engine_config_t* config) {
  ir_tx_stamp_mode_t mode = config->tx_stamp;
  sock->tx_stamping = false;
  sock->tx_verify = mode == IR_TX_STAMP_VERIFY;
  /* Tried with the first send; a kernel without it refuses that send with
   * EINVAL, and ir__txstamp_send_failed falls back to the counter. */
  sock->tx_explicit = !config->tx_keys_counter;
  sock->tx_key_next = 0;
  sock->tx_unread = 0;
  if (mode == IR_TX_STAMP_USER) {
    return; /* Send times stay user-space clock reads. */
  }
  sock->tx_flags = ir__flags(sock, IR_TX_FLAGS);
  if (ir__set_flags(sock->fd, sock->tx_flags) != 0) {
    sock->tx_flags = ir__flags(sock, IR_TX_FLAGS_OLD);
    if (ir__set_flags(sock->fd, sock->tx_flags) != 0) {
      return;
    }
    int off = 0;
    (void)setsockopt(sock->fd, SOL_SOCKET, SO_TIMESTAMPNS, &off, sizeof(off));
  }
  sock->tx_stamping = true;
}

void ir__txstamp_free(ir_socket_t* sock) {
  free(sock->tx_keys);
  sock->tx_keys = NULL;
}

/* The value of SCM_TS_OPT_ID in asm-generic/socket.h (x86, Arm, RISC-V),
 * for C libraries whose headers predate Linux 6.13. */
#ifndef SCM_TS_OPT_ID
#define SCM_TS_OPT_ID 81
#endif

static void ir__add_u32(char* control, size_t* used, int type, uint32_t value) {
  struct cmsghdr* cmsg = (struct cmsghdr*)(control + *used);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = type;
  cmsg->cmsg_len = CMSG_LEN(sizeof(uint32_t));
  memcpy(CMSG_DATA(cmsg), &value, sizeof(uint32_t));
  *used += CMSG_SPACE(sizeof(uint32_t));
}

/* The stamp is asked for per message, so that a datagram not stamped costs
 * nothing and takes no key. With SCM_TS_OPT_ID its key is the probe's token,
 * unique in the run: no count to keep, nothing a failed send can shift. */
size_t ir__txstamp_add_cmsg(const ir_socket_t* sock, ir_probe_t* probe, char* control,
                            size_t used) {
  const ir_engine_t* engine = sock->engine;
  probe->tx_wanted =
      sock->tx_stamping &&
      (engine->config.tx_stamp != IR_TX_STAMP_AUTO || !engine->reading_inline);
  if (!probe->tx_wanted) {
    return used;
  }
  ir__add_u32(control, &used, SO_TIMESTAMPING, IR_TX_RECORD);
  if (sock->tx_explicit) {
    ir__add_u32(control, &used, SCM_TS_OPT_ID, probe->token);
  }
  return used;
}

/* Without SCM_TS_OPT_ID, an ICMP socket (datagram or raw) numbers the
 * datagrams it stamps with a per-socket counter (from 0 when the option is
 * turned on), taken when the datagram is built in ip_append_data or
 * ip6_append_data. A send that fails there (EAGAIN on a full send buffer, a
 * pending ICMP error, EMSGSIZE) gives its number back (kernels since 5.17);
 * one that fails before it (EHOSTUNREACH from routing) never took one. So
 * each datagram that a sendmmsg reports as sent has the next number, in
 * order, and a refused one has none: we count what the send calls report. */
void ir__txstamp_sent(ir_socket_t* sock, const ir_probe_t* probe) {
  if (!sock->tx_stamping || !probe->tx_wanted) {
    return;
  }
  sock->tx_unread++;
  if (sock->tx_explicit) {
    return;
  }
  uint32_t key = sock->tx_key_next++;
  if (sock->tx_keys == NULL) {
    sock->tx_keys = calloc(IR_TX_KEY_SLOTS, sizeof(*sock->tx_keys));
    if (sock->tx_keys == NULL) {
      return; /* Its stamp will match nothing: the probe keeps our clock. */
    }
  }
  ir_tx_key_t* slot = &sock->tx_keys[key & (IR_TX_KEY_SLOTS - 1)];
  slot->key = key;
  slot->token = probe->token;
}

/* Errors that the kernel reports before it numbers the datagram, or after it
 * has given the number back: our counter stays right. */
static bool ir__error_keeps_key(int err) {
  switch (-err) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case EINTR:
    case EMSGSIZE:
    /* A raw socket's full send buffer: raw datagrams are built without a
     * transport header, and that path says ENOBUFS where others say EAGAIN.
     * (A qdisc's drop says it too, after numbering; ir__txstamp_match sees
     * the shift that follows and starts the count again.) */
    case ENOBUFS:
    case EHOSTUNREACH:
    case ENETUNREACH:
      return true;
    default:
      return false;
  }
}

/* Any other error may come after the datagram was numbered, from the device
 * queue (ENOBUFS when a qdisc drops it) or a firewall (EPERM): it took a
 * number that no stamp will ever carry, and we cannot tell. Turning OPT_ID
 * off and on starts the kernel's counter at 0 again, and ours with it.
 * Stamps already queued keep their old numbers and are read first; a stamp
 * still to come under an old number that a new send has reused is caught by
 * ir__txstamp_match (it is older than the send call of the probe it names). */
/* Stops stamping sends on the socket, for good: our clock from now on, with
 * arrivals stamped as before. */
static void ir__txstamp_disable(ir_socket_t* sock) {
  int on = 1;
  (void)ir__set_flags(sock->fd, 0);
  (void)setsockopt(sock->fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on));
  sock->tx_stamping = false;
}

static void ir__txstamp_restart(ir_socket_t* sock) {
  int flags = sock->tx_flags;
  if (ir__set_flags(sock->fd, flags & ~SOF_TIMESTAMPING_OPT_ID) != 0 ||
      ir__set_flags(sock->fd, flags) != 0) {
    ir__txstamp_disable(sock); /* Cannot resynchronise. */
    return;
  }
  sock->tx_key_next = 0;
}

bool ir__txstamp_send_failed(ir_socket_t* sock, int err) {
  if (!sock->tx_stamping) {
    return false;
  }
  /* A kernel before 6.13 refuses SCM_TS_OPT_ID (it has numbered nothing, so
   * its counter starts at 0 with ours); one before 4.13 refuses to stamp a
   * single message. The probe is sent again without what was refused. */
  if (err == -EINVAL) {
    if (sock->tx_explicit) {
      sock->tx_explicit = false;
    } else {
      ir__txstamp_disable(sock);
    }
    return true;
  }
  if (!sock->tx_explicit && !ir__error_keeps_key(err)) {
    (void)ir__drain_error_queue(sock);
    ir__txstamp_restart(sock);
  }
  return false;
}

static bool ir__before(const struct timespec* a, const struct timespec* b) {
  return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* True when the datagram looped back with a stamp (from its link header
 * on: 14 bytes on loopback and Ethernet-like devices, none on a TUN device)
 * is the probe's own echo request: its sequence number and cookie. */
static bool ir__looped_is_probe(const ir_engine_t* engine, const ir_socket_t* sock,
                                const ir_probe_t* probe, const uint8_t* buf,
                                size_t len) {
  size_t at = 0;
  if (len >= 14 && buf[12] == (sock->family == AF_INET ? 0x08 : 0x86) &&
      buf[13] == (sock->family == AF_INET ? 0x00 : 0xdd)) {
    at = 14;
  }
  ir_icmp_msg_t msg;
  int err;
  if (sock->family == AF_INET) {
    err = ir_packet_decode(buf + at, len - at, AF_INET, true, false, &msg);
  } else if (len >= at + 40 && buf[at + 6] == IPPROTO_ICMPV6) {
    err = ir_packet_decode(buf + at + 40, len - at - 40, AF_INET6, false, false, &msg);
  } else if (len >= at + 48 && buf[at + 6] == IPPROTO_FRAGMENT &&
             buf[at + 40] == IPPROTO_ICMPV6) {
    /* The first fragment of a probe larger than the path MTU. */
    err = ir_packet_decode(buf + at + 48, len - at - 48, AF_INET6, false, false, &msg);
  } else {
    return false;
  }
  return err == 0 && msg.seq == probe->seq && msg.cookie_len == IR_COOKIE_LEN &&
         msg.run_cookie == engine->run_cookie && msg.token == probe->token;
}

/* The stamp replaces the probe's send time only if the probe is still in
 * flight, has no stamp yet, and the stamp is not older than the clock read
 * taken before its send call: a stamp that fails this belongs to another
 * datagram, and an RTT from it would be wrong, so it is counted and dropped. */
void ir__txstamp_match(ir_socket_t* sock, uint32_t key, const struct timespec* stamp,
                       const uint8_t* looped, size_t looped_len) {
  ir_engine_t* engine = sock->engine;
  if (sock->tx_unread > 0) {
    sock->tx_unread--;
  }
  ir_probe_t* probe = NULL;
  uint32_t token = 0;
  if (sock->tx_explicit) {
    token = key;
  } else if (sock->tx_keys != NULL) {
    const ir_tx_key_t* slot = &sock->tx_keys[key & (IR_TX_KEY_SLOTS - 1)];
    token = slot->key == key ? slot->token : 0;
  }
  if (stamp != NULL && token != 0 && engine->recent != NULL) {
    const ir_recent_t* recent = &engine->recent[token & (IR_RECENT_SLOTS - 1)];
    if (recent->token == token && recent->status == IR_RECENT_IN_FLIGHT) {
      probe = recent->probe;
    }
  }
  /* A stamp from one socket never names another socket's probe. */
  if (probe == NULL || probe->tx_kernel || probe->sock != sock) {
    engine->counters.tx_stamps_unmatched++;
    return;
  }
  if (ir__before(stamp, &probe->sent_realtime)) {
    /* Our count and the kernel's have come apart (a send that failed after
     * its datagram was numbered, inside a batch): start both again, once
     * per send at most, and let the next probes be matched afresh. */
    engine->counters.tx_stamps_unmatched++;
    if (!sock->tx_explicit && sock->tx_key_next > 0) {
      ir__txstamp_restart(sock);
    }
    return;
  }
  if (sock->tx_verify &&
      !ir__looped_is_probe(engine, sock, probe, looped, looped_len)) {
    engine->counters.tx_stamps_misattributed++;
    return;
  }
  probe->sent_realtime = *stamp;
  probe->tx_kernel = true;
  engine->counters.tx_stamps++;
}

/* A send batch's stamps come in one call, as replies do in ir__read_replies.
 * The buffers are our own: this runs between reading a batch of replies and
 * matching them, while the engine's receive buffers hold that batch. */
unsigned ir__drain_error_queue(ir_socket_t* sock) {
  struct mmsghdr msgs[IR_ERRQUEUE_BATCH];
  struct iovec iovs[IR_ERRQUEUE_BATCH];
  struct sockaddr_storage names[IR_ERRQUEUE_BATCH];
  union {
    char buf[IR_ERRQUEUE_CONTROL_LEN];
    struct cmsghdr align;
  } controls[IR_ERRQUEUE_BATCH];
  uint8_t bufs[IR_ERRQUEUE_BATCH][IR_RECV_BUFLEN];
  unsigned errors = 0;
  for (;;) {
    for (int i = 0; i < IR_ERRQUEUE_BATCH; i++) {
      iovs[i].iov_base = bufs[i];
      iovs[i].iov_len = sizeof(bufs[i]);
      memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
      msgs[i].msg_hdr.msg_name = &names[i];
      msgs[i].msg_hdr.msg_namelen = sizeof(names[i]);
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_control = controls[i].buf;
      msgs[i].msg_hdr.msg_controllen = sizeof(controls[i].buf);
    }
    int n =
        recvmmsg(sock->fd, msgs, IR_ERRQUEUE_BATCH, MSG_ERRQUEUE | MSG_DONTWAIT, NULL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return errors; /* EAGAIN: drained. */
    }
    for (int i = 0; i < n; i++) {
      if (ir__handle_error(sock, bufs[i], msgs[i].msg_len, &msgs[i].msg_hdr)) {
        errors++;
      }
    }
    if (n < IR_ERRQUEUE_BATCH) {
      return errors;
    }
  }
}

/* Draining only while stamps are owed keeps a socket without stamps (user
 * mode, or every stamp read) free of the extra system call. */
void ir__txstamp_before_replies(ir_socket_t* sock) {
  if (sock->tx_stamping && sock->tx_unread > 0) {
    (void)ir__drain_error_queue(sock);
  }
}
