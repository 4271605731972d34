/* http_guard.c: an HTTP/1.1 framing check in front of libmicrohttpd's reads.
 *
 * Why: libmicrohttpd 0.9.75 answers what it refuses while parsing a request
 * (a malformed or overflowing Content-Length, bad chunked encoding, an
 * unsupported HTTP version, a malformed request or header line, a head that
 * does not fit the connection memory) before any handler of ours runs, with
 * error pages compiled into the library (short HTML bodies; a bad
 * Content-Length even gets its status line twice). Those cannot be replaced
 * through its API. So the bytes are checked before MHD reads them.
 *
 * How: MHD reads its sockets with plain recv() (MHD_recv_, mhd_sockets.h),
 * called through its PLT, so the recv() defined here, in the executable,
 * receives every call. Client connections are registered per descriptor
 * from MHD_OPTION_NOTIFY_CONNECTION; for any other descriptor (the store's,
 * ours) and for any call with flags (MSG_PEEK probes), recv is the plain
 * system call. For a registered one, the bytes go through an incremental
 * parser (request line, header fields, then the body by Content-Length or
 * chunked, then the next request of a kept-alive connection), at least as
 * strict as MHD in everything MHD refuses itself. Its state is a few
 * counters per connection, never the head itself: an idle connection costs
 * one small allocation.
 *
 * On an error MHD gets only the bytes before the bad one: the requests
 * before it are answered as usual (MHD handles one request at a time), and
 * the bad one never completes. Once every whole request handed over has
 * completed (counted here, and at MHD_OPTION_NOTIFY_COMPLETED through
 * cst_http_guard_completed) and MHD asks for bytes, or at that completion,
 * the JSON error reply (errors.c's body, Connection: close) is sent and the
 * socket shut down; the read fails with ECONNRESET, so MHD drops the
 * connection without a reply of its own. (MHD may read before then, e.g.
 * when it resumes a parked request: that read gets EAGAIN.) MHD's epoll is
 * edge-triggered and takes a short read for "drained": when bytes before
 * the bad one were handed over, shutdown(SHUT_RD) wakes it once more.
 */
#define _GNU_SOURCE 1
#include "http_guard.h"

#include "api_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* A 414 / 431 reports the size of the whole target / head: the parser keeps
 * counting after the limit, up to this. */
#define COUNT_MAX (1u << 20)
#define METHOD_MAX 32
#define CHUNK_LINE_MAX 4096

/* ---- errors ------------------------------------------------------------- */

enum {
    G_NONE,
    G_LINE,         /* malformed request line */
    G_METHOD_LONG,
    G_VERSION,      /* malformed HTTP version */
    G_VERSION_OLD,  /* HTTP/0.x */
    G_VERSION_NEW,  /* HTTP/2 and up */
    G_FIELD,        /* malformed header line */
    G_FOLD,         /* obs-fold */
    G_NO_HOST,
    G_HOST_TWICE,
    G_CL_BAD,
    G_CL_BIG,
    G_CL_DIFFER,
    G_CL_TE,
    G_TE_TWICE,
    G_TE_OTHER,
    G_CHUNK_SIZE,
    G_CHUNK_BIG,
    G_CHUNK_LINE,
    G_CHUNK_END,    /* no CRLF after a chunk's data */
    G_URI_LONG,
    G_QUERY_MANY,
    G_HEAD_BIG,
    G_FIELDS_MANY,
    G_COOKIE_BIG,
    G_LAST
};

