/* Unit tests for common/httpc: a tiny HTTP/1.1 server on 127.0.0.1 runs on
 * the client's own loop (in a thread for the blocking variant) and answers
 * canned responses chosen by the path. Every loop run has a deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#include "common/buf.h"
#include "common/httpc.h"
#include "common/util.h"

#define OK_BODY "{\"ok\":true}"
#define BIG_LEN (2u << 20)
#define WAIT_MS 5000u

/* ---- The server ---- */

struct server {
    uv_loop_t *loop;
    uv_tcp_t tcp; /* data: the server, as every handle but the connections */
    int port;
    int accepted;     /* connections */
    int requests;     /* requests read whole */
    uv_async_t stop;  /* threaded: shuts the server down */
    uv_timer_t guard; /* threaded: shuts it down anyway after a while */
};

struct conn {
    uv_tcp_t tcp; /* data: NULL */
    struct server *srv;
    struct common_buf in;
};

static void conn_closed(uv_handle_t *h)
{
    struct conn *k = container_of((uv_tcp_t *)h, struct conn, tcp);
    common_buf_free(&k->in);
    free(k);
}

static void written(uv_write_t *req, int status)
{
    (void)status;
    free(req->data);
    free(req);
}

static void send_raw(struct conn *k, struct common_buf *out)
{
    uv_write_t *w = xcalloc(1, sizeof(*w));
    size_t n;
    w->data = common_buf_take(out, &n);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    if (uv_write(w, (uv_stream_t *)&k->tcp, &b, 1, written) != 0)
        written(w, -1);
}

static void shut(uv_shutdown_t *req, int status)
{
    (void)status;
    if (!uv_is_closing((uv_handle_t *)req->handle))
        uv_close((uv_handle_t *)req->handle, conn_closed);
    free(req);
}

static void respond(struct conn *k, const char *method, int status, const char *extra,
                    const char *body, size_t len)
{
    struct common_buf out = {0};
    common_buf_printf(&out, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s\r\n", status,
                      status == 200 ? "OK" : "Not Found", len, extra);
    if (strcmp(method, "HEAD") != 0)
        common_buf_append(&out, body, len);
    send_raw(k, &out);
}

static void serve(struct conn *k, const char *method, const char *path, int saw_test,
                  const char *body, size_t len)
{
    struct common_buf out = {0};
    if (strcmp(path, "/ok") == 0) {
        respond(k, method, 200, "Content-Type: application/json\r\nX-Shoal-Index: 7\r\n", OK_BODY,
                strlen(OK_BODY));
    } else if (strcmp(path, "/slow") == 0) {
        /* Never answers. */
    } else if (strcmp(path, "/big") == 0) {
        for (size_t i = 0; i < BIG_LEN; i++)
            common_buf_append(&out, &(char){(char)('a' + i % 26)}, 1);
        respond(k, method, 200, "", out.data, out.len);
    } else if (strcmp(path, "/echo") == 0) {
        common_buf_printf(&out, "%s\n", method);
        common_buf_append(&out, body, len);
        respond(k, method, 200, saw_test ? "X-Saw-Test: yes\r\n" : "", out.data, out.len);
    } else if (strcmp(path, "/chunked") == 0) {
        common_buf_puts(&out, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "4\r\n{\"ok\r\n7\r\n\":true}\r\n0\r\n\r\n");
        send_raw(k, &out);
    } else if (strcmp(path, "/eof") == 0) {
        /* No Content-Length: the body ends when the server closes. */
        common_buf_puts(&out, "HTTP/1.1 200 OK\r\n\r\n" OK_BODY);
        send_raw(k, &out);
        uv_shutdown(xcalloc(1, sizeof(uv_shutdown_t)), (uv_stream_t *)&k->tcp, shut);
    } else if (strcmp(path, "/garbage") == 0) {
        common_buf_puts(&out, "SPDY/9 banana\r\n\r\n");
        send_raw(k, &out);
    } else if (strcmp(path, "/huge") == 0) {
        common_buf_puts(&out, "HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\nstart");
        send_raw(k, &out);
    } else {
        respond(k, method, 404, "", "no such path", 12);
    }
    common_buf_free(&out);
}

