/* SPDX-License-Identifier: MIT */
/* Unit tests for ir_addr: parsing, formatting, equality, hashing, sockaddrs. */
#include "addr.h"

#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/un.h>

#include "check.h"

/* Parses text, formats it, and expects `canonical`; the formatted text must
 * parse back to a bytewise identical address. */
static void check_round_trip(const char* text, int family, const char* canonical) {
  ir_addr_t addr;
  ir_addr_t again;
  char buf[IR_ADDR_STRLEN];

  if (!CHECK_EQ_INT(ir_addr_parse(text, &addr), 0)) {
    fprintf(stderr, "  while parsing \"%s\"\n", text);
    return;
  }
  CHECK_EQ_INT(addr.family, family);
  ir_addr_format(&addr, buf, sizeof(buf));
  CHECK_EQ_STR(buf, canonical);
  CHECK_EQ_INT(ir_addr_parse(buf, &again), 0);
  CHECK(ir_addr_equal(&addr, &again));
  CHECK(memcmp(&addr, &again, sizeof(addr)) == 0);
}

/* A rejected text must give -EINVAL and leave the output untouched. */
static void check_rejected(const char* text) {
  ir_addr_t addr;
  ir_addr_t before;

  memset(&addr, 0xa5, sizeof(addr));
  memcpy(&before, &addr, sizeof(addr));
  if (!CHECK_EQ_INT(ir_addr_parse(text, &addr), -EINVAL))
    fprintf(stderr, "  while parsing \"%s\"\n", text);
  CHECK(memcmp(&addr, &before, sizeof(addr)) == 0);
}

static void test_parse_v4(void) {
  ir_addr_t addr;
  static const uint8_t want[16] = {192, 0, 2, 1};

  check_round_trip("127.0.0.1", AF_INET, "127.0.0.1");
  check_round_trip("0.0.0.0", AF_INET, "0.0.0.0");
  check_round_trip("255.255.255.255", AF_INET, "255.255.255.255");
  check_round_trip("10.100.9.199", AF_INET, "10.100.9.199");
  check_round_trip("1.20.105.0", AF_INET, "1.20.105.0");

  /* The unused tail of an IPv4 address must be zero, and so must padding. */
  memset(&addr, 0xff, sizeof(addr));
  CHECK_EQ_INT(ir_addr_parse("192.0.2.1", &addr), 0);
  CHECK(memcmp(addr.bytes, want, sizeof(want)) == 0);
  CHECK_EQ_INT(addr.scope_id, 0);
}

static void test_parse_v6(void) {
  ir_addr_t addr;

  check_round_trip("::1", AF_INET6, "::1");
  check_round_trip("::", AF_INET6, "::");
  check_round_trip("2001:0db8:0000:0000:0000:0000:0000:0001", AF_INET6, "2001:db8::1");
  check_round_trip("2001:DB8::A", AF_INET6, "2001:db8::a");
  check_round_trip("2001:db8:0:0:1:0:0:1", AF_INET6, "2001:db8::1:0:0:1");
  check_round_trip("fe80::1", AF_INET6, "fe80::1");

  /* A v4-mapped address is still an IPv6 address, not the IPv4 one. */
  check_round_trip("::ffff:1.2.3.4", AF_INET6, "::ffff:1.2.3.4");
  CHECK_EQ_INT(ir_addr_parse("::ffff:1.2.3.4", &addr), 0);
  CHECK_EQ_INT(addr.bytes[10], 0xff);
  CHECK_EQ_INT(addr.bytes[11], 0xff);
  CHECK_EQ_INT(addr.bytes[12], 1);
  CHECK_EQ_INT(addr.bytes[15], 4);
}

static void test_rejects(void) {
  char longer[200];

  check_rejected("300.1.1.1");
  check_rejected("1.2.3");
  check_rejected("");
  check_rejected("abc");
  check_rejected("1.2.3.4/24");
  check_rejected("1.2.3.4.5");
  check_rejected(" 1.2.3.4");
  check_rejected("1.2.3.4 ");
  check_rejected("localhost");
  check_rejected("::1::2");
  check_rejected("2001:db8::g");
  check_rejected("1.2.3.4%1");
  check_rejected("fe80::1%");
  check_rejected("fe80::1%4294967296");
  check_rejected("fe80::1%no-such-if0");
  check_rejected("fe80::1%averyveryverylongname");
  /* A scope on an address that does not depend on the interface is an error. */
  check_rejected("2001:db8::1%2");
  check_rejected("::1%1");

  memset(longer, '1', sizeof(longer) - 1);
  longer[sizeof(longer) - 1] = '\0';
  check_rejected(longer);

  CHECK_EQ_INT(ir_addr_parse(NULL, &(ir_addr_t){0}), -EINVAL);
}

