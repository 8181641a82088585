/* SPDX-License-Identifier: MIT */
/* Unit tests for flow-stable echo requests: a constant checksum per flow. */
#include "packet_flow.h"

#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "check.h"
#include "packet.h"

#define RUN_COOKIE 0xdeadbeefu
#define IDENT 0x4d2u

/* A token and stamp that change with every probe, as the engine's do. */
static uint32_t token_of(uint32_t seq) {
  return seq * 2654435761u + 7u;
}

static uint64_t stamp_of(uint32_t seq) {
  return 1795000000000000000ull + (uint64_t)seq * 1000003ull;
}

/* Over all 65,536 sequence numbers, with a new token and stamp each time, the
 * checksum of an IPv4 request stays what the first one had, and the message
 * sums to the flow key; the cookie still names each probe. */
static void test_constant_checksum(size_t size, uint16_t key) {
  static uint8_t buf[8 + 2000];
  uint16_t first = 0;
  unsigned changed = 0, bad_sum = 0, bad_cookie = 0, bad_verify = 0;

  for (uint32_t seq = 0; seq <= UINT16_MAX; seq++) {
    size_t len =
        ir_packet_encode_flow_echo(buf, sizeof(buf), AF_INET, IDENT, (uint16_t)seq,
                                   RUN_COOKIE, token_of(seq), stamp_of(seq), size, key);
    if (!CHECK_EQ_INT(len, 8 + size))
      return;
    uint16_t checksum = (uint16_t)(buf[2] << 8 | buf[3]);
    if (seq == 0)
      first = checksum;
    changed += checksum != first;
    bad_sum += ir_flow_sum(buf, len) != key;
    /* The checksum on the wire verifies, as a receiver checks it. */
    bad_verify += ir_checksum(buf, len) != 0;
    ir_icmp_msg_t msg;
    if (ir_packet_decode(buf, len, AF_INET, false, true, &msg) != 0 || msg.seq != seq ||
        msg.token != token_of(seq) || msg.run_cookie != RUN_COOKIE)
      bad_cookie++;
  }
  CHECK_EQ_INT(changed, 0);
  CHECK_EQ_INT(bad_sum, 0);
  CHECK_EQ_INT(bad_verify, 0);
  CHECK_EQ_INT(bad_cookie, 0);
  /* The constant is the complement of the key plus the identifier. */
  uint32_t sum = (uint32_t)key + IDENT;
  sum = (sum & 0xffff) + (sum >> 16);
  CHECK_EQ_INT(first, (uint16_t)~sum);
}

/* IPv6 requests leave the checksum to the kernel, which sums the pseudo
 * header (constant for one target) and the message: the message's sum must
 * be the key, whatever the sequence number. */
static void test_v6_sum(void) {
  uint8_t buf[8 + 64];
  unsigned bad = 0;
  for (uint32_t seq = 0; seq <= UINT16_MAX; seq++) {
    size_t len = ir_packet_encode_flow_echo(buf, sizeof(buf), AF_INET6, 0,
                                            (uint16_t)seq, RUN_COOKIE, token_of(seq),
                                            stamp_of(seq), 64, 0x1234);
    bad += len != sizeof(buf) || buf[0] != IR_ICMP6_ECHO_REQUEST ||
           ir_flow_sum(buf, len) != 0x1234;
  }
  CHECK_EQ_INT(bad, 0);
}

/* The identifier is the kernel's on datagram sockets: any identifier gives
 * the same flow sum, and a constant checksum for that identifier. */
static void test_any_ident(void) {
  uint8_t a[8 + 56], b[8 + 56];
  ir_packet_encode_flow_echo(a, sizeof(a), AF_INET, 1, 5, RUN_COOKIE, 9, 10, 56, 77);
  ir_packet_encode_flow_echo(b, sizeof(b), AF_INET, 0xfffe, 6, RUN_COOKIE, 11, 12, 56,
                             77);
  CHECK_EQ_INT(ir_flow_sum(a, sizeof(a)), 77);
  CHECK_EQ_INT(ir_flow_sum(b, sizeof(b)), 77);
}

