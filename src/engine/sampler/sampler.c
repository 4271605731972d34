/* sampler.c: token selection from logits: greedy argmax, or the chain
 * top-k -> top-p -> min-p -> temperature -> seeded draw (xoshiro256**).
 * Candidates are ordered by (logit desc, id asc), so results never depend on
 * the selection algorithm. A small top-k is one pass over the logits that
 * skips 16-logit blocks below the current k-th best and keeps the survivors
 * in a k-entry heap (a larger k: an O(n) quickselect); the survivors are then
 * sorted. Top-p without top-k grows a sorted prefix until the nucleus is
 * covered. All scratch space is allocated in cst_sampler_new.
 */
#define _GNU_SOURCE
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define CST_SAMPLER_MIN(a, b) ((a) < (b) ? (a) : (b))

typedef struct {
    float logit;
    int32_t id;
} cand;

struct cst_sampler {
    cst_sampler_params p;
    int32_t n_vocab;
    cand *c;    /* n_vocab */
    float *pr;  /* n_vocab probabilities */
    uint64_t s[4];
};

/* ---- RNG ------------------------------------------------------------------ */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t s[4]) {
    uint64_t r = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* uniform in [0, 1) with 53 random bits */
static double uniform01(uint64_t s[4]) { return (double)(xoshiro_next(s) >> 11) * 0x1.0p-53; }

static uint64_t random_seed(void) {
    uint64_t x = 0;
    if (getrandom(&x, sizeof x, GRND_NONBLOCK) == (ssize_t)sizeof x && x != CST_SAMPLER_SEED_RANDOM) return x;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
    return x == CST_SAMPLER_SEED_RANDOM ? 0 : x;
}

/* ---- params / lifecycle --------------------------------------------------- */
cst_sampler_params cst_sampler_default_params(void) {
    cst_sampler_params p;
    p.temperature = 0.8f;
    p.top_k = 40;
    p.top_p = 0.95f;
    p.min_p = 0.05f;
    p.seed = CST_SAMPLER_SEED_RANDOM;
    return p;
}

cst_sampler *cst_sampler_new(const cst_sampler_params *p, int32_t n_vocab) {
    if (n_vocab <= 0) return NULL;
    cst_sampler *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->p = p ? *p : cst_sampler_default_params();
    if (s->p.seed == CST_SAMPLER_SEED_RANDOM) s->p.seed = random_seed();
    s->n_vocab = n_vocab;
    s->c = malloc((size_t)n_vocab * sizeof *s->c);
    s->pr = malloc((size_t)n_vocab * sizeof *s->pr);
    if (!s->c || !s->pr) {
        cst_sampler_free(s);
        return NULL;
    }
    uint64_t x = s->p.seed;
    for (int i = 0; i < 4; i++) s->s[i] = splitmix64(&x);
    return s;
}

void cst_sampler_free(cst_sampler *s) {
    if (!s) return;
    free(s->c);
    free(s->pr);
    free(s);
}

uint64_t cst_sampler_seed(const cst_sampler *s) { return s->p.seed; }

/* Block scans, 16 logits at a time: SSE2 on x86-64, scalar elsewhere. */
#define VW 16
#if defined(__SSE2__)
#include <emmintrin.h>
/* any of p[0..16) > t (false for NaN) */
static inline bool any_gt16(const float *p, float t) {
    const __m128 v = _mm_set1_ps(t);
    __m128 m = _mm_or_ps(_mm_or_ps(_mm_cmpgt_ps(_mm_loadu_ps(p), v), _mm_cmpgt_ps(_mm_loadu_ps(p + 4), v)),
                         _mm_or_ps(_mm_cmpgt_ps(_mm_loadu_ps(p + 8), v), _mm_cmpgt_ps(_mm_loadu_ps(p + 12), v)));
    return _mm_movemask_ps(m) != 0;
}
#else
static inline bool any_gt16(const float *p, float t) {
    bool a = false;
    for (int j = 0; j < VW; j++) a |= p[j] > t;
    return a;
}
#endif

/* First index of the largest non-NaN value (the first of equal maxima);
 * 0 when every value is NaN. Blocks that hold nothing above the best so far
 * are skipped with one compare. */
int32_t cst_argmax(const float *logits, int32_t n) {
    int32_t best = -1, i = 0;
    while (i < n && best < 0) { /* the first non-NaN value */
        if (!isnan(logits[i])) best = i;
        i++;
    }
    if (best < 0) return 0;
    float m = logits[best];
    while (i < n) {
        if (i + VW <= n && !any_gt16(logits + i, m)) {
            i += VW;
            continue;
        }
        const int32_t end = i + VW < n ? i + VW : n;
        for (; i < end; i++)
            if (logits[i] > m) { /* false for NaN */
                m = logits[i];
                best = i;
            }
    }
    return best;
}

/* ---- ordering helpers ----------------------------------------------------- */
static inline bool better(const cand *a, const cand *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static void swapc(cand *a, cand *b) {
    cand t = *a;
    *a = *b;
    *b = t;
}

/* Rearrange c[0..n) so that c[0..k) are the k best (unordered). Expected O(n). */
static void select_top(cand *c, size_t n, size_t k) {
    size_t lo = 0, hi = n; /* the k-th boundary lies in [lo, hi) */
    while (hi - lo > 1) {
        /* median of three as pivot, moved to hi-1 */
        size_t mid = lo + (hi - lo) / 2;
        if (better(&c[mid], &c[lo])) swapc(&c[mid], &c[lo]);
        if (better(&c[hi - 1], &c[lo])) swapc(&c[hi - 1], &c[lo]);
        if (better(&c[mid], &c[hi - 1])) swapc(&c[mid], &c[hi - 1]);
        cand piv = c[hi - 1];
        size_t st = lo;
        for (size_t i = lo; i < hi - 1; i++)
            if (better(&c[i], &piv)) swapc(&c[i], &c[st++]);
        swapc(&c[st], &c[hi - 1]);
        /* c[lo..st) better than pivot, c[st] pivot, c[st+1..hi) worse */
        if (st == k || st + 1 == k) return;
        if (st > k) hi = st;
        else lo = st + 1;
    }
}

/* In-place sort, best first (glibc's qsort may allocate; sampling must not).
 * Quicksort with median-of-three, recursing into the smaller side. */
static void sort_cands(cand *c, size_t n) {
    while (n > 16) {
        size_t mid = n / 2;
        if (better(&c[mid], &c[0])) swapc(&c[mid], &c[0]);
        if (better(&c[n - 1], &c[0])) swapc(&c[n - 1], &c[0]);
        if (better(&c[mid], &c[n - 1])) swapc(&c[mid], &c[n - 1]);
        cand piv = c[n - 1];
        size_t st = 0;
        for (size_t i = 0; i < n - 1; i++)
            if (better(&c[i], &piv)) swapc(&c[i], &c[st++]);
        swapc(&c[st], &c[n - 1]);
        /* c[0..st) better, c[st] pivot, c[st+1..n) worse */
        if (st < n - st - 1) {
            sort_cands(c, st);
            c += st + 1;
            n -= st + 1;
        } else {
            sort_cands(c + st + 1, n - st - 1);
            n = st;
        }
    }
    for (size_t i = 1; i < n; i++) { /* insertion sort */
        cand x = c[i];
        size_t j = i;
        while (j > 0 && better(&x, &c[j - 1])) {
            c[j] = c[j - 1];
            j--;
        }
        c[j] = x;
    }
}

/* ---- top-k in one pass --------------------------------------------------------- */
#define HEAP_K_MAX 256 /* larger k: quickselect */

/* h[0..n) is a heap with the worst candidate at the root. */
static void heap_down(cand *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, w = i;
        if (l < n && better(&h[w], &h[l])) w = l;
        if (l + 1 < n && better(&h[w], &h[l + 1])) w = l + 1;
        if (w == i) return;
        swapc(&h[i], &h[w]);
        i = w;
    }
}

static void heap_up(cand *h, size_t i) {
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!better(&h[p], &h[i])) return;
        swapc(&h[p], &h[i]);
        i = p;
    }
}

