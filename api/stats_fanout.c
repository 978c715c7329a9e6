/* Task stats on any manager: GET /v1/tasks/{id}/stats and GET
 * /v1/services/{name}/stats find the running tasks, ask the nodes that run
 * them in parallel (this node directly: api/stats.c) and merge the answers;
 * a node that does not answer in time is an error entry, never a hang. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/node_call.h"
#include "api/stats_internal.h"
#include "common/util.h"
#include "raft/state.h"

#define NODE_TIMEOUT_MS 3000 /* a node answers within this (its sample included) */

struct target {
    struct api__stats_fanout *fo;
    struct api__node_ref ref;
    json_t *tasks; /* owned: [ID] */
    int64_t req;   /* the request in flight, 0 when none */
    struct api__stats_sample *sample;
    int done;
};

struct api__stats_fanout {
    struct api_server *srv;
    struct api__call *call; /* NULL once answered */
    const char *task;       /* GET /v1/tasks/{id}/stats: the id (in call->arg), else NULL */
    json_t *info;           /* owned: task id -> {"id", "service", "slot", "node" (name)} */
    json_t *rows, *errors, *missing;
    struct target *targets; /* owned */
    size_t n_targets, cap_targets;
    size_t pending;
    int starting;
    unsigned refs; /* the answer, and every callback still to come */
    struct api__stats_fanout *next, *prev;
};

static void fanout_unref(struct api__stats_fanout *fo)
{
    if (--fo->refs > 0)
        return;
    for (size_t i = 0; i < fo->n_targets; i++) {
        api__node_ref_free(&fo->targets[i].ref);
        json_decref(fo->targets[i].tasks);
    }
    free(fo->targets);
    json_decref(fo->info);
    json_decref(fo->rows);
    json_decref(fo->errors);
    json_decref(fo->missing);
    free(fo);
}

static int by_slot(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    json_int_t sx = json_integer_value(json_object_get(x, "slot"));
    json_int_t sy = json_integer_value(json_object_get(y, "slot"));
    if (sx != sy)
        return sx < sy ? -1 : 1;
    int c = strcmp(json_string_value(json_object_get(x, "node")),
                   json_string_value(json_object_get(y, "node")));
    return c ? c
             : strcmp(json_string_value(json_object_get(x, "id")),
                      json_string_value(json_object_get(y, "id")));
}

