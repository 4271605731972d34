/* engine.h: the inference engine's public contract (the only engine header
 * src/api and src/cli include besides tokenizer.h / sampler.h / gguf.h).
 *
 * cst_model: a GGUF model mapped read-only; weights are views into the
 * mapping. cst_ctx: KV cache for up to n_seq sequences, scratch buffers and a
 * thread pool, all allocated at cst_ctx_new (the token loop never mallocs).
 * cst_ctx_decode runs one forward pass over a batch that may mix tokens of
 * several sequences. cst_generate is a simple prompt -> text loop on top.
 *
 * Threading: a cst_model is immutable after load and may be shared by several
 * contexts (and threads). A cst_ctx is driven by one thread at a time.
 */
#ifndef CST_ENGINE_H
#define CST_ENGINE_H

#include "castor.h"
#include "gguf/gguf.h"
#include "sampler/sampler.h"
#include "tokenizer/tokenizer.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ======================================================================
 * Model
 * ====================================================================== */
typedef struct cst_model cst_model;

typedef struct cst_model_params {
    bool vocab_only; /* load metadata + vocabulary only (no tensor checks, no ctx possible) */
} cst_model_params;

cst_model_params cst_model_default_params(void);

/* Open path (mmap through the gguf reader), read the architecture's
 * hyper-parameters from metadata, bind every tensor (views into the mapping,
 * never copied) and build the vocabulary. p may be NULL (defaults).
 * Errors: CST_ERR_IO (open/mmap), CST_ERR_BAD_FORMAT (missing/misshaped
 * tensor or key), CST_ERR_UNSUPPORTED (architecture or tensor type we cannot
 * run), CST_ERR_NOMEM; err gets a one-line message. */
cst_status cst_model_load(const char *path, const cst_model_params *p, cst_model **out, char *err,
                          size_t errlen);
void cst_model_free(cst_model *m); /* NULL ok; all contexts must be freed first */

/* Borrowed pointers, valid until cst_model_free. */
const cst_vocab *cst_model_vocab(const cst_model *m);
const cst_gguf *cst_model_gguf(const cst_model *m);
const char *cst_model_arch(const cst_model *m);          /* "llama", "qwen2", "qwen3", "gemma3" */
const char *cst_model_chat_template(const cst_model *m); /* tokenizer.chat_template, NUL-terminated; NULL if none */
const char *cst_model_desc(const cst_model *m);          /* e.g. "llama 1.2B Q4_K (1.23 GiB)" */
const char *cst_model_name(const cst_model *m);          /* general.name, or the file's base name */
int32_t cst_model_n_ctx_train(const cst_model *m);
int32_t cst_model_n_vocab(const cst_model *m);
int32_t cst_model_n_embd(const cst_model *m);
int32_t cst_model_n_layer(const cst_model *m);
uint64_t cst_model_n_params(const cst_model *m);
size_t cst_model_file_size(const cst_model *m);
/* Bytes of KV cache one token position takes (all layers, K and V) for kv_type. */
size_t cst_model_kv_bytes_per_token(const cst_model *m, cst_type kv_type);

/* ======================================================================
 * Context: KV cache + scratch + threads
 * ====================================================================== */
typedef struct cst_ctx cst_ctx;

typedef struct cst_ctx_params {
    int32_t n_ctx;     /* positions per sequence; <= 0: min(n_ctx_train, 4096) */
    int32_t n_seq;     /* independent sequences (server slots); default 1 */
    int32_t n_batch;   /* max tokens in one cst_ctx_decode call; default 512 */
    int32_t n_threads; /* <= 0: number of CPUs */
    int32_t n_outputs; /* max batch entries per decode that may ask for logits; <= 0: n_seq */
    cst_type kv_type;  /* CST_TYPE_F16 (the default, as llama.cpp; the only one for now) */
} cst_ctx_params;

cst_ctx_params cst_ctx_default_params(void);

/* Allocate the KV cache (n_seq * n_ctx positions), scratch sized by n_batch,
 * and a thread pool. The model must outlive the context.
 * Errors: CST_ERR_INVALID_ARG, CST_ERR_UNSUPPORTED (kv_type), CST_ERR_NOMEM
 * (message says how much). */
