/* GET /v1/tasks and /v1/tasks/{id}: the scheduler's decisions as the state
 * holds them, with the replicas it could not place shown as pending. */
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "common/util.h"

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

static void tasks_render(struct api__call *call, struct api__doc *doc)
{
    char service[128] = "", node[128] = "";
    api_http_query(call->req, "service", service, sizeof(service));
    api_http_query(call->req, "node", node, sizeof(node));
    struct rs_state *st = rs_store_state(call->srv->store);
    const struct rs_node *n = node[0] ? rs_state_node(st, node) : NULL;
    if (n)
        common_strlcpy(node, n->id, sizeof(node));
    size_t k = 0;
    const json_t **sorted = xcalloc(json_object_size(st->tasks) + 1, sizeof(*sorted));
    const char *id;
    json_t *t;
    json_object_foreach(st->tasks, id, t) if (wanted(t, service, node)) sorted[k++] = t;
    qsort(sorted, k, sizeof(*sorted), by_service_slot);
    json_t *list = json_array();
    for (size_t i = 0; i < k; i++)
        json_array_append(list, (json_t *)sorted[i]);
    free(sorted);
    add_pending(st, service, node, list);
    doc->status = 200;
    doc->owned = json_dumps(list, JSON_COMPACT);
    json_decref(list);
    doc->body = doc->owned;
    doc->len = strlen(doc->owned);
    doc->index = st->tasks_index;
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
