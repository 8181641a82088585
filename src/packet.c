/* SPDX-License-Identifier: MIT */
/* ICMP/ICMPv6 echo request encoding, reply decoding and the Internet checksum. */
#include "common.h"
#include "packet.h"

#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#define IR_IPV4_MIN_HEADER_LEN 20
#define IR_IPPROTO_ICMP 1

static void put_be16(uint8_t* p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void put_be32(uint8_t* p, uint32_t v) {
  put_be16(p, (uint16_t)(v >> 16));
  put_be16(p + 2, (uint16_t)v);
}

static void put_be64(uint8_t* p, uint64_t v) {
  put_be32(p, (uint32_t)(v >> 32));
  put_be32(p + 4, (uint32_t)v);
}

static uint16_t get_be16(const uint8_t* p) {
  return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get_be32(const uint8_t* p) {
  return ((uint32_t)get_be16(p) << 16) | get_be16(p + 2);
}

uint16_t ir_checksum(const void* data, size_t len) {
  const uint8_t* p = data;
  uint8_t tail[4] = {0, 0, 0, 0};
  uint64_t sum = 0;
  uint32_t word;

  /* Words are summed in host order: the ones-complement sum is byte-order
   * independent (RFC 1071, 2.B), so the result comes out in the order of the
   * data and is stored with memcpy, without htons. Summing 32-bit words and
   * folding at the end gives the same sum as 16-bit words (2.C), in half the
   * steps: every echo request of a sweep is summed. A 64-bit sum cannot
   * carry out for any buffer that fits in memory. */
  while (len >= 4) {
    memcpy(&word, p, 4);
    sum += word;
    p += 4;
    len -= 4;
  }
  /* The last one to three bytes are summed as if padded with zero bytes,
   * which is what an odd last byte needs too. */
  if (len > 0) {
    memcpy(tail, p, len);
    memcpy(&word, tail, 4);
    sum += word;
  }

  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

/* One period of the payload filler: byte i is i. */
static const uint8_t filler_period[256] = {
#define IR_ROW(n)                                                                   \
  n, n + 1, n + 2, n + 3, n + 4, n + 5, n + 6, n + 7, n + 8, n + 9, n + 10, n + 11, \
      n + 12, n + 13, n + 14, n + 15
    IR_ROW(0),   IR_ROW(16),  IR_ROW(32),  IR_ROW(48),  IR_ROW(64),  IR_ROW(80),
    IR_ROW(96),  IR_ROW(112), IR_ROW(128), IR_ROW(144), IR_ROW(160), IR_ROW(176),
    IR_ROW(192), IR_ROW(208), IR_ROW(224), IR_ROW(240)
#undef IR_ROW
};

/* Byte `i` of the random filler drawn from seed: block i / 8 of a
 * splitmix64 stream (a fixed function of seed and position, so the
 * receiver draws the same bytes, from any offset, without keeping them). */
static uint64_t random_block(uint64_t seed, size_t block) {
  uint64_t z = seed + (uint64_t)(block + 1) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* Writes the filler of payload bytes [from, to): the pattern for seed 0. */
static void write_filler(uint8_t* payload, size_t from, size_t to, uint64_t seed) {
  if (seed != 0) {
    for (size_t i = from; i < to; i++) {
      payload[i] = (uint8_t)(random_block(seed, i / 8) >> (8 * (i % 8)));
    }
    return;
  }
  for (size_t i = from; i < to;) {
    size_t offset = i % sizeof(filler_period);
    size_t chunk = sizeof(filler_period) - offset;
    if (chunk > to - i)
      chunk = to - i;
    memcpy(payload + i, filler_period + offset, chunk);
    i += chunk;
  }
}

size_t ir_packet_encode_echo(uint8_t* buf, size_t cap, int family, uint16_t id,
                             uint16_t seq, uint32_t run_cookie, uint32_t token,
                             uint64_t stamp_ns, size_t data_len) {
  return ir_packet_encode_echo_seeded(buf, cap, family, id, seq, run_cookie, token,
                                      stamp_ns, data_len, 0);
}

size_t ir_packet_encode_echo_seeded(uint8_t* buf, size_t cap, int family, uint16_t id,
                                    uint16_t seq, uint32_t run_cookie, uint32_t token,
                                    uint64_t stamp_ns, size_t data_len,
                                    uint64_t filler_seed) {
  uint8_t head[IR_COOKIE_LEN + IR_STAMP_LEN];
  uint8_t* payload;
  uint16_t sum;
  uint8_t type;

  if (family == AF_INET)
    type = IR_ICMP4_ECHO_REQUEST;
  else if (family == AF_INET6)
    type = IR_ICMP6_ECHO_REQUEST;
  else
    return 0;

  /* Written as a subtraction so a huge data_len cannot wrap the sum. */
  if (cap < IR_ICMP_HEADER_LEN || data_len > cap - IR_ICMP_HEADER_LEN)
    return 0;

  payload = buf + IR_ICMP_HEADER_LEN;
  buf[0] = type;
  buf[1] = 0;
  buf[2] = 0;
  buf[3] = 0;
  put_be16(buf + 4, id);
  put_be16(buf + 6, seq);

  /* Cookie and stamp are cut short when the payload is, so any size the user
   * asks for is sent exactly; the decoder reports how much came back. */
  put_be32(head, run_cookie);
  put_be32(head + 4, token);
  put_be64(head + 8, stamp_ns);
  memcpy(payload, head, data_len < sizeof(head) ? data_len : sizeof(head));
  /* The filler is byte i = i, as in iputils ping, so a corrupting path shows
   * up as a recognisable pattern in a capture. It repeats every 256 bytes,
   * so it is copied from one period rather than written byte by byte. */
  if (data_len > sizeof(head))
    write_filler(payload, sizeof(head), data_len, filler_seed);

  if (family == AF_INET) {
    sum = ir_checksum(buf, IR_ICMP_HEADER_LEN + data_len);
    memcpy(buf + 2, &sum, 2);
  }
  return IR_ICMP_HEADER_LEN + data_len;
}

/* The first offset below len where a and b differ, or IR_PAYLOAD_SAME. */
static size_t first_difference(const uint8_t* a, const uint8_t* b, size_t len) {
  if (memcmp(a, b, len) == 0) {
    return IR_PAYLOAD_SAME;
  }
  size_t i = 0;
  while (a[i] == b[i])
    i++;
  return i;
}

size_t ir_packet_payload_mismatch(const uint8_t* payload, size_t len,
                                  uint32_t run_cookie, uint32_t token,
                                  uint64_t stamp_ns) {
  return ir_packet_payload_mismatch_seeded(payload, len, run_cookie, token, stamp_ns,
                                           0);
}

size_t ir_packet_payload_mismatch_seeded(const uint8_t* payload, size_t len,
                                         uint32_t run_cookie, uint32_t token,
                                         uint64_t stamp_ns, uint64_t filler_seed) {
  uint8_t head[IR_COOKIE_LEN + IR_STAMP_LEN];
  size_t at;

  /* The same bytes the encoder wrote, recomputed rather than kept per probe:
   * the head from the probe's own values, the filler from its one period. */
  put_be32(head, run_cookie);
  put_be32(head + 4, token);
  put_be64(head + 8, stamp_ns);
  at = first_difference(payload, head, len < sizeof(head) ? len : sizeof(head));
  if (at != IR_PAYLOAD_SAME) {
    return at;
  }
  if (filler_seed != 0) {
    for (size_t i = sizeof(head); i < len; i++) {
      if (payload[i] != (uint8_t)(random_block(filler_seed, i / 8) >> (8 * (i % 8)))) {
        return i;
      }
    }
    return IR_PAYLOAD_SAME;
  }
  for (size_t i = sizeof(head); i < len;) {
    size_t offset = i % sizeof(filler_period);
    size_t chunk = sizeof(filler_period) - offset;
    if (chunk > len - i)
      chunk = len - i;
    at = first_difference(payload + i, filler_period + offset, chunk);
    if (at != IR_PAYLOAD_SAME) {
      return i + at;
    }
    i += chunk;
  }
  return IR_PAYLOAD_SAME;
}

int ir_packet_decode(const uint8_t* buf, size_t len, int family, bool has_ip_header,
                     bool verify_checksum, ir_icmp_msg_t* out) {
  const uint8_t* icmp = buf;
  size_t icmp_len = len;
  uint8_t cookie[IR_COOKIE_LEN];
  ir_icmp_msg_t msg;
  size_t header_len;
  size_t total_len;

  memset(&msg, 0, sizeof(msg));
  msg.ttl = -1;

  if (has_ip_header) {
    /* Only raw IPv4 sockets deliver the IP header; raw IPv6 ones never do. */
    if (family != AF_INET)
      return IR_PKT_EHEADER;
    if (len < IR_IPV4_MIN_HEADER_LEN)
      return IR_PKT_ETRUNC;
    header_len = (size_t)(buf[0] & 0x0f) * 4;
    if ((buf[0] >> 4) != 4 || header_len < IR_IPV4_MIN_HEADER_LEN)
      return IR_PKT_EHEADER;
    if (buf[9] != IR_IPPROTO_ICMP)
      return IR_PKT_EHEADER;
    if (len < header_len)
      return IR_PKT_ETRUNC;

    /* Bytes past the datagram's own total length are not part of it, so the
     * checksum must not cover them. A total length shorter than the header
     * is a malformed header, not a short packet. */
    total_len = get_be16(buf + 2);
    if (total_len < header_len)
      return IR_PKT_EHEADER;
    if (total_len < len)
      len = total_len;

    msg.ttl = buf[8];
    icmp = buf + header_len;
    icmp_len = len - header_len;
  }

  if (icmp_len < IR_ICMP_HEADER_LEN)
    return IR_PKT_ETRUNC;

  /* A packet that carries a correct checksum sums to zero. */
  if (verify_checksum && family == AF_INET && ir_checksum(icmp, icmp_len) != 0)
    return IR_PKT_ECHECKSUM;

  msg.type = icmp[0];
  msg.code = icmp[1];
  msg.id = get_be16(icmp + 4);
  msg.seq = get_be16(icmp + 6);
  msg.icmp_len = icmp_len;
  msg.cookie_len = icmp_len - IR_ICMP_HEADER_LEN;
  if (msg.cookie_len > IR_COOKIE_LEN)
    msg.cookie_len = IR_COOKIE_LEN;

  /* Missing cookie bytes read as zero, from the least significant end. */
  memset(cookie, 0, sizeof(cookie));
  memcpy(cookie, icmp + IR_ICMP_HEADER_LEN, msg.cookie_len);
  msg.run_cookie = get_be32(cookie);
  msg.token = get_be32(cookie + 4);

  *out = msg;
  return 0;
}

bool ir_packet_is_echo_reply(int family, uint8_t type) {
  if (family == AF_INET)
    return type == IR_ICMP4_ECHO_REPLY;
  if (family == AF_INET6)
    return type == IR_ICMP6_ECHO_REPLY;
  return false;
}

const char* ir_icmp_describe(int family, int type, int code) {
  if (family == AF_INET && type == IR_ICMP4_DEST_UNREACH) {
    static const char* const unreach[] = {
        "Destination Net Unreachable",
        "Destination Host Unreachable",
        "Destination Protocol Unreachable",
        "Destination Port Unreachable",
        "Frag needed and DF set",
        "Source Route Failed",
        "Destination Net Unknown",
        "Destination Host Unknown",
        "Source Host Isolated",
        "Destination Net Prohibited",
        "Destination Host Prohibited",
        "Destination Net Unreachable for Type of Service",
        "Destination Host Unreachable for Type of Service",
        "Packet filtered",
        "Precedence Violation",
        "Precedence Cutoff"};
    if (code >= 0 && code < (int)(IR_ARRAY_SIZE(unreach)))
      return unreach[code];
    return "Destination Unreachable";
  }
  if (family == AF_INET && type == IR_ICMP4_TIME_EXCEEDED)
    return code == 1 ? "Frag reassembly time exceeded" : "Time to live exceeded";
  if (family == AF_INET6 && type == IR_ICMP6_DEST_UNREACH) {
    static const char* const unreach6[] = {
        "Destination unreachable: No route",
        "Destination unreachable: Administratively prohibited",
        "Destination unreachable: Beyond scope of source address",
        "Destination unreachable: Address unreachable",
        "Destination unreachable: Port unreachable",
        "Destination unreachable: Source address failed ingress/egress policy",
        "Destination unreachable: Reject route to destination"};
    if (code >= 0 && code < (int)(IR_ARRAY_SIZE(unreach6)))
      return unreach6[code];
    return "Destination unreachable";
  }
  if (family == AF_INET6 && type == IR_ICMP6_TIME_EXCEEDED)
    return code == 1 ? "Fragment reassembly time exceeded" : "Time exceeded: Hop limit";
  if (family == AF_INET6 && type == IR_ICMP6_PACKET_TOO_BIG)
    return "Packet too big";
  return "ICMP error";
}
