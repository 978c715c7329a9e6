/* A small HTTP/1.1 client on libuv and http-parser, for the plain HTTP that
 * nodes speak to each other. libcurl would do, but linking it maps its whole
 * TLS stack (libcrypto, gnutls, krb5...): 8 MiB more RSS measured on an idle
 * shoald, against a 2.5 MiB daemon. One connection per request
 * (Connection: close), by design: no connection reuse. IPv4 addresses and
 * "localhost" only. Sockets are libuv's, so close-on-exec. */
#include "common/httpc.h"

#include <errno.h>
#include <http_parser.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/util.h"

#define MAX_BODY         (64u << 20)
#define MAX_HEADER_BYTES (64u << 10)
#define CONNECT_MS       5000u

struct request {
    struct common_httpc *c; /* NULL for a blocking request */
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect;
    uv_write_t write;
    http_parser parser;
    struct common_buf out;     /* the request as sent */
    struct common_buf body;    /* response body */
    struct common_buf headers; /* response headers as "Name: value\n" lines */
    char addr[32];             /* "IP:PORT", for messages */
    int head;                  /* a HEAD request: the answer has no body */
    int last_was_value;
    int connected;
    int cancelled; /* answered -ECANCELED by the timer, at once */
    int done;
    int open_handles;
    int error; /* a failure found before finish (parser callbacks, connect) */
    char errmsg[256];
    unsigned timeout_ms;
    uint64_t started; /* uv_now() when sent */
    long status;
    int64_t id;
    common_httpc_cb cb;
    void *data;
    struct request *next;
};

struct common_httpc {
    uv_loop_t *loop;
    struct request *requests; /* not answered yet */
    int64_t next_id;
    int closing;
    int open; /* requests not yet freed */
    void (*close_cb)(void *);
    void *close_data;
};

const char *common_httpc_header(const struct common_httpc_response *res, const char *name)
{
    static __thread char value[1024];
    size_t nlen = strlen(name);
    for (const char *line = res->headers; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > nlen && line[nlen] == ':' && strncasecmp(line, name, nlen) == 0) {
            const char *v = line + nlen + 1;
            while (*v == ' ')
                v++;
            size_t vlen = (size_t)(line + len - v);
            if (vlen >= sizeof(value))
                vlen = sizeof(value) - 1;
            memcpy(value, v, vlen);
            value[vlen] = '\0';
            return value;
        }
        line = end ? end + 1 : NULL;
    }
    return NULL;
}

static void request_free(struct request *r)
{
    common_buf_free(&r->out);
    common_buf_free(&r->body);
    common_buf_free(&r->headers);
    free(r);
}

static void unlink_request(struct common_httpc *c, struct request *r)
{
    for (struct request **p = &c->requests; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            return;
        }
    }
}

static void handle_closed(uv_handle_t *h)
{
    struct request *r = h->data;
    if (--r->open_handles > 0)
        return;
    struct common_httpc *c = r->c;
    request_free(r);
    if (c && --c->open == 0 && c->closing) {
        void (*cb)(void *) = c->close_cb;
        void *data = c->close_data;
        free(c);
        if (cb)
            cb(data);
    }
}

/* Records why the request failed (r->errmsg, naming the server) unless a
 * reason is recorded already. */
__attribute__((format(printf, 3, 4))) static void set_error(struct request *r, int error,
                                                            const char *fmt, ...)
{
    if (r->error)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->errmsg, sizeof(r->errmsg), fmt, ap);
    va_end(ap);
    r->error = error;
}

/* Answers the request once (error 0 with its status, or an error with
 * r->errmsg; a cancelled request always -ECANCELED) and closes its handles. */
