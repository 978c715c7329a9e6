#include "raft/rollout.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/units.h"
#include "common/util.h"
#include "raft/state.h"
#include "scheduler/from_json.h"
#include "scheduler/scheduler.h"

/* A rollout's settings (the service's `update`, or `rollback` when rolling
 * back). */
struct cfg {
    int64_t parallelism; /* 0: all at once */
    int64_t delay_ms, monitor_ms, deadline_ms;
    bool start_first;
    const char *failure_action;
    double max_failure_ratio;
};

static int64_t ms_of(const json_t *obj, const char *key, int64_t def)
{
    int64_t ms;
    const char *s = json_string_value(json_object_get(obj, key));
    return s && common_parse_duration(s, &ms) == 0 ? ms : def;
}

static void read_cfg(const json_t *c, struct cfg *cfg)
{
    const char *order = json_string_value(json_object_get(c, "order"));
    json_t *par = json_object_get(c, "parallelism");
    cfg->parallelism = json_is_integer(par) ? json_integer_value(par) : 1;
    cfg->delay_ms = ms_of(c, "delay", 0);
    cfg->monitor_ms = ms_of(c, "monitor", 5000);
    cfg->deadline_ms = ms_of(c, "progress_deadline", 600000);
    cfg->start_first = order && strcmp(order, "start-first") == 0;
    cfg->failure_action = json_string_value(json_object_get(c, "failure_action"));
    if (!cfg->failure_action)
        cfg->failure_action = "pause";
    cfg->max_failure_ratio = json_number_value(json_object_get(c, "max_failure_ratio"));
}

/* Where a task belongs: its slot, or its node for a global service. */
static void place_of(const json_t *t, char *out, size_t size)
{
    json_int_t slot = json_integer_value(json_object_get(t, "slot"));
    if (slot > 0)
        snprintf(out, size, "s%lld", (long long)slot);
    else
        snprintf(out, size, "n%s", json_string_value(json_object_get(t, "node")) ?: "");
}

static enum sch_task_state state_of(const json_t *t)
{
    enum sch_task_state st = SCH_TASK_NEW;
    sch_task_state_parse(json_string_value(json_object_get(t, "state")), &st);
    return st;
}

static const char *health_of(const json_t *t)
{
    return json_string_value(json_object_get(json_object_get(t, "health"), "status"));
}

static bool desired_running(const json_t *t)
{
    const char *d = json_string_value(json_object_get(t, "desired_state"));
    return d && strcmp(d, "running") == 0;
}

/* One service's tasks as the rollout sees them. */
struct view {
    json_t *new_places; /* place -> "done" | "busy" | "failed" */
    json_t *old_live;   /* [task] desired running at an older version, not ended */
    json_t *retry;      /* [task id] new tasks that failed before a resume */
    size_t done, busy, failed, stopping, total;
    const char *last_failure;
};

static void classify_new(struct view *v, const json_t *t, const char *place, int64_t now,
                         const struct cfg *cfg, json_int_t counted_from)
{
    enum sch_task_state st = state_of(t);
    const char *health = health_of(t);
    json_int_t created = json_integer_value(json_object_get(t, "created_ms"));
    json_int_t since = json_integer_value(json_object_get(t, "updated_ms"));
    bool bad = st > SCH_TASK_RUNNING || (health && strcmp(health, "unhealthy") == 0) ||
               json_integer_value(json_object_get(t, "restarts")) > 0;
    if (bad && created < counted_from) {
        json_array_append_new(v->retry, json_string(json_string_value(json_object_get(t, "id"))));
        json_object_set_new(v->new_places, place, json_string("busy"));
        v->busy++;
    } else if (bad) {
        v->failed++;
        v->last_failure = json_string_value(json_object_get(t, "message"));
        json_object_set_new(v->new_places, place, json_string("failed"));
    } else if (st == SCH_TASK_RUNNING && (!health || strcmp(health, "healthy") == 0) &&
               now - since >= cfg->monitor_ms) {
        v->done++;
        json_object_set_new(v->new_places, place, json_string("done"));
    } else {
        v->busy++;
        json_object_set_new(v->new_places, place, json_string("busy"));
    }
}

