/* test_sampler.c: argmax and the sampling chain (greedy equivalences,
 * reproducibility, distributions with fixed seeds, truncation rules, large
 * vocabularies) and the stop-sequence matcher (stops split across feeds,
 * overlapping prefixes, UTF-8 boundaries, randomized chunking). */
#include "engine/sampler/sampler.h"
#include "test.h"

#include <stdlib.h>

static uint64_t g_lcg = 12345;
static uint32_t lcg(void) {
    g_lcg = g_lcg * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(g_lcg >> 33);
}
static float frand(void) { return (float)(lcg() % 1000000) / 1000000.0f; }

static cst_sampler_params params(float temp, int32_t k, float p, float minp, uint64_t seed) {
    cst_sampler_params sp = {temp, k, p, minp, seed};
    return sp;
}

TEST(argmax_ties_and_nan) {
    float a[] = {1, 3, 2, 3, -1};
    ASSERT_EQ(cst_argmax(a, 5), 1);
    float b[] = {NAN, -5, NAN, -4, -4};
    ASSERT_EQ(cst_argmax(b, 5), 3);
    float c[] = {NAN, NAN};
    ASSERT_EQ(cst_argmax(c, 2), 0);
    float d[] = {-INFINITY, -INFINITY, -1e30f};
    ASSERT_EQ(cst_argmax(d, 3), 2);
}

TEST(defaults) {
    cst_sampler_params p = cst_sampler_default_params();
    ASSERT_NEAR(p.temperature, 0.8, 1e-6);
    ASSERT_EQ(p.top_k, 40);
    ASSERT_NEAR(p.top_p, 0.95, 1e-6);
    ASSERT_NEAR(p.min_p, 0.05, 1e-6);
    ASSERT(p.seed == CST_SAMPLER_SEED_RANDOM);
    cst_sampler *s = cst_sampler_new(&p, 10);
    ASSERT(s);
    ASSERT(cst_sampler_seed(s) != CST_SAMPLER_SEED_RANDOM);
    cst_sampler_free(s);
    ASSERT(cst_sampler_new(&p, 0) == NULL);
    cst_sampler_free(NULL);
}

/* temperature <= 0, top_k = 1, tiny top_p and min_p = 1 all reduce to greedy */
TEST(greedy_equivalences) {
    const int n = 1000;
    float *l = malloc(n * sizeof *l);
    cst_sampler_params ps[] = {
        params(0, 40, 0.9f, 0.1f, 1), params(-1, 0, 1, 0, 2),        params(1.0f, 1, 1, 0, 3),
        params(5.0f, 1, 0.5f, 0, 4),  params(1.0f, 0, 1e-6f, 0, 5), params(2.0f, 0, 1, 1.0f, 6),
    };
    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
        cst_sampler *s = cst_sampler_new(&ps[k], n);
        bool tie_ok = ps[k].min_p < 1.0f; /* min_p = 1 keeps every tied maximum */
        for (int round = 0; round < 50; round++) {
            for (int i = 0; i < n; i++) l[i] = frand() * 10 - 5;
            if (round % 5 == 0 && tie_ok) { /* exact tie at the top: lowest id wins */
                l[700] = 6;
                l[300] = 6;
            }
            int32_t want = cst_argmax(l, n);
            if (round % 5 == 0 && tie_ok) ASSERT_EQ(want, 300);
            ASSERT_EQ(cst_sampler_sample(s, l), want);
        }
        cst_sampler_free(s);
    }
    free(l);
}

TEST(reproducible_with_seed) {
    const int n = 5000;
    float *l = malloc(n * sizeof *l);
    for (int i = 0; i < n; i++) l[i] = frand() * 4;
    cst_sampler_params p = params(1.0f, 0, 0.98f, 0.01f, 42);
    cst_sampler *a = cst_sampler_new(&p, n), *b = cst_sampler_new(&p, n);
    p.seed = 43;
    cst_sampler *c = cst_sampler_new(&p, n);
    int differ = 0;
    for (int i = 0; i < 300; i++) {
        l[i % n] += 0.5f; /* logits change between steps */
        int32_t x = cst_sampler_sample(a, l), y = cst_sampler_sample(b, l), z = cst_sampler_sample(c, l);
        ASSERT_EQ(x, y);
        differ += x != z;
    }
    ASSERT(differ > 100); /* another seed gives another sequence */
    cst_sampler_free(a);
    cst_sampler_free(b);
    cst_sampler_free(c);
    free(l);
}

