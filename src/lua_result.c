/* SPDX-License-Identifier: MIT */
/* Result tables, as ping and sweep hand them to scripts. */
#include <lauxlib.h>
#include <errno.h>
#include <lua.h>
#include <stdio.h>
#include <string.h>

#include "lua_runtime.h"
#include "packet.h"

#define IR_KEYS "icmprun.keys"

/* The field names and status strings, interned once and kept in an array in
 * the registry: a sweep builds a table per result, and rawset with a ready
 * string skips lua_setfield's lookup of the C string each time. */
static const char* const ir__key_names[] = {
    [IR_KEY_STATUS] = "status",
    [IR_KEY_ADDR] = "addr",
    [IR_KEY_TARGET] = "target",
    [IR_KEY_N] = "n",
    [IR_KEY_SEQ] = "seq",
    [IR_KEY_FROM] = "from",
    [IR_KEY_RTT] = "rtt",
    [IR_KEY_BYTES] = "bytes",
    [IR_KEY_TTL] = "ttl",
    [IR_KEY_ICMP_TYPE] = "icmp_type",
    [IR_KEY_ICMP_CODE] = "icmp_code",
    [IR_KEY_ERR] = "err",
    [IR_KEY_ATTEMPTS] = "attempts",
    [IR_KEY_CODE] = "code",
    [IR_KEY_CORRUPT_OFFSET] = "corrupt_offset",
    [IR_KEY_TX_STAMP] = "tx_stamp",
};

void ir_lua_push_keys(lua_State* L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, IR_KEYS) == LUA_TTABLE) { /* keys */
    return;
  }
  lua_pop(L, 1);                                 /* */
  lua_createtable(L, IR_KEY_STATUS_BASE + 5, 0); /* keys */
  for (int i = IR_KEY_STATUS; i < IR_KEY_STATUS_BASE; i++) {
    lua_pushstring(L, ir__key_names[i]); /* keys name */
    lua_rawseti(L, -2, i);               /* keys */
  }
  for (int status = IR_STATUS_REPLY; status <= IR_STATUS_ERROR; status++) {
    lua_pushstring(L, ir_status_name((ir_status_t)status));
    lua_rawseti(L, -2, IR_KEY_STATUS_BASE + status);
  }
  lua_pushvalue(L, -1);                        /* keys keys */
  lua_setfield(L, LUA_REGISTRYINDEX, IR_KEYS); /* keys */
}

/* Every setter pushes the key before the value, so that rawset finds them in
 * order with no rotation of the stack. */
void ir_lua_set_integer(lua_State* L, int keys, int key, lua_Integer value) {
  lua_rawgeti(L, keys, key); /* t key */
  lua_pushinteger(L, value); /* t key value */
  lua_rawset(L, -3);         /* t */
}

void ir_lua_push_addr(lua_State* L, const ir_addr_t* addr) {
  char text[IR_ADDR_STRLEN];
  ir_addr_format(addr, text, sizeof(text));
  lua_pushlstring(L, text, strlen(text)); /* text */
}

static void ir__set_addr(lua_State* L, int keys, int key, const ir_addr_t* addr) {
  lua_rawgeti(L, keys, key); /* t key */
  ir_lua_push_addr(L, addr); /* t key text */
  lua_rawset(L, -3);         /* t */
}

static void ir__set_string(lua_State* L, int keys, int key, const char* text) {
  lua_rawgeti(L, keys, key); /* t key */
  lua_pushstring(L, text);   /* t key text */
  lua_rawset(L, -3);         /* t */
}

void ir_lua_push_result(lua_State* L, int keys, const ir_result_t* r,
                        int extra_fields) {
  keys = lua_absindex(L, keys);
  lua_createtable(L, 0, 8 + extra_fields);                   /* t */
  lua_rawgeti(L, keys, IR_KEY_STATUS);                       /* t key */
  lua_rawgeti(L, keys, IR_KEY_STATUS_BASE + (int)r->status); /* t key status */
  lua_rawset(L, -3);                                         /* t */
  lua_rawgeti(L, keys, IR_KEY_ADDR);                         /* t key */
  ir_lua_push_addr(L, &r->addr);                             /* t key addr */
  if (r->has_from && ir_addr_equal(&r->from, &r->addr)) {
    /* The usual answer comes from the probed address: one string for both. */
    lua_rawgeti(L, keys, IR_KEY_FROM); /* t key addr fkey */
    lua_pushvalue(L, -2);              /* t key addr fkey addr */
    lua_rawset(L, -5);                 /* t key addr */
  }
  lua_rawset(L, -3); /* t */
  ir_lua_set_integer(L, keys, IR_KEY_SEQ, r->seq);
  if (r->has_from && !ir_addr_equal(&r->from, &r->addr)) {
    ir__set_addr(L, keys, IR_KEY_FROM, &r->from);
  }
  /* An ICMP error is an answer too: its RTT is the router's, from the
   * kernel's receive timestamp of the error, as a reply's is. */
  if (r->status == IR_STATUS_REPLY || r->icmp_type >= 0) {
    lua_rawgeti(L, keys, IR_KEY_RTT); /* t key */
    lua_pushnumber(L, r->rtt_ms);     /* t key rtt */
    lua_rawset(L, -3);                /* t */
  }
  if (r->status == IR_STATUS_REPLY) {
    ir_lua_set_integer(L, keys, IR_KEY_BYTES, r->bytes);
  }
  /* Where the send time of a measured round trip came from: "kernel" (the
   * kernel's send timestamp) or "user" (our clock, before the send call). */
  if (r->status == IR_STATUS_REPLY || r->icmp_type >= 0) {
    ir__set_string(L, keys, IR_KEY_TX_STAMP, r->tx_kernel ? "kernel" : "user");
  }
  if (r->ttl >= 0) {
    ir_lua_set_integer(L, keys, IR_KEY_TTL, r->ttl);
  }
  if (r->icmp_type >= 0) {
    ir_lua_set_integer(L, keys, IR_KEY_ICMP_TYPE, r->icmp_type);
    ir_lua_set_integer(L, keys, IR_KEY_ICMP_CODE, r->icmp_code);
  }
  if (r->corrupt_offset >= 0) {
    ir_lua_set_integer(L, keys, IR_KEY_CORRUPT_OFFSET, r->corrupt_offset);
  }
  /* err says what went wrong: the ICMP error's meaning when one came back,
   * otherwise the system's message for the failed send, or the damage to
   * the only answer. code names it for programs: the errno the kernel gave
   * (for an ICMP error, the one it maps that error to). */
  if (r->icmp_type >= 0) {
    ir__set_string(L, keys, IR_KEY_ERR,
                   ir_icmp_describe(r->addr.family, r->icmp_type, r->icmp_code));
  } else if (r->error == -EBADMSG && r->corrupt_offset >= 0) {
    char text[96];
    snprintf(text, sizeof(text),
             "the answer's payload differs from what was sent at byte %d",
             (int)r->corrupt_offset);
    ir__set_string(L, keys, IR_KEY_ERR, text);
  } else if (r->error != 0) {
    ir__set_string(L, keys, IR_KEY_ERR, uv_strerror(r->error));
  }
  if (r->error != 0) {
    ir__set_string(L, keys, IR_KEY_CODE, ir_error_name(r->error));
  }
}