static json_t *sorted_rows(const json_t *rows)
{
    size_t n = json_array_size(rows);
    json_t **v = xcalloc(n + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = json_array_get(rows, i);
    qsort(v, n, sizeof(*v), by_slot);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append(out, v[i]);
    free(v);
    return out;
}

/* The answer of GET /v1/tasks/{id}/stats: the task's row, or why not. */
static void answer_task(struct api__stats_fanout *fo)
{
    json_t *row = json_array_get(fo->rows, 0);
    if (row) {
        api__reply_json(fo->call, 200, 0, json_incref(row));
    } else if (json_array_size(fo->missing) > 0) {
        json_t *info = json_object_get(fo->info, fo->task);
        api__reply_error(fo->call, API_CONFLICT, NULL,
                         "task %s is not running on node %s (no process in its cgroup)", fo->task,
                         json_string_value(json_object_get(info, "node")));
    } else {
        const char *why =
            json_string_value(json_object_get(json_array_get(fo->errors, 0), "error"));
        api__reply_error(fo->call, API_UNAVAILABLE, NULL, "%s", why ? why : "no node answered");
    }
}

/* Answers with what came; the targets still out are errors ("why_pending")
 * and their requests are cancelled. */
static void fanout_answer(struct api__stats_fanout *fo, const char *why_pending)
{
    for (size_t i = 0; i < fo->n_targets; i++) {
        struct target *t = &fo->targets[i];
        if (t->done)
            continue;
        char why[512];
        snprintf(why, sizeof(why), "node %s: %s", t->ref.node, why_pending);
        json_array_append_new(fo->errors, json_pack("{s:s, s:O, s:s}", "node", t->ref.node, "tasks",
                                                    t->tasks, "error", why));
        if (t->sample) {
            api__stats_sample_cancel(t->sample);
            t->sample = NULL;
            fo->refs--; /* its callback never comes */
        }
        if (t->req > 0)
            common_httpc_cancel(fo->srv->httpc, t->req); /* its callback comes later */
    }
    if (fo->task)
        answer_task(fo);
    else
        api__reply_json(fo->call, 200, 0,
                        json_pack("{s:o, s:O, s:O}", "tasks", sorted_rows(fo->rows), "missing",
                                  fo->missing, "errors", fo->errors));
    fo->call = NULL;
    if (fo->next)
        fo->next->prev = fo->prev;
    if (fo->prev)
        fo->prev->next = fo->next;
    else
        fo->srv->stats_fanouts = fo->next;
    fanout_unref(fo);
}

/* Takes one node's answer in. */
static void merge(struct api__stats_fanout *fo, struct target *t, const json_t *ans)
{
    json_t *stats = json_object_get(ans, "stats");
    json_t *errors = json_object_get(ans, "errors");
    size_t i;
    json_t *e;
    json_array_foreach(t->tasks, i, e)
    {
        const char *id = json_string_value(e);
        json_t *s = json_object_get(stats, id);
        const char *why = json_string_value(json_object_get(errors, id));
        if (json_is_object(s)) {
            json_t *row = json_copy(json_object_get(fo->info, id));
            static const char *const keys[] = {"cpu_percent", "cpu_ns", "memory", "memory_limit",
                                               "pids"};
            for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
                json_t *v = json_object_get(s, keys[k]);
                json_object_set_new(row, keys[k], json_is_number(v) ? json_incref(v) : json_null());
            }
            json_array_append_new(fo->rows, row);
        } else if (why) {
            json_array_append_new(fo->errors, json_pack("{s:s, s:[s], s:s}", "node", t->ref.node,
                                                        "tasks", id, "error", why));
        } else {
            json_array_append_new(fo->missing, json_string(id));
        }
    }
}

static void target_finish(struct target *t, const json_t *ans, const char *why)
{
    struct api__stats_fanout *fo = t->fo;
    if (t->done)
        return;
    t->done = 1;
    fo->pending--;
    if (!fo->call)
        return;
    if (ans)
        merge(fo, t, ans);
    else
        json_array_append_new(fo->errors, json_pack("{s:s, s:O, s:s}", "node", t->ref.node, "tasks",
                                                    t->tasks, "error", why));
    if (fo->pending == 0 && !fo->starting)
        fanout_answer(fo, NULL);
}

static void local_done(void *ctx, json_t *ans, const char *error)
{
    struct target *t = ctx;
    struct api__stats_fanout *fo = t->fo;
    char why[512];
    snprintf(why, sizeof(why), "node %s: %s", t->ref.node, error ? error : "no answer");
    t->sample = NULL;
    target_finish(t, ans, why);
    json_decref(ans);
    fanout_unref(fo);
}

static void remote_done(void *data, const struct common_httpc_response *res)
{
    struct target *t = data;
    struct api__stats_fanout *fo = t->fo;
    t->req = 0;
    char why[512] = "the request was cancelled";
    json_t *ans = NULL;
    if (fo->call && res->error != -ECANCELED)
        ans = api__node_answer(&t->ref, res, NODE_TIMEOUT_MS, why, sizeof(why));
    target_finish(t, ans, why);
    json_decref(ans);
    fanout_unref(fo);
}

