/* sched.c: the engine thread. Requests wait in a bounded FIFO; each loop
 * iteration admits them into free slots (longest cached common prefix first,
 * then least recently used; a slot about to lose another conversation is
 * saved to a host-memory snapshot store first, and a snapshot sharing a
 * longer prefix is restored), decodes one batch holding one token per
 * generating slot plus prompt chunks of prefilling slots, samples each slot
 * that asked for logits and pushes TEXT/DONE events to the request's queue,
 * which the caller drains from its own thread (or hands START/TEXT to the
 * request's on_event sink on the engine thread). Cancellation is a flag the
 * loop checks before every batch, so a request stops within one token; a
 * request still waiting in the FIFO is removed from it at once.
 *
 * Test-only fault injection (compiled in every build, read once per
 * scheduler from the environment): CST_FAULT="decode_fail_after:N" makes a
 * sequence fail with an engine error once it has generated N tokens (the
 * late-error path); "decode_sleep_ms:N" sleeps N ms before every decode (a
 * slow model: queues fill, prefill takes long). Comma-separated.
 */
#include "sched.h"
#include "core/core.h"
#include "reasoning.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- request --------------------------------------------------------- */

typedef struct evnode {
    cst_sched_event ev;
    struct evnode *next;
} evnode;

struct cst_sched_req {
    struct cst_sched *sched; /* owner (queue removal on cancel) */
    atomic_bool in_queue;    /* in the FIFO (sched valid while true) */
    atomic_bool waiting;     /* in the FIFO behind busy slots */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;           /* caller + engine */
    atomic_bool cancel;
    bool done;          /* DONE pushed */
    evnode *head, *tail;
    /* parameters (immutable after submit) */
    cst_token *prompt;
    int32_t n_prompt;
    cst_sampler_params sp;
    int32_t max_tokens;
    char **stops;
    size_t n_stops;
    char *think_open, *think_close; /* NULL: no thinking */
    bool think_inside;
    int32_t think_budget;
    cst_token *think_force;
    int32_t n_think_force, n_force_thought;
    cst_req_embd *embds; /* rows owned (copied at submit) */
    int32_t n_embds;
    cst_grammar *grammar; /* reference, or NULL */
    double t_submit;
    void (*on_event)(void *ud, const cst_sched_event *ev); /* START/TEXT sink, or NULL */
    void *on_event_ud;
    struct cst_sched_req *qnext; /* FIFO link, under sched mu */
};

