/* SPDX-License-Identifier: MIT */
/* icmprun.httpd: libmicrohttpd on the loop, under every exporter listener.
 *
 * The daemon runs in MHD's external epoll mode: its epoll fd is watched by a
 * uv_poll_t and MHD_run is called when it is readable or when MHD's own
 * timeout (a uv_timer_t) passes, so serving shares icmprun's one loop and
 * thread with the probes. A request is handed to a Lua handler with a
 * `respond` object; a handler that answers later (a render in a task) leaves
 * the connection suspended (MHD_suspend_connection) until it does. A body
 * given as a list of Lua strings and render texts (lua_render.h) is read by
 * MHD from those strings and the texts' chunks, which a registry reference
 * keeps alive, and a hold on each text keeps from being freed by its
 * close(): clients given the same render share it, and nothing is copied.
 *
 * Ownership: the server userdata owns the daemon, the poll and the timer;
 * its close (or __gc) resumes suspended connections, stops the daemon and
 * closes the handles, whose close callbacks free the C block. A connection's
 * state is allocated on its first request callback and freed by MHD's
 * completion callback; the responder userdata only points at it, and is
 * told when it goes. Calls into Lua happen on the main thread under
 * lua_pcall with a traceback handler; an error goes to the server's
 * on_error function, never further. */
#include <crypt.h>
#include <lauxlib.h>
#include <lua.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#include <luv/luv.h>

#include "lua_render.h"
#include "lua_runtime.h"

#define IR_HTTPD_SERVER_MT "icmprun.httpd.server"
#define IR_HTTPD_RESPONDER_MT "icmprun.httpd.responder"
#define IR_HTTPD_BLOCK 65536
/* Bytes of response bodies handed to MHD in one MHD_run, over all
 * connections. MHD writes a ready connection until its socket refuses more,
 * which on loopback to a fast reader is never: a 28 MB scrape went out in
 * one call, holding the loop (and the probes due) for 30-40 ms. Past this
 * budget a connection is suspended until the loop's next turn, about a
 * third of a millisecond of loopback writing at a time. */
#define IR_HTTPD_RUN_BUDGET (256 * 1024)

typedef struct ir_httpd_conn_s ir_httpd_conn_t;

/* Owned by the server userdata; freed in the last handle's close callback. */
typedef struct ir_httpd_server_s {
  lua_State* L; /* The main thread. */
  struct MHD_Daemon* daemon;
  uv_poll_t poll;
  uv_timer_t timer;
  /* Runs MHD again on the loop's next turn, when it has work now (a
   * response to go on with, a connection paused for the byte budget). Not a
   * timer of 0 ms: libuv (1.44) runs a timer restarted at 0 from its own
   * callback again in the same turn, so the whole of a 28 MB scrape went
   * out before any probe due meanwhile. */
  uv_idle_t next_turn;
  int open_handles;
  int handler_ref;
  int on_error_ref;
  size_t max_body;
  ir_httpd_conn_t* suspended; /* Connections waiting for a response. */
  ir_httpd_conn_t* paused;    /* Connections past the run's byte budget. */
  size_t run_budget;          /* Body bytes this MHD_run may still read. */
  uint16_t port;
  bool closed;
  bool running; /* Inside MHD_run: a close waits until it returns. */
  bool close_pending;
} ir_httpd_server_t;

/* A response body: pieces of Lua strings and render texts' chunks, their
 * values anchored by a registry reference. Each text is also held (see
 * lua_render.h): a text closed while MHD still reads it is freed only when
 * this body is. */
typedef struct ir_httpd_body_s {
  ir_httpd_server_t* server;
  int table_ref;   /* The strings and texts. */
  int on_done_ref; /* Called once the response is freed; LUA_NOREF if none. */
  size_t count;
  const char** ptrs;
  size_t* lens;
  size_t total;
  ir_render_text_t** texts; /* Held until the body is freed. */
  size_t ntexts;
  ir_httpd_conn_t* conn; /* Its connection, once the response is set. */
  bool aborted;
} ir_httpd_body_t;

/* The Lua side of a connection's `respond`: NULL once the connection went. */
typedef struct ir_httpd_responder_s {
  ir_httpd_conn_t* conn;
} ir_httpd_responder_t;

/* Allocated on a connection's first request callback; freed on completion. */
struct ir_httpd_conn_s {
  ir_httpd_server_t* server;
  struct MHD_Connection* connection;
  char* body;
  size_t body_len;
  bool too_large;
  bool dispatched;
  bool answered; /* A response was queued: later ones are dropped. */
  bool suspended;
  unsigned int status;
  struct MHD_Response* response;
  ir_httpd_body_t* pending_body; /* Of `response`, until it is queued. */
  ir_httpd_body_t* sending;      /* The body set for it, until it is freed. */
  ir_httpd_responder_t* responder;
  ir_httpd_conn_t* next_suspended;
  bool paused; /* Suspended until the next turn: the run's budget is spent. */
  ir_httpd_conn_t* next_paused;
};

