/* POST /v1/plan: what writing service specs would change, worked out on a
 * copy and written nowhere: for each spec the field-by-field diff against
 * the stored service, the modify_index to compare-and-set against, and what
 * the scheduler would do with the new specs in place of the stored ones. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "api/spec.h"
#include "common/util.h"
#include "raft/reconcile.h"
#include "scheduler/from_json.h"

/* One spec of the request. */
struct planned {
    json_t *spec;                  /* owned: the canonical spec */
    const struct rs_service *have; /* borrowed from the state, NULL when new */
    json_t *diff;                  /* owned: api__plan_diff's answer */
    const char *action;            /* "create", "update" or "none" */
};

/* Parses the body: one spec object or a list of them (*is_list says
 * which). Returns the list (transferred) or NULL with err set. */
static json_t *parse_specs(struct api__call *call, int *is_list, struct api_err *err)
{
    const struct common_buf *b = &call->req->body;
    size_t lead = 0;
    while (lead < b->len && strchr(" \t\r\n", b->data[lead]))
        lead++;
    *is_list = lead < b->len && b->data[lead] == '[';
    json_t *root = api__parse_json(call, API_SPEC_MAX_DEPTH + *is_list, err);
    if (!root)
        return NULL;
    if (json_is_object(root))
        return json_pack("[o]", root);
    if (!json_is_array(root)) {
        json_decref(root);
        api_err_set(err, API_BAD_REQUEST, NULL, "the body must be a spec or a list of specs");
        return NULL;
    }
    if (json_array_size(root) == 0 || json_array_size(root) > API_PLAN_MAX_SPECS) {
        json_decref(root);
        api_err_set(err, API_BAD_REQUEST, NULL, "the list must hold 1 to %d specs",
                    API_PLAN_MAX_SPECS);
        return NULL;
    }
    size_t i;
    json_t *spec;
    json_array_foreach(root, i, spec)
    {
        if (!json_is_object(spec)) {
            char field[32];
            snprintf(field, sizeof(field), "[%zu]", i);
            json_decref(root);
            api_err_set(err, API_BAD_REQUEST, field, "must be a spec object");
            return NULL;
        }
    }
    return root;
}

/* Normalizes spec i of the request into p. In a list (is_list) a field at
 * fault is named from the body's root: "[1].task.env.X". Returns 0 or -1
 * with err set. */
static int normalize_one(const json_t *in, size_t i, int is_list, struct planned *p,
                         struct api_err *err)
{
    if (api_spec_normalize(in, &p->spec, err) == 0)
        return 0;
    if (is_list) {
        char field[sizeof(err->field)];
        snprintf(field, sizeof(field), "[%zu]%s%s", i, err->field[0] ? "." : "", err->field);
        memcpy(err->field, field, sizeof(field));
    }
    return -1;
}

/* The stored service in the canonical form of a spec: without version,
 * indexes and rollout bookkeeping (transferred). */
static json_t *stored_spec(const struct rs_service *svc)
{
    static const char *const server_set[] = {"version", "create_index", "modify_index",
                                             "rollout", "stable_spec",  "previous_spec"};
    json_t *obj = rs_service_json(svc);
    for (size_t i = 0; i < sizeof(server_set) / sizeof(server_set[0]); i++)
        json_object_del(obj, server_set[i]);
    return obj;
}

/* Whether a diff touches the task template (every task would be replaced). */
static int template_changed(const json_t *diff)
{
    size_t i;
    json_t *d;
    json_array_foreach(diff, i, d)
    {
        const char *path = json_string_value(json_object_get(d, "path"));
        if (path && strncmp(path, "task", 4) == 0 && strchr(".[", path[4]))
            return 1; /* strchr finds the NUL too: "task" itself */
    }
    return 0;
}

static const char *node_name(const struct rs_state *st, const char *id)
{
    const struct rs_node *n = id ? rs_state_node(st, id) : NULL;
    const char *name = n ? rs_node_str(n, "name") : "";
    return name[0] ? name : id ? id : "";
}

