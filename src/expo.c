/* SPDX-License-Identifier: MIT */
/* The exporter's per-target samples as Prometheus text, and their gzip (see expo.h). */
#include "expo.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

void ir_expo_layout_clear(ir_expo_layout_t* layout) {
  for (int f = 0; f < IR_EXPO_FAMILIES; f++) {
    free(layout->headers[f]);
  }
  /* Every slot, not only the first n: a layout that failed half-way has
   * copies beyond its count. Unused slots are NULL. */
  for (int i = 0; i < IR_EXPO_MAX_STATUSES; i++) {
    free(layout->status_labels[i]);
  }
  for (int i = 0; i < IR_EXPO_MAX_LES; i++) {
    free(layout->les[i]);
  }
  free(layout->requests_name);
  free(layout->results_name);
  free(layout->bucket_name);
  free(layout->sum_name);
  free(layout->count_name);
  free(layout->ttl_name);
  free(layout->send_errors_name);
  free(layout->duplicates_name);
  memset(layout, 0, sizeof(*layout));
}

/* ---- snapshot -------------------------------------------------------------- */

/* Grows an array to hold at least `need` elements of `size` bytes. */
static int ir__grow(void** array, size_t* cap, size_t need, size_t size) {
  if (need <= *cap) {
    return 0;
  }
  size_t n = *cap ? *cap : 256;
  while (n < need) {
    n *= 2;
  }
  void* grown = realloc(*array, n * size);
  if (grown == NULL) {
    return -ENOMEM;
  }
  *array = grown;
  *cap = n;
  return 0;
}

int ir_expo_snapshot_reserve(ir_expo_snapshot_t* snap, const ir_expo_layout_t* layout,
                             size_t n) {
  if (n <= snap->cap) {
    return 0;
  }
  /* The three arrays grow together: cap counts targets for all of them. */
  size_t cap = snap->cap, cap_results = snap->cap, cap_counts = snap->cap;
  if (ir__grow((void**)&snap->results, &cap_results, n,
               sizeof(int64_t) * (size_t)layout->nstatuses) != 0 ||
      ir__grow((void**)&snap->counts, &cap_counts, n,
               sizeof(int64_t) * (size_t)layout->nles) != 0 ||
      ir__grow((void**)&snap->targets, &cap, n, sizeof(ir_expo_target_t)) != 0) {
    return -ENOMEM;
  }
  snap->cap = cap;
  return 0;
}

ir_expo_target_t* ir_expo_snapshot_add(ir_expo_snapshot_t* snap,
                                       const ir_expo_layout_t* layout,
                                       int64_t** results, int64_t** counts) {
  size_t n = snap->ntargets;
  if (ir_expo_snapshot_reserve(snap, layout, n + 1) != 0) {
    return NULL;
  }
  ir_expo_target_t* t = &snap->targets[n];
  memset(t, 0, sizeof(*t));
  *results = &snap->results[n * (size_t)layout->nstatuses];
  *counts = &snap->counts[n * (size_t)layout->nles];
  memset(*results, 0, sizeof(int64_t) * (size_t)layout->nstatuses);
  memset(*counts, 0, sizeof(int64_t) * (size_t)layout->nles);
  snap->ntargets = n + 1;
  return t;
}

int ir_expo_snapshot_key(ir_expo_snapshot_t* snap, ir_expo_target_t* target,
                         const char* key, size_t len) {
  if (ir__grow((void**)&snap->keys, &snap->keys_cap, snap->keys_len + len, 1) != 0) {
    return -ENOMEM;
  }
  memcpy(snap->keys + snap->keys_len, key, len);
  target->key_off = snap->keys_len;
  target->key_len = len;
  snap->keys_len += len;
  return 0;
}

void ir_expo_snapshot_clear(ir_expo_snapshot_t* snap) {
  free(snap->targets);
  free(snap->results);
  free(snap->counts);
  free(snap->keys);
  memset(snap, 0, sizeof(*snap));
}

/* ---- text in chunks ---------------------------------------------------------- */

int ir_expo_text_append(ir_expo_text_t* text, const char* data, size_t len) {
  while (len > 0) {
    ir_expo_chunk_t* c = text->tail;
    if (c == NULL || c->len == IR_EXPO_CHUNK) {
      c = malloc(sizeof(*c));
      if (c == NULL) {
        return -ENOMEM;
      }
      c->next = NULL;
      c->len = 0;
      if (text->tail != NULL) {
        text->tail->next = c;
      } else {
        text->head = c;
      }
      text->tail = c;
    }
    size_t n = IR_EXPO_CHUNK - c->len;
    n = n < len ? n : len;
    memcpy(c->data + c->len, data, n);
    c->len += n;
    text->total += n;
    data += n;
    len -= n;
  }
  return 0;
}

