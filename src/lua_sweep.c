/* icmprun.sweep: many targets, paced and retried, results as they come. */
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "heap.h"
#include "lua_runtime.h"
#include "targets.h"

#define IR_SWEEP_META "icmprun.sweep"
#define IR_SWEEP_DEFAULT_RATE 1000.0
#define IR_SWEEP_DEFAULT_WINDOW 131072
#define IR_SWEEP_DEFAULT_LIMIT 16777216.0 /* A /8. */
/* The largest burst the token bucket allows: probes sent back to back after
 * a pause, never more than the engine's batch. */
#define IR_SWEEP_MAX_BURST 64.0
/* Probes a sweep leaves queued in the engine at most: two of its batches. */
#define IR_SWEEP_QUEUE_MAX 512

#define ir__container_of(ptr, type, member) \
  ((type*)((char*)(ptr)-offsetof(type, member)))

typedef struct ir_sweep_s ir_sweep_t;

/* One target text being expanded. Freed when nothing refers to it: the walk
 * (while current), jobs of its addresses and results not yet handed out. */
typedef struct ir_source_s {
  char* text;
  size_t text_len;
  uint64_t serial; /* Unique in its sweep: names the text's Lua string. */
  int refs;
  ir_block_t block;
  ir_walk_t walk;
} ir_source_t;

/* One address of a sweep: `count` probes spaced by `interval`. Lives until
 * the last of its probes has its final result. */
typedef struct ir_job_s {
  ir_sweep_t* sweep;
  ir_source_t* source;
  ir_addr_t addr;
  ir_heap_node_t next_send; /* In sweep->schedule while waiting for its turn. */
  uint32_t next_n;          /* Number of the next probe to send, 1-based. */
  uint32_t live_shots;      /* Probes sent or waiting for a retry. */
} ir_job_t;

/* One probe of a job, through all its attempts. The engine's data pointer. */
typedef struct ir_shot_s {
  ir_job_t* job;
  struct ir_shot_s* next_retry;
  uint32_t n;
  uint32_t attempt; /* 0 for the first send. */
  double timeout_ms;
} ir_shot_t;

/* A result waiting for the script to take it. */
typedef struct ir_sweep_result_s {
  ir_result_t result;
  ir_source_t* source;
  uint32_t n;
  uint32_t attempt;
  /* Not 0: the source is a name that did not resolve, and this is the
   * libuv error (UV_EAI_*); the result has no address and no probe. */
  int resolve_error;
} ir_sweep_result_t;

/* Allocated by icmprun.sweep. Its references (`refs`) are its userdata
 * until that is closed or collected, its two handles until both have closed,
 * every probe the engine still holds, and a name lookup until its callback
 * has run: freed on the last of them. It is linked into its runtime's owner
 * list for all its life, so that shutdown closes its handles and cancels its
 * lookup (ir__sweep_shutdown) however the script left it. */
struct ir_sweep_s {
  ir_lua_owner_t owner;
  ir_lua_runtime_t* rt;
  int refs;
  bool closed;  /* Closed or shut down: nothing more is sent or handed out. */
  bool stopped; /* stop(): nothing more is sent; what is known still comes. */
  bool pumping;
  char* error;        /* Set: the iterator raises it at once. */
  char* target_error; /* A bad target found while expanding lazily: raised
                         once the results of the targets before it are out. */

  /* Options. */
  ir_probe_spec_t probe;
  int family;
  uint32_t count;
  double interval_ms;
  double rate; /* Probes per second; 0 for unpaced. */
  uint32_t retries;
  double backoff;
  bool random;
  uint64_t seed;
  uint64_t limit;
  uint32_t window;
  bool every_attempt;
  uint32_t shard_index; /* 0-based: this sweep is shard index + 1 of count. */
  uint32_t shard_count;

  /* Targets: where the next source comes from. */
  bool lua_exhausted;
  lua_Integer next_index; /* In a targets table (or 1 for a single string). */
  uint64_t expanded;      /* Addresses in all sources so far, for the limit. */
  ir_source_t* current;
  ir_source_t* next_source; /* Fetched ahead, so turns keep their order. */
  uint64_t sources_made;    /* Serial of the last source. */
  uint64_t target_serial;   /* Source whose text is the userdata's uservalue 2. */
  bool resolving;
  char resolving_name[256];
  uv_getaddrinfo_t resolve;

  /* Sending. */
  ir_heap_t schedule;       /* Jobs whose next probe has a time to wait for. */
  uint64_t schedule_ticket; /* Ties: equal times keep their order. */
  ir_shot_t* retry_head;    /* Shots to resend, first come first served. */
  ir_shot_t* retry_tail;
  uint32_t in_flight; /* Shots handed to the engine and not yet returned. */
  double tokens;
  uint64_t tokens_at_ns;
  uint64_t start_ns; /* When the sweep was made: new addresses' turns count from it. */
  uint64_t drawn;    /* Addresses drawn from the targets so far. */
  uv_timer_t timer;  /* Next token, or the next scheduled probe. */
  uv_idle_t refill;  /* Active while the engine's queue is full. */
  bool handles_open;
  int closing_handles;

  /* Results, a ring that grows as needed. */
  ir_sweep_result_t* results;
  uint32_t results_cap;
  uint32_t results_head;
  uint32_t results_len;

  /* Calls of the iterator that wait, oldest first: several tasks may pull
   * from one sweep. Each wake ends all their waits; each resumed call takes
   * a result if one is left, or waits again (see ir__sweep_step). */
  ir_lua_waiter_t** waiters;
  uint32_t waiters_len;
  uint32_t waiters_cap;

  /* Recycled jobs and shots: a sweep makes one of each per probe. */
  ir_job_t* free_jobs;
  ir_shot_t* free_shots;
};

