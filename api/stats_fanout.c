/* Task stats on any manager: GET /v1/tasks/{id}/stats and GET
 * /v1/services/{name}/stats find the running tasks, ask the nodes that run
 * them in parallel (this node directly: api/stats.c) and merge the answers;
 * a node that does not answer in time is an error entry, never a hang. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/fanout.h"
#include "api/stats_internal.h"
#include "common/util.h"
#include "raft/state.h"

#define NODE_TIMEOUT_MS 3000 /* a node answers within this (its sample included) */

/* A stats request waiting for its nodes; each target's tasks are [ID]. */
struct stats_fanout {
    struct api__fanout fo;
    const char *task; /* GET /v1/tasks/{id}/stats: the id (in call->arg), else NULL */
    json_t *info;     /* owned: task id -> {"id", "service", "slot", "node" (name)} */
    json_t *rows, *errors, *missing;
};

static struct stats_fanout *stats_of(struct api__fanout *fo)
{
    return container_of(fo, struct stats_fanout, fo);
}

static void stats_free(struct api__fanout *fo)
{
    struct stats_fanout *s = stats_of(fo);
    json_decref(s->info);
    json_decref(s->rows);
    json_decref(s->errors);
    json_decref(s->missing);
    free(s);
}

static void add_error(struct stats_fanout *s, const struct api__fanout_target *t, const char *why)
{
    json_array_append_new(s->errors, json_pack("{s:s, s:O, s:s}", "node", t->ref.node, "tasks",
                                               t->tasks, "error", why));
}

/* The answer of GET /v1/tasks/{id}/stats: the task's row, or why not. */
static void answer_task(struct stats_fanout *s)
{
    struct api__call *call = s->fo.call;
    json_t *row = json_array_get(s->rows, 0);
    if (row) {
        api__reply_json(call, 200, 0, json_incref(row));
    } else if (json_array_size(s->missing) > 0) {
        json_t *info = json_object_get(s->info, s->task);
        api__reply_error(call, API_CONFLICT, NULL,
                         "task %s is not running on node %s (no process in its cgroup)", s->task,
                         json_string_value(json_object_get(info, "node")));
    } else {
        const char *why = json_string_value(json_object_get(json_array_get(s->errors, 0), "error"));
        api__reply_error(call, API_UNAVAILABLE, NULL, "%s", why ? why : "no node answered");
    }
}

static void stats_answer(struct api__fanout *fo, const char *why_pending)
{
    struct stats_fanout *s = stats_of(fo);
    (void)why_pending;
    if (s->task)
        answer_task(s);
    else
        api__reply_json(fo->call, 200, 0,
                        json_pack("{s:o, s:O, s:O}", "tasks", api__tasks_by_slot(s->rows),
                                  "missing", s->missing, "errors", s->errors));
}

static void stats_pending(struct api__fanout *fo, struct api__fanout_target *t, const char *why)
{
    if (why)
        add_error(stats_of(fo), t, why);
}

/* Takes one node's answer in. */
static void merge(struct stats_fanout *s, const struct api__fanout_target *t, const json_t *ans)
{
    json_t *stats = json_object_get(ans, "stats");
    json_t *errors = json_object_get(ans, "errors");
    size_t i;
    json_t *e;
    json_array_foreach(t->tasks, i, e)
    {
        const char *id = json_string_value(e);
        json_t *st = json_object_get(stats, id);
        const char *why = json_string_value(json_object_get(errors, id));
        if (json_is_object(st)) {
            json_t *row = json_copy(json_object_get(s->info, id));
            static const char *const keys[] = {"cpu_percent", "cpu_ns", "memory", "memory_limit",
                                               "pids"};
            for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
                json_t *v = json_object_get(st, keys[k]);
                json_object_set_new(row, keys[k], json_is_number(v) ? json_incref(v) : json_null());
            }
            json_array_append_new(s->rows, row);
        } else if (why) {
            json_array_append_new(s->errors, json_pack("{s:s, s:[s], s:s}", "node", t->ref.node,
                                                       "tasks", id, "error", why));
        } else {
            json_array_append_new(s->missing, json_string(id));
        }
    }
}

static void stats_result(struct api__fanout *fo, struct api__fanout_target *t, const json_t *ans,
                         const char *why)
{
    if (ans)
        merge(stats_of(fo), t, ans);
    else
        add_error(stats_of(fo), t, why);
}