/* The k best finite logits into c[0..k), sorted best first, when more than k
 * logits are finite (*cut = true); otherwise every finite logit in id order
 * (what the full candidate list would be). Returns the count, or -1 with
 * *inf_id set when a logit is +inf (the first one wins outright). Logits
 * visited later have larger ids, so a later logit beats the heap's root only
 * when it is strictly larger: whole 16-logit blocks at or below the root are
 * skipped with one vector compare. */
static ssize_t collect_top_k(cand *c, const float *logits, int32_t n_vocab, size_t k, bool *cut, int32_t *inf_id) {
    size_t cnt = 0;
    int32_t i = 0;
    *cut = false;
    for (; i < n_vocab && cnt < k; i++) { /* fill */
        float x = logits[i];
        if (isnan(x) || x == -INFINITY) continue;
        if (x == INFINITY) {
            *inf_id = i;
            return -1;
        }
        c[cnt].logit = x;
        c[cnt].id = i;
        heap_up(c, cnt++);
    }
    bool more = false; /* a finite logit beyond the first k */
    for (; i < n_vocab;) {
        if (i + VW <= n_vocab && !any_gt16(logits + i, c[0].logit)) {
            if (!more) more = any_gt16(logits + i, -INFINITY);
            i += VW;
            continue;
        }
        const int32_t end = CST_SAMPLER_MIN(i + VW, n_vocab);
        for (; i < end; i++) {
            float x = logits[i];
            if (!(x > -INFINITY)) continue; /* NaN, -inf */
            more = true;
            if (x == INFINITY) {
                *inf_id = i;
                return -1;
            }
            if (x > c[0].logit) {
                c[0].logit = x;
                c[0].id = i;
                heap_down(c, cnt, 0);
            }
        }
    }
    if (more) {
        *cut = true;
        sort_cands(c, cnt);
    } else {
        for (size_t a = 1; a < cnt; a++) { /* id order (insertion sort, cnt <= k) */
            cand x = c[a];
            size_t b = a;
            while (b > 0 && c[b - 1].id > x.id) {
                c[b] = c[b - 1];
                b--;
            }
            c[b] = x;
        }
    }
    return (ssize_t)cnt;
}

