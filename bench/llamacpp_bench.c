/* llamacpp_bench.c: llama.cpp's speed on a GGUF, measured exactly like
 * `castor bench`: a prompt of P tokens decoded in one batch into an empty
 * cache (logits for the last token only), then N single-token decodes.
 * Built by bench/run.sh against the prebuilt libllama from node-llama-cpp
 * (headers are read from the source bundle inside that npm package at build
 * time; nothing of llama.cpp is part of this repository).
 * usage: llamacpp_bench MODEL [-p 512] [-n 128] [-t 2] [-r 3]  -> one JSON line
 */
#include "ggml-backend.h"
#include "llama.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void quiet_log(enum ggml_log_level level, const char *text, void *ud) {
    (void)ud;
    if (level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static bool no_progress(float p, void *ud) {
    (void)p;
    (void)ud;
    return true;
}

static void stats(const double *v, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

int main(int argc, char **argv) {
    const char *path = NULL, *backends = getenv("LLAMA_BACKEND_DIR");
    int P = 512, N = 128, T = 2, R = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-p") && i + 1 < argc) P = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) N = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) T = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) R = atoi(argv[++i]);
        else path = argv[i];
    }
    if (!path || P < 1 || N < 1 || R < 1 || R > 64) {
        fprintf(stderr, "usage: llamacpp_bench MODEL [-p P] [-n N] [-t T] [-r R]\n");
        return 2;
    }
    llama_log_set(quiet_log, NULL);
    if (backends) ggml_backend_load_all_from_path(backends);
    else ggml_backend_load_all();
    llama_backend_init();

    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.progress_callback = no_progress;
    struct llama_model *model = llama_model_load_from_file(path, mp);
    if (!model) {
        fprintf(stderr, "cannot load %s\n", path);
        return 1;
    }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = P + N + 16;
    cp.n_batch = cp.n_ubatch = P;
    cp.n_threads = cp.n_threads_batch = T;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.no_perf = true;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "cannot create context\n");
        return 1;
    }
    int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    llama_token *prompt = malloc(sizeof(llama_token) * P);
    unsigned x = 12345;
    for (int i = 0; i < P; i++) {
        x = x * 1103515245u + 12345u;
        prompt[i] = 10 + (int)((x >> 8) % (unsigned)(n_vocab > 1000 ? 1000 : n_vocab - 10));
    }
    double pp[64], tg[64];
    for (int r = 0; r <= R; r++) { /* r == 0 warms up */
        llama_memory_clear(llama_get_memory(ctx), true);
        double t0 = now();
        if (llama_decode(ctx, llama_batch_get_one(prompt, P))) {
            fprintf(stderr, "decode failed\n");
            return 1;
        }
        double t1 = now();
        llama_token tok = prompt[P - 1];
        for (int i = 0; i < N; i++) {
            if (llama_decode(ctx, llama_batch_get_one(&tok, 1))) {
                fprintf(stderr, "decode failed\n");
                return 1;
            }
            tok = prompt[i % P];
        }
        double t2 = now();
        if (r > 0) {
            pp[r - 1] = P / (t1 - t0);
            tg[r - 1] = N / (t2 - t1);
        }
    }
    double ppm, pps, tgm, tgs;
    stats(pp, R, &ppm, &pps);
    stats(tg, R, &tgm, &tgs);
    printf("{\"engine\":\"llama.cpp\",\"model\":\"%s\",\"threads\":%d,\"n_prompt\":%d,\"n_gen\":%d,\"reps\":%d,"
           "\"pp_tps\":%.3f,\"pp_sd\":%.3f,\"tg_tps\":%.3f,\"tg_sd\":%.3f}\n",
           path, T, P, N, R, ppm, pps, tgm, tgs);
    free(prompt);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
