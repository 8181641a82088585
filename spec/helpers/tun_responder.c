/* SPDX-License-Identifier: MIT */
/* A test host that answers echo requests wrongly on purpose, through a TUN
 * device: the faults a real network produces now and then, on demand.
 *
 *   tun_responder DEVICE LATE_MS
 *
 * Creates the TUN device DEVICE (the spec routes 192.0.2.32/27 and
 * 2001:db8:9::/64 to it) and answers each echo request according to the last
 * byte of its destination address:
 *   1  a correct reply                     (control)
 *   2  two identical replies               (duplicate)
 *   3  a correct reply after LATE_MS ms    (late, past the probe's timeout)
 *   4  a reply whose payload cookie is changed, checksum made valid again
 *   5  a reply with the sequence number plus one
 *   6  a correct reply, but from the address ending in 7 (foreign source)
 *   8  a reply with a wrong ICMP checksum
 *   9  a reply with one bit flipped in payload byte 28 (in the filler after
 *      cookie and stamp), checksum made valid again
 *  10  a reply with one bit flipped in the last payload byte, checksum valid
 *  11  a reply one payload byte shorter than the request, checksum valid
 *   anything else: no reply.
 * It exits when its parent does, or on SIGTERM. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define MAX_PACKET 65536
#define MAX_DELAYED 4096

/* A reply held back for the "late" case. */
typedef struct delayed_s {
  uint64_t due_ms;
  size_t len;
  uint8_t* packet;
} delayed_t;

typedef struct responder_s {
  int fd;
  int late_ms;
  delayed_t delayed[MAX_DELAYED];
  int delayed_count;
} responder_t;

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Internet checksum over data, plus an initial sum (for pseudo-headers). */
static uint16_t checksum(const uint8_t* data, size_t len, uint32_t sum) {
  for (size_t i = 0; i + 1 < len; i += 2) {
    sum += (uint32_t)(data[i] << 8 | data[i + 1]);
  }
  if (len & 1) {
    sum += (uint32_t)(data[len - 1] << 8);
  }
  while (sum >> 16) {
    sum = (sum & 0xffff) + (sum >> 16);
  }
  return (uint16_t)~sum;
}

/* Sets the ICMP checksum of a v4 (icmp at offset) or v6 packet. */
static void fix_checksum(uint8_t* packet, size_t len, size_t icmp_off, int v6) {
  uint8_t* icmp = packet + icmp_off;
  size_t icmp_len = len - icmp_off;
  icmp[2] = icmp[3] = 0;
  uint32_t sum = 0;
  if (v6) {
    /* Pseudo-header: source, destination, length, next header 58. */
    for (int i = 8; i < 40; i += 2) {
      sum += (uint32_t)(packet[i] << 8 | packet[i + 1]);
    }
    sum += (uint32_t)icmp_len;
    sum += 58;
  }
  uint16_t c = checksum(icmp, icmp_len, sum);
  icmp[2] = (uint8_t)(c >> 8);
  icmp[3] = (uint8_t)c;
}

static void emit(responder_t* r, const uint8_t* packet, size_t len) {
  if (write(r->fd, packet, len) < 0) {
    perror("tun_responder: write");
  }
}

/* Turns an echo request into the reply (in place) and answers as the last
 * byte of the destination address says. */
