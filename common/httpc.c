#include "common/httpc.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/util.h"

#define MAX_BODY           (64u << 20)
#define MAX_HEADER_BYTES   (64u << 10)
#define CONNECT_TIMEOUT_MS 5000

struct request {
    struct common_httpc *c;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    struct common_buf resp;
    struct common_buf resp_headers;
    int too_big;
    int cancelled;
    int64_t id;
    common_httpc_cb cb;
    void *data;
    struct request *next;
};

struct sock {
    uv_poll_t poll;
    curl_socket_t fd;
    struct common_httpc *c;
    struct sock *next, *prev; /* open sockets, closed with the client */
};

struct common_httpc {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    uv_idle_t reap; /* runs cancelled requests' callbacks outside the caller */
    struct request *requests;
    struct sock *socks;
    int64_t next_id;
    int closing;
    int handles; /* timer, reap and polls still open */
    void (*close_cb)(void *);
    void *close_data;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct request *r = userdata;
    size_t n = size * nmemb;
    if (r->resp.len + n > MAX_BODY) {
        r->too_big = 1;
        return 0;
    }
    common_buf_append(&r->resp, ptr, n);
    return n;
}

static size_t header_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct request *r = userdata;
    size_t n = size * nmemb;
    if (r->resp_headers.len + n <= MAX_HEADER_BYTES)
        common_buf_append(&r->resp_headers, ptr, n);
    return n;
}

const char *common_httpc_header(const struct common_httpc_response *res, const char *name)
{
    static __thread char value[1024];
    size_t nlen = strlen(name);
    for (const char *line = res->headers; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > nlen && line[nlen] == ':' && strncasecmp(line, name, nlen) == 0) {
            const char *v = line + nlen + 1;
            const char *vend = line + len;
            while (v < vend && (*v == ' ' || *v == '\t'))
                v++;
            while (vend > v && (vend[-1] == '\r' || vend[-1] == ' '))
                vend--;
            size_t vlen = (size_t)(vend - v);
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

static int curl_error(CURLcode code)
{
    switch (code) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_WRITE_ERROR:
        return -E2BIG;
    default:
        return -EIO;
    }
}

static void request_free(struct request *r)
{
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r->body);
    common_buf_free(&r->resp);
    common_buf_free(&r->resp_headers);
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

/* Calls the request's callback and frees it. It must be unlinked and its
 * easy handle out of the multi handle already. */
static void finish(struct request *r, CURLcode code, const char *errmsg)
{
    struct common_httpc_response res = {0};
    if (r->cancelled) {
        res.error = -ECANCELED;
        res.errmsg = "cancelled";
    } else {
        res.error = r->too_big ? -E2BIG : curl_error(code);
        res.errmsg = res.error ? errmsg : "";
        if (code == CURLE_OK)
            curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.status);
    }
    if (!r->resp.data)
        common_buf_append(&r->resp, "", 0);
    if (!r->resp_headers.data)
        common_buf_append(&r->resp_headers, "", 0);
    res.body = r->resp.data;
    res.body_len = r->resp.len;
    res.headers = r->resp_headers.data;
    r->cb(r->data, &res);
    request_free(r);
}

static void check_done(struct common_httpc *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct request *r = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode code = msg->data.result;
        curl_multi_remove_handle(c->multi, r->easy);
        unlink_request(c, r);
        char errmsg[CURL_ERROR_SIZE + 1];
        common_strlcpy(errmsg, curl_easy_strerror(code), sizeof(errmsg));
        finish(r, code, errmsg);
    }
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
    struct sock *s = p->data;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(s->c->multi, s->fd, flags, &running);
    check_done(s->c);
}

static void handle_closed(uv_handle_t *h)
{
    struct common_httpc *c = h->data;
    if (h->type == UV_POLL)
        free(container_of((uv_poll_t *)h, struct sock, poll));
    if (--c->handles > 0 || !c->closing)
        return;
    void (*cb)(void *) = c->close_cb;
    void *data = c->close_data;
    free(c);
    if (cb)
        cb(data);
}

static void sock_close(struct sock *s)
{
    struct common_httpc *c = s->c;
    if (s->next)
        s->next->prev = s->prev;
    if (s->prev)
        s->prev->next = s->next;
    else
        c->socks = s->next;
    uv_poll_stop(&s->poll);
    s->poll.data = c;
    uv_close((uv_handle_t *)&s->poll, handle_closed);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct common_httpc *c = userp;
    struct sock *s = socketp;
    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(c->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (!s) {
        s = xcalloc(1, sizeof(*s));
        s->fd = fd;
        s->c = c;
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        c->handles++;
        curl_multi_assign(c->multi, fd, s);
        s->next = c->socks;
        if (c->socks)
            c->socks->prev = s;
        c->socks = s;
    }
    s->poll.data = s;
    int events = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    uv_poll_start(&s->poll, events, poll_cb);
    return 0;
}

static void timer_cb(uv_timer_t *t)
{
    struct common_httpc *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

static int timer_set_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct common_httpc *c = userp;
    (void)multi;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, timer_cb, (uint64_t)timeout_ms, 0);
    return 0;
}

