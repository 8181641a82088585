/* SPDX-License-Identifier: MIT */
/* Checking option tables: names, types and ranges, with errors naming them. */
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "lua_runtime.h"
#include "packet_flow.h"

/* Options every probe takes; anything else in the table is a caller mistake. */
static const char* const ir__probe_options[] = {
    "timeout", "size",   "ttl",       "tos",     "family",
    "flow",    "source", "interface", "payload", NULL};

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

/* Milliseconds in each unit a duration string may carry: the units of the
 * command lines' durations (icmprun.cli.duration_in). */
static const struct {
  const char* unit;
  double ms;
} ir__duration_units[] = {
    {"us", 0.001}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};

/* Parses "500ms", "2s", "1.5m", "250us" or a bare "250" (milliseconds) into
 * *ms; false when text is none of these. Spaces around the number and
 * between it and the unit are allowed, as on the command lines. */
static bool ir__parse_duration(const char* text, double* ms) {
  char* end = NULL;
  while (*text == ' ' || *text == '\t') {
    text++;
  }
  if (!((*text >= '0' && *text <= '9') || *text == '.')) {
    return false; /* No sign, no "inf", no "nan", no hex: a plain decimal. */
  }
  double x = strtod(text, &end);
  if (end == text || (end[-1] != '.' && !(end[-1] >= '0' && end[-1] <= '9'))) {
    return false;
  }
  if (text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    return false;
  }
  while (*end == ' ' || *end == '\t') {
    end++;
  }
  size_t len = strcspn(end, " \t");
  const char* rest = end + len;
  while (*rest == ' ' || *rest == '\t') {
    rest++;
  }
  if (*rest != '\0') {
    return false;
  }
  double scale = len == 0 ? 1 : 0;
  for (size_t i = 0; len > 0 && i < IR_ARRAY_SIZE(ir__duration_units); i++) {
    if (strlen(ir__duration_units[i].unit) == len &&
        strncmp(end, ir__duration_units[i].unit, len) == 0) {
      scale = ir__duration_units[i].ms;
    }
  }
  if (scale == 0) {
    return false;
  }
  *ms = x * scale;
  return true;
}

void ir_lua_opt_duration(lua_State* L, int opts, const char* name, double min,
                         double max, double* ms) {
  lua_getfield(L, opts, name); /* v */
  if (lua_type(L, -1) == LUA_TSTRING) {
    double parsed = 0;
    size_t len = 0;
    const char* text = lua_tolstring(L, -1, &len);
    /* A zero byte inside would hide what follows it from the parser. */
    if (strlen(text) != len || !ir__parse_duration(text, &parsed) ||
        !(parsed >= min && parsed <= max)) {
      char why[200];
      snprintf(why, sizeof(why),
               "option '%s' must be milliseconds in %.0f..%.0f, or a duration with a "
               "unit (us, ms, s, m, h), got '%.40s'",
               name, min, max, text);
      luaL_argerror(L, opts, why);
    }
    *ms = parsed;
    lua_pop(L, 1); /* */
    return;
  }
  lua_pop(L, 1);                                         /* */
  ir_lua_opt_number(L, opts, name, min, max, false, ms); /* Numbers, and the errors. */
}

lua_Number ir_lua_check_duration(lua_State* L, int arg) {
  if (lua_type(L, arg) == LUA_TSTRING) {
    size_t len = 0;
    const char* text = lua_tolstring(L, arg, &len);
    double parsed = 0;
    if (strlen(text) != len || !ir__parse_duration(text, &parsed)) {
      return NAN; /* Fails every range check, with the caller's message. */
    }
    return parsed;
  }
  return luaL_checknumber(L, arg);
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

/* Reads opts.payload: "pattern" (the default: byte i = i, as iputils ping)
 * or "random" (fping -R: pseudo-random bytes, still checked in the reply).
 * Returns true for "random"; raises naming the option for anything else,
 * or for "random" with a flow key (whose balancing bytes assume the
 * pattern). */
static bool ir__opt_payload(lua_State* L, int opts, bool has_flow) {
  lua_getfield(L, opts, "payload"); /* payload */
  bool random = false;
  if (!lua_isnil(L, -1)) {
    const char* text = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (text == NULL || (strcmp(text, "random") != 0 && strcmp(text, "pattern") != 0)) {
      luaL_argerror(L, opts,
                    lua_pushfstring(L,
                                    "option 'payload' must be \"pattern\" or "
                                    "\"random\", got %s",
                                    text != NULL ? text : luaL_typename(L, -1)));
    }
    random = strcmp(text, "random") == 0;
    if (random && has_flow) {
      luaL_argerror(L, opts, "option 'payload' \"random\" cannot go with 'flow'");
    }
  }
  lua_pop(L, 1); /* */
  return random;
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
    ir_lua_opt_duration(L, opts, "timeout", 0, IR_MAX_WAIT_MS, &timeout);
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
    spec->random_payload = ir__opt_payload(L, opts, flow != 0);
  }
  spec->timeout_ms = (uint32_t)ceil(timeout);
  spec->size = (uint32_t)size;
  spec->ttl = (int)ttl;
  spec->tos = (int)tos;
  spec->flow = (uint16_t)flow;
  return (int)family;
}