/* frequencies of n_draws samples over 4 tokens */
static void histogram(cst_sampler_params p, const float *l, int n_draws, double freq[4]) {
    cst_sampler *s = cst_sampler_new(&p, 4);
    int cnt[4] = {0};
    for (int i = 0; i < n_draws; i++) {
        int32_t t = cst_sampler_sample(s, l);
        ASSERT(t >= 0 && t < 4);
        cnt[t]++;
    }
    for (int i = 0; i < 4; i++) freq[i] = (double)cnt[i] / n_draws;
    cst_sampler_free(s);
}

TEST(distributions) {
    /* probabilities 1/2, 1/4, 1/8, 1/8 */
    float l[4] = {logf(0.5f), logf(0.25f), logf(0.125f), logf(0.125f)};
    double f[4];
    histogram(params(1.0f, 0, 1.0f, 0, 7), l, 40000, f);
    ASSERT_NEAR(f[0], 0.5, 0.015);
    ASSERT_NEAR(f[1], 0.25, 0.015);
    ASSERT_NEAR(f[2], 0.125, 0.015);
    ASSERT_NEAR(f[3], 0.125, 0.015);
    /* temperature 0.5 squares the probabilities: 16/22, 4/22, 1/22, 1/22 */
    histogram(params(0.5f, 0, 1.0f, 0, 8), l, 40000, f);
    ASSERT_NEAR(f[0], 16.0 / 22, 0.015);
    ASSERT_NEAR(f[1], 4.0 / 22, 0.015);
    ASSERT_NEAR(f[2], 1.0 / 22, 0.01);
    /* top-k 2 renormalises over the best two: 2/3, 1/3 */
    histogram(params(1.0f, 2, 1.0f, 0, 9), l, 40000, f);
    ASSERT_NEAR(f[0], 2.0 / 3, 0.015);
    ASSERT_NEAR(f[1], 1.0 / 3, 0.015);
    ASSERT_EQ(f[2] + f[3], 0);
    /* top-p 0.7: 0.5 < 0.7 <= 0.75, so the first two */
    histogram(params(1.0f, 0, 0.7f, 0, 10), l, 40000, f);
    ASSERT_NEAR(f[0], 2.0 / 3, 0.015);
    ASSERT_EQ(f[2] + f[3], 0);
    /* top-p 0.5 exactly reached by the first token */
    histogram(params(1.0f, 0, 0.5f, 0, 11), l, 2000, f);
    ASSERT_EQ(f[0], 1.0);
    /* min-p 0.3: p >= 0.15 keeps the first two */
    histogram(params(1.0f, 0, 1.0f, 0.3f, 12), l, 40000, f);
    ASSERT_NEAR(f[0], 2.0 / 3, 0.015);
    ASSERT_EQ(f[2] + f[3], 0);
    /* min-p 0.2: 0.125 >= 0.1 keeps all */
    histogram(params(1.0f, 0, 1.0f, 0.2f, 13), l, 40000, f);
    ASSERT_NEAR(f[3], 0.125, 0.015);
}

TEST(infinities) {
    float l[5] = {-INFINITY, 0, -INFINITY, NAN, 0};
    cst_sampler_params p = params(1.0f, 0, 1.0f, 0, 3);
    cst_sampler *s = cst_sampler_new(&p, 5);
    int seen[5] = {0};
    for (int i = 0; i < 2000; i++) seen[cst_sampler_sample(s, l)]++;
    ASSERT_EQ(seen[0] + seen[2] + seen[3], 0);
    ASSERT(seen[1] > 800 && seen[4] > 800);
    float m[5] = {1, INFINITY, 2, INFINITY, 0};
    ASSERT_EQ(cst_sampler_sample(s, m), 1);
    float all[5] = {-INFINITY, -INFINITY, NAN, -INFINITY, -INFINITY};
    ASSERT_EQ(cst_sampler_sample(s, all), 0);
    cst_sampler_free(s);
}

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* 151936 logits: samples always come from the top-k / the nucleus */
TEST(large_vocab_truncation) {
    const int n = 151936;
    float *l = malloc(n * sizeof *l), *sorted = malloc(n * sizeof *sorted);
    for (int i = 0; i < n; i++) l[i] = frand() * 20;
    memcpy(sorted, l, n * sizeof *l);
    qsort(sorted, n, sizeof *sorted, cmp_desc);
    cst_sampler_params p = params(1.0f, 40, 1.0f, 0, 99);
    cst_sampler *s = cst_sampler_new(&p, n);
    for (int i = 0; i < 100; i++) {
        int32_t t = cst_sampler_sample(s, l);
        ASSERT(l[t] >= sorted[39]);
    }
    cst_sampler_free(s);
    /* nucleus of 0.5 without top-k: compute the cut-off logit directly */
    double maxl = sorted[0], sum = 0, cum = 0;
    for (int i = 0; i < n; i++) sum += exp(sorted[i] - maxl);
    int cut = 0;
    while (cum < 0.5 * sum) cum += exp(sorted[cut++] - maxl);
    p = params(1.0f, 0, 0.5f, 0, 100);
    s = cst_sampler_new(&p, n);
    int hits_low = 0;
    for (int i = 0; i < 150; i++) {
        int32_t t = cst_sampler_sample(s, l);
        ASSERT(l[t] >= sorted[cut - 1]);
        hits_low += l[t] < sorted[cut / 2];
    }
    ASSERT(hits_low > 0); /* not collapsed to the very top */
    cst_sampler_free(s);
    /* default chain on a large vocab */
    p = cst_sampler_default_params();
    p.seed = 5;
    s = cst_sampler_new(&p, n);
    for (int i = 0; i < 100; i++) ASSERT(l[cst_sampler_sample(s, l)] >= sorted[39]);
    cst_sampler_free(s);
    free(l);
    free(sorted);
}

