/* SPDX-License-Identifier: MIT */
/* Opening the per-family ICMP sockets: datagram first, raw as the fallback. */
#include <errno.h>
#include <time.h>
#include <linux/errqueue.h>
#include <linux/icmp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine_internal.h"
#include "packet.h"

/* Receive buffer we ask for: a sweep's replies arrive in bursts, and a reply
 * dropped by a full buffer would look like a timeout. */
#define IR_RCVBUF_BYTES (4 * 1024 * 1024)

static const char ir__fix_hint[] =
    "allow unprivileged ping sockets with: "
    "sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"";

const char* ir__socket_kind_name(ir_socket_kind_t kind) {
  switch (kind) {
    case IR_KIND_DGRAM:
      return "dgram";
    case IR_KIND_RAW:
      return "raw";
    default:
      return NULL;
  }
}

static int ir__set_int(int fd, int level, int name, int value) {
  if (setsockopt(fd, level, name, &value, sizeof(value)) != 0) {
    return -errno;
  }
  return 0;
}

/* Only echo replies reach a raw socket's normal queue; ICMP errors about our
 * probes come through the error queue (IP_RECVERR), as on datagram sockets,
 * so both kinds share one error path. The kernel filters nothing else for a
 * raw socket: every echo reply on the host still arrives, and the receive path
 * drops those whose identifier is not ours. */
static int ir__set_raw_filter(int fd, int family) {
  if (family == AF_INET) {
    struct icmp_filter filter;
    filter.data = ~(uint32_t)(1u << IR_ICMP4_ECHO_REPLY);
    if (setsockopt(fd, SOL_RAW, ICMP_FILTER, &filter, sizeof(filter)) != 0) {
      return -errno;
    }
    return 0;
  }
  struct icmp6_filter filter6;
  ICMP6_FILTER_SETBLOCKALL(&filter6);
  ICMP6_FILTER_SETPASS(IR_ICMP6_ECHO_REPLY, &filter6);
  if (setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &filter6, sizeof(filter6)) != 0) {
    return -errno;
  }
  return 0;
}

static int ir__configure(ir_socket_t* sock) {
  int fd = sock->fd;
  int err = ir__set_int(fd, SOL_SOCKET, SO_TIMESTAMPNS, 1);
  if (err == 0 && sock->family == AF_INET) {
    /* Probes leave with DF set, as the kernel's default strategy sets it on
     * anything that fits the path MTU; but refusing to fragment (instead of
     * merely preferring not to) lets the kernel give them IP ID 0 (RFC 6864)
     * rather than draw an ID from its shared generator, a hash and a random
     * number per datagram, about 5% of a loopback sweep. A probe larger than
     * the path MTU fails with EMSGSIZE and is sent again fragmented (see
     * ir__send_fragmented). Best effort: without it, nothing changes. */
    (void)ir__set_int(fd, IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO);
    err = ir__set_int(fd, IPPROTO_IP, IP_RECVERR, 1);
    if (err == 0)
      err = ir__set_int(fd, IPPROTO_IP, IP_RECVTTL, 1);
  } else if (err == 0) {
    err = ir__set_int(fd, IPPROTO_IPV6, IPV6_RECVERR, 1);
    if (err == 0)
      err = ir__set_int(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1);
  }
  if (err == 0 && sock->kind == IR_KIND_RAW) {
    err = ir__set_raw_filter(fd, sock->family);
  }
  if (err != 0) {
    return err;
  }
  /* A larger buffer is best effort: FORCE works with CAP_NET_ADMIN, the plain
   * option is capped by net.core.rmem_max. */
  if (ir__set_int(fd, SOL_SOCKET, SO_RCVBUFFORCE, IR_RCVBUF_BYTES) != 0) {
    (void)ir__set_int(fd, SOL_SOCKET, SO_RCVBUF, IR_RCVBUF_BYTES);
  }
  return 0;
}

/* Binds a bound socket to its device, then its source address; on failure
 * writes why into the socket's message. The device comes first: bind()
 * itself does not depend on it, and SO_BINDTODEVICE is allowed without
 * privilege (Linux 5.7) only while the socket has no device yet. */
static int ir__bind(ir_socket_t* sock) {
  const char* fam = sock->family == AF_INET ? "IPv4" : "IPv6";
  if (sock->device[0] != '\0' &&
      setsockopt(sock->fd, SOL_SOCKET, SO_BINDTODEVICE, sock->device,
                 (socklen_t)strlen(sock->device) + 1) != 0) {
    int err = -errno;
    snprintf(sock->error_message, sizeof(sock->error_message),
             "cannot bind the %s ICMP socket to interface '%s': %s", fam, sock->device,
             strerror(-err));
    return err;
  }
  if (sock->source.family != AF_UNSPEC) {
    struct sockaddr_storage ss;
    socklen_t len = ir_addr_to_sockaddr(&sock->source, &ss);
    if (bind(sock->fd, (struct sockaddr*)&ss, len) != 0) {
      int err = -errno;
      char text[IR_ADDR_STRLEN];
      ir_addr_format(&sock->source, text, sizeof(text));
      snprintf(sock->error_message, sizeof(sock->error_message),
               "cannot bind the %s ICMP socket to source address %s: %s", fam, text,
               strerror(-err));
      return err;
    }
  }
  return 0;
}

