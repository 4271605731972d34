/* grammar.c: the byte-level grammar automaton behind constrained decoding
 * (see grammar.h). Program layout: every alternative of every rule is a run
 * of elements ending with GE_END; a parse stack is a chain of hash-consed
 * nodes (pos = next element, parent = the caller's return node), a state the
 * sorted set of stacks whose top is a byte class, plus an accept flag.
 * References in tail position reuse the caller's return node, so
 * right-recursive repetition (strings, lists) keeps stacks flat.
 */
#include "grammar.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { GE_CLASS = 0, GE_REF = 1, GE_END = 2 };
typedef struct {
    int32_t kind, arg;
} gel;

#define MC_INF (INT32_MAX / 4)

static int32_t sat_add(int32_t a, int32_t b) {
    int64_t s = (int64_t)a + b;
    return s >= MC_INF ? MC_INF : (int32_t)s;
}

static bool grow(void **p, int32_t *cap, int32_t need, size_t el) {
    if (need <= *cap) return true;
    int32_t nc = *cap ? *cap : 8;
    while (nc < need) {
        if (nc > INT32_MAX / 2) return false;
        nc *= 2;
    }
    void *q = realloc(*p, (size_t)nc * el);
    if (!q) return false;
    *p = q;
    *cap = nc;
    return true;
}

/* ======================================================================
 * Builder
 * ====================================================================== */
typedef struct {
    gel *e;
    int32_t n, cap;
} galt;

typedef struct {
    int32_t *alt;
    int32_t n, cap;
} grule;

struct cst_gbuild {
    grule *rules;
    int32_t n_rules, cap_rules;
    galt *alts;
    int32_t n_alts, cap_alts;
    uint8_t (*cls)[32];
    int32_t n_cls, cap_cls;
    int32_t *cls_ht; /* open addressing, -1 empty */
    int32_t cls_ht_cap;
    size_t n_elems;
    bool bad;
    char msg[160];
};

static void gb_fail(cst_gbuild *b, const char *m) {
    if (!b->bad) snprintf(b->msg, sizeof b->msg, "%s", m);
    b->bad = true;
}

cst_gbuild *cst_gb_new(void) { return calloc(1, sizeof(cst_gbuild)); }

void cst_gb_free(cst_gbuild *b) {
    if (!b) return;
    for (int32_t i = 0; i < b->n_rules; i++) free(b->rules[i].alt);
    for (int32_t i = 0; i < b->n_alts; i++) free(b->alts[i].e);
    free(b->rules);
    free(b->alts);
    free(b->cls);
    free(b->cls_ht);
    free(b);
}

int32_t cst_gb_n_rules(const cst_gbuild *b) { return b->n_rules; }
size_t cst_gb_n_elems(const cst_gbuild *b) { return b->n_elems; }

static int32_t gb_new_alt(cst_gbuild *b, int32_t rule) {
    if (!grow((void **)&b->alts, &b->cap_alts, b->n_alts + 1, sizeof *b->alts)) return -1;
    grule *r = &b->rules[rule];
    if (!grow((void **)&r->alt, &r->cap, r->n + 1, sizeof *r->alt)) return -1;
    b->alts[b->n_alts] = (galt){0};
    r->alt[r->n++] = b->n_alts;
    return b->n_alts++;
}

int32_t cst_gb_rule(cst_gbuild *b) {
    if (b->bad) return -1;
    if (b->n_rules >= CST_GRAMMAR_MAX_RULES) {
        char m[96];
        snprintf(m, sizeof m, "the grammar needs more than %d rules", CST_GRAMMAR_MAX_RULES);
        gb_fail(b, m);
        return -1;
    }
    if (!grow((void **)&b->rules, &b->cap_rules, b->n_rules + 1, sizeof *b->rules)) {
        gb_fail(b, "out of memory");
        return -1;
    }
    b->rules[b->n_rules] = (grule){0};
    int32_t id = b->n_rules++;
    if (gb_new_alt(b, id) < 0) {
        gb_fail(b, "out of memory");
        return -1;
    }
    return id;
}

void cst_gb_alt(cst_gbuild *b, int32_t rule) {
    if (b->bad) return;
    if (rule < 0 || rule >= b->n_rules) return gb_fail(b, "bad rule id");
    if (gb_new_alt(b, rule) < 0) gb_fail(b, "out of memory");
}

static void gb_push(cst_gbuild *b, int32_t rule, int32_t kind, int32_t arg) {
    if (b->bad) return;
    if (rule < 0 || rule >= b->n_rules) return gb_fail(b, "bad rule id");
    if (b->n_elems >= CST_GRAMMAR_MAX_ELEMS) {
        char m[96];
        snprintf(m, sizeof m, "the grammar needs more than %d elements", CST_GRAMMAR_MAX_ELEMS);
        return gb_fail(b, m);
    }
    grule *r = &b->rules[rule];
    galt *a = &b->alts[r->alt[r->n - 1]];
    if (!grow((void **)&a->e, &a->cap, a->n + 1, sizeof *a->e)) return gb_fail(b, "out of memory");
    a->e[a->n++] = (gel){kind, arg};
    b->n_elems++;
}

static uint32_t hash_bytes(const void *p, size_t n) {
    const uint8_t *s = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 16777619u;
    return h;
}

