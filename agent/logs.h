/* Reading a task's output back from the files its monitor writes
 * (DATA/tasks/ID/log, rotated into log.1, log.2 ...; see
 * agent/monitor/tasklog.h) from a cursor, and this node's answer to POST
 * /v1/node/logs. Reading is synchronous file I/O on the loop: the files are
 * local and small (the monitor rotates them by size), a read is bounded by a
 * byte budget, and a reader that waits for new lines only stats "log". */
#ifndef SHOAL_AGENT_LOGS_H
#define SHOAL_AGENT_LOGS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define AGENT_LOGS_BUDGET      (4u << 20) /* bytes of lines in one answer */
#define AGENT_LOGS_CURSOR_SIZE 48         /* "INODE:OFFSET" and its NUL */
#define AGENT_LOGS_MAX_FILES   1000       /* log, log.1 .. log.999 (the monitor's limit) */
#define AGENT_LOGS_TS_LEN      30         /* "2026-11-26T01:02:03.123456789Z" */

struct agent_logs_opts {
    const char *cursor; /* borrowed: "INODE:OFFSET" from an earlier read, or NULL: start anew */
    int64_t tail;       /* without a cursor: only the last `tail` entries; -1: all of them */
    const char *since;  /* borrowed: NULL, or a time written like the files write it (UTC, 9
                           fraction digits, AGENT_LOGS_TS_LEN chars): entries at or after it */
    size_t budget;      /* bytes of lines to read at most; one entry is read whatever its size */
    const char *task;   /* borrowed: added to each entry as "task" unless NULL */
};

struct agent_logs_result {
    char cursor[AGENT_LOGS_CURSOR_SIZE]; /* where the next read goes on */
    size_t bytes;                        /* bytes of the lines read */
    int cut;                             /* the budget stopped the read before the end */
};

/* Reads the entries of the task whose files are in dir, oldest first, and
 * appends them to entries (a JSON array) as {"ts", "stream", "line"} (plus
 * "task"), the line without its newline and with invalid UTF-8 replaced.
 *
 * With a cursor the read goes on in the file of that inode (among log,
 * log.1 ...) from its offset, then in the newer files; a cursor whose file is
 * gone (rotated out) starts again at the oldest file, and one past the end of
 * its file (emptied) at the start of that file. Without a cursor it starts at
 * the oldest file, or tail entries before the end. A partial last line (still
 * being written) is left for the next read. Returns 0 with res filled,
 * -ENOENT when dir holds no log file, -EINVAL for a malformed cursor or
 * since, or another negative errno. */
int agent_logs_read(const char *dir, const struct agent_logs_opts *o, json_t *entries,
                    struct agent_logs_result *res);

/* Answers a POST /v1/node/logs query for this node (the API's node_logs
 * callback; data is the struct agent_node, borrowed). query (borrowed) is
 * {"tasks": {ID: cursor or null}, "tail": N?, "since": TS?, "max_bytes": B?},
 * checked by the API (since already normalized). *answer (transferred) is
 * {"entries": [{"task", "ts", "stream", "line"}] sorted by ts, "cursors":
 * {ID: cursor}, "missing": [ID] (no log files here), "errors": {ID: why},
 * "more": true when the budget cut a task short}. The budget (max_bytes, at
 * most AGENT_LOGS_BUDGET) is shared evenly by the tasks. Returns 0, or
 * -EINVAL with errmsg (256 bytes) set for a query without "tasks". */
int agent_logs_query(void *data, const json_t *query, json_t **answer, char *errmsg);

#endif
