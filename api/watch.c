/* Blocking queries: a GET with ?index=N parks until the index of what it
 * reads passes N or its wait ends (Consul and Nomad semantics). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "common/units.h"
#include "common/util.h"

#define DEFAULT_WAIT_MS (5 * 60 * 1000)
#define MAX_WAIT_MS     (10 * 60 * 1000)

struct api__waiter {
    uv_timer_t timer;
    struct api__call *call;
    api__index_cb index_cb;
    api__render_cb render;
    uint64_t min_index;
    struct api__waiter *next, *prev;
};

static void answer(struct api__call *call, api__render_cb render)
{
    struct api__doc doc = {0};
    render(call, &doc);
    api__reply_typed(call, doc.status, doc.index, doc.status < 400 ? doc.content_type : NULL,
                     doc.body, doc.len);
    free(doc.owned);
}

static void waiter_freed(uv_handle_t *h)
{
    free(container_of((uv_timer_t *)h, struct api__waiter, timer));
}

static void waiter_finish(struct api__waiter *w)
{
    struct api_server *srv = w->call->srv;
    if (w->next)
        w->next->prev = w->prev;
    if (w->prev)
        w->prev->next = w->next;
    else
        srv->waiters = w->next;
    answer(w->call, w->render);
    uv_close((uv_handle_t *)&w->timer, waiter_freed);
}

static void waiter_timeout(uv_timer_t *t)
{
    waiter_finish(container_of(t, struct api__waiter, timer));
}

static int parse_wait(struct api__call *call, uint64_t *min_index, int64_t *wait_ms)
{
    char value[64];
    int has_index = api_http_query(call->req, "index", value, sizeof(value));
    if (has_index < 0)
        goto bad_index;
    if (has_index > 0) {
        char *end;
        unsigned long long v = strtoull(value, &end, 10);
        if (!value[0] || *end || value[0] == '-')
            goto bad_index;
        *min_index = v;
    }
    *wait_ms = DEFAULT_WAIT_MS;
    int has_wait = api_http_query(call->req, "wait", value, sizeof(value));
    if (has_wait != 0 && (has_wait < 0 || common_parse_duration(value, wait_ms) != 0)) {
        api__reply_error(call, API_BAD_REQUEST, "wait", "must be a duration such as \"30s\"");
        return -1;
    }
    if (*wait_ms > MAX_WAIT_MS)
        *wait_ms = MAX_WAIT_MS;
    return has_index;
bad_index:
    api__reply_error(call, API_BAD_REQUEST, "index", "must be a non-negative integer");
    return -1;
}

void api__serve_get(struct api__call *call, api__index_cb index_cb, api__render_cb render)
{
    uint64_t min_index = 0;
    int64_t wait_ms = 0;
    int blocking = parse_wait(call, &min_index, &wait_ms);
    if (blocking < 0)
        return;
    struct api_server *srv = call->srv;
    if (!blocking || srv->closing || wait_ms == 0 || index_cb(srv, call->arg) > min_index) {
        answer(call, render);
        return;
    }
    struct api__waiter *w = xcalloc(1, sizeof(*w));
    w->call = call;
    w->index_cb = index_cb;
    w->render = render;
    w->min_index = min_index;
    uv_timer_init(srv->loop, &w->timer);
    uv_timer_start(&w->timer, waiter_timeout, (uint64_t)wait_ms, 0);
    w->next = srv->waiters;
    if (srv->waiters)
        srv->waiters->prev = w;
    srv->waiters = w;
}

void api__wake(struct api_server *srv)
{
    struct api__waiter *w = srv->waiters;
    while (w) {
        struct api__waiter *next = w->next;
        if (w->index_cb(srv, w->call->arg) > w->min_index)
            waiter_finish(w);
        w = next;
    }
}

void api__waiters_release(struct api_server *srv)
{
    while (srv->waiters)
        waiter_finish(srv->waiters);
}