cst_status cst_ctx_new(cst_model *m, const cst_ctx_params *p, cst_ctx **out, char *err, size_t errlen);
void cst_ctx_free(cst_ctx *ctx); /* NULL ok */

const cst_model *cst_ctx_model(const cst_ctx *ctx);
cst_ctx_params cst_ctx_get_params(const cst_ctx *ctx); /* resolved values */
size_t cst_ctx_kv_size(const cst_ctx *ctx);            /* bytes of KV cache */
/* Message of the last failed call on ctx (borrowed, valid until the next call). */
const char *cst_ctx_errmsg(const cst_ctx *ctx);

/* ---- batches ---------------------------------------------------------
 * Caller-owned arrays of n entries. Rules checked by cst_ctx_decode:
 *  - seq[i] in [0, n_seq);
 *  - within a sequence, the batch's tokens have consecutive positions in
 *    batch order, starting at cst_ctx_seq_len(ctx, seq) (append-only; use
 *    cst_ctx_seq_truncate first to rewrite a suffix);
 *  - a position >= n_ctx gives CST_ERR_CTX_FULL and nothing is changed.
 *
 * Embedding batches (image input, as llama.cpp: a batch is either all token
 * ids or all embeddings): with embd non-NULL, entry i's input is the row
 * embd + i*n_embd (cst_model_n_embd floats, e.g. cst_vision_encode's output)
 * instead of a token's embedding, taken as is (gemma3's sqrt(n_embd) scaling
 * applies to token embeddings only). token[i] is then not an id but the
 * marker recorded for that position in cst_ctx_seq_tokens: it must be < 0
 * (see cst_embd_marker), or token may be NULL (CST_TOKEN_EMBD_ANON is
 * recorded, which never matches in cst_ctx_seq_common_prefix).
 *
 * non_causal: every entry of the batch attends to all cached positions of
 * its sequence up to the last position this batch writes to that sequence
 * (including later entries of the batch), not only up to its own position;
 * sliding-window layers still hide keys more than n_swa-1 positions before
 * the entry. gemma3 decodes an image's embeddings this way, so the whole
 * image must be in one batch (n_batch >= its embeddings). Works for token
 * batches too. */
typedef struct cst_batch {
    int32_t n;
    cst_token *token;     /* [n] ids; markers (< 0) or NULL in embedding batches */
    int32_t *pos;         /* [n] */
    int32_t *seq;         /* [n] */
    int8_t *want_logits;  /* [n] non-zero: keep logits for entry i */
    int32_t cap;          /* capacity when made by cst_batch_new (0 otherwise) */
    const float *embd;    /* NULL: token ids; else [n][n_embd] input rows (borrowed) */
    bool non_causal;      /* attention within the batch's positions is not causal */
} cst_batch;

/* Heap batch with capacity cap (one allocation); NULL on failure. */
cst_batch *cst_batch_new(int32_t cap);
void cst_batch_free(cst_batch *b); /* NULL ok */
/* Empties the batch and makes it a plain causal token batch again. */
static inline void cst_batch_clear(cst_batch *b) {
    b->n = 0;
    b->embd = NULL;
    b->non_causal = false;
}
/* Append; false if the batch is full. */
bool cst_batch_add(cst_batch *b, cst_token tok, int32_t pos, int32_t seq, bool want_logits);

/* Run the model over the batch: embeddings, then each layer's matmuls over
 * all n tokens at once, attention per token against its own sequence's cache
 * (causal, sliding window where the layer has one). K/V of every token are
 * stored; sequence lengths advance. b->n may be at most n_batch.
 * Errors: CST_ERR_INVALID_ARG (bad token id, seq, position order, n, more
 * than n_outputs entries asking for logits),
 * CST_ERR_CTX_FULL (a position >= n_ctx; the cache is left unchanged). */
cst_status cst_ctx_decode(cst_ctx *ctx, const cst_batch *b);

/* Marker recorded for embedding positions (cst_ctx_seq_tokens) when the
 * batch gives none: never equal to a prompt entry in
 * cst_ctx_seq_common_prefix, so such positions are never reused. */