/* Sequences drawn by the previous sampler (full quickselect) for fixed seeds:
 * the one-pass top-k must select, order and draw exactly the same way (ties
 * at the k-th place included: the logits take 4096 distinct values only). */
TEST(pinned_sequences) {
    const int n = 49157; /* not a multiple of the 16-logit blocks */
    float *l = malloc(n * sizeof *l);
    uint64_t g = 777;
    for (int i = 0; i < n; i++) {
        g = g * 6364136223846793005ull + 1442695040888963407ull;
        l[i] = (float)((uint32_t)(g >> 33) % 4096) / 256.0f;
    }
    l[n - 1] = NAN;
    l[100] = -INFINITY;
    const cst_sampler_params ps[3] = {params(0.8f, 40, 0.95f, 0.0f, 1234), params(1.0f, 40, 1.0f, 0.0f, 99),
                                      params(1.5f, 7, 0.9f, 0.05f, 5)};
    const int32_t want[3][16] = {
        {8819, 18450, 3933, 29940, 10249, 29940, 28466, 32818, 42538, 48750, 32577, 32969, 14837, 48750, 7846, 18450},
        {5654, 42703, 8681, 39650, 18450, 32969, 46544, 8877, 29940, 46861, 11187, 21704, 14837, 14837, 8681, 38825},
        {8877, 13581, 13581, 14837, 10249, 14837, 10249, 14837, 8877, 8877, 21704, 8819, 8877, 14837, 10249, 21704},
    };
    for (int k = 0; k < 3; k++) {
        cst_sampler *s = cst_sampler_new(&ps[k], n);
        ASSERT(s);
        for (int t = 0; t < 16; t++) {
            l[t * 131 % n] += 0.25f;
            ASSERT_EQ(cst_sampler_sample(s, l), want[k][t]);
        }
        cst_sampler_free(s);
    }
    free(l);
}

/* top-k over blocks: ties at the cut keep the lowest ids, a +inf anywhere
 * wins, fewer finite logits than k keep them all, argmax finds a maximum in
 * the tail or behind NaN blocks */
TEST(top_k_blocks) {
    const int n = 1003;
    float *l = malloc(n * sizeof *l);
    for (int i = 0; i < n; i++) l[i] = 1.0f;
    cst_sampler_params p = params(1.0f, 3, 1.0f, 0, 17);
    cst_sampler *s = cst_sampler_new(&p, n);
    int seen[3] = {0};
    for (int i = 0; i < 600; i++) {
        int32_t t = cst_sampler_sample(s, l);
        ASSERT(t >= 0 && t < 3);
        seen[t]++;
    }
    ASSERT(seen[0] > 100 && seen[1] > 100 && seen[2] > 100);
    l[998] = INFINITY;
    l[999] = INFINITY;
    ASSERT_EQ(cst_sampler_sample(s, l), 998);
    for (int i = 0; i < n; i++) l[i] = i % 100 == 7 ? (float)i : -INFINITY; /* 10 finite, k = 40 */
    cst_sampler_free(s);
    p = params(1000.0f, 40, 1.0f, 0, 18);
    s = cst_sampler_new(&p, n);
    int hits = 0;
    for (int i = 0; i < 400; i++) {
        int32_t t = cst_sampler_sample(s, l);
        ASSERT_EQ(t % 100, 7);
        hits += t == 7;
    }
    ASSERT(hits > 10); /* near-uniform at a high temperature: the lowest is drawn too */
    cst_sampler_free(s);
    for (int i = 0; i < n; i++) l[i] = NAN;
    l[1001] = -3;
    l[1002] = -2;
    ASSERT_EQ(cst_argmax(l, n), 1002);
    l[40] = -2;
    ASSERT_EQ(cst_argmax(l, n), 40);
    l[20] = -0.0f;
    l[35] = 0.0f;
    ASSERT_EQ(cst_argmax(l, n), 20);
    free(l);
}

