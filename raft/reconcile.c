#include "raft/reconcile.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/units.h"
#include "common/util.h"
#include "raft/rollout.h"
#include "raft/store.h"
#include "scheduler/from_json.h"

#define PERIOD_MS 5000

void rs_reconciler_init(struct rs_reconciler *r, struct rs_store *store)
{
    memset(r, 0, sizeof(*r));
    r->store = store;
}

void rs_reconciler_reset(struct rs_reconciler *r)
{
    r->planned_at = 0;
}

static void plan_done(void *data, struct rs_op_result *res)
{
    struct rs_reconciler *r = data;
    r->in_flight--;
    if (res->err.code != API_OK)
        LOGW("reconcile: plan not committed: %s", res->err.msg);
}

void rs_reconcile_input(const struct rs_state *st, const json_t *overrides, json_t **services,
                        json_t **nodes, json_t **tasks)
{
    /* By name, so that each stored service is looked up once. */
    json_t *by_name = json_object();
    size_t k;
    json_t *svc;
    json_array_foreach(overrides, k, svc)
    {
        const char *name = json_string_value(json_object_get(svc, "name"));
        if (name)
            json_object_set(by_name, name, svc);
    }
    *services = json_array();
    for (size_t i = 0; i < st->n_services; i++) {
        json_t *over = json_object_get(by_name, st->services[i]->name);
        if (over) {
            json_array_append(*services, over);
            json_object_del(by_name, st->services[i]->name);
        } else {
            json_array_append_new(*services, rs_service_json(st->services[i]));
        }
    }
    /* The overrides of services that do not exist yet, in their order. */
    json_array_foreach(overrides, k, svc)
    {
        const char *name = json_string_value(json_object_get(svc, "name"));
        if (name && json_object_get(by_name, name)) {
            json_array_append(*services, svc);
            json_object_del(by_name, name);
        }
    }
    json_decref(by_name);
    *nodes = json_array();
    for (size_t i = 0; i < st->n_nodes; i++)
        json_array_append(*nodes, st->nodes[i]->obj);
    *tasks = json_array();
    const char *id;
    json_t *t;
    json_object_foreach((json_t *)st->tasks, id, t)
    {
        /* Tasks told to stop are gone as far as placement goes once they
         * ended; until a node reports that, they keep their reservation. */
        json_array_append(*tasks, t);
    }
}

/* Ended tasks kept per slot (or per node, global) as history, as Swarm's
 * task-history-limit. */
#define HISTORY 5

struct ended {
    const char *service;
    const char *node;
    json_int_t slot;
    json_int_t modify_index;
    const char *id;
};

static int by_place_newest(const void *a, const void *b)
{
    const struct ended *x = a, *y = b;
    int c = strcmp(x->service, y->service);
    if (c)
        return c;
    if (x->slot != y->slot)
        return x->slot < y->slot ? -1 : 1;
    if (x->slot == 0 && (c = strcmp(x->node, y->node)) != 0)
        return c;
    if (x->modify_index != y->modify_index)
        return x->modify_index > y->modify_index ? -1 : 1;
    return strcmp(x->id, y->id);
}

static int task_ended(const json_t *t)
{
    enum sch_task_state st;
    return sch_task_state_parse(json_string_value(json_object_get(t, "state")), &st) == 0 &&
           st > SCH_TASK_RUNNING;
}

/* The history to drop: ended tasks desired shutdown beyond HISTORY per slot,
 * and every ended one of a deleted service or a removed node. */
