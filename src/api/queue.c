/* queue.c: replicas sharing live runs through the store (PostgreSQL; see
 * store.h's live ops and docs/deploy.md), and, in one process (SQLite),
 * the background jobs the last stop left with no output, run again at
 * start-up through the same take (cst_queue_resume). One thread per replica:
 * - renews the leases of the live runs this replica holds (every third of
 *   the lease) and stops a run whose cancel was asked on another replica or
 *   whose lease another replica took;
 * - claims work (FOR UPDATE SKIP LOCKED): a background job waiting in the
 *   queue for a model with a free slot here, or any live run whose lease
 *   expired (its replica died). A job that stored no output is run again
 *   from its create body; one that stored output, or a foreground run, is
 *   marked failed (a client may have seen part of an answer that a second
 *   run would contradict); one whose cancel was asked becomes cancelled;
 * - waits for notifications ("job", "ev ID", "cancel ID") and wakes the
 *   followers of runs live elsewhere (routes.c) and the local run a cancel
 *   names.
 */
#include "queue.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct cst_queue {
    cst_server *s;
    char node[128];   /* this replica's lease name: host:pid:random */
    int64_t lease_ms; /* CASTOR_LEASE_S (default 10 s) */
    pthread_t th;
    atomic_bool stop, kick;
    pthread_mutex_t mu;
    uint64_t gen;        /* notifications seen (mu) */
    cst_park *watchers;  /* followers parked until the next notification (mu) */
    atomic_uint_fast64_t claimed, renewals, rerun, failed, cancelled;
    double quiet_until; /* no takeovers before (queue thread only): see store_failed */
    cst_job *jobs;      /* one process (s->resume): the jobs to run again, in order */
    size_t n_jobs;
} cst_queue;

const char *cst_queue_node(cst_server *s) { return s->queue ? s->queue->node : NULL; }
int64_t cst_queue_lease_ms(cst_server *s) { return s->queue ? s->queue->lease_ms : 0; }
void cst_queue_kick(cst_server *s) {
    if (s->queue) atomic_store(&s->queue->kick, true);
}

uint64_t cst_queue_gen(cst_server *s) {
    if (!s->queue) return 0;
    pthread_mutex_lock(&s->queue->mu);
    uint64_t g = s->queue->gen;
    pthread_mutex_unlock(&s->queue->mu);
    return g;
}

bool cst_queue_park(cst_server *s, cst_park *p, uint64_t gen, double wake_at) {
    cst_queue *q = s->queue;
    if (!q) {
        cst_park_conn(s, p, wake_at);
        return true;
    }
    pthread_mutex_lock(&q->mu); /* lock order: q->mu, then the server's park_mu */
    const bool news = q->gen != gen;
    if (!news) {
        if (!p->on_run) { /* a follower watches no run: the run links serve the queue's list */
            p->on_run = true;
            p->run_next = q->watchers;
            q->watchers = p;
        }
        cst_park_conn(s, p, wake_at);
    }
    pthread_mutex_unlock(&q->mu);
    return !news;
}

void cst_queue_unwatch(cst_server *s, cst_park *p) {
    cst_queue *q = s->queue;
    if (!q) return;
    pthread_mutex_lock(&q->mu);
    for (cst_park **pp = &q->watchers; *pp; pp = &(*pp)->run_next)
        if (*pp == p) {
            *pp = p->run_next;
            break;
        }
    p->on_run = false;
    p->run_next = NULL;
    pthread_mutex_unlock(&q->mu);
}

static int32_t n_slots(cst_server *s) { return s->p.n_slots > 0 ? s->p.n_slots : 4; }
static bool has_slot(cst_server *s, smodel *sm) {
    return cst_sched_active(sm->sched) + cst_sched_queue_depth(sm->sched) < n_slots(s);
}

static const char ZERO_USAGE[] = "{\"total_input_tokens\":0,\"total_cached_tokens\":0,\"total_output_tokens\":0,"
                                 "\"total_thought_tokens\":0,\"total_tool_use_tokens\":0,\"total_tokens\":0}";

/* ---- leases ---------------------------------------------------------------- */

