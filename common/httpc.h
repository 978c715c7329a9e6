/* HTTP requests from the libuv loop (a small HTTP/1.1 client on libuv and
 * http-parser, see httpc.c for why not libcurl), and a blocking variant for
 * use before the loop runs. */
#ifndef SHOAL_COMMON_HTTPC_H
#define SHOAL_COMMON_HTTPC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct common_httpc;

struct common_httpc_response {
    long status;        /* HTTP status, 0 when no response arrived */
    int error;          /* 0, or -ETIMEDOUT, -ECONNREFUSED, -ECANCELED, -E2BIG (body over
                         * 64 MiB), -EPROTO (malformed answer), -EIO */
    const char *errmsg; /* "" or what failed, naming the server ("connect to IP:PORT: ...") */
    const char *body;   /* NUL-terminated, "" when none (borrowed: valid during the callback) */
    size_t body_len;
    const char *headers; /* the raw response header lines (borrowed, as body) */
};

typedef void (*common_httpc_cb)(void *data, const struct common_httpc_response *res);

/* Creates a client on loop (borrowed). Returns 0 or a negative errno. */
int common_httpc_init(struct common_httpc **out, uv_loop_t *loop);

/* Sends a request. url: "http://IP:PORT/path" (IPv4 or localhost); headers:
 * NULL or a NULL-terminated array of "Name: value" strings (copied); body:
 * NULL or body_len bytes (copied); timeout_ms: the whole request (connecting:
 * at most 5 s of it). cb runs exactly once, from the loop, never from inside
 * this call. Returns a request id > 0, or -EINVAL (NULL method, url or cb, bad
 * url, CR/LF in a header, NULL body with body_len > 0), -ECANCELED (c is
 * closing); then cb never runs. */
int64_t common_httpc_request(struct common_httpc *c, const char *method, const char *url,
                             const char *const *headers, const char *body, size_t body_len,
                             unsigned timeout_ms, common_httpc_cb cb, void *data);

/* Cancels one request: its cb runs soon from the loop (never from inside
 * this call), once, with -ECANCELED. Unknown or answered ids are ignored. */
void common_httpc_cancel(struct common_httpc *c, int64_t id);

/* The value of response header `name` (case-insensitive), or NULL when
 * absent. The value lives in a buffer valid until the next call. */
const char *common_httpc_header(const struct common_httpc_response *res, const char *name);

/* Cancels every pending request (their callbacks run with -ECANCELED, from
 * inside this call; requests made then return -ECANCELED), closes every
 * handle, frees c, then calls cb(data) (from the loop once handles are
 * closed, or at once when none are open). A second call is ignored. */
void common_httpc_close(struct common_httpc *c, void (*cb)(void *data), void *data);

/* Blocking request on a private loop, for use before the main loop runs
 * (joining a cluster at start-up). *out_body is transferred (free()),
 * NUL-terminated, NULL on error. Returns 0 whatever the HTTP status, or a
 * negative errno (as above) with errmsg (256 bytes) set. */
int common_httpc_request_sync(const char *method, const char *url, const char *const *headers,
                              const char *body, size_t body_len, unsigned timeout_ms, long *status,
                              char **out_body, char *errmsg);

#endif
