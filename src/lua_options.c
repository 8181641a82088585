/* Checking option tables: names, types and ranges, with errors naming them. */
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "lua_runtime.h"
#include "packet_flow.h"

/* Options every probe takes; anything else in the table is a caller mistake. */
static const char* const ir__probe_options[] = {
    "timeout", "size", "ttl", "tos", "family", "flow", "source", "interface", NULL};

/* Reads opts.name as a number within [min, max]; absent keeps *value. Raises an
 * argument error naming the option when it is of the wrong type or range. */
void ir_lua_opt_number(lua_State* L, int opts, const char* name, double min, double max,
                       bool integer, double* value) {
  lua_getfield(L, opts, name); /* v */
  if (!lua_isnil(L, -1)) {
    int is_num = 0;
    lua_Number n = lua_tonumberx(L, -1, &is_num);
    if (!is_num || (integer && floor(n) != n) || !(n >= min && n <= max)) {
      const char* got = is_num ? lua_tostring(L, -1) : luaL_typename(L, -1);
      char why[160];
      snprintf(why, sizeof(why), "option '%s' must be %s in %.0f..%.0f, got %s", name,
               integer ? "an integer" : "a number", min, max, got);
      luaL_argerror(L, opts, why);
    }
    *value = n;
  }
  lua_pop(L, 1); /* */
}

void ir_lua_check_option_names(lua_State* L, int opts, const char* const* extra) {
  lua_pushnil(L);                  /* nil */
  while (lua_next(L, opts) != 0) { /* key value */
    bool known = false;
    if (lua_type(L, -2) == LUA_TSTRING) {
      const char* key = lua_tostring(L, -2);
      for (int i = 0; ir__probe_options[i] != NULL; i++) {
        known = known || strcmp(key, ir__probe_options[i]) == 0;
      }
      for (int i = 0; extra != NULL && extra[i] != NULL; i++) {
        known = known || strcmp(key, extra[i]) == 0;
      }
    }
    if (!known) {
      lua_pop(L, 1); /* key */
      luaL_argerror(
          L, opts,
          lua_pushfstring(L, "unknown option '%s'", luaL_tolstring(L, -1, NULL)));
    }
    lua_pop(L, 1); /* key */
  }
}

/* Reads opts.source (a numeric address) and opts.interface (a name, as
 * `ip link` shows it) into spec; raises naming the option when either is
 * not one, or when the source's family is not the one forced. */
static void ir__opt_binding(lua_State* L, int opts, ir_probe_spec_t* spec, int family) {
  lua_getfield(L, opts, "source"); /* source */
  if (!lua_isnil(L, -1)) {
    const char* text = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (text == NULL || ir_addr_parse(text, &spec->source) != 0) {
      luaL_argerror(L, opts,
                    lua_pushfstring(L,
                                    "option 'source' must be a numeric IPv4 or IPv6 "
                                    "address, got %s",
                                    text != NULL ? text : luaL_typename(L, -1)));
    }
    int source_family = spec->source.family == AF_INET ? 4 : 6;
    if (family != 0 && family != source_family) {
      luaL_argerror(L, opts,
                    lua_pushfstring(L, "option 'source' %s is not an IPv%d address",
                                    text, family));
    }
  }
  lua_pop(L, 1);                      /* */
  lua_getfield(L, opts, "interface"); /* interface */
  if (!lua_isnil(L, -1)) {
    size_t len = 0;
    const char* name =
        lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    /* The kernel's rules for a name (dev_valid_name): 1..15 bytes, not "."
     * or "..", no '/', ':' or white space. */
    bool valid = name != NULL && len > 0 && len < IR_DEVICE_LEN &&
                 strlen(name) == len && strcmp(name, ".") != 0 &&
                 strcmp(name, "..") != 0 && strpbrk(name, "/: \t\n\v\f\r") == NULL;
    if (!valid) {
      luaL_argerror(L, opts,
                    lua_pushfstring(L,
                                    "option 'interface' must be an interface name of "
                                    "1..%d characters, got %s",
                                    IR_DEVICE_LEN - 1,
                                    name != NULL ? name : luaL_typename(L, -1)));
    }
    memcpy(spec->device, name, len + 1);
  }
  lua_pop(L, 1); /* */
}

/* Fills spec (all but the address) from the options table at index opts, or
 * defaults when it is absent; returns the forced family (0, 4 or 6). */
int ir_lua_probe_options(lua_State* L, int opts, ir_probe_spec_t* spec,
                         const char* const* extra) {
  double timeout = IR_DEFAULT_TIMEOUT_MS, size = IR_DEFAULT_SIZE, ttl = 0, tos = 0,
         family = 0, flow = 0;
  if (!lua_isnoneornil(L, opts)) {
    luaL_checktype(L, opts, LUA_TTABLE);
    ir_lua_check_option_names(L, opts, extra);
    ir_lua_opt_number(L, opts, "timeout", 0, IR_MAX_WAIT_MS, false, &timeout);
    ir_lua_opt_number(L, opts, "size", 0, IR_MAX_SIZE_V6, true, &size);
    ir_lua_opt_number(L, opts, "ttl", 1, 255, true, &ttl);
    ir_lua_opt_number(L, opts, "tos", 0, 255, true, &tos);
    ir_lua_opt_number(L, opts, "family", 4, 6, true, &family);
    if (family == 5) {
      luaL_argerror(L, opts, "option 'family' must be 4 or 6, got 5");
    }
    /* A flow key keeps the checksum of every probe that carries it constant,
     * which takes two payload bytes after the cookie. */
    ir_lua_opt_number(L, opts, "flow", 1, UINT16_MAX, true, &flow);
    if (flow != 0 && size < IR_FLOW_MIN_SIZE) {
      luaL_argerror(
          L, opts,
          lua_pushfstring(L, "option 'flow' needs a size of at least %d, got %d",
                          IR_FLOW_MIN_SIZE, (int)size));
    }
  }
  memset(spec, 0, sizeof(*spec));
  if (!lua_isnoneornil(L, opts)) {
    ir__opt_binding(L, opts, spec, (int)family);
  }
  spec->timeout_ms = (uint32_t)ceil(timeout);
  spec->size = (uint32_t)size;
  spec->ttl = (int)ttl;
  spec->tos = (int)tos;
  spec->flow = (uint16_t)flow;
  return (int)family;
}
