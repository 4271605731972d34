/* generate.c: cst_generate, a simple prompt -> streamed text loop over one
 * sequence of a context: reuse the cached common prefix, decode the rest of
 * the prompt in n_batch chunks, then sample token by token, turning tokens
 * into text through the stop-sequence matcher (which also holds back
 * incomplete UTF-8). The server drives cst_ctx_decode itself.
 */
#include "model_int.h"

#include <string.h>

const char *cst_finish_str(cst_finish f) {
    switch (f) {
    case CST_FINISH_EOG: return "eog";
    case CST_FINISH_STOP: return "stop";
    case CST_FINISH_LENGTH: return "length";
    case CST_FINISH_CANCELLED: return "cancelled";
    default: return "none";
    }
}

cst_gen_params cst_gen_default_params(void) {
    cst_gen_params p;
    memset(&p, 0, sizeof p);
    p.sampling = cst_sampler_default_params();
    p.max_tokens = 128;
    p.reuse_prefix = true;
    return p;
}

/* Decode tokens[0..n) at positions start.. of seq in n_batch chunks; logits
 * for the last token only. */
static cst_status decode_tokens(cst_ctx *ctx, int32_t seq, const cst_token *toks, int32_t n, int32_t start,
                                cst_batch *b) {
    const int32_t nb = ctx->p.n_batch;
    for (int32_t i = 0; i < n; i += nb) {
        const int32_t k = CST_MIN(nb, n - i);
        cst_batch_clear(b);
        for (int32_t j = 0; j < k; j++) cst_batch_add(b, toks[i + j], start + i + j, seq, i + j == n - 1);
        cst_status st = cst_ctx_decode(ctx, b);
        if (st) return st;
    }
    return CST_OK;
}

cst_status cst_generate(cst_ctx *ctx, const cst_token *prompt, size_t n_prompt, const cst_gen_params *gp,
                        cst_gen_token_fn cb, void *ud, cst_gen_result *res) {
    cst_gen_params dp = cst_gen_default_params();
    if (!gp) gp = &dp;
    cst_gen_result r;
    memset(&r, 0, sizeof r);
    const int32_t seq = gp->seq;
    if (seq < 0 || seq >= ctx->p.n_seq || n_prompt == 0) {
        cst_errf(ctx->err, sizeof ctx->err, "generate: bad sequence %d or empty prompt", seq);
        return CST_ERR_INVALID_ARG;
    }
    if (n_prompt > (size_t)ctx->p.n_ctx) {
        cst_errf(ctx->err, sizeof ctx->err, "prompt of %zu tokens does not fit the context (%d)", n_prompt,
                 ctx->p.n_ctx);
        return CST_ERR_CTX_FULL;
    }
    const cst_vocab *vocab = ctx->m->vocab;
    const int32_t n_vocab = ctx->m->hp.n_vocab;
    cst_status st = CST_OK;
    cst_batch *b = cst_batch_new(ctx->p.n_batch);
    cst_sampler *smp = cst_sampler_new(&gp->sampling, n_vocab);
    cst_stopper *stp = cst_stopper_new(gp->stops, gp->n_stops);
    char *piece = malloc(1024);
    if (!b || !smp || !stp || !piece) {
        st = CST_ERR_NOMEM;
        goto out;
    }

    /* prefix reuse: keep what matches, but always decode at least one token */
    int32_t keep = 0;
    if (gp->reuse_prefix) {
        int32_t have = 0;
        const cst_token *old = cst_ctx_seq_tokens(ctx, seq, &have);
        while (keep < have && (size_t)keep < n_prompt - 1 && old[keep] == prompt[keep]) keep++;
    }
    cst_ctx_seq_truncate(ctx, seq, keep);
    r.n_prompt = (int32_t)n_prompt;
    r.n_prompt_reused = keep;
    double t0 = cst_time_now();
    st = decode_tokens(ctx, seq, prompt + keep, (int32_t)n_prompt - keep, keep, b);
    if (st) goto out;
    r.t_prompt_s = cst_time_now() - t0;
    t0 = cst_time_now();

    int32_t pos = (int32_t)n_prompt;
    const float *logits = cst_ctx_logits(ctx, b->n - 1);
    for (;;) {
        const cst_token tok = cst_sampler_sample(smp, logits);
        if (cst_vocab_is_eog(vocab, tok)) {
            r.finish = CST_FINISH_EOG;
            break;
        }
        r.n_gen++;
        size_t len = cst_token_to_piece(vocab, tok, piece, 1024, gp->render_special);
        if (len > 1024) len = 1024; /* absurdly long piece: truncated */
        const bool stopped = cst_stopper_feed(stp, piece, len);
        size_t tl = 0;
        const char *txt = stopped ? cst_stopper_flush(stp, &tl) : cst_stopper_take(stp, &tl);
        if (cb && cb(ud, tok, txt, tl)) {
            r.finish = CST_FINISH_CANCELLED;
            break;
        }
        if (stopped) {
            r.finish = CST_FINISH_STOP;
            break;
        }
        if (gp->max_tokens > 0 && r.n_gen >= gp->max_tokens) {
            r.finish = CST_FINISH_LENGTH;
            break;
        }
        if (pos >= ctx->p.n_ctx) {
            r.finish = CST_FINISH_LENGTH;
            break;
        }
        cst_batch_clear(b);
        cst_batch_add(b, tok, pos, seq, true);
        st = cst_ctx_decode(ctx, b);
        if (st) goto out;
        pos++;
        logits = cst_ctx_logits(ctx, 0);
    }
    if (r.finish != CST_FINISH_STOP && r.finish != CST_FINISH_CANCELLED) {
        size_t tl = 0;
        const char *txt = cst_stopper_flush(stp, &tl);
        if (cb && tl > 0) cb(ud, -1, txt, tl);
    }
    r.t_gen_s = cst_time_now() - t0;
out:
    free(piece);
    cst_stopper_free(stp);
    cst_sampler_free(smp);
    cst_batch_free(b);
    if (res) *res = r;
    return st;
}