/* Calls the function under the registry reference with nargs values on the
 * stack of L, under lua_pcall with a traceback; an error goes to on_error.
 * Pops the arguments. Returns whether it ran without an error. */
static bool ir__httpd_call(ir_httpd_server_t* s, int ref, int nargs) {
  lua_State* L = s->L;
  int base = lua_gettop(L) - nargs;                     /* ... args */
  lua_getglobal(L, "debug");                            /* ... args debug */
  lua_getfield(L, -1, "traceback");                     /* ... args debug tb */
  lua_remove(L, -2);                                    /* ... args tb */
  lua_insert(L, base + 1);                              /* ... tb args */
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);               /* ... tb args fn */
  lua_insert(L, base + 2);                              /* ... tb fn args */
  bool ok = lua_pcall(L, nargs, 0, base + 1) == LUA_OK; /* ... tb [err] */
  if (!ok && s->on_error_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->on_error_ref); /* ... tb err f */
    lua_insert(L, -2);                                  /* ... tb f err */
    lua_pcall(L, 1, 0, 0);                              /* ... tb [err2] */
  }
  lua_settop(L, base); /* ... */
  return ok;
}

/* A hex digit's value, or -1. */
static int ir__hex(char c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

/* MHD's unescaping of the path and the query's arguments (%XX), in place,
 * except that %00 stays as it is: a NUL would end the string where Lua
 * takes it, so that "/metrics%00" would be served as "/metrics". */
static size_t ir__httpd_unescape(void* cls, struct MHD_Connection* connection,
                                 char* s) {
  (void)cls;
  (void)connection;
  char* out = s;
  for (const char* p = s; *p != '\0';) {
    int hi = p[0] == '%' ? ir__hex(p[1]) : -1;
    int lo = hi >= 0 ? ir__hex(p[2]) : -1;
    if (lo >= 0 && (hi | lo) != 0) {
      *out++ = (char)(hi * 16 + lo);
      p += 3;
    } else {
      *out++ = *p++;
    }
  }
  *out = '\0';
  return (size_t)(out - s);
}

static void ir__httpd_run(ir_httpd_server_t* s);
static void ir__httpd_close(ir_httpd_server_t* s);
static void ir__httpd_resume_paused(ir_httpd_server_t* s);

static void ir__httpd_timer_cb(uv_timer_t* timer) {
  ir__httpd_run(timer->data);
}

static void ir__httpd_next_turn_cb(uv_idle_t* idle) {
  uv_idle_stop(idle);
  /* Only here, once a turn: a run for the poll or a timer within the same
   * turn leaves them paused, so no connection gets two budgets a turn. */
  ir__httpd_resume_paused(idle->data);
  ir__httpd_run(idle->data);
}

static void ir__httpd_poll_cb(uv_poll_t* poll, int status, int events) {
  (void)status;
  (void)events;
  ir__httpd_run(poll->data);
}

/* Resumes the connections paused for the byte budget. */
static void ir__httpd_resume_paused(ir_httpd_server_t* s) {
  while (s->paused != NULL) {
    ir_httpd_conn_t* c = s->paused;
    s->paused = c->next_paused;
    c->paused = false;
    c->next_paused = NULL;
    MHD_resume_connection(c->connection);
  }
}

static void ir__httpd_unlink_paused(ir_httpd_conn_t* c) {
  ir_httpd_conn_t** p = &c->server->paused;
  while (*p != NULL && *p != c) {
    p = &(*p)->next_paused;
  }
  if (*p == c) {
    *p = c->next_paused;
  }
  c->paused = false;
  c->next_paused = NULL;
}

/* Lets MHD do what its sockets are ready for, at most IR_HTTPD_RUN_BUDGET
 * bytes of bodies, then arms the timer: for the next turn while
 * connections wait for more budget, else for the time MHD asks to be
 * called again (connection timeouts). */
static void ir__httpd_run(ir_httpd_server_t* s) {
  if (s->daemon == NULL) {
    return;
  }
  s->run_budget = IR_HTTPD_RUN_BUDGET;
  s->running = true;
  MHD_run(s->daemon);
  s->running = false;
  if (s->close_pending) {
    ir__httpd_close(s); /* A handler closed the server meanwhile. */
    return;
  }
  MHD_UNSIGNED_LONG_LONG ms = 0;
  uv_timer_stop(&s->timer);
  bool has_timeout = MHD_get_timeout(s->daemon, &ms) == MHD_YES;
  if (s->paused != NULL || (has_timeout && ms == 0)) {
    uv_idle_start(&s->next_turn, ir__httpd_next_turn_cb);
  } else if (has_timeout) {
    uv_timer_start(&s->timer, ir__httpd_timer_cb, ms, 0);
  }
}

/* MHD's content reader: copies from the pieces at `pos`. */
static ssize_t ir__httpd_read(void* cls, uint64_t pos, char* buf, size_t max) {
  ir_httpd_body_t* b = cls;
  if (b->aborted) {
    return MHD_CONTENT_READER_END_WITH_ERROR;
  }
  ir_httpd_server_t* s = b->server;
  ir_httpd_conn_t* c = b->conn;
  if (s->running && s->run_budget == 0 && c != NULL) {
    /* This turn's budget is spent: no data now, and the connection waits
     * for the next turn (MHD's pattern for a reader with nothing ready;
     * MHD may ask again before it notices the suspension). */
    if (!c->paused) {
      c->paused = true;
      c->next_paused = s->paused;
      s->paused = c;
      MHD_suspend_connection(c->connection);
    }
    return 0;
  }
  size_t copied = 0;
  uint64_t offset = 0;
  for (size_t i = 0; i < b->count && copied < max; i++) {
    uint64_t end = offset + b->lens[i];
    if (pos + copied < end) {
      size_t from = (size_t)(pos + copied - offset);
      size_t n = b->lens[i] - from;
      if (n > max - copied) {
        n = max - copied;
      }
      memcpy(buf + copied, b->ptrs[i] + from, n);
      copied += n;
    }
    offset = end;
  }
  s->run_budget = copied < s->run_budget ? s->run_budget - copied : 0;
  return copied > 0 ? (ssize_t)copied : MHD_CONTENT_READER_END_OF_STREAM;
}

/* Lets go of the texts and frees the body's arrays and itself. */
static void ir__httpd_body_release(ir_httpd_body_t* b) {
  for (size_t i = 0; i < b->ntexts; i++) {
    ir_render_text_release(b->texts[i]);
  }
  free(b->texts);
  free(b->ptrs);
  free(b->lens);
  free(b);
}

/* MHD frees a response: release the strings and texts, and tell the Lua
 * side. */
static void ir__httpd_body_free(void* cls) {
  ir_httpd_body_t* b = cls;
  if (b->conn != NULL && b->conn->sending == b) {
    b->conn->sending = NULL; /* Sent in full: the connection lives on. */
  }
  lua_State* L = b->server->L;
  luaL_unref(L, LUA_REGISTRYINDEX, b->table_ref);
  if (b->on_done_ref != LUA_NOREF) {
    int ref = b->on_done_ref;
    b->on_done_ref = LUA_NOREF;
    ir__httpd_call(b->server, ref, 0);
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
  }
  ir__httpd_body_release(b);
}

static void ir__httpd_unlink_suspended(ir_httpd_conn_t* c) {
  ir_httpd_conn_t** p = &c->server->suspended;
  while (*p != NULL && *p != c) {
    p = &(*p)->next_suspended;
  }
  if (*p == c) {
    *p = c->next_suspended;
  }
  c->next_suspended = NULL;
}

/* Builds the response for a connection from a body at index idx (a string,
 * a render text, or a list of them). Raises on a wrong body before it
 * allocates; NULL when out of memory. */
static ir_httpd_body_t* ir__httpd_body(lua_State* L, ir_httpd_server_t* s, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TSTRING ||
      luaL_testudata(L, idx, IR_RENDER_TEXT_META) != NULL) {
    lua_createtable(L, 1, 0); /* t */
    lua_pushvalue(L, idx);    /* t str */
    lua_rawseti(L, -2, 1);    /* t */
  } else {
    lua_pushvalue(L, idx); /* t */
  }
  /* First the pieces' count: a string is one, a text one per chunk. */
  size_t n = lua_rawlen(L, -1), npieces = 0, ntexts = 0;
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, -1, (lua_Integer)i + 1); /* t piece */
    ir_render_text_t* text = ir_render_text_test(L, -1);
    if (text != NULL) {
      for (ir_expo_chunk_t* c = text->text.head; c != NULL; c = c->next) {
        npieces++;
      }
      ntexts++;
    } else if (lua_type(L, -1) == LUA_TSTRING) {
      npieces++;
    } else {
      luaL_error(L, "respond: the body's pieces must be strings or render texts");
    }
    lua_pop(L, 1); /* t */
  }
  ir_httpd_body_t* b = calloc(1, sizeof(*b));
  if (b == NULL) {
    lua_pop(L, 1); /* */
    return NULL;
  }
  b->server = s;
  b->on_done_ref = LUA_NOREF;
  b->ptrs = calloc(npieces > 0 ? npieces : 1, sizeof(*b->ptrs));
  b->lens = calloc(npieces > 0 ? npieces : 1, sizeof(*b->lens));
  b->texts = calloc(ntexts > 0 ? ntexts : 1, sizeof(*b->texts));
  if (b->ptrs == NULL || b->lens == NULL || b->texts == NULL) {
    lua_pop(L, 1); /* */
    ir__httpd_body_release(b);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, -1, (lua_Integer)i + 1); /* t piece */
    ir_render_text_t* text = ir_render_text_test(L, -1);
    if (text != NULL) {
      /* Held: a close() meanwhile leaves the chunks to this body. */
      ir_render_text_hold(text);
      b->texts[b->ntexts++] = text;
      for (ir_expo_chunk_t* c = text->text.head; c != NULL; c = c->next) {
        b->ptrs[b->count] = c->data;
        b->lens[b->count++] = c->len;
        b->total += c->len;
      }
    } else {
      /* The string stays in t, which the registry keeps: the pointer holds. */
      b->ptrs[b->count] = lua_tolstring(L, -1, &b->lens[b->count]);
      b->total += b->lens[b->count++];
    }
    lua_pop(L, 1); /* t */
  }
  b->table_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* */
  return b;
}

