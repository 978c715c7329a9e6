/* Task logs, POST /v1/logs (managers): finds the tasks of a service or the
 * one task asked for, asks the nodes that ran them in parallel (this node
 * directly) and merges their answers; a node that does not answer in time is
 * an error entry, never a hang and never a failure of the whole answer. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/logs_internal.h"
#include "api/fanout.h"
#include "common/httpc.h"
#include "common/units.h"
#include "common/util.h"

#define FOLLOW_WAIT_MS 5000       /* the default wait of a follow */
#define NODE_GRACE_MS  3000       /* a node answers within its wait and this */
#define GATHER_MS      250        /* once lines came, how long the other nodes get */
#define NODE_MIN_BYTES (64 << 10) /* the least a node is given of the bytes of an answer */
#define MAX_CURSORS    100000     /* entries of "cursors" */

/* A POST /v1/logs waiting for its nodes; each target's tasks are
 * ID -> the cursor given, or null. */
struct logs_fanout {
    struct api__fanout fo;
    uv_timer_t timer; /* the time the other nodes get once lines came */
    json_t *shared;   /* owned: what every node is asked */
    json_t *info;     /* owned: task id -> {"service", "slot", "node" (name)} */
    json_t *entries, *cursors, *errors;
    int more;
    int follow;
    int64_t wait_ms;
};

static struct logs_fanout *logs_of(struct api__fanout *fo)
{
    return container_of(fo, struct logs_fanout, fo);
}

static void logs_free(struct api__fanout *fo)
{
    struct logs_fanout *l = logs_of(fo);
    json_decref(l->shared);
    json_decref(l->info);
    json_decref(l->entries);
    json_decref(l->cursors);
    json_decref(l->errors);
    free(l);
}

static void timer_closed(uv_handle_t *h)
{
    api__fanout_unref(&container_of((uv_timer_t *)h, struct logs_fanout, timer)->fo);
}

static void add_error(struct logs_fanout *l, const struct api__fanout_target *t, json_t *ids,
                      const char *why)
{
    json_array_append_new(
        l->errors, json_pack("{s:s, s:o, s:s}", "node", t->ref.node, "tasks", ids, "error", why));
}

static json_t *target_ids(const struct api__fanout_target *t)
{
    json_t *ids = json_array();
    const char *id;
    json_t *c;
    json_object_foreach(t->tasks, id, c) json_array_append_new(ids, json_string(id));
    return ids;
}

struct sorted_entry {
    json_t *e;
    size_t seq;
};

static int by_ts(const void *a, const void *b)
{
    const struct sorted_entry *x = a, *y = b;
    int c = strcmp(json_string_value(json_object_get(x->e, "ts")),
                   json_string_value(json_object_get(y->e, "ts")));
    if (c)
        return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

json_t *api_log_entries_sorted(const json_t *entries)
{
    size_t n = json_array_size(entries);
    struct sorted_entry *v = xcalloc(n + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = (struct sorted_entry){json_array_get(entries, i), i};
    qsort(v, n, sizeof(*v), by_ts);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append(out, v[i].e);
    free(v);
    return out;
}

/* A target still out when the answer goes keeps its cursors; it is an
 * error with why, or when its node is down (else that would never show
 * while others have lines). */
static void logs_pending(struct api__fanout *fo, struct api__fanout_target *t, const char *why)
{
    struct logs_fanout *l = logs_of(fo);
    json_object_update(l->cursors, t->tasks);
    char down[512];
    if (!why && t->ref.down) {
        snprintf(down, sizeof(down), "node %s is down (no heartbeats) and did not answer yet",
                 t->ref.node);
        why = down;
    }
    if (why)
        add_error(l, t, target_ids(t), why);
}

static void logs_answer(struct api__fanout *fo, const char *why_pending)
{
    struct logs_fanout *l = logs_of(fo);
    (void)why_pending;
    json_t *ans = json_pack("{s:o, s:O, s:O, s:b}", "entries", api_log_entries_sorted(l->entries),
                            "cursors", l->cursors, "errors", l->errors, "more", l->more);
    api__reply_json(fo->call, 200, 0, ans);
    uv_timer_stop(&l->timer);
    uv_close((uv_handle_t *)&l->timer, timer_closed);
}

static void gather_done(uv_timer_t *timer)
{
    struct logs_fanout *l = container_of(timer, struct logs_fanout, timer);
    if (l->fo.call)
        api__fanout_answer(&l->fo, NULL);
}

/* Following, the other nodes get GATHER_MS once lines came. */
static void logs_progress(struct api__fanout *fo)
{
    struct logs_fanout *l = logs_of(fo);
    if (l->follow && json_array_size(l->entries) > 0 && !uv_is_active((uv_handle_t *)&l->timer))
        uv_timer_start(&l->timer, gather_done, GATHER_MS, 0);
}

static int in_list(const json_t *list, const char *s)
{
    for (size_t i = 0; i < json_array_size(list); i++)
        if (strcmp(json_string_value(json_array_get(list, i)) ?: "", s) == 0)
            return 1;
    return 0;
}

/* Takes one node's answer in: its entries with their service, slot and node,
 * its cursors, its errors. */
static void merge(struct logs_fanout *l, const struct api__fanout_target *t, const json_t *ans)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(ans, "entries"), i, e)
    {
        json_t *info = json_object_get(l->info, json_string_value(json_object_get(e, "task")));
        if (!info || !json_object_get(t->tasks, json_string_value(json_object_get(e, "task"))) ||
            !json_is_string(json_object_get(e, "ts")) ||
            !json_is_string(json_object_get(e, "line")))
            continue;
        json_t *copy = json_copy(e);
        json_object_update(copy, info);
        json_array_append_new(l->entries, copy);
    }
    json_t *cursors = json_object_get(ans, "cursors");
    json_t *missing = json_object_get(ans, "missing");
    json_t *errors = json_object_get(ans, "errors");
    const char *id;
    json_t *given;
    json_object_foreach(t->tasks, id, given)
    {
        json_t *c = json_object_get(cursors, id);
        if (json_is_string(c) && api__logs_cursor_ok(json_string_value(c)))
            json_object_set(l->cursors, id, c);
        else
            json_object_set_new(l->cursors, id,
                                in_list(missing, id) ? json_null() : json_incref(given));
        const char *why = json_string_value(json_object_get(errors, id));
        if (why)
            add_error(l, t, json_pack("[s]", id), why);
    }
    if (json_is_true(json_object_get(ans, "more")))
        l->more = 1;
}

