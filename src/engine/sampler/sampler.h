/* sampler.h: choosing the next token from logits, and stop-sequence matching.
 *
 * The chain is llama.cpp's usual order: top-k -> top-p -> min-p -> temperature
 * -> seeded random draw; temperature <= 0 means greedy (argmax, lowest id on
 * exact ties). The same seed with the same logits gives the same tokens.
 * The sampler owns its scratch space; sampling never allocates.
 */
#ifndef CST_SAMPLER_H
#define CST_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cst_sampler_params {
    float temperature; /* <= 0: greedy */
    int32_t top_k;     /* <= 0: off */
    float top_p;       /* >= 1: off */
    float min_p;       /* <= 0: off */
    uint64_t seed;
} cst_sampler_params;

/* seed value meaning "pick a random seed when the sampler is created" */
#define CST_SAMPLER_SEED_RANDOM UINT64_MAX

cst_sampler_params cst_sampler_default_params(void); /* temp 0.8, top_k 40, top_p 0.95, min_p 0.05, seed random */

typedef struct cst_sampler cst_sampler;
cst_sampler *cst_sampler_new(const cst_sampler_params *p, int32_t n_vocab);
void cst_sampler_free(cst_sampler *s); /* NULL ok */
int32_t cst_sampler_sample(cst_sampler *s, const float *logits);
int32_t cst_argmax(const float *logits, int32_t n); /* NaN ignored; 0 if nothing is comparable */
/* The seed in use (the drawn one when CST_SAMPLER_SEED_RANDOM was asked for). */
uint64_t cst_sampler_seed(const cst_sampler *s);

/* Stop sequences matched on generated text across token boundaries.
 * Feed each token's text; the matcher holds back bytes that could still be
 * the start of a stop sequence (and bytes of an incomplete UTF-8 character),
 * and tells how many bytes may be emitted now. */
typedef struct cst_stopper cst_stopper;
cst_stopper *cst_stopper_new(const char *const *stops, size_t n_stops);
void cst_stopper_free(cst_stopper *st);
/* Append text. Returns true if a stop sequence has been matched (generation
 * must end; the stop text itself is never emitted). */
bool cst_stopper_feed(cst_stopper *st, const char *text, size_t len);
/* Bytes safe to emit now (pointer valid until the next call); consumed. */
const char *cst_stopper_take(cst_stopper *st, size_t *len);
/* At end of generation: everything still held back (minus a matched stop). */
const char *cst_stopper_flush(cst_stopper *st, size_t *len);

#endif
