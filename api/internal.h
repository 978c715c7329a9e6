/* Shared between the files of the API module: the server object, replies,
 * blocking GETs and store submissions. */
#ifndef SHOAL_API_INTERNAL_H
#define SHOAL_API_INTERNAL_H

#include <jansson.h>
#include <stdint.h>

#include "api/error.h"
#include "api/http.h"
#include "api/server.h"

struct api__waiter;
struct api__node_read;
struct api__fanout;
struct api__stats_sample;
struct api__image_op;
struct api__forward;

struct common_httpc;
struct rs_node;

struct api_server {
    uv_loop_t *loop;
    struct api_http *http;
    struct common_httpc *httpc;
    struct rs_store *store; /* NULL on a worker */
    api_server_manager_cb manager_cb;
    void *manager_data;
    char *token;
    char *cluster_id;
    char *node_id;
    char *node_name;
    char *raft_address;
    char *listen;
    struct api__waiter *waiters; /* parked blocking queries */
    char *credential;            /* this node's credential */
    api_node_logs_cb node_logs;
    void *node_logs_data;
    struct api__node_read *node_reads; /* parked POST /v1/node/logs reads (logs.c) */
    struct api__fanout *fanouts;       /* POST /v1/logs waiting for nodes (api/fanout.h) */
    api_node_stats_cb node_stats;
    void *node_stats_data;
    struct api__stats_sample *samples; /* stats of this node's tasks being sampled */
    struct api__fanout *stats_fanouts; /* stats requests waiting for nodes */
    api_node_images_cb node_images;
    void *node_images_data;
    struct api__image_op *image_ops;    /* image commands under way (images.c) */
    struct api__forward *forwards;      /* forwarded answers held until applied here (forward.c) */
    struct api__fanout *images_fanouts; /* image requests waiting for nodes */
    int closing;
};

/* One request being handled. */
struct api__call {
    struct api_server *srv;
    struct api_http_req *req;                /* answered (and freed) by the reply functions */
    char arg[512];                           /* the first {} segment of the path, if any */
    char arg2[512];                          /* the second {} segment, if any */
    void (*handler)(struct api__call *call); /* set while a consistent read waits */
};

/* A document a GET answers: the body is borrowed (valid until the loop
 * iterates) unless owned is set (then body == owned, freed after use). */
struct api__doc {
    int status;
    const char *content_type; /* borrowed (static), NULL for application/json */
    const char *body;
    size_t len;
    char *owned;
    uint64_t index;
};

typedef void (*api__render_cb)(struct api__call *call, struct api__doc *doc);
typedef uint64_t (*api__index_cb)(struct api_server *srv, const char *arg);

/* Answers and frees the call. */
void api__reply(struct api__call *call, int status, uint64_t index, const char *body, size_t len);
/* The same with a Content-Type (borrowed; NULL for application/json). */
void api__reply_typed(struct api__call *call, int status, uint64_t index, const char *content_type,
                      const char *body, size_t len);