static int32_t gb_class_id(cst_gbuild *b, const uint8_t set[32]) {
    if (b->n_cls * 2 >= b->cls_ht_cap) {
        int32_t nc = b->cls_ht_cap ? b->cls_ht_cap * 2 : 64;
        int32_t *ht = malloc((size_t)nc * sizeof *ht);
        if (!ht) return -1;
        for (int32_t i = 0; i < nc; i++) ht[i] = -1;
        for (int32_t c = 0; c < b->n_cls; c++) {
            uint32_t h = hash_bytes(b->cls[c], 32) & (uint32_t)(nc - 1);
            while (ht[h] >= 0) h = (h + 1) & (uint32_t)(nc - 1);
            ht[h] = c;
        }
        free(b->cls_ht);
        b->cls_ht = ht;
        b->cls_ht_cap = nc;
    }
    uint32_t h = hash_bytes(set, 32) & (uint32_t)(b->cls_ht_cap - 1);
    while (b->cls_ht[h] >= 0) {
        if (!memcmp(b->cls[b->cls_ht[h]], set, 32)) return b->cls_ht[h];
        h = (h + 1) & (uint32_t)(b->cls_ht_cap - 1);
    }
    if (!grow((void **)&b->cls, &b->cap_cls, b->n_cls + 1, 32)) return -1;
    memcpy(b->cls[b->n_cls], set, 32);
    b->cls_ht[h] = b->n_cls;
    return b->n_cls++;
}

void cst_gb_class(cst_gbuild *b, int32_t rule, const uint8_t set[32]) {
    if (b->bad) return;
    int32_t c = gb_class_id(b, set);
    if (c < 0) return gb_fail(b, "out of memory");
    gb_push(b, rule, GE_CLASS, c);
}

void cst_gb_range(cst_gbuild *b, int32_t rule, uint8_t lo, uint8_t hi) {
    uint8_t set[32] = {0};
    for (unsigned c = lo; c <= hi; c++) set[c >> 3] |= (uint8_t)(1u << (c & 7));
    cst_gb_class(b, rule, set);
}

void cst_gb_lit(cst_gbuild *b, int32_t rule, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) cst_gb_range(b, rule, (uint8_t)s[i], (uint8_t)s[i]);
}

void cst_gb_ref(cst_gbuild *b, int32_t rule, int32_t ref) {
    if (ref < 0 || ref >= (b ? b->n_rules : 0)) {
        if (b) gb_fail(b, "reference to an undefined rule");
        return;
    }
    gb_push(b, rule, GE_REF, ref);
}

/* KMP: the trigger bytes matched after reading c in state i (i < n). */
static size_t kmp_next(const uint8_t *t, size_t n, const size_t *fail, size_t i, uint8_t c) {
    for (;;) {
        if (i < n && t[i] == c) return i + 1;
        if (i == 0) return 0;
        i = fail[i - 1];
    }
}

int32_t cst_gb_trigger(cst_gbuild *b, const char *trigger, size_t n, int32_t then) {
    if (b->bad) return -1;
    if (n == 0 || n > 64) {
        gb_fail(b, "a trigger must be 1 to 64 bytes");
        return -1;
    }
    const uint8_t *t = (const uint8_t *)trigger;
    size_t fail[64]; /* fail[i]: longest proper border of t[0..i] */
    fail[0] = 0;
    for (size_t i = 1, k = 0; i < n; i++) {
        while (k > 0 && t[i] != t[k]) k = fail[k - 1];
        if (t[i] == t[k]) k++;
        fail[i] = k;
    }
    int32_t st[64]; /* st[i]: the rule "i trigger bytes matched" */
    for (size_t i = 0; i < n; i++) st[i] = cst_gb_rule(b);
    if (b->bad) return -1;
    for (size_t i = 0; i < n; i++) {
        /* alternative 1 (the rule's first, empty): the text ends here */
        uint8_t sets[65][32];
        memset(sets, 0, sizeof sets);
        for (unsigned c = 0; c < 256; c++) {
            size_t j = kmp_next(t, n, fail, i, (uint8_t)c);
            sets[j][c >> 3] |= (uint8_t)(1u << (c & 7));
        }
        for (size_t j = 0; j <= n; j++) {
            bool any = false;
            for (int k = 0; k < 32; k++) any |= sets[j][k] != 0;
            if (!any) continue;
            if (j == n) { /* the trigger is complete: then follows (or nothing may) */
                if (then < 0) continue;
                cst_gb_alt(b, st[i]);
                cst_gb_class(b, st[i], sets[j]);
                cst_gb_ref(b, st[i], then);
                continue;
            }
            cst_gb_alt(b, st[i]);
            cst_gb_class(b, st[i], sets[j]);
            cst_gb_ref(b, st[i], st[j]);
        }
    }
    return b->bad ? -1 : st[0];
}

/* ======================================================================
 * Compiled grammar
 * ====================================================================== */
struct cst_grammar {
    atomic_int refs;
    gel *prog;
    int32_t n_prog;
    int32_t n_rules;
    int32_t *alt_off; /* [n_rules + 1] into alt_pos */
    int32_t *alt_pos; /* start positions of the alternatives */
    uint8_t (*cls)[32];
    int32_t n_cls;
    int32_t *minrest; /* [n_prog]: fewest bytes from pos to its END */
    int32_t *rule_min;
    int32_t root;
    int32_t min_bytes;
};

static void grammar_free(cst_grammar *g) {
    if (!g) return;
    free(g->prog);
    free(g->alt_off);
    free(g->alt_pos);
    free(g->cls);
    free(g->minrest);
    free(g->rule_min);
    free(g);
}

