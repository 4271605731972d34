/* test.h: a tiny test harness. TEST(name) registers a test (no list to edit);
 * ASSERT* abort the current test with file:line. The runner runs every test
 * (or those named on the command line), prints one line per test and ends
 * with "N passed, N failed". Fixture paths: cst_test_shared("models/x.gguf")
 * resolves against $CST_SHARED (default ../shared beside the source tree).
 */
#ifndef CST_TEST_H
#define CST_TEST_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef void (*cst_test_fn)(void);
void cst_test_register(const char *name, cst_test_fn fn);
void cst_test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Skips the current test with a reason (counted as skipped, not passed). */
void cst_test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *cst_test_shared(const char *rel); /* static buffer per call (ring of 8) */
const char *cst_test_tmpdir(void);            /* a fresh temp dir for this process */

#define TEST(name)                                                                     \
    static void name(void);                                                            \
    __attribute__((constructor)) static void reg_##name(void) { cst_test_register(#name, name); } \
    static void name(void)

#define ASSERT(c)                                                                      \
    do {                                                                               \
        if (!(c)) cst_test_fail(__FILE__, __LINE__, "ASSERT(%s)", #c);                 \
    } while (0)
#define ASSERT_MSG(c, ...)                                                             \
    do {                                                                               \
        if (!(c)) cst_test_fail(__FILE__, __LINE__, __VA_ARGS__);                      \
    } while (0)
#define ASSERT_EQ(a, b)                                                                \
    do {                                                                               \
        long long _a = (long long)(a), _b = (long long)(b);                            \
        if (_a != _b) cst_test_fail(__FILE__, __LINE__, "%s == %s (%lld vs %lld)", #a, #b, _a, _b); \
    } while (0)
#define ASSERT_STREQ(a, b)                                                             \
    do {                                                                               \
        const char *_a = (a), *_b = (b);                                               \
        if (!_a || !_b || strcmp(_a, _b))                                              \
            cst_test_fail(__FILE__, __LINE__, "%s == %s (\"%s\" vs \"%s\")", #a, #b, _a ? _a : "(null)", _b ? _b : "(null)"); \
    } while (0)
#define ASSERT_NEAR(a, b, tol)                                                         \
    do {                                                                               \
        double _a = (double)(a), _b = (double)(b);                                     \
        if (!(fabs(_a - _b) <= (tol)))                                                 \
            cst_test_fail(__FILE__, __LINE__, "%s ~ %s (%.9g vs %.9g, tol %g)", #a, #b, _a, _b, (double)(tol)); \
    } while (0)
#define ASSERT_OK(st)                                                                  \
    do {                                                                               \
        int _s = (int)(st);                                                            \
        if (_s != 0) cst_test_fail(__FILE__, __LINE__, "%s returned %d", #st, _s);     \
    } while (0)

#endif
