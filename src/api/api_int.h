/* api_int.h: structures shared by the files of src/api (not used elsewhere).
 * server.c: MHD daemon, routing; errors.c: JSON/error replies; auth.c: keys;
 * validate.c: create-request validation and input normalisation; chat.c:
 * conversation -> prompt text; run.c: in-flight interactions (event log,
 * pump thread, persistence); routes.c: interaction endpoints and SSE;
 * metrics.c: Prometheus counters.
 */
#ifndef CST_API_INT_H
#define CST_API_INT_H

#include "api.h"
#include "core/base64.h"
#include "core/core.h"
#include "core/lru.h"
#include "core/sha256.h"
#include "engine/engine.h"
#include "engine/runtime/sched.h"
#include "engine/template/template.h"
#include "store/store.h"
#include "tools.h"

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

/* ---- models ------------------------------------------------------------ */
/* A model's chat setup, read once at load (chat.c). */
typedef struct chat_model {
    const cst_vocab *vocab;   /* the model's (borrowed) */
    cst_template *tpl;        /* NULL: the plain fallback format */
    char *bos_text, *eos_text;
    bool tpl_thinking_var;    /* the template reads enable_thinking */
    bool tpl_reasoning_field; /* the template reads reasoning_content */
    bool can_think;           /* markers are vocab tokens and the template knows them */
    char think_open[32], think_close[32];
    cst_token think_close_tok;
    cst_token *force;         /* forced end of a thought: "\n</think>\n\n" */
    size_t n_force, n_force_thought;
    int32_t budgets[4];       /* thought tokens per level: minimal, low, medium, high */
    int default_level;        /* 0..3 */
    cst_tool_family tool_family; /* the call syntax (tools.h) */
    bool tpl_tools;           /* the template renders tools itself (else the fallback tool prompt) */
} chat_model;

typedef struct smodel {
    char *path;
    char *stem;
    cst_model *m;
    cst_sched *sched;
    chat_model chat;
    struct cst_vision *vision; /* --mmproj projector, or NULL (no image input) */
    pthread_mutex_t vision_mu; /* cst_vision_encode is not reentrant */
    struct cst_pool *vision_pool; /* its threads (-t), NULL without a projector */
    size_t max_piece; /* bytes of the vocabulary's longest token text: no token covers more input bytes */
} smodel;

typedef struct alias {
    char *name;
    int model;
} alias;

typedef struct run run;

/* ---- parked connections (server.c) ----------------------------------------
 * libmicrohttpd runs an epoll thread pool: no handler may block its worker.
 * A connection that waits (an SSE writer with nothing to send, a unary create
 * waiting for its run) is suspended, "parked", and resumed by whoever has
 * news for it: its run's next event (cst_run_watch_locked), or the server's
 * ticker (every CST_PARK_TICK_S: a keep-alive comment is due at wake_at, or
 * the client hung up). Lock order: run mu, then the server's park_mu, then
 * MHD's own. */
#define CST_PARK_TICK_S 0.2
#define CST_RETRY_S 0.05 /* a request parked to run again (cs->retry) waits this long */
#define CST_HTTP_THREADS_MIN 4  /* MHD workers: CPUs, at least this... */
#define CST_HTTP_THREADS_MAX 16 /* ...and at most this */
typedef struct cst_park {
    struct MHD_Connection *c;
    int fd;                       /* its socket (hang-up checks) */
    double wake_at;               /* the ticker resumes it then (0: never) */
    bool parked;                  /* suspended, not yet resumed (park_mu) */
    struct cst_park *prev, *next; /* the server's parked list (park_mu) */
    struct cst_park *run_next;    /* a run's watchers (run mu) */
    bool on_run;                  /* in a run's watcher list (run mu) */
} cst_park;
/* Suspend p's connection (wake_at as above); the caller is in that
 * connection's MHD callback and returns from it. Suspend and resume both
 * happen under park_mu, so a resume never comes before its suspend (which
 * MHD would lose). */