cst_grammar *cst_grammar_ref(cst_grammar *g) {
    if (g) atomic_fetch_add(&g->refs, 1);
    return g;
}

void cst_grammar_unref(cst_grammar *g) {
    if (g && atomic_fetch_sub(&g->refs, 1) == 1) grammar_free(g);
}

int32_t cst_grammar_min_bytes(const cst_grammar *g) { return g->min_bytes; }
size_t cst_grammar_n_elems(const cst_grammar *g) { return (size_t)g->n_prog; }

/* minrest of the alternative starting at pos, with the current rule_min */
static int32_t alt_min(const cst_grammar *g, int32_t pos) {
    int32_t s = 0;
    for (; g->prog[pos].kind != GE_END; pos++)
        s = sat_add(s, g->prog[pos].kind == GE_CLASS ? 1 : g->rule_min[g->prog[pos].arg]);
    return s;
}

/* Left recursion: an edge r -> s when an alternative of r can reach a
 * reference to s without consuming a byte. Any cycle is refused. */
static bool left_recursive(const cst_grammar *g, int32_t *bad_rule) {
    const int32_t n = g->n_rules;
    int8_t *color = calloc((size_t)n, 1);
    int32_t *stk = malloc((size_t)n * 2 * sizeof *stk); /* (rule, next alt-element cursor) pairs */
    int32_t *cur = malloc((size_t)n * sizeof *cur);
    bool found = false;
    if (!color || !stk || !cur) {
        free(color), free(stk), free(cur);
        *bad_rule = -1;
        return true;
    }
    /* enumerate the left-edges of rule r lazily: cursor = index over (alt, elem) */
    for (int32_t r0 = 0; r0 < n && !found; r0++) {
        if (color[r0]) continue;
        int32_t sp = 0;
        stk[sp++] = r0;
        cur[r0] = 0;
        color[r0] = 1;
        while (sp > 0 && !found) {
            int32_t r = stk[sp - 1];
            /* next left-edge target of r from cursor cur[r]: cursor encodes alt index * 65536 + elem */
            int32_t next = -1;
            while (next < 0) {
                int32_t ai = cur[r] >> 16, ei = cur[r] & 0xFFFF;
                if (ai >= g->alt_off[r + 1] - g->alt_off[r]) break;
                int32_t pos = g->alt_pos[g->alt_off[r] + ai];
                /* walk to element ei if all before are nullable refs */
                bool ok = true;
                for (int32_t k = 0; k < ei; k++) {
                    const gel *e = &g->prog[pos + k];
                    if (e->kind != GE_REF || g->rule_min[e->arg] != 0) {
                        ok = false;
                        break;
                    }
                }
                const gel *e = &g->prog[pos + ei];
                if (!ok || e->kind != GE_REF || ei >= 0xFFFF) {
                    cur[r] = (ai + 1) << 16;
                    continue;
                }
                cur[r] = (ai << 16) | (ei + 1);
                next = e->arg;
            }
            if (next < 0) {
                color[r] = 2;
                sp--;
                continue;
            }
            if (color[next] == 1) {
                found = true;
                *bad_rule = next;
            } else if (color[next] == 0) {
                color[next] = 1;
                cur[next] = 0;
                stk[sp++] = next;
            }
        }
    }
    free(color), free(stk), free(cur);
    return found;
}

cst_grammar *cst_gb_finish(cst_gbuild *b, int32_t root, char *err, size_t errlen) {
    cst_grammar *g = NULL;
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (b->bad) {
        snprintf(err, errlen, "%s", b->msg);
        goto fail;
    }
    if (root < 0 || root >= b->n_rules) {
        snprintf(err, errlen, "bad root rule");
        goto fail;
    }
    g = calloc(1, sizeof *g);
    if (!g) goto nomem;
    atomic_init(&g->refs, 1);
    g->n_rules = b->n_rules;
    g->root = root;
    g->n_prog = (int32_t)(b->n_elems + (size_t)b->n_alts);
    g->prog = malloc((size_t)g->n_prog * sizeof *g->prog);
    g->alt_off = malloc(((size_t)b->n_rules + 1) * sizeof *g->alt_off);
    g->alt_pos = malloc(((size_t)b->n_alts + 1) * sizeof *g->alt_pos);
    g->minrest = malloc((size_t)g->n_prog * sizeof *g->minrest);
    g->rule_min = malloc((size_t)b->n_rules * sizeof *g->rule_min);
    g->n_cls = b->n_cls;
    g->cls = malloc(((size_t)b->n_cls + 1) * 32);
    if (!g->prog || !g->alt_off || !g->alt_pos || !g->minrest || !g->rule_min || !g->cls) goto nomem;
    if (b->n_cls) memcpy(g->cls, b->cls, (size_t)b->n_cls * 32);
    int32_t pos = 0, na = 0;
    for (int32_t r = 0; r < b->n_rules; r++) {
        g->alt_off[r] = na;
        for (int32_t a = 0; a < b->rules[r].n; a++) {
            const galt *al = &b->alts[b->rules[r].alt[a]];
            g->alt_pos[na++] = pos;
            for (int32_t k = 0; k < al->n; k++) g->prog[pos++] = al->e[k];
            g->prog[pos++] = (gel){GE_END, r};
        }
    }
    g->alt_off[b->n_rules] = na;
    /* fewest bytes per rule: fixed point from infinity */
    for (int32_t r = 0; r < g->n_rules; r++) g->rule_min[r] = MC_INF;
    for (bool changed = true; changed;) {
        changed = false;
        for (int32_t r = 0; r < g->n_rules; r++)
            for (int32_t a = g->alt_off[r]; a < g->alt_off[r + 1]; a++) {
                int32_t m = alt_min(g, g->alt_pos[a]);
                if (m < g->rule_min[r]) {
                    g->rule_min[r] = m;
                    changed = true;
                }
            }
    }
    for (int32_t r = 0; r < g->n_rules; r++)
        if (g->rule_min[r] >= MC_INF) {
            snprintf(err, errlen, "rule %d has no finite derivation (it never ends)", r);
            goto fail;
        }
    for (int32_t p = g->n_prog - 1; p >= 0; p--) {
        const gel *e = &g->prog[p];
        if (e->kind == GE_END) g->minrest[p] = 0;
        else g->minrest[p] = sat_add(g->minrest[p + 1], e->kind == GE_CLASS ? 1 : g->rule_min[e->arg]);
    }
    int32_t bad;
    if (left_recursive(g, &bad)) {
        if (bad < 0) goto nomem;
        snprintf(err, errlen, "rule %d is left-recursive (it can reach itself without consuming input)", bad);
        goto fail;
    }
    g->min_bytes = g->rule_min[root];
    cst_gb_free(b);
    return g;
nomem:
    snprintf(err, errlen, "out of memory compiling the grammar");
fail:
    grammar_free(g);
    cst_gb_free(b);
    return NULL;
}

