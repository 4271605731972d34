/* stopper.c: stop-sequence matching over streamed text. Bytes are appended
 * as tokens arrive; a byte becomes ready for output only once it can no
 * longer be part of a stop sequence (no suffix of the text that starts at or
 * before it is a prefix of a stop) and it does not belong to an incomplete
 * UTF-8 character. A matched stop and everything after it is dropped.
 */
#include "sampler.h"

#include <stdlib.h>
#include <string.h>

struct cst_stopper {
    char **stops;
    size_t *stop_len;
    size_t n_stops;
    char *buf;
    size_t cap;
    size_t start;     /* bytes before this were handed out */
    size_t ready;     /* [start, ready) may be handed out */
    size_t len;       /* [ready, len) is held back */
    bool stopped;
};

cst_stopper *cst_stopper_new(const char *const *stops, size_t n_stops) {
    cst_stopper *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    if (n_stops && stops) {
        st->stops = calloc(n_stops, sizeof *st->stops);
        st->stop_len = calloc(n_stops, sizeof *st->stop_len);
        if (!st->stops || !st->stop_len) goto oom;
        for (size_t i = 0; i < n_stops; i++) {
            if (!stops[i] || !stops[i][0]) continue; /* empty stops never match */
            size_t l = strlen(stops[i]);
            st->stops[st->n_stops] = malloc(l + 1);
            if (!st->stops[st->n_stops]) goto oom;
            memcpy(st->stops[st->n_stops], stops[i], l + 1);
            st->stop_len[st->n_stops++] = l;
        }
    }
    st->cap = 256;
    st->buf = malloc(st->cap);
    if (!st->buf) goto oom;
    return st;
oom:
    cst_stopper_free(st);
    return NULL;
}

void cst_stopper_free(cst_stopper *st) {
    if (!st) return;
    if (st->stops)
        for (size_t i = 0; i < st->n_stops; i++) free(st->stops[i]);
    free(st->stops);
    free(st->stop_len);
    free(st->buf);
    free(st);
}

/* Bytes at the end of buf[0..len) that start an incomplete UTF-8 character. */
static size_t incomplete_utf8_tail(const char *buf, size_t from, size_t len) {
    for (size_t back = 1; back <= 3 && back <= len - from; back++) {
        unsigned char c = (unsigned char)buf[len - back];
        if ((c & 0xc0) == 0x80) continue; /* continuation byte: look further back */
        size_t need = c >= 0xf0 && c < 0xf8 ? 4 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xc0 && c < 0xe0 ? 2 : 1;
        return need > back ? back : 0;
    }
    return 0;
}

bool cst_stopper_feed(cst_stopper *st, const char *text, size_t len) {
    if (st->stopped) return true;
    /* drop what was handed out, then append */
    if (st->start > 0) {
        memmove(st->buf, st->buf + st->start, st->len - st->start);
        st->len -= st->start;
        st->ready -= st->start;
        st->start = 0;
    }
    if (st->len + len > st->cap) {
        size_t cap = st->cap;
        while (cap < st->len + len) cap *= 2;
        char *b = realloc(st->buf, cap);
        if (!b) { /* out of memory: pass the text through unmatched */
            st->ready = st->len;
            return false;
        }
        st->buf = b;
        st->cap = cap;
    }
    if (len) memcpy(st->buf + st->len, text, len);
    st->len += len;

    /* A new match can only start in the held-back region [ready, len). */
    size_t best = (size_t)-1;
    for (size_t k = 0; k < st->n_stops; k++) {
        size_t sl = st->stop_len[k];
        if (st->len - st->ready < sl) continue;
        for (size_t i = st->ready; i + sl <= st->len && i < best; i++) {
            if (st->buf[i] == st->stops[k][0] && memcmp(st->buf + i, st->stops[k], sl) == 0) {
                best = i;
                break;
            }
        }
    }
    if (best != (size_t)-1) {
        st->len = st->ready = best;
        st->stopped = true;
        return true;
    }

    /* hold back the longest suffix that is a proper prefix of some stop */
    size_t hold = 0;
    size_t avail = st->len - st->ready;
    for (size_t k = 0; k < st->n_stops; k++) {
        size_t sl = st->stop_len[k];
        size_t maxk = sl - 1 < avail ? sl - 1 : avail;
        for (size_t q = maxk; q > hold; q--) {
            if (memcmp(st->buf + st->len - q, st->stops[k], q) == 0) {
                hold = q;
                break;
            }
        }
    }
    size_t end = st->len - hold;
    /* never split a UTF-8 character */
    size_t tail = incomplete_utf8_tail(st->buf, st->ready, end);
    end -= tail;
    if (end > st->ready) st->ready = end;
    return false;
}

const char *cst_stopper_take(cst_stopper *st, size_t *len) {
    const char *p = st->buf + st->start;
    *len = st->ready - st->start;
    st->start = st->ready;
    return p;
}

const char *cst_stopper_flush(cst_stopper *st, size_t *len) {
    /* everything held is final now; an incomplete trailing UTF-8 character can
     * never complete, so it is dropped */
    size_t end = st->len;
    end -= incomplete_utf8_tail(st->buf, st->start, end);
    const char *p = st->buf + st->start;
    *len = end - st->start;
    st->start = st->ready = st->len = end;
    return p;
}
