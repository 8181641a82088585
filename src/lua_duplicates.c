/* SPDX-License-Identifier: MIT */
/* icmprun.duplicates(): the engine's duplicate replies counted per sender.
 *
 * The engine tells each duplicate to a hook (ir_engine_on_duplicate) with the
 * address it came from; this file keeps a count per address in a small
 * open-addressing table, so that a script (the exporter) can say which host
 * duplicates, as smokeping_prober does per host. Senders are only the hosts
 * that were probed (a duplicate carries our run's cookie), but a path that
 * echoes our probes from forged addresses could make many: past
 * IR_DUP_MAX_ADDRS addresses, further ones are counted under "other" only.
 *
 * Ownership: the table is allocated by the first duplicate and freed by
 * ir_lua_duplicates_free when the runtime shuts down. */
#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>

#include "lua_runtime.h"

/* Addresses counted one by one at most (a power of two; the table has twice
 * as many slots, so it is never more than half full). */
#define IR_DUP_MAX_ADDRS 4096

typedef struct ir_dup_entry_s {
  ir_addr_t addr;
  uint64_t count; /* 0: a free slot. */
} ir_dup_entry_t;

struct ir_dup_counts_s {
  ir_dup_entry_t* slots;
  uint32_t capacity; /* Slots, a power of two. */
  uint32_t used;
  uint64_t other; /* Duplicates from addresses past IR_DUP_MAX_ADDRS. */
};

/* The slot of addr in slots: its own, or the free one where it would go. */
static ir_dup_entry_t* ir__dup_find(ir_dup_entry_t* slots, uint32_t capacity,
                                    const ir_addr_t* addr) {
  uint32_t i = ir_addr_hash(addr, 0) & (capacity - 1);
  while (slots[i].count != 0 && !ir_addr_equal(&slots[i].addr, addr)) {
    i = (i + 1) & (capacity - 1);
  }
  return &slots[i];
}

/* Doubles the table (or makes its first one); false when memory is short. */
static bool ir__dup_grow(ir_dup_counts_t* d) {
  uint32_t capacity = d->capacity == 0 ? 16 : d->capacity * 2;
  ir_dup_entry_t* slots = calloc(capacity, sizeof(*slots));
  if (slots == NULL) {
    return false;
  }
  for (uint32_t i = 0; i < d->capacity; i++) {
    if (d->slots[i].count != 0) {
      *ir__dup_find(slots, capacity, &d->slots[i].addr) = d->slots[i];
    }
  }
  free(d->slots);
  d->slots = slots;
  d->capacity = capacity;
  return true;
}

/* The engine's hook: one more duplicate from dup->from. */
static void ir__on_duplicate(ir_engine_t* engine, const ir_duplicate_t* dup,
                             void* data) {
  (void)engine;
  ir_lua_runtime_t* rt = data;
  if (rt->duplicates == NULL &&
      (rt->duplicates = calloc(1, sizeof(ir_dup_counts_t))) == NULL) {
    return; /* Out of memory: the engine-wide counter still has it. */
  }
  ir_dup_counts_t* d = rt->duplicates;
  if (d->capacity > 0) {
    ir_dup_entry_t* e = ir__dup_find(d->slots, d->capacity, &dup->from);
    if (e->count != 0) {
      e->count++;
      return;
    }
  }
  if (d->used >= IR_DUP_MAX_ADDRS) {
    d->other++;
    return;
  }
  if (2 * (d->used + 1) > d->capacity && !ir__dup_grow(d)) {
    d->other++;
    return;
  }
  ir_dup_entry_t* e = ir__dup_find(d->slots, d->capacity, &dup->from);
  e->addr = dup->from;
  e->count = 1;
  d->used++;
}

void ir_lua_duplicates_attach(ir_lua_runtime_t* rt) {
  ir_engine_on_duplicate(rt->engine, ir__on_duplicate, rt);
}

void ir_lua_duplicates_free(ir_lua_runtime_t* rt) {
  if (rt->duplicates != NULL) {
    free(rt->duplicates->slots);
    free(rt->duplicates);
    rt->duplicates = NULL;
  }
}

/* icmprun.duplicates() -> { [address] = count, ..., other = count }: the
 * duplicate replies since the start, by the address they came from; `other`
 * only when some came from addresses past the table's limit. Their sum is
 * icmprun.stats().duplicates of this thread's engine. */
static int ir__l_duplicates(lua_State* L) {
  ir_lua_runtime_t* rt = lua_touserdata(L, lua_upvalueindex(1));
  ir_dup_counts_t* d = rt->duplicates;
  lua_createtable(L, 0, d != NULL ? (int)d->used : 0); /* t */
  if (d == NULL) {
    return 1;
  }
  for (uint32_t i = 0; i < d->capacity; i++) {
    if (d->slots[i].count != 0) {
      ir_lua_push_addr(L, &d->slots[i].addr);             /* t addr */
      lua_pushinteger(L, (lua_Integer)d->slots[i].count); /* t addr n */
      lua_rawset(L, -3);                                  /* t */
    }
  }
  if (d->other > 0) {
    lua_pushinteger(L, (lua_Integer)d->other); /* t n */
    lua_setfield(L, -2, "other");              /* t */
  }
  return 1;
}

void ir_lua_register_duplicates(lua_State* L, int module_index) {
  module_index = lua_absindex(L, module_index);
  lua_getfield(L, LUA_REGISTRYINDEX, IR_RUNTIME_KEY); /* rt */
  lua_pushcclosure(L, ir__l_duplicates, 1);           /* f */
  lua_setfield(L, module_index, "duplicates");        /* */
}
