/* run_feed.c: the decode loops `castor run` shares between its text and
 * media paths: the prompt in batches (image blocks whole), then one token
 * at a time, printed as text or as --logits-json lines. */
#include "cli.h"
#include "core/core.h"
#include "engine/engine.h"

#include <stdio.h>
#include <stdlib.h>

/* the ids of the (at most) 10 largest logits, largest first, ties by lower id */
static void top10(const float *lg, int32_t n, int32_t *ids, int *k) {
    *k = 0;
    for (int32_t i = 0; i < n; i++) {
        int j = *k;
        if (j == 10 && !(lg[i] > lg[ids[9]])) continue;
        if (j < 10) (*k)++;
        else j = 9;
        while (j > 0 && lg[i] > lg[ids[j - 1]]) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = i;
    }
}

void cst_cli_print_step(int step, cst_token tok, const float *lg, int32_t nv) {
    int32_t ids[10];
    int k;
    top10(lg, nv, ids, &k);
    printf("{\"step\":%d,\"token\":%d,\"top\":[", step, tok);
    for (int i = 0; i < k; i++) printf("%s[%d,%.9g]", i ? "," : "", ids[i], (double)lg[ids[i]]);
    printf("]");
    if (step == 0) {
        printf(",\"logits\":[");
        for (int32_t i = 0; i < nv; i++) printf("%s%.9g", i ? "," : "", (double)lg[i]);
        printf("]");
    }
    printf("}\n");
    fflush(stdout);
}

/* decode the prompt: text tokens in batches, image blocks whole; returns the
 * last position's logits or NULL */
const float *cst_cli_prefill(cst_ctx *ctx, const cst_token *toks, size_t np, const cst_cli_embd *ib, size_t nib,
                             int32_t n_batch) {
    cst_batch *b = cst_batch_new(n_batch);
    if (!b) return NULL;
    const float *lg = NULL;
    size_t i = 0, k = 0;
    while (i < np) {
        if (k < nib && (size_t)ib[k].pos == i) {
            cst_status st = cst_ctx_decode_embd(ctx, 0, (int32_t)i, ib[k].rows, ib[k].n_rows, ib[k].marker, true);
            if (st) {
                fprintf(stderr, "castor run: %s: %s\n", cst_status_str(st), cst_ctx_errmsg(ctx));
                lg = NULL;
                break;
            }
            i += (size_t)ib[k].n_rows;
            k++;
            continue;
        }
        size_t end = k < nib ? (size_t)ib[k].pos : np;
        size_t m = CST_MIN((size_t)n_batch, end - i);
        cst_batch_clear(b);
        for (size_t j = 0; j < m; j++) cst_batch_add(b, toks[i + j], (int32_t)(i + j), 0, i + j == np - 1);
        cst_status st = cst_ctx_decode(ctx, b);
        if (st) {
            fprintf(stderr, "castor run: %s: %s\n", cst_status_str(st), cst_ctx_errmsg(ctx));
            lg = NULL;
            break;
        }
        i += m;
        if (i == np) lg = cst_ctx_logits(ctx, (int32_t)m - 1);
    }
    cst_batch_free(b);
    return lg;
}

int cst_cli_generate(cst_ctx *ctx, const float *lg, size_t np, int n_gen, bool json, const cst_sampler_params *sp) {
    if (n_gen <= 0) return 0;
    const cst_model *m = cst_ctx_model(ctx);
    const cst_vocab *v = cst_model_vocab(m);
    const int32_t nv = cst_model_n_vocab(m);
    cst_sampler *smp = cst_sampler_new(sp, nv);
    cst_batch *b = cst_batch_new(1);
    cst_token *gen = malloc(((size_t)n_gen + 1) * sizeof *gen);
    size_t printed = 0;
    int rc = 0;
    if (!smp || !b || !gen) {
        fprintf(stderr, "castor run: out of memory\n");
        rc = 1;
        goto out;
    }
    for (int s = 0; s < n_gen; s++) {
        cst_token tok = cst_sampler_sample(smp, lg);
        gen[s] = tok;
        if (json) {
            cst_cli_print_step(s, tok, lg, nv);
        } else {
            if (cst_vocab_is_eog(v, tok)) break;
            char *txt = NULL;
            size_t tl = 0;
            /* the whole generation again: pieces that split a UTF-8 character come out whole */
            if (cst_detokenize(v, gen, (size_t)s + 1, &txt, &tl) == CST_OK && tl > printed) {
                fwrite(txt + printed, 1, tl - printed, stdout);
                fflush(stdout);
                printed = tl;
            }
            free(txt);
        }
        if (s + 1 == n_gen) break;
        cst_batch_clear(b);
        cst_batch_add(b, tok, (int32_t)np + s, 0, true);
        cst_status st = cst_ctx_decode(ctx, b);
        if (st == CST_ERR_CTX_FULL) break;
        if (st) {
            fprintf(stderr, "castor run: %s: %s\n", cst_status_str(st), cst_ctx_errmsg(ctx));
            rc = 1;
            goto out;
        }
        lg = cst_ctx_logits(ctx, 0);
    }
    if (!json) printf("\n");
out:
    free(gen);
    cst_batch_free(b);
    cst_sampler_free(smp);
    return rc;
}