/* ======================================================================
 * Vocabulary trie
 * ====================================================================== */
typedef struct {
    int32_t child, sibling, tok; /* tok: first token ending here (-1), more via tok_next */
    uint8_t byte;
} tnode;

struct cst_grammar_vocab {
    int32_t n_tokens;
    tnode *nodes;
    int32_t n_nodes, cap_nodes;
    int32_t *tok_next;
    uint8_t *is_eog;
};

cst_grammar_vocab *cst_grammar_vocab_new(const char *const *pieces, const uint32_t *lens, int32_t n_tokens,
                                         const int32_t *eog, size_t n_eog) {
    cst_grammar_vocab *v = calloc(1, sizeof *v);
    if (!v || n_tokens <= 0) goto fail;
    v->n_tokens = n_tokens;
    v->tok_next = malloc((size_t)n_tokens * sizeof *v->tok_next);
    v->is_eog = calloc((size_t)n_tokens, 1);
    if (!v->tok_next || !v->is_eog) goto fail;
    for (size_t i = 0; i < n_eog; i++)
        if (eog[i] >= 0 && eog[i] < n_tokens) v->is_eog[eog[i]] = 1;
    if (!grow((void **)&v->nodes, &v->cap_nodes, 1, sizeof *v->nodes)) goto fail;
    v->nodes[0] = (tnode){-1, -1, -1, 0};
    v->n_nodes = 1;
    for (int32_t t = 0; t < n_tokens; t++) {
        v->tok_next[t] = -1;
        if (v->is_eog[t] || !pieces[t] || lens[t] == 0) continue;
        int32_t cur = 0;
        for (uint32_t i = 0; i < lens[t]; i++) {
            const uint8_t c = (uint8_t)pieces[t][i];
            int32_t ch = v->nodes[cur].child, prev = -1;
            while (ch >= 0 && v->nodes[ch].byte < c) {
                prev = ch;
                ch = v->nodes[ch].sibling;
            }
            if (ch < 0 || v->nodes[ch].byte != c) { /* insert, children sorted by byte */
                if (!grow((void **)&v->nodes, &v->cap_nodes, v->n_nodes + 1, sizeof *v->nodes)) goto fail;
                int32_t nn = v->n_nodes++;
                v->nodes[nn] = (tnode){-1, ch, -1, c};
                if (prev < 0) v->nodes[cur].child = nn;
                else v->nodes[prev].sibling = nn;
                ch = nn;
            }
            cur = ch;
        }
        v->tok_next[t] = v->nodes[cur].tok;
        v->nodes[cur].tok = t;
    }
    return v;
fail:
    cst_grammar_vocab_free(v);
    return NULL;
}

void cst_grammar_vocab_free(cst_grammar_vocab *v) {
    if (!v) return;
    free(v->nodes);
    free(v->tok_next);
    free(v->is_eog);
    free(v);
}

int32_t cst_grammar_vocab_n(const cst_grammar_vocab *v) { return v->n_tokens; }
size_t cst_grammar_vocab_nodes(const cst_grammar_vocab *v) { return (size_t)v->n_nodes; }

/* ======================================================================
 * Runtime: interned stacks and states
 * ====================================================================== */
typedef struct {
    int32_t pos, parent, mc;
} snode;

typedef struct {
    int32_t off, n; /* leaves[off .. off+n) */
    int32_t mc;
    bool accept;
} gstate;

typedef struct {
    uint64_t *bits;  /* n_vocab bits */
    int32_t n_allowed;
    int32_t max_mc_after; /* the largest mc of a state an allowed token leads to */
    uint16_t *mc_after;   /* per token: mc after it (MCA_NONE: not allowed), made when the budget first binds */
} mcache;
#define MCA_NONE 0xFFFF
#define MCA_MAX 0xFFFE