/* Answers every whole request in k->in (keep-alive). */
static void parse(struct conn *k)
{
    char *data, *end, method[16], path[256];
    while ((data = k->in.data) && (end = memmem(data, k->in.len, "\r\n\r\n", 4))) {
        size_t head = (size_t)(end + 4 - data);
        const char *cl = memmem(data, head, "\r\nContent-Length:", 17);
        size_t len = cl ? strtoul(cl + 17, NULL, 10) : 0;
        if (sscanf(data, "%15s %255s", method, path) != 2) {
            uv_close((uv_handle_t *)&k->tcp, conn_closed);
            return;
        }
        if (k->in.len - head < len)
            return;
        k->srv->requests++;
        int saw_test = memmem(data, head, "\r\nX-Test: hello\r\n", 17) != NULL;
        serve(k, method, path, saw_test, data + head, len);
        memmove(data, data + head + len, k->in.len - head - len + 1);
        k->in.len -= head + len;
    }
}

static void alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)h;
    *buf = uv_buf_init(xmalloc(size), (unsigned)size);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *k = container_of((uv_tcp_t *)s, struct conn, tcp);
    if (n > 0) {
        common_buf_append(&k->in, buf->base, (size_t)n);
        parse(k);
    } else if (n < 0) {
        uv_close((uv_handle_t *)&k->tcp, conn_closed);
    }
    free(buf->base);
}

static void on_connection(uv_stream_t *l, int status)
{
    struct server *srv = l->data;
    if (status < 0)
        return;
    struct conn *k = xcalloc(1, sizeof(*k));
    k->srv = srv;
    uv_tcp_init(srv->loop, &k->tcp);
    if (uv_accept(l, (uv_stream_t *)&k->tcp) != 0) {
        uv_close((uv_handle_t *)&k->tcp, conn_closed);
        return;
    }
    srv->accepted++;
    uv_read_start((uv_stream_t *)&k->tcp, alloc_cb, read_cb);
}

static int server_start(struct server *srv, uv_loop_t *loop)
{
    struct sockaddr_in addr;
    int len = sizeof(addr);
    memset(srv, 0, sizeof(*srv));
    srv->loop = loop;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_init(loop, &srv->tcp);
    srv->tcp.data = srv;
    if (uv_tcp_bind(&srv->tcp, (const struct sockaddr *)&addr, 0) != 0 ||
        uv_listen((uv_stream_t *)&srv->tcp, 128, on_connection) != 0 ||
        uv_tcp_getsockname(&srv->tcp, (struct sockaddr *)&addr, &len) != 0)
        return -1;
    srv->port = ntohs(addr.sin_port);
    return 0;
}

static void close_one(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, h->data ? NULL : conn_closed);
}

/* Closes every handle of the loop not closing yet: the server's, and in the
 * fixture the client's are closing already. */
static void server_stop(struct server *srv)
{
    uv_walk(srv->loop, close_one, NULL);
}

/* ---- The threaded server, for the blocking variant ---- */

static void stop_cb(uv_async_t *a)
{
    server_stop(a->data);
}

static void guard_cb(uv_timer_t *t)
{
    server_stop(t->data);
}

