/* SPDX-License-Identifier: MIT */
/* Min-heap of deadlines, intrusive like libuv's timer heap. Pure code, no I/O. */
#ifndef ICMPRUN_HEAP_H
#define ICMPRUN_HEAP_H

#include <stdint.h>

/* Embedded in whatever has a deadline (a probe). Ordered by `key`, then by `tie`
 * (a start counter), so equal deadlines come out in the order they went in.
 * `index` is the node's slot while it is in a heap and IR_HEAP_NONE otherwise. */
typedef struct ir_heap_node_s {
  uint64_t key;
  uint64_t tie;
  uint32_t index;
} ir_heap_node_t;

#define IR_HEAP_NONE UINT32_MAX

/* The heap owns only its array of node pointers, never the nodes themselves. */
typedef struct ir_heap_s {
  ir_heap_node_t** nodes;
  uint32_t len;
  uint32_t cap;
} ir_heap_t;

void ir_heap_init(ir_heap_t* heap);
void ir_heap_free(ir_heap_t* heap);

/* Adds a node that is in no heap. Returns 0, or -ENOMEM (heap unchanged). */
int ir_heap_push(ir_heap_t* heap, ir_heap_node_t* node);

/* The smallest node, or NULL when the heap is empty. */
ir_heap_node_t* ir_heap_min(const ir_heap_t* heap);

/* Removes and returns the smallest node, or NULL when empty. */
ir_heap_node_t* ir_heap_pop(ir_heap_t* heap);

/* Removes a node that is in this heap; a node in no heap is left alone. */
void ir_heap_remove(ir_heap_t* heap, ir_heap_node_t* node);

#endif
