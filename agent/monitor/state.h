/* The task's state file, DIR/state: key=value lines, replaced atomically
 * (written to DIR/state.tmp, then renamed). */
#ifndef SHOAL_AGENT_MONITOR_STATE_H
#define SHOAL_AGENT_MONITOR_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct mon_state {
    pid_t monitor_pid;
    pid_t pid;          /* the task, 0 until it started (and when it never did) */
    int64_t started_ms; /* CLOCK_REALTIME ms, written with pid */
    bool done;          /* the task ended: the fields below are written */
    int64_t exited_ms;
    int exit_code;   /* exit status, 128 + signal when killed, 126/127 when the start failed */
    int signal;      /* the signal that killed the task, 0 when it exited */
    bool oom;        /* a cgroup of the task counted an OOM kill */
    bool stopped;    /* a stop request arrived */
    char error[256]; /* "" or why the task could not start */
};

/* Writes s into dirfd's "state" (dirfd borrowed). Returns 0 or a negative
 * errno with the reason in errmsg (256 bytes). */
int mon_state_write(int dirfd, const struct mon_state *s, char *errmsg);

/* Milliseconds on CLOCK_REALTIME. */
int64_t mon_state_now_ms(void);

#endif