static void *server_thread(void *arg)
{
    struct server *srv = arg;
    uv_run(srv->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- Running the loop with a deadline ---- */

static void expire(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Runs loop until *count >= want, or ms pass. Returns whether it got there. */
static int run_until(uv_loop_t *loop, const int *count, int want, unsigned ms)
{
    int expired = 0;
    uv_timer_t timer;
    uv_timer_init(loop, &timer);
    timer.data = &expired;
    uv_timer_start(&timer, expire, ms, 0);
    while (*count < want && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *count >= want;
}

/* ---- What a callback saw ---- */

static int in_call; /* set while the test is inside common_httpc_request or cancel */

struct result {
    struct fx *fx;
    int64_t id;
    int calls;
    int called_inside; /* the callback ran from inside request or cancel */
    long status;
    int error;
    char errmsg[256];
    struct common_buf body;
    int body_terminated;
    char index[32];      /* X-Shoal-Index, looked up as "x-shoal-index" */
    char saw_test[16];   /* X-Saw-Test */
    int has_type;        /* Content-Type */
    int missing_is_null; /* an absent header gives NULL */
    int *tally;          /* counted up at every callback, when set */
    void (*then)(struct result *r);
    struct result *other; /* for then */
    int64_t refused;      /* what a request from inside the callback returned */
};

/* ---- Fixture: a loop, the server on it, a client, results that outlive a
 * failed test's stack ---- */

struct fx {
    uv_loop_t loop;
    struct server srv;
    struct common_httpc *c;
    int close_called;
    int closed;
    char base[64]; /* http://127.0.0.1:port */
    struct result res[20];
    int used;
};

static struct result *fresh(struct fx *fx)
{
    assert_true(fx->used < (int)ARRAY_SIZE(fx->res));
    struct result *r = &fx->res[fx->used++];
    r->fx = fx;
    return r;
}

static void closed_cb(void *data)
{
    struct fx *fx = data;
    fx->closed++;
}

static void fx_close(struct fx *fx)
{
    fx->close_called = 1;
    common_httpc_close(fx->c, closed_cb, fx);
}

static int setup(void **state)
{
    struct fx *fx = xcalloc(1, sizeof(*fx));
    if (uv_loop_init(&fx->loop) != 0 || server_start(&fx->srv, &fx->loop) != 0 ||
        common_httpc_init(&fx->c, &fx->loop) != 0)
        return -1;
    snprintf(fx->base, sizeof(fx->base), "http://127.0.0.1:%d", fx->srv.port);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    if (!fx->close_called)
        fx_close(fx);
    server_stop(&fx->srv);
    run_until(&fx->loop, &fx->closed, 1, WAIT_MS);
    for (int i = 0; i < 100 && uv_run(&fx->loop, UV_RUN_NOWAIT); i++)
        ;
    for (int i = 0; i < fx->used; i++)
        common_buf_free(&fx->res[i].body);
    assert_int_equal(fx->closed, 1);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    free(fx);
    return 0;
}

static void copy_header(const struct common_httpc_response *res, const char *name, char *out,
                        size_t size)
{
    const char *v = common_httpc_header(res, name);
    common_strlcpy(out, v ? v : "", size);
}

static void record_cb(void *data, const struct common_httpc_response *res)
{
    struct result *r = data;
    r->calls++;
    r->called_inside |= in_call;
    r->status = res->status;
    r->error = res->error;
    common_strlcpy(r->errmsg, res->errmsg, sizeof(r->errmsg));
    common_buf_append(&r->body, res->body, res->body_len);
    r->body_terminated = res->body[res->body_len] == '\0';
    copy_header(res, "x-shoal-index", r->index, sizeof(r->index));
    copy_header(res, "X-Saw-Test", r->saw_test, sizeof(r->saw_test));
    r->has_type = common_httpc_header(res, "Content-Type") != NULL;
    r->missing_is_null = common_httpc_header(res, "X-Missing") == NULL;
    if (r->tally)
        (*r->tally)++;
    if (r->then)
        r->then(r);
}

static struct result *send_req(struct fx *fx, const char *method, const char *path,
                               const char *body, size_t len, unsigned timeout_ms)
{
    static const char *const headers[] = {"X-Test: hello", "Content-Type: text/plain", NULL};
    char url[128];
    struct result *r = fresh(fx);
    snprintf(url, sizeof(url), "%s%s", fx->base, path);
    in_call = 1;
    r->id = common_httpc_request(fx->c, method, url, headers, body, len, timeout_ms, record_cb, r);
    in_call = 0;
    assert_true(r->id > 0);
    return r;
}

static void cancel(struct fx *fx, int64_t id)
{
    in_call = 1;
    common_httpc_cancel(fx->c, id);
    in_call = 0;
}

static void assert_ok(struct result *r, const char *body, size_t len)
{
    assert_int_equal(r->calls, 1);
    assert_int_equal(r->called_inside, 0);
    assert_int_equal(r->error, 0);
    assert_string_equal(r->errmsg, "");
    assert_int_equal(r->status, 200);
    assert_int_equal(r->body.len, len);
    assert_memory_equal(r->body.data ? r->body.data : "", body, len);
    assert_true(r->body_terminated);
}

static void assert_failed(struct result *r, int error)
{
    assert_int_equal(r->calls, 1);
    assert_int_equal(r->called_inside, 0);
    assert_int_equal(r->error, error);
    assert_int_equal(r->status, 0);
    assert_int_equal(r->body.len, 0);
    assert_true(r->body_terminated);
    assert_true(r->errmsg[0] != '\0');
}

/* ---- Tests ---- */

static void test_get_ok(void **state)
{
    struct fx *fx = *state;
    struct result *r = send_req(fx, "GET", "/ok", NULL, 0, WAIT_MS);
    assert_int_equal(r->calls, 0);
    assert_true(run_until(&fx->loop, &r->calls, 1, WAIT_MS));
    assert_ok(r, OK_BODY, strlen(OK_BODY));
    assert_string_equal(r->index, "7");
    assert_true(r->has_type);
    assert_true(r->missing_is_null);
    /* A second request on the same client works too (one connection per
     * request by design, so the server may see a second accept). */
    struct result *again = send_req(fx, "GET", "/ok", NULL, 0, WAIT_MS);
    assert_true(again->id > r->id);
    assert_true(run_until(&fx->loop, &again->calls, 1, WAIT_MS));
    assert_ok(again, OK_BODY, strlen(OK_BODY));
    assert_int_equal(fx->srv.requests, 2);
    assert_in_range(fx->srv.accepted, 1, 2);
}

static void test_methods_and_bodies(void **state)
{
    struct fx *fx = *state;
    int done = 0;
    struct result *post = send_req(fx, "POST", "/echo", "hello\0world", 11, WAIT_MS);
    struct result *put = send_req(fx, "PUT", "/echo", NULL, 0, WAIT_MS);
    struct result *del = send_req(fx, "DELETE", "/echo", NULL, 0, WAIT_MS);
    struct result *head = send_req(fx, "HEAD", "/ok", NULL, 0, WAIT_MS);
    struct result *missing = send_req(fx, "GET", "/missing", NULL, 0, WAIT_MS);
    post->tally = put->tally = del->tally = head->tally = missing->tally = &done;
    assert_true(run_until(&fx->loop, &done, 5, WAIT_MS));
    assert_ok(post, "POST\nhello\0world", 16);
    assert_string_equal(post->saw_test, "yes");
    assert_ok(put, "PUT\n", 4);
    assert_ok(del, "DELETE\n", 7);
    assert_ok(head, "", 0);
    assert_string_equal(head->index, "7");
    assert_int_equal(missing->status, 404);
    assert_int_equal(missing->error, 0);
    assert_string_equal(missing->body.data, "no such path");
}

/* Requests refused at once: the callback never runs. */
static void test_invalid(void **state)
{
    struct fx *fx = *state;
    static const char *const injected[] = {"X-Test: a\r\nX-Evil: b", NULL};
    char long_host[300] = "http://"; /* a colon past any IP's length */
    memset(long_host + 7, '1', 200);
    strcat(long_host, ":80/");
    const char *const bad_urls[] = {"ftp://127.0.0.1/",
                                    "http://",
                                    "http:///x",
                                    "http://127.0.0.1:0/",
                                    "http://127.0.0.1:65536/",
                                    "http://127.0.0.1:80x/",
                                    "http://example.org/",
                                    "http://127.0.0.1/a b",
                                    long_host};
    struct result *r = fresh(fx);
    struct common_httpc *c = fx->c;
    assert_int_equal(common_httpc_request(c, "GET", NULL, NULL, NULL, 0, 0, record_cb, r), -EINVAL);
    assert_int_equal(common_httpc_request(c, "POST", fx->base, NULL, NULL, 3, 0, record_cb, r),
                     -EINVAL);
    assert_int_equal(common_httpc_request(c, NULL, fx->base, NULL, NULL, 0, 0, record_cb, r),
                     -EINVAL);
    assert_int_equal(common_httpc_request(c, "GET", fx->base, NULL, NULL, 0, 0, NULL, r), -EINVAL);
    assert_int_equal(common_httpc_request(c, "GET", fx->base, injected, NULL, 0, 0, record_cb, r),
                     -EINVAL);
    for (size_t i = 0; i < ARRAY_SIZE(bad_urls); i++)
        assert_int_equal(
            common_httpc_request(c, "GET", bad_urls[i], NULL, NULL, 0, 0, record_cb, r), -EINVAL);
    long status = -1;
    char *body = (char *)"untouched", errmsg[256] = "";
    assert_int_equal(
        common_httpc_request_sync("GET", NULL, NULL, NULL, 0, 100, &status, &body, errmsg),
        -EINVAL);
    assert_int_equal(status, 0);
    assert_null(body);
    assert_true(errmsg[0] != '\0');
    run_until(&fx->loop, &r->calls, 1, 50);
    assert_int_equal(r->calls, 0);
}

/* Chunked bodies, bodies ended by the server closing, and nonsense. */
static void test_response_shapes(void **state)
{
    struct fx *fx = *state;
    int done = 0;
    struct result *chunked = send_req(fx, "GET", "/chunked", NULL, 0, WAIT_MS);
    struct result *eof = send_req(fx, "GET", "/eof", NULL, 0, WAIT_MS);
    struct result *garbage = send_req(fx, "GET", "/garbage", NULL, 0, WAIT_MS);
    chunked->tally = eof->tally = garbage->tally = &done;
    assert_true(run_until(&fx->loop, &done, 3, WAIT_MS));
    assert_ok(chunked, OK_BODY, strlen(OK_BODY));
    assert_ok(eof, OK_BODY, strlen(OK_BODY));
    assert_failed(garbage, -EPROTO);
    assert_non_null(strstr(garbage->errmsg, fx->base + strlen("http://")));
}

static void test_big_and_too_big(void **state)
{
    struct fx *fx = *state;
    int done = 0;
    struct result *big = send_req(fx, "GET", "/big", NULL, 0, WAIT_MS);
    struct result *huge = send_req(fx, "GET", "/huge", NULL, 0, WAIT_MS);
    big->tally = huge->tally = &done;
    assert_true(run_until(&fx->loop, &done, 2, WAIT_MS));
    assert_failed(huge, -E2BIG);
    assert_int_equal(big->body.len, BIG_LEN);
    for (size_t i = 0; i < BIG_LEN; i++)
        if (big->body.data[i] != (char)('a' + i % 26))
            fail_msg("byte %zu differs", i);
    assert_ok(big, big->body.data, BIG_LEN);
}

static void test_concurrent(void **state)
{
    struct fx *fx = *state;
    struct result *r[20];
    int done = 0;
    char bodies[20][16], want[32];
    for (int i = 0; i < 20; i++) {
        snprintf(bodies[i], sizeof(bodies[i]), "n=%d", i);
        if (i % 2)
            r[i] = send_req(fx, "POST", "/echo", bodies[i], strlen(bodies[i]), WAIT_MS);
        else
            r[i] = send_req(fx, "GET", "/ok", NULL, 0, WAIT_MS);
        r[i]->tally = &done;
        assert_true(i == 0 || r[i]->id > r[i - 1]->id);
    }
    assert_true(run_until(&fx->loop, &done, 20, WAIT_MS));
    for (int i = 0; i < 20; i++) {
        snprintf(want, sizeof(want), "POST\n%s", bodies[i]);
        if (i % 2)
            assert_ok(r[i], want, strlen(want));
        else
            assert_ok(r[i], OK_BODY, strlen(OK_BODY));
    }
    assert_int_equal(fx->srv.requests, 20);
}

static void test_timeout(void **state)
{
    struct fx *fx = *state;
    uint64_t t0 = common_now_ms();
    struct result *r = send_req(fx, "GET", "/slow", NULL, 0, 300);
    assert_true(run_until(&fx->loop, &r->calls, 1, WAIT_MS));
    uint64_t took = common_now_ms() - t0;
    assert_true(took >= 290 && took < 3000);
    assert_failed(r, -ETIMEDOUT);
    assert_non_null(strstr(r->errmsg, fx->base + strlen("http://")));
}

/* A port on 127.0.0.1 nothing listens on (bound, then closed). */
static int closed_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_refused(void **state)
{
    struct fx *fx = *state;
    snprintf(fx->base, sizeof(fx->base), "http://127.0.0.1:%d", closed_port());
    struct result *r = send_req(fx, "GET", "/ok", NULL, 0, WAIT_MS);
    assert_true(run_until(&fx->loop, &r->calls, 1, WAIT_MS));
    assert_failed(r, -ECONNREFUSED);
    assert_non_null(strstr(r->errmsg, "127.0.0.1"));
}

static void test_cancel(void **state)
{
    struct fx *fx = *state;
    uint64_t t0 = common_now_ms();
    struct result *slow = send_req(fx, "GET", "/slow", NULL, 0, WAIT_MS);
    assert_true(run_until(&fx->loop, &fx->srv.requests, 1, WAIT_MS));
    cancel(fx, slow->id);
    cancel(fx, slow->id);
    cancel(fx, 12345);
    assert_int_equal(slow->calls, 0);
    assert_true(run_until(&fx->loop, &slow->calls, 1, WAIT_MS));
    assert_true(common_now_ms() - t0 < 2000);
    assert_failed(slow, -ECANCELED);
    /* Cancelled before the loop ever ran. */
    struct result *early = send_req(fx, "GET", "/ok", NULL, 0, WAIT_MS);
    cancel(fx, early->id);
    assert_true(run_until(&fx->loop, &early->calls, 1, WAIT_MS));
    assert_failed(early, -ECANCELED);
    /* The client still works, and late cancels are ignored. */
    struct result *after = send_req(fx, "GET", "/ok", NULL, 0, WAIT_MS);
    assert_true(run_until(&fx->loop, &after->calls, 1, WAIT_MS));
    cancel(fx, after->id);
    run_until(&fx->loop, &after->calls, 2, 50);
    assert_ok(after, OK_BODY, strlen(OK_BODY));
}

static void request_more(struct result *r)
{
    r->refused = common_httpc_request(r->fx->c, "GET", r->fx->base, NULL, NULL, 0, 0, record_cb, r);
}

static void test_close_pending(void **state)
{
    struct fx *fx = *state;
    struct result *r[4];
    for (int i = 0; i < 3; i++) {
        r[i] = send_req(fx, "GET", "/slow", NULL, 0, WAIT_MS);
        r[i]->then = request_more;
    }
    assert_true(run_until(&fx->loop, &fx->srv.requests, 3, WAIT_MS));
    r[3] = send_req(fx, "POST", "/echo", "x", 1, WAIT_MS);
    fx_close(fx);
    common_httpc_close(fx->c, closed_cb, fx); /* ignored */
    for (int i = 0; i < 4; i++) {
        assert_failed(r[i], -ECANCELED);
        assert_int_equal(r[i]->refused, i < 3 ? -ECANCELED : 0);
    }
    assert_int_equal(fx->closed, 0);
    assert_true(run_until(&fx->loop, &fx->closed, 1, WAIT_MS));
}

/* Re-entrancy: A's callback issues B and cancels S; B's callback closes the
 * client while T is pending. */
static void b_then(struct result *b)
{
    fx_close(b->fx);
}

static void a_then(struct result *a)
{
    struct result *b = send_req(a->fx, "POST", "/echo", "chained", 7, WAIT_MS);
    b->then = b_then;
    common_httpc_cancel(a->fx->c, a->other->id);
}

static void test_reentrant(void **state)
{
    struct fx *fx = *state;
    struct result *s = send_req(fx, "GET", "/slow", NULL, 0, WAIT_MS);
    struct result *t = send_req(fx, "GET", "/slow", NULL, 0, WAIT_MS);
    struct result *a = send_req(fx, "GET", "/ok", NULL, 0, WAIT_MS);
    a->then = a_then;
    a->other = s;
    assert_true(run_until(&fx->loop, &fx->closed, 1, WAIT_MS));
    assert_int_equal(fx->used, 4);
    assert_ok(a, OK_BODY, strlen(OK_BODY));
    assert_ok(&fx->res[3], "POST\nchained", 12);
    assert_failed(s, -ECANCELED);
    assert_failed(t, -ECANCELED);
}

static char inherited[1024]; /* descriptors open when main started */

/* Calls fn on every open descriptor but the directory's. */
static void each_fd(void (*fn)(int fd, void *arg), void *arg)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d))
            fn(atoi(e->d_name), arg);
    closedir(d);
}

static void note_inherited(int fd, void *arg)
{
    (void)arg;
    if (fd >= 0 && fd < (int)sizeof(inherited))
        inherited[fd] = 1;
}

static void note_leak(int fd, void *arg)
{
    char *leaks = arg;
    int flags = fcntl(fd, F_GETFD);
    if ((fd >= (int)sizeof(inherited) || !inherited[fd]) && flags >= 0 && !(flags & FD_CLOEXEC))
        snprintf(leaks + strlen(leaks), 256 - strlen(leaks), " %d", fd);
}

/* Every descriptor the process opened is close-on-exec, curl's included. */
static void test_cloexec(void **state)
{
    struct fx *fx = *state;
    struct result *r = send_req(fx, "GET", "/slow", NULL, 0, WAIT_MS);
    assert_true(run_until(&fx->loop, &fx->srv.requests, 1, WAIT_MS));
    char leaks[256] = "";
    each_fd(note_leak, leaks);
    assert_string_equal(leaks, "");
    cancel(fx, r->id);
    assert_true(run_until(&fx->loop, &r->calls, 1, WAIT_MS));
    assert_failed(r, -ECANCELED);
}

struct sync_result {
    int rv;
    long status;
    char *body;
    char errmsg[256];
};

static void sync_req(struct sync_result *s, const char *method, int port, const char *path,
                     const char *body, unsigned timeout_ms)
{
    static const char *const headers[] = {"X-Test: hello", NULL};
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    s->rv = common_httpc_request_sync(method, url, headers, body, body ? strlen(body) : 0,
                                      timeout_ms, &s->status, &s->body, s->errmsg);
}

static void test_sync(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct server srv;
    pthread_t thread;
    struct sync_result ok = {0}, echo = {0}, missing = {0}, slow = {0}, refused = {0};
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(server_start(&srv, &loop), 0);
    uv_async_init(&loop, &srv.stop, stop_cb);
    uv_timer_init(&loop, &srv.guard);
    srv.stop.data = srv.guard.data = &srv;
    uv_timer_start(&srv.guard, guard_cb, 20000, 0);
    assert_int_equal(pthread_create(&thread, NULL, server_thread, &srv), 0);
    /* The requests, then the server stops, then the checks (which may jump out). */
    sync_req(&ok, "GET", srv.port, "/ok", NULL, WAIT_MS);
    sync_req(&echo, "POST", srv.port, "/echo", "abc", WAIT_MS);
    sync_req(&missing, "GET", srv.port, "/missing", NULL, WAIT_MS);
    sync_req(&slow, "GET", srv.port, "/slow", NULL, 300);
    sync_req(&refused, "GET", closed_port(), "/ok", NULL, WAIT_MS);
    uv_async_send(&srv.stop);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(uv_loop_close(&loop), 0);

    assert_int_equal(ok.rv, 0);
    assert_int_equal(ok.status, 200);
    assert_string_equal(ok.body, OK_BODY);
    assert_int_equal(echo.rv, 0);
    assert_string_equal(echo.body, "POST\nabc");
    assert_int_equal(missing.rv, 0);
    assert_int_equal(missing.status, 404);
    assert_int_equal(slow.rv, -ETIMEDOUT);
    assert_null(slow.body);
    assert_non_null(strstr(slow.errmsg, "/slow"));
    assert_int_equal(refused.rv, -ECONNREFUSED);
    assert_int_equal(refused.status, 0);
    assert_non_null(strstr(refused.errmsg, "127.0.0.1"));
    free(ok.body);
    free(echo.body);
    free(missing.body);
}

int main(void)
{
    each_fd(note_inherited, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_methods_and_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_and_too_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reentrant, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cloexec, setup, teardown),
        cmocka_unit_test(test_sync),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
