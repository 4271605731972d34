/* cmd_bench.c: `castor bench`: prompt-processing and generation speed,
 * measured exactly like bench/llamacpp_bench.c does for llama.cpp: a prompt
 * of P pseudo-random tokens decoded in one batch into an empty cache (logits
 * for the last token only), then N single-token decodes; one warm-up run,
 * then R timed runs, mean +- sd. Prints a table, or one JSON line (--json).
 *   castor bench -m MODEL [-p 512] [-n 128] [-t T] [-r 3] [--json]
 */
#include "cli.h"
#include "engine/engine.h"
#include "core/core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void stats(const double *v, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += v[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

int cmd_bench(int argc, char **argv) {
    const char *model = NULL;
    int P = 512, N = 128, T = 0, R = 3;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: castor bench -m MODEL [-p 512] [-n 128] [-t THREADS] [-r 3] [--json]\n");
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (v && !strcmp(a, "-m")) {
            model = v, i++;
        } else if (v && !strcmp(a, "-p")) {
            P = atoi(v), i++;
        } else if (v && !strcmp(a, "-n")) {
            N = atoi(v), i++;
        } else if (v && !strcmp(a, "-t")) {
            T = atoi(v), i++;
        } else if (v && !strcmp(a, "-r")) {
            R = atoi(v), i++;
        } else {
            fprintf(stderr, "castor bench: bad option '%s'\n", a);
            return 2;
        }
    }
    if (!model || P < 1 || N < 1 || R < 1 || R > 64 || P > 65536) {
        fprintf(stderr, "usage: castor bench -m MODEL [-p 512] [-n 128] [-t THREADS] [-r 3] [--json]\n");
        return 2;
    }
    char err[CST_ERRMSG_LEN] = "";
    cst_model *m = NULL;
    cst_status st = cst_model_load(model, NULL, &m, err, sizeof err);
    if (st) {
        fprintf(stderr, "castor bench: %s\n", err);
        return 1;
    }
    cst_ctx_params cp = cst_ctx_default_params();
    cp.n_ctx = P + N + 16;
    cp.n_batch = P;
    cp.n_threads = T;
    cst_ctx *ctx = NULL;
    st = cst_ctx_new(m, &cp, &ctx, err, sizeof err);
    if (st) {
        fprintf(stderr, "castor bench: %s\n", err);
        cst_model_free(m);
        return 1;
    }
    T = cst_ctx_get_params(ctx).n_threads;
    const int32_t nv = cst_model_n_vocab(m);
    cst_batch *b = cst_batch_new(P);
    cst_token *prompt = malloc(sizeof(cst_token) * (size_t)P);
    int rc = 1;
    if (!b || !prompt) goto out;
    unsigned x = 12345;
    for (int i = 0; i < P; i++) {
        x = x * 1103515245u + 12345u;
        prompt[i] = 10 + (int)((x >> 8) % (unsigned)(nv > 1000 ? 1000 : nv - 10));
    }
    double pp[64], tg[64];
    for (int r = 0; r <= R; r++) { /* r == 0 warms up */
        cst_ctx_seq_truncate(ctx, 0, 0);
        cst_batch_clear(b);
        for (int i = 0; i < P; i++) cst_batch_add(b, prompt[i], i, 0, i == P - 1);
        double t0 = cst_time_now();
        if ((st = cst_ctx_decode(ctx, b))) goto fail;
        double t1 = cst_time_now();
        cst_token tok = prompt[P - 1];
        for (int i = 0; i < N; i++) {
            cst_batch_clear(b);
            cst_batch_add(b, tok, P + i, 0, true);
            if ((st = cst_ctx_decode(ctx, b))) goto fail;
            tok = prompt[i % P];
        }
        double t2 = cst_time_now();
        if (r > 0) {
            pp[r - 1] = P / (t1 - t0);
            tg[r - 1] = N / (t2 - t1);
        }
    }
    double ppm, pps, tgm, tgs;
    stats(pp, R, &ppm, &pps);
    stats(tg, R, &tgm, &tgs);
    if (json) {
        printf("{\"engine\":\"castor\",\"model\":");
        json_str(model);
        printf(",\"desc\":");
        json_str(cst_model_desc(m));
        printf(",\"threads\":%d,\"n_prompt\":%d,\"n_gen\":%d,\"reps\":%d,\"pp_tps\":%.3f,\"pp_sd\":%.3f,"
               "\"tg_tps\":%.3f,\"tg_sd\":%.3f,\"kv_bytes\":%zu}\n",
               T, P, N, R, ppm, pps, tgm, tgs, cst_ctx_kv_size(ctx));
    } else {
        printf("model: %s (%s), threads %d, %d runs\n", model, cst_model_desc(m), T, R);
        printf("| test    |          tokens/s |\n|---------|-------------------|\n");
        printf("| pp%-5d | %9.2f ± %6.2f |\n", P, ppm, pps);
        printf("| tg%-5d | %9.2f ± %6.2f |\n", N, tgm, tgs);
    }
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "castor bench: %s: %s\n", cst_status_str(st), cst_ctx_errmsg(ctx));
out:
    free(prompt);
    cst_batch_free(b);
    cst_ctx_free(ctx);
    cst_model_free(m);
    return rc;
}