static int ir__open_kind(ir_socket_t* sock, ir_socket_kind_t kind,
                         const ir_engine_config_t* config, bool* bind_failed) {
  int send_buffer = config->send_buffer;
  int type =
      (kind == IR_KIND_DGRAM ? SOCK_DGRAM : SOCK_RAW) | SOCK_NONBLOCK | SOCK_CLOEXEC;
  int proto = sock->family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6;
  int fd = socket(sock->family, type, proto);
  if (fd < 0) {
    return -errno;
  }
  sock->fd = fd;
  sock->kind = kind;
  int err = ir__configure(sock);
  /* A small send buffer is for tests of back-pressure: sends then fail with
   * EAGAIN long before the device queue is full. */
  if (err == 0 && send_buffer > 0) {
    err = ir__set_int(fd, SOL_SOCKET, SO_SNDBUF, send_buffer);
  }
  if (err == 0) {
    err = ir__bind(sock);
    *bind_failed = err != 0;
  }
  if (err == 0) {
    ir__txstamp_enable(sock, config);
  }
  if (err != 0) {
    ir__socket_close_fd(sock);
  }
  return err;
}

int ir__socket_open(ir_socket_t* sock, int family, const ir_engine_config_t* config) {
  ir_socket_mode_t mode = config->socket_mode;
  const char* fam = family == AF_INET ? "IPv4" : "IPv6";
  sock->family = family;
  sock->fd = -1;
  sock->open_error = 0;
  sock->error_message[0] = '\0';
  sock->kind = IR_KIND_NONE;
  /* Random starting points make it unlikely that two runs, or another ping on
   * the host, reuse the same identifier and sequence numbers at once. */
  uint16_t random_bits[2] = {0, 0};
  if (getrandom(random_bits, sizeof(random_bits), GRND_NONBLOCK) < 0) {
    random_bits[0] = (uint16_t)getpid();
    random_bits[1] = (uint16_t)(getpid() >> 16);
  }
  sock->ident = random_bits[0];
  sock->next_seq = random_bits[1];

  /* A datagram ICMP socket needs no privilege when our group is inside
   * net.ipv4.ping_group_range (which governs ICMPv6 too); outside it socket()
   * fails with EACCES. Kernels built without ping sockets say EPROTONOSUPPORT,
   * and some sandboxes say EPERM. In those three cases a raw socket may still
   * be allowed (CAP_NET_RAW), so we fall back to it. Any other error, such as
   * EAFNOSUPPORT on a host without IPv6, would fail the same way for a raw
   * socket, so it is reported as it is. */
  int dgram_err = 0;
  bool bind_failed = false;
  if (mode != IR_SOCKET_RAW) {
    dgram_err = ir__open_kind(sock, IR_KIND_DGRAM, config, &bind_failed);
    if (dgram_err == 0) {
      return 0;
    }
    if (bind_failed) {
      sock->open_error = dgram_err; /* The message is the bind's. */
      return dgram_err;
    }
    bool may_fall_back =
        dgram_err == -EACCES || dgram_err == -EPERM || dgram_err == -EPROTONOSUPPORT;
    if (mode == IR_SOCKET_DGRAM || !may_fall_back) {
      snprintf(sock->error_message, sizeof(sock->error_message),
               "cannot open an %s ICMP datagram socket: %s%s%s", fam,
               strerror(-dgram_err), dgram_err == -EACCES ? "; " : "",
               dgram_err == -EACCES ? ir__fix_hint : "");
      sock->open_error = dgram_err;
      return dgram_err;
    }
  }
  int raw_err = ir__open_kind(sock, IR_KIND_RAW, config, &bind_failed);
  if (raw_err == 0) {
    return 0;
  }
  if (bind_failed) {
    sock->open_error = raw_err;
    return raw_err;
  }
  if (raw_err == -EPERM || raw_err == -EACCES) {
    snprintf(
        sock->error_message, sizeof(sock->error_message),
        "cannot open an %s ICMP socket: %s%s%s; raw sockets need CAP_NET_RAW; %s", fam,
        dgram_err ? "datagram sockets: " : "", dgram_err ? strerror(-dgram_err) : "",
        dgram_err == -EACCES ? " (our group is outside net.ipv4.ping_group_range)" : "",
        ir__fix_hint);
  } else {
    snprintf(sock->error_message, sizeof(sock->error_message),
             "cannot open an %s raw ICMP socket: %s", fam, strerror(-raw_err));
  }
  sock->open_error = raw_err;
  return raw_err;
}

void ir__socket_close_fd(ir_socket_t* sock) {
  if (sock->fd >= 0) {
    close(sock->fd);
  }
  sock->fd = -1;
  sock->kind = IR_KIND_NONE;
}