void cst_park_conn(cst_server *s, cst_park *p, double wake_at);
/* Resume p's connection if it is parked (any thread). */
void cst_unpark(cst_server *s, cst_park *p);
/* Take p off the server's list without resuming it (its connection ends). */
void cst_park_forget(cst_server *s, cst_park *p);

struct cst_server {
    cst_server_params p;
    char host[256];
    char prefix[256];
    int port;
    struct MHD_Daemon *mhd;
    smodel *models;
    size_t n_models;
    alias *aliases;
    size_t n_aliases;
    cst_store *store;
    /* auth: sha256 hex of each key */
    char (*key_hashes)[65];
    size_t n_keys;
    /* in-flight runs (stored ones are findable by id) */
    pthread_mutex_t runs_mu;
    pthread_cond_t runs_cv;
    run *runs;        /* list */
    int n_runs;       /* all in-flight runs, stored or not */
    atomic_bool draining;
    atomic_int n_handlers; /* access handlers currently inside a request */
    atomic_int n_writers;  /* SSE responses not yet freed */
    double t_start;
    uint8_t sig_key[32];   /* thought signatures (signature.c) */
    struct cst_files *files; /* Files API state (files.c) */
    struct cst_queue *queue; /* live runs shared with other replicas (queue.c); NULL: one process */
    struct cst_queue *resume; /* one process: background jobs run again after a restart (queue.c); or NULL */
    /* parked connections and the ticker that wakes them (server.c) */
    pthread_mutex_t park_mu;
    pthread_cond_t park_cv; /* the ticker's sleep: signalled by a park due before park_next */
    double park_next;       /* when the ticker wakes next (park_mu) */
    cst_park *parked;
    size_t n_parked;
    pthread_t ticker;
    bool ticker_started;
    atomic_bool ticker_stop;
};

/* ---- per-connection request state ----------------------------------- */
typedef struct conn {
    char *body;
    size_t len, cap;
    double t_start; /* first byte of the request (body deadline) */
    bool too_large;
    bool counted;
    int fd; /* client socket (disconnect checks) */
    void *upload; /* files.c: an upload chunk streamed to its session's temp file */
    /* dialects (dialect.c): the Interactions request built from another API's
     * body, and how its result is answered (NULL: an Interactions request) */
    json_t *xbody;
    struct cst_dialect_out *xout;
    /* a unary create waiting for its run while the connection is parked
     * (routes.c: cst_route_resume answers when the run is done) */
    run *wait;
    struct cst_dialect_out *wait_out; /* the dialect's unary hook (owns its ctx), or NULL */
    int wait_style;                   /* err_style of the request */
    int rid;                          /* route_id, for the metrics of the deferred reply */
    bool retry;                       /* parked to run the request again (image decode memory full) */
    double cancel_until;              /* routes.c: a cancel of a run live on another replica, asked;
                                       * looked at again until then (0: not asked) */
    cst_park pk;
} conn;

/* ---- dialects: answering another API's request from a run (dialect.c) --- */
typedef struct cst_dialect_out {
    void *ctx;                  /* the stream writer takes it (ctx set to NULL) */
    void (*ctx_free)(void *ctx);
    /* a run event (type, its JSON text) -> the bytes to send (malloc'd; ""
     * sends nothing); type ":" a keep-alive (never ""), NULL the end */
    char *(*stream)(void *ctx, const char *type, const char *data);
    const char *stream_ctype;   /* Content-Type of the stream (NULL: SSE) */
    /* the unary reply of a finished run */
    enum MHD_Result (*unary)(void *ctx, struct MHD_Connection *c, run *r);
    /* set: answer with the prompt's token count instead of running */
    enum MHD_Result (*count)(void *ctx, struct MHD_Connection *c, size_t n_tokens);
} cst_dialect_out;
/* Routes of the other dialects (generateContent, chat completions, models);
 * false when path is none of them. */
bool cst_dialect_dispatch(cst_server *s, struct MHD_Connection *c, conn *cs, const char *path, const char *method,
                          enum MHD_Result *ret);