static json_t *history_to_drop(const struct rs_state *st)
{
    json_t *drop = json_array();
    struct ended *e = xcalloc(json_object_size(st->tasks) + 1, sizeof(*e));
    size_t n = 0;
    const char *id;
    json_t *t;
    json_object_foreach((json_t *)st->tasks, id, t)
    {
        const char *desired = json_string_value(json_object_get(t, "desired_state"));
        if (!desired || strcmp(desired, "shutdown") != 0 || !task_ended(t))
            continue;
        const char *service = json_string_value(json_object_get(t, "service"));
        const char *node = json_string_value(json_object_get(t, "node"));
        if (!rs_state_service(st, service) || !rs_state_node(st, node)) {
            json_array_append_new(drop, json_string(id));
            continue;
        }
        e[n++] = (struct ended){service, node, json_integer_value(json_object_get(t, "slot")),
                                json_integer_value(json_object_get(t, "modify_index")), id};
    }
    qsort(e, n, sizeof(*e), by_place_newest);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        bool same = i > 0 && strcmp(e[i].service, e[i - 1].service) == 0 &&
                    e[i].slot == e[i - 1].slot &&
                    (e[i].slot != 0 || strcmp(e[i].node, e[i - 1].node) == 0);
        run = same ? run + 1 : 0;
        if (run >= HISTORY)
            json_array_append_new(drop, json_string(e[i].id));
    }
    free(e);
    return drop;
}

#define MAX_BACKOFF_MS (60 * 1000)

static bool same_place(const json_t *a, const json_t *b)
{
    json_int_t slot = json_integer_value(json_object_get(a, "slot"));
    return json_equal(json_object_get(a, "service"), json_object_get(b, "service")) &&
           slot == json_integer_value(json_object_get(b, "slot")) &&
           (slot != 0 || json_equal(json_object_get(a, "node"), json_object_get(b, "node")));
}

static bool is_rejected(const json_t *t)
{
    const char *state = json_string_value(json_object_get(t, "state"));
    return state && strcmp(state, "rejected") == 0;
}

/* When the replacement of a rejected task is due (wall-clock ms): a node
 * refused it (it could not prepare it), so a new try waits the task's
 * restart delay, doubled for every other rejection its slot holds in its
 * history, up to a minute: the reconciler's side of the restart backoff, so
 * that a task no node can run never becomes a hot loop of replacements. */
static int64_t rejected_due(const struct rs_state *st, const json_t *t)
{
    int64_t delay = 5000;
    const char *d = json_string_value(
        json_object_get(json_object_get(json_object_get(t, "spec"), "restart"), "delay"));
    if (d)
        common_parse_duration(d, &delay);
    int64_t cap = delay > MAX_BACKOFF_MS ? delay : MAX_BACKOFF_MS;
    const char *id;
    json_t *other;
    json_object_foreach((json_t *)st->tasks, id, other)
    {
        if (other != t && is_rejected(other) && same_place(t, other) && delay < cap)
            delay = delay * 2 < cap ? delay * 2 : cap;
    }
    return json_integer_value(json_object_get(t, "updated_ms")) + delay;
}

/* The plan as a tasks.plan command. Replacements of rejected tasks that are
 * not due yet are left out (with the stop of the task they replace);
 * *wake_wall is set to the earliest due time, 0 when none waits. */
/* Adds the rollout's stops to the plan's (a task once). */
static void add_stops(json_t *stops, const json_t *more)
{
    size_t i, j;
    json_t *e, *have;
    json_array_foreach(more, i, e)
    {
        bool dup = false;
        json_array_foreach(stops, j, have) dup |=
            json_equal(json_object_get(have, "id"), json_object_get(e, "id"));
        if (!dup) {
            json_t *copy = json_copy(e);
            json_object_set_new(copy, "rollout", json_true());
            json_array_append_new(stops, copy);
        }
    }
}