typedef struct ir_sweep_ref_s {
  ir_sweep_t* sweep;
} ir_sweep_ref_t;

static void ir__sweep_pump(ir_sweep_t* s);
static void ir__on_sweep_refill(uv_idle_t* idle);
static void ir__sweep_wake(ir_sweep_t* s);

/* ---- Ownership ------------------------------------------------------------ */

static void ir__source_release(ir_source_t* source) {
  if (source != NULL && --source->refs == 0) {
    free(source->text);
    free(source);
  }
}

static void ir__shot_free(ir_sweep_t* s, ir_shot_t* shot) {
  shot->next_retry = s->free_shots;
  s->free_shots = shot;
}

/* Stops expanding at a bad target; the iterator raises the message after
 * handing out the results of every target before it. */
static void ir__sweep_target_error(ir_sweep_t* s, const char* message) {
  if (s->target_error == NULL) {
    s->target_error = strdup(message);
  }
  s->lua_exhausted = true;
  ir__sweep_wake(s);
}

static void ir__sweep_free(ir_sweep_t* s) {
  ir_lua_owner_unlink(&s->owner);
  free(s->waiters);
  free(s->target_error);
  while (s->free_shots != NULL) {
    ir_shot_t* shot = s->free_shots;
    s->free_shots = shot->next_retry;
    free(shot);
  }
  while (s->free_jobs != NULL) {
    ir_job_t* job = s->free_jobs;
    s->free_jobs = (ir_job_t*)job->source;
    free(job);
  }
  free(s->error);
  ir_heap_free(&s->schedule);
  free(s->results);
  free(s);
}

static void ir__sweep_release(ir_sweep_t* s) {
  if (--s->refs == 0) {
    ir__sweep_free(s);
  }
}

/* The handles hold one reference together, dropped when both have closed. */
static void ir__on_handle_closed(uv_handle_t* handle) {
  ir_sweep_t* s = handle->data;
  if (--s->closing_handles == 0) {
    ir__sweep_release(s);
  }
}

static void ir__sweep_close_handles(ir_sweep_t* s) {
  if (s->handles_open) {
    s->handles_open = false;
    s->closing_handles = 2;
    uv_close((uv_handle_t*)&s->timer, ir__on_handle_closed);
    uv_close((uv_handle_t*)&s->refill, ir__on_handle_closed);
  }
}

/* A job ends when all its probes have been sent and have their results. A
 * free job keeps the free list's link in its source field. */
static void ir__job_release(ir_job_t* job) {
  ir_sweep_t* s = job->sweep;
  if (job->live_shots == 0 && job->next_send.index == IR_HEAP_NONE &&
      job->next_n > s->count) {
    ir__source_release(job->source);
    job->source = (ir_source_t*)s->free_jobs;
    s->free_jobs = job;
  }
}

/* Wakes every call of the iterator that waits: there are results, or one
 * of them must act. Finishing a wait never runs Lua, so the list cannot
 * change under this loop. */
static void ir__sweep_wake(ir_sweep_t* s) {
  uint32_t n = s->waiters_len;
  s->waiters_len = 0;
  for (uint32_t i = 0; i < n; i++) {
    ir_lua_finish_wait(s->waiters[i]);
  }
}

static bool ir__sweep_add_waiter(ir_sweep_t* s, ir_lua_waiter_t* waiter) {
  if (s->waiters_len == s->waiters_cap) {
    uint32_t cap = s->waiters_cap ? s->waiters_cap * 2 : 4;
    ir_lua_waiter_t** grown = realloc(s->waiters, cap * sizeof(*grown));
    if (grown == NULL) {
      return false;
    }
    s->waiters = grown;
    s->waiters_cap = cap;
  }
  s->waiters[s->waiters_len++] = waiter;
  return true;
}

static void ir__sweep_fail(ir_sweep_t* s, const char* message) {
  if (s->error == NULL) {
    s->error = strdup(message);
  }
  ir__sweep_wake(s);
}

/* ---- Results ------------------------------------------------------------- */

/* A new slot at the end of the ring, or NULL when out of memory. */
static ir_sweep_result_t* ir__results_append(ir_sweep_t* s) {
  if (s->results_len == s->results_cap) {
    uint32_t cap = s->results_cap ? s->results_cap * 2 : 256;
    ir_sweep_result_t* grown = malloc(cap * sizeof(*grown));
    if (grown == NULL) {
      return false;
    }
    for (uint32_t i = 0; i < s->results_len; i++) {
      grown[i] = s->results[(s->results_head + i) % s->results_cap];
    }
    free(s->results);
    s->results = grown;
    s->results_cap = cap;
    s->results_head = 0;
  }
  s->results_len++;
  return &s->results[(s->results_head + s->results_len - 1) % s->results_cap];
}

static bool ir__results_push(ir_sweep_t* s, const ir_result_t* result,
                             ir_shot_t* shot) {
  ir_sweep_result_t* slot = ir__results_append(s);
  if (slot == NULL) {
    return false;
  }
  slot->result = *result;
  slot->source = shot->job->source;
  slot->source->refs++;
  slot->n = shot->n;
  slot->attempt = shot->attempt;
  slot->resolve_error = 0;
  return true;
}

/* Pushes the target text of a result. Results come in long runs from one
 * target (a CIDR block), so the Lua string of the last one is kept as
 * uservalue 2 of the sweep's userdata (at ud): one string made per target
 * rather than one interned per result. */
static void ir__push_target(lua_State* L, ir_sweep_t* s, int ud,
                            const ir_source_t* source) {
  if (s->target_serial == source->serial) {
    lua_getiuservalue(L, ud, 2); /* text */
    return;
  }
  lua_pushlstring(L, source->text, source->text_len); /* text */
  lua_pushvalue(L, -1);                               /* text text */
  lua_setiuservalue(L, ud, 2);                        /* text */
  s->target_serial = source->serial;
}

