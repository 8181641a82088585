/* SPDX-License-Identifier: MIT */
/* icmprun.ping and friends: option checks, name lookup, result tables. */
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "lua_runtime.h"

static void ir__on_probe_result(ir_engine_t* engine, const ir_result_t* result) {
  (void)engine;
  ir_lua_waiter_t* waiter = result->data;
  waiter->result = *result;
  waiter->op_done = true; /* Nothing of the engine's refers to it any more. */
  ir_lua_wake(waiter);
  if (waiter->consumed) {
    ir_lua_waiter_op_done(waiter); /* Abandoned or closing: free it now. */
  }
}

/* Hands the probe to the engine, or records why it cannot be sent. */
static void ir__submit(ir_lua_waiter_t* waiter) {
  ir_lua_runtime_t* rt = waiter->rt;
  uint32_t max = waiter->spec.addr.family == AF_INET ? IR_MAX_SIZE_V4 : IR_MAX_SIZE_V6;
  int err;
  if (waiter->spec.size > max) {
    /* Only a name that resolved to IPv4 gets here: the option allowed IPv6's
     * larger size, and the address decides. */
    err = -EMSGSIZE;
    snprintf(waiter->failure, sizeof(waiter->failure),
             "size %u is over the IPv4 maximum of %u", waiter->spec.size, max);
  } else if (rt->engine == NULL) {
    err = -ECANCELED;
    snprintf(waiter->failure, sizeof(waiter->failure), "icmprun is shutting down");
  } else {
    /* The waiter tags its probe, so that cancelling its task can end it. */
    waiter->spec.group = waiter;
    err = ir_engine_probe(rt->engine, &waiter->spec, ir__on_probe_result, waiter);
    if (err == 0) {
      return;
    }
    const char* why = ir_engine_probe_error(rt->engine, &waiter->spec);
    snprintf(waiter->failure, sizeof(waiter->failure), "%s",
             why != NULL ? why : uv_strerror(err));
  }
  waiter->failure_code = err;
  waiter->op_done = true;
  ir_lua_wake(waiter);
}

static void ir__on_resolved(uv_getaddrinfo_t* req, int status, struct addrinfo* res) {
  ir_lua_waiter_t* waiter = req->data;
  ir_lua_owner_unlink(&waiter->owner); /* The lookup is over. */
  if (waiter->rt->closing || waiter->consumed) {
    uv_freeaddrinfo(res);
    waiter->done = true;
    ir_lua_waiter_op_done(waiter);
    return;
  }
  if (status != 0 || res == NULL ||
      ir_addr_from_sockaddr(res->ai_addr, &waiter->spec.addr) != 0) {
    /* A lookup that succeeds with no usable address is what getaddrinfo
     * itself calls EAI_NODATA. */
    waiter->failure_code = status != 0 ? status : UV_EAI_NODATA;
    snprintf(waiter->failure, sizeof(waiter->failure), "cannot resolve '%s': %s",
             waiter->target, uv_strerror(waiter->failure_code));
    uv_freeaddrinfo(res);
    waiter->op_done = true;
    ir_lua_wake(waiter);
    return;
  }
  uv_freeaddrinfo(res);
  if (waiter->kind == IR_WAIT_RESOLVE) {
    waiter->op_done = true;
    ir_lua_wake(waiter);
    return;
  }
  ir__submit(waiter);
}

int ir_lua_getaddrinfo(uv_loop_t* loop, uv_getaddrinfo_t* req, uv_getaddrinfo_cb cb,
                       const char* name, int family) {
  struct addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = family == 4 ? AF_INET : family == 6 ? AF_INET6 : AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM; /* One answer per address, not one per type. */
  return uv_getaddrinfo(loop, req, cb, name, NULL, &hints);
}

/* Shutdown of a lookup in flight: nobody will take its values. The lookup
 * is cancelled if it has not started; either way ir__on_resolved runs while
 * the runtime runs its loop to the end, and frees the waiter. */
static void ir__lookup_shutdown(ir_lua_owner_t* owner) {
  ir_lua_waiter_t* waiter = ir_lua_waiter_of_owner(owner);
  waiter->task = NULL;
  waiter->consumed = true;
  (void)uv_cancel((uv_req_t*)&waiter->resolve);
}

