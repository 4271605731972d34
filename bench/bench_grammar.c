/* bench_grammar.c: constrained decoding costs (a report, never a test).
 *
 *  1. schema compile time (typical and large schemas, no cache);
 *  2. per-token mask cost on a vocabulary: a walk of the trie for a new
 *     state (cold), then the cached mask applied to the logits (warm), over a
 *     random-logit generation of the schema (every token masked: the worst
 *     case, a random-weight model);
 *  3. decode tokens/s through the scheduler with and without the schema
 *     (one slot, the same prompt and budget, temperature 1).
 *
 * Build (from the repo root, after `make build`):
 *   gcc -O2 -Iinclude -Isrc bench/bench_grammar.c build/libcst_api.a build/libcst_model.a \
 *       build/libcst_kernels.a build/libcst_tokenizer.a build/libcst_sampler.a build/libcst_template.a \
 *       build/libcst_gguf.a build/libcst_core.a -ljansson -lpcre2-8 -lpthread -lm -o /tmp/bench_grammar
 * Run: /tmp/bench_grammar MODEL.gguf [n_tokens]
 *   (a random-weight model from `castor mkmodel --vocab-from ../shared/models/vocab-qwen3.gguf`)
 */
#include "api/schema.h"
#include "core/core.h"
#include "engine/engine.h"
#include "engine/runtime/sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *k_typical =
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":\"integer\",\"minimum\":0,"
    "\"maximum\":150},\"email\":{\"type\":\"string\",\"format\":\"email\"},\"tags\":{\"type\":\"array\",\"items\":{"
    "\"type\":\"string\"},\"maxItems\":5},\"role\":{\"enum\":[\"admin\",\"user\",\"guest\"]},\"born\":{\"type\":"
    "\"string\",\"format\":\"date\"},\"address\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},"
    "\"zip\":{\"type\":\"string\",\"pattern\":\"^[0-9]{5}$\"}},\"required\":[\"city\"]}},\"required\":[\"name\","
    "\"age\",\"role\"]}";

static json_t *large_schema(void) { /* 40 object types x 10 properties, cross-referenced */
    json_t *defs = json_object();
    for (int d = 0; d < 40; d++) {
        json_t *props = json_object(), *req = json_array();
        for (int p = 0; p < 10; p++) {
            char k[16];
            snprintf(k, sizeof k, "f%d", p);
            json_t *v;
            switch (p % 5) {
            case 0: v = json_pack("{s:s}", "type", "string"); break;
            case 1: v = json_pack("{s:s,s:i,s:i}", "type", "integer", "minimum", -d * 10, "maximum", 1000 + d); break;
            case 2: v = json_pack("{s:[s,s,s]}", "enum", "x", "y", "z"); break;
            case 3: v = json_pack("{s:s,s:s}", "type", "string", "format", p % 2 ? "uuid" : "date-time"); break;
            default: {
                char ref[32];
                snprintf(ref, sizeof ref, "#/$defs/t%d", (d + 1) % 40);
                v = json_pack("{s:s,s:{s:s},s:i}", "type", "array", "items", "$ref", ref, "maxItems", 3);
            }
            }
            json_object_set_new(props, k, v);
            if (p < 3) json_array_append_new(req, json_string(k));
        }
        char name[16];
        snprintf(name, sizeof name, "t%d", d);
        json_object_set_new(defs, name, json_pack("{s:s,s:o,s:o}", "type", "object", "properties", props, "required", req));
    }
    return json_pack("{s:o,s:s}", "$defs", defs, "$ref", "#/$defs/t0");
}

static double compile_ms(json_t *s, int reps, size_t *elems) {
    char err[512];
    double t0 = cst_time_now();
    for (int i = 0; i < reps; i++) {
        cst_grammar *g = cst_schema_compile(s, "schema", err, sizeof err);
        if (!g) {
            fprintf(stderr, "compile: %s\n", err);
            exit(1);
        }
        *elems = cst_grammar_n_elems(g);
        cst_grammar_unref(g);
    }
    return (cst_time_now() - t0) * 1e3 / reps;
}

