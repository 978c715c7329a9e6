/* Shared between api/logs.c and api/logs_fanout.c: request checks, node reads, the shutdown. */
#ifndef SHOAL_API_LOGS_INTERNAL_H
#define SHOAL_API_LOGS_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "api/error.h"
#include "api/internal.h"

#define API__LOGS_NODE_MAX_TASKS 1000      /* tasks in one POST /v1/node/logs */
#define API__LOGS_ANSWER_BYTES   (4 << 20) /* bytes of lines in one answer */

/* ---- checking requests (logs.c) ---- */

/* Returns 1 when c (borrowed) is a cursor as an answer gives it,
 * "INODE:OFFSET" with both decimal, else 0. */
int api__logs_cursor_ok(const char *c);

/* Checks that v (borrowed), the value of field, is {ID: "INODE:OFFSET" or
 * null} with at most max entries. Returns 0, or -EINVAL with err set (its
 * field named field). */
int api__logs_check_cursors(json_t *v, const char *field, size_t max, struct api_err *err);

/* Checks "tail" and "since" of body (borrowed) and copies them into query
 * (borrowed; it takes references or new values), "since" turned into the
 * form the log files write. Returns 0, or -EINVAL with err set. */
int api__logs_check_tail_since(const json_t *body, json_t *query, struct api_err *err);

/* ---- reads of this node's logs (logs.c) ---- */

/* Called once a read ends: answer is the node's answer (transferred, free
 * with json_decref), or NULL and error (borrowed, valid during the call) says
 * why. */
typedef void (*api__node_read_cb)(void *ctx, json_t *answer, const char *error);

/* Reads this node's logs for query (transferred: the tasks with their
 * cursors, and "tail", "since", "max_bytes" as the agent's callback takes
 * them). Calls done at once when there are entries, wait_ms is 0, the read
 * fails, or this node is stopping, and then returns NULL. Else parks the read
 * (read again every 100 ms) until lines come or wait_ms ends, and returns it
 * (borrowed, valid until done runs or api__node_read_cancel). call (borrowed,
 * or NULL) is the request it answers: when its client goes, done is called
 * with an error. ctx is passed to done as is. */
struct api__node_read *api__node_read_start(struct api_server *srv, json_t *query, int64_t wait_ms,
                                            struct api__call *call, api__node_read_cb done,
                                            void *ctx);

/* Drops a parked read r (freed once its timer is closed) without calling its
 * done. */
void api__node_read_cancel(struct api__node_read *r);

/* ---- POST /v1/logs (logs_fanout.c) ---- */

/* Answers every POST /v1/logs still waiting for nodes with what it has (the
 * nodes still out are errors) and cancels its requests to other nodes. */
void api__logs_fanouts_release(struct api_server *srv);

#endif