/* Pushes the result of a target name that did not resolve: status "error",
 * err the message ping would return, code libuv's name of the error (such as
 * "EAI_NONAME"), and no address, probe number or attempts. */
static void ir__push_resolve_failure(lua_State* L, int keys,
                                     const ir_sweep_result_t* item) {
  lua_createtable(L, 0, 4);                                   /* r */
  lua_rawgeti(L, keys, IR_KEY_STATUS);                        /* r key */
  lua_rawgeti(L, keys, IR_KEY_STATUS_BASE + IR_STATUS_ERROR); /* r key status */
  lua_rawset(L, -3);                                          /* r */
  lua_rawgeti(L, keys, IR_KEY_ERR);                           /* r key */
  lua_pushfstring(L, "cannot resolve '%s': %s", item->source->text,
                  uv_strerror(item->resolve_error));   /* r key err */
  lua_rawset(L, -3);                                   /* r */
  lua_pushstring(L, uv_err_name(item->resolve_error)); /* r code */
  lua_setfield(L, -2, "code");                         /* r */
}

/* Pushes the oldest result: ping's fields, plus target, n and attempts. The
 * sweep's userdata is at ud. */
static void ir__results_pop(lua_State* L, ir_sweep_t* s, int keys, int ud) {
  ir_sweep_result_t* item = &s->results[s->results_head];
  if (item->resolve_error != 0) {
    ir__push_resolve_failure(L, keys, item);
  } else {
    ir_lua_push_result(L, keys, &item->result, 3); /* r */
    ir_lua_set_integer(L, keys, IR_KEY_N, item->n);
    if (s->retries > 0) {
      ir_lua_set_integer(L, keys, IR_KEY_ATTEMPTS, item->attempt + 1);
    }
  }
  lua_rawgeti(L, keys, IR_KEY_TARGET);     /* r key */
  ir__push_target(L, s, ud, item->source); /* r key target */
  lua_rawset(L, -3);                       /* r */
  ir__source_release(item->source);
  s->results_head = (s->results_head + 1) % s->results_cap;
  s->results_len--;
}

/* ---- Sending ------------------------------------------------------------- */

static void ir__on_shot_result(ir_engine_t* engine, const ir_result_t* result) {
  (void)engine;
  ir_shot_t* shot = result->data;
  ir_job_t* job = shot->job;
  ir_sweep_t* s = job->sweep;
  s->in_flight--;
  bool retry =
      !s->closed && result->status == IR_STATUS_TIMEOUT && shot->attempt < s->retries;
  if (!s->closed && (!retry || s->every_attempt)) {
    if (!ir__results_push(s, result, shot)) {
      ir__sweep_fail(s, "sweep: out of memory for results");
    }
  }
  if (retry) {
    /* fping's meaning: resend after the timeout, waiting longer each time. */
    shot->attempt++;
    shot->timeout_ms = fmin(shot->timeout_ms * s->backoff, 86400000.0);
    shot->next_retry = NULL;
    if (s->retry_tail != NULL) {
      s->retry_tail->next_retry = shot;
    } else {
      s->retry_head = shot;
    }
    s->retry_tail = shot;
  } else {
    ir__shot_free(s, shot);
    job->live_shots--;
    ir__job_release(job);
  }
  if (!s->closed) {
    ir__sweep_wake(s);
    /* Refill once per turn of the loop rather than once per result. */
    uv_idle_start(&s->refill, ir__on_sweep_refill);
  }
  ir__sweep_release(s); /* The engine's reference to this shot's sweep. */
}

static void ir__on_sweep_timer(uv_timer_t* timer) {
  ir__sweep_pump(timer->data);
}

static void ir__on_sweep_refill(uv_idle_t* idle) {
  ir__sweep_pump(idle->data);
}

static void ir__arm_timer(ir_sweep_t* s, uint64_t at_ns, uint64_t now_ns) {
  uint64_t ms = at_ns > now_ns ? (at_ns - now_ns + 999999) / 1000000 : 0;
  uv_timer_start(&s->timer, ir__on_sweep_timer, ms, 0);
}

/* A shot for the job's next probe, whose turn came at due_ns; the probe after
 * it is due one interval later (not one interval after it was really sent,
 * so that a sweep that falls behind catches up instead of drifting). */
static ir_shot_t* ir__job_next_shot(ir_sweep_t* s, ir_job_t* job, uint64_t due_ns) {
  ir_shot_t* shot = s->free_shots;
  if (shot != NULL) {
    s->free_shots = shot->next_retry;
  } else if ((shot = malloc(sizeof(*shot))) == NULL) {
    return NULL;
  }
  shot->job = job;
  shot->next_retry = NULL;
  shot->n = job->next_n++;
  shot->attempt = 0;
  shot->timeout_ms = s->probe.timeout_ms;
  job->live_shots++;
  if (job->next_n <= s->count) {
    job->next_send.key = due_ns + (uint64_t)(s->interval_ms * 1e6);
    job->next_send.tie = s->schedule_ticket++;
    if (ir_heap_push(&s->schedule, &job->next_send) != 0) {
      job->next_n = s->count + 1; /* Out of memory: no further probes. */
      ir__sweep_fail(s, "sweep: out of memory for the schedule");
    }
  }
  return shot;
}