static void finish(struct request *r, int error)
{
    if (r->done)
        return;
    r->done = 1;
    if (r->c)
        unlink_request(r->c, r);
    if (r->cancelled || error == -ECANCELED) {
        error = -ECANCELED;
        snprintf(r->errmsg, sizeof(r->errmsg), "request to %s: cancelled", r->addr);
    }
    struct common_httpc_response res = {.error = error, .status = error ? 0 : r->status};
    res.errmsg = error ? r->errmsg : "";
    if (error)
        common_buf_free(&r->body);
    if (!r->body.data)
        common_buf_append(&r->body, "", 0);
    if (!r->headers.data)
        common_buf_append(&r->headers, "", 0);
    res.body = r->body.data;
    res.body_len = r->body.len;
    res.headers = r->headers.data;
    uv_timer_stop(&r->timer);
    r->cb(r->data, &res);
    uv_close((uv_handle_t *)&r->tcp, handle_closed);
    uv_close((uv_handle_t *)&r->timer, handle_closed);
}

static void fail(struct request *r, int error, const char *what, const char *cause)
{
    set_error(r, error, "%s %s: %s", what, r->addr, cause);
    finish(r, r->error);
}

static struct request *parser_request(http_parser *p)
{
    return container_of(p, struct request, parser);
}

static int headers_too_big(struct request *r, size_t len)
{
    if (r->headers.len + len <= MAX_HEADER_BYTES)
        return 0;
    set_error(r, -EPROTO, "answer from %s: headers over %u bytes", r->addr, MAX_HEADER_BYTES);
    return 1;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct request *r = parser_request(p);
    if (headers_too_big(r, len))
        return -1;
    if (r->last_was_value || r->headers.len == 0) {
        if (r->headers.len)
            common_buf_puts(&r->headers, "\n");
        r->last_was_value = 0;
    }
    common_buf_append(&r->headers, at, len);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct request *r = parser_request(p);
    if (headers_too_big(r, len))
        return -1;
    if (!r->last_was_value)
        common_buf_puts(&r->headers, ": ");
    r->last_was_value = 1;
    common_buf_append(&r->headers, at, len);
    return 0;
}

/* A HEAD answer announces a body it does not send (1: skip the body); an
 * announced body over the cap fails before any of it is read. */
static int on_headers_complete(http_parser *p)
{
    struct request *r = parser_request(p);
    if (r->head)
        return 1;
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > MAX_BODY) {
        set_error(r, -E2BIG, "answer from %s: body of %llu bytes, over %u", r->addr,
                  (unsigned long long)p->content_length, MAX_BODY);
        return -1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct request *r = parser_request(p);
    if (r->body.len + len > MAX_BODY) {
        set_error(r, -E2BIG, "answer from %s: body over %u bytes", r->addr, MAX_BODY);
        return -1;
    }
    common_buf_append(&r->body, at, len);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct request *r = parser_request(p);
    r->status = (long)p->status_code;
    finish(r, 0);
    return -1; /* stop parsing: the request is answered */
}

static const http_parser_settings settings = {
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = xmalloc(suggested);
    buf->len = suggested;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct request *r = s->data;
    if (nread > 0 && !r->done && !r->cancelled) {
        size_t n = http_parser_execute(&r->parser, &settings, buf->base, (size_t)nread);
        enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
        if (!r->done && (n != (size_t)nread || e != HPE_OK)) {
            set_error(r, -EPROTO, "answer from %s: malformed HTTP (%s)", r->addr,
                      http_errno_description(e));
            finish(r, r->error);
        }
    } else if (nread < 0 && !r->done && !r->cancelled) {
        /* EOF may end a response without Content-Length. */
        if (nread == UV_EOF)
            http_parser_execute(&r->parser, &settings, NULL, 0);
        fail(r, -EIO, "answer from",
             nread == UV_EOF ? "connection closed before the answer" : uv_strerror((int)nread));
    }
    free(buf->base);
}

static void write_cb(uv_write_t *w, int status)
{
    struct request *r = container_of(w, struct request, write);
    if (status != 0 && status != UV_ECANCELED && !r->done)
        fail(r, -EIO, "request to", uv_strerror(status));
}

