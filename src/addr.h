/* SPDX-License-Identifier: MIT */
/* Compact IPv4/IPv6 address type shared by every layer. Pure code, no I/O. */
#ifndef ICMPRUN_ADDR_H
#define ICMPRUN_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest text ir_addr_format can produce, with scope ("%4294967295") and NUL. */
#define IR_ADDR_STRLEN 64

/* One address of either family. IPv4 addresses use the first 4 bytes of `bytes`
 * and leave the rest zero, so two equal addresses are always equal bytewise.
 * `family` is AF_INET or AF_INET6; `scope_id` is only set for IPv6 link-local. */
typedef struct ir_addr_s {
  uint16_t family;
  uint32_t scope_id;
  uint8_t bytes[16];
} ir_addr_t;

/* Parses a numeric address ("127.0.0.1", "::1", "fe80::1%2"). Returns 0, or
 * -EINVAL when `text` is not a numeric address. Never resolves names. */
int ir_addr_parse(const char* text, ir_addr_t* out);

/* Writes the canonical text form into buf (at least IR_ADDR_STRLEN bytes). */
void ir_addr_format(const ir_addr_t* addr, char* buf, size_t len);

/* Converts from a sockaddr_in/sockaddr_in6; returns -EAFNOSUPPORT otherwise. */
int ir_addr_from_sockaddr(const struct sockaddr* sa, ir_addr_t* out);

/* Fills `ss` for sendto/connect with port 0; returns the length to pass. */
socklen_t ir_addr_to_sockaddr(const ir_addr_t* addr, struct sockaddr_storage* ss);

bool ir_addr_equal(const ir_addr_t* a, const ir_addr_t* b);

/* A well-mixed 32-bit hash of (address, extra); extra is the echo sequence. */
uint32_t ir_addr_hash(const ir_addr_t* addr, uint32_t extra);

#endif
