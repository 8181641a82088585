/* SPDX-License-Identifier: MIT */
/* icmprun.render: the exporter's scrape rendered on the runtime's background
 * thread (see expo.h and background.h). */
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "background.h"
#include "expo.h"
#include "lua_render.h"
#include "lua_runtime.h"
#include "prober_stats.h"

#define IR_RENDER_META "icmprun.render.job"

/* What the background thread does on the job's next turn. */
typedef enum ir_render_step_e { IR_RENDER_FORMAT, IR_RENDER_GZIP } ir_render_step_t;

/* Who has a job. The loop hands it over (IDLE -> WORKING); the thread hands
 * it back (WORKING -> DONE), and the loop sees that when it next looks
 * (DONE -> IDLE). A job closed while the thread has it is left to the thread
 * (WORKING -> ABANDONED), which frees it. */
typedef enum ir_render_phase_e {
  IR_RENDER_IDLE,
  IR_RENDER_WORKING,
  IR_RENDER_DONE,
  IR_RENDER_ABANDONED,
} ir_render_phase_t;

/* A render job: the snapshot the loop fills, then the text (and its gzip)
 * that the background thread writes. Allocated by `render.new` and pointed
 * at by its userdata box. While the thread has it, snapshot and text are
 * the thread's. */
typedef struct ir_render_job_s {
  ir_background_item_t item;
  ir_lua_runtime_t* rt;
  ir_render_step_t step;
  int gzip_level;
  _Atomic int phase; /* An ir_render_phase_t. */
  int error;         /* Negative errno of the last step, 0 if it went well. */
  ir_expo_layout_t layout;
  char* statuses[IR_EXPO_MAX_STATUSES]; /* Keys of a target's `results`. */
  /* Each status's index in a prober's counters (an ir_status_t), or -1. */
  int status_index[IR_EXPO_MAX_STATUSES];
  ir_expo_snapshot_t snap;
  char* tail;
  size_t tail_len;
  ir_expo_text_t plain;
  ir_expo_text_t gzip;
} ir_render_job_t;

typedef struct ir_render_box_s {
  ir_render_job_t* job;
} ir_render_box_t;

static void ir__job_free(ir_render_job_t* job) {
  ir_expo_layout_clear(&job->layout);
  for (int i = 0; i < IR_EXPO_MAX_STATUSES; i++) {
    free(job->statuses[i]);
  }
  ir_expo_snapshot_clear(&job->snap);
  free(job->tail);
  ir_expo_text_clear(&job->plain);
  ir_expo_text_clear(&job->gzip);
  free(job);
}

/* ---- the background thread's side ----------------------------------------- */

static void ir__job_run(ir_background_item_t* item, bool cancelled) {
  ir_render_job_t* job = IR_CONTAINER_OF(item, ir_render_job_t, item);
  if (atomic_load(&job->phase) == IR_RENDER_ABANDONED) {
    ir__job_free(job);
    return;
  }
  if (cancelled) {
    job->error = -ECANCELED;
  } else if (job->step == IR_RENDER_FORMAT) {
    job->error =
        ir_expo_render(&job->layout, &job->snap, job->tail, job->tail_len, &job->plain);
  } else {
    job->error = ir_expo_gzip(&job->plain, job->gzip_level, &job->gzip);
  }
  int working = IR_RENDER_WORKING;
  if (!atomic_compare_exchange_strong(&job->phase, &working, IR_RENDER_DONE)) {
    ir__job_free(job); /* Closed while it ran. */
  }
}

/* ---- the loop's side -------------------------------------------------------- */

/* Whether the background thread has the job. A step it finished is taken
 * back here, and the snapshot, copied into the text, is freed here: the
 * loop's thread allocated it, and glibc frees a large chunk under the lock
 * of the arena it came from, trimming the heap with a system call at
 * times; the background thread (at nice 10) preempted there would keep the
 * loop's thread waiting on its next malloc. */
