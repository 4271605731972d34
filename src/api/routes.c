/* routes.c: the interaction endpoints (§3-6): create (JSON, SSE, background),
 * get (JSON or SSE replay with last_event_id), delete and cancel, plus the
 * SSE writer: an MHD content-reader callback that writes the events in the
 * run's log (straight into MHD's buffer, flushed at once) and, with nothing
 * to send, parks its connection until the run's next event (server.c);
 * keep-alive comments while nothing happens, [DONE] at the end, and a
 * non-background run cancelled when the client goes away. A unary create
 * parks its connection until its run is done (cst_route_resume).
 */
#define _GNU_SOURCE 1 /* POLLRDHUP */
#include "api_int.h"
#include "http_guard.h"
#include "files.h"
#include "queue.h"

#include <errno.h>
#include <sched.h>
#include <poll.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>


bool cst_api_client_gone(int fd) {
    if (fd < 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) return true;
    /* the framing guard shut the read side, not the client: a bad request
     * waits behind this one (http_guard.c); a reset still shows as POLLERR */
    if (cst_http_guard_read_shut(fd)) return false;
    if (p.revents & POLLRDHUP) return true;
    if (p.revents & POLLIN) {
        char c;
        ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0) return true;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return true;
    }
    return false;
}

smodel *cst_api_find_model(cst_server *s, const char *name) {
    if (!strncmp(name, "models/", 7)) name += 7;
    for (size_t i = 0; i < s->n_aliases; i++)
        if (!strcmp(s->aliases[i].name, name)) return &s->models[s->aliases[i].model];
    for (size_t i = 0; i < s->n_models; i++)
        if (!strcmp(s->models[i].stem, name)) return &s->models[i];
    if (s->p.gemini_names && s->n_models && !strncmp(name, "gemini-", 7)) return &s->models[0];
    return NULL;
}

/* ---- SSE writer -------------------------------------------------------- */

typedef struct sse {
    run *r;        /* live source (reference), or NULL */
    char **frames; /* stored source: ready frames */
    size_t n_frames;
    size_t next;   /* next event index */
    char *pend;
    size_t pend_len, pend_off;
    bool finished, done_queued;
    bool cancel_on_close;
    int fd;
    double last_write;
    double keepalive_s;
    cst_server *srv;
    cst_park pk; /* parked while the live run has nothing new */
    bool woke_idle; /* parked since the last write */
    /* another API's stream (dialect.c): events translated by xf */
    char *(*xf)(void *ctx, const char *type, const char *data);
    void *xctx;
    void (*xctx_free)(void *ctx);
    const char *ctype;
    /* follow a run live on another replica through the store's event log
     * (queue.c notifies): frames are appended as they are stored */
    bool follow, follow_end;
    char follow_id[48], follow_owner[65];
} sse;

static char *frame(const char *type, const char *data) {
    size_t n = strlen(type) + strlen(data) + 32;
    char *f = malloc(n);
    if (f) snprintf(f, n, "event: %s\ndata: %s\n\n", type, data);
    return f;
}

/* "event: TYPE\ndata: DATA\n\n" into buf when it fits (returns its length),
 * else 0 */
static size_t frame_into(char *buf, size_t max, const char *type, const char *data) {
    const size_t tl = strlen(type), dl = strlen(data), n = tl + dl + 16;
    if (n > max) return 0;
    char *p = buf;
    memcpy(p, "event: ", 7), p += 7;
    memcpy(p, type, tl), p += tl;
    memcpy(p, "\ndata: ", 7), p += 7;
    memcpy(p, data, dl), p += dl;
    memcpy(p, "\n\n", 2), p += 2;
    return (size_t)(p - buf);
}

static bool load_event(void *ud, int64_t seq, const char *data);
typedef struct {
    sse *w;
    bool oom;
} load_ctx;

static bool is_live_status(const char *st) { return !strcmp(st, "queued") || !strcmp(st, "in_progress"); }

/* A follower with nothing new looks at the store again after this long at
 * the latest (notifications usually wake it sooner). */
#define FOLLOW_POLL_S 0.25

/* Append the events stored after the frames held (a run live on another
 * replica); the end is interaction.completed, or a terminal record with
 * nothing more stored. 1: frames added or the end reached; 0: nothing new;
 * -1: the store failed. */