/* open-addressing map uint64 -> int32 */
typedef struct {
    uint64_t *k;
    int32_t *v;
    size_t cap, n;
} hmap;

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static bool hm_grow(hmap *m) {
    size_t nc = m->cap ? m->cap * 2 : 1024;
    uint64_t *k = malloc(nc * sizeof *k);
    int32_t *v = malloc(nc * sizeof *v);
    if (!k || !v) {
        free(k), free(v);
        return false;
    }
    for (size_t i = 0; i < nc; i++) v[i] = -1;
    for (size_t i = 0; i < m->cap; i++)
        if (m->v[i] >= 0) {
            size_t h = mix64(m->k[i]) & (nc - 1);
            while (v[h] >= 0) h = (h + 1) & (nc - 1);
            k[h] = m->k[i];
            v[h] = m->v[i];
        }
    free(m->k), free(m->v);
    m->k = k, m->v = v, m->cap = nc;
    return true;
}

static int32_t hm_get(const hmap *m, uint64_t key) {
    if (!m->cap) return -1;
    size_t h = mix64(key) & (m->cap - 1);
    while (m->v[h] >= 0) {
        if (m->k[h] == key) return m->v[h];
        h = (h + 1) & (m->cap - 1);
    }
    return -1;
}

static bool hm_put(hmap *m, uint64_t key, int32_t val) {
    if ((m->n + 1) * 2 > m->cap && !hm_grow(m)) return false;
    size_t h = mix64(key) & (m->cap - 1);
    while (m->v[h] >= 0) {
        if (m->k[h] == key) {
            m->v[h] = val;
            return true;
        }
        h = (h + 1) & (m->cap - 1);
    }
    m->k[h] = key;
    m->v[h] = val;
    m->n++;
    return true;
}

static void hm_free(hmap *m) {
    free(m->k), free(m->v);
    memset(m, 0, sizeof *m);
}

struct cst_grammar_rt {
    cst_grammar *g;
    const cst_grammar_vocab *v;
    int32_t n_words; /* mask words */
    snode *nodes;
    int32_t n_nodes, cap_nodes;
    hmap node_map; /* (pos, parent) -> node */
    gstate *states;
    int32_t n_states, cap_states;
    int32_t *leaves;
    int32_t n_leaves, cap_leaves;
    hmap state_map; /* hash of leaves -> first state with that hash; chain via state_next */
    int32_t *state_next;
    hmap trans; /* state << 8 | byte -> state */
    mcache *masks; /* [cap_states] */
    size_t mask_bytes;
    uint64_t *scratch; /* n_words: budget-bound masks */
    int32_t start;
    /* expansion scratch */
    int32_t *work;
    int32_t n_work, cap_work;
    int32_t *out;
    int32_t n_out, cap_out;
    hmap seen;
    /* trie walk stack */
    int32_t *walk;
    int32_t cap_walk;
    bool oom;
    cst_grammar_stats st;
};