static void req_free(cst_sched_req *r) {
    for (evnode *e = r->head; e;) {
        evnode *n = e->next;
        free(e->ev.text);
        free(e);
        e = n;
    }
    for (size_t i = 0; i < r->n_stops; i++) free(r->stops[i]);
    free(r->stops);
    free(r->prompt);
    free(r->think_open);
    free(r->think_close);
    free(r->think_force);
    for (int32_t i = 0; i < r->n_embds; i++) free((void *)r->embds[i].rows);
    free(r->embds);
    cst_grammar_unref(r->grammar);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

static void req_unref(cst_sched_req *r) {
    pthread_mutex_lock(&r->mu);
    int left = --r->refs;
    pthread_mutex_unlock(&r->mu);
    if (left == 0) req_free(r);
}

/* Push an event (takes ownership of ev->text). Allocation failure of the node
 * drops a TEXT event but never a DONE: DONE uses a preallocated path below. */
static void req_push(cst_sched_req *r, const cst_sched_event *ev) {
    evnode *n = calloc(1, sizeof *n);
    pthread_mutex_lock(&r->mu);
    if (!n || r->done) {
        pthread_mutex_unlock(&r->mu);
        if (n) free(n);
        free(ev->text);
        return;
    }
    n->ev = *ev;
    if (r->tail) r->tail->next = n;
    else r->head = n;
    r->tail = n;
    if (ev->type == CST_SCHED_EV_DONE) r->done = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void push_text_k(cst_sched_req *r, const char *txt, size_t len, bool thought) {
    if (len == 0) return;
    if (r->on_event) { /* the caller's sink, on this thread: no copy, no hand-off */
        cst_sched_event ev = {.type = CST_SCHED_EV_TEXT, .text = (char *)txt, .len = len, .thought = thought};
        r->on_event(r->on_event_ud, &ev);
        return;
    }
    char *t = malloc(len + 1);
    if (!t) return;
    memcpy(t, txt, len);
    t[len] = 0;
    cst_sched_event ev = {.type = CST_SCHED_EV_TEXT, .text = t, .len = len, .thought = thought};
    req_push(r, &ev);
}
static void push_text(cst_sched_req *r, const char *txt, size_t len) { push_text_k(r, txt, len, false); }

static void push_done_k(cst_sched_req *r, cst_finish fin, cst_status st, const char *msg, int32_t n_prompt,
                        int32_t n_cached, int32_t n_gen, double t_first, int32_t n_thought, bool forced) {
    cst_sched_event ev = {.type = CST_SCHED_EV_DONE, .finish = fin, .status = st, .n_prompt = n_prompt,
                          .n_cached = n_cached, .n_gen = n_gen, .t_first = t_first, .n_thought = n_thought,
                          .think_forced = forced};
    if (msg) {
        ev.text = strdup(msg);
        ev.len = ev.text ? strlen(ev.text) : 0;
    }
    req_push(r, &ev);
}
static void push_done(cst_sched_req *r, cst_finish fin, cst_status st, const char *msg, int32_t n_prompt,
                      int32_t n_cached, int32_t n_gen, double t_first) {
    push_done_k(r, fin, st, msg, n_prompt, n_cached, n_gen, t_first, 0, false);
}

bool cst_sched_req_next(cst_sched_req *r, cst_sched_event *ev, double timeout_s) {
    pthread_mutex_lock(&r->mu);
    struct timespec dl;
    if (timeout_s >= 0) {
        clock_gettime(CLOCK_REALTIME, &dl);
        double s = (double)dl.tv_sec + dl.tv_nsec * 1e-9 + timeout_s;
        dl.tv_sec = (time_t)s;
        dl.tv_nsec = (long)((s - (double)dl.tv_sec) * 1e9);
    }
    while (!r->head) {
        if (timeout_s < 0) pthread_cond_wait(&r->cv, &r->mu);
        else if (pthread_cond_timedwait(&r->cv, &r->mu, &dl) != 0 && !r->head) {
            pthread_mutex_unlock(&r->mu);
            return false;
        }
    }
    evnode *n = r->head;
    r->head = n->next;
    if (!r->head) r->tail = NULL;
    pthread_mutex_unlock(&r->mu);
    *ev = n->ev;
    free(n);
    return true;
}

static bool dequeue(struct cst_sched *s, cst_sched_req *r);

void cst_sched_req_cancel(cst_sched_req *r) {
    if (!r) return;
    atomic_store(&r->cancel, true);
    /* still waiting for a slot: end it now instead of at admission */
    if (atomic_load(&r->in_queue) && dequeue(r->sched, r)) {
        push_done(r, CST_FINISH_CANCELLED, CST_OK, NULL, r->n_prompt, 0, 0, 0);
        req_unref(r); /* the queue's (engine's) reference */
    }
}

bool cst_sched_req_waiting(const cst_sched_req *r) { return r && atomic_load(&r->waiting); }

void cst_sched_req_release(cst_sched_req *r) {
    if (!r) return;
    cst_sched_req_cancel(r);
    req_unref(r);
}

/* ---- scheduler -------------------------------------------------------- */

typedef enum { SLOT_FREE = 0, SLOT_PREFILL, SLOT_GEN } slot_state;

typedef struct slot {
    slot_state state;
    cst_sched_req *req;
    int32_t n_done;   /* prompt tokens already in the cache */
    int32_t n_cached; /* of which reused at admission */
    int32_t n_gen;
    cst_token last;   /* sampled, not yet decoded */
    int32_t bidx;     /* batch entry with this slot's logits, -1 */
    uint64_t stamp;   /* LRU / admission order */
    int32_t last_prompt; /* prompt length of the last request (follow-up detection) */
    double t_first;
    cst_sampler *smp;
    cst_stopper *stp;
    /* thinking (req->think_open set) */
    cst_reasoning *rs;
    cst_stopper *tstp;  /* thought text: holds incomplete UTF-8 only */
    int32_t n_think;    /* generated tokens inside the thought */
    int32_t force_pos;  /* next think_force token, -1: not forcing */
    bool forced;
    /* constrained decoding (req->grammar) */
    struct grt_entry *ge; /* the grammar's runtime, NULL: unconstrained */
    int32_t gstate;       /* automaton state after the answer so far */
} slot;

/* A grammar's runtime (automaton tables, mask caches) for this model's
 * vocabulary, shared by the slots decoding with that grammar and kept
 * afterwards for later requests (LRU). Engine thread only. */
typedef struct grt_entry {
    cst_grammar *g; /* reference */
    cst_grammar_rt *rt;
    int32_t users;
    uint64_t stamp;
} grt_entry;
#define GRT_KEEP 8                         /* idle runtimes kept */
#define GRT_MAX_BYTES ((size_t)512 << 20) /* an idle runtime above this is trimmed */

/* A host-memory snapshot of a slot's KV (cst_ctx_seq_state_save). */
typedef struct snap {
    void *buf;
    size_t bytes;
    const cst_token *toks; /* inside buf */
    int32_t n;
    uint64_t stamp; /* LRU */
} snap;

struct cst_sched {
    cst_model *m;
    cst_ctx *ctx;
    cst_sched_params p;
    pthread_t th;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    cst_sched_req *qhead, *qtail;
    int32_t qlen;
    int32_t n_active;
    slot *slots;
    cst_batch *batch;
    char *piece;
    /* constrained decoding, built on first use (engine thread) */
    cst_grammar_vocab *gvocab;
    grt_entry *grts; /* [n_slots + GRT_KEEP] */
    int32_t n_grts;
    float *glogits; /* n_vocab: masked copy of a slot's logits */
    uint64_t clock;
    cst_sched_stats stats;
    double t_sample; /* sampling time of the current iteration (engine thread) */
    double t_mask;   /* of which computing grammar masks */
    uint64_t n_gtok, n_gmasked;
    /* snapshot store (engine thread only; counters mirrored in stats) */
    snap *snaps;
    int32_t n_snaps, cap_snaps;
    size_t snap_bytes;
    int32_t fault_fail_after; /* CST_FAULT (test-only), 0: off */
    int32_t fault_sleep_ms;
};

/* Remove r from the FIFO if it is still there. */
static bool dequeue(struct cst_sched *s, cst_sched_req *r) {
    bool found = false;
    pthread_mutex_lock(&s->mu);
    cst_sched_req *prev = NULL;
    for (cst_sched_req *q = s->qhead; q; prev = q, q = q->qnext) {
        if (q != r) continue;
        if (prev) prev->qnext = q->qnext;
        else s->qhead = q->qnext;
        if (s->qtail == q) s->qtail = prev;
        q->qnext = NULL;
        s->qlen--;
        found = true;
        break;
    }
    if (found) {
        atomic_store(&r->in_queue, false);
        atomic_store(&r->waiting, false);
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}

static void parse_faults(struct cst_sched *s) {
    const char *f = getenv("CST_FAULT");
    if (!f || !*f) return;
    const char *p = f;
    while (*p) {
        size_t n = strcspn(p, ",");
        int v;
        if (sscanf(p, "decode_fail_after:%d", &v) == 1 && v > 0) s->fault_fail_after = v;
        else if (sscanf(p, "decode_sleep_ms:%d", &v) == 1 && v > 0) s->fault_sleep_ms = v;
        p += n;
        if (*p == ',') p++;
    }
    cst_warn("CST_FAULT=%s: test-only fault injection is active", f);
}

cst_sched_params cst_sched_default_params(void) {
    cst_sched_params p = {.n_slots = 4, .n_ctx = 0, .n_batch = 512, .n_threads = 0, .max_queue = 64,
                          .cache_bytes = CST_SCHED_CACHE_BYTES_DEFAULT};
    return p;
}

int32_t cst_sched_n_ctx(const cst_sched *s) { return s->p.n_ctx; }

int32_t cst_sched_queue_depth(cst_sched *s) {
    pthread_mutex_lock(&s->mu);
    int32_t n = s->qlen;
    pthread_mutex_unlock(&s->mu);
    return n;
}

int32_t cst_sched_active(cst_sched *s) {
    pthread_mutex_lock(&s->mu);
    int32_t n = s->n_active;
    pthread_mutex_unlock(&s->mu);
    return n;
}

cst_sched_stats cst_sched_get_stats(cst_sched *s) {
    pthread_mutex_lock(&s->mu);
    cst_sched_stats st = s->stats;
    pthread_mutex_unlock(&s->mu);
    return st;
}

cst_status cst_sched_submit(cst_sched *s, const cst_req_params *p, cst_sched_req **out, char *err,
                            size_t errlen) {
    *out = NULL;
    if (!p->prompt || p->n_prompt == 0) {
        cst_errf(err, errlen, "empty prompt");
        return CST_ERR_INVALID_ARG;
    }
    if (p->n_prompt >= (size_t)s->p.n_ctx) {
        cst_errf(err, errlen, "the prompt is %zu tokens but the context holds %d (at most %d prompt tokens)",
                 p->n_prompt, s->p.n_ctx, s->p.n_ctx - 1);
        return CST_ERR_CTX_FULL;
    }
    cst_sched_req *r = calloc(1, sizeof *r);
    if (!r) return CST_ERR_NOMEM;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->refs = 2;
    r->prompt = malloc(p->n_prompt * sizeof *r->prompt);
    r->stops = p->n_stops ? calloc(p->n_stops, sizeof *r->stops) : NULL;
    if (!r->prompt || (p->n_stops && !r->stops)) goto nomem;
    memcpy(r->prompt, p->prompt, p->n_prompt * sizeof *r->prompt);
    r->n_prompt = (int32_t)p->n_prompt;
    r->sp = p->sampling;
    r->max_tokens = p->max_tokens;
    r->on_event = p->on_event;
    r->on_event_ud = p->on_event_ud;
    r->grammar = cst_grammar_ref(p->grammar);
    if (p->think_open && p->think_close && *p->think_open && *p->think_close) {
        r->think_open = strdup(p->think_open);
        r->think_close = strdup(p->think_close);
        r->think_inside = p->think_inside;
        r->think_budget = p->think_budget > 0 ? p->think_budget : 1;
        r->n_think_force = (int32_t)CST_MIN(p->n_think_force, (size_t)64);
        r->n_force_thought = (int32_t)CST_MIN(p->n_force_thought, (size_t)r->n_think_force);
        r->think_force = malloc(((size_t)r->n_think_force + 1) * sizeof *r->think_force);
        if (!r->think_open || !r->think_close || !r->think_force) goto nomem;
        if (r->n_think_force) memcpy(r->think_force, p->think_force, (size_t)r->n_think_force * sizeof *r->think_force);
    }
    for (size_t i = 0; i < p->n_stops; i++) {
        r->stops[i] = strdup(p->stops[i]);
        r->n_stops = i + 1;
        if (!r->stops[i]) goto nomem;
    }
    if (p->n_embds) {
        const int32_t n_embd = cst_model_n_embd(s->m);
        r->embds = calloc(p->n_embds, sizeof *r->embds);
        if (!r->embds) goto nomem;
        int32_t end = 0;
        for (size_t i = 0; i < p->n_embds; i++) {
            const cst_req_embd *e = &p->embds[i];
            if (e->pos < end || e->n_rows <= 0 || !e->rows || (int64_t)e->pos + e->n_rows >= r->n_prompt ||
                (e->non_causal && e->n_rows > s->p.n_batch) || r->prompt[e->pos] >= 0) {
                req_free(r);
                cst_errf(err, errlen, "embedding block %zu: bad position, size or marker (or more rows than n_batch %d)",
                         i, s->p.n_batch);
                return CST_ERR_INVALID_ARG;
            }
            end = e->pos + e->n_rows;
            float *rows = malloc((size_t)e->n_rows * (size_t)n_embd * sizeof *rows);
            if (!rows) goto nomem;
            memcpy(rows, e->rows, (size_t)e->n_rows * (size_t)n_embd * sizeof *rows);
            r->embds[i] = *e;
            r->embds[i].rows = rows;
            r->n_embds = (int32_t)i + 1;
        }
    }
    r->t_submit = cst_time_now();
    r->sched = s;

    pthread_mutex_lock(&s->mu);
    if (s->stop) {
        pthread_mutex_unlock(&s->mu);
        req_free(r);
        cst_errf(err, errlen, "the server is shutting down");
        return CST_ERR_CANCELLED;
    }
    /* queued requests a free slot is about to take are not waiting: only
     * those beyond the slots count against max_queue (a request submitted
     * just after another finished is not refused because the engine thread
     * has not yet run to admit the previous one) */
    if (s->n_active + s->qlen - s->p.n_slots >= s->p.max_queue) {
        pthread_mutex_unlock(&s->mu);
        req_free(r);
        cst_errf(err, errlen, "the request queue is full (%d waiting); retry later", s->p.max_queue);
        return CST_ERR_BUSY;
    }
    atomic_store(&r->waiting, s->n_active + s->qlen >= s->p.n_slots);
    atomic_store(&r->in_queue, true);
    if (s->qtail) s->qtail->qnext = r;
    else s->qhead = r;
    s->qtail = r;
    s->qlen++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    *out = r;
    return CST_OK;
nomem:
    req_free(r);
    return CST_ERR_NOMEM;
}

/* ---- constrained decoding ------------------------------------------------ */

/* The vocabulary's pieces as the grammar's byte trie (once per scheduler). */
static bool grammar_vocab(cst_sched *s) {
    if (s->gvocab) return true;
    const cst_vocab *v = cst_model_vocab(s->m);
    const int32_t n = cst_model_n_vocab(s->m);
    char **pieces = calloc((size_t)n, sizeof *pieces);
    uint32_t *lens = calloc((size_t)n, sizeof *lens);
    bool ok = pieces && lens;
    char buf[1024];
    for (int32_t t = 0; ok && t < n; t++) {
        size_t len = cst_token_to_piece(v, t, buf, sizeof buf, false);
        if (len == 0 || len > sizeof buf) continue; /* control tokens (and absurd pieces) never fit a grammar */
        pieces[t] = malloc(len);
        if (!pieces[t]) ok = false;
        else memcpy(pieces[t], buf, len);
        lens[t] = (uint32_t)len;
    }
    if (ok) {
        const cst_token *eog;
        size_t n_eog = cst_vocab_eog_ids(v, &eog);
        s->gvocab = cst_grammar_vocab_new((const char *const *)pieces, lens, n, eog, n_eog);
    }
    for (int32_t t = 0; pieces && t < n; t++) free(pieces[t]);
    free(pieces);
    free(lens);
    if (!s->glogits && s->gvocab) s->glogits = malloc((size_t)n * sizeof *s->glogits);
    return s->gvocab && s->glogits;
}

/* Find or make the runtime of r's grammar; NULL on allocation failure. */
static grt_entry *grammar_attach(cst_sched *s, cst_grammar *g) {
    if (!grammar_vocab(s)) return NULL;
    const int32_t cap = s->p.n_slots + GRT_KEEP;
    if (!s->grts && !(s->grts = calloc((size_t)cap, sizeof *s->grts))) return NULL;
    grt_entry *e = NULL;
    for (int32_t i = 0; i < s->n_grts && !e; i++)
        if (s->grts[i].g == g) e = &s->grts[i];
    if (!e) {
        /* entries never move (slots point at them): a free entry, or the
         * least recently used idle one is replaced in place */
        int32_t at = s->n_grts < cap ? s->n_grts : -1;
        if (at < 0) {
            for (int32_t i = 0; i < s->n_grts; i++)
                if (s->grts[i].users == 0 && (at < 0 || s->grts[i].stamp < s->grts[at].stamp)) at = i;
            if (at < 0) return NULL; /* cannot happen: at most n_slots are in use */
        }
        cst_grammar_rt *rt = cst_grammar_rt_new(g, s->gvocab);
        if (!rt) return NULL;
        if (at < s->n_grts) {
            cst_grammar_rt_free(s->grts[at].rt);
            cst_grammar_unref(s->grts[at].g);
        } else {
            s->n_grts++;
        }
        e = &s->grts[at];
        *e = (grt_entry){.g = cst_grammar_ref(g), .rt = rt};
    }
    e->users++;
    e->stamp = ++s->clock;
    return e;
}

static void grammar_release(cst_sched *s, slot *sl) {
    grt_entry *e = sl->ge;
    sl->ge = NULL;
    if (!e) return;
    if (--e->users == 0 && cst_grammar_rt_bytes(e->rt) > GRT_MAX_BYTES) cst_grammar_rt_trim(e->rt);
    (void)s;
}

/* Tokens the answer may still take, this one included. */
static int32_t grammar_left(const cst_sched *s, const slot *sl, int idx) {
    int64_t left = CST_GBUDGET_NONE;
    const cst_sched_req *r = sl->req;
    if (r->max_tokens > 0) left = (int64_t)r->max_tokens - (sl->n_gen - sl->n_think);
    int64_t ctx_left = (int64_t)s->p.n_ctx - cst_ctx_seq_len(s->ctx, idx);
    if (ctx_left < left) left = ctx_left;
    return left < 1 ? 1 : (int32_t)left;
}

/* Sample under the grammar: the unmasked draw when it fits (the usual case
 * for a trained model, and the same distribution as a masked draw),
 * otherwise a draw from the masked logits. -1: nothing fits. */
static cst_token grammar_sample(cst_sched *s, slot *sl, int idx, const float *logits, int32_t *next) {
    cst_grammar_rt *rt = sl->ge->rt;
    const cst_vocab *vocab = cst_model_vocab(s->m);
    const int32_t left = grammar_left(s, sl, idx);
    s->n_gtok++;
    cst_token tok = cst_sampler_sample(sl->smp, logits);
    size_t len = cst_token_to_piece(vocab, tok, s->piece, 1024, false);
    if (len <= 1024 && cst_grammar_rt_allowed(rt, sl->gstate, tok, s->piece, len, left, next)) return tok;
    s->n_gmasked++;
    const double t0 = cst_time_now();
    memcpy(s->glogits, logits, (size_t)cst_model_n_vocab(s->m) * sizeof *s->glogits);
    int32_t n = cst_grammar_rt_apply(rt, sl->gstate, left, s->glogits);
    s->t_mask += cst_time_now() - t0;
    if (n == 0) return -1;
    tok = cst_sampler_sample(sl->smp, s->glogits);
    len = cst_token_to_piece(vocab, tok, s->piece, 1024, false);
    if (len <= 1024 && cst_grammar_rt_allowed(rt, sl->gstate, tok, s->piece, len, left, next)) return tok;
    /* the sampler's truncation left nothing allowed with mass (cannot
     * happen with finite logits): take the best allowed token */
    tok = cst_argmax(s->glogits, cst_model_n_vocab(s->m));
    len = cst_token_to_piece(vocab, tok, s->piece, 1024, false);
    if (len <= 1024 && cst_grammar_rt_allowed(rt, sl->gstate, tok, s->piece, len, left, next)) return tok;
    return -1;
}

/* End the slot's request: flush held-back text unless stopped/cancelled,
 * push DONE, drop the engine's reference. The KV cache stays for reuse. */
static void slot_finish(cst_sched *s, slot *sl, cst_finish fin, cst_status st, const char *msg) {
    cst_sched_req *r = sl->req;
    if (st == CST_OK && fin != CST_FINISH_STOP && fin != CST_FINISH_CANCELLED && sl->stp) {
        size_t tl = 0;
        if (sl->rs) {
            const char *th, *an;
            size_t thl, anl;
            cst_reasoning_flush(sl->rs, &th, &thl, &an, &anl);
            if (sl->tstp) {
                cst_stopper_feed(sl->tstp, th, thl);
                const char *t = cst_stopper_flush(sl->tstp, &tl);
                push_text_k(r, t, tl, true);
            }
            cst_stopper_feed(sl->stp, an, anl);
        }
        const char *t = cst_stopper_flush(sl->stp, &tl);
        push_text(r, t, tl);
    }
    push_done_k(r, fin, st, msg, r->n_prompt, sl->n_cached, sl->n_gen, sl->t_first, sl->n_think, sl->forced);
    grammar_release(s, sl);
    cst_sampler_free(sl->smp);
    cst_stopper_free(sl->stp);
    cst_stopper_free(sl->tstp);
    cst_reasoning_free(sl->rs);
    sl->smp = NULL;
    sl->stp = NULL;
    sl->tstp = NULL;
    sl->rs = NULL;
    sl->req = NULL;
    sl->state = SLOT_FREE;
    sl->stamp = ++s->clock;
    pthread_mutex_lock(&s->mu);
    s->n_active--;
    s->stats.n_gen_tokens += (uint64_t)sl->n_gen;
    pthread_mutex_unlock(&s->mu);
    req_unref(r);
}

/* ---- host-memory snapshots --------------------------------------------
 * When admit() rewrites a slot whose conversation would be lost (the new
 * prompt keeps less than the slot's last prompt), the slot's KV and tokens
 * are copied into a snapshot first, unless a snapshot already holds them.
 * Snapshots are kept within cache_bytes, least recently used dropped first;
 * a snapshot whose tokens are a prefix of a newer one is dropped as a
 * duplicate. Admission restores one into the chosen slot when it shares a
 * longer reusable prefix with the prompt than the slot does. Engine thread
 * only; allocation happens at admission, never per token. */

static void snap_drop(cst_sched *s, int32_t i) {
    s->snap_bytes -= s->snaps[i].bytes;
    free(s->snaps[i].buf);
    s->snaps[i] = s->snaps[--s->n_snaps];
}

/* Index of the snapshot with the longest reusable prefix of t[0..n) (the
 * newest among equals), its length in *common; -1 if none shares a token. */
static int32_t snap_best(const cst_sched *s, const cst_token *t, int32_t n, int32_t *common) {
    int32_t best = -1, bc = 0;
    for (int32_t i = 0; i < s->n_snaps; i++) {
        const snap *sn = &s->snaps[i];
        const int32_t c = cst_tokens_common_prefix(sn->toks, sn->n, t, n);
        if (c > bc || (c == bc && c > 0 && sn->stamp > s->snaps[best].stamp)) {
            best = i;
            bc = c;
        }
    }
    *common = bc;
    return best;
}

/* Save slot seq's content as a snapshot. `pinned` (a snapshot's buffer or
 * NULL) is neither evicted nor dropped as a duplicate. */
static void snap_save(cst_sched *s, int seq, const void *pinned) {
    int32_t have = 0;
    const cst_token *toks = cst_ctx_seq_tokens(s->ctx, seq, &have);
    if (!toks || have <= 0) return;
    for (int32_t i = 0; i < s->n_snaps; i++) { /* already held */
        snap *sn = &s->snaps[i];
        if (sn->n >= have && !memcmp(sn->toks, toks, (size_t)have * sizeof *toks)) {
            sn->stamp = ++s->clock;
            return;
        }
    }
    const size_t bytes = cst_ctx_seq_state_size(s->ctx, have);
    if (bytes > s->p.cache_bytes) return; /* larger than the whole budget: not kept */
    for (int32_t i = 0; i < s->n_snaps;) { /* older, shorter states of this conversation */
        snap *sn = &s->snaps[i];
        if (sn->buf != pinned && sn->n < have && !memcmp(sn->toks, toks, (size_t)sn->n * sizeof *toks)) snap_drop(s, i);
        else i++;
    }
    uint64_t evicted = 0;
    while (s->snap_bytes + bytes > s->p.cache_bytes) {
        int32_t lru = -1;
        for (int32_t i = 0; i < s->n_snaps; i++)
            if (s->snaps[i].buf != pinned && (lru < 0 || s->snaps[i].stamp < s->snaps[lru].stamp)) lru = i;
        if (lru < 0) break;
        snap_drop(s, lru);
        evicted++;
    }
    bool stored = false;
    if (s->snap_bytes + bytes <= s->p.cache_bytes) {
        if (s->n_snaps == s->cap_snaps) {
            int32_t cap = s->cap_snaps ? 2 * s->cap_snaps : 16;
            snap *ns = realloc(s->snaps, (size_t)cap * sizeof *ns);
            if (ns) {
                s->snaps = ns;
                s->cap_snaps = cap;
            }
        }
        void *buf = s->n_snaps < s->cap_snaps ? malloc(bytes) : NULL;
        if (buf && cst_ctx_seq_state_save(s->ctx, seq, have, buf, bytes) == CST_OK) {
            int32_t n = 0;
            const cst_token *st = cst_seq_state_tokens(buf, bytes, &n);
            s->snaps[s->n_snaps++] = (snap){.buf = buf, .bytes = bytes, .toks = st, .n = n, .stamp = ++s->clock};
            s->snap_bytes += bytes;
            stored = true;
        } else {
            free(buf);
        }
    }
    pthread_mutex_lock(&s->mu);
    s->stats.n_snapshot_evictions += evicted;
    if (stored) s->stats.n_snapshot_saves++;
    s->stats.n_snapshots = (uint64_t)s->n_snaps;
    s->stats.snapshot_bytes = (uint64_t)s->snap_bytes;
    pthread_mutex_unlock(&s->mu);
}

/* How much of a common prefix c a request may reuse: at least one token is
 * decoded (for logits), and never from inside an image block. */
static int32_t reusable(const cst_sched_req *r, int32_t c) {
    int32_t keep = CST_MIN(c, r->n_prompt - 1);
    for (int32_t k = 0; k < r->n_embds; k++)
        if (keep > r->embds[k].pos && keep < r->embds[k].pos + r->embds[k].n_rows) keep = r->embds[k].pos;
    return CST_MAX(keep, 0);
}

/* Put request r into the best free slot. */
/* Slot choice: a slot whose cache is mostly this prompt's prefix (the common
 * prefix covers the slot's last prompt, as in a follow-up turn whose history
 * retokenizes differently, or half of its cached tokens, or half of the
 * prompt) is reused, the longest match first; otherwise the prompt takes the least
 * recently used slot (empty ones first), so that a short shared prefix (a
 * system prompt, a chat header) never evicts another conversation's cache. */
static void admit(cst_sched *s, cst_sched_req *r) {
    int best = -1, lru = -1;
    int32_t best_common = -1, lru_common = 0;
    uint64_t lru_age = 0;
    for (int i = 0; i < s->p.n_slots; i++) {
        slot *sl = &s->slots[i];
        if (sl->state != SLOT_FREE) continue;
        /* equal tokens; image blocks count only whole (same marker = same image) */
        int32_t c = cst_ctx_seq_common_prefix(s->ctx, i, r->prompt, r->n_prompt);
        int32_t have = cst_ctx_seq_len(s->ctx, i);
        const bool follow_up = sl->last_prompt > 0 && c >= sl->last_prompt;
        if (c > 0 && (follow_up || 2 * c >= have || 2 * c >= r->n_prompt) && c > best_common) {
            best = i;
            best_common = c;
        }
        const uint64_t age = have > 0 ? sl->stamp : 0; /* empty slots first */
        if (lru < 0 || age < lru_age) {
            lru = i;
            lru_age = age;
            lru_common = c;
        }
    }
    if (best < 0) {
        best = lru;
        best_common = lru_common;
    }
    CST_ASSERT(best >= 0);
    slot *sl = &s->slots[best];
    int32_t keep = reusable(r, best_common);
    /* a snapshot with a longer reusable prefix */
    int32_t si = -1, skeep = 0;
    if (s->p.cache_bytes > 0 && s->n_snaps > 0) {
        int32_t sc = 0;
        si = snap_best(s, r->prompt, r->n_prompt, &sc);
        skeep = reusable(r, sc);
        if (si >= 0 && skeep <= keep) si = -1;
    }
    /* what the slot keeps of its own content: its common prefix with the
     * prompt, or with the restored snapshot's part */
    int32_t have = 0;
    const cst_token *old = cst_ctx_seq_tokens(s->ctx, best, &have);
    const int32_t kept = si >= 0 ? cst_tokens_common_prefix(old, have, s->snaps[si].toks, skeep) : keep;
    /* the slot's conversation would be lost (the new prompt does not follow
     * up its last prompt): save it first */
    if (s->p.cache_bytes > 0 && have > kept && kept < sl->last_prompt - 1) {
        const void *pin = si >= 0 ? s->snaps[si].buf : NULL;
        snap_save(s, best, pin);
        if (pin) /* the store may have been reordered */
            for (si = 0; s->snaps[si].buf != pin; si++) {}
    }
    if (si >= 0) {
        snap *sn = &s->snaps[si];
        cst_status lst = cst_ctx_seq_state_load(s->ctx, best, sn->buf, sn->bytes, skeep);
        if (lst == CST_OK) {
            keep = skeep;
            if (2 * skeep >= sn->n) sn->stamp = ++s->clock; /* a real use, not just a shared header */
            pthread_mutex_lock(&s->mu);
            s->stats.n_snapshot_restores++;
            pthread_mutex_unlock(&s->mu);
        } else {
            cst_warn("KV snapshot restore failed (%s); recomputing the prompt", cst_ctx_errmsg(s->ctx));
            keep = 0;
        }
    }
    cst_ctx_seq_truncate(s->ctx, best, keep);
    sl->last_prompt = r->n_prompt;
    sl->req = r;
    sl->state = SLOT_PREFILL;
    sl->n_done = keep;
    sl->n_cached = keep;
    sl->n_gen = 0;
    sl->bidx = -1;
    sl->t_first = 0;
    sl->stamp = ++s->clock;
    sl->smp = cst_sampler_new(&r->sp, cst_model_n_vocab(s->m));
    sl->stp = cst_stopper_new((const char *const *)r->stops, r->n_stops);
    sl->n_think = 0;
    sl->force_pos = -1;
    sl->forced = false;
    bool think_ok = true;
    if (r->think_open) {
        sl->rs = cst_reasoning_new(r->think_open, r->think_close, r->think_inside);
        sl->tstp = cst_stopper_new(NULL, 0);
        think_ok = sl->rs && sl->tstp;
    }
    pthread_mutex_lock(&s->mu);
    s->stats.n_cached_tokens += (uint64_t)keep;
    s->stats.n_prompt_tokens += (uint64_t)(r->n_prompt - keep);
    if (keep > 0) s->stats.n_cache_hits++;
    pthread_mutex_unlock(&s->mu);
    sl->ge = NULL;
    bool grammar_ok = true;
    if (r->grammar) {
        sl->ge = grammar_attach(s, r->grammar);
        grammar_ok = sl->ge != NULL;
        if (sl->ge) sl->gstate = cst_grammar_rt_start(sl->ge->rt);
    }
    if (!sl->smp || !sl->stp || !think_ok || !grammar_ok) {
        slot_finish(s, sl, CST_FINISH_NONE, CST_ERR_NOMEM, "out of memory creating the sampler");
        return;
    }
    cst_sched_event ev = {.type = CST_SCHED_EV_START, .n_prompt = r->n_prompt, .n_cached = keep};
    if (r->on_event) r->on_event(r->on_event_ud, &ev);
    else req_push(r, &ev);
}

/* Start forcing the end of the thought (budget spent, or the model ended
 * inside it). */
static bool start_force(slot *sl) {
    if (sl->req->n_think_force <= 0) return false;
    sl->force_pos = 0;
    sl->forced = true;
    return true;
}

/* Sample the slot's next token from its logits (or take the next forced
 * end-of-thought token) and emit its text. */
static void slot_sample(cst_sched *s, slot *sl, int idx) {
    cst_sched_req *r = sl->req;
    const float *logits = cst_ctx_logits(s->ctx, sl->bidx);
    sl->bidx = -1;
    if (!logits) {
        slot_finish(s, sl, CST_FINISH_NONE, CST_ERR_INTERNAL, "no logits for a generating sequence");
        return;
    }
    const cst_vocab *vocab = cst_model_vocab(s->m);
    cst_token tok;
    bool constrained = false; /* tok was sampled under the grammar */
    if (sl->force_pos >= 0 && sl->force_pos < r->n_think_force) {
        tok = r->think_force[sl->force_pos++];
    } else {
        sl->force_pos = -1;
        const bool thinking = sl->rs && cst_reasoning_thinking(sl->rs) && !sl->forced;
        /* the budget is spent: the forced close takes the last budget tokens;
         * under a grammar also when the context left would no longer hold
         * the forced close and the shortest answer */
        bool close_for_answer = false;
        if (thinking && sl->ge) {
            const int64_t ctx_left = (int64_t)s->p.n_ctx - cst_ctx_seq_len(s->ctx, idx);
            const int64_t need = (int64_t)r->n_think_force + cst_grammar_min_bytes(cst_grammar_rt_grammar(sl->ge->rt)) + 1;
            close_for_answer = ctx_left <= need;
        }
        if (thinking && (sl->n_think + r->n_force_thought >= r->think_budget || close_for_answer) && start_force(sl)) {
            tok = r->think_force[sl->force_pos++];
        } else if (sl->ge && !thinking) {
            const double t0 = cst_time_now();
            int32_t next = CST_GSTATE_DEAD;
            tok = grammar_sample(s, sl, idx, logits, &next);
            s->t_sample += cst_time_now() - t0;
            if (tok < 0) {
                slot_finish(s, sl, CST_FINISH_NONE, CST_ERR_INTERNAL,
                            "constrained decoding: no token fits the grammar here (or out of memory)");
                return;
            }
            sl->gstate = next; /* end-of-generation (allowed: accepting) is handled below */
            constrained = true;
        } else {
            const double t0 = cst_time_now();
            tok = cst_sampler_sample(sl->smp, logits);
            s->t_sample += cst_time_now() - t0;
            /* the model ends inside its thought: close it, the answer follows */
            if (thinking && cst_vocab_is_eog(vocab, tok) && start_force(sl)) tok = r->think_force[sl->force_pos++];
        }
    }
    if (sl->n_gen == 0) sl->t_first = cst_time_now() - r->t_submit;
    if (cst_vocab_is_eog(vocab, tok)) {
        slot_finish(s, sl, CST_FINISH_EOG, CST_OK, NULL);
        return;
    }
    sl->n_gen++;
    size_t len = cst_token_to_piece(vocab, tok, s->piece, 1024, false);
    if (len > 1024) len = 1024;
    bool stopped = false;
    size_t tl = 0;
    const char *t;
    if (sl->rs) {
        const bool was = cst_reasoning_thinking(sl->rs);
        if (len == 0 && cst_vocab_is_control(vocab, tok)) { /* a control-token marker */
            len = cst_token_to_piece(vocab, tok, s->piece, 1024, true);
            if (len > 1024) len = 1024;
        }
        const char *th, *an;
        size_t thl, anl;
        cst_reasoning_feed(sl->rs, s->piece, len, &th, &thl, &an, &anl);
        if (was || cst_reasoning_thinking(sl->rs)) sl->n_think++;
        cst_stopper_feed(sl->tstp, th, thl);
        t = cst_stopper_take(sl->tstp, &tl);
        push_text_k(r, t, tl, true);
        stopped = cst_stopper_feed(sl->stp, an, anl);
    } else {
        stopped = cst_stopper_feed(sl->stp, s->piece, len);
    }
    t = stopped ? cst_stopper_flush(sl->stp, &tl) : cst_stopper_take(sl->stp, &tl);
    push_text(r, t, tl);
    if (stopped) {
        slot_finish(s, sl, CST_FINISH_STOP, CST_OK, NULL);
        return;
    }
    /* the constrained value is complete: nothing may follow it */
    if (constrained && cst_grammar_rt_final(sl->ge->rt, sl->gstate)) {
        slot_finish(s, sl, CST_FINISH_EOG, CST_OK, NULL);
        return;
    }
    if ((r->max_tokens > 0 && sl->n_gen - sl->n_think >= r->max_tokens) ||
        cst_ctx_seq_len(s->ctx, idx) >= s->p.n_ctx) {
        /* budget-aware closing made the value complete by now */
        const bool whole = constrained && cst_grammar_rt_accepting(sl->ge->rt, sl->gstate);
        slot_finish(s, sl, whole ? CST_FINISH_EOG : CST_FINISH_LENGTH, CST_OK, NULL);
        return;
    }
    sl->last = tok;
    sl->state = SLOT_GEN;
}

static void *engine_main(void *arg) {
    cst_sched *s = arg;
    const int32_t ns = s->p.n_slots;
    for (;;) {
        /* admit */
        pthread_mutex_lock(&s->mu);
        while (!s->stop && s->n_active == 0 && !s->qhead) pthread_cond_wait(&s->cv, &s->mu);
        if (s->stop) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        const double t_iter = cst_time_now();
        cst_sched_req *adm[64];
        int n_adm = 0;
        int n_free = ns - s->n_active;
        while (s->qhead && n_adm < n_free && n_adm < 64) {
            cst_sched_req *r = s->qhead;
            s->qhead = r->qnext;
            if (!s->qhead) s->qtail = NULL;
            r->qnext = NULL;
            atomic_store(&r->in_queue, false);
            atomic_store(&r->waiting, false);
            s->qlen--;
            s->n_active++;
            adm[n_adm++] = r;
        }
        pthread_mutex_unlock(&s->mu);
        for (int i = 0; i < n_adm; i++) {
            if (atomic_load(&adm[i]->cancel)) {
                push_done(adm[i], CST_FINISH_CANCELLED, CST_OK, NULL, adm[i]->n_prompt, 0, 0, 0);
                pthread_mutex_lock(&s->mu);
                s->n_active--;
                pthread_mutex_unlock(&s->mu);
                req_unref(adm[i]);
                continue;
            }
            admit(s, adm[i]);
        }

        /* cancellations */
        for (int i = 0; i < ns; i++) {
            slot *sl = &s->slots[i];
            if (sl->state != SLOT_FREE && atomic_load(&sl->req->cancel))
                slot_finish(s, sl, CST_FINISH_CANCELLED, CST_OK, NULL);
        }

        /* build the batch: decode tokens first, then prompt chunks in
         * admission order */
        cst_batch *b = s->batch;
        cst_batch_clear(b);
        int32_t budget = s->p.n_batch;
        for (int i = 0; i < ns; i++) {
            slot *sl = &s->slots[i];
            if (sl->state != SLOT_GEN) continue;
            if (s->fault_fail_after > 0 && sl->n_gen >= s->fault_fail_after) {
                slot_finish(s, sl, CST_FINISH_NONE, CST_ERR_INTERNAL,
                            "injected decode failure (CST_FAULT=decode_fail_after, test only)");
                continue;
            }
            sl->bidx = b->n;
            cst_batch_add(b, sl->last, cst_ctx_seq_len(s->ctx, i), i, true);
            budget--;
        }
        for (;;) {
            int pick = -1;
            for (int i = 0; i < ns; i++) {
                slot *sl = &s->slots[i];
                if (sl->state == SLOT_PREFILL && sl->bidx == -1 && (pick < 0 || sl->stamp < s->slots[pick].stamp))
                    pick = i;
            }
            if (pick < 0 || budget <= 0) break;
            slot *sl = &s->slots[pick];
            /* an image block: decoded on its own (an all-embeddings batch,
             * the whole block at once) while the slot has nothing in b */
            const cst_req_embd *eb = NULL, *next_eb = NULL;
            for (int32_t k2 = 0; k2 < sl->req->n_embds; k2++) {
                const cst_req_embd *e = &sl->req->embds[k2];
                if (e->pos == sl->n_done) eb = e;
                if (e->pos > sl->n_done && !next_eb) next_eb = e;
            }
            if (eb) {
                cst_status est = cst_ctx_decode_embd(s->ctx, pick, sl->n_done, eb->rows, eb->n_rows,
                                                     sl->req->prompt[eb->pos], eb->non_causal);
                if (est) {
                    const char *msg = cst_ctx_errmsg(s->ctx);
                    cst_ctx_seq_truncate(s->ctx, pick, 0);
                    slot_finish(s, sl, CST_FINISH_NONE, est, msg && *msg ? msg : "image decode failed");
                    continue;
                }
                sl->n_done += eb->n_rows;
                continue;
            }
            int32_t left = sl->req->n_prompt - sl->n_done;
            int32_t k = CST_MIN(left, budget);
            if (next_eb) k = CST_MIN(k, next_eb->pos - sl->n_done); /* text up to the next image */
            for (int32_t j = 0; j < k; j++)
                cst_batch_add(b, sl->req->prompt[sl->n_done + j], sl->n_done + j, pick, j == left - 1);
            sl->n_done += k;
            budget -= k;
            sl->bidx = (k == left) ? b->n - 1 : -2; /* -2: in this batch, no logits yet */
        }
        if (b->n == 0) {
            const double t = cst_time_now() - t_iter;
            pthread_mutex_lock(&s->mu);
            s->stats.host_seconds += t;
            pthread_mutex_unlock(&s->mu);
            continue;
        }

        if (s->fault_sleep_ms > 0) usleep((useconds_t)s->fault_sleep_ms * 1000u);
        const double t_dec = cst_time_now();
        cst_status st = cst_ctx_decode(s->ctx, b);
        const double t_dec_end = cst_time_now();
        if (st) {
            pthread_mutex_lock(&s->mu);
            s->stats.n_decodes++;
            s->stats.decode_seconds += t_dec_end - t_dec;
            pthread_mutex_unlock(&s->mu);
            const char *msg = cst_ctx_errmsg(s->ctx);
            for (int i = 0; i < ns; i++) {
                slot *sl = &s->slots[i];
                if (sl->state == SLOT_FREE || sl->bidx == -1) continue;
                sl->bidx = -1;
                cst_ctx_seq_truncate(s->ctx, i, 0);
                slot_finish(s, sl, CST_FINISH_NONE, st, msg && *msg ? msg : "decode failed");
            }
            continue;
        }
        for (int i = 0; i < ns; i++) {
            slot *sl = &s->slots[i];
            if (sl->state == SLOT_FREE) continue;
            if (sl->bidx == -2) {
                sl->bidx = -1;
                continue;
            }
            if (sl->bidx >= 0) slot_sample(s, sl, i);
        }
        const double t_end = cst_time_now();
        pthread_mutex_lock(&s->mu);
        s->stats.n_decodes++;
        s->stats.decode_seconds += t_dec_end - t_dec;
        s->stats.host_seconds += (t_dec - t_iter) + (t_end - t_dec_end);
        s->stats.sample_seconds += s->t_sample;
        s->stats.mask_seconds += s->t_mask;
        s->stats.n_grammar_tokens += s->n_gtok;
        s->stats.n_grammar_masked += s->n_gmasked;
        s->t_sample = 0;
        s->t_mask = 0;
        s->n_gtok = s->n_gmasked = 0;
        pthread_mutex_unlock(&s->mu);
    }
    /* shutdown: cancel what is left */
    for (int i = 0; i < ns; i++)
        if (s->slots[i].state != SLOT_FREE) slot_finish(s, &s->slots[i], CST_FINISH_CANCELLED, CST_OK, NULL);
    pthread_mutex_lock(&s->mu);
    cst_sched_req *q = s->qhead;
    s->qhead = s->qtail = NULL;
    s->qlen = 0;
    for (cst_sched_req *x = q; x; x = x->qnext) atomic_store(&x->in_queue, false);
    pthread_mutex_unlock(&s->mu);
    while (q) {
        cst_sched_req *n = q->qnext;
        push_done(q, CST_FINISH_CANCELLED, CST_OK, NULL, q->n_prompt, 0, 0, 0);
        req_unref(q);
        q = n;
    }
    return NULL;
}

cst_status cst_sched_new(cst_model *m, const cst_sched_params *pp, cst_sched **out, char *err, size_t errlen) {
    *out = NULL;
    cst_sched_params p = pp ? *pp : cst_sched_default_params();
    if (p.n_slots <= 0) p.n_slots = 4;
    if (p.n_batch <= 0) p.n_batch = 512;
    if (p.max_queue <= 0) p.max_queue = 64;
    if (p.n_batch < p.n_slots) p.n_batch = p.n_slots;
    cst_sched *s = calloc(1, sizeof *s);
    if (!s) return CST_ERR_NOMEM;
    s->m = m;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    cst_ctx_params cp = cst_ctx_default_params();
    cp.n_ctx = p.n_ctx;
    cp.n_seq = p.n_slots;
    cp.n_batch = p.n_batch;
    cp.n_threads = p.n_threads;
    cp.n_outputs = p.n_slots;
    cst_status st = cst_ctx_new(m, &cp, &s->ctx, err, errlen);
    if (st) goto fail;
    p.n_ctx = cst_ctx_get_params(s->ctx).n_ctx;
    s->p = p;
    s->slots = calloc((size_t)p.n_slots, sizeof *s->slots);
    s->batch = cst_batch_new(p.n_batch);
    s->piece = malloc(1024);
    if (!s->slots || !s->batch || !s->piece) {
        st = CST_ERR_NOMEM;
        cst_errf(err, errlen, "out of memory");
        goto fail;
    }
    for (int i = 0; i < p.n_slots; i++) s->slots[i].bidx = -1;
    parse_faults(s);
    if (pthread_create(&s->th, NULL, engine_main, s) != 0) {
        st = CST_ERR_NOMEM;
        cst_errf(err, errlen, "cannot start the engine thread");
        goto fail;
    }
    s->started = true;
    *out = s;
    return CST_OK;
fail:
    cst_batch_free(s->batch);
    free(s->slots);
    free(s->piece);
    cst_ctx_free(s->ctx);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    return st;
}

void cst_sched_free(cst_sched *s) {
    if (!s) return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->th, NULL);
    }
    for (int32_t i = 0; i < s->n_snaps; i++) free(s->snaps[i].buf);
    free(s->snaps);
    for (int32_t i = 0; i < s->n_grts; i++) {
        cst_grammar_rt_free(s->grts[i].rt);
        cst_grammar_unref(s->grts[i].g);
    }
    free(s->grts);
    cst_grammar_vocab_free(s->gvocab);
    free(s->glogits);
    cst_batch_free(s->batch);
    free(s->slots);
    free(s->piece);
    cst_ctx_free(s->ctx);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