/* The store failed here: other replicas may have lost it too (a database
 * restart) and not renewed their leases meanwhile; they are alive if they
 * renew within a lease after it is back, so expired leases are not taken
 * over before then. */
static void store_failed(cst_queue *q) { q->quiet_until = cst_time_now() + (double)q->lease_ms / 1000.0; }

static void renew(cst_queue *q) {
    cst_server *s = q->s;
    pthread_mutex_lock(&s->runs_mu);
    size_t n = 0;
    for (run *r = s->runs; r; r = r->next) n += r->live;
    run **rs = n ? calloc(n, sizeof *rs) : NULL;
    const char **ids = n ? calloc(n, sizeof *ids) : NULL;
    bool *held = n ? calloc(n, sizeof *held) : NULL, *cancel = n ? calloc(n, sizeof *cancel) : NULL;
    size_t k = 0;
    for (run *r = s->runs; r && rs && ids && held && cancel; r = r->next) {
        if (!r->live) continue;
        pthread_mutex_lock(&r->mu);
        r->refs++;
        pthread_mutex_unlock(&r->mu);
        rs[k] = r;
        ids[k++] = r->id;
    }
    pthread_mutex_unlock(&s->runs_mu);
    cst_status st = k > 0 ? s->store->ops->lease_renew(s->store, q->node, ids, k, q->lease_ms, held, cancel) : CST_OK;
    if (st == CST_ERR_STORE) store_failed(q);
    if (k > 0 && st == CST_OK) {
        atomic_fetch_add(&q->renewals, k);
        for (size_t i = 0; i < k; i++) {
            run *r = rs[i];
            pthread_mutex_lock(&r->mu);
            const bool lost = !held[i] && !r->final && !r->lease_lost;
            if (lost) r->lease_lost = true;
            pthread_mutex_unlock(&r->mu);
            if (lost) cst_warn("interaction %s: this replica lost its lease; stopping it here", r->id);
            if (lost || cancel[i]) cst_run_cancel(r);
        }
    }
    for (size_t i = 0; i < k; i++) cst_run_unref(rs[i]);
    free(rs);
    free(ids);
    free(held);
    free(cancel);
}

/* ---- taking work ------------------------------------------------------------- */

/* End a claimed run without running it: status "failed" (code, msg) or
 * "cancelled". Followers get an error event (failed) and
 * interaction.completed after whatever was stored. node: the lease it is
 * claimed under (replicas), NULL: one process (a plain put). */
static void finish(cst_server *s, const char *node, const cst_job *j, const char *status, const char *code,
                   const char *msg) {
    const int64_t now = (int64_t)time(NULL);
    char created[32], updated[32];
    cst_time_rfc3339(j->rec.created, created);
    cst_time_rfc3339(now, updated);
    json_t *errs = code ? json_pack("[{s:s,s:s}]", "code", code, "message", msg) : NULL;
    char *errs_s = errs ? json_dumps(errs, JSON_COMPACT) : NULL;
    const char *usage = j->rec.usage ? j->rec.usage : ZERO_USAGE;
    char *ev[2] = {NULL, NULL};
    size_t n_ev = 0;
    if (j->n_events > 0) { /* the stored log ends as a finished run's does */
        char idb[24];
        if (code) {
            snprintf(idb, sizeof idb, "%lld", (long long)(j->n_events + 1));
            json_t *e = json_pack("{s:s,s:s,s:{s:s,s:s}}", "event_type", "error", "event_id", idb, "error", "code",
                                  code, "message", msg);
            ev[n_ev++] = e ? json_dumps(e, JSON_COMPACT) : NULL;
            json_decref(e);
        }
        snprintf(idb, sizeof idb, "%lld", (long long)(j->n_events + 1 + (int64_t)n_ev));
        json_t *u = json_loads(usage, 0, NULL);
        json_t *c = json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:s}}", "event_type", "interaction.completed",
                              "event_id", idb, "interaction", "id", j->rec.id, "status", status, "object",
                              "interaction", "model", j->rec.model ? j->rec.model : "", "created", created, "updated",
                              updated, "usage", u ? u : json_object(), "service_tier", "standard");
        ev[n_ev++] = c ? json_dumps(c, JSON_COMPACT) : NULL;
        json_decref(c);
    }
    cst_irec rec = j->rec;
    rec.status = (char *)status;
    rec.updated = now;
    rec.usage = (char *)usage;
    if (errs_s) rec.errors = errs_s;
    bool ok = !(code && !errs_s) && (n_ev == 0 || ev[n_ev - 1]) && (n_ev < 2 || ev[0]);
    cst_status st = !ok ? CST_ERR_NOMEM
                    : node ? s->store->ops->live_finish(s->store, &rec, node, j->n_events + 1,
                                                        (const char *const *)ev, n_ev)
                           : cst_store_put(s->store, &rec); /* one process: nothing else writes it */
    if (st == CST_OK && !node && n_ev > 0)
        st = cst_store_put_events(s->store, j->rec.id, j->n_events + 1, (const char *const *)ev, n_ev);
    if (st) cst_warn("interaction %s: cannot mark it %s: %s", j->rec.id, status, s->store->err);
    else cst_info("interaction %s: marked %s (%s)", j->rec.id, status, msg ? msg : "cancel requested");
    for (size_t i = 0; i < n_ev; i++) free(ev[i]);
    free(errs_s);
    json_decref(errs);
}

