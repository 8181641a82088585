/* SPDX-License-Identifier: MIT */
/* Numeric IPv4/IPv6 addresses: parsing, formatting, sockaddr conversion, hashing. */
#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* Only addresses whose meaning depends on the interface may carry a scope:
 * link-local unicast (fe80::/10) and interface- or link-local multicast (ff01::,
 * ff02::, as in "ping ff02::1%eth0"). Everywhere else a scope would make two
 * spellings of one destination compare unequal, so it is refused or dropped. */
static bool addr_is_scoped(const uint8_t* bytes) {
  if (bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80)
    return true;
  return bytes[0] == 0xff && ((bytes[1] & 0x0f) == 1 || (bytes[1] & 0x0f) == 2);
}

/* Parses the text after '%': a decimal interface index or an interface name. */
static int parse_scope(const char* text, uint32_t* out) {
  uint64_t value;
  unsigned int index;
  const char* p;

  if (*text == '\0')
    return -EINVAL;

  if (strspn(text, "0123456789") == strlen(text)) {
    value = 0;
    for (p = text; *p != '\0'; p++) {
      value = value * 10 + (uint64_t)(*p - '0');
      if (value > UINT32_MAX)
        return -EINVAL;
    }
    *out = (uint32_t)value;
    return 0;
  }

  /* if_nametoindex asks the kernel, but only for a name the caller wrote: the
   * parser still never resolves host names. */
  if (strlen(text) >= IF_NAMESIZE)
    return -EINVAL;
  index = if_nametoindex(text);
  if (index == 0)
    return -EINVAL;
  *out = index;
  return 0;
}

int ir_addr_parse(const char* text, ir_addr_t* out) {
  char host[INET6_ADDRSTRLEN];
  const char* percent;
  size_t host_len;
  ir_addr_t addr;
  int err;

  if (text == NULL)
    return -EINVAL;

  /* The whole struct, padding included, is zeroed so that equal addresses are
   * equal bytewise and can be compared or hashed as memory. */
  memset(&addr, 0, sizeof(addr));

  percent = strchr(text, '%');
  host_len = percent != NULL ? (size_t)(percent - text) : strlen(text);
  if (host_len >= sizeof(host))
    return -EINVAL;
  memcpy(host, text, host_len);
  host[host_len] = '\0';

  if (inet_pton(AF_INET, host, addr.bytes) == 1) {
    if (percent != NULL)
      return -EINVAL;
    addr.family = AF_INET;
  } else if (inet_pton(AF_INET6, host, addr.bytes) == 1) {
    addr.family = AF_INET6;
    if (percent != NULL) {
      if (!addr_is_scoped(addr.bytes))
        return -EINVAL;
      err = parse_scope(percent + 1, &addr.scope_id);
      if (err != 0)
        return err;
    }
  } else {
    return -EINVAL;
  }

  /* memcpy rather than assignment, which need not copy the padding. */
  memcpy(out, &addr, sizeof(addr));
  return 0;
}

/* Writes dotted-quad text for 4 bytes into text (at least 16 bytes). */
static void format_ipv4(const uint8_t* bytes, char* text) {
  char* out = text;
  for (int i = 0; i < 4; i++) {
    unsigned v = bytes[i];
    if (v >= 100) {
      *out++ = (char)('0' + v / 100);
      v %= 100;
      *out++ = (char)('0' + v / 10);
    } else if (v >= 10) {
      *out++ = (char)('0' + v / 10);
    }
    *out++ = (char)('0' + v % 10);
    *out++ = i < 3 ? '.' : '\0';
  }
}

void ir_addr_format(const ir_addr_t* addr, char* buf, size_t len) {
  char text[IR_ADDR_STRLEN];
  size_t n;

  if (len == 0)
    return;

  switch (addr->family) {
    case AF_INET:
      /* By hand: glibc's inet_ntop goes through sprintf, and a sweep formats
       * an address for every result. */
      format_ipv4(addr->bytes, text);
      break;
    case AF_INET6:
      if (inet_ntop(AF_INET6, addr->bytes, text, sizeof(text)) == NULL)
        text[0] = '\0';
      /* The scope is written as a number, not an interface name: looking the
       * name up would be I/O, and the number parses back to the same address. */
      if (addr->scope_id != 0) {
        n = strlen(text);
        snprintf(text + n, sizeof(text) - n, "%%%" PRIu32, addr->scope_id);
      }
      break;
    default:
      /* A visible marker beats an empty string in a log line. */
      strcpy(text, "?");
      break;
  }

  n = strlen(text);
  if (n >= len)
    n = len - 1;
  memcpy(buf, text, n);
  buf[n] = '\0';
}

