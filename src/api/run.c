/* run.c: one in-flight interaction. cst_run_start tokenizes nothing (the
 * route did) and submits to the model's scheduler with an event sink: START
 * and TEXT events are turned into the interaction's SSE event log (§4.5) on
 * the engine thread (the text delta JSON is built by hand, one allocation per
 * token) and wake the SSE writers directly. A pump thread waits for the DONE
 * event (and the deadline), writes the closing events and persists record +
 * event log to the store. Readers (the create handler, SSE writers,
 * get/cancel) follow the log under the run's mutex. Also the Interaction
 * JSON builders (§3).
 */
#include "api_int.h"
#include "queue.h"
#include "schema.h"

#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

void cst_api_new_id(char out[48]) {
    uint8_t rnd[18];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        /* fall back to time and address entropy (should not happen on Linux) */
        uint64_t x = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)out ^ (uint64_t)(cst_time_now() * 1e9);
        for (size_t i = 0; i < sizeof rnd; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            rnd[i] = (uint8_t)x;
        }
    }
    memcpy(out, "v1_", 3);
    cst_b64url_encode(rnd, sizeof rnd, out + 3); /* 24 chars */
}

static json_t *time_json(int64_t t) {
    char s[32];
    cst_time_rfc3339(t, s);
    return json_string(s);
}

/* n_gen counts every generated token; n_thought of them were inside the thought. */
static json_t *usage_json(int32_t n_prompt, int32_t n_cached, int32_t n_gen, int32_t n_thought, int32_t n_image) {
    json_t *u = json_pack("{s:i,s:i,s:i,s:i,s:i,s:i,s:[{s:s,s:i}]}", "total_input_tokens", n_prompt,
                          "total_cached_tokens", n_cached, "total_output_tokens", n_gen - n_thought,
                          "total_thought_tokens", n_thought, "total_tool_use_tokens", 0, "total_tokens",
                          n_prompt + n_gen, "input_tokens_by_modality", "modality", "text", "tokens",
                          n_prompt - n_image);
    if (u && n_image > 0) /* image positions (files_media.c) */
        json_array_append_new(json_object_get(u, "input_tokens_by_modality"),
                              json_pack("{s:s,s:i}", "modality", "image", "tokens", n_image));
    return u;
}


/* ---- events ---------------------------------------------------------------- */

/* Resume the connections parked on r (r->mu held): an SSE writer with a new
 * event to send, a unary create whose run is done. One-shot. */
static void wake_watchers_locked(run *r) {
    for (cst_park *p = r->watchers, *nx; p; p = nx) {
        nx = p->run_next;
        p->on_run = false;
        p->run_next = NULL;
        cst_unpark(r->srv, p);
    }
    r->watchers = NULL;
}

void cst_run_watch_locked(run *r, cst_park *p) {
    if (p->on_run) return;
    p->on_run = true;
    p->run_next = r->watchers;
    r->watchers = p;
}

void cst_run_unwatch(run *r, cst_park *p) {
    pthread_mutex_lock(&r->mu);
    for (cst_park **pp = &r->watchers; *pp; pp = &(*pp)->run_next)
        if (*pp == p) {
            *pp = p->run_next;
            break;
        }
    p->on_run = false;
    p->run_next = NULL;
    pthread_mutex_unlock(&r->mu);
}

bool cst_run_done_or_park(run *r, cst_park *p) {
    pthread_mutex_lock(&r->mu);
    const bool d = r->done;
    if (!d) {
        cst_run_watch_locked(r, p);
        cst_park_conn(r->srv, p, 0);
    }
    pthread_mutex_unlock(&r->mu);
    return d;
}

/* Append a ready event text (takes txt; type is a static string). r->mu held. */
static void append_locked(run *r, const char *type, char *txt) {
    if (!txt) return;
    if (r->n_ev == r->cap_ev) {
        size_t nc = r->cap_ev ? r->cap_ev * 2 : 64;
        char **nd = realloc(r->ev_data, nc * sizeof *nd);
        if (nd) r->ev_data = nd;
        const char **nt = realloc(r->ev_type, nc * sizeof *nt);
        if (nt) r->ev_type = nt;
        if (!nd || !nt) {
            free(txt);
            return;
        }
        r->cap_ev = nc;
    }
    r->ev_data[r->n_ev] = txt;
    r->ev_type[r->n_ev] = type;
    r->n_ev++;
    pthread_cond_broadcast(&r->ev_cv);
    wake_watchers_locked(r);
}

/* Append an event (j gets event_type/event_id first; steals j). r->mu held. */
static void emit_locked(run *r, const char *type, json_t *body) {
    json_t *j = json_object();
    json_object_set_new(j, "event_type", json_string(type));
    char idb[24];
    snprintf(idb, sizeof idb, "%zu", r->n_ev + 1);
    json_object_set_new(j, "event_id", json_string(idb));
    if (body) json_object_update(j, body);
    json_decref(body);
    char *txt = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    append_locked(r, type, txt);
}

char *cst_api_text_delta_json(size_t event_id, int index, const char *text, size_t len) {
    static const char hex[] = "0123456789ABCDEF";
    size_t cap = 96 + len * 6;
    char *o = malloc(cap);
    if (!o) return NULL;
    int k = snprintf(o, cap, "{\"event_type\":\"step.delta\",\"event_id\":\"%zu\",\"index\":%d,\"delta\":{\"type\":\"text\",\"text\":\"",
                     event_id, index);
    if (k < 0) {
        free(o);
        return NULL;
    }
    size_t n = (size_t)k;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            o[n++] = (char)c;
            continue;
        }
        o[n++] = '\\';
        switch (c) {
        case '"': o[n++] = '"'; break;
        case '\\': o[n++] = '\\'; break;
        case '\b': o[n++] = 'b'; break;
        case '\f': o[n++] = 'f'; break;
        case '\n': o[n++] = 'n'; break;
        case '\r': o[n++] = 'r'; break;
        case '\t': o[n++] = 't'; break;
        default:
            memcpy(o + n, "u00", 3);
            o[n + 3] = hex[c >> 4];
            o[n + 4] = hex[c & 15];
            n += 5;
        }
    }
    memcpy(o + n, "\"}}", 4); /* with the NUL */
    return o;
}

