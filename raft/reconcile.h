/* The leader's reconciler: after every change of services, nodes or tasks
 * (and on a slow tick) it asks the scheduler for a plan and commits it as one
 * Raft command (tasks.plan), one plan in flight at a time. */
#ifndef SHOAL_RAFT_RECONCILE_H
#define SHOAL_RAFT_RECONCILE_H

#include <jansson.h>
#include <stdint.h>

struct rs_store;
struct rs_state;

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

/* Gathers the state as the scheduler's input (sch_input_from_json): every
 * service's JSON, every node's and every task's, as the reconciler plans
 * with them. overrides (borrowed, may be NULL) is an array of service
 * objects that stand in for the stored services of the same name (those
 * whose name is stored nowhere are added, a second one of a name is
 * ignored): a plan of what a write would do (POST /v1/plan), the state
 * itself unchanged. The three arrays are transferred (json_decref); they
 * hold references to the state's nodes and tasks (and to the overrides), so
 * they are valid while the state is not applied to. */
void rs_reconcile_input(const struct rs_state *st, const json_t *overrides, json_t **services,
                        json_t **nodes, json_t **tasks);

/* Forgets what was planned (leadership starts). */
void rs_reconciler_reset(struct rs_reconciler *r);

#endif
