/* test_core.c: status strings, half-precision conversions, thread pool. */
#include "test.h"
#include "core/core.h"
#include "core/half.h"
#include "core/pool.h"

#include <stdatomic.h>

TEST(status_names) {
    ASSERT_STREQ(cst_status_str(CST_OK), "CST_OK");
    ASSERT_STREQ(cst_status_str(CST_ERR_INTERNAL), "CST_ERR_INTERNAL");
    ASSERT_STREQ(cst_status_str((cst_status)999), "CST_ERR_UNKNOWN");
}

TEST(f16_roundtrip_all) {
    /* every finite half converts to float and back unchanged */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaN payloads */
        float f = cst_f16_to_f32((cst_f16)h);
        ASSERT_EQ(cst_f32_to_f16(f), h);
    }
}

TEST(f16_rounding) {
    ASSERT_EQ(cst_f32_to_f16(1.0f), 0x3c00);
    ASSERT_EQ(cst_f32_to_f16(65504.0f), 0x7bff);
    ASSERT_EQ(cst_f32_to_f16(1e6f), 0x7c00);           /* overflow -> inf */
    ASSERT_EQ(cst_f32_to_f16(1.0f + 0x1p-11f), 0x3c00); /* tie -> even */
    ASSERT_EQ(cst_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
    ASSERT_EQ(cst_f32_to_f16(-0.0f), 0x8000);
    ASSERT_EQ(cst_f32_to_f16(0x1p-24f), 0x0001); /* smallest subnormal */
}

TEST(bf16_rounding) {
    ASSERT_EQ(cst_f32_to_bf16(1.0f), 0x3f80);
    ASSERT_EQ(cst_f32_to_bf16(cst_bits_f32(0x3f808000u)), 0x3f80); /* tie -> even */
    ASSERT_EQ(cst_f32_to_bf16(cst_bits_f32(0x3f818000u)), 0x3f82);
    ASSERT_NEAR(cst_bf16_to_f32(0x4049), 3.140625, 0);
}

struct sum_ctx {
    _Atomic long total;
    int seen[16];
    cst_pool *pool;
};

static void add_job(void *p, int ith, int nth) {
    struct sum_ctx *c = p;
    long s = 0;
    for (int i = ith; i < 100000; i += nth) s += i;
    atomic_fetch_add(&c->total, s);
    c->seen[ith]++;
    cst_pool_barrier(c->pool);
    c->seen[ith]++;
}

TEST(pool_runs_every_thread) {
    for (int nt = 1; nt <= 4; nt++) {
        cst_pool *pool = cst_pool_new(nt);
        ASSERT(pool);
        ASSERT_EQ(cst_pool_size(pool), nt);
        struct sum_ctx c = {0};
        c.pool = pool;
        for (int rep = 0; rep < 200; rep++) cst_pool_run(pool, add_job, &c);
        ASSERT_EQ(atomic_load(&c.total), 200L * (99999L * 100000L / 2));
        for (int i = 0; i < nt; i++) ASSERT_EQ(c.seen[i], 400);
        cst_pool_free(pool);
    }
}

TEST(buf_put_grows_and_terminates) {
    cst_buf b = {0};
    ASSERT(cst_buf_put(&b, "", 0));
    ASSERT(b.p && b.len == 0 && b.p[0] == 0); /* an empty put gives "" */
    char chunk[1000];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 100; i++) ASSERT(cst_buf_put(&b, chunk, sizeof chunk));
    ASSERT_EQ(b.len, (size_t)100000);
    ASSERT_EQ(b.p[b.len], 0);
    ASSERT_EQ((size_t)strspn(b.p, "x"), (size_t)100000);
    ASSERT(!b.oom);
    ASSERT(!cst_buf_put(&b, chunk, SIZE_MAX / 2)); /* a size that cannot be had sets oom */
    ASSERT(b.oom);
    ASSERT(!cst_buf_put(&b, "y", 1)); /* and later puts are dropped, the contents kept */
    ASSERT_EQ(b.len, (size_t)100000);
    cst_buf_free(&b);
    ASSERT(!b.p && b.len == 0 && !b.oom);
}

TEST(utf8_char_len) {
    static const struct {
        const char *s;
        size_t n, want;
    } cases[] = {
        {"a", 1, 1}, {"\x7f", 1, 1}, {"", 1, 1}, /* NUL is a character */
        {"\xc3\xa9", 2, 2}, {"\xe2\x82\xac", 3, 3}, {"\xf0\x9f\x98\x80", 4, 4}, {"\xf4\x8f\xbf\xbf", 4, 4},
        {"\xc3\xa9", 1, 0},          /* cut off */
        {"\xe2\x82", 2, 0},          /* cut off */
        {"\x80", 1, 0},              /* lone continuation */
        {"\xc0\xaf", 2, 0},          /* overlong '/' */
        {"\xe0\x80\xaf", 3, 0},      /* overlong */
        {"\xed\xa0\x80", 3, 0},      /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", 4, 0},  /* U+110000 */
        {"\xf8\x88\x80\x80\x80", 5, 0}, /* 5-byte form */
        {"\xc3(", 2, 0},             /* bad continuation */
    };
    for (size_t i = 0; i < CST_ARRAY_LEN(cases); i++)
        ASSERT_MSG(cst_utf8_char_len((const unsigned char *)cases[i].s, cases[i].n) == cases[i].want, "case %zu", i);
    ASSERT_EQ(cst_utf8_char_len((const unsigned char *)"a", 0), (size_t)0);
}
