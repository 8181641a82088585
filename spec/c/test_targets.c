/* SPDX-License-Identifier: MIT */
/* Unit tests for sweep targets: parsing, block addresses and walks. */
#include "targets.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "check.h"

#define TWO_POW(n) ((uint64_t)1 << (n))

/* One row of the parse table. For a block, `first` is its first address in
 * canonical form; for an invalid target, `message` is a substring of the error. */
typedef struct parse_case_s {
  const char* text;
  ir_target_kind_t kind;
  const char* first;
  uint64_t count;
  const char* message;
} parse_case_t;

static const parse_case_t parse_cases[] = {
    /* Single addresses. */
    {"127.0.0.1", IR_TARGET_BLOCK, "127.0.0.1", 1, NULL},
    {"0.0.0.0", IR_TARGET_BLOCK, "0.0.0.0", 1, NULL},
    {"::1", IR_TARGET_BLOCK, "::1", 1, NULL},
    {"2001:DB8::A", IR_TARGET_BLOCK, "2001:db8::a", 1, NULL},
    {"fe80::1%2", IR_TARGET_BLOCK, "fe80::1%2", 1, NULL},

    /* CIDR blocks, with host bits cleared. */
    {"127.0.0.0/20", IR_TARGET_BLOCK, "127.0.0.0", 4096, NULL},
    {"127.0.0.5/24", IR_TARGET_BLOCK, "127.0.0.0", 256, NULL},
    {"10.20.30.40/12", IR_TARGET_BLOCK, "10.16.0.0", TWO_POW(20), NULL},
    {"10.20.30.40/31", IR_TARGET_BLOCK, "10.20.30.40", 2, NULL},
    {"10.20.30.41/31", IR_TARGET_BLOCK, "10.20.30.40", 2, NULL},
    {"10.1.2.3/32", IR_TARGET_BLOCK, "10.1.2.3", 1, NULL},
    {"10.0.0.0/024", IR_TARGET_BLOCK, "10.0.0.0", 256, NULL},
    {"10.1.2.3/0", IR_TARGET_BLOCK, "0.0.0.0", TWO_POW(32), NULL},
    {"2001:db8::/120", IR_TARGET_BLOCK, "2001:db8::", 256, NULL},
    {"2001:db8::1234/120", IR_TARGET_BLOCK, "2001:db8::1200", 256, NULL},
    {"2001:db8::1/128", IR_TARGET_BLOCK, "2001:db8::1", 1, NULL},
    {"2001:db8::/65", IR_TARGET_BLOCK, "2001:db8::", TWO_POW(63), NULL},
    {"2001:db8:1:2:3::/64", IR_TARGET_BLOCK, "2001:db8:1:2::", UINT64_MAX, NULL},
    {"2001:db8::/32", IR_TARGET_BLOCK, "2001:db8::", UINT64_MAX, NULL},
    {"2001:db8::1/0", IR_TARGET_BLOCK, "::", UINT64_MAX, NULL},
    {"fe80::1/10", IR_TARGET_BLOCK, "fe80::", UINT64_MAX, NULL},

    /* Ranges of one family, inclusive at both ends. */
    {"127.0.0.1-127.0.0.200", IR_TARGET_BLOCK, "127.0.0.1", 200, NULL},
    {"10.0.0.5-10.0.0.5", IR_TARGET_BLOCK, "10.0.0.5", 1, NULL},
    {"10.0.0.250-10.0.1.5", IR_TARGET_BLOCK, "10.0.0.250", 12, NULL},
    {"0.0.0.0-255.255.255.255", IR_TARGET_BLOCK, "0.0.0.0", TWO_POW(32), NULL},
    {"2001:db8::1-2001:db8::100", IR_TARGET_BLOCK, "2001:db8::1", 256, NULL},
    {"2001:db8::ff-2001:db8::1:0", IR_TARGET_BLOCK, "2001:db8::ff", 0xff02, NULL},
    {"::-::ffff:ffff:ffff:fffd", IR_TARGET_BLOCK, "::", UINT64_MAX - 1, NULL},
    {"::-::ffff:ffff:ffff:fffe", IR_TARGET_BLOCK, "::", UINT64_MAX, NULL},
    {"::-::ffff:ffff:ffff:ffff", IR_TARGET_BLOCK, "::", UINT64_MAX, NULL},
    {"::-::1:0:0:0:0", IR_TARGET_BLOCK, "::", UINT64_MAX, NULL},
    {"::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", IR_TARGET_BLOCK, "::", UINT64_MAX,
     NULL},
    {"fe80::1%2-fe80::5%2", IR_TARGET_BLOCK, "fe80::1%2", 5, NULL},

    /* Host names. */
    {"localhost", IR_TARGET_NAME, NULL, 0, NULL},
    {"router-1.example", IR_TARGET_NAME, NULL, 0, NULL},
    {"a-b", IR_TARGET_NAME, NULL, 0, NULL},
    {"10-20", IR_TARGET_NAME, NULL, 0, NULL},
    {"host_1.lan", IR_TARGET_NAME, NULL, 0, NULL},
    {"x", IR_TARGET_NAME, NULL, 0, NULL},
    {"1.2.3.4x", IR_TARGET_NAME, NULL, 0, NULL},
    {"EXAMPLE.COM", IR_TARGET_NAME, NULL, 0, NULL},

    /* Malformed targets, each with the part of the message that names why. */
    {"", IR_TARGET_INVALID, NULL, 0, "empty target"},
    {" 127.0.0.1", IR_TARGET_INVALID, NULL, 0, "whitespace"},
    {"127.0.0.1 ", IR_TARGET_INVALID, NULL, 0, "whitespace"},
    {"localhost\n", IR_TARGET_INVALID, NULL, 0, "whitespace"},
    {"\t", IR_TARGET_INVALID, NULL, 0, "whitespace"},
    {"300.1.1.1", IR_TARGET_INVALID, NULL, 0,
     "'300.1.1.1' is not a valid IPv4 address"},
    {"1.2.3", IR_TARGET_INVALID, NULL, 0, "'1.2.3' is not a valid IPv4 address"},
    {"1.2.3.4.5", IR_TARGET_INVALID, NULL, 0, "not a valid IPv4 address"},
    {"1234", IR_TARGET_INVALID, NULL, 0, "not a valid IPv4 address"},
    {"10.0.0.0/33", IR_TARGET_INVALID, NULL, 0,
     "prefix length 33 is over 32 in '10.0.0.0/33'"},
    {"10.0.0.0/99999999999999999999999", IR_TARGET_INVALID, NULL, 0, "is over 32"},
    {"::/129", IR_TARGET_INVALID, NULL, 0, "prefix length 129 is over 128 in '::/129'"},
    {"10.0.0.0/x", IR_TARGET_INVALID, NULL, 0,
     "'10.0.0.0/x' has no valid prefix length"},
    {"10.0.0.0/", IR_TARGET_INVALID, NULL, 0, "no valid prefix length"},
    {"10.0.0.0/-1", IR_TARGET_INVALID, NULL, 0, "no valid prefix length"},
    {"10.0.0.0/+8", IR_TARGET_INVALID, NULL, 0, "no valid prefix length"},
    {"10.0.0.0/8/8", IR_TARGET_INVALID, NULL, 0, "no valid prefix length"},
    {"10.0.0.0/ 8", IR_TARGET_INVALID, NULL, 0, "no valid prefix length"},
    {"300.0.0.0/8", IR_TARGET_INVALID, NULL, 0, "'300.0.0.0' is not an address"},
    {"/8", IR_TARGET_INVALID, NULL, 0, "is not an address"},
    {"example.com/24", IR_TARGET_INVALID, NULL, 0, "is not a CIDR block"},
    {"fe80::%2/64", IR_TARGET_INVALID, NULL, 0, "cannot have a scope"},
    {"1.2.3.4-::1", IR_TARGET_INVALID, NULL, 0,
     "range '1.2.3.4-::1' mixes IPv4 and IPv6"},
    {"::1-1.2.3.4", IR_TARGET_INVALID, NULL, 0, "mixes IPv4 and IPv6"},
    {"10.0.0.5-10.0.0.4", IR_TARGET_INVALID, NULL, 0,
     "range '10.0.0.5-10.0.0.4' ends before it starts"},
    {"2001:db8::1:0-2001:db8::ffff", IR_TARGET_INVALID, NULL, 0,
     "ends before it starts"},
    {"1.2.3.4-x", IR_TARGET_INVALID, NULL, 0,
     "'1.2.3.4-x' is not a range of two addresses"},
    {"1.2.3.4-", IR_TARGET_INVALID, NULL, 0, "not a range of two addresses"},
    {"1.2.3.4-1.2.3.5-1.2.3.6", IR_TARGET_INVALID, NULL, 0,
     "not a range of two addresses"},
    {"fe80::1%2-fe80::5", IR_TARGET_INVALID, NULL, 0, "different scope"},
    {"1::2::3", IR_TARGET_INVALID, NULL, 0, "'1::2::3' is not a valid IPv6 address"},
    {"2001:db8::g", IR_TARGET_INVALID, NULL, 0, "not a valid IPv6 address"},
    {"2001:db8::1%2", IR_TARGET_INVALID, NULL, 0, "scope"},
    {"fe80::1%no-such-if0", IR_TARGET_INVALID, NULL, 0, "scope"},
    {"1.2.3.4%1", IR_TARGET_INVALID, NULL, 0, "scope"},
    {"a b", IR_TARGET_INVALID, NULL, 0,
     "'a b' is not an address, CIDR block, range or host name"},
    {"-abc", IR_TARGET_INVALID, NULL, 0, "is not an address, CIDR block"},
    {"abc-", IR_TARGET_INVALID, NULL, 0, "is not an address, CIDR block"},
    {".abc", IR_TARGET_INVALID, NULL, 0, "is not an address, CIDR block"},
    {"abc.", IR_TARGET_INVALID, NULL, 0, "is not an address, CIDR block"},
    {"a*b", IR_TARGET_INVALID, NULL, 0, "is not an address, CIDR block"},
    {"...", IR_TARGET_INVALID, NULL, 0, "is not an address, CIDR block"},
};