/* respond(status, content_type, body[, opts]) */
static int ir__httpd_respond(lua_State* L) {
  ir_httpd_responder_t* r = luaL_checkudata(L, 1, IR_HTTPD_RESPONDER_MT);
  lua_Integer status = luaL_checkinteger(L, 2);
  const char* content_type = luaL_checkstring(L, 3);
  luaL_argexpected(L,
                   lua_type(L, 4) == LUA_TSTRING || lua_type(L, 4) == LUA_TTABLE ||
                       luaL_testudata(L, 4, IR_RENDER_TEXT_META) != NULL,
                   4, "string, render text or list of them");
  bool has_opts = lua_type(L, 5) == LUA_TTABLE;
  ir_httpd_conn_t* c = r->conn;
  if (c == NULL || c->response != NULL || c->server->closed ||
      c->server->close_pending) {
    /* Answered already, or gone: only the caller's on_done is due. */
    if (has_opts && lua_getfield(L, 5, "on_done") == LUA_TFUNCTION) {
      lua_pcall(L, 0, 0, 0);
    }
    return 0;
  }
  ir_httpd_body_t* b = ir__httpd_body(L, c->server, 4);
  if (b == NULL) {
    return luaL_error(L, "respond: out of memory");
  }
  struct MHD_Response* resp = MHD_create_response_from_callback(
      b->total, IR_HTTPD_BLOCK, ir__httpd_read, b, ir__httpd_body_free);
  if (resp == NULL) {
    ir__httpd_body_free(b);
    return luaL_error(L, "respond: cannot create the response");
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  if (has_opts) {
    if (lua_getfield(L, 5, "headers") == LUA_TTABLE) { /* headers */
      lua_pushnil(L);                                  /* headers k */
      while (lua_next(L, -2) != 0) {                   /* headers k v */
        if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
          MHD_add_response_header(resp, lua_tostring(L, -2), lua_tostring(L, -1));
        }
        lua_pop(L, 1); /* headers k */
      }
    }
    lua_pop(L, 1);                                        /* */
    if (lua_getfield(L, 5, "on_done") == LUA_TFUNCTION) { /* f */
      b->on_done_ref = luaL_ref(L, LUA_REGISTRYINDEX);    /* */
    } else {
      lua_pop(L, 1); /* */
    }
  }
  c->status = (unsigned int)status;
  c->response = resp;
  c->pending_body = b;
  c->sending = b;
  b->conn = c;
  if (c->suspended) {
    c->suspended = false;
    ir__httpd_unlink_suspended(c);
    MHD_resume_connection(c->connection);
    /* MHD takes a resumed connection up at its next MHD_run, which its epoll
     * fd does not always signal in external mode: run it on the next turn. */
    uv_idle_start(&c->server->next_turn, ir__httpd_next_turn_cb);
  }
  return 0;
}

