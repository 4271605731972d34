/* grammar.h: constrained decoding. A grammar is a context-free grammar over
 * bytes (rules of alternatives of byte classes and rule references), run as
 * a pushdown automaton: a state is the set of parse stacks whose top is a
 * byte class (stacks are hash-consed, states interned), advanced one byte at
 * a time. Token masks come from a walk of the vocabulary's byte trie, cached
 * per state; end-of-generation is allowed only where the automaton accepts.
 *
 * Budget-aware closing: every state knows the fewest bytes that complete
 * the value (mc). A vocabulary in which every byte is a token (byte-level
 * BPE, SentencePiece byte fallback) can always finish in mc tokens, so a
 * token is allowed only when the state after it still fits in the tokens
 * left; a grammar whose start needs more than the budget is refused up front.
 *
 * Layers: the builder and the compiled cst_grammar know nothing about tokens
 * (the API compiles JSON Schema into one); cst_grammar_vocab is a
 * vocabulary's byte pieces as a trie; cst_grammar_rt holds one grammar's
 * automaton tables and mask caches for one vocabulary, used by one thread
 * (the engine thread), shared by every request with that grammar. No JSON.
 */
#ifndef CST_GRAMMAR_H
#define CST_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- building ------------------------------------------------------------
 * Rules are numbered from 0. Each rule is a list of alternatives, each a
 * sequence of elements. Append elements to the rule's current (last)
 * alternative; cst_gb_alt starts a new one. Errors (allocation, limits) are
 * sticky and reported by cst_gb_finish. */
typedef struct cst_gbuild cst_gbuild;

cst_gbuild *cst_gb_new(void);
void cst_gb_free(cst_gbuild *b); /* NULL ok */
int32_t cst_gb_rule(cst_gbuild *b);            /* a new rule with one empty alternative; -1 on error */
void cst_gb_alt(cst_gbuild *b, int32_t rule);  /* start another alternative */
void cst_gb_class(cst_gbuild *b, int32_t rule, const uint8_t set[32]); /* one byte of the set (bit i = byte i) */
void cst_gb_range(cst_gbuild *b, int32_t rule, uint8_t lo, uint8_t hi); /* one byte in [lo, hi] */
void cst_gb_lit(cst_gbuild *b, int32_t rule, const char *s, size_t n); /* these bytes in order */
void cst_gb_ref(cst_gbuild *b, int32_t rule, int32_t ref);              /* the rule ref */
/* Trigger mode (a "lazy" grammar, as llama.cpp's grammar triggers): a new
 * rule matching free text, any bytes that do not contain trigger[0..n),
 * possibly empty, and then, when then >= 0, optionally the trigger followed
 * by the rule then. So a sentence is either text without the trigger (the
 * automaton accepts all along) or text, the trigger and a `then` sentence:
 * once the model writes the trigger, only `then` may follow. With then < 0
 * the trigger can never be written (its last byte is refused). The rules are
 * a KMP automaton of the trigger (n + 1 rules at most). -1 on error. */
int32_t cst_gb_trigger(cst_gbuild *b, const char *trigger, size_t n, int32_t then);
int32_t cst_gb_n_rules(const cst_gbuild *b);
size_t cst_gb_n_elems(const cst_gbuild *b);

/* Limits a grammar is refused beyond (the API reports them). */
#define CST_GRAMMAR_MAX_RULES 20000
#define CST_GRAMMAR_MAX_ELEMS 200000

typedef struct cst_grammar cst_grammar;

/* Compile with `root` as the start rule. Checks: every rule has a finite
 * derivation, no left recursion (a rule reachable from itself without
 * consuming a byte), limits. The builder is consumed (freed) either way.
 * Returns NULL with a one-line message in err. */
cst_grammar *cst_gb_finish(cst_gbuild *b, int32_t root, char *err, size_t errlen);

/* Reference counting: the grammar is immutable and may be shared between
 * threads; ref/unref are atomic. */
cst_grammar *cst_grammar_ref(cst_grammar *g);
void cst_grammar_unref(cst_grammar *g); /* NULL ok */
/* Fewest bytes of a complete sentence (the shortest valid value). */
int32_t cst_grammar_min_bytes(const cst_grammar *g);
size_t cst_grammar_n_elems(const cst_grammar *g);