ir_expo_chunk_t* ir_expo_text_shift(ir_expo_text_t* text) {
  ir_expo_chunk_t* c = text->head;
  if (c != NULL) {
    text->head = c->next;
    if (text->head == NULL) {
      text->tail = NULL;
    }
    text->total -= c->len;
    c->next = NULL;
  }
  return c;
}

void ir_expo_text_clear(ir_expo_text_t* text) {
  ir_expo_chunk_t* c;
  while ((c = ir_expo_text_shift(text)) != NULL) {
    free(c);
  }
  text->total = 0;
}

/* ---- formatting ---------------------------------------------------------- */

size_t ir_expo_format_double(double x, char* buf) {
  if (isnan(x)) {
    memcpy(buf, "NaN", 4);
    return 3;
  }
  if (isinf(x)) {
    memcpy(buf, x > 0 ? "+Inf" : "-Inf", 5);
    return 4;
  }
  /* As icmprun.report.number.shortest: the first precision that reads
   * back to the same double. */
  for (int precision = 15; precision <= 16; precision++) {
    int n = snprintf(buf, 32, "%.*g", precision, x);
    if (strtod(buf, NULL) == x) {
      return (size_t)n;
    }
  }
  return (size_t)snprintf(buf, 32, "%.17g", x);
}

/* Writes a signed integer in decimal; returns the length (at most 20). */
static size_t ir__format_int(int64_t v, char* buf) {
  char tmp[24];
  size_t n = 0;
  uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u != 0);
  size_t len = 0;
  if (v < 0) {
    buf[len++] = '-';
  }
  while (n > 0) {
    buf[len++] = tmp[--n];
  }
  return len;
}

/* A line buffer: one target's samples of one family are put together here,
 * then appended to the text at once. */
typedef struct ir_expo_line_s {
  char* data;
  size_t len;
  size_t cap;
} ir_expo_line_t;

static int ir__put(ir_expo_line_t* line, const char* s, size_t n) {
  if (line->len + n > line->cap) {
    size_t cap = line->cap ? line->cap : 4096;
    while (cap < line->len + n) {
      cap *= 2;
    }
    char* grown = realloc(line->data, cap);
    if (grown == NULL) {
      return -ENOMEM;
    }
    line->data = grown;
    line->cap = cap;
  }
  memcpy(line->data + line->len, s, n);
  line->len += n;
  return 0;
}

static int ir__put_str(ir_expo_line_t* line, const char* s) {
  return ir__put(line, s, strlen(s));
}

/* name key rest value: one sample, as the Lua renderer's `%s%s%s%d`. */
static int ir__sample_int(ir_expo_line_t* line, const char* name, const char* key,
                          size_t key_len, const char* rest, int64_t value) {
  char num[24];
  size_t n = ir__format_int(value, num);
  if (ir__put_str(line, name) != 0 || ir__put(line, key, key_len) != 0 ||
      ir__put_str(line, rest) != 0 || ir__put(line, num, n) != 0) {
    return -ENOMEM;
  }
  return 0;
}

/* Appends one target's samples of one family to line. */
static int ir__family_samples(const ir_expo_layout_t* layout,
                              const ir_expo_snapshot_t* snap, size_t i, int family,
                              ir_expo_line_t* line) {
  const ir_expo_target_t* t = &snap->targets[i];
  const char* key = snap->keys + t->key_off;
  size_t key_len = t->key_len;
  const int64_t* results = &snap->results[i * (size_t)layout->nstatuses];
  const int64_t* counts = &snap->counts[i * (size_t)layout->nles];
  int rc = 0;
  switch (family) {
    case IR_EXPO_REQUESTS:
      rc = ir__sample_int(line, layout->requests_name, key, key_len, "} ", t->sent);
      break;
    case IR_EXPO_RESULTS:
      for (int s = 0; s < layout->nstatuses && rc == 0; s++) {
        rc = ir__sample_int(line, layout->results_name, key, key_len,
                            layout->status_labels[s], results[s]);
      }
      break;
    case IR_EXPO_HISTOGRAM: {
      int64_t running = 0;
      for (int b = 0; b < layout->nles && rc == 0; b++) {
        running += counts[b];
        rc = ir__sample_int(line, layout->bucket_name, key, key_len, layout->les[b],
                            running);
      }
      char num[32];
      size_t n = t->rtt_sum_is_integer ? ir__format_int(t->rtt_sum_integer, num)
                                       : ir_expo_format_double(t->rtt_sum, num);
      if (rc == 0 && (ir__put_str(line, layout->sum_name) != 0 ||
                      ir__put(line, key, key_len) != 0 || ir__put(line, "} ", 2) != 0 ||
                      ir__put(line, num, n) != 0)) {
        rc = -ENOMEM;
      }
      if (rc == 0) {
        rc = ir__sample_int(line, layout->count_name, key, key_len, "} ", t->replies);
      }
      break;
    }
    case IR_EXPO_TTL:
      if (t->has_ttl) {
        rc = ir__sample_int(line, layout->ttl_name, key, key_len, "} ", t->ttl);
      }
      break;
    case IR_EXPO_SEND_ERRORS:
      rc = ir__sample_int(line, layout->send_errors_name, key, key_len, "} ",
                          results[layout->error_status]);
      break;
    case IR_EXPO_DUPLICATES:
      rc = ir__sample_int(line, layout->duplicates_name, key, key_len, "} ",
                          t->duplicates);
      break;
    default:
      break;
  }
  return rc;
}

