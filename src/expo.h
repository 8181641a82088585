/* SPDX-License-Identifier: MIT */
/* The exporter's per-target samples as Prometheus text, without Lua or the loop. */
#ifndef ICMPRUN_EXPO_H
#define ICMPRUN_EXPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The exporter renders a scrape of many targets in two steps: on the loop,
 * a snapshot of each target's counters is copied into an ir_expo_snapshot_t
 * (a few hundred bytes a target, taken whole so that a target's samples
 * agree); then, in a thread of libuv's pool, ir_expo_render formats the
 * snapshot into chunks of text and ir_expo_gzip compresses them. Neither of
 * those touches anything but the snapshot and the chunks, so the loop keeps
 * sending probes meanwhile. What the text says (names, labels, order) comes
 * from the layout, written by the Lua side (icmprun.exporter.metrics), which
 * also has the reference renderer in Lua; the two must agree byte for byte. */

/* Statuses of icmprun_results_total, and `le` bounds of the histogram, at
 * most: the layout is checked against these when it is made. */
#define IR_EXPO_MAX_STATUSES 16
#define IR_EXPO_MAX_LES 256

/* The families of each target, in the order they are written. */
enum {
  IR_EXPO_REQUESTS,
  IR_EXPO_RESULTS,
  IR_EXPO_HISTOGRAM,
  IR_EXPO_TTL,
  IR_EXPO_SEND_ERRORS,
  IR_EXPO_DUPLICATES,
  IR_EXPO_FAMILIES
};

/* The text around the values, each piece a NUL-terminated copy owned by the
 * layout. Sample names start with the newline that ends the line before, as
 * the headers ("\n# HELP ...\n# TYPE ...") do. */
typedef struct ir_expo_layout_s {
  char* headers[IR_EXPO_FAMILIES];
  char* requests_name;
  char* results_name;
  char* status_labels[IR_EXPO_MAX_STATUSES]; /* `,status="reply"} ` */
  int nstatuses;
  int error_status; /* Index of the status counted as a send error. */
  char* bucket_name;
  char* les[IR_EXPO_MAX_LES]; /* `,le="0.001"} `, the last `,le="+Inf"} ` */
  int nles;
  char* sum_name;
  char* count_name;
  char* ttl_name;
  char* send_errors_name;
  char* duplicates_name;
} ir_expo_layout_t;

/* Frees the layout's strings (not the layout itself). */
void ir_expo_layout_clear(ir_expo_layout_t* layout);

/* One target's counters at the snapshot. */
typedef struct ir_expo_target_s {
  size_t key_off; /* Its label set `{host="..",ip=".."` in the key arena. */
  size_t key_len;
  int64_t sent;
  int64_t replies;
  int64_t ttl;
  int64_t duplicates; /* Duplicate replies from its address. */
  double rtt_sum;     /* Seconds; written as Prometheus writes floats. */
  bool has_ttl;
  bool rtt_sum_is_integer; /* Then rtt_sum_integer is the value. */
  int64_t rtt_sum_integer;
} ir_expo_target_t;

/* The snapshot: targets in series order, their per-status results and
 * per-bucket reply counts (not cumulative) in two parallel arrays, and
 * their label sets in one arena. Owned by the render job; grown with
 * realloc as targets are added. */
typedef struct ir_expo_snapshot_s {
  ir_expo_target_t* targets;
  size_t ntargets;
  size_t cap;
  int64_t* results; /* ntargets x layout->nstatuses */
  int64_t* counts;  /* ntargets x layout->nles */
  char* keys;
  size_t keys_len;
  size_t keys_cap;
} ir_expo_snapshot_t;

/* Makes room for one more target and returns it (zeroed), with its results
 * and counts rows in *results and *counts; NULL when out of memory. The key
 * is added with ir_expo_snapshot_key. */
ir_expo_target_t* ir_expo_snapshot_add(ir_expo_snapshot_t* snap,
                                       const ir_expo_layout_t* layout,
                                       int64_t** results, int64_t** counts);
/* Makes room for n targets at once, so that a large snapshot is not copied
 * as it grows; -ENOMEM when out of memory. */
int ir_expo_snapshot_reserve(ir_expo_snapshot_t* snap, const ir_expo_layout_t* layout,
                             size_t n);
/* Copies a target's label set into the arena; -ENOMEM when out of memory. */
int ir_expo_snapshot_key(ir_expo_snapshot_t* snap, ir_expo_target_t* target,
                         const char* key, size_t len);
void ir_expo_snapshot_clear(ir_expo_snapshot_t* snap);

/* Text in chunks of at most IR_EXPO_CHUNK bytes, so that the loop can hand
 * it on a chunk at a time and free each as it goes. */
#define IR_EXPO_CHUNK (128 * 1024)

typedef struct ir_expo_chunk_s ir_expo_chunk_t;
struct ir_expo_chunk_s {
  ir_expo_chunk_t* next;
  size_t len;
  char data[IR_EXPO_CHUNK];
};

typedef struct ir_expo_text_s {
  ir_expo_chunk_t* head;
  ir_expo_chunk_t* tail;
  size_t total;
} ir_expo_text_t;

/* Appends bytes; -ENOMEM when out of memory. */
int ir_expo_text_append(ir_expo_text_t* text, const char* data, size_t len);
/* Takes the first chunk off (the caller frees it), or NULL. */
ir_expo_chunk_t* ir_expo_text_shift(ir_expo_text_t* text);
void ir_expo_text_clear(ir_expo_text_t* text);

/* Writes the exposition: the per-target families of the snapshot, then
 * `tail` (the engine-wide and exporter-wide lines, each starting with a
 * newline), without the first newline and with one at the end, as
 * `metrics.render_pieces` joined does; nothing at all when both are empty.
 * Returns 0 or -ENOMEM (out is then cleared). */
int ir_expo_render(const ir_expo_layout_t* layout, const ir_expo_snapshot_t* snap,
                   const char* tail, size_t tail_len, ir_expo_text_t* out);

/* Compresses text as gzip (a header and a trailer) at a zlib level. Returns
 * 0, -ENOMEM, or -EIO when zlib fails otherwise (out is then cleared). */
int ir_expo_gzip(const ir_expo_text_t* in, int level, ir_expo_text_t* out);

/* A number as Prometheus (and the Lua renderer) writes it: the shortest of
 * %.15g, %.16g and %.17g that reads back the same, or +Inf, -Inf, NaN.
 * buf has room for 32 bytes; returns the length. */
size_t ir_expo_format_double(double x, char* buf);

#endif
