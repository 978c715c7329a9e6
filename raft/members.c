#include "raft/members.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "raft/store.h"

#define DEFAULT_DOWN_AFTER_MS 3000
#define CHANGE_TIMEOUT_MS     30000

void rs_members_init(struct rs_members *m, struct rs_store *store)
{
    memset(m, 0, sizeof(*m));
    m->store = store;
    m->change.data = m;
}

void rs_members_close(struct rs_members *m)
{
    free(m->seen);
    m->seen = NULL;
    m->n_seen = m->cap_seen = 0;
}

static struct rs_members_seen *seen_get(struct rs_members *m, const char *id, int create)
{
    for (size_t i = 0; i < m->n_seen; i++)
        if (strcmp(m->seen[i].id, id) == 0)
            return &m->seen[i];
    if (!create)
        return NULL;
    if (m->n_seen == m->cap_seen) {
        m->cap_seen = m->cap_seen ? m->cap_seen * 2 : 16;
        m->seen = xrealloc(m->seen, m->cap_seen * sizeof(*m->seen));
    }
    struct rs_members_seen *e = &m->seen[m->n_seen++];
    memset(e, 0, sizeof(*e));
    common_strlcpy(e->id, id, sizeof(e->id));
    return e;
}

void rs_members_heartbeat(struct rs_members *m, const char *id, uint64_t now_ms)
{
    seen_get(m, id, 1)->seen_ms = now_ms;
}

uint64_t rs_members_last_seen(const struct rs_members *m, const char *id)
{
    for (size_t i = 0; i < m->n_seen; i++)
        if (strcmp(m->seen[i].id, id) == 0)
            return m->seen[i].seen_ms;
    return 0;
}

void rs_members_leader_start(struct rs_members *m, uint64_t now_ms)
{
    for (size_t i = 0; i < m->n_seen; i++) {
        m->seen[i].seen_ms = now_ms;
        m->seen[i].status_pending = 0;
    }
    struct rs_state *st = rs_store_state(m->store);
    for (size_t i = 0; i < st->n_nodes; i++)
        seen_get(m, st->nodes[i]->id, 1)->seen_ms = now_ms;
}

struct status_req {
    struct rs_members *m;
    char id[17];
};

static void status_done(void *data, struct rs_op_result *res)
{
    struct status_req *req = data;
    struct rs_members_seen *e = seen_get(req->m, req->id, 0);
    if (e)
        e->status_pending = 0;
    if (res->err.code != API_OK)
        LOGW("members: status of node %s not written: %s", req->id, res->err.msg);
    free(req);
}

static void set_status(struct rs_members *m, struct rs_members_seen *e, const char *status)
{
    struct status_req *req = xcalloc(1, sizeof(*req));
    req->m = m;
    common_strlcpy(req->id, e->id, sizeof(req->id));
    json_t *op = json_pack("{s:s, s:s, s:s, s:I}", "op", "node.status", "id", e->id, "status",
                           status, "at", (json_int_t)common_wall_ms());
    if (rs_store_submit(m->store, op, status_done, req) == 0) {
        e->status_pending = 1;
        LOGI("members: node %s is %s", e->id, status);
    } else {
        free(req);
    }
}

static void liveness(struct rs_members *m, uint64_t now_ms)
{
    struct rs_state *st = rs_store_state(m->store);
    struct raft *r = rs_store_raft(m->store);
    char self[17];
    snprintf(self, sizeof(self), "%016llx", (unsigned long long)r->id);
    rs_members_heartbeat(m, self, now_ms);
    int64_t down_after = rs_cluster_int(st, "node_down_after_ms");
    if (down_after <= 0)
        down_after = DEFAULT_DOWN_AFTER_MS;
    for (size_t i = 0; i < st->n_nodes; i++) {
        const struct rs_node *n = st->nodes[i];
        struct rs_members_seen *e = seen_get(m, n->id, 1);
        if (e->seen_ms == 0)
            e->seen_ms = now_ms; /* a node registered under this leader */
        if (e->status_pending)
            continue;
        int fresh = now_ms - e->seen_ms <= (uint64_t)down_after;
        int ready = strcmp(rs_node_str(n, "status"), "ready") == 0;
        if (ready && !fresh)
            set_status(m, e, "down");
        else if (!ready && fresh)
            set_status(m, e, "ready");
    }
}

static void change_done(struct raft_change *req, int status)
{
    struct rs_members *m = req->data;
    m->change_pending = 0;
    if (status != 0)
        LOGW("members: configuration change failed: %s", raft_strerror(status));
}

