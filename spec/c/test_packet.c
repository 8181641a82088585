/* SPDX-License-Identifier: MIT */
/* Unit tests for the ICMP checksum, echo encoder and reply decoder. */
#include "packet.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "check.h"

#define RUN_COOKIE 0xdeadbeefu
#define TOKEN 0x01020304u
#define STAMP 0x1112131415161718u

/* The checksum as the two bytes it puts on the wire. */
static void checksum_bytes(const void* data, size_t len, uint8_t out[2]) {
  uint16_t sum = ir_checksum(data, len);
  memcpy(out, &sum, 2);
}

/* Recomputes the ICMPv4 checksum in place after a test edits a message. */
static void fix_checksum(uint8_t* icmp, size_t len) {
  uint16_t sum;

  icmp[2] = 0;
  icmp[3] = 0;
  sum = ir_checksum(icmp, len);
  memcpy(icmp + 2, &sum, 2);
}

/* Writes an IPv4 header of header_len bytes (options are NOPs) in front of an
 * ICMP message of icmp_len bytes that the caller places at buf + header_len. */
static void put_ip_header(uint8_t* buf, size_t header_len, size_t icmp_len, int ttl) {
  size_t total = header_len + icmp_len;
  uint16_t sum;

  memset(buf, 1, header_len);
  buf[0] = (uint8_t)(0x40 | (header_len / 4));
  buf[1] = 0;
  buf[2] = (uint8_t)(total >> 8);
  buf[3] = (uint8_t)total;
  buf[4] = 0x12;
  buf[5] = 0x34;
  buf[6] = 0x40; /* Don't fragment. */
  buf[7] = 0;
  buf[8] = (uint8_t)ttl;
  buf[9] = 1; /* ICMP */
  buf[10] = 0;
  buf[11] = 0;
  memcpy(buf + 12, (const uint8_t[]){192, 0, 2, 1, 192, 0, 2, 2}, 8);
  sum = ir_checksum(buf, header_len);
  memcpy(buf + 10, &sum, 2);
}

