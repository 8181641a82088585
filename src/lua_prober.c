/* SPDX-License-Identifier: MIT */
/* icmprun.prober: many targets on fixed schedules, with no task per target. */
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "lua_runtime.h"
#include "prober.h"

#define IR_PROBER_META "icmprun.prober"

/* Slots of the callback thread's stack, set once when the prober is made;
 * a hook not given is nil. */
enum {
  IR_PT_MSGH = 1, /* Adds a traceback to a callback's error. */
  IR_PT_ON_SEND,
  IR_PT_ON_RESULT,
  IR_PT_ON_FAILING,
  IR_PT_ON_ERROR, /* nil: errors go to stderr. */
  IR_PT_KEYS,     /* Result tables' field names. */
  IR_PT_TOP = IR_PT_KEYS
};

/* The core, and what calls Lua from it. Allocated by icmprun.prober and
 * pointed at by its userdata box; freed by whichever comes last of the
 * box's __gc (`boxed` false) and the close callback of the core's timer
 * (`core_done`). Linked as an owner of the runtime while open, so that
 * shutdown closes it.
 * `thread` (anchored by the box's user value) runs the callbacks; it is
 * NULL once the box is collected or the prober closed, and then no Lua runs. */
typedef struct ir_lua_prober_s {
  ir_prober_t core;
  ir_lua_owner_t owner;
  ir_lua_runtime_t* rt;
  lua_State* thread;
  bool boxed;
  bool core_done;
} ir_lua_prober_t;

typedef struct ir_prober_box_s {
  ir_lua_prober_t* prober;
} ir_prober_box_t;

static int ir__msgh(lua_State* L) {
  const char* msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg != NULL ? msg : "(error object is not a string)", 1);
  return 1;
}

/* Calls the function at stack slot fn of the thread with nargs arguments on
 * top; an error goes to on_error (or stderr) and never further: a callback
 * that raises costs its own call, not the prober nor the process. */
static void ir__call(ir_lua_prober_t* p, int fn, int nargs) {
  lua_State* T = p->thread;
  lua_pushvalue(T, fn);                               /* ... args fn */
  lua_insert(T, -1 - nargs);                          /* ... fn args */
  if (lua_pcall(T, nargs, 0, IR_PT_MSGH) != LUA_OK) { /* ... err */
    if (!lua_isnil(T, IR_PT_ON_ERROR)) {
      lua_pushvalue(T, IR_PT_ON_ERROR); /* ... err on_error */
      lua_insert(T, -2);                /* ... on_error err */
      if (lua_pcall(T, 1, 0, IR_PT_MSGH) == LUA_OK) {
        lua_settop(T, IR_PT_TOP);
        return;
      }
    }
    fprintf(stderr, "icmprun.prober: error in a callback: %s\n", lua_tostring(T, -1));
  }
  lua_settop(T, IR_PT_TOP);
}

static bool ir__can_call(ir_lua_prober_t* p, int fn) {
  return p->thread != NULL && !p->rt->closing && !lua_isnil(p->thread, fn);
}

static void ir__on_send(ir_prober_t* core, uint32_t id, uint64_t late_ns) {
  ir_lua_prober_t* p = core->hooks.data;
  if (!ir__can_call(p, IR_PT_ON_SEND)) {
    return;
  }
  lua_pushinteger(p->thread, id);
  lua_pushnumber(p->thread, (double)late_ns / 1e6);
  ir__call(p, IR_PT_ON_SEND, 2);
}

static void ir__on_result(ir_prober_t* core, uint32_t id, const ir_result_t* result,
                          int refused, const char* why) {
  ir_lua_prober_t* p = core->hooks.data;
  if (!ir__can_call(p, IR_PT_ON_RESULT)) {
    return;
  }
  lua_State* T = p->thread;
  lua_pushinteger(T, id);                       /* id */
  ir_lua_push_result(T, IR_PT_KEYS, result, 0); /* id r */
  if (refused != 0) {
    /* The engine's own words for a refusal (no socket and the sysctl that
     * gives one, a source that is not this host's) over the bare errno's. */
    lua_rawgeti(T, IR_PT_KEYS, IR_KEY_ERR); /* id r key */
    lua_pushstring(T, why);                 /* id r key why */
    lua_rawset(T, -3);                      /* id r */
  }
  ir__call(p, IR_PT_ON_RESULT, 2);
}

