/* GET /v1/tasks and /v1/tasks/{id}: the scheduler's decisions as the state
 * holds them, with the replicas it could not place shown as pending. */
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "common/util.h"
#include "scheduler/scheduler.h"

static int by_service_slot(const void *a, const void *b)
{
    const json_t *x = *(const json_t *const *)a, *y = *(const json_t *const *)b;
    int c = strcmp(json_string_value(json_object_get(x, "service")),
                   json_string_value(json_object_get(y, "service")));
    if (c)
        return c;
    json_int_t sx = json_integer_value(json_object_get(x, "slot"));
    json_int_t sy = json_integer_value(json_object_get(y, "slot"));
    if (sx != sy)
        return sx < sy ? -1 : 1;
    return strcmp(json_string_value(json_object_get(x, "id")),
                  json_string_value(json_object_get(y, "id")));
}

static int wanted(const json_t *t, const char *service, const char *node)
{
    return (!service[0] ||
            strcmp(json_string_value(json_object_get(t, "service")), service) == 0) &&
           (!node[0] || strcmp(json_string_value(json_object_get(t, "node")), node) == 0);
}

/* The pending replicas of the services asked for, as task-shaped entries. */
static void add_pending(const struct rs_state *st, const char *service, const char *node,
                        json_t *list)
{
    const char *name;
    json_t *entries;
    json_object_foreach((json_t *)st->pending, name, entries)
    {
        size_t i;
        json_t *e;
        json_array_foreach(entries, i, e)
        {
            json_t *t = json_pack("{s:s, s:s, s:O, s:O, s:s, s:s, s:O}", "id", "", "service", name,
                                  "slot", json_object_get(e, "slot"), "node",
                                  json_object_get(e, "node"), "desired_state", "running", "state",
                                  "pending", "message", json_object_get(e, "reason"));
            if (t && wanted(t, service, node))
                json_array_append(list, t);
            json_decref(t);
        }
    }
}

static uint64_t tasks_index(struct api_server *srv, const char *arg)
{
    (void)arg;
    return rs_store_state(srv->store)->tasks_index;
}

/* The tasks of a service and/or node in (service, slot, id) order; with
 * their task template when with_spec, else without (lists stay small). */
static json_t *tasks_sorted(const struct rs_state *st, const char *service, const char *node,
                            int with_spec)
{
    size_t k = 0;
    const json_t **sorted = xcalloc(json_object_size(st->tasks) + 1, sizeof(*sorted));
    const char *id;
    json_t *t;
    json_object_foreach(st->tasks, id, t) if (wanted(t, service, node)) sorted[k++] = t;
    qsort(sorted, k, sizeof(*sorted), by_service_slot);
    json_t *list = json_array();
    for (size_t i = 0; i < k; i++) {
        json_t *copy = json_copy((json_t *)sorted[i]);
        if (!with_spec)
            json_object_del(copy, "spec");
        json_array_append_new(list, copy);
    }
    free(sorted);
    return list;
}

/* Answers list (transferred) as the document at index. */
static void doc_of_list(struct api__doc *doc, json_t *list, uint64_t index)
{
    doc->status = 200;
    doc->owned = json_dumps(list, JSON_COMPACT);
    json_decref(list);
    doc->body = doc->owned;
    doc->len = strlen(doc->owned);
    doc->index = index;
}

static void tasks_render(struct api__call *call, struct api__doc *doc)
{
    char service[128] = "", node[128] = "";
    api_http_query(call->req, "service", service, sizeof(service));
    api_http_query(call->req, "node", node, sizeof(node));
    struct rs_state *st = rs_store_state(call->srv->store);
    const struct rs_node *n = node[0] ? rs_state_node(st, node) : NULL;
    if (n)
        common_strlcpy(node, n->id, sizeof(node));
    json_t *list = tasks_sorted(st, service, node, 0);
    add_pending(st, service, node, list);
    doc_of_list(doc, list, st->tasks_index);
}

void api__tasks_list(struct api__call *call)
{
    char value[128];
    if (api_http_query(call->req, "service", value, sizeof(value)) < 0 ||
        api_http_query(call->req, "node", value, sizeof(value)) < 0) {
        api__reply_error(call, API_BAD_REQUEST, "service", "filter too long");
        return;
    }
    api__serve_get(call, tasks_index, tasks_render);
}