void api__reply_err(struct api__call *call, const struct api_err *err);
/* Answers with body (transferred) serialized. */
void api__reply_json(struct api__call *call, int status, uint64_t index, json_t *body);
void api__reply_error(struct api__call *call, enum api_code code, const char *field,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Serves a GET with blocking-query support (?index=N&wait=D). */
void api__serve_get(struct api__call *call, api__index_cb index_cb, api__render_cb render);

/* Parses the request body as a JSON object with the depth limit. Returns the
 * object (transferred) or NULL with err set. */
json_t *api__parse_body(struct api__call *call, struct api_err *err);
/* The same for any JSON value nested at most max_depth deep (a list of
 * specs, say). */
json_t *api__parse_json(struct api__call *call, int max_depth, struct api_err *err);

/* Reads ?index=N of a compare-and-set write into op's "cas". Returns 0
 * (present or not), or -1 after answering a bad value (op is then still the
 * caller's to free). */
int api__query_cas(struct api__call *call, json_t *op);

/* Submits one store operation (transferred) and answers the call with the
 * result: `ok_status` (or 201 when the operation created the object). */
void api__submit(struct api__call *call, json_t *op, int ok_status);

/* Wakes parked queries whose index moved. */
void api__wake(struct api_server *srv);
/* Answers every parked query now (shutdown). */
void api__waiters_release(struct api_server *srv);

/* Forwards the call to the API at addr ("ip:port") and answers as it
 * answers. With wait_applied, a 2xx answer carrying X-Shoal-Index N is held
 * until this node has applied N (at most 2 s), so reads here see the write. */
void api__forward(struct api__call *call, const char *addr, int wait_applied);
/* Answers the forwarded writes still waiting for this node to apply them
 * (the store is about to go): as they are, now. */
void api__forwards_release(struct api_server *srv);

/* Forwards the call to the leader, or answers 503 when there is none (or the
 * call was already forwarded once). */
void api__forward_to_leader(struct api__call *call);

/* The admin token in force: the cluster's, or this node's before the
 * cluster record exists. */
const char *api__admin_token(struct api_server *srv);

/* Route handlers. */
void api__services_list(struct api__call *call);
void api__services_create(struct api__call *call);
void api__service_get(struct api__call *call);
void api__service_put(struct api__call *call);
void api__service_delete(struct api__call *call);
void api__service_scale(struct api__call *call);
void api__service_rollout_get(struct api__call *call);
void api__service_rollback(struct api__call *call);
void api__service_rollout_pause(struct api__call *call);
void api__service_rollout_resume(struct api__call *call);
void api__cluster_get(struct api__call *call);
void api__health(struct api__call *call);
void api__nodes_list(struct api__call *call);
void api__node_get(struct api__call *call);
void api__node_patch(struct api__call *call);
void api__node_delete(struct api__call *call);
void api__node_promote(struct api__call *call);
void api__node_demote(struct api__call *call);
void api__node_heartbeat(struct api__call *call);
void api__cluster_join(struct api__call *call);
void api__join_token_get(struct api__call *call);
void api__join_token_rotate(struct api__call *call);
void api__cluster_backup(struct api__call *call);
/* Checks that the call comes from the node named by call->arg (its id and
 * its credential as a bearer token). Returns the node (borrowed, valid until
 * the next apply), or NULL after answering 401. */
const struct rs_node *api__node_auth(struct api__call *call);
void api__node_tasks_get(struct api__call *call);
void api__node_tasks_report(struct api__call *call);
void api__tasks_list(struct api__call *call);
void api__task_get(struct api__call *call);

/* plan.c, plan_diff.c: POST /v1/plan, a dry run of service writes. */
#define API_PLAN_MAX_SPECS 256 /* specs in one request */
void api__plan(struct api__call *call);
/* The field-by-field difference from old to new (both borrowed; NULL for
 * absent): objects compared key by key (keys in byte order), arrays index
 * by index, other values by json_equal. Returns (transferred) a list of
 * {"path": "task.env.X" | "task.command[0]" | "" for the root, "old", "new"},
 * JSON null standing for an absent side. An object on one side only is
 * listed field by field (an empty one whole); an array on one side only,
 * or against another type, whole. Nesting is bounded by the caller
 * (request bodies: API_SPEC_MAX_DEPTH). */
json_t *api__plan_diff(const json_t *old, const json_t *new);
/* A new list (transferred) of the objects of tasks (borrowed), each with
 * "slot", "node" and "id", in the order of slot, then node, then id. */
json_t *api__tasks_by_slot(const json_t *tasks);

/* logs_fanout.c: POST /v1/logs (managers); logs.c: POST /v1/node/logs (every node). */
#define API_LOGS_MAX_WAIT_MS 30000 /* the longest wait of either */
void api__logs(struct api__call *call);
void api__node_logs(struct api__call *call);
/* Answers every parked log read and every POST /v1/logs still waiting for
 * nodes (with what it has); cancels their requests to other nodes. */
void api__logs_release(struct api_server *srv);
/* Node-local images (images.c): GET /v1/node/images, POST
 * /v1/node/images/load and /gc, DELETE /v1/node/images/{ref-or-id}, run by
 * the agent's image helper; open to this node's credential (a manager
 * asking) and the admin token. */
void api__node_images_ls(struct api__call *call);
void api__node_images_load(struct api__call *call);
void api__node_images_gc(struct api__call *call);
void api__node_images_rm(struct api__call *call);
/* Any node's images through a manager (images_nodes.c): GET /v1/images
 * (every node), GET /v1/nodes/{node}/images, POST
 * /v1/nodes/{node}/images/load and /gc, DELETE
 * /v1/nodes/{node}/images/{ref-or-id}. */
void api__images_all(struct api__call *call);
void api__nodes_images_ls(struct api__call *call);
void api__nodes_images_load(struct api__call *call);
void api__nodes_images_gc(struct api__call *call);
void api__nodes_images_rm(struct api__call *call);
/* Answers every image command under way with 503 (shutdown), their
 * completions then dropped, and every image request still waiting for
 * nodes; cancels those requests. */
void api__images_release(struct api_server *srv);

/* Whether the request carries this node's credential (a manager asking) or
 * the admin token as a bearer token (server.c). Returns 1 or 0. */
int api__node_caller_ok(struct api_server *srv, const struct api_http_req *req);
/* The same as a route's check: returns 0, or -EACCES after answering 401. */
int api__node_caller_check(struct api__call *call);
/* The start of a node route: 503 while shutting down or when this node
 * does not serve it (serves 0: "this node serves no WHAT"), then the caller
 * check. Returns 0, or a negative errno once answered. */
int api__node_route_check(struct api__call *call, int serves, const char *what);
/* The same, then the JSON body parsed: returns it (transferred, free with
 * json_decref), or NULL once answered. */
json_t *api__node_route_body(struct api__call *call, int serves, const char *what);
/* The end of a node route's work on this node, with call as ctx: answers
 * ans (transferred) as 200, or error (borrowed) as 500. */
void api__node_route_done(void *ctx, json_t *ans, const char *error);
/* Checks that body (borrowed) has no key but those of fields (borrowed,
 * NULL-terminated). Returns 0, or -EINVAL with err set to the first unknown
 * field. */
int api__body_only_fields(const json_t *body, const char *const *fields, struct api_err *err);

/* stats.c, stats_fanout.c: POST /v1/node/stats (every node), GET
 * /v1/tasks/{id}/stats and GET /v1/services/{name}/stats (managers). */
void api__node_stats(struct api__call *call);
void api__task_stats(struct api__call *call);
void api__service_stats(struct api__call *call);
/* Answers every stats request still sampling or waiting for nodes. */
void api__stats_release(struct api_server *srv);

/* events.c: GET /v1/events, the event stream (raft/events.h) as NDJSON. */
void api__events(struct api__call *call);

#endif
