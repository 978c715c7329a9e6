/* The state's nodes and cluster record: registration, status, availability,
 * labels, roles and removal, as the FSM applies them. */
#include <errno.h>
#include <string.h>

#include "common/buf.h"
#include "common/util.h"
#include "raft/events.h"
#include "raft/state_internal.h"

static void node_free(struct rs_node *n)
{
    free(n->id);
    json_decref(n->obj);
    free(n->credential);
    free(n);
}

void rs__nodes_free(struct rs_state *s)
{
    for (size_t i = 0; i < s->n_nodes; i++)
        node_free(s->nodes[i]);
    free(s->nodes);
    s->nodes = NULL;
    s->n_nodes = s->cap_nodes = 0;
    json_decref(s->cluster);
    s->cluster = NULL;
}

static size_t node_pos(const struct rs_state *s, const char *id)
{
    for (size_t i = 0; i < s->n_nodes; i++)
        if (strcmp(s->nodes[i]->id, id) == 0)
            return i;
    return s->n_nodes;
}

const struct rs_node *rs_state_node(const struct rs_state *s, const char *key)
{
    size_t pos = node_pos(s, key);
    if (pos < s->n_nodes)
        return s->nodes[pos];
    for (size_t i = 0; i < s->n_nodes; i++)
        if (strcmp(rs_node_str(s->nodes[i], "name"), key) == 0)
            return s->nodes[i];
    return NULL;
}

const char *rs_node_str(const struct rs_node *n, const char *key)
{
    const char *v = json_string_value(json_object_get(n->obj, key));
    return v ? v : "";
}

const char *rs_cluster_str(const struct rs_state *s, const char *key)
{
    const char *v = json_string_value(json_object_get(s->cluster, key));
    return v ? v : "";
}

int64_t rs_cluster_int(const struct rs_state *s, const char *key)
{
    return json_integer_value(json_object_get(s->cluster, key));
}

static void nodes_changed(struct rs_state *s, uint64_t index)
{
    s->nodes_index = index;
}

static void node_touch(struct rs_state *s, struct rs_node *n, uint64_t index)
{
    json_int_t version = json_integer_value(json_object_get(n->obj, "version"));
    json_object_set_new(n->obj, "version", json_integer(version + 1));
    json_object_set_new(n->obj, "modify_index", json_integer((json_int_t)index));
    n->modify_index = index;
    nodes_changed(s, index);
}

static void node_answer(struct rs_op_result *res, const struct rs_node *n, int created)
{
    if (!res)
        return;
    char *body = json_dumps(n->obj, JSON_COMPACT);
    rs__answer(res, body, strlen(body), created);
    free(body);
}

/* Adds or replaces the node described by `node` (borrowed). */
static struct rs_node *node_put(struct rs_state *s, const json_t *node, const char *credential,
                                uint64_t index, int *created)
{
    const char *id = json_string_value(json_object_get(node, "id"));
    size_t pos = node_pos(s, id);
    struct rs_node *n;
    json_int_t create_index = (json_int_t)index, version = 0;
    *created = pos == s->n_nodes;
    if (*created) {
        if (s->n_nodes == s->cap_nodes) {
            s->cap_nodes = s->cap_nodes ? s->cap_nodes * 2 : 8;
            s->nodes = xrealloc(s->nodes, s->cap_nodes * sizeof(*s->nodes));
        }
        n = s->nodes[s->n_nodes++] = xcalloc(1, sizeof(*n));
        n->id = xstrdup(id);
    } else {
        n = s->nodes[pos];
        create_index = json_integer_value(json_object_get(n->obj, "create_index"));
        version = json_integer_value(json_object_get(n->obj, "version"));
        json_decref(n->obj);
        free(n->credential);
    }
    n->obj = json_deep_copy(node);
    n->credential = xstrdup(credential ? credential : "");
    json_object_set_new(n->obj, "create_index", json_integer(create_index));
    json_object_set_new(n->obj, "version", json_integer(version));
    if (!json_object_get(n->obj, "availability"))
        json_object_set_new(n->obj, "availability", json_string("active"));
    json_object_set_new(n->obj, "status", json_string("ready"));
    node_touch(s, n, index);
    return n;
}

static int node_valid(const json_t *node, struct rs_op_result *res)
{
    const char *id = json_string_value(json_object_get(node, "id"));
    const char *name = json_string_value(json_object_get(node, "name"));
    const char *role = json_string_value(json_object_get(node, "role"));
    if (!json_is_object(node) || !id || !name || !role ||
        (strcmp(role, "manager") != 0 && strcmp(role, "worker") != 0)) {
        rs__refuse(res, API_BAD_REQUEST, "node",
                   "malformed command: node without id, name or role");
        return 0;
    }
    return 1;
}