static void ir__on_failing(ir_prober_t* core, uint32_t id, bool failing,
                           const char* why) {
  ir_lua_prober_t* p = core->hooks.data;
  if (!ir__can_call(p, IR_PT_ON_FAILING)) {
    return;
  }
  lua_pushinteger(p->thread, id);
  lua_pushboolean(p->thread, failing);
  lua_pushstring(p->thread, why);
  ir__call(p, IR_PT_ON_FAILING, 3);
}

static void ir__core_closed(ir_prober_t* core) {
  ir_lua_prober_t* p = core->hooks.data;
  p->core_done = true;
  if (!p->boxed) {
    free(p);
  }
}

/* Stops the core; the memory goes when its timer has closed. */
static void ir__close(ir_lua_prober_t* p) {
  if (p->core.closing) {
    return;
  }
  p->thread = NULL;
  ir_lua_owner_unlink(&p->owner);
  ir_prober_close(&p->core, ir__core_closed);
}

static void ir__shutdown(ir_lua_owner_t* owner) {
  ir__close(IR_CONTAINER_OF(owner, ir_lua_prober_t, owner));
}

static ir_lua_prober_t* ir__check_open(lua_State* L) {
  ir_prober_box_t* box = luaL_checkudata(L, 1, IR_PROBER_META);
  if (box->prober == NULL || box->prober->core.closing) {
    luaL_error(L, "prober: it is closed");
  }
  return box->prober;
}

/* An interval or first delay argument in milliseconds (a number or a
 * duration string), within [min, IR_MAX_WAIT_MS]; as nanoseconds. */
static uint64_t ir__check_ms(lua_State* L, int arg, double min, const char* what) {
  lua_Number ms = ir_lua_check_duration(L, arg);
  if (!(ms >= min && ms <= IR_MAX_WAIT_MS)) {
    luaL_argerror(
        L, arg,
        lua_pushfstring(L, "%s must be a duration from %d ms to 24 h", what, (int)min));
  }
  return (uint64_t)llround(ms * 1e6);
}

/* The target of an id argument, or a raised argument error. */
static ir_prober_target_t* ir__check_target(lua_State* L, ir_lua_prober_t* p, int arg) {
  lua_Integer id = luaL_checkinteger(L, arg);
  ir_prober_target_t* t =
      id > 0 && id <= UINT32_MAX ? ir_prober_get(&p->core, (uint32_t)id) : NULL;
  if (t == NULL) {
    luaL_argerror(L, arg, "no such target (never added, or removed)");
  }
  return t;
}

/* prober:add(address, opts, interval, first) -> id. The address is a
 * literal (names are the caller's to resolve); opts as ping's (timeout,
 * size, ttl, tos, source, interface...); interval at least 1 ms; the first
 * probe is due `first` (0 or more) after the end of the current turn of the
 * loop. Without an interval (nil) the
 * target has counters only and is never probed (its address may be nil):
 * for `record`, and the exporter's renderers' tests. */
static int ir__l_add(lua_State* L) {
  ir_lua_prober_t* p = ir__check_open(L);
  ir_probe_spec_t spec;
  ir_lua_probe_options(L, 3, &spec, NULL);
  bool counters_only = lua_isnoneornil(L, 4);
  if (!(counters_only && lua_isnoneornil(L, 2))) {
    const char* text = luaL_checkstring(L, 2);
    if (ir_addr_parse(text, &spec.addr) != 0) {
      return luaL_argerror(L, 2, "must be an IPv4 or IPv6 address");
    }
  }
  uint64_t interval = counters_only ? 0 : ir__check_ms(L, 4, 1, "interval");
  uint64_t first = lua_isnoneornil(L, 5) ? 0 : ir__check_ms(L, 5, 0, "first");
  uint32_t id = ir_prober_add(&p->core, &spec, interval, first);
  if (id == 0) {
    return luaL_error(L, "prober: out of memory");
  }
  lua_pushinteger(L, id);
  return 1;
}

/* prober:update(id, opts, interval): new options and interval from the
 * target's next probe on; its schedule is kept. */
static int ir__l_update(lua_State* L) {
  ir_lua_prober_t* p = ir__check_open(L);
  ir_prober_target_t* t = ir__check_target(L, p, 2);
  ir_probe_spec_t spec;
  ir_lua_probe_options(L, 3, &spec, NULL);
  uint64_t interval = ir__check_ms(L, 4, 1, "interval");
  ir_prober_update(&p->core, t, &spec, interval);
  return 0;
}