static const struct rs_node *manager_node(const struct rs_state *st, raft_id id)
{
    char hex[17];
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)id);
    const struct rs_node *n = rs_state_node(st, hex);
    return n && strcmp(rs_node_str(n, "role"), "manager") == 0 ? n : NULL;
}

static int node_ready(const struct rs_node *n)
{
    return n && strcmp(rs_node_str(n, "status"), "ready") == 0;
}

static int start_change(struct rs_members *m, int rv, const char *what, raft_id id)
{
    if (rv != 0) {
        LOGW("members: %s %016llx: %s", what, (unsigned long long)id, raft_strerror(rv));
        return 1;
    }
    LOGI("members: %s %016llx", what, (unsigned long long)id);
    m->change_pending = 1;
    m->change_started_ms = common_now_ms();
    return 1;
}

/* Removes configuration members that are no longer managers, and adds
 * managers that are not members. Returns 1 when it started a change. */
static int reconcile_members(struct rs_members *m, struct raft *r, const struct rs_state *st)
{
    for (unsigned i = 0; i < r->configuration.n; i++) {
        const struct raft_server *srv = &r->configuration.servers[i];
        if (srv->id == r->id || manager_node(st, srv->id))
            continue;
        return start_change(m, raft_remove(r, &m->change, srv->id, change_done), "remove", srv->id);
    }
    for (size_t i = 0; i < st->n_nodes; i++) {
        const struct rs_node *n = st->nodes[i];
        if (strcmp(rs_node_str(n, "role"), "manager") != 0)
            continue;
        raft_id id = strtoull(n->id, NULL, 16);
        int member = 0;
        for (unsigned j = 0; j < r->configuration.n; j++)
            member |= r->configuration.servers[j].id == id;
        if (!member && node_ready(n))
            return start_change(
                m, raft_add(r, &m->change, id, rs_node_str(n, "raft_address"), change_done), "add",
                id);
    }
    return 0;
}

/* Keeps as many voters as the target allows among ready managers, promoting
 * ready standbys and spares, demoting down voters. */
static void reconcile_roles(struct rs_members *m, struct raft *r, const struct rs_state *st)
{
    int64_t target = rs_cluster_int(st, "voters");
    if (target <= 0)
        target = 3;
    unsigned voters = 0, ready_managers = 0;
    const struct raft_server *ready_nonvoter = NULL, *down_voter = NULL, *spare = NULL,
                             *extra_voter = NULL;
    for (unsigned i = 0; i < r->configuration.n; i++) {
        const struct raft_server *srv = &r->configuration.servers[i];
        int ready = srv->id == r->id || node_ready(manager_node(st, srv->id));
        ready_managers += ready;
        if (srv->role == RAFT_VOTER) {
            voters++;
            if (!ready)
                down_voter = srv;
            else if (srv->id != r->id)
                extra_voter = srv;
        } else if (ready && !ready_nonvoter) {
            ready_nonvoter = srv;
        }
        if (srv->role == RAFT_SPARE)
            spare = srv;
    }
    unsigned desired = (unsigned)(target < ready_managers ? target : ready_managers);
    if (desired == 0)
        desired = 1;
    if (ready_nonvoter && (voters < desired || down_voter)) {
        start_change(m, raft_assign(r, &m->change, ready_nonvoter->id, RAFT_VOTER, change_done),
                     "promote to voter", ready_nonvoter->id);
    } else if (voters > desired && (down_voter || extra_voter)) {
        const struct raft_server *v = down_voter ? down_voter : extra_voter;
        start_change(m, raft_assign(r, &m->change, v->id, RAFT_STANDBY, change_done),
                     "demote to standby", v->id);
    } else if (spare) {
        start_change(m, raft_assign(r, &m->change, spare->id, RAFT_STANDBY, change_done),
                     "make standby", spare->id);
    }
}

void rs_members_tick(struct rs_members *m, uint64_t now_ms)
{
    liveness(m, now_ms);
    if (m->change_pending) {
        if (now_ms - m->change_started_ms > CHANGE_TIMEOUT_MS)
            LOGW("members: a configuration change has been pending for %d s",
                 CHANGE_TIMEOUT_MS / 1000);
        return;
    }
    struct raft *r = rs_store_raft(m->store);
    const struct rs_state *st = rs_store_state(m->store);
    if (!st->cluster)
        return;
    if (!reconcile_members(m, r, st))
        reconcile_roles(m, r, st);
}
