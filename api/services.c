/* Routes under /v1/services: reads from the local store, writes through
 * Raft. */
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "api/spec.h"
#include "common/util.h"

static uint64_t list_index(struct api_server *srv, const char *arg)
{
    (void)arg;
    return rs_store_state(srv->store)->services_index;
}

static void list_render(struct api__call *call, struct api__doc *doc)
{
    struct api_server *srv = call->srv;
    const char *arg = call->arg;
    (void)arg;
    struct rs_state *st = rs_store_state(srv->store);
    doc->status = 200;
    doc->body = rs_state_services_body(st, &doc->len);
    doc->index = st->services_index;
}

static uint64_t one_index(struct api_server *srv, const char *name)
{
    struct rs_state *st = rs_store_state(srv->store);
    const struct rs_service *svc = rs_state_service(st, name);
    return svc ? svc->modify_index : st->services_index;
}

static void one_render(struct api__call *call, struct api__doc *doc)
{
    struct api_server *srv = call->srv;
    const char *name = call->arg;
    struct rs_state *st = rs_store_state(srv->store);
    const struct rs_service *svc = rs_state_service(st, name);
    if (svc) {
        doc->status = 200;
        doc->body = svc->body;
        doc->len = svc->body_len;
        doc->index = svc->modify_index;
        return;
    }
    json_t *err = json_pack("{s:s, s:s, s:s}", "error", "no such service", "code", "not_found",
                            "field", "name");
    doc->owned = json_dumps(err, JSON_COMPACT);
    json_decref(err);
    doc->status = 404;
    doc->body = doc->owned;
    doc->len = strlen(doc->owned);
    doc->index = st->services_index;
}

void api__services_list(struct api__call *call)
{
    api__serve_get(call, list_index, list_render);
}

void api__service_get(struct api__call *call)
{
    api__serve_get(call, one_index, one_render);
}

/* Parses and validates the body as a spec; answers the call on error. */
static json_t *body_spec(struct api__call *call, const char *path_name)
{
    struct api_err err;
    json_t *in = api__parse_body(call, &err);
    if (!in) {
        api__reply_err(call, &err);
        return NULL;
    }
    if (path_name) {
        json_t *name = json_object_get(in, "name");
        if (!name) {
            json_object_set_new(in, "name", json_string(path_name));
        } else if (!json_is_string(name) || strcmp(json_string_value(name), path_name) != 0) {
            json_decref(in);
            api__reply_error(call, API_BAD_REQUEST, "name",
                             "the name in the body must match the one in the path");
            return NULL;
        }
    }
    json_t *spec = NULL;
    int rv = api_spec_normalize(in, &spec, &err);
    json_decref(in);
    if (rv != 0) {
        api__reply_err(call, &err);
        return NULL;
    }
    return spec;
}

void api__services_create(struct api__call *call)
{
    json_t *spec = body_spec(call, NULL);
    if (spec)
        api__submit(call,
                    json_pack("{s:s, s:o, s:I}", "op", "service.create", "spec", spec, "at",
                              (json_int_t)common_wall_ms()),
                    201);
}

void api__service_put(struct api__call *call)
{
    if (!api_spec_name_valid(call->arg)) {
        api__reply_error(call, API_BAD_REQUEST, "name", "\"%s\" is not a valid service name",
                         call->arg);
        return;
    }
    json_t *spec = body_spec(call, call->arg);
    if (!spec)
        return;
    json_t *op = json_pack("{s:s, s:o, s:I}", "op", "service.put", "spec", spec, "at",
                           (json_int_t)common_wall_ms());
    if (api__query_cas(call, op) != 0) {
        json_decref(op);
        return;
    }
    api__submit(call, op, 200);
}

void api__service_delete(struct api__call *call)
{
    json_t *op = json_pack("{s:s, s:s, s:I}", "op", "service.delete", "name", call->arg, "at",
                           (json_int_t)common_wall_ms());
    if (api__query_cas(call, op) != 0) {
        json_decref(op);
        return;
    }
    api__submit(call, op, 200);
}

void api__service_scale(struct api__call *call)
{
    struct api_err err;
    json_t *in = api__parse_body(call, &err);
    if (!in) {
        api__reply_err(call, &err);
        return;
    }
    json_t *replicas = json_object_get(in, "replicas");
    const char *key;
    json_t *value;
    json_object_foreach(in, key, value)
    {
        if (strcmp(key, "replicas") != 0) {
            api__reply_error(call, API_BAD_REQUEST, key, "unknown field");
            json_decref(in); /* after the reply: key belongs to in */
            return;
        }
    }
    if (!json_is_integer(replicas) || json_integer_value(replicas) < 0 ||
        json_integer_value(replicas) > API_SPEC_MAX_REPLICAS) {
        json_decref(in);
        api__reply_error(call, API_BAD_REQUEST, "replicas", "must be an integer from 0 to %d",
                         API_SPEC_MAX_REPLICAS);
        return;
    }
    json_t *op = json_pack("{s:s, s:s, s:O, s:I}", "op", "service.scale", "name", call->arg,
                           "replicas", replicas, "at", (json_int_t)common_wall_ms());
    json_decref(in);
    api__submit(call, op, 200);
}

/* GET /v1/services/{name}/rollout: the current or last rollout, a blocking
 * query on the services' index (rollout progress moves it, not the
 * service's modify_index, which stays for compare-and-set). */
static void rollout_render(struct api__call *call, struct api__doc *doc)
{
    struct rs_state *st = rs_store_state(call->srv->store);
    const struct rs_service *svc = rs_state_service(st, call->arg);
    json_t *body;
    if (!svc) {
        body = json_pack("{s:s, s:s, s:s}", "error", "no such service", "code", "not_found",
                         "field", "name");
        doc->status = 404;
    } else {
        body = svc->rollout ? json_deep_copy(svc->rollout) : json_pack("{s:s}", "state", "none");
        json_object_set_new(body, "service", json_string(svc->name));
        json_object_set_new(body, "version", json_integer((json_int_t)svc->version));
        doc->status = 200;
    }
    doc->owned = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    doc->body = doc->owned;
    doc->len = strlen(doc->owned);
    doc->index = st->services_index;
}

static uint64_t rollout_index(struct api_server *srv, const char *name)
{
    (void)name;
    return rs_store_state(srv->store)->services_index;
}

void api__service_rollout_get(struct api__call *call)
{
    api__serve_get(call, rollout_index, rollout_render);
}

static void rollout_op(struct api__call *call, const char *kind)
{
    api__submit(call,
                json_pack("{s:s, s:s, s:I}", "op", kind, "name", call->arg, "at",
                          (json_int_t)common_wall_ms()),
                200);
}

void api__service_rollback(struct api__call *call)
{
    rollout_op(call, "service.rollback");
}

void api__service_rollout_pause(struct api__call *call)
{
    rollout_op(call, "rollout.pause");
}

void api__service_rollout_resume(struct api__call *call)
{
    rollout_op(call, "rollout.resume");
}
