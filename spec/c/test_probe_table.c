/* SPDX-License-Identifier: MIT */
/* Unit tests for ir_table: keys, duplicates, growth and backward-shift deletion. */
#include "probe_table.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "check.h"

/* A fixed-seed PRNG (splitmix64), so every run tests the same sequences. */
static uint64_t next_random(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static ir_addr_t make_addr(const char* text) {
  ir_addr_t addr;

  memset(&addr, 0, sizeof(addr));
  CHECK_EQ_INT(ir_addr_parse(text, &addr), 0);
  return addr;
}

/* 10.0.x.y for n = x * 256 + y. */
static ir_addr_t numbered_addr(uint32_t n) {
  ir_addr_t addr;

  memset(&addr, 0, sizeof(addr));
  addr.family = AF_INET;
  addr.bytes[0] = 10;
  addr.bytes[1] = (uint8_t)(n >> 16);
  addr.bytes[2] = (uint8_t)(n >> 8);
  addr.bytes[3] = (uint8_t)n;
  return addr;
}

/* The table's own invariants: a power-of-two capacity at most half full, a
 * correct count, the right stored hashes, and every entry reachable from its
 * home slot without crossing an empty slot (what backward-shift deletion must
 * preserve). */
static bool table_is_valid(const ir_table_t* table) {
  uint32_t used = 0;
  uint32_t i;
  uint32_t j;

  if (table->slots == NULL)
    return table->len == 0;
  if (((table->mask + 1) & table->mask) != 0)
    return false;
  for (i = 0; i <= table->mask; i++) {
    if (table->slots[i].item == NULL)
      continue;
    used++;
    /* The stored hash, which growing and deleting rely on, must be the key's. */
    if (table->slots[i].hash !=
        ir_table_hash(&table->slots[i].addr, table->slots[i].seq))
      return false;
    j = ir_addr_hash(&table->slots[i].addr, table->slots[i].seq) & table->mask;
    for (; j != i; j = (j + 1) & table->mask) {
      if (table->slots[j].item == NULL)
        return false;
    }
  }
  return used == table->len && (uint64_t)used * 2 <= (uint64_t)table->mask + 1;
}

static void test_empty(void) {
  ir_table_t table;
  ir_addr_t addr = make_addr("192.0.2.1");

  ir_table_init(&table);
  CHECK(ir_table_find(&table, &addr, 1) == NULL);
  CHECK(ir_table_remove(&table, &addr, 1) == NULL);
  CHECK_EQ_INT(table.len, 0);
  CHECK(table.slots == NULL);
  ir_table_free(&table);
  ir_table_free(&table);
}

static void test_basic(void) {
  ir_table_t table;
  ir_addr_t a = make_addr("192.0.2.1");
  ir_addr_t a_again = make_addr("192.0.2.1");
  ir_addr_t b = make_addr("192.0.2.2");
  ir_addr_t mapped = make_addr("::ffff:192.0.2.1");
  ir_addr_t ll1 = make_addr("fe80::1%1");
  ir_addr_t ll2 = make_addr("fe80::1%2");
  int items[8];

  ir_table_init(&table);
  CHECK_EQ_INT(ir_table_insert(&table, &a, 1, &items[0]), 0);
  CHECK(table.slots != NULL);
  CHECK(ir_table_find(&table, &a_again, 1) == &items[0]);

  /* Same sequence with another address, and same address with another
   * sequence, are different keys; so are IPv4 and v4-mapped, and scopes. */
  CHECK_EQ_INT(ir_table_insert(&table, &b, 1, &items[1]), 0);
  CHECK_EQ_INT(ir_table_insert(&table, &a, 2, &items[2]), 0);
  CHECK_EQ_INT(ir_table_insert(&table, &mapped, 1, &items[3]), 0);
  CHECK_EQ_INT(ir_table_insert(&table, &ll1, 1, &items[4]), 0);
  CHECK_EQ_INT(ir_table_insert(&table, &ll2, 1, &items[5]), 0);
  CHECK_EQ_INT(table.len, 6);
  CHECK(ir_table_find(&table, &a, 1) == &items[0]);
  CHECK(ir_table_find(&table, &b, 1) == &items[1]);
  CHECK(ir_table_find(&table, &a, 2) == &items[2]);
  CHECK(ir_table_find(&table, &mapped, 1) == &items[3]);
  CHECK(ir_table_find(&table, &ll1, 1) == &items[4]);
  CHECK(ir_table_find(&table, &ll2, 1) == &items[5]);
  CHECK(ir_table_find(&table, &b, 2) == NULL);
  CHECK(ir_table_find(&table, &a, 65535) == NULL);

  /* A duplicate key is refused and the original item kept. */
  CHECK_EQ_INT(ir_table_insert(&table, &a_again, 1, &items[6]), -EEXIST);
  CHECK(ir_table_find(&table, &a, 1) == &items[0]);
  CHECK_EQ_INT(table.len, 6);

  /* NULL marks empty slots, so it cannot be an item. */
  CHECK_EQ_INT(ir_table_insert(&table, &a, 3, NULL), -EINVAL);
  CHECK_EQ_INT(table.len, 6);

  CHECK(ir_table_remove(&table, &a, 1) == &items[0]);
  CHECK(ir_table_find(&table, &a, 1) == NULL);
  CHECK(ir_table_remove(&table, &a, 1) == NULL);
  CHECK(ir_table_find(&table, &a, 2) == &items[2]);
  CHECK_EQ_INT(table.len, 5);

  /* A removed key can be inserted again. */
  CHECK_EQ_INT(ir_table_insert(&table, &a, 1, &items[7]), 0);
  CHECK(ir_table_find(&table, &a, 1) == &items[7]);
  CHECK(table_is_valid(&table));

  ir_table_free(&table);
  CHECK(table.slots == NULL);
  CHECK_EQ_INT(table.len, 0);
}

/* Grows through many doublings; everything stays findable, then goes away. */
static void test_growth(void) {
  enum { N = 100000 };
  static char items[N];
  ir_table_t table;
  ir_addr_t addr;
  int missing = 0;
  uint32_t i;

  ir_table_init(&table);
  for (i = 0; i < N; i++) {
    /* Few addresses and many sequences, as with a long run to a few hosts. */
    addr = numbered_addr(i % 7);
    CHECK_EQ_INT(ir_table_insert(&table, &addr, (uint16_t)(i / 7), &items[i]), 0);
  }
  CHECK_EQ_INT(table.len, N);
  CHECK((uint64_t)(table.mask + 1) >= 2 * (uint64_t)N);
  CHECK(table_is_valid(&table));

  for (i = 0; i < N; i++) {
    addr = numbered_addr(i % 7);
    if (ir_table_find(&table, &addr, (uint16_t)(i / 7)) != &items[i])
      missing++;
  }
  CHECK_EQ_INT(missing, 0);

  for (i = 0; i < N; i++) {
    addr = numbered_addr(i % 7);
    if (ir_table_remove(&table, &addr, (uint16_t)(i / 7)) != &items[i])
      missing++;
  }
  CHECK_EQ_INT(missing, 0);
  CHECK_EQ_INT(table.len, 0);
  CHECK(table_is_valid(&table));
  ir_table_free(&table);
}

/* Random inserts and removals over a small key space, checked against a
 * reference array, so long probe runs form and are repaired by deletion. */
static void test_random(void) {
  enum { ADDRS = 16, SEQS = 256, KEYS = ADDRS * SEQS, OPS = 200000 };
  static bool present[KEYS];
  static char items[KEYS];
  ir_addr_t addrs[ADDRS];
  ir_table_t table;
  uint64_t rng = 1234;
  uint32_t count = 0;
  int wrong = 0;
  int invalid = 0;
  int op;
  int k;
  int i;
  int rc;
  void* got;

  for (i = 0; i < ADDRS; i++) {
    addrs[i] = numbered_addr((uint32_t)i * 65537u);
    /* Half the addresses are IPv6 to mix families in one table. */
    if (i % 2 == 1) {
      addrs[i].family = AF_INET6;
      addrs[i].bytes[15] = (uint8_t)i;
    }
  }
  memset(present, 0, sizeof(present));
  ir_table_init(&table);

  for (op = 0; op < OPS; op++) {
    k = (int)(next_random(&rng) % KEYS);
    /* Skewing towards insertion early and removal late sweeps the load. */
    if (next_random(&rng) % OPS >= (uint64_t)op) {
      rc = ir_table_insert(&table, &addrs[k / SEQS], (uint16_t)(k % SEQS), &items[k]);
      if (rc != (present[k] ? -EEXIST : 0))
        wrong++;
      if (!present[k])
        count++;
      present[k] = true;
    } else {
      got = ir_table_remove(&table, &addrs[k / SEQS], (uint16_t)(k % SEQS));
      if (got != (present[k] ? &items[k] : NULL))
        wrong++;
      if (present[k])
        count--;
      present[k] = false;
    }
    if (table.len != count)
      wrong++;

    if (op % 1000 == 0) {
      if (!table_is_valid(&table))
        invalid++;
      for (i = 0; i < KEYS; i++) {
        got = ir_table_find(&table, &addrs[i / SEQS], (uint16_t)(i % SEQS));
        if (got != (present[i] ? &items[i] : NULL))
          wrong++;
      }
    }
  }
  CHECK_EQ_INT(wrong, 0);
  CHECK_EQ_INT(invalid, 0);
  CHECK(table_is_valid(&table));
  ir_table_free(&table);
}

int main(void) {
  test_empty();
  test_basic();
  test_growth();
  test_random();
  return check_summary();
}