static const struct {
    ekind k;
    const char *msg; /* %zu: the size or count, where the message has one */
} errs[G_LAST] = {
    [G_LINE] = {E_INVALID, "the request line is malformed (expected METHOD TARGET HTTP/1.1)"},
    [G_METHOD_LONG] = {E_INVALID, "the request method is longer than 32 bytes"},
    [G_VERSION] = {E_INVALID, "the request line's HTTP version is malformed (expected HTTP/1.1)"},
    [G_VERSION_OLD] = {E_HTTP_VERSION, "HTTP versions before 1.0 are not supported"},
    [G_VERSION_NEW] = {E_HTTP_VERSION, "this port speaks HTTP/1.1 only"},
    [G_FIELD] = {E_INVALID, "a request header line is malformed (expected NAME: VALUE)"},
    [G_FOLD] = {E_INVALID, "a request header is folded over lines (obsolete line folding is not accepted)"},
    [G_NO_HOST] = {E_INVALID, "an HTTP/1.1 request needs a Host header"},
    [G_HOST_TWICE] = {E_INVALID, "the request has more than one Host header"},
    [G_CL_BAD] = {E_INVALID, "Content-Length: expected a number of bytes"},
    [G_CL_BIG] = {E_TOO_LARGE, "Content-Length: the number is too large"},
    [G_CL_DIFFER] = {E_INVALID, "the request has Content-Length headers that disagree"},
    [G_CL_TE] = {E_INVALID, "the request has both Content-Length and Transfer-Encoding"},
    [G_TE_TWICE] = {E_INVALID, "the request has more than one Transfer-Encoding header"},
    [G_TE_OTHER] = {E_UNIMPLEMENTED, "Transfer-Encoding: only chunked is supported"},
    [G_CHUNK_SIZE] = {E_INVALID, "chunked body: a chunk size line is malformed (expected hexadecimal digits)"},
    [G_CHUNK_BIG] = {E_TOO_LARGE, "chunked body: a chunk size is too large"},
    [G_CHUNK_LINE] = {E_INVALID, "chunked body: a chunk size line is longer than 4096 bytes"},
    [G_CHUNK_END] = {E_INVALID, "chunked body: a chunk's data is not followed by CRLF"},
    [G_URI_LONG] = {E_URI_TOO_LONG, "the request target is %zu bytes, over the server's limit of 8192"},
    [G_QUERY_MANY] = {E_URI_TOO_LONG, "the request target has more than 128 query parameters"},
    [G_HEAD_BIG] = {E_HEADERS_TOO_LARGE, "the request headers are %zu bytes, over the server's limit of 32768"},
    [G_FIELDS_MANY] = {E_HEADERS_TOO_LARGE,
                       "the request has more than 128 header fields (query parameters and cookies included)"},
    [G_COOKIE_BIG] = {E_HEADERS_TOO_LARGE, "the request's Cookie headers are over 8192 bytes (this server uses no cookies)"},
};

/* ---- the parser ---------------------------------------------------------- */

enum {
    S_START,     /* before a request line (empty lines are skipped, as MHD does) */
    S_METHOD,
    S_TARGET,
    S_VERSION,
    S_FIELD0,    /* start of a header (or trailer) line, or the empty line */
    S_NAME,
    S_VALUE,
    S_BODY,      /* Content-Length bytes */
    S_CSIZE0,    /* start of a chunk size line */
    S_CSIZE,
    S_CEXT,      /* chunk extension */
    S_CDATA,
    S_CDATA_END, /* the CRLF after a chunk's data */
    S_COUNT_TARGET, /* over the limit: counting the rest of the target */
    S_COUNT_HEAD,   /* over the limit: counting the rest of the head */
    S_FAILED,    /* the error is known, waiting for MHD to ask */
    S_SENT,      /* the error reply went out */
};

/* what the current header line is */
enum { H_OTHER, H_HOST, H_CL, H_TE, H_COOKIE };

enum {
    F_CR = 1 << 0,      /* a CR ended the line; the next byte must be LF */
    F_HTTP11 = 1 << 1,
    F_HOST = 1 << 2,
    F_CL = 1 << 3,
    F_TE = 1 << 4,
    F_CHUNKED = 1 << 5,
    F_TRAILER = 1 << 6, /* in the trailer fields after the last chunk */
    F_QUERY = 1 << 7,   /* the target has a '?' */
    F_VLEAD = 1 << 8,   /* in a value's leading whitespace */
    F_VBAD = 1 << 9,    /* the value is not what its header takes */
    F_VBIG = 1 << 10,   /* a number overflowed */
    F_ATLEAST = 1 << 11, /* a 414 / 431 size is a lower bound (the client stalled) */
    F_SHUT = 1 << 12     /* the guard shut the read side (to wake MHD), not the client */
};

