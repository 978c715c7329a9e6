#include "raft/state.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "common/buf.h"
#include "common/util.h"
#include "raft/events.h"
#include "raft/state_internal.h"

#define SNAPSHOT_FORMAT 1

void rs_state_init(struct rs_state *s)
{
    memset(s, 0, sizeof(*s));
    s->tasks = json_object();
    s->pending = json_object();
    s->events = rs_events_new(0, 0);
}

static void service_free(struct rs_service *svc)
{
    free(svc->name);
    free(svc->spec);
    free(svc->body);
    free(svc->stable);
    free(svc->previous);
    json_decref(svc->rollout);
    free(svc);
}

json_t *rs_service_json(const struct rs_service *svc)
{
    json_t *obj = json_loadb(svc->body, svc->body_len, 0, NULL);
    if (!obj)
        abort(); /* the body was written by json_dumps */
    return obj;
}

static void services_free(struct rs_state *s)
{
    for (size_t i = 0; i < s->n_services; i++)
        service_free(s->services[i]);
    free(s->services);
    free(s->services_body);
    s->services = NULL;
    s->services_body = NULL;
    s->n_services = s->cap_services = 0;
}

void rs_state_close(struct rs_state *s)
{
    services_free(s);
    rs__nodes_free(s);
    json_decref(s->tasks);
    json_decref(s->pending);
    rs_events_free(s->events);
    memset(s, 0, sizeof(*s));
}

/* Binary search: returns the position of name, or where it would go with
 * *found = 0. */
size_t rs__service_pos(const struct rs_state *s, const char *name, int *found)
{
    size_t lo = 0, hi = s->n_services;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->services[mid]->name, name);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

const struct rs_service *rs_state_service(const struct rs_state *s, const char *name)
{
    int found;
    size_t pos = rs__service_pos(s, name, &found);
    return found ? s->services[pos] : NULL;
}

void rs__services_changed(struct rs_state *s, uint64_t index)
{
    s->services_index = index;
    free(s->services_body);
    s->services_body = NULL;
}

static void render_spec_ref(struct common_buf *b, const char *key, const char *spec,
                            uint64_t version)
{
    if (spec)
        common_buf_printf(b, ",\"%s\":{\"version\":%llu,\"spec\":%s}", key,
                          (unsigned long long)version, spec);
}

/* Assembles the body from the spec text and the numbers. */
void rs__service_render(struct rs_service *svc)
{
    struct common_buf b = {0};
    common_buf_append(&b, svc->spec, svc->spec_len - 1); /* without the closing brace */
    common_buf_printf(&b, "%s\"replicas\":%lld,\"version\":%llu", svc->spec_len > 2 ? "," : "",
                      (long long)svc->replicas, (unsigned long long)svc->version);
    char *rollout = svc->rollout ? json_dumps(svc->rollout, JSON_COMPACT) : NULL;
    common_buf_printf(&b, ",\"rollout\":%s", rollout ? rollout : "null");
    free(rollout);
    render_spec_ref(&b, "stable_spec", svc->stable, svc->stable_version);
    render_spec_ref(&b, "previous_spec", svc->previous, svc->previous_version);
    common_buf_printf(&b, ",\"create_index\":%llu,\"modify_index\":%llu}",
                      (unsigned long long)svc->create_index, (unsigned long long)svc->modify_index);
    free(svc->body);
    svc->body = common_buf_take(&b, &svc->body_len);
}

/* The spec part of obj as stored: without replicas and the bookkeeping
 * (transferred: free()). */
static char *spec_text(const json_t *obj)
{
    static const char *const server_set[] = {"replicas",     "version", "create_index",
                                             "modify_index", "rollout", "stable_spec",
                                             "previous_spec"};
    json_t *spec = json_copy((json_t *)obj); /* shallow: only top-level keys go */
    for (size_t i = 0; i < ARRAY_SIZE(server_set); i++)
        json_object_del(spec, server_set[i]);
    char *text = json_dumps(spec, JSON_COMPACT);
    json_decref(spec);
    if (!text)
        abort();
    return text;
}

/* Stores the service described by obj (borrowed, not modified) with the
 * given bookkeeping. */
static void service_store(struct rs_service *svc, const json_t *obj, uint64_t version,
                          uint64_t create_index, uint64_t modify_index)
{
    free(svc->spec);
    svc->spec = spec_text(obj);
    svc->spec_len = strlen(svc->spec);
    const char *mode = json_string_value(json_object_get(obj, "mode"));
    svc->global = mode && strcmp(mode, "global") == 0;
    svc->replicas = json_integer_value(json_object_get(obj, "replicas"));
    svc->version = version;
    svc->create_index = create_index;
    svc->modify_index = modify_index;
    rs__service_render(svc);
}