/* Writes the families of every target, family by family, then the tail. */
static int ir__render_all(const ir_expo_layout_t* layout,
                          const ir_expo_snapshot_t* snap, const char* tail,
                          size_t tail_len, ir_expo_text_t* out, ir_expo_line_t* line) {
  if (snap->ntargets > 0) {
    for (int f = 0; f < IR_EXPO_FAMILIES; f++) {
      line->len = 0;
      if (ir__put_str(line, layout->headers[f]) != 0) {
        return -ENOMEM;
      }
      for (size_t i = 0; i < snap->ntargets; i++) {
        if (ir__family_samples(layout, snap, i, f, line) != 0) {
          return -ENOMEM;
        }
        /* Flush a line buffer that has grown past a chunk. */
        if (line->len >= IR_EXPO_CHUNK) {
          if (ir_expo_text_append(out, line->data, line->len) != 0) {
            return -ENOMEM;
          }
          line->len = 0;
        }
      }
      if (ir_expo_text_append(out, line->data, line->len) != 0) {
        return -ENOMEM;
      }
    }
  }
  if (ir_expo_text_append(out, tail, tail_len) != 0) {
    return -ENOMEM;
  }
  if (out->total > 0 && ir_expo_text_append(out, "\n", 1) != 0) {
    return -ENOMEM;
  }
  return 0;
}

int ir_expo_render(const ir_expo_layout_t* layout, const ir_expo_snapshot_t* snap,
                   const char* tail, size_t tail_len, ir_expo_text_t* out) {
  ir_expo_line_t line = {NULL, 0, 0};
  int rc = ir__render_all(layout, snap, tail, tail_len, out, &line);
  free(line.data);
  if (rc != 0) {
    ir_expo_text_clear(out);
    return rc;
  }
  /* Every piece starts with the newline that ends the line before it: the
   * first one has no line before it. */
  ir_expo_chunk_t* first = out->head;
  if (first != NULL && first->len > 0 && first->data[0] == '\n') {
    memmove(first->data, first->data + 1, first->len - 1);
    first->len--;
    out->total--;
  }
  return 0;
}

/* ---- gzip ---------------------------------------------------------------- */

/* Deflates what the stream holds until it needs more input (or, with
 * Z_FINISH, to the end), appending the output to out. */
static int ir__deflate_into(z_stream* z, int flush, ir_expo_text_t* out) {
  /* Small enough for any thread's stack. */
  enum { OUT_BYTES = 16 * 1024 };
  unsigned char buf[OUT_BYTES];
  int rc;
  do {
    z->next_out = buf;
    z->avail_out = (uInt)OUT_BYTES;
    rc = deflate(z, flush);
    if (rc == Z_STREAM_ERROR) {
      return -EIO;
    }
    size_t have = OUT_BYTES - z->avail_out;
    if (have > 0 && ir_expo_text_append(out, (const char*)buf, have) != 0) {
      return -ENOMEM;
    }
  } while (z->avail_out == 0);
  if (flush == Z_FINISH && rc != Z_STREAM_END) {
    return -EIO;
  }
  return 0;
}

int ir_expo_gzip(const ir_expo_text_t* in, int level, ir_expo_text_t* out) {
  z_stream z;
  memset(&z, 0, sizeof(z));
  /* 31: a window of 2^15 with a gzip header and trailer; memory level 8 is
   * zlib's default, as lua-zlib's stream used before. */
  int zrc = deflateInit2(&z, level, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
  if (zrc != Z_OK) {
    return zrc == Z_MEM_ERROR ? -ENOMEM : -EIO;
  }
  int rc = 0;
  for (const ir_expo_chunk_t* c = in->head; c != NULL && rc == 0; c = c->next) {
    z.next_in = (unsigned char*)c->data;
    z.avail_in = (uInt)c->len;
    rc = ir__deflate_into(&z, Z_NO_FLUSH, out);
  }
  if (rc == 0) {
    rc = ir__deflate_into(&z, Z_FINISH, out);
  }
  deflateEnd(&z);
  if (rc != 0) {
    ir_expo_text_clear(out);
  }
  return rc;
}
