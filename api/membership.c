/* Joining the cluster, join tokens, node heartbeats and backups. */
#include <raft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "api/spec.h"
#include "common/units.h"
#include "common/util.h"

/* The managers' addresses, the leader first (transferred). */
static json_t *managers_list(struct api_server *srv)
{
    struct rs_state *st = rs_store_state(srv->store);
    struct raft *r = rs_store_raft(srv->store);
    raft_id leader = 0;
    const char *leader_addr = NULL;
    raft_leader(r, &leader, &leader_addr);
    json_t *list = json_array();
    for (size_t i = 0; i < st->n_nodes; i++) {
        const struct rs_node *n = st->nodes[i];
        if (strcmp(rs_node_str(n, "role"), "manager") != 0)
            continue;
        json_t *m = json_pack("{s:s, s:s, s:s, s:s}", "id", n->id, "name", rs_node_str(n, "name"),
                              "api_address", rs_node_str(n, "api_address"), "raft_address",
                              rs_node_str(n, "raft_address"));
        if (strtoull(n->id, NULL, 16) == leader)
            json_array_insert_new(list, 0, m);
        else
            json_array_append_new(list, m);
    }
    return list;
}

/* Adds the cluster's heartbeat timing (as durations and in ms) and the
 * leader's id to an answer. */
static json_t *timing(struct api_server *srv, json_t *into)
{
    struct rs_state *st = rs_store_state(srv->store);
    static const char *const keys[][2] = {{"heartbeat_interval_ms", "heartbeat_interval"},
                                          {"node_down_after_ms", "node_down_after"}};
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        int64_t ms = rs_cluster_int(st, keys[i][0]);
        char text[32];
        common_format_duration(ms, text, sizeof(text));
        json_object_set_new(into, keys[i][0], json_integer(ms));
        json_object_set_new(into, keys[i][1], json_string(text));
    }
    raft_id leader = 0;
    const char *addr = NULL;
    raft_leader(rs_store_raft(srv->store), &leader, &addr);
    char hex[17];
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)leader);
    json_object_set_new(into, "leader", json_string(leader ? hex : ""));
    return into;
}

static int address_valid(const char *a)
{
    unsigned ip[4], port;
    char tail;
    return a && sscanf(a, "%u.%u.%u.%u:%u%c", &ip[0], &ip[1], &ip[2], &ip[3], &port, &tail) == 5 &&
           ip[0] < 256 && ip[1] < 256 && ip[2] < 256 && ip[3] < 256 && port > 0 && port < 65536;
}

struct join_ctx {
    struct api__call *call;
    char credential[65];
    int manager;
};

static void join_cb(void *data, struct rs_op_result *res)
{
    struct join_ctx *j = data;
    struct api__call *call = j->call;
    if (res->err.code != API_OK) {
        api__reply_err(call, &res->err);
    } else {
        struct rs_state *st = rs_store_state(call->srv->store);
        json_t *node = json_loadb(res->body, res->body_len, 0, NULL);
        json_t *ans =
            json_pack("{s:o, s:s, s:s, s:o}", "node", node, "credential", j->credential,
                      "cluster_id", rs_cluster_str(st, "id"), "managers", managers_list(call->srv));
        if (j->manager)
            json_object_set_new(ans, "admin_token", json_string(rs_cluster_str(st, "admin_token")));
        api__reply_json(call, 200, res->index, timing(call->srv, ans));
    }
    free(j);
}

/* Checks the join request's fields; answers and returns NULL when bad. */
static json_t *join_node(struct api__call *call, const json_t *in, const char *role)
{
    const char *name = json_string_value(json_object_get(in, "name"));
    const char *id = json_string_value(json_object_get(in, "id"));
    const char *api = json_string_value(json_object_get(in, "api_address"));
    const char *raft = json_string_value(json_object_get(in, "raft_address"));
    json_t *labels = json_object_get(in, "labels");
    json_t *resources = json_object_get(in, "resources");
    const char *bad = !name || !api_spec_name_valid(name) ? "name"
                      : !id || strlen(id) != 16 || strspn(id, "0123456789abcdef") != 16 ||
                              strtoull(id, NULL, 16) == 0
                          ? "id"
                      : !address_valid(api)                                  ? "api_address"
                      : strcmp(role, "manager") == 0 && !address_valid(raft) ? "raft_address"
                      : labels && !json_is_object(labels)                    ? "labels"
                      : resources && !json_is_object(resources)              ? "resources"
                                                                             : NULL;
    if (bad) {
        api__reply_error(call, API_BAD_REQUEST, bad, "missing or invalid");
        return NULL;
    }
    json_t *node =
        json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}", "id", id, "name", name, "role", role,
                  "api_address", api, "labels", labels ? json_incref(labels) : json_object(),
                  "resources", resources ? json_incref(resources) : json_object());
    /* Kept for workers too: a promoted worker becomes a Raft member there. */
    if (address_valid(raft))
        json_object_set_new(node, "raft_address", json_string(raft));
    return node;
}

