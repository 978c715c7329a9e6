/* Leader-side membership: node liveness from heartbeats (status ready/down
 * written to the state on change only), and the Raft configuration kept in
 * line with the managers the state lists (add, promote to voter up to the
 * cluster's target, demote, remove), one change at a time as raft allows. */
#ifndef SHOAL_RAFT_MEMBERS_H
#define SHOAL_RAFT_MEMBERS_H

#include <raft.h>
#include <stddef.h>
#include <stdint.h>

struct rs_store;

struct rs_members_seen {
    char id[17];
    uint64_t seen_ms;
    int status_pending;
};

struct rs_members {
    struct rs_store *store; /* borrowed */
    struct rs_members_seen *seen;
    size_t n_seen;
    size_t cap_seen;
    struct raft_change change;
    int change_pending;
    uint64_t change_started_ms;
};

void rs_members_init(struct rs_members *m, struct rs_store *store);
void rs_members_close(struct rs_members *m);

/* Records a heartbeat of node id at now_ms. */
void rs_members_heartbeat(struct rs_members *m, const char *id, uint64_t now_ms);

/* Last heartbeat of a node known to this leader, 0 when none. */
uint64_t rs_members_last_seen(const struct rs_members *m, const char *id);

/* This node just became leader: every node gets a grace period from now. */
void rs_members_leader_start(struct rs_members *m, uint64_t now_ms);

/* One round on the leader: node status changes and at most one Raft
 * configuration change. */
void rs_members_tick(struct rs_members *m, uint64_t now_ms);

#endif