/* A job for the current source's next address, or NULL when it is done. */
static ir_job_t* ir__next_job(ir_sweep_t* s) {
  uint64_t index = 0;
  while (s->current != NULL) {
    if (ir_walk_next(&s->current->walk, &index)) {
      /* Shard i of n takes the addresses at positions i, i + n, ... of each
       * target's walk, as zmap does: disjoint shards that together cover
       * every address once, given the same targets, order and seed. */
      uint64_t position = s->current->walk.emitted - 1;
      if (position % s->shard_count == s->shard_index) {
        break;
      }
      continue;
    }
    /* On to the target fetched ahead, and ask the iterator for another. */
    ir__source_release(s->current);
    s->current = s->next_source;
    s->next_source = NULL;
    if (!s->lua_exhausted) {
      ir__sweep_wake(s);
    }
  }
  if (s->current == NULL) {
    return NULL;
  }
  s->drawn++;
  ir_job_t* job = s->free_jobs;
  if (job != NULL) {
    s->free_jobs = (ir_job_t*)job->source;
    memset(job, 0, sizeof(*job));
  } else if ((job = calloc(1, sizeof(*job))) == NULL) {
    return NULL;
  }
  job->sweep = s;
  job->source = s->current;
  job->source->refs++;
  ir_block_address(&s->current->block, index, &job->addr);
  job->next_send.index = IR_HEAP_NONE;
  job->next_n = 1;
  return job;
}

static bool ir__submit_shot(ir_sweep_t* s, ir_shot_t* shot) {
  ir_probe_spec_t spec = s->probe;
  spec.addr = shot->job->addr;
  spec.timeout_ms = (uint32_t)ceil(shot->timeout_ms);
  spec.group = s;
  int err = s->rt->engine != NULL
                ? ir_engine_probe(s->rt->engine, &spec, ir__on_shot_result, shot)
                : -ECANCELED;
  if (err == 0) {
    s->in_flight++;
    s->refs++;
    return true;
  }
  const char* why =
      s->rt->engine ? ir_engine_socket_error(s->rt->engine, spec.addr.family) : NULL;
  char message[512];
  snprintf(message, sizeof(message), "sweep: %s", why != NULL ? why : uv_strerror(err));
  ir__sweep_fail(s, message);
  return false;
}

/* Sends whatever pacing, the window and the schedule allow: retries first,
 * then addresses whose next probe is due, then new addresses. Runs from the
 * iterator, the pacing timer and every result; never calls into Lua. */
static void ir__sweep_pump(ir_sweep_t* s) {
  if (s->pumping) {
    return;
  }
  if (s->closed) {
    return; /* Its handles are closing or closed. */
  }
  if (s->stopped || s->error != NULL || s->rt->engine == NULL) {
    uv_idle_stop(&s->refill);
    return;
  }
  s->pumping = true;
  uint64_t now = uv_hrtime();
  if (s->rate > 0) {
    double burst = fmin(IR_SWEEP_MAX_BURST, fmax(1.0, s->rate / 100.0));
    s->tokens =
        fmin(burst, s->tokens + (double)(now - s->tokens_at_ns) * s->rate / 1e9);
    s->tokens_at_ns = now;
  }
  uint64_t wake_at = 0;
  bool engine_full = false;
  while (s->in_flight < s->window) {
    /* Keep only a few batches waiting in the engine's queue: what is sent is
     * in flight, and the rest can wait here, as an address not yet drawn.
     * The refill handle comes back on the loop's next turn. */
    if (ir_engine_queued(s->rt->engine) >= IR_SWEEP_QUEUE_MAX) {
      engine_full = true;
      break;
    }
    if (s->rate > 0 && s->tokens < 1.0) {
      wake_at = now + (uint64_t)((1.0 - s->tokens) * 1e9 / s->rate) + 1;
      break;
    }
    ir_shot_t* shot = NULL;
    ir_heap_node_t* due = ir_heap_min(&s->schedule);
    if (s->retry_head != NULL) {
      shot = s->retry_head;
      s->retry_head = shot->next_retry;
      if (s->retry_head == NULL) {
        s->retry_tail = NULL;
      }
    } else {
      /* Probes go in the order of their turns, as fping schedules them: a new
       * address's first probe has its turn at start + drawn / rate, and on a
       * tie it goes first. Unpaced, new addresses always come first. */
      bool due_now = due != NULL && due->key <= now;
      uint64_t new_turn =
          s->rate > 0 ? s->start_ns + (uint64_t)((double)s->drawn * 1e9 / s->rate)
                      : now;
      ir_job_t* job = NULL;
      if (!due_now || new_turn <= due->key) {
        job = ir__next_job(s);
      }
      if (job != NULL) {
        shot = ir__job_next_shot(s, job, new_turn < now ? new_turn : now);
      } else if (due_now) {
        ir_heap_pop(&s->schedule);
        shot =
            ir__job_next_shot(s, ir__container_of(due, ir_job_t, next_send), due->key);
      } else {
        /* Nothing to send now: the iterator may have targets to fetch, or
         * (found only now, when a token came) nothing left at all. */
        ir__sweep_wake(s);
        if (due != NULL) {
          wake_at = due->key;
        }
        break;
      }
    }
    if (shot == NULL) {
      ir__sweep_fail(s, "sweep: out of memory");
      break;
    }
    if (!ir__submit_shot(s, shot)) {
      shot->job->live_shots--;
      ir__shot_free(s, shot);
      break;
    }
    s->tokens -= 1.0;
  }
  if (wake_at != 0) {
    ir__arm_timer(s, wake_at, now);
  }
  if (engine_full) {
    uv_idle_start(&s->refill, ir__on_sweep_refill);
  } else {
    uv_idle_stop(&s->refill);
  }
  s->pumping = false;
}

/* ---- Targets --------------------------------------------------------------- */

/* A source for text with one reference, or NULL when out of memory. */
static ir_source_t* ir__source_new(ir_sweep_t* s, const char* text) {
  ir_source_t* source = calloc(1, sizeof(*source));
  char* copy = strdup(text);
  if (source == NULL || copy == NULL) {
    free(source);
    free(copy);
    return NULL;
  }
  source->text = copy;
  source->text_len = strlen(copy);
  source->serial = ++s->sources_made;
  source->refs = 1;
  return source;
}

