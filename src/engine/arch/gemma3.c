/* gemma3.c: Gemma 3 text models. Differences from llama handled by the
 * shared forward (transformer.c) through hparams flags: embeddings scaled by
 * sqrt(n_embd); per-head Q/K RMSNorm; Q pre-scaled by 1/sqrt(head_dim)
 * (1/sqrt(n_embd/n_head) for the 62-layer 27B) with softmax scale 1;
 * post-attention and post-FFN norms; GELU(tanh)-gated FFN; rope NEOX;
 * interleaved sliding-window layers (il % pattern < pattern-1, default
 * pattern 6) that use rope base 10000 without scaling, while global layers
 * use rope.freq_base and rope.scaling. Norm weights are used as stored
 * (llama.cpp's converter already folded Gemma's "1 +" into them).
 */
#include "../runtime/model_int.h"

#include <math.h>

static cst_status gemma3_hparams(const cst_gguf *g, cst_hparams *hp, char *err, size_t errlen) {
    hp->rope_type = CST_ROPE_NEOX;
    hp->act = CST_ACT_GELU;
    hp->qk_norm = true;
    hp->post_norms = true;
    hp->embd_scale = sqrtf((float)hp->n_embd);
    hp->scale_q = true;
    if (hp->n_layer == 62)
        hp->attn_scale = 1.0f / sqrtf((float)(hp->n_embd / hp->n_head));
    else
        hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
    int64_t swa = cst_arch_get_i64(g, "gemma3", "attention.sliding_window", 0);
    if (swa < 0 || swa > INT32_MAX) {
        cst_errf(err, errlen, "gemma3.attention.sliding_window out of range");
        return CST_ERR_BAD_FORMAT;
    }
    hp->n_swa = (int32_t)swa;
    if (hp->n_swa > 0) {
        int64_t pat = cst_arch_get_i64(g, "gemma3", "attention.sliding_window_pattern", 6);
        if (pat < 0 || pat > 1 << 20) {
            cst_errf(err, errlen, "gemma3.attention.sliding_window_pattern out of range");
            return CST_ERR_BAD_FORMAT;
        }
        hp->swa_pattern = (int32_t)pat;
        hp->rope_base_swa = (float)cst_arch_get_f64(g, "gemma3", "rope.freq_base_swa", 10000.0);
        hp->rope_scale_swa = 1.0f;
    }
    return CST_OK;
}

const cst_arch_desc cst_arch_gemma3 = {"gemma3", gemma3_hparams};