static json_t *interaction_head(run *r, bool terminal) {
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:o}", "id", r->id, "status", r->status, "object", "interaction", "model",
                          r->model, "created", time_json(r->created));
    if (terminal) {
        json_object_set_new(j, "updated", time_json(r->updated));
        json_object_set_new(j, "usage", usage_json(r->n_prompt, r->n_cached, r->n_gen, r->n_thought, r->n_image));
        json_object_set_new(j, "service_tier", json_string("standard"));
    }
    return j;
}

/* ---- JSON of an interaction ------------------------------------------- */

static void add_echo(json_t *j, const char *request_echo) {
    if (!request_echo) return;
    json_t *e = json_loads(request_echo, 0, NULL);
    if (json_is_object(e)) json_object_update(j, e);
    json_decref(e);
}

/* The thought step (when there is one) and the model_output step. r->mu held. */
static json_t *output_steps(run *r) {
    json_t *a = json_array();
    if (r->thought_started) {
        json_t *t = json_pack("{s:s,s:s}", "type", "thought", "signature", r->signature ? r->signature : "");
        if (r->summaries)
            json_object_set_new(t, "summary", json_pack("[{s:s,s:s%}]", "type", "text", "text",
                                                        r->thought.p ? r->thought.p : "", r->thought.len));
        json_array_append_new(a, t);
    }
    /* while a turn with tools runs, text that may be a call is not shown yet */
    const size_t tlen = r->tools_on && !r->final ? r->text_emitted : r->text.len;
    if (r->step_started || (r->final && !r->calls))
        json_array_append_new(a, json_pack("{s:s,s:[{s:s,s:s%}]}", "type", "model_output", "content", "type", "text",
                                           "text", r->text.p ? r->text.p : "", tlen));
    if (r->calls) json_array_extend(a, r->calls);
    return a;
}

/* ---- live runs shared with other replicas (queue.c) ------------------- */

/* A background job whose output is not stored yet shows none: another
 * replica could still run it again from the start. r->mu held. */
static bool live_gated(const run *r) { return r->gate && !r->out_stored && !r->done; }

static bool is_output_event(const char *type) { return !strncmp(type, "step.", 5); }

size_t cst_run_visible_locked(run *r) {
    if (!live_gated(r)) return r->n_ev;
    size_t k = 0;
    while (k < r->n_ev && !is_output_event(r->ev_type[k])) k++;
    return k;
}

/* Store the events appended since the last call (the pump, every 100 ms
 * while the run is live), so that other replicas can follow it. A lost
 * lease (another replica took the run over) stops the run here. */
static void live_flush(run *r) {
    cst_server *s = r->srv;
    pthread_mutex_lock(&r->mu);
    const size_t from = r->n_stored, to = r->n_ev;
    if (from == to || r->lease_lost) {
        pthread_mutex_unlock(&r->mu);
        return;
    }
    const char **d = malloc((to - from) * sizeof *d);
    bool output = false;
    for (size_t i = from; d && i < to; i++) {
        d[i - from] = r->ev_data[i]; /* the texts stay put until run_free */
        output |= is_output_event(r->ev_type[i]);
    }
    const bool started = strcmp(r->status, "queued") != 0;
    pthread_mutex_unlock(&r->mu);
    if (!d) return;
    cst_status st = s->store->ops->live_events(s->store, r->id, cst_queue_node(s), (int64_t)from + 1, d, to - from,
                                               output, started);
    free(d);
    pthread_mutex_lock(&r->mu);
    if (st == CST_OK) {
        r->n_stored = to;
        r->out_stored |= output;
        pthread_cond_broadcast(&r->ev_cv); /* a gate may have opened */
        wake_watchers_locked(r);
    } else if (st == CST_ERR_CONFLICT && !r->lease_lost) {
        cst_warn("interaction %s: another replica holds it now; stopping here", r->id);
        r->lease_lost = true;
        atomic_store(&r->cancel_requested, true);
        if (r->req) cst_sched_req_cancel(r->req);
    } /* else the store failed: tried again at the next flush */
    pthread_mutex_unlock(&r->mu);
}

/* One process (SQLite): a background job's first output is shown once the
 * store records that it has output (job_output), so that a restart fails
 * it rather than running it again to a different answer. A store failure
 * keeps it hidden (tried again at the next event); the final record shows
 * it anyway. */
static void output_flag(run *r) {
    cst_server *s = r->srv;
    pthread_mutex_lock(&r->mu);
    const bool due = !r->out_stored && cst_run_visible_locked(r) < r->n_ev;
    pthread_mutex_unlock(&r->mu);
    if (!due || s->store->ops->job_output(s->store, r->id) != CST_OK) return;
    pthread_mutex_lock(&r->mu);
    r->out_stored = true;
    pthread_cond_broadcast(&r->ev_cv); /* the gate opened */
    wake_watchers_locked(r);
    pthread_mutex_unlock(&r->mu);
}

json_t *cst_run_accepted_json(run *r) {
    json_t *j = cst_run_json(r, false, false);
    json_object_set_new(j, "status", json_string(r->accepted_status ? r->accepted_status : "queued"));
    json_object_set(j, "updated", json_object_get(j, "created"));
    json_object_set_new(j, "steps", json_array());
    json_object_del(j, "usage");
    json_object_del(j, "errors");
    return j;
}

