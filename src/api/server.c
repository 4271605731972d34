/* server.c: castor serve's HTTP side: model loading (file stem, aliases,
 * gemini-* names), the libmicrohttpd daemon (epoll, a small thread pool:
 * handlers never block, a waiting connection is parked, i.e. suspended, and
 * resumed by its run or by the ticker), body accumulation with the size
 * limit, routing of /{v1,v1beta,v1alpha}/..., /health, /metrics, CORS
 * preflight, and the drain on shutdown.
 */
#define _GNU_SOURCE 1 /* POLLRDHUP */
#include "api_int.h"
#include "queue.h"
#include "core/pool.h"
#include "engine/vision/vision.h"
#include "files.h"
#include "http_guard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

cst_server_params cst_server_default_params(void) {
    cst_server_params p;
    memset(&p, 0, sizeof p);
    p.host = "127.0.0.1";
    p.port = 8080;
    p.gemini_names = true;
    p.data_dir = "data";
    p.n_slots = 4;
    p.max_queue = 64;
    p.kv_cache_bytes = CST_SCHED_CACHE_BYTES_DEFAULT;
    p.max_body = 100u << 20;
    p.keepalive_ms = 10000;
    p.request_timeout_s = 600;
    p.stream_timeout_s = 1200;
    p.idle_timeout_s = 60;
    p.body_timeout_s = 60;
    p.default_max_output = CST_DEFAULT_MAX_OUTPUT;
    p.image_decode_bytes = (size_t)512 << 20;
    p.max_connections = CST_DEFAULT_MAX_CONNECTIONS;
    return p;
}

int cst_server_port(const cst_server *s) { return s->port; }

static bool is_loopback(const char *h) {
    return !strcmp(h, "localhost") || !strncmp(h, "127.", 4) || !strcmp(h, "::1") || !strcmp(h, "[::1]");
}

static char *file_stem(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    char *s = strdup(b);
    if (!s) return NULL;
    size_t n = strlen(s);
    if (n > 5 && !strcmp(s + n - 5, ".gguf")) s[n - 5] = 0;
    return s;
}

/* Per-connection memory of MHD (request head, reply buffer): the whole of it
 * is zeroed between the requests of a kept-alive connection, so it is the
 * resident cost of an idle connection. The head limits (http_guard.h:
 * CST_MAX_URI, CST_MAX_HEADERS, CST_MAX_FIELDS) keep a head well inside it,
 * so that MHD never refuses one itself. */
#define CST_CONN_MEMORY (64 * 1024)

/* ---- routing ------------------------------------------------------------ */

