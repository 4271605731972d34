/* reasoning.c: incremental thought/answer splitter (see reasoning.h). Input
 * is appended to a hold buffer; complete markers are consumed as state
 * changes, and a tail that could still grow into a marker stays held until
 * the next piece decides it. States: PRE (only whitespace so far: an open
 * marker may still start a thought), THINK, ANSWER.
 */
#define _GNU_SOURCE /* memmem */
#include "reasoning.h"
#include "core/core.h"

#include <stdlib.h>
#include <string.h>

typedef enum { ST_PRE = 0, ST_THINK, ST_ANSWER } rstate;


struct cst_reasoning {
    char *open, *close;
    size_t open_len, close_len;
    rstate st;
    bool seen;        /* a thought was opened */
    bool think_start; /* at the start of thought text: skip newlines */
    size_t nl_held;   /* trailing newlines of the thought, not yet emitted */
    bool answer_start; /* right after a close marker: skip whitespace */
    cst_buf hold;        /* unresolved input */
    cst_buf pre_ws;      /* whitespace seen in PRE */
    cst_buf thought, answer; /* outputs of the current call */
};

cst_reasoning *cst_reasoning_new(const char *open, const char *close, bool inside) {
    if (!open || !close || !*open || !*close) return NULL;
    cst_reasoning *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->open = strdup(open);
    r->close = strdup(close);
    if (!r->open || !r->close) {
        cst_reasoning_free(r);
        return NULL;
    }
    r->open_len = strlen(open);
    r->close_len = strlen(close);
    if (inside) {
        r->st = ST_THINK;
        r->seen = true;
        r->think_start = true;
    }
    return r;
}

void cst_reasoning_free(cst_reasoning *r) {
    if (!r) return;
    free(r->open);
    free(r->close);
    free(r->hold.p);
    free(r->pre_ws.p);
    free(r->thought.p);
    free(r->answer.p);
    free(r);
}

bool cst_reasoning_thinking(const cst_reasoning *r) { return r && r->st == ST_THINK; }
bool cst_reasoning_seen(const cst_reasoning *r) { return r && r->seen; }

static bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

/* Ordinary text (no markers) in the current state. */
static void text(cst_reasoning *r, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        switch (r->st) {
        case ST_PRE:
            if (is_ws(c)) {
                cst_buf_put(&r->pre_ws, &c, 1);
                break;
            }
            r->st = ST_ANSWER;
            cst_buf_put(&r->answer, r->pre_ws.p, r->pre_ws.len);
            r->pre_ws.len = 0;
            cst_buf_put(&r->answer, &c, 1);
            break;
        case ST_THINK:
            if (c == '\n') {
                if (!r->think_start) r->nl_held++;
                break;
            }
            r->think_start = false;
            for (; r->nl_held; r->nl_held--) cst_buf_put(&r->thought, "\n", 1);
            cst_buf_put(&r->thought, &c, 1);
            break;
        case ST_ANSWER:
            if (r->answer_start && is_ws(c)) break;
            r->answer_start = false;
            cst_buf_put(&r->answer, &c, 1);
            break;
        }
    }
}

static void marker(cst_reasoning *r, bool open) {
    if (open) {
        if (r->st == ST_PRE) { /* a thought starts: leading whitespace is dropped */
            r->st = ST_THINK;
            r->seen = true;
            r->think_start = true;
            r->pre_ws.len = 0;
        }
        return; /* an open marker inside a thought or the answer is dropped */
    }
    if (r->st == ST_THINK || r->st == ST_PRE) {
        r->st = ST_ANSWER;
        r->answer_start = true;
        r->nl_held = 0;
        r->pre_ws.len = 0;
    }
}

/* Longest suffix of s[0..n) that is a proper prefix of m. */
static size_t partial(const char *s, size_t n, const char *m, size_t ml) {
    size_t best = 0;
    for (size_t k = 1; k < ml && k <= n; k++)
        if (!memcmp(s + n - k, m, k)) best = k;
    return best;
}

static bool process(cst_reasoning *r, bool final) {
    size_t i = 0;
    const char *b = r->hold.p;
    size_t n = r->hold.len;
    while (i < n) {
        const char *o = memmem(b + i, n - i, r->open, r->open_len);
        const char *c = memmem(b + i, n - i, r->close, r->close_len);
        const char *m = o && (!c || o <= c) ? o : c;
        if (!m) break;
        text(r, b + i, (size_t)(m - (b + i)));
        bool is_open = m == o;
        marker(r, is_open);
        i = (size_t)(m - b) + (is_open ? r->open_len : r->close_len);
    }
    size_t keep = 0;
    if (!final) {
        size_t k1 = partial(b + i, n - i, r->open, r->open_len);
        size_t k2 = partial(b + i, n - i, r->close, r->close_len);
        keep = k1 > k2 ? k1 : k2;
    }
    text(r, b + i, n - i - keep);
    if (keep) memmove(r->hold.p, b + n - keep, keep);
    r->hold.len = keep;
    if (final && r->st == ST_PRE) { /* only whitespace was generated */
        cst_buf_put(&r->answer, r->pre_ws.p, r->pre_ws.len);
        r->pre_ws.len = 0;
    }
    return !(r->hold.oom || r->pre_ws.oom || r->thought.oom || r->answer.oom);
}

static bool outputs(cst_reasoning *r, bool ok, const char **thought, size_t *thought_len, const char **answer,
                    size_t *answer_len) {
    *thought = r->thought.p ? r->thought.p : "";
    *thought_len = r->thought.len;
    *answer = r->answer.p ? r->answer.p : "";
    *answer_len = r->answer.len;
    return ok;
}

bool cst_reasoning_feed(cst_reasoning *r, const char *t, size_t len, const char **thought, size_t *thought_len,
                        const char **answer, size_t *answer_len) {
    r->thought.len = r->answer.len = 0;
    cst_buf_put(&r->hold, t, len);
    return outputs(r, process(r, false), thought, thought_len, answer, answer_len);
}

bool cst_reasoning_flush(cst_reasoning *r, const char **thought, size_t *thought_len, const char **answer,
                         size_t *answer_len) {
    r->thought.len = r->answer.len = 0;
    return outputs(r, process(r, true), thought, thought_len, answer, answer_len);
}
