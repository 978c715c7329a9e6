/* Per-task cgroups: the hierarchy detected at start (v1 controllers or the
 * v2 unified tree), a `shoal/<task>` group per controller with the task's
 * limits, OOM counts, and removal. Synchronous file I/O on cgroupfs (a few
 * small writes per task start, no disk). */
#ifndef SHOAL_AGENT_CGROUP_H
#define SHOAL_AGENT_CGROUP_H

#include <stddef.h>
#include <stdint.h>

#define AGENT_CGROUP_MAX_DIRS 4

struct agent_cgroup_limits {
    int64_t memory; /* bytes, 0 = none */
    double cpu;     /* CPUs, 0 = none */
    int64_t pids;   /* 0 = none */
};

/* The groups made for one task: the directories a monitor joins. */
struct agent_cgroup {
    char dirs[AGENT_CGROUP_MAX_DIRS][256];
    size_t n_dirs;
};

/* Detects the hierarchy (once; later calls return the first answer).
 * Returns 2 (unified v2), 1 (v1 controllers), or 0 (no usable cgroupfs:
 * limits cannot be applied). */
int agent_cgroup_version(void);

/* Creates the task's groups (v1: memory always, so that OOM kills are seen,
 * pids and cpuacct always, for stats; cpu when limited) under `shoal/<task>`
 * and writes the limits.
 * Returns 0 or a negative errno with errmsg (256 bytes) set; on error nothing
 * is left behind. With no usable cgroupfs and no limits asked, succeeds with
 * no groups. */
int agent_cgroup_create(const char *task, const struct agent_cgroup_limits *lim,
                        struct agent_cgroup *out, char *errmsg);

/* Finds the groups of a task made by an earlier run (after a restart). */
void agent_cgroup_find(const char *task, struct agent_cgroup *out);

/* The directory of cg for controller ("memory", "cpuacct", "pids", "cpu")
 * on v1, the task's one directory on v2, or NULL when cg has none.
 * Borrowed from cg. */
const char *agent_cgroup_dir(const struct agent_cgroup *cg, const char *controller);

/* The group a task's OOM kills are counted in and whose processes are all
 * killed at the end of a stop (v1 memory, or the v2 group), whether or not
 * it exists yet (runc makes a container's from cgroupsPath /shoal/TASK). */
void agent_cgroup_watched(const char *task, struct agent_cgroup *out);

/* Removes the task's (empty) groups under every controller: runc makes one
 * per v1 hierarchy, more than agent_cgroup_find knows. */
void agent_cgroup_remove_all(const char *task);

/* Kills whatever is left in the groups and removes them (best effort). */
void agent_cgroup_remove(const struct agent_cgroup *cg);

#endif