typedef enum { JOB_STARTED, JOB_FAILED, JOB_LATER } job_start;

/* Run a claimed job here, from its create body, as its accepting replica
 * would have. JOB_FAILED: err says why it cannot run; JOB_LATER: no room
 * here now (the image decode memory or the scheduler's queue is full). */
static job_start start_job(cst_server *s, const cst_job *j, ekind *k, char *err, size_t errlen) {
    json_error_t je;
    json_t *body = json_loads(j->body, 0, &je);
    create_req cr;
    if (!body || !cst_api_parse_create(body, &cr, err, errlen)) {
        if (!body) cst_errf(err, errlen, "the stored request cannot be read: %s", je.text);
        json_decref(body);
        *k = E_INTERNAL;
        return JOB_FAILED;
    }
    create_prep pp = {0};
    run *r = NULL;
    bool ok = cst_create_prepare(s, NULL, &cr, j->rec.owner, &pp, k, err, errlen);
    bool later = !ok && pp.media_full; /* the image decode memory is full here now */
    if (ok && !cst_create_limits(s, &cr, &pp, err, errlen)) {
        *k = E_INVALID;
        ok = false;
    }
    if (ok) {
        cst_status st = cst_run_start_job(s, pp.sm, &cr, j, &pp.cp, pp.history, body, &r, err, errlen);
        later = st == CST_ERR_BUSY; /* the slot went meanwhile */
        if (st && !later) {
            *k = cst_api_status_kind(st);
            ok = false;
        }
    }
    cst_run_unref(r); /* its pump holds its own reference */
    create_prep_clear(&pp);
    create_req_clear(&cr);
    json_decref(body);
    return later ? JOB_LATER : ok ? JOB_STARTED : JOB_FAILED;
}

/* One function for both back-ends: a job claimed from the shared queue
 * (q is s->queue: replicas), or one left unfinished by the last stop of
 * this process (q is s->resume: SQLite, at start-up) is run here from its
 * create body, or ended. false: not now (q->s->resume: try again when a run
 * ends; replicas: it went back to the queue). */