#define CST_TOKEN_EMBD_ANON INT32_MIN

/* Marker for the positions of one image (or any embedding block) from a hash
 * of its content (e.g. the first 8 bytes of the image bytes' SHA-256): a
 * negative value in [-2^31+2, -1], never a vocabulary id nor
 * CST_TOKEN_EMBD_ANON. Put it at the image's positions in the token list used
 * for prefix matching, and pass it to cst_ctx_decode_embd. */
static inline cst_token cst_embd_marker(uint64_t hash) { return -1 - (cst_token)(hash % 0x7FFFFFFEu); }

/* Decode n_rows embedding rows (rows: [n_rows][n_embd] floats, row-major)
 * into seq at positions pos0 .. pos0+n_rows-1 (pos0 must equal
 * cst_ctx_seq_len), recording `marker` (< 0, see cst_embd_marker) as their
 * tokens; no logits. non_causal (gemma3 images): the rows attend to each
 * other in both directions, which needs them in one batch, so n_rows >
 * n_batch is refused with CST_ERR_INVALID_ARG ("raise n_batch"); causal rows
 * are split into n_batch chunks. Uses a batch owned by the context (no
 * allocation). Errors: those of cst_ctx_decode. The server's image chunk:
 *   cst_ctx_decode_embd(ctx, seq, cst_ctx_seq_len(ctx, seq), rows,
 *                       cst_vision_n_tokens(v), cst_embd_marker(hash), true);
 * then the text after the image as a normal token batch. */
cst_status cst_ctx_decode_embd(cst_ctx *ctx, int32_t seq, int32_t pos0, const float *rows, int32_t n_rows,
                               cst_token marker, bool non_causal);

/* Logits (n_vocab floats) of batch entry i of the last successful decode,
 * or NULL if entry i did not ask for logits. Valid until the next decode. */
const float *cst_ctx_logits(const cst_ctx *ctx, int32_t i);

/* ---- sequence KV management (prefix reuse) ---------------------------- */
int32_t cst_ctx_seq_len(const cst_ctx *ctx, int32_t seq); /* positions stored; -1 if seq invalid */
/* Drop positions >= n_keep (n_keep >= len: no-op). */
cst_status cst_ctx_seq_truncate(cst_ctx *ctx, int32_t seq, int32_t n_keep);
/* Make dst hold a copy of src's first n positions (dst's old content is dropped). */
cst_status cst_ctx_seq_copy(cst_ctx *ctx, int32_t src, int32_t dst, int32_t n);
/* Tokens stored for seq (the context records every decoded token), borrowed;
 * *n gets cst_ctx_seq_len. Useful to find a reusable common prefix. */
const cst_token *cst_ctx_seq_tokens(const cst_ctx *ctx, int32_t seq, int32_t *n);
/* Length of the reusable common prefix of what seq holds and toks[0..n)
 * (image positions carry their markers, see cst_embd_marker): the longest
 * equal prefix, cut back to the start of an embedding block when it would
 * end inside one (a block's K/V depend on all of its rows when it was
 * decoded non-causally) and never covering CST_TOKEN_EMBD_ANON positions.
 * The caller may still want to leave at least one token to decode. */
int32_t cst_ctx_seq_common_prefix(const cst_ctx *ctx, int32_t seq, const cst_token *toks, int32_t n);
/* The same rule over two token lists: old[0..have) (what a cache holds)
 * against toks[0..n). */
int32_t cst_tokens_common_prefix(const cst_token *old, int32_t have, const cst_token *toks, int32_t n);

/* ---- sequence snapshots (host-memory KV prefix cache) -------------------
 * A snapshot is a self-describing byte buffer holding the first n positions
 * of a sequence: the K and V rows of every layer, copied verbatim (F16, so a
 * restore is bit-identical), and the tokens recorded for those positions
 * (embedding markers included). Layout: a 32-byte header (magic, n, n_layer,
 * K and V widths), tokens[n], then per layer K [n][dim_k] and V [dim_v][n].
 * A snapshot only fits a context of the same model and shape (checked). */
