/* SPDX-License-Identifier: MIT */
/* Sweep targets: classifying target texts and walking address blocks lazily. */
#include "targets.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* The longest host name DNS can carry in text form (RFC 1035, 2.3.4, less the
 * root label's dot). */
#define IR_NAME_MAX 253

/* Room for any text ir_addr_parse can accept: an IPv6 address, '%' and an
 * interface name or index. Longer parts of a target cannot be addresses. */
#define IR_PART_MAX 128

/* How much of a target text a message quotes before cutting it with "...". */
#define IR_SHOWN_MAX 64

#if defined(__GNUC__)
#define IR_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define IR_PRINTF(fmt, args)
#endif

static void set_error(char* error, size_t errlen, const char* fmt, ...) IR_PRINTF(3, 4);

/* Writes the message for an invalid target. vsnprintf truncates and always
 * terminates, so a short buffer still gets a usable prefix of the message. */
static void set_error(char* error, size_t errlen, const char* fmt, ...) {
  va_list ap;

  if (error == NULL || errlen == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(error, errlen, fmt, ap);
  va_end(ap);
}

/* Parses the first `len` bytes of `text` as an address. The part is copied so
 * that ir_addr_parse sees a terminated string without the rest of the target. */
static int parse_part(const char* text, size_t len, ir_addr_t* out) {
  char part[IR_PART_MAX];

  if (len >= sizeof(part))
    return -EINVAL;
  memcpy(part, text, len);
  part[len] = '\0';
  return ir_addr_parse(part, out);
}

static unsigned addr_bits(const ir_addr_t* addr) {
  return addr->family == AF_INET ? 32 : 128;
}

/* Compares two addresses of one family as big-endian numbers. */
static int addr_compare(const ir_addr_t* a, const ir_addr_t* b) {
  return memcmp(a->bytes, b->bytes, sizeof(a->bytes));
}

/* The number of addresses from a to b inclusive, b >= a, saturating at
 * UINT64_MAX. The difference is a big-endian number of 4 or 16 bytes, kept
 * as two 64-bit halves; any high half at all means it does not fit. */
static uint64_t range_count(const ir_addr_t* a, const ir_addr_t* b) {
  uint8_t diff[16];
  uint64_t high = 0;
  uint64_t low = 0;
  unsigned borrow = 0;
  unsigned byte;
  int n = (int)addr_bits(a) / 8;
  int i;

  for (i = n - 1; i >= 0; i--) {
    byte = (unsigned)b->bytes[i] - a->bytes[i] - borrow;
    borrow = byte > 0xff;
    diff[i] = (uint8_t)byte;
  }
  for (i = 0; i < n; i++) {
    high = (high << 8) | (low >> 56);
    low = (low << 8) | diff[i];
  }

  if (high != 0 || low == UINT64_MAX)
    return UINT64_MAX;
  return low + 1;
}

/* One call of ir_target_parse: the text, and where and how to report. */
typedef struct parse_s {
  const char* text;
  size_t len;
  char* error;
  size_t errlen;
  /* The text as quoted in messages, shortened so that what is wrong with a
   * long text still fits in the caller's buffer after the quote. */
  char shown[IR_SHOWN_MAX + 4];
} parse_t;

/* Copies `len` bytes of `s` into `buf`, or the first IR_SHOWN_MAX bytes and
 * "..." when there are more. */
static void shorten(const char* s, size_t len, char* buf) {
  if (len > IR_SHOWN_MAX) {
    memcpy(buf, s, IR_SHOWN_MAX);
    memcpy(buf + IR_SHOWN_MAX, "...", 4);
    return;
  }
  memcpy(buf, s, len);
  buf[len] = '\0';
}

static ir_target_kind_t parse_cidr(parse_t* p, const char* slash, ir_block_t* block) {
  const char* digits = slash + 1;
  const char* percent;
  char part[IR_SHOWN_MAX + 4];
  ir_addr_t addr;
  unsigned bits;
  unsigned prefix;
  unsigned host;
  unsigned i;
  size_t len = (size_t)(slash - p->text);

  /* A block spans many interfaces' worth of addresses in principle, and
   * ir_addr_parse only accepts scopes on link-local ones, so a scope here is
   * more likely a mistake than a meaning. */
  percent = memchr(p->text, '%', len);
  if (percent != NULL && parse_part(p->text, (size_t)(percent - p->text), &addr) == 0) {
    set_error(p->error, p->errlen, "CIDR block '%s' cannot have a scope", p->shown);
    return IR_TARGET_INVALID;
  }
  if (parse_part(p->text, len, &addr) != 0) {
    shorten(p->text, len, part);
    set_error(p->error, p->errlen, "'%s' is not a CIDR block: '%s' is not an address",
              p->shown, part);
    return IR_TARGET_INVALID;
  }

  if (*digits == '\0' || strspn(digits, "0123456789") != strlen(digits)) {
    set_error(p->error, p->errlen, "'%s' has no valid prefix length", p->shown);
    return IR_TARGET_INVALID;
  }
  bits = addr_bits(&addr);
  /* Accumulation stops once past any valid length, so a long run of digits
   * cannot overflow; the message quotes the digits as written. */
  prefix = 0;
  for (i = 0; digits[i] != '\0' && prefix <= bits; i++)
    prefix = prefix * 10 + (unsigned)(digits[i] - '0');
  if (prefix > bits) {
    shorten(digits, strlen(digits), part);
    set_error(p->error, p->errlen, "prefix length %s is over %u in '%s'", part, bits,
              p->shown);
    return IR_TARGET_INVALID;
  }

  /* Host bits are cleared, as routers do, so "10.1.2.3/8" means the whole
   * of 10.0.0.0/8 rather than a block starting in its middle. */
  for (i = 0; i < bits / 8; i++) {
    if (i * 8 >= prefix)
      addr.bytes[i] = 0;
    else if (i * 8 + 8 > prefix)
      addr.bytes[i] &= (uint8_t)(0xff << (8 - (prefix - i * 8)));
  }

  host = bits - prefix;
  memcpy(&block->first, &addr, sizeof(addr));
  block->count = host >= 64 ? UINT64_MAX : (uint64_t)1 << host;
  return IR_TARGET_BLOCK;
}

static ir_target_kind_t parse_range(parse_t* p, const ir_addr_t* start,
                                    const char* dash, ir_block_t* block) {
  ir_addr_t end;

  if (parse_part(dash + 1, strlen(dash + 1), &end) != 0) {
    set_error(p->error, p->errlen, "'%s' is not a range of two addresses", p->shown);
    return IR_TARGET_INVALID;
  }
  if (end.family != start->family) {
    set_error(p->error, p->errlen, "range '%s' mixes IPv4 and IPv6", p->shown);
    return IR_TARGET_INVALID;
  }
  /* Each address of the block takes the scope of the first, so the ends
   * must agree on it rather than one silently winning. */
  if (end.scope_id != start->scope_id) {
    set_error(p->error, p->errlen, "range '%s' has a different scope at each end",
              p->shown);
    return IR_TARGET_INVALID;
  }
  if (addr_compare(&end, start) < 0) {
    set_error(p->error, p->errlen, "range '%s' ends before it starts", p->shown);
    return IR_TARGET_INVALID;
  }

  memcpy(&block->first, start, sizeof(*start));
  block->count = range_count(start, &end);
  return IR_TARGET_BLOCK;
}

/* Names are only checked for the characters DNS and /etc/hosts use; whether
 * one resolves is for the resolver to say. */
static ir_target_kind_t classify_name(parse_t* p) {
  const char* text = p->text;
  size_t len = p->len;
  const char* percent;
  ir_addr_t addr;

  /* A scope after a valid address gets its own message, since "unknown
   * interface" is more helpful than "not an address". */
  percent = strchr(text, '%');
  if (percent != NULL && parse_part(text, (size_t)(percent - text), &addr) == 0) {
    set_error(p->error, p->errlen,
              "'%s' has a scope that names no interface or does not suit the address",
              p->shown);
    return IR_TARGET_INVALID;
  }
  if (strchr(text, ':') != NULL) {
    set_error(p->error, p->errlen, "'%s' is not a valid IPv6 address", p->shown);
    return IR_TARGET_INVALID;
  }
  /* Digits and dots alone were meant as an IPv4 address, and treating them
   * as a name would hand "300.1.1.1" to the resolver, which may accept it. */
  if (strspn(text, "0123456789.") == len && strpbrk(text, "0123456789") != NULL) {
    set_error(p->error, p->errlen, "'%s' is not a valid IPv4 address", p->shown);
    return IR_TARGET_INVALID;
  }
  if (strspn(text,
             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
          len ||
      text[0] == '-' || text[0] == '.' || text[len - 1] == '-' ||
      text[len - 1] == '.') {
    set_error(p->error, p->errlen,
              "'%s' is not an address, CIDR block, range or host name", p->shown);
    return IR_TARGET_INVALID;
  }
  if (len > IR_NAME_MAX) {
    set_error(p->error, p->errlen, "host name '%s' is %zu characters, over %d",
              p->shown, len, IR_NAME_MAX);
    return IR_TARGET_INVALID;
  }
  return IR_TARGET_NAME;
}

ir_target_kind_t ir_target_parse(const char* text, ir_block_t* block, char* error,
                                 size_t errlen) {
  parse_t p;
  ir_addr_t addr;
  const char* slash;
  const char* dash;

  /* The block is cleared first, so a caller that ignores the kind still never
   * reads stale addresses, and padding is zero like in ir_addr_t. */
  memset(block, 0, sizeof(*block));
  if (error != NULL && errlen > 0)
    error[0] = '\0';

  if (text == NULL || text[0] == '\0') {
    set_error(error, errlen, "empty target");
    return IR_TARGET_INVALID;
  }
  p.text = text;
  p.len = strlen(text);
  p.error = error;
  p.errlen = errlen;
  shorten(text, p.len, p.shown);

  /* Whitespace is refused rather than trimmed: it usually means a list was
   * split wrongly, which the caller should hear about. */
  if (isspace((unsigned char)text[0]) || isspace((unsigned char)text[p.len - 1])) {
    set_error(error, errlen, "'%s' has leading or trailing whitespace", p.shown);
    return IR_TARGET_INVALID;
  }

  slash = strchr(text, '/');
  if (slash != NULL)
    return parse_cidr(&p, slash, block);

  /* The whole text is tried as one address before looking for a range, as
   * an interface name in a scope ("fe80::1%br-lan") may contain a '-'. */
  if (ir_addr_parse(text, &addr) == 0) {
    memcpy(&block->first, &addr, sizeof(addr));
    block->count = 1;
    return IR_TARGET_BLOCK;
  }

  /* Only a dash after an address makes a range, so "a-b" stays a name. */
  dash = strchr(text, '-');
  if (dash != NULL && parse_part(text, (size_t)(dash - text), &addr) == 0)
    return parse_range(&p, &addr, dash, block);

  return classify_name(&p);
}

void ir_block_address(const ir_block_t* block, uint64_t index, ir_addr_t* out) {
  ir_addr_t addr;
  unsigned carry = 0;
  unsigned sum;
  int last;
  int i;

  memcpy(&addr, &block->first, sizeof(addr));

  /* The index is added as a big-endian number with carry. An IPv4 address
   * stops at its 4th byte, so its zero tail is kept even if an index past
   * the end wraps around. */
  last = addr.family == AF_INET ? 3 : 15;
  for (i = last; i >= 0; i--) {
    sum = (unsigned)addr.bytes[i] + (unsigned)(index & 0xff) + carry;
    addr.bytes[i] = (uint8_t)sum;
    carry = sum >> 8;
    index >>= 8;
  }

  memcpy(out, &addr, sizeof(addr));
}

/* One step of splitmix64: turns any seed, even 0 or 1, into well-spread
 * 64-bit values. */
static uint64_t splitmix64(uint64_t* state) {
  uint64_t z;

  *state += UINT64_C(0x9e3779b97f4a7c15);
  z = *state;
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

/* Counts the set bits of a mask 2^k - 1, giving k. */
static unsigned mask_bits(uint64_t mask) {
  mask = mask - ((mask >> 1) & UINT64_C(0x5555555555555555));
  mask = (mask & UINT64_C(0x3333333333333333)) +
         ((mask >> 2) & UINT64_C(0x3333333333333333));
  mask = (mask + (mask >> 4)) & UINT64_C(0x0f0f0f0f0f0f0f0f);
  return (unsigned)((mask * UINT64_C(0x0101010101010101)) >> 56);
}

/* Scrambles an LCG state into an index. An LCG alone walks its low bits in
 * short cycles (bit 0 alternates), so the order would look striped; the mix
 * spreads every bit into every other. It must be a bijection on [0, 2^k) or
 * some indices would never come out: xor with a constant, multiplication by
 * an odd number mod 2^k and v ^= v >> s with s >= 1 are each invertible. */
static uint64_t walk_mix(const ir_walk_t* walk, uint64_t v) {
  static const uint64_t odd[3] = {UINT64_C(0xbf58476d1ce4e5b9),
                                  UINT64_C(0x94d049bb133111eb),
                                  UINT64_C(0xd6e8feb86659fd93)};
  unsigned shift = mask_bits(walk->mask) / 2 + 1;
  uint64_t key = walk->key;
  int round;

  for (round = 0; round < 3; round++) {
    v = ((v ^ key) * odd[round]) & walk->mask;
    v ^= v >> shift;
    /* A rotation gives each round different key bits. */
    key = (key << 21) | (key >> 43);
  }
  return v;
}

void ir_walk_init(ir_walk_t* walk, uint64_t count, bool random, uint64_t seed) {
  uint64_t mix = seed;
  unsigned k;

  memset(walk, 0, sizeof(*walk));
  walk->count = count;
  walk->random = random;
  if (!random)
    return;

  /* The smallest power of two 2^k >= count, with k >= 1 so that the mask is
   * never empty; a count above 2^63 takes all 64 bits. */
  for (k = 1; k < 64 && ((uint64_t)1 << k) < count; k++)
    continue;
  walk->mask = k == 64 ? UINT64_MAX : ((uint64_t)1 << k) - 1;

  /* Hull-Dobell: with an odd increment and a multiplier = 1 mod 4, the LCG
   * mod 2^k has full period, visiting each state exactly once per 2^k steps.
   * The walk ends after count values, so it never goes round twice. */
  walk->mult = (splitmix64(&mix) & ~UINT64_C(3)) | 1;
  walk->incr = splitmix64(&mix) | 1;
  walk->state = splitmix64(&mix) & walk->mask;
  walk->key = splitmix64(&mix);
}

bool ir_walk_next(ir_walk_t* walk, uint64_t* index) {
  uint64_t v;

  if (walk->emitted >= walk->count)
    return false;

  if (!walk->random) {
    *index = walk->emitted++;
    return true;
  }

  /* Values past the end are skipped. Since 2^k < 2 * count for count > 1, at
   * most half of the states are skipped, and since the full period has not
   * been used up, an index not yet given always lies ahead. */
  for (;;) {
    walk->state = (walk->mult * walk->state + walk->incr) & walk->mask;
    v = walk_mix(walk, walk->state);
    if (v < walk->count)
      break;
  }
  walk->emitted++;
  *index = v;
  return true;
}
