/* ops.c: the small element-wise and per-row operations of the transformer
 * (RMSNorm, rotary embedding, gated activations), written to round exactly
 * like ggml's CPU backend so that logits match llama.cpp: RMSNorm sums in
 * double, rope walks theta by repeated multiplication in float, and GELU goes
 * through a table indexed by the F16 bits of the input.
 */
#include "model_int.h"

#include <math.h>
#include <pthread.h>

void cst_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / (double)n);
    const float scale = 1.0f / sqrtf(mean + eps);
    if (w) {
        for (int64_t i = 0; i < n; i++) y[i] = (x[i] * scale) * w[i];
    } else {
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * scale;
    }
}

/* ---- rotary embedding --------------------------------------------------
 * theta_i = scale * pos * base^(-2i/n_rot) / ff_i, with the power walked by
 * repeated multiplication in float (as ggml_rope_cache_init does). */
void cst_rope_cache(float *cache, int32_t pos, int32_t n_rot, float base, float scale,
                    const float *freq_factors) {
    const float theta_scale = powf(base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int32_t i = 0; i < n_rot / 2; i++) {
        const float ff = freq_factors ? freq_factors[i] : 1.0f;
        const float t = scale * (theta / ff);
        cache[2 * i] = cosf(t);
        cache[2 * i + 1] = sinf(t);
        theta *= theta_scale;
    }
}

/* ggml's rotation as GCC compiles it with FMA available (-march=native,
 * contraction on): the first product of each expression is fused,
 *   x0' = fma(x0, cos, -(x1*sin)),  x1' = fma(x0, sin, x1*cos). */
#if defined(__x86_64__) || defined(__i386__)
#define ROPE_FMA_TARGET __attribute__((target("fma")))
#else
#define ROPE_FMA_TARGET __attribute__((unused))
#endif
#define ROPE_BODY(FMA)                                                                  \
    const int32_t h = n_rot / 2, step = mode == CST_ROPE_NEOX ? 1 : 2,                  \
                  off = mode == CST_ROPE_NEOX ? h : 1;                                  \
    for (int32_t i = 0; i < h; i++) {                                                   \
        const float c = cache[2 * i], s = cache[2 * i + 1];                             \
        float *a = x + (size_t)i * step;                                                \
        const float x0 = a[0], x1 = a[off];                                             \
        a[0] = FMA(x0, c, -(x1 * s));                                                   \
        a[off] = FMA(x0, s, x1 * c);                                                    \
    }

ROPE_FMA_TARGET static void rope_apply_fma(float *x, const float *cache, int32_t n_rot, int mode) {
    ROPE_BODY(__builtin_fmaf)
}

static void rope_apply_libm(float *x, const float *cache, int32_t n_rot, int mode) { ROPE_BODY(fmaf) }

void cst_rope_apply(float *x, const float *cache, int32_t n_rot, int mode) {
#if defined(__x86_64__) || defined(__i386__)
    if (__builtin_cpu_supports("fma")) {
        rope_apply_fma(x, cache, n_rot, mode);
        return;
    }
#endif
    rope_apply_libm(x, cache, n_rot, mode);
}

/* ---- activations --------------------------------------------------------- */
static cst_f16 gelu_table[1 << 16];
static pthread_once_t gelu_once = PTHREAD_ONCE_INIT;

/* ggml_gelu_f32 as compiled with contraction: 1 + a*x*x is fma(a*x, x, 1). */
static float gelu_f32(float x) {
    const float c = 0.79788456080286535587989211986876f; /* sqrt(2/pi) */
    const float a = 0.044715f;
    return 0.5f * x * (1.0f + tanhf(c * x * fmaf(a * x, x, 1.0f)));
}

static void gelu_init(void) {
    for (uint32_t i = 0; i < (1u << 16); i++)
        gelu_table[i] = cst_f32_to_f16(gelu_f32(cst_f16_to_f32((cst_f16)i)));
}

void cst_ops_init(void) { pthread_once(&gelu_once, gelu_init); }

void cst_geglu(float *y, const float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float x = g[i];
        if (x <= -10.0f) {
            y[i] = 0.0f;
        } else if (x >= 10.0f) {
            y[i] = x * u[i];
        } else {
            y[i] = cst_f16_to_f32(gelu_table[cst_f32_to_f16(x)]) * u[i];
        }
    }
}
