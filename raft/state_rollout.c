/* Rollouts as the state holds them: each new task template is a version
 * rolled out by the leader's reconciler (raft/rollout.c), which writes its
 * progress here; the last completed spec is kept as the stable one, so that
 * a rollback never returns to a half-applied spec. */
#include <stdbool.h>
#include <string.h>

#include "common/util.h"
#include "raft/events.h"
#include "raft/state_internal.h"

static bool is_state(const json_t *rollout, const char *state)
{
    const char *s = json_string_value(json_object_get(rollout, "state"));
    return s && strcmp(s, state) == 0;
}

void rs__rollout_begin(struct rs_service *svc, const char *kind, uint64_t to, json_int_t at,
                       json_int_t total)
{
    if (!svc->stable) {
        svc->stable = xstrdup(svc->spec);
        svc->stable_version = svc->version;
    }
    json_decref(svc->rollout);
    svc->rollout =
        json_pack("{s:s, s:s, s:I, s:I, s:i, s:I, s:i, s:s, s:I, s:I, s:I, s:I}", "state",
                  strcmp(kind, "rollback") == 0 ? "rolling_back" : "updating", "kind", kind,
                  "from_version", (json_int_t)svc->version, "to_version", (json_int_t)to, "updated",
                  0, "total", total, "failures", 0, "message", "", "started_ms", at, "progress_ms",
                  at, "finished_ms", (json_int_t)0, "counted_from", at);
}

static void load_ref(const json_t *ref, char **spec, uint64_t *version)
{
    const json_t *s = json_object_get(ref, "spec");
    if (!json_is_object(s))
        return;
    *spec = json_dumps(s, JSON_COMPACT);
    json_int_t v = json_integer_value(json_object_get(ref, "version"));
    *version = v > 0 ? (uint64_t)v : 0;
}

void rs__rollout_load(struct rs_service *svc, const json_t *obj)
{
    const json_t *r = json_object_get(obj, "rollout");
    if (json_is_object(r))
        svc->rollout = json_deep_copy(r);
    load_ref(json_object_get(obj, "stable_spec"), &svc->stable, &svc->stable_version);
    load_ref(json_object_get(obj, "previous_spec"), &svc->previous, &svc->previous_version);
}

static struct rs_service *find(struct rs_state *s, const json_t *op, struct rs_op_result *res)
{
    const char *name = json_string_value(json_object_get(op, "name"));
    int found = 0;
    size_t pos = name ? rs__service_pos(s, name, &found) : 0;
    if (!found) {
        rs__refuse(res, API_NOT_FOUND, "name", "no service \"%s\"", name ? name : "");
        return NULL;
    }
    return s->services[pos];
}

static void changed(struct rs_state *s, struct rs_service *svc, uint64_t index,
                    struct rs_op_result *res)
{
    rs__service_render(svc);
    rs__services_changed(s, index);
    rs__answer(res, svc->body, svc->body_len, 0);
}

/* Returns to the last stable spec (during a rollout, or after one that did
 * not complete), or else to the one before the current stable spec. */
void rs__op_service_rollback(struct rs_state *s, const json_t *op, uint64_t index,
                             struct rs_op_result *res)
{
    struct rs_service *svc = find(s, op, res);
    if (!svc)
        return;
    const char *target = svc->stable ? svc->stable : svc->previous;
    if (!target) {
        rs__refuse(res, API_BAD_REQUEST, "name",
                   "service \"%s\" has no earlier spec to roll back to", svc->name);
        return;
    }
    json_t *spec = json_loads(target, 0, NULL);
    if (!spec)
        abort(); /* written by json_dumps */
    json_object_set_new(spec, "replicas", json_integer(svc->replicas));
    /* From a stable spec back to the previous one: the current is the last
     * that completed, so it stays as the stable one until this completes
     * (and then becomes the previous one). Back to the stable spec after a
     * rollout that did not complete: the previous one stays. */
    const char *target_kind = svc->stable ? "stable" : "previous";
    if (!svc->stable) {
        free(svc->previous);
        svc->previous = NULL;
    }
    uint64_t version = svc->version + 1;
    rs__rollout_begin(svc, "rollback", version, json_integer_value(json_object_get(op, "at")),
                      svc->replicas);
    json_object_set_new(svc->rollout, "target", json_string(target_kind));
    if (json_is_true(json_object_get(op, "auto")))
        json_object_set_new(svc->rollout, "message",
                            json_string(json_string_value(json_object_get(op, "message"))
                                            ?: "rolled back automatically"));
    free(svc->spec);
    svc->spec = NULL;
    json_object_del(spec, "replicas");
    svc->spec = json_dumps(spec, JSON_COMPACT);
    svc->spec_len = strlen(svc->spec);
    json_decref(spec);
    svc->version = version;
    svc->modify_index = index;
    rs__event_rollout(s, rs__op_at(op), "rollout.started", svc);
    changed(s, svc, index, res);
}