static int follow_more(sse *w) {
    cst_server *s = w->srv;
    for (int pass = 0; pass < 2; pass++) {
        const size_t had = w->n_frames;
        load_ctx lc = {.w = w};
        if (cst_store_events(s->store, w->follow_id, (int64_t)had, load_event, &lc) || lc.oom) return -1;
        for (size_t i = had; i < w->n_frames; i++)
            if (!strncmp(w->frames[i], "event: interaction.completed\n", 29)) w->follow_end = true;
        if (w->n_frames > had) return 1;
        if (pass == 1) break;
        cst_irec rec;
        const cst_status st = cst_store_get(s->store, w->follow_owner, w->follow_id, &rec);
        if (st == CST_ERR_NOT_FOUND) { /* deleted meanwhile */
            w->follow_end = true;
            return 1;
        }
        if (st) return -1;
        const bool live = is_live_status(rec.status);
        cst_irec_clear(&rec);
        if (live) break;
        w->follow_end = true; /* terminal: what its last transaction stored is read once more */
    }
    return w->follow_end ? 1 : 0;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    sse *w = cls;
    /* This connection thread wakes once per token. As SCHED_BATCH it does
     * not preempt the engine thread that woke it (no wakeup preemption): it
     * runs when a core frees up, instead of stalling the next forward pass
     * on a busy machine (+5-10% streamed tokens/s with -t = cores here). */
    static __thread bool batch_set;
    if (!batch_set) {
        const struct sched_param sp = {0};
        (void)sched_setscheduler(0, SCHED_BATCH, &sp);
        batch_set = true;
    }
    for (;;) {
        if (w->pend && w->pend_off < w->pend_len) {
            size_t n = CST_MIN(max, w->pend_len - w->pend_off);
            memcpy(buf, w->pend + w->pend_off, n);
            w->pend_off += n;
            w->last_write = cst_time_now();
            w->woke_idle = false;
            return (ssize_t)n;
        }
        free(w->pend);
        w->pend = NULL;
        if (w->done_queued) {
            w->finished = true;
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        char *f = NULL;
        if (w->r) {
            run *r = w->r;
            pthread_mutex_lock(&r->mu);
            const size_t n_ev = cst_run_visible_locked(r);
            if (w->next < n_ev && w->xf) {
                f = w->xf(w->xctx, r->ev_type[w->next], r->ev_data[w->next]);
                w->next++;
                pthread_mutex_unlock(&r->mu);
                goto have;
            }
            if (w->next < n_ev) {
                /* every event already in the log that fits, straight into
                 * MHD's buffer; a larger one goes through pend */
                size_t n = 0, k;
                while (w->next < n_ev &&
                       (k = frame_into(buf + n, max - n, r->ev_type[w->next], r->ev_data[w->next])) > 0) {
                    n += k;
                    w->next++;
                }
                if (n == 0) {
                    f = frame(r->ev_type[w->next], r->ev_data[w->next]);
                    w->next++;
                }
                pthread_mutex_unlock(&r->mu);
                if (n > 0) {
                    w->last_write = cst_time_now();
                    w->woke_idle = false;
                    return (ssize_t)n;
                }
                goto have;
            } else if (r->done) {
                w->done_queued = true;
            } else {
                /* nothing new: a keep-alive comment when one is due, else
                 * park until the run's next event, the keep-alive time or a
                 * hang-up (the ticker), whichever comes first */
                /* woken with nothing new (the ticker: a hang-up or a
                 * keep-alive due) when it parked since its last write; after
                 * a write it parks without a syscall (per token) */
                const bool gone = w->woke_idle && cst_api_client_gone(w->fd);
                if (!gone && cst_time_now() - w->last_write < w->keepalive_s) {
                    cst_run_watch_locked(r, &w->pk);
                    cst_park_conn(w->srv, &w->pk, w->last_write + w->keepalive_s);
                    w->woke_idle = true;
                    pthread_mutex_unlock(&r->mu);
                    return 0;
                }
                pthread_mutex_unlock(&r->mu);
                if (gone) return MHD_CONTENT_READER_END_WITH_ERROR;
                f = w->xf ? w->xf(w->xctx, ":", NULL) : strdup(": keep-alive\n\n");
                goto have;
            }
            pthread_mutex_unlock(&r->mu);
        } else {
            if (w->next < w->n_frames) {
                f = strdup(w->frames[w->next++]);
            } else if (w->follow && !w->follow_end) {
                const uint64_t gen = cst_queue_gen(w->srv);
                const int got = follow_more(w);
                if (got < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
                if (got > 0) continue;
                /* nothing new: park until a notification (queue.c), the next
                 * look at the store or the keep-alive time; a hang-up is
                 * checked when it woke with nothing new */
                if (w->woke_idle && cst_api_client_gone(w->fd)) return MHD_CONTENT_READER_END_WITH_ERROR;
                const double now = cst_time_now();
                if (now - w->last_write < w->keepalive_s) {
                    if (!cst_queue_park(w->srv, &w->pk, gen, CST_MIN(w->last_write + w->keepalive_s,
                                                                     now + FOLLOW_POLL_S)))
                        continue; /* news came meanwhile */
                    w->woke_idle = true;
                    return 0;
                }
                f = w->xf ? w->xf(w->xctx, ":", NULL) : strdup(": keep-alive\n\n");
                goto have;
            } else {
                w->done_queued = true;
            }
        }
        if (w->done_queued && !f) f = w->xf ? w->xf(w->xctx, NULL, NULL) : strdup("event: done\ndata: [DONE]\n\n");
    have:
        if (!f) return MHD_CONTENT_READER_END_WITH_ERROR;
        w->pend = f;
        w->pend_len = strlen(f);
        w->pend_off = 0;
    }
}

static void sse_free(void *cls) {
    sse *w = cls;
    if (w->srv) cst_park_forget(w->srv, &w->pk);
    if (w->follow && w->srv) cst_queue_unwatch(w->srv, &w->pk);
    if (w->r) {
        cst_run_unwatch(w->r, &w->pk);
        if (!w->finished && w->cancel_on_close) cst_run_cancel(w->r);
        cst_run_unref(w->r);
    }
    for (size_t i = 0; i < w->n_frames; i++) free(w->frames[i]);
    free(w->frames);
    free(w->pend);
    if (w->xctx_free) w->xctx_free(w->xctx);
    if (w->srv) atomic_fetch_sub(&w->srv->n_writers, 1);
    free(w);
}

static enum MHD_Result sse_respond(cst_server *s, struct MHD_Connection *c, sse *w) {
    w->last_write = cst_time_now();
    w->keepalive_s = s->p.keepalive_ms > 0 ? s->p.keepalive_ms / 1000.0 : 10.0;
    w->srv = s;
    w->pk.c = c;
    w->pk.fd = w->fd;
    atomic_fetch_add(&s->n_writers, 1);
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, sse_read, w, sse_free);
    if (!resp) {
        sse_free(w);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", w->ctype ? w->ctype : "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    if (w->r) MHD_add_response_header(resp, "X-Castor-Interaction-Id", w->r->id);
    else if (w->follow) MHD_add_response_header(resp, "X-Castor-Interaction-Id", w->follow_id);
    cst_api_common_headers(resp);
    enum MHD_Result ret = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* A stream of (owner, id), live on another replica, from event after on:
 * the stored events as they are stored (follow_more). */
static enum MHD_Result follow_respond(cst_server *s, struct MHD_Connection *c, conn *cs, const char *owner,
                                      const char *id, size_t after) {
    sse *w = calloc(1, sizeof *w);
    if (!w) return MHD_NO;
    w->follow = true;
    snprintf(w->follow_id, sizeof w->follow_id, "%s", id);
    snprintf(w->follow_owner, sizeof w->follow_owner, "%s", owner);
    w->next = after;
    w->fd = cs->fd;
    return sse_respond(s, c, w);
}

/* ---- create ------------------------------------------------------------ */

static const char *query(struct MHD_Connection *c, const char *k) {
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, k);
}

static bool query_bool(struct MHD_Connection *c, const char *k, bool *out, enum MHD_Result *ret) {
    const char *v = query(c, k);
    if (!v) return true;
    if (!strcmp(v, "true") || !strcmp(v, "1")) *out = true;
    else if (!strcmp(v, "false") || !strcmp(v, "0") || !*v) *out = false;
    else {
        *ret = cst_api_error(c, E_INVALID, "%s: expected true or false, got '%s'", k, v);
        return false;
    }
    return true;
}

/* Deepest nesting of arrays/objects in a JSON text (strings skipped);
 * stops counting past limit. */
static int json_depth(const char *t, size_t n, int limit) {
    int d = 0, maxd = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char ch = t[i];
        if (in_str) {
            if (ch == '\\') i++;
            else if (ch == '"') in_str = false;
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == '[' || ch == '{') {
            if (++d > maxd) maxd = d;
            if (maxd > limit) return maxd;
        } else if (ch == ']' || ch == '}') {
            d--;
        }
    }
    return maxd;
}

/* JSON, or a type a client sends without thinking (text/plain); not forms */
static bool json_content_type(const char *ct) {
    if (!ct || !*ct) return true;
    size_t n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) n--;
    if (n == 16 && !strncasecmp(ct, "application/json", 16)) return true;
    if (n == 10 && !strncasecmp(ct, "text/plain", 10)) return true;
    if (n > 5 && !strncasecmp(ct + n - 5, "+json", 5)) return true;
    return false;
}

