/* Task logs, POST /v1/logs (managers): finds the tasks of a service or the
 * one task asked for, asks the nodes that ran them in parallel (this node
 * directly) and merges their answers; a node that does not answer in time is
 * an error entry, never a hang and never a failure of the whole answer. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/logs_internal.h"
#include "api/node_call.h"
#include "common/httpc.h"
#include "common/units.h"
#include "common/util.h"

#define FOLLOW_WAIT_MS 5000       /* the default wait of a follow */
#define NODE_GRACE_MS  3000       /* a node answers within its wait and this */
#define GATHER_MS      250        /* once lines came, how long the other nodes get */
#define NODE_MIN_BYTES (64 << 10) /* the least a node is given of the bytes of an answer */
#define MAX_CURSORS    100000     /* entries of "cursors" */

/* The tasks of one node asked in one request. */
struct target {
    struct api__fanout *fo;
    struct api__node_ref ref;    /* the node */
    json_t *tasks;               /* owned: ID -> the cursor given, or null */
    int64_t req;                 /* the request in flight, 0 when none */
    struct api__node_read *read; /* this node's read while parked */
    int done;
};

/* A POST /v1/logs waiting for its nodes. */
struct api__fanout {
    struct api_server *srv;
    struct api__call *call; /* NULL once answered */
    uv_timer_t timer;       /* the time the other nodes get once lines came */
    json_t *info;           /* owned: task id -> {"service", "slot", "node" (name)} */
    json_t *entries, *cursors, *errors;
    int more;
    int follow;
    int starting;
    int64_t wait_ms;
    struct target *targets; /* owned */
    size_t n_targets, cap_targets;
    size_t pending;
    unsigned refs; /* the timer's close and every callback still to come */
    struct api__fanout *next, *prev;
};

static void fanout_unref(struct api__fanout *fo)
{
    if (--fo->refs > 0)
        return;
    for (size_t i = 0; i < fo->n_targets; i++) {
        struct target *t = &fo->targets[i];
        api__node_ref_free(&t->ref);
        json_decref(t->tasks);
    }
    free(fo->targets);
    json_decref(fo->info);
    json_decref(fo->entries);
    json_decref(fo->cursors);
    json_decref(fo->errors);
    free(fo);
}

static void fanout_timer_closed(uv_handle_t *h)
{
    fanout_unref(container_of((uv_timer_t *)h, struct api__fanout, timer));
}

static void add_error(struct api__fanout *fo, const struct target *t, json_t *ids, const char *why)
{
    json_array_append_new(
        fo->errors, json_pack("{s:s, s:o, s:s}", "node", t->ref.node, "tasks", ids, "error", why));
}

static json_t *target_ids(const struct target *t)
{
    json_t *ids = json_array();
    const char *id;
    json_t *c;
    json_object_foreach(t->tasks, id, c) json_array_append_new(ids, json_string(id));
    return ids;
}

