/* sched.h: the engine-side request scheduler. One engine thread owns a
 * cst_ctx with n_slots sequences; callers (HTTP workers) submit tokenized
 * prompts and read back text events. Each iteration the engine admits queued
 * requests into free slots (reusing the slot whose cached tokens share the
 * longest prefix with the prompt; LRU among the rest; or restoring a longer
 * prefix from the host-memory snapshots of evicted conversations), builds one batch with
 * one decode token per generating sequence plus prompt chunks of new ones
 * (continuous batching), decodes, samples per sequence and pushes events.
 * No JSON or HTTP here: only tokens, text and counters.
 */
#ifndef CST_SCHED_H
#define CST_SCHED_H

#include "engine/engine.h"
#include "engine/sampler/grammar.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cst_sched cst_sched;
typedef struct cst_sched_req cst_sched_req;
typedef struct cst_sched_event cst_sched_event;

typedef struct cst_sched_params {
    int32_t n_slots;   /* concurrent sequences (default 4) */
    int32_t n_ctx;     /* positions per sequence; <= 0: min(n_ctx_train, 4096) */
    int32_t n_batch;   /* tokens per decode (default 512) */
    int32_t n_threads; /* <= 0: all CPUs */
    int32_t max_queue; /* requests waiting for a slot before submit says BUSY (default 64) */
    /* Host-memory KV prefix cache: bytes of sequence snapshots kept (LRU)
     * for conversations whose slot was taken by another one; a later prompt
     * extending one restores it instead of recomputing (default 256 MiB;
     * 0: off). */
    size_t cache_bytes;
} cst_sched_params;

#define CST_SCHED_CACHE_BYTES_DEFAULT ((size_t)256 << 20)

cst_sched_params cst_sched_default_params(void);

/* Create the context and start the engine thread. The model must outlive
 * the scheduler. Errors: those of cst_ctx_new. */
cst_status cst_sched_new(cst_model *m, const cst_sched_params *p, cst_sched **out, char *err, size_t errlen);
/* Cancel everything still queued or running, join the engine thread and free
 * the context. Requests not yet released stay valid (they read a final
 * CANCELLED event) until cst_sched_req_release. NULL ok. */
void cst_sched_free(cst_sched *s);

int32_t cst_sched_n_ctx(const cst_sched *s);  /* resolved positions per sequence */
int32_t cst_sched_queue_depth(cst_sched *s);  /* requests waiting for a slot */
int32_t cst_sched_active(cst_sched *s);       /* requests holding a slot */

/* An embedding block inside a prompt (an image): prompt[pos .. pos+n_rows)
 * hold its marker (cst_embd_marker(content hash), < 0), and the block is
 * decoded from rows ([n_rows][n_embd] floats, copied at submit) with
 * cst_ctx_decode_embd. Prefix reuse compares the markers (equal image, equal
 * marker), never a part of a block. */
typedef struct cst_req_embd {
    int32_t pos, n_rows;
    const float *rows;
    bool non_causal; /* gemma3: the block attends to itself in both directions */
} cst_req_embd;

typedef struct cst_req_params {
    const cst_token *prompt; /* copied */
    size_t n_prompt;
    cst_sampler_params sampling;
    int32_t max_tokens;       /* <= 0: until EOG or a full context */
    const char *const *stops; /* copied; may be NULL */
    size_t n_stops;
    /* Thinking (reasoning models), off unless think_open is set. The output
     * is split into thought and answer text at the markers (reasoning.h);
     * thought tokens do not count against max_tokens, and once think_budget
     * of them were generated (or the model ends inside the thought) the
     * think_force tokens (e.g. "\n" "</think>" "\n\n") are decoded as if
     * sampled, closing the thought so that the answer follows. Stop
     * sequences apply to the answer only. */
    const char *think_open;   /* marker texts, copied ("<think>") */
    const char *think_close;  /* ("</think>") */
    bool think_inside;        /* the prompt ends inside an opened thought */
    int32_t think_budget;     /* thought tokens, including the forced close */
    const cst_token *think_force; /* copied */
    size_t n_think_force;
    size_t n_force_thought;   /* of think_force, how many count as thought (up to the marker) */
    const cst_req_embd *embds; /* ascending, disjoint; the prompt must end with a token after the last */
    size_t n_embds;
    /* Optional event sink: START and TEXT events are handed to on_event on
     * the engine thread, in order, instead of being queued (no allocation,
     * no hand-off per token; TEXT text is borrowed for the call and not
     * NUL-terminated). DONE is always queued for cst_sched_req_next, after
     * every on_event call of the request. on_event must be quick (it holds
     * up every sequence) and must not call into the scheduler. */
    void (*on_event)(void *ud, const cst_sched_event *ev);
    void *on_event_ud;
    /* Constrained decoding (grammar.h), NULL: off. The answer (not the
     * thought) is constrained: every sampled token keeps the automaton
     * alive, end-of-generation comes only where it accepts, and the budget
     * (max_tokens, the context) closes the value in time; generation ends
     * as soon as the value is complete (finish EOG, also when the budget
     * ends on a complete value). A reference is taken at submit. Stop
     * sequences still apply: a caller wanting whole values passes none. */
    cst_grammar *grammar;
} cst_req_params;