json_t *cst_run_json(run *r, bool with_turn, bool include_input) {
    pthread_mutex_lock(&r->mu);
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:s}", "id", r->id, "object", "interaction", "model", r->model,
                          "status", r->status, "created", time_json(r->created), "updated",
                          time_json(r->updated ? r->updated : r->created), "service_tier", "standard");
    if (r->previous_id) json_object_set_new(j, "previous_interaction_id", json_string(r->previous_id));
    add_echo(j, r->request_echo);
    json_t *steps = with_turn && r->turn_json ? json_loads(r->turn_json, 0, NULL) : json_array();
    if (!steps) steps = json_array();
    json_t *outs = live_gated(r) ? json_array() : output_steps(r);
    json_array_extend(steps, outs);
    json_decref(outs);
    json_object_set_new(j, "steps", steps);
    if (r->final) json_object_set_new(j, "usage", usage_json(r->n_prompt, r->n_cached, r->n_gen, r->n_thought, r->n_image));
    if (r->final && !strcmp(r->status, "failed"))
        json_object_set_new(j, "errors", json_pack("[{s:s,s:s}]", "code", r->error_code ? r->error_code : "internal",
                                                   "message", r->error_msg ? r->error_msg : "generation failed"));
    if (include_input && r->input_json) {
        json_t *in = json_loads(r->input_json, JSON_DECODE_ANY, NULL);
        if (in) json_object_set_new(j, "input", in);
    }
    pthread_mutex_unlock(&r->mu);
    return j;
}

json_t *cst_irec_json(const cst_irec *rec, bool include_input) {
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:s}", "id", rec->id, "object", "interaction", "model",
                          rec->model ? rec->model : "", "status", rec->status, "created", time_json(rec->created),
                          "updated", time_json(rec->updated), "service_tier", "standard");
    if (rec->previous_id) json_object_set_new(j, "previous_interaction_id", json_string(rec->previous_id));
    add_echo(j, rec->request);
    json_t *steps = rec->turn ? json_loads(rec->turn, 0, NULL) : NULL;
    if (!json_is_array(steps)) {
        json_decref(steps);
        steps = json_array();
    }
    json_t *outs = rec->outputs ? json_loads(rec->outputs, 0, NULL) : NULL;
    if (json_is_array(outs)) json_array_extend(steps, outs);
    json_decref(outs);
    json_object_set_new(j, "steps", steps);
    if (rec->usage) {
        json_t *u = json_loads(rec->usage, 0, NULL);
        if (u) json_object_set_new(j, "usage", u);
    }
    if (rec->errors) {
        json_t *e = json_loads(rec->errors, 0, NULL);
        if (e) json_object_set_new(j, "errors", e);
    }
    if (include_input && rec->input) {
        json_t *in = json_loads(rec->input, JSON_DECODE_ANY, NULL);
        if (in) json_object_set_new(j, "input", in);
    }
    return j;
}

/* ---- lifetime ----------------------------------------------------------- */

static void run_free(run *r) {
    for (size_t i = 0; i < r->n_ev; i++) free(r->ev_data[i]);
    free(r->ev_data);
    free(r->ev_type);
    cst_buf_free(&r->text);
    json_decref(r->calls);
    free(r->model);
    free(r->previous_id);
    free(r->request_echo);
    free(r->input_json);
    free(r->history_json);
    free(r->turn_json);
    free(r->error_msg);
    free(r->persist_err);
    cst_buf_free(&r->thought);
    free(r->signature);
    free(r->job_body);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    pthread_cond_destroy(&r->ev_cv);
    free(r);
}

void cst_run_unref(run *r) {
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    int left = --r->refs;
    pthread_mutex_unlock(&r->mu);
    if (left == 0) run_free(r);
}

void cst_run_cancel(run *r) {
    pthread_mutex_lock(&r->mu);
    atomic_store(&r->cancel_requested, true);
    if (r->req) cst_sched_req_cancel(r->req);
    pthread_mutex_unlock(&r->mu);
}

bool cst_run_timed_out(run *r) {
    pthread_mutex_lock(&r->mu);
    bool t = r->timed_out;
    pthread_mutex_unlock(&r->mu);
    return t;
}

bool cst_run_wait(run *r, double timeout_s) {
    pthread_mutex_lock(&r->mu);
    if (!r->done && timeout_s != 0) {
        if (timeout_s < 0) {
            while (!r->done) pthread_cond_wait(&r->cv, &r->mu);
        } else {
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            double s = (double)dl.tv_sec + dl.tv_nsec * 1e-9 + timeout_s;
            dl.tv_sec = (time_t)s;
            dl.tv_nsec = (long)((s - (double)dl.tv_sec) * 1e9);
            while (!r->done && pthread_cond_timedwait(&r->cv, &r->mu, &dl) == 0) {
            }
        }
    }
    bool d = r->done;
    pthread_mutex_unlock(&r->mu);
    return d;
}

run *cst_run_find(cst_server *s, const char *owner, const char *id) {
    pthread_mutex_lock(&s->runs_mu);
    run *found = NULL;
    for (run *r = s->runs; r; r = r->next)
        if (r->store && !strcmp(r->id, id) && !strcmp(r->owner, owner)) {
            found = r;
            pthread_mutex_lock(&r->mu);
            r->refs++;
            pthread_mutex_unlock(&r->mu);
            break;
        }
    pthread_mutex_unlock(&s->runs_mu);
    return found;
}

void cst_runs_cancel_all(cst_server *s) {
    pthread_mutex_lock(&s->runs_mu);
    for (run *r = s->runs; r; r = r->next) cst_run_cancel(r);
    pthread_mutex_unlock(&s->runs_mu);
}