/* ---- the chain ------------------------------------------------------------ */
int32_t cst_sampler_sample(cst_sampler *s, const float *logits) {
    const cst_sampler_params *p = &s->p;
    if (!(p->temperature > 0)) return cst_argmax(logits, s->n_vocab);

    cand *c = s->c;
    bool sorted = false;
    size_t n = 0;
    if (p->top_k > 0 && p->top_k <= HEAP_K_MAX) {
        int32_t inf_id = -1;
        ssize_t got = collect_top_k(c, logits, s->n_vocab, (size_t)p->top_k, &sorted, &inf_id);
        if (got < 0) return inf_id;
        n = (size_t)got;
        if (n == 0) return cst_argmax(logits, s->n_vocab);
        goto top_p;
    }

    /* candidates: finite logits only (a +inf logit wins outright) */
    for (int32_t i = 0; i < s->n_vocab; i++) {
        float x = logits[i];
        if (isnan(x) || x == -INFINITY) continue;
        if (x == INFINITY) return i;
        s->c[n].logit = x;
        s->c[n].id = i;
        n++;
    }
    if (n == 0) return cst_argmax(logits, s->n_vocab);

    /* top-k */
    if (p->top_k > 0 && (size_t)p->top_k < n) {
        select_top(c, n, (size_t)p->top_k);
        n = (size_t)p->top_k;
        sort_cands(c, n);
        sorted = true;
    }

top_p:
    /* top-p: the smallest prefix (by probability) whose mass reaches top_p */
    if (p->top_p < 1.0f && n > 1) {
        float maxl = c[0].logit;
        for (size_t i = 1; i < n; i++)
            if (c[i].logit > maxl) maxl = c[i].logit;
        double sum = 0;
        for (size_t i = 0; i < n; i++) sum += exp((double)c[i].logit - maxl);
        size_t m = sorted ? n : (n < 64 ? n : 64);
        size_t keep = n;
        for (;;) {
            if (!sorted) {
                if (m < n) select_top(c, n, m);
                sort_cands(c, m);
            }
            double cum = 0;
            size_t i;
            for (i = 0; i < m; i++) {
                cum += exp((double)c[i].logit - maxl) / sum;
                if (cum >= p->top_p) break;
            }
            if (i < m) {
                keep = i + 1;
                break;
            }
            if (m == n) break;
            m = m * 4 < n ? m * 4 : n;
        }
        /* either the nucleus is a sorted prefix, or the loop sorted everything */
        n = keep;
        sorted = true;
    }

    /* min-p: keep logits >= max + log(min_p), i.e. p >= min_p * p_max */
    if (p->min_p > 0 && n > 1) {
        float maxl = c[0].logit;
        for (size_t i = 1; i < n; i++)
            if (c[i].logit > maxl) maxl = c[i].logit;
        float minl = maxl + logf(p->min_p);
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (c[i].logit >= minl) c[k++] = c[i];
        if (k > 0) n = k;
    }

    /* temperature, then the draw */
    float maxl = c[0].logit;
    for (size_t i = 1; i < n; i++)
        if (c[i].logit > maxl) maxl = c[i].logit;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        s->pr[i] = (float)exp(((double)c[i].logit - maxl) / p->temperature);
        sum += s->pr[i];
    }
    double r = uniform01(s->s) * sum, acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc += s->pr[i];
        if (r < acc) return c[i].id;
    }
    /* rounding: the last candidate with non-zero mass */
    for (size_t i = n; i-- > 0;)
        if (s->pr[i] > 0) return c[i].id;
    return c[0].id;
}