/* A target name that did not resolve (status, a libuv error) becomes one
 * result rather than an error that ends the sweep: the other targets go on. */
static void ir__push_resolve_error(ir_sweep_t* s, const char* name, int status) {
  ir_source_t* source = ir__source_new(s, name);
  ir_sweep_result_t* slot = source != NULL ? ir__results_append(s) : NULL;
  if (slot == NULL) {
    ir__source_release(source);
    ir__sweep_fail(s, "sweep: out of memory for results");
    return;
  }
  memset(slot, 0, sizeof(*slot));
  slot->source = source;
  slot->resolve_error = status;
  ir__sweep_wake(s);
}

static const char* ir__add_source(ir_sweep_t* s, const char* text,
                                  const ir_block_t* block) {
  if (block->count > s->limit - s->expanded || s->expanded > s->limit) {
    return "over the limit";
  }
  ir_source_t* source = ir__source_new(s, text);
  if (source == NULL) {
    return "out of memory";
  }
  source->block = *block;
  ir_walk_init(&source->walk, block->count, s->random, s->seed ^ s->expanded);
  s->expanded += block->count;
  if (s->current == NULL) {
    s->current = source;
  } else {
    s->next_source = source;
  }
  return NULL;
}

static void ir__on_target_resolved(uv_getaddrinfo_t* req, int status,
                                   struct addrinfo* res) {
  ir_sweep_t* s = req->data;
  s->resolving = false;
  ir_block_t block;
  memset(&block, 0, sizeof(block));
  block.count = 1;
  if (!s->closed && !s->stopped) {
    if (status != 0 || res == NULL ||
        ir_addr_from_sockaddr(res->ai_addr, &block.first)) {
      ir__push_resolve_error(s, s->resolving_name,
                             status != 0 ? status : UV_EAI_NODATA);
    } else if (ir__add_source(s, s->resolving_name, &block) != NULL) {
      ir__sweep_target_error(s, "sweep: more addresses than the limit allows");
    } else {
      ir__sweep_wake(s);
      ir__sweep_pump(s);
    }
  }
  uv_freeaddrinfo(res);
  ir__sweep_release(s);
}

/* The next target text from the script's targets (uservalue 1 of the sweep's
 * userdata at ud): a string once, a table's items in order, or an iterator
 * function's values. Pushes it, or nothing when the targets are exhausted. */
static bool ir__next_target_text(lua_State* L, ir_sweep_t* s, int ud) {
  lua_getiuservalue(L, ud, 1); /* targets */
  int type = lua_type(L, -1);
  if (type == LUA_TSTRING) {
    if (s->next_index++ > 1) {
      lua_pop(L, 1); /* */
      return false;
    }
    return true; /* text */
  }
  if (type == LUA_TTABLE) {
    lua_rawgeti(L, -1, s->next_index++); /* targets text */
    lua_remove(L, -2);                   /* text */
  } else {
    s->next_index++;
    lua_call(L, 0, 1); /* text */
  }
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1); /* */
    return false;
  }
  if (lua_type(L, -1) != LUA_TSTRING) {
    luaL_error(L, "sweep: target #%d is a %s, not a string", (int)s->next_index - 1,
               luaL_typename(L, -1));
  }
  return true;
}

/* Fetches targets until one is current and one more is ready behind it (or
 * one is resolving), in Lua context so that an iterator of targets can run
 * (its own errors propagate at once). A bad target ends the expansion and is
 * raised after the results of the targets before it. */
static void ir__pull_targets(lua_State* L, ir_sweep_t* s, int ud) {
  while ((s->current == NULL || s->next_source == NULL) && !s->resolving &&
         !s->lua_exhausted && s->error == NULL) {
    if (!ir__next_target_text(L, s, ud)) {
      s->lua_exhausted = true;
      break;
    }
    const char* text = lua_tostring(L, -1);
    ir_block_t block;
    char why[256];
    char message[512];
    switch (ir_target_parse(text, &block, why, sizeof(why))) {
      case IR_TARGET_BLOCK:
        if (s->family != 0 &&
            block.first.family != (s->family == 4 ? AF_INET : AF_INET6)) {
          snprintf(message, sizeof(message), "sweep: target '%s' is not IPv%d", text,
                   s->family);
          ir__sweep_target_error(s, message);
        } else if (ir__add_source(s, text, &block) != NULL) {
          snprintf(message, sizeof(message),
                   "sweep: target '%s' takes the sweep over its limit of %llu "
                   "addresses (raise opts.limit)",
                   text, (unsigned long long)s->limit);
          ir__sweep_target_error(s, message);
        }
        break;
      case IR_TARGET_NAME: {
        snprintf(s->resolving_name, sizeof(s->resolving_name), "%s", text);
        s->resolve.data = s;
        int err = ir_lua_getaddrinfo(&s->rt->loop, &s->resolve, ir__on_target_resolved,
                                     s->resolving_name, s->family);
        if (err != 0) {
          ir__push_resolve_error(s, text, err);
          break;
        }
        s->resolving = true;
        s->refs++;
        break;
      }
      case IR_TARGET_INVALID:
        snprintf(message, sizeof(message), "sweep: %s", why);
        ir__sweep_target_error(s, message);
        break;
    }
    lua_pop(L, 1); /* */
  }
}

/* ---- The iterator ---------------------------------------------------------- */

static bool ir__sweep_finished(const ir_sweep_t* s) {
  return s->lua_exhausted && s->current == NULL && s->next_source == NULL &&
         !s->resolving && s->in_flight == 0 && s->retry_head == NULL &&
         s->schedule.len == 0 && s->results_len == 0;
}