static void timer_cb(uv_timer_t *t)
{
    struct request *r = t->data;
    if (!r->cancelled && !r->connected)
        set_error(r, -ETIMEDOUT, "connect to %s: timed out", r->addr);
    else if (!r->cancelled)
        set_error(r, -ETIMEDOUT, "request to %s: no answer within %u ms", r->addr, r->timeout_ms);
    finish(r, r->error);
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct request *r = container_of(req, struct request, connect);
    if (r->done || r->cancelled)
        return;
    if (status != 0) {
        int error = status == UV_ECONNREFUSED ? -ECONNREFUSED
                    : status == UV_ETIMEDOUT  ? -ETIMEDOUT
                                              : -EIO;
        fail(r, error, "connect to", uv_strerror(status));
        return;
    }
    r->connected = 1;
    uint64_t spent = uv_now(r->timer.loop) - r->started;
    if (r->timeout_ms > CONNECT_MS)
        uv_timer_start(&r->timer, timer_cb, spent < r->timeout_ms ? r->timeout_ms - spent : 0, 0);
    uv_buf_t b = uv_buf_init(r->out.data, (unsigned)r->out.len);
    int rv = uv_read_start((uv_stream_t *)&r->tcp, alloc_cb, read_cb);
    if (rv == 0)
        rv = uv_write(&r->write, (uv_stream_t *)&r->tcp, &b, 1, write_cb);
    if (rv != 0)
        fail(r, -EIO, "request to", uv_strerror(rv));
}

/* Parses http://HOST:PORT/PATH into an address (and r->addr) and the path. */
static int parse_url(struct request *r, const char *url, struct sockaddr_in *sa, const char **path,
                     char *host, size_t host_size)
{
    if (strncmp(url, "http://", 7) != 0 || strpbrk(url, " \r\n"))
        return -EINVAL;
    const char *h = url + 7;
    const char *slash = strchr(h, '/');
    *path = slash ? slash : "/";
    size_t hlen = slash ? (size_t)(slash - h) : strlen(h);
    if (hlen == 0 || hlen >= host_size)
        return -EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    char *colon = strrchr(host, ':'), *end = NULL, ip[64];
    long port = colon ? strtol(colon + 1, &end, 10) : 80;
    size_t iplen = colon ? (size_t)(colon - host) : hlen;
    if (iplen >= sizeof(ip))
        return -EINVAL;
    memcpy(ip, host, iplen);
    ip[iplen] = '\0';
    if (strcmp(ip, "localhost") == 0)
        common_strlcpy(ip, "127.0.0.1", sizeof(ip));
    if ((end && *end) || port <= 0 || port >= 65536 || uv_ip4_addr(ip, (int)port, sa) != 0)
        return -EINVAL;
    snprintf(r->addr, sizeof(r->addr), "%s:%ld", ip, port);
    return 0;
}

/* Writes the request into r->out; -EINVAL when a header would split it. */
static int build_request(struct request *r, const char *method, const char *path, const char *host,
                         const char *const *headers, const char *body, size_t body_len)
{
    common_buf_printf(&r->out, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, path,
                      host);
    for (size_t i = 0; headers && headers[i]; i++) {
        if (strpbrk(headers[i], "\r\n"))
            return -EINVAL;
        common_buf_printf(&r->out, "%s\r\n", headers[i]);
    }
    common_buf_printf(&r->out, "Content-Length: %zu\r\n\r\n", body ? body_len : 0);
    if (body)
        common_buf_append(&r->out, body, body_len);
    return 0;
}

/* Checks the arguments, then connects; any later failure is answered from
 * the loop. Returns 0, or -EINVAL with nothing started. */
static int request_start(struct request *r, uv_loop_t *loop, const char *method, const char *url,
                         const char *const *headers, const char *body, size_t body_len,
                         unsigned timeout_ms)
{
    struct sockaddr_in sa;
    const char *path;
    char host[256];
    if (!method || !*method || strpbrk(method, " \r\n") || !url || (!body && body_len > 0) ||
        parse_url(r, url, &sa, &path, host, sizeof(host)) != 0 ||
        build_request(r, method, path, host, headers, body, body_len) != 0)
        return -EINVAL;
    r->head = strcmp(method, "HEAD") == 0;
    r->timeout_ms = timeout_ms;
    http_parser_init(&r->parser, HTTP_RESPONSE);
    uv_tcp_init(loop, &r->tcp);
    uv_timer_init(loop, &r->timer);
    r->tcp.data = r->timer.data = r;
    r->open_handles = 2;
    r->started = uv_now(loop);
    uv_timer_start(&r->timer, timer_cb, timeout_ms < CONNECT_MS ? timeout_ms : CONNECT_MS, 0);
    int rv = uv_tcp_connect(&r->connect, &r->tcp, (const struct sockaddr *)&sa, connect_cb);
    if (rv != 0) {
        /* Answered from the loop, as promised: the timer fires at once. */
        set_error(r, rv == UV_ECONNREFUSED ? -ECONNREFUSED : -EIO, "connect to %s: %s", r->addr,
                  uv_strerror(rv));
        uv_timer_start(&r->timer, timer_cb, 0, 0);
    }
    return 0;
}

