#include "api/http.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

#define READ_CHUNK       65536
#define MAX_HEADER_FIELD 64
#define MAX_HEADER_VALUE 8192

struct api_http {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int listening;
    api_http_handler_cb cb;
    void *data;
    struct api_http_conn *conns; /* all open connections */
    size_t n_open;               /* handles still to close on shutdown */
    int closing;
    void (*close_cb)(void *);
    void *close_data;
};

struct api_http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct api_http *server;
    http_parser parser;
    struct common_buf in; /* bytes read but not yet parsed */
    size_t in_off;
    struct api_http_req *req; /* being parsed, or being handled */
    int handling;             /* req was handed to the handler */
    int in_message;           /* a message has begun */
    int closing;
    int close_after_write;
    char field[MAX_HEADER_FIELD + 1];
    size_t field_len;
    int field_is_auth;
    int ready;      /* a complete request waits to be handed over */
    int in_process; /* inside conn_process */
    int last_was_value;
    struct common_buf url;
    struct api_http_conn *next, *prev;
    int handles; /* tcp and timer still open */
};

struct write_req {
    uv_write_t w;
    struct api_http_conn *conn;
    char *buf;
};

static http_parser_settings settings;

static void req_free(struct api_http_req *req)
{
    if (!req)
        return;
    free(req->path);
    free(req->query);
    free(req->authorization);
    common_buf_free(&req->body);
    free(req);
}

static void conn_handle_closed(uv_handle_t *h)
{
    struct api_http_conn *c = h->data;
    if (--c->handles > 0)
        return;
    struct api_http *s = c->server;
    common_buf_free(&c->in);
    common_buf_free(&c->url);
    free(c);
    if (--s->n_open == 0 && s->closing && s->close_cb) {
        void (*cb)(void *) = s->close_cb;
        void *data = s->close_data;
        free(s);
        cb(data);
    }
}

static void conn_close(struct api_http_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->req) {
        if (c->handling)
            c->req->conn = NULL; /* the handler still owns it and will answer into nothing */
        else
            req_free(c->req);
        c->req = NULL;
    }
    if (c->next)
        c->next->prev = c->prev;
    if (c->prev)
        c->prev->next = c->next;
    else
        c->server->conns = c->next;
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void timer_cb(uv_timer_t *t)
{
    struct api_http_conn *c = container_of(t, struct api_http_conn, timer);
    LOGD("http: closing connection: %s", c->in_message ? "request too slow" : "idle");
    conn_close(c);
}

static void arm_timer(struct api_http_conn *c)
{
    uv_timer_start(&c->timer, timer_cb,
                   c->in_message ? API_HTTP_REQUEST_TIMEOUT_MS : API_HTTP_IDLE_TIMEOUT_MS, 0);
}

static const char *status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

static void write_cb(uv_write_t *w, int status)
{
    struct write_req *wr = container_of(w, struct write_req, w);
    struct api_http_conn *c = wr->conn;
    free(wr->buf);
    free(wr);
    if ((status != 0 || c->close_after_write) && !c->closing)
        conn_close(c);
}

static void conn_send(struct api_http_conn *c, int status, const char *content_type,
                      const char *headers, const char *body, size_t len, int keep_alive)
{
    struct common_buf b = {0};
    common_buf_printf(&b,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                      "Content-Length: %zu\r\n%s%s\r\n",
                      status, status_text(status), content_type, len,
                      keep_alive ? "" : "Connection: close\r\n", headers ? headers : "");
    common_buf_append(&b, body, len);
    struct write_req *wr = xmalloc(sizeof(*wr));
    wr->conn = c;
    size_t total;
    wr->buf = common_buf_take(&b, &total);
    if (!keep_alive)
        c->close_after_write = 1;
    uv_buf_t ub = uv_buf_init(wr->buf, (unsigned)total);
    if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &ub, 1, write_cb) != 0) {
        free(wr->buf);
        free(wr);
        conn_close(c);
    }
}

static void send_error(struct api_http_conn *c, int status, const char *code, const char *msg)
{
    char body[512];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"code\":\"%s\",\"field\":\"\"}", msg,
                     code);
    conn_send(c, status, "application/json", "", body, (size_t)n, 0);
}

static void conn_process(struct api_http_conn *c);

void api_http_respond(struct api_http_req *req, int status, const char *headers, const char *body,
                      size_t len)
{
    api_http_respond_typed(req, status, "application/json", headers, body, len);
}