static const char *version_of(const char *path, const char **rest) {
    static const char *vs[] = {"/v1beta/", "/v1alpha/", "/v1/"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(vs[i]);
        if (!strncmp(path, vs[i], n)) {
            *rest = path + n;
            return vs[i];
        }
    }
    return NULL;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, int status, const char *ctype, char *txt) {
    if (!txt) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(txt), txt, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(txt);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    cst_api_common_headers(r);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result preflight(struct MHD_Connection *c) {
    struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    cst_api_common_headers(r);
    MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
    MHD_add_response_header(r, "Access-Control-Allow-Headers",
                            "content-type, x-goog-api-key, x-goog-api-client, x-goog-upload-protocol, "
                            "x-goog-upload-command, x-goog-upload-offset, x-goog-upload-header-content-length, "
                            "x-goog-upload-header-content-type, x-goog-upload-file-name, x-server-timeout, "
                            "api-revision, authorization, last-event-id");
    MHD_add_response_header(r, "Access-Control-Max-Age", "86400");
    enum MHD_Result ret = MHD_queue_response(c, 204, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result dispatch(cst_server *s, struct MHD_Connection *c, conn *cs, const char *url,
                                const char *method, route_id *rid) {
    *rid = R_OTHER;
    enum MHD_Result ret;
    const char *path = url;
    size_t pl = strlen(s->prefix);
    if (pl && !strncmp(path, s->prefix, pl) && (path[pl] == '/' || !path[pl])) path += pl;
    if (!strcmp(method, "OPTIONS")) return preflight(c);
    if (!strcmp(path, "/health") || !strcmp(path, "/healthz")) {
        *rid = R_HEALTH;
        if (atomic_load(&s->draining))
            return cst_api_error(c, E_UNAVAILABLE, "the server is shutting down");
        if (cst_store_ping(s->store)) /* the balancer takes this replica out until the store answers */
            return cst_api_error(c, E_UNAVAILABLE, "the store is unreachable: %s", s->store->err);
        return cst_api_json(c, 200, json_pack("{s:s,s:i,s:s}", "status", "ok", "models", (int)s->n_models, "store",
                                              s->store->ops->name));
    }
    if (!strcmp(path, "/metrics")) {
        *rid = R_METRICS;
        char mowner[65]; /* with --api-keys, any valid key reads the metrics */
        if (!cst_api_auth(s, c, mowner, &ret)) return ret;
        return reply_text(c, 200, "text/plain; version=0.0.4; charset=utf-8", cst_metrics_render(s));
    }
    enum MHD_Result fret;
    if (cst_files_dispatch(s, c, cs, path, method, &fret)) return fret; /* Files API (files.c) */
    if (cst_dialect_dispatch(s, c, cs, path, method, &fret)) return fret; /* generateContent, OpenAI, models (dialect.c) */
    const char *rest = NULL;
    if (!version_of(path, &rest))
        return cst_api_error(c, E_NOT_FOUND, "no route for %s %s", method, url);
    char owner[65];
    if (!strcmp(rest, "interactions")) {
        *rid = R_CREATE;
        if (strcmp(method, "POST")) return cst_api_error(c, E_NOT_FOUND, "no route for %s %s", method, url);
        if (!cst_api_auth(s, c, owner, &ret)) return ret;
        if (atomic_load(&s->draining)) return cst_api_error(c, E_UNAVAILABLE, "the server is shutting down");
        return cst_route_create(s, c, cs, owner);
    }
    if (!strncmp(rest, "interactions/", 13)) {
        char id[128];
        const char *p = rest + 13;
        size_t n = strcspn(p, "/:");
        if (n == 0 || n >= sizeof id) return cst_api_error(c, E_NOT_FOUND, "interaction not found");
        memcpy(id, p, n);
        id[n] = 0;
        const char *tail = p + n;
        if (!strcmp(tail, "/cancel") || !strcmp(tail, ":cancel")) {
            *rid = R_CANCEL;
            if (strcmp(method, "POST")) return cst_api_error(c, E_NOT_FOUND, "no route for %s %s", method, url);
            if (!cst_api_auth(s, c, owner, &ret)) return ret;
            return cst_route_cancel(s, c, cs, owner, id);
        }
        if (*tail) return cst_api_error(c, E_NOT_FOUND, "no route for %s %s", method, url);
        if (!strcmp(method, "GET")) {
            *rid = R_GET;
            if (!cst_api_auth(s, c, owner, &ret)) return ret;
            return cst_route_get(s, c, cs, owner, id);
        }
        if (!strcmp(method, "DELETE")) {
            *rid = R_DELETE;
            if (!cst_api_auth(s, c, owner, &ret)) return ret;
            return cst_route_delete(s, c, cs, owner, id);
        }
        return cst_api_error(c, E_NOT_FOUND, "no route for %s %s", method, url);
    }
    return cst_api_error(c, E_NOT_FOUND, "no route for %s %s", method, url);
}

/* Status of the response queued on c, for metrics. */
static int queued_status(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_HTTP_STATUS);
    return ci ? (int)ci->http_status : 0;
}

/* ---- parked connections ------------------------------------------------- */

void cst_park_conn(cst_server *s, cst_park *p, double wake_at) {
    pthread_mutex_lock(&s->park_mu);
    p->wake_at = wake_at;
    if (!p->parked) {
        p->parked = true;
        p->prev = NULL;
        p->next = s->parked;
        if (s->parked) s->parked->prev = p;
        s->parked = p;
        s->n_parked++;
        MHD_suspend_connection(p->c);
    }
    if (wake_at > 0 && wake_at < s->park_next) pthread_cond_signal(&s->park_cv); /* due before the ticker wakes */
    pthread_mutex_unlock(&s->park_mu);
}

static void unlink_locked(cst_server *s, cst_park *p) {
    if (p->prev) p->prev->next = p->next;
    else s->parked = p->next;
    if (p->next) p->next->prev = p->prev;
    p->prev = p->next = NULL;
    p->parked = false;
    s->n_parked--;
}

void cst_unpark(cst_server *s, cst_park *p) {
    pthread_mutex_lock(&s->park_mu);
    if (p->parked) {
        unlink_locked(s, p);
        MHD_resume_connection(p->c);
    }
    pthread_mutex_unlock(&s->park_mu);
}

void cst_park_forget(cst_server *s, cst_park *p) {
    pthread_mutex_lock(&s->park_mu);
    if (p->parked) unlink_locked(s, p);
    pthread_mutex_unlock(&s->park_mu);
}

/* Resume every parked connection whose wake_at has come or whose client hung
 * up (one poll(2) over all their sockets); with all, every one. park_mu
 * held. Returns the earliest wake_at left (or `until`). */
static double wake_due_locked(cst_server *s, bool all, struct pollfd **fds, size_t *cap, double until) {
    const double now = cst_time_now();
    if (*cap < s->n_parked) {
        struct pollfd *nf = realloc(*fds, s->n_parked * sizeof *nf);
        if (nf) {
            *fds = nf;
            *cap = s->n_parked;
        }
    }
    size_t n = 0;
    for (cst_park *p = s->parked; p && n < *cap; p = p->next)
        (*fds)[n++] = (struct pollfd){.fd = p->fd, .events = POLLIN | POLLRDHUP};
    if (n > 0 && poll(*fds, n, 0) < 0) n = 0;
    size_t i = 0;
    for (cst_park *p = s->parked, *nx; p; p = nx) {
        nx = p->next;
        const short ev = i < n ? (*fds)[i].revents : 0;
        i++;
        const bool gone = ev && cst_api_client_gone(p->fd);
        if (all || gone || (p->wake_at > 0 && now >= p->wake_at)) {
            unlink_locked(s, p);
            MHD_resume_connection(p->c);
        } else if (p->wake_at > 0 && p->wake_at < until) {
            until = p->wake_at;
        }
    }
    return until;
}

/* The ticker: keep-alive comments (at each parked connection's wake_at) and
 * hang-ups (every CST_PARK_TICK_S) of parked connections, whose sockets are
 * out of MHD's epoll set while suspended. */
static void *ticker(void *arg) {
    cst_server *s = arg;
    struct pollfd *fds = NULL;
    size_t cap = 0;
    pthread_mutex_lock(&s->park_mu);
    while (!atomic_load(&s->ticker_stop)) {
        const double next = wake_due_locked(s, false, &fds, &cap, cst_time_now() + CST_PARK_TICK_S);
        s->park_next = next;
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        const double w = CST_MAX(0.001, next - cst_time_now());
        dl.tv_sec += (time_t)w;
        dl.tv_nsec += (long)((w - (double)(time_t)w) * 1e9);
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->park_cv, &s->park_mu, &dl);
    }
    pthread_mutex_unlock(&s->park_mu);
    free(fds);
    return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **con_cls) {
    (void)version;
    cst_server *s = cls;
    conn *cs = *con_cls;
    if (!cs) {
        cs = calloc(1, sizeof *cs);
        if (!cs) return MHD_NO;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        cs->fd = ci ? ci->connect_fd : -1;
        cs->t_start = cst_time_now();
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->p.max_body) cs->too_large = true;
        *con_cls = cs;
        /* the head's limits and framing were checked before MHD read it
         * (http_guard.c): 414, 431, Content-Length / Transfer-Encoding */
        cst_files_conn_begin(s, c, cs, url, method); /* upload chunks stream to disk */
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        /* a body trickling in (slowloris): the idle timeout bounds the gaps,
         * this bounds the whole upload */
        if (s->p.body_timeout_s > 0 && cst_time_now() - cs->t_start > s->p.body_timeout_s) {
            cst_warn("closing a connection whose request body took over %g s", s->p.body_timeout_s);
            return MHD_NO;
        }
        if (cs->upload) {
            cst_files_conn_data(s, cs, upload_data, n);
            return MHD_YES;
        }
        if (cs->too_large || cs->len + n > s->p.max_body) {
            cs->too_large = true;
            free(cs->body);
            cs->body = NULL;
            cs->len = cs->cap = 0;
            return MHD_YES;
        }
        if (cs->len + n + 1 > cs->cap) {
            size_t nc = CST_MAX(cs->cap * 2, cs->len + n + 1);
            char *nb = realloc(cs->body, nc);
            if (!nb) return MHD_NO;
            cs->body = nb;
            cs->cap = nc;
        }
        memcpy(cs->body + cs->len, upload_data, n);
        cs->len += n;
        cs->body[cs->len] = 0;
        return MHD_YES;
    }
    /* a parked request counts as a handler until it answers (drain) */
    if (!cs->wait && !cs->retry) atomic_fetch_add(&s->n_handlers, 1);
    route_id rid = (route_id)cs->rid;
    enum MHD_Result ret;
    if (cs->retry && cst_api_client_gone(cs->fd)) { /* hung up while parked to run again */
        cs->retry = false;
        atomic_fetch_sub(&s->n_handlers, 1);
        return MHD_NO;
    }
    cs->retry = false; /* set again by a handler that parks to run again */
    if (cs->wait) { /* a parked unary create, resumed */
        err_style es = cst_api_get_err_style();
        cst_api_set_err_style((err_style)cs->wait_style);
        ret = cst_route_resume(s, c, cs);
        cst_api_set_err_style(es);
    } else {
        cs->pk.c = c;
        cs->pk.fd = cs->fd;
        ret = dispatch(s, c, cs, url, method, &rid);
        cs->rid = (int)rid;
    }
    if (!cs->wait && !cs->retry) { /* answered (a parked request answers when resumed) */
        int st = queued_status(c);
        cst_metrics_request(rid, st ? st : 200);
        cst_debug("%s %s -> %d", method, url, st);
        atomic_fetch_sub(&s->n_handlers, 1);
    }
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)toe;
    cst_http_guard_completed(c); /* a bad request pipelined behind this one is answered now */
    conn *cs = *con_cls;
    if (cs) {
        cst_route_resume_end(cls, cs);
        if (cs->retry) {
            cst_park_forget(cls, &cs->pk);
            atomic_fetch_sub(&((cst_server *)cls)->n_handlers, 1);
        }
        cst_files_conn_end(cls, cs);
        free(cs->body);
        free(cs);
        *con_cls = NULL;
    }
}