void rs__op_cluster_init(struct rs_state *s, const json_t *op, uint64_t index,
                         struct rs_op_result *res)
{
    json_t *cluster = json_object_get(op, "cluster");
    json_t *node = json_object_get(op, "node");
    if (s->cluster) {
        rs__refuse(res, API_CONFLICT, NULL, "the cluster is already initialized");
        return;
    }
    if (!json_is_object(cluster) || !node_valid(node, res)) {
        rs__refuse(res, API_BAD_REQUEST, "cluster", "malformed command: cluster.init");
        return;
    }
    s->cluster = json_deep_copy(cluster);
    int created;
    struct rs_node *n =
        node_put(s, node, json_string_value(json_object_get(op, "credential")), index, &created);
    if (created)
        rs__event_node(s, rs__op_at(op), "node.joined", n);
    node_answer(res, n, created);
}

void rs__op_cluster_rotate(struct rs_state *s, const json_t *op, uint64_t index,
                           struct rs_op_result *res)
{
    const char *role = json_string_value(json_object_get(op, "role"));
    const char *token = json_string_value(json_object_get(op, "token"));
    if (!s->cluster || !role || !token ||
        (strcmp(role, "worker") != 0 && strcmp(role, "manager") != 0)) {
        rs__refuse(res, API_BAD_REQUEST, "role", "malformed command: cluster.rotate");
        return;
    }
    char key[32];
    snprintf(key, sizeof(key), "%s_token", role);
    json_object_set_new(s->cluster, key, json_string(token));
    nodes_changed(s, index);
    rs__answer_json(res, json_pack("{s:s, s:s}", "role", role, "token", token));
}

void rs__op_node_register(struct rs_state *s, const json_t *op, uint64_t index,
                          struct rs_op_result *res)
{
    json_t *node = json_object_get(op, "node");
    if (!node_valid(node, res))
        return;
    const char *id = json_string_value(json_object_get(node, "id"));
    const char *name = json_string_value(json_object_get(node, "name"));
    const struct rs_node *same_name = rs_state_node(s, name);
    if (same_name && strcmp(same_name->id, id) != 0) {
        rs__refuse(res, API_CONFLICT, "name", "a node named \"%s\" is already in the cluster",
                   name);
        return;
    }
    int created;
    struct rs_node *n =
        node_put(s, node, json_string_value(json_object_get(op, "credential")), index, &created);
    if (created)
        rs__event_node(s, rs__op_at(op), "node.joined", n);
    node_answer(res, n, created);
}

static struct rs_node *op_node(struct rs_state *s, const json_t *op, struct rs_op_result *res)
{
    const char *id = json_string_value(json_object_get(op, "id"));
    size_t pos = id ? node_pos(s, id) : s->n_nodes;
    if (pos == s->n_nodes) {
        rs__refuse(res, API_NOT_FOUND, "id", "no node \"%s\"", id ? id : "");
        return NULL;
    }
    return s->nodes[pos];
}

void rs__op_node_update(struct rs_state *s, const json_t *op, uint64_t index,
                        struct rs_op_result *res)
{
    struct rs_node *n = op_node(s, op, res);
    if (!n || !rs__cas_ok(op, n->modify_index, "node", res))
        return;
    json_t *availability = json_object_get(op, "availability");
    json_t *labels = json_object_get(op, "labels");
    rs__event_availability(s, rs__op_at(op), n, availability);
    if (json_is_string(availability))
        json_object_set(n->obj, "availability", availability);
    if (json_is_object(labels))
        json_object_set_new(n->obj, "labels", json_deep_copy(labels));
    node_touch(s, n, index);
    node_answer(res, n, 0);
}

void rs__op_node_status(struct rs_state *s, const json_t *op, uint64_t index,
                        struct rs_op_result *res)
{
    struct rs_node *n = op_node(s, op, res);
    const char *status = json_string_value(json_object_get(op, "status"));
    if (!n)
        return;
    if (!status || (strcmp(status, "ready") != 0 && strcmp(status, "down") != 0)) {
        rs__refuse(res, API_BAD_REQUEST, "status", "malformed command: node.status");
        return;
    }
    if (strcmp(rs_node_str(n, "status"), status) != 0) {
        json_object_set_new(n->obj, "status", json_string(status));
        node_touch(s, n, index);
        rs__event_node(s, rs__op_at(op), strcmp(status, "down") == 0 ? "node.down" : "node.up", n);
    }
    node_answer(res, n, 0);
}

