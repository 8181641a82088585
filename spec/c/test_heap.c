/* SPDX-License-Identifier: MIT */
/* Unit tests for ir_heap: ordering, FIFO ties, removal, and index bookkeeping. */
#include "heap.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* A fixed-seed PRNG (splitmix64), so every run tests the same sequences. */
static uint64_t next_random(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static bool node_before(const ir_heap_node_t* a, const ir_heap_node_t* b) {
  return a->key < b->key || (a->key == b->key && a->tie < b->tie);
}

static int compare_nodes(const void* pa, const void* pb) {
  const ir_heap_node_t* a = *(ir_heap_node_t* const*)pa;
  const ir_heap_node_t* b = *(ir_heap_node_t* const*)pb;
  if (node_before(a, b))
    return -1;
  if (node_before(b, a))
    return 1;
  return 0;
}

/* Every parent is no larger than its children and every node knows its slot. */
static bool heap_is_valid(const ir_heap_t* heap) {
  uint32_t i;

  if (heap->len > heap->cap)
    return false;
  for (i = 0; i < heap->len; i++) {
    if (heap->nodes[i]->index != i)
      return false;
    if (i > 0 && node_before(heap->nodes[i], heap->nodes[(i - 1) / 2]))
      return false;
  }
  return true;
}

static void init_node(ir_heap_node_t* node, uint64_t key, uint64_t tie) {
  node->key = key;
  node->tie = tie;
  node->index = IR_HEAP_NONE;
}

static void test_empty(void) {
  ir_heap_t heap;
  ir_heap_node_t node;

  ir_heap_init(&heap);
  CHECK(ir_heap_min(&heap) == NULL);
  CHECK(ir_heap_pop(&heap) == NULL);
  CHECK_EQ_INT(heap.len, 0);

  /* Removing a node that is in no heap changes nothing. */
  init_node(&node, 1, 1);
  ir_heap_remove(&heap, &node);
  CHECK_EQ_INT(heap.len, 0);
  CHECK_EQ_INT(node.index, IR_HEAP_NONE);

  ir_heap_free(&heap);
  ir_heap_free(&heap);
  CHECK(heap.nodes == NULL);
}

/* Pushes thousands of random keys (with many duplicates) and pops them all:
 * the order must match a sort by (key, tie). */
static void test_random_order(void) {
  enum { N = 5000 };
  static ir_heap_node_t nodes[N];
  static ir_heap_node_t* sorted[N];
  ir_heap_t heap;
  ir_heap_node_t* node;
  uint64_t rng = 42;
  int wrong = 0;
  int i;

  ir_heap_init(&heap);
  for (i = 0; i < N; i++) {
    init_node(&nodes[i], next_random(&rng) % 1000, (uint64_t)i);
    sorted[i] = &nodes[i];
    CHECK_EQ_INT(ir_heap_push(&heap, &nodes[i]), 0);
  }
  CHECK_EQ_INT(heap.len, N);
  CHECK(heap_is_valid(&heap));
  qsort(sorted, N, sizeof(sorted[0]), compare_nodes);

  for (i = 0; i < N; i++) {
    if (ir_heap_min(&heap) != sorted[i])
      wrong++;
    node = ir_heap_pop(&heap);
    if (node != sorted[i] || node->index != IR_HEAP_NONE)
      wrong++;
  }
  CHECK_EQ_INT(wrong, 0);
  CHECK_EQ_INT(heap.len, 0);
  CHECK(ir_heap_pop(&heap) == NULL);
  ir_heap_free(&heap);
}

/* Interleaves pushes, pops and removals against a reference set, checking the
 * heap's shape after every step. */
static void test_random_ops(void) {
  enum { N = 2000, OPS = 40000 };
  static ir_heap_node_t nodes[N];
  static bool in_heap[N];
  ir_heap_t heap;
  ir_heap_node_t* want;
  ir_heap_node_t* got;
  uint64_t rng = 7;
  uint64_t tie = 0;
  uint32_t count = 0;
  int bad_shape = 0;
  int bad_min = 0;
  int op;
  int i;
  int k;

  ir_heap_init(&heap);
  for (i = 0; i < N; i++)
    init_node(&nodes[i], 0, 0);
  memset(in_heap, 0, sizeof(in_heap));

  for (op = 0; op < OPS; op++) {
    k = (int)(next_random(&rng) % N);
    switch (next_random(&rng) % 3) {
      case 0:
        if (in_heap[k])
          break;
        nodes[k].key = next_random(&rng) % 500;
        nodes[k].tie = tie++;
        CHECK_EQ_INT(ir_heap_push(&heap, &nodes[k]), 0);
        in_heap[k] = true;
        count++;
        break;
      case 1:
        /* Removing is also tried on nodes that are not in the heap. */
        ir_heap_remove(&heap, &nodes[k]);
        if (in_heap[k])
          count--;
        in_heap[k] = false;
        CHECK_EQ_INT(nodes[k].index, IR_HEAP_NONE);
        break;
      default:
        want = NULL;
        for (i = 0; i < N; i++) {
          if (in_heap[i] && (want == NULL || node_before(&nodes[i], want)))
            want = &nodes[i];
        }
        got = ir_heap_pop(&heap);
        if (got != want)
          bad_min++;
        if (got != NULL) {
          in_heap[got - nodes] = false;
          count--;
        }
        break;
    }
    if (heap.len != count || !heap_is_valid(&heap))
      bad_shape++;
  }
  CHECK_EQ_INT(bad_shape, 0);
  CHECK_EQ_INT(bad_min, 0);

  /* Freeing a non-empty heap marks its nodes as being in no heap. */
  ir_heap_free(&heap);
  for (i = 0; i < N; i++) {
    if (nodes[i].index != IR_HEAP_NONE)
      bad_shape++;
  }
  CHECK_EQ_INT(bad_shape, 0);
}

static void test_fifo_ties(void) {
  enum { N = 100 };
  static ir_heap_node_t nodes[N];
  ir_heap_t heap;
  ir_heap_node_t* node;
  int i;

  ir_heap_init(&heap);
  for (i = 0; i < N; i++) {
    init_node(&nodes[i], i % 2 == 0 ? 5 : 9, (uint64_t)i);
    CHECK_EQ_INT(ir_heap_push(&heap, &nodes[i]), 0);
  }
  /* All key-5 nodes in push order, then all key-9 nodes in push order. */
  for (i = 0; i < N; i++) {
    node = ir_heap_pop(&heap);
    CHECK(node == &nodes[i < N / 2 ? 2 * i : 2 * (i - N / 2) + 1]);
  }
  ir_heap_free(&heap);
}

static void test_remove(void) {
  enum { N = 1000 };
  static ir_heap_node_t nodes[N];
  static ir_heap_node_t* rest[N];
  ir_heap_t heap;
  ir_heap_t other;
  ir_heap_node_t stranger;
  ir_heap_node_t zeroed;
  uint64_t rng = 99;
  int nrest = 0;
  int wrong = 0;
  int i;

  ir_heap_init(&heap);
  for (i = 0; i < N; i++) {
    init_node(&nodes[i], next_random(&rng) % 100, (uint64_t)i);
    CHECK_EQ_INT(ir_heap_push(&heap, &nodes[i]), 0);
  }

  /* Remove every third node, wherever it sits, plus the root and the last. */
  ir_heap_remove(&heap, heap.nodes[0]);
  ir_heap_remove(&heap, heap.nodes[heap.len - 1]);
  for (i = 0; i < N; i += 3)
    ir_heap_remove(&heap, &nodes[i]);
  CHECK(heap_is_valid(&heap));

  for (i = 0; i < N; i++) {
    if (nodes[i].index != IR_HEAP_NONE)
      rest[nrest++] = &nodes[i];
  }
  CHECK_EQ_INT(heap.len, nrest);
  qsort(rest, (size_t)nrest, sizeof(rest[0]), compare_nodes);

  /* A node in no heap, a zeroed node claiming slot 0, and a node in another
   * heap are all left alone. */
  init_node(&stranger, 0, 0);
  ir_heap_remove(&heap, &stranger);
  memset(&zeroed, 0, sizeof(zeroed));
  ir_heap_remove(&heap, &zeroed);
  CHECK_EQ_INT(heap.len, nrest);
  ir_heap_init(&other);
  CHECK_EQ_INT(ir_heap_push(&other, &stranger), 0);
  ir_heap_remove(&heap, &stranger);
  CHECK_EQ_INT(stranger.index, 0);
  CHECK_EQ_INT(heap.len, nrest);
  CHECK(heap_is_valid(&heap));

  /* Removing a popped node again is a no-op too. */
  ir_heap_remove(&heap, &nodes[0]);
  CHECK_EQ_INT(heap.len, nrest);

  for (i = 0; i < nrest; i++) {
    if (ir_heap_pop(&heap) != rest[i])
      wrong++;
  }
  CHECK_EQ_INT(wrong, 0);
  CHECK(ir_heap_min(&heap) == NULL);

  ir_heap_free(&other);
  CHECK_EQ_INT(stranger.index, IR_HEAP_NONE);
  ir_heap_free(&heap);
}

/* Extreme keys and a removed node that goes back in. */
static void test_reuse_and_extremes(void) {
  ir_heap_t heap;
  ir_heap_node_t a;
  ir_heap_node_t b;
  ir_heap_node_t c;

  ir_heap_init(&heap);
  init_node(&a, UINT64_MAX, 0);
  init_node(&b, 0, UINT64_MAX);
  init_node(&c, 0, 0);
  CHECK_EQ_INT(ir_heap_push(&heap, &a), 0);
  CHECK_EQ_INT(ir_heap_push(&heap, &b), 0);
  CHECK_EQ_INT(ir_heap_push(&heap, &c), 0);
  CHECK(ir_heap_min(&heap) == &c);

  ir_heap_remove(&heap, &c);
  CHECK(ir_heap_min(&heap) == &b);
  c.key = UINT64_MAX;
  c.tie = 1;
  CHECK_EQ_INT(ir_heap_push(&heap, &c), 0);
  CHECK(ir_heap_pop(&heap) == &b);
  CHECK(ir_heap_pop(&heap) == &a);
  CHECK(ir_heap_pop(&heap) == &c);
  CHECK(ir_heap_pop(&heap) == NULL);
  ir_heap_free(&heap);
}

int main(void) {
  test_empty();
  test_random_order();
  test_random_ops();
  test_fifo_ties();
  test_remove();
  test_reuse_and_extremes();
  return check_summary();
}