/* The layout: cookie, flow bytes, then the stamp moved along by two bytes,
 * then the usual filler; the flow bytes are recomputable from the rest. */
static void test_layout(void) {
  uint8_t plain[8 + 56], flow[8 + 56];
  ir_packet_encode_echo(plain, sizeof(plain), AF_INET, IDENT, 3, RUN_COOKIE, 4, 5, 56);
  ir_packet_encode_flow_echo(flow, sizeof(flow), AF_INET, IDENT, 3, RUN_COOKIE, 4, 5,
                             56, 0xabcd);
  CHECK(memcmp(plain + 4, flow + 4, 12) == 0);   /* id, seq, cookie */
  CHECK(memcmp(plain + 16, flow + 18, 8) == 0);  /* stamp */
  CHECK(memcmp(plain + 26, flow + 26, 38) == 0); /* filler after it */
  uint16_t bytes = (uint16_t)(flow[16] << 8 | flow[17]);
  CHECK_EQ_INT(ir_flow_bytes(flow, sizeof(flow), 0xabcd), bytes);
  /* Any other two bytes there break the sum: a receiver can tell. */
  flow[17] ^= 1;
  CHECK(ir_flow_sum(flow, sizeof(flow)) != 0xabcd);
}

/* Every key works, the two zeros of ones' complement included: a key equal
 * to the rest of the sum needs flow bytes of 0xffff or 0. */
static void test_every_key(void) {
  uint8_t buf[8 + 10];
  unsigned bad = 0;
  for (uint32_t key = 1; key <= UINT16_MAX; key++) {
    size_t len = ir_packet_encode_flow_echo(buf, sizeof(buf), AF_INET, IDENT, 42,
                                            RUN_COOKIE, 43, 44, 10, (uint16_t)key);
    bad += len != sizeof(buf) || ir_flow_sum(buf, len) != key ||
           ir_checksum(buf, len) != 0;
  }
  CHECK_EQ_INT(bad, 0);
}

static void test_limits(void) {
  uint8_t buf[64];
  /* No room for the flow bytes, no key, no room in buf, no family. */
  CHECK_EQ_INT(ir_packet_encode_flow_echo(buf, sizeof(buf), AF_INET, 1, 1, 1, 1, 1,
                                          IR_FLOW_MIN_SIZE - 1, 5),
               0);
  CHECK_EQ_INT(
      ir_packet_encode_flow_echo(buf, sizeof(buf), AF_INET, 1, 1, 1, 1, 1, 20, 0), 0);
  CHECK_EQ_INT(ir_packet_encode_flow_echo(buf, 20, AF_INET, 1, 1, 1, 1, 1, 20, 5), 0);
  CHECK_EQ_INT(
      ir_packet_encode_flow_echo(buf, sizeof(buf), AF_UNIX, 1, 1, 1, 1, 1, 20, 5), 0);
  CHECK_EQ_INT(ir_packet_encode_flow_echo(buf, sizeof(buf), AF_INET, 1, 1, 1, 1, 1,
                                          IR_FLOW_MIN_SIZE, 5),
               8 + IR_FLOW_MIN_SIZE);
  CHECK_EQ_INT(ir_flow_sum(buf, 8 + IR_FLOW_MIN_SIZE), 5);
}

int main(void) {
  /* Even and odd sizes, the smallest, a partial stamp, the default, large. */
  static const size_t sizes[] = {10, 11, 13, 18, 56, 57, 1000, 1473};
  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    test_constant_checksum(sizes[i], (uint16_t)(0x1357 + 977 * i));
  }
  test_constant_checksum(56, 0xffff);
  test_constant_checksum(56, 1);
  test_v6_sum();
  test_any_ident();
  test_layout();
  test_every_key();
  test_limits();
  return check_summary();
}