static uint64_t obj_uint(const json_t *obj, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(obj, key));
    return v > 0 ? (uint64_t)v : 0;
}

static void service_insert(struct rs_state *s, size_t pos, struct rs_service *svc)
{
    if (s->n_services == s->cap_services) {
        s->cap_services = s->cap_services ? s->cap_services * 2 : 64;
        s->services = xrealloc(s->services, s->cap_services * sizeof(*s->services));
    }
    memmove(&s->services[pos + 1], &s->services[pos], (s->n_services - pos) * sizeof(*s->services));
    s->services[pos] = svc;
    s->n_services++;
}

static void service_remove(struct rs_state *s, size_t pos)
{
    service_free(s->services[pos]);
    memmove(&s->services[pos], &s->services[pos + 1],
            (s->n_services - pos - 1) * sizeof(*s->services));
    s->n_services--;
}

void rs__answer(struct rs_op_result *res, const char *body, size_t len, int created)
{
    if (!res)
        return;
    res->err.code = API_OK;
    res->created = created;
    res->body = xstrndup(body, len);
    res->body_len = len;
}

void rs__answer_json(struct rs_op_result *res, json_t *body)
{
    if (res) {
        res->err.code = API_OK;
        res->body = json_dumps(body, JSON_COMPACT);
        res->body_len = strlen(res->body);
    }
    json_decref(body);
}

void rs__refuse(struct rs_op_result *res, enum api_code code, const char *field, const char *fmt,
                ...)
{
    if (!res)
        return;
    va_list ap;
    va_start(ap, fmt);
    api_err_vset(&res->err, code, field, fmt, ap);
    va_end(ap);
}

int rs__cas_ok(const json_t *op, uint64_t have, const char *what, struct rs_op_result *res)
{
    const json_t *cas = json_object_get(op, "cas");
    if (!json_is_integer(cas))
        return 1;
    uint64_t want = (uint64_t)json_integer_value(cas);
    if (want == have)
        return 1;
    rs__refuse(res, API_CONFLICT, "index", "stale index %llu: the %s's modify_index is %llu",
               (unsigned long long)want, what, (unsigned long long)have);
    return 0;
}

static int cas_ok(const json_t *op, const struct rs_service *svc, struct rs_op_result *res)
{
    return rs__cas_ok(op, svc ? svc->modify_index : 0, "service", res);
}

static void op_put(struct rs_state *s, const json_t *op, uint64_t index, int create_only,
                   struct rs_op_result *res)
{
    json_t *spec = json_object_get(op, "spec");
    const char *name = json_string_value(json_object_get(spec, "name"));
    if (!json_is_object(spec) || !name) {
        rs__refuse(res, API_BAD_REQUEST, "spec", "%s", "malformed command: spec without a name");
        return;
    }
    int found;
    size_t pos = rs__service_pos(s, name, &found);
    struct rs_service *svc = found ? s->services[pos] : NULL;
    if (create_only && svc) {
        rs__refuse(res, API_CONFLICT, "name", "service \"%s\" already exists", name);
        return;
    }
    if (!cas_ok(op, svc, res))
        return;
    uint64_t version = 1, create_index = index;
    int began = 0; /* a rollout */
    if (svc) {
        /* A new task template is a new version, rolled out; anything else
         * (labels, placement, update settings, replicas) applies as is. */
        version = svc->version;
        create_index = svc->create_index;
        json_t *old = json_loads(svc->spec, 0, NULL);
        if (!json_equal(json_object_get(old, "task"), json_object_get(spec, "task"))) {
            version++;
            began = 1;
            rs__rollout_begin(svc, "update", version, json_integer_value(json_object_get(op, "at")),
                              json_integer_value(json_object_get(spec, "replicas")));
        }
        json_decref(old);
    } else {
        svc = xcalloc(1, sizeof(*svc));
        svc->name = xstrdup(name);
        service_insert(s, pos, svc);
    }
    service_store(svc, spec, version, create_index, index);
    rs__event_service(s, rs__op_at(op), found ? "service.updated" : "service.created", svc);
    if (began)
        rs__event_rollout(s, rs__op_at(op), "rollout.started", svc);
    rs__services_changed(s, index);
    rs__answer(res, svc->body, svc->body_len, !found);
}