/* The sweep argument of the iterator. Upvalue 2 is the sweep metatable:
 * comparing with it spares luaL_checkudata's lookup by name per result. */
static ir_sweep_ref_t* ir__check_sweep(lua_State* L) {
  ir_sweep_ref_t* ref = lua_touserdata(L, 1);
  bool ok = ref != NULL && lua_getmetatable(L, 1); /* mt */
  if (ok) {
    ok = lua_rawequal(L, -1, lua_upvalueindex(2));
    lua_pop(L, 1); /* */
  }
  if (!ok) {
    luaL_typeerror(L, 1, IR_SWEEP_META);
  }
  return ref;
}

/* One call of the iterator. Several tasks may pull from one sweep: each
 * result goes to exactly one of them, in the order they are resumed, and
 * every one of them sees the end (nil) or the sweep's error once the results
 * are out. */
static int ir__sweep_step(lua_State* L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  ir_sweep_ref_t* ref = ir__check_sweep(L);
  for (;;) {
    /* Looked up afresh after every wait: another task may have closed it. */
    ir_sweep_t* s = ref->sweep;
    if (s == NULL || s->closed) {
      return luaL_error(L, "sweep: used after it was closed");
    }
    if (s->results_len > 0) {
      ir__results_pop(L, s, lua_upvalueindex(1), 1);
      return 1;
    }
    if (s->error != NULL) {
      ir__sweep_wake(s); /* The other pullers raise it too. */
      return luaL_error(L, "%s", s->error);
    }
    ir__pull_targets(L, s, 1);
    ir__sweep_pump(s);
    if (s->results_len > 0 || s->error != NULL) {
      continue;
    }
    /* The pump used up the current target: take the next one now rather
     * than wait for a result to come back first. */
    if (s->current == NULL && !s->resolving && !s->lua_exhausted) {
      continue;
    }
    if (ir__sweep_finished(s)) {
      /* This call may have ended it (its targets ran out): the others that
       * wait would otherwise never hear of it. */
      ir__sweep_wake(s);
      if (s->target_error != NULL) {
        return luaL_error(L, "%s", s->target_error);
      }
      return 0;
    }
    ir_lua_task_t* task = ir_lua_check_can_wait(L, s->rt, "sweep");
    ir_lua_waiter_t* waiter = ir_lua_waiter_new(s->rt, IR_WAIT_SWEEP, task);
    if (waiter == NULL) {
      return luaL_error(L, "sweep: out of memory");
    }
    if (!ir__sweep_add_waiter(s, waiter)) {
      waiter->consumed = true;
      ir_lua_waiter_op_done(waiter); /* Frees it. */
      return luaL_error(L, "sweep: out of memory");
    }
    if (task != NULL) {
      return ir_lua_wait_k(L, waiter, 0, ir__sweep_step);
    }
    ir_lua_wait(L, waiter); /* Blocks, running the loop; pushes nothing. */
  }
}

static int ir__l_sweep_next(lua_State* L) {
  return ir__sweep_step(L, LUA_OK, 0);
}

/* Ends what a sweep still had to do, for stop and close: no further probe
 * is sent, probes in flight are cancelled (through the result callback),
 * and shots waiting to be resent end as the timeouts they were. */
static void ir__sweep_wind_down(ir_sweep_t* s) {
  s->lua_exhausted = true;
  uv_timer_stop(&s->timer);
  uv_idle_stop(&s->refill);
  if (s->rt->engine != NULL) {
    ir_engine_cancel_group(s->rt->engine, s);
  }
  while (s->retry_head != NULL) {
    ir_shot_t* shot = s->retry_head;
    s->retry_head = shot->next_retry;
    if (!s->closed) {
      /* Its last attempt timed out, and no more will be made. */
      ir_result_t result;
      memset(&result, 0, sizeof(result));
      result.status = IR_STATUS_TIMEOUT;
      result.addr = shot->job->addr;
      result.ttl = result.icmp_type = result.icmp_code = -1;
      shot->attempt--;
      if (!ir__results_push(s, &result, shot)) {
        ir__sweep_fail(s, "sweep: out of memory for results");
      }
    }
    shot->job->live_shots--;
    ir_job_t* job = shot->job;
    ir__shot_free(s, shot);
    ir__job_release(job);
  }
  s->retry_tail = NULL;
  ir_heap_node_t* node;
  while ((node = ir_heap_pop(&s->schedule)) != NULL) {
    ir_job_t* job = ir__container_of(node, ir_job_t, next_send);
    job->next_n = s->count + 1;
    ir__job_release(job);
  }
  ir__source_release(s->current);
  ir__source_release(s->next_source);
  s->current = s->next_source = NULL;
}

/* sweep:stop(): nothing more is sent, probes in flight are cancelled and end
 * as "error" results (err "operation canceled"), and the loop goes on with
 * the results already known, then ends. Every probe sent still has exactly
 * one result. For a SIGINT handler that wants a summary of what was done. */
static int ir__l_sweep_stop(lua_State* L) {
  ir_sweep_ref_t* ref = luaL_checkudata(L, 1, IR_SWEEP_META);
  ir_sweep_t* s = ref->sweep;
  if (s != NULL && !s->stopped) {
    s->stopped = true;
    ir__sweep_wind_down(s);
    ir__sweep_wake(s);
  }
  return 0;
}

/* Ends a sweep for good, for close and for the runtime's shutdown: nothing
 * more is sent, what is in flight is cancelled, nothing more is handed out,
 * a name lookup is cancelled and the handles close. The lookup's callback
 * still runs (with UV_EAI_CANCELED, or its answer when it had started
 * already) and drops the lookup's reference; until then the struct stays. */
