/* SPDX-License-Identifier: MIT */
/* Unit tests for expo.c: numbers as Prometheus writes them, text in chunks, gzip. */
#include "expo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "check.h"

static const char* fmt(double x) {
  static char buf[32];
  ir_expo_format_double(x, buf);
  return buf;
}

/* The shortest of 15, 16 or 17 digits that reads back the same, as
 * icmprun.report.number.shortest writes a Lua float. */
static void test_format_double(void) {
  CHECK_EQ_STR(fmt(0.0), "0");
  CHECK_EQ_STR(fmt(0.5515), "0.5515");
  CHECK_EQ_STR(fmt(0.1 + 0.2), "0.30000000000000004");
  CHECK_EQ_STR(fmt(1e-300), "1e-300");
  CHECK_EQ_STR(fmt(12345.0), "12345");
  CHECK_EQ_STR(fmt(INFINITY), "+Inf");
  CHECK_EQ_STR(fmt(-INFINITY), "-Inf");
  CHECK_EQ_STR(fmt(NAN), "NaN");
  for (int i = 1; i < 10000; i++) {
    double x = i * 0.0137 / 7.0;
    CHECK(strtod(fmt(x), NULL) == x);
  }
}

/* Appends spread over chunks of at most IR_EXPO_CHUNK bytes, in order. */
static void test_chunks(void) {
  ir_expo_text_t text = {NULL, NULL, 0};
  size_t n = IR_EXPO_CHUNK * 2 + 17;
  char* data = malloc(n);
  for (size_t i = 0; i < n; i++) {
    data[i] = (char)('a' + i % 26);
  }
  CHECK_EQ_INT(ir_expo_text_append(&text, data, 100), 0);
  CHECK_EQ_INT(ir_expo_text_append(&text, data + 100, n - 100), 0);
  CHECK_EQ_INT(text.total, n);
  size_t at = 0;
  int chunks = 0;
  ir_expo_chunk_t* c;
  while ((c = ir_expo_text_shift(&text)) != NULL) {
    CHECK(c->len <= IR_EXPO_CHUNK);
    CHECK(memcmp(c->data, data + at, c->len) == 0);
    at += c->len;
    chunks++;
    free(c);
  }
  CHECK_EQ_INT(at, n);
  CHECK_EQ_INT(chunks, 3);
  CHECK_EQ_INT(text.total, 0);
  free(data);
}

/* gzip of a text inflates back to it. */
static void test_gzip(void) {
  ir_expo_text_t text = {NULL, NULL, 0}, gz = {NULL, NULL, 0};
  const char* line = "smokeping_requests_total{host=\"h\",ip=\"127.0.0.1\"} 12345\n";
  for (int i = 0; i < 20000; i++) {
    ir_expo_text_append(&text, line, strlen(line));
  }
  CHECK_EQ_INT(ir_expo_gzip(&text, 1, &gz), 0);
  CHECK(gz.total > 18 && gz.total < text.total / 10);
  unsigned char* packed = malloc(gz.total);
  size_t at = 0;
  for (ir_expo_chunk_t* c = gz.head; c != NULL; c = c->next) {
    memcpy(packed + at, c->data, c->len);
    at += c->len;
  }
  CHECK(packed[0] == 0x1f && packed[1] == 0x8b); /* A gzip header. */
  size_t plain_len = text.total;
  char* plain = malloc(plain_len + 1);
  z_stream z;
  memset(&z, 0, sizeof(z));
  CHECK_EQ_INT(inflateInit2(&z, 31), Z_OK);
  z.next_in = packed;
  z.avail_in = (uInt)gz.total;
  z.next_out = (unsigned char*)plain;
  z.avail_out = (uInt)plain_len + 1;
  CHECK_EQ_INT(inflate(&z, Z_FINISH), Z_STREAM_END);
  CHECK_EQ_INT(z.total_out, plain_len);
  inflateEnd(&z);
  at = 0;
  int same = 1;
  for (ir_expo_chunk_t* c = text.head; c != NULL; c = c->next) {
    same = same && memcmp(plain + at, c->data, c->len) == 0;
    at += c->len;
  }
  CHECK(same);
  free(plain);
  free(packed);
  ir_expo_text_clear(&text);
  ir_expo_text_clear(&gz);
}

int main(void) {
  test_format_double();
  test_chunks();
  test_gzip();
  return check_summary();
}