static json_t *plan_op(const struct sch_plan *p, const struct rs_state *st, int64_t now_wall,
                       int64_t *wake_wall)
{
    json_t *create = json_array(), *stop = json_array(), *pending = json_object();
    json_t *deferred = json_object();
    *wake_wall = 0;
    for (size_t i = 0; i < p->n_creates; i++) {
        char id[26];
        memcpy(id, "t", 2);
        common_random_hex(id + 1, 12);
        const struct sch_create *c = &p->creates[i];
        const json_t *old = c->replaces ? json_object_get(st->tasks, c->replaces) : NULL;
        if (old && is_rejected(old)) {
            int64_t due = rejected_due(st, old);
            if (now_wall < due) {
                json_object_set_new(deferred, c->replaces, json_true());
                *wake_wall = *wake_wall && *wake_wall < due ? *wake_wall : due;
                continue;
            }
        }
        json_array_append_new(create, json_pack("{s:s, s:s, s:i, s:s, s:I}", "id", id, "service",
                                                c->service, "slot", (int)c->slot, "node", c->node,
                                                "version", (json_int_t)c->version));
    }
    for (size_t i = 0; i < p->n_stops; i++)
        if (!json_object_get(deferred, p->stops[i].task))
            json_array_append_new(stop, json_pack("{s:s, s:b}", "id", p->stops[i].task, "orphaned",
                                                  p->stops[i].orphaned));
    json_decref(deferred);
    for (size_t i = 0; i < p->n_unplaced; i++) {
        const struct sch_unplaced *u = &p->unplaced[i];
        json_t *list = json_object_get(pending, u->service);
        if (!list)
            json_object_set_new(pending, u->service, list = json_array());
        json_array_append_new(list, json_pack("{s:i, s:s, s:s}", "slot", (int)u->slot, "node",
                                              u->node ? u->node : "", "reason", u->reason));
    }
    return json_pack("{s:s, s:o, s:o, s:o, s:I}", "op", "tasks.plan", "create", create, "stop",
                     stop, "pending", pending, "at", (json_int_t)now_wall);
}

void rs_reconciler_tick(struct rs_reconciler *r, uint64_t now_ms)
{
    struct rs_state *st = rs_store_state(r->store);
    /* A round re-reads the whole state: pace rounds to 5 times their cost
     * (with 10,000 services a round takes ~200 ms), so that a stream of
     * writes cannot keep the leader planning. */
    uint64_t gap = now_ms - r->last_run_ms;
    bool woken = r->wake_ms && now_ms >= r->wake_ms;
    if (r->in_flight || !st->cluster || gap < 5 * r->last_cost_ms ||
        (st->index == r->planned_at && gap < PERIOD_MS && !woken))
        return;
    r->wake_ms = 0;
    r->planned_at = st->index;
    r->last_run_ms = now_ms;
    json_t *services, *nodes, *tasks;
    rs_reconcile_input(st, NULL, &services, &nodes, &tasks);
    int64_t now_wall = (int64_t)common_wall_ms(), wake_wall;
    struct rs_rollout_round rollout;
    rs_rollout_round(st, now_wall, tasks, &rollout);
    struct sch_json_input in = {0};
    struct sch_plan plan = {0};
    if (sch_input_from_json(services, nodes, tasks, &in) != 0) {
        LOGW("reconcile: %s", in.errmsg);
    } else if (sch_plan_compute(&in.in, &plan) != 0) {
        LOGW("reconcile: %s", plan.errmsg);
    } else {
        size_t fell_back = rs_rollout_fallback(&rollout, &plan, services, nodes, tasks);
        if (fell_back)
            LOGI("reconcile: %zu start-first replacement(s) blocked by their old task: "
                 "stopping the old one first",
                 fell_back);
        json_t *op = plan_op(&plan, st, now_wall, &wake_wall);
        if (rollout.wake_wall && (!wake_wall || rollout.wake_wall < wake_wall))
            wake_wall = rollout.wake_wall;
        if (wake_wall)
            r->wake_ms = now_ms + (uint64_t)(wake_wall > now_wall ? wake_wall - now_wall : 1);
        add_stops(json_object_get(op, "stop"), rollout.stops);
        json_t *drop = history_to_drop(st);
        int changed = plan.n_creates || json_array_size(json_object_get(op, "stop")) ||
                      json_array_size(drop) ||
                      !json_equal(json_object_get(op, "pending"), st->pending);
        json_object_set_new(op, "delete", drop);
        if (changed && rs_store_submit(r->store, op, plan_done, r) == 0)
            r->in_flight++;
        else if (changed == 0)
            json_decref(op);
        size_t i;
        json_t *e;
        json_array_foreach(rollout.ops, i, e)
        {
            if (rs_store_submit(r->store, json_incref(e), plan_done, r) == 0)
                r->in_flight++;
        }
    }
    rs_rollout_round_free(&rollout);
    sch_plan_free(&plan);
    sch_json_input_free(&in);
    json_decref(services);
    json_decref(nodes);
    json_decref(tasks);
    r->last_cost_ms = common_now_ms() - now_ms;
}
