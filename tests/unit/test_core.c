/* test_core.c: status strings, half-precision conversions, thread pool,
 * growable buffers, UTF-8, SHA-256/HMAC, base64, time strings. */
#include "test.h"
#include "core/base64.h"
#include "core/core.h"
#include "core/sha256.h"
#include "core/half.h"
#include "core/pool.h"

#include <stdatomic.h>
#include <string.h>

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

static void hex32(const uint8_t d[32], char out[65]) {
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* FIPS 180-4 examples; the incremental interface gives the same digest for
 * every split of the input (block boundaries, empty updates) */
TEST(sha256_known_answers_and_splits) {
    char hex[65];
    cst_sha256_hex("", 0, hex);
    ASSERT_STREQ(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    cst_sha256_hex("abc", 3, hex);
    ASSERT_STREQ(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    cst_sha256_hex(two, strlen(two), hex);
    ASSERT_STREQ(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    static char mil[1000000];
    memset(mil, 'a', sizeof mil);
    cst_sha256_hex(mil, sizeof mil, hex);
    ASSERT_STREQ(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    uint8_t whole[32], part[32];
    cst_sha256(mil, 200, whole);
    for (size_t cut1 = 0; cut1 <= 200; cut1 += 7)
        for (size_t cut2 = cut1; cut2 <= 200; cut2 += 13) {
            cst_sha256_ctx c;
            cst_sha256_init(&c);
            cst_sha256_update(&c, mil, cut1);
            cst_sha256_update(&c, mil + cut1, 0);
            cst_sha256_update(&c, mil + cut1, cut2 - cut1);
            cst_sha256_update(&c, mil + cut2, 200 - cut2);
            cst_sha256_final(&c, part);
            ASSERT_MSG(!memcmp(whole, part, 32), "split %zu/%zu", cut1, cut2);
        }
}

/* RFC 4231 test cases 1, 2 and 6 (a key longer than the block); a | b is
 * the concatenation */
TEST(hmac_sha256_rfc4231) {
    uint8_t key[131], mac[32];
    char hex[65];
    memset(key, 0x0b, 20);
    cst_hmac_sha256(key, 20, "Hi There", 8, NULL, 0, mac);
    hex32(mac, hex);
    ASSERT_STREQ(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    cst_hmac_sha256((const uint8_t *)"Jefe", 4, "what do ya want ", 16, "for nothing?", 12, mac);
    hex32(mac, hex);
    ASSERT_STREQ(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    memset(key, 0xaa, sizeof key);
    const char *m = "Test Using Larger Than Block-Size Key - Hash Key First";
    cst_hmac_sha256(key, sizeof key, m, strlen(m), NULL, 0, mac);
    hex32(mac, hex);
    ASSERT_STREQ(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(base64_standard) {
    char out[64];
    cst_b64_encode((const uint8_t *)"foobar", 6, out);
    ASSERT_STREQ(out, "Zm9vYmFy");
    cst_b64_encode((const uint8_t *)"foob", 4, out);
    ASSERT_STREQ(out, "Zm9vYg==");
    const char *ok[] = {"Zm9vYg==", "Zm9vYg", "Zm9vYmE=", "Zm9vYmFy", ""};
    const size_t lens[] = {4, 4, 5, 6, 0};
    for (int i = 0; i < 5; i++) {
        size_t n = 99;
        bool oom;
        uint8_t *b = cst_b64_decode(ok[i], strlen(ok[i]), &n, &oom);
        ASSERT_MSG(b != NULL, "decode %s", ok[i]);
        ASSERT_EQ(n, lens[i]);
        ASSERT(!memcmp(b, "foobar", n));
        free(b);
    }
    const char *bad[] = {"Zm9vY", "Zm9v!g==", "Zm9vYg===", "Zm9vYh==", "Zm 9v", "Zg=", "Z===", "Zm9v-w=="};
    for (size_t i = 0; i < CST_ARRAY_LEN(bad); i++) {
        size_t n;
        bool oom;
        uint8_t *b = cst_b64_decode(bad[i], strlen(bad[i]), &n, &oom);
        ASSERT_MSG(b == NULL, "accepted %s", bad[i]);
        free(b);
    }
}

/* URL-safe: '-' and '_', no padding written; every length round-trips and
 * the standard alphabet's '+' and '/' are refused */
TEST(base64_url) {
    uint8_t in[64];
    char enc[CST_B64_LEN(64)];
    for (int i = 0; i < 64; i++) in[i] = (uint8_t)(0xf8 + i * 37);
    for (size_t n = 0; n <= 64; n++) {
        const size_t len = cst_b64url_encode(in, n, enc);
        ASSERT_EQ(len, strlen(enc));
        ASSERT_EQ(len, (4 * n + 2) / 3);
        ASSERT(!strchr(enc, '+') && !strchr(enc, '/') && !strchr(enc, '='));
        size_t m = 99;
        uint8_t *d = cst_b64url_decode(enc, len, &m, NULL);
        ASSERT_MSG(d && m == n && !memcmp(d, in, n), "round trip of %zu bytes", n);
        free(d);
    }
    cst_b64url_encode((const uint8_t *)"\xfb\xff", 2, enc);
    ASSERT_STREQ(enc, "-_8");
    size_t m;
    ASSERT(cst_b64url_decode("+_8", 3, &m, NULL) == NULL);
    ASSERT(cst_b64url_decode("-_9", 3, &m, NULL) == NULL); /* leftover bits set */
}

TEST(time_rfc3339) {
    char s[32];
    cst_time_rfc3339(0, s);
    ASSERT_STREQ(s, "1970-01-01T00:00:00Z");
    cst_time_rfc3339(1796194286, s);
    ASSERT_STREQ(s, "2026-12-02T06:51:26Z");
}
