/* tokenizer_fuzz.c: libFuzzer target for the tokenizer. Input byte 0 picks a
 * vocabulary (SPM: stories260K, phi-3, llama-2, gemma3; BPE: qwen3, llama3),
 * each loaded once per process (lazily) from $CST_SHARED/models (default: the
 * shared folder next to the source tree); byte 1 holds flags (add_special, plain ranges);
 * the rest is the text. It is tokenized with parse_special off and on and
 * through cst_tokenize_plain_ranges, every id is checked to be in the
 * vocabulary, turned into pieces (also into a too-small buffer) and
 * detokenized. Properties that hold in llama.cpp's semantics (the goldens)
 * trap when violated: plain_ranges with no range equals parse_special on; for
 * qwen3 (byte-level BPE, no space clean-up) detok(tok(x)) == x for valid UTF-8
 * x and the detokenized text is the concatenation of the pieces.
 */
#include "engine/tokenizer/tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CST_SHARED_DIR
#define CST_SHARED_DIR "../shared"
#endif

static const struct {
    const char *file;
    bool roundtrip; /* byte-level BPE without clean_spaces: exact round trip */
} vocabs[] = {
    {"stories260K.gguf", false},      {"vocab-qwen3.gguf", true},     {"ggml-vocab-phi-3.gguf", false},
    {"vocab-llama3.gguf", false},     {"llama-2-tiny-random.gguf", false}, {"vocab-gemma3.gguf", false},
};
#define N_VOCABS (sizeof vocabs / sizeof vocabs[0])
static cst_vocab *loaded[N_VOCABS];
static bool tried[N_VOCABS];

static const cst_vocab *get_vocab(size_t i) {
    if (tried[i]) return loaded[i];
    tried[i] = true;
    const char *dir = getenv("CST_SHARED");
    char path[4096], err[256];
    snprintf(path, sizeof path, "%s/models/%s", dir && *dir ? dir : CST_SHARED_DIR, vocabs[i].file);
    cst_gguf *g = NULL;
    if (cst_gguf_open(path, &g, err, sizeof err) != CST_OK) {
        fprintf(stderr, "tokenizer_fuzz: %s\n", err);
        abort(); /* a missing fixture is a setup error, not a finding */
    }
    if (cst_vocab_load(g, &loaded[i], err, sizeof err) != CST_OK) {
        fprintf(stderr, "tokenizer_fuzz: %s: %s\n", path, err);
        abort();
    }
    cst_gguf_close(g);
    return loaded[i];
}

/* Strict UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
static bool valid_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) k = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) k = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) k = 3, cp = c & 0x07;
        else return false;
        if (n - i <= k) return false; /* truncated sequence */
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if ((k == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return false;
        i += k + 1;
    }
    return true;
}

static char *detok(const cst_vocab *v, const cst_token *ids, size_t n, size_t *len) {
    char *out = NULL;
    *len = 0;
    if (cst_detokenize(v, ids, n, &out, len) != CST_OK) {
        if (out) __builtin_trap();
        return NULL;
    }
    if (!out || strlen(out) > *len) __builtin_trap(); /* NUL-terminated at len (pieces may hold NULs) */
    if (out[*len]) __builtin_trap();
    return out;
}

/* Pieces of every id into exact-size heap buffers; a too-small buffer must
 * not be written past its capacity. Returns the concatenation (special on). */
