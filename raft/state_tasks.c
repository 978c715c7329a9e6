/* The state's tasks: the scheduler's plans as the FSM applies them. */
#include <string.h>

#include "raft/state_internal.h"

static void task_create(struct rs_state *s, const json_t *c, uint64_t index)
{
    const char *id = json_string_value(json_object_get(c, "id"));
    if (!id || json_object_get(s->tasks, id))
        return;
    json_t *t = json_pack("{s:s, s:O, s:O, s:O, s:O, s:s, s:s, s:s, s:I, s:I}", "id", id, "service",
                          json_object_get(c, "service"), "slot", json_object_get(c, "slot"), "node",
                          json_object_get(c, "node"), "version", json_object_get(c, "version"),
                          "desired_state", "running", "state", "assigned", "message", "",
                          "create_index", (json_int_t)index, "modify_index", (json_int_t)index);
    if (t)
        json_object_set_new(s->tasks, id, t);
}

static void task_stop(struct rs_state *s, const json_t *c, uint64_t index)
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
    if (json_is_true(json_object_get(c, "orphaned")))
        json_object_set_new(t, "state", json_string("orphaned"));
    json_object_set_new(t, "modify_index", json_integer((json_int_t)index));
}

void rs__op_tasks_plan(struct rs_state *s, const json_t *op, uint64_t index,
                       struct rs_op_result *res)
{
    json_t *create = json_object_get(op, "create");
    json_t *stop = json_object_get(op, "stop");
    json_t *pending = json_object_get(op, "pending");
    if ((create && !json_is_array(create)) || (stop && !json_is_array(stop)) ||
        (pending && !json_is_object(pending))) {
        rs__refuse(res, API_BAD_REQUEST, "op", "%s", "malformed command: tasks.plan");
        return;
    }
    size_t i;
    json_t *e;
    json_array_foreach(create, i, e) task_create(s, e, index);
    json_array_foreach(stop, i, e) task_stop(s, e, index);
    if (pending) {
        json_object_clear(s->pending);
        json_object_update(s->pending, pending);
    }
    s->tasks_index = index;
    rs__answer_json(res, json_pack("{s:I, s:I}", "created", (json_int_t)json_array_size(create),
                                   "stopped", (json_int_t)json_array_size(stop)));
}
