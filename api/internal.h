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

struct api_server {
    uv_loop_t *loop;
    struct api_http *http;
    struct rs_store *store;
    char *token;
    char *cluster_id;
    char *node_id;
    char *node_name;
    char *raft_address;
    char *listen;
    struct api__waiter *waiters; /* parked blocking queries */
    int closing;
};

/* One request being handled. */
struct api__call {
    struct api_server *srv;
    struct api_http_req *req; /* answered (and freed) by the reply functions */
    char arg[64];             /* the {name} segment of the path, if any */
};

/* A document a GET answers: the body is borrowed (valid until the loop
 * iterates) unless owned is set (then body == owned, freed after use). */
struct api__doc {
    int status;
    const char *body;
    size_t len;
    char *owned;
    uint64_t index;
};

typedef void (*api__render_cb)(struct api_server *srv, const char *arg, struct api__doc *doc);
typedef uint64_t (*api__index_cb)(struct api_server *srv, const char *arg);

/* Answers and frees the call. */
void api__reply(struct api__call *call, int status, uint64_t index, const char *body, size_t len);
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

/* Submits one store operation (transferred) and answers the call with the
 * result: `ok_status` (or 201 when the operation created the object). */
void api__submit(struct api__call *call, json_t *op, int ok_status);

/* Wakes parked queries whose index moved. */
void api__wake(struct api_server *srv);
/* Answers every parked query now (shutdown). */
void api__waiters_release(struct api_server *srv);

/* Route handlers. */
void api__services_list(struct api__call *call);
void api__services_create(struct api__call *call);
void api__service_get(struct api__call *call);
void api__service_put(struct api__call *call);
void api__service_delete(struct api__call *call);
void api__service_scale(struct api__call *call);
void api__cluster_get(struct api__call *call);
void api__health(struct api__call *call);

#endif