static char *pieces(const cst_vocab *v, const cst_token *ids, size_t n, size_t *len) {
    size_t cap = 64, used = 0;
    char *cat = malloc(cap);
    if (!cat) return NULL;
    for (size_t i = 0; i < n; i++) {
        for (int special = 0; special <= 1; special++) {
            size_t need = cst_token_to_piece(v, ids[i], NULL, 0, special);
            size_t small_cap = need / 2;
            char *small = malloc(small_cap ? small_cap : 1);
            size_t need2 = cst_token_to_piece(v, ids[i], small, small_cap, special);
            char *full = malloc(need ? need : 1);
            size_t need3 = cst_token_to_piece(v, ids[i], full, need, special);
            if (need2 != need || need3 != need) __builtin_trap();
            if (special) {
                if (used + need > cap) {
                    while (used + need > cap) cap *= 2;
                    char *nc = realloc(cat, cap);
                    if (!nc) abort();
                    cat = nc;
                }
                memcpy(cat + used, full, need);
                used += need;
            }
            free(small);
            free(full);
        }
        (void)cst_vocab_text(v, ids[i]);
        (void)cst_vocab_attr(v, ids[i]);
        (void)cst_vocab_is_eog(v, ids[i]);
        (void)cst_vocab_is_control(v, ids[i]);
    }
    *len = used;
    return cat;
}

static void check_ids(const cst_vocab *v, const cst_token *ids, size_t n) {
    int32_t nt = cst_vocab_n_tokens(v);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= nt) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const size_t which = data[0] % N_VOCABS;
    const uint8_t flags = data[1];
    const bool add_special = flags & 1;
    const cst_vocab *v = get_vocab(which);
    const size_t len = size - 2;
    char *text = malloc(len ? len : 1); /* exact size, no terminator */
    if (!text) return 0;
    if (len) memcpy(text, data + 2, len);
    const bool utf8 = valid_utf8(data + 2, len);

    cst_token *with = NULL;
    size_t n_with = 0;
    for (int ps = 0; ps <= 1; ps++) {
        cst_token *ids = NULL;
        size_t n = 0;
        cst_status st = cst_tokenize(v, text, len, add_special, ps, &ids, &n);
        if (st != CST_OK) {
            if (st != CST_ERR_NOMEM && st != CST_ERR_INVALID_ARG) __builtin_trap();
            free(ids);
            continue;
        }
        check_ids(v, ids, n);
        size_t dl = 0, pl = 0;
        char *d = detok(v, ids, n, &dl);
        char *p = pieces(v, ids, n, &pl);
        if (vocabs[which].roundtrip && d && p) {
            if (dl != pl || memcmp(d, p, dl)) __builtin_trap(); /* BPE detok = concatenated pieces */
            /* add_special with qwen3 adds nothing (add_bos false), so the
             * text must come back exactly */
            if (utf8 && !cst_vocab_add_bos(v) && !cst_vocab_add_eos(v) && (dl != len || memcmp(d, text, len)))
                __builtin_trap();
        }
        free(d);
        free(p);
        if (ps) {
            with = ids;
            n_with = n;
        } else {
            free(ids);
        }
    }

    /* plain ranges: none (must equal parse_special on), then up to two
     * ranges picked by the flag bits */
    cst_token *ids = NULL;
    size_t n = 0;
    if (cst_tokenize_plain_ranges(v, text, len, add_special, NULL, 0, &ids, &n) == CST_OK) {
        check_ids(v, ids, n);
        if (with && (n != n_with || memcmp(ids, with, n * sizeof *ids))) __builtin_trap();
    }
    free(ids);
    if (len) {
        size_t r[4];
        size_t nr = 0;
        size_t a = (size_t)(flags >> 1 & 7) * len / 8, b = (size_t)(flags >> 4 & 7) * len / 8 + 1;
        if (b > len) b = len;
        if (a < b) {
            r[nr++] = a;
            r[nr++] = b;
            if ((flags & 0x80) && b + 1 < len) {
                r[nr++] = b + 1;
                r[nr++] = len;
            }
        }
        ids = NULL;
        n = 0;
        if (cst_tokenize_plain_ranges(v, text, len, add_special, r, nr / 2, &ids, &n) == CST_OK) {
            check_ids(v, ids, n);
            size_t dl = 0;
            free(detok(v, ids, n, &dl));
        }
        free(ids);
    }
    free(with);
    free(text);
    return 0;
}
