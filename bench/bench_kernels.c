/* bench_kernels.c: a short kernel benchmark (a report, never a test).
 *
 * For each weight type: decode-shaped matmul (n_tok 1) in GB/s of weight
 * bytes, and prompt-shaped matmul (n_tok 128 by default) in GFLOP/s, with the
 * active ISA and the given thread count. If CST_GGML_CPU_LIB names a
 * libggml-cpu*.so (llama.cpp), its per-row vec_dot is timed on the same data
 * single-threaded for comparison.
 *
 * Build (from the repo root, after building the cst_kernels target in build-kernels):
 *   gcc -O2 -Iinclude -Isrc bench/bench_kernels.c build-kernels/libcst_kernels.a \
 *       build-kernels/libcst_gguf.a build-kernels/libcst_core.a -lpthread -lm -ldl -o /tmp/bench_kernels
 * Run: /tmp/bench_kernels [threads] [n_in] [n_out] [n_tok] [types...]
 * (BENCH_CPU=1 times by process CPU time: use it with one thread on a loaded machine)
 */
#include "core/core.h"
#include "engine/kernels/kernels.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef void (*ggml_vec_dot_fn)(int n, float *s, size_t bs, const void *x, size_t bx, const void *y,
                                size_t by, int nrc);
typedef void (*ggml_from_float_fn)(const float *x, void *y, int64_t k);
struct ggml_traits_cpu {
    ggml_from_float_fn from_float;
    ggml_vec_dot_fn vec_dot;
    int vec_dot_type;
    int64_t nrows;
};

/* BENCH_CPU=1: process CPU time instead of wall-clock time (one thread on a
 * shared machine: other processes then slow the run but not the rate) */
