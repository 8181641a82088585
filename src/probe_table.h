/* SPDX-License-Identifier: MIT */
/* In-flight table: (address, echo sequence) -> probe. Pure code, no I/O. */
#ifndef ICMPRUN_PROBE_TABLE_H
#define ICMPRUN_PROBE_TABLE_H

#include <stdint.h>

#include "addr.h"

/* Open addressing with linear probing and backward-shift deletion (no
 * tombstones), so lookups stay short however many probes come and go. The
 * table owns its slot array; the items are the caller's and are never freed. */
typedef struct ir_table_slot_s {
  ir_addr_t addr;
  uint16_t seq;
  uint32_t hash; /* ir_table_hash of the key: growing and deleting never rehash. */
  void* item;    /* NULL marks an empty slot. */
} ir_table_slot_t;

typedef struct ir_table_s {
  ir_table_slot_t* slots;
  uint32_t mask; /* Capacity minus one; capacity is a power of two. */
  uint32_t len;
} ir_table_t;

void ir_table_init(ir_table_t* table);
void ir_table_free(ir_table_t* table);

/* The hash a key is filed under. A caller that looks the same key up several
 * times (the engine: pick a sequence, insert, remove) computes it once and
 * passes it to the _hashed calls, which must get exactly this value. */
uint32_t ir_table_hash(const ir_addr_t* addr, uint16_t seq);

/* Inserts item (non-NULL) under (addr, seq). Returns 0, -EEXIST when the key is
 * already present (table unchanged), or -ENOMEM. Grows at 50% load. */
int ir_table_insert(ir_table_t* table, const ir_addr_t* addr, uint16_t seq, void* item);

/* The item under (addr, seq), or NULL. */
void* ir_table_find(const ir_table_t* table, const ir_addr_t* addr, uint16_t seq);

/* Removes and returns the item under (addr, seq), or NULL when absent. */
void* ir_table_remove(ir_table_t* table, const ir_addr_t* addr, uint16_t seq);

/* The same three, with the key's ir_table_hash already known. */
int ir_table_insert_hashed(ir_table_t* table, const ir_addr_t* addr, uint16_t seq,
                           uint32_t hash, void* item);
void* ir_table_find_hashed(const ir_table_t* table, const ir_addr_t* addr, uint16_t seq,
                           uint32_t hash);
void* ir_table_remove_hashed(ir_table_t* table, const ir_addr_t* addr, uint16_t seq,
                             uint32_t hash);

#endif