void api__task_get(struct api__call *call)
{
    struct rs_state *st = rs_store_state(call->srv->store);
    json_t *t = json_object_get(st->tasks, call->arg);
    if (!t) {
        api__reply_error(call, API_NOT_FOUND, "id", "no task \"%s\"", call->arg);
        return;
    }
    api__reply_json(call, 200, st->tasks_index, json_incref(t));
}

/* A node's assignments: its tasks with their templates, as a blocking query
 * (DESIGN: workers watch GET /v1/nodes/ID/tasks?index=N&wait=30s). */
static void node_tasks_render(struct api__call *call, struct api__doc *doc)
{
    struct rs_state *st = rs_store_state(call->srv->store);
    doc_of_list(doc, tasks_sorted(st, "", call->arg, 1), st->tasks_index);
}

void api__node_tasks_get(struct api__call *call)
{
    if (api__node_auth(call))
        api__serve_get(call, tasks_index, node_tasks_render);
}

#define MAX_REPORT        10000
#define MAX_HEALTH_OUTPUT 1024

/* An entry's "health": absent, null, or {"status": "starting"|"healthy"|
 * "unhealthy", "failures": N >= 0, "output": at most 1 KiB}. */
static int report_health_ok(const json_t *h, struct api_err *err)
{
    if (!h || json_is_null(h))
        return 0;
    const char *status = json_string_value(json_object_get(h, "status"));
    const json_t *failures = json_object_get(h, "failures");
    const json_t *output = json_object_get(h, "output");
    if (!json_is_object(h) || !status ||
        (strcmp(status, "starting") != 0 && strcmp(status, "healthy") != 0 &&
         strcmp(status, "unhealthy") != 0))
        return api_err_set(err, API_BAD_REQUEST, "tasks.health.status",
                           "health must be an object whose status is one of starting, healthy, "
                           "unhealthy");
    if (!json_is_integer(failures) || json_integer_value(failures) < 0)
        return api_err_set(err, API_BAD_REQUEST, "tasks.health.failures",
                           "must be an integer >= 0");
    if (!json_is_string(output) || json_string_length(output) > MAX_HEALTH_OUTPUT)
        return api_err_set(err, API_BAD_REQUEST, "tasks.health.output",
                           "must be a string of at most %d bytes", MAX_HEALTH_OUTPUT);
    return 0;
}

/* Checks one entry of a report; the FSM ignores entries for other nodes'
 * tasks and transitions that go backwards. */
static int report_entry_ok(const json_t *e, struct api_err *err)
{
    enum sch_task_state st;
    json_t *code = json_object_get(e, "exit_code");
    json_t *msg = json_object_get(e, "message");
    json_t *restarts = json_object_get(e, "restarts");
    if (!json_is_object(e) || !json_is_string(json_object_get(e, "id")))
        return api_err_set(err, API_BAD_REQUEST, "tasks", "each entry needs an \"id\"");
    if (sch_task_state_parse(json_string_value(json_object_get(e, "state")), &st) != 0 ||
        st < SCH_TASK_PREPARING || st == SCH_TASK_ORPHANED)
        return api_err_set(err, API_BAD_REQUEST, "tasks.state",
                           "must be one of preparing, starting, running, complete, failed, "
                           "shutdown, rejected");
    if ((code && !json_is_integer(code) && !json_is_null(code)) || (msg && !json_is_string(msg)) ||
        (restarts && !json_is_integer(restarts)))
        return api_err_set(err, API_BAD_REQUEST, "tasks",
                           "exit_code and restarts are integers, message a string");
    return report_health_ok(json_object_get(e, "health"), err);
}

void api__node_tasks_report(struct api__call *call)
{
    const struct rs_node *n = api__node_auth(call);
    if (!n)
        return;
    struct api_err err = {0};
    json_t *body = api__parse_body(call, &err);
    json_t *tasks = json_object_get(body, "tasks");
    if (body && (!json_is_array(tasks) || json_array_size(tasks) > MAX_REPORT))
        api_err_set(&err, API_BAD_REQUEST, "tasks", "must be a list of at most %d entries",
                    MAX_REPORT);
    size_t i;
    json_t *e;
    json_array_foreach(tasks, i, e) if (err.code == API_OK && report_entry_ok(e, &err) != 0) break;
    if (!body || err.code != API_OK) {
        json_decref(body);
        api__reply_err(call, &err);
        return;
    }
    json_t *op = json_pack("{s:s, s:s, s:O, s:I}", "op", "tasks.report", "node", n->id, "tasks",
                           tasks, "at", (json_int_t)common_wall_ms());
    json_decref(body);
    api__submit(call, op, 200);
}