static double run(cst_sched *s, cst_grammar *g, const cst_token *prompt, size_t np, int n, int *n_gen) {
    cst_req_params p = {.prompt = prompt, .n_prompt = np, .max_tokens = n, .grammar = g};
    p.sampling = cst_sampler_default_params();
    p.sampling.temperature = 1.0f;
    p.sampling.seed = 1234;
    cst_sched_req *r = NULL;
    char err[256];
    if (cst_sched_submit(s, &p, &r, err, sizeof err)) {
        fprintf(stderr, "submit: %s\n", err);
        exit(1);
    }
    cst_sched_event ev;
    double t_first = 0, t0 = cst_time_now(), t_end = 0;
    for (;;) {
        if (!cst_sched_req_next(r, &ev, -1)) continue;
        if (ev.type == CST_SCHED_EV_START) t0 = cst_time_now();
        if (ev.type == CST_SCHED_EV_TEXT) {
            if (!t_first) t_first = cst_time_now();
            free(ev.text);
        }
        if (ev.type == CST_SCHED_EV_DONE) {
            t_end = cst_time_now();
            *n_gen = ev.n_gen;
            free(ev.text);
            break;
        }
    }
    cst_sched_req_release(r);
    (void)t0;
    return *n_gen > 1 && t_first ? (*n_gen - 1) / (t_end - t_first) : 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_grammar MODEL.gguf [n_tokens]\n");
        return 2;
    }
    const int n = argc > 2 ? atoi(argv[2]) : 128;
    json_error_t je;
    json_t *typ = json_loads(k_typical, 0, &je), *big = large_schema();
    size_t e1, e2;
    double c1 = compile_ms(typ, 200, &e1), c2 = compile_ms(big, 20, &e2);
    printf("compile: typical schema %.3f ms (%zu elements), large schema %.3f ms (%zu elements)\n", c1, e1, c2, e2);

    cst_model *m = NULL;
    char err[512];
    if (cst_model_load(argv[1], NULL, &m, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    cst_sched_params sp = cst_sched_default_params();
    sp.n_slots = 1;
    sp.n_ctx = 1024;
    cst_sched *s = NULL;
    if (cst_sched_new(m, &sp, &s, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    cst_token *prompt;
    size_t np;
    cst_tokenize(cst_model_vocab(m), "Write a JSON object:", 20, true, false, &prompt, &np);
    cst_grammar *g = cst_schema_compile(typ, "schema", err, sizeof err);
    int ng = 0;
    run(s, NULL, prompt, np, 8, &ng); /* warm-up */
    double free_tps = 0, json_tps = 0, json_tps2 = 0;
    int ng_free = 0, ng_json = 0, ng_json2 = 0;
    for (int k = 0; k < 3; k++) {
        double a = run(s, NULL, prompt, np, n, &ng_free);
        if (a > free_tps) free_tps = a;
    }
    cst_sched_stats st0 = cst_sched_get_stats(s);
    json_tps = run(s, g, prompt, np, n, &ng_json); /* cold: masks computed as states appear */
    cst_sched_stats st1 = cst_sched_get_stats(s);
    for (int k = 0; k < 3; k++) {
        double a = run(s, g, prompt, np, n, &ng_json2); /* warm: the runtime (states, masks) is kept */
        if (a > json_tps2) json_tps2 = a;
    }
    cst_sched_stats st2 = cst_sched_get_stats(s);
    printf("model %s, vocabulary %d tokens, %d threads\n", cst_model_desc(m), cst_model_n_vocab(m), sp.n_threads);
    printf("decode without schema: %.1f tok/s (%d tokens)\n", free_tps, ng_free);
    printf("decode with schema, first request: %.1f tok/s (%d tokens); masks %llu of %llu tokens, %.2f ms each on average\n",
           json_tps, ng_json, (unsigned long long)(st1.n_grammar_masked - st0.n_grammar_masked),
           (unsigned long long)(st1.n_grammar_tokens - st0.n_grammar_tokens),
           (st1.mask_seconds - st0.mask_seconds) * 1e3 / (double)(st1.n_grammar_masked - st0.n_grammar_masked + 1e-9));
    printf("decode with schema, repeated: %.1f tok/s (%d tokens, %.1f %% of unconstrained); masks %llu of %llu tokens, "
           "%.3f ms each on average\n",
           json_tps2, ng_json2, free_tps > 0 ? 100.0 * json_tps2 / free_tps : 0,
           (unsigned long long)(st2.n_grammar_masked - st1.n_grammar_masked),
           (unsigned long long)(st2.n_grammar_tokens - st1.n_grammar_tokens),
           (st2.mask_seconds - st1.mask_seconds) * 1e3 / (double)(st2.n_grammar_masked - st1.n_grammar_masked + 1e-9));
    cst_grammar_unref(g);
    free(prompt);
    cst_sched_free(s);
    cst_model_free(m);
    json_decref(typ);
    json_decref(big);
    return 0;
}
