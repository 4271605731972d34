/* tokenize.c: llama_tokenize / llama_detokenize for SPM and byte-level BPE
 * vocabularies. Text is first partitioned around special-token texts
 * (tokenizer_st_partition); SPM fragments are then merged pairwise by score
 * with byte fallback, BPE fragments split by the pre-tokenizer and merged by
 * rank. Both merge loops use a binary heap, so work is O(n log n).
 */
#define _GNU_SOURCE /* memmem, qsort_r */
#include "tok_int.h"
#include "unicode.h"
#include "core/core.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* ---- growable token vector ---------------------------------------------- */
typedef struct {
    cst_token *p;
    size_t n, cap;
    bool oom;
} tokv;

static void tok_push(tokv *v, cst_token t) {
    if (v->oom) return;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        cst_token *p = realloc(v->p, cap * sizeof *p);
        if (!p) {
            v->oom = true;
            return;
        }
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = t;
}

/* ---- merge queue: min-heap on (key, left) -------------------------------- */
typedef struct {
    float key; /* SPM: -score; BPE: rank */
    int left, right;
    size_t size;
} bigram;

typedef struct {
    bigram *p;
    size_t n, cap;
    bool oom;
} heap;

static inline bool bg_less(const bigram *a, const bigram *b) {
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

static void heap_push(heap *h, bigram b) {
    if (h->oom) return;
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        bigram *p = realloc(h->p, cap * sizeof *p);
        if (!p) {
            h->oom = true;
            return;
        }
        h->p = p;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t par = (i - 1) / 2;
        if (!bg_less(&b, &h->p[par])) break;
        h->p[i] = h->p[par];
        i = par;
    }
    h->p[i] = b;
}

static bigram heap_pop(heap *h) {
    bigram top = h->p[0];
    bigram last = h->p[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && bg_less(&h->p[c + 1], &h->p[c])) c++;
        if (!bg_less(&h->p[c], &last)) break;
        h->p[i] = h->p[c];
        i = c;
    }
    if (h->n) h->p[i] = last;
    return top;
}

typedef struct {
    int prev, next;
    int32_t id; /* BPE: string id of the symbol's text, -1 if none */
    size_t off, n;
} symbol;

/* split s into UTF-8 "characters" (lead-byte length, clipped) */
static symbol *make_symbols(const char *s, size_t len, size_t *count) {
    symbol *sym = malloc((len ? len : 1) * sizeof *sym);
    if (!sym) return NULL;
    size_t k = 0, off = 0;
    while (off < len) {
        size_t l = cst_utf8_len((unsigned char)s[off]);
        if (l > len - off) l = len - off;
        sym[k].off = off;
        sym[k].n = l;
        sym[k].prev = (int)k - 1;
        sym[k].id = -1;
        off += l;
        sym[k].next = off == len ? -1 : (int)k + 1;
        k++;
    }
    *count = k;
    return sym;
}

/* ---- SPM ------------------------------------------------------------------ */
static cst_token spm_byte_token(const cst_vocab *v, unsigned char c) {
    char buf[8];
    snprintf(buf, sizeof buf, "<0x%02X>", c);
    cst_token t = cst_vocab_find_hashed(v, buf, 6);
    if (t >= 0) return t;
    char one = (char)c;
    t = cst_vocab_find_hashed(v, &one, 1);
    return t >= 0 ? t : v->unk;
}

static void spm_try_add(const cst_vocab *v, const char *s, symbol *sym, heap *h, int l, int r) {
    if (l < 0 || r < 0) return;
    size_t n = sym[l].n + sym[r].n;
    cst_token t = cst_vocab_find_hashed(v, s + sym[l].off, n);
    if (t < 0) return;
    bigram b = {-v->score[t], l, r, n};
    heap_push(h, b);
}