void ir_lua_probe_cancel(ir_lua_waiter_t* waiter) {
  ir_lua_runtime_t* rt = waiter->rt;
  if (waiter->owner.next != NULL) {
    /* A lookup in flight: ir__on_resolved frees the waiter when it ends,
     * and submits nothing, since the waiter is consumed. */
    (void)uv_cancel((uv_req_t*)&waiter->resolve);
  } else if (!waiter->op_done && rt->engine != NULL) {
    /* A probe in the engine: it ends now, with its one result (ERROR,
     * ECANCELED, counted by the engine), and ir__on_probe_result frees the
     * waiter. A reply that comes later is counted as late. */
    ir_engine_cancel_group(rt->engine, waiter);
  } else {
    ir_lua_waiter_op_done(waiter); /* Its values were ready: free it. */
  }
}

/* Starts resolving waiter->target for the family (0, 4 or 6). */
static void ir__start_resolve(ir_lua_runtime_t* rt, ir_lua_waiter_t* waiter,
                              int family) {
  waiter->resolve.data = waiter;
  int err = ir_lua_getaddrinfo(&rt->loop, &waiter->resolve, ir__on_resolved,
                               waiter->target, family);
  if (err == 0) {
    ir_lua_owner_link(rt, &waiter->owner, ir__lookup_shutdown);
  } else {
    snprintf(waiter->failure, sizeof(waiter->failure), "cannot resolve '%s': %s",
             waiter->target, uv_strerror(err));
    waiter->failure_code = err;
    waiter->op_done = true;
    waiter->done = true;
  }
}

/* Checks the target argument and whether a literal address fits the forced
 * family. Returns true with *literal filled for an address; false for a name.
 * Pushes nil, message, code and sets *mismatch when the family does not fit:
 * the code getaddrinfo gives for a name without an address of the family. */
static bool ir__check_target(lua_State* L, int family, ir_addr_t* literal,
                             bool* mismatch) {
  size_t len;
  const char* target = luaL_checklstring(L, 1, &len);
  luaL_argcheck(L, len > 0 && len < 256, 1, "target must be an address or host name");
  *mismatch = false;
  if (ir_addr_parse(target, literal) != 0) {
    return false;
  }
  if (family != 0 && literal->family != (family == 4 ? AF_INET : AF_INET6)) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s is not an IPv%d address", target, family);
    lua_pushstring(L, ir_error_name(UV_EAI_ADDRFAMILY));
    *mismatch = true;
  }
  return true;
}

/* icmprun.ping(target, opts) -> result table | nil, message, code */
static int ir__l_ping(lua_State* L) {
  ir_lua_runtime_t* rt = lua_touserdata(L, lua_upvalueindex(1));
  ir_probe_spec_t spec;
  int family = ir_lua_probe_options(L, 2, &spec, NULL);
  if (family == 0 && spec.source.family != AF_UNSPEC) {
    /* The one probe leaves from the source: the target must be of its
     * family, and a name resolves in it. */
    family = spec.source.family == AF_INET ? 4 : 6;
  }
  ir_addr_t literal;
  bool mismatch;
  bool is_literal = ir__check_target(L, family, &literal, &mismatch);
  if (mismatch) {
    return 3;
  }
  /* The size range checked with the options is IPv6's; IPv4's is smaller, and
   * known here when the target or the forced family is IPv4. */
  if (spec.size > IR_MAX_SIZE_V4 &&
      ((is_literal && literal.family == AF_INET) || family == 4)) {
    char why[96];
    snprintf(why, sizeof(why),
             "option 'size' must be an integer in 0..%d for IPv4, got %u",
             IR_MAX_SIZE_V4, spec.size);
    return luaL_argerror(L, 2, why);
  }
  ir_lua_task_t* task = ir_lua_check_can_wait(L, rt, "ping");
  ir_lua_waiter_t* waiter = ir_lua_waiter_new(rt, IR_WAIT_PROBE, task);
  if (waiter == NULL) {
    return luaL_error(L, "ping: out of memory");
  }
  waiter->spec = spec;
  snprintf(waiter->target, sizeof(waiter->target), "%s", lua_tostring(L, 1));
  if (is_literal) {
    waiter->spec.addr = literal;
    ir__submit(waiter);
  } else {
    ir__start_resolve(rt, waiter, family);
  }
  return ir_lua_wait(L, waiter);
}

