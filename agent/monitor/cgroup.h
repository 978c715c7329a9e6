/* What the monitor does with the task's cgroups (v1 or v2 directories):
 * join one, kill every process in one, read its OOM-kill counter. */
#ifndef SHOAL_AGENT_MONITOR_CGROUP_H
#define SHOAL_AGENT_MONITOR_CGROUP_H

#include <stdbool.h>
#include <sys/types.h>

/* Moves the calling process into cgroup dir (borrowed) by writing "0" into
 * dir/cgroup.procs. Only open, write and close: safe between fork and exec.
 * Returns 0 or a negative errno. */
int mon_cgroup_join(const char *dir);

/* Sends sig to every pid listed in dir/cgroup.procs except skip (the
 * monitor itself). Returns 0 or the negative errno of reading the list. */
int mon_cgroup_kill(const char *dir, int sig, pid_t skip);

/* Whether dir counted an OOM kill: an "oom_kill N" line with N > 0 in
 * memory.oom_control (v1) or memory.events (v2). False when neither file
 * can be read. */
bool mon_cgroup_oom(const char *dir);

#endif
