/* A small HTTP/1.1 server on libuv and http-parser: keep-alive, pipelined
 * requests answered in order, body size limit, idle and slow-client
 * timeouts. Handlers answer asynchronously with api_http_respond. */
#ifndef SHOAL_API_HTTP_H
#define SHOAL_API_HTTP_H

#include <http_parser.h>
#include <stddef.h>
#include <uv.h>

#include "common/buf.h"

#define API_HTTP_MAX_BODY           (1u << 20)
#define API_HTTP_MAX_URL            8192
#define API_HTTP_REQUEST_TIMEOUT_MS 10000 /* a request must arrive whole within this */
#define API_HTTP_IDLE_TIMEOUT_MS    60000 /* keep-alive connections idle longer are closed */

struct api_http;
struct api_http_conn;

struct api_http_req {
    struct api_http_conn *conn; /* borrowed; NULL once the client is gone */
    enum http_method method;
    char *path;          /* owned: the URL path, percent-decoding not applied */
    char *query;         /* owned: the raw query string without '?', "" when none */
    char *authorization; /* owned: the Authorization header, NULL when absent */
    int forwarded;       /* an X-Shoal-Forwarded header came with it */
    struct common_buf body;
    int keep_alive;
    void *data; /* free for the handler's use */
};

/* Called once per complete request. The handler must call api_http_respond
 * exactly once for it, now or later. */
typedef void (*api_http_handler_cb)(struct api_http_req *req, void *data);

/* Listens on addr ("ip:port"). loop is borrowed. On error returns a negative
 * errno with the reason in errmsg (256 bytes). */
int api_http_listen(struct api_http **out, uv_loop_t *loop, const char *addr,
                    api_http_handler_cb cb, void *data, char *errmsg);

/* Answers req and frees it (req must not be used afterwards). headers is ""
 * or "Name: value\r\n" lines; body is copied. When the client is gone the
 * request is just freed. */
void api_http_respond(struct api_http_req *req, int status, const char *headers, const char *body,
                      size_t len);

/* The same with a Content-Type other than application/json (borrowed, such
 * as "application/x-ndjson"). */
void api_http_respond_typed(struct api_http_req *req, int status, const char *content_type,
                            const char *headers, const char *body, size_t len);

/* The query parameter `key`, copied into out (percent-decoded). Returns 1
 * when present, 0 when absent, -1 when longer than out_size-1. */
int api_http_query(const struct api_http_req *req, const char *key, char *out, size_t out_size);

/* Stops accepting connections (those open stay served). */
void api_http_stop_listening(struct api_http *h);

/* Closes every connection and the listener, frees the server and calls cb.
 * Requests still being handled must be answered before (their answers are
 * dropped after). */
void api_http_close(struct api_http *h, void (*cb)(void *data), void *data);

#endif