/* s: text with spaces already escaped to U+2581 */
static bool spm_tokenize(const cst_vocab *v, const char *s, size_t len, tokv *out) {
    size_t ns;
    symbol *sym = make_symbols(s, len, &ns);
    heap h = {0};
    if (!sym) return false;
    for (size_t i = 1; i < ns; i++) spm_try_add(v, s, sym, &h, (int)i - 1, (int)i);
    while (h.n && !h.oom) {
        bigram b = heap_pop(&h);
        symbol *L = &sym[b.left], *R = &sym[b.right];
        if (L->n == 0 || R->n == 0 || L->n + R->n != b.size) continue;
        L->n += R->n;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) sym[R->next].prev = b.left;
        spm_try_add(v, s, sym, &h, L->prev, b.left);
        spm_try_add(v, s, sym, &h, b.left, L->next);
    }
    bool ok = !h.oom;
    /* every merged symbol is a token; a leftover character that is not one is
     * written as byte tokens */
    for (int i = ns ? 0 : -1; i != -1 && ok; i = sym[i].next) {
        cst_token t = cst_vocab_find_hashed(v, s + sym[i].off, sym[i].n);
        if (t >= 0) {
            tok_push(out, t);
        } else {
            for (size_t j = 0; j < sym[i].n; j++) {
                cst_token bt = spm_byte_token(v, (unsigned char)s[sym[i].off + j]);
                if (bt >= 0) tok_push(out, bt);
            }
        }
    }
    free(sym);
    free(h.p);
    return ok && !out->oom;
}

/* ---- BPE ------------------------------------------------------------------ */
static void bpe_try_add(const cst_vocab *v, symbol *sym, heap *h, int l, int r) {
    if (l < 0 || r < 0 || sym[l].id < 0 || sym[r].id < 0) return;
    int32_t rank = cst_vocab_merge_rank_ids(v, sym[l].id, sym[r].id);
    if (rank < 0) return;
    bigram b = {(float)rank, l, r, sym[l].n + sym[r].n};
    heap_push(h, b);
}

/* one pre-tokenized, byte-encoded word */
static bool bpe_word(const cst_vocab *v, const char *w, size_t len, tokv *out, heap *h) {
    if (v->ignore_merges) {
        cst_token t = cst_vocab_find_hashed(v, w, len);
        if (t >= 0) {
            tok_push(out, t);
            return !out->oom;
        }
    }
    size_t ns;
    symbol *sym = make_symbols(w, len, &ns);
    if (!sym) return false;
    h->n = 0;
    for (size_t i = 0; i < ns; i++) { /* a byte-map character: table lookup */
        const unsigned char *c = (const unsigned char *)w + sym[i].off;
        if (sym[i].n == 1 && c[0] < 0x80) sym[i].id = v->char_id[c[0]];
        else if (sym[i].n == 2 && c[0] >= 0xc2 && c[0] < 0xe0 && (c[1] & 0xc0) == 0x80 &&
                 (((uint32_t)(c[0] & 0x1f) << 6) | (c[1] & 0x3f)) < CST_GPT2_CPTS)
            sym[i].id = v->char_id[((uint32_t)(c[0] & 0x1f) << 6) | (c[1] & 0x3f)];
        else sym[i].id = cst_vocab_find_str(v, w + sym[i].off, sym[i].n);
    }
    for (size_t i = 1; i < ns; i++) bpe_try_add(v, sym, h, (int)i - 1, (int)i);
    while (h->n && !h->oom) {
        bigram b = heap_pop(h);
        symbol *L = &sym[b.left], *R = &sym[b.right];
        if (L->n == 0 || R->n == 0 || L->n + R->n != b.size) continue;
        L->n += R->n;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) sym[R->next].prev = b.left;
        L->id = cst_vocab_find_str(v, w + L->off, L->n);
        bpe_try_add(v, sym, h, L->prev, b.left);
        bpe_try_add(v, sym, h, b.left, L->next);
    }
    bool ok = !h->oom;
    for (size_t i = 0; i < ns && ok; i++) {
        if (sym[i].n == 0) continue;
        cst_token t = sym[i].id < v->n ? sym[i].id : -1;
        if (t >= 0) {
            tok_push(out, t);
        } else { /* llama.cpp looks up each raw byte as a one-byte token */
            for (size_t j = 0; j < sym[i].n; j++) {
                cst_token bt = cst_vocab_find_hashed(v, w + sym[i].off + j, 1);
                if (bt >= 0) tok_push(out, bt);
            }
        }
    }
    free(sym);
    return ok && !out->oom;
}