/* A target's tasks keep the cursors they came with when it failed. */
static void logs_result(struct api__fanout *fo, struct api__fanout_target *t, const json_t *ans,
                        const char *why)
{
    struct logs_fanout *l = logs_of(fo);
    if (ans) {
        merge(l, t, ans);
    } else {
        json_object_update(l->cursors, t->tasks);
        add_error(l, t, target_ids(t), why);
    }
}

static json_t *node_query(const struct logs_fanout *l, const struct api__fanout_target *t)
{
    json_t *q = json_copy(l->shared);
    json_object_set_new(q, "tasks", json_copy(t->tasks));
    size_t share = API__LOGS_ANSWER_BYTES / (l->fo.n_targets ? l->fo.n_targets : 1);
    json_object_set_new(q, "max_bytes",
                        json_integer(share > NODE_MIN_BYTES ? (json_int_t)share : NODE_MIN_BYTES));
    return q;
}

static void *logs_local(struct api__fanout *fo, struct api__fanout_target *t)
{
    struct logs_fanout *l = logs_of(fo);
    return api__node_read_start(fo->srv, node_query(l, t), l->wait_ms, NULL, api__fanout_local_cb,
                                t);
}

static void logs_cancel_local(void *local)
{
    api__node_read_cancel(local);
}

static void logs_start(struct api__fanout *fo, struct api__fanout_target *t)
{
    struct logs_fanout *l = logs_of(fo);
    json_auto_t *q = node_query(l, t);
    json_object_set_new(q, "wait_ms", json_integer(l->wait_ms));
    _cleanup_free_ char *body = json_dumps(q, JSON_COMPACT);
    api__fanout_ask(t, "POST", "/v1/node/logs", body);
}

static const struct api__fanout_ops logs_ops = {
    .start = logs_start,
    .local = logs_local,
    .cancel_local = logs_cancel_local,
    .result = logs_result,
    .progress = logs_progress,
    .pending = logs_pending,
    .answer = logs_answer,
    .free = logs_free,
};

static void add_task(struct logs_fanout *l, const struct rs_state *st, const json_t *task,
                     const json_t *cursors)
{
    const char *id = json_string_value(json_object_get(task, "id"));
    const char *node = json_string_value(json_object_get(task, "node"));
    if (!id || !api_task_id_valid(id) || !node || !node[0])
        return;
    struct api__fanout_target *t =
        api__fanout_target_for(&l->fo, st, node, API__LOGS_NODE_MAX_TASKS, 1);
    json_t *c = json_object_get(cursors, id);
    json_object_set_new(t->tasks, id, json_is_string(c) ? json_incref(c) : json_null());
    json_object_set_new(l->info, id,
                        json_pack("{s:O?, s:O?, s:s}", "service", json_object_get(task, "service"),
                                  "slot", json_object_get(task, "slot"), "node", t->ref.node));
}