void api_http_respond_typed(struct api_http_req *req, int status, const char *content_type,
                            const char *headers, const char *body, size_t len)
{
    struct api_http_conn *c = req->conn;
    int keep_alive = req->keep_alive;
    req_free(req);
    if (!c)
        return;
    c->req = NULL;
    c->handling = 0;
    if (c->server->closing)
        keep_alive = 0;
    conn_send(c, status, content_type, headers, body, len, keep_alive);
    if (!keep_alive || c->closing)
        return;
    arm_timer(c);
    conn_process(c);
}

static void read_start(struct api_http_conn *c);

/* Parses what is buffered, handing each complete request to the handler (the
 * parser pauses after each message). Never re-entered: an answer given from
 * inside the handler lets the loop below go on with the next request. */
static void conn_process(struct api_http_conn *c)
{
    if (c->in_process)
        return;
    c->in_process = 1;
    while (!c->closing && !c->handling && c->in_off < c->in.len) {
        size_t avail = c->in.len - c->in_off;
        size_t n = http_parser_execute(&c->parser, &settings, c->in.data + c->in_off, avail);
        c->in_off += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED)
            http_parser_pause(&c->parser, 0);
        else if (e != HPE_OK) {
            if (!c->close_after_write)
                send_error(c, 400, "bad_request", http_errno_description(e));
            c->in_off = c->in.len;
        }
        if (c->ready && !c->closing) {
            c->ready = 0;
            c->handling = 1;
            c->server->cb(c->req, c->server->data);
        }
    }
    if (c->in_off == c->in.len) {
        common_buf_reset(&c->in);
        c->in_off = 0;
    }
    c->in_process = 0;
    if (!c->closing && !c->handling)
        read_start(c);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct api_http_conn *c = h->data;
    (void)suggested;
    if (c->in.cap < c->in.len + READ_CHUNK + 1) {
        c->in.data = xrealloc(c->in.data, c->in.len + READ_CHUNK + 1);
        c->in.cap = c->in.len + READ_CHUNK + 1;
    }
    *buf = uv_buf_init(c->in.data + c->in.len, READ_CHUNK);
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct api_http_conn *c = stream->data;
    (void)buf;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    c->in.len += (size_t)nread;
    c->in.data[c->in.len] = '\0';
    conn_process(c);
}

static void read_start(struct api_http_conn *c)
{
    int rv = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    if (rv != 0 && rv != UV_EALREADY)
        conn_close(c);
}

static struct api_http_conn *parser_conn(http_parser *p)
{
    return container_of(p, struct api_http_conn, parser);
}

static int on_message_begin(http_parser *p)
{
    struct api_http_conn *c = parser_conn(p);
    c->req = xcalloc(1, sizeof(*c->req));
    c->req->conn = c;
    c->in_message = 1;
    c->field_len = 0;
    c->field_is_auth = 0;
    c->last_was_value = 0;
    common_buf_reset(&c->url);
    arm_timer(c);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct api_http_conn *c = parser_conn(p);
    if (c->url.len + len > API_HTTP_MAX_URL) {
        send_error(c, 400, "bad_request", "URL too long");
        return -1;
    }
    common_buf_append(&c->url, at, len);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct api_http_conn *c = parser_conn(p);
    if (c->last_was_value) {
        c->field_len = 0;
        c->last_was_value = 0;
    }
    size_t room = MAX_HEADER_FIELD - c->field_len;
    size_t n = len < room ? len : room;
    memcpy(c->field + c->field_len, at, n);
    c->field_len += n;
    c->field[c->field_len] = '\0';
    c->field_is_auth = strcasecmp(c->field, "authorization") == 0;
    if (strcasecmp(c->field, "x-shoal-forwarded") == 0)
        c->req->forwarded = 1;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct api_http_conn *c = parser_conn(p);
    struct api_http_req *req = c->req;
    c->last_was_value = 1;
    if (!c->field_is_auth)
        return 0;
    size_t have = req->authorization ? strlen(req->authorization) : 0;
    if (have + len > MAX_HEADER_VALUE)
        return 0; /* an oversized credential simply fails to match */
    req->authorization = xrealloc(req->authorization, have + len + 1);
    memcpy(req->authorization + have, at, len);
    req->authorization[have + len] = '\0';
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct api_http_conn *c = parser_conn(p);
    struct api_http_req *req = c->req;
    if (p->content_length != ULLONG_MAX && p->content_length > API_HTTP_MAX_BODY) {
        send_error(c, 413, "too_large", "request body larger than 1 MiB");
        return -1;
    }
    const char *url = c->url.data ? c->url.data : "/";
    const char *q = strchr(url, '?');
    req->path = q ? xstrndup(url, (size_t)(q - url)) : xstrdup(url);
    req->query = xstrdup(q ? q + 1 : "");
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct api_http_conn *c = parser_conn(p);
    if (c->req->body.len + len > API_HTTP_MAX_BODY) {
        send_error(c, 413, "too_large", "request body larger than 1 MiB");
        return -1;
    }
    common_buf_append(&c->req->body, at, len);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct api_http_conn *c = parser_conn(p);
    c->req->method = (enum http_method)p->method;
    c->req->keep_alive = http_should_keep_alive(p);
    if (!c->req->body.data)
        common_buf_append(&c->req->body, "", 0);
    c->in_message = 0;
    c->ready = 1;
    uv_timer_stop(&c->timer);
    uv_read_stop((uv_stream_t *)&c->tcp);
    http_parser_pause(p, 1);
    return 0;
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct api_http *s = listener->data;
    if (status != 0 || s->closing)
        return;
    struct api_http_conn *c = xcalloc(1, sizeof(*c));
    c->server = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles = 2;
    s->n_open++;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    http_parser_init(&c->parser, HTTP_REQUEST);
    arm_timer(c);
    read_start(c);
}

