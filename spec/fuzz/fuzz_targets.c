/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the sweep target parser, addresses and walks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

/* Parses the input as a target text. A block must give addresses at its
 * ends without trouble, and its walk must start; a parsed address must format
 * and parse back to itself. */
int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  char* text = malloc(size + 1);
  if (text == NULL) {
    return 0;
  }
  memcpy(text, data, size);
  text[size] = '\0';

  ir_block_t block;
  char error[128];
  ir_target_kind_t kind = ir_target_parse(text, &block, error, sizeof(error));
  if (kind == IR_TARGET_INVALID && strlen(error) >= sizeof(error)) {
    abort();
  }
  if (kind == IR_TARGET_BLOCK) {
    if (block.count == 0) {
      abort();
    }
    ir_addr_t first, last;
    ir_block_address(&block, 0, &first);
    ir_block_address(&block, block.count - 1, &last);
    ir_walk_t walk;
    ir_walk_init(&walk, block.count, (size & 1) != 0, size);
    uint64_t index;
    for (int i = 0; i < 64 && ir_walk_next(&walk, &index); i++) {
      if (index >= block.count) {
        abort();
      }
    }
  }

  ir_addr_t addr, again;
  if (ir_addr_parse(text, &addr) == 0) {
    char formatted[IR_ADDR_STRLEN];
    ir_addr_format(&addr, formatted, sizeof(formatted));
    if (ir_addr_parse(formatted, &again) != 0 || !ir_addr_equal(&addr, &again)) {
      abort();
    }
  }
  free(text);
  return 0;
}