/* ---- start / stop ------------------------------------------------------- */

static cst_status load_models(cst_server *s, char *err, size_t errlen) {
    s->models = calloc(s->p.n_models, sizeof *s->models);
    if (!s->models) return CST_ERR_NOMEM;
    for (size_t i = 0; i < s->p.n_models; i++) {
        smodel *sm = &s->models[i];
        sm->path = strdup(s->p.models[i]);
        sm->stem = file_stem(s->p.models[i]);
        if (!sm->path || !sm->stem) return CST_ERR_NOMEM;
        s->n_models = i + 1;
        cst_status st = cst_model_load(sm->path, NULL, &sm->m, err, errlen);
        if (st) return st;
        char cerr[600];
        st = cst_chat_model_init(&sm->chat, cst_model_vocab(sm->m), cst_model_chat_template(sm->m),
                                 s->p.chat_templates ? s->p.chat_templates[i] : NULL,
                                 s->p.thinking_budgets ? s->p.thinking_budgets[i] : NULL,
                                 s->p.thinking_levels ? s->p.thinking_levels[i] : NULL, cerr, sizeof cerr);
        if (st) {
            cst_errf(err, errlen, "model %s: %s", sm->path, cerr);
            return st;
        }
        const cst_vocab *voc = cst_model_vocab(sm->m);
        sm->max_piece = 4; /* an unknown character (<unk>) is at most 4 bytes */
        for (cst_token t = 0; t < cst_vocab_n_tokens(voc); t++)
            sm->max_piece = CST_MAX(sm->max_piece, cst_vocab_text_view(voc, t).len);
        cst_sched_params sp = cst_sched_default_params();
        if (s->p.n_ctx > 0) sp.n_ctx = s->p.n_ctx;
        if (s->p.n_slots > 0) sp.n_slots = s->p.n_slots;
        if (s->p.max_queue > 0) sp.max_queue = s->p.max_queue;
        sp.cache_bytes = s->p.kv_cache_bytes;
        sp.n_threads = s->p.n_threads;
        st = cst_sched_new(sm->m, &sp, &sm->sched, err, errlen);
        if (st) return st;
        pthread_mutex_init(&sm->vision_mu, NULL);
        if (s->p.mmprojs && s->p.mmprojs[i]) {
            char verr[512];
            st = cst_vision_load(s->p.mmprojs[i], &sm->vision, verr, sizeof verr);
            if (st) {
                cst_errf(err, errlen, "--mmproj %s: %s", s->p.mmprojs[i], verr);
                return st;
            }
            if (cst_vision_n_embd(sm->vision) != cst_model_n_embd(sm->m)) {
                cst_errf(err, errlen, "--mmproj %s: the projector's embeddings have width %d, model %s takes %d",
                         s->p.mmprojs[i], cst_vision_n_embd(sm->vision), sm->stem, cst_model_n_embd(sm->m));
                return CST_ERR_INVALID_ARG;
            }
            /* the encoder's own threads (the engine's pool belongs to the
             * engine thread); they sleep between images */
            const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
            sm->vision_pool = cst_pool_new(s->p.n_threads > 0 ? s->p.n_threads : (int)CST_MAX(1, ncpu));
            if (!sm->vision_pool) {
                cst_errf(err, errlen, "--mmproj %s: cannot start the encoder's threads", s->p.mmprojs[i]);
                return CST_ERR_NOMEM;
            }
            cst_info("model %s: vision projector %s (%s, %d tokens per image)", sm->stem, s->p.mmprojs[i],
                     cst_vision_projector(sm->vision), cst_vision_n_tokens(sm->vision));
        }
        char cdesc[256];
        cst_chat_model_describe(&sm->chat, cdesc, sizeof cdesc);
        cst_info("model %s: %s, %d positions x %d slots, %s", sm->stem, cst_model_desc(sm->m),
                 cst_sched_n_ctx(sm->sched), sp.n_slots, cdesc);
    }
    s->aliases = calloc(s->p.n_aliases ? s->p.n_aliases : 1, sizeof *s->aliases);
    if (!s->aliases) return CST_ERR_NOMEM;
    for (size_t i = 0; i < s->p.n_aliases; i++) {
        const char *a = s->p.aliases[i];
        const char *eq = strchr(a, '=');
        if (!eq || eq == a || !eq[1]) {
            cst_errf(err, errlen, "--alias %s: expected NAME=MODEL", a);
            return CST_ERR_INVALID_ARG;
        }
        int found = -1;
        char *stem = file_stem(eq + 1);
        for (size_t k = 0; k < s->n_models && stem; k++)
            if (!strcmp(s->models[k].path, eq + 1) || !strcmp(s->models[k].stem, stem)) found = (int)k;
        free(stem);
        if (found < 0) {
            cst_errf(err, errlen, "--alias %s: no model %s is served (give it with -m)", a, eq + 1);
            return CST_ERR_INVALID_ARG;
        }
        s->aliases[i].name = strndup(a, (size_t)(eq - a));
        s->aliases[i].model = found;
        s->n_aliases = i + 1;
        if (!s->aliases[i].name) return CST_ERR_NOMEM;
    }
    return CST_OK;
}