typedef struct guard {
    int fd;
    uint8_t st, err, hdr, nb; /* state, G_*, H_*, bytes in b (or digits read) */
    uint16_t flags, fields;   /* F_*, header fields + query parameters + cookies */
    uint32_t n;               /* bytes of the target or of the head so far */
    uint32_t line;            /* bytes of the method / of Cookie values (head) / chunk size line / counted line */
    char b[17];               /* the version, a header name or a Transfer-Encoding value (lower case) */
    uint16_t pending;         /* requests handed to MHD whole and not yet completed (NOTIFY_COMPLETED) */
    uint64_t cl, v, left;     /* Content-Length, the number being read, body or chunk bytes left */
} guard;
_Static_assert(sizeof(guard) <= 64, "a guard is what an idle connection costs: keep it small");

static bool is_tchar(unsigned char c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_vchar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void next_request(guard *g) {
    if (g->st != S_START && g->pending < UINT16_MAX) g->pending++; /* one more whole request for MHD */
    g->st = S_START;
    g->flags = 0;
    g->fields = 0;
    g->n = g->line = 0;
    g->nb = 0;
    g->cl = g->v = g->left = 0;
}

/* The request line ended: check the version. */
static int end_request_line(guard *g) {
    const char *b = g->b;
    if (g->nb != 8 || memcmp(b, "HTTP/", 5) || b[5] < '0' || b[5] > '9' || b[6] != '.' || b[7] < '0' || b[7] > '9')
        return G_VERSION;
    if (b[5] == '0') return G_VERSION_OLD;
    if (b[5] > '1') return G_VERSION_NEW;
    if (b[7] >= '1') g->flags |= F_HTTP11; /* 1.1 (MHD takes 1.2 to 1.9 for 1.1 too) */
    g->st = S_FIELD0;
    g->n = g->line = 0;
    return G_NONE;
}

/* A header (or trailer) line ended. */
static int end_field(guard *g) {
    if (++g->fields > CST_MAX_FIELDS) return G_FIELDS_MANY;
    g->st = S_FIELD0;
    switch (g->hdr) {
    case H_HOST:
        if (g->flags & F_HOST) return G_HOST_TWICE;
        g->flags |= F_HOST;
        break;
    case H_CL:
        /* MHD takes the first one, digits only (trailing blanks included) */
        if (g->flags & F_VBIG) return G_CL_BIG;
        if ((g->flags & F_VBAD) || g->nb == 0) return G_CL_BAD;
        if ((g->flags & F_CL) && g->v != g->cl) return G_CL_DIFFER;
        g->flags |= F_CL;
        g->cl = g->v;
        break;
    case H_TE:
        if (g->flags & F_TE) return G_TE_TWICE;
        g->flags |= F_TE;
        /* MHD compares the whole value, trailing blanks included */
        if (!(g->flags & F_VBAD) && g->nb == 7 && !memcmp(g->b, "chunked", 7)) g->flags |= F_CHUNKED;
        break;
    default: break;
    }
    return G_NONE;
}

/* The empty line: the head (or the trailers) ended. */
static int end_head(guard *g) {
    if (g->flags & F_TRAILER) {
        next_request(g);
        return G_NONE;
    }
    if ((g->flags & F_HTTP11) && !(g->flags & F_HOST)) return G_NO_HOST;
    if ((g->flags & F_CL) && (g->flags & F_TE)) return G_CL_TE;
    if ((g->flags & F_TE) && !(g->flags & F_CHUNKED)) return G_TE_OTHER;
    if (g->flags & F_CHUNKED) g->st = S_CSIZE0;
    else if (g->cl > 0) {
        g->st = S_BODY;
        g->left = g->cl;
    } else next_request(g);
    return G_NONE;
}

/* A chunk size line ended. */
static int end_chunk_size(guard *g) {
    if (g->v == 0) { /* the last chunk: trailer fields follow, up to an empty line;
                      * MHD keeps the head while it reads them: they count
                      * with it towards CST_MAX_HEADERS and CST_MAX_FIELDS */
        g->flags |= F_TRAILER;
        g->st = S_FIELD0;
    } else {
        g->st = S_CDATA;
        g->left = g->v;
    }
    return G_NONE;
}

/* A line of the current state ended (LF, or CRLF). */
static int end_line(guard *g) {
    switch (g->st) {
    case S_START: return G_NONE; /* an empty line before a request */
    case S_VERSION: return end_request_line(g);
    case S_FIELD0: return end_head(g);
    case S_VALUE: return end_field(g);
    case S_CSIZE:
    case S_CEXT: return end_chunk_size(g);
    case S_CDATA_END: g->st = S_CSIZE0; return G_NONE;
    default: return G_LINE;
    }
}

static bool in_chunk_line(const guard *g) { return g->st >= S_CSIZE0 && g->st <= S_CDATA_END; }

/* One byte of the head or of a chunk framing line; G_NONE or an error. */
static int step(guard *g, unsigned char c) {
    if (g->flags & F_CR) {
        g->flags &= (uint16_t)~F_CR;
        if (c == '\n') return end_line(g);
        if (g->st == S_CDATA_END) return G_CHUNK_END;
        if (in_chunk_line(g)) return G_CHUNK_SIZE;
        return g->st == S_START || g->st == S_VERSION ? G_LINE : G_FIELD; /* a CR alone */
    }
    switch (g->st) {
    case S_START:
        if (c == '\r') g->flags |= F_CR;
        else if (c == '\n') break;
        else if (is_tchar(c)) {
            g->st = S_METHOD;
            g->line = 1;
        } else return G_LINE;
        break;
    case S_METHOD:
        if (c == ' ') g->st = S_TARGET;
        else if (!is_tchar(c)) return G_LINE;
        else if (++g->line > METHOD_MAX) return G_METHOD_LONG;
        break;
    case S_TARGET:
        if (c == ' ') {
            if (g->n == 0) return G_LINE;
            g->st = S_VERSION;
            g->nb = 0;
            break;
        }
        if (c <= 0x20 || c == 0x7f) return G_LINE; /* a control byte, or no version */
        if (c == '?' && !(g->flags & F_QUERY)) {
            g->flags |= F_QUERY;
            g->fields++;
        } else if (c == '&' && (g->flags & F_QUERY)) g->fields++;
        if (g->fields > CST_MAX_FIELDS) return G_QUERY_MANY;
        g->n++;
        break;
    case S_VERSION:
        if (c == '\r') g->flags |= F_CR;
        else if (c == '\n') return end_line(g);
        else if (g->nb >= 8) return G_VERSION;
        else g->b[g->nb++] = (char)c;
        break;
    case S_FIELD0:
        if (c == '\r') g->flags |= F_CR;
        else if (c == '\n') return end_line(g);
        else if (c == ' ' || c == '\t') return G_FOLD;
        else if (!is_tchar(c)) return G_FIELD;
        else {
            g->st = S_NAME;
            g->b[0] = (char)(c | 0x20);
            g->nb = 1;
        }
        break;
    case S_NAME:
        if (c == ':') {
            g->hdr = H_OTHER;
            if (!(g->flags & F_TRAILER)) { /* trailers do not frame anything */
                if (g->nb == 4 && !memcmp(g->b, "host", 4)) g->hdr = H_HOST;
                else if (g->nb == 14 && !memcmp(g->b, "content-length", 14)) g->hdr = H_CL;
                else if (g->nb == 17 && !memcmp(g->b, "transfer-encoding", 17)) g->hdr = H_TE;
                else if (g->nb == 6 && !memcmp(g->b, "cookie", 6)) g->hdr = H_COOKIE;
            }
            g->st = S_VALUE;
            g->nb = 0;
            g->v = 0;
            g->flags = (uint16_t)((g->flags & ~(F_VBAD | F_VBIG)) | F_VLEAD);
        } else if (!is_tchar(c)) return G_FIELD; /* blanks before the colon included */
        else if (g->nb < sizeof g->b) g->b[g->nb++] = (char)(c | 0x20);
        else g->nb = UINT8_MAX; /* longer than any name we look at */
        break;
    case S_VALUE:
        if (c == '\r') {
            g->flags |= F_CR;
            break;
        }
        if (c == '\n') return end_line(g);
        if (!is_vchar(c)) return G_FIELD;
        if ((g->flags & F_VLEAD) && (c == ' ' || c == '\t')) break;
        g->flags &= (uint16_t)~F_VLEAD;
        if (g->hdr == H_CL) {
            if (c < '0' || c > '9') g->flags |= F_VBAD;
            else if (!(g->flags & (F_VBAD | F_VBIG))) {
                if (g->v > (UINT64_MAX - 9) / 10) g->flags |= F_VBIG;
                g->v = g->v * 10 + (uint64_t)(c - '0');
                g->nb = 1;
            }
        } else if (g->hdr == H_TE) {
            if (g->nb < 7) g->b[g->nb++] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
            else g->flags |= F_VBAD;
        } else if (g->hdr == H_COOKIE) {
            /* MHD copies the Cookie header and splits it into records, in
             * the same connection memory as the head */
            if (++g->line > CST_MAX_COOKIE) return G_COOKIE_BIG;
            if (c == ';') g->fields++;
        }
        break;
    case S_CSIZE0: {
        const int h = hexval(c);
        if (h < 0) return G_CHUNK_SIZE; /* blanks, a missing size, a missing CRLF after the last chunk */
        g->v = (uint64_t)h;
        g->st = S_CSIZE;
        g->line = 1;
        break;
    }
    case S_CSIZE:
    case S_CEXT:
        if (++g->line > CHUNK_LINE_MAX) return G_CHUNK_LINE;
        if (c == '\r') g->flags |= F_CR;
        else if (c == '\n') return end_line(g);
        else if (g->st == S_CEXT) {
            if (!is_vchar(c)) return G_CHUNK_SIZE;
        } else if (c == ';') g->st = S_CEXT;
        else {
            const int h = hexval(c);
            if (h < 0) return G_CHUNK_SIZE;
            if (g->v > (UINT64_MAX >> 4)) return G_CHUNK_BIG;
            g->v = g->v << 4 | (uint64_t)h;
        }
        break;
    case S_CDATA_END:
        if (c == '\r') g->flags |= F_CR;
        else if (c == '\n') return end_line(g);
        else return G_CHUNK_END;
        break;
    default: return G_LINE;
    }
    return G_NONE;
}

/* Counting the rest of an oversized target / head; true once it is known. */
static bool count(guard *g, unsigned char c) {
    if (g->st == S_COUNT_TARGET && (c == ' ' || c == '\r' || c == '\n')) return true;
    if (++g->n >= COUNT_MAX) {
        g->flags |= F_ATLEAST;
        return true;
    }
    if (g->st == S_COUNT_HEAD) {
        if (c == '\n') {
            if (g->line == 0) return true; /* the empty line: the head ended */
            g->line = 0;
        } else if (c != '\r') g->line++;
    }
    return false;
}

/* Runs the parser over p[0..len): returns how many bytes lie before the
 * first bad one (len when none is). */
static size_t feed(guard *g, const unsigned char *p, size_t len) {
    size_t bad = len;
    if (g->st == S_FAILED || g->st == S_SENT) return 0;
    if (g->st == S_COUNT_TARGET || g->st == S_COUNT_HEAD) bad = 0;
    for (size_t i = 0; i < len; i++) {
        if (g->st == S_BODY || g->st == S_CDATA) { /* data: skipped in one step */
            const uint64_t take = CST_MIN(g->left, (uint64_t)(len - i));
            g->left -= take;
            i += (size_t)take - 1;
            if (g->left == 0) {
                if (g->st == S_CDATA) g->st = S_CDATA_END;
                else next_request(g);
            }
            continue;
        }
        if (g->st == S_COUNT_TARGET || g->st == S_COUNT_HEAD) {
            if (count(g, p[i])) {
                g->st = S_FAILED;
                return bad;
            }
            continue;
        }
        const uint8_t st = g->st;
        int e = step(g, p[i]);
        if (e == G_NONE && st == S_TARGET && g->n > CST_MAX_URI) e = G_URI_LONG;
        if (e == G_NONE && (st == S_FIELD0 || st == S_NAME || st == S_VALUE) && g->st != S_START &&
            ++g->n > CST_MAX_HEADERS)
            e = G_HEAD_BIG;
        if (e == G_NONE) continue;
        g->err = (uint8_t)e;
        bad = i;
        if (e == G_URI_LONG) g->st = S_COUNT_TARGET;
        else if (e == G_HEAD_BIG) {
            g->st = S_COUNT_HEAD;
            g->line = p[i] != '\n'; /* inside the line that went over, or at a line's start */
        } else {
            g->st = S_FAILED;
            return bad;
        }
    }
    return bad;
}

/* ---- the descriptor table --------------------------------------------- */

static _Atomic(guard *) *tab;
static _Atomic size_t tab_n; /* set once, after tab: 0 until then (every recv is the system call) */
static pthread_once_t tab_once = PTHREAD_ONCE_INIT;

static void tab_make(void) {
    /* as many slots as descriptors may be open (the hard limit: the soft one
     * is raised at start); untouched pages of calloc cost nothing */
    struct rlimit rl;
    size_t n = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY) n = (size_t)rl.rlim_max;
    n = CST_MIN(CST_MAX(n, (size_t)1024), (size_t)1 << 20);
    tab = calloc(n, sizeof *tab);
    atomic_store(&tab_n, tab ? n : 0);
}