/* The target's tasks keep the cursors they came with. */
static void keep_cursors(struct api__fanout *fo, const struct target *t)
{
    json_object_update(fo->cursors, t->tasks);
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

/* Answers with what came; the targets still out keep their cursors, and
 * with why_pending set they are errors too. Their requests are cancelled. */
static void fanout_answer(struct api__fanout *fo, const char *why_pending)
{
    struct api_server *srv = fo->srv;
    unsigned cancelled = 0;
    for (size_t i = 0; i < fo->n_targets; i++) {
        struct target *t = &fo->targets[i];
        if (t->done)
            continue;
        keep_cursors(fo, t);
        char why[512];
        if (why_pending)
            snprintf(why, sizeof(why), "node %s: %s", t->ref.node, why_pending);
        else if (t->ref.down) /* else it would never show while others have lines */
            snprintf(why, sizeof(why), "node %s is down (no heartbeats) and did not answer yet",
                     t->ref.node);
        if (why_pending || t->ref.down)
            add_error(fo, t, target_ids(t), why);
        if (t->read) {
            api__node_read_cancel(t->read);
            t->read = NULL;
            cancelled++;
        }
        if (t->req > 0)
            common_httpc_cancel(srv->httpc, t->req); /* its callback comes later */
    }
    json_t *ans = json_pack("{s:o, s:O, s:O, s:b}", "entries", api_log_entries_sorted(fo->entries),
                            "cursors", fo->cursors, "errors", fo->errors, "more", fo->more);
    api__reply_json(fo->call, 200, 0, ans);
    fo->call = NULL;
    if (fo->next)
        fo->next->prev = fo->prev;
    if (fo->prev)
        fo->prev->next = fo->next;
    else
        srv->fanouts = fo->next;
    uv_timer_stop(&fo->timer);
    uv_close((uv_handle_t *)&fo->timer, fanout_timer_closed);
    while (cancelled-- > 0)
        fanout_unref(fo); /* the timer's close is still to come */
}

static void gather_done(uv_timer_t *timer)
{
    struct api__fanout *fo = container_of(timer, struct api__fanout, timer);
    if (fo->call)
        fanout_answer(fo, NULL);
}

/* Answers when every node did, or soon after lines came (following). */
static void fanout_check(struct api__fanout *fo)
{
    if (!fo->call || fo->starting)
        return;
    if (fo->pending == 0)
        fanout_answer(fo, NULL);
    else if (fo->follow && json_array_size(fo->entries) > 0 &&
             !uv_is_active((uv_handle_t *)&fo->timer))
        uv_timer_start(&fo->timer, gather_done, GATHER_MS, 0);
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
static void merge(struct api__fanout *fo, struct target *t, const json_t *ans)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(ans, "entries"), i, e)
    {
        json_t *info = json_object_get(fo->info, json_string_value(json_object_get(e, "task")));
        if (!info || !json_object_get(t->tasks, json_string_value(json_object_get(e, "task"))) ||
            !json_is_string(json_object_get(e, "ts")) ||
            !json_is_string(json_object_get(e, "line")))
            continue;
        json_t *copy = json_copy(e);
        json_object_update(copy, info);
        json_array_append_new(fo->entries, copy);
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
            json_object_set(fo->cursors, id, c);
        else
            json_object_set_new(fo->cursors, id,
                                in_list(missing, id) ? json_null() : json_incref(given));
        const char *why = json_string_value(json_object_get(errors, id));
        if (why)
            add_error(fo, t, json_pack("[s]", id), why);
    }
    if (json_is_true(json_object_get(ans, "more")))
        fo->more = 1;
}

static void target_finish(struct target *t, const json_t *ans, const char *why)
{
    struct api__fanout *fo = t->fo;
    if (t->done)
        return;
    t->done = 1;
    fo->pending--;
    if (!fo->call)
        return;
    if (ans) {
        merge(fo, t, ans);
    } else {
        keep_cursors(fo, t);
        add_error(fo, t, target_ids(t), why);
    }
    fanout_check(fo);
}

static void local_done(void *ctx, json_t *ans, const char *error)
{
    struct target *t = ctx;
    struct api__fanout *fo = t->fo;
    char why[512];
    snprintf(why, sizeof(why), "node %s: %s", t->ref.node, error);
    t->read = NULL;
    target_finish(t, ans, why);
    json_decref(ans);
    fanout_unref(fo);
}

static void remote_done(void *data, const struct common_httpc_response *res)
{
    struct target *t = data;
    struct api__fanout *fo = t->fo;
    t->req = 0;
    if (!fo->call || res->error == -ECANCELED) {
        target_finish(t, NULL, "the request was cancelled");
        fanout_unref(fo);
        return;
    }
    char why[512] = "";
    json_t *ans = api__node_answer(&t->ref, res, fo->wait_ms + NODE_GRACE_MS, why, sizeof(why));
    target_finish(t, ans, why);
    json_decref(ans);
    fanout_unref(fo);
}

static json_t *node_query(const struct api__fanout *fo, const struct target *t,
                          const json_t *shared)
{
    json_t *q = json_copy((json_t *)shared);
    json_object_set_new(q, "tasks", json_copy(t->tasks));
    size_t share = API__LOGS_ANSWER_BYTES / (fo->n_targets ? fo->n_targets : 1);
    json_object_set_new(q, "max_bytes",
                        json_integer(share > NODE_MIN_BYTES ? (json_int_t)share : NODE_MIN_BYTES));
    return q;
}

static void target_start(struct api__fanout *fo, struct target *t, const json_t *shared)
{
    struct api_server *srv = fo->srv;
    if (t->ref.error) {
        target_finish(t, NULL, t->ref.error);
        return;
    }
    json_t *q = node_query(fo, t, shared);
    fo->refs++;
    if (!t->ref.addr) {
        t->read = api__node_read_start(srv, q, fo->wait_ms, NULL, local_done, t);
        return;
    }
    json_object_set_new(q, "wait_ms", json_integer(fo->wait_ms));
    _cleanup_free_ char *body = json_dumps(q, JSON_COMPACT);
    json_decref(q);
    char why[512];
    t->req =
        api__node_post(srv, &t->ref, "/v1/node/logs", body, (unsigned)(fo->wait_ms + NODE_GRACE_MS),
                       remote_done, t, why, sizeof(why));
    if (t->req < 0) {
        t->req = 0;
        target_finish(t, NULL, why);
        fanout_unref(fo);
    }
}