static void log_mhd(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char b[512];
    vsnprintf(b, sizeof b, fmt, ap);
    size_t n = strlen(b);
    while (n && b[n - 1] == '\n') b[--n] = 0;
    cst_debug("mhd: %s", b);
}

/* Interactions recorded as queued or in_progress when the server stopped
 * (kill -9, power loss, a crash) become failed, saying why, so that a GET
 * of an id the server returned never 404s nor shows a run that will never
 * end: a foreground run (its client is gone) and a background one that had
 * shown output (a client may have seen part of an answer that a second run
 * would contradict). A background job with no output is left queued: it
 * runs again once the server serves (cst_queue_resume, SQLite). */
static cst_status recover_unfinished(cst_server *s, char *err, size_t errlen) {
    char now_s[32];
    const int64_t now = (int64_t)time(NULL);
    cst_time_rfc3339(now, now_s);
    json_t *e = json_pack("[{s:s,s:s+}]", "code", "internal", "message",
                          "the server stopped before this interaction finished (a foreground run's client was gone; a "
                          "background run had shown output that a client may have seen, so it is not run again); it "
                          "was marked failed when the server restarted at ",
                          now_s);
    json_t *u = json_pack("{s:i,s:i,s:i,s:i,s:i,s:i}", "total_input_tokens", 0, "total_cached_tokens", 0,
                          "total_output_tokens", 0, "total_thought_tokens", 0, "total_tool_use_tokens", 0,
                          "total_tokens", 0);
    char *es = e ? json_dumps(e, JSON_COMPACT) : NULL, *us = u ? json_dumps(u, JSON_COMPACT) : NULL;
    json_decref(e);
    json_decref(u);
    int64_t n = 0;
    cst_status st = es && us ? cst_store_fail_unfinished(s->store, now, es, us, &n) : CST_ERR_NOMEM;
    free(es);
    free(us);
    if (st == CST_ERR_UNSUPPORTED) {
        if (cst_store_live(s->store)) /* replicas: a run whose replica stopped is taken over when its lease expires */
            return CST_OK;
        cst_warn("store %s: no start-up recovery of interrupted interactions", s->store->ops->name);
        return CST_OK;
    }
    if (st) {
        cst_errf(err, errlen, "store: marking interrupted interactions failed: %s",
                 st == CST_ERR_NOMEM ? "out of memory" : s->store->err);
        return st;
    }
    if (n > 0) cst_warn("store: %lld interactions were interrupted by the last stop; marked failed", (long long)n);
    return CST_OK;
}

