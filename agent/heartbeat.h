/* Node heartbeats: every node (managers too) tells a manager it is alive,
 * fails over to the next manager when one does not answer, and learns the
 * current manager list and its own role from each answer. */
#ifndef SHOAL_AGENT_HEARTBEAT_H
#define SHOAL_AGENT_HEARTBEAT_H

#include <uv.h>

#include "agent/node.h"

struct agent_heartbeat;

/* Called when the cluster says this node's role changed (promote/demote). */
typedef void (*agent_heartbeat_role_cb)(void *data, const char *role);

/* Starts heartbeating for node (borrowed, must outlive the heartbeat; its
 * managers list is updated and saved as answers come). Returns 0 or a
 * negative errno. */
int agent_heartbeat_start(struct agent_heartbeat **out, uv_loop_t *loop, struct agent_node *node,
                          agent_heartbeat_role_cb role_cb, void *data);

/* The API address of the manager heartbeats currently go to, or NULL. */
const char *agent_heartbeat_manager(struct agent_heartbeat *hb);

/* Moves to the next known manager (another module found this one dead). */
void agent_heartbeat_failover(struct agent_heartbeat *hb);

/* Stops, frees, then calls cb. */
void agent_heartbeat_stop(struct agent_heartbeat *hb, void (*cb)(void *data), void *data);

#endif