static void test_scope(void) {
  ir_addr_t addr;
  char buf[IR_ADDR_STRLEN];
  unsigned int lo;

  CHECK_EQ_INT(ir_addr_parse("fe80::1%2", &addr), 0);
  CHECK_EQ_INT(addr.family, AF_INET6);
  CHECK_EQ_INT(addr.scope_id, 2);
  check_round_trip("fe80::1%2", AF_INET6, "fe80::1%2");
  check_round_trip("fe80::1%4294967295", AF_INET6, "fe80::1%4294967295");
  check_round_trip("ff02::1%3", AF_INET6, "ff02::1%3");
  check_round_trip("ff01::1%3", AF_INET6, "ff01::1%3");

  /* The longest text the header promises room for. */
  CHECK_EQ_INT(
      ir_addr_parse("fe80:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295", &addr), 0);
  ir_addr_format(&addr, buf, sizeof(buf));
  CHECK_EQ_STR(buf, "fe80:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295");

  /* Scope zero means no scope, so it formats without one. */
  check_round_trip("fe80::1%0", AF_INET6, "fe80::1");

  /* Interface names work where the host has them; loopback nearly always does. */
  lo = if_nametoindex("lo");
  if (lo != 0) {
    CHECK_EQ_INT(ir_addr_parse("fe80::1%lo", &addr), 0);
    CHECK_EQ_INT(addr.scope_id, lo);
  }
}

static void test_format_edges(void) {
  ir_addr_t addr;
  char buf[8];

  CHECK_EQ_INT(ir_addr_parse("192.168.100.200", &addr), 0);

  /* A short buffer gets a truncated but terminated string. */
  memset(buf, 'x', sizeof(buf));
  ir_addr_format(&addr, buf, 4);
  CHECK_EQ_STR(buf, "192");
  CHECK_EQ_INT(buf[4], 'x');

  /* A zero length writes nothing at all. */
  memset(buf, 'x', sizeof(buf));
  ir_addr_format(&addr, buf, 0);
  CHECK_EQ_INT(buf[0], 'x');

  memset(&addr, 0, sizeof(addr));
  ir_addr_format(&addr, buf, sizeof(buf));
  CHECK_EQ_STR(buf, "?");
}

static void test_equal_and_hash(void) {
  ir_addr_t a;
  ir_addr_t b;
  ir_addr_t v4;
  ir_addr_t mapped;
  ir_addr_t scoped1;
  ir_addr_t scoped2;
  ir_addr_t unscoped;

  /* Two spellings of one address are equal, bytewise and by hash. */
  CHECK_EQ_INT(ir_addr_parse("2001:db8::1", &a), 0);
  CHECK_EQ_INT(ir_addr_parse("2001:DB8:0:0::0:1", &b), 0);
  CHECK(ir_addr_equal(&a, &b));
  CHECK(memcmp(&a, &b, sizeof(a)) == 0);
  CHECK(ir_addr_hash(&a, 7) == ir_addr_hash(&b, 7));
  CHECK(ir_addr_hash(&a, 7) != ir_addr_hash(&a, 8));

  CHECK_EQ_INT(ir_addr_parse("1.2.3.4", &v4), 0);
  CHECK_EQ_INT(ir_addr_parse("::ffff:1.2.3.4", &mapped), 0);
  CHECK(!ir_addr_equal(&v4, &mapped));
  CHECK(ir_addr_hash(&v4, 0) != ir_addr_hash(&mapped, 0));

  CHECK_EQ_INT(ir_addr_parse("fe80::1%1", &scoped1), 0);
  CHECK_EQ_INT(ir_addr_parse("fe80::1%2", &scoped2), 0);
  CHECK_EQ_INT(ir_addr_parse("fe80::1", &unscoped), 0);
  CHECK(!ir_addr_equal(&scoped1, &scoped2));
  CHECK(!ir_addr_equal(&scoped1, &unscoped));
  CHECK(ir_addr_hash(&scoped1, 0) != ir_addr_hash(&scoped2, 0));
  CHECK(ir_addr_equal(&scoped1, &scoped1));
}

/* The table indexes with the low bits only, so consecutive sequence numbers and
 * neighbouring addresses must spread evenly over them. */