/* prober:remove(id): no more probes; one in flight ends unreported. */
static int ir__l_remove(lua_State* L) {
  ir_lua_prober_t* p = ir__check_open(L);
  ir_prober_remove(&p->core, ir__check_target(L, p, 2));
  return 0;
}

/* prober:count() -> targets, probes in flight, bytes held for the targets
 * (their counters and histories, without the allocator's overhead). */
static int ir__l_count(lua_State* L) {
  ir_lua_prober_t* p = ir__check_open(L);
  lua_pushinteger(L, p->core.live);
  lua_pushinteger(L, p->core.in_flight);
  lua_pushinteger(L, (lua_Integer)ir_prober_bytes(&p->core));
  return 3;
}

const ir_prober_stats_t* ir_lua_prober_stats(lua_State* L, int idx, lua_Integer id,
                                             int* ncounts) {
  ir_prober_box_t* box = luaL_checkudata(L, idx, IR_PROBER_META);
  if (box->prober == NULL || box->prober->core.closing || id <= 0 || id > UINT32_MAX) {
    return NULL;
  }
  *ncounts = box->prober->core.buckets.n + 1;
  ir_prober_target_t* t = ir_prober_get(&box->prober->core, (uint32_t)id);
  return t != NULL ? &t->stats : NULL;
}

/* prober:stats(id) -> {sent, results = {reply = n, ...}, counts = {...},
 * rtt_sum, replies, ttl, duplicates}, or nil for an id that is not a
 * target (removed, or never added): a copy of the target's counters, as
 * the exporter's metrics name them (counts per bucket, not cumulative, the
 * last +Inf; rtt_sum in seconds; ttl nil until a reply came). */
