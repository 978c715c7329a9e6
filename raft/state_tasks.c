/* The state's tasks: the scheduler's plans and the nodes' reports as the FSM
 * applies them. */
#include <stdbool.h>
#include <string.h>

#include "common/util.h"
#include "raft/events.h"
#include "raft/state_internal.h"
#include "scheduler/scheduler.h"

#define MAX_MESSAGE       1024
#define MAX_HEALTH_OUTPUT 1024

/* The task template of a service as of now (transferred), or NULL. One
 * tasks.plan creates many tasks of few services: the last one is cached. */
static json_t *template_of(struct rs_state *s, const char *service, const char **cached_name,
                           json_t **cached, uint64_t *version)
{
    const struct rs_service *svc = rs_state_service(s, service);
    if (!svc)
        return NULL;
    *version = svc->version;
    if (!*cached || strcmp(*cached_name, service) != 0) {
        json_decref(*cached);
        json_t *obj = rs_service_json(svc);
        *cached = json_incref(json_object_get(obj, "task"));
        *cached_name = svc->name;
        json_decref(obj);
    }
    return json_incref(*cached);
}

/* Every task carries the task template of the service version it runs
 * (shared by reference between the tasks of one plan), so that a node can
 * start, restart and stop it without reading the service, whose spec may
 * have moved on (rolling updates) or be gone. */
static void task_create(struct rs_state *s, const json_t *c, uint64_t index, json_int_t at,
                        const char **cached_name, json_t **cached)
{
    const char *id = json_string_value(json_object_get(c, "id"));
    const char *service = json_string_value(json_object_get(c, "service"));
    uint64_t version = 0;
    if (!id || !service || json_object_get(s->tasks, id))
        return;
    json_t *spec = template_of(s, service, cached_name, cached, &version);
    if (!spec)
        return; /* deleted since the plan was made */
    json_t *t = json_pack(
        "{s:s, s:s, s:O, s:O, s:I, s:s, s:s, s:s, s:n, s:i, s:n, s:I, s:I, s:I, s:I, s:o}", "id",
        id, "service", service, "slot", json_object_get(c, "slot"), "node",
        json_object_get(c, "node"), "version", (json_int_t)version, "desired_state", "running",
        "state", "assigned", "message", "", "exit_code", "restarts", 0, "health", "created_ms", at,
        "updated_ms", at, "create_index", (json_int_t)index, "modify_index", (json_int_t)index,
        "spec", spec);
    if (t)
        json_object_set_new(s->tasks, id, t);
}

static void set_state(json_t *t, const char *state, json_int_t at, uint64_t index)
{
    const char *was = json_string_value(json_object_get(t, "state"));
    if (!was || strcmp(was, state) != 0) {
        json_object_set_new(t, "state", json_string(state));
        json_object_set_new(t, "updated_ms", json_integer(at));
    }
    json_object_set_new(t, "modify_index", json_integer((json_int_t)index));
}

static void task_stop(struct rs_state *s, const json_t *c, uint64_t index, json_int_t at)
{
    const char *id = json_string_value(json_object_get(c, "id"));
    json_t *t = id ? json_object_get(s->tasks, id) : NULL;
    if (!t)
        return;
    const char *state = json_string_value(json_object_get(t, "state"));
    if (state && (strcmp(state, "new") == 0 || strcmp(state, "assigned") == 0)) {
        /* No node has started it: nothing to wait for. */
        json_object_del(s->tasks, id);
        return;
    }
    json_object_set_new(t, "desired_state", json_string("shutdown"));
    if (json_is_true(json_object_get(c, "rollout")))
        json_object_set_new(t, "replaced", json_true()); /* by a rolling update */
    if (json_is_true(json_object_get(c, "orphaned"))) {
        char was[32];
        common_strlcpy(was, state ? state : "", sizeof(was));
        set_state(t, "orphaned", at, index);
        json_object_set_new(t, "message", json_string("its node is down or gone"));
        rs__event_task(s, at, t, was, NULL);
    }
    json_object_set_new(t, "modify_index", json_integer((json_int_t)index));
}

