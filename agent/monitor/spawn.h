/* Starting the task: fork, then in the child its own session, cgroups,
 * credentials, directory, stdio and signals, then execvpe. A failure in the
 * child comes back to the parent over a close-on-exec pipe. */
#ifndef SHOAL_AGENT_MONITOR_SPAWN_H
#define SHOAL_AGENT_MONITOR_SPAWN_H

#include <sys/types.h>

#include "agent/monitor/options.h"

struct mon_spawn_fds {
    int in;  /* the task's stdin (/dev/null) */
    int out; /* the write end of the stdout pipe */
    int err; /* the write end of the stderr pipe */
};

/* Starts o->argv (o and fds borrowed: the caller closes fds afterwards) and
 * waits until it has been exec'd. Returns 0 with the task in *pid, or a
 * negative errno when it could not start (-ECHILD: the child reported a
 * failure before or at exec; then it has been reaped), with *exit_code
 * 127 (program not found) or 126 (anything else) and errmsg (256 bytes)
 * saying what failed, e.g. `exec "/bin/nope": No such file or
 * directory`. */
int mon_spawn(const struct mon_options *o, const struct mon_spawn_fds *fds, pid_t *pid,
              int *exit_code, char *errmsg);

#endif
