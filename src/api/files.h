/* files.h: the Files API (§10: resumable uploads, get/list/delete/download)
 * and the media side of interactions (§2.4: image blocks by file URI or
 * inline base64, resolved to bytes, decoded and encoded by the model's vision
 * projector with an LRU cache of embeddings). Internal to src/api: server.c
 * calls the connection hooks and the dispatcher, routes.c the media calls.
 */
#ifndef CST_API_FILES_H
#define CST_API_FILES_H

#include "api_int.h"

typedef struct cst_files cst_files;

/* Create <data_dir>/files/{blobs,tmp}, drop leftovers of interrupted uploads,
 * remove blobs no file refers to, start the janitor (expired files, idle
 * upload sessions). Sets s->files. */
cst_status cst_files_open(cst_server *s, char *err, size_t errlen);
void cst_files_close(cst_files *f); /* NULL ok; stops the janitor */

/* ---- upload chunk streaming (server.c) --------------------------------- */
/* First call of a request: an upload chunk (POST .../upload/{v}/files?upload_id=)
 * gets per-connection state in cs->upload so that its body goes to the
 * session's temp file instead of memory. */
void cst_files_conn_begin(cst_server *s, struct MHD_Connection *c, conn *cs, const char *url, const char *method);
/* Body bytes of an upload chunk (cs->upload set): written at the session's
 * offset (nothing past the declared length or the size limit). */
void cst_files_conn_data(cst_server *s, conn *cs, const char *data, size_t n);
/* Request finished (or the client went away): a chunk that was not accepted
 * is rolled back; frees cs->upload. */
void cst_files_conn_end(cst_server *s, conn *cs);

/* Routes /upload/{v}/files... and /{v}/files...; path has the prefix removed.
 * Returns false when the path is not a Files API path. */
bool cst_files_dispatch(cst_server *s, struct MHD_Connection *c, conn *cs, const char *path, const char *method,
                        enum MHD_Result *ret);

/* ---- media in interactions (routes.c) ---------------------------------- */

/* What a model served here can read, for error messages. */
#define CST_READABLE_TYPES                                                                                       \
    "images (image/png, image/jpeg, image/webp, image/gif; with a vision projector) and documents (text/plain, " \
    "text/markdown, text/csv, text/html, application/json, text/x-*, application/pdf)"

/* The marker chat rendering puts where an image block is (cst_chat_render);
 * random per process, so user text cannot forge it. */
const char *cst_media_marker(void);

/* The bytes of an image or document block (b: data base64 or uri of a file
 * of owner), malloc'd into *out; file_mime gets the file's type for a uri
 * ("" for inline data). what names the block in messages ("image 2"). A file
 * larger than max_len (0: no limit) is refused before it is read. On failure
 * *kind and err say what to answer (404 unknown file, 400 ...). */
bool cst_media_bytes(cst_server *s, struct MHD_Connection *c, const char *owner, json_t *b, const char *what,
                     size_t max_len, uint8_t **out, size_t *out_len, char file_mime[128], ekind *kind, char *err,
                     size_t errlen);

/* Images of a request, in prompt order. */
typedef struct cst_media_img {
    uint8_t sha[32];  /* content hash (cache key, prefix identity) */
    float *embd;      /* [n_tokens][n_embd], shared with the cache (refcounted) */
    void *entry;      /* cache entry holding embd */
    int n_tokens, n_embd;
} cst_media_img;

typedef struct cst_media {
    cst_media_img *img;
    size_t n;
    cst_req_embd *embds; /* [n], filled by cst_media_tokens */
    int64_t image_tokens; /* positions the images take in the prompt */
} cst_media;

void cst_media_clear(cst_media *m);

/* Count the image blocks of step lists (user_input/model_output content). */
size_t cst_media_count(json_t *const *lists, size_t n_lists);

/* Resolve every image block of the lists (files of owner or inline data),
 * check type and size, decode, encode with sm's projector (or take the
 * cached embeddings) into out, in order. On failure *kind and err say what
 * to answer (404 unknown file, 400 foreign URL / bad base64 / type, ...);
 * E_EXHAUSTED: the image decode memory has no room now (it never waits: the
 * caller retries, without holding a thread, for up to
 * CST_MEDIA_DECODE_WAIT_S, then answers 429). */
#define CST_MEDIA_DECODE_WAIT_S 30.0
bool cst_media_prepare(cst_server *s, struct MHD_Connection *c, smodel *sm, const char *owner,
                       json_t *const *lists, size_t n_lists, cst_media *out, ekind *kind, char *err,
                       size_t errlen);

/* Re-tokenize cp's text split at the media markers (one per image of m, in
 * order), putting each image's block where its marker was (gemma3:
 * <start_of_image>, n_tokens marker positions, <end_of_image>); replaces
 * cp->toks and sets cp->embds / n_embds / n_image_tokens (the embds array is
 * owned by m, the rows by the cache entries m holds). */
cst_status cst_media_tokens(const smodel *sm, cst_media *m, chat_prompt *cp, char *err, size_t errlen);

/* Embedding cache counters (for /metrics). */
void cst_media_cache_stats(uint64_t *hits, uint64_t *misses, uint64_t *bytes, uint64_t *entries);

/* ---- documents in interactions (files_docs.c, routes.c) -------------------- */

/* Count the document blocks of step lists. */
size_t cst_docs_count(json_t *const *lists, size_t n_lists);
/* New lists (out[n_lists], new references) in which every document block is
 * replaced by its framed text (and, for a PDF on a model with a projector,
 * one image block per page, inline PNG); extraction cached by content hash.
 * On failure *kind and err say what to answer; out is all NULL. */
bool cst_docs_expand(cst_server *s, struct MHD_Connection *c, smodel *sm, const char *owner, json_t *const *lists,
                     size_t n_lists, json_t **out, ekind *kind, char *err, size_t errlen);
void cst_docs_cache_stats(uint64_t *hits, uint64_t *misses, uint64_t *bytes, uint64_t *entries);

/* ---- helpers (exposed for tests) ---------------------------------------- */
/* File id of a URI for this server: "files/ID" or an absolute
 * http(s)://HOST[/prefix]/{v1,v1beta,v1alpha}/files/ID whose HOST is one of
 * hosts (NULL-terminated list). Returns 1 and the id, 0 when the URI is
 * foreign, -1 when it has our shape but a malformed id. */
int cst_files_uri_id(const char *uri, const char *prefix, const char *const *hosts, char id[48]);
/* True for ids [a-z0-9]{1,40}. */
bool cst_files_valid_id(const char *id);
/* The per-key quota rule: held (live files) + reserved (open upload sessions)
 * + declared (the new upload) > quota, computed without overflow;
 * quota UINT64_MAX is unlimited. */
bool cst_files_quota_exceeded(uint64_t quota, uint64_t held, uint64_t reserved, uint64_t declared);

#endif
