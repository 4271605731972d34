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