static bool bpe_tokenize(const cst_vocab *v, const char *text, size_t len, tokv *out) {
    uint32_t *cpts = NULL;
    size_t *offs = NULL, n_cpts = 0, n_offs = 0;
    if (cst_pretok_split(v, text, len, &cpts, &n_cpts, &offs, &n_offs) != CST_OK) return false;
    cst_sbuf w = {0};
    heap h = {0};
    bool ok = true;
    size_t start = 0;
    for (size_t k = 0; k < n_offs && ok; k++) {
        w.n = 0;
        for (size_t i = start; i < start + offs[k]; i++) {
            char enc[4];
            int l = cst_utf8_encode(cpts[i], enc);
            for (int q = 0; q < l; q++) {
                unsigned char b = (unsigned char)enc[q];
                cst_sbuf_put(&w, v->byte_enc[b], v->byte_enc_len[b]);
            }
        }
        start += offs[k];
        ok = !w.oom && bpe_word(v, w.p ? w.p : "", w.n, out, &h);
    }
    free(w.p);
    free(h.p);
    free(cpts);
    free(offs);
    return ok;
}

/* ---- special-token partitioning ------------------------------------------- */
typedef struct {
    cst_token tok; /* -1: raw text [off, off+len) */
    size_t off, len;
} frag;

typedef struct {
    frag *p;
    size_t n, cap;
    bool oom;
} fragv;

static void frag_push(fragv *f, cst_token tok, size_t off, size_t len) {
    if (f->oom) return;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        frag *p = realloc(f->p, cap * sizeof *p);
        if (!p) {
            f->oom = true;
            return;
        }
        f->p = p;
        f->cap = cap;
    }
    f->p[f->n++] = (frag){tok, off, len};
}

static int cmp_special_order(const void *a, const void *b, void *ctx) {
    const cst_vocab *v = ctx;
    cst_token x = *(const cst_token *)a, y = *(const cst_token *)b;
    size_t lx = cst_str_len(v, x), ly = cst_str_len(v, y);
    if (lx != ly) return lx > ly ? -1 : 1;
    return (x > y) - (x < y);
}

static bool is_special_for(const cst_vocab *v, cst_token t, bool parse_special) {
    int a = v->attr[t];
    if (!(a & (CST_TOKEN_ATTR_CONTROL | CST_TOKEN_ATTR_USER_DEFINED | CST_TOKEN_ATTR_UNKNOWN))) return false;
    if (!parse_special && (a & (CST_TOKEN_ATTR_CONTROL | CST_TOKEN_ATTR_UNKNOWN))) return false;
    return true;
}

/* The special tokens (in partition order) whose text occurs in the input: only
 * those can split anything, so the per-token passes stay few. */
static cst_token *present_specials(const cst_vocab *v, const char *text, size_t len, bool parse_special, size_t *n_out) {
    /* distinct special lengths */
    uint32_t lens[64];
    size_t n_lens = 0;
    bool many = false;
    for (size_t k = 0; k < v->n_special; k++) {
        uint32_t l = (uint32_t)cst_str_len(v, v->special[k]);
        if (n_lens && lens[n_lens - 1] == l) continue;
        if (n_lens == CST_ARRAY_LEN(lens)) {
            many = true;
            break;
        }
        lens[n_lens++] = l;
    }
    tokv found = {0};
    if (many) { /* fallback: test every special token */
        for (size_t k = 0; k < v->n_special; k++) {
            cst_token t = v->special[k];
            if (is_special_for(v, t, parse_special) && memmem(text, len, cst_str_text(v, t), cst_str_len(v, t)))
                tok_push(&found, t);
        }
    } else {
        for (size_t i = 0; i < len; i++) {
            if (!v->special_first[(unsigned char)text[i]]) continue;
            for (size_t k = 0; k < n_lens; k++) {
                if (lens[k] > len - i) continue;
                cst_token t = cst_vocab_find_hashed(v, text + i, lens[k]);
                if (t < 0 || !is_special_for(v, t, parse_special)) continue;
                bool dup = false;
                for (size_t q = 0; q < found.n && !dup; q++) dup = found.p[q] == t;
                if (!dup) tok_push(&found, t);
            }
        }
        if (found.n > 1) qsort_r(found.p, found.n, sizeof *found.p, cmp_special_order, (void *)v);
    }
    if (found.oom) {
        free(found.p);
        *n_out = (size_t)-1;
        return NULL;
    }
    *n_out = found.n;
    return found.p;
}

static bool c_isspace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

/* True when [pos, pos+n) overlaps one of the sorted ranges plain[2k]..plain[2k+1]. */
static bool in_plain(const size_t *plain, size_t n_plain, size_t pos, size_t n) {
    for (size_t k = 0; k < n_plain; k++)
        if (pos < plain[2 * k + 1] && plain[2 * k] < pos + n) return true;
    return false;
}