int ir_addr_from_sockaddr(const struct sockaddr* sa, ir_addr_t* out) {
  struct sockaddr_in sin;
  struct sockaddr_in6 sin6;
  ir_addr_t addr;

  memset(&addr, 0, sizeof(addr));

  /* The sockaddr is copied out rather than cast, so no alignment or aliasing
   * assumptions are made about the caller's buffer. */
  switch (sa->sa_family) {
    case AF_INET:
      memcpy(&sin, sa, sizeof(sin));
      addr.family = AF_INET;
      memcpy(addr.bytes, &sin.sin_addr, 4);
      break;
    case AF_INET6:
      memcpy(&sin6, sa, sizeof(sin6));
      addr.family = AF_INET6;
      memcpy(addr.bytes, &sin6.sin6_addr, 16);
      /* Replies from a global address must match the probe sent to it, so a
       * scope the kernel reports for an unscoped address is not kept. */
      if (addr_is_scoped(addr.bytes))
        addr.scope_id = sin6.sin6_scope_id;
      break;
    default:
      return -EAFNOSUPPORT;
  }

  memcpy(out, &addr, sizeof(addr));
  return 0;
}

socklen_t ir_addr_to_sockaddr(const ir_addr_t* addr, struct sockaddr_storage* ss) {
  struct sockaddr_in sin;
  struct sockaddr_in6 sin6;

  memset(ss, 0, sizeof(*ss));

  switch (addr->family) {
    case AF_INET:
      memset(&sin, 0, sizeof(sin));
      sin.sin_family = AF_INET;
      memcpy(&sin.sin_addr, addr->bytes, 4);
      memcpy(ss, &sin, sizeof(sin));
      return (socklen_t)sizeof(sin);
    case AF_INET6:
      memset(&sin6, 0, sizeof(sin6));
      sin6.sin6_family = AF_INET6;
      memcpy(&sin6.sin6_addr, addr->bytes, 16);
      sin6.sin6_scope_id = addr->scope_id;
      memcpy(ss, &sin6, sizeof(sin6));
      return (socklen_t)sizeof(sin6);
    default:
      /* No valid family: a zero length makes sendto fail with EINVAL. */
      return 0;
  }
}

bool ir_addr_equal(const ir_addr_t* a, const ir_addr_t* b) {
  /* Fields are compared one by one, so padding never matters here. The unused
   * tail of an IPv4 address is zero by the type's contract. */
  return a->family == b->family && a->scope_id == b->scope_id &&
         memcmp(a->bytes, b->bytes, sizeof(a->bytes)) == 0;
}

static uint32_t rotl32(uint32_t x, int r) {
  return (x << r) | (x >> (32 - r));
}

/* One block step of MurmurHash3 (x86, 32-bit). */
static uint32_t murmur_step(uint32_t h, uint32_t k) {
  k *= 0xcc9e2d51u;
  k = rotl32(k, 15);
  k *= 0x1b873593u;
  h ^= k;
  h = rotl32(h, 13);
  return h * 5 + 0xe6546b64u;
}

uint32_t ir_addr_hash(const ir_addr_t* addr, uint32_t extra) {
  uint32_t h = 0x9747b28cu;
  uint32_t word;
  size_t i;

  /* Words are read in host order: the hash only has to agree with itself
   * within one process, never across machines. */
  /* An IPv4 address is only its first word; the rest is always zero. */
  size_t used = addr->family == AF_INET ? 4 : sizeof(addr->bytes);
  for (i = 0; i < used; i += 4) {
    memcpy(&word, addr->bytes + i, 4);
    h = murmur_step(h, word);
  }
  h = murmur_step(h, addr->family);
  h = murmur_step(h, addr->scope_id);
  h = murmur_step(h, extra);

  /* The finalizer spreads consecutive sequence numbers over every bit, which
   * the table needs because it indexes with the low bits only. */
  h ^= 28;
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}