void api__cluster_join(struct api__call *call)
{
    struct rs_state *st = rs_store_state(call->srv->store);
    struct api_err err;
    json_t *in = api__parse_body(call, &err);
    if (!in) {
        api__reply_err(call, &err);
        return;
    }
    const char *token = json_string_value(json_object_get(in, "token"));
    const char *role = NULL;
    if (token && st->cluster && common_secret_equal(token, rs_cluster_str(st, "manager_token")))
        role = "manager";
    else if (token && st->cluster && common_secret_equal(token, rs_cluster_str(st, "worker_token")))
        role = "worker";
    if (!role) {
        json_decref(in);
        api__reply_error(call, API_UNAUTHORIZED, "token",
                         token ? "invalid or rotated join token" : "a join token is required");
        return;
    }
    json_t *node = join_node(call, in, role);
    json_decref(in);
    if (!node)
        return;
    struct join_ctx *j = xcalloc(1, sizeof(*j));
    j->call = call;
    j->manager = strcmp(role, "manager") == 0;
    common_random_hex(j->credential, 32);
    json_t *op = json_pack("{s:s, s:o, s:s, s:I}", "op", "node.register", "node", node,
                           "credential", j->credential, "at", (json_int_t)common_wall_ms());
    if (rs_store_submit(call->srv->store, op, join_cb, j) != 0) {
        free(j);
        api__reply_error(call, API_NO_LEADER, NULL, "no leader: retry");
    }
}

static const char *token_role(struct api__call *call)
{
    if (strcmp(call->arg, "worker") == 0 || strcmp(call->arg, "manager") == 0)
        return call->arg;
    api__reply_error(call, API_BAD_REQUEST, "role", "must be worker or manager");
    return NULL;
}

void api__join_token_get(struct api__call *call)
{
    const char *role = token_role(call);
    if (!role)
        return;
    struct rs_state *st = rs_store_state(call->srv->store);
    char key[32];
    snprintf(key, sizeof(key), "%s_token", role);
    if (!st->cluster) {
        api__reply_error(call, API_UNAVAILABLE, NULL, "the cluster is not initialized yet");
        return;
    }
    api__reply_json(call, 200, st->nodes_index,
                    json_pack("{s:s, s:s}", "role", role, "token", rs_cluster_str(st, key)));
}

void api__join_token_rotate(struct api__call *call)
{
    const char *role = token_role(call);
    if (!role)
        return;
    char secret[41], token[64];
    common_random_hex(secret, 20);
    snprintf(token, sizeof(token), "SHOAL-%s-%s", strcmp(role, "manager") == 0 ? "MGR" : "WRK",
             secret);
    api__submit(call,
                json_pack("{s:s, s:s, s:s}", "op", "cluster.rotate", "role", role, "token", token),
                200);
}

const struct rs_node *api__node_auth(struct api__call *call)
{
    const struct rs_node *n = rs_state_node(rs_store_state(call->srv->store), call->arg);
    const char *auth = call->req->authorization;
    if (!n || strcmp(n->id, call->arg) != 0 || !auth || strncasecmp(auth, "Bearer ", 7) != 0 ||
        !common_secret_equal(auth + 7, n->credential)) {
        api__reply_error(call, API_UNAUTHORIZED, NULL,
                         "unknown node or wrong credential: this node is not in the cluster");
        return NULL;
    }
    return n;
}

void api__node_heartbeat(struct api__call *call)
{
    struct api_server *srv = call->srv;
    const struct rs_node *n = api__node_auth(call);
    if (!n)
        return;
    rs_store_heartbeat(srv->store, n->id);
    json_t *ans =
        json_pack("{s:o, s:s}", "managers", managers_list(srv), "role", rs_node_str(n, "role"));
    api__reply_json(call, 200, rs_store_state(srv->store)->nodes_index, timing(srv, ans));
}

void api__cluster_backup(struct api__call *call)
{
    struct rs_state *st = rs_store_state(call->srv->store);
    size_t len;
    char *text = rs_state_encode(st, &len);
    api__reply(call, 200, st->index, text, len);
    free(text);
}
