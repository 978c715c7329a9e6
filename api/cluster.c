/* /v1/health and /v1/cluster: what this node knows of the cluster. */
#include <raft.h>
#include <string.h>

#include "api/internal.h"
#include "common/util.h"

static const char *raft_role_name(int role)
{
    switch (role) {
    case RAFT_VOTER:
        return "voter";
    case RAFT_STANDBY:
        return "standby";
    default:
        return "spare";
    }
}

static const char *raft_state_name(int state)
{
    switch (state) {
    case RAFT_LEADER:
        return "leader";
    case RAFT_CANDIDATE:
        return "candidate";
    case RAFT_FOLLOWER:
        return "follower";
    default:
        return "unavailable";
    }
}

void api__health(struct api__call *call)
{
    struct api_server *srv = call->srv;
    int leader = srv->store && rs_store_is_leader(srv->store);
    api__reply_json(call, 200, 0,
                    json_pack("{s:s, s:s, s:s, s:b}", "status", srv->closing ? "stopping" : "ok",
                              "node", srv->node_id, "role", srv->store ? "manager" : "worker",
                              "leader", leader));
}

static uint64_t cluster_index(struct api_server *srv, const char *arg)
{
    (void)arg;
    return rs_store_state(srv->store)->index;
}

static void cluster_render(struct api__call *call, struct api__doc *doc)
{
    struct api_server *srv = call->srv;
    const char *arg = call->arg;
    (void)arg;
    struct raft *r = rs_store_raft(srv->store);
    raft_id leader_id = 0;
    const char *leader_addr = NULL;
    raft_leader(r, &leader_id, &leader_addr);
    char leader_hex[17] = "";
    if (leader_id)
        snprintf(leader_hex, sizeof(leader_hex), "%016llx", (unsigned long long)leader_id);
    json_t *members = json_array();
    for (unsigned i = 0; i < r->configuration.n; i++) {
        const struct raft_server *m = &r->configuration.servers[i];
        char id[17];
        snprintf(id, sizeof(id), "%016llx", (unsigned long long)m->id);
        json_array_append_new(members, json_pack("{s:s, s:s, s:s}", "id", id, "address", m->address,
                                                 "role", raft_role_name(m->role)));
    }
    uint64_t index = rs_store_state(srv->store)->index;
    json_t *body = json_pack(
        "{s:s, s:{s:s, s:s?}, s:{s:s, s:s, s:s, s:s, s:s}, s:I, s:I, s:I, s:o}", "id",
        srv->cluster_id, "leader", "id", leader_hex, "address", leader_addr, "node", "id",
        srv->node_id, "name", srv->node_name, "raft_address", srv->raft_address, "api_address",
        srv->listen, "state", raft_state_name(raft_state(r)), "index", (json_int_t)index, "applied",
        (json_int_t)raft_last_applied(r), "term", (json_int_t)r->current_term, "members", members);
    doc->status = 200;
    doc->owned = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    doc->body = doc->owned;
    doc->len = strlen(doc->owned);
    doc->index = index;
}

void api__cluster_get(struct api__call *call)
{
    api__serve_get(call, cluster_index, cluster_render);
}
