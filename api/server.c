#include "api/server.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/internal.h"
#include "api/spec.h"
#include "common/httpc.h"
#include "common/log.h"
#include "common/util.h"

#define MAX_SEGMENTS 6

enum route_flags {
    ROUTE_OPEN = 1,   /* no admin token: open, or authenticated by the handler */
    ROUTE_LEADER = 2, /* runs on the leader: a follower forwards it */
    ROUTE_LOCAL = 4,  /* about this node: served here, also by a worker */
};

struct route {
    enum http_method method;
    const char *pattern; /* "{}" stands for one captured segment */
    void (*handler)(struct api__call *call);
    int flags;
};

static const struct route routes[] = {
    {HTTP_GET, "/v1/health", api__health, ROUTE_OPEN | ROUTE_LOCAL},
    {HTTP_GET, "/v1/cluster", api__cluster_get, 0},
    {HTTP_POST, "/v1/cluster/join", api__cluster_join, ROUTE_OPEN | ROUTE_LEADER},
    {HTTP_GET, "/v1/cluster/join-token/{}", api__join_token_get, 0},
    {HTTP_POST, "/v1/cluster/join-token/{}/rotate", api__join_token_rotate, ROUTE_LEADER},
    {HTTP_GET, "/v1/cluster/backup", api__cluster_backup, ROUTE_LEADER},
    {HTTP_GET, "/v1/services", api__services_list, 0},
    {HTTP_POST, "/v1/services", api__services_create, ROUTE_LEADER},
    {HTTP_GET, "/v1/services/{}", api__service_get, 0},
    {HTTP_PUT, "/v1/services/{}", api__service_put, ROUTE_LEADER},
    {HTTP_DELETE, "/v1/services/{}", api__service_delete, ROUTE_LEADER},
    {HTTP_POST, "/v1/services/{}/scale", api__service_scale, ROUTE_LEADER},
    {HTTP_GET, "/v1/services/{}/rollout", api__service_rollout_get, 0},
    {HTTP_POST, "/v1/services/{}/rollback", api__service_rollback, ROUTE_LEADER},
    {HTTP_POST, "/v1/services/{}/rollout/pause", api__service_rollout_pause, ROUTE_LEADER},
    {HTTP_POST, "/v1/services/{}/rollout/resume", api__service_rollout_resume, ROUTE_LEADER},
    {HTTP_GET, "/v1/nodes", api__nodes_list, 0},
    {HTTP_GET, "/v1/nodes/{}", api__node_get, 0},
    {HTTP_PATCH, "/v1/nodes/{}", api__node_patch, ROUTE_LEADER},
    {HTTP_DELETE, "/v1/nodes/{}", api__node_delete, ROUTE_LEADER},
    {HTTP_POST, "/v1/nodes/{}/promote", api__node_promote, ROUTE_LEADER},
    {HTTP_POST, "/v1/nodes/{}/demote", api__node_demote, ROUTE_LEADER},
    {HTTP_POST, "/v1/nodes/{}/heartbeat", api__node_heartbeat, ROUTE_OPEN | ROUTE_LEADER},
    {HTTP_GET, "/v1/nodes/{}/tasks", api__node_tasks_get, ROUTE_OPEN},
    {HTTP_POST, "/v1/nodes/{}/tasks", api__node_tasks_report, ROUTE_OPEN | ROUTE_LEADER},
    {HTTP_GET, "/v1/tasks", api__tasks_list, 0},
    {HTTP_GET, "/v1/tasks/{}", api__task_get, 0},
    {HTTP_GET, "/v1/tasks/{}/stats", api__task_stats, 0},
    {HTTP_GET, "/v1/services/{}/stats", api__service_stats, 0},
    {HTTP_POST, "/v1/node/stats", api__node_stats, ROUTE_OPEN | ROUTE_LOCAL},
    {HTTP_POST, "/v1/logs", api__logs, 0},
    {HTTP_POST, "/v1/plan", api__plan, 0},
    {HTTP_POST, "/v1/node/logs", api__node_logs, ROUTE_OPEN | ROUTE_LOCAL},
    {HTTP_GET, "/v1/events", api__events, 0},
    {HTTP_GET, "/v1/node/images", api__node_images_ls, ROUTE_OPEN | ROUTE_LOCAL},
    {HTTP_POST, "/v1/node/images/load", api__node_images_load, ROUTE_OPEN | ROUTE_LOCAL},
    {HTTP_POST, "/v1/node/images/gc", api__node_images_gc, ROUTE_OPEN | ROUTE_LOCAL},
    {HTTP_DELETE, "/v1/node/images/{}", api__node_images_rm, ROUTE_OPEN | ROUTE_LOCAL},
    {HTTP_GET, "/v1/images", api__images_all, 0},
    {HTTP_GET, "/v1/nodes/{}/images", api__nodes_images_ls, 0},
    {HTTP_POST, "/v1/nodes/{}/images/load", api__nodes_images_load, 0},
    {HTTP_POST, "/v1/nodes/{}/images/gc", api__nodes_images_gc, 0},
    {HTTP_DELETE, "/v1/nodes/{}/images/{}", api__nodes_images_rm, 0},
};

