/* SPDX-License-Identifier: MIT */
/* Intrusive binary min-heap of deadlines, ordered by (key, tie). */
#include "heap.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#define IR_HEAP_INITIAL_CAP 16

/* Capacity stays a power of two no larger than this, so every index fits in a
 * uint32_t below IR_HEAP_NONE and 2 * index + 2 cannot overflow. */
#define IR_HEAP_MAX_CAP ((uint32_t)1 << 31)

static bool node_less(const ir_heap_node_t* a, const ir_heap_node_t* b) {
  if (a->key != b->key)
    return a->key < b->key;
  return a->tie < b->tie;
}

static void place(ir_heap_t* heap, ir_heap_node_t* node, uint32_t i) {
  heap->nodes[i] = node;
  node->index = i;
}

/* Moves the node at i towards the root until its parent is not larger. */
static void sift_up(ir_heap_t* heap, uint32_t i) {
  ir_heap_node_t* node = heap->nodes[i];
  uint32_t parent;

  while (i > 0) {
    parent = (i - 1) / 2;
    if (!node_less(node, heap->nodes[parent]))
      break;
    place(heap, heap->nodes[parent], i);
    i = parent;
  }
  place(heap, node, i);
}

/* Moves the node at i towards the leaves until no child is smaller. */
static void sift_down(ir_heap_t* heap, uint32_t i) {
  ir_heap_node_t* node = heap->nodes[i];
  uint32_t child;

  for (;;) {
    child = 2 * i + 1;
    if (child >= heap->len)
      break;
    if (child + 1 < heap->len && node_less(heap->nodes[child + 1], heap->nodes[child]))
      child++;
    if (!node_less(heap->nodes[child], node))
      break;
    place(heap, heap->nodes[child], i);
    i = child;
  }
  place(heap, node, i);
}

/* Takes out the node at slot i and fills the hole with the last node. */
static void remove_at(ir_heap_t* heap, uint32_t i) {
  ir_heap_node_t* node = heap->nodes[i];
  ir_heap_node_t* last;

  heap->len--;
  node->index = IR_HEAP_NONE;
  if (i == heap->len)
    return;

  /* The last node may belong above or below the hole, depending on which
   * subtree it came from, so try both directions. */
  last = heap->nodes[heap->len];
  place(heap, last, i);
  if (i > 0 && node_less(last, heap->nodes[(i - 1) / 2]))
    sift_up(heap, i);
  else
    sift_down(heap, i);
}

void ir_heap_init(ir_heap_t* heap) {
  heap->nodes = NULL;
  heap->len = 0;
  heap->cap = 0;
}

void ir_heap_free(ir_heap_t* heap) {
  uint32_t i;

  /* The nodes outlive the heap, so they are marked as being in no heap. */
  for (i = 0; i < heap->len; i++)
    heap->nodes[i]->index = IR_HEAP_NONE;
  free(heap->nodes);
  ir_heap_init(heap);
}

int ir_heap_push(ir_heap_t* heap, ir_heap_node_t* node) {
  ir_heap_node_t** nodes;
  uint32_t cap;
  size_t bytes;

  if (heap->len == heap->cap) {
    if (heap->cap >= IR_HEAP_MAX_CAP)
      return -ENOMEM;
    cap = heap->cap == 0 ? IR_HEAP_INITIAL_CAP : heap->cap * 2;
    /* Only a 32-bit size_t can overflow here; the division catches it. */
    bytes = (size_t)cap * sizeof(*nodes);
    if (bytes / sizeof(*nodes) != cap)
      return -ENOMEM;
    nodes = realloc(heap->nodes, bytes);
    if (nodes == NULL)
      return -ENOMEM;
    heap->nodes = nodes;
    heap->cap = cap;
  }

  heap->nodes[heap->len] = node;
  heap->len++;
  sift_up(heap, heap->len - 1);
  return 0;
}

ir_heap_node_t* ir_heap_min(const ir_heap_t* heap) {
  return heap->len == 0 ? NULL : heap->nodes[0];
}

ir_heap_node_t* ir_heap_pop(ir_heap_t* heap) {
  ir_heap_node_t* node;

  if (heap->len == 0)
    return NULL;
  node = heap->nodes[0];
  remove_at(heap, 0);
  return node;
}

void ir_heap_remove(ir_heap_t* heap, ir_heap_node_t* node) {
  uint32_t i = node->index;

  /* Checking the slot, not just the index, makes removal safe for a node that
   * was never initialised to IR_HEAP_NONE (a zeroed struct says index 0) or
   * that sits in another heap. */
  if (i >= heap->len || heap->nodes[i] != node)
    return;
  remove_at(heap, i);
}