void rs__op_tasks_plan(struct rs_state *s, const json_t *op, uint64_t index,
                       struct rs_op_result *res)
{
    json_t *create = json_object_get(op, "create");
    json_t *stop = json_object_get(op, "stop");
    json_t *drop = json_object_get(op, "delete");
    json_t *pending = json_object_get(op, "pending");
    json_int_t at = json_integer_value(json_object_get(op, "at"));
    if ((create && !json_is_array(create)) || (stop && !json_is_array(stop)) ||
        (drop && !json_is_array(drop)) || (pending && !json_is_object(pending))) {
        rs__refuse(res, API_BAD_REQUEST, "op", "%s", "malformed command: tasks.plan");
        return;
    }
    size_t i;
    json_t *e;
    const char *cached_name = NULL;
    json_t *cached = NULL;
    json_array_foreach(create, i, e) task_create(s, e, index, at, &cached_name, &cached);
    json_decref(cached);
    json_array_foreach(stop, i, e) task_stop(s, e, index, at);
    json_array_foreach(drop, i, e)
    {
        /* Only history: a task still desired running is never dropped. */
        json_t *t = json_is_string(e) ? json_object_get(s->tasks, json_string_value(e)) : NULL;
        const char *desired = json_string_value(json_object_get(t, "desired_state"));
        if (desired && strcmp(desired, "shutdown") == 0)
            json_object_del(s->tasks, json_string_value(e));
    }
    if (pending) {
        json_object_clear(s->pending);
        json_object_update(s->pending, pending);
    }
    s->tasks_index = index;
    rs__answer_json(res, json_pack("{s:I, s:I}", "created", (json_int_t)json_array_size(create),
                                   "stopped", (json_int_t)json_array_size(stop)));
}

/* The health a report carries, as stored: {"status", "failures",
 * "output"}, or null when the entry has none (no check, or a run whose
 * checks have not begun: a restart clears what the last run found). */
static json_t *health_of(const json_t *r)
{
    const json_t *h = json_object_get(r, "health");
    const char *status = json_string_value(json_object_get(h, "status"));
    if (!json_is_object(h) || !status ||
        (strcmp(status, "starting") != 0 && strcmp(status, "healthy") != 0 &&
         strcmp(status, "unhealthy") != 0))
        return json_null();
    json_int_t failures = json_integer_value(json_object_get(h, "failures"));
    const char *out = json_string_value(json_object_get(h, "output"));
    size_t len = out ? json_string_length(json_object_get(h, "output")) : 0;
    json_t *output = json_stringn(out ? out : "", len > MAX_HEALTH_OUTPUT ? 0 : len);
    if (!output)
        output = json_string("");
    return json_pack("{s:s, s:I, s:o}", "status", status, "failures",
                     failures > 0 ? failures : (json_int_t)0, "output", output);
}

static bool ended(enum sch_task_state st)
{
    return st > SCH_TASK_RUNNING;
}

/* Applies one entry of a node's report. A node reports only the states it
 * goes through (preparing .. rejected); an ended task stays ended, except
 * that an orphaned one may still learn how it really ended. */
static int task_report(struct rs_state *s, const char *node, const json_t *r, uint64_t index,
                       json_int_t at)
{
    const char *id = json_string_value(json_object_get(r, "id"));
    json_t *t = id ? json_object_get(s->tasks, id) : NULL;
    enum sch_task_state now, next;
    if (!t || strcmp(json_string_value(json_object_get(t, "node")), node) != 0 ||
        sch_task_state_parse(json_string_value(json_object_get(t, "state")), &now) != 0 ||
        sch_task_state_parse(json_string_value(json_object_get(r, "state")), &next) != 0 ||
        next < SCH_TASK_PREPARING || next == SCH_TASK_ORPHANED)
        return 0;
    if (ended(now) && (now != SCH_TASK_ORPHANED || !ended(next)))
        return 0;
    set_state(t, sch_task_state_name(next), at, index);
    const char *msg = json_string_value(json_object_get(r, "message"));
    json_object_set_new(t, "message",
                        json_stringn(msg ? msg : "", msg ? strnlen(msg, MAX_MESSAGE) : 0));
    json_t *code = json_object_get(r, "exit_code");
    json_object_set_new(t, "exit_code", json_is_integer(code) ? json_incref(code) : json_null());
    json_t *restarts = json_object_get(r, "restarts");
    if (json_is_integer(restarts))
        json_object_set(t, "restarts", restarts);
    json_t *health = health_of(r);
    rs__event_task(s, at, t, sch_task_state_name(now), health);
    json_object_set_new(t, "health", health);
    return 1;
}

void rs__op_tasks_report(struct rs_state *s, const json_t *op, uint64_t index,
                         struct rs_op_result *res)
{
    const char *node = json_string_value(json_object_get(op, "node"));
    json_t *tasks = json_object_get(op, "tasks");
    json_int_t at = json_integer_value(json_object_get(op, "at"));
    if (!node || !json_is_array(tasks)) {
        rs__refuse(res, API_BAD_REQUEST, "op", "%s", "malformed command: tasks.report");
        return;
    }
    size_t i, n = 0;
    json_t *e;
    json_array_foreach(tasks, i, e) n += (size_t)task_report(s, node, e, index, at);
    if (n)
        s->tasks_index = index;
    rs__answer_json(res, json_pack("{s:I}", "accepted", (json_int_t)n));
}