static bool partition(const cst_vocab *v, const char *text, size_t len, bool parse_special, const size_t *plain,
                      size_t n_plain, fragv *out) {
    fragv cur = {0}, nxt = {0};
    if (len) frag_push(&cur, -1, 0, len);
    size_t n_sp;
    cst_token *sp = present_specials(v, text, len, parse_special, &n_sp);
    if (n_sp == (size_t)-1) return false;
    for (size_t k = 0; k < n_sp && !cur.oom && !nxt.oom; k++) {
        cst_token t = sp[k];
        const char *tt = cst_str_text(v, t);
        size_t tl = cst_str_len(v, t);
        int attr = v->attr[t];
        nxt.n = 0;
        for (size_t j = 0; j < cur.n; j++) {
            frag f = cur.p[j];
            if (f.tok >= 0) {
                frag_push(&nxt, f.tok, 0, 0);
                continue;
            }
            size_t off = f.off, flen = f.len, from = f.off;
            for (;;) {
                const char *m = NULL;
                while (from + tl <= off + flen) { /* matches inside a plain range do not count */
                    m = memmem(text + from, off + flen - from, tt, tl);
                    if (!m || !in_plain(plain, n_plain, (size_t)(m - text), tl)) break;
                    from = (size_t)(m - text) + 1;
                    m = NULL;
                }
                if (!m) {
                    if (flen) frag_push(&nxt, -1, off, flen);
                    break;
                }
                size_t mpos = (size_t)(m - text);
                size_t llen = mpos - off;
                if (attr & CST_TOKEN_ATTR_LSTRIP)
                    while (llen > 0 && c_isspace(text[off + llen - 1])) llen--;
                if (llen) frag_push(&nxt, -1, off, llen);
                frag_push(&nxt, t, 0, 0);
                size_t roff = mpos + tl, rlen = off + flen - roff;
                if (attr & CST_TOKEN_ATTR_RSTRIP)
                    while (rlen > 0 && c_isspace(text[roff])) roff++, rlen--;
                off = roff;
                flen = rlen;
                from = off;
                if (!flen) break;
            }
        }
        fragv tmp = cur;
        cur = nxt;
        nxt = tmp;
    }
    free(sp);
    free(nxt.p);
    if (cur.oom || nxt.oom) {
        free(cur.p);
        return false;
    }
    *out = cur;
    return true;
}

static cst_status tokenize_impl(const cst_vocab *v, const char *text, size_t len, bool add_special, bool parse_special,
                                const size_t *plain, size_t n_plain, cst_token **out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    if (!v || (!text && len)) return CST_ERR_INVALID_ARG;
    fragv fr = {0};
    if (!partition(v, text, len, parse_special, plain, n_plain, &fr)) return CST_ERR_NOMEM;
    tokv o = {0};
    bool ok = true;
    if (add_special && v->add_bos && v->bos >= 0) tok_push(&o, v->bos);
    if (v->type == CST_VOCAB_SPM) {
        bool prev_special = true;
        cst_sbuf s = {0};
        for (size_t j = 0; j < fr.n && ok; j++) {
            frag f = fr.p[j];
            if (f.tok >= 0) {
                tok_push(&o, f.tok);
                prev_special = true;
                continue;
            }
            s.n = 0;
            if (v->add_space_prefix && prev_special) cst_sbuf_put(&s, "\xe2\x96\x81", 3);
            for (size_t i = 0; i < f.len; i++) {
                if (text[f.off + i] == ' ') cst_sbuf_put(&s, "\xe2\x96\x81", 3);
                else cst_sbuf_put(&s, text + f.off + i, 1);
            }
            ok = !s.oom && spm_tokenize(v, s.p ? s.p : "", s.n, &o);
            prev_special = false;
        }
        free(s.p);
    } else {
        for (size_t j = 0; j < fr.n && ok; j++) {
            frag f = fr.p[j];
            if (f.tok >= 0) tok_push(&o, f.tok);
            else ok = bpe_tokenize(v, text + f.off, f.len, &o);
        }
    }
    if (ok && add_special && v->add_eos && v->eos >= 0) tok_push(&o, v->eos);
    free(fr.p);
    if (!ok || o.oom) {
        free(o.p);
        return CST_ERR_NOMEM;
    }
    if (!o.p) { /* empty result: still hand back a valid pointer */
        o.p = malloc(sizeof *o.p);
        if (!o.p) return CST_ERR_NOMEM;
    }
    *out = o.p;
    *n_out = o.n;
    return CST_OK;
}