/* abort(): a connection that has not taken its response is ended at the
 * next read of it (or by MHD's timeout if it never reads). */
static int ir__httpd_abort(lua_State* L) {
  ir_httpd_responder_t* r =
      luaL_checkudata(L, lua_upvalueindex(1), IR_HTTPD_RESPONDER_MT);
  ir_httpd_conn_t* c = r->conn;
  if (c != NULL && c->sending != NULL) {
    c->sending->aborted = true;
    /* A client that reads nothing is never asked for more, so the flag
     * alone would keep it (and the text its response holds) until the
     * connection's timeout: shorten that to a second. */
    MHD_set_connection_option(c->connection, MHD_CONNECTION_OPTION_TIMEOUT,
                              (unsigned int)1);
  }
  return 0;
}

static int ir__httpd_responder_gc(lua_State* L) {
  ir_httpd_responder_t* r = luaL_checkudata(L, 1, IR_HTTPD_RESPONDER_MT);
  if (r->conn != NULL) {
    r->conn->responder = NULL;
    r->conn = NULL;
  }
  return 0;
}

/* Collects the request's headers into the table on top of the stack, with
 * lower-case names and the bytes MHD parsed (by length, so that the checks
 * in icmprun.exporter.http see control bytes): a repeated name gets its values
 * joined with ", ", as RFC 9110 reads them, so that two different
 * Content-Length values are seen as such. Counts the lines in the integer
 * just below the table. */