int api_http_listen(struct api_http **out, uv_loop_t *loop, const char *addr,
                    api_http_handler_cb cb, void *data, char *errmsg)
{
    settings = (http_parser_settings){
        .on_message_begin = on_message_begin,
        .on_url = on_url,
        .on_header_field = on_header_field,
        .on_header_value = on_header_value,
        .on_headers_complete = on_headers_complete,
        .on_body = on_body,
        .on_message_complete = on_message_complete,
    };
    char host[64];
    const char *colon = strrchr(addr, ':');
    struct sockaddr_in sa;
    if (!colon || (size_t)(colon - addr) >= sizeof(host)) {
        snprintf(errmsg, 256, "API address \"%s\" is not ip:port", addr);
        return -EINVAL;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    int rv = uv_ip4_addr(host, atoi(colon + 1), &sa);
    if (rv != 0) {
        snprintf(errmsg, 256, "API address \"%s\": %s", addr, uv_strerror(rv));
        return -EINVAL;
    }
    struct api_http *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->cb = cb;
    s->data = data;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->n_open = 1;
    rv = uv_tcp_bind(&s->listener, (const struct sockaddr *)&sa, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&s->listener, 1024, on_connection);
    if (rv != 0) {
        snprintf(errmsg, 256, "API listen on %s: %s", addr, uv_strerror(rv));
        api_http_close(s, NULL, NULL);
        return rv;
    }
    s->listening = 1;
    *out = s;
    return 0;
}

static void listener_closed(uv_handle_t *h)
{
    struct api_http *s = h->data;
    if (--s->n_open == 0 && s->closing) {
        void (*cb)(void *) = s->close_cb;
        void *data = s->close_data;
        free(s);
        if (cb)
            cb(data);
    }
}

void api_http_stop_listening(struct api_http *h)
{
    if (!h->listening)
        return;
    h->listening = 0;
    uv_close((uv_handle_t *)&h->listener, listener_closed);
}

void api_http_close(struct api_http *h, void (*cb)(void *data), void *data)
{
    h->closing = 1;
    h->close_cb = cb;
    h->close_data = data;
    if (h->listening) {
        h->listening = 0;
        uv_close((uv_handle_t *)&h->listener, listener_closed);
    } else if (!uv_is_closing((uv_handle_t *)&h->listener)) {
        uv_close((uv_handle_t *)&h->listener, listener_closed);
    }
    while (h->conns)
        conn_close(h->conns);
    if (h->n_open == 0) {
        free(h);
        if (cb)
            cb(data);
    }
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

int api_http_query(const struct api_http_req *req, const char *key, char *out, size_t out_size)
{
    size_t klen = strlen(key);
    for (const char *p = req->query; *p;) {
        const char *end = strchr(p, '&');
        if (!end)
            end = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *kend = eq ? eq : end;
        if ((size_t)(kend - p) == klen && memcmp(p, key, klen) == 0) {
            size_t n = 0;
            for (const char *v = eq ? eq + 1 : end; v < end; v++) {
                char ch = *v;
                if (ch == '+')
                    ch = ' ';
                else if (ch == '%' && end - v >= 3 && hexval(v[1]) >= 0 && hexval(v[2]) >= 0) {
                    ch = (char)(hexval(v[1]) * 16 + hexval(v[2]));
                    v += 2;
                }
                if (n + 1 >= out_size)
                    return -1;
                out[n++] = ch;
            }
            out[n] = '\0';
            return 1;
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}
