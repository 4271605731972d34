/* metrics.c: process-wide counters and histograms for GET /metrics in the
 * Prometheus text format: requests by route and status, errors by code,
 * tokens in/out/cached, cache hits, queue depth and active requests per
 * model, time-to-first-token and per-token latency histograms.
 */
#include "api_int.h"

#include <stdio.h>
#include <string.h>

static const char *route_names[R_LAST] = {"create", "get", "delete", "cancel", "models", "health", "metrics", "other"};
static const int codes[] = {200, 400, 401, 403, 404, 413, 429, 500, 503, 504};
#define N_CODES (sizeof codes / sizeof codes[0])

static const double ttft_b[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
static const double tok_b[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
#define N_TTFT (sizeof ttft_b / sizeof ttft_b[0])
#define N_TOK (sizeof tok_b / sizeof tok_b[0])

static struct {
    pthread_mutex_t mu;
    uint64_t req[R_LAST][N_CODES + 1]; /* last: other codes */
    uint64_t errors[E_KIND_LAST];
    uint64_t tok_in, tok_cached, tok_out, cache_hits;
    uint64_t ttft_n[N_TTFT + 1], tok_n[N_TOK + 1];
    double ttft_sum, tok_sum;
    uint64_t ttft_count, tok_count;
    struct {
        const char *name, *what;
        cst_metrics_cache_fn fn;
    } caches[4];
    size_t n_caches;
} M = {.mu = PTHREAD_MUTEX_INITIALIZER};

void cst_metrics_cache_source(const char *name, const char *what, cst_metrics_cache_fn fn) {
    pthread_mutex_lock(&M.mu);
    size_t i = 0;
    while (i < M.n_caches && strcmp(M.caches[i].name, name)) i++;
    if (i < CST_ARRAY_LEN(M.caches)) {
        M.caches[i].name = name;
        M.caches[i].what = what;
        M.caches[i].fn = fn;
        if (i == M.n_caches) M.n_caches++;
    }
    pthread_mutex_unlock(&M.mu);
}

void cst_metrics_request(route_id r, int http_status) {
    size_t i = 0;
    while (i < N_CODES && codes[i] != http_status) i++;
    pthread_mutex_lock(&M.mu);
    M.req[r][i]++;
    pthread_mutex_unlock(&M.mu);
}

void cst_metrics_error(ekind k) {
    pthread_mutex_lock(&M.mu);
    M.errors[k]++;
    pthread_mutex_unlock(&M.mu);
}

void cst_metrics_tokens(int64_t in, int64_t cached, int64_t out, bool hit) {
    pthread_mutex_lock(&M.mu);
    M.tok_in += (uint64_t)in;
    M.tok_cached += (uint64_t)cached;
    M.tok_out += (uint64_t)out;
    M.cache_hits += hit;
    pthread_mutex_unlock(&M.mu);
}

static void observe(uint64_t *n, const double *b, size_t nb, double v) {
    size_t i = 0;
    while (i < nb && v > b[i]) i++;
    n[i]++;
}

void cst_metrics_ttft(double s) {
    pthread_mutex_lock(&M.mu);
    observe(M.ttft_n, ttft_b, N_TTFT, s);
    M.ttft_sum += s;
    M.ttft_count++;
    pthread_mutex_unlock(&M.mu);
}

void cst_metrics_token_latency(double s) {
    pthread_mutex_lock(&M.mu);
    observe(M.tok_n, tok_b, N_TOK, s);
    M.tok_sum += s;
    M.tok_count++;
    pthread_mutex_unlock(&M.mu);
}

typedef struct {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t nc = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *np = realloc(b->p, nc);
        if (!np) return;
        b->p = np;
        b->cap = nc;
    }
}

static void histo(sbuf *b, const char *name, const char *help, const uint64_t *n, const double *bk, size_t nb,
                  double sum, uint64_t count) {
    sb_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t acc = 0;
    for (size_t i = 0; i < nb; i++) {
        acc += n[i];
        sb_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, bk[i], (unsigned long long)acc);
    }
    acc += n[nb];
    sb_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, (unsigned long long)acc, name,
              sum, name, (unsigned long long)count);
}

