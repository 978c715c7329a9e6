/* Task stats, the part every node serves: two reads of its tasks' cgroups
 * (through the agent's callback) API__STATS_SAMPLE_MS apart, on a timer, so
 * that cpu use comes as a percent, and POST /v1/node/stats. The managers'
 * endpoints, which ask the nodes, are in api/stats_fanout.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/stats_internal.h"
#include "common/util.h"

struct api__stats_sample {
    struct api_server *srv;
    uv_timer_t timer;
    json_t *tasks; /* owned: the ids */
    json_t *first; /* owned: the first read's answer */
    uint64_t first_ns;
    api__stats_cb done; /* NULL once called or cancelled */
    void *ctx;
    struct api__stats_sample *next, *prev;
};

static json_t *read_now(struct api_server *srv, const json_t *tasks, char *errmsg)
{
    json_t *ans = NULL;
    if (srv->node_stats(srv->node_stats_data, tasks, &ans, errmsg) != 0 || !json_is_object(ans)) {
        json_decref(ans);
        if (!errmsg[0])
            snprintf(errmsg, 256, "the agent gave no stats");
        return NULL;
    }
    return ans;
}

/* Sets "cpu_percent" in every task of second (null in those without a
 * first read): cpu time over wall time, 100 per busy CPU. */
static void add_percent(json_t *second, const json_t *first, uint64_t wall_ns)
{
    const char *id;
    json_t *s;
    json_object_foreach(json_object_get(second, "stats"), id, s)
    {
        json_t *f = json_object_get(json_object_get(first, "stats"), id);
        json_int_t a = json_integer_value(json_object_get(f, "cpu_ns"));
        json_int_t b = json_integer_value(json_object_get(s, "cpu_ns"));
        if (!f || wall_ns == 0 || b < a) {
            json_object_set_new(s, "cpu_percent", json_null());
            continue;
        }
        double pct = 100.0 * (double)(b - a) / (double)wall_ns;
        json_object_set_new(s, "cpu_percent", json_real((double)(int64_t)(pct * 100) / 100));
    }
}

static void sample_closed(uv_handle_t *h)
{
    struct api__stats_sample *s = container_of((uv_timer_t *)h, struct api__stats_sample, timer);
    json_decref(s->tasks);
    json_decref(s->first);
    free(s);
}

static void sample_unlink(struct api__stats_sample *s)
{
    if (s->next)
        s->next->prev = s->prev;
    if (s->prev)
        s->prev->next = s->next;
    else
        s->srv->samples = s->next;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, sample_closed);
}

/* Ends a sample with ans (transferred) or error. */
static void sample_finish(struct api__stats_sample *s, json_t *ans, const char *error)
{
    api__stats_cb done = s->done;
    s->done = NULL;
    sample_unlink(s);
    if (done)
        done(s->ctx, ans, error);
    else
        json_decref(ans);
}

static void sample_tick(uv_timer_t *timer)
{
    struct api__stats_sample *s = container_of(timer, struct api__stats_sample, timer);
    char errmsg[256] = "";
    json_t *ans = read_now(s->srv, s->tasks, errmsg);
    if (ans)
        add_percent(ans, s->first, uv_hrtime() - s->first_ns);
    sample_finish(s, ans, errmsg);
}

struct api__stats_sample *api__stats_sample_start(struct api_server *srv, const json_t *tasks,
                                                  api__stats_cb done, void *ctx)
{
    char errmsg[256] = "";
    if (!srv->node_stats) {
        done(ctx, NULL, "this node serves no stats");
        return NULL;
    }
    uint64_t now = uv_hrtime();
    json_t *first = read_now(srv, tasks, errmsg);
    if (!first || json_object_size(json_object_get(first, "stats")) == 0 || srv->closing) {
        if (first)
            add_percent(first, NULL, 0);
        done(ctx, first, errmsg);
        return NULL;
    }
    struct api__stats_sample *s = xcalloc(1, sizeof(*s));
    *s = (struct api__stats_sample){.srv = srv,
                                    .tasks = json_copy((json_t *)tasks),
                                    .first = first,
                                    .first_ns = now,
                                    .done = done,
                                    .ctx = ctx,
                                    .next = srv->samples};
    uv_timer_init(srv->loop, &s->timer);
    uv_timer_start(&s->timer, sample_tick, API__STATS_SAMPLE_MS, 0);
    if (srv->samples)
        srv->samples->prev = s;
    srv->samples = s;
    return s;
}

void api__stats_sample_cancel(struct api__stats_sample *s)
{
    s->done = NULL;
    sample_unlink(s);
}

/* ---- POST /v1/node/stats ---- */

/* Checks {"tasks": [ID, ...]} and nothing else. */
static int node_body(const json_t *body, struct api_err *err)
{
    static const char *const fields[] = {"tasks", NULL};
    if (api__body_only_fields(body, fields, err) != 0)
        return -EINVAL;
    json_t *v;
    json_t *tasks = json_object_get(body, "tasks");
    if (!json_is_array(tasks) || json_array_size(tasks) > API__STATS_MAX_TASKS)
        return api_err_set(err, API_BAD_REQUEST, "tasks", "must be a list of at most %d task ids",
                           API__STATS_MAX_TASKS);
    size_t i;
    json_array_foreach(tasks, i, v)
    {
        if (!json_is_string(v) || !api_task_id_valid(json_string_value(v)))
            return api_err_set(err, API_BAD_REQUEST, "tasks", "tasks[%zu] is not a task id", i);
    }
    return 0;
}

void api__node_stats(struct api__call *call)
{
    json_auto_t *body = api__node_route_body(call, call->srv->node_stats != NULL, "stats");
    if (!body)
        return;
    struct api_err err = {0};
    if (node_body(body, &err) != 0) {
        api__reply_err(call, &err);
        return;
    }
    api__stats_sample_start(call->srv, json_object_get(body, "tasks"), api__node_route_done, call);
}

void api__stats_release(struct api_server *srv)
{
    while (srv->samples) {
        struct api__stats_sample *s = srv->samples;
        json_t *first = json_incref(s->first);
        add_percent(first, NULL, 0);
        sample_finish(s, first, NULL);
    }
    api__stats_fanouts_release(srv);
}