/* Progress written by the reconciler, for the rollout to to_version only (a
 * newer one supersedes it). completed / rolled_back make the spec stable. */
void rs__op_rollout_update(struct rs_state *s, const json_t *op, uint64_t index,
                           struct rs_op_result *res)
{
    struct rs_service *svc = find(s, op, res);
    if (!svc)
        return;
    json_t *r = svc->rollout;
    if (!r || json_integer_value(json_object_get(r, "to_version")) !=
                  json_integer_value(json_object_get(op, "to_version"))) {
        rs__refuse(res, API_CONFLICT, "to_version", "%s", "superseded by a newer rollout");
        return;
    }
    json_int_t at = json_integer_value(json_object_get(op, "at"));
    const char *to_state = json_string_value(json_object_get(op, "state"));
    int moved = to_state && !is_state(r, to_state); /* an event once changed */
    /* Paused by a failure: resume goes back to what it was doing (an update,
     * or a rollback with the rollback settings). */
    if (to_state && strcmp(to_state, "paused") == 0 && !is_state(r, "paused"))
        json_object_set(r, "paused_from", json_object_get(r, "state"));
    static const char *const fields[] = {"state", "updated", "total", "failures", "message"};
    for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
        json_t *v = json_object_get(op, fields[i]);
        if (v)
            json_object_set(r, fields[i], v);
    }
    if (json_is_true(json_object_get(op, "progress")))
        json_object_set_new(r, "progress_ms", json_integer(at));
    if (is_state(r, "completed") || is_state(r, "rolled_back")) {
        json_object_set_new(r, "finished_ms", json_integer(at));
        const char *target = json_string_value(json_object_get(r, "target"));
        if (svc->stable && target && strcmp(target, "stable") == 0) {
            free(svc->stable); /* back where it was: the previous one stays */
            svc->stable = NULL;
        } else if (svc->stable) {
            free(svc->previous);
            svc->previous = svc->stable;
            svc->previous_version = svc->stable_version;
            svc->stable = NULL;
        }
    }
    if (moved)
        rs__event_rollout(s, at, NULL, svc);
    changed(s, svc, index, res);
}

void rs__op_rollout_pause(struct rs_state *s, const json_t *op, uint64_t index,
                          struct rs_op_result *res)
{
    struct rs_service *svc = find(s, op, res);
    if (!svc)
        return;
    json_t *r = svc->rollout;
    if (!r || !(is_state(r, "updating") || is_state(r, "rolling_back"))) {
        rs__refuse(res, API_CONFLICT, "name", "service \"%s\" has no rollout under way", svc->name);
        return;
    }
    json_object_set(r, "paused_from", json_object_get(r, "state"));
    json_object_set_new(r, "state", json_string("paused"));
    json_object_set_new(r, "message", json_string("paused by a user"));
    rs__event_rollout(s, rs__op_at(op), "rollout.paused", svc);
    changed(s, svc, index, res);
}

void rs__op_rollout_resume(struct rs_state *s, const json_t *op, uint64_t index,
                           struct rs_op_result *res)
{
    struct rs_service *svc = find(s, op, res);
    if (!svc)
        return;
    json_t *r = svc->rollout;
    if (!r || !is_state(r, "paused")) {
        rs__refuse(res, API_CONFLICT, "name", "service \"%s\" has no paused rollout", svc->name);
        return;
    }
    const char *from = json_string_value(json_object_get(r, "paused_from"));
    json_object_set_new(r, "state", json_string(from ? from : "updating"));
    json_object_del(r, "paused_from");
    json_object_set_new(r, "message", json_string(""));
    /* The failures that paused it are forgiven (its failed tasks are
     * replaced, and only failures of tasks created from now on count); the
     * progress deadline restarts. */
    json_int_t at = json_integer_value(json_object_get(op, "at"));
    json_object_set_new(r, "failures", json_integer(0));
    json_object_set_new(r, "progress_ms", json_integer(at));
    json_object_set_new(r, "counted_from", json_integer(at));
    rs__event_rollout(s, at, "rollout.resumed", svc);
    changed(s, svc, index, res);
}