/* Bytes of a snapshot of n positions (0 if n < 0). */
size_t cst_ctx_seq_state_size(const cst_ctx *ctx, int32_t n);
/* Copy seq's first n positions (n <= cst_ctx_seq_len) into buf, which has
 * size bytes (at least cst_ctx_seq_state_size(ctx, n)). Errors:
 * CST_ERR_INVALID_ARG (bad seq, n, or buffer too small). */
cst_status cst_ctx_seq_state_save(cst_ctx *ctx, int32_t seq, int32_t n, void *buf, size_t size);
/* Make seq hold the first n positions of the snapshot (n <= the snapshot's
 * length; seq's old content is dropped): K/V, tokens and length, as if those
 * positions had been decoded into seq. Errors: CST_ERR_INVALID_ARG (bad seq
 * or n, n > n_ctx), CST_ERR_BAD_FORMAT (not a snapshot of this context's
 * shape, or truncated). */
cst_status cst_ctx_seq_state_load(cst_ctx *ctx, int32_t seq, const void *buf, size_t size, int32_t n);
/* Tokens stored in a snapshot (borrowed from buf), *n its length; NULL if
 * buf is not a well-formed snapshot of size bytes. */
const cst_token *cst_seq_state_tokens(const void *buf, size_t size, int32_t *n);

/* ======================================================================
 * Generation helper (castor run, simple callers)
 * ====================================================================== */
typedef enum cst_finish {
    CST_FINISH_NONE = 0,
    CST_FINISH_EOG = 1,       /* the model produced an end-of-generation token */
    CST_FINISH_STOP = 2,      /* a stop sequence matched */
    CST_FINISH_LENGTH = 3,    /* max_tokens reached, or the context is full */
    CST_FINISH_CANCELLED = 4, /* the callback asked to stop */
} cst_finish;

const char *cst_finish_str(cst_finish f); /* "eog", "stop", "length", "cancelled" */

typedef struct cst_gen_params {
    cst_sampler_params sampling;
    int32_t max_tokens;       /* <= 0: until EOG or context full */
    const char *const *stops; /* stop sequences (may be NULL) */
    size_t n_stops;
    int32_t seq;              /* sequence to use (default 0) */
    bool reuse_prefix;        /* keep the KV of the longest common prefix with what seq holds (default true) */
    bool render_special;      /* emit the text of control tokens (default false) */
} cst_gen_params;

cst_gen_params cst_gen_default_params(void);

/* Called for each generated token with the text that may be emitted now
 * (complete UTF-8, never part of a stop sequence; may be empty). Return true
 * to stop generation (finish CST_FINISH_CANCELLED). */
typedef bool (*cst_gen_token_fn)(void *ud, cst_token tok, const char *text, size_t len);

typedef struct cst_gen_result {
    cst_finish finish;
    int32_t n_prompt;       /* prompt tokens */
    int32_t n_prompt_reused;/* of which taken from the cache */
    int32_t n_gen;          /* generated tokens (EOG token not counted) */
    double t_prompt_s;      /* prompt processing time */
    double t_gen_s;         /* generation time */
} cst_gen_result;

/* Decode prompt into sequence p->seq (in n_batch chunks), then sample up to
 * max_tokens tokens, streaming text through cb (may be NULL). Stops at an EOG
 * token of the vocabulary, a stop sequence, max_tokens, a full context, or
 * when cb returns true. When a stop sequence matches, the token's callback
 * gets the text before the stop; at EOG/length the text still held back by
 * the matcher (a possible stop prefix, split UTF-8) comes in one last cb call
 * with tok -1. Allocates the sampler and matcher once per call, not per token.
 * Errors: those of cst_ctx_decode except CTX_FULL during generation, which
 * ends with CST_FINISH_LENGTH; a prompt that does not fit gives CST_ERR_CTX_FULL. */
cst_status cst_generate(cst_ctx *ctx, const cst_token *prompt, size_t n_prompt,
                        const cst_gen_params *p, cst_gen_token_fn cb, void *ud, cst_gen_result *res);

#endif