/* Finishes cancelled requests from the loop, never from their caller. */
static void reap_cb(uv_idle_t *idle)
{
    struct common_httpc *c = idle->data;
    uv_idle_stop(idle);
    for (;;) {
        struct request *r = c->requests;
        while (r && !r->cancelled)
            r = r->next;
        if (!r)
            break;
        curl_multi_remove_handle(c->multi, r->easy);
        unlink_request(c, r);
        finish(r, CURLE_OK, "");
    }
}

int common_httpc_init(struct common_httpc **out, uv_loop_t *loop)
{
    pthread_once(&global_once, global_init);
    struct common_httpc *c = xcalloc(1, sizeof(*c));
    c->loop = loop;
    c->multi = curl_multi_init();
    if (!c->multi) {
        free(c);
        return -ENOMEM;
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_set_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    uv_timer_init(loop, &c->timer);
    uv_idle_init(loop, &c->reap);
    c->timer.data = c->reap.data = c;
    c->handles = 2;
    *out = c;
    return 0;
}

static CURL *easy_new(const char *method, const char *url, struct curl_slist *headers,
                      const char *body, size_t body_len, unsigned timeout_ms)
{
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(timeout_ms < CONNECT_TIMEOUT_MS ? timeout_ms : CONNECT_TIMEOUT_MS));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
    return e;
}

static struct curl_slist *header_list(const char *const *headers)
{
    struct curl_slist *list = curl_slist_append(NULL, "Expect:");
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append(list, headers[i]);
    return list;
}

int64_t common_httpc_request(struct common_httpc *c, const char *method, const char *url,
                             const char *const *headers, const char *body, size_t body_len,
                             unsigned timeout_ms, common_httpc_cb cb, void *data)
{
    if (c->closing)
        return -ECANCELED;
    struct request *r = xcalloc(1, sizeof(*r));
    r->c = c;
    r->cb = cb;
    r->data = data;
    r->id = ++c->next_id;
    r->headers = header_list(headers);
    if (body)
        r->body = xstrndup(body, body_len);
    r->easy = easy_new(method, url, r->headers, r->body, body_len, timeout_ms);
    if (!r->easy) {
        request_free(r);
        return -ENOMEM;
    }
    curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
    if (curl_multi_add_handle(c->multi, r->easy) != CURLM_OK) {
        request_free(r);
        return -EIO;
    }
    r->next = c->requests;
    c->requests = r;
    return r->id;
}

void common_httpc_cancel(struct common_httpc *c, int64_t id)
{
    for (struct request *r = c->requests; r; r = r->next) {
        if (r->id == id && !r->cancelled) {
            r->cancelled = 1;
            uv_idle_start(&c->reap, reap_cb);
        }
    }
}

void common_httpc_close(struct common_httpc *c, void (*cb)(void *data), void *data)
{
    c->closing = 1;
    c->close_cb = cb;
    c->close_data = data;
    /* Callbacks may issue requests: they are refused while closing. */
    while (c->requests) {
        struct request *r = c->requests;
        r->cancelled = 1;
        curl_multi_remove_handle(c->multi, r->easy);
        c->requests = r->next;
        finish(r, CURLE_OK, "");
    }
    /* Closes the cached connections; sockets curl did not report are
     * closed here. */
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    while (c->socks)
        sock_close(c->socks);
    uv_close((uv_handle_t *)&c->timer, handle_closed);
    uv_close((uv_handle_t *)&c->reap, handle_closed);
}

int common_httpc_request_sync(const char *method, const char *url, const char *const *headers,
                              const char *body, size_t body_len, unsigned timeout_ms, long *status,
                              char **out_body, char *errmsg)
{
    pthread_once(&global_once, global_init);
    struct request r = {0};
    struct curl_slist *list = header_list(headers);
    CURL *e = easy_new(method, url, list, body, body_len, timeout_ms);
    if (!e) {
        curl_slist_free_all(list);
        snprintf(errmsg, 256, "curl: out of memory");
        return -ENOMEM;
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &r);
    CURLcode code = curl_easy_perform(e);
    int rv = r.too_big ? -E2BIG : curl_error(code);
    if (rv == 0) {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
        *out_body = common_buf_take(&r.resp, NULL);
    } else {
        snprintf(errmsg, 256, "%s: %s", url, curl_easy_strerror(code));
        common_buf_free(&r.resp);
    }
    curl_easy_cleanup(e);
    curl_slist_free_all(list);
    return rv;
}
