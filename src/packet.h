/* SPDX-License-Identifier: MIT */
/* ICMP/ICMPv6 echo encoder and reply decoder. Pure functions, no I/O. */
#ifndef ICMPRUN_PACKET_H
#define ICMPRUN_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IR_ICMP_HEADER_LEN 8
/* The payload starts with the cookie: 4 bytes of run cookie, then 4 bytes of
 * probe token, both big-endian. Then, if room, 8 bytes of send time in
 * nanoseconds (informational only; RTTs never trust what comes back). */
#define IR_COOKIE_LEN 8
#define IR_STAMP_LEN 8

/* ICMP types we send and recognise, per family. */
#define IR_ICMP4_ECHO_REPLY 0
#define IR_ICMP4_DEST_UNREACH 3
#define IR_ICMP4_ECHO_REQUEST 8
#define IR_ICMP4_TIME_EXCEEDED 11
#define IR_ICMP6_DEST_UNREACH 1
#define IR_ICMP6_PACKET_TOO_BIG 2
#define IR_ICMP6_TIME_EXCEEDED 3
#define IR_ICMP6_ECHO_REQUEST 128
#define IR_ICMP6_ECHO_REPLY 129

/* Decoding failures, as negative values. */
#define IR_PKT_ETRUNC (-1)    /* shorter than the headers it claims */
#define IR_PKT_ECHECKSUM (-2) /* ICMPv4 checksum does not verify */
#define IR_PKT_EHEADER (-3)   /* IPv4 header malformed or not ICMP */

/* What the decoder learnt from one ICMP message. */
typedef struct ir_icmp_msg_s {
  uint8_t type;
  uint8_t code;
  uint16_t id;
  uint16_t seq;
  int ttl;             /* From the IPv4 header when there was one, else -1. */
  size_t icmp_len;     /* ICMP header plus data, in bytes. */
  size_t cookie_len;   /* How many cookie bytes were present: 0 to 8. */
  uint32_t run_cookie; /* Valid bytes only as far as cookie_len says; */
  uint32_t token;      /* missing bytes read as zero. */
} ir_icmp_msg_t;

/* The Internet checksum (RFC 1071) of len bytes, in the byte order of the data:
 * store it into the header with memcpy, without htons. Over a message whose
 * checksum field is already correct it returns 0. */
uint16_t ir_checksum(const void* data, size_t len);

/* Writes an echo request of `data_len` payload bytes into buf (cap bytes) for
 * family (AF_INET or AF_INET6): header, then as much of cookie and stamp as
 * fits, then a fixed filler pattern. The ICMPv4 checksum is filled in; the
 * ICMPv6 one is left zero because the kernel computes it for ICMPv6 sockets.
 * Returns the total length, or 0 when cap is too small. */
size_t ir_packet_encode_echo(uint8_t* buf, size_t cap, int family, uint16_t id,
                             uint16_t seq, uint32_t run_cookie, uint32_t token,
                             uint64_t stamp_ns, size_t data_len);

/* As ir_packet_encode_echo, but with filler_seed nonzero the filler is
 * pseudo-random bytes drawn from that seed (fping -R), not the fixed
 * pattern: bytes that no path can compress or take for a pattern, which the
 * receiver checks by drawing them again from the same seed. 0: the pattern. */
size_t ir_packet_encode_echo_seeded(uint8_t* buf, size_t cap, int family, uint16_t id,
                                    uint16_t seq, uint32_t run_cookie, uint32_t token,
                                    uint64_t stamp_ns, size_t data_len,
                                    uint64_t filler_seed);

/* Returned by ir_packet_payload_mismatch when the bytes are as sent. */
#define IR_PAYLOAD_SAME SIZE_MAX

/* Compares `len` bytes of a received echo payload (from its first byte, after
 * the ICMP header) with the first `len` bytes of the payload that
 * ir_packet_encode_echo writes for these values: cookie, stamp and filler.
 * Returns the offset of the first byte that differs, or IR_PAYLOAD_SAME. */
size_t ir_packet_payload_mismatch(const uint8_t* payload, size_t len,
                                  uint32_t run_cookie, uint32_t token,
                                  uint64_t stamp_ns);

/* As ir_packet_payload_mismatch, for a payload encoded with filler_seed. */
size_t ir_packet_payload_mismatch_seeded(const uint8_t* payload, size_t len,
                                         uint32_t run_cookie, uint32_t token,
                                         uint64_t stamp_ns, uint64_t filler_seed);

/* Decodes a received ICMP message. With `has_ip_header` (raw IPv4 sockets) buf
 * starts with the IPv4 header, whose TTL is reported. With `verify_checksum`
 * the ICMPv4 checksum must hold (raw IPv4 sockets; the kernel checks it for
 * datagram sockets, and for ICMPv6 always). Returns 0 or an IR_PKT_ error. */
int ir_packet_decode(const uint8_t* buf, size_t len, int family, bool has_ip_header,
                     bool verify_checksum, ir_icmp_msg_t* out);

/* What an ICMP error of that family, type and code means, in the words
 * iputils ping uses ("Destination Host Unreachable", "Time to live
 * exceeded"); a generic text for types and codes it does not know. */
const char* ir_icmp_describe(int family, int type, int code);

/* True when type is an echo reply of that family. */
bool ir_packet_is_echo_reply(int family, uint8_t type);

#endif