cst_status cst_server_start(const cst_server_params *pp, cst_server **out, char *err, size_t errlen) {
    *out = NULL;
    cst_server *s = calloc(1, sizeof *s);
    if (!s) return CST_ERR_NOMEM;
    s->p = *pp;
    s->t_start = cst_time_now();
    cst_metrics_cache_source("image", "image embeddings", cst_media_cache_stats);
    cst_metrics_cache_source("document", "extracted documents", cst_docs_cache_stats);
    pthread_mutex_init(&s->runs_mu, NULL);
    pthread_cond_init(&s->runs_cv, NULL);
    pthread_mutex_init(&s->park_mu, NULL);
    pthread_cond_init(&s->park_cv, NULL);
    snprintf(s->host, sizeof s->host, "%s", pp->host ? pp->host : "127.0.0.1");
    snprintf(s->prefix, sizeof s->prefix, "%s", pp->prefix ? pp->prefix : "");
    size_t pl = strlen(s->prefix);
    while (pl && s->prefix[pl - 1] == '/') s->prefix[--pl] = 0;
    if (s->p.max_body == 0) s->p.max_body = 100u << 20;
    cst_status st = CST_OK;
    if (pp->n_models == 0) {
        cst_errf(err, errlen, "no model given (-m MODEL)");
        st = CST_ERR_INVALID_ARG;
        goto fail;
    }
    if (pp->no_auth) {
        if (!is_loopback(s->host)) {
            cst_errf(err, errlen, "--no-auth is only allowed on a loopback address (not %s)", s->host);
            st = CST_ERR_INVALID_ARG;
            goto fail;
        }
    } else {
        if (!pp->api_keys_file) {
            cst_errf(err, errlen, "give --api-keys FILE (or --no-auth on a loopback address)");
            st = CST_ERR_INVALID_ARG;
            goto fail;
        }
        st = cst_api_load_keys(s, pp->api_keys_file, err, errlen);
        if (st) goto fail;
    }
    char dbpath[4096];
    const char *url = pp->store_url;
    if (!url) {
        const char *dd = pp->data_dir ? pp->data_dir : "data";
        if (mkdir(dd, 0700) != 0 && errno != EEXIST) {
            cst_errf(err, errlen, "cannot create the data directory %s: %s", dd, strerror(errno));
            st = CST_ERR_IO;
            goto fail;
        }
        snprintf(dbpath, sizeof dbpath, "%s/castor.db", dd);
        url = dbpath;
    }
    st = cst_store_open(url, &s->store, err, errlen);
    if (st) goto fail;
    st = recover_unfinished(s, err, errlen);
    if (st) goto fail;
    if (!pp->signature_key && !getenv("CASTOR_SIGNATURE_KEY"))
        (void)mkdir(pp->data_dir ? pp->data_dir : "data", 0700); /* the generated key lives there */
    st = cst_sig_load_key(pp->signature_key, pp->data_dir ? pp->data_dir : "data", s->sig_key, err, errlen);
    if (st) goto fail;
    st = load_models(s, err, errlen);
    if (st) goto fail;
    st = cst_files_open(s, err, errlen);
    if (st) goto fail;
    st = cst_queue_start(s, err, errlen); /* replicas on a shared store (queue.c) */
    if (st) goto fail;

    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    struct sockaddr *sa;
    bool v6 = strchr(s->host, ':') != NULL;
    char hb[256];
    snprintf(hb, sizeof hb, "%s", s->host);
    if (hb[0] == '[') {
        memmove(hb, hb + 1, strlen(hb));
        char *e = strchr(hb, ']');
        if (e) *e = 0;
    }
    if (!strcmp(hb, "localhost")) snprintf(hb, sizeof hb, "127.0.0.1");
    if (v6) {
        memset(&a6, 0, sizeof a6);
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)pp->port);
        if (inet_pton(AF_INET6, hb, &a6.sin6_addr) != 1) goto badhost;
        sa = (struct sockaddr *)&a6;
    } else {
        memset(&a4, 0, sizeof a4);
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)pp->port);
        if (inet_pton(AF_INET, hb, &a4.sin_addr) != 1) goto badhost;
        sa = (struct sockaddr *)&a4;
    }
    /* descriptors: a connection takes one (and a thread); the store, models,
     * uploads and the listening socket need some more. Raise the soft limit
     * to fit, else connect fewer (new ones wait in the backlog, never crash) */
    unsigned max_conn = (unsigned)(pp->max_connections > 0 ? pp->max_connections : 1024);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        const rlim_t want = (rlim_t)max_conn + 64;
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
            rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
            (void)setrlimit(RLIMIT_NOFILE, &rl);
            (void)getrlimit(RLIMIT_NOFILE, &rl);
        }
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
            const unsigned fit = rl.rlim_cur > 96 ? (unsigned)(rl.rlim_cur - 64) : 32;
            cst_warn("the descriptor limit (%llu) holds %u connections, not %u (raise ulimit -n)",
                     (unsigned long long)rl.rlim_cur, fit, max_conn);
            max_conn = fit;
        }
    }
    /* epoll, a few worker threads; waits park (suspend) their connection */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
    const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    const unsigned n_workers = (unsigned)CST_MIN(CST_HTTP_THREADS_MAX, CST_MAX(CST_HTTP_THREADS_MIN, ncpu));
    if (pthread_create(&s->ticker, NULL, ticker, s) != 0) {
        cst_errf(err, errlen, "cannot start the connection ticker thread");
        st = CST_ERR_NOMEM;
        goto fail;
    }
    s->ticker_started = true;
    if (!cst_http_guard_init()) {
        cst_errf(err, errlen, "out of memory (the connection table)");
        st = CST_ERR_NOMEM;
        goto fail;
    }
    s->mhd = MHD_start_daemon(flags, (uint16_t)pp->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, sa,
                              MHD_OPTION_THREAD_POOL_SIZE, n_workers,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION,
                              cst_http_guard_notify, NULL, MHD_OPTION_CONNECTION_TIMEOUT,
                              (unsigned)(pp->idle_timeout_s > 0 ? pp->idle_timeout_s : 0),
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CST_CONN_MEMORY, MHD_OPTION_CONNECTION_LIMIT, max_conn,
                              MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                              (unsigned)(pp->max_connections_per_ip > 0 ? pp->max_connections_per_ip : 0),
                              MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_EXTERNAL_LOGGER, log_mhd,
                              NULL, MHD_OPTION_END);
    if (!s->mhd) {
        cst_errf(err, errlen, "cannot listen on %s:%d (address in use?)", s->host, pp->port);
        st = CST_ERR_IO;
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : pp->port;
    st = cst_queue_resume(s, err, errlen); /* one process: background jobs the last stop left run again */
    if (st) goto fail;
    *out = s;
    return CST_OK;
badhost:
    cst_errf(err, errlen, "--host %s: not an IP address", s->host);
    st = CST_ERR_INVALID_ARG;
fail:
    cst_server_free(s);
    return st;
}