/* Checks a POST /v1/logs body: the fields other than the tasks' go into
 * shared (what every node is asked), the wait into fo. */
static int logs_body(struct logs_fanout *l, const json_t *body, json_t *shared, struct api_err *err)
{
    static const char *const fields[] = {"service", "task", "tail",    "since",
                                         "follow",  "wait", "cursors", NULL};
    json_t *service = json_object_get(body, "service"), *task = json_object_get(body, "task");
    json_t *follow = json_object_get(body, "follow"), *wait = json_object_get(body, "wait");
    json_t *cursors = json_object_get(body, "cursors");
    int64_t wait_ms = FOLLOW_WAIT_MS;
    if (api__body_only_fields(body, fields, err) != 0)
        return -EINVAL;
    if (!service == !task)
        return api_err_set(err, API_BAD_REQUEST, service ? "task" : "service",
                           "give either \"service\" or \"task\"");
    if (service && (!json_is_string(service) || !json_string_length(service)))
        return api_err_set(err, API_BAD_REQUEST, "service", "must be a service name");
    if (task && (!json_is_string(task) || !api_task_id_valid(json_string_value(task))))
        return api_err_set(err, API_BAD_REQUEST, "task", "must be a task id");
    if (follow && !json_is_boolean(follow))
        return api_err_set(err, API_BAD_REQUEST, "follow", "must be true or false");
    if (wait && !json_is_true(follow))
        return api_err_set(err, API_BAD_REQUEST, "wait", "only with \"follow\": true");
    if (wait &&
        (!json_is_string(wait) || common_parse_duration(json_string_value(wait), &wait_ms) != 0 ||
         wait_ms > API_LOGS_MAX_WAIT_MS))
        return api_err_set(err, API_BAD_REQUEST, "wait", "must be a duration of at most 30s");
    if (cursors && api__logs_check_cursors(cursors, "cursors", MAX_CURSORS, err) != 0)
        return -EINVAL;
    if (api__logs_check_tail_since(body, shared, err) != 0)
        return -EINVAL;
    l->follow = json_is_true(follow);
    l->wait_ms = l->follow ? wait_ms : 0;
    return 0;
}

/* Picks the tasks: the one asked for, or every task of the service that has
 * a node (history included). Returns 0, or -ENOENT with err set. */
static int pick_tasks(struct logs_fanout *l, const json_t *body, struct api_err *err)
{
    const struct rs_state *st = rs_store_state(l->fo.srv->store);
    json_t *cursors = json_object_get(body, "cursors");
    const char *task = json_string_value(json_object_get(body, "task"));
    if (task) {
        const json_t *t = json_object_get(st->tasks, task);
        if (!t)
            return api_err_set(err, API_NOT_FOUND, "task", "no task \"%s\"", task);
        add_task(l, st, t, cursors);
        return 0;
    }
    const char *name = json_string_value(json_object_get(body, "service"));
    int known = rs_state_service(st, name) != NULL;
    const char *id;
    json_t *t;
    json_object_foreach(st->tasks, id, t)
    {
        const char *s = json_string_value(json_object_get(t, "service"));
        if (s && strcmp(s, name) == 0) {
            known = 1;
            add_task(l, st, t, cursors);
        }
    }
    if (!known)
        return api_err_set(err, API_NOT_FOUND, "service", "no service \"%.200s\"", name);
    return 0;
}

void api__logs(struct api__call *call)
{
    struct api_server *srv = call->srv;
    if (srv->closing) {
        api__reply_error(call, API_UNAVAILABLE, NULL, "this node is shutting down");
        return;
    }
    struct api_err err = {0};
    json_auto_t *body = api__parse_body(call, &err);
    if (!body) {
        api__reply_err(call, &err);
        return;
    }
    struct logs_fanout *l = xcalloc(1, sizeof(*l));
    api__fanout_init(&l->fo, call, &logs_ops, &srv->fanouts, 0);
    l->shared = json_object();
    l->info = json_object();
    l->entries = json_array();
    l->cursors = json_object();
    l->errors = json_array();
    if (logs_body(l, body, l->shared, &err) != 0 || pick_tasks(l, body, &err) != 0) {
        api__reply_err(call, &err);
        api__fanout_drop(&l->fo);
        return;
    }
    l->fo.timeout_ms = (unsigned)(l->wait_ms + NODE_GRACE_MS);
    uv_timer_init(srv->loop, &l->timer);
    api__fanout_ref(&l->fo); /* the timer's close */
    api__fanout_begin(&l->fo);
}

void api__logs_fanouts_release(struct api_server *srv)
{
    api__fanouts_release(&srv->fanouts, "no answer before this manager stopped");
}
