/* qwen.c: Qwen2 (Q/K/V biases, rope NEOX) and Qwen3 (per-head RMSNorm of Q
 * and K before rope, rope NEOX, no biases). Both use a SiLU-gated FFN; the
 * forward pass is the shared one in transformer.c.
 */
#include "../runtime/model_int.h"

static cst_status qwen2_hparams(const cst_gguf *g, cst_hparams *hp, char *err, size_t errlen) {
    (void)g, (void)err, (void)errlen;
    hp->rope_type = CST_ROPE_NEOX;
    hp->act = CST_ACT_SILU;
    hp->qkv_bias = true;
    return CST_OK;
}

static cst_status qwen3_hparams(const cst_gguf *g, cst_hparams *hp, char *err, size_t errlen) {
    (void)g, (void)err, (void)errlen;
    hp->rope_type = CST_ROPE_NEOX;
    hp->act = CST_ACT_SILU;
    hp->qk_norm = true;
    return CST_OK;
}

const cst_arch_desc cst_arch_qwen2 = {"qwen2", qwen2_hparams};
const cst_arch_desc cst_arch_qwen3 = {"qwen3", qwen3_hparams};