bool cst_http_guard_init(void) {
    pthread_once(&tab_once, tab_make);
    return tab != NULL;
}

void cst_http_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                           enum MHD_ConnectionNotificationCode toe) {
    (void)cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!tab || !ci || ci->connect_fd < 0 || (size_t)ci->connect_fd >= tab_n) return;
        guard *g = calloc(1, sizeof *g);
        if (!g) return; /* unguarded: MHD's own checks still hold */
        g->fd = ci->connect_fd;
        next_request(g);
        atomic_store(&tab[g->fd], g);
        *socket_context = g;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        guard *g = *socket_context, *want = g;
        /* MHD notifies before it closes the descriptor, so no new connection
         * has it yet; compare anyway */
        atomic_compare_exchange_strong(&tab[g->fd], &want, NULL);
        free(g);
        *socket_context = NULL;
    }
}

bool cst_http_guard_read_shut(int fd) {
    /* called by the connection's own worker, or by the ticker while the
     * connection is parked (suspended): its worker then neither changes
     * the guard nor frees it */
    guard *g = fd >= 0 && (size_t)fd < tab_n ? atomic_load_explicit(&tab[fd], memory_order_acquire) : NULL;
    return g && (__atomic_load_n(&g->flags, __ATOMIC_ACQUIRE) & F_SHUT);
}