/* ---- stopper ---------------------------------------------------------------- */
typedef struct {
    char out[4096];
    size_t n;
} sink;

static void take_into(cst_stopper *st, sink *k) {
    size_t l;
    const char *p = cst_stopper_take(st, &l);
    ASSERT(k->n + l < sizeof k->out);
    memcpy(k->out + k->n, p, l);
    k->n += l;
    k->out[k->n] = 0;
}

static void flush_into(cst_stopper *st, sink *k) {
    size_t l;
    const char *p = cst_stopper_flush(st, &l);
    memcpy(k->out + k->n, p, l);
    k->n += l;
    k->out[k->n] = 0;
}

TEST(stopper_no_stops_and_utf8) {
    cst_stopper *st = cst_stopper_new(NULL, 0);
    sink k = {0};
    ASSERT(!cst_stopper_feed(st, "a\xc3", 2));
    take_into(st, &k);
    ASSERT_STREQ(k.out, "a"); /* half of é held back */
    ASSERT(!cst_stopper_feed(st, "\xa9", 1));
    take_into(st, &k);
    ASSERT_STREQ(k.out, "a\xc3\xa9");
    /* a 4-byte emoji in single bytes */
    const char *emo = "\xf0\x9f\x98\x80";
    for (int i = 0; i < 3; i++) {
        ASSERT(!cst_stopper_feed(st, emo + i, 1));
        take_into(st, &k);
        ASSERT_EQ(k.n, 3);
    }
    ASSERT(!cst_stopper_feed(st, emo + 3, 1));
    take_into(st, &k);
    ASSERT_EQ(k.n, 7);
    /* flush drops an incomplete trailing character */
    ASSERT(!cst_stopper_feed(st, "z\xe2\x82", 3));
    flush_into(st, &k);
    ASSERT_STREQ(k.out, "a\xc3\xa9\xf0\x9f\x98\x80z");
    cst_stopper_free(st);
}

TEST(stopper_single_feed) {
    const char *stops[] = {"STOP"};
    cst_stopper *st = cst_stopper_new(stops, 1);
    sink k = {0};
    ASSERT(cst_stopper_feed(st, "hello STOP world", 16));
    flush_into(st, &k);
    ASSERT_STREQ(k.out, "hello ");
    ASSERT(cst_stopper_feed(st, "more", 4)); /* stays stopped */
    flush_into(st, &k);
    ASSERT_STREQ(k.out, "hello ");
    cst_stopper_free(st);
}

TEST(stopper_split_across_feeds) {
    const char *stops[] = {"</answer>"};
    cst_stopper *st = cst_stopper_new(stops, 1);
    sink k = {0};
    const char *text = "x < y </ans</answer> tail";
    size_t n = strlen(text);
    bool stopped = false;
    for (size_t i = 0; i < n && !stopped; i++) {
        stopped = cst_stopper_feed(st, text + i, 1);
        if (!stopped) take_into(st, &k);
        /* nothing that could still be the stop is ever emitted */
        ASSERT(strstr(k.out, "</") == NULL || strstr(k.out, "</ans") != NULL);
        if (i == 2) ASSERT_STREQ(k.out, "x ");  /* "<" held */
        if (i == 3) ASSERT_STREQ(k.out, "x < "); /* "< " released */
    }
    ASSERT(stopped);
    flush_into(st, &k);
    ASSERT_STREQ(k.out, "x < y </ans");
    cst_stopper_free(st);
}

TEST(stopper_false_prefix_released) {
    const char *stops[] = {"STOP"};
    cst_stopper *st = cst_stopper_new(stops, 1);
    sink k = {0};
    ASSERT(!cst_stopper_feed(st, "ST", 2));
    take_into(st, &k);
    ASSERT_STREQ(k.out, "");
    ASSERT(!cst_stopper_feed(st, "O", 1));
    take_into(st, &k);
    ASSERT_STREQ(k.out, "");
    ASSERT(!cst_stopper_feed(st, "X", 1));
    take_into(st, &k);
    ASSERT_STREQ(k.out, "STOX");
    ASSERT(!cst_stopper_feed(st, "S", 1));
    flush_into(st, &k); /* end of generation: the held "S" is text */
    ASSERT_STREQ(k.out, "STOXS");
    cst_stopper_free(st);
}