static void look(const struct rs_state *st, const struct rs_service *svc, int64_t now,
                 const struct cfg *cfg, json_int_t counted_from, struct view *v)
{
    char place[96];
    const char *id;
    json_t *t;
    json_object_foreach((json_t *)st->tasks, id, t)
    {
        if (strcmp(json_string_value(json_object_get(t, "service")), svc->name) != 0)
            continue;
        bool is_new = (uint64_t)json_integer_value(json_object_get(t, "version")) >= svc->version;
        enum sch_task_state state = state_of(t);
        place_of(t, place, sizeof(place));
        if (!desired_running(t)) {
            if (!is_new && state <= SCH_TASK_RUNNING)
                v->stopping++;
            continue;
        }
        if (is_new)
            classify_new(v, t, place, now, cfg, counted_from);
        else if (state <= SCH_TASK_RUNNING)
            json_array_append(v->old_live, t);
    }
    v->total = svc->global ? json_object_size(v->new_places) + json_array_size(v->old_live)
                           : (size_t)svc->replicas;
}

static int by_place(const void *a, const void *b)
{
    const json_t *x = *(const json_t *const *)a, *y = *(const json_t *const *)b;
    json_int_t sx = json_integer_value(json_object_get(x, "slot"));
    json_int_t sy = json_integer_value(json_object_get(y, "slot"));
    if (sx != sy)
        return sx < sy ? -1 : 1;
    return strcmp(json_string_value(json_object_get(x, "node")) ?: "",
                  json_string_value(json_object_get(y, "node")) ?: "");
}

/* Replaces the scheduler's view of task id by a copy with desired. */
static void mark(json_t *tasks, const char *id, const char *desired)
{
    size_t i;
    json_t *t;
    json_array_foreach(tasks, i, t)
    {
        if (strcmp(json_string_value(json_object_get(t, "id")), id) == 0) {
            json_t *copy = json_copy(t);
            json_object_set_new(copy, "desired_state", json_string(desired));
            json_array_set_new(tasks, i, copy);
            return;
        }
    }
}

static void add_stop(struct rs_rollout_round *out, const char *id)
{
    json_array_append_new(out->stops, json_pack("{s:s, s:b}", "id", id, "orphaned", 0));
}

static json_t *update_op(const struct rs_service *svc, int64_t now, const char *state)
{
    json_t *op = json_pack("{s:s, s:s, s:I, s:I}", "op", "rollout.update", "name", svc->name,
                           "to_version", (json_int_t)svc->version, "at", (json_int_t)now);
    if (state)
        json_object_set_new(op, "state", json_string(state));
    return op;
}

/* Past the failure ratio or the deadline: the failure action. */
static void fail(const struct rs_service *svc, const struct cfg *cfg, const struct view *v,
                 bool rolling_back, int64_t now, const char *why, struct rs_rollout_round *out)
{
    if (strcmp(cfg->failure_action, "rollback") == 0 && !rolling_back) {
        char msg[600];
        snprintf(msg, sizeof(msg), "rolled back automatically: %s", why);
        json_array_append_new(out->ops, json_pack("{s:s, s:s, s:I, s:b, s:s}", "op",
                                                  "service.rollback", "name", svc->name, "at",
                                                  (json_int_t)now, "auto", 1, "message", msg));
        return;
    }
    json_t *op = update_op(svc, now, "paused");
    json_object_set_new(op, "message", json_string(why));
    json_object_set_new(op, "updated", json_integer((json_int_t)v->done));
    json_object_set_new(op, "failures", json_integer((json_int_t)v->failed));
    json_object_set_new(op, "total", json_integer((json_int_t)v->total));
    json_array_append_new(out->ops, op);
}

static void hide_started_first(struct rs_rollout_round *out, const char *service, const char *place,
                               const char *id)
{
    json_t *places = json_object_get(out->started_first, service);
    if (!places)
        json_object_set_new(out->started_first, service, places = json_object());
    json_object_set_new(places, place, json_string(id));
}

/* Picks the next old tasks to replace, lowest slot first, and acts on the
 * old tasks whose place already has a new task. */