static void op_delete(struct rs_state *s, const json_t *op, uint64_t index,
                      struct rs_op_result *res)
{
    const char *name = json_string_value(json_object_get(op, "name"));
    int found = 0;
    size_t pos = name ? rs__service_pos(s, name, &found) : 0;
    if (!found) {
        rs__refuse(res, API_NOT_FOUND, "name", "no service \"%s\"", name ? name : "");
        return;
    }
    if (!cas_ok(op, s->services[pos], res))
        return;
    rs__event_service(s, rs__op_at(op), "service.deleted", s->services[pos]);
    service_remove(s, pos);
    rs__services_changed(s, index);
    rs__answer_json(res, json_pack("{s:s, s:I}", "deleted", name, "index", (json_int_t)index));
}

static void op_scale(struct rs_state *s, const json_t *op, uint64_t index, struct rs_op_result *res)
{
    const char *name = json_string_value(json_object_get(op, "name"));
    json_t *replicas = json_object_get(op, "replicas");
    int found = 0;
    size_t pos = name ? rs__service_pos(s, name, &found) : 0;
    if (!found) {
        rs__refuse(res, API_NOT_FOUND, "name", "no service \"%s\"", name ? name : "");
        return;
    }
    struct rs_service *svc = s->services[pos];
    if (svc->global) {
        rs__refuse(res, API_BAD_REQUEST, "replicas",
                   "service \"%s\" is global: it cannot be scaled", name);
    } else if (!json_is_integer(replicas) || json_integer_value(replicas) < 0) {
        rs__refuse(res, API_BAD_REQUEST, "replicas", "%s", "must be an integer >= 0");
    } else if (cas_ok(op, svc, res)) {
        rs__event_scaled(s, rs__op_at(op), svc, json_integer_value(replicas));
        svc->replicas = json_integer_value(replicas);
        svc->modify_index = index;
        rs__service_render(svc);
        rs__services_changed(s, index);
        rs__answer(res, svc->body, svc->body_len, 0);
    }
}

/* Loads a list of services into s (which holds none). With index > 0 every
 * service is stamped as written at that index (a restore into another
 * cluster); else each keeps its own indexes (a snapshot). */
static int services_load(struct rs_state *s, const json_t *services, uint64_t index)
{
    size_t i;
    json_t *obj;
    json_array_foreach(services, i, obj)
    {
        const char *name = json_string_value(json_object_get(obj, "name"));
        int found;
        size_t pos = name ? rs__service_pos(s, name, &found) : 0;
        if (!json_is_object(obj) || !name || found)
            return -EINVAL;
        struct rs_service *svc = xcalloc(1, sizeof(*svc));
        svc->name = xstrdup(name);
        if (!index) /* a snapshot: its rollout too; a restore starts afresh */
            rs__rollout_load(svc, obj);
        service_store(svc, obj, obj_uint(obj, "version"),
                      index ? index : obj_uint(obj, "create_index"),
                      index ? index : obj_uint(obj, "modify_index"));
        service_insert(s, pos, svc);
    }
    return 0;
}

static void op_restore(struct rs_state *s, const json_t *op, uint64_t index,
                       struct rs_op_result *res)
{
    struct rs_state fresh;
    rs_state_init(&fresh);
    json_t *services = json_object_get(op, "services");
    if (!json_is_array(services) || services_load(&fresh, services, index) != 0) {
        rs_state_close(&fresh);
        rs__refuse(res, API_BAD_REQUEST, "services", "%s", "malformed command: services.restore");
        return;
    }
    services_free(s);
    s->services = TAKE_PTR(fresh.services);
    s->n_services = fresh.n_services;
    s->cap_services = fresh.cap_services;
    fresh.n_services = 0;
    rs_state_close(&fresh);
    rs__services_changed(s, index);
    rs__answer_json(res, json_pack("{s:I}", "restored", (json_int_t)s->n_services));
}

static void op_create(struct rs_state *s, const json_t *op, uint64_t index,
                      struct rs_op_result *res)
{
    op_put(s, op, index, 1, res);
}

static void op_put_any(struct rs_state *s, const json_t *op, uint64_t index,
                       struct rs_op_result *res)
{
    op_put(s, op, index, 0, res);
}