const char *api__admin_token(struct api_server *srv)
{
    if (srv->store) {
        const char *t = rs_cluster_str(rs_store_state(srv->store), "admin_token");
        if (t[0])
            return t;
    }
    return srv->token;
}

void api__reply(struct api__call *call, int status, uint64_t index, const char *body, size_t len)
{
    api__reply_typed(call, status, index, NULL, body, len);
}

void api__reply_typed(struct api__call *call, int status, uint64_t index, const char *content_type,
                      const char *body, size_t len)
{
    char headers[160] = "";
    if (status < 400) {
        int known = 1;
        if (call->srv->store) {
            raft_id leader_id = 0;
            const char *leader_addr = NULL;
            raft_leader(rs_store_raft(call->srv->store), &leader_id, &leader_addr);
            known = leader_id != 0;
        }
        snprintf(headers, sizeof(headers), "X-Shoal-Index: %llu\r\nX-Shoal-Known-Leader: %s\r\n%s",
                 (unsigned long long)index, known ? "true" : "false",
                 known ? "" : "X-Shoal-Stale: true\r\n");
    }
    api_http_respond_typed(call->req, status, content_type ? content_type : "application/json",
                           headers, body, len);
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

json_t *api__parse_json(struct api__call *call, int max_depth, struct api_err *err)
{
    const struct common_buf *b = &call->req->body;
    if (b->len == 0) {
        api_err_set(err, API_BAD_REQUEST, NULL, "a JSON body is required");
        return NULL;
    }
    if (api_json_depth(b->data, b->len) > max_depth) {
        api_err_set(err, API_BAD_REQUEST, NULL, "JSON nested deeper than %d levels", max_depth);
        return NULL;
    }
    json_error_t jerr;
    json_t *root = json_loadb(b->data, b->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        api_err_set(err, API_BAD_REQUEST, NULL, "malformed JSON at line %d column %d: %s",
                    jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    return root;
}

json_t *api__parse_body(struct api__call *call, struct api_err *err)
{
    json_t *root = api__parse_json(call, API_SPEC_MAX_DEPTH, err);
    if (root && !json_is_object(root)) {
        json_decref(root);
        api_err_set(err, API_BAD_REQUEST, NULL, "the body must be a JSON object");
        return NULL;
    }
    return root;
}

int api__query_cas(struct api__call *call, json_t *op)
{
    char value[32];
    int has = api_http_query(call->req, "index", value, sizeof(value));
    if (has == 0)
        return 0;
    char *end;
    long long v = has > 0 ? strtoll(value, &end, 10) : -1;
    if (has < 0 || !value[0] || *end || v < 0) {
        api__reply_error(call, API_BAD_REQUEST, "index", "must be a non-negative integer");
        return -1;
    }
    json_object_set_new(op, "cas", json_integer(v));
    return 0;
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
 * first "{}" segment into args[0] and a second one into args[1] (each
 * arg_size bytes). */
static int route_match(const char *pattern, const char *path, char *const args[2], size_t arg_size)
{
    int n = 0;
    while (*pattern && *path) {
        if (*pattern != '/' || *path != '/')
            return 0;
        pattern++;
        path++;
        const char *pend = strchrnul(pattern, '/');
        const char *send = strchrnul(path, '/');
        size_t plen = (size_t)(pend - pattern), slen = (size_t)(send - path);
        if (plen == 2 && memcmp(pattern, "{}", 2) == 0) {
            if (slen == 0 || slen >= arg_size || n == 2)
                return 0;
            memcpy(args[n], path, slen);
            args[n++][slen] = '\0';
        } else if (plen != slen || memcmp(pattern, path, plen) != 0) {
            return 0;
        }
        pattern = pend;
        path = send;
    }
    return *pattern == '\0' && (*path == '\0' || strcmp(path, "/") == 0);
}

/* Whether the request's bearer token is secret (not empty). */
static int bearer_is(const struct api_http_req *req, const char *secret)
{
    const char *auth = req->authorization;
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0 || !secret || !secret[0])
        return 0;
    return common_secret_equal(auth + 7, secret);
}

static int authorized(struct api_server *srv, const struct api_http_req *req)
{
    return bearer_is(req, api__admin_token(srv));
}

int api__node_caller_ok(struct api_server *srv, const struct api_http_req *req)
{
    return bearer_is(req, srv->credential) || authorized(srv, req);
}

int api__node_caller_check(struct api__call *call)
{
    if (api__node_caller_ok(call->srv, call->req))
        return 0;
    api__reply_error(call, API_UNAUTHORIZED, NULL,
                     "send this node's credential or the admin token as a bearer token");
    return -EACCES;
}

int api__node_route_check(struct api__call *call, int serves, const char *what)
{
    if (call->srv->closing || !serves) {
        api__reply_error(call, API_UNAVAILABLE, NULL, "%s%s",
                         call->srv->closing ? "this node is shutting down" : "this node serves no ",
                         call->srv->closing ? "" : what);
        return -EAGAIN;
    }
    return api__node_caller_check(call);
}

json_t *api__node_route_body(struct api__call *call, int serves, const char *what)
{
    if (api__node_route_check(call, serves, what) != 0)
        return NULL;
    struct api_err err = {0};
    json_t *body = api__parse_body(call, &err);
    if (!body)
        api__reply_err(call, &err);
    return body;
}

void api__node_route_done(void *ctx, json_t *ans, const char *error)
{
    struct api__call *call = ctx;
    if (ans)
        api__reply_json(call, 200, 0, ans);
    else
        api__reply_error(call, API_INTERNAL, NULL, "%s", error);
}

int api__body_only_fields(const json_t *body, const char *const *fields, struct api_err *err)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v)
    {
        size_t i = 0;
        while (fields[i] && strcmp(fields[i], key) != 0)
            i++;
        if (!fields[i])
            return api_err_set(err, API_BAD_REQUEST, key, "unknown field");
    }
    return 0;
}

static void consistent_cb(void *data, int status)
{
    struct api__call *call = data;
    if (status != 0)
        api__reply_error(call, API_NO_LEADER, NULL, "leadership lost: retry");
    else
        call->handler(call);
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
        char arg[sizeof(call->arg)] = "", arg2[sizeof(call->arg2)] = "";
        if (!route_match(routes[i].pattern, req->path, (char *const[2]){arg, arg2}, sizeof(arg)))
            continue;
        path_known = 1;
        if (routes[i].method == req->method) {
            match = &routes[i];
            memcpy(call->arg, arg, sizeof(arg));
            memcpy(call->arg2, arg2, sizeof(arg2));
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
    if (!srv->store && !(match->flags & ROUTE_LOCAL)) {
        /* A worker keeps no state: a manager answers. */
        const char *addr = srv->manager_cb ? srv->manager_cb(srv->manager_data) : NULL;
        if (!addr)
            api__reply_error(call, API_UNAVAILABLE, NULL, "this worker knows no manager");
        else
            api__forward(call, addr, 0);
        return;
    }
    if (!(match->flags & ROUTE_OPEN) && !authorized(srv, req)) {
        api__reply_error(call, API_UNAUTHORIZED, NULL,
                         "missing or wrong token: send Authorization: Bearer <token>");
        return;
    }
    char consistent[8];
    int wants_consistent = req->method == HTTP_GET &&
                           api_http_query(req, "consistent", consistent, sizeof(consistent)) != 0;
    if ((match->flags & ROUTE_LEADER || wants_consistent) && !rs_store_is_leader(srv->store)) {
        api__forward_to_leader(call);
        return;
    }
    if (wants_consistent) {
        /* Leader-checked read: answer only once a barrier proves this node
         * still leads and has applied everything committed before. */
        call->handler = match->handler;
        if (rs_store_barrier(srv->store, consistent_cb, call) != 0)
            api__reply_error(call, API_NO_LEADER, NULL, "leadership lost: retry");
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
    s->manager_cb = cfg->manager_cb;
    s->manager_data = cfg->manager_data;
    s->credential = xstrdup(cfg->credential ? cfg->credential : "");
    s->node_logs = cfg->node_logs;
    s->node_logs_data = cfg->node_logs_data;
    s->node_stats = cfg->node_stats;
    s->node_stats_data = cfg->node_stats_data;
    s->node_images = cfg->node_images;
    s->node_images_data = cfg->node_images_data;
    int rv = common_httpc_init(&s->httpc, loop);
    if (rv != 0) {
        snprintf(errmsg, 256, "HTTP client: %s", strerror(-rv));
        api_server_close(s, NULL, NULL);
        return rv;
    }
    rv = api_http_listen(&s->http, loop, cfg->listen, handle, s, errmsg);
    if (rv != 0) {
        api_server_close(s, NULL, NULL);
        return rv;
    }
    if (store)
        rs_store_on_change(store, on_change, s);
    *out = s;
    return 0;
}

void api_server_stop_accepting(struct api_server *s)
{
    s->closing = 1;
    if (s->http)
        api_http_stop_listening(s->http);
    if (s->store)
        rs_store_on_change(s->store, NULL, NULL);
    api__waiters_release(s);
    api__logs_release(s);
    api__stats_release(s);
    api__images_release(s);
    api__forwards_release(s);
}

struct close_ctx {
    struct api_server *srv;
    void (*cb)(void *);
    void *data;
};

static void httpc_closed(void *data)
{
    struct close_ctx *ctx = data;
    struct api_server *s = ctx->srv;
    free(s->token);
    free(s->cluster_id);
    free(s->node_id);
    free(s->node_name);
    free(s->raft_address);
    free(s->listen);
    free(s->credential);
    free(s);
    if (ctx->cb)
        ctx->cb(ctx->data);
    free(ctx);
}

static void http_closed(void *data)
{
    struct close_ctx *ctx = data;
    if (ctx->srv->httpc)
        common_httpc_close(ctx->srv->httpc, httpc_closed, ctx);
    else
        httpc_closed(ctx);
}

void api_server_close(struct api_server *s, void (*cb)(void *data), void *data)
{
    if (!s->closing)
        api_server_stop_accepting(s);
    struct close_ctx *ctx = xmalloc(sizeof(*ctx));
    *ctx = (struct close_ctx){s, cb, data};
    if (s->http)
        api_http_close(s->http, http_closed, ctx);
    else
        http_closed(ctx);
}