static bool take(cst_queue *q, const cst_job *j) {
    cst_server *s = q->s;
    const bool shared = q == s->queue;
    const char *node = shared ? q->node : NULL;
    if (shared) atomic_fetch_add(&q->claimed, 1);
    if (j->cancel) {
        atomic_fetch_add(&q->cancelled, 1);
        finish(s, node, j, "cancelled", NULL, NULL);
        return true;
    }
    if (!j->is_job || j->output) {
        atomic_fetch_add(&q->failed, 1);
        finish(s, node, j, "failed", "internal",
               !j->is_job ? "the replica running this interaction stopped before it finished"
                          : "the replica running this background interaction stopped after it had stored output "
                            "that a client may have seen; it is not run again, so that one id never shows two "
                            "different answers");
        return true;
    }
    smodel *sm = j->rec.model ? cst_api_find_model(s, j->rec.model) : NULL;
    if (!sm && !shared) { /* nobody else will serve it */
        char m[512];
        snprintf(m, sizeof m,
                 "the server restarted without the model '%s' this background interaction was accepted for; "
                 "it cannot run (serve that model and create it again)",
                 j->rec.model ? j->rec.model : "");
        atomic_fetch_add(&q->failed, 1);
        finish(s, node, j, "failed", "not_found", m);
        return true;
    }
    if (!sm || !has_slot(s, sm) || atomic_load(&s->draining)) { /* another replica's, or later */
        if (shared) (void)s->store->ops->job_release(s->store, j->rec.id, node);
        return false;
    }
    char err[1024];
    ekind k = E_INTERNAL;
    job_start js = start_job(s, j, &k, err, sizeof err);
    if (js == JOB_LATER) {
        if (shared) (void)s->store->ops->job_release(s->store, j->rec.id, node);
        return shared; /* one process: tried again when a run ends */
    }
    if (js == JOB_FAILED) {
        finish(s, node, j, "failed", cst_api_ekind_code(k), err);
        return true;
    }
    if (j->takeover || !shared) {
        atomic_fetch_add(&q->rerun, 1);
        cst_info("interaction %s: %s before any output; running it again here", j->rec.id,
                 shared ? "its replica stopped" : "the server stopped");
    }
    return true;
}

/* Claim while there is work this replica can take. */
static void claim(cst_queue *q) {
    cst_server *s = q->s;
    const char *models[64];
    for (int guard = 0; guard < 32 && !atomic_load(&s->draining) && !atomic_load(&q->stop); guard++) {
        size_t k = 0;
        for (size_t i = 0; i < s->n_models && k < CST_ARRAY_LEN(models); i++)
            if (has_slot(s, &s->models[i])) models[k++] = s->models[i].stem;
        cst_job j;
        const bool takeover = cst_time_now() >= q->quiet_until;
        cst_status st = s->store->ops->job_claim(s->store, q->node, models, k, takeover, q->lease_ms, &j);
        if (st == CST_ERR_STORE) store_failed(q);
        if (st) break;
        (void)take(q, &j);
        cst_job_clear(&j);
    }
}

/* ---- notifications ------------------------------------------------------------ */

static void on_notify(cst_queue *q, const char *p) {
    cst_server *s = q->s;
    if (!strcmp(p, "job")) atomic_store(&q->kick, true);
    if (!strncmp(p, "cancel ", 7)) { /* a cancel asked on another replica, of a run here */
        pthread_mutex_lock(&s->runs_mu);
        for (run *r = s->runs; r; r = r->next)
            if (r->live && !strcmp(r->id, p + 7)) cst_run_cancel(r);
        pthread_mutex_unlock(&s->runs_mu);
    }
    pthread_mutex_lock(&q->mu); /* followers look again */
    q->gen++;
    for (cst_park *w = q->watchers, *nx; w; w = nx) {
        nx = w->run_next;
        w->on_run = false;
        w->run_next = NULL;
        cst_unpark(s, w);
    }
    q->watchers = NULL;
    pthread_mutex_unlock(&q->mu);
}

static void *queue_main(void *arg) {
    cst_queue *q = arg;
    cst_server *s = q->s;
    const double renew_every = (double)q->lease_ms / 3000.0;
    const double claim_every = CST_MIN(1.0, (double)q->lease_ms / 4000.0);
    double next_renew = 0, next_claim = 0;
    while (!atomic_load(&q->stop)) {
        double now = cst_time_now();
        if (now >= next_renew) {
            renew(q);
            next_renew = now + renew_every;
        }
        if (now >= next_claim || atomic_exchange(&q->kick, false)) {
            claim(q);
            next_claim = cst_time_now() + claim_every;
        }
        const double wait = CST_MAX(0.0, CST_MIN(0.2, CST_MIN(next_renew, next_claim) - cst_time_now()));
        char p[160];
        cst_status st = s->store->ops->notify_wait(s->store, wait, p, sizeof p);
        for (; st == CST_OK; st = s->store->ops->notify_wait(s->store, 0, p, sizeof p)) on_notify(q, p);
        if (st == CST_ERR_STORE) store_failed(q);
    }
    return NULL;
}

