/* llama.c: the llama family (Llama 2/3, SmolLM, TinyLlama, stories): GQA,
 * rope NORM (adjacent pairs, optional llama3 frequency factors from the
 * rope_freqs tensor), SiLU-gated FFN, untied or tied output. The forward
 * pass itself is the shared one in transformer.c.
 */
#include "../runtime/model_int.h"

#include <math.h>

static cst_status llama_hparams(const cst_gguf *g, cst_hparams *hp, char *err, size_t errlen) {
    (void)g, (void)err, (void)errlen;
    hp->rope_type = CST_ROPE_NORM;
    hp->act = CST_ACT_SILU;
    return CST_OK;
}

const cst_arch_desc cst_arch_llama = {"llama", llama_hparams};