static void ir__sweep_end(ir_sweep_t* s) {
  if (s->closed) {
    return;
  }
  s->closed = true;
  ir__sweep_wind_down(s);
  while (s->results_len > 0) {
    ir__source_release(s->results[s->results_head].source);
    s->results_head = (s->results_head + 1) % s->results_cap;
    s->results_len--;
  }
  if (s->resolving) {
    uv_cancel((uv_req_t*)&s->resolve); /* UV_EBUSY once it runs: then it ends. */
  }
  ir__sweep_close_handles(s);
  ir__sweep_wake(s);
}

/* The runtime shuts down (ir__runtime_gc): the userdata may live on until
 * lua_close collects it, and then only drops its reference. */
static void ir__sweep_shutdown(ir_lua_owner_t* owner) {
  ir__sweep_end(ir__container_of(owner, ir_sweep_t, owner));
}

/* __close and __gc: see ir__sweep_end. */
static int ir__l_sweep_close(lua_State* L) {
  ir_sweep_ref_t* ref = luaL_checkudata(L, 1, IR_SWEEP_META);
  ir_sweep_t* s = ref->sweep;
  if (s == NULL) {
    return 0;
  }
  ref->sweep = NULL;
  ir__sweep_end(s);
  ir__sweep_release(s);
  return 0;
}

static const char* const ir__sweep_options[] = {
    "count", "interval", "rate",   "retries",       "backoff", "order",
    "seed",  "limit",    "window", "every_attempt", "shard",   NULL};

/* opts.shard = {i, n}: this sweep is shard i of n (1 <= i <= n). With a
 * random order, every shard must walk the same permutation, so the seed must
 * be given. */
static void ir__sweep_shard_read(lua_State* L, ir_sweep_t* s, bool has_seed) {
  s->shard_index = 0;
  s->shard_count = 1;
  if (lua_getfield(L, 2, "shard") == LUA_TNIL) { /* shard */
    lua_pop(L, 1);                               /* */
    return;
  }
  lua_Integer i = 0, n = 0;
  if (lua_type(L, -1) == LUA_TTABLE) {
    lua_rawgeti(L, -1, 1); /* shard i */
    lua_rawgeti(L, -2, 2); /* shard i n */
    i = lua_isinteger(L, -2) ? lua_tointeger(L, -2) : 0;
    n = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
    lua_pop(L, 2); /* shard */
  }
  lua_pop(L, 1); /* */
  if (n < 1 || n > 1000000 || i < 1 || i > n) {
    luaL_argerror(L, 2,
                  "option 'shard' must be {i, n} with integers 1 <= i <= n <= 1000000");
  }
  if (n > 1 && s->random && !has_seed) {
    luaL_argerror(L, 2,
                  "option 'shard' with order \"random\" needs the 'seed' that "
                  "every shard shares");
  }
  s->shard_index = (uint32_t)(i - 1);
  s->shard_count = (uint32_t)n;
}

static void ir__sweep_options_read(lua_State* L, ir_sweep_t* s) {
  double count = 1, interval = 1000, rate = IR_SWEEP_DEFAULT_RATE, retries = 0,
         backoff = 1.5, limit = IR_SWEEP_DEFAULT_LIMIT,
         window = IR_SWEEP_DEFAULT_WINDOW, seed = -1;
  s->family = ir_lua_probe_options(L, 2, &s->probe, ir__sweep_options);
  if (!lua_isnoneornil(L, 2)) {
    ir_lua_opt_number(L, 2, "count", 1, 1e9, true, &count);
    ir_lua_opt_number(L, 2, "interval", 0, 86400000, false, &interval);
    lua_getfield(L, 2, "rate"); /* rate */
    if (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) == HUGE_VAL) {
      rate = 0; /* math.huge: unpaced. */
    } else {
      ir_lua_opt_number(L, 2, "rate", 0, 1e9, false, &rate);
    }
    lua_pop(L, 1); /* */
    ir_lua_opt_number(L, 2, "retries", 0, 1000, true, &retries);
    ir_lua_opt_number(L, 2, "backoff", 1, 100, false, &backoff);
    ir_lua_opt_number(L, 2, "limit", 1, 9007199254740992.0, true, &limit);
    ir_lua_opt_number(L, 2, "window", 1, 16777216, true, &window);
    ir_lua_opt_number(L, 2, "seed", 0, 9007199254740992.0, true, &seed);
    lua_getfield(L, 2, "order"); /* order */
    const char* order = lua_tostring(L, -1);
    if (!lua_isnil(L, -1) && (order == NULL || (strcmp(order, "sequential") != 0 &&
                                                strcmp(order, "random") != 0))) {
      luaL_argerror(L, 2, "option 'order' must be \"sequential\" or \"random\"");
    }
    s->random = order != NULL && strcmp(order, "random") == 0;
    lua_pop(L, 1);                       /* */
    lua_getfield(L, 2, "every_attempt"); /* every */
    s->every_attempt = lua_toboolean(L, -1);
    lua_pop(L, 1); /* */
    ir__sweep_shard_read(L, s, seed >= 0);
  }
  if (s->shard_count == 0) {
    s->shard_count = 1; /* No options table: the only shard. */
  }
  s->count = (uint32_t)count;
  s->interval_ms = interval;
  s->rate = rate;
  s->retries = (uint32_t)retries;
  s->backoff = backoff;
  s->limit = (uint64_t)limit;
  s->window = (uint32_t)window;
  if (seed < 0) {
    if (getrandom(&s->seed, sizeof(s->seed), GRND_NONBLOCK) < 0) {
      s->seed = uv_hrtime();
    }
  } else {
    s->seed = (uint64_t)seed;
  }
}

/* Checks every item of a targets table now, so that a malformed one or an
 * expansion over the limit fails at the call, before anything is sent. */
