/* Routes under /v1/nodes and the cluster's membership routes: join, join
 * tokens, heartbeats, backup. */
#include <raft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "api/spec.h"
#include "common/util.h"

static const char *raft_role_name(int role)
{
    return role == RAFT_VOTER ? "voter" : role == RAFT_STANDBY ? "standby" : "spare";
}

/* The node's JSON as answered: its stored fields plus what this manager
 * knows of its place in the Raft configuration (transferred). */
static json_t *node_render(struct api_server *srv, const struct rs_node *n)
{
    json_t *o = json_copy(n->obj);
    if (strcmp(rs_node_str(n, "role"), "manager") != 0) {
        json_object_set_new(o, "manager", json_null());
        return o;
    }
    struct raft *r = rs_store_raft(srv->store);
    raft_id id = strtoull(n->id, NULL, 16), leader = 0;
    const char *leader_addr = NULL;
    raft_leader(r, &leader, &leader_addr);
    const char *raft_role = "none";
    for (unsigned i = 0; i < r->configuration.n; i++)
        if (r->configuration.servers[i].id == id)
            raft_role = raft_role_name(r->configuration.servers[i].role);
    json_object_set_new(o, "manager",
                        json_pack("{s:s, s:s, s:b}", "raft_address", rs_node_str(n, "raft_address"),
                                  "raft_role", raft_role, "leader", id == leader));
    return o;
}

static int by_name(const void *a, const void *b)
{
    const struct rs_node *x = *(const struct rs_node *const *)a;
    const struct rs_node *y = *(const struct rs_node *const *)b;
    return strcmp(rs_node_str(x, "name"), rs_node_str(y, "name"));
}

static uint64_t nodes_index(struct api_server *srv, const char *arg)
{
    (void)arg;
    return rs_store_state(srv->store)->nodes_index;
}

static void doc_json(struct api__doc *doc, int status, json_t *body, uint64_t index)
{
    doc->status = status;
    doc->owned = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(body);
    doc->body = doc->owned;
    doc->len = strlen(doc->owned);
    doc->index = index;
}

static void nodes_render(struct api__call *call, struct api__doc *doc)
{
    struct api_server *srv = call->srv;
    const char *arg = call->arg;
    (void)arg;
    struct rs_state *st = rs_store_state(srv->store);
    const struct rs_node **sorted = xcalloc(st->n_nodes + 1, sizeof(*sorted));
    if (st->n_nodes)
        memcpy(sorted, st->nodes, st->n_nodes * sizeof(*sorted));
    qsort(sorted, st->n_nodes, sizeof(*sorted), by_name);
    json_t *list = json_array();
    for (size_t i = 0; i < st->n_nodes; i++)
        json_array_append_new(list, node_render(srv, sorted[i]));
    free(sorted);
    doc_json(doc, 200, list, st->nodes_index);
}

static void node_render_one(struct api__call *call, struct api__doc *doc)
{
    struct api_server *srv = call->srv;
    const char *key = call->arg;
    struct rs_state *st = rs_store_state(srv->store);
    const struct rs_node *n = rs_state_node(st, key);
    if (n)
        doc_json(doc, 200, node_render(srv, n), n->modify_index);
    else
        doc_json(doc, 404,
                 json_pack("{s:s, s:s, s:s}", "error", "no such node", "code", "not_found", "field",
                           "id"),
                 st->nodes_index);
}

void api__nodes_list(struct api__call *call)
{
    api__serve_get(call, nodes_index, nodes_render);
}

void api__node_get(struct api__call *call)
{
    api__serve_get(call, nodes_index, node_render_one);
}

/* The node named by the path, or NULL after answering 404. */
static const struct rs_node *path_node(struct api__call *call)
{
    const struct rs_node *n = rs_state_node(rs_store_state(call->srv->store), call->arg);
    if (!n)
        api__reply_error(call, API_NOT_FOUND, "id", "no node \"%s\"", call->arg);
    return n;
}

/* Submits a node op whose answer is the node: re-rendered with its Raft
 * details once applied. */
static void node_submit_cb(void *data, struct rs_op_result *res)
{
    struct api__call *call = data;
    if (res->err.code != API_OK) {
        api__reply_err(call, &res->err);
        return;
    }
    json_t *body = json_loadb(res->body, res->body_len, 0, NULL);
    const char *id = json_string_value(json_object_get(body, "id"));
    const struct rs_node *n = id ? rs_state_node(rs_store_state(call->srv->store), id) : NULL;
    if (n)
        api__reply_json(call, 200, res->index, node_render(call->srv, n));
    else
        api__reply(call, 200, res->index, res->body, res->body_len);
    json_decref(body);
}

