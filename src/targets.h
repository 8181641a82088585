/* SPDX-License-Identifier: MIT */
/* Sweep targets: parsing addresses, CIDR blocks and ranges, and walking them
 * lazily in order or in a random permutation. Pure code, no I/O. */
#ifndef ICMPRUN_TARGETS_H
#define ICMPRUN_TARGETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"

/* A contiguous block of addresses of one family: `count` addresses from
 * `first` upwards. count saturates at UINT64_MAX (an IPv6 /64 or larger). */
typedef struct ir_block_s {
  ir_addr_t first;
  uint64_t count;
} ir_block_t;

typedef enum ir_target_kind_e {
  IR_TARGET_BLOCK = 0, /* An address, CIDR block or range: `block` is set. */
  IR_TARGET_NAME,      /* Looks like a host name: resolve it. */
  IR_TARGET_INVALID    /* Malformed: `error` says why. */
} ir_target_kind_t;

/* Classifies and parses one target text:
 *   "127.0.0.1", "::1", "fe80::1%eth0"   a single address
 *   "127.0.0.0/16", "2001:db8::/120"     a CIDR block (host bits are cleared;
 *                                        no scope)
 *   "127.0.0.1-127.0.0.200"              an inclusive range of one family (a
 *                                        scope must be the same at both ends)
 *   anything else made of letters, digits, '-', '.' and '_' that does not
 *   start or end with '-' or '.', is not all digits and dots, and is at most
 *   253 characters: a name ("a-b" is a name, as "a" is not an address).
 * Malformed input ("300.1.1.1", "10.0.0.0/33", "1.2.3.4-::1", "", "a b",
 * " 10.0.0.1" with its whitespace) gives IR_TARGET_INVALID with a message
 * naming what is wrong in error (errlen bytes, always NUL-terminated when
 * errlen > 0; error may be NULL when errlen is 0). On success error is "".
 * `block` is zeroed unless the kind is IR_TARGET_BLOCK. */
ir_target_kind_t ir_target_parse(const char* text, ir_block_t* block, char* error,
                                 size_t errlen);

/* The address at `index` (0 <= index < count) of a block: first + index, with
 * the family and scope of first. A larger index wraps around within the
 * family's address space. */
void ir_block_address(const ir_block_t* block, uint64_t index, ir_addr_t* out);

/* Walks the indices 0..count-1 of a block exactly once each, either in order
 * or in a pseudo-random permutation decided by `seed`, in O(1) memory: a
 * full-period LCG over the next power of two, scrambled by an invertible
 * mix, skipping values >= count (on average fewer than one skip per value). */
typedef struct ir_walk_s {
  uint64_t count;
  uint64_t emitted;
  bool random;
  uint64_t mask;  /* 2^k - 1, 2^k >= count. */
  uint64_t state; /* LCG state in [0, 2^k). */
  uint64_t mult;  /* LCG multiplier, = 1 mod 4. */
  uint64_t incr;  /* LCG increment, odd. */
  uint64_t key;   /* Mixing key derived from the seed. */
} ir_walk_t;

/* Starts a walk of `count` indices; a count of 0 gives none. The seed is only
 * used when `random` is set, and the same seed always gives the same order. */
void ir_walk_init(ir_walk_t* walk, uint64_t count, bool random, uint64_t seed);

/* Stores the next index in *index and returns true, or returns false when all
 * count indices have been given. */
bool ir_walk_next(ir_walk_t* walk, uint64_t* index);

#endif
