/* SPDX-License-Identifier: MIT */
/* Flow-stable echo requests: two payload bytes that hold the checksum still. */
#ifndef ICMPRUN_PACKET_FLOW_H
#define ICMPRUN_PACKET_FLOW_H

#include <stddef.h>
#include <stdint.h>

/* Routers that balance load hash on header fields, and for ICMP the checksum
 * is one of them: an echo request whose checksum follows its sequence number
 * may take another path each time. Paris traceroute's answer, kept here: two
 * payload bytes chosen so that the message sums to a fixed value, whatever
 * its sequence number, cookie and send time. With the identifier constant
 * (one socket per family), the checksum on the wire is then constant too:
 * for ICMPv6 the kernel adds the pseudo-header, constant for one target.
 *
 * Layout of a flow-stable payload: the cookie (IR_COOKIE_LEN bytes), the two
 * flow bytes, then the send stamp and filler as in any echo request, moved
 * along by two bytes. */
#define IR_FLOW_OFFSET (8 + 8)   /* In the ICMP message: header, then cookie. */
#define IR_FLOW_MIN_SIZE (8 + 2) /* Payload bytes: cookie and flow bytes. */

/* The ones' complement sum (RFC 1071) of the message's 16-bit big-endian
 * words, with the checksum and identifier fields read as zero: the identifier
 * is the kernel's choice on datagram sockets, and it is constant per socket.
 * A flow-stable message sums to its flow key. */
uint16_t ir_flow_sum(const uint8_t* msg, size_t len);

/* The value of the two flow bytes (big-endian, at IR_FLOW_OFFSET) that makes
 * ir_flow_sum(msg) equal flow_key (1..65535), whatever those two bytes hold
 * now. len must be at least IR_FLOW_OFFSET + 2. A pure function of the rest
 * of the message: a receiver can recompute it from the probe it expects. */
uint16_t ir_flow_bytes(const uint8_t* msg, size_t len, uint16_t flow_key);

/* Encodes an echo request as ir_packet_encode_echo does, in the flow-stable
 * layout above, summing to flow_key (1..65535). data_len must be at least
 * IR_FLOW_MIN_SIZE. Returns the total length, or 0 when cap is too small,
 * data_len too short, flow_key 0 or the family unknown. */
size_t ir_packet_encode_flow_echo(uint8_t* buf, size_t cap, int family, uint16_t id,
                                  uint16_t seq, uint32_t run_cookie, uint32_t token,
                                  uint64_t stamp_ns, size_t data_len,
                                  uint16_t flow_key);

#endif