static void node_submit(struct api__call *call, json_t *op)
{
    if (rs_store_submit(call->srv->store, op, node_submit_cb, call) != 0)
        api__reply_error(call, API_NO_LEADER, NULL, "no leader: this node is not the leader");
}

static int labels_valid(struct api__call *call, const json_t *labels)
{
    const char *k;
    json_t *v;
    if (json_object_size(labels) > API_SPEC_MAX_LABELS) {
        api__reply_error(call, API_BAD_REQUEST, "labels", "at most %d labels", API_SPEC_MAX_LABELS);
        return 0;
    }
    json_object_foreach((json_t *)labels, k, v)
    {
        if (!k[0] || strlen(k) > 128 || !json_is_string(v) ||
            json_string_length(v) > API_SPEC_MAX_STRING) {
            api__reply_error(call, API_BAD_REQUEST, "labels",
                             "keys must be 1-128 characters and values strings");
            return 0;
        }
    }
    return 1;
}

void api__node_patch(struct api__call *call)
{
    const struct rs_node *n = path_node(call);
    if (!n)
        return;
    struct api_err err;
    json_t *in = api__parse_body(call, &err);
    if (!in) {
        api__reply_err(call, &err);
        return;
    }
    json_t *op = json_pack("{s:s, s:s, s:I}", "op", "node.update", "id", n->id, "at",
                           (json_int_t)common_wall_ms());
    const char *key;
    json_t *value;
    json_object_foreach(in, key, value)
    {
        const char *a = json_string_value(value);
        if (strcmp(key, "availability") == 0 && a &&
            (!strcmp(a, "active") || !strcmp(a, "pause") || !strcmp(a, "drain"))) {
            json_object_set(op, key, value);
        } else if (strcmp(key, "labels") == 0 && json_is_object(value)) {
            if (!labels_valid(call, value))
                goto out;
            json_object_set(op, key, value);
        } else {
            api__reply_error(call, API_BAD_REQUEST, key,
                             strcmp(key, "availability") == 0 ? "must be active, pause or drain"
                             : strcmp(key, "labels") == 0     ? "must be an object of strings"
                                                              : "unknown field");
            goto out;
        }
    }
    if (api__query_cas(call, op) == 0) {
        node_submit(call, op);
        op = NULL;
    }
out:
    json_decref(op);
    json_decref(in);
}

void api__node_delete(struct api__call *call)
{
    const struct rs_node *n = path_node(call);
    if (!n)
        return;
    char force[8] = "";
    api_http_query(call->req, "force", force, sizeof(force));
    int forced = strcmp(force, "true") == 0 || strcmp(force, "1") == 0;
    char self[17];
    snprintf(self, sizeof(self), "%016llx",
             (unsigned long long)rs_store_raft(call->srv->store)->id);
    if (strcmp(n->id, self) == 0) {
        api__reply_error(call, API_CONFLICT, "id",
                         "node \"%s\" is the leader: stop it first, another manager will lead",
                         rs_node_str(n, "name"));
        return;
    }
    if (!forced && strcmp(rs_node_str(n, "status"), "ready") == 0) {
        api__reply_error(call, API_CONFLICT, "id",
                         "node \"%s\" is ready: stop it first, or remove it with force",
                         rs_node_str(n, "name"));
        return;
    }
    json_t *op = json_pack("{s:s, s:s}", "op", "node.remove", "id", n->id);
    if (api__query_cas(call, op) != 0) {
        json_decref(op);
        return;
    }
    api__submit(call, op, 200);
}

static void node_role(struct api__call *call, const char *role)
{
    const struct rs_node *n = path_node(call);
    if (n)
        node_submit(call,
                    json_pack("{s:s, s:s, s:s}", "op", "node.role", "id", n->id, "role", role));
}

void api__node_promote(struct api__call *call)
{
    node_role(call, "manager");
}

void api__node_demote(struct api__call *call)
{
    const struct rs_node *n = path_node(call);
    if (!n)
        return;
    char self[17];
    snprintf(self, sizeof(self), "%016llx",
             (unsigned long long)rs_store_raft(call->srv->store)->id);
    if (strcmp(n->id, self) == 0) {
        api__reply_error(call, API_CONFLICT, "id",
                         "node \"%s\" is the leader: it cannot demote itself",
                         rs_node_str(n, "name"));
        return;
    }
    node_role(call, "worker");
}
