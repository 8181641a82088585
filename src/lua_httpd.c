/* SPDX-License-Identifier: MIT */
/* icmprun.httpd: libmicrohttpd on a thread of its own, under every exporter
 * listener, with the Lua handlers on the loop.
 *
 * Why a thread: writing a scrape (28 MB for 10,000 targets, through the
 * kernel's loopback or TLS) is tens of milliseconds of CPU a second. On the
 * loop's thread, even cut into slices of a turn each, it kept that thread
 * running past its scheduling slice, and a thread that has run past it
 * waits for the next tick (4 ms) whenever anything else wants its core:
 * the probes due meanwhile left that late. Here the loop's thread only
 * calls the handlers and builds responses; the HTTP thread (one per
 * server) reads requests and writes bodies, and the loop's thread sleeps
 * between its probes.
 *
 * The daemon runs in MHD's external epoll mode, driven by the HTTP thread
 * alone: it polls MHD's epoll fd and its own eventfd, and calls MHD_run.
 * Every MHD call is made on that thread, responses included: the loop's
 * thread sets what to answer (status, headers, the body's pieces) and the
 * HTTP thread makes the response from it. Each thread frees only what it
 * allocated (the HTTP thread the connections and responses, the loop's
 * thread the bodies), so that neither waits on the other's malloc arena
 * lock, held by a thread that may have been preempted.
 *
 * The two threads talk through two lists under one mutex, each with an
 * eventfd that wakes the other side:
 * - events, to the loop (a uv_poll_t on its eventfd): a request read in
 *   full (its connection then waits, suspended), a connection completed,
 *   a response body MHD let go of;
 * - commands, to the HTTP thread: resume a connection (its response is
 *   set), shorten an aborted connection's timeout, stop.
 * The mutex is held only to move a few pointers, never across a call into
 * MHD or the kernel: the loop's thread must not wait for a thread that
 * was preempted while it held the lock. A connection is freed by whichever
 * thread lets go of it last: the loop's thread, when it takes the
 * completion event, or the HTTP thread, once it has carried out the
 * commands queued for it (it ignores those that come after it completed
 * the connection); the loop's thread lets go through a command too. A body is read by
 * MHD on the HTTP thread from Lua strings (anchored by a registry reference) and render
 * texts' chunks (held, see lua_render.h): nothing is copied, and both are let go on the
 * loop's thread.
 *
 * Ownership: the server userdata owns the daemon, the thread and the poll;
 * its close (or __gc) stops the thread (which resumes every suspended
 * connection and stops the daemon: MHD must not be stopped with any
 * suspended), joins it, takes the last events and closes the poll, whose
 * close callback frees the C block. Calls into Lua happen on the main
 * thread under lua_pcall with a traceback handler; an error goes to the
 * server's on_error function, never further. */
#include <crypt.h>
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <luv/luv.h>

#include "common.h"
#include "lua_render.h"
#include "lua_runtime.h"

#define IR_HTTPD_SERVER_MT "icmprun.httpd.server"
#define IR_HTTPD_RESPONDER_MT "icmprun.httpd.responder"
#define IR_HTTPD_BLOCK 65536

typedef struct ir_httpd_conn_s ir_httpd_conn_t;

/* What the HTTP thread tells the loop's thread. Embedded in the connection
 * (request, completed) and in the body (done): each is sent at most once. */
typedef enum {
  IR_HTTPD_EV_REQUEST,
  IR_HTTPD_EV_COMPLETED,
  IR_HTTPD_EV_BODY_DONE
} ir_httpd_event_kind_t;

typedef struct ir_httpd_event_s {
  struct ir_httpd_event_s* next;
  ir_httpd_event_kind_t kind;
} ir_httpd_event_t;

/* What the loop's thread asks of the HTTP thread about a connection. */
#define IR_HTTPD_CMD_RESUME 1u  /* Its response is set. */
#define IR_HTTPD_CMD_ABORT 2u   /* Its client is to be let go within a second. */
#define IR_HTTPD_CMD_RELEASE 4u /* The loop's thread is done with it. */

/* Owned by the server userdata; freed in the poll's close callback. */
typedef struct ir_httpd_server_s {
  /* Set before the thread starts, then read only. */
  lua_State* L; /* The main thread. */
  struct MHD_Daemon* daemon;
  int mhd_epoll_fd;
  int http_wake_fd; /* eventfd: commands for the HTTP thread. */
  int loop_wake_fd; /* eventfd: events for the loop's thread. */
  size_t max_body;

  pthread_mutex_t lock; /* Guards the fields down to `stop`. */
  ir_httpd_event_t* events_head;
  ir_httpd_event_t* events_tail;
  ir_httpd_conn_t* commands; /* Connections with commands pending. */
  bool stop;

  atomic_uint connections; /* Open now (MHD's connection notices). */

  /* The loop's thread's. */
  pthread_t thread;
  bool thread_started;
  uv_poll_t poll; /* loop_wake_fd */
  int handler_ref;
  int on_error_ref;
  bool closed;
  bool taking_events; /* A close from a handler waits until they are taken. */
  bool close_pending;

  /* The HTTP thread's. */
  ir_httpd_conn_t* suspended; /* Connections waiting for a response. */
} ir_httpd_server_t;

