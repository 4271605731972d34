/* cmd_tokenize.c: `castor tokenize` (text -> JSON array of ids) and
 * `castor detokenize` (ids -> text), using only the vocabulary of a GGUF.
 * tokenize defaults: add_special on (BOS/EOS as the model says), parse_special
 * off (special-token texts in the input are ordinary text). detokenize writes
 * special tokens as their text and adds no trailing newline.
 */
#include "cli.h"
#include "core/core.h"
#include "engine/gguf/gguf.h"
#include "engine/tokenizer/tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void tok_usage(FILE *f) {
    fprintf(f, "usage: castor tokenize -m MODEL [--no-special] [--parse-special] (--text TEXT | --file FILE)\n"
               "  prints the token ids as a JSON array on one line\n"
               "  --no-special     do not add BOS/EOS (default: add them as the model says)\n"
               "  --parse-special  treat special-token texts in the input as special tokens\n"
               "  --file FILE      read the text from FILE ('-' for stdin), bytes as they are\n");
}

static void detok_usage(FILE *f) {
    fprintf(f, "usage: castor detokenize -m MODEL --ids ID[,ID...]\n"
               "  prints the text of the ids (special tokens as their text), without a newline\n"
               "  ids may be separated by commas or spaces; surrounding [ ] are accepted\n");
}

static cst_vocab *load_vocab(const char *path) {
    char err[512];
    cst_gguf *g = NULL;
    if (cst_gguf_open(path, &g, err, sizeof err) != CST_OK) {
        fprintf(stderr, "castor: %s\n", err);
        return NULL;
    }
    cst_vocab *v = NULL;
    cst_status st = cst_vocab_load(g, &v, err, sizeof err);
    cst_gguf_close(g);
    if (st != CST_OK) {
        fprintf(stderr, "castor: %s: %s\n", path, err);
        return NULL;
    }
    return v;
}

static char *read_stdin(size_t *len) {
    size_t cap = 65536, n = 0;
    char *b = malloc(cap + 1);
    if (!b) return NULL;
    size_t got;
    while ((got = fread(b + n, 1, cap - n, stdin)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = realloc(b, cap * 2 + 1);
            if (!nb) {
                free(b);
                return NULL;
            }
            b = nb;
            cap *= 2;
        }
    }
    b[n] = 0;
    *len = n;
    return b;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *file = NULL;
    bool add_special = true, parse_special = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            tok_usage(stdout);
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && i + 1 < argc) {
            model = argv[++i];
        } else if (!strcmp(a, "--text") && i + 1 < argc) {
            text = argv[++i];
        } else if (!strcmp(a, "--file") && i + 1 < argc) {
            file = argv[++i];
        } else if (!strcmp(a, "--no-special")) {
            add_special = false;
        } else if (!strcmp(a, "--parse-special")) {
            parse_special = true;
        } else {
            fprintf(stderr, "castor tokenize: unknown or incomplete option '%s'\n", a);
            tok_usage(stderr);
            return 2;
        }
    }
    if (!model || (!text == !file)) {
        tok_usage(stderr);
        return 2;
    }
    char *buf = NULL;
    size_t len = 0;
    if (file) {
        if (!strcmp(file, "-")) {
            buf = read_stdin(&len);
            if (!buf) {
                fprintf(stderr, "castor tokenize: cannot read stdin\n");
                return 1;
            }
        } else if (cst_read_file(file, &buf, &len) != CST_OK) {
            fprintf(stderr, "castor tokenize: cannot read '%s'\n", file);
            return 1;
        }
        text = buf;
    } else {
        len = strlen(text);
    }
    cst_vocab *v = load_vocab(model);
    if (!v) {
        free(buf);
        return 1;
    }
    cst_token *ids = NULL;
    size_t n = 0;
    cst_status st = cst_tokenize(v, text, len, add_special, parse_special, &ids, &n);
    if (st != CST_OK) {
        fprintf(stderr, "castor tokenize: %s\n", cst_status_str(st));
        cst_vocab_free(v);
        free(buf);
        return 1;
    }
    putchar('[');
    for (size_t i = 0; i < n; i++) printf(i ? ",%d" : "%d", ids[i]);
    printf("]\n");
    free(ids);
    cst_vocab_free(v);
    free(buf);
    return 0;
}

/* "1,2,3", "1 2 3", "[1, 2, 3]" */
static bool parse_ids(const char *s, cst_token **out, size_t *n_out) {
    size_t cap = 16, n = 0;
    cst_token *ids = malloc(cap * sizeof *ids);
    if (!ids) return false;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '[' || *p == ']' || *p == '\t' || *p == '\n') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x > INT32_MAX) {
            free(ids);
            return false;
        }
        if (n == cap) {
            cst_token *ni = realloc(ids, cap * 2 * sizeof *ids);
            if (!ni) {
                free(ids);
                return false;
            }
            ids = ni;
            cap *= 2;
        }
        ids[n++] = (cst_token)x;
        p = end;
        if (*p && *p != ' ' && *p != ',' && *p != ']' && *p != '\t' && *p != '\n') {
            free(ids);
            return false;
        }
    }
    *out = ids;
    *n_out = n;
    return true;
}

int cmd_detokenize(int argc, char **argv) {
    const char *model = NULL, *ids_s = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            detok_usage(stdout);
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && i + 1 < argc) {
            model = argv[++i];
        } else if (!strcmp(a, "--ids") && i + 1 < argc) {
            ids_s = argv[++i];
        } else {
            fprintf(stderr, "castor detokenize: unknown or incomplete option '%s'\n", a);
            detok_usage(stderr);
            return 2;
        }
    }
    if (!model || !ids_s) {
        detok_usage(stderr);
        return 2;
    }
    cst_token *ids = NULL;
    size_t n = 0;
    if (!parse_ids(ids_s, &ids, &n)) {
        fprintf(stderr, "castor detokenize: bad --ids '%s' (want comma-separated non-negative integers)\n", ids_s);
        return 2;
    }
    cst_vocab *v = load_vocab(model);
    if (!v) {
        free(ids);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= cst_vocab_n_tokens(v)) {
            fprintf(stderr, "castor detokenize: id %d out of range (vocabulary has %d tokens)\n", ids[i],
                    cst_vocab_n_tokens(v));
            free(ids);
            cst_vocab_free(v);
            return 1;
        }
    }
    char *out = NULL;
    size_t olen = 0;
    cst_status st = cst_detokenize(v, ids, n, &out, &olen);
    if (st != CST_OK) {
        fprintf(stderr, "castor detokenize: %s\n", cst_status_str(st));
        free(ids);
        cst_vocab_free(v);
        return 1;
    }
    fwrite(out, 1, olen, stdout);
    free(out);
    free(ids);
    cst_vocab_free(v);
    return 0;
}
