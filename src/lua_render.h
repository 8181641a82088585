/* SPDX-License-Identifier: MIT */
/* A rendered scrape's text as a Lua object, and what the HTTP server needs
 * of it to serve the chunks without copying them (src/lua_httpd.c). */
#ifndef ICMPRUN_LUA_RENDER_H
#define ICMPRUN_LUA_RENDER_H

#include <lua.h>
#include <stdbool.h>

#include "background.h"
#include "expo.h"

/* The metatable of `job:text(kind)`'s userdata (src/lua_render.c). */
#define IR_RENDER_TEXT_META "icmprun.render.text"

/* A text moved out of its render job: the chunks, which nothing writes any
 * more, and who still needs them. The userdata points at it; a response
 * body that reads the chunks holds it (`holds`). It is freed when the
 * userdata was closed (`closed`: close(), __close or __gc) and the last
 * hold is released, whichever comes last, so that a text closed while a
 * client still reads it is never read after it is freed. Loop thread only. */
typedef struct ir_render_text_s {
  ir_expo_text_t text;
  unsigned int holds;
  bool closed;
  /* Its runtime, whose background thread frees the chunks: tens of
   * megabytes handed back to the kernel cost the loop milliseconds. */
  struct ir_lua_runtime_s* rt;
  ir_background_item_t free_item;
} ir_render_text_t;

/* The text of the value at idx if it is a render text userdata (NULL if it
 * is anything else); raises if that text is closed. The caller that keeps
 * a pointer into its chunks takes a hold with ir_render_text_hold. */
ir_render_text_t* ir_render_text_test(lua_State* L, int idx);
void ir_render_text_hold(ir_render_text_t* t);
/* Releases a hold: frees the text if it was the last and it is closed. */
void ir_render_text_release(ir_render_text_t* t);

#endif
