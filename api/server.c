#include "api/server.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api/internal.h"
#include "api/spec.h"
#include "common/log.h"
#include "common/util.h"

#define MAX_SEGMENTS 6

struct route {
    enum http_method method;
    const char *pattern; /* "{}" stands for one captured segment */
    void (*handler)(struct api__call *call);
    int open; /* no token needed */
};

static const struct route routes[] = {
    {HTTP_GET, "/v1/health", api__health, 1},
    {HTTP_GET, "/v1/cluster", api__cluster_get, 0},
    {HTTP_GET, "/v1/services", api__services_list, 0},
    {HTTP_POST, "/v1/services", api__services_create, 0},
    {HTTP_GET, "/v1/services/{}", api__service_get, 0},
    {HTTP_PUT, "/v1/services/{}", api__service_put, 0},
    {HTTP_DELETE, "/v1/services/{}", api__service_delete, 0},
    {HTTP_POST, "/v1/services/{}/scale", api__service_scale, 0},
};

void api__reply(struct api__call *call, int status, uint64_t index, const char *body, size_t len)
{
    char headers[64];
    snprintf(headers, sizeof(headers), "X-Shoal-Index: %llu\r\n", (unsigned long long)index);
    api_http_respond(call->req, status, status < 400 ? headers : "", body, len);
    free(call);
}

void api__reply_json(struct api__call *call, int status, uint64_t index, json_t *body)
{
    size_t len = json_dumpb(body, NULL, 0, JSON_COMPACT);
    _cleanup_free_ char *text = xmalloc(len + 1);
    json_dumpb(body, text, len, JSON_COMPACT);
    json_decref(body);
    api__reply(call, status, index, text, len);
}

void api__reply_err(struct api__call *call, const struct api_err *err)
{
    int status = api_code_status(err->code);
    if (status >= 500)
        LOGW("api: %s %s: %d %s", http_method_str(call->req->method), call->req->path, status,
             err->msg);
    api__reply_json(call, status, 0,
                    json_pack("{s:s, s:s, s:s}", "error", err->msg, "code",
                              api_code_name(err->code), "field", err->field));
}

void api__reply_error(struct api__call *call, enum api_code code, const char *field,
                      const char *fmt, ...)
{
    struct api_err err;
    va_list ap;
    va_start(ap, fmt);
    api_err_vset(&err, code, field, fmt, ap);
    va_end(ap);
    api__reply_err(call, &err);
}