/* The target for a task on node_id: one per node, a new one every
 * API__LOGS_NODE_MAX_TASKS tasks. */
static struct target *target_for(struct api__fanout *fo, const struct rs_state *st,
                                 const char *node_id)
{
    for (size_t i = 0; i < fo->n_targets; i++) {
        struct target *t = &fo->targets[i];
        if (strcmp(t->ref.node_id, node_id) == 0 &&
            json_object_size(t->tasks) < API__LOGS_NODE_MAX_TASKS)
            return t;
    }
    if (fo->n_targets == fo->cap_targets) {
        fo->cap_targets = fo->cap_targets ? 2 * fo->cap_targets : 4;
        fo->targets = xrealloc(fo->targets, fo->cap_targets * sizeof(*fo->targets));
    }
    struct target *t = &fo->targets[fo->n_targets++];
    *t = (struct target){.fo = fo, .tasks = json_object()};
    api__node_ref_init(fo->srv, st, node_id, &t->ref);
    return t;
}

static void add_task(struct api__fanout *fo, const struct rs_state *st, const json_t *task,
                     const json_t *cursors)
{
    const char *id = json_string_value(json_object_get(task, "id"));
    const char *node = json_string_value(json_object_get(task, "node"));
    if (!id || !api_task_id_valid(id) || !node || !node[0])
        return;
    struct target *t = target_for(fo, st, node);
    json_t *c = json_object_get(cursors, id);
    json_object_set_new(t->tasks, id, json_is_string(c) ? json_incref(c) : json_null());
    json_object_set_new(fo->info, id,
                        json_pack("{s:O?, s:O?, s:s}", "service", json_object_get(task, "service"),
                                  "slot", json_object_get(task, "slot"), "node", t->ref.node));
}

/* Checks a POST /v1/logs body: the fields other than the tasks' go into
 * shared (what every node is asked), the wait into fo. */
static int logs_body(struct api__fanout *fo, const json_t *body, json_t *shared,
                     struct api_err *err)
{
    static const char *const fields[] = {"service", "task", "tail",    "since",
                                         "follow",  "wait", "cursors", NULL};
    json_t *service = json_object_get(body, "service"), *task = json_object_get(body, "task");
    json_t *follow = json_object_get(body, "follow"), *wait = json_object_get(body, "wait");
    json_t *cursors = json_object_get(body, "cursors");
    int64_t wait_ms = FOLLOW_WAIT_MS;
    if (api__logs_only_fields(body, fields, err) != 0)
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
    fo->follow = json_is_true(follow);
    fo->wait_ms = fo->follow ? wait_ms : 0;
    return 0;
}

/* Picks the tasks: the one asked for, or every task of the service that has
 * a node (history included). Returns 0, or -ENOENT with err set. */
static int pick_tasks(struct api__fanout *fo, const json_t *body, struct api_err *err)
{
    const struct rs_state *st = rs_store_state(fo->srv->store);
    json_t *cursors = json_object_get(body, "cursors");
    const char *task = json_string_value(json_object_get(body, "task"));
    if (task) {
        const json_t *t = json_object_get(st->tasks, task);
        if (!t)
            return api_err_set(err, API_NOT_FOUND, "task", "no task \"%s\"", task);
        add_task(fo, st, t, cursors);
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
            add_task(fo, st, t, cursors);
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
    struct api__fanout *fo = xcalloc(1, sizeof(*fo));
    fo->srv = srv;
    fo->call = call;
    fo->info = json_object();
    fo->entries = json_array();
    fo->cursors = json_object();
    fo->errors = json_array();
    fo->refs = 1; /* the timer's close, from here on */
    json_auto_t *shared = json_object();
    if (logs_body(fo, body, shared, &err) != 0 || pick_tasks(fo, body, &err) != 0) {
        api__reply_err(call, &err);
        fanout_unref(fo);
        return;
    }
    uv_timer_init(srv->loop, &fo->timer);
    fo->next = srv->fanouts;
    if (srv->fanouts)
        srv->fanouts->prev = fo;
    srv->fanouts = fo;
    fo->pending = fo->n_targets;
    fo->starting = 1;
    for (size_t i = 0; i < fo->n_targets && fo->call; i++)
        target_start(fo, &fo->targets[i], shared);
    fo->starting = 0;
    fanout_check(fo);
}

void api__fanouts_release(struct api_server *srv)
{
    while (srv->fanouts)
        fanout_answer(srv->fanouts, "no answer before this manager stopped");
}