static enum MHD_Result ir__httpd_header(void* cls, enum MHD_ValueKind kind,
                                        const char* key, size_t key_size,
                                        const char* value, size_t value_size) {
  (void)kind;
  lua_State* L = cls;
  lua_Integer lines = lua_tointeger(L, -2);
  lua_pushinteger(L, lines + 1); /* n headers n+1 */
  lua_replace(L, -3);            /* n+1 headers */
  luaL_Buffer name;
  luaL_buffinit(L, &name);
  for (size_t i = 0; i < key_size; i++) {
    char c = key[i];
    luaL_addchar(&name, (char)((c >= 'A' && c <= 'Z') ? c + 32 : c));
  }
  luaL_pushresult(&name);                 /* n headers name */
  lua_pushvalue(L, -1);                   /* n headers name name */
  if (lua_rawget(L, -3) == LUA_TSTRING) { /* n headers name old */
    lua_pushliteral(L, ", ");             /* n headers name old sep */
    lua_pushlstring(L, value ? value : "", value ? value_size : 0);
    lua_concat(L, 3); /* n headers name joined */
  } else {
    lua_pop(L, 1); /* n headers name */
    lua_pushlstring(L, value ? value : "", value ? value_size : 0);
  }
  lua_rawset(L, -3); /* n headers */
  return MHD_YES;
}

static enum MHD_Result ir__httpd_arg(void* cls, enum MHD_ValueKind kind,
                                     const char* key, const char* value) {
  (void)kind;
  lua_State* L = cls;
  if (lua_getfield(L, -1, key) == LUA_TNIL) { /* args old */
    lua_pop(L, 1);                            /* args */
    lua_pushstring(L, value ? value : "");    /* args value */
    lua_setfield(L, -2, key);                 /* args */
  } else {
    lua_pop(L, 1); /* args */
  }
  return MHD_YES;
}