void cst_server_drain(cst_server *s, double timeout_s) {
    if (!s || !s->mhd) return;
    atomic_store(&s->draining, true);
    MHD_socket ls = MHD_quiesce_daemon(s->mhd);
    if (ls != MHD_INVALID_SOCKET) close(ls);
    double t0 = cst_time_now();
    pthread_mutex_lock(&s->runs_mu);
    while (s->n_runs > 0 && cst_time_now() - t0 < timeout_s) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_nsec += 100 * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->runs_cv, &s->runs_mu, &dl);
    }
    pthread_mutex_unlock(&s->runs_mu);
    if (s->n_runs > 0) cst_info("drain: cancelling %d running interactions", s->n_runs);
    cst_runs_cancel_all(s);
    pthread_mutex_lock(&s->runs_mu);
    while (s->n_runs > 0) pthread_cond_wait(&s->runs_cv, &s->runs_mu);
    pthread_mutex_unlock(&s->runs_mu);
    /* let waiting handlers answer and SSE writers send their last events
     * (interaction.completed, [DONE]) before the daemon stops */
    double t1 = cst_time_now();
    while ((atomic_load(&s->n_handlers) > 0 || atomic_load(&s->n_writers) > 0) && cst_time_now() - t1 < 5.0)
        usleep(10000);
}