/* icmprun.resolve(name, {family = 4|6}) -> address text | nil, message, code */
static int ir__l_resolve(lua_State* L) {
  ir_lua_runtime_t* rt = lua_touserdata(L, lua_upvalueindex(1));
  double family = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    ir_lua_opt_number(L, 2, "family", 4, 6, true, &family);
    luaL_argcheck(L, family != 5, 2, "option 'family' must be 4 or 6, got 5");
  }
  ir_addr_t literal;
  bool mismatch;
  bool is_literal = ir__check_target(L, (int)family, &literal, &mismatch);
  if (mismatch) {
    return 3;
  }
  ir_lua_task_t* task = ir_lua_check_can_wait(L, rt, "resolve");
  ir_lua_waiter_t* waiter = ir_lua_waiter_new(rt, IR_WAIT_RESOLVE, task);
  if (waiter == NULL) {
    return luaL_error(L, "resolve: out of memory");
  }
  snprintf(waiter->target, sizeof(waiter->target), "%s", lua_tostring(L, 1));
  if (is_literal) {
    waiter->spec.addr = literal;
    waiter->op_done = true;
    waiter->done = true;
  } else {
    ir__start_resolve(rt, waiter, (int)family);
  }
  return ir_lua_wait(L, waiter);
}

int ir_lua_push_probe_values(lua_State* L, ir_lua_waiter_t* waiter) {
  if (waiter->failure[0] != '\0') {
    lua_pushnil(L);                                         /* nil */
    lua_pushstring(L, waiter->failure);                     /* nil msg */
    lua_pushstring(L, ir_error_name(waiter->failure_code)); /* nil msg code */
    return 3;
  }
  if (waiter->kind == IR_WAIT_RESOLVE) {
    ir_lua_push_addr(L, &waiter->spec.addr); /* addr */
    return 1;
  }
  ir_lua_push_keys(L);                           /* keys */
  ir_lua_push_result(L, -1, &waiter->result, 0); /* keys r */
  lua_remove(L, -2);                             /* r */
  return 1;
}

/* Sets t.ipv4 (or ipv6) to the kind of socket that probes of the family
 * with spec's binding use, opening it, or t.ipv4_error and t.ipv4_code to
 * why it cannot be opened or bound. */
static void ir__push_family_info(lua_State* L, ir_lua_runtime_t* rt, int family,
                                 ir_probe_spec_t* spec, const char* kind_key,
                                 const char* error_key, const char* code_key) {
  if (rt->engine == NULL) {
    return;
  }
  spec->addr.family = (uint16_t)family;
  int err = ir_engine_open_for(rt->engine, spec);
  const char* kind = ir_engine_socket_kind_for(rt->engine, spec);
  const char* error = ir_engine_probe_error(rt->engine, spec);
  if (kind != NULL) {
    lua_pushstring(L, kind);
    lua_setfield(L, -2, kind_key);
  }
  if (err != 0) {
    lua_pushstring(L, error != NULL ? error : uv_strerror(err));
    lua_setfield(L, -2, error_key);
    lua_pushstring(L, ir_error_name(err));
    lua_setfield(L, -2, code_key);
  }
}

/* icmprun.info([opts]) -> { ipv4 = "dgram"|"raw"|nil, ipv6 = ...,
 * ipv4_error = msg, ipv4_code = "EACCES", ... }
 * Opens both sockets, so a script can check its permissions up front; with
 * opts.source or opts.interface, the sockets bound to them, so that it can
 * check its binding too (a source applies to its own family only); and
 * loop_slice, the scheduling slice in seconds granted to the loop's thread
 * (loop_slice.h), absent when it keeps the kernel's. */
static int ir__l_info(lua_State* L) {
  ir_lua_runtime_t* rt = lua_touserdata(L, lua_upvalueindex(1));
  ir_probe_spec_t spec;
  (void)ir_lua_probe_options(L, 1, &spec, NULL);
  lua_createtable(L, 0, 4); /* info */
  ir__push_family_info(L, rt, AF_INET, &spec, "ipv4", "ipv4_error", "ipv4_code");
  ir__push_family_info(L, rt, AF_INET6, &spec, "ipv6", "ipv6_error", "ipv6_code");
  if (rt->loop_slice_ns > 0) {
    lua_pushnumber(L, (lua_Number)rt->loop_slice_ns / 1e9); /* info s */
    lua_setfield(L, -2, "loop_slice");                      /* info */
  }
  return 1;
}

/* icmprun.counters() -> the engine's counters, including the traffic that never
 * became a result (late, duplicate, foreign, malformed). */
