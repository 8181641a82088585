/* SPDX-License-Identifier: MIT */
/* The icmprun command's Lua allocator: malloc, keeping freed small blocks. */
#include <lua.h>
#include <stdlib.h>

#include "lua_runtime.h"

/* Blocks of up to this many bytes are kept when freed, on one list per exact
 * size, so a kept block is only ever handed out for a request of its own
 * size: no rounding, and blocks from any allocator before this one are safe
 * to keep. */
#define IR_POOL_MAX_BLOCK 512
/* At most this many bytes wait on the lists; beyond it blocks go back to
 * malloc. A sweep's steady churn needs far less. */
#define IR_POOL_MAX_BYTES (1024 * 1024)

/* A free block holds the link to the next free block of its size. */
typedef struct ir_pool_block_s {
  struct ir_pool_block_s* next;
} ir_pool_block_t;

/* Owned by main: created before the Lua state, freed after lua_close. */
struct ir_lua_pool_s {
  size_t kept_bytes;
  ir_pool_block_t* free[IR_POOL_MAX_BLOCK + 1];
};

ir_lua_pool_t* ir_lua_pool_new(void) {
  return calloc(1, sizeof(ir_lua_pool_t));
}

void ir_lua_pool_free(ir_lua_pool_t* pool) {
  if (pool == NULL) {
    return;
  }
  for (size_t size = 0; size <= IR_POOL_MAX_BLOCK; size++) {
    while (pool->free[size] != NULL) {
      ir_pool_block_t* block = pool->free[size];
      pool->free[size] = block->next;
      free(block);
    }
  }
  free(pool);
}

/* A lua_Alloc (see the manual): for ptr == NULL, osize is a type tag, not a
 * size. A sweep makes a result table, its node array and an address string
 * for every reply, and the collector frees them by the thousand; taking them
 * back from a list costs a few instructions where malloc's bins cost
 * hundreds, and reuses memory that is still in the cache. */
void* ir_lua_pool_alloc(void* ud, void* ptr, size_t osize, size_t nsize) {
#ifdef ICMPRUN_SANITIZE
  /* A kept block is memory that AddressSanitizer believes in use: a Lua
   * object used after it was freed would read a live block of the pool and
   * go unseen. Sanitizer builds take every block from malloc and give it
   * straight back, so that ASan's quarantine sees each one. */
  (void)ud;
  (void)osize;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  return realloc(ptr, nsize);
#else
  ir_lua_pool_t* pool = ud;
  if (nsize == 0) {
    if (ptr != NULL && osize >= sizeof(ir_pool_block_t) && osize <= IR_POOL_MAX_BLOCK &&
        pool->kept_bytes + osize <= IR_POOL_MAX_BYTES) {
      ir_pool_block_t* block = ptr;
      block->next = pool->free[osize];
      pool->free[osize] = block;
      pool->kept_bytes += osize;
    } else {
      free(ptr);
    }
    return NULL;
  }
  if (ptr == NULL && nsize <= IR_POOL_MAX_BLOCK && pool->free[nsize] != NULL) {
    ir_pool_block_t* block = pool->free[nsize];
    pool->free[nsize] = block->next;
    pool->kept_bytes -= nsize;
    return block;
  }
  /* Shrinking must not fail (Lua assumes it), and realloc does not. */
  return realloc(ptr, nsize);
#endif
}
