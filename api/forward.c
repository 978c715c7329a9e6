/* Requests that must run elsewhere: writes on a follower go to the leader,
 * everything on a worker goes to a manager. The answer is passed back as the
 * other node gave it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "common/httpc.h"
#include "common/units.h"
#include "common/util.h"

#define FORWARD_TIMEOUT_MS 30000
#define APPLY_WAIT_MS      2000
#define APPLY_POLL_MS      5

struct api__forward {
    struct api__call *call;
    int wait_applied;
    /* The answer held until this node has applied `index`. */
    uv_timer_t timer;
    int status;
    uint64_t index;
    char *body;
    size_t len;
    const char *content_type; /* static: NULL for application/json */
    uint64_t deadline;
    struct api__forward *next; /* in the server's list while waiting (srv->forwards) */
    int waiting;
};

static void forward_closed(uv_handle_t *h)
{
    struct api__forward *f = h->data;
    free(f->body);
    free(f);
}

static void forward_finish(struct api__forward *f)
{
    if (f->waiting) {
        struct api__forward **p = &f->call->srv->forwards;
        while (*p != f)
            p = &(*p)->next;
        *p = f->next;
        f->waiting = 0;
    }
    uv_timer_stop(&f->timer);
    api__reply_typed(f->call, f->status, f->index, f->content_type, f->body, f->len);
    uv_close((uv_handle_t *)&f->timer, forward_closed);
}

static void apply_poll(uv_timer_t *t)
{
    struct api__forward *f = t->data;
    struct api_server *srv = f->call->srv;
    if (rs_store_state(srv->store)->index >= f->index || srv->closing ||
        common_now_ms() >= f->deadline)
        forward_finish(f);
}

static void forward_cb(void *data, const struct common_httpc_response *res)
{
    struct api__forward *f = data;
    if (res->status == 0) {
        api__reply_error(f->call, API_UNAVAILABLE, NULL, "forwarding to the leader failed: %s",
                         res->errmsg[0] ? res->errmsg : "no answer");
        uv_close((uv_handle_t *)&f->timer, forward_closed);
        return;
    }
    const char *index = common_httpc_header(res, "X-Shoal-Index");
    f->status = (int)res->status;
    f->index = index ? strtoull(index, NULL, 10) : 0;
    f->body = xstrndup(res->body, res->body_len);
    f->len = res->body_len;
    const char *type = common_httpc_header(res, "Content-Type");
    if (type && strncmp(type, "application/x-ndjson", 20) == 0)
        f->content_type = "application/x-ndjson";
    struct api_server *srv = f->call->srv;
    if (f->wait_applied && srv->store && !srv->closing && f->status < 300 &&
        rs_store_state(srv->store)->index < f->index) {
        f->deadline = common_now_ms() + APPLY_WAIT_MS;
        f->waiting = 1;
        f->next = srv->forwards;
        srv->forwards = f;
        uv_timer_start(&f->timer, apply_poll, APPLY_POLL_MS, APPLY_POLL_MS);
        return;
    }
    forward_finish(f);
}

void api__forwards_release(struct api_server *srv)
{
    while (srv->forwards)
        forward_finish(srv->forwards);
}

/* A blocking query may be held for its whole wait: the forward waits that
 * long and a little more. So may POST /v1/logs (its wait is in the body). */
static unsigned forward_timeout(const struct api_http_req *req)
{
    char value[64];
    if (req->method == HTTP_POST &&
        (strcmp(req->path, "/v1/logs") == 0 || strcmp(req->path, "/v1/logs/") == 0))
        return FORWARD_TIMEOUT_MS + API_LOGS_MAX_WAIT_MS;
    if (api_http_query(req, "index", value, sizeof(value)) <= 0)
        return FORWARD_TIMEOUT_MS;
    int64_t wait_ms = 300000; /* the default wait of a blocking query */
    if (api_http_query(req, "wait", value, sizeof(value)) > 0 &&
        common_parse_duration(value, &wait_ms) != 0)
        wait_ms = 0;
    return (unsigned)(wait_ms < 600000 ? wait_ms : 600000) + FORWARD_TIMEOUT_MS;
}

void api__forward(struct api__call *call, const char *addr, int wait_applied)
{
    struct api_http_req *req = call->req;
    char url[API_HTTP_MAX_URL + 128];
    snprintf(url, sizeof(url), "http://%s%s%s%s", addr, req->path, req->query[0] ? "?" : "",
             req->query);
    char auth[8300];
    const char *headers[4];
    size_t n = 0;
    if (req->authorization) {
        snprintf(auth, sizeof(auth), "Authorization: %s", req->authorization);
        headers[n++] = auth;
    }
    headers[n++] = "Content-Type: application/json";
    headers[n++] = "X-Shoal-Forwarded: 1";
    headers[n] = NULL;
    struct api__forward *f = xcalloc(1, sizeof(*f));
    f->call = call;
    f->wait_applied = wait_applied;
    uv_timer_init(call->srv->loop, &f->timer);
    f->timer.data = f;
    int64_t id =
        common_httpc_request(call->srv->httpc, http_method_str(req->method), url, headers,
                             req->body.data, req->body.len, forward_timeout(req), forward_cb, f);
    if (id < 0) {
        api__reply_error(call, API_INTERNAL, NULL, "cannot forward the request");
        uv_close((uv_handle_t *)&f->timer, forward_closed);
    }
}

void api__forward_to_leader(struct api__call *call)
{
    struct api_server *srv = call->srv;
    struct raft *r = rs_store_raft(srv->store);
    raft_id leader_id = 0;
    const char *leader_raft_addr = NULL;
    raft_leader(r, &leader_id, &leader_raft_addr);
    if (srv->closing) {
        api__reply_error(call, API_UNAVAILABLE, NULL, "this node is shutting down");
        return;
    }
    if (leader_id == 0 || leader_id == r->id || call->req->forwarded) {
        api__reply_error(call, API_NO_LEADER, NULL,
                         leader_id == r->id ? "the leader is not ready yet: retry"
                                            : "no leader: the cluster has no quorum");
        return;
    }
    char hex[17];
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)leader_id);
    const struct rs_node *n = rs_state_node(rs_store_state(srv->store), hex);
    const char *addr = n ? rs_node_str(n, "api_address") : "";
    if (!addr[0]) {
        api__reply_error(call, API_NO_LEADER, NULL, "the leader's API address is not known yet");
        return;
    }
    api__forward(call, addr, 1);
}