cst_status cst_tokenize(const cst_vocab *v, const char *text, size_t len, bool add_special, bool parse_special,
                        cst_token **out, size_t *n_out) {
    return tokenize_impl(v, text, len, add_special, parse_special, NULL, 0, out, n_out);
}

cst_status cst_tokenize_plain_ranges(const cst_vocab *v, const char *text, size_t len, bool add_special,
                                     const size_t *plain, size_t n_plain, cst_token **out, size_t *n_out) {
    return tokenize_impl(v, text, len, add_special, true, plain, n_plain, out, n_out);
}

size_t cst_token_to_piece(const cst_vocab *v, cst_token t, char *buf, size_t cap, bool special) {
    if (!v || t < 0 || t >= v->n) return 0;
    if (!special && (v->attr[t] & (CST_TOKEN_ATTR_UNKNOWN | CST_TOKEN_ATTR_CONTROL))) return 0;
    size_t n = cst_vocab_piece(v, t, NULL, 0); /* nothing is written unless it all fits */
    if (n <= cap && buf) cst_vocab_piece(v, t, buf, cap);
    return n;
}

/* llama.cpp's clean_up_tokenization_spaces passes, in place; returns new length */
static size_t clean_spaces(char *text, size_t total) {
    /* " ?", " !", " .", " ," lose the space */
    size_t n1 = total;
    total = total ? 1 : 0;
    for (size_t i = 1; i < n1; i++) {
        char x = text[i];
        if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) total--;
        text[total++] = x;
    }
    /* " ' " -> "'" */
    size_t n2 = total;
    total = total ? 1 : 0;
    for (size_t i = 1; i < n2; i++) {
        char x = text[i];
        if (x == '\'' && i + 1 < n2 && text[i - 1] == ' ' && text[i + 1] == ' ') {
            total--;
            text[++i] = '\0';
        }
        text[total++] = x;
    }
    /* " 's", " 'm", " 're", " 've" lose the space */
    size_t n3 = total;
    total = total ? 1 : 0;
    for (size_t i = 1; i < n3; i++) {
        char x = text[i];
        if (text[i - 1] == ' ' && x == '\'' && i + 1 < n3) {
            char x1 = text[i + 1];
            if (x1 == 's' || x1 == 'm') total--;
            else if (x1 != 't' && x1 != 'd' && i + 2 < n3) {
                char x2 = text[i + 2];
                if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) total--;
            }
        }
        text[total++] = x;
    }
    return total;
}

cst_status cst_detokenize(const cst_vocab *v, const cst_token *ids, size_t n, char **out, size_t *out_len) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!v || (!ids && n)) return CST_ERR_INVALID_ARG;
    cst_sbuf b = {0};
    cst_sbuf_put(&b, "", 0);
    if (b.oom) return CST_ERR_NOMEM;
    bool remove_space = v->add_space_prefix;
    for (size_t i = 0; i < n; i++) {
        cst_token t = ids[i];
        if (t < 0 || t >= v->n) {
            free(b.p);
            return CST_ERR_INVALID_ARG;
        }
        /* write the piece straight into the buffer (grown when it does not fit) */
        size_t room = b.cap - b.n - 1;
        size_t pl = cst_vocab_piece(v, t, b.p + b.n, room);
        if (pl > room) {
            size_t need = b.n + pl + 1, cap = b.cap;
            while (cap < need) cap *= 2;
            char *np = realloc(b.p, cap);
            if (!np) {
                free(b.p);
                return CST_ERR_NOMEM;
            }
            b.p = np;
            b.cap = cap;
            cst_vocab_piece(v, t, b.p + b.n, pl);
        }
        if (remove_space && pl && b.p[b.n] == ' ') {
            pl--;
            memmove(b.p + b.n, b.p + b.n + 1, pl);
        }
        remove_space = false;
        b.n += pl;
        b.p[b.n] = 0;
    }
    if (b.oom) {
        free(b.p);
        return CST_ERR_NOMEM;
    }
    if (v->clean_spaces) {
        b.n = clean_spaces(b.p, b.n);
        b.p[b.n] = 0;
    }
    *out = b.p;
    if (out_len) *out_len = b.n;
    return CST_OK;
}