cst_status cst_queue_start(cst_server *s, char *err, size_t errlen) {
    if (!cst_store_live(s->store)) return CST_OK;
    cst_queue *q = calloc(1, sizeof *q);
    if (!q) return CST_ERR_NOMEM;
    q->s = s;
    double lease_s = 10.0;
    const char *e = getenv("CASTOR_LEASE_S");
    if (e && atof(e) > 0) lease_s = CST_MAX(0.5, atof(e));
    q->lease_ms = (int64_t)(lease_s * 1000);
    char host[64] = "castor", rnd[48];
    (void)gethostname(host, sizeof host - 1);
    cst_api_new_id(rnd);
    snprintf(q->node, sizeof q->node, "%s:%d:%.8s", host, (int)getpid(), rnd + 3);
    pthread_mutex_init(&q->mu, NULL);
    s->queue = q;
    if (pthread_create(&q->th, NULL, queue_main, q) != 0) {
        s->queue = NULL;
        pthread_mutex_destroy(&q->mu);
        free(q);
        cst_errf(err, errlen, "cannot start the replica queue thread");
        return CST_ERR_NOMEM;
    }
    cst_info("replica %s: lease %.1f s; background jobs and live runs shared through the store", q->node, lease_s);
    return CST_OK;
}

void cst_queue_stop(cst_server *s) {
    cst_queue *r = s->resume;
    if (r && !atomic_exchange(&r->stop, true)) {
        pthread_mutex_lock(&s->runs_mu);
        pthread_cond_broadcast(&s->runs_cv);
        pthread_mutex_unlock(&s->runs_mu);
        pthread_join(r->th, NULL);
    }
    cst_queue *q = s->queue;
    if (!q || atomic_exchange(&q->stop, true)) return;
    pthread_join(q->th, NULL);
}

void cst_queue_free(cst_server *s) {
    cst_queue_stop(s);
    cst_queue *r = s->resume;
    if (r) {
        s->resume = NULL;
        for (size_t i = 0; i < r->n_jobs; i++) cst_job_clear(&r->jobs[i]);
        free(r->jobs);
        pthread_mutex_destroy(&r->mu);
        free(r);
    }
    cst_queue *q = s->queue;
    if (!q) return;
    s->queue = NULL;
    pthread_mutex_destroy(&q->mu);
    free(q);
}

/* ---- one process: resuming after a restart ------------------------------------ */

/* The job was deleted (or ended) while it waited here: not run (its final
 * record would bring a deleted one back). */
static bool gone(cst_server *s, const cst_job *j) {
    cst_irec cur;
    const cst_status st = cst_store_get(s->store, j->rec.owner, j->rec.id, &cur);
    const bool g = st == CST_ERR_NOT_FOUND ||
                   (st == CST_OK && strcmp(cur.status, "queued") != 0 && strcmp(cur.status, "in_progress") != 0);
    if (st == CST_OK) cst_irec_clear(&cur);
    if (g) cst_info("interaction %s: deleted or ended while it waited to run again; not run", j->rec.id);
    return g;
}

/* Runs the jobs the last stop left unfinished, in order, each when its
 * model has a free slot (as a replica claims them), waiting for a run to end
 * otherwise. A drain stops it: the jobs not started stay queued in the store
 * for the next start. */
static void *resume_main(void *arg) {
    cst_queue *q = arg;
    cst_server *s = q->s;
    for (size_t i = 0; i < q->n_jobs && !atomic_load(&q->stop);) {
        const cst_job *j = &q->jobs[i];
        /* under mu: a cancel (cst_queue_cancel_waiting) either ends the job
         * before it is taken or finds its run after */
        pthread_mutex_lock(&q->mu);
        const bool done = !atomic_load(&s->draining) && (j->cancel || gone(s, j) || take(q, j));
        pthread_mutex_unlock(&q->mu);
        if (done) {
            i++;
            continue;
        }
        pthread_mutex_lock(&s->runs_mu);
        if (!atomic_load(&q->stop)) { /* runs_cv: a run ended, or cst_queue_stop */
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            dl.tv_sec += 1;
            pthread_cond_timedwait(&s->runs_cv, &s->runs_mu, &dl);
        }
        pthread_mutex_unlock(&s->runs_mu);
    }
    if (q->rerun || q->failed)
        cst_info("store: %llu background interactions run again after the restart, %llu failed",
                 (unsigned long long)atomic_load(&q->rerun), (unsigned long long)atomic_load(&q->failed));
    return NULL;
}

