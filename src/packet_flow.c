/* SPDX-License-Identifier: MIT */
/* Flow-stable echo requests: the two payload bytes of Paris traceroute. */
#include "packet_flow.h"

#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

#include "packet.h"

#define IR_CHECKSUM_OFFSET 2
#define IR_IDENT_OFFSET 4

/* Adds b to a in ones' complement arithmetic, on 16 bits. */
static uint16_t ir__add16(uint16_t a, uint16_t b) {
  uint32_t sum = (uint32_t)a + b;
  return (uint16_t)((sum & 0xffff) + (sum >> 16));
}

/* The sum of the message's words, skipping the checksum and identifier
 * fields and, when skip_flow, the flow bytes: each of them reads as zero. */
static uint16_t ir__sum(const uint8_t* msg, size_t len, bool skip_flow) {
  uint64_t sum = 0;
  for (size_t i = 0; i < len; i += 2) {
    if (i == IR_CHECKSUM_OFFSET || i == IR_IDENT_OFFSET ||
        (skip_flow && i == IR_FLOW_OFFSET)) {
      continue;
    }
    /* An odd last byte is the high half of a word padded with zero. */
    uint16_t word = (uint16_t)(msg[i] << 8);
    if (i + 1 < len)
      word |= msg[i + 1];
    sum += word;
  }
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)sum;
}

uint16_t ir_flow_sum(const uint8_t* msg, size_t len) {
  return ir__sum(msg, len, false);
}

uint16_t ir_flow_bytes(const uint8_t* msg, size_t len, uint16_t flow_key) {
  /* x such that rest + x = flow_key: x = flow_key - rest, and subtracting is
   * adding the complement. The rest is never zero (the type byte is not), so
   * both zeros of ones' complement, 0x0000 and 0xffff, add as zero. */
  uint16_t rest = ir__sum(msg, len, true);
  return ir__add16(flow_key, (uint16_t)~rest);
}

size_t ir_packet_encode_flow_echo(uint8_t* buf, size_t cap, int family, uint16_t id,
                                  uint16_t seq, uint32_t run_cookie, uint32_t token,
                                  uint64_t stamp_ns, size_t data_len,
                                  uint16_t flow_key) {
  if (flow_key == 0 || data_len < IR_FLOW_MIN_SIZE)
    return 0;
  size_t len = ir_packet_encode_echo(buf, cap, family, id, seq, run_cookie, token,
                                     stamp_ns, data_len);
  if (len == 0)
    return 0;

  /* The stamp moves two bytes along, over the start of the filler, and
   * loses its tail when the payload is short: it is informational only. */
  uint8_t* stamp = buf + IR_FLOW_OFFSET;
  size_t stamp_room = len - IR_FLOW_OFFSET - 2;
  memmove(stamp + 2, stamp, stamp_room < IR_STAMP_LEN ? stamp_room : IR_STAMP_LEN);

  uint16_t flow = ir_flow_bytes(buf, len, flow_key);
  buf[IR_FLOW_OFFSET] = (uint8_t)(flow >> 8);
  buf[IR_FLOW_OFFSET + 1] = (uint8_t)flow;

  if (family == AF_INET) {
    uint16_t sum;
    buf[IR_CHECKSUM_OFFSET] = 0;
    buf[IR_CHECKSUM_OFFSET + 1] = 0;
    sum = ir_checksum(buf, len);
    memcpy(buf + IR_CHECKSUM_OFFSET, &sum, 2);
  }
  return len;
}