static int ir__l_counters(lua_State* L) {
  ir_lua_runtime_t* rt = lua_touserdata(L, lua_upvalueindex(1));
  ir_counters_t c;
  memset(&c, 0, sizeof(c));
  if (rt->engine != NULL) {
    ir_engine_counters(rt->engine, &c);
  }
  /* A sweep's worker threads have engines of their own. */
  const uint64_t* w = (const uint64_t*)&rt->worker_counters;
  uint64_t* sum = (uint64_t*)&c;
  for (size_t i = 0; i < sizeof(c) / sizeof(uint64_t); i++) {
    if (i != offsetof(ir_counters_t, corrupt_offset) / sizeof(uint64_t)) {
      sum[i] += w[i];
    } else if (rt->worker_counters.corrupted > 0) {
      sum[i] = w[i];
    }
  }
  struct {
    const char* name;
    uint64_t value;
  } fields[] = {{"sent", c.sent},
                {"results", c.results},
                {"replies", c.replies},
                {"timeouts", c.timeouts},
                {"icmp_errors", c.icmp_errors},
                {"send_errors", c.send_errors},
                {"cancelled", c.cancelled},
                {"send_retries", c.send_retries},
                {"send_blocked", c.send_blocked},
                {"late", c.late},
                {"duplicates", c.duplicates},
                {"foreign", c.foreign},
                {"corrupted", c.corrupted},
                {"wrong_seq", c.wrong_seq},
                {"malformed", c.malformed},
                {"clock_steps", c.clock_steps},
                {"pending", rt->engine != NULL ? ir_engine_pending(rt->engine) : 0},
                {"workers", rt->workers_running}};
  lua_createtable(L, 0, (int)IR_ARRAY_SIZE(fields) + 1); /* t */
  for (size_t i = 0; i < IR_ARRAY_SIZE(fields); i++) {
    lua_pushinteger(L, (lua_Integer)fields[i].value); /* t v */
    lua_setfield(L, -2, fields[i].name);              /* t */
  }
  if (c.corrupted > 0) {
    lua_pushinteger(L, (lua_Integer)c.corrupt_offset); /* t v */
    lua_setfield(L, -2, "corrupt_offset");             /* t */
  }
  return 1;
}

/* icmprun.STATUSES: the result statuses in the engine's order, so that
 * scripts and the library list them from one place. */
static void ir__push_statuses(lua_State* L) {
  lua_createtable(L, IR_STATUS_ERROR + 1, 0); /* t */
  for (int status = IR_STATUS_REPLY; status <= IR_STATUS_ERROR; status++) {
    lua_pushstring(L, ir_status_name((ir_status_t)status)); /* t name */
    lua_rawseti(L, -2, status + 1);                         /* t */
  }
}

/* icmprun.limits: the largest values the options accept, from the constants
 * the checks themselves use. */
static void ir__push_limits(lua_State* L) {
  static const struct {
    const char* name;
    lua_Integer value;
  } limits[] = {{"max_size_v4", IR_MAX_SIZE_V4},
                {"max_size_v6", IR_MAX_SIZE_V6},
                {"max_timeout", IR_MAX_WAIT_MS},
                {"max_interval", IR_MAX_WAIT_MS},
                {"max_ttl", 255},
                {"max_tos", 255},
                {"default_size", IR_DEFAULT_SIZE},
                {"default_timeout", IR_DEFAULT_TIMEOUT_MS},
                {"checked_payload", IR_CHECKED_PAYLOAD}};
  lua_createtable(L, 0, (int)IR_ARRAY_SIZE(limits)); /* t */
  for (size_t i = 0; i < IR_ARRAY_SIZE(limits); i++) {
    lua_pushinteger(L, limits[i].value); /* t v */
    lua_setfield(L, -2, limits[i].name); /* t */
  }
}

void ir_lua_register_probe(lua_State* L, int module_index) {
  module_index = lua_absindex(L, module_index);
  ir__push_statuses(L);                      /* STATUSES */
  lua_setfield(L, module_index, "STATUSES"); /* */
  ir__push_limits(L);                        /* limits */
  lua_setfield(L, module_index, "limits");   /* */
  static const luaL_Reg funcs[] = {{"ping", ir__l_ping},
                                   {"resolve", ir__l_resolve},
                                   {"info", ir__l_info},
                                   {"counters", ir__l_counters},
                                   {NULL, NULL}};
  lua_pushvalue(L, module_index);                     /* M */
  lua_getfield(L, LUA_REGISTRYINDEX, IR_RUNTIME_KEY); /* M rt */
  luaL_setfuncs(L, funcs, 1);                         /* M */
  lua_pop(L, 1);                                      /* */
}