json_t *api__parse_body(struct api__call *call, struct api_err *err)
{
    const struct common_buf *b = &call->req->body;
    if (b->len == 0) {
        api_err_set(err, API_BAD_REQUEST, NULL, "a JSON body is required");
        return NULL;
    }
    if (api_json_depth(b->data, b->len) > API_SPEC_MAX_DEPTH) {
        api_err_set(err, API_BAD_REQUEST, NULL, "JSON nested deeper than %d levels",
                    API_SPEC_MAX_DEPTH);
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(b->data, b->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        api_err_set(err, API_BAD_REQUEST, NULL, "malformed JSON at line %d column %d: %s",
                    jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        api_err_set(err, API_BAD_REQUEST, NULL, "the body must be a JSON object");
        return NULL;
    }
    return root;
}

static void submit_cb(void *data, struct rs_op_result *res)
{
    struct api__call *call = data;
    int status = (int)(intptr_t)call->req->data;
    if (res->err.code != API_OK) {
        api__reply_err(call, &res->err);
        return;
    }
    api__reply(call, res->created ? 201 : status, res->index, res->body, res->body_len);
}

void api__submit(struct api__call *call, json_t *op, int ok_status)
{
    struct api_server *srv = call->srv;
    call->req->data = (void *)(intptr_t)ok_status;
    if (rs_store_submit(srv->store, op, submit_cb, call) != 0) {
        if (srv->closing)
            api__reply_error(call, API_UNAVAILABLE, NULL, "this node is shutting down");
        else
            api__reply_error(call, API_NO_LEADER, NULL,
                             "no leader: this node is not the Raft leader");
    }
}

/* Splits path into segments and matches it against pattern, capturing the
 * one "{}" segment into arg. */
static int route_match(const char *pattern, const char *path, char *arg, size_t arg_size)
{
    while (*pattern && *path) {
        if (*pattern != '/' || *path != '/')
            return 0;
        pattern++;
        path++;
        const char *pend = strchrnul(pattern, '/');
        const char *send = strchrnul(path, '/');
        size_t plen = (size_t)(pend - pattern), slen = (size_t)(send - path);
        if (plen == 2 && memcmp(pattern, "{}", 2) == 0) {
            if (slen == 0 || slen >= arg_size)
                return 0;
            memcpy(arg, path, slen);
            arg[slen] = '\0';
        } else if (plen != slen || memcmp(pattern, path, plen) != 0) {
            return 0;
        }
        pattern = pend;
        path = send;
    }
    return *pattern == '\0' && (*path == '\0' || strcmp(path, "/") == 0);
}

static int authorized(struct api_server *srv, const struct api_http_req *req)
{
    const char *auth = req->authorization;
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return 0;
    return common_secret_equal(auth + 7, srv->token);
}

static void handle(struct api_http_req *req, void *data)
{
    struct api_server *srv = data;
    struct api__call *call = xcalloc(1, sizeof(*call));
    call->srv = srv;
    call->req = req;
    const struct route *match = NULL;
    int path_known = 0;
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
        char arg[sizeof(call->arg)] = "";
        if (!route_match(routes[i].pattern, req->path, arg, sizeof(arg)))
            continue;
        path_known = 1;
        if (routes[i].method == req->method) {
            match = &routes[i];
            memcpy(call->arg, arg, sizeof(arg));
            break;
        }
    }
    if (!match && path_known) {
        api__reply_error(call, API_METHOD_NOT_ALLOWED, NULL, "method %s not allowed on %s",
                         http_method_str(req->method), req->path);
        return;
    }
    if (!match) {
        api__reply_error(call, API_NOT_FOUND, NULL, "no route %s", req->path);
        return;
    }
    if (!match->open && !authorized(srv, req)) {
        api__reply_error(call, API_UNAUTHORIZED, NULL,
                         "missing or wrong token: send Authorization: Bearer <token>");
        return;
    }
    match->handler(call);
}

static void on_change(void *data)
{
    api__wake(data);
}

int api_server_start(struct api_server **out, uv_loop_t *loop, struct rs_store *store,
                     const struct api_server_config *cfg, char *errmsg)
{
    struct api_server *s = xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->store = store;
    s->token = xstrdup(cfg->token);
    s->cluster_id = xstrdup(cfg->cluster_id);
    s->node_id = xstrdup(cfg->node_id);
    s->node_name = xstrdup(cfg->node_name);
    s->raft_address = xstrdup(cfg->raft_address);
    s->listen = xstrdup(cfg->listen);
    int rv = api_http_listen(&s->http, loop, cfg->listen, handle, s, errmsg);
    if (rv != 0) {
        api_server_close(s, NULL, NULL);
        return rv;
    }
    rs_store_on_change(store, on_change, s);
    *out = s;
    return 0;
}

void api_server_stop_accepting(struct api_server *s)
{
    s->closing = 1;
    if (s->http)
        api_http_stop_listening(s->http);
    rs_store_on_change(s->store, NULL, NULL);
    api__waiters_release(s);
}

struct close_ctx {
    struct api_server *srv;
    void (*cb)(void *);
    void *data;
};

static void http_closed(void *data)
{
    struct close_ctx *ctx = data;
    struct api_server *s = ctx->srv;
    free(s->token);
    free(s->cluster_id);
    free(s->node_id);
    free(s->node_name);
    free(s->raft_address);
    free(s->listen);
    free(s);
    if (ctx->cb)
        ctx->cb(ctx->data);
    free(ctx);
}

void api_server_close(struct api_server *s, void (*cb)(void *data), void *data)
{
    if (!s->closing && s->store)
        api_server_stop_accepting(s);
    struct close_ctx *ctx = xmalloc(sizeof(*ctx));
    *ctx = (struct close_ctx){s, cb, data};
    if (s->http)
        api_http_close(s->http, http_closed, ctx);
    else
        http_closed(ctx);
}