static bool ir__job_busy(ir_render_job_t* job) {
  int phase = atomic_load(&job->phase);
  if (phase == IR_RENDER_DONE) {
    atomic_store(&job->phase, IR_RENDER_IDLE);
    ir_expo_snapshot_clear(&job->snap);
  }
  return phase == IR_RENDER_WORKING;
}

/* The runtime's shutdown: steps not started end as cancelled, and the
 * thread is joined before the loop's memory goes. */
static void ir__background_shutdown(ir_lua_owner_t* owner) {
  ir_lua_runtime_t* rt = IR_CONTAINER_OF(owner, ir_lua_runtime_t, background_owner);
  ir_background_stop(rt->background);
  rt->background = NULL;
}

static int ir__push_error(lua_State* L, int err) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", uv_err_name(err), uv_strerror(err));
  lua_pushstring(L, uv_err_name(err));
  return 3;
}

static int ir__job_queue(lua_State* L, ir_render_job_t* job, ir_render_step_t step) {
  ir_lua_runtime_t* rt = job->rt;
  if (rt->closing) {
    return ir__push_error(L, UV_ECANCELED);
  }
  if (rt->background == NULL) {
    int err = ir_background_start(&rt->background);
    if (err != 0) {
      return ir__push_error(L, err);
    }
    ir_lua_owner_link(rt, &rt->background_owner, ir__background_shutdown);
  }
  job->step = step;
  job->error = 0;
  job->item.run = ir__job_run;
  atomic_store(&job->phase, IR_RENDER_WORKING);
  ir_background_submit(rt->background, &job->item);
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- the layout ---------------------------------------------------------- */

/* A copy of layout[name], which must be a string. */
static char* ir__layout_string(lua_State* L, int idx, const char* name) {
  if (lua_getfield(L, idx, name) != LUA_TSTRING) { /* ... v */
    luaL_error(L, "render.new: layout.%s must be a string", name);
  }
  char* copy = strdup(lua_tostring(L, -1));
  lua_pop(L, 1); /* ... */
  if (copy == NULL) {
    luaL_error(L, "render.new: out of memory");
  }
  return copy;
}

/* Copies layout[name], a list of strings, into out; returns its length. */
static int ir__layout_list(lua_State* L, int idx, const char* name, char** out,
                           int max) {
  if (lua_getfield(L, idx, name) != LUA_TTABLE) { /* ... list */
    luaL_error(L, "render.new: layout.%s must be a list of strings", name);
  }
  int n = (int)luaL_len(L, -1);
  if (n < 1 || n > max) {
    luaL_error(L, "render.new: layout.%s must have 1 to %d strings", name, max);
  }
  for (int i = 0; i < n; i++) {
    if (lua_rawgeti(L, -1, i + 1) != LUA_TSTRING) { /* ... list s */
      luaL_error(L, "render.new: layout.%s[%d] must be a string", name, i + 1);
    }
    out[i] = strdup(lua_tostring(L, -1));
    lua_pop(L, 1); /* ... list */
    if (out[i] == NULL) {
      luaL_error(L, "render.new: out of memory");
    }
  }
  lua_pop(L, 1); /* ... */
  return n;
}

/* render.new(layout) -> job. The layout (see icmprun.exporter.metrics) is
 * copied; a job renders one scrape. */
static int ir__l_new(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  ir_lua_runtime_t* rt = ir_lua_runtime(L);
  if (rt == NULL) {
    return luaL_error(L, "render.new: icmprun is not open");
  }
  /* The box first, empty: if anything below raises, __gc finds nothing to
   * free but the job, which it frees. */
  ir_render_box_t* box = lua_newuserdatauv(L, sizeof(*box), 0); /* layout box */
  box->job = NULL;
  luaL_setmetatable(L, IR_RENDER_META);
  ir_render_job_t* job = calloc(1, sizeof(*job));
  if (job == NULL) {
    return luaL_error(L, "render.new: out of memory");
  }
  box->job = job;
  job->rt = rt;
  ir_expo_layout_t* lay = &job->layout;
  if (ir__layout_list(L, 1, "headers", lay->headers, IR_EXPO_FAMILIES) !=
      IR_EXPO_FAMILIES) {
    return luaL_error(L, "render.new: layout.headers must have %d strings",
                      IR_EXPO_FAMILIES);
  }
  lay->nstatuses =
      ir__layout_list(L, 1, "status_labels", lay->status_labels, IR_EXPO_MAX_STATUSES);
  int nstatuses =
      ir__layout_list(L, 1, "statuses", job->statuses, IR_EXPO_MAX_STATUSES);
  if (nstatuses != lay->nstatuses) {
    return luaL_error(L,
                      "render.new: layout.statuses and status_labels differ in length");
  }
  for (int i = 0; i < nstatuses; i++) {
    job->status_index[i] = ir_status_from_name(job->statuses[i]);
  }
  lua_getfield(L, 1, "error_status"); /* layout box e */
  lua_Integer error_status = lua_tointeger(L, -1);
  lua_pop(L, 1); /* layout box */
  if (error_status < 1 || error_status > nstatuses) {
    return luaL_error(L, "render.new: layout.error_status must be a status's index");
  }
  lay->error_status = (int)error_status - 1;
  lay->nles = ir__layout_list(L, 1, "les", lay->les, IR_EXPO_MAX_LES);
  lay->requests_name = ir__layout_string(L, 1, "requests_name");
  lay->results_name = ir__layout_string(L, 1, "results_name");
  lay->bucket_name = ir__layout_string(L, 1, "bucket_name");
  lay->sum_name = ir__layout_string(L, 1, "sum_name");
  lay->count_name = ir__layout_string(L, 1, "count_name");
  lay->ttl_name = ir__layout_string(L, 1, "ttl_name");
  lay->send_errors_name = ir__layout_string(L, 1, "send_errors_name");
  lay->duplicates_name = ir__layout_string(L, 1, "duplicates_name");
  return 1;
}

/* ---- the job's methods ---------------------------------------------------- */

static ir_render_job_t* ir__check_job(lua_State* L) {
  ir_render_box_t* box = luaL_checkudata(L, 1, IR_RENDER_META);
  if (box->job == NULL) {
    luaL_error(L, "render: the job is closed");
  }
  return box->job;
}

static ir_render_job_t* ir__check_idle(lua_State* L) {
  ir_render_job_t* job = ir__check_job(L);
  if (ir__job_busy(job)) {
    luaL_error(L, "render: the job is busy on the background thread");
  }
  return job;
}

/* Copies the counters of targets[i] (a metrics Target: its label set
 * `key`, and `prober` and `id`, where its counters are kept in C) into the
 * snapshot. A target that its prober no longer counts (a reload removed it
 * while the snapshot was being taken, between two slices) is left out, as
 * the next scrape would leave it out: never written as zeros, which would
 * read as a counter reset. */
static void ir__add_target(lua_State* L, ir_render_job_t* job, int targets,
                           lua_Integer i) {
  if (lua_rawgeti(L, targets, i) != LUA_TTABLE) { /* ... t */
    luaL_error(L, "render: target %d is not a table", (int)i);
  }
  int ti = lua_gettop(L);
  lua_getfield(L, ti, "prober"); /* ... t prober */
  lua_getfield(L, ti, "id");     /* ... t prober id */
  int ncounts;
  const ir_prober_stats_t* st =
      ir_lua_prober_stats(L, ti + 1, lua_tointeger(L, -1), &ncounts);
  if (st == NULL) {
    lua_settop(L, ti - 1); /* ... */
    return;
  }
  size_t key_len;
  lua_getfield(L, ti, "key"); /* ... t prober id key */
  const char* key = lua_tolstring(L, -1, &key_len);
  if (key == NULL) {
    luaL_error(L, "render: target %d has no key", (int)i);
  }
  int64_t *results, *counts;
  ir_expo_target_t* t =
      ir_expo_snapshot_add(&job->snap, &job->layout, &results, &counts);
  if (t == NULL || ir_expo_snapshot_key(&job->snap, t, key, key_len) != 0) {
    luaL_error(L, "render: out of memory");
  }
  lua_settop(L, ti - 1); /* ... */
  t->sent = st->sent;
  t->replies = st->replies;
  t->duplicates = st->duplicates;
  t->has_ttl = st->has_ttl;
  t->ttl = st->ttl;
  /* No reply yet: the sum is the integer 0, as the Lua renderer writes it. */
  t->rtt_sum_is_integer = st->replies == 0;
  t->rtt_sum_integer = 0;
  t->rtt_sum = st->rtt_sum;
  for (int s = 0; s < job->layout.nstatuses; s++) {
    results[s] = job->status_index[s] >= 0 ? st->results[job->status_index[s]] : 0;
  }
  for (int b = 0; b < job->layout.nles; b++) {
    counts[b] = b < ncounts ? st->counts[b] : 0;
  }
}

/* job:add(targets, from, budget_ms) -> next: copies targets[from], ... into
 * the snapshot, each target whole, until the list ends or budget_ms of
 * wall time has passed; returns the index of the first target not copied
 * (#targets + 1 when done). The caller lets the loop run between calls. */
static int ir__l_add(lua_State* L) {
  ir_render_job_t* job = ir__check_idle(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer i = luaL_checkinteger(L, 3);
  double budget_ms = luaL_checknumber(L, 4);
  lua_Integer n = (lua_Integer)luaL_len(L, 2);
  luaL_argcheck(L, i >= 1, 3, "must be 1 or more");
  /* Room for the whole list at the first call: growing it as targets come
   * would copy megabytes at a time on the loop. */
  if (ir_expo_snapshot_reserve(&job->snap, &job->layout, (size_t)n) != 0) {
    return luaL_error(L, "render: out of memory");
  }
  uint64_t until = uv_hrtime() + (uint64_t)(budget_ms > 0 ? budget_ms * 1e6 : 0);
  for (; i <= n; i++) {
    ir__add_target(L, job, 2, i);
    /* The clock is read every 32 targets: a few microseconds of work. */
    if (i % 32 == 0 && uv_hrtime() >= until) {
      i++;
      break;
    }
  }
  lua_pushinteger(L, i);
  return 1;
}

/* job:start(tail) -> true | nil, message, code: formats the snapshot and
 * the tail (the engine-wide and the exporter's own lines, each starting
 * with a newline) on the background thread. */
static int ir__l_start(lua_State* L) {
  ir_render_job_t* job = ir__check_idle(L);
  size_t len;
  const char* tail = luaL_optlstring(L, 2, "", &len);
  char* copy = malloc(len + 1);
  if (copy == NULL) {
    return luaL_error(L, "render: out of memory");
  }
  memcpy(copy, tail, len + 1);
  free(job->tail);
  job->tail = copy;
  job->tail_len = len;
  ir_expo_text_clear(&job->plain);
  return ir__job_queue(L, job, IR_RENDER_FORMAT);
}

/* job:compress([level=1]) -> true | nil, message, code: gzips the text
 * on the background thread. Level 1: exposition text shrinks about tenfold already,
 * at a fraction of the CPU of zlib's default level. */
static int ir__l_compress(lua_State* L) {
  ir_render_job_t* job = ir__check_idle(L);
  lua_Integer level = luaL_optinteger(L, 2, 1);
  luaL_argcheck(L, level >= 0 && level <= 9, 2, "must be a zlib level, 0 to 9");
  job->gzip_level = (int)level;
  ir_expo_text_clear(&job->gzip);
  return ir__job_queue(L, job, IR_RENDER_GZIP);
}

/* job:ready() -> true when the last step is done | false while it runs |
 * nil, message, code when it failed. */
static int ir__l_ready(lua_State* L) {
  ir_render_job_t* job = ir__check_job(L);
  if (ir__job_busy(job)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (job->error != 0) {
    return ir__push_error(L, job->error);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static ir_expo_text_t* ir__check_kind(lua_State* L, ir_render_job_t* job, int idx) {
  static const char* const kinds[] = {"plain", "gzip", NULL};
  return luaL_checkoption(L, idx, NULL, kinds) == 0 ? &job->plain : &job->gzip;
}

/* ---- the texts ----------------------------------------------------------- */

typedef struct ir_render_text_box_s {
  ir_render_text_t* t; /* NULL once closed. */
} ir_render_text_box_t;

static void ir__text_free_now(ir_background_item_t* item, bool cancelled) {
  (void)cancelled; /* Freed all the same. */
  ir_render_text_t* t = IR_CONTAINER_OF(item, ir_render_text_t, free_item);
  ir_expo_text_clear(&t->text);
  free(t);
}

/* Frees the text on the background thread, which wrote its chunks (and so
 * gives them back to its own malloc arena); on the loop's thread once the
 * runtime has stopped that thread. */
static void ir__text_free(ir_render_text_t* t) {
  t->free_item.run = ir__text_free_now;
  if (t->rt->background != NULL) {
    ir_background_submit(t->rt->background, &t->free_item);
  } else {
    ir__text_free_now(&t->free_item, false);
  }
}

ir_render_text_t* ir_render_text_test(lua_State* L, int idx) {
  ir_render_text_box_t* box = luaL_testudata(L, idx, IR_RENDER_TEXT_META);
  if (box == NULL) {
    return NULL;
  }
  if (box->t == NULL) {
    luaL_error(L, "render: the text is closed");
  }
  return box->t;
}

void ir_render_text_hold(ir_render_text_t* t) {
  t->holds++;
}

void ir_render_text_release(ir_render_text_t* t) {
  if (--t->holds == 0 && t->closed) {
    ir__text_free(t);
  }
}

static ir_render_text_t* ir__check_text(lua_State* L) {
  ir_render_text_box_t* box = luaL_checkudata(L, 1, IR_RENDER_TEXT_META);
  if (box->t == NULL) {
    luaL_error(L, "render: the text is closed");
  }
  return box->t;
}

/* text:size() -> bytes. */
static int ir__l_text_size(lua_State* L) {
  ir_render_text_t* t = ir__check_text(L);
  lua_pushinteger(L, (lua_Integer)t->text.total);
  return 1;
}

/* text:string() -> the whole text as one Lua string: for tests and the
 * callers that need a string; a server hands the text itself to respond. */
static int ir__l_text_string(lua_State* L) {
  ir_render_text_t* t = ir__check_text(L);
  luaL_Buffer b;
  char* out = luaL_buffinitsize(L, &b, t->text.total); /* text buf */
  size_t at = 0;
  for (ir_expo_chunk_t* c = t->text.head; c != NULL; c = c->next) {
    memcpy(out + at, c->data, c->len);
    at += c->len;
  }
  luaL_pushresultsize(&b, at); /* text s */
  return 1;
}

/* close, __close and __gc: the chunks are freed now, or when the last
 * response body reading them lets go. A second close does nothing. */
static int ir__l_text_close(lua_State* L) {
  ir_render_text_box_t* box = luaL_checkudata(L, 1, IR_RENDER_TEXT_META);
  ir_render_text_t* t = box->t;
  box->t = NULL;
  if (t == NULL) {
    return 0;
  }
  t->closed = true;
  if (t->holds == 0) {
    ir__text_free(t);
  }
  return 0;
}

/* job:text(kind) -> text: moves the "plain" or "gzip" text out of the job
 * into a text object (empty if that text was not made, or moved already). */
static int ir__l_text(lua_State* L) {
  ir_render_job_t* job = ir__check_idle(L);
  ir_expo_text_t* from = ir__check_kind(L, job, 2);
  /* The box first, empty: a failure below leaves nothing to free. */
  ir_render_text_box_t* box = lua_newuserdatauv(L, sizeof(*box), 0); /* job kind box */
  box->t = NULL;
  luaL_setmetatable(L, IR_RENDER_TEXT_META);
  ir_render_text_t* t = calloc(1, sizeof(*t));
  if (t == NULL) {
    return luaL_error(L, "render: out of memory");
  }
  t->text = *from;
  t->rt = job->rt;
  *from = (ir_expo_text_t){0};
  box->t = t;
  return 1;
}

/* job:size(kind) -> bytes of that text still in the job. */
static int ir__l_size(lua_State* L) {
  ir_render_job_t* job = ir__check_job(L);
  ir_expo_text_t* text = ir__check_kind(L, job, 2);
  lua_pushinteger(L, ir__job_busy(job) ? 0 : (lua_Integer)text->total);
  return 1;
}

/* __gc and close: the background thread frees the job (the loop does
 * once the runtime has stopped that thread). */
static int ir__l_close(lua_State* L) {
  ir_render_box_t* box = luaL_checkudata(L, 1, IR_RENDER_META);
  ir_render_job_t* job = box->job;
  box->job = NULL;
  if (job == NULL) {
    return 0;
  }
  int working = IR_RENDER_WORKING;
  if (atomic_compare_exchange_strong(&job->phase, &working, IR_RENDER_ABANDONED)) {
    return 0; /* The thread frees it when its step ends. */
  }
  if (job->rt->background != NULL) {
    /* A text left in the job is megabytes: the thread frees those. */
    atomic_store(&job->phase, IR_RENDER_ABANDONED);
    job->item.run = ir__job_run;
    ir_background_submit(job->rt->background, &job->item);
  } else {
    ir__job_free(job);
  }
  return 0;
}

static int ir__render_open(lua_State* L) {
  static const luaL_Reg methods[] = {
      {"add", ir__l_add},           {"start", ir__l_start},
      {"compress", ir__l_compress}, {"ready", ir__l_ready},
      {"text", ir__l_text},         {"size", ir__l_size},
      {"close", ir__l_close},       {NULL, NULL}};
  if (luaL_newmetatable(L, IR_RENDER_META)) { /* mt */
    luaL_newlib(L, methods);                  /* mt methods */
    lua_setfield(L, -2, "__index");           /* mt */
    lua_pushcfunction(L, ir__l_close);        /* mt f */
    lua_setfield(L, -2, "__gc");              /* mt */
    lua_pushcfunction(L, ir__l_close);        /* mt f */
    lua_setfield(L, -2, "__close");           /* mt */
  }
  lua_pop(L, 1); /* */
  static const luaL_Reg text_methods[] = {{"size", ir__l_text_size},
                                          {"string", ir__l_text_string},
                                          {"close", ir__l_text_close},
                                          {NULL, NULL}};
  if (luaL_newmetatable(L, IR_RENDER_TEXT_META)) { /* mt */
    luaL_newlib(L, text_methods);                  /* mt methods */
    lua_setfield(L, -2, "__index");                /* mt */
    lua_pushcfunction(L, ir__l_text_close);        /* mt f */
    lua_setfield(L, -2, "__gc");                   /* mt */
    lua_pushcfunction(L, ir__l_text_close);        /* mt f */
    lua_setfield(L, -2, "__close");                /* mt */
  }
  lua_pop(L, 1);                     /* */
  lua_newtable(L);                   /* M */
  lua_pushcfunction(L, ir__l_new);   /* M f */
  lua_setfield(L, -2, "new");        /* M */
  lua_pushinteger(L, IR_EXPO_CHUNK); /* M n */
  lua_setfield(L, -2, "CHUNK");      /* M */
  return 1;
}

void ir_lua_register_render(lua_State* L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE); /* preload */
  lua_pushcfunction(L, ir__render_open);                     /* preload open */
  lua_setfield(L, -2, "icmprun.render");                     /* preload */
  lua_pop(L, 1);                                             /* */
}
