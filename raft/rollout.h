/* Rolling updates, the leader's side: every reconciler round, for each
 * service whose rollout is under way, decides from its tasks (their
 * versions, states, health and how long they ran) which old tasks to
 * replace next, when the rollout failed, paused or completed. */
#ifndef SHOAL_RAFT_ROLLOUT_H
#define SHOAL_RAFT_ROLLOUT_H

#include <jansson.h>
#include <stdint.h>

struct rs_state;
struct sch_plan;

/* What one round asks for. */
struct rs_rollout_round {
    json_t *stops;     /* owned: [{id, orphaned: false}] to add to the plan's stops */
    json_t *ops;       /* owned: commands to submit (rollout.update, service.rollback) */
    int64_t wake_wall; /* when a waiting rollout wants a round (wall ms), 0 = none */
    /* owned: {service: {place: old task id}}, the places whose old task this
     * round hid from the scheduler to start their new task first
     * (rs_rollout_fallback reads it). A place is "s<slot>" or "n<node id>". */
    json_t *started_first;
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

/* Start-first with nowhere to start: for each place in out->started_first
 * whose new task the plan left unplaced, plans again as if those old tasks
 * had ended; a place the second plan fills has its old task in the way (a
 * port it publishes, its reservations), and falls back to stop-first: its old
 * task is added to out->stops (the scheduler places the new one once it
 * ended). services, nodes and tasks are the plan's input (borrowed, tasks as
 * rs_rollout_round left it), plan the plan made of them (borrowed). Returns
 * how many places fell back. */
size_t rs_rollout_fallback(struct rs_rollout_round *out, const struct sch_plan *plan,
                           const json_t *services, const json_t *nodes, const json_t *tasks);

void rs_rollout_round_free(struct rs_rollout_round *out);

#endif