/* ---- errors / replies (errors.c) -------------------------------------- */
typedef enum {
    E_INVALID = 0,  /* 400 invalid_request */
    E_PRECOND,      /* 400 failed_precondition */
    E_UNAUTH,       /* 401 unauthenticated */
    E_DENIED,       /* 403 permission_denied */
    E_NOT_FOUND,    /* 404 not_found */
    E_TOO_LARGE,    /* 413 invalid_request */
    E_EXHAUSTED,    /* 429 resource_exhausted */
    E_INTERNAL,     /* 500 internal */
    E_UNAVAILABLE,  /* 503 unavailable */
    E_TIMEOUT,      /* 504 gateway_timeout */
    E_URI_TOO_LONG, /* 414 invalid_request */
    E_HEADERS_TOO_LARGE, /* 431 invalid_request */
    E_UNIMPLEMENTED, /* 501 unimplemented (a Transfer-Encoding other than chunked) */
    E_HTTP_VERSION,  /* 505 invalid_request (HTTP/0.x, HTTP/2+ on the HTTP/1 port) */
    E_KIND_LAST
} ekind;

int cst_api_ekind_http(ekind k);
const char *cst_api_ekind_code(ekind k);
/* Queue a JSON error reply {"error":{"code","message"}}; counts it. */
enum MHD_Result cst_api_error(struct MHD_Connection *c, ekind k, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Queue a JSON reply (steals j). */
enum MHD_Result cst_api_json(struct MHD_Connection *c, int status, json_t *j);
/* cst_api_json plus the header X-Castor-Interaction-Id: id (a balancer learns
 * which replica holds a conversation from it; docs/deploy.md). */
enum MHD_Result cst_api_json_id(struct MHD_Connection *c, int status, json_t *j, const char *id);
void cst_api_common_headers(struct MHD_Response *r);
/* The error body shape of this thread's current request (thread per
 * connection): {"error":{"code":"invalid_request",...}} (interactions), Google
 * RPC {"error":{"code":400,"message","status"}}, or OpenAI's. */
typedef enum { ERR_STYLE_INTERACTIONS = 0, ERR_STYLE_RPC, ERR_STYLE_OPENAI } err_style;
void cst_api_set_err_style(err_style st);
err_style cst_api_get_err_style(void);
/* The error body of kind k in a style (new reference). */
json_t *cst_api_error_body(err_style st, ekind k, const char *msg);
/* Map a cst_status to an error kind. */
ekind cst_api_status_kind(cst_status st);
/* Replace invalid UTF-8 bytes of a NUL-terminated string in place by '?'. */
void cst_api_utf8_fix(char *s);

/* ---- auth (auth.c) ------------------------------------------------------ */
cst_status cst_api_load_keys(cst_server *s, const char *path, char *err, size_t errlen);
/* Resolve the caller: owner gets the key hash ("local" without auth). Returns
 * false after queueing the 400/401/403 reply. */
bool cst_api_auth(cst_server *s, struct MHD_Connection *c, char owner[65], enum MHD_Result *ret);

/* ---- create request (validate.c) ---------------------------------------- */
#define MAX_STOPS 5
typedef struct create_req {
    const char *model;
    json_t *input;              /* borrowed from the body */
    const char *system_instruction;
    bool stream, store, background;
    const char *previous_id;
    json_t *generation_config;  /* borrowed, echoed */
    json_t *labels;             /* borrowed, echoed */
    bool has_temperature, has_top_p, has_seed, has_max;
    bool has_top_k; /* Castor extension (generateContent's topK) */
    int64_t top_k;
    double temperature, top_p;
    int64_t seed;
    int64_t max_output_tokens;
    const char *stops[MAX_STOPS];
    size_t n_stops;
    /* normalised input: context steps and the turn (new references) */
    json_t *context;
    json_t *turn;
    /* structured output (§8): JSON answers, constrained by response_schema
     * (borrowed; NULL: any JSON value) */
    bool json_output;
    json_t *response_schema;
    json_t *response_format;    /* borrowed, echoed */
    const char *response_mime;  /* borrowed, echoed */
    /* function calling (§9, tools.h): declarations and tool_choice (borrowed) */
    cst_tools tools;
} create_req;

/* Validate the body (a JSON object) per §2; on failure err names the JSON
 * path and the function returns false. On success the caller frees with
 * create_req_clear. */
bool cst_api_parse_create(json_t *body, create_req *r, char *err, size_t errlen);
void create_req_clear(create_req *r);

/* ---- conversation rendering and thinking (chat.c, signature.c) --------- */
/* Load the model's chat setup: its template (or the file tpl_path), parsed
 * once (an unsupported construct fails here, naming it), thinking markers,
 * budgets ("MIN,LOW,MEDIUM,HIGH" or NULL: 64,1024,4096,16384) and default
 * level (NULL: medium). */
cst_status cst_chat_model_init(chat_model *cm, const cst_vocab *v, const char *model_template, const char *tpl_path,
                               const char *budgets, const char *level, char *err, size_t errlen);
void cst_chat_model_free(chat_model *cm);
void cst_chat_model_describe(const chat_model *cm, char *out, size_t n);
int cst_thinking_level_of(const char *s); /* "minimal".."high" -> 0..3, else -1 */

typedef struct chat_prompt {
    cst_token *toks;
    size_t n_toks;
    const char *extra_stop; /* the fallback format's stop, or NULL */
    bool think;             /* thinking model: the think_* fields apply */
    bool think_inside;      /* the prompt opened a thought */
    int32_t think_budget;
    bool summaries;         /* thinking_summaries "auto" */
    char *text;             /* the rendered prompt text (contents substituted) */
    size_t text_len;
    size_t *plain;          /* content byte ranges of text, pairs */
    size_t n_plain;
    /* images (files_media.c: cst_media_tokens replaces toks): blocks of
     * marker tokens in toks, their embedding rows borrowed from the cache */
    const cst_req_embd *embds;
    size_t n_embds;
    int32_t n_image_tokens;
} chat_prompt;

/* The marker an image block renders as in chat text (files_media.c). */
const char *cst_media_marker(void);

/* Render the conversation (system, then the steps of each list in order:
 * user_input, model_output, thought; others skipped) with the model's chat
 * template and tokenize it; thought steps whose signature verifies give the
 * next assistant message its reasoning_content. */
cst_status cst_chat_prompt(const chat_model *cm, const uint8_t sig_key[32], const char *system, json_t *const *lists,
                           size_t n_lists, json_t *generation_config, chat_prompt *out, char *err, size_t errlen);
/* The same with function declarations (tools.h; NULL: none): given to the
 * template as `tools` (OpenAI's {type, function} shape) when it renders
 * them, else listed by the fallback tool prompt appended to the system
 * message. function_call steps become the assistant's tool_calls,
 * function_result steps `tool` messages (the fallback: the hermes syntax in
 * the assistant's text, <tool_response> user messages). A function_result
 * whose call_id answers no earlier, unanswered function_call is refused
 * (CST_ERR_INVALID_ARG). */
cst_status cst_chat_prompt_tools(const chat_model *cm, const uint8_t sig_key[32], const char *system,
                                 json_t *const *lists, size_t n_lists, json_t *generation_config, json_t *tools,
                                 chat_prompt *out, char *err, size_t errlen);
void cst_chat_prompt_clear(chat_prompt *cp);

/* Thought signatures: base64url text carrying the reasoning + HMAC-SHA256. */
char *cst_sig_make(const uint8_t key[32], const char *text, size_t len);
/* Verify; on success *text is the malloc'd reasoning. False when forged. */
bool cst_sig_open(const uint8_t key[32], const char *sig, char **text, size_t *len);
/* The key: flag (64 hex), else $CASTOR_SIGNATURE_KEY, else DATA_DIR/signature.key (created). */
cst_status cst_sig_load_key(const char *flag, const char *data_dir, uint8_t key[32], char *err, size_t errlen);

/* ---- runs (run.c) -------------------------------------------------------- */
struct run {
    cst_server *srv;
    pthread_mutex_t mu;
    pthread_cond_t cv;    /* done */
    pthread_cond_t ev_cv; /* a new event in the log (SSE writers) */
    int refs;
    run *next; /* server list */
    char id[48];
    char owner[65];
    char *model;  /* as sent */
    bool store, background;
    int64_t created, updated;
    char *previous_id;
    char *request_echo; /* JSON object text of echoed fields */
    char *input_json, *history_json, *turn_json;
    /* live state */
    char **ev_data;  /* event JSON texts; event_id = index + 1 */
    const char **ev_type; /* static strings */
    size_t n_ev, cap_ev;
    cst_buf text; /* the output text (oom: the run fails) */
    bool step_started;
    /* function calling (tools.h): text that may start a call is held back;
     * at the end the text is parsed and the calls become function_call steps */
    bool tools_on;
    cst_tool_family tool_family;
    size_t text_emitted; /* bytes of text sent as deltas */
    json_t *calls;       /* the function_call steps sent so far, NULL: none */
    size_t text_final;   /* with calls: the model_output text's length (what was streamed before them) */
    int32_t max_answer, n_ctx; /* the answer's budget (0: none) and the context, for free text cut by them */
    const char *status; /* "queued"/"in_progress" then terminal */
    const char *error_code; /* failed: "internal" or "gateway_timeout" */
    char *error_msg;
    double deadline;    /* cst_time_now() limit (0: none) */
    double limit_s;     /* the limit it came from (messages) */
    bool timed_out;
    int32_t n_prompt, n_cached, n_gen;
    int32_t n_image; /* of n_prompt, image positions (usage by modality) */
    /* thinking: a thought step (index 0) before the model_output */
    bool think, think_eager, summaries; /* eager: the prompt opened the thought */
    bool thought_started, thought_done;
    cst_buf thought; /* reasoning text */
    char *signature;
    int32_t n_thought;
    const char *accepted_status; /* "queued"/"in_progress" when the create was accepted */
    bool final; /* status is terminal and usage/errors are set (shown from then on) */
    bool done;  /* final and persisted: waiters and SSE writers may finish */
    char *persist_err;      /* set when the final record could not be stored (before done) */
    bool persist_transient; /* ... and the store called it transient (503, else 500) */
    atomic_bool cancel_requested;
    cst_sched_req *req;
    double t_submit, t_last_token;
    /* shared with other replicas through the store (queue.c; r->mu) */
    bool live;        /* its record carries this replica's lease; events are stored while it runs */
    bool gate;        /* a background job: its output is shown (here too) only once stored */
    bool detached;    /* not run here: put in the shared queue for any replica (no pump, no events) */
    bool lease_lost;  /* another replica holds it now: nothing more is written */
    bool out_stored;  /* an output event is in the store */
    size_t n_stored;  /* events written to the store */
    char *job_body;   /* a live background run: its create body (run again from it elsewhere) */
    const char *job_model; /* ... and the model replicas claim it by (the served file's stem) */
    cst_park *watchers; /* parked connections to resume at the next event (mu) */
};

/* Start a run: submits to the scheduler (errors before any event: BUSY,
 * CTX_FULL...), spawns its pump thread. On success *out has one reference for
 * the caller (run_unref). */
cst_status cst_run_start(cst_server *s, smodel *sm, const create_req *cr, const char *owner, const chat_prompt *cp,
                         json_t *history, json_t *body, run **out, char *err, size_t errlen);
/* Resume p's parked connection at the run's next event or its end (r->mu
 * held; one-shot: the watcher is dropped when it fires). */
void cst_run_watch_locked(run *r, cst_park *p);
void cst_run_unwatch(run *r, cst_park *p);
/* True when r is done; else p watches r and its connection is parked. */
bool cst_run_done_or_park(run *r, cst_park *p);
void cst_run_unref(run *r);
void cst_run_cancel(run *r);
/* Wait until done (timeout < 0: forever); returns done. */
bool cst_run_timed_out(run *r);
bool cst_run_wait(run *r, double timeout_s);
/* Find an in-flight stored run of owner (with a reference), or NULL. */
run *cst_run_find(cst_server *s, const char *owner, const char *id);
/* Interaction JSON of a run (create response shape when with_turn is false). */
json_t *cst_run_json(run *r, bool with_turn, bool include_input);
/* The interaction as it was accepted (§5.4's immediate background reply):
 * status queued or in_progress, no steps, whatever the run did since. */
json_t *cst_run_accepted_json(run *r);
/* Interaction JSON from a stored record. */
json_t *cst_irec_json(const cst_irec *rec, bool include_input);
void cst_runs_cancel_all(cst_server *s);
/* Start the run of a job claimed from the shared queue (queue.c): its id,
 * created time and record are job's; otherwise as cst_run_start. */
cst_status cst_run_start_job(cst_server *s, smodel *sm, const create_req *cr, const cst_job *job,
                             const chat_prompt *cp, json_t *history, json_t *body, run **out, char *err,
                             size_t errlen);
/* Events a reader may see now (r->mu held): all, except a background job's
 * output before it is stored (queue.c: it could still be run again). */
size_t cst_run_visible_locked(run *r);
/* Random interaction id "v1_" + 22 base64url chars. */
void cst_api_new_id(char out[48]);
/* The step.delta text event, built by hand exactly as jansson would dump it
 * ({"event_type":"step.delta","event_id":"N","index":I,"delta":{"type":
 * "text","text":...}}; text: valid UTF-8 without NUL). malloc'd, or NULL. */
char *cst_api_text_delta_json(size_t event_id, int index, const char *text, size_t len);

/* ---- metrics (metrics.c) ------------------------------------------------- */
typedef enum { R_CREATE, R_GET, R_DELETE, R_CANCEL, R_MODELS, R_HEALTH, R_METRICS, R_OTHER, R_LAST } route_id;
void cst_metrics_request(route_id r, int http_status);
void cst_metrics_error(ekind k);
void cst_metrics_tokens(int64_t in, int64_t cached, int64_t out, bool cache_hit);
void cst_metrics_ttft(double s);
void cst_metrics_token_latency(double s);
char *cst_metrics_render(cst_server *s); /* malloc'd Prometheus text */
/* Prometheus lines of the replicas' shared queue into out ("" without one; queue.c). */
void cst_queue_metrics(cst_server *s, char *out, size_t n);
/* Metrics includes no other file of src/api: a cache's owner registers how to
 * read its counters, rendered as castor_NAME_cache_{hits_total,misses_total,
 * bytes,entries} (name and what are static strings; at most 4 caches;
 * registering a name again replaces its reader). */
typedef void (*cst_metrics_cache_fn)(uint64_t *hits, uint64_t *misses, uint64_t *bytes, uint64_t *entries);
void cst_metrics_cache_source(const char *name, const char *what, cst_metrics_cache_fn fn);

/* ---- routes (routes.c) ------------------------------------------------- */
enum MHD_Result cst_route_create(cst_server *s, struct MHD_Connection *c, conn *cs, const char *owner);
enum MHD_Result cst_route_get(cst_server *s, struct MHD_Connection *c, conn *cs, const char *owner,
                              const char *id);
enum MHD_Result cst_route_delete(cst_server *s, struct MHD_Connection *c, conn *cs, const char *owner,
                                 const char *id);
enum MHD_Result cst_route_cancel(cst_server *s, struct MHD_Connection *c, conn *cs, const char *owner,
                                 const char *id);
/* A parked unary create resumed (cs->wait): answers when its run is done, else
 * parks the connection again. */
enum MHD_Result cst_route_resume(cst_server *s, struct MHD_Connection *c, conn *cs);
/* The connection of cs ends: drop a parked create's wait (its run goes on). */
void cst_route_resume_end(cst_server *s, conn *cs);
smodel *cst_api_find_model(cst_server *s, const char *name);
/* True when the client socket is closed. */
bool cst_api_client_gone(int fd);

#endif