/* ---- the reads ------------------------------------------------------------ */

static ssize_t sys_recv(int fd, void *buf, size_t len, int flags) {
    return (ssize_t)syscall(SYS_recvfrom, fd, buf, len, flags, NULL, NULL);
}

/* Send the JSON error reply of g's error (best effort: the socket takes a
 * reply this small at once), then discard what the client has sent since. */
static void send_error(guard *g) {
    const ekind k = errs[g->err].k;
    char msg[256];
    size_t num = g->n;
    snprintf(msg, sizeof msg, errs[g->err].msg, num);
    if (g->flags & F_ATLEAST) { /* "is N bytes" -> "is at least N bytes" */
        char *is = strstr(msg, " is ");
        if (is) {
            char rest[256];
            snprintf(rest, sizeof rest, "%s", is + 4);
            snprintf(is, sizeof msg - (size_t)(is - msg), " is at least %s", rest);
        }
    }
    cst_metrics_error(k);
    cst_debug("http guard: fd %d: %d %s", g->fd, cst_api_ekind_http(k), msg);
    json_t *j = cst_api_error_body(ERR_STYLE_INTERACTIONS, k, msg);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (body) {
        char out[1024], date[64] = "";
        const int status = cst_api_ekind_http(k);
        const char *reason = MHD_get_reason_phrase_for((unsigned)status);
        const time_t now = time(NULL);
        struct tm tm;
        if (gmtime_r(&now, &tm)) strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        int m = snprintf(out, sizeof out,
                         "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: application/json; charset=utf-8\r\n"
                         "Access-Control-Allow-Origin: *\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n%s",
                         status, reason && *reason ? reason : "Error", date, strlen(body), body);
        if (m > 0 && (size_t)m < sizeof out) (void)send(g->fd, out, (size_t)m, MSG_NOSIGNAL | MSG_DONTWAIT);
        free(body);
    }
    /* unread bytes at close would make the kernel reset the connection,
     * which may lose the reply on the client's side */
    char tmp[4096];
    for (int i = 0; i < 16 && sys_recv(g->fd, tmp, sizeof tmp, MSG_DONTWAIT) > 0; i++) {}
    /* the FIN after the reply; and an epoll event, so that MHD reads (and
     * gets ECONNRESET) even when it waits for none */
    (void)shutdown(g->fd, SHUT_RDWR);
    g->st = S_SENT;
}