static void batch(const struct rs_service *svc, const struct cfg *cfg, struct view *v,
                  json_t *tasks, struct rs_rollout_round *out, bool may_start)
{
    size_t n = json_array_size(v->old_live);
    const json_t **old = xcalloc(n + 1, sizeof(*old));
    for (size_t i = 0; i < n; i++)
        old[i] = json_array_get(v->old_live, i);
    qsort(old, n, sizeof(*old), by_place);
    /* Out of service: start-first, the new tasks not yet done (their old
     * ones still serve) and the places with neither an old task nor a new
     * one (a place that fell back to stop-first: see rs_rollout_fallback);
     * stop-first, every place served neither by an old task nor by a new one
     * that is done (or failed for good), which counts the old ones stopping
     * and the new ones not created yet. */
    size_t serving = n + v->done + v->failed;
    size_t empty = v->total > serving + v->busy ? v->total - serving - v->busy : 0;
    size_t out_of_service = cfg->start_first     ? v->busy + empty
                            : v->total > serving ? v->total - serving
                                                 : 0;
    size_t budget = cfg->parallelism == 0 ? n
                    : (size_t)cfg->parallelism > out_of_service
                        ? (size_t)cfg->parallelism - out_of_service
                        : 0;
    char place[96];
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_object_get(old[i], "id"));
        place_of(old[i], place, sizeof(place));
        const char *there = json_string_value(json_object_get(v->new_places, place));
        if (there && strcmp(there, "busy") != 0) {
            add_stop(out, id); /* its replacement runs (or failed for good) */
        } else if (there) {
            mark(tasks, id, "shutdown"); /* start-first: replaced, not yet stopped */
        } else if (may_start && budget > 0) {
            budget--;
            if (cfg->start_first) {
                mark(tasks, id, "shutdown");
                hide_started_first(out, svc->name, place, id);
            } else
                add_stop(out, id);
        }
    }
    free(old);
}

static void service_round(const struct rs_state *st, const struct rs_service *svc, int64_t now,
                          json_t *tasks, struct rs_rollout_round *out)
{
    json_t *r = svc->rollout;
    const char *state = json_string_value(json_object_get(r, "state"));
    bool rolling_back = state && strcmp(state, "rolling_back") == 0;
    if (!state || (!rolling_back && strcmp(state, "updating") != 0))
        return;
    json_t *spec = rs_service_json(svc);
    struct cfg cfg;
    read_cfg(json_object_get(spec, rolling_back ? "rollback" : "update"), &cfg);
    struct view v = {.new_places = json_object(), .old_live = json_array(), .retry = json_array()};
    look(st, svc, now, &cfg, json_integer_value(json_object_get(r, "counted_from")), &v);
    size_t i;
    json_t *e;
    json_array_foreach(v.retry, i, e) add_stop(out, json_string_value(e));
    /* Old tasks still stopping for a stop-first batch keep their place. */
    const char *id;
    json_t *t;
    json_object_foreach((json_t *)st->tasks, id, t)
    {
        if (!desired_running(t) && state_of(t) <= SCH_TASK_RUNNING && !cfg.start_first &&
            strcmp(json_string_value(json_object_get(t, "service")), svc->name) == 0 &&
            (uint64_t)json_integer_value(json_object_get(t, "version")) < svc->version &&
            json_is_true(json_object_get(t, "replaced")))
            mark(tasks, id, "running");
    }
    int64_t progress = json_integer_value(json_object_get(r, "progress_ms"));
    char why[512];
    bool failing = v.failed > 0 && (double)v.failed > cfg.max_failure_ratio * (double)v.total;
    if (failing && strcmp(cfg.failure_action, "continue") != 0) {
        snprintf(why, sizeof(why), "%zu of %zu new tasks failed (last: %s)", v.failed, v.total,
                 v.last_failure ? v.last_failure : "?");
        fail(svc, &cfg, &v, rolling_back, now, why, out);
    } else if (cfg.deadline_ms > 0 && now - progress > cfg.deadline_ms) {
        char d[32];
        common_format_duration(cfg.deadline_ms, d, sizeof(d));
        snprintf(why, sizeof(why), "no progress for %s (%zu of %zu updated)", d, v.done, v.total);
        fail(svc, &cfg, &v, rolling_back, now, why, out);
    } else if (json_array_size(v.old_live) == 0 && v.stopping == 0 && v.busy == 0 &&
               v.done + v.failed >= v.total) {
        /* Every place has a new task that is done (or failed, accepted by
         * `continue`): not merely no old one left, as in the round where the
         * last old tasks ended before their replacements exist. */
        json_t *op = update_op(svc, now, rolling_back ? "rolled_back" : "completed");
        json_object_set_new(op, "updated", json_integer((json_int_t)v.done));
        json_object_set_new(op, "total", json_integer((json_int_t)v.total));
        json_array_append_new(out->ops, op);
    } else {
        bool waiting =
            cfg.delay_ms > 0 && v.busy == 0 && v.done > 0 && now - progress < cfg.delay_ms;
        if (waiting && (!out->wake_wall || progress + cfg.delay_ms < out->wake_wall))
            out->wake_wall = progress + cfg.delay_ms;
        batch(svc, &cfg, &v, tasks, out, !waiting);
        json_int_t updated = json_integer_value(json_object_get(r, "updated"));
        if ((json_int_t)v.done != updated ||
            (json_int_t)v.failed != json_integer_value(json_object_get(r, "failures")) ||
            (json_int_t)v.total != json_integer_value(json_object_get(r, "total"))) {
            json_t *op = update_op(svc, now, NULL);
            json_object_set_new(op, "updated", json_integer((json_int_t)v.done));
            json_object_set_new(op, "failures", json_integer((json_int_t)v.failed));
            json_object_set_new(op, "total", json_integer((json_int_t)v.total));
            if ((json_int_t)v.done > updated)
                json_object_set_new(op, "progress", json_true());
            json_array_append_new(out->ops, op);
        }
        /* A task reaches its monitor window without any state change: look
         * again then. */
        if (v.busy && (!out->wake_wall || now + 250 < out->wake_wall))
            out->wake_wall = now + 250;
    }
    json_decref(v.new_places);
    json_decref(v.old_live);
    json_decref(v.retry);
    json_decref(spec);
}