#define MAX_JSON_DEPTH 64

/* Bytes of the "text" strings in a JSON value (the text a prompt renders). */
static size_t text_bytes(json_t *j) {
    size_t n = 0;
    if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++) n += text_bytes(json_array_get(j, i));
    } else if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v) {
            if (!strcmp(k, "text") && json_is_string(v)) n += json_string_length(v);
            else n += text_bytes(v);
        }
    }
    return n;
}

/* ---- the prompt of a create (also run by a replica claiming a job: queue.c) ---- */

#define FAIL(kind, ...) \
    do {                                 \
        *k = (kind);                     \
        cst_errf(err, errlen, __VA_ARGS__); \
        return false;                    \
    } while (0)

bool cst_create_prepare(cst_server *s, struct MHD_Connection *c, create_req *cr, const char *owner, create_prep *p,
                        ekind *k, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    smodel *sm = p->sm = cst_api_find_model(s, cr->model);
    if (!sm) FAIL(E_NOT_FOUND, "model '%s' not found (GET /v1beta/models lists the served models)", cr->model);
    /* conversation: the stored chain, then the client-held context */
    json_t *history = p->history = json_array();
    if (cr->previous_id) {
        run *pr = cst_run_find(s, owner, cr->previous_id);
        if (pr) {
            bool d = cst_run_wait(pr, 0);
            pthread_mutex_lock(&pr->mu);
            const bool fin = pr->final;
            pthread_mutex_unlock(&pr->mu);
            if (!d && fin) d = cst_run_wait(pr, -1); /* finished, its record being stored: a moment */
            cst_run_unref(pr);
            if (!d) FAIL(E_PRECOND, "previous interaction '%s' is still running", cr->previous_id);
        }
        cst_irec prev;
        cst_status st = cst_store_get(s->store, owner, cr->previous_id, &prev);
        if (st == CST_ERR_NOT_FOUND) FAIL(E_NOT_FOUND, "previous interaction '%s' not found", cr->previous_id);
        if (st) FAIL(st == CST_ERR_STORE ? E_UNAVAILABLE : E_INTERNAL, "store: %s", s->store->err);
        /* live on another replica (a shared store): not finished either */
        const bool running = !strcmp(prev.status, "queued") || !strcmp(prev.status, "in_progress");
        const char *parts[3] = {prev.history, prev.turn, prev.outputs};
        for (int i = 0; i < 3 && !running; i++) {
            json_t *a = parts[i] ? json_loads(parts[i], 0, NULL) : NULL;
            if (json_is_array(a)) json_array_extend(history, a);
            json_decref(a);
        }
        cst_irec_clear(&prev);
        if (running) FAIL(E_PRECOND, "previous interaction '%s' is still running", cr->previous_id);
    }
    json_array_extend(history, cr->context);
    json_t *lists[2] = {history, cr->turn};
    if (cst_docs_count(lists, 2) > 0) { /* documents -> framed text (+ page images) before rendering (files_docs.c) */
        *k = E_INVALID;
        if (!cst_docs_expand(s, c, sm, owner, lists, 2, p->doc_lists, k, err, errlen)) return false;
        lists[0] = p->doc_lists[0];
        lists[1] = p->doc_lists[1];
    }
    /* text that can never fit the context (documents' text included) is
     * refused before tokenizing it (seconds for megabytes): no token covers
     * more than max_piece bytes */
    const size_t n_text = text_bytes(lists[0]) + text_bytes(lists[1]) +
                          (cr->system_instruction ? strlen(cr->system_instruction) : 0);
    const size_t max_text = sm->max_piece * (size_t)cst_sched_n_ctx(sm->sched);
    if (n_text > max_text)
        FAIL(E_INVALID,
             "the input holds %zu bytes of text, more than the model's context of %d tokens can ever "
             "hold (at most %zu bytes); shorten the input",
             n_text, cst_sched_n_ctx(sm->sched), max_text);
    cst_status cst = cst_chat_prompt_tools(&sm->chat, s->sig_key, cr->system_instruction, lists, 2,
                                           cr->generation_config, cr->tools.tools, &p->cp, err, errlen);
    if (cst) {
        *k = cst == CST_ERR_NOMEM ? E_INTERNAL : E_INVALID;
        return false;
    }
    if (cst_media_count(lists, 2) > 0) { /* images: resolve, encode (cached), split the prompt (files_media.c) */
        if (!sm->vision)
            FAIL(E_INVALID, "model '%s' does not accept image input (no vision projector; serve it with --mmproj)",
                 cr->model);
        *k = E_INVALID;
        if (!cst_media_prepare(s, c, sm, owner, lists, 2, &p->media, k, err, errlen)) {
            p->media_full = *k == E_EXHAUSTED; /* the decode memory: the caller may try again */
            return false;
        }
        cst = cst_media_tokens(sm, &p->media, &p->cp, err, errlen);
        if (cst) {
            *k = cst == CST_ERR_NOMEM ? E_INTERNAL : E_INVALID;
            return false;
        }
    }
    if (s->p.log_prompts) { /* --log-prompts: the prompt as the model gets it, one JSON line on stderr */
        json_t *lj = json_pack("{s:s,s:I,s:s%}", "model", sm->stem, "tokens", (json_int_t)p->cp.n_toks, "text",
                               p->cp.text ? p->cp.text : "", p->cp.text ? p->cp.text_len : (size_t)0);
        char *line = lj ? json_dumps(lj, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        if (line) fprintf(stderr, "castor prompt: %s\n", line);
        free(line);
        json_decref(lj);
    }
    return true;
}
#undef FAIL

bool cst_create_limits(cst_server *s, create_req *cr, create_prep *p, char *err, size_t errlen) {
    const size_t n_toks = p->cp.n_toks;
    const int32_t n_ctx = cst_sched_n_ctx(p->sm->sched);
    if (!cr->has_max && s->p.default_max_output > 0) {
        cr->has_max = true;
        cr->max_output_tokens = CST_MIN(s->p.default_max_output, n_ctx);
    }
    if (cr->has_max && cr->max_output_tokens > n_ctx) {
        cst_errf(err, errlen, "generation_config.max_output_tokens: %lld exceeds the context of %d tokens",
                 (long long)cr->max_output_tokens, n_ctx);
        return false;
    }
    if (n_toks >= (size_t)n_ctx) {
        cst_errf(err, errlen,
                 "the prompt is %zu tokens, but the model's context holds %d (at most %d prompt tokens); "
                 "shorten the input",
                 n_toks, n_ctx, n_ctx - 1);
        return false;
    }
    return true;
}

void create_prep_clear(create_prep *p) {
    cst_chat_prompt_clear(&p->cp);
    cst_media_clear(&p->media);
    json_decref(p->doc_lists[0]);
    json_decref(p->doc_lists[1]);
    json_decref(p->history);
    memset(p, 0, sizeof *p);
}

/* The reply of a finished unary create (xout: a dialect's hooks, or NULL). */
static enum MHD_Result unary_reply(struct MHD_Connection *c, run *r, const cst_dialect_out *xout) {
    if (cst_run_timed_out(r)) /* stored as failed (gateway_timeout) */
        return cst_api_error(c, E_TIMEOUT, "the interaction '%s' exceeded the server's time limit of %g s", r->id,
                             r->limit_s);
    if (r->persist_err) /* acknowledged means stored */
        return cst_api_error(c, r->persist_transient ? E_UNAVAILABLE : E_INTERNAL, "interaction '%s': %s", r->id,
                             r->persist_err);
    if (xout && xout->unary) return xout->unary(xout->ctx, c, r);
    return cst_api_json_id(c, 200, cst_run_json(r, false, false), r->id);
}

/* Drop cs's wait for its run (cancelled: the client went away first). */
static void wait_clear(cst_server *s, conn *cs, bool cancel) {
    cst_run_unwatch(cs->wait, &cs->pk);
    cst_park_forget(s, &cs->pk);
    if (cancel) cst_run_cancel(cs->wait); /* stored cancelled with the text so far */
    cst_run_unref(cs->wait);
    cs->wait = NULL;
    if (cs->wait_out && cs->wait_out->ctx && cs->wait_out->ctx_free) cs->wait_out->ctx_free(cs->wait_out->ctx);
    free(cs->wait_out);
    cs->wait_out = NULL;
}

void cst_route_resume_end(cst_server *s, conn *cs) {
    if (!cs->wait) return;
    wait_clear(s, cs, true);
    atomic_fetch_sub(&s->n_handlers, 1); /* it counted as a handler while parked */
}

enum MHD_Result cst_route_resume(cst_server *s, struct MHD_Connection *c, conn *cs) {
    run *r = cs->wait;
    if (cst_api_client_gone(cs->fd)) /* hung up (the ticker woke it): the connection closes, and */
        return MHD_NO;                   /* cst_route_resume_end cancels the run */
    if (!cst_run_done_or_park(r, &cs->pk)) return MHD_YES;
    enum MHD_Result ret = unary_reply(c, r, cs->wait_out);
    wait_clear(s, cs, false);
    return ret;
}

enum MHD_Result cst_route_create(cst_server *s, struct MHD_Connection *c, conn *cs, const char *owner) {
    char err[1024];
    if (cs->too_large)
        return cst_api_error(c, E_TOO_LARGE, "the request body is larger than the server limit of %zu bytes",
                             s->p.max_body);
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (!json_content_type(ct))
        return cst_api_error(c, E_INVALID, "Content-Type '%.200s' is not supported; send application/json", ct);
    if (json_depth(cs->body ? cs->body : "", cs->len, MAX_JSON_DEPTH) > MAX_JSON_DEPTH)
        return cst_api_error(c, E_INVALID, "the request body nests JSON deeper than %d levels", MAX_JSON_DEPTH);
    const char *rev = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Api-Revision");
    if (rev && *rev && strcmp(rev, "2026-05-20") < 0)
        return cst_api_error(c, E_INVALID,
                             "Api-Revision %s (the legacy outputs schema) is not supported; use 2026-05-20 or later",
                             rev);
    json_error_t je;
    /* a key given twice is refused, as Google's parser does (dialects hand over their mapped body) */
    json_t *body = cs->xbody ? json_incref(cs->xbody)
                             : json_loadb(cs->body ? cs->body : "", cs->len, JSON_REJECT_DUPLICATES, &je);
    if (!body)
        return cst_api_error(c, E_INVALID, "malformed JSON in the request body: %s (line %d, column %d)", je.text,
                             je.line, je.column);
    create_req cr;
    if (!cst_api_parse_create(body, &cr, err, sizeof err)) {
        json_decref(body);
        return cst_api_error(c, E_INVALID, "%s", err);
    }
    enum MHD_Result ret;
    /* ?alt=sse (or ?stream=true) streams; alt=json and stream=false change
     * nothing; any other value is refused rather than ignored */
    const char *alt = query(c, "alt");
    bool qstream = false;
    if (alt && strcmp(alt, "sse") && strcmp(alt, "json")) {
        json_decref(body);
        create_req_clear(&cr);
        return cst_api_error(c, E_INVALID, "alt: expected sse or json, got '%.100s'", alt);
    }
    if (!query_bool(c, "stream", &qstream, &ret)) {
        json_decref(body);
        create_req_clear(&cr);
        return ret;
    }
    if ((alt && !strcmp(alt, "sse")) || qstream) cr.stream = true;
    create_prep pp = {0};
    run *r = NULL;
    ekind pk = E_INVALID;
    if (!cst_create_prepare(s, c, &cr, owner, &pp, &pk, err, sizeof err)) {
        if (pk == E_EXHAUSTED && pp.media_full && cst_time_now() - cs->t_start < CST_MEDIA_DECODE_WAIT_S) {
            /* the image decode memory is full: the whole request runs
             * again shortly (nothing is stored before cst_run_start),
             * parked meanwhile, not holding its worker */
            cs->retry = true;
            cst_park_conn(s, &cs->pk, cst_time_now() + CST_RETRY_S);
            ret = MHD_YES;
            goto out;
        }
        ret = cst_api_error(c, pk, "%s", err);
        goto out;
    }
    if (cs->xout && cs->xout->count) { /* countTokens (dialect.c) */
        ret = cs->xout->count(cs->xout->ctx, c, pp.cp.n_toks);
        goto out;
    }
    if (!cst_create_limits(s, &cr, &pp, err, sizeof err)) {
        ret = cst_api_error(c, E_INVALID, "%s", err);
        goto out;
    }
    if (atomic_load(&s->draining)) {
        ret = cst_api_error(c, E_UNAVAILABLE, "the server is shutting down");
        goto out;
    }
    /* a stored create writes its first record before anything else
     * (cst_run_start): a store that cannot keep it refuses the create there */
    cst_status st = cst_run_start(s, pp.sm, &cr, owner, &pp.cp, pp.history, body, &r, err, sizeof err);
    if (st) {
        ekind k = cst_api_status_kind(st);
        if (st == CST_ERR_STORE && s->store->transient) k = E_UNAVAILABLE; /* disk full: 503 */
        ret = cst_api_error(c, k, "%s", err);
        goto out;
    }
    if (r->detached) { /* in the shared queue: any replica runs it (queue.c) */
        if (cr.stream) ret = follow_respond(s, c, cs, owner, r->id, 0);
        else ret = cst_api_json_id(c, 200, cst_run_accepted_json(r), r->id);
        goto out;
    }
    if (cr.stream) {
        sse *w = calloc(1, sizeof *w);
        if (!w) {
            cst_run_cancel(r);
            ret = MHD_NO;
            goto out;
        }
        w->r = r;
        r = NULL; /* the writer owns the reference */
        w->cancel_on_close = !cr.background;
        w->fd = cs->fd;
        if (cs->xout) { /* the writer owns the dialect's context */
            w->xf = cs->xout->stream;
            w->xctx = cs->xout->ctx;
            w->xctx_free = cs->xout->ctx_free;
            w->ctype = cs->xout->stream_ctype;
            cs->xout->ctx = NULL;
        }
        ret = sse_respond(s, c, w);
        goto out;
    }
    if (cr.background) { /* as accepted (§5.4): the client polls for the rest */
        ret = cst_api_json_id(c, 200, cst_run_accepted_json(r), r->id);
        goto out;
    }
    /* park until the run is done (cst_route_resume answers then); a
     * dialect's unary hook goes along with its context */
    if (cs->xout) {
        cs->wait_out = malloc(sizeof *cs->wait_out);
        if (!cs->wait_out) {
            cst_run_cancel(r);
            ret = MHD_NO;
            goto out;
        }
        *cs->wait_out = *cs->xout;
        cs->xout->ctx = NULL;
    }
    cs->wait = r;
    cs->wait_style = (int)cst_api_get_err_style();
    r = NULL;
    if (!cst_run_done_or_park(cs->wait, &cs->pk)) {
        ret = MHD_YES;
        goto out;
    }
    ret = unary_reply(c, cs->wait, cs->wait_out);
    wait_clear(s, cs, false);
out:
    cst_run_unref(r);
    create_prep_clear(&pp);
    create_req_clear(&cr);
    json_decref(body);
    return ret;
}

/* ---- get / replay ------------------------------------------------------ */

static bool load_event(void *ud, int64_t seq, const char *data) {
    load_ctx *lc = ud;
    (void)seq;
    json_t *j = json_loads(data, 0, NULL);
    json_t *t = j ? json_object_get(j, "event_type") : NULL;
    char *f = frame(json_is_string(t) ? json_string_value(t) : "message", data);
    json_decref(j);
    char **nf = realloc(lc->w->frames, (lc->w->n_frames + 1) * sizeof *nf);
    if (!f || !nf) {
        free(f);
        if (nf) lc->w->frames = nf;
        lc->oom = true;
        return false;
    }
    lc->w->frames = nf;
    lc->w->frames[lc->w->n_frames++] = f;
    return true;
}

enum MHD_Result cst_route_get(cst_server *s, struct MHD_Connection *c, conn *cs, const char *owner,
                              const char *id) {
    enum MHD_Result ret;
    bool stream = false, include_input = false;
    if (!query_bool(c, "stream", &stream, &ret) || !query_bool(c, "include_input", &include_input, &ret)) return ret;
    const char *lei = query(c, "last_event_id");
    if (!lei) lei = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
    long long after = 0;
    if (lei && *lei) {
        char *end;
        errno = 0;
        after = strtoll(lei, &end, 10);
        if (*end || errno || after < 0) return cst_api_error(c, E_INVALID, "last_event_id: unknown event id '%s'", lei);
    }
    run *r = cst_run_find(s, owner, id);
    if (r) {
        if (!stream) {
            ret = cst_api_json(c, 200, cst_run_json(r, true, include_input));
            cst_run_unref(r);
            return ret;
        }
        pthread_mutex_lock(&r->mu);
        size_t n = r->n_ev;
        pthread_mutex_unlock(&r->mu);
        if ((size_t)after > n) {
            cst_run_unref(r);
            return cst_api_error(c, E_INVALID, "last_event_id: unknown event id '%s'", lei);
        }
        sse *w = calloc(1, sizeof *w);
        if (!w) {
            cst_run_unref(r);
            return MHD_NO;
        }
        w->r = r;
        w->next = (size_t)after;
        w->cancel_on_close = false; /* a replaying reader never cancels */
        w->fd = cs->fd;
        return sse_respond(s, c, w);
    }
    cst_irec rec;
    cst_status st = cst_store_get(s->store, owner, id, &rec);
    if (st == CST_ERR_NOT_FOUND) return cst_api_error(c, E_NOT_FOUND, "interaction '%s' not found", id);
    if (st) return cst_api_error(c, st == CST_ERR_STORE ? E_UNAVAILABLE : E_INTERNAL, "store: %s", s->store->err);
    if (!stream) {
        ret = cst_api_json(c, 200, cst_irec_json(&rec, include_input));
        cst_irec_clear(&rec);
        return ret;
    }
    const bool live = cst_store_live(s->store) && is_live_status(rec.status);
    cst_irec_clear(&rec);
    if (live) /* running on another replica: follow its event log to the end */
        return follow_respond(s, c, cs, owner, id, (size_t)after);
    sse *w = calloc(1, sizeof *w);
    if (!w) return MHD_NO;
    load_ctx lc = {.w = w};
    st = cst_store_events(s->store, id, 0, load_event, &lc);
    if (st || lc.oom) {
        sse_free(w);
        return cst_api_error(c, E_INTERNAL, "cannot read the event log");
    }
    if ((size_t)after > w->n_frames) {
        sse_free(w);
        return cst_api_error(c, E_INVALID, "last_event_id: unknown event id '%s'", lei);
    }
    w->next = (size_t)after;
    w->fd = cs->fd;
    return sse_respond(s, c, w);
}

/* ---- delete / cancel ---------------------------------------------------- */

/* Stop (owner, id), live on another replica (a shared store), without
 * holding this worker: the first call asks (queue.c), later ones (the
 * connection parked to run again every 100 ms) read the record until it is
 * terminal, or a few leases passed. 0: *rec (caller clears it) is the
 * record then, *was_terminal says it was terminal before the ask; 1: parked;
 * -1: answered with an error. *ret is the handler's result in the last two. */
static int cancel_elsewhere(cst_server *s, struct MHD_Connection *c, conn *cs, const char *owner, const char *id,
                            cst_irec *rec, bool *was_terminal, enum MHD_Result *ret) {
    *was_terminal = false;
    cst_status st = CST_OK;
    if (cs->cancel_until == 0) {
        st = cst_queue_cancel(s, owner, id);
        *was_terminal = st == CST_ERR_CONFLICT;
        if (st == CST_OK || st == CST_ERR_CONFLICT)
            cs->cancel_until = cst_time_now() + 2.0 * (double)cst_queue_lease_ms(s) / 1000.0 + 5.0;
    }
    if (st == CST_OK || st == CST_ERR_CONFLICT) st = cst_store_get(s->store, owner, id, rec);
    if (st) {
        cs->cancel_until = 0;
        *ret = st == CST_ERR_NOT_FOUND ? cst_api_error(c, E_NOT_FOUND, "interaction '%s' not found", id)
                                       : cst_api_error(c, st == CST_ERR_STORE ? E_UNAVAILABLE : E_INTERNAL,
                                                       "store: %s", s->store->err);
        return -1;
    }
    if (*was_terminal || !is_live_status(rec->status) || cst_time_now() > cs->cancel_until) {
        cs->cancel_until = 0;
        return 0;
    }
    cst_irec_clear(rec);
    cs->retry = true; /* the replica running it stops it within a token of the notification */
    cst_park_conn(s, &cs->pk, cst_time_now() + 0.1);
    *ret = MHD_YES;
    return 1;
}

enum MHD_Result cst_route_delete(cst_server *s, struct MHD_Connection *c, conn *cs, const char *owner,
                                 const char *id) {
    run *r = cst_run_find(s, owner, id);
    if (r) { /* deleting a running interaction cancels it first */
        cst_run_cancel(r);
        cst_run_wait(r, -1);
        cst_run_unref(r);
    } else if (cst_store_live(s->store)) { /* ... on whichever replica runs it */
        cst_irec rec;
        bool was_terminal;
        enum MHD_Result ret;
        const int k = cancel_elsewhere(s, c, cs, owner, id, &rec, &was_terminal, &ret);
        if (k != 0) return ret;
        cst_irec_clear(&rec);
    }
    cst_status st = cst_store_del(s->store, owner, id);
    if (st == CST_ERR_NOT_FOUND) return cst_api_error(c, E_NOT_FOUND, "interaction '%s' not found", id);
    if (st) return cst_api_error(c, st == CST_ERR_STORE ? E_UNAVAILABLE : E_INTERNAL, "store: %s", s->store->err);
    return cst_api_json(c, 200, json_object());
}

enum MHD_Result cst_route_cancel(cst_server *s, struct MHD_Connection *c, conn *cs, const char *owner,
                                 const char *id) {
    run *r = cst_run_find(s, owner, id);
    cst_irec rec;
    if (!r && cst_queue_cancel_waiting(s, owner, id)) { /* waiting to run again after a restart */
        cst_status st = cst_store_get(s->store, owner, id, &rec);
        if (st) return cst_api_error(c, st == CST_ERR_STORE ? E_UNAVAILABLE : E_INTERNAL, "store: %s", s->store->err);
        enum MHD_Result ret = cst_api_json(c, 200, cst_irec_json(&rec, false));
        cst_irec_clear(&rec);
        return ret;
    }
    if (!r) r = cst_run_find(s, owner, id); /* taken meanwhile */
    if (r) {
        /* terminal once final (a GET already shows it), even while its
         * record is being stored */
        pthread_mutex_lock(&r->mu);
        const bool fin = r->final;
        const char *status = r->status;
        pthread_mutex_unlock(&r->mu);
        if (!fin) {
            cst_run_cancel(r);
            cst_run_wait(r, -1);
            enum MHD_Result ret = cst_api_json(c, 200, cst_run_json(r, true, false));
            cst_run_unref(r);
            return ret;
        }
        cst_run_unref(r);
        return cst_api_error(c, E_PRECOND, "interaction '%s' is already %s and cannot be cancelled", id, status);
    }
    if (cst_store_live(s->store)) { /* live on another replica? */
        bool was_terminal;
        enum MHD_Result ret;
        const int k = cancel_elsewhere(s, c, cs, owner, id, &rec, &was_terminal, &ret);
        if (k != 0) return ret;
        if (!was_terminal) { /* stopped there (or still stopping): its record now */
            ret = cst_api_json(c, 200, cst_irec_json(&rec, false));
            cst_irec_clear(&rec);
            return ret;
        }
    } else {
        cst_status st = cst_store_get(s->store, owner, id, &rec);
        if (st == CST_ERR_NOT_FOUND) return cst_api_error(c, E_NOT_FOUND, "interaction '%s' not found", id);
        if (st) return cst_api_error(c, st == CST_ERR_STORE ? E_UNAVAILABLE : E_INTERNAL, "store: %s", s->store->err);
    }
    enum MHD_Result ret =
        cst_api_error(c, E_PRECOND, "interaction '%s' is already %s and cannot be cancelled", id, rec.status);
    cst_irec_clear(&rec);
    return ret;
}