static void test_hash_spread(void) {
  enum { BUCKETS = 1024, PER_BUCKET = 64 };
  static unsigned counts[BUCKETS];
  unsigned min;
  unsigned max;
  ir_addr_t addr;
  uint32_t i;

  CHECK_EQ_INT(ir_addr_parse("10.0.0.1", &addr), 0);
  memset(counts, 0, sizeof(counts));
  for (i = 0; i < BUCKETS * PER_BUCKET; i++)
    counts[ir_addr_hash(&addr, i) % BUCKETS]++;
  min = max = counts[0];
  for (i = 0; i < BUCKETS; i++) {
    if (counts[i] < min)
      min = counts[i];
    if (counts[i] > max)
      max = counts[i];
  }
  CHECK(min >= PER_BUCKET / 4);
  CHECK(max <= PER_BUCKET * 2);

  memset(counts, 0, sizeof(counts));
  for (i = 0; i < BUCKETS * PER_BUCKET; i++) {
    addr.bytes[2] = (uint8_t)(i >> 8);
    addr.bytes[3] = (uint8_t)i;
    counts[ir_addr_hash(&addr, 1) % BUCKETS]++;
  }
  min = max = counts[0];
  for (i = 0; i < BUCKETS; i++) {
    if (counts[i] < min)
      min = counts[i];
    if (counts[i] > max)
      max = counts[i];
  }
  CHECK(min >= PER_BUCKET / 4);
  CHECK(max <= PER_BUCKET * 2);
}

static void test_sockaddr(void) {
  struct sockaddr_storage ss;
  struct sockaddr_in sin;
  struct sockaddr_in6 sin6;
  struct sockaddr_un sun;
  ir_addr_t addr;
  ir_addr_t back;
  socklen_t len;

  CHECK_EQ_INT(ir_addr_parse("192.0.2.7", &addr), 0);
  len = ir_addr_to_sockaddr(&addr, &ss);
  CHECK_EQ_INT(len, sizeof(struct sockaddr_in));
  memcpy(&sin, &ss, sizeof(sin));
  CHECK_EQ_INT(sin.sin_family, AF_INET);
  CHECK_EQ_INT(sin.sin_port, 0);
  CHECK(memcmp(&sin.sin_addr, addr.bytes, 4) == 0);
  memset(&back, 0xff, sizeof(back));
  CHECK_EQ_INT(ir_addr_from_sockaddr((struct sockaddr*)&ss, &back), 0);
  CHECK(ir_addr_equal(&addr, &back));
  CHECK(memcmp(&addr, &back, sizeof(addr)) == 0);

  CHECK_EQ_INT(ir_addr_parse("fe80::abcd%5", &addr), 0);
  len = ir_addr_to_sockaddr(&addr, &ss);
  CHECK_EQ_INT(len, sizeof(struct sockaddr_in6));
  memcpy(&sin6, &ss, sizeof(sin6));
  CHECK_EQ_INT(sin6.sin6_family, AF_INET6);
  CHECK_EQ_INT(sin6.sin6_port, 0);
  CHECK_EQ_INT(sin6.sin6_scope_id, 5);
  CHECK(memcmp(&sin6.sin6_addr, addr.bytes, 16) == 0);
  memset(&back, 0xff, sizeof(back));
  CHECK_EQ_INT(ir_addr_from_sockaddr((struct sockaddr*)&ss, &back), 0);
  CHECK(ir_addr_equal(&addr, &back));
  CHECK(memcmp(&addr, &back, sizeof(addr)) == 0);

  /* A scope reported for a global address is dropped, so a reply still
   * matches the probe that was sent to the unscoped address. */
  CHECK_EQ_INT(ir_addr_parse("2001:db8::1", &addr), 0);
  ir_addr_to_sockaddr(&addr, &ss);
  memcpy(&sin6, &ss, sizeof(sin6));
  sin6.sin6_scope_id = 3;
  memcpy(&ss, &sin6, sizeof(sin6));
  CHECK_EQ_INT(ir_addr_from_sockaddr((struct sockaddr*)&ss, &back), 0);
  CHECK_EQ_INT(back.scope_id, 0);
  CHECK(ir_addr_equal(&addr, &back));

  memset(&sun, 0, sizeof(sun));
  sun.sun_family = AF_UNIX;
  memset(&back, 0x5a, sizeof(back));
  memcpy(&addr, &back, sizeof(addr));
  CHECK_EQ_INT(ir_addr_from_sockaddr((struct sockaddr*)&sun, &back), -EAFNOSUPPORT);
  CHECK(memcmp(&addr, &back, sizeof(addr)) == 0);

  memset(&addr, 0, sizeof(addr));
  CHECK_EQ_INT(ir_addr_to_sockaddr(&addr, &ss), 0);
}

int main(void) {
  test_parse_v4();
  test_parse_v6();
  test_rejects();
  test_scope();
  test_format_edges();
  test_equal_and_hash();
  test_hash_spread();
  test_sockaddr();
  return check_summary();
}