/* A response body: pieces of Lua strings and render texts' chunks, their
 * values anchored by a registry reference. Each text is also held (see
 * lua_render.h): a text closed while MHD still reads it is freed only when
 * this body is. Read on the HTTP thread; built and let go on the loop's. */
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
  /* The response's headers, Content-Type first, as "name\0value\0" pairs,
   * for the HTTP thread to add to the response it makes. */
  char* headers;
  size_t headers_len;
  ir_httpd_conn_t* conn; /* The loop's: its connection, until either ends. */
  atomic_bool aborted;
  ir_httpd_event_t done;
} ir_httpd_body_t;

/* The Lua side of a connection's `respond`: NULL once the connection went. */
typedef struct ir_httpd_responder_s {
  ir_httpd_conn_t* conn;
} ir_httpd_responder_t;

/* A request as read on the HTTP thread, for the loop's thread to hand to
 * Lua: strings at offsets into one buffer (NUL-terminated, but taken by
 * length), headers first, then the query's arguments. */
typedef struct ir_httpd_pair_s {
  size_t key, key_len, value, value_len;
} ir_httpd_pair_t;

typedef struct ir_httpd_request_s {
  char* bytes;
  size_t len, cap;
  ir_httpd_pair_t* pairs;
  size_t npairs, cap_pairs;
  size_t nheaders;
  size_t method, url, version;
  char client[64];
  bool failed; /* Out of memory on the way. */
} ir_httpd_request_t;

/* Allocated on a connection's first request callback (HTTP thread); freed
 * on the loop's thread when it takes the completion event. */
struct ir_httpd_conn_s {
  ir_httpd_server_t* server;
  ir_httpd_event_t request_event;
  ir_httpd_event_t completed_event;

  /* The HTTP thread's. */
  struct MHD_Connection* connection;
  char* body;
  size_t body_len;
  bool too_large;
  bool dispatched;
  bool queued;    /* Its response was queued (read by the loop after completion). */
  bool completed; /* MHD completed it: commands for it are ignored. */
  bool suspended;
  ir_httpd_conn_t* next_suspended;
  ir_httpd_request_t request; /* Read by the loop's thread after the event. */

  /* One reference for the loop's thread (until it takes the completion
   * event), one while commands for it are queued. */
  atomic_int refs;

  /* Under the server's lock. */
  unsigned int commands;
  bool on_command_list;
  ir_httpd_conn_t* next_command;

  /* The HTTP thread's: the commands it took, in the list it took. */
  unsigned int taken_commands;
  ir_httpd_conn_t* next_taken;

  /* Set on the loop's thread before a resume command; read after it. */
  unsigned int status;
  ir_httpd_body_t* answer; /* What to send, or NULL: close the connection. */

