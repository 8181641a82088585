/* SPDX-License-Identifier: MIT */
/* Unit tests for the icmprun command's Lua allocator, with its pool and without. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "lua_runtime.h"

#ifdef ICMPRUN_SANITIZE
#include <sanitizer/asan_interface.h>
#endif

/* Lua's allocation protocol: ptr == NULL allocates, nsize == 0 frees. */
static void* pool_new_block(ir_lua_pool_t* pool, size_t size) {
  return ir_lua_pool_alloc(pool, NULL, 0, size);
}

static void pool_free_block(ir_lua_pool_t* pool, void* block, size_t size) {
  ir_lua_pool_alloc(pool, block, size, 0);
}

/* A block keeps its contents when it grows, as Lua requires of realloc. */
static void test_grow_keeps_contents(void) {
  ir_lua_pool_t* pool = ir_lua_pool_new();
  char* block = pool_new_block(pool, 16);
  memcpy(block, "icmprun-runtime", 16);
  block = ir_lua_pool_alloc(pool, block, 16, 4096);
  CHECK(block != NULL);
  CHECK_EQ_STR(block, "icmprun-runtime");
  pool_free_block(pool, block, 4096);
  ir_lua_pool_free(pool);
}

#ifdef ICMPRUN_SANITIZE
/* In a sanitizer build a freed small block goes back to malloc at once, so
 * that ASan poisons it and reports any use after the free; a pool would keep
 * it addressable and hide the bug. */
static void test_freed_block_is_poisoned(void) {
  ir_lua_pool_t* pool = ir_lua_pool_new();
  for (size_t size = 16; size <= 512; size *= 2) {
    void* block = pool_new_block(pool, size);
    CHECK(!__asan_address_is_poisoned(block));
    pool_free_block(pool, block, size);
    CHECK(__asan_address_is_poisoned(block));
  }
  ir_lua_pool_free(pool);
}
#else
/* Otherwise a freed small block is handed out again for its own size. */
static void test_freed_block_is_reused(void) {
  ir_lua_pool_t* pool = ir_lua_pool_new();
  void* block = pool_new_block(pool, 64);
  pool_free_block(pool, block, 64);
  CHECK(pool_new_block(pool, 64) == block);
  pool_free_block(pool, block, 64);
  ir_lua_pool_free(pool);
}
#endif

int main(void) {
  test_grow_keeps_contents();
#ifdef ICMPRUN_SANITIZE
  test_freed_block_is_poisoned();
#else
  test_freed_block_is_reused();
#endif
  return check_summary();
}
