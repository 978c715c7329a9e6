/* Launcher mode (runc run -d): reading what the launcher leaves behind, the
 * task's pid and why a launch failed. */
#ifndef SHOAL_AGENT_MONITOR_LAUNCH_H
#define SHOAL_AGENT_MONITOR_LAUNCH_H

#include <stddef.h>
#include <sys/types.h>

/* The pid in path (a pid file), or a negative errno. */
pid_t mon_launch_read_pid(const char *path);

/* The message of the last error line of a JSON-lines log (runc's --log
 * --log-format json: {"level":"error","msg":"...","time":"..."}) into out;
 * "" when there is none. */
void mon_launch_last_error(const char *path, char *out, size_t size);

#endif