static void check_parse_case(const parse_case_t* c) {
  ir_block_t block;
  ir_addr_t want;
  char error[256];
  char text[IR_ADDR_STRLEN];
  ir_target_kind_t kind;

  memset(error, 'x', sizeof(error));
  kind = ir_target_parse(c->text, &block, error, sizeof(error));
  if (!CHECK_EQ_INT(kind, c->kind)) {
    fprintf(stderr, "  while parsing \"%s\" (error \"%.*s\")\n", c->text,
            (int)sizeof(error) - 1, error);
    return;
  }
  CHECK(memchr(error, '\0', sizeof(error)) != NULL);

  switch (c->kind) {
    case IR_TARGET_BLOCK:
      CHECK_EQ_STR(error, "");
      ir_addr_format(&block.first, text, sizeof(text));
      if (!CHECK_EQ_STR(text, c->first) || !CHECK(block.count == c->count))
        fprintf(stderr, "  while parsing \"%s\" (count %llu)\n", c->text,
                (unsigned long long)block.count);
      /* The first address must be exactly what parsing its text gives, tail
       * and padding included, so blocks compare and hash like addresses. */
      CHECK_EQ_INT(ir_addr_parse(c->first, &want), 0);
      CHECK(memcmp(&block.first, &want, sizeof(want)) == 0);
      break;
    case IR_TARGET_NAME:
      CHECK_EQ_STR(error, "");
      CHECK_EQ_INT(block.count, 0);
      break;
    case IR_TARGET_INVALID:
      if (!CHECK(strstr(error, c->message) != NULL))
        fprintf(stderr, "  while parsing \"%s\": \"%s\" lacks \"%s\"\n", c->text, error,
                c->message);
      CHECK_EQ_INT(block.count, 0);
      break;
  }
}

