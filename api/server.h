/* The REST API of a node: routes, authentication, blocking queries and the
 * translation of requests into store operations. */
#ifndef SHOAL_API_SERVER_H
#define SHOAL_API_SERVER_H

#include <jansson.h>
#include <uv.h>

#include "raft/store.h"

struct api_server;

/* Returns the API address ("ip:port") of a manager to forward requests to
 * (workers), or NULL when none is known. */
typedef const char *(*api_server_manager_cb)(void *data);

/* Reads this node's task logs once, now (agent_logs_query): query (borrowed)
 * is a checked POST /v1/node/logs body less its wait. Sets *answer
 * (transferred) and returns 0, or returns a negative errno with errmsg (256
 * bytes) set. Runs on the loop: it must be quick (small local files); the
 * API parks a request that waits for new lines and calls it again. */
typedef int (*api_node_logs_cb)(void *data, const json_t *query, json_t **answer, char *errmsg);

/* Reads the stats of this node's tasks once, now (agent_stats_query):
 * tasks (borrowed) is a checked list of task ids. Sets *answer (transferred)
 * to {"stats": {ID: {"memory", "memory_limit", "cpu_ns", "pids"}},
 * "missing": [ID], "errors": {ID: why}} and returns 0, or returns a negative
 * errno with errmsg (256 bytes) set. Runs on the loop: it must be quick. */
typedef int (*api_node_stats_cb)(void *data, const json_t *tasks, json_t **answer, char *errmsg);
/* Runs an image command on this node (agent_images_run): argv (borrowed,
 * NULL-terminated) is "ls" | "load" PATH | "rm" REF | "gc". done is called
 * exactly once, later, with op and the command's answer (borrowed) or NULL
 * and errmsg (borrowed). */
typedef void (*api_node_images_done_cb)(void *op, const json_t *answer, const char *errmsg);
typedef void (*api_node_images_cb)(void *data, const char *const *argv,
                                   api_node_images_done_cb done, void *op);

struct api_server_config {
    const char *listen;               /* borrowed: "ip:port" of the API */
    const char *token;                /* borrowed: the admin token */
    const char *cluster_id;           /* borrowed */
    const char *node_id;              /* borrowed: this node's id (hex) */
    const char *node_name;            /* borrowed */
    const char *raft_address;         /* borrowed */
    api_server_manager_cb manager_cb; /* workers: where to forward requests */
    void *manager_data;
    const char *credential;     /* borrowed: this node's credential (managers asking its logs) */
    api_node_logs_cb node_logs; /* NULL: POST /v1/node/logs answers 503 */
    void *node_logs_data;
    api_node_stats_cb node_stats; /* NULL: POST /v1/node/stats answers 503 */
    void *node_stats_data;
    api_node_images_cb node_images; /* NULL: /v1/node/images answers 503 */
    void *node_images_data;
};

/* Starts serving on cfg->listen. loop and store are borrowed and must
 * outlive the server; store is NULL on a worker, which forwards every request
 * but /v1/health to a manager; cfg's strings are copied. Returns 0 or a negative
 * errno with the reason in errmsg (256 bytes). */
int api_server_start(struct api_server **out, uv_loop_t *loop, struct rs_store *store,
                     const struct api_server_config *cfg, char *errmsg);

/* Stops accepting connections and answers every parked blocking query; open
 * connections are still served, but no query parks any more. Call it while
 * the store is still open. */
void api_server_stop_accepting(struct api_server *s);

/* Closes every connection, frees the server, then calls cb. Does not touch
 * the store if api_server_stop_accepting was called before (the store may be
 * gone by then). */
void api_server_close(struct api_server *s, void (*cb)(void *data), void *data);

/* Whether id can be a task id: one safe path segment (1-64 of letters,
 * digits, '-', '_', '.', not starting with '.'); the reconciler makes "t"
 * and hex. Returns 1 or 0. */
int api_task_id_valid(const char *id);

/* Log entries ({"ts", ...}) sorted by time, equal times in the order they
 * came (a new array holding the same entries: json_decref). entries is
 * borrowed. */
json_t *api_log_entries_sorted(const json_t *entries);

#endif
