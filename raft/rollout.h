/* Rolling updates, the leader's side: every reconciler round, for each
 * service whose rollout is under way, decides from its tasks (their
 * versions, states, health and how long they ran) which old tasks to
 * replace next, when the rollout failed, paused or completed. */
#ifndef SHOAL_RAFT_ROLLOUT_H
#define SHOAL_RAFT_ROLLOUT_H

#include <jansson.h>
#include <stdint.h>

struct rs_state;

/* What one round asks for. */
struct rs_rollout_round {
    json_t *stops;     /* owned: [{id, orphaned: false}] to add to the plan's stops */
    json_t *ops;       /* owned: commands to submit (rollout.update, service.rollback) */
    int64_t wake_wall; /* when a waiting rollout wants a round (wall ms), 0 = none */
};

/* Runs one round at now_wall (wall-clock ms). tasks is the scheduler's input
 * (rs_reconcile_input's array): tasks that must not count for their slot
 * this round (old ones being replaced start-first, or chosen for this batch)
 * are replaced in it by copies marked desired shutdown; old tasks still
 * stopping for a stop-first batch are marked desired running, so that their
 * slot stays theirs until they ended. out is filled (free with
 * rs_rollout_round_free). */
void rs_rollout_round(const struct rs_state *st, int64_t now_wall, json_t *tasks,
                      struct rs_rollout_round *out);

void rs_rollout_round_free(struct rs_rollout_round *out);

#endif