static void test_parse_table(void) {
  size_t i;

  for (i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++)
    check_parse_case(&parse_cases[i]);
}

static void test_parse_names_length(void) {
  char name[300];
  char error[128];
  ir_block_t block;

  /* 253 characters is the longest name DNS carries; one more is refused. */
  memset(name, 'a', sizeof(name));
  name[253] = '\0';
  CHECK_EQ_INT(ir_target_parse(name, &block, error, sizeof(error)), IR_TARGET_NAME);
  name[253] = 'a';
  name[254] = '\0';
  CHECK_EQ_INT(ir_target_parse(name, &block, error, sizeof(error)), IR_TARGET_INVALID);
  CHECK(strstr(error, "254 characters") != NULL);
  /* The quote of a long text is cut short so the reason still fits. */
  CHECK(strstr(error, "...'") != NULL);

  /* A long run of digits and dots is still an IPv4 mistake, not a name. */
  memset(name, '1', sizeof(name));
  name[sizeof(name) - 1] = '\0';
  CHECK_EQ_INT(ir_target_parse(name, &block, error, sizeof(error)), IR_TARGET_INVALID);
  CHECK(strstr(error, "IPv4") != NULL);
}

static void test_parse_error_buffer(void) {
  char error[8];
  ir_block_t block;

  /* A short buffer gets a truncated message, terminated, with no overrun. */
  memset(error, 'x', sizeof(error));
  CHECK_EQ_INT(ir_target_parse("a b", &block, error, 4), IR_TARGET_INVALID);
  CHECK_EQ_STR(error, "'a ");
  CHECK_EQ_INT(error[4], 'x');

  memset(error, 'x', sizeof(error));
  CHECK_EQ_INT(ir_target_parse("a b", &block, error, 1), IR_TARGET_INVALID);
  CHECK_EQ_INT(error[0], '\0');
  CHECK_EQ_INT(error[1], 'x');

  /* No buffer at all is allowed when the caller only wants the kind. */
  CHECK_EQ_INT(ir_target_parse("a b", &block, NULL, 0), IR_TARGET_INVALID);
  CHECK_EQ_INT(ir_target_parse("10.0.0.0/8", &block, NULL, 0), IR_TARGET_BLOCK);
  CHECK(block.count == TWO_POW(24));

  /* Success clears a message left from an earlier call. */
  memset(error, 'x', sizeof(error));
  CHECK_EQ_INT(ir_target_parse("::1", &block, error, sizeof(error)), IR_TARGET_BLOCK);
  CHECK_EQ_STR(error, "");

  CHECK_EQ_INT(ir_target_parse(NULL, &block, error, sizeof(error)), IR_TARGET_INVALID);
  CHECK_EQ_STR(error, "empty t");
}

