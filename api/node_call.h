/* Asking other nodes about their tasks (POST /v1/logs, the stats
 * endpoints, the node image routes of managers): which node a task names,
 * where its API is and with which credential it is asked, the request
 * itself, and its answer or why there is none, in the words the fan-outs
 * report. */
#ifndef SHOAL_API_NODE_CALL_H
#define SHOAL_API_NODE_CALL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "api/internal.h"
#include "common/httpc.h"

struct rs_state;

/* A node to ask. */
struct api__node_ref {
    char *node_id;    /* owned */
    char *node;       /* owned: the node's name (its id when it is not known) */
    char *addr;       /* owned: its API address; NULL for this node */
    char *credential; /* owned */
    char *error;      /* owned: why it cannot be asked, or NULL */
    int down;         /* the node was marked down (no heartbeats) */
};

/* Fills ref for node_id (borrowed) from st (borrowed): this node, another
 * one with its address and credential, or an error ("node X is not in the
 * cluster", "node X has no API address"). */
void api__node_ref_init(struct api_server *srv, const struct rs_state *st, const char *node_id,
                        struct api__node_ref *ref);

/* Frees what ref owns. */
void api__node_ref_free(struct api__node_ref *ref);

#define API__NODE_PATH_MAX 2048 /* bytes of a path asked of a node */

/* Sends method (borrowed: "GET", "POST", "DELETE") to path (borrowed,
 * escaped, shorter than API__NODE_PATH_MAX) on ref's node (not this node)
 * with its credential and body (borrowed JSON, or NULL for none), within
 * timeout_ms. Returns the request (> 0) as common_httpc_request does, or a
 * negative errno (-ENAMETOOLONG for a path too long) with why (size bytes)
 * set; cb is then not called. */
int64_t api__node_request(struct api_server *srv, const struct api__node_ref *ref,
                          const char *method, const char *path, const char *body,
                          unsigned timeout_ms, common_httpc_cb cb, void *data, char *why,
                          size_t size);

/* The same as a POST of body (borrowed, JSON). */
int64_t api__node_post(struct api_server *srv, const struct api__node_ref *ref, const char *path,
                       const char *body, unsigned timeout_ms, common_httpc_cb cb, void *data,
                       char *why, size_t size);

/* The JSON object a node answered (transferred), or NULL with why (size
 * bytes) set: a timeout (after timeout_ms), no answer, an HTTP error with the
 * node's error text, or an answer that is not a JSON object. */
json_t *api__node_answer(const struct api__node_ref *ref, const struct common_httpc_response *res,
                         int64_t timeout_ms, char *why, size_t size);

#endif