static int32_t node_get(cst_grammar_rt *rt, int32_t pos, int32_t parent) {
    uint64_t key = ((uint64_t)(uint32_t)pos << 32) | (uint32_t)(parent + 1);
    int32_t id = hm_get(&rt->node_map, key);
    if (id >= 0) return id;
    if (!grow((void **)&rt->nodes, &rt->cap_nodes, rt->n_nodes + 1, sizeof *rt->nodes)) goto oom;
    id = rt->n_nodes;
    int32_t mc = sat_add(rt->g->minrest[pos], parent >= 0 ? rt->nodes[parent].mc : 0);
    rt->nodes[id] = (snode){pos, parent, mc};
    if (!hm_put(&rt->node_map, key, id)) goto oom;
    rt->n_nodes++;
    rt->st.n_nodes++;
    return id;
oom:
    rt->oom = true;
    return -1;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static void work_push(cst_grammar_rt *rt, int32_t pos, int32_t parent) {
    uint64_t key = ((uint64_t)(uint32_t)pos << 32) | (uint32_t)(parent + 1);
    if (hm_get(&rt->seen, key) >= 0) return;
    if (!hm_put(&rt->seen, key, 1) || !grow((void **)&rt->work, &rt->cap_work, rt->n_work + 2, sizeof *rt->work)) {
        rt->oom = true;
        return;
    }
    rt->work[rt->n_work++] = pos;
    rt->work[rt->n_work++] = parent;
}

static void seen_clear(hmap *m) {
    if (m->cap > 4096 && m->n < m->cap / 16) { /* shrink after a big expansion */
        hm_free(m);
        return;
    }
    for (size_t i = 0; i < m->cap; i++) m->v[i] = -1;
    m->n = 0;
}

/* Expand the pushed items to stacks whose top is a byte class: rt->out
 * gets the leaves (unsorted, unique), *accept whether the input may end. */
static void expand(cst_grammar_rt *rt, bool *accept) {
    const cst_grammar *g = rt->g;
    while (rt->n_work > 0 && !rt->oom) {
        int32_t parent = rt->work[--rt->n_work];
        int32_t pos = rt->work[--rt->n_work];
        const gel *e = &g->prog[pos];
        if (e->kind == GE_CLASS) {
            int32_t leaf = node_get(rt, pos, parent);
            if (leaf < 0) break;
            if (!grow((void **)&rt->out, &rt->cap_out, rt->n_out + 1, sizeof *rt->out)) {
                rt->oom = true;
                break;
            }
            rt->out[rt->n_out++] = leaf;
        } else if (e->kind == GE_END) {
            if (parent < 0) *accept = true;
            else work_push(rt, rt->nodes[parent].pos, rt->nodes[parent].parent);
        } else {
            int32_t ret = parent;
            if (g->prog[pos + 1].kind != GE_END) {
                ret = node_get(rt, pos + 1, parent);
                if (ret < 0) break;
            }
            for (int32_t a = g->alt_off[e->arg]; a < g->alt_off[e->arg + 1]; a++) work_push(rt, g->alt_pos[a], ret);
        }
    }
    seen_clear(&rt->seen);
}

/* Intern rt->out (+accept) as a state. */
static int32_t intern_state(cst_grammar_rt *rt, bool accept) {
    if (rt->oom) return CST_GSTATE_DEAD;
    if (rt->n_out == 0 && !accept) return CST_GSTATE_DEAD;
    qsort(rt->out, (size_t)rt->n_out, sizeof *rt->out, cmp_i32);
    int32_t n = 0;
    for (int32_t i = 0; i < rt->n_out; i++)
        if (n == 0 || rt->out[n - 1] != rt->out[i]) rt->out[n++] = rt->out[i];
    rt->n_out = n;
    uint64_t h = (uint64_t)hash_bytes(rt->out, (size_t)n * sizeof *rt->out) << 1 | (accept ? 1u : 0u);
    for (int32_t s = hm_get(&rt->state_map, h); s >= 0; s = rt->state_next[s]) {
        const gstate *st = &rt->states[s];
        if (st->accept == accept && st->n == n && !memcmp(rt->leaves + st->off, rt->out, (size_t)n * sizeof *rt->out))
            return s;
    }
    int32_t old_cap = rt->cap_states;
    if (!grow((void **)&rt->states, &rt->cap_states, rt->n_states + 1, sizeof *rt->states)) goto oom;
    if (rt->cap_states != old_cap) {
        int32_t *nx = realloc(rt->state_next, (size_t)rt->cap_states * sizeof *nx);
        if (!nx) goto oom;
        rt->state_next = nx;
        mcache *mk = realloc(rt->masks, (size_t)rt->cap_states * sizeof *mk);
        if (!mk) goto oom;
        memset(mk + old_cap, 0, (size_t)(rt->cap_states - old_cap) * sizeof *mk);
        rt->masks = mk;
    }
    if (!grow((void **)&rt->leaves, &rt->cap_leaves, rt->n_leaves + n, sizeof *rt->leaves)) goto oom;
    int32_t id = rt->n_states;
    gstate *st = &rt->states[id];
    st->off = rt->n_leaves;
    st->n = n;
    st->accept = accept;
    int32_t mc = accept ? 0 : MC_INF;
    for (int32_t i = 0; i < n; i++)
        if (rt->nodes[rt->out[i]].mc < mc) mc = rt->nodes[rt->out[i]].mc;
    st->mc = mc;
    memcpy(rt->leaves + rt->n_leaves, rt->out, (size_t)n * sizeof *rt->out);
    rt->n_leaves += n;
    int32_t head = hm_get(&rt->state_map, h);
    rt->state_next[id] = head;
    if (!hm_put(&rt->state_map, h, id)) goto oom;
    rt->n_states++;
    rt->st.n_states++;
    return id;
oom:
    rt->oom = true;
    return CST_GSTATE_DEAD;
}

cst_grammar_rt *cst_grammar_rt_new(cst_grammar *g, const cst_grammar_vocab *v) {
    cst_grammar_rt *rt = calloc(1, sizeof *rt);
    if (!rt) return NULL;
    rt->g = cst_grammar_ref(g);
    rt->v = v;
    rt->n_words = (v->n_tokens + 63) / 64;
    rt->scratch = malloc((size_t)rt->n_words * sizeof *rt->scratch);
    if (!rt->scratch) goto fail;
    /* state 0: dead */
    rt->n_out = 0;
    if (!grow((void **)&rt->states, &rt->cap_states, 1, sizeof *rt->states)) goto fail;
    rt->state_next = calloc((size_t)rt->cap_states, sizeof *rt->state_next);
    rt->masks = calloc((size_t)rt->cap_states, sizeof *rt->masks);
    if (!rt->state_next || !rt->masks) goto fail;
    rt->states[0] = (gstate){0, 0, MC_INF, false};
    rt->state_next[0] = -1;
    rt->n_states = 1;
    bool acc = false;
    work_push(rt, g->alt_pos[g->alt_off[g->root]], -1);
    for (int32_t a = g->alt_off[g->root] + 1; a < g->alt_off[g->root + 1]; a++) work_push(rt, g->alt_pos[a], -1);
    rt->n_out = 0;
    expand(rt, &acc);
    rt->start = intern_state(rt, acc);
    if (rt->oom || rt->start == CST_GSTATE_DEAD) goto fail;
    return rt;
fail:
    cst_grammar_rt_free(rt);
    return NULL;
}

void cst_grammar_rt_trim(cst_grammar_rt *rt) {
    for (int32_t s = 0; s < rt->n_states; s++) {
        free(rt->masks[s].bits);
        free(rt->masks[s].mc_after);
        rt->masks[s].bits = NULL;
        rt->masks[s].mc_after = NULL;
    }
    rt->mask_bytes = 0;
}

void cst_grammar_rt_free(cst_grammar_rt *rt) {
    if (!rt) return;
    if (rt->masks) cst_grammar_rt_trim(rt);
    cst_grammar_unref(rt->g);
    free(rt->nodes);
    hm_free(&rt->node_map);
    free(rt->states);
    free(rt->leaves);
    hm_free(&rt->state_map);
    free(rt->state_next);
    hm_free(&rt->trans);
    free(rt->masks);
    free(rt->scratch);
    free(rt->work);
    free(rt->out);
    hm_free(&rt->seen);
    free(rt->walk);
    free(rt);
}

const cst_grammar *cst_grammar_rt_grammar(const cst_grammar_rt *rt) { return rt->g; }

size_t cst_grammar_rt_bytes(const cst_grammar_rt *rt) {
    return rt->mask_bytes + (size_t)rt->cap_nodes * sizeof(snode) + (size_t)rt->cap_states * (sizeof(gstate) + 4 + sizeof(mcache)) +
           (size_t)rt->cap_leaves * 4 + (rt->node_map.cap + rt->state_map.cap + rt->trans.cap) * 12;
}

cst_grammar_stats cst_grammar_rt_stats(const cst_grammar_rt *rt) { return rt->st; }

int32_t cst_grammar_rt_start(cst_grammar_rt *rt) { return rt->start; }

static int32_t step(cst_grammar_rt *rt, int32_t state, uint8_t c) {
    if (state == CST_GSTATE_DEAD) return CST_GSTATE_DEAD;
    const uint64_t key = ((uint64_t)(uint32_t)state << 8) | c;
    int32_t nx = hm_get(&rt->trans, key);
    if (nx >= 0) return nx;
    const gstate st = rt->states[state];
    rt->n_out = 0;
    for (int32_t i = 0; i < st.n; i++) {
        const snode *nd = &rt->nodes[rt->leaves[st.off + i]];
        const uint8_t *set = rt->g->cls[rt->g->prog[nd->pos].arg];
        if (set[c >> 3] & (1u << (c & 7))) work_push(rt, nd->pos + 1, nd->parent);
    }
    bool acc = false;
    expand(rt, &acc);
    nx = intern_state(rt, acc);
    if (!rt->oom && !hm_put(&rt->trans, key, nx)) rt->oom = true;
    return nx;
}

int32_t cst_grammar_rt_advance(cst_grammar_rt *rt, int32_t state, const char *s, size_t n) {
    for (size_t i = 0; i < n && state != CST_GSTATE_DEAD; i++) state = step(rt, state, (uint8_t)s[i]);
    return state;
}

bool cst_grammar_rt_accepting(cst_grammar_rt *rt, int32_t state) {
    return state > 0 && state < rt->n_states && rt->states[state].accept;
}

bool cst_grammar_rt_final(cst_grammar_rt *rt, int32_t state) {
    return cst_grammar_rt_accepting(rt, state) && rt->states[state].n == 0;
}

int32_t cst_grammar_rt_min_complete(cst_grammar_rt *rt, int32_t state) {
    return state > 0 && state < rt->n_states ? rt->states[state].mc : MC_INF;
}

bool cst_grammar_rt_is_eog(const cst_grammar_rt *rt, int32_t tok) {
    return tok >= 0 && tok < rt->v->n_tokens && rt->v->is_eog[tok];
}

static bool fits(int32_t mc, int32_t left) { return left == CST_GBUDGET_NONE || mc <= left - 1; }

bool cst_grammar_rt_allowed(cst_grammar_rt *rt, int32_t state, int32_t tok, const char *s, size_t n, int32_t left,
                            int32_t *next) {
    *next = CST_GSTATE_DEAD;
    if (state <= 0 || state >= rt->n_states || tok < 0 || tok >= rt->v->n_tokens) return false;
    if (rt->v->is_eog[tok]) {
        *next = state;
        return rt->states[state].accept;
    }
    if (n == 0) return false;
    int32_t st = cst_grammar_rt_advance(rt, state, s, n);
    if (st == CST_GSTATE_DEAD || !fits(rt->states[st].mc, left)) return false;
    *next = st;
    return true;
}

/* Walk the trie from the root with the grammar state: every token whose
 * bytes keep the automaton alive (and, under a budget, leave a state that
 * completes within left - 1 tokens) gets its bit. */
static int32_t walk(cst_grammar_rt *rt, int32_t state, int32_t left, uint64_t *bits, int32_t *max_mc, uint16_t *mca) {
    const cst_grammar_vocab *v = rt->v;
    memset(bits, 0, (size_t)rt->n_words * sizeof *bits);
    if (mca) memset(mca, 0xFF, (size_t)v->n_tokens * sizeof *mca);
    int32_t n_allowed = 0, mx = 0;
    const gstate *sst = &rt->states[state];
    if (sst->accept) {
        for (int32_t t = 0; t < v->n_tokens; t++)
            if (v->is_eog[t]) {
                bits[t >> 6] |= 1ull << (t & 63);
                n_allowed++;
                if (mca) mca[t] = 0;
            }
    }
    /* explicit stack of (trie node, state) pairs: the children of the
     * pushed node still to visit are walked by sibling links */
    int32_t sp = 0;
    if (!grow((void **)&rt->walk, &rt->cap_walk, 2, sizeof *rt->walk)) {
        rt->oom = true;
        return 0;
    }
    rt->walk[sp++] = v->nodes[0].child;
    rt->walk[sp++] = state;
    while (sp > 0) {
        int32_t st = rt->walk[--sp];
        int32_t nd = rt->walk[--sp];
        if (nd < 0) continue;
        /* next sibling later, with the same parent state */
        if (v->nodes[nd].sibling >= 0) {
            if (!grow((void **)&rt->walk, &rt->cap_walk, sp + 4, sizeof *rt->walk)) {
                rt->oom = true;
                break;
            }
            rt->walk[sp++] = v->nodes[nd].sibling;
            rt->walk[sp++] = st;
        }
        int32_t st2 = step(rt, st, v->nodes[nd].byte);
        if (st2 == CST_GSTATE_DEAD) continue;
        const int32_t mc = rt->states[st2].mc;
        if (fits(mc, left))
            for (int32_t t = v->nodes[nd].tok; t >= 0; t = v->tok_next[t]) {
                bits[t >> 6] |= 1ull << (t & 63);
                n_allowed++;
                if (mc > mx) mx = mc;
                if (mca) mca[t] = (uint16_t)(mc < MCA_MAX ? mc : MCA_MAX);
            }
        if (v->nodes[nd].child >= 0) {
            if (!grow((void **)&rt->walk, &rt->cap_walk, sp + 4, sizeof *rt->walk)) {
                rt->oom = true;
                break;
            }
            rt->walk[sp++] = v->nodes[nd].child;
            rt->walk[sp++] = st2;
        }
    }
    *max_mc = mx;
    return rt->oom ? 0 : n_allowed;
}

const uint64_t *cst_grammar_rt_mask(cst_grammar_rt *rt, int32_t state, int32_t left, int32_t *n_allowed) {
    *n_allowed = 0;
    if (state <= 0 || state >= rt->n_states) {
        memset(rt->scratch, 0, (size_t)rt->n_words * sizeof *rt->scratch);
        return rt->scratch;
    }
    mcache *mk = &rt->masks[state];
    if (!mk->bits) {
        uint64_t *bits = malloc((size_t)rt->n_words * sizeof *bits);
        if (!bits) return NULL;
        int32_t mx = 0;
        int32_t n = walk(rt, state, CST_GBUDGET_NONE, bits, &mx, NULL);
        if (rt->oom) {
            free(bits);
            return NULL;
        }
        mk = &rt->masks[state]; /* the walk may have grown the tables */
        mk->bits = bits;
        mk->n_allowed = n;
        mk->max_mc_after = mx;
        rt->mask_bytes += (size_t)rt->n_words * sizeof *bits;
        rt->st.n_masks++;
    } else {
        rt->st.n_mask_hits++;
    }
    if (fits(mk->max_mc_after, left)) {
        *n_allowed = mk->n_allowed;
        return mk->bits;
    }
    /* the budget binds: filter the cached mask by the state each token
     * leads to (per-token mc, made by one more walk the first time) */
    if (left - 1 < MCA_MAX) {
        if (!mk->mc_after) {
            uint16_t *mca = malloc((size_t)rt->v->n_tokens * sizeof *mca);
            if (mca) {
                int32_t mx;
                walk(rt, state, CST_GBUDGET_NONE, rt->scratch, &mx, mca);
                rt->st.n_masks++;
                if (rt->oom) {
                    free(mca);
                    return NULL;
                }
                mk = &rt->masks[state];
                mk->mc_after = mca;
                rt->mask_bytes += (size_t)rt->v->n_tokens * sizeof *mca;
            }
        }
        if (mk->mc_after) {
            const uint16_t lim = (uint16_t)(left - 1);
            int32_t n = 0;
            for (int32_t w = 0; w < rt->n_words; w++) {
                uint64_t b = mk->bits[w], keep = 0;
                while (b) {
                    const int k = __builtin_ctzll(b);
                    b &= b - 1;
                    if (mk->mc_after[w * 64 + k] <= lim) {
                        keep |= 1ull << k;
                        n++;
                    }
                }
                rt->scratch[w] = keep;
            }
            rt->st.n_mask_hits++;
            *n_allowed = n;
            return rt->scratch;
        }
    }
    /* a walk of its own (no memory for the per-token table, or a huge budget) */
    int32_t mx;
    int32_t n = walk(rt, state, left, rt->scratch, &mx, NULL);
    rt->st.n_masks++;
    if (rt->oom) return NULL;
    *n_allowed = n;
    return rt->scratch;
}

int32_t cst_grammar_rt_apply(cst_grammar_rt *rt, int32_t state, int32_t left, float *logits) {
    int32_t n = 0;
    const uint64_t *bits = cst_grammar_rt_mask(rt, state, left, &n);
    if (!bits || n == 0) return 0;
    const int32_t nv = rt->v->n_tokens;
    for (int32_t w = 0; w < rt->n_words; w++) {
        uint64_t b = bits[w];
        if (b == ~0ull) continue;
        const int32_t base = w * 64;
        for (int32_t k = 0; k < 64 && base + k < nv; k++)
            if (!(b >> k & 1)) logits[base + k] = -INFINITY;
    }
    return n;
}

/* ---- byte-level check ------------------------------------------------------ */
bool cst_grammar_accepts(const cst_grammar *g, const char *s, size_t n) {
    /* a throwaway runtime over a one-token vocabulary */
    static const char *const piece[1] = {""};
    static const uint32_t len[1] = {0};
    cst_grammar_vocab *v = cst_grammar_vocab_new(piece, len, 1, NULL, 0);
    if (!v) return false;
    cst_grammar_rt *rt = cst_grammar_rt_new((cst_grammar *)g, v);
    bool ok = false;
    if (rt) {
        int32_t st = cst_grammar_rt_advance(rt, cst_grammar_rt_start(rt), s, n);
        ok = cst_grammar_rt_accepting(rt, st);
    }
    cst_grammar_rt_free(rt);
    cst_grammar_vocab_free(v);
    return ok;
}
