/* The leader's reconciler: after every change of services, nodes or tasks
 * (and on a slow tick) it asks the scheduler for a plan and commits it as one
 * Raft command (tasks.plan), one plan in flight at a time. */
#ifndef SHOAL_RAFT_RECONCILE_H
#define SHOAL_RAFT_RECONCILE_H

#include <stdint.h>

struct rs_store;

struct rs_reconciler {
    struct rs_store *store; /* borrowed */
    int in_flight;
    uint64_t planned_at;   /* the state index the last plan was computed at */
    uint64_t last_run_ms;  /* monotonic */
    uint64_t last_cost_ms; /* how long the last round took */
    uint64_t wake_ms;      /* monotonic: a deferred replacement is due, 0 = none */
};

void rs_reconciler_init(struct rs_reconciler *r, struct rs_store *store);

/* One round on the leader (called often; it plans only when the state moved,
 * or every few seconds, and never with a plan in flight). */
void rs_reconciler_tick(struct rs_reconciler *r, uint64_t now_ms);

/* Forgets what was planned (leadership starts). */
void rs_reconciler_reset(struct rs_reconciler *r);

#endif