/* Queue a request. On success *out holds a reference the caller releases with
 * cst_sched_req_release. Errors: CST_ERR_BUSY (queue full),
 * CST_ERR_CTX_FULL (prompt longer than n_ctx - 1; err says the counts),
 * CST_ERR_INVALID_ARG (empty prompt), CST_ERR_CANCELLED (shutting down),
 * CST_ERR_NOMEM. Thread-safe. */
cst_status cst_sched_submit(cst_sched *s, const cst_req_params *p, cst_sched_req **out, char *err,
                            size_t errlen);

typedef enum cst_sched_ev_type {
    CST_SCHED_EV_START = 1, /* the request got a slot; n_prompt/n_cached are set */
    CST_SCHED_EV_TEXT = 2,  /* text: one token's emitted text (complete UTF-8, may be empty);
                             * thought: it belongs to the thought (see think_open) */
    CST_SCHED_EV_DONE = 3,  /* last event: finish, status, counters */
} cst_sched_ev_type;

struct cst_sched_event {
    cst_sched_ev_type type;
    char *text; /* TEXT: malloc'd, NUL-terminated; the reader frees it */
    size_t len;
    cst_finish finish;  /* DONE */
    cst_status status;  /* DONE: CST_OK, or the engine error (message in text) */
    int32_t n_prompt;   /* START/DONE */
    int32_t n_cached;   /* START/DONE: prompt tokens reused (slot's cache or a snapshot) */
    int32_t n_gen;      /* DONE: generated tokens (thought included) */
    int32_t n_thought;  /* DONE: of which inside the thought (markers included) */
    bool thought;       /* TEXT: thought text */
    bool think_forced;  /* DONE: the budget (or an end inside the thought) forced the close */
    double t_first;     /* DONE: seconds from submit to the first token (0 if none) */
};

/* Wait up to timeout_s (< 0: forever) for the next event. Returns false on
 * timeout. After DONE no further events come (further calls time out). */
bool cst_sched_req_next(cst_sched_req *r, cst_sched_event *ev, double timeout_s);
/* Ask the engine to stop this request; it ends within one token with a DONE
 * event of finish CST_FINISH_CANCELLED (at once when it still waits in the
 * queue). Thread-safe, idempotent. */
void cst_sched_req_cancel(cst_sched_req *r);
/* True while the request waits in the FIFO and every slot was busy when it
 * was submitted (the API reports such a request as "queued"). */
bool cst_sched_req_waiting(const cst_sched_req *r);
/* Drop the caller's reference (cancels the request if still running). */
void cst_sched_req_release(cst_sched_req *r);

typedef struct cst_sched_stats {
    uint64_t n_decodes;
    uint64_t n_prompt_tokens; /* evaluated (not reused) */
    uint64_t n_cached_tokens; /* reused from slots or snapshots */
    uint64_t n_gen_tokens;
    uint64_t n_cache_hits;    /* admissions that reused at least one token */
    /* host-memory snapshots (cache_bytes) */
    uint64_t n_snapshots;          /* held now */
    uint64_t snapshot_bytes;       /* their memory now (<= cache_bytes) */
    uint64_t n_snapshot_saves;     /* slot contents saved before a slot was rewritten */
    uint64_t n_snapshot_restores;  /* admissions whose prefix came from a snapshot */
    uint64_t n_snapshot_evictions; /* dropped to stay within cache_bytes */
    /* engine thread time while it has work: in the forward pass, and around
     * it (admission, batch building, sampling, detokenizing, stop matching,
     * the events) -- the latter is the per-token cost the serving loop adds */
    double decode_seconds, host_seconds, sample_seconds; /* sample: part of host */
    /* constrained decoding */
    uint64_t n_grammar_tokens;  /* tokens sampled under a grammar */
    uint64_t n_grammar_masked;  /* of which needed the full mask (the unmasked draw did not fit) */
    double mask_seconds;        /* part of sample_seconds */
} cst_sched_stats;
cst_sched_stats cst_sched_get_stats(cst_sched *s);

#endif