int common_httpc_init(struct common_httpc **out, uv_loop_t *loop)
{
    struct common_httpc *c = xcalloc(1, sizeof(*c));
    c->loop = loop;
    *out = c;
    return 0;
}

int64_t common_httpc_request(struct common_httpc *c, const char *method, const char *url,
                             const char *const *headers, const char *body, size_t body_len,
                             unsigned timeout_ms, common_httpc_cb cb, void *data)
{
    if (c->closing)
        return -ECANCELED;
    if (!cb)
        return -EINVAL;
    struct request *r = xcalloc(1, sizeof(*r));
    r->c = c;
    r->cb = cb;
    r->data = data;
    if (request_start(r, c->loop, method, url, headers, body, body_len, timeout_ms) != 0) {
        request_free(r);
        return -EINVAL;
    }
    r->id = ++c->next_id;
    r->next = c->requests;
    c->requests = r;
    c->open++;
    return r->id;
}

void common_httpc_cancel(struct common_httpc *c, int64_t id)
{
    for (struct request *r = c->requests; r; r = r->next) {
        if (r->id == id) {
            /* Stop the exchange now; the timer answers from the loop. */
            if (!r->cancelled) {
                r->cancelled = 1;
                uv_read_stop((uv_stream_t *)&r->tcp);
                uv_timer_start(&r->timer, timer_cb, 0, 0);
            }
            return;
        }
    }
}

void common_httpc_close(struct common_httpc *c, void (*cb)(void *data), void *data)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->close_cb = cb;
    c->close_data = data;
    while (c->requests)
        finish(c->requests, -ECANCELED);
    if (c->open == 0) {
        free(c);
        if (cb)
            cb(data);
    }
}

struct sync_result {
    long status;
    char *body;
    int error;
    char errmsg[256];
};

static void sync_cb(void *data, const struct common_httpc_response *res)
{
    struct sync_result *s = data;
    s->status = res->status;
    s->error = res->error;
    common_strlcpy(s->errmsg, res->errmsg, sizeof(s->errmsg));
    s->body = xstrndup(res->body, res->body_len);
}

int common_httpc_request_sync(const char *method, const char *url, const char *const *headers,
                              const char *body, size_t body_len, unsigned timeout_ms, long *status,
                              char **out_body, char *errmsg)
{
    struct sync_result s = {0};
    errmsg[0] = '\0';
    *status = 0;
    *out_body = NULL;
    uv_loop_t loop;
    int rv = uv_loop_init(&loop);
    if (rv != 0) {
        snprintf(errmsg, 256, "event loop: %s", uv_strerror(rv));
        return rv;
    }
    struct request *r = xcalloc(1, sizeof(*r));
    r->cb = sync_cb;
    r->data = &s;
    rv = request_start(r, &loop, method, url, headers, body, body_len, timeout_ms);
    if (rv != 0) {
        request_free(r);
        snprintf(errmsg, 256, "%s: not a valid request to an http://IP:PORT/ URL",
                 url ? url : "(no URL)");
    } else {
        uv_run(&loop, UV_RUN_DEFAULT);
        rv = s.error;
        if (rv != 0)
            snprintf(errmsg, 256, "%s %s: %s", method, url, s.errmsg);
    }
    uv_loop_close(&loop);
    *status = s.status;
    if (rv == 0)
        *out_body = s.body;
    else
        free(s.body);
    return rv;
}