static void test_checksum_vectors(void) {
  /* RFC 1071, section 3: the sum is ddf2, so the checksum is 220d. */
  static const uint8_t rfc1071[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  /* A textbook IPv4 header with its checksum field zeroed; it should be b861. */
  static const uint8_t ipv4[] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40,
                                 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
                                 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  static const uint8_t ones[4] = {0xff, 0xff, 0xff, 0xff};
  uint8_t echo[40] = {8, 0, 0, 0, 0x00, 0x01, 0x00, 0x21};
  uint8_t with_sum[10];
  uint8_t c[2];

  checksum_bytes(rfc1071, sizeof(rfc1071), c);
  CHECK_EQ_INT(c[0], 0x22);
  CHECK_EQ_INT(c[1], 0x0d);

  /* Appending the checksum makes the whole sum verify as zero. */
  memcpy(with_sum, rfc1071, sizeof(rfc1071));
  memcpy(with_sum + 8, c, 2);
  CHECK_EQ_INT(ir_checksum(with_sum, sizeof(with_sum)), 0);

  checksum_bytes(ipv4, sizeof(ipv4), c);
  CHECK_EQ_INT(c[0], 0xb8);
  CHECK_EQ_INT(c[1], 0x61);

  /* The echo request Windows ping sends: id 1, sequence 0x21, payload a-w a-i. */
  memcpy(echo + 8, "abcdefghijklmnopqrstuvwabcdefghi", 32);
  checksum_bytes(echo, sizeof(echo), c);
  CHECK_EQ_INT(c[0], 0x4d);
  CHECK_EQ_INT(c[1], 0x3a);

  /* An odd last byte counts as the high byte of a zero-padded word. */
  checksum_bytes(rfc1071, 3, c);
  CHECK_EQ_INT(c[0], 0x0d);
  CHECK_EQ_INT(c[1], 0xfe);
  checksum_bytes((const uint8_t[]){0x01}, 1, c);
  CHECK_EQ_INT(c[0], 0xfe);
  CHECK_EQ_INT(c[1], 0xff);

  checksum_bytes(NULL, 0, c);
  CHECK_EQ_INT(c[0], 0xff);
  CHECK_EQ_INT(c[1], 0xff);
  checksum_bytes(ones, sizeof(ones), c);
  CHECK_EQ_INT(c[0], 0x00);
  CHECK_EQ_INT(c[1], 0x00);
}

static void test_encode_v4(void) {
  uint8_t buf[64];
  ir_icmp_msg_t msg;
  size_t i;
  int bad_filler = 0;

  CHECK_EQ_INT(ir_packet_encode_echo(buf, sizeof(buf), AF_INET, 0x1234, 0xabcd,
                                     RUN_COOKIE, TOKEN, STAMP, 56),
               64);
  CHECK_EQ_INT(buf[0], IR_ICMP4_ECHO_REQUEST);
  CHECK_EQ_INT(buf[1], 0);
  CHECK(memcmp(buf + 4, (const uint8_t[]){0x12, 0x34, 0xab, 0xcd}, 4) == 0);
  CHECK(memcmp(buf + 8, (const uint8_t[]){0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4}, 8) == 0);
  CHECK(memcmp(buf + 16,
               (const uint8_t[]){0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18},
               8) == 0);
  for (i = 16; i < 56; i++) {
    if (buf[8 + i] != (uint8_t)i)
      bad_filler++;
  }
  CHECK_EQ_INT(bad_filler, 0);
  CHECK_EQ_INT(ir_checksum(buf, 64), 0);

  memset(&msg, 0xff, sizeof(msg));
  CHECK_EQ_INT(ir_packet_decode(buf, 64, AF_INET, false, true, &msg), 0);
  CHECK_EQ_INT(msg.type, IR_ICMP4_ECHO_REQUEST);
  CHECK_EQ_INT(msg.code, 0);
  CHECK_EQ_INT(msg.id, 0x1234);
  CHECK_EQ_INT(msg.seq, 0xabcd);
  CHECK_EQ_INT(msg.ttl, -1);
  CHECK_EQ_INT(msg.icmp_len, 64);
  CHECK_EQ_INT(msg.cookie_len, 8);
  CHECK_EQ_INT(msg.run_cookie, RUN_COOKIE);
  CHECK_EQ_INT(msg.token, TOKEN);
  CHECK(!ir_packet_is_echo_reply(AF_INET, msg.type));

  /* Turned into a reply, as a peer would, it is recognised as one. */
  buf[0] = IR_ICMP4_ECHO_REPLY;
  fix_checksum(buf, 64);
  CHECK_EQ_INT(ir_packet_decode(buf, 64, AF_INET, false, true, &msg), 0);
  CHECK(ir_packet_is_echo_reply(AF_INET, msg.type));
}

static void test_encode_v6(void) {
  uint8_t buf[64];
  ir_icmp_msg_t msg;

  CHECK_EQ_INT(ir_packet_encode_echo(buf, sizeof(buf), AF_INET6, 7, 65535, RUN_COOKIE,
                                     TOKEN, STAMP, 56),
               64);
  CHECK_EQ_INT(buf[0], IR_ICMP6_ECHO_REQUEST);
  CHECK_EQ_INT(buf[1], 0);
  /* The kernel fills in the ICMPv6 checksum. */
  CHECK_EQ_INT(buf[2], 0);
  CHECK_EQ_INT(buf[3], 0);

  /* Checksum verification never applies to ICMPv6. */
  CHECK_EQ_INT(ir_packet_decode(buf, 64, AF_INET6, false, true, &msg), 0);
  CHECK_EQ_INT(msg.type, IR_ICMP6_ECHO_REQUEST);
  CHECK_EQ_INT(msg.id, 7);
  CHECK_EQ_INT(msg.seq, 65535);
  CHECK_EQ_INT(msg.ttl, -1);
  CHECK_EQ_INT(msg.cookie_len, 8);
  CHECK_EQ_INT(msg.run_cookie, RUN_COOKIE);
  CHECK_EQ_INT(msg.token, TOKEN);

  buf[0] = IR_ICMP6_ECHO_REPLY;
  CHECK_EQ_INT(ir_packet_decode(buf, 64, AF_INET6, false, false, &msg), 0);
  CHECK(ir_packet_is_echo_reply(AF_INET6, msg.type));
}

static void test_encode_limits(void) {
  uint8_t buf[64];

  memset(buf, 0xee, sizeof(buf));
  CHECK_EQ_INT(ir_packet_encode_echo(buf, 63, AF_INET, 1, 1, 0, 0, 0, 56), 0);
  CHECK_EQ_INT(ir_packet_encode_echo(buf, 7, AF_INET, 1, 1, 0, 0, 0, 0), 0);
  CHECK_EQ_INT(ir_packet_encode_echo(NULL, 0, AF_INET, 1, 1, 0, 0, 0, 0), 0);
  CHECK_EQ_INT(
      ir_packet_encode_echo(buf, sizeof(buf), AF_INET, 1, 1, 0, 0, 0, SIZE_MAX), 0);
  CHECK_EQ_INT(ir_packet_encode_echo(buf, sizeof(buf), AF_UNIX, 1, 1, 0, 0, 0, 8), 0);
  /* Nothing was written by any refused call. */
  CHECK_EQ_INT(buf[0], 0xee);

  /* Exactly enough room is enough. */
  CHECK_EQ_INT(ir_packet_encode_echo(buf, 64, AF_INET, 1, 1, 0, 0, 0, 56), 64);
  CHECK_EQ_INT(ir_packet_encode_echo(buf, 8, AF_INET, 1, 1, 0, 0, 0, 0), 8);
}

/* Every payload size from 0 to past the stamp: the cookie comes back exactly
 * as far as it was sent, and missing bytes read as zero. */
static void test_partial_cookie(void) {
  static const uint32_t cookie_masks[5] = {0, 0xff000000u, 0xffff0000u, 0xffffff00u,
                                           0xffffffffu};
  uint8_t buf[64];
  ir_icmp_msg_t msg;
  size_t n;
  size_t cookie_len;
  size_t token_len;

  for (n = 0; n <= 20; n++) {
    CHECK_EQ_INT(ir_packet_encode_echo(buf, sizeof(buf), AF_INET, 9, 10, RUN_COOKIE,
                                       TOKEN, STAMP, n),
                 8 + n);
    CHECK_EQ_INT(ir_checksum(buf, 8 + n), 0);
    if (!CHECK_EQ_INT(ir_packet_decode(buf, 8 + n, AF_INET, false, true, &msg), 0))
      continue;
    cookie_len = n < 8 ? n : 8;
    token_len = cookie_len > 4 ? cookie_len - 4 : 0;
    CHECK_EQ_INT(msg.icmp_len, 8 + n);
    CHECK_EQ_INT(msg.cookie_len, cookie_len);
    CHECK_EQ_INT(msg.run_cookie,
                 RUN_COOKIE & cookie_masks[cookie_len < 4 ? cookie_len : 4]);
    CHECK_EQ_INT(msg.token, TOKEN & cookie_masks[token_len]);
    CHECK_EQ_INT(msg.id, 9);
    CHECK_EQ_INT(msg.seq, 10);
  }

  /* Five cookie bytes: a whole run cookie and the token's top byte. */
  ir_packet_encode_echo(buf, sizeof(buf), AF_INET, 9, 10, RUN_COOKIE, TOKEN, STAMP, 5);
  CHECK_EQ_INT(ir_packet_decode(buf, 13, AF_INET, false, true, &msg), 0);
  CHECK_EQ_INT(msg.run_cookie, RUN_COOKIE);
  CHECK_EQ_INT(msg.token, 0x01000000);
}

static void test_big_packet(void) {
  enum { DATA = 65507 };
  uint8_t* buf = malloc(8 + DATA);
  ir_icmp_msg_t msg;

  if (!CHECK(buf != NULL))
    return;
  CHECK_EQ_INT(ir_packet_encode_echo(buf, 8 + DATA, AF_INET, 1, 2, RUN_COOKIE, TOKEN,
                                     STAMP, DATA),
               8 + DATA);
  CHECK_EQ_INT(buf[8 + 300], (uint8_t)300);
  CHECK_EQ_INT(buf[8 + DATA - 1], (uint8_t)(DATA - 1));
  CHECK_EQ_INT(ir_packet_decode(buf, 8 + DATA, AF_INET, false, true, &msg), 0);
  CHECK_EQ_INT(msg.icmp_len, 8 + DATA);
  CHECK_EQ_INT(msg.run_cookie, RUN_COOKIE);
  CHECK_EQ_INT(msg.token, TOKEN);

  buf[8 + 40000] ^= 0x01;
  CHECK_EQ_INT(ir_packet_decode(buf, 8 + DATA, AF_INET, false, true, &msg),
               IR_PKT_ECHECKSUM);
  free(buf);
}

/* A reply as a raw IPv4 socket delivers it: IP header first. */
static void test_ip_header(void) {
  uint8_t buf[24 + 64 + 10];
  ir_icmp_msg_t msg;
  uint8_t* icmp;

  /* A plain 20-byte header. */
  icmp = buf + 20;
  ir_packet_encode_echo(icmp, 64, AF_INET, 0x4242, 3, RUN_COOKIE, TOKEN, STAMP, 56);
  icmp[0] = IR_ICMP4_ECHO_REPLY;
  fix_checksum(icmp, 64);
  put_ip_header(buf, 20, 64, 57);
  memset(&msg, 0, sizeof(msg));
  CHECK_EQ_INT(ir_packet_decode(buf, 84, AF_INET, true, true, &msg), 0);
  CHECK_EQ_INT(msg.ttl, 57);
  CHECK_EQ_INT(msg.type, IR_ICMP4_ECHO_REPLY);
  CHECK_EQ_INT(msg.id, 0x4242);
  CHECK_EQ_INT(msg.seq, 3);
  CHECK_EQ_INT(msg.icmp_len, 64);
  CHECK_EQ_INT(msg.run_cookie, RUN_COOKIE);
  CHECK_EQ_INT(msg.token, TOKEN);

  /* Bytes past the IP total length are ignored, checksum included. */
  memset(buf + 84, 0x77, 10);
  CHECK_EQ_INT(ir_packet_decode(buf, 94, AF_INET, true, true, &msg), 0);
  CHECK_EQ_INT(msg.icmp_len, 64);

  /* A total length larger than what arrived: trust what arrived. */
  CHECK_EQ_INT(ir_packet_decode(buf, 20 + 12, AF_INET, true, false, &msg), 0);
  CHECK_EQ_INT(msg.icmp_len, 12);
  CHECK_EQ_INT(msg.cookie_len, 4);

  /* IHL 6: four bytes of options before the ICMP message. */
  icmp = buf + 24;
  ir_packet_encode_echo(icmp, 64, AF_INET, 0x4343, 4, RUN_COOKIE, TOKEN, STAMP, 56);
  icmp[0] = IR_ICMP4_ECHO_REPLY;
  fix_checksum(icmp, 64);
  put_ip_header(buf, 24, 64, 1);
  CHECK_EQ_INT(ir_packet_decode(buf, 88, AF_INET, true, true, &msg), 0);
  CHECK_EQ_INT(msg.ttl, 1);
  CHECK_EQ_INT(msg.id, 0x4343);
  CHECK_EQ_INT(msg.seq, 4);
  CHECK_EQ_INT(msg.icmp_len, 64);
  CHECK_EQ_INT(msg.token, TOKEN);
}

static void test_bad_headers(void) {
  uint8_t buf[20 + 16];
  uint8_t copy[sizeof(buf)];
  ir_icmp_msg_t msg;
  ir_icmp_msg_t before;

  ir_packet_encode_echo(buf + 20, 16, AF_INET, 1, 1, RUN_COOKIE, TOKEN, STAMP, 8);
  put_ip_header(buf, 20, 16, 64);
  CHECK_EQ_INT(ir_packet_decode(buf, sizeof(buf), AF_INET, true, true, &msg), 0);

  /* Not ICMP. */
  memcpy(copy, buf, sizeof(buf));
  copy[9] = 17;
  CHECK_EQ_INT(ir_packet_decode(copy, sizeof(copy), AF_INET, true, true, &msg),
               IR_PKT_EHEADER);

  /* Not IPv4. */
  memcpy(copy, buf, sizeof(buf));
  copy[0] = 0x65;
  CHECK_EQ_INT(ir_packet_decode(copy, sizeof(copy), AF_INET, true, true, &msg),
               IR_PKT_EHEADER);

  /* IHL below the minimum of five words. */
  memcpy(copy, buf, sizeof(buf));
  copy[0] = 0x44;
  CHECK_EQ_INT(ir_packet_decode(copy, sizeof(copy), AF_INET, true, true, &msg),
               IR_PKT_EHEADER);

  /* A total length shorter than the header itself. */
  memcpy(copy, buf, sizeof(buf));
  copy[2] = 0;
  copy[3] = 19;
  CHECK_EQ_INT(ir_packet_decode(copy, sizeof(copy), AF_INET, true, true, &msg),
               IR_PKT_EHEADER);

  /* Raw IPv6 sockets never deliver an IP header. */
  CHECK_EQ_INT(ir_packet_decode(buf, sizeof(buf), AF_INET6, true, false, &msg),
               IR_PKT_EHEADER);

  /* IHL 15 claims 60 bytes of header, more than arrived. */
  memcpy(copy, buf, sizeof(buf));
  copy[0] = 0x4f;
  CHECK_EQ_INT(ir_packet_decode(copy, sizeof(copy), AF_INET, true, true, &msg),
               IR_PKT_ETRUNC);

  /* Shorter than a minimal IP header, or than the ICMP header after it. */
  CHECK_EQ_INT(ir_packet_decode(buf, 19, AF_INET, true, true, &msg), IR_PKT_ETRUNC);
  CHECK_EQ_INT(ir_packet_decode(buf, 0, AF_INET, true, true, &msg), IR_PKT_ETRUNC);
  memcpy(copy, buf, sizeof(buf));
  copy[2] = 0;
  copy[3] = 27;
  CHECK_EQ_INT(ir_packet_decode(copy, sizeof(copy), AF_INET, true, false, &msg),
               IR_PKT_ETRUNC);
  CHECK_EQ_INT(ir_packet_decode(buf, 27, AF_INET, true, false, &msg), IR_PKT_ETRUNC);
  CHECK_EQ_INT(ir_packet_decode(buf + 20, 7, AF_INET, false, false, &msg),
               IR_PKT_ETRUNC);
  CHECK_EQ_INT(ir_packet_decode(buf + 20, 0, AF_INET6, false, false, &msg),
               IR_PKT_ETRUNC);
  CHECK_EQ_INT(ir_packet_decode(buf + 20, 8, AF_INET6, false, false, &msg), 0);
  CHECK_EQ_INT(msg.cookie_len, 0);

  /* A failed decode leaves the output alone. */
  memset(&msg, 0x3c, sizeof(msg));
  memcpy(&before, &msg, sizeof(msg));
  CHECK_EQ_INT(ir_packet_decode(buf, 19, AF_INET, true, true, &msg), IR_PKT_ETRUNC);
  CHECK(memcmp(&msg, &before, sizeof(msg)) == 0);
}

/* Any single flipped bit anywhere in the message breaks the checksum, but only
 * when verification is asked for and only for ICMPv4. */
static void test_corruption(void) {
  uint8_t buf[8 + 40];
  ir_icmp_msg_t msg;
  int missed = 0;
  size_t i;
  int bit;

  ir_packet_encode_echo(buf, sizeof(buf), AF_INET, 5, 6, RUN_COOKIE, TOKEN, STAMP, 40);
  for (i = 0; i < sizeof(buf); i++) {
    for (bit = 0; bit < 8; bit++) {
      buf[i] ^= (uint8_t)(1u << bit);
      if (ir_packet_decode(buf, sizeof(buf), AF_INET, false, true, &msg) !=
          IR_PKT_ECHECKSUM)
        missed++;
      buf[i] ^= (uint8_t)(1u << bit);
    }
  }
  CHECK_EQ_INT(missed, 0);

  buf[20] ^= 0xff;
  CHECK_EQ_INT(ir_packet_decode(buf, sizeof(buf), AF_INET, false, true, &msg),
               IR_PKT_ECHECKSUM);
  CHECK_EQ_INT(ir_packet_decode(buf, sizeof(buf), AF_INET, false, false, &msg), 0);
  CHECK_EQ_INT(ir_packet_decode(buf, sizeof(buf), AF_INET6, false, true, &msg), 0);

  /* Behind an IP header too. */
  {
    uint8_t wrapped[20 + sizeof(buf)];
    memcpy(wrapped + 20, buf, sizeof(buf));
    put_ip_header(wrapped, 20, sizeof(buf), 64);
    CHECK_EQ_INT(ir_packet_decode(wrapped, sizeof(wrapped), AF_INET, true, true, &msg),
                 IR_PKT_ECHECKSUM);
  }
}

static void test_is_echo_reply(void) {
  CHECK(ir_packet_is_echo_reply(AF_INET, IR_ICMP4_ECHO_REPLY));
  CHECK(!ir_packet_is_echo_reply(AF_INET, IR_ICMP4_ECHO_REQUEST));
  CHECK(!ir_packet_is_echo_reply(AF_INET, IR_ICMP6_ECHO_REPLY));
  CHECK(!ir_packet_is_echo_reply(AF_INET, IR_ICMP4_DEST_UNREACH));
  CHECK(ir_packet_is_echo_reply(AF_INET6, IR_ICMP6_ECHO_REPLY));
  CHECK(!ir_packet_is_echo_reply(AF_INET6, IR_ICMP4_ECHO_REPLY));
  CHECK(!ir_packet_is_echo_reply(AF_INET6, IR_ICMP6_ECHO_REQUEST));
  CHECK(!ir_packet_is_echo_reply(AF_UNIX, 0));
}

/* Every payload the encoder writes compares equal with itself, and flipping
 * any one byte of it (cookie, stamp or filler, across the filler's 256-byte
 * period) is found at exactly that offset. */
static void test_payload_mismatch(void) {
  static uint8_t buf[IR_ICMP_HEADER_LEN + 1600];
  const uint32_t cookie = 0xa1b2c3d4u, token = 0x01020304u;
  const uint64_t stamp = 0x1122334455667788ull;
  size_t sizes[] = {0, 1, 7, 8, 9, 15, 16, 17, 56, 255, 256, 257, 272, 1500, 1600};
  for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
    size_t size = sizes[s];
    size_t len = ir_packet_encode_echo(buf, sizeof(buf), AF_INET, 7, 9, cookie, token,
                                       stamp, size);
    CHECK_EQ_INT(len, IR_ICMP_HEADER_LEN + size);
    uint8_t* payload = buf + IR_ICMP_HEADER_LEN;
    CHECK(ir_packet_payload_mismatch(payload, size, cookie, token, stamp) ==
          IR_PAYLOAD_SAME);
    size_t wrong = 0;
    for (size_t at = 0; at < size; at++) {
      payload[at] ^= 0x10;
      wrong += ir_packet_payload_mismatch(payload, size, cookie, token, stamp) != at;
      payload[at] ^= 0x10;
    }
    CHECK_EQ_INT(wrong, 0);
  }
  /* Another probe's values differ in the cookie or the stamp. */
  ir_packet_encode_echo(buf, sizeof(buf), AF_INET6, 7, 9, cookie, token, stamp, 56);
  uint8_t* payload = buf + IR_ICMP_HEADER_LEN;
  CHECK_EQ_INT(ir_packet_payload_mismatch(payload, 56, cookie ^ 1, token, stamp), 3);
  CHECK_EQ_INT(ir_packet_payload_mismatch(payload, 56, cookie, token + 1, stamp), 7);
  CHECK_EQ_INT(ir_packet_payload_mismatch(payload, 56, cookie, token, stamp + 256), 14);
  /* Only the bytes asked for are compared. */
  payload[40] ^= 1;
  CHECK_EQ_INT(ir_packet_payload_mismatch(payload, 56, cookie, token, stamp), 40);
  CHECK(ir_packet_payload_mismatch(payload, 40, cookie, token, stamp) ==
        IR_PAYLOAD_SAME);
}

