#include "agent/heartbeat.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/httpc.h"
#include "common/log.h"
#include "common/util.h"

#define DEFAULT_INTERVAL_MS 1000

struct agent_heartbeat {
    uv_loop_t *loop;
    struct agent_node *node;
    struct common_httpc *httpc;
    uv_timer_t timer;
    size_t current; /* index into node->managers */
    unsigned interval_ms;
    int64_t pending; /* request id, 0 when none */
    int removed;
    agent_heartbeat_role_cb role_cb;
    void *data;
    void (*stop_cb)(void *);
    void *stop_data;
};

static void send_beat(uv_timer_t *t);

const char *agent_heartbeat_manager(struct agent_heartbeat *hb)
{
    size_t n = json_array_size(hb->node->managers);
    return n ? json_string_value(json_array_get(hb->node->managers, hb->current % n)) : NULL;
}

void agent_heartbeat_failover(struct agent_heartbeat *hb)
{
    hb->current++;
}

/* Takes the manager list of an answer; saves it when it changed. */
static void learn_managers(struct agent_heartbeat *hb, json_t *managers)
{
    json_t *addrs = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(managers, i, m)
    {
        json_t *a = json_object_get(m, "api_address");
        if (json_is_string(a) && json_string_length(a) > 0)
            json_array_append(addrs, a);
    }
    if (json_array_size(addrs) > 0 && !json_equal(addrs, hb->node->managers)) {
        const char *cur = agent_heartbeat_manager(hb);
        size_t keep = 0;
        json_array_foreach(addrs, i, m) if (cur && strcmp(json_string_value(m), cur) == 0) keep = i;
        json_decref(hb->node->managers);
        hb->node->managers = json_incref(addrs);
        hb->current = keep;
        char errmsg[256];
        if (agent_node_save(hb->node, errmsg) != 0)
            LOGW("heartbeat: %s", errmsg);
    }
    json_decref(addrs);
}

static void beat_cb(void *data, const struct common_httpc_response *res)
{
    struct agent_heartbeat *hb = data;
    hb->pending = 0;
    if (res->error == -ECANCELED)
        return;
    if (res->status == 401) {
        LOGE("heartbeat: the cluster does not know this node any more (removed): stopping "
             "heartbeats");
        hb->removed = 1;
        return;
    }
    if (res->status != 200) {
        LOGD("heartbeat: manager %s: %s", agent_heartbeat_manager(hb),
             res->status ? res->body : res->errmsg);
        hb->current++; /* fail over to the next manager */
        return;
    }
    json_t *ans = json_loadb(res->body, res->body_len, 0, NULL);
    learn_managers(hb, json_object_get(ans, "managers"));
    json_int_t interval = json_integer_value(json_object_get(ans, "heartbeat_interval_ms"));
    if (interval > 0 && (unsigned)interval != hb->interval_ms) {
        hb->interval_ms = (unsigned)interval;
        uv_timer_set_repeat(&hb->timer, hb->interval_ms);
    }
    const char *role = json_string_value(json_object_get(ans, "role"));
    if (role && strcmp(role, hb->node->role) != 0 && hb->role_cb)
        hb->role_cb(hb->data, role);
    json_decref(ans);
}

static void send_beat(uv_timer_t *t)
{
    struct agent_heartbeat *hb = container_of(t, struct agent_heartbeat, timer);
    const char *addr = agent_heartbeat_manager(hb);
    if (hb->removed || hb->pending || !addr)
        return;
    char url[512], auth[128];
    snprintf(url, sizeof(url), "http://%s/v1/nodes/%s/heartbeat", addr, hb->node->id_hex);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", hb->node->credential);
    const char *headers[] = {auth, "Content-Type: application/json", NULL};
    /* A manager that does not answer within the interval is as good as
     * gone: the next beat tries the next one. */
    unsigned timeout = hb->interval_ms > 500 ? hb->interval_ms : 500;
    int64_t id =
        common_httpc_request(hb->httpc, "POST", url, headers, "{}", 2, timeout, beat_cb, hb);
    if (id > 0)
        hb->pending = id;
}

int agent_heartbeat_start(struct agent_heartbeat **out, uv_loop_t *loop, struct agent_node *node,
                          agent_heartbeat_role_cb role_cb, void *data)
{
    struct agent_heartbeat *hb = xcalloc(1, sizeof(*hb));
    hb->loop = loop;
    hb->node = node;
    hb->role_cb = role_cb;
    hb->data = data;
    hb->interval_ms = DEFAULT_INTERVAL_MS;
    int rv = common_httpc_init(&hb->httpc, loop);
    if (rv != 0) {
        free(hb);
        return rv;
    }
    uv_timer_init(loop, &hb->timer);
    uv_timer_start(&hb->timer, send_beat, 0, hb->interval_ms);
    *out = hb;
    return 0;
}

static void timer_closed(uv_handle_t *h)
{
    struct agent_heartbeat *hb = container_of((uv_timer_t *)h, struct agent_heartbeat, timer);
    void (*cb)(void *) = hb->stop_cb;
    void *data = hb->stop_data;
    free(hb);
    if (cb)
        cb(data);
}

static void httpc_closed(void *data)
{
    struct agent_heartbeat *hb = data;
    uv_close((uv_handle_t *)&hb->timer, timer_closed);
}

void agent_heartbeat_stop(struct agent_heartbeat *hb, void (*cb)(void *data), void *data)
{
    hb->stop_cb = cb;
    hb->stop_data = data;
    uv_timer_stop(&hb->timer);
    common_httpc_close(hb->httpc, httpc_closed, hb);
}