static const struct {
    const char *name;
    rs__op_fn fn;
} ops[] = {
    {"service.create", op_create},
    {"service.put", op_put_any},
    {"service.delete", op_delete},
    {"service.scale", op_scale},
    {"service.rollback", rs__op_service_rollback},
    {"rollout.update", rs__op_rollout_update},
    {"rollout.pause", rs__op_rollout_pause},
    {"rollout.resume", rs__op_rollout_resume},
    {"services.restore", op_restore},
    {"cluster.init", rs__op_cluster_init},
    {"cluster.rotate", rs__op_cluster_rotate},
    {"node.register", rs__op_node_register},
    {"node.update", rs__op_node_update},
    {"node.status", rs__op_node_status},
    {"node.remove", rs__op_node_remove},
    {"node.role", rs__op_node_role},
    {"members.reset", rs__op_members_reset},
    {"tasks.plan", rs__op_tasks_plan},
    {"tasks.report", rs__op_tasks_report},
};

void rs_state_apply_op(struct rs_state *s, const json_t *op, uint64_t index,
                       struct rs_op_result *res)
{
    if (res) {
        memset(res, 0, sizeof(*res));
        res->index = index;
    }
    const char *kind = json_string_value(json_object_get(op, "op"));
    size_t i = 0;
    while (kind && i < ARRAY_SIZE(ops) && strcmp(ops[i].name, kind) != 0)
        i++;
    if (!kind)
        rs__refuse(res, API_BAD_REQUEST, "op", "%s", "malformed command: no op");
    else if (i == ARRAY_SIZE(ops))
        rs__refuse(res, API_BAD_REQUEST, "op", "malformed command: unknown op \"%s\"", kind);
    else
        ops[i].fn(s, op, index, res);
    if (index > s->index)
        s->index = index;
}

const char *rs_state_services_body(struct rs_state *s, size_t *len)
{
    if (!s->services_body) {
        struct common_buf b = {0};
        common_buf_puts(&b, "[");
        for (size_t i = 0; i < s->n_services; i++) {
            if (i)
                common_buf_puts(&b, ",");
            common_buf_append(&b, s->services[i]->body, s->services[i]->body_len);
        }
        common_buf_puts(&b, "]");
        s->services_body = common_buf_take(&b, &s->services_body_len);
    }
    *len = s->services_body_len;
    return s->services_body;
}

char *rs_state_encode(const struct rs_state *s, size_t *len)
{
    struct common_buf b = {0};
    common_buf_printf(&b, "{\"format\":%d,\"index\":%llu,\"services_index\":%llu,\"services\":[",
                      SNAPSHOT_FORMAT, (unsigned long long)s->index,
                      (unsigned long long)s->services_index);
    for (size_t i = 0; i < s->n_services; i++) {
        if (i)
            common_buf_puts(&b, ",");
        common_buf_append(&b, s->services[i]->body, s->services[i]->body_len);
    }
    common_buf_puts(&b, "]");
    rs__nodes_encode(s, &b);
    rs__events_encode(s, &b);
    char *tasks = json_dumps(s->tasks, JSON_COMPACT);
    char *pending = json_dumps(s->pending, JSON_COMPACT);
    common_buf_printf(&b, ",\"tasks_index\":%llu,\"tasks\":%s,\"pending\":%s",
                      (unsigned long long)s->tasks_index, tasks, pending);
    free(tasks);
    free(pending);
    common_buf_puts(&b, "}");
    return common_buf_take(&b, len);
}

int rs_state_decode(struct rs_state *s, const char *buf, size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, 0, &jerr);
    json_t *services = json_object_get(root, "services");
    if (!json_is_object(root) ||
        json_integer_value(json_object_get(root, "format")) != SNAPSHOT_FORMAT ||
        !json_is_array(services)) {
        json_decref(root);
        return -EINVAL;
    }
    struct rs_state fresh;
    rs_state_init(&fresh);
    fresh.index = obj_uint(root, "index");
    fresh.services_index = obj_uint(root, "services_index");
    json_t *tasks = json_object_get(root, "tasks");
    json_t *pending = json_object_get(root, "pending");
    if (json_is_object(tasks))
        json_object_update(fresh.tasks, tasks);
    if (json_is_object(pending))
        json_object_update(fresh.pending, pending);
    fresh.tasks_index = obj_uint(root, "tasks_index");
    if (services_load(&fresh, services, 0) != 0 || rs__nodes_decode(&fresh, root) != 0) {
        rs_state_close(&fresh);
        json_decref(root);
        return -EINVAL;
    }
    rs__events_decode(&fresh, root);
    json_decref(root);
    rs_state_close(s);
    *s = fresh;
    return 0;
}