/* Hands a whole request to the Lua handler; false if it raised. */
static bool ir__httpd_dispatch(ir_httpd_conn_t* c, const char* url, const char* method,
                               const char* version) {
  ir_httpd_server_t* s = c->server;
  lua_State* L = s->L;
  lua_createtable(L, 0, 8);       /* req */
  lua_pushstring(L, method);      /* req method */
  lua_setfield(L, -2, "method");  /* req */
  lua_pushstring(L, url);         /* req url */
  lua_setfield(L, -2, "path");    /* req */
  lua_pushstring(L, version);     /* req version */
  lua_setfield(L, -2, "version"); /* req */
  lua_pushinteger(L, 0);          /* req 0 */
  lua_newtable(L);                /* req 0 headers */
  MHD_get_connection_values_n(c->connection, MHD_HEADER_KIND, ir__httpd_header, L);
  lua_setfield(L, -3, "headers");      /* req n */
  lua_setfield(L, -2, "header_lines"); /* req */
  lua_newtable(L);                     /* req args */
  MHD_get_connection_values(c->connection, MHD_GET_ARGUMENT_KIND, ir__httpd_arg, L);
  lua_setfield(L, -2, "args");                             /* req */
  lua_pushlstring(L, c->body ? c->body : "", c->body_len); /* req body */
  lua_setfield(L, -2, "body");                             /* req */
  const union MHD_ConnectionInfo* info =
      MHD_get_connection_info(c->connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (info != NULL && info->client_addr != NULL) {
    char ip[64] = "";
    if (info->client_addr->sa_family == AF_INET6) {
      uv_ip6_name((const struct sockaddr_in6*)info->client_addr, ip, sizeof(ip));
    } else {
      uv_ip4_name((const struct sockaddr_in*)info->client_addr, ip, sizeof(ip));
    }
    lua_pushstring(L, ip);         /* req ip */
    lua_setfield(L, -2, "client"); /* req */
  }
  ir_httpd_responder_t* r = lua_newuserdatauv(L, sizeof(*r), 0); /* req r */
  r->conn = c;
  c->responder = r;
  luaL_setmetatable(L, IR_HTTPD_RESPONDER_MT);
  lua_pushvalue(L, -1);                        /* req r r */
  lua_pushcclosure(L, ir__httpd_abort, 1);     /* req r abort */
  lua_setfield(L, -3, "abort");                /* req r */
  return ir__httpd_call(s, s->handler_ref, 2); /* */
}

static enum MHD_Result ir__httpd_queue(ir_httpd_conn_t* c) {
  c->answered = true;
  enum MHD_Result ret = MHD_queue_response(c->connection, c->status, c->response);
  MHD_destroy_response(c->response); /* MHD keeps its own reference. */
  c->response = NULL;
  c->pending_body = NULL;
  return ret;
}

static enum MHD_Result ir__httpd_simple(struct MHD_Connection* connection,
                                        unsigned int status, const char* text) {
  struct MHD_Response* resp = MHD_create_response_from_buffer(strlen(text), (void*)text,
                                                              MHD_RESPMEM_PERSISTENT);
  if (resp == NULL) {
    return MHD_NO;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
  enum MHD_Result ret = MHD_queue_response(connection, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

static enum MHD_Result ir__httpd_access(void* cls, struct MHD_Connection* connection,
                                        const char* url, const char* method,
                                        const char* version, const char* upload_data,
                                        size_t* upload_size, void** con_cls) {
  ir_httpd_server_t* s = cls;
  ir_httpd_conn_t* c = *con_cls;
  if (c == NULL) {
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
      return MHD_NO;
    }
    c->server = s;
    c->connection = connection;
    *con_cls = c;
    /* A body announced over the limit is refused before it is waited for:
     * a client that sends none would otherwise hold the connection until
     * its timeout. (MHD has checked that the length is a number.) */
    const char* length = MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length != NULL &&
        (strlen(length) > 15 || strtoull(length, NULL, 10) > s->max_body)) {
      c->dispatched = true;
      c->answered = true;
      return ir__httpd_simple(connection, 413, "the body is over the limit\n");
    }
    return MHD_YES;
  }
  if (*upload_size > 0) {
    if (!c->too_large && c->body_len + *upload_size <= s->max_body) {
      char* grown = realloc(c->body, c->body_len + *upload_size);
      if (grown == NULL) {
        return MHD_NO;
      }
      memcpy(grown + c->body_len, upload_data, *upload_size);
      c->body = grown;
      c->body_len += *upload_size;
    } else {
      c->too_large = true;
    }
    *upload_size = 0;
    return MHD_YES;
  }
  if (c->response != NULL) {
    return ir__httpd_queue(c);
  }
  if (c->dispatched) {
    return MHD_NO; /* Resumed with nothing to send: cannot happen. */
  }
  c->dispatched = true;
  if (c->too_large) {
    return ir__httpd_simple(connection, 413, "the body is over the limit\n");
  }
  bool ok = ir__httpd_dispatch(c, url, method, version);
  if (c->response != NULL) {
    return ir__httpd_queue(c);
  }
  if (!ok) {
    c->answered = true;
    return ir__httpd_simple(connection, 500, "internal error\n");
  }
  if (s->close_pending) {
    return ir__httpd_simple(connection, 503, "the server is closing\n");
  }
  c->suspended = true;
  c->next_suspended = s->suspended;
  s->suspended = c;
  MHD_suspend_connection(connection);
  return MHD_YES;
}

static void ir__httpd_completed(void* cls, struct MHD_Connection* connection,
                                void** con_cls, enum MHD_RequestTerminationCode code) {
  (void)cls;
  (void)connection;
  (void)code;
  ir_httpd_conn_t* c = *con_cls;
  if (c == NULL) {
    return;
  }
  *con_cls = NULL;
  if (c->suspended) {
    ir__httpd_unlink_suspended(c);
  }
  if (c->paused) {
    ir__httpd_unlink_paused(c);
  }
  if (c->sending != NULL) {
    c->sending->conn = NULL; /* MHD may free the body after this. */
  }
  if (c->responder != NULL) {
    c->responder->conn = NULL;
  }
  if (c->response != NULL) {
    MHD_destroy_response(c->response); /* Frees the body, calling on_done. */
  }
  free(c->body);
  free(c);
}

static void ir__httpd_handle_closed(uv_handle_t* handle) {
  ir_httpd_server_t* s = handle->data;
  if (--s->open_handles == 0) {
    free(s);
  }
}

/* Stops the daemon: suspended connections are answered 503 first, as MHD
 * must not be stopped with any suspended. */
static void ir__httpd_close(ir_httpd_server_t* s) {
  if (s->closed) {
    return;
  }
  if (s->running) {
    s->close_pending = true;
    return;
  }
  s->closed = true;
  ir__httpd_resume_paused(s);
  while (s->suspended != NULL) {
    ir_httpd_conn_t* c = s->suspended;
    s->suspended = c->next_suspended;
    c->suspended = false;
    c->next_suspended = NULL;
    MHD_resume_connection(c->connection);
  }
  struct MHD_Daemon* d = s->daemon;
  s->daemon = NULL;
  if (d != NULL) {
    MHD_stop_daemon(d);
  }
  lua_State* L = s->L;
  luaL_unref(L, LUA_REGISTRYINDEX, s->handler_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, s->on_error_ref);
  s->handler_ref = s->on_error_ref = LUA_NOREF;
  if (s->open_handles > 0) {
    uv_close((uv_handle_t*)&s->poll, ir__httpd_handle_closed);
    uv_close((uv_handle_t*)&s->timer, ir__httpd_handle_closed);
    uv_close((uv_handle_t*)&s->next_turn, ir__httpd_handle_closed);
  } else {
    free(s);
  }
}

typedef struct ir_httpd_box_s {
  ir_httpd_server_t* s;
} ir_httpd_box_t;

static int ir__httpd_server_close(lua_State* L) {
  ir_httpd_box_t* box = luaL_checkudata(L, 1, IR_HTTPD_SERVER_MT);
  if (box->s != NULL) {
    ir_httpd_server_t* s = box->s;
    box->s = NULL;
    ir__httpd_close(s);
  }
  return 0;
}

static int ir__httpd_server_connections(lua_State* L) {
  ir_httpd_box_t* box = luaL_checkudata(L, 1, IR_HTTPD_SERVER_MT);
  unsigned int n = 0;
  if (box->s != NULL && box->s->daemon != NULL) {
    const union MHD_DaemonInfo* info =
        MHD_get_daemon_info(box->s->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    n = info != NULL ? info->num_connections : 0;
  }
  lua_pushinteger(L, n);
  return 1;
}

/* Reads opts[name] as a string (or NULL). */
static const char* ir__opt_string(lua_State* L, const char* name) {
  lua_getfield(L, 1, name);
  const char* v = lua_tostring(L, -1); /* Stays on the stack: opts owns it. */
  return v;
}

static lua_Integer ir__opt_integer(lua_State* L, const char* name, lua_Integer dflt) {
  lua_getfield(L, 1, name);
  lua_Integer v = luaL_optinteger(L, -1, dflt);
  lua_pop(L, 1);
  return v;
}

/* httpd.listen{host=, port= | fd=, handler=, on_error=, cert=, key=,
 *   connection_limit=, timeout=, max_body=} -> server, port, ip | nil, message
 * `fd` is a socket already listening (systemd's socket activation). */
static int ir__httpd_listen(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int top = lua_gettop(L);
  const char* host = ir__opt_string(L, "host");
  lua_Integer port = ir__opt_integer(L, "port", 0);
  const char* cert = ir__opt_string(L, "cert");
  const char* key = ir__opt_string(L, "key");
  lua_Integer listen_fd = ir__opt_integer(L, "fd", -1);
  luaL_argcheck(L, host != NULL || listen_fd >= 0, 1, "host or fd is required");
  luaL_argcheck(L, port >= 0 && port <= 65535, 1, "port must be 0..65535");
  luaL_argcheck(L, (cert == NULL) == (key == NULL), 1, "cert and key go together");
  lua_getfield(L, 1, "handler");
  luaL_argcheck(L, lua_isfunction(L, -1), 1, "handler must be a function");
  lua_pop(L, 1);

  struct sockaddr_storage addr;
  memset(&addr, 0, sizeof(addr));
  bool v6 = host != NULL && strchr(host, ':') != NULL;
  int rc = listen_fd >= 0 ? 0
           : v6           ? uv_ip6_addr(host, (int)port, (struct sockaddr_in6*)&addr)
                          : uv_ip4_addr(host, (int)port, (struct sockaddr_in*)&addr);
  if (rc != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "'%s' is not an IP address", host);
    return 2;
  }
  uv_loop_t* loop = luv_loop(L);
  ir_httpd_box_t* box = lua_newuserdatauv(L, sizeof(*box), 0); /* ... box */
  box->s = NULL;
  luaL_setmetatable(L, IR_HTTPD_SERVER_MT);
  ir_httpd_server_t* s = calloc(1, sizeof(*s));
  if (s == NULL) {
    return luaL_error(L, "httpd.listen: out of memory");
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD); /* ... box main */
  s->L = lua_tothread(L, -1);
  lua_pop(L, 1);                                         /* ... box */
  lua_getfield(L, 1, "handler");                         /* ... box handler */
  s->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);       /* ... box */
  if (lua_getfield(L, 1, "on_error") == LUA_TFUNCTION) { /* ... box f */
    s->on_error_ref = luaL_ref(L, LUA_REGISTRYINDEX);    /* ... box */
  } else {
    lua_pop(L, 1);
    s->on_error_ref = LUA_NOREF;
  }
  s->max_body = (size_t)ir__opt_integer(L, "max_body", 1024 * 1024);
  unsigned int flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
  if (v6) {
    flags |= strcmp(host, "::") == 0 ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
  }
  if (cert != NULL) {
    flags |= MHD_USE_TLS;
  }
  /* Where to listen (an address, or the socket given), and TLS. */
  struct MHD_OptionItem extra[4];
  int n = 0;
  if (listen_fd >= 0) {
    extra[n++] =
        (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, (intptr_t)listen_fd, NULL};
  } else {
    extra[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &addr};
  }
  if (cert != NULL) {
    extra[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, (void*)key};
    extra[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, (void*)cert};
  }
  extra[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
  s->daemon = MHD_start_daemon(
      flags, (uint16_t)port, NULL, NULL, ir__httpd_access, s,
      MHD_OPTION_NOTIFY_COMPLETED, ir__httpd_completed, s, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned int)ir__opt_integer(L, "connection_limit", 16384),
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)ir__opt_integer(L, "timeout", 10),
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024,
      MHD_OPTION_UNESCAPE_CALLBACK, ir__httpd_unescape, NULL, MHD_OPTION_ARRAY, extra,
      MHD_OPTION_END);
  if (s->daemon == NULL) {
    luaL_unref(L, LUA_REGISTRYINDEX, s->handler_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, s->on_error_ref);
    free(s);
    lua_settop(L, top);
    lua_pushnil(L);
    lua_pushfstring(
        L, "cannot listen on %s port %d%s", host != NULL ? host : "the socket given",
        (int)port,
        cert != NULL ? " (or the TLS key and certificate are not valid PEM)" : "");
    return 2;
  }
  const union MHD_DaemonInfo* info =
      MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
  const union MHD_DaemonInfo* bound =
      MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
  s->port = bound != NULL ? bound->port : (uint16_t)port;
  uv_timer_init(loop, &s->timer);
  s->timer.data = s;
  uv_idle_init(loop, &s->next_turn);
  s->next_turn.data = s;
  s->open_handles = 2;
  if (info == NULL || uv_poll_init(loop, &s->poll, info->epoll_fd) != 0) {
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    s->closed = true;
    uv_close((uv_handle_t*)&s->timer, ir__httpd_handle_closed);
    uv_close((uv_handle_t*)&s->next_turn, ir__httpd_handle_closed);
    lua_settop(L, top);
    lua_pushnil(L);
    lua_pushliteral(L, "cannot watch the HTTP daemon's epoll fd");
    return 2;
  }
  s->poll.data = s;
  s->open_handles = 3;
  uv_poll_start(&s->poll, UV_READABLE, ir__httpd_poll_cb);
  box->s = s;
  lua_pushinteger(L, s->port); /* ... box port */
  /* The address it listens on: given, or that of the socket given. */
  char ip[64] = "";
  struct sockaddr_storage name;
  socklen_t len = sizeof(name);
  const union MHD_DaemonInfo* lfd =
      MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_LISTEN_FD);
  if (lfd != NULL && getsockname(lfd->listen_fd, (struct sockaddr*)&name, &len) == 0) {
    if (name.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6*)&name, ip, sizeof(ip));
    } else if (name.ss_family == AF_INET) {
      uv_ip4_name((struct sockaddr_in*)&name, ip, sizeof(ip));
    }
  }
  lua_pushstring(L, ip); /* ... box port ip */
  return 3;
}

