/* queue.h: replicas sharing live runs through the store (queue.c): the
 * lease of each live run, the background-job queue (claim, take over after
 * a replica died), following and cancelling a run live on another replica;
 * and the prompt-building half of a create (routes.c), which a replica
 * claiming a job runs again. Used by src/api only.
 */
#ifndef CST_API_QUEUE_H
#define CST_API_QUEUE_H

#include "api_int.h"
#include "files.h"

/* ---- prompts of a create (routes.c; also queue.c for a claimed job) ----- */
typedef struct create_prep {
    smodel *sm;
    json_t *history; /* the stored chain, then the client-held context */
    chat_prompt cp;
    cst_media media;
    json_t *doc_lists[2];
    bool media_full; /* failed: the image decode memory is full now (E_EXHAUSTED; try again soon) */
} create_prep;
/* Resolve the model, rebuild the conversation (stored chain + context),
 * expand documents, render and tokenize, resolve images (c may be NULL).
 * On failure *k and err say why; clear p with create_prep_clear either way. */
bool cst_create_prepare(cst_server *s, struct MHD_Connection *c, create_req *cr, const char *owner, create_prep *p,
                        ekind *k, char *err, size_t errlen);
/* The output and context limits (after countTokens' hook); false: 400 with err. */
bool cst_create_limits(cst_server *s, create_req *cr, create_prep *p, char *err, size_t errlen);
void create_prep_clear(create_prep *p);

/* ---- replicas: live runs through the store, the background queue (queue.c) ---
 * Only with a store that shares live runs (cst_store_live); else s->queue is
 * NULL and every function below but cst_queue_resume does nothing. */
cst_status cst_queue_start(cst_server *s, char *err, size_t errlen);
/* One process (a store with jobs_unfinished: SQLite), once the server
 * serves: the background jobs the last stop left with no output run again,
 * through the same take as a replica's claim (a thread, s->resume). */
cst_status cst_queue_resume(cst_server *s, char *err, size_t errlen);
void cst_queue_stop(cst_server *s);  /* stops its thread(s); runs still finish and store (the node stays) */
void cst_queue_free(cst_server *s);  /* after the last run */
const char *cst_queue_node(cst_server *s);  /* this replica's lease name */
int64_t cst_queue_lease_ms(cst_server *s);
void cst_queue_kick(cst_server *s);         /* a slot was freed: look for queued jobs */
/* Notifications seen (a count). */
uint64_t cst_queue_gen(cst_server *s);
/* Park p's connection (the caller is in its MHD callback) until the next
 * notification or wake_at (server.c's ticker); false, not parked, when a
 * notification came since gen was read. */
bool cst_queue_park(cst_server *s, cst_park *p, uint64_t gen, double wake_at);
void cst_queue_unwatch(cst_server *s, cst_park *p); /* p's connection ends */
/* Ask (owner, id), live on another replica, to stop (the store's
 * cancel_request: a job nobody holds is cancelled at once). CST_ERR_CONFLICT:
 * terminal already; CST_ERR_NOT_FOUND; CST_ERR_STORE. */
cst_status cst_queue_cancel(cst_server *s, const char *owner, const char *id);
/* One process: cancel (owner, id) if it is a background job still waiting
 * to run again after a restart (cst_queue_resume); its record then says
 * cancelled. false: not one of them (or taken meanwhile: a run now). */
bool cst_queue_cancel_waiting(cst_server *s, const char *owner, const char *id);

#endif