void rs_rollout_round(const struct rs_state *st, int64_t now_wall, json_t *tasks,
                      struct rs_rollout_round *out)
{
    out->stops = json_array();
    out->ops = json_array();
    out->started_first = json_object();
    out->wake_wall = 0;
    for (size_t i = 0; i < st->n_services; i++)
        if (st->services[i]->rollout)
            service_round(st, st->services[i], now_wall, tasks, out);
}

void rs_rollout_round_free(struct rs_rollout_round *out)
{
    json_decref(out->stops);
    json_decref(out->ops);
    json_decref(out->started_first);
    out->stops = out->ops = out->started_first = NULL;
}

/* The old task hidden at the place an unplaced entry stands for, or NULL. */
static const char *hidden_at(const struct rs_rollout_round *out, const struct sch_unplaced *u)
{
    char place[96];
    if (u->slot > 0)
        snprintf(place, sizeof(place), "s%u", u->slot);
    else
        snprintf(place, sizeof(place), "n%s", u->node ? u->node : "");
    return json_string_value(
        json_object_get(json_object_get(out->started_first, u->service), place));
}

/* A copy of tasks where the tasks named in ended (id -> true) have ended. */
static json_t *with_ended(const json_t *tasks, const json_t *ended)
{
    json_t *copy = json_array(), *t;
    size_t i;
    json_array_foreach(tasks, i, t)
    {
        if (json_object_get(ended, json_string_value(json_object_get(t, "id")))) {
            t = json_copy(t);
            json_object_set_new(t, "state", json_string("shutdown"));
            json_array_append_new(copy, t);
        } else {
            json_array_append(copy, t);
        }
    }
    return copy;
}

size_t rs_rollout_fallback(struct rs_rollout_round *out, const struct sch_plan *plan,
                           const json_t *services, const json_t *nodes, const json_t *tasks)
{
    json_t *ended = json_object();
    for (size_t i = 0; i < plan->n_unplaced; i++) {
        const char *old = hidden_at(out, &plan->unplaced[i]);
        if (old)
            json_object_set_new(ended, old, json_true());
    }
    size_t n = 0;
    if (json_object_size(ended) > 0) {
        json_t *again = with_ended(tasks, ended);
        struct sch_json_input in;
        struct sch_plan p = {0};
        if (sch_input_from_json(services, nodes, again, &in) == 0 &&
            sch_plan_compute(&in.in, &p) == 0) {
            /* Unplaced again: the old task is not what stands in the way. */
            for (size_t i = 0; i < p.n_unplaced; i++) {
                const char *old = hidden_at(out, &p.unplaced[i]);
                if (old)
                    json_object_del(ended, old);
            }
            const char *id;
            json_t *e;
            json_object_foreach(ended, id, e)
            {
                add_stop(out, id);
                n++;
            }
        }
        sch_plan_free(&p);
        sch_json_input_free(&in);
        json_decref(again);
    }
    json_decref(ended);
    return n;
}
