/* SPDX-License-Identifier: MIT */
/* In-flight probe table: open addressing, linear probing, backward-shift deletion. */
#include "probe_table.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Allocated on the first insert, so an idle engine holds no slot array. */
#define IR_TABLE_INITIAL_CAP 64

/* The mask is a uint32_t, so the capacity can double up to 2^31 slots. */
#define IR_TABLE_MAX_CAP ((uint32_t)1 << 31)

uint32_t ir_table_hash(const ir_addr_t* addr, uint16_t seq) {
  return ir_addr_hash(addr, seq);
}

/* The hash is compared first: it rejects almost every other key at the cost of
 * one integer compare, before the address is looked at. */
static bool slot_matches(const ir_table_slot_t* slot, const ir_addr_t* addr,
                         uint16_t seq, uint32_t hash) {
  return slot->item != NULL && slot->hash == hash && slot->seq == seq &&
         ir_addr_equal(&slot->addr, addr);
}

/* The slot holding (addr, seq), or the empty slot that ends its probe run. The
 * table must have slots, and the load limit guarantees an empty one. */
static uint32_t find_slot(const ir_table_t* table, const ir_addr_t* addr, uint16_t seq,
                          uint32_t hash) {
  uint32_t i = hash & table->mask;

  while (table->slots[i].item != NULL &&
         !slot_matches(&table->slots[i], addr, seq, hash))
    i = (i + 1) & table->mask;
  return i;
}

/* Moves every entry into a fresh array of twice the size, by its stored hash. On
 * failure the table is left exactly as it was. */
static int grow(ir_table_t* table) {
  ir_table_t bigger;
  uint32_t cap = table->slots == NULL ? 0 : table->mask + 1;
  uint32_t i;
  uint32_t j;

  if (cap >= IR_TABLE_MAX_CAP)
    return -ENOMEM;
  cap = cap == 0 ? IR_TABLE_INITIAL_CAP : cap * 2;

  /* calloc checks the size multiplication for overflow itself. */
  bigger.slots = calloc(cap, sizeof(ir_table_slot_t));
  if (bigger.slots == NULL)
    return -ENOMEM;
  bigger.mask = cap - 1;
  bigger.len = table->len;

  if (table->slots != NULL) {
    for (i = 0; i <= table->mask; i++) {
      if (table->slots[i].item == NULL)
        continue;
      j = table->slots[i].hash & bigger.mask;
      while (bigger.slots[j].item != NULL)
        j = (j + 1) & bigger.mask;
      bigger.slots[j] = table->slots[i];
    }
  }

  free(table->slots);
  *table = bigger;
  return 0;
}

void ir_table_init(ir_table_t* table) {
  table->slots = NULL;
  table->mask = 0;
  table->len = 0;
}

void ir_table_free(ir_table_t* table) {
  free(table->slots);
  ir_table_init(table);
}

int ir_table_insert(ir_table_t* table, const ir_addr_t* addr, uint16_t seq,
                    void* item) {
  return ir_table_insert_hashed(table, addr, seq, ir_table_hash(addr, seq), item);
}

void* ir_table_find(const ir_table_t* table, const ir_addr_t* addr, uint16_t seq) {
  return ir_table_find_hashed(table, addr, seq, ir_table_hash(addr, seq));
}

void* ir_table_remove(ir_table_t* table, const ir_addr_t* addr, uint16_t seq) {
  return ir_table_remove_hashed(table, addr, seq, ir_table_hash(addr, seq));
}

int ir_table_insert_hashed(ir_table_t* table, const ir_addr_t* addr, uint16_t seq,
                           uint32_t hash, void* item) {
  uint32_t i = 0;
  int err;

  /* NULL marks an empty slot, so it cannot be stored. */
  if (item == NULL)
    return -EINVAL;

  /* Duplicates are found before growing, so -EEXIST never costs a rehash. */
  if (table->slots != NULL) {
    i = find_slot(table, addr, seq, hash);
    if (table->slots[i].item != NULL)
      return -EEXIST;
  }

  /* At most half the slots are used: probe runs stay short and there is
   * always an empty slot to stop every search. Only after growing must the
   * empty slot be found again. */
  if (table->slots == NULL ||
      ((uint64_t)table->len + 1) * 2 > (uint64_t)table->mask + 1) {
    err = grow(table);
    if (err != 0)
      return err;
    i = find_slot(table, addr, seq, hash);
  }

  memset(&table->slots[i], 0, sizeof(table->slots[i]));
  memcpy(&table->slots[i].addr, addr, sizeof(*addr));
  table->slots[i].seq = seq;
  table->slots[i].hash = hash;
  table->slots[i].item = item;
  table->len++;
  return 0;
}

void* ir_table_find_hashed(const ir_table_t* table, const ir_addr_t* addr, uint16_t seq,
                           uint32_t hash) {
  if (table->slots == NULL)
    return NULL;
  return table->slots[find_slot(table, addr, seq, hash)].item;
}

void* ir_table_remove_hashed(ir_table_t* table, const ir_addr_t* addr, uint16_t seq,
                             uint32_t hash) {
  ir_table_slot_t* slots = table->slots;
  uint32_t mask = table->mask;
  uint32_t hole;
  uint32_t j;
  uint32_t home;
  void* item;

  if (slots == NULL)
    return NULL;
  hole = find_slot(table, addr, seq, hash);
  item = slots[hole].item;
  if (item == NULL)
    return NULL;

  /* Backward-shift deletion: walk the run after the hole and pull back every
   * entry whose probe path passes through the hole (its distance from home is
   * at least the distance from the hole), so no search ever stops early at
   * the hole and no tombstones are needed. */
  j = hole;
  for (;;) {
    j = (j + 1) & mask;
    if (slots[j].item == NULL)
      break;
    home = slots[j].hash & mask;
    if (((j - home) & mask) >= ((j - hole) & mask)) {
      slots[hole] = slots[j];
      hole = j;
    }
  }

  memset(&slots[hole], 0, sizeof(slots[hole]));
  table->len--;
  return item;
}
