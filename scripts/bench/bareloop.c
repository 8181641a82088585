/* SPDX-License-Identifier: MIT */
/* The practical limit for the sweep benchmark: a bare C loop that pings every
 * address of an IPv4 block once through one ICMP datagram socket, sending with
 * sendmmsg and reading with recvmmsg in batches, with nothing else: no
 * timeouts, no matching beyond a count, no Lua.
 *
 *   bareloop 127.0.0.0/16      prints: targets, replies, seconds, pings/s */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define BATCH 64
#define PAYLOAD 56

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s A.B.C.D/PREFIX\n", argv[0]);
    return 2;
  }
  char net[64];
  int prefix = 0;
  struct in_addr base;
  if (sscanf(argv[1], "%63[0-9.]/%d", net, &prefix) != 2 || prefix < 8 || prefix > 32 ||
      inet_pton(AF_INET, net, &base) != 1) {
    fprintf(stderr, "bareloop: '%s' is not an IPv4 CIDR block (/8 to /32)\n", argv[1]);
    return 2;
  }
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, IPPROTO_ICMP);
  if (fd < 0) {
    perror("bareloop: socket");
    return 1;
  }
  int rcvbuf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
  uint32_t first =
      ntohl(base.s_addr) & (prefix == 32 ? ~0u : ~((1u << (32 - prefix)) - 1));
  uint64_t total = 1ull << (32 - prefix);

  static unsigned char out[BATCH][8 + PAYLOAD], in[BATCH][8 + PAYLOAD + 64];
  struct sockaddr_in dest[BATCH], from[BATCH];
  struct iovec out_iov[BATCH], in_iov[BATCH];
  struct mmsghdr out_msg[BATCH], in_msg[BATCH];
  memset(out, 0, sizeof(out));
  for (int i = 0; i < BATCH; i++) {
    struct icmphdr* icmp = (struct icmphdr*)out[i];
    icmp->type = ICMP_ECHO;
    out_iov[i] = (struct iovec){out[i], sizeof(out[i])};
    in_iov[i] = (struct iovec){in[i], sizeof(in[i])};
  }
  uint64_t sent = 0, received = 0;
  double start = now_s();
  /* The deadline only guards against lost replies; on loopback none are. */
  while (received < total && now_s() - start < 30) {
    int n = 0;
    while (n < BATCH && sent + n < total) {
      dest[n] =
          (struct sockaddr_in){.sin_family = AF_INET,
                               .sin_addr.s_addr = htonl(first + (uint32_t)(sent + n))};
      ((struct icmphdr*)out[n])->un.echo.sequence = htons((uint16_t)(sent + n));
      memset(&out_msg[n], 0, sizeof(out_msg[n]));
      out_msg[n].msg_hdr.msg_name = &dest[n];
      out_msg[n].msg_hdr.msg_namelen = sizeof(dest[n]);
      out_msg[n].msg_hdr.msg_iov = &out_iov[n];
      out_msg[n].msg_hdr.msg_iovlen = 1;
      n++;
    }
    if (n > 0) {
      int done = sendmmsg(fd, out_msg, (unsigned)n, 0);
      if (done > 0)
        sent += (uint64_t)done;
    }
    for (;;) {
      for (int i = 0; i < BATCH; i++) {
        memset(&in_msg[i], 0, sizeof(in_msg[i]));
        in_msg[i].msg_hdr.msg_name = &from[i];
        in_msg[i].msg_hdr.msg_namelen = sizeof(from[i]);
        in_msg[i].msg_hdr.msg_iov = &in_iov[i];
        in_msg[i].msg_hdr.msg_iovlen = 1;
      }
      int got = recvmmsg(fd, in_msg, BATCH, MSG_DONTWAIT, NULL);
      if (got <= 0)
        break;
      received += (uint64_t)got;
    }
    if (sent == total && received < total) {
      struct pollfd p = {fd, POLLIN, 0};
      poll(&p, 1, 10);
    }
  }
  double seconds = now_s() - start;
  printf("targets %llu replies %llu seconds %.3f rate %.0f\n",
         (unsigned long long)total, (unsigned long long)received, seconds,
         (double)received / seconds);
  return received == total ? 0 : 1;
}