TEST(stopper_overlapping_prefixes) {
    /* "aab" must be found in "aaab" fed byte by byte */
    const char *s1[] = {"aab"};
    cst_stopper *st = cst_stopper_new(s1, 1);
    sink k = {0};
    const char *t = "aaab";
    bool stopped = false;
    for (int i = 0; i < 4; i++) {
        stopped = cst_stopper_feed(st, t + i, 1);
        if (!stopped) take_into(st, &k);
    }
    ASSERT(stopped);
    flush_into(st, &k);
    ASSERT_STREQ(k.out, "a");
    cst_stopper_free(st);

    /* several stops: the earliest match wins, prefixes of both are held */
    const char *s2[] = {"world", "lo w", "", "xyz"};
    st = cst_stopper_new(s2, 4);
    sink k2 = {0};
    ASSERT(!cst_stopper_feed(st, "hel", 3));
    take_into(st, &k2);
    ASSERT_STREQ(k2.out, "he"); /* "l" may start "lo w" */
    ASSERT(!cst_stopper_feed(st, "lo", 2));
    take_into(st, &k2);
    ASSERT_STREQ(k2.out, "hel");
    ASSERT(cst_stopper_feed(st, " world", 6));
    flush_into(st, &k2);
    ASSERT_STREQ(k2.out, "hel");
    cst_stopper_free(st);

    /* a stop that is a suffix of another stop's prefix: "abcd" / "bce" on "abce" */
    const char *s3[] = {"abcd", "bce"};
    st = cst_stopper_new(s3, 2);
    sink k3 = {0};
    ASSERT(!cst_stopper_feed(st, "ab", 2));
    ASSERT(!cst_stopper_feed(st, "c", 1));
    take_into(st, &k3);
    ASSERT_STREQ(k3.out, "");
    ASSERT(cst_stopper_feed(st, "e", 1));
    flush_into(st, &k3);
    ASSERT_STREQ(k3.out, "a");
    cst_stopper_free(st);
}

TEST(stopper_multibyte_stop) {
    const char *stops[] = {"\xe3\x80\x82"}; /* 。 */
    cst_stopper *st = cst_stopper_new(stops, 1);
    sink k = {0};
    const char *t = "\xe6\x97\xa5\xe6\x9c\xac\xe3\x80\x82\xe8\xaa\x9e"; /* 日本。語 */
    bool stopped = false;
    for (size_t i = 0; i < strlen(t) && !stopped; i++) {
        stopped = cst_stopper_feed(st, t + i, 1);
        if (!stopped) take_into(st, &k);
        /* only whole characters come out */
        ASSERT(k.n % 3 == 0);
    }
    ASSERT(stopped);
    flush_into(st, &k);
    ASSERT_STREQ(k.out, "\xe6\x97\xa5\xe6\x9c\xac");
    cst_stopper_free(st);
}

static bool valid_utf8_prefix_complete(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t l = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
        if (i + l > n) return false;
        i += l;
    }
    return true;
}

/* random texts over a small alphabet (with multibyte characters), random
 * chunking: the output is exactly the text before the first stop */
TEST(stopper_randomized) {
    const char *alpha[] = {"a", "b", "c", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    const char *stops[] = {"abca", "b\xc3\xa9" "c", "\xe2\x82\xac\xe2\x82\xac"};
    g_lcg = 777;
    for (int iter = 0; iter < 2000; iter++) {
        char text[256];
        size_t n = 0;
        int len = 1 + (int)(lcg() % 40);
        for (int i = 0; i < len; i++) {
            const char *a = alpha[lcg() % 6];
            memcpy(text + n, a, strlen(a));
            n += strlen(a);
        }
        text[n] = 0;
        size_t want = n;
        for (int s = 0; s < 3; s++) {
            char *m = strstr(text, stops[s]);
            if (m && (size_t)(m - text) < want) want = (size_t)(m - text);
        }
        cst_stopper *st = cst_stopper_new(stops, 3);
        sink k = {0};
        bool stopped = false;
        size_t pos = 0;
        while (pos < n && !stopped) {
            size_t c = 1 + lcg() % 5;
            if (c > n - pos) c = n - pos;
            stopped = cst_stopper_feed(st, text + pos, c);
            pos += c;
            if (!stopped) {
                size_t before = k.n;
                take_into(st, &k);
                ASSERT(valid_utf8_prefix_complete(k.out + before, k.n - before));
            }
        }
        flush_into(st, &k);
        ASSERT_EQ(stopped, want < n);
        ASSERT_EQ(k.n, want);
        ASSERT(memcmp(k.out, text, want) == 0);
        cst_stopper_free(st);
    }
}
