/* http_guard.h: the request framing guard in front of libmicrohttpd's reads
 * (http_guard.c). Every byte MHD reads from a client connection goes through
 * an HTTP/1.1 framing check first; a request MHD would refuse itself (with
 * its compiled-in HTML pages) is answered here in the JSON error shape and
 * the connection closed, before MHD ever sees the bad bytes.
 */
#ifndef CST_HTTP_GUARD_H
#define CST_HTTP_GUARD_H

#include <microhttpd.h>
#include <stdbool.h>

/* Request head limits, answered 414 / 431 (they stay well inside MHD's
 * per-connection memory, server.c CST_CONN_MEMORY). */
#define CST_MAX_URI 8192
#define CST_MAX_HEADERS (32 * 1024)
/* Header fields plus query parameters plus cookies of one request: each
 * costs MHD a record in the connection memory. */
#define CST_MAX_FIELDS 128
/* Bytes of Cookie values: MHD copies them once more (castor reads none). */
#define CST_MAX_COOKIE 8192

/* Make the descriptor table (once per process; later calls do nothing).
 * False when out of memory: connections are then not guarded. */
bool cst_http_guard_init(void);
/* MHD_OPTION_NOTIFY_CONNECTION callback: guards a connection from its start
 * (MHD_CONNECTION_NOTIFY_STARTED) to its end (..._CLOSED). */
void cst_http_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                           enum MHD_ConnectionNotificationCode toe);

/* From MHD_OPTION_NOTIFY_COMPLETED: a request of c completed (its reply
 * went out, or it ended); the error reply waiting behind it goes out when it
 * was the last one before the bad request. */
void cst_http_guard_completed(struct MHD_Connection *c);
/* True when the guard itself shut fd's read side: a bad request waits
 * behind the ones MHD is answering, and POLLRDHUP / EOF on fd do not mean
 * that the client hung up. */
bool cst_http_guard_read_shut(int fd);

#endif