static void unlink_run(cst_server *s, run *r) {
    pthread_mutex_lock(&s->runs_mu);
    for (run **pp = &s->runs; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    s->n_runs--;
    pthread_cond_broadcast(&s->runs_cv);
    pthread_mutex_unlock(&s->runs_mu);
}

/* ---- persistence ------------------------------------------------------------ */

/* A live run's record: at acceptance with this replica's lease (a
 * background job that this replica's scheduler cannot take waits unclaimed
 * in the queue instead: r->detached), at the end with the events not stored
 * yet, releasing the lease. */
static cst_status live_write(run *r, const cst_irec *rec, bool final) {
    cst_server *s = r->srv;
    if (final) {
        pthread_mutex_lock(&r->mu);
        const size_t from = r->n_stored, n = r->n_ev - from;
        const char *const *d = (const char *const *)r->ev_data + from;
        pthread_mutex_unlock(&r->mu); /* done is not set yet: the log does not grow any more */
        cst_status st = s->store->ops->live_finish(s->store, rec, cst_queue_node(s), (int64_t)from + 1, d, n);
        if (st == CST_OK) {
            pthread_mutex_lock(&r->mu);
            r->n_stored = r->n_ev;
            r->out_stored = true;
            pthread_mutex_unlock(&r->mu);
        }
        return st;
    }
    return s->store->ops->live_put(s->store, rec, r->detached ? NULL : cst_queue_node(s), cst_queue_lease_ms(s),
                                   r->job_body, r->job_model);
}

/* The record of r as it stands (status, outputs, usage and errors when
 * final). Writes it; CST_ERR_STORE when the store refused it. */
static cst_status put_record(run *r, bool final) {
    cst_server *s = r->srv;
    json_t *outs = final ? output_steps(r) : json_array();
    json_t *usage = final ? usage_json(r->n_prompt, r->n_cached, r->n_gen, r->n_thought, r->n_image) : NULL;
    json_t *errs = final && !strcmp(r->status, "failed")
                       ? json_pack("[{s:s,s:s}]", "code", r->error_code ? r->error_code : "internal", "message",
                                   r->error_msg ? r->error_msg : "generation failed")
                       : NULL;
    char *outs_s = json_dumps(outs, JSON_COMPACT), *usage_s = usage ? json_dumps(usage, JSON_COMPACT) : NULL;
    char *errs_s = errs ? json_dumps(errs, JSON_COMPACT) : NULL;
    cst_irec rec = {.id = r->id, .owner = r->owner, .model = r->model, .status = (char *)r->status,
                    .created = r->created, .updated = final ? r->updated : r->created,
                    .previous_id = r->previous_id, .request = r->request_echo, .input = r->input_json,
                    .history = r->history_json, .turn = r->turn_json, .outputs = outs_s, .usage = usage_s,
                    .errors = errs_s, .body = final ? NULL : r->job_body};
    cst_status st = outs_s && (!final || usage_s) ? CST_OK : CST_ERR_NOMEM;
    if (st == CST_OK) st = r->live ? live_write(r, &rec, final) : cst_store_put(s->store, &rec);
    free(outs_s);
    free(usage_s);
    free(errs_s);
    json_decref(outs);
    json_decref(usage);
    json_decref(errs);
    return st;
}

/* The final record and its event log. When the store refuses them, a
 * smaller record saying so is tried (the first record, written at
 * acceptance, still says in_progress otherwise, and start-up recovery turns
 * it into failed), and r->persist_err gets the reason: the create answers
 * 503/500 instead of 200, a stream ends with an error event. */
static void persist(run *r) {
    cst_server *s = r->srv;
    cst_status st = put_record(r, true);
    if (st == CST_OK && !r->live)
        st = cst_store_put_events(s->store, r->id, 1, (const char *const *)r->ev_data, r->n_ev);
    if (st == CST_OK) return;
    char m[400];
    if (st == CST_ERR_CONFLICT) { /* a live run whose lease another replica took: its record is theirs now */
        snprintf(m, sizeof m, "the interaction was taken over by another replica (this one lost its lease)");
        cst_error("store: interaction %s: %s", r->id, m);
        r->persist_err = strdup(m);
        return;
    }
    snprintf(m, sizeof m, "the interaction finished but could not be stored: %s",
             st == CST_ERR_NOMEM ? "out of memory" : s->store->err);
    cst_error("store: interaction %s: %s", r->id, m);
    r->persist_transient = st == CST_ERR_STORE && s->store->transient;
    r->persist_err = strdup(m);
    json_t *errs = json_pack("[{s:s,s:s}]", "code", "internal", "message", m);
    json_t *usage = usage_json(r->n_prompt, r->n_cached, r->n_gen, r->n_thought, r->n_image);
    char *errs_s = errs ? json_dumps(errs, JSON_COMPACT) : NULL;
    char *usage_s = usage ? json_dumps(usage, JSON_COMPACT) : NULL;
    cst_irec rec = {.id = r->id, .owner = r->owner, .model = r->model, .status = "failed",
                    .created = r->created, .updated = r->updated, .previous_id = r->previous_id,
                    .turn = r->turn_json, .errors = errs_s, .usage = usage_s};
    if (r->live) (void)s->store->ops->live_finish(s->store, &rec, cst_queue_node(s), 1, NULL, 0);
    else (void)cst_store_put(s->store, &rec);
    free(errs_s);
    free(usage_s);
    json_decref(errs);
    json_decref(usage);
}

/* ---- pump ------------------------------------------------------------------ */


/* Thought step events (§4.5): start at the first event of a thinking run,
 * summary deltas while it runs, the signature last, then stop. r->mu held. */
static void thought_start(run *r) {
    if (!r->think || r->thought_started) return;
    r->thought_started = true;
    emit_locked(r, "step.start", json_pack("{s:i,s:{s:s}}", "index", 0, "step", "type", "thought"));
}
static void thought_finish(run *r) {
    if (!r->thought_started || r->thought_done) return;
    r->thought_done = true;
    r->signature = cst_sig_make(r->srv->sig_key, r->thought.p ? r->thought.p : "", r->thought.len);
    emit_locked(r, "step.delta", json_pack("{s:i,s:{s:s,s:s}}", "index", 0, "delta", "type", "thought_signature",
                                           "signature", r->signature ? r->signature : ""));
    emit_locked(r, "step.stop", json_pack("{s:i}", "index", 0));
}
static void output_start(run *r) {
    if (r->step_started) return;
    if (r->think_eager) thought_start(r);
    thought_finish(r);
    r->step_started = true;
    emit_locked(r, "step.start",
                json_pack("{s:i,s:{s:s}}", "index", r->thought_started ? 1 : 0, "step", "type", "model_output"));
}

/* Copy of t[0..n) with every invalid UTF-8 sequence replaced by U+FFFD
 * (random-weight models can emit stray byte tokens; JSON needs valid text).
 * The scheduler never splits a valid character, so deltas and the stored
 * text sanitise identically. */
static char *utf8_clean(const char *t, size_t n, size_t *out_len, char *stack, size_t stack_len) {
    char *o = n * 3 + 1 <= stack_len ? stack : malloc(n * 3 + 1);
    if (!o) return NULL;
    size_t k = 0;
    const unsigned char *u = (const unsigned char *)t;
    for (size_t i = 0; i < n;) {
        const size_t len = cst_utf8_char_len(u + i, n - i);
        if (len == 0) {
            memcpy(o + k, "\xEF\xBF\xBD", 3);
            k += 3;
            i++;
            continue;
        }
        if (u[i] == 0) { /* NUL would end the C string: drop it */
            i++;
            continue;
        }
        memcpy(o + k, u + i, len);
        k += len;
        i += len;
    }
    o[k] = 0;
    *out_len = k;
    return o;
}

/* ---- function calls ------------------------------------------------------ */

/* Send text[text_emitted..upto) as model_output deltas; leading whitespace
 * waits for something else (a turn that is only calls has no model_output
 * step). force: send even whitespace. r->mu held. */
static void emit_text_upto(run *r, size_t upto, bool force) {
    if (upto <= r->text_emitted) return;
    if (!r->step_started && !force) {
        bool any = false;
        for (size_t i = r->text_emitted; i < upto && !any; i++) any = !strchr(" \t\r\n", r->text.p[i]);
        if (!any) return;
    }
    output_start(r);
    append_locked(r, "step.delta",
                  cst_api_text_delta_json(r->n_ev + 1, r->thought_started ? 1 : 0, r->text.p + r->text_emitted,
                                          upto - r->text_emitted));
    r->text_emitted = upto;
}

/* How much of the text cannot be part of a call: up to the trigger, or up
 * to a tail that could still become it. */
static size_t text_safe_len(run *r) {
    const char *trig = cst_tools_trigger(r->tool_family);
    const size_t tn = strlen(trig), n = r->text.len;
    const char *t = r->text.p;
    for (size_t i = r->text_emitted; i + tn <= n; i++)
        if (!memcmp(t + i, trig, tn)) return i;
    for (size_t k = tn - 1; k > 0; k--)
        if (k <= n && !memcmp(t + n - k, trig, k)) return n - k;
    return n;
}

/* A call id: [a-z0-9]{12} (§3.2). */
static void call_id(char out[13]) {
    static const char al[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    uint8_t rnd[12];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        uint64_t x = (uint64_t)(cst_time_now() * 1e9) ^ (uint64_t)(uintptr_t)out;
        for (size_t i = 0; i < sizeof rnd; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            rnd[i] = (uint8_t)x;
        }
    }
    for (int i = 0; i < 12; i++) out[i] = al[rnd[i] % 36];
    out[12] = 0;
}

/* Send the calls in the text that are complete and not sent yet: each call
 * is sent whole once its syntax is closed (step.start with empty arguments,
 * one arguments_delta with the JSON text, step.stop), while the model may be
 * writing the next. The first one closes the thought (signature) and the
 * model_output step, whose text is what was streamed before the calls (a
 * turn of only calls has none). False when the text after the first call's
 * start does not parse as complete calls (yet). r->mu held. */
static bool emit_calls(run *r) {
    size_t text_len = r->text.len;
    json_t *calls = NULL;
    if (!cst_tools_parse_calls(r->tool_family, r->text.p ? r->text.p : "", r->text.len, &text_len, &calls) || !calls) {
        json_decref(calls);
        return false;
    }
    if (!r->calls) {
        if (r->think_eager) thought_start(r);
        thought_finish(r);
        emit_text_upto(r, text_len, false); /* whitespace before the calls is never sent */
        r->text_final = r->text_emitted;
        if (r->step_started) emit_locked(r, "step.stop", json_pack("{s:i}", "index", r->thought_started ? 1 : 0));
        r->calls = json_array();
    }
    int index = (r->thought_started ? 1 : 0) + (r->step_started ? 1 : 0) + (int)json_array_size(r->calls);
    for (size_t i = json_array_size(r->calls); r->calls && i < json_array_size(calls); i++, index++) {
        json_t *c = json_array_get(calls, i);
        char id[13];
        call_id(id);
        json_t *step = json_pack("{s:s,s:s,s:O,s:O}", "type", "function_call", "id", id, "name",
                                 json_object_get(c, "name"), "arguments", json_object_get(c, "arguments"));
        char *args = json_dumps(json_object_get(c, "arguments"), JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!step || !args || json_array_append_new(r->calls, step)) {
            free(args);
            break; /* out of memory: tried again with the next text */
        }
        emit_locked(r, "step.start", json_pack("{s:i,s:{s:s,s:s,s:O,s:{}}}", "index", index, "step", "type",
                                               "function_call", "id", id, "name", json_object_get(c, "name"),
                                               "arguments"));
        emit_locked(r, "step.delta", json_pack("{s:i,s:{s:s,s:s}}", "index", index, "delta", "type", "arguments_delta",
                                               "arguments", args));
        emit_locked(r, "step.stop", json_pack("{s:i}", "index", index));
        free(args);
    }
    json_decref(calls);
    return true;
}

/* At the end of a turn with tools: the calls not sent yet go out and the
 * status is requires_action; the model_output keeps the text streamed before
 * them. A call cut short (cancelled, failed, a stop sequence) is dropped when
 * calls were sent before it, else the whole text stays text. r->mu held; the
 * status is set. */
static void finish_calls(run *r) {
    const bool ok_status = !strcmp(r->status, "completed") || !strcmp(r->status, "incomplete");
    if (ok_status) emit_calls(r);
    if (!r->calls) {
        emit_text_upto(r, r->text.len, true);
        /* free text is "complete" at every byte for the grammar: a budget or
         * the context ending it makes it incomplete (an end-of-generation
         * token is not counted in n_gen) */
        if (!strcmp(r->status, "completed") &&
            ((r->max_answer > 0 && r->n_gen - r->n_thought >= r->max_answer) || r->n_prompt + r->n_gen >= r->n_ctx))
            r->status = "incomplete";
        return;
    }
    r->text.len = r->text_final;
    if (r->text.p) r->text.p[r->text.len] = 0;
    if (ok_status) r->status = "requires_action";
}

/* START and TEXT events (the sink, on the engine thread; or the pump when
 * events are queued). ev->text is borrowed. r->mu held. */
static void handle_locked(run *r, const cst_sched_event *ev) {
    if (ev->type == CST_SCHED_EV_START) {
        r->n_prompt = ev->n_prompt;
        r->n_cached = ev->n_cached;
        r->status = "in_progress";
        emit_locked(r, "interaction.status_update",
                    json_pack("{s:s,s:s}", "interaction_id", r->id, "status", "in_progress"));
        return;
    }
    if (ev->type != CST_SCHED_EV_TEXT) return;
    double now = cst_time_now();
    if (r->t_last_token > 0) cst_metrics_token_latency(now - r->t_last_token);
    else cst_metrics_ttft(now - r->t_submit);
    r->t_last_token = now;
    size_t cl = 0;
    char stack[512];
    char *clean = utf8_clean(ev->text, ev->len, &cl, stack, sizeof stack);
    if (ev->thought && r->think && !r->thought_done) {
        thought_start(r);
        if (clean && cl > 0) {
            cst_buf_put(&r->thought, clean, cl);
            if (r->summaries)
                emit_locked(r, "step.delta",
                            json_pack("{s:i,s:{s:s,s:{s:s,s:s%}}}", "index", 0, "delta", "type", "thought_summary",
                                      "content", "type", "text", "text", clean, cl));
        }
    } else if (!ev->thought && r->tools_on) {
        if (clean && cl > 0) cst_buf_put(&r->text, clean, cl);
        /* text until a possible call; a call once its syntax closes */
        const char *close = r->tool_family == CST_TOOLS_LLAMA3 ? "}" : "</tool_call>";
        const size_t cn = strlen(close);
        if (!r->text.oom && !r->calls) emit_text_upto(r, text_safe_len(r), false);
        if (!r->text.oom && clean && cl > 0 && r->text.len >= cn && !memcmp(r->text.p + r->text.len - cn, close, cn))
            emit_calls(r);
    } else if (!ev->thought) {
        output_start(r);
        if (clean && cl > 0) {
            cst_buf_put(&r->text, clean, cl);
            append_locked(r, "step.delta",
                          cst_api_text_delta_json(r->n_ev + 1, r->thought_started ? 1 : 0, clean, cl));
        }
    }
    if (clean != stack) free(clean);
}

static void on_sched_event(void *ud, const cst_sched_event *ev) {
    run *r = ud;
    pthread_mutex_lock(&r->mu);
    handle_locked(r, ev);
    pthread_mutex_unlock(&r->mu);
}

static void *pump(void *arg) {
    run *r = arg;
    cst_server *s = r->srv;
    for (;;) {
        cst_sched_event ev;
        /* a live run's events are stored every 100 ms; a gated job looks as often for its first output */
        double wait = r->live || (r->gate && !r->out_stored) ? 0.1 : 1.0;
        if (r->live) live_flush(r);
        else if (r->gate) output_flag(r);
        if (r->deadline > 0) wait = CST_MAX(0.001, CST_MIN(wait, r->deadline - cst_time_now()));
        if (!cst_sched_req_next(r->req, &ev, wait)) {
            if (r->deadline > 0 && cst_time_now() >= r->deadline) {
                pthread_mutex_lock(&r->mu);
                if (!r->timed_out) {
                    r->timed_out = true;
                    cst_sched_req_cancel(r->req);
                }
                r->deadline = 0;
                pthread_mutex_unlock(&r->mu);
            }
            continue;
        }
        /* the engine's sink appends the token events itself: a short job may
         * end before the pump saw its output, which shows once it is final */
        if (ev.type == CST_SCHED_EV_DONE && r->gate && !r->live) output_flag(r);
        pthread_mutex_lock(&r->mu);
        if (ev.type != CST_SCHED_EV_DONE) {
            handle_locked(r, &ev);
            free(ev.text);
        } else {
            r->n_prompt = ev.n_prompt;
            r->n_cached = ev.n_cached;
            r->n_gen = ev.n_gen;
            r->n_thought = ev.n_thought;
            if (r->timed_out) {
                char m[160];
                snprintf(m, sizeof m, "the interaction exceeded the server's time limit (%g s)", r->limit_s);
                r->status = "failed";
                r->error_code = "gateway_timeout";
                r->error_msg = strdup(m);
            } else if (ev.status != CST_OK) {
                r->status = "failed";
                r->error_code = "internal";
                r->error_msg = ev.text ? strdup(ev.text) : strdup("generation failed");
            } else if (r->text.oom || r->thought.oom) {
                r->status = "failed";
                r->error_code = "internal";
                r->error_msg = strdup("out of memory keeping the generated text");
            } else if (ev.finish == CST_FINISH_CANCELLED || atomic_load(&r->cancel_requested)) {
                r->status = "cancelled";
            } else if (ev.finish == CST_FINISH_LENGTH) {
                r->status = "incomplete";
            } else {
                r->status = "completed";
            }
            r->final = true; /* status, usage and errors change together, under r->mu */
            free(ev.text);
            if (r->tools_on && !r->text.oom) finish_calls(r);
            if (!r->calls) {
                output_start(r);
                emit_locked(r, "step.stop", json_pack("{s:i}", "index", r->thought_started ? 1 : 0));
            }
            if (!strcmp(r->status, "failed"))
                emit_locked(r, "error", json_pack("{s:{s:s,s:s}}", "error", "code", r->error_code, "message",
                                                  r->error_msg ? r->error_msg : "generation failed"));
            r->updated = (int64_t)time(NULL);
            emit_locked(r, "interaction.completed", json_pack("{s:o}", "interaction", interaction_head(r, true)));
            cst_sched_req_release(r->req);
            r->req = NULL;
            pthread_mutex_unlock(&r->mu);
            cst_metrics_tokens(r->n_prompt, r->n_cached, r->n_gen, r->n_cached > 0);
            if (r->store) persist(r);
            pthread_mutex_lock(&r->mu);
            if (r->persist_err) /* a stream that could not be stored ends with an error event */
                emit_locked(r, "error", json_pack("{s:{s:s,s:s}}", "error", "code",
                                                  r->persist_transient ? "unavailable" : "internal", "message",
                                                  r->persist_err));
            r->done = true;
            pthread_cond_broadcast(&r->cv);
            pthread_cond_broadcast(&r->ev_cv);
            wake_watchers_locked(r);
            pthread_mutex_unlock(&r->mu);
            break;
        }
        pthread_mutex_unlock(&r->mu);
    }
    unlink_run(s, r);
    if (r->live) cst_queue_kick(s); /* a slot is free: a queued job may take it */
    cst_run_unref(r);
    return NULL;
}

/* A stored run on a store shared by replicas is live: its record carries
 * this replica's lease; a background one also its create body, so that
 * another replica can run it again (queue.c), or this process after a
 * restart (one process: SQLite). */
static void live_setup(run *r, smodel *sm, json_t *body) {
    if (!r->store) return;
    r->live = r->srv->queue != NULL;
    /* one process (SQLite) keeps a background job's body too: it runs again
     * after a restart if it showed no output (output_flag) */
    if (!r->background || (!r->live && !r->srv->store->ops->job_output)) return;
    r->gate = true;
    r->job_body = json_dumps(body, JSON_COMPACT);
    r->job_model = sm->stem;
}

/* The scheduler here is full: the accepted background job (its record
 * stored with this replica's lease) goes back to the shared queue, where
 * any replica serving its model claims it. *out: a run that is not run here,
 * for the accepted reply only (detached). */
static cst_status live_detach(run *r, run **out, char *err, size_t errlen) {
    cst_server *s = r->srv;
    cst_status st = s->store->ops->job_release(s->store, r->id, cst_queue_node(s));
    if (st) {
        cst_errf(err, errlen, "cannot queue the interaction: %s", s->store->err);
        (void)cst_store_del(s->store, r->owner, r->id);
        run_free(r);
        return st;
    }
    r->detached = true;
    r->refs = 1;
    r->status = r->accepted_status = "queued";
    *out = r;
    return CST_OK;
}

/* The shortest sentence of a grammar (what: "answer the schema allows")
 * must fit max_output_tokens (0: none) and the context left; else a 400
 * message naming the minimum. */
static bool grammar_fits(const cst_grammar *g, int32_t max_tokens, int64_t room, const char *what, char *err,
                         size_t errlen) {
    const int32_t need = cst_grammar_min_bytes(g);
    if (max_tokens > 0 && need > max_tokens) {
        snprintf(err, errlen,
                 "generation_config.max_output_tokens: %d is below the shortest %s (%d tokens); raise it to at "
                 "least %d",
                 max_tokens, what, need, need);
        return false;
    }
    if (need > room) {
        snprintf(err, errlen, "the shortest %s (%d tokens) does not fit in the context left after the prompt (%lld tokens)",
                 what, need, (long long)room);
        return false;
    }
    return true;
}

static char *dump_or_null(json_t *j) { return j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL; }

/* job: a job claimed from the shared queue (queue.c), or NULL: a new create. */
static cst_status run_start(cst_server *s, smodel *sm, const create_req *cr, const char *owner, const chat_prompt *cp,
                            json_t *history, json_t *body, const cst_job *job, run **out, char *err, size_t errlen) {
    *out = NULL;
    const char *extra_stop = cp->extra_stop;
    cst_req_params rp = {.prompt = cp->toks, .n_prompt = cp->n_toks, .embds = cp->embds, .n_embds = cp->n_embds};
    if (cp->think) {
        rp.think_open = sm->chat.think_open;
        rp.think_close = sm->chat.think_close;
        rp.think_inside = cp->think_inside;
        rp.think_budget = cp->think_budget;
        rp.think_force = sm->chat.force;
        rp.n_think_force = sm->chat.n_force;
        rp.n_force_thought = sm->chat.n_force_thought;
    }
    rp.sampling = cst_sampler_default_params();
    rp.sampling.temperature = cr->has_temperature ? (float)cr->temperature : 1.0f;
    rp.sampling.top_p = cr->has_top_p ? (float)cr->top_p : 0.95f;
    rp.sampling.top_k = cr->has_top_k ? (int32_t)cr->top_k : 40;
    rp.sampling.min_p = 0.0f;
    if (cr->has_seed) {
        uint64_t sd = (uint64_t)cr->seed;
        rp.sampling.seed = sd == CST_SAMPLER_SEED_RANDOM ? sd - 1 : sd;
    } else {
        rp.sampling.seed = CST_SAMPLER_SEED_RANDOM;
    }
    rp.max_tokens = cr->has_max ? (int32_t)CST_MIN(cr->max_output_tokens, (int64_t)INT32_MAX) : 0;
    const char *stops[MAX_STOPS + 1];
    size_t ns = 0;
    for (size_t i = 0; i < cr->n_stops; i++) stops[ns++] = cr->stops[i];
    if (extra_stop) stops[ns++] = extra_stop;
    rp.stops = stops;
    rp.n_stops = ns;
    /* structured output: the answer is constrained by the schema's grammar
     * (the compiled grammar is cached by the schema's canonical text); stop
     * sequences would cut the value, so they do not apply */
    cst_grammar *grammar = NULL;
    const int64_t room = (int64_t)cst_sched_n_ctx(sm->sched) - (int64_t)cp->n_toks;
    if (cr->json_output) {
        grammar = cst_schema_get(cr->response_schema, "response_format.schema", NULL, err, errlen);
        if (!grammar || !grammar_fits(grammar, rp.max_tokens, room, "answer the schema allows", err, errlen)) {
            cst_grammar_unref(grammar);
            return CST_ERR_INVALID_ARG;
        }
        rp.grammar = grammar;
        rp.n_stops = 0;
    } else if (cr->tools.tools) {
        /* function calling: free text until the family's call syntax, then
         * only well-formed calls of the allowed tools (any: only calls;
         * none: the syntax masked) */
        grammar = cst_tools_grammar(sm->chat.tool_family, &cr->tools, err, errlen);
        if (!grammar || !grammar_fits(grammar, rp.max_tokens, room, "function call the tools allow", err, errlen)) {
            cst_grammar_unref(grammar);
            return CST_ERR_INVALID_ARG;
        }
        rp.grammar = grammar;
        if (cr->tools.mode == CST_TC_ANY) rp.n_stops = 0;
    }

    run *r = calloc(1, sizeof *r);
    if (!r) {
        cst_grammar_unref(grammar);
        return CST_ERR_NOMEM;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    pthread_cond_init(&r->ev_cv, NULL);
    r->srv = s;
    r->n_image = cp->n_image_tokens;
    r->refs = 2; /* caller + pump */
    cst_api_new_id(r->id);
    snprintf(r->owner, sizeof r->owner, "%s", owner);
    r->model = strdup(cr->model);
    r->store = cr->store;
    r->background = cr->background;
    r->created = (int64_t)time(NULL);
    if (job) {
        snprintf(r->id, sizeof r->id, "%s", job->rec.id);
        r->created = job->rec.created;
    }
    live_setup(r, sm, body);
    r->status = "queued";
    r->think = cp->think;
    r->tools_on = cst_tools_active(&cr->tools);
    r->tool_family = sm->chat.tool_family;
    r->max_answer = rp.max_tokens;
    r->n_ctx = cst_sched_n_ctx(sm->sched);
    r->think_eager = cp->think && cp->think_inside;
    r->summaries = cp->summaries;
    r->previous_id = cr->previous_id ? strdup(cr->previous_id) : NULL;
    json_t *echo = json_object();
    if (cr->system_instruction) json_object_set_new(echo, "system_instruction", json_string(cr->system_instruction));
    if (cr->generation_config) json_object_set(echo, "generation_config", cr->generation_config);
    if (cr->labels) json_object_set(echo, "labels", cr->labels);
    if (cr->response_format) json_object_set(echo, "response_format", cr->response_format);
    if (cr->response_mime) json_object_set_new(echo, "response_mime_type", json_string(cr->response_mime));
    if (cr->tools.tools) json_object_set(echo, "tools", cr->tools.tools);
    r->request_echo = dump_or_null(echo);
    json_decref(echo);
    r->input_json = dump_or_null(json_object_get(body, "input"));
    r->history_json = dump_or_null(history);
    r->turn_json = dump_or_null(cr->turn);
    r->t_submit = cst_time_now();
    r->limit_s = (cr->stream || cr->background) ? s->p.stream_timeout_s : s->p.request_timeout_s;
    if (r->limit_s > 0) r->deadline = r->t_submit + r->limit_s;
    if (!r->model || !r->request_echo || !r->turn_json || (r->gate && !r->job_body)) {
        run_free(r);
        cst_grammar_unref(grammar);
        return CST_ERR_NOMEM;
    }

    /* acknowledged means stored: a stored interaction's first record is
     * durable before it is submitted (and so before any reply names its id);
     * a store that refuses it fails the create (503/500) */
    if (r->store && !job) {
        cst_status pst = put_record(r, false);
        if (pst) {
            cst_errf(err, errlen, "cannot store the interaction: %s",
                     pst == CST_ERR_NOMEM ? "out of memory" : s->store->err);
            run_free(r);
            return pst;
        }
    }

    /* r->mu is held from the submit until interaction.created is in the
     * log: the engine's first event (the sink) waits for it */
    rp.on_event = on_sched_event;
    rp.on_event_ud = r;
    pthread_mutex_lock(&s->runs_mu);
    pthread_mutex_lock(&r->mu);
    cst_status st = cst_sched_submit(sm->sched, &rp, &r->req, err, errlen);
    cst_grammar_unref(grammar); /* the request holds its own reference */
    if (st) {
        pthread_mutex_unlock(&r->mu);
        pthread_mutex_unlock(&s->runs_mu);
        if (st == CST_ERR_BUSY && !job && r->live && r->background)
            return live_detach(r, out, err, errlen); /* no room here: the shared queue takes it */
        if (r->store && !job) (void)cst_store_del(s->store, r->owner, r->id); /* never acknowledged */
        run_free(r);
        return st;
    }
    r->next = s->runs;
    s->runs = r;
    s->n_runs++;
    pthread_mutex_unlock(&s->runs_mu);

    /* "queued" while every slot is busy; interaction.status_update
     * (in_progress) follows when the scheduler admits it (the sink) */
    if (r->status[0] == 'q' && !cst_sched_req_waiting(r->req)) r->status = "in_progress";
    r->accepted_status = r->status;
    emit_locked(r, "interaction.created", json_pack("{s:o}", "interaction", interaction_head(r, false)));
    pthread_mutex_unlock(&r->mu);

    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &at, pump, r) != 0) {
        pthread_attr_destroy(&at);
        cst_run_cancel(r);
        /* no pump: drain the request here so the run ends consistently */
        pump(r);
        *out = r;
        return CST_OK;
    }
    pthread_attr_destroy(&at);
    *out = r;
    return CST_OK;
}

cst_status cst_run_start(cst_server *s, smodel *sm, const create_req *cr, const char *owner, const chat_prompt *cp,
                         json_t *history, json_t *body, run **out, char *err, size_t errlen) {
    return run_start(s, sm, cr, owner, cp, history, body, NULL, out, err, errlen);
}

cst_status cst_run_start_job(cst_server *s, smodel *sm, const create_req *cr, const cst_job *job,
                             const chat_prompt *cp, json_t *history, json_t *body, run **out, char *err,
                             size_t errlen) {
    return run_start(s, sm, cr, job->rec.owner, cp, history, body, job, out, err, errlen);
}