void rs__op_node_remove(struct rs_state *s, const json_t *op, uint64_t index,
                        struct rs_op_result *res)
{
    struct rs_node *n = op_node(s, op, res);
    if (!n || !rs__cas_ok(op, n->modify_index, "node", res))
        return;
    size_t pos = node_pos(s, n->id);
    rs__answer_json(res, json_pack("{s:s, s:I}", "deleted", n->id, "index", (json_int_t)index));
    rs__event_node(s, rs__op_at(op), "node.removed", n);
    node_free(n);
    s->nodes[pos] = s->nodes[--s->n_nodes];
    nodes_changed(s, index);
}

static size_t count_managers(const struct rs_state *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n_nodes; i++)
        n += strcmp(rs_node_str(s->nodes[i], "role"), "manager") == 0;
    return n;
}

void rs__op_node_role(struct rs_state *s, const json_t *op, uint64_t index,
                      struct rs_op_result *res)
{
    struct rs_node *n = op_node(s, op, res);
    const char *role = json_string_value(json_object_get(op, "role"));
    if (!n)
        return;
    if (!role || (strcmp(role, "manager") != 0 && strcmp(role, "worker") != 0)) {
        rs__refuse(res, API_BAD_REQUEST, "role", "malformed command: node.role");
        return;
    }
    int is_manager = strcmp(rs_node_str(n, "role"), "manager") == 0;
    if (is_manager && strcmp(role, "worker") == 0 && count_managers(s) <= 1) {
        rs__refuse(res, API_CONFLICT, "role", "node \"%s\" is the last manager", n->id);
        return;
    }
    if (strcmp(rs_node_str(n, "role"), role) != 0) {
        json_object_set_new(n->obj, "role", json_string(role));
        node_touch(s, n, index);
    }
    node_answer(res, n, 0);
}

void rs__op_members_reset(struct rs_state *s, const json_t *op, uint64_t index,
                          struct rs_op_result *res)
{
    const char *keep = json_string_value(json_object_get(op, "keep"));
    size_t removed = 0;
    for (size_t i = 0; keep && i < s->n_nodes;) {
        struct rs_node *n = s->nodes[i];
        if (strcmp(n->id, keep) != 0 && strcmp(rs_node_str(n, "role"), "manager") == 0) {
            rs__event_node(s, rs__op_at(op), "node.removed", n);
            node_free(n);
            s->nodes[i] = s->nodes[--s->n_nodes];
            removed++;
        } else {
            i++;
        }
    }
    nodes_changed(s, index);
    rs__answer_json(res, json_pack("{s:I}", "removed", (json_int_t)removed));
}

void rs__nodes_encode(const struct rs_state *s, struct common_buf *b)
{
    common_buf_puts(b, ",\"cluster\":");
    char *cluster =
        json_dumps(s->cluster ? s->cluster : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    common_buf_puts(b, cluster);
    free(cluster);
    common_buf_printf(b, ",\"nodes_index\":%llu,\"nodes\":[", (unsigned long long)s->nodes_index);
    for (size_t i = 0; i < s->n_nodes; i++) {
        json_t *o = json_copy(s->nodes[i]->obj);
        json_object_set_new(o, "credential", json_string(s->nodes[i]->credential));
        char *text = json_dumps(o, JSON_COMPACT);
        common_buf_printf(b, "%s%s", i ? "," : "", text);
        free(text);
        json_decref(o);
    }
    common_buf_puts(b, "]");
}

int rs__nodes_decode(struct rs_state *fresh, const json_t *root)
{
    json_t *cluster = json_object_get(root, "cluster");
    json_t *nodes = json_object_get(root, "nodes");
    if (json_is_object(cluster))
        fresh->cluster = json_deep_copy(cluster);
    fresh->nodes_index = (uint64_t)json_integer_value(json_object_get(root, "nodes_index"));
    size_t i;
    json_t *o;
    json_array_foreach(nodes, i, o)
    {
        const char *id = json_string_value(json_object_get(o, "id"));
        if (!id || node_pos(fresh, id) != fresh->n_nodes)
            return -EINVAL;
        if (fresh->n_nodes == fresh->cap_nodes) {
            fresh->cap_nodes = fresh->cap_nodes ? fresh->cap_nodes * 2 : 8;
            fresh->nodes = xrealloc(fresh->nodes, fresh->cap_nodes * sizeof(*fresh->nodes));
        }
        struct rs_node *n = fresh->nodes[fresh->n_nodes++] = xcalloc(1, sizeof(*n));
        n->id = xstrdup(id);
        n->obj = json_deep_copy(o);
        const char *cred = json_string_value(json_object_get(o, "credential"));
        n->credential = xstrdup(cred ? cred : "");
        json_object_del(n->obj, "credential");
        n->modify_index = (uint64_t)json_integer_value(json_object_get(o, "modify_index"));
    }
    return 0;
}