/* Checks that address `index` of the block `target` formats as `want`. */
static void check_address(const char* target, uint64_t index, const char* want) {
  ir_block_t block;
  ir_addr_t addr;
  ir_addr_t parsed;
  char text[IR_ADDR_STRLEN];

  if (!CHECK_EQ_INT(ir_target_parse(target, &block, NULL, 0), IR_TARGET_BLOCK))
    return;
  memset(&addr, 0xa5, sizeof(addr));
  ir_block_address(&block, index, &addr);
  ir_addr_format(&addr, text, sizeof(text));
  if (!CHECK_EQ_STR(text, want))
    fprintf(stderr, "  for index %llu of \"%s\"\n", (unsigned long long)index, target);
  /* Bytewise equal to the parsed address: family, scope, tail and padding. */
  CHECK_EQ_INT(ir_addr_parse(want, &parsed), 0);
  CHECK(memcmp(&addr, &parsed, sizeof(addr)) == 0);
}

static void test_block_address(void) {
  check_address("10.0.0.0/24", 0, "10.0.0.0");
  check_address("10.0.0.0/24", 255, "10.0.0.255");
  check_address("10.0.0.255-10.0.1.0", 1, "10.0.1.0");
  check_address("10.0.0.0/8", TWO_POW(24) - 1, "10.255.255.255");
  check_address("10.255.255.255-11.0.0.0", 1, "11.0.0.0");
  check_address("0.0.0.0/0", UINT32_MAX, "255.255.255.255");
  check_address("127.0.0.5", 0, "127.0.0.5");

  check_address("2001:db8::/120", 255, "2001:db8::ff");
  check_address("2001:db8::ff:ffff-2001:db8::1:0:0", 1, "2001:db8::100:0");
  check_address("2001:db8::ffff-2001:db8::1:0", 1, "2001:db8::1:0");
  check_address("2001:db8::/64", TWO_POW(32), "2001:db8::1:0:0");
  check_address("2001:db8::/64", UINT64_MAX, "2001:db8::ffff:ffff:ffff:ffff");
  check_address("2001:db8:0:0:ffff:ffff:ffff:ffff/128", 0,
                "2001:db8::ffff:ffff:ffff:ffff");
  check_address("2001:db8:0:0:ffff:ffff:ffff:ff00-2001:db8:0:1::", 0x100,
                "2001:db8:0:1::");
  check_address("0:ffff:ffff:ffff:ffff:ffff:ffff:ffff-1::", 1, "1::");
  check_address("fe80::1%2-fe80::5%2", 3, "fe80::4%2");

  /* An index past an IPv4 block wraps within the 4 bytes and never spills
   * into the tail that must stay zero. */
  check_address("255.255.255.255", 1, "0.0.0.0");
}