/* httpd.crypt_check(password, hash) -> boolean: crypt_r with the hash as
 * its setting (bcrypt's $2y$/$2b$, as exporter-toolkit's basic_auth_users). */
static int ir__httpd_crypt_check(lua_State* L) {
  const char* password = luaL_checkstring(L, 1);
  size_t hash_len;
  const char* hash = luaL_checklstring(L, 2, &hash_len);
  struct crypt_data* data = calloc(1, sizeof(*data));
  if (data == NULL) {
    return luaL_error(L, "crypt_check: out of memory");
  }
  const char* out = crypt_r(password, hash, data);
  bool ok = out != NULL && out[0] != '*' && strlen(out) == hash_len;
  /* Compared without an early exit, so the time does not say where. */
  unsigned char diff = ok ? 0 : 1;
  for (size_t i = 0; ok && i < hash_len; i++) {
    diff |= (unsigned char)(out[i] ^ hash[i]);
  }
  free(data);
  lua_pushboolean(L, diff == 0);
  return 1;
}

static int ir__httpd_open(lua_State* L) {
  if (luaL_newmetatable(L, IR_HTTPD_RESPONDER_MT)) { /* mt */
    lua_pushcfunction(L, ir__httpd_respond);         /* mt f */
    lua_setfield(L, -2, "__call");                   /* mt */
    lua_pushcfunction(L, ir__httpd_responder_gc);    /* mt f */
    lua_setfield(L, -2, "__gc");                     /* mt */
  }
  lua_pop(L, 1);                                  /* */
  if (luaL_newmetatable(L, IR_HTTPD_SERVER_MT)) { /* mt */
    lua_newtable(L);                              /* mt methods */
    lua_pushcfunction(L, ir__httpd_server_close); /* mt methods f */
    lua_setfield(L, -2, "close");                 /* mt methods */
    lua_pushcfunction(L, ir__httpd_server_connections);
    lua_setfield(L, -2, "connections");
    lua_setfield(L, -2, "__index");               /* mt */
    lua_pushcfunction(L, ir__httpd_server_close); /* mt f */
    lua_setfield(L, -2, "__gc");                  /* mt */
  }
  lua_pop(L, 1);                                                            /* */
  lua_newtable(L);                                                          /* M */
  lua_pushcfunction(L, ir__httpd_listen);                                   /* M f */
  lua_setfield(L, -2, "listen");                                            /* M */
  lua_pushcfunction(L, ir__httpd_crypt_check);                              /* M f */
  lua_setfield(L, -2, "crypt_check");                                       /* M */
  lua_pushboolean(L, MHD_is_feature_supported(MHD_FEATURE_TLS) == MHD_YES); /* M b */
  lua_setfield(L, -2, "tls");                                               /* M */
  return 1;
}

void ir_lua_register_httpd(lua_State* L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE); /* preload */
  lua_pushcfunction(L, ir__httpd_open);                      /* preload open */
  lua_setfield(L, -2, "icmprun.httpd");                      /* preload */
  lua_pop(L, 1);                                             /* */
}