/* fping -R: a seeded filler is not the pattern, differs from seed to seed,
 * is the same bytes again for the same seed (so the reply can be checked),
 * and a changed byte anywhere is found where it is. */
static void test_random_filler(void) {
  static uint8_t a[IR_ICMP_HEADER_LEN + 1500], b[IR_ICMP_HEADER_LEN + 1500],
      plain[IR_ICMP_HEADER_LEN + 1500];
  const uint32_t cookie = 0xa1b2c3d4u, token = 0x01020304u;
  const uint64_t stamp = 0x1122334455667788ull, seed = 0x9e3779b97f4a7c15ull;
  const size_t size = 1500;
  CHECK_EQ_INT(ir_packet_encode_echo_seeded(a, sizeof(a), AF_INET, 7, 9, cookie, token,
                                            stamp, size, seed),
               IR_ICMP_HEADER_LEN + size);
  ir_packet_encode_echo_seeded(b, sizeof(b), AF_INET, 7, 9, cookie, token, stamp, size,
                               seed + 1);
  /* Seed 0 is the fixed pattern, as the unseeded encoder writes it. */
  ir_packet_encode_echo_seeded(plain, sizeof(plain), AF_INET, 7, 9, cookie, token,
                               stamp, size, 0);
  CHECK(ir_packet_payload_mismatch(plain + IR_ICMP_HEADER_LEN, size, cookie, token,
                                   stamp) == IR_PAYLOAD_SAME);
  const uint8_t* pa = a + IR_ICMP_HEADER_LEN;
  size_t same_as_pattern = 0, same_as_other_seed = 0;
  for (size_t i = 16; i < size; i++) {
    same_as_pattern += pa[i] == plain[IR_ICMP_HEADER_LEN + i];
    same_as_other_seed += pa[i] == b[IR_ICMP_HEADER_LEN + i];
  }
  /* About 1 in 256 bytes agree by chance; far from all of them. */
  CHECK(same_as_pattern < 40);
  CHECK(same_as_other_seed < 40);
  /* The head (cookie, token, stamp) is the same as with the pattern. */
  CHECK(memcmp(pa, plain + IR_ICMP_HEADER_LEN, 16) == 0);
  CHECK(ir_packet_payload_mismatch_seeded(pa, size, cookie, token, stamp, seed) ==
        IR_PAYLOAD_SAME);
  /* Checked as the pattern, or with another seed, it differs at once. */
  CHECK(ir_packet_payload_mismatch(pa, size, cookie, token, stamp) < 24);
  CHECK(ir_packet_payload_mismatch_seeded(pa, size, cookie, token, stamp, seed + 1) <
        24);
  size_t wrong = 0;
  for (size_t at = 0; at < size; at += 7) {
    a[IR_ICMP_HEADER_LEN + at] ^= 0x40;
    wrong +=
        ir_packet_payload_mismatch_seeded(pa, size, cookie, token, stamp, seed) != at;
    a[IR_ICMP_HEADER_LEN + at] ^= 0x40;
  }
  CHECK_EQ_INT(wrong, 0);
  /* A prefix is checked on its own (a reply cut short). */
  CHECK(ir_packet_payload_mismatch_seeded(pa, 100, cookie, token, stamp, seed) ==
        IR_PAYLOAD_SAME);
}