  /* The loop's thread's. */
  bool responded;           /* A response was set: later ones are dropped. */
  ir_httpd_body_t* sending; /* The body set for it, until it is freed. */
  ir_httpd_responder_t* responder;
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

/* Wakes the other side through its eventfd. EAGAIN: the counter is full,
 * so it is woken already. */
static void ir__httpd_wake(int fd) {
  uint64_t one = 1;
  while (write(fd, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
}

static void ir__httpd_clear_wake(int fd) {
  uint64_t count;
  while (read(fd, &count, sizeof(count)) < 0 && errno == EINTR) {
  }
}

/* HTTP thread: hands an event to the loop's thread, in order. The loop's
 * thread is woken only when the list was empty: it clears its eventfd
 * before it takes the list, so an event added meanwhile wakes it again. */
static void ir__httpd_post(ir_httpd_server_t* s, ir_httpd_event_t* ev,
                           ir_httpd_event_kind_t kind) {
  ev->kind = kind;
  ev->next = NULL;
  pthread_mutex_lock(&s->lock);
  bool was_empty = s->events_head == NULL;
  if (was_empty) {
    s->events_head = ev;
  } else {
    s->events_tail->next = ev;
  }
  s->events_tail = ev;
  pthread_mutex_unlock(&s->lock);
  if (was_empty) {
    ir__httpd_wake(s->loop_wake_fd);
  }
}

static void ir__httpd_conn_free(ir_httpd_conn_t* c) {
  free(c->request.bytes);
  free(c->request.pairs);
  free(c->body);
  free(c);
}

/* Either thread: lets go of a reference; the last one frees. */
static void ir__httpd_conn_unref(ir_httpd_conn_t* c) {
  if (atomic_fetch_sub(&c->refs, 1) == 1) {
    ir__httpd_conn_free(c);
  }
}

/* Lets go of the references of commands carried out (or dropped): the
 * list's, and the loop's thread's with RELEASE. */
static void ir__httpd_commands_done(ir_httpd_conn_t* c, unsigned int commands) {
  if ((commands & IR_HTTPD_CMD_RELEASE) != 0) {
    ir__httpd_conn_unref(c);
  }
  ir__httpd_conn_unref(c);
}

/* Loop's thread: asks the HTTP thread to do `command` for a connection. */
static void ir__httpd_command(ir_httpd_conn_t* c, unsigned int command) {
  ir_httpd_server_t* s = c->server;
  pthread_mutex_lock(&s->lock);
  c->commands |= command;
  if (!c->on_command_list) {
    c->on_command_list = true;
    c->next_command = s->commands;
    s->commands = c;
    atomic_fetch_add(&c->refs, 1);
  }
  pthread_mutex_unlock(&s->lock);
  ir__httpd_wake(s->http_wake_fd);
}

/* Either thread (the loop's once the HTTP thread ended): takes the queued
 * commands off the list, under the lock, a few pointers a connection.
 * Returns them, linked by next_taken, and sets *stop. */
static ir_httpd_conn_t* ir__httpd_take_command_list(ir_httpd_server_t* s, bool* stop) {
  pthread_mutex_lock(&s->lock);
  ir_httpd_conn_t* taken = s->commands;
  s->commands = NULL;
  for (ir_httpd_conn_t* c = taken; c != NULL; c = c->next_command) {
    c->taken_commands = c->commands;
    c->next_taken = c->next_command;
    c->commands = 0;
    c->on_command_list = false;
  }
  *stop = s->stop;
  pthread_mutex_unlock(&s->lock);
  return taken;
}

/* HTTP thread: a connection leaves the list of those waiting for a
 * response. */
static void ir__httpd_unlink_suspended(ir_httpd_conn_t* c) {
  ir_httpd_conn_t** p = &c->server->suspended;
  while (*p != NULL && *p != c) {
    p = &(*p)->next_suspended;
  }
  if (*p == c) {
    *p = c->next_suspended;
  }
  c->suspended = false;
  c->next_suspended = NULL;
}

/* HTTP thread: carries out the loop's commands; returns whether to stop. */
static bool ir__httpd_take_commands(ir_httpd_server_t* s) {
  bool stop;
  ir_httpd_conn_t* c = ir__httpd_take_command_list(s, &stop);
  while (c != NULL) {
    ir_httpd_conn_t* next = c->next_taken;
    unsigned int commands = c->taken_commands;
    /* Completed: its client went first, and MHD knows it no more. */
    if (!c->completed && (commands & IR_HTTPD_CMD_RESUME) != 0 && c->suspended) {
      ir__httpd_unlink_suspended(c);
      MHD_resume_connection(c->connection);
    }
    if (!c->completed && (commands & IR_HTTPD_CMD_ABORT) != 0) {
      /* A client that reads nothing is never asked for more, so the body's
       * flag alone would keep it (and the text its response holds) until
       * the connection's timeout: shorten that to a second. */
      MHD_set_connection_option(c->connection, MHD_CONNECTION_OPTION_TIMEOUT,
                                (unsigned int)1);
    }
    ir__httpd_commands_done(c, commands);
    c = next;
  }
  return stop;
}

/* The HTTP thread: MHD_run whenever MHD's epoll fd or the loop's commands
 * say so, or MHD's own timeout (connection timeouts) passes. */
static void* ir__httpd_thread_main(void* arg) {
  ir_httpd_server_t* s = arg;
  (void)pthread_setname_np(pthread_self(), "icmprun-httpd");
  struct pollfd fds[2] = {{.fd = s->mhd_epoll_fd, .events = POLLIN},
                          {.fd = s->http_wake_fd, .events = POLLIN}};
  while (!ir__httpd_take_commands(s)) {
    MHD_run(s->daemon);
    MHD_UNSIGNED_LONG_LONG ms = 0;
    int timeout = -1;
    if (MHD_get_timeout(s->daemon, &ms) == MHD_YES) {
      /* 0 when a resumed connection waits to be taken up. */
      timeout = ms > 60000 ? 60000 : (int)ms;
    }
    if (poll(fds, 2, timeout) > 0 && (fds[1].revents & POLLIN) != 0) {
      ir__httpd_clear_wake(s->http_wake_fd);
    }
  }
  /* MHD must not be stopped with a connection suspended. One more run
   * sends the answers set last (a 503 for a handler that closed the
   * server) and closes the connections that have none. */
  while (s->suspended != NULL) {
    ir_httpd_conn_t* c = s->suspended;
    ir__httpd_unlink_suspended(c);
    MHD_resume_connection(c->connection);
  }
  MHD_run(s->daemon);
  MHD_stop_daemon(s->daemon); /* Completes every connection: events follow. */
  return NULL;
}

/* MHD's notices of connections opening and closing: the count that
 * server:connections() reads from the loop's thread. */
static void ir__httpd_notify_connection(void* cls, struct MHD_Connection* connection,
                                        void** socket_context,
                                        enum MHD_ConnectionNotificationCode toe) {
  (void)connection;
  (void)socket_context;
  ir_httpd_server_t* s = cls;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
    atomic_fetch_add(&s->connections, 1);
  } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
    atomic_fetch_sub(&s->connections, 1);
  }
}

/* HTTP thread: MHD's content reader, copying from the pieces at `pos`. */
static ssize_t ir__httpd_read(void* cls, uint64_t pos, char* buf, size_t max) {
  ir_httpd_body_t* b = cls;
  if (atomic_load(&b->aborted)) {
    return MHD_CONTENT_READER_END_WITH_ERROR;
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
  free(b->headers);
  free(b);
}

/* Loop's thread: MHD let go of a body. Releases the strings and texts, and
 * tells the Lua side. */
static void ir__httpd_body_done(ir_httpd_body_t* b) {
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

/* HTTP thread: MHD frees a response; the loop's thread lets go of its
 * body. */
static void ir__httpd_body_free(void* cls) {
  ir_httpd_body_t* b = cls;
  ir__httpd_post(b->server, &b->done, IR_HTTPD_EV_BODY_DONE);
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

/* Loop's thread: the response's headers, packed (see ir_httpd_body_t):
 * Content-Type, then the string pairs of opts.headers (opts: a stack
 * index, or 0). Returns false when out of memory. */
static bool ir__httpd_pack_headers(lua_State* L, ir_httpd_body_t* b,
                                   const char* content_type, int opts) {
  static const char name[] = MHD_HTTP_HEADER_CONTENT_TYPE;
  size_t len = sizeof(name) + strlen(content_type) + 1;
  if (opts == 0 || lua_getfield(L, opts, "headers") != LUA_TTABLE) { /* [h] */
    lua_pop(L, opts == 0 ? 0 : 1);
    lua_pushnil(L); /* nil */
  }
  for (int pass = 0; pass < 2; pass++) {
    size_t at = 0;
    if (pass == 1) {
      b->headers = malloc(len);
      if (b->headers == NULL) {
        lua_pop(L, 1); /* */
        return false;
      }
      b->headers_len = len;
      memcpy(b->headers, name, sizeof(name));
      at = sizeof(name);
      memcpy(b->headers + at, content_type, strlen(content_type) + 1);
      at += strlen(content_type) + 1;
    }
    if (lua_istable(L, -1)) {
      lua_pushnil(L);                /* h k */
      while (lua_next(L, -2) != 0) { /* h k v */
        if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
          const char* pair[2] = {lua_tostring(L, -2), lua_tostring(L, -1)};
          for (int k = 0; k < 2; k++) {
            size_t n = strlen(pair[k]) + 1;
            if (pass == 0) {
              len += n;
            } else {
              memcpy(b->headers + at, pair[k], n);
              at += n;
            }
          }
        }
        lua_pop(L, 1); /* h k */
      }
    }
  }
  lua_pop(L, 1); /* */
  return true;
}

/* Loop's thread: sets what a connection answers (a body, or NULL to close
 * it) and has the HTTP thread resume it to send it. */
static void ir__httpd_set_answer(ir_httpd_conn_t* c, unsigned int status,
                                 ir_httpd_body_t* b) {
  c->status = status;
  c->answer = b;
  c->responded = true;
  if (b != NULL) {
    c->sending = b;
    b->conn = c;
  }
  ir__httpd_command(c, IR_HTTPD_CMD_RESUME);
}

/* Loop's thread: a short text answer. Out of memory, the connection is
 * resumed with none, and MHD closes it. */
static void ir__httpd_set_simple(ir_httpd_conn_t* c, unsigned int status,
                                 const char* text) {
  ir_httpd_body_t* b = calloc(1, sizeof(*b));
  if (b != NULL) {
    b->server = c->server;
    b->table_ref = b->on_done_ref = LUA_NOREF;
    b->ptrs = malloc(sizeof(*b->ptrs));
    b->lens = malloc(sizeof(*b->lens));
    b->texts = malloc(sizeof(*b->texts));
    if (b->ptrs == NULL || b->lens == NULL || b->texts == NULL ||
        !ir__httpd_pack_headers(c->server->L, b, "text/plain", 0)) {
      ir__httpd_body_release(b);
      b = NULL;
    } else {
      b->ptrs[0] = text;
      b->lens[0] = b->total = strlen(text);
      b->count = 1;
    }
  }
  ir__httpd_set_answer(c, status, b);
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
  if (c == NULL || c->responded || c->server->closed || c->server->close_pending) {
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
  if (!ir__httpd_pack_headers(L, b, content_type, has_opts ? 5 : 0)) {
    ir__httpd_body_done(b);
    return luaL_error(L, "respond: out of memory");
  }
  if (has_opts) {
    if (lua_getfield(L, 5, "on_done") == LUA_TFUNCTION) { /* f */
      b->on_done_ref = luaL_ref(L, LUA_REGISTRYINDEX);    /* */
    } else {
      lua_pop(L, 1); /* */
    }
  }
  ir__httpd_set_answer(c, (unsigned int)status, b);
  return 0;
}

/* abort(): a connection that has not taken its response is ended at the
 * next read of it (or, within a second, by its timeout if it never reads). */
static int ir__httpd_abort(lua_State* L) {
  ir_httpd_responder_t* r =
      luaL_checkudata(L, lua_upvalueindex(1), IR_HTTPD_RESPONDER_MT);
  ir_httpd_conn_t* c = r->conn;
  if (c != NULL && c->sending != NULL) {
    atomic_store(&c->sending->aborted, true);
    ir__httpd_command(c, IR_HTTPD_CMD_ABORT);
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

/* HTTP thread: appends `len` bytes and a NUL to the request's buffer;
 * returns their offset (0, and `failed` set, when out of memory). */
static size_t ir__request_add(ir_httpd_request_t* r, const char* bytes, size_t len) {
  if (r->failed) {
    return 0;
  }
  if (r->cap - r->len < len + 1) {
    size_t cap = r->cap > 0 ? r->cap : 1024;
    while (cap - r->len < len + 1) {
      cap *= 2;
    }
    char* grown = realloc(r->bytes, cap);
    if (grown == NULL) {
      r->failed = true;
      return 0;
    }
    r->bytes = grown;
    r->cap = cap;
  }
  size_t at = r->len;
  memcpy(r->bytes + at, bytes, len);
  r->bytes[at + len] = '\0';
  r->len += len + 1;
  return at;
}

static void ir__request_pair(ir_httpd_request_t* r, const char* key, size_t key_len,
                             const char* value, size_t value_len) {
  if (r->failed) {
    return;
  }
  if (r->npairs == r->cap_pairs) {
    size_t cap = r->cap_pairs > 0 ? r->cap_pairs * 2 : 16;
    ir_httpd_pair_t* grown = realloc(r->pairs, cap * sizeof(*grown));
    if (grown == NULL) {
      r->failed = true;
      return;
    }
    r->pairs = grown;
    r->cap_pairs = cap;
  }
  ir_httpd_pair_t* p = &r->pairs[r->npairs];
  p->key = ir__request_add(r, key, key_len);
  p->key_len = key_len;
  p->value =
      ir__request_add(r, value != NULL ? value : "", value != NULL ? value_len : 0);
  p->value_len = value != NULL ? value_len : 0;
  r->npairs++;
}

static enum MHD_Result ir__request_header(void* cls, enum MHD_ValueKind kind,
                                          const char* key, size_t key_size,
                                          const char* value, size_t value_size) {
  (void)kind;
  ir_httpd_request_t* r = cls;
  ir__request_pair(r, key, key_size, value, value_size);
  r->nheaders++;
  return MHD_YES;
}

static enum MHD_Result ir__request_arg(void* cls, enum MHD_ValueKind kind,
                                       const char* key, const char* value) {
  (void)kind;
  ir__request_pair(cls, key, strlen(key), value, value != NULL ? strlen(value) : 0);
  return MHD_YES;
}

/* HTTP thread: copies what the Lua handler is given of a request: headers
 * by length, as MHD parsed them (so that the checks in
 * icmprun.exporter.http see control bytes), the query's arguments, and
 * the client's address. */
static void ir__httpd_read_request(ir_httpd_conn_t* c, const char* url,
                                   const char* method, const char* version) {
  ir_httpd_request_t* r = &c->request;
  r->method = ir__request_add(r, method, strlen(method));
  r->url = ir__request_add(r, url, strlen(url));
  r->version = ir__request_add(r, version, strlen(version));
  MHD_get_connection_values_n(c->connection, MHD_HEADER_KIND, ir__request_header, r);
  MHD_get_connection_values(c->connection, MHD_GET_ARGUMENT_KIND, ir__request_arg, r);
  const union MHD_ConnectionInfo* info =
      MHD_get_connection_info(c->connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if (info != NULL && info->client_addr != NULL) {
    if (info->client_addr->sa_family == AF_INET6) {
      uv_ip6_name((const struct sockaddr_in6*)info->client_addr, r->client,
                  sizeof(r->client));
    } else {
      uv_ip4_name((const struct sockaddr_in*)info->client_addr, r->client,
                  sizeof(r->client));
    }
  }
}

/* Loop's thread: sets a header into the table on top of the stack, its
 * name in lower case: a repeated name gets its values joined with ", ", as
 * RFC 9110 reads them, so that two different Content-Length values are
 * seen as such. */
static void ir__httpd_push_header(lua_State* L, const ir_httpd_request_t* r,
                                  const ir_httpd_pair_t* p) {
  luaL_Buffer name; /* headers */
  luaL_buffinit(L, &name);
  for (size_t i = 0; i < p->key_len; i++) {
    char ch = r->bytes[p->key + i];
    luaL_addchar(&name, (char)((ch >= 'A' && ch <= 'Z') ? ch + 32 : ch));
  }
  luaL_pushresult(&name);                 /* headers name */
  lua_pushvalue(L, -1);                   /* headers name name */
  if (lua_rawget(L, -3) == LUA_TSTRING) { /* headers name old */
    lua_pushliteral(L, ", ");             /* headers name old sep */
    lua_pushlstring(L, r->bytes + p->value, p->value_len);
    lua_concat(L, 3); /* headers name joined */
  } else {
    lua_pop(L, 1); /* headers name */
    lua_pushlstring(L, r->bytes + p->value, p->value_len);
  }
  lua_rawset(L, -3); /* headers */
}

/* Loop's thread: hands a whole request to the Lua handler; false if it
 * raised. */
static bool ir__httpd_dispatch(ir_httpd_conn_t* c) {
  ir_httpd_server_t* s = c->server;
  const ir_httpd_request_t* r = &c->request;
  lua_State* L = s->L;
  lua_createtable(L, 0, 8);                 /* req */
  lua_pushstring(L, r->bytes + r->method);  /* req method */
  lua_setfield(L, -2, "method");            /* req */
  lua_pushstring(L, r->bytes + r->url);     /* req url */
  lua_setfield(L, -2, "path");              /* req */
  lua_pushstring(L, r->bytes + r->version); /* req version */
  lua_setfield(L, -2, "version");           /* req */
  lua_createtable(L, 0, (int)r->nheaders);  /* req headers */
  for (size_t i = 0; i < r->nheaders; i++) {
    ir__httpd_push_header(L, r, &r->pairs[i]);
  }
  lua_setfield(L, -2, "headers");               /* req */
  lua_pushinteger(L, (lua_Integer)r->nheaders); /* req n */
  lua_setfield(L, -2, "header_lines");          /* req */
  lua_newtable(L);                              /* req args */
  for (size_t i = r->nheaders; i < r->npairs; i++) {
    const ir_httpd_pair_t* p = &r->pairs[i];
    lua_pushlstring(L, r->bytes + p->key, p->key_len); /* req args k */
    if (lua_rawget(L, -2) == LUA_TNIL) {               /* req args old */
      lua_pushlstring(L, r->bytes + p->key, p->key_len);
      lua_pushlstring(L, r->bytes + p->value, p->value_len);
      lua_rawset(L, -4); /* req args nil */
    }
    lua_pop(L, 1); /* req args */
  }
  lua_setfield(L, -2, "args");                             /* req */
  lua_pushlstring(L, c->body ? c->body : "", c->body_len); /* req body */
  lua_setfield(L, -2, "body");                             /* req */
  if (r->client[0] != '\0') {
    lua_pushstring(L, r->client);  /* req ip */
    lua_setfield(L, -2, "client"); /* req */
  }
  ir_httpd_responder_t* resp = lua_newuserdatauv(L, sizeof(*resp), 0); /* req r */
  resp->conn = c;
  c->responder = resp;
  luaL_setmetatable(L, IR_HTTPD_RESPONDER_MT);
  lua_pushvalue(L, -1);                        /* req r r */
  lua_pushcclosure(L, ir__httpd_abort, 1);     /* req r abort */
  lua_setfield(L, -3, "abort");                /* req r */
  return ir__httpd_call(s, s->handler_ref, 2); /* */
}

/* HTTP thread: makes and queues the response the loop's thread set. */
static enum MHD_Result ir__httpd_queue(ir_httpd_conn_t* c) {
  ir_httpd_body_t* b = c->answer;
  c->queued = true;
  /* A block as large as the body, up to IR_HTTPD_BLOCK: MHD allocates it
   * whole for each response. */
  size_t block =
      b->total < IR_HTTPD_BLOCK ? (b->total > 0 ? b->total : 1) : IR_HTTPD_BLOCK;
  struct MHD_Response* resp = MHD_create_response_from_callback(
      b->total, block, ir__httpd_read, b, ir__httpd_body_free);
  if (resp == NULL) {
    ir__httpd_post(c->server, &b->done, IR_HTTPD_EV_BODY_DONE);
    return MHD_NO;
  }
  for (size_t at = 0; at < b->headers_len;) {
    const char* name = b->headers + at;
    at += strlen(name) + 1;
    const char* value = b->headers + at;
    at += strlen(value) + 1;
    MHD_add_response_header(resp, name, value);
  }
  enum MHD_Result ret = MHD_queue_response(c->connection, c->status, resp);
  MHD_destroy_response(resp); /* MHD keeps its own reference. */
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

/* HTTP thread: MHD's request callback. A request read in full is handed to
 * the loop's thread and waits, suspended, for its response. */
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
    atomic_init(&c->refs, 1);
    *con_cls = c;
    /* A body announced over the limit is refused before it is waited for:
     * a client that sends none would otherwise hold the connection until
     * its timeout. (MHD has checked that the length is a number.) */
    const char* length = MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length != NULL &&
        (strlen(length) > 15 || strtoull(length, NULL, 10) > s->max_body)) {
      c->dispatched = true;
      c->queued = true;
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
  if (c->answer != NULL && !c->queued) {
    return ir__httpd_queue(c);
  }
  if (c->dispatched) {
    return MHD_NO; /* Resumed with no response (out of memory, or stopping). */
  }
  c->dispatched = true;
  if (c->too_large) {
    c->queued = true;
    return ir__httpd_simple(connection, 413, "the body is over the limit\n");
  }
  ir__httpd_read_request(c, url, method, version);
  if (c->request.failed) {
    c->queued = true;
    return ir__httpd_simple(connection, 500, "out of memory\n");
  }
  c->suspended = true;
  c->next_suspended = s->suspended;
  s->suspended = c;
  MHD_suspend_connection(connection);
  ir__httpd_post(s, &c->request_event, IR_HTTPD_EV_REQUEST);
  return MHD_YES;
}

/* HTTP thread: MHD is done with a connection; the loop's thread frees it. */
static void ir__httpd_completed(void* cls, struct MHD_Connection* connection,
                                void** con_cls, enum MHD_RequestTerminationCode code) {
  (void)connection;
  (void)code;
  ir_httpd_server_t* s = cls;
  ir_httpd_conn_t* c = *con_cls;
  if (c == NULL) {
    return;
  }
  *con_cls = NULL;
  c->completed = true;
  if (c->suspended) {
    ir__httpd_unlink_suspended(c);
  }
  ir__httpd_post(s, &c->completed_event, IR_HTTPD_EV_COMPLETED);
}

/* Loop's thread: a request for the Lua handler. A handler that raised
 * before it responded gets its client a 500, one that closed the server a
 * 503. While the server closes, nothing more is dispatched: stopping the
 * daemon ends the connection. */
static void ir__httpd_take_request(ir_httpd_conn_t* c) {
  ir_httpd_server_t* s = c->server;
  if (s->closed || s->close_pending) {
    return;
  }
  bool ok = ir__httpd_dispatch(c);
  if (c->responded) {
    return;
  }
  if (s->closed || s->close_pending) {
    ir__httpd_set_simple(c, 503, "the server is closing\n");
  } else if (!ok) {
    ir__httpd_set_simple(c, 500, "internal error\n");
  }
}

/* Loop's thread: lets go of a connection MHD completed. */
static void ir__httpd_take_completed(ir_httpd_conn_t* c) {
  if (c->sending != NULL) {
    c->sending->conn = NULL; /* MHD may let go of the body after this. */
  }
  if (c->responder != NULL) {
    c->responder->conn = NULL;
  }
  if (c->answer != NULL && !c->queued) {
    ir__httpd_body_done(c->answer); /* Never handed to MHD: on_done now. */
  }
  /* Freed on the HTTP thread, whose memory it is. */
  ir__httpd_command(c, IR_HTTPD_CMD_RELEASE);
}

static void ir__httpd_close(ir_httpd_server_t* s);

/* Loop's thread: takes the HTTP thread's events, in order. */
static void ir__httpd_take_events(ir_httpd_server_t* s) {
  pthread_mutex_lock(&s->lock);
  ir_httpd_event_t* ev = s->events_head;
  s->events_head = s->events_tail = NULL;
  pthread_mutex_unlock(&s->lock);
  bool nested = s->taking_events;
  s->taking_events = true;
  while (ev != NULL) {
    ir_httpd_event_t* next = ev->next; /* Taking it may free it. */
    switch (ev->kind) {
      case IR_HTTPD_EV_REQUEST:
        ir__httpd_take_request(IR_CONTAINER_OF(ev, ir_httpd_conn_t, request_event));
        break;
      case IR_HTTPD_EV_COMPLETED:
        ir__httpd_take_completed(IR_CONTAINER_OF(ev, ir_httpd_conn_t, completed_event));
        break;
      case IR_HTTPD_EV_BODY_DONE:
        ir__httpd_body_done(IR_CONTAINER_OF(ev, ir_httpd_body_t, done));
        break;
    }
    ev = next;
  }
  s->taking_events = nested;
  if (!nested && s->close_pending) {
    ir__httpd_close(s); /* A handler closed the server meanwhile. */
  }
}

static void ir__httpd_events_cb(uv_poll_t* poll, int status, int events) {
  (void)status;
  (void)events;
  ir_httpd_server_t* s = poll->data;
  ir__httpd_clear_wake(s->loop_wake_fd);
  ir__httpd_take_events(s);
}

static void ir__httpd_poll_closed(uv_handle_t* handle) {
  ir_httpd_server_t* s = handle->data;
  close(s->loop_wake_fd);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

/* Loop's thread: stops the HTTP thread (which resumes the suspended
 * connections and stops the daemon), joins it, takes the connections' and
 * bodies' last events, and closes the poll, which frees the block. */
static void ir__httpd_close(ir_httpd_server_t* s) {
  if (s->closed) {
    return;
  }
  if (s->taking_events) {
    s->close_pending = true;
    return;
  }
  s->closed = true;
  pthread_mutex_lock(&s->lock);
  s->stop = true;
  pthread_mutex_unlock(&s->lock);
  ir__httpd_wake(s->http_wake_fd);
  (void)pthread_join(s->thread, NULL);
  s->daemon = NULL;
  ir__httpd_take_events(s);
  /* Commands the thread did not take (the releases of the connections
   * completed as it stopped among them): their references only. */
  bool stop;
  ir_httpd_conn_t* c = ir__httpd_take_command_list(s, &stop);
  while (c != NULL) {
    ir_httpd_conn_t* next = c->next_taken;
    ir__httpd_commands_done(c, c->taken_commands);
    c = next;
  }
  lua_State* L = s->L;
  luaL_unref(L, LUA_REGISTRYINDEX, s->handler_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, s->on_error_ref);
  s->handler_ref = s->on_error_ref = LUA_NOREF;
  close(s->http_wake_fd);
  uv_close((uv_handle_t*)&s->poll, ir__httpd_poll_closed);
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
  if (box->s != NULL && !box->s->closed) {
    n = atomic_load(&box->s->connections);
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

/* Loop's thread: the eventfds, the poll on the loop and the HTTP thread,
 * for a daemon just started. Returns NULL, or what failed: then the daemon
 * is stopped and the block freed (at once, or by the poll's close). */
static const char* ir__httpd_start(uv_loop_t* loop, ir_httpd_server_t* s) {
  const union MHD_DaemonInfo* info =
      MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
  s->mhd_epoll_fd = info != NULL ? info->epoll_fd : -1;
  s->http_wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  s->loop_wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  bool ready = s->mhd_epoll_fd >= 0 && s->http_wake_fd >= 0 && s->loop_wake_fd >= 0 &&
               pthread_mutex_init(&s->lock, NULL) == 0;
  if (!ready || uv_poll_init(loop, &s->poll, s->loop_wake_fd) != 0) {
    if (ready) {
      pthread_mutex_destroy(&s->lock);
    }
    MHD_stop_daemon(s->daemon);
    if (s->http_wake_fd >= 0) {
      close(s->http_wake_fd);
    }
    if (s->loop_wake_fd >= 0) {
      close(s->loop_wake_fd);
    }
    free(s);
    return "cannot watch the HTTP daemon";
  }
  s->poll.data = s;
  /* The thread takes no signals: the loop's thread handles them. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int err = pthread_create(&s->thread, NULL, ir__httpd_thread_main, s);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err != 0) {
    MHD_stop_daemon(s->daemon);
    close(s->http_wake_fd);
    s->closed = true;
    uv_close((uv_handle_t*)&s->poll, ir__httpd_poll_closed);
    return "cannot start the HTTP thread";
  }
  uv_poll_start(&s->poll, UV_READABLE, ir__httpd_events_cb);
  return NULL;
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
  atomic_init(&s->connections, 0);
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
      MHD_OPTION_NOTIFY_COMPLETED, ir__httpd_completed, s, MHD_OPTION_NOTIFY_CONNECTION,
      ir__httpd_notify_connection, s, MHD_OPTION_CONNECTION_LIMIT,
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
  /* Asked of MHD before its thread starts: from then on, only that thread
   * calls it. */
  const union MHD_DaemonInfo* bound =
      MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
  uint16_t bound_port = bound != NULL ? bound->port : (uint16_t)port;
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
  int handler_ref = s->handler_ref, on_error_ref = s->on_error_ref;
  const char* why = ir__httpd_start(loop, s); /* Frees s when it fails. */
  if (why != NULL) {
    luaL_unref(L, LUA_REGISTRYINDEX, handler_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, on_error_ref);
    lua_settop(L, top);
    lua_pushnil(L);
    lua_pushstring(L, why);
    return 2;
  }
  box->s = s;
  lua_pushinteger(L, bound_port); /* ... box port */
  lua_pushstring(L, ip);          /* ... box port ip */
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