/* Byte-level check without a vocabulary (tests, the CLI's self-check):
 * true iff s[0..n) is a complete sentence of the grammar. */
bool cst_grammar_accepts(const cst_grammar *g, const char *s, size_t n);

/* ---- vocabulary ------------------------------------------------------------
 * pieces[i] / lens[i]: the bytes token i contributes to the text (empty for
 * control tokens: never allowed under a grammar); eog: the end-of-generation
 * ids. Copied. NULL on allocation failure. */
typedef struct cst_grammar_vocab cst_grammar_vocab;
cst_grammar_vocab *cst_grammar_vocab_new(const char *const *pieces, const uint32_t *lens, int32_t n_tokens,
                                         const int32_t *eog, size_t n_eog);
void cst_grammar_vocab_free(cst_grammar_vocab *v); /* NULL ok */
int32_t cst_grammar_vocab_n(const cst_grammar_vocab *v);
size_t cst_grammar_vocab_nodes(const cst_grammar_vocab *v); /* trie nodes */

/* ---- runtime -----------------------------------------------------------------
 * One grammar x one vocabulary: interned stacks and states, a byte
 * transition cache and per-state token masks. Not thread-safe; grows with
 * the states seen (cst_grammar_rt_bytes). A state is an int32 handle valid
 * for the runtime's life; CST_GSTATE_DEAD (0) is the state nothing matches. */
typedef struct cst_grammar_rt cst_grammar_rt;
#define CST_GSTATE_DEAD 0
#define CST_GBUDGET_NONE INT32_MAX

cst_grammar_rt *cst_grammar_rt_new(cst_grammar *g, const cst_grammar_vocab *v); /* refs g; v must outlive it */
void cst_grammar_rt_free(cst_grammar_rt *rt);                                   /* NULL ok */
const cst_grammar *cst_grammar_rt_grammar(const cst_grammar_rt *rt);
size_t cst_grammar_rt_bytes(const cst_grammar_rt *rt); /* memory held */
/* Drop the mask caches (states stay valid). */
void cst_grammar_rt_trim(cst_grammar_rt *rt);

int32_t cst_grammar_rt_start(cst_grammar_rt *rt);
/* State after the bytes (CST_GSTATE_DEAD if they do not fit). */
int32_t cst_grammar_rt_advance(cst_grammar_rt *rt, int32_t state, const char *s, size_t n);
bool cst_grammar_rt_accepting(cst_grammar_rt *rt, int32_t state); /* a complete sentence ends here */
bool cst_grammar_rt_final(cst_grammar_rt *rt, int32_t state);     /* accepting and no byte can follow */
int32_t cst_grammar_rt_min_complete(cst_grammar_rt *rt, int32_t state); /* mc in bytes (0 when accepting) */
bool cst_grammar_rt_is_eog(const cst_grammar_rt *rt, int32_t tok);

/* Is tok (whose piece is s[0..n)) allowed in state with `left` tokens left
 * to generate, this one included (CST_GBUDGET_NONE: no limit)?
 * End-of-generation tokens: iff accepting. Other tokens: not empty, and the
 * state after their bytes is alive and completes within left - 1 tokens.
 * *next gets that state (the same state for end-of-generation). */
bool cst_grammar_rt_allowed(cst_grammar_rt *rt, int32_t state, int32_t tok, const char *s, size_t n, int32_t left,
                            int32_t *next);
/* The allowed set as a bitset of n_vocab bits (bit t of word t/64), borrowed
 * until the next call on rt; NULL on allocation failure. Cached per state
 * when the budget does not bind. *n_allowed gets the count. */
const uint64_t *cst_grammar_rt_mask(cst_grammar_rt *rt, int32_t state, int32_t left, int32_t *n_allowed);

/* Apply the mask to logits (disallowed -> -INFINITY). Returns the number of
 * allowed tokens (0: nothing fits; the caller ends generation). */
int32_t cst_grammar_rt_apply(cst_grammar_rt *rt, int32_t state, int32_t left, float *logits);

typedef struct cst_grammar_stats {
    uint64_t n_masks;      /* masks computed (trie walks) */
    uint64_t n_mask_hits;  /* served from the per-state cache */
    uint64_t n_states, n_nodes;
} cst_grammar_stats;
cst_grammar_stats cst_grammar_rt_stats(const cst_grammar_rt *rt);

#endif