void cst_http_guard_completed(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    guard *g = ci ? ci->socket_context : NULL;
    if (!g) return;
    if (g->pending) g->pending--;
    /* the reply of the last request before the bad one went out */
    if (g->pending == 0 && g->st == S_FAILED) send_error(g);
}

ssize_t recv(int fd, void *buf, size_t len, int flags) {
    guard *g = flags == 0 && fd >= 0 && (size_t)fd < tab_n ? atomic_load_explicit(&tab[fd], memory_order_acquire) : NULL;
    if (!g) return sys_recv(fd, buf, len, flags);
    if (g->st == S_FAILED && g->pending == 0) send_error(g);
    if (g->st == S_SENT) {
        errno = ECONNRESET;
        return -1;
    }
    if (g->st == S_FAILED) {
        /* MHD also reads while a request before the bad one is still
         * being answered (a parked one it resumes, say): nothing for it;
         * the error goes out once that one completes */
        errno = EAGAIN;
        return -1;
    }
    const ssize_t n = sys_recv(fd, buf, len, 0);
    if (n <= 0) return n;
    const size_t ok = feed(g, buf, (size_t)n);
    while (g->st == S_COUNT_TARGET || g->st == S_COUNT_HEAD) { /* the rest of an oversized target / head */
        unsigned char tmp[4096];
        const ssize_t m = sys_recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (m <= 0) { /* stalled (or gone): report what came */
            g->flags |= F_ATLEAST;
            g->st = S_FAILED;
            break;
        }
        feed(g, tmp, (size_t)m);
    }
    if (ok == (size_t)n) return n;
    if (ok > 0) { /* MHD answers what came before first; wake it to ask again */
        __atomic_or_fetch(&g->flags, (uint16_t)F_SHUT, __ATOMIC_RELEASE);
        (void)shutdown(fd, SHUT_RD);
        return (ssize_t)ok;
    }
    if (g->pending) { /* see above: sent when the last one completes */
        errno = EAGAIN;
        return -1;
    }
    send_error(g);
    errno = ECONNRESET;
    return -1;
}