static void test_walk_in_order(void) {
  ir_walk_t walk;
  uint64_t index;
  uint64_t i;

  ir_walk_init(&walk, 5, false, 1234);
  for (i = 0; i < 5; i++) {
    CHECK(ir_walk_next(&walk, &index));
    CHECK(index == i);
  }
  CHECK(!ir_walk_next(&walk, &index));
  CHECK(!ir_walk_next(&walk, &index));

  ir_walk_init(&walk, 0, false, 0);
  CHECK(!ir_walk_next(&walk, &index));
  ir_walk_init(&walk, 0, true, 0);
  CHECK(!ir_walk_next(&walk, &index));

  ir_walk_init(&walk, UINT64_MAX, false, 0);
  for (i = 0; i < 3; i++) {
    CHECK(ir_walk_next(&walk, &index));
    CHECK(index == i);
  }
}

#define MAX_WALK 100000

/* Walks `count` indices at random with `seed`, checks that each comes out
 * exactly once, and stores the order in `order` when it is not NULL. */
static void check_walk_permutation(uint64_t count, uint64_t seed, uint64_t* order) {
  static unsigned char seen[MAX_WALK / 8 + 1];
  ir_walk_t walk;
  uint64_t index;
  uint64_t n = 0;
  bool ok = true;

  memset(seen, 0, sizeof(seen));
  ir_walk_init(&walk, count, true, seed);
  while (n <= count && ir_walk_next(&walk, &index)) {
    if (index >= count || (seen[index / 8] & (1u << (index % 8))) != 0) {
      ok = false;
      break;
    }
    seen[index / 8] |= (unsigned char)(1u << (index % 8));
    if (order != NULL)
      order[n] = index;
    n++;
  }
  if (!CHECK(ok && n == count))
    fprintf(stderr, "  walking %llu with seed %llu: %llu given\n",
            (unsigned long long)count, (unsigned long long)seed, (unsigned long long)n);
  CHECK(!ir_walk_next(&walk, &index));
  CHECK(!ir_walk_next(&walk, &index));
}

static void test_walk_random_permutes(void) {
  static const uint64_t counts[] = {1,  2,   3,   4,   5,    16,
                                    17, 255, 256, 257, 4096, MAX_WALK};
  static const uint64_t seeds[] = {0, 1, 2, 42, 0xdeadbeef, UINT64_MAX};
  size_t c;
  size_t s;

  for (c = 0; c < sizeof(counts) / sizeof(counts[0]); c++)
    for (s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++)
      check_walk_permutation(counts[c], seeds[s], NULL);
}

static bool is_sequential(const uint64_t* order, uint64_t count) {
  uint64_t i;

  for (i = 0; i < count; i++)
    if (order[i] != i)
      return false;
  return true;
}

