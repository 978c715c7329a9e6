/* Live resource use of this node's tasks, read from their cgroups (found by
 * task id): memory (less the inactive page cache, as `docker stats` counts
 * it), the memory limit, cpu time used and the number of processes. A read
 * is a few small synchronous reads of cgroupfs and /proc, quick enough for
 * the loop; cpu percent needs two reads apart in time (the API takes them). */
#ifndef SHOAL_AGENT_STATS_H
#define SHOAL_AGENT_STATS_H

#include <jansson.h>
#include <stdint.h>

#define AGENT_STATS_MAX_TASKS 1000 /* tasks in one query */

struct agent_task_stats {
    int64_t memory;       /* bytes in use (rss and active cache) */
    int64_t memory_limit; /* bytes, 0 = none */
    int64_t cpu_ns;       /* cpu time used since the task started, nanoseconds */
    int64_t pids;         /* processes (v1 without the pids controller) or tasks */
};

/* Reads the stats of task (borrowed id) from its cgroups. Returns 0 with
 * out filled, -ENOENT when the task has no cgroup here or no process left in
 * it (not running on this node), or another negative errno with errmsg (256
 * bytes) set. */
int agent_stats_read(const char *task, struct agent_task_stats *out, char *errmsg);

/* The API's node_stats callback (data unused): tasks (borrowed) is a list of
 * task ids. *answer (transferred) is {"stats": {ID: {"memory",
 * "memory_limit" (null for none), "cpu_ns", "pids"}}, "missing": [ID],
 * "errors": {ID: why}}. Returns 0, or -EINVAL with errmsg set when tasks is
 * not a list of at most AGENT_STATS_MAX_TASKS strings. */
int agent_stats_query(void *data, const json_t *tasks, json_t **answer, char *errmsg);

#endif