static int task_live(const json_t *t)
{
    enum sch_task_state state = SCH_TASK_NEW;
    const char *s = json_string_value(json_object_get(t, "state"));
    if (s && sch_task_state_parse(s, &state) != 0)
        return 0;
    return state <= SCH_TASK_RUNNING;
}

static int by_slot_node_id(const void *a, const void *b)
{
    const json_t *x = *(const json_t *const *)a, *y = *(const json_t *const *)b;
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

json_t *api__tasks_by_slot(const json_t *tasks)
{
    size_t n = json_array_size(tasks);
    json_t **v = xcalloc(n + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = json_array_get(tasks, i);
    qsort(v, n, sizeof(*v), by_slot_node_id);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append(out, v[i]);
    free(v);
    return out;
}

/* The live tasks of service name desired running that the plan does not
 * stop (stopped: id -> true), in slot order: what a rollout would replace. */
static json_t *to_replace(const struct rs_state *st, const char *name, const json_t *stopped)
{
    json_t *list = json_array();
    const char *id;
    json_t *t;
    json_object_foreach(st->tasks, id, t)
    {
        const char *service = json_string_value(json_object_get(t, "service"));
        const char *desired = json_string_value(json_object_get(t, "desired_state"));
        if (!service || strcmp(service, name) != 0 || (desired && strcmp(desired, "running")) ||
            !task_live(t) || json_object_get(stopped, id))
            continue;
        json_array_append_new(
            list, json_pack("{s:s, s:I, s:s}", "id", id, "slot",
                            json_integer_value(json_object_get(t, "slot")), "node",
                            node_name(st, json_string_value(json_object_get(t, "node")))));
    }
    json_t *sorted = api__tasks_by_slot(list);
    json_decref(list);
    return sorted;
}

/* What the plan does to service name, as the answer's "tasks". */
static json_t *tasks_of(const struct rs_state *st, const struct sch_plan *plan, const char *name,
                        int replace_all)
{
    json_t *create = json_array(), *stop = json_array(), *unplaced = json_array();
    json_t *stopped = json_object();
    for (size_t i = 0; i < plan->n_creates; i++) {
        const struct sch_create *c = &plan->creates[i];
        if (strcmp(c->service, name) != 0)
            continue;
        json_t *e =
            json_pack("{s:I, s:s}", "slot", (json_int_t)c->slot, "node", node_name(st, c->node));
        if (c->replaces)
            json_object_set_new(e, "replaces", json_string(c->replaces));
        json_array_append_new(create, e);
    }
    for (size_t i = 0; i < plan->n_stops; i++) {
        const struct sch_stop *s = &plan->stops[i];
        if (strcmp(s->service, name) != 0)
            continue;
        json_array_append_new(stop, json_pack("{s:s, s:I, s:s, s:s}", "id", s->task, "slot",
                                              (json_int_t)s->slot, "node", node_name(st, s->node),
                                              "reason", sch_stop_reason_name(s->reason)));
        json_object_set_new(stopped, s->task, json_true());
    }
    for (size_t i = 0; i < plan->n_unplaced; i++) {
        const struct sch_unplaced *u = &plan->unplaced[i];
        if (strcmp(u->service, name) != 0)
            continue;
        json_t *e = json_pack("{s:I, s:s}", "slot", (json_int_t)u->slot, "reason", u->reason);
        if (u->node)
            json_object_set_new(e, "node", json_string(node_name(st, u->node)));
        json_array_append_new(unplaced, e);
    }
    json_t *replace = replace_all ? to_replace(st, name, stopped) : json_array();
    json_decref(stopped);
    return json_pack("{s:o, s:o, s:o, s:o}", "create", create, "stop", stop, "replace", replace,
                     "unplaced", unplaced);
}

/* Runs the scheduler with the planned specs in place of the stored ones.
 * Returns 0 with *plan filled (and *keep holding the JSON its strings point
 * into: json_decref it after sch_plan_free), or -1 with err set. */
static int schedule(const struct rs_state *st, const struct planned *ps, size_t n,
                    struct sch_plan *plan, json_t **keep, struct api_err *err)
{
    json_t *overrides = json_array();
    for (size_t i = 0; i < n; i++) {
        /* The version a write would give it (a new one only for a new task
         * template): tasks that ended at an older version are replaced. */
        uint64_t version = !ps[i].have                                  ? 1
                           : ps[i].diff && template_changed(ps[i].diff) ? ps[i].have->version + 1
                                                                        : ps[i].have->version;
        json_t *svc = json_copy(ps[i].spec);
        json_object_set_new(svc, "version", json_integer((json_int_t)version));
        json_array_append_new(overrides, svc);
    }
    json_t *services, *nodes, *tasks;
    rs_reconcile_input(st, overrides, &services, &nodes, &tasks);
    *keep = json_pack("[o, o, o, o]", overrides, services, nodes, tasks);
    struct sch_json_input in;
    int rv = sch_input_from_json(services, nodes, tasks, &in);
    if (rv != 0) {
        api_err_set(err, API_INTERNAL, NULL, "plan: %s", in.errmsg);
        return -1;
    }
    rv = sch_plan_compute(&in.in, plan);
    sch_json_input_free(&in);
    if (rv != 0) {
        api_err_set(err, API_INTERNAL, NULL, "plan: %s", plan->errmsg);
        return -1;
    }
    return 0;
}

static json_t *answer_one(const struct rs_state *st, const struct sch_plan *plan, struct planned *p)
{
    const char *name = json_string_value(json_object_get(p->spec, "name"));
    return json_pack("{s:s, s:s, s:I, s:I, s:O, s:o}", "name", name, "action", p->action,
                     "modify_index", (json_int_t)(p->have ? p->have->modify_index : 0), "version",
                     (json_int_t)(p->have ? p->have->version : 0), "diff", p->diff, "tasks",
                     tasks_of(st, plan, name, p->have && template_changed(p->diff)));
}

void api__plan(struct api__call *call)
{
    struct rs_state *st = rs_store_state(call->srv->store);
    struct api_err err;
    int is_list;
    json_t *list = parse_specs(call, &is_list, &err);
    if (!list) {
        api__reply_err(call, &err);
        return;
    }
    size_t n = json_array_size(list);
    struct planned *ps = xcalloc(n, sizeof(*ps));
    json_t *names = json_object();
    int failed = 0;
    for (size_t i = 0; i < n && !failed; i++) {
        struct planned *p = &ps[i];
        if (normalize_one(json_array_get(list, i), i, is_list, p, &err) != 0) {
            failed = 1;
            break;
        }
        const char *name = json_string_value(json_object_get(p->spec, "name"));
        if (json_object_get(names, name)) {
            char field[32];
            snprintf(field, sizeof(field), "[%zu].name", i);
            api_err_set(&err, API_BAD_REQUEST, field, "service \"%s\" is in the list twice", name);
            failed = 1;
            break;
        }
        json_object_set_new(names, name, json_true());
        p->have = rs_state_service(st, name);
        json_t *old = p->have ? stored_spec(p->have) : NULL;
        p->diff = api__plan_diff(old, p->spec);
        json_decref(old);
        p->action = !p->have ? "create" : json_array_size(p->diff) ? "update" : "none";
    }
    json_decref(names);
    json_t *keep = NULL;
    struct sch_plan plan = {0};
    if (!failed && schedule(st, ps, n, &plan, &keep, &err) != 0)
        failed = 1;
    json_t *answer = NULL;
    if (!failed) {
        answer = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(answer, answer_one(st, &plan, &ps[i]));
    }
    sch_plan_free(&plan);
    json_decref(keep);
    for (size_t i = 0; i < n; i++) {
        json_decref(ps[i].spec);
        json_decref(ps[i].diff);
    }
    free(ps);
    json_decref(list);
    if (failed) {
        api__reply_err(call, &err);
        return;
    }
    if (!is_list) {
        json_t *one = json_incref(json_array_get(answer, 0));
        json_decref(answer);
        answer = one;
    }
    api__reply_json(call, 200, st->index, answer);
}