static void answer(responder_t* r, uint8_t* packet, size_t len) {
  int v6 = (packet[0] >> 4) == 6;
  size_t icmp_off;
  uint8_t *src, *dst;
  size_t alen;
  if (v6) {
    if (len < 48 || packet[6] != 58 || packet[40] != 128)
      return;
    icmp_off = 40;
    src = packet + 8;
    dst = packet + 24;
    alen = 16;
    packet[40] = 129;
  } else {
    size_t ihl = (size_t)(packet[0] & 0x0f) * 4;
    if (len < ihl + 8 || packet[9] != 1 || packet[ihl] != 8)
      return;
    icmp_off = ihl;
    src = packet + 12;
    dst = packet + 16;
    alen = 4;
    packet[ihl] = 0;
    packet[8] = 64; /* TTL */
  }
  uint8_t mode = dst[alen - 1] & 0x1f;
  uint8_t tmp[16];
  memcpy(tmp, src, alen);
  memcpy(src, dst, alen);
  memcpy(dst, tmp, alen);
  uint8_t* icmp = packet + icmp_off;
  size_t icmp_len = len - icmp_off;
  switch (mode) {
    case 4: /* Corrupt the cookie (first payload byte), keep a valid checksum. */
      if (icmp_len > 8)
        icmp[8] ^= 0xff;
      break;
    case 5: { /* Wrong sequence number. */
      uint16_t seq = (uint16_t)(icmp[6] << 8 | icmp[7]);
      seq++;
      icmp[6] = (uint8_t)(seq >> 8);
      icmp[7] = (uint8_t)seq;
      break;
    }
    case 9: /* Damage the filler, as a bad link would, behind the cookie. */
      if (icmp_len > 8 + 28)
        icmp[8 + 28] ^= 0x10;
      break;
    case 10: /* Damage the very last byte, however long the payload. */
      if (icmp_len > 8)
        icmp[icmp_len - 1] ^= 0x01;
      break;
    case 11: /* Cut the payload short by one byte, lengths made to agree. */
      if (icmp_len > 8) {
        len--;
        icmp_len--;
        if (v6) {
          packet[4] = (uint8_t)((len - 40) >> 8);
          packet[5] = (uint8_t)(len - 40);
        } else {
          packet[2] = (uint8_t)(len >> 8);
          packet[3] = (uint8_t)len;
        }
      }
      break;
    case 6: /* From the neighbouring address. */
      src[alen - 1] = (uint8_t)((src[alen - 1] & ~0x1f) | 7);
      break;
    default:
      break;
  }
  if (!v6) {
    /* IPv4 header checksum, after the address and TTL changes. */
    size_t ihl = icmp_off;
    packet[10] = packet[11] = 0;
    uint16_t c = checksum(packet, ihl, 0);
    packet[10] = (uint8_t)(c >> 8);
    packet[11] = (uint8_t)c;
  }
  fix_checksum(packet, len, icmp_off, v6);
  switch (mode) {
    case 1:
    case 4:
    case 5:
    case 6:
    case 9:
    case 10:
    case 11:
      emit(r, packet, len);
      break;
    case 2:
      emit(r, packet, len);
      emit(r, packet, len);
      break;
    case 3:
      if (r->delayed_count < MAX_DELAYED) {
        delayed_t* d = &r->delayed[r->delayed_count++];
        d->due_ms = now_ms() + (uint64_t)r->late_ms;
        d->len = len;
        d->packet = malloc(len);
        if (d->packet != NULL)
          memcpy(d->packet, packet, len);
      }
      break;
    case 8:
      icmp[2] ^= 0x55; /* Break the checksum. */
      emit(r, packet, len);
      break;
    default:
      break;
  }
}

static void send_due(responder_t* r) {
  uint64_t now = now_ms();
  int kept = 0;
  for (int i = 0; i < r->delayed_count; i++) {
    delayed_t* d = &r->delayed[i];
    if (d->due_ms <= now) {
      if (d->packet != NULL)
        emit(r, d->packet, d->len);
      free(d->packet);
    } else {
      r->delayed[kept++] = *d;
    }
  }
  r->delayed_count = kept;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s DEVICE LATE_MS\n", argv[0]);
    return 2;
  }
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  static responder_t responder;
  responder.late_ms = atoi(argv[2]);
  responder.fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (responder.fd < 0) {
    perror("tun_responder: /dev/net/tun");
    return 1;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", argv[1]);
  if (ioctl(responder.fd, TUNSETIFF, &ifr) < 0) {
    perror("tun_responder: TUNSETIFF");
    return 1;
  }
  printf("ready\n");
  fflush(stdout);
  static uint8_t packet[MAX_PACKET];
  for (;;) {
    struct pollfd p = {responder.fd, POLLIN, 0};
    int timeout = responder.delayed_count > 0 ? 1 : 1000;
    if (poll(&p, 1, timeout) < 0 && errno != EINTR) {
      perror("tun_responder: poll");
      return 1;
    }
    if (p.revents & POLLIN) {
      ssize_t n = read(responder.fd, packet, sizeof(packet));
      if (n > 0)
        answer(&responder, packet, (size_t)n);
    }
    send_due(&responder);
  }
}