static void *stats_local(struct api__fanout *fo, struct api__fanout_target *t)
{
    return api__stats_sample_start(fo->srv, t->tasks, api__fanout_local_cb, t);
}

static void stats_cancel_local(void *local)
{
    api__stats_sample_cancel(local);
}

static void stats_target_start(struct api__fanout *fo, struct api__fanout_target *t)
{
    (void)fo;
    json_auto_t *q = json_pack("{s:O}", "tasks", t->tasks);
    _cleanup_free_ char *body = json_dumps(q, JSON_COMPACT);
    api__fanout_ask(t, "POST", "/v1/node/stats", body);
}

static const struct api__fanout_ops stats_ops = {
    .start = stats_target_start,
    .local = stats_local,
    .cancel_local = stats_cancel_local,
    .result = stats_result,
    .pending = stats_pending,
    .answer = stats_answer,
    .free = stats_free,
};

/* Adds a running task to the target of its node (one per node, a new one
 * every API__STATS_MAX_TASKS tasks). */
static void add_task(struct stats_fanout *s, const struct rs_state *st, const json_t *task)
{
    const char *id = json_string_value(json_object_get(task, "id"));
    const char *node = json_string_value(json_object_get(task, "node"));
    struct api__fanout_target *t =
        api__fanout_target_for(&s->fo, st, node, API__STATS_MAX_TASKS, 0);
    json_array_append_new(t->tasks, json_string(id));
    json_object_set_new(s->info, id,
                        json_pack("{s:s, s:O?, s:O?, s:s}", "id", id, "service",
                                  json_object_get(task, "service"), "slot",
                                  json_object_get(task, "slot"), "node", t->ref.node));
}

static int is_running(const json_t *t)
{
    const char *state = json_string_value(json_object_get(t, "state"));
    const char *node = json_string_value(json_object_get(t, "node"));
    return state && strcmp(state, "running") == 0 && node && node[0] &&
           api_task_id_valid(json_string_value(json_object_get(t, "id")) ?: "");
}

/* Picks the tasks: the one asked for (running), or every running task of the
 * service. Returns 0, or a negative errno with err set. */
static int pick_tasks(struct stats_fanout *s, const char *service, struct api_err *err)
{
    const struct rs_state *st = rs_store_state(s->fo.srv->store);
    if (s->task) {
        const json_t *t = json_object_get(st->tasks, s->task);
        if (!t)
            return api_err_set(err, API_NOT_FOUND, NULL, "no task \"%.64s\"", s->task);
        if (!is_running(t))
            return api_err_set(err, API_CONFLICT, NULL, "task %s is not running (state: %s)",
                               s->task, json_string_value(json_object_get(t, "state")) ?: "?");
        add_task(s, st, t);
        return 0;
    }
    int known = rs_state_service(st, service) != NULL;
    const char *id;
    json_t *t;
    json_object_foreach(st->tasks, id, t)
    {
        const char *name = json_string_value(json_object_get(t, "service"));
        if (name && strcmp(name, service) == 0) {
            known = 1;
            if (is_running(t))
                add_task(s, st, t);
        }
    }
    if (!known)
        return api_err_set(err, API_NOT_FOUND, NULL, "no service \"%.200s\"", service);
    return 0;
}

static void stats_start(struct api__call *call, const char *task, const char *service)
{
    struct api_server *srv = call->srv;
    if (srv->closing) {
        api__reply_error(call, API_UNAVAILABLE, NULL, "this node is shutting down");
        return;
    }
    struct stats_fanout *s = xcalloc(1, sizeof(*s));
    api__fanout_init(&s->fo, call, &stats_ops, &srv->stats_fanouts, NODE_TIMEOUT_MS);
    s->task = task;
    s->info = json_object();
    s->rows = json_array();
    s->errors = json_array();
    s->missing = json_array();
    struct api_err err = {0};
    if (pick_tasks(s, service, &err) != 0) {
        api__reply_err(call, &err);
        api__fanout_drop(&s->fo);
        return;
    }
    api__fanout_begin(&s->fo);
}

void api__task_stats(struct api__call *call)
{
    stats_start(call, call->arg, NULL);
}

void api__service_stats(struct api__call *call)
{
    stats_start(call, NULL, call->arg);
}

void api__stats_fanouts_release(struct api_server *srv)
{
    api__fanouts_release(&srv->stats_fanouts, "no answer before this manager stopped");
}