static double now(void) {
    static int cpu = -1;
    if (cpu < 0) cpu = getenv("BENCH_CPU") && atoi(getenv("BENCH_CPU")) > 0;
    if (!cpu) return cst_time_now();
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float frand(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return ((*s >> 8) / 16777216.0f - 0.5f) * 0.2f;
}

int main(int argc, char **argv) {
    int nth = argc > 1 ? atoi(argv[1]) : 2;
    int64_t n_in = argc > 2 ? atoll(argv[2]) : 2048;
    int64_t n_out = argc > 3 ? atoll(argv[3]) : 2048;
    int64_t n_tok = argc > 4 ? atoll(argv[4]) : 128;
    cst_type types[16];
    int nt = 0;
    for (int i = 5; i < argc && nt < 16; i++)
        if (cst_type_from_name(argv[i], &types[nt])) nt++;
    if (!nt) {
        const cst_type d[] = {CST_TYPE_Q8_0, CST_TYPE_Q4_0, CST_TYPE_Q4_K, CST_TYPE_Q5_K,
                              CST_TYPE_Q6_K, CST_TYPE_F16,  CST_TYPE_BF16, CST_TYPE_F32};
        memcpy(types, d, sizeof d);
        nt = 8;
    }
    cst_kernels_init();
    printf("isa %s, %d threads, W %lld x %lld, prompt n_tok %lld\n", cst_isa_name(cst_kernels_isa()), nth,
           (long long)n_out, (long long)n_in, (long long)n_tok);

    const struct ggml_traits_cpu *(*ggml_traits)(int) = NULL;
    const char *glib = getenv("CST_GGML_CPU_LIB");
    if (glib) {
        void *h = dlopen(glib, RTLD_NOW);
        if (!h) {
            fprintf(stderr, "dlopen %s: %s\n", glib, dlerror());
        } else {
            void (*init)(void) = (void (*)(void))dlsym(h, "ggml_cpu_init");
            ggml_traits = (const struct ggml_traits_cpu *(*)(int))dlsym(h, "ggml_get_type_traits_cpu");
            if (init) init();
        }
    }

    cst_pool *pool = cst_pool_new(nth);
    float *wf = malloc(sizeof(float) * n_in * n_out);
    float *x = malloc(sizeof(float) * n_in * n_tok);
    float *y = malloc(sizeof(float) * n_out * n_tok);
    uint32_t seed = 1;
    for (int64_t i = 0; i < n_in * n_out; i++) wf[i] = frand(&seed);
    for (int64_t i = 0; i < n_in * n_tok; i++) x[i] = frand(&seed) * 10;

    for (int k = 0; k < nt; k++) {
        const cst_type t = types[k];
        const size_t rs = cst_row_size(t, n_in);
        char *W = cst_alloc_aligned(rs * n_out, 64);
        for (int64_t o = 0; o < n_out; o++) cst_quantize_row_ref(t, wf + o * n_in, W + o * rs, n_in);
        void *wd = cst_alloc_aligned(cst_matmul_wsize(t, n_in, n_tok) + 64, 64);
        /* weights the model loader would repack for this ISA (cst_pack_wanted) run packed */
        char *P = NULL;
        if (cst_pack_wanted(t, n_in, n_out)) {
            P = cst_alloc_aligned(cst_pack_size(t, n_in, n_out), 64);
            cst_pack(t, n_in, n_out, W, P);
        }
#define MATMUL(nt)                                                                  \
    (P ? cst_matmul_packed(pool, P, t, n_in, n_out, x, (nt), y, n_out, wd)         \
       : cst_matmul(pool, W, t, n_in, n_out, x, (nt), y, n_out, wd))

        /* decode */
        int reps = 0;
        double t0 = now(), el;
        do {
            MATMUL(1);
            reps++;
        } while ((el = now() - t0) < 0.3);
        const double dec_us = el / reps * 1e6;
        const double gbs = (double)rs * n_out / (el / reps) / 1e9;

        /* prompt */
        reps = 0;
        t0 = now();
        do {
            MATMUL(n_tok);
            reps++;
        } while ((el = now() - t0) < 0.5);
        const double gflops = 2.0 * n_in * n_out * n_tok / (el / reps) / 1e9;
        printf("%-5s%s decode %8.1f us  %6.2f GB/s | prompt %7.2f GFLOP/s (%.1f ms)", cst_type_name(t),
               P ? " packed" : "", dec_us, gbs, gflops, el / reps * 1e3);

        /* single-thread per-row comparison with ggml's vec_dot */
        if (ggml_traits) {
            const struct ggml_traits_cpu *gt = ggml_traits((int)t);
            const cst_kernel_traits *ct = cst_kernel_traits_for(t);
            if (gt && gt->vec_dot && gt->vec_dot_type == (int)ct->vec_dot_type) {
                const cst_kernel_traits *cv = cst_kernel_traits_for(ct->vec_dot_type);
                char *qa = cst_alloc_aligned(cst_row_size(ct->vec_dot_type, n_in) + 64, 64);
                if (ct->vec_dot_type == CST_TYPE_F32) memcpy(qa, x, n_in * 4);
                else cv->from_float(x, qa, n_in);
                double best[2] = {1e9, 1e9};
                for (int pass = 0; pass < 3; pass++) {
                    for (int which = 0; which < 2; which++) {
                        t0 = now();
                        for (int64_t o = 0; o < n_out; o++) {
                            if (which == 0) ct->vec_dot((int)n_in, &y[o], W + o * rs, qa);
                            else gt->vec_dot((int)n_in, &y[o], 0, W + o * rs, 0, qa, 0, 1);
                        }
                        el = now() - t0;
                        if (el < best[which]) best[which] = el;
                    }
                }
                printf(" | 1-thread row dots: castor %.1f us, ggml %.1f us (%.2fx)", best[0] * 1e6, best[1] * 1e6,
                       best[1] / best[0]);
                cst_free_aligned(qa);
            }
        }
        printf("\n");
        cst_free_aligned(W);
        cst_free_aligned(P);
        cst_free_aligned(wd);
    }
    cst_pool_free(pool);
    free(wf), free(x), free(y);
    return 0;
}
