/* The task's output: lines read from its stdout and stderr pipes, written
 * as time-stamped entries into DIR/log, which is rotated by size. */
#ifndef SHOAL_AGENT_MONITOR_TASKLOG_H
#define SHOAL_AGENT_MONITOR_TASKLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define MON_LINE_MAX   (16 * 1024) /* longer lines are cut into several entries */
#define MON_STAMP_SIZE 32          /* "2026-11-26T01:02:03.123456789Z" and its NUL */

struct mon_tasklog {
    int dirfd;     /* borrowed: the task's directory */
    int fd;        /* DIR/log (O_APPEND), -1 while it cannot be opened */
    uint64_t size; /* bytes in DIR/log */
    uint64_t max_size;
    unsigned max_files; /* DIR/log and up to max_files - 1 rotated copies */
    bool failing;       /* the last write failed */
    bool error_new;     /* errmsg holds a failure the caller has not reported yet */
    char errmsg[256];
};

/* One output pipe of the task and the partial line read from it. */
struct mon_pipe {
    const char *name; /* "stdout" or "stderr" (borrowed: a literal) */
    int fd;           /* the read end (non-blocking; owned), -1 once closed */
    size_t len;       /* bytes held in buf: the start of a line */
    char buf[MON_LINE_MAX + 1];
};

/* Opens (or creates) dirfd's "log" for appending; dirfd is borrowed. A
 * failure sets l->errmsg and l->error_new; writes retry the open. */
void mon_tasklog_open(struct mon_tasklog *l, int dirfd, uint64_t max_size, unsigned max_files);

/* Closes DIR/log; l can be opened again. */
void mon_tasklog_close(struct mon_tasklog *l);

/* Formats ts as RFC 3339 UTC with nanoseconds into out (MON_STAMP_SIZE). */
void mon_tasklog_stamp(char *out, const struct timespec *ts);

/* Reads once from p and logs every complete line. Returns the bytes read
 * (> 0), -EAGAIN when nothing was there, or 0 at the end of the pipe (or a
 * negative errno when the read failed): then the partial line is logged
 * and p->fd closed. Log write failures are left in l (see error_new). */
int mon_pipe_read(struct mon_pipe *p, struct mon_tasklog *l);

/* Reads what p holds now without waiting for more (up to 16 MiB, in case
 * a process still writing would keep it full), logs it with the partial
 * line, and closes p->fd. */
void mon_pipe_drain(struct mon_pipe *p, struct mon_tasklog *l);

#endif
