/* SPDX-License-Identifier: MIT */
/* A tiny check harness for the C unit tests: count failures, report at the end. */
#ifndef ICMPRUN_SPEC_CHECK_H
#define ICMPRUN_SPEC_CHECK_H

#include <stdio.h>
#include <string.h>

/* A failed check is reported and counted, and the test goes on, so one run
 * shows every broken expectation rather than only the first. */
#define CHECK(cond) check_true((cond) != 0, __FILE__, __LINE__, #cond)
#define CHECK_EQ_INT(a, b) \
  check_eq_int((long long)(a), (long long)(b), __FILE__, __LINE__, #a, #b)
#define CHECK_EQ_STR(a, b) check_eq_str((a), (b), __FILE__, __LINE__, #a, #b)

/* Each test is its own program, so the tallies are file-scope statics: they
 * belong to that one test and no library code ever sees them. */
static unsigned long check_passed;
static unsigned long check_failed;

static inline int check_true(int ok, const char* file, int line, const char* expr) {
  if (ok) {
    check_passed++;
  } else {
    check_failed++;
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, expr);
  }
  return ok;
}

static inline int check_eq_int(long long a, long long b, const char* file, int line,
                               const char* expr_a, const char* expr_b) {
  if (a == b) {
    check_passed++;
    return 1;
  }
  check_failed++;
  fprintf(stderr, "%s:%d: check failed: %s == %s (%lld != %lld)\n", file, line, expr_a,
          expr_b, a, b);
  return 0;
}

static inline int check_eq_str(const char* a, const char* b, const char* file, int line,
                               const char* expr_a, const char* expr_b) {
  if (a != NULL && b != NULL && strcmp(a, b) == 0) {
    check_passed++;
    return 1;
  }
  check_failed++;
  fprintf(stderr, "%s:%d: check failed: %s == %s (\"%s\" != \"%s\")\n", file, line,
          expr_a, expr_b, a != NULL ? a : "(null)", b != NULL ? b : "(null)");
  return 0;
}

/* Prints the tally; returns the exit status for main. */
static inline int check_summary(void) {
  printf("%lu checks passed, %lu failed\n", check_passed, check_failed);
  return check_failed == 0 ? 0 : 1;
}

#endif