void cst_server_free(cst_server *s) {
    if (!s) return;
    cst_queue_stop(s); /* no more claims or renewals (a drain kept renewing while runs finished) */
    if (s->ticker_started) {
        pthread_mutex_lock(&s->park_mu);
        atomic_store(&s->ticker_stop, true);
        pthread_cond_signal(&s->park_cv);
        pthread_mutex_unlock(&s->park_mu);
        pthread_join(s->ticker, NULL);
    }
    if (s->mhd) {
        cst_runs_cancel_all(s);
        pthread_mutex_lock(&s->runs_mu);
        while (s->n_runs > 0) pthread_cond_wait(&s->runs_cv, &s->runs_mu);
        pthread_mutex_unlock(&s->runs_mu);
        /* no connection may stay suspended when the daemon stops (MHD) */
        struct pollfd *fds = NULL;
        size_t cap = 0;
        pthread_mutex_lock(&s->park_mu);
        wake_due_locked(s, true, &fds, &cap, 0);
        pthread_mutex_unlock(&s->park_mu);
        free(fds);
        MHD_stop_daemon(s->mhd);
    }
    for (size_t i = 0; i < s->n_models; i++) {
        cst_sched_free(s->models[i].sched);
        cst_model_free(s->models[i].m);
        cst_chat_model_free(&s->models[i].chat);
        cst_vision_free(s->models[i].vision);
        cst_pool_free(s->models[i].vision_pool);
        if (s->models[i].sched) pthread_mutex_destroy(&s->models[i].vision_mu);
        free(s->models[i].path);
        free(s->models[i].stem);
    }
    free(s->models);
    for (size_t i = 0; i < s->n_aliases; i++) free(s->aliases[i].name);
    free(s->aliases);
    free(s->key_hashes);
    cst_queue_free(s);
    cst_files_close(s->files);
    cst_store_close(s->store);
    pthread_mutex_destroy(&s->runs_mu);
    pthread_cond_destroy(&s->runs_cv);
    pthread_mutex_destroy(&s->park_mu);
    pthread_cond_destroy(&s->park_cv);
    free(s);
}
