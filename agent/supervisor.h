/* The node supervisor: watches this node's assignments with a blocking query
 * against a manager, runs them through the task state machine and its
 * driver, and reports task state changes in batches. Tasks outlive shoald:
 * on start it finds the tasks an earlier run left (DATA/tasks/ID). */
#ifndef SHOAL_AGENT_SUPERVISOR_H
#define SHOAL_AGENT_SUPERVISOR_H

#include <uv.h>

#include "agent/node.h"

struct agent_supervisor;
struct agent_task;

/* The manager API address to talk to (borrowed, valid until the loop
 * iterates), or NULL when none is known; failed() moves to another. */
struct agent_supervisor_managers {
    const char *(*current)(void *data);
    void (*failed)(void *data);
    void *data;
};

struct agent_images;

/* Starts supervising (images: the node's image service, borrowed, for
 * container tasks): adopts the tasks left in node->data_dir/tasks, then
 * watches the assignments. node and managers are borrowed (valid until the
 * supervisor is stopped). Returns 0 or a negative errno with errmsg set. */
int agent_supervisor_start(struct agent_supervisor **out, uv_loop_t *loop, struct agent_node *node,
                           const struct agent_supervisor_managers *managers,
                           struct agent_images *images, char *errmsg);

/* Stops watching and reporting and frees the supervisor (cb runs once all
 * is closed). Tasks keep running: a restarted shoald finds them again. */
void agent_supervisor_stop(struct agent_supervisor *sup, void (*cb)(void *data), void *data);

/* For tasks: their loop, and the call that queues a report. */
uv_loop_t *agent_supervisor_loop(struct agent_supervisor *sup);
void agent_supervisor_changed(struct agent_supervisor *sup, struct agent_task *t);

/* What the runc driver needs from the node: the image store, the network
 * settings, the node's data dir (runc state, volumes). */
struct agent_net_config;
struct agent_images *agent_supervisor_images(struct agent_supervisor *sup);
const struct agent_net_config *agent_supervisor_net(struct agent_supervisor *sup);
const char *agent_supervisor_data_dir(struct agent_supervisor *sup);

/* The directory of a task's files (logs): node data dir + /tasks/ID. */
void agent_supervisor_task_dir(const struct agent_node *node, const char *id, char *out,
                               size_t size);

#endif
