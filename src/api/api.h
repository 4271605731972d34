/* api.h: the HTTP server of the Interactions API (castor serve). Loads the
 * models, starts one engine scheduler per model, opens the store and serves
 * /{v1,v1beta,v1alpha}/interactions, /models, /health and /metrics with
 * libmicrohttpd. Used by src/cli/cmd_serve.c only.
 */
#ifndef CST_API_H
#define CST_API_H

/* Output tokens of a request without max_output_tokens (castor serve
 * --max-output; 0: until the context is full). Enough for a paragraph;
 * seconds on a small model, so examples never run to the context's end. */
#define CST_DEFAULT_MAX_OUTPUT 256
/* Open client connections (castor serve --max-connections). An idle or
 * waiting connection costs a descriptor and a few KiB, never a thread
 * (epoll, parked while it waits), so the default is large. */
#define CST_DEFAULT_MAX_CONNECTIONS 16384

#include "castor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cst_server cst_server;

typedef struct cst_server_params {
    const char *host;              /* default "127.0.0.1" */
    int port;                      /* 0: pick a free port (see cst_server_port) */
    const char *const *models;     /* model paths; the first is the default */
    size_t n_models;
    const char *const *aliases;    /* "NAME=MODEL" (MODEL = a path given in models, or its file stem) */
    size_t n_aliases;
    bool gemini_names;             /* the first model also answers gemini-* names (default true) */
    const char *data_dir;          /* default "./data" (created); the SQLite store lives there */
    const char *store_url;         /* overrides data_dir/castor.db */
    const char *api_keys_file;     /* one key per line (or sha256:HEX); NULL with no_auth */
    bool no_auth;                  /* only on a loopback host */
    int32_t n_ctx;                 /* per sequence; <= 0: model default (max 4096) */
    int32_t n_threads;             /* <= 0: all CPUs */
    int32_t n_slots;               /* sequences per model (default 4) */
    int32_t max_queue;             /* waiting requests per model before 429 (default 64) */
    size_t kv_cache_bytes;         /* host-memory KV snapshots per model (default 256 MiB; 0: off) */
    size_t max_body;               /* bytes; default 100 MiB */
    const char *prefix;            /* optional path prefix for reverse proxies ("/gemini") */
    int32_t default_max_output;    /* cap when a request sets no max_output_tokens (0: the context);
                                    * default CST_DEFAULT_MAX_OUTPUT */
    int32_t keepalive_ms;          /* SSE ": keep-alive" comment after this much silence (default 10000) */
    double request_timeout_s;      /* unary create deadline -> 504 gateway_timeout (default 600; < 0: none) */
    double stream_timeout_s;       /* stream / background deadline -> SSE error gateway_timeout (default 1200) */
    int32_t idle_timeout_s;        /* close a connection silent this long (default 60) */
    double body_timeout_s;         /* a request body must arrive within this (default 60; slow bodies) */
    /* Files API and image input (files.c) */
    const char *const *mmprojs;    /* [n_models]: vision projector GGUF per model, NULL entries: none (may be NULL) */
    uint64_t max_file_size;        /* bytes per uploaded file (default 2 GiB); 413 beyond */
    uint64_t file_quota;           /* bytes of live files + open uploads per API key (0: default 20 GiB;
                                      UINT64_MAX: unlimited); 429 at upload start beyond */
    int64_t file_ttl_s;            /* uploaded files expire after this (default 48 h) */
    double upload_timeout_s;       /* an idle upload session is dropped after this (default 3600) */
    size_t image_cache_bytes;      /* embedding cache budget (default 256 MiB) */
    size_t pdf_max_pages;          /* documents: a PDF with more pages is 400 (0: default 100) */
    uint64_t pdf_max_pixels;       /* documents: rendered page pixels per PDF (0: default 64 Mi) */
    bool log_prompts;              /* write every rendered prompt to stderr ("castor prompt: {JSON}") */
    /* per model (n_models entries each; an array or an entry may be NULL) */
    const char *const *chat_templates;   /* Jinja file overriding the GGUF's tokenizer.chat_template */
    const char *const *thinking_budgets; /* "MIN,LOW,MEDIUM,HIGH" thought tokens (default 64,1024,4096,16384) */
    const char *const *thinking_levels;  /* level for requests without thinking_level (default medium) */
    const char *signature_key;     /* 64 hex digits; NULL: $CASTOR_SIGNATURE_KEY, else DATA_DIR/signature.key */
    size_t image_decode_bytes;     /* pixel memory of the images being decoded at once, all requests
                                    * together (default 512 MiB): an image over it is a 400, the
                                    * others wait for room (up to 30 s, then 429) */
    int32_t max_connections;       /* open client connections (default CST_DEFAULT_MAX_CONNECTIONS; the descriptor limit
                                    * is raised to fit, else this is lowered to fit it) */
    int32_t max_connections_per_ip; /* per client address (default 0: no per-address limit) */
} cst_server_params;

cst_server_params cst_server_default_params(void);

/* Start serving (returns once the socket listens). Errors: model load,
 * store, bind, auth configuration; err says which. */
cst_status cst_server_start(const cst_server_params *p, cst_server **out, char *err, size_t errlen);
int cst_server_port(const cst_server *s);
/* Stop accepting connections, let running interactions finish for up to
 * timeout_s seconds, then cancel the rest (stored as cancelled). */
void cst_server_drain(cst_server *s, double timeout_s);
void cst_server_free(cst_server *s); /* stops everything; closes the store. NULL ok */


#endif