char *cst_metrics_render(cst_server *s) {
    sbuf b = {0};
    pthread_mutex_lock(&M.mu);
    sb_printf(&b, "# HELP castor_requests_total HTTP requests by route and status code.\n"
                  "# TYPE castor_requests_total counter\n");
    for (int r = 0; r < R_LAST; r++)
        for (size_t i = 0; i <= N_CODES; i++)
            if (M.req[r][i]) {
                if (i < N_CODES)
                    sb_printf(&b, "castor_requests_total{route=\"%s\",code=\"%d\"} %llu\n", route_names[r], codes[i],
                              (unsigned long long)M.req[r][i]);
                else
                    sb_printf(&b, "castor_requests_total{route=\"%s\",code=\"other\"} %llu\n", route_names[r],
                              (unsigned long long)M.req[r][i]);
            }
    sb_printf(&b, "# HELP castor_errors_total Error replies by error code.\n# TYPE castor_errors_total counter\n");
    for (int k = 0; k < E_KIND_LAST; k++)
        if (M.errors[k])
            sb_printf(&b, "castor_errors_total{code=\"%s\",http=\"%d\"} %llu\n", cst_api_ekind_code(k),
                      cst_api_ekind_http(k), (unsigned long long)M.errors[k]);
    sb_printf(&b,
              "# HELP castor_input_tokens_total Prompt tokens of finished interactions.\n"
              "# TYPE castor_input_tokens_total counter\ncastor_input_tokens_total %llu\n"
              "# HELP castor_cached_tokens_total Prompt tokens served from the KV cache.\n"
              "# TYPE castor_cached_tokens_total counter\ncastor_cached_tokens_total %llu\n"
              "# HELP castor_output_tokens_total Generated tokens.\n"
              "# TYPE castor_output_tokens_total counter\ncastor_output_tokens_total %llu\n"
              "# HELP castor_cache_hits_total Interactions that reused cached prompt tokens.\n"
              "# TYPE castor_cache_hits_total counter\ncastor_cache_hits_total %llu\n",
              (unsigned long long)M.tok_in, (unsigned long long)M.tok_cached, (unsigned long long)M.tok_out,
              (unsigned long long)M.cache_hits);
    histo(&b, "castor_time_to_first_token_seconds", "Seconds from request to the first generated token.", M.ttft_n,
          ttft_b, N_TTFT, M.ttft_sum, M.ttft_count);
    histo(&b, "castor_token_latency_seconds", "Seconds between consecutive generated tokens.", M.tok_n, tok_b, N_TOK,
          M.tok_sum, M.tok_count);
    pthread_mutex_unlock(&M.mu);
    if (s->store) { /* the store: operation latency, failures, connection pool */
        cst_store_stats ss;
        cst_store_stats_get(s->store, &ss);
        sb_printf(&b,
                  "# HELP castor_store_op_seconds Time of store operations (including waits for a connection).\n"
                  "# TYPE castor_store_op_seconds summary\n"
                  "castor_store_op_seconds_sum{backend=\"%s\"} %.6f\ncastor_store_op_seconds_count{backend=\"%s\"} %llu\n"
                  "# HELP castor_store_op_max_seconds Slowest store operation since start.\n"
                  "# TYPE castor_store_op_max_seconds gauge\ncastor_store_op_max_seconds %.6f\n"
                  "# HELP castor_store_errors_total Store operations that failed (database unreachable or refused).\n"
                  "# TYPE castor_store_errors_total counter\ncastor_store_errors_total %llu\n"
                  "# HELP castor_store_pool_connections Store connections: size (max), open, busy.\n"
                  "# TYPE castor_store_pool_connections gauge\n"
                  "castor_store_pool_connections{state=\"size\"} %d\ncastor_store_pool_connections{state=\"open\"} %d\n"
                  "castor_store_pool_connections{state=\"busy\"} %d\n"
                  "# HELP castor_store_pool_waits_total Store operations that waited for a free connection.\n"
                  "# TYPE castor_store_pool_waits_total counter\ncastor_store_pool_waits_total %llu\n"
                  "# HELP castor_store_reconnects_total Store connections reopened after the first.\n"
                  "# TYPE castor_store_reconnects_total counter\ncastor_store_reconnects_total %llu\n",
                  s->store->ops->name, ss.op_seconds, s->store->ops->name, (unsigned long long)ss.ops,
                  ss.op_max_seconds, (unsigned long long)ss.errors, ss.pool_size, ss.pool_open, ss.pool_busy,
                  (unsigned long long)ss.pool_waits, (unsigned long long)ss.reconnects);
    }
    char qm[1024]; /* replicas: the shared queue (queue.c) */
    cst_queue_metrics(s, qm, sizeof qm);
    sb_printf(&b, "%s", qm);
    sb_printf(&b, "# HELP castor_queue_depth Requests waiting for an engine slot.\n# TYPE castor_queue_depth gauge\n");
    for (size_t i = 0; i < s->n_models; i++)
        sb_printf(&b, "castor_queue_depth{model=\"%s\"} %d\n", s->models[i].stem,
                  cst_sched_queue_depth(s->models[i].sched));
    sb_printf(&b, "# HELP castor_active_sequences Requests holding an engine slot.\n"
                  "# TYPE castor_active_sequences gauge\n");
    for (size_t i = 0; i < s->n_models; i++)
        sb_printf(&b, "castor_active_sequences{model=\"%s\"} %d\n", s->models[i].stem,
                  cst_sched_active(s->models[i].sched));
    /* host-memory KV snapshots (sched.c, --cache-ram); one group per family */
    static const char *const kv_fam[4][3] = {
        {"castor_kv_snapshots", "gauge", "KV snapshots of evicted conversations held in host memory."},
        {"castor_kv_snapshot_bytes", "gauge", "Host memory held by KV snapshots."},
        {"castor_kv_snapshot_restores_total", "counter", "Admissions whose prompt prefix came from a KV snapshot."},
        {"castor_kv_snapshot_evictions_total", "counter", "KV snapshots dropped to stay within --cache-ram."}};
    for (int f = 0; f < 4; f++) {
        sb_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", kv_fam[f][0], kv_fam[f][2], kv_fam[f][0], kv_fam[f][1]);
        for (size_t i = 0; i < s->n_models; i++) {
            cst_sched_stats ks = cst_sched_get_stats(s->models[i].sched);
            const uint64_t v[4] = {ks.n_snapshots, ks.snapshot_bytes, ks.n_snapshot_restores, ks.n_snapshot_evictions};
            sb_printf(&b, "%s{model=\"%s\"} %llu\n", kv_fam[f][0], s->models[i].stem, (unsigned long long)v[f]);
        }
    }
    /* the engine thread's busy time: forward passes, and the serving loop
     * around them (sampling is a part of host) */
    static const char *const eng_fam[3][2] = {
        {"castor_engine_decode_seconds_total", "Engine thread time in forward passes."},
        {"castor_engine_host_seconds_total",
         "Engine thread time around the forward passes: admission, batching, sampling, detokenizing, stops, events."},
        {"castor_engine_sample_seconds_total", "Engine thread time in the sampler (part of host)."}};
    for (int f = 0; f < 3; f++) {
        sb_printf(&b, "# HELP %s %s\n# TYPE %s counter\n", eng_fam[f][0], eng_fam[f][1], eng_fam[f][0]);
        for (size_t i = 0; i < s->n_models; i++) {
            cst_sched_stats ks = cst_sched_get_stats(s->models[i].sched);
            const double v[3] = {ks.decode_seconds, ks.host_seconds, ks.sample_seconds};
            sb_printf(&b, "%s{model=\"%s\"} %.6f\n", eng_fam[f][0], s->models[i].stem, v[f]);
        }
    }
    pthread_mutex_lock(&s->runs_mu);
    int nr = s->n_runs;
    pthread_mutex_unlock(&s->runs_mu);
    sb_printf(&b, "# HELP castor_inflight_interactions Interactions running now.\n"
                  "# TYPE castor_inflight_interactions gauge\ncastor_inflight_interactions %d\n", nr);
    pthread_mutex_lock(&s->park_mu);
    const size_t np = s->n_parked;
    pthread_mutex_unlock(&s->park_mu);
    sb_printf(&b, "# HELP castor_parked_connections Connections waiting without a thread (streams with nothing to "
                  "send, unary creates waiting for their run).\n"
                  "# TYPE castor_parked_connections gauge\ncastor_parked_connections %zu\n", np);
    sb_printf(&b, "# HELP castor_uptime_seconds Seconds since start.\n# TYPE castor_uptime_seconds gauge\n"
                  "castor_uptime_seconds %.0f\n", cst_time_now() - s->t_start);
    pthread_mutex_lock(&M.mu);
    const size_t n_caches = M.n_caches;
    pthread_mutex_unlock(&M.mu);
    for (size_t i = 0; i < n_caches; i++) { /* registered once at start, never removed */
        uint64_t h = 0, m = 0, by = 0, e = 0;
        M.caches[i].fn(&h, &m, &by, &e);
        const char *n = M.caches[i].name, *w = M.caches[i].what;
        sb_printf(&b,
                  "# HELP castor_%s_cache_hits_total Uses of %s served from the cache.\n"
                  "# TYPE castor_%s_cache_hits_total counter\ncastor_%s_cache_hits_total %llu\n"
                  "# HELP castor_%s_cache_misses_total Uses of %s computed anew.\n"
                  "# TYPE castor_%s_cache_misses_total counter\ncastor_%s_cache_misses_total %llu\n"
                  "# HELP castor_%s_cache_bytes Memory held by cached %s.\n"
                  "# TYPE castor_%s_cache_bytes gauge\ncastor_%s_cache_bytes %llu\n"
                  "# HELP castor_%s_cache_entries Cached %s.\n"
                  "# TYPE castor_%s_cache_entries gauge\ncastor_%s_cache_entries %llu\n",
                  n, w, n, n, (unsigned long long)h, n, w, n, n, (unsigned long long)m, n, w, n, n,
                  (unsigned long long)by, n, w, n, n, (unsigned long long)e);
    }
    return b.p;
}