static void test_describe(void) {
  CHECK(strcmp(ir_icmp_describe(AF_INET, 3, 1), "Destination Host Unreachable") == 0);
  CHECK(strcmp(ir_icmp_describe(AF_INET, 3, 13), "Packet filtered") == 0);
  CHECK(strcmp(ir_icmp_describe(AF_INET, 3, 99), "Destination Unreachable") == 0);
  CHECK(strcmp(ir_icmp_describe(AF_INET, 11, 0), "Time to live exceeded") == 0);
  CHECK(strcmp(ir_icmp_describe(AF_INET6, 1, 0), "Destination unreachable: No route") ==
        0);
  CHECK(strcmp(ir_icmp_describe(AF_INET6, 1, 3),
               "Destination unreachable: Address unreachable") == 0);
  CHECK(strcmp(ir_icmp_describe(AF_INET6, 3, 0), "Time exceeded: Hop limit") == 0);
  CHECK(strcmp(ir_icmp_describe(AF_INET6, 2, 0), "Packet too big") == 0);
  CHECK(strcmp(ir_icmp_describe(AF_INET, 12, 0), "ICMP error") == 0);
}

int main(void) {
  test_checksum_vectors();
  test_encode_v4();
  test_encode_v6();
  test_encode_limits();
  test_partial_cookie();
  test_big_packet();
  test_ip_header();
  test_bad_headers();
  test_corruption();
  test_is_echo_reply();
  test_payload_mismatch();
  test_random_filler();
  test_describe();
  return check_summary();
}