static int ir__l_stats(lua_State* L) {
  ir_lua_prober_t* p = ir__check_open(L);
  lua_Integer id = luaL_checkinteger(L, 2);
  ir_prober_target_t* target =
      id > 0 && id <= UINT32_MAX ? ir_prober_get(&p->core, (uint32_t)id) : NULL;
  if (target == NULL) {
    lua_pushnil(L); /* Removed (or never added): it has no series any more. */
    return 1;
  }
  const ir_prober_stats_t* st = &target->stats;
  lua_createtable(L, 0, 7);
  lua_pushinteger(L, st->sent);
  lua_setfield(L, -2, "sent");
  lua_createtable(L, 0, IR_STATS_STATUSES);
  for (int i = 0; i < IR_STATS_STATUSES; i++) {
    lua_pushinteger(L, st->results[i]);
    lua_setfield(L, -2, ir_status_name((ir_status_t)i));
  }
  lua_setfield(L, -2, "results");
  lua_createtable(L, p->core.buckets.n + 1, 0);
  for (int i = 0; i <= p->core.buckets.n; i++) {
    lua_pushinteger(L, st->counts[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "counts");
  /* No reply yet: the integer 0, as the sum of nothing is written. */
  if (st->replies == 0) {
    lua_pushinteger(L, 0);
  } else {
    lua_pushnumber(L, st->rtt_sum);
  }
  lua_setfield(L, -2, "rtt_sum");
  lua_pushinteger(L, st->replies);
  lua_setfield(L, -2, "replies");
  if (st->has_ttl) {
    lua_pushinteger(L, st->ttl);
    lua_setfield(L, -2, "ttl");
  }
  lua_pushinteger(L, st->duplicates);
  lua_setfield(L, -2, "duplicates");
  return 1;
}

/* prober:history(id) -> nil before the first result, or {ring = string,
 * slot, sent, received, rtts = {...}}: the status page's minutes (see
 * prober_stats.h), the ring as IR_HISTORY_SLOTS records of nine
 * little-endian 16-bit numbers, slot by slot number modulo the ring. */
static int ir__l_history(lua_State* L) {
  ir_lua_prober_t* p = ir__check_open(L);
  const ir_history_t* h = ir__check_target(L, p, 2)->stats.history;
  if (h == NULL) {
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, 0, 5);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 0; i < IR_HISTORY_SLOTS; i++) {
    for (int f = 0; f < IR_HISTORY_SLOT_FIELDS; f++) {
      luaL_addchar(&b, (char)(h->ring[i][f] & 0xff));
      luaL_addchar(&b, (char)(h->ring[i][f] >> 8));
    }
  }
  luaL_pushresult(&b);
  lua_setfield(L, -2, "ring");
  lua_pushinteger(L, h->slot);
  lua_setfield(L, -2, "slot");
  lua_pushinteger(L, h->sent);
  lua_setfield(L, -2, "sent");
  lua_pushinteger(L, h->received);
  lua_setfield(L, -2, "received");
  lua_createtable(L, (int)h->nrtts, 0);
  for (uint32_t i = 0; i < h->nrtts; i++) {
    lua_pushnumber(L, h->rtts[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "rtts");
  return 1;
}

/* prober:record(id, r[, now]): counts a result table (status, rtt in ms,
 * ttl) as the prober counts its own, at wall-clock time `now` (seconds,
 * default the clock's): for targets of counters only, and tests. */
static int ir__l_record(lua_State* L) {
  ir_lua_prober_t* p = ir__check_open(L);
  ir_prober_target_t* t = ir__check_target(L, p, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_getfield(L, 3, "status");
  const char* status = lua_tostring(L, -1);
  int code = status != NULL ? ir_status_from_name(status) : -1;
  if (code < 0) {
    return luaL_argerror(L, 3, "status must be one of icmprun.STATUSES");
  }
  lua_getfield(L, 3, "rtt");
  lua_getfield(L, 3, "ttl");
  double rtt = lua_isnumber(L, -2) ? lua_tonumber(L, -2) : -1;
  int ttl = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : -1;
  double now;
  if (lua_isnoneornil(L, 4)) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
  } else {
    now = luaL_checknumber(L, 4);
  }
  ir_prober_count_result(&p->core, t, code, code == 0 ? rtt : -1, ttl, now);
  return 0;
}

/* prober:count_send(id): counts a probe sent, as a send of the prober's
 * own does (for targets of counters only, and tests). */
static int ir__l_count_send(lua_State* L) {
  ir_lua_prober_t* p = ir__check_open(L);
  ir__check_target(L, p, 2)->stats.sent++;
  return 0;
}

/* prober:add_duplicates(id, n): duplicate replies from the target's address
 * (the exporter counts them from icmprun.duplicates()). */
static int ir__l_add_duplicates(lua_State* L) {
  ir_lua_prober_t* p = ir__check_open(L);
  ir_prober_target_t* t = ir__check_target(L, p, 2);
  lua_Integer n = luaL_checkinteger(L, 3);
  luaL_argcheck(L, n >= 0, 3, "must be 0 or more");
  t->stats.duplicates += n;
  return 0;
}

/* prober:take_max_delay() -> ms: the latest a probe was sent past its due
 * time since the last call (0 when none was late); starts again from 0. */
static int ir__l_take_max_delay(lua_State* L) {
  ir_lua_prober_t* p = ir__check_open(L);
  lua_pushnumber(L, (double)ir_prober_take_max_late(&p->core) / 1e6);
  return 1;
}

/* prober:close() (and __gc, __close): stops every target at once. */
static int ir__l_close(lua_State* L) {
  ir_prober_box_t* box = luaL_checkudata(L, 1, IR_PROBER_META);
  ir_lua_prober_t* p = box->prober;
  if (p != NULL) {
    box->prober = NULL;
    p->boxed = false;
    ir__close(p);
    if (p->core_done) {
      free(p);
    }
  }
  return 0;
}

/* The histogram bounds of opts.buckets (seconds, ascending), or
 * icmprun's default (smokeping_prober's) when absent; on L's stack top as
 * a C array in a userdata, returned with its length. */
static double* ir__check_buckets(lua_State* L, int opts, int* n) {
  if (lua_getfield(L, opts, "buckets") == LUA_TNIL) { /* ... nil */
    /* prometheus.DEFAULT_BUCKETS, computed the same way: 50 us doubling. */
    enum { IR_DEFAULT_BUCKETS = 20 };
    double* out = lua_newuserdatauv(L, IR_DEFAULT_BUCKETS * sizeof(double), 0);
    for (int i = 0; i < IR_DEFAULT_BUCKETS; i++) {
      out[i] = 0.00005 * ldexp(1, i);
    }
    lua_remove(L, -2);
    *n = IR_DEFAULT_BUCKETS;
    return out;
  }
  luaL_argexpected(L, lua_istable(L, -1), opts, "buckets: a list of seconds");
  lua_Integer len = luaL_len(L, -1);
  luaL_argcheck(L, len >= 0 && len <= 1024, opts, "buckets: at most 1024 bounds");
  double* out = lua_newuserdatauv(L, (size_t)(len > 0 ? len : 1) * sizeof(double), 0);
  for (lua_Integer i = 1; i <= len; i++) {
    lua_rawgeti(L, -2, i);
    int isnum;
    out[i - 1] = lua_tonumberx(L, -1, &isnum);
    lua_pop(L, 1);
    if (!isnum || (i > 1 && !(out[i - 1] > out[i - 2]))) {
      luaL_argerror(L, opts, "buckets: bounds must be numbers in ascending order");
    }
  }
  lua_remove(L, -2);
  *n = (int)len;
  return out;
}

/* icmprun.prober{buckets = {...}, on_send = fn(id, late_ms), on_result =
 * fn(id, r), on_failing = fn(id, failing, why), on_error = fn(message)} ->
 * prober: every field optional. See the README. */
static int ir__l_new(lua_State* L) {
  ir_lua_runtime_t* rt = lua_touserdata(L, lua_upvalueindex(1));
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  if (rt->closing || rt->engine == NULL) {
    return luaL_error(L, "prober: icmprun is shutting down");
  }
  static const char* const hooks[] = {"on_send", "on_result", "on_failing", "on_error"};
  for (size_t i = 0; i < IR_ARRAY_SIZE(hooks); i++) {
    int type = lua_getfield(L, 1, hooks[i]);
    if (type != LUA_TFUNCTION && type != LUA_TNIL) {
      return luaL_argerror(L, 1, lua_pushfstring(L, "%s must be a function", hooks[i]));
    }
    lua_pop(L, 1);
  }
  int nbounds;
  double* bounds = ir__check_buckets(L, 1, &nbounds);           /* opts bounds */
  ir_prober_box_t* box = lua_newuserdatauv(L, sizeof(*box), 1); /* opts bounds box */
  box->prober = NULL;
  luaL_setmetatable(L, IR_PROBER_META);
  lua_State* T = lua_newthread(L); /* opts bounds box T */
  lua_pushcfunction(T, ir__msgh);
  for (size_t i = 0; i < IR_ARRAY_SIZE(hooks); i++) {
    lua_getfield(L, 1, hooks[i]);
  }
  lua_xmove(L, T, (int)IR_ARRAY_SIZE(hooks));
  ir_lua_push_keys(T);
  lua_setiuservalue(L, -2, 1); /* opts bounds box */
  ir_lua_prober_t* p = calloc(1, sizeof(*p));
  if (p == NULL) {
    return luaL_error(L, "prober: out of memory");
  }
  ir_prober_hooks_t h = {ir__on_send, ir__on_result, ir__on_failing, p};
  int rc = ir_prober_init(&p->core, &rt->loop, &rt->engine, bounds, nbounds, &h);
  if (rc != 0) {
    free(p);
    return luaL_error(L, "prober: %s", uv_strerror(rc));
  }
  p->rt = rt;
  p->thread = T;
  p->boxed = true;
  box->prober = p;
  ir_lua_owner_link(rt, &p->owner, ir__shutdown);
  return 1;
}

void ir_lua_register_prober(lua_State* L, int module_index) {
  static const luaL_Reg methods[] = {{"add", ir__l_add},
                                     {"update", ir__l_update},
                                     {"remove", ir__l_remove},
                                     {"count", ir__l_count},
                                     {"stats", ir__l_stats},
                                     {"history", ir__l_history},
                                     {"record", ir__l_record},
                                     {"count_send", ir__l_count_send},
                                     {"add_duplicates", ir__l_add_duplicates},
                                     {"take_max_delay", ir__l_take_max_delay},
                                     {"close", ir__l_close},
                                     {NULL, NULL}};
  module_index = lua_absindex(L, module_index);
  if (luaL_newmetatable(L, IR_PROBER_META)) { /* mt */
    luaL_newlib(L, methods);                  /* mt methods */
    lua_setfield(L, -2, "__index");           /* mt */
    lua_pushcfunction(L, ir__l_close);        /* mt f */
    lua_setfield(L, -2, "__gc");              /* mt */
    lua_pushcfunction(L, ir__l_close);        /* mt f */
    lua_setfield(L, -2, "__close");           /* mt */
  }
  lua_pop(L, 1);                               /* */
  lua_pushlightuserdata(L, ir_lua_runtime(L)); /* rt */
  lua_pushcclosure(L, ir__l_new, 1);           /* f */
  lua_setfield(L, module_index, "prober");     /* */
}