static void target_start(struct api__stats_fanout *fo, struct target *t)
{
    if (t->ref.error) {
        target_finish(t, NULL, t->ref.error);
        return;
    }
    fo->refs++;
    if (!t->ref.addr) {
        t->sample = api__stats_sample_start(fo->srv, t->tasks, local_done, t);
        return;
    }
    json_t *q = json_pack("{s:O}", "tasks", t->tasks);
    _cleanup_free_ char *body = json_dumps(q, JSON_COMPACT);
    json_decref(q);
    char why[512];
    t->req = api__node_post(fo->srv, &t->ref, "/v1/node/stats", body, NODE_TIMEOUT_MS, remote_done,
                            t, why, sizeof(why));
    if (t->req < 0) {
        t->req = 0;
        target_finish(t, NULL, why);
        fanout_unref(fo);
    }
}

/* Adds a running task to the target of its node (one per node, a new one
 * every API__STATS_MAX_TASKS tasks). */
static void add_task(struct api__stats_fanout *fo, const struct rs_state *st, const json_t *task)
{
    const char *id = json_string_value(json_object_get(task, "id"));
    const char *node = json_string_value(json_object_get(task, "node"));
    struct target *t = NULL;
    for (size_t i = 0; i < fo->n_targets && !t; i++)
        if (strcmp(fo->targets[i].ref.node_id, node) == 0 &&
            json_array_size(fo->targets[i].tasks) < API__STATS_MAX_TASKS)
            t = &fo->targets[i];
    if (!t) {
        if (fo->n_targets == fo->cap_targets) {
            fo->cap_targets = fo->cap_targets ? 2 * fo->cap_targets : 4;
            fo->targets = xrealloc(fo->targets, fo->cap_targets * sizeof(*fo->targets));
        }
        t = &fo->targets[fo->n_targets++];
        *t = (struct target){.fo = fo, .tasks = json_array()};
        api__node_ref_init(fo->srv, st, node, &t->ref);
    }
    json_array_append_new(t->tasks, json_string(id));
    json_object_set_new(fo->info, id,
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
static int pick_tasks(struct api__stats_fanout *fo, const char *service, struct api_err *err)
{
    const struct rs_state *st = rs_store_state(fo->srv->store);
    if (fo->task) {
        const json_t *t = json_object_get(st->tasks, fo->task);
        if (!t)
            return api_err_set(err, API_NOT_FOUND, NULL, "no task \"%.64s\"", fo->task);
        if (!is_running(t))
            return api_err_set(err, API_CONFLICT, NULL, "task %s is not running (state: %s)",
                               fo->task, json_string_value(json_object_get(t, "state")) ?: "?");
        add_task(fo, st, t);
        return 0;
    }
    int known = rs_state_service(st, service) != NULL;
    const char *id;
    json_t *t;
    json_object_foreach(st->tasks, id, t)
    {
        const char *s = json_string_value(json_object_get(t, "service"));
        if (s && strcmp(s, service) == 0) {
            known = 1;
            if (is_running(t))
                add_task(fo, st, t);
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
    struct api__stats_fanout *fo = xcalloc(1, sizeof(*fo));
    *fo = (struct api__stats_fanout){.srv = srv,
                                     .call = call,
                                     .task = task,
                                     .info = json_object(),
                                     .rows = json_array(),
                                     .errors = json_array(),
                                     .missing = json_array(),
                                     .refs = 1};
    struct api_err err = {0};
    if (pick_tasks(fo, service, &err) != 0) {
        api__reply_err(call, &err);
        fanout_unref(fo);
        return;
    }
    fo->next = srv->stats_fanouts;
    if (srv->stats_fanouts)
        srv->stats_fanouts->prev = fo;
    srv->stats_fanouts = fo;
    fo->pending = fo->n_targets;
    fo->starting = 1;
    for (size_t i = 0; i < fo->n_targets && fo->call; i++)
        target_start(fo, &fo->targets[i]);
    fo->starting = 0;
    if (fo->call && fo->pending == 0)
        fanout_answer(fo, NULL);
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
    while (srv->stats_fanouts)
        fanout_answer(srv->stats_fanouts, "no answer before this manager stopped");
}