static void test_walk_random_orders(void) {
  static const uint64_t counts[] = {16, 17, 100, 256, 4096};
  static uint64_t a[4096];
  static uint64_t b[4096];
  static uint64_t again[4096];
  uint64_t count;
  size_t c;
  uint64_t seed;

  for (c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
    count = counts[c];
    for (seed = 0; seed < 8; seed++) {
      check_walk_permutation(count, seed, a);
      check_walk_permutation(count, seed + 1, b);
      check_walk_permutation(count, seed, again);
      if (!CHECK(!is_sequential(a, count)))
        fprintf(stderr, "  count %llu seed %llu is in order\n",
                (unsigned long long)count, (unsigned long long)seed);
      CHECK(memcmp(a, b, count * sizeof(a[0])) != 0);
      CHECK(memcmp(a, again, count * sizeof(a[0])) == 0);
    }
  }
}

/* The walk must be a real shuffle, not a rotation: the first index should
 * land all over the block as the seed changes. */
static void test_walk_random_spread(void) {
  enum { COUNT = 256, SEEDS = 4096 };
  static unsigned firsts[COUNT];
  ir_walk_t walk;
  uint64_t index;
  uint64_t seed;
  unsigned hit = 0;
  unsigned i;

  memset(firsts, 0, sizeof(firsts));
  for (seed = 0; seed < SEEDS; seed++) {
    ir_walk_init(&walk, COUNT, true, seed);
    if (CHECK(ir_walk_next(&walk, &index)) && index < COUNT)
      firsts[index]++;
  }
  for (i = 0; i < COUNT; i++)
    if (firsts[i] > 0)
      hit++;
  CHECK(hit > COUNT * 3 / 4);
}

/* A bare LCG mod 2^k flips its lowest bit on every step; the mix must hide
 * that, or a sweep would alternate between even and odd addresses. */
static void test_walk_random_low_bits(void) {
  enum { COUNT = 4096 };
  static uint64_t order[COUNT];
  unsigned flips = 0;
  unsigned i;

  check_walk_permutation(COUNT, 99, order);
  for (i = 1; i < COUNT; i++)
    if ((order[i] ^ order[i - 1]) & 1)
      flips++;
  CHECK(flips > COUNT / 4 && flips < COUNT * 3 / 4);
}

static int compare_u64(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a;
  uint64_t y = *(const uint64_t*)b;

  return x < y ? -1 : x > y;
}

/* Huge blocks cannot be walked to the end in a test, but a prefix of the
 * walk must already be free of repeats and within the count. */
static void test_walk_random_huge(void) {
  static const uint64_t counts[] = {TWO_POW(32), TWO_POW(40) + 1, TWO_POW(63),
                                    TWO_POW(63) + 1, UINT64_MAX};
  enum { PREFIX = 10000 };
  static uint64_t order[PREFIX];
  ir_walk_t walk;
  size_t c;
  size_t i;
  bool ok;

  for (c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
    ir_walk_init(&walk, counts[c], true, 7);
    ok = true;
    for (i = 0; i < PREFIX; i++)
      ok = ok && ir_walk_next(&walk, &order[i]) && order[i] < counts[c];
    CHECK(ok);
    CHECK(!is_sequential(order, PREFIX));
    qsort(order, PREFIX, sizeof(order[0]), compare_u64);
    for (i = 1; i < PREFIX; i++)
      ok = ok && order[i - 1] != order[i];
    if (!CHECK(ok))
      fprintf(stderr, "  repeat walking %llu\n", (unsigned long long)counts[c]);
    /* A shuffle of a huge block reaches its upper half right away. */
    CHECK(order[PREFIX - 1] > counts[c] / 2);
  }
}

int main(void) {
  test_parse_table();
  test_parse_names_length();
  test_parse_error_buffer();
  test_block_address();
  test_walk_in_order();
  test_walk_random_permutes();
  test_walk_random_orders();
  test_walk_random_spread();
  test_walk_random_low_bits();
  test_walk_random_huge();
  return check_summary();
}