cst_status cst_queue_resume(cst_server *s, char *err, size_t errlen) {
    if (cst_store_live(s->store) || !s->store->ops->jobs_unfinished) return CST_OK;
    cst_job *jobs = NULL;
    size_t n = 0;
    cst_status st = s->store->ops->jobs_unfinished(s->store, &jobs, &n);
    if (st) {
        cst_errf(err, errlen, "store: listing the background interactions to run again: %s",
                 st == CST_ERR_NOMEM ? "out of memory" : s->store->err);
        return st;
    }
    if (n == 0) return CST_OK;
    cst_queue *q = calloc(1, sizeof *q);
    if (q) {
        pthread_mutex_init(&q->mu, NULL);
        q->s = s;
        q->jobs = jobs;
        q->n_jobs = n;
        s->resume = q;
    }
    if (!q || pthread_create(&q->th, NULL, resume_main, q) != 0) {
        s->resume = NULL;
        if (q) pthread_mutex_destroy(&q->mu);
        free(q);
        for (size_t i = 0; i < n; i++) cst_job_clear(&jobs[i]);
        free(jobs);
        cst_errf(err, errlen, "cannot start the thread that runs interrupted background interactions again");
        return CST_ERR_NOMEM;
    }
    cst_info("store: %zu background interactions were queued or had shown no output at the last stop; running "
             "them again",
             n);
    return CST_OK;
}

bool cst_queue_cancel_waiting(cst_server *s, const char *owner, const char *id) {
    cst_queue *q = s->resume;
    if (!q) return false;
    bool hit = false;
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < q->n_jobs && !hit; i++) {
        cst_job *j = &q->jobs[i];
        if (j->cancel || strcmp(j->rec.id, id) || !j->rec.owner || strcmp(j->rec.owner, owner)) continue;
        run *r = cst_run_find(s, owner, id);
        if (r) { /* taken: a run now, which the caller cancels */
            cst_run_unref(r);
            break;
        }
        if (gone(s, j)) break; /* deleted or ended meanwhile */
        j->cancel = true;
        finish(s, NULL, j, "cancelled", NULL, NULL);
        atomic_fetch_add(&q->cancelled, 1);
        hit = true;
    }
    pthread_mutex_unlock(&q->mu);
    return hit;
}

/* ---- cancel across replicas --------------------------------------------------- */

cst_status cst_queue_cancel(cst_server *s, const char *owner, const char *id) {
    char status[24];
    return s->store->ops->cancel_request(s->store, owner, id, (int64_t)time(NULL), ZERO_USAGE, status);
}

void cst_queue_metrics(cst_server *s, char *out, size_t n) {
    cst_queue *q = s->queue;
    if (!q) {
        out[0] = 0;
        return;
    }
    snprintf(out, n,
             "# HELP castor_queue_claims_total Live runs this replica claimed from the store (queued jobs and "
             "expired leases).\n# TYPE castor_queue_claims_total counter\ncastor_queue_claims_total %llu\n"
             "# HELP castor_queue_lease_renewals_total Leases of live runs renewed.\n"
             "# TYPE castor_queue_lease_renewals_total counter\ncastor_queue_lease_renewals_total %llu\n"
             "# HELP castor_queue_takeovers_total Runs of a replica that stopped, by what this one did.\n"
             "# TYPE castor_queue_takeovers_total counter\n"
             "castor_queue_takeovers_total{outcome=\"rerun\"} %llu\ncastor_queue_takeovers_total{outcome=\"failed\"} "
             "%llu\ncastor_queue_takeovers_total{outcome=\"cancelled\"} %llu\n",
             (unsigned long long)atomic_load(&q->claimed), (unsigned long long)atomic_load(&q->renewals),
             (unsigned long long)atomic_load(&q->rerun), (unsigned long long)atomic_load(&q->failed),
             (unsigned long long)atomic_load(&q->cancelled));
}