static void ir__check_target_table(lua_State* L, const ir_sweep_t* s) {
  lua_Integer n = luaL_len(L, 1);
  if (n == 0) {
    luaL_argerror(L, 1, "the targets table is empty");
  }
  uint64_t total = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i); /* text */
    if (lua_type(L, -1) != LUA_TSTRING) {
      luaL_argerror(L, 1,
                    lua_pushfstring(L, "targets[%I] is a %s, not a string", i,
                                    luaL_typename(L, -1)));
    }
    const char* text = lua_tostring(L, -1);
    ir_block_t block;
    char why[256];
    ir_target_kind_t kind = ir_target_parse(text, &block, why, sizeof(why));
    if (kind == IR_TARGET_INVALID) {
      luaL_argerror(L, 1, why);
    }
    if (kind == IR_TARGET_BLOCK) {
      total = block.count > UINT64_MAX - total ? UINT64_MAX : total + block.count;
      if (total > s->limit) {
        luaL_argerror(
            L, 1,
            lua_pushfstring(L,
                            "target '%s' takes the sweep over its limit of %I "
                            "addresses (raise opts.limit)",
                            text, (lua_Integer)s->limit));
      }
    }
    lua_pop(L, 1); /* */
  }
}

/* icmprun.sweep(targets, opts) -> iterator, sweep, nil, sweep (to-be-closed) */
static int ir__l_sweep(lua_State* L) {
  ir_lua_runtime_t* rt = lua_touserdata(L, lua_upvalueindex(1));
  int type = lua_type(L, 1);
  luaL_argexpected(L,
                   type == LUA_TSTRING || type == LUA_TTABLE || type == LUA_TFUNCTION,
                   1, "string, table or function");
  ir_sweep_t probe_opts;
  memset(&probe_opts, 0, sizeof(probe_opts));
  ir__sweep_options_read(L, &probe_opts);
  if (type == LUA_TTABLE) {
    ir__check_target_table(L, &probe_opts);
  } else if (type == LUA_TSTRING) {
    ir_block_t block;
    char why[256];
    ir_target_kind_t kind =
        ir_target_parse(lua_tostring(L, 1), &block, why, sizeof(why));
    if (kind == IR_TARGET_INVALID) {
      luaL_argerror(L, 1, why);
    }
    if (kind == IR_TARGET_BLOCK && block.count > probe_opts.limit) {
      luaL_argerror(L, 1,
                    lua_pushfstring(L,
                                    "target '%s' expands to more than the limit of %I "
                                    "addresses (raise opts.limit)",
                                    lua_tostring(L, 1), (lua_Integer)probe_opts.limit));
    }
  }

  lua_pushvalue(L, lua_upvalueindex(2)); /* next */
  /* Uservalue 1: the targets; 2: the text of the last target handed out. */
  ir_sweep_ref_t* ref = lua_newuserdatauv(L, sizeof(*ref), 2); /* next ud */
  ref->sweep = NULL;
  luaL_setmetatable(L, IR_SWEEP_META);
  lua_pushvalue(L, 1);         /* next ud targets */
  lua_setiuservalue(L, -2, 1); /* next ud */
  if (rt->engine == NULL) {
    return luaL_error(L, "sweep: the icmprun runtime has shut down");
  }
  ir_sweep_t* s = malloc(sizeof(*s));
  if (s == NULL) {
    return luaL_error(L, "sweep: out of memory");
  }
  *s = probe_opts;
  s->rt = rt;
  s->refs = 2; /* The userdata and the handles. */
  ir_lua_owner_link(rt, &s->owner, ir__sweep_shutdown);
  s->next_index = 1;
  s->tokens = fmin(IR_SWEEP_MAX_BURST, fmax(1.0, s->rate / 100.0));
  s->tokens_at_ns = uv_hrtime();
  s->start_ns = s->tokens_at_ns;
  ir_heap_init(&s->schedule);
  uv_timer_init(&rt->loop, &s->timer);
  s->timer.data = s;
  uv_idle_init(&rt->loop, &s->refill);
  s->refill.data = s;
  s->handles_open = true;
  ref->sweep = s;
  lua_pushnil(L);       /* next ud nil */
  lua_pushvalue(L, -2); /* next ud nil ud */
  return 4;
}

void ir_lua_register_sweep(lua_State* L, int module_index) {
  module_index = lua_absindex(L, module_index);
  if (luaL_newmetatable(L, IR_SWEEP_META)) { /* mt */
    lua_pushcfunction(L, ir__l_sweep_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, ir__l_sweep_close);
    lua_setfield(L, -2, "__gc");
    lua_newtable(L); /* mt methods */
    lua_pushcfunction(L, ir__l_sweep_close);
    lua_setfield(L, -2, "close");
    lua_pushcfunction(L, ir__l_sweep_stop);
    lua_setfield(L, -2, "stop");
    ir_lua_push_keys(L);                      /* mt methods keys */
    lua_pushvalue(L, -3);                     /* mt methods keys mt */
    lua_pushcclosure(L, ir__l_sweep_next, 2); /* mt methods next */
    lua_setfield(L, -2, "next");
    lua_setfield(L, -2, "__index"); /* mt */
  }
  lua_pop(L, 1);                                         /* */
  lua_getfield(L, LUA_REGISTRYINDEX, "icmprun.runtime"); /* rt */
  ir_lua_push_keys(L);                                   /* rt keys */
  luaL_getmetatable(L, IR_SWEEP_META);                   /* rt keys mt */
  lua_pushcclosure(L, ir__l_sweep_next, 2);              /* rt next */
  lua_pushcclosure(L, ir__l_sweep, 2);                   /* sweep */
  lua_setfield(L, module_index, "sweep");                /* */
}
