/* Any node's images through a manager. GET /v1/nodes/{node}/images, POST
 * .../images/load and .../images/gc and DELETE .../images/{ref-or-id} ask
 * that node's own routes (/v1/node/images...) with its credential and answer
 * with its answer and status; a manager asked about itself runs its image
 * helper directly. A node that cannot be asked is 502, one that does not
 * answer in time 504. GET /v1/images asks every ready node in parallel and
 * answers {"nodes": {NAME: {"images": [...]} | {"error": "..."}}}. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/images_internal.h"
#include "api/fanout.h"
#include "common/units.h"
#include "common/util.h"
#include "raft/state.h"

#define LS_TIMEOUT_MS   10000 /* ls, and every node of GET /v1/images */
#define RM_TIMEOUT_MS   30000
#define LONG_TIMEOUT_MS 55000 /* load and gc: within the CLI's 60 s */

/* One request waiting for nodes: one node whose answer is relayed, or
 * every node (GET /v1/images). */
struct images_fanout {
    struct api__fanout fo;
    const char *method;            /* relayed: what the node is asked */
    char path[API__NODE_PATH_MAX]; /* relayed */
    char *body;                    /* owned (relayed): JSON, or NULL */
    json_t *nodes;                 /* owned (GET /v1/images): name -> {"images"} | {"error"} */
};

static struct images_fanout *images_of(struct api__fanout *fo)
{
    return container_of(fo, struct images_fanout, fo);
}

static void images_free(struct api__fanout *fo)
{
    struct images_fanout *im = images_of(fo);
    free(im->body);
    json_decref(im->nodes);
    free(im);
}

static void images_pending(struct api__fanout *fo, struct api__fanout_target *t, const char *why)
{
    json_object_set_new(images_of(fo)->nodes, t->ref.node,
                        json_pack("{s:s}", "error", why ? why : "?"));
}

static void images_answer(struct api__fanout *fo, const char *why_pending)
{
    if (fo->ops->relay)
        api__reply_error(fo->call, API_UNAVAILABLE, NULL, "node %s: %s", fo->targets[0].ref.node,
                         why_pending);
    else
        api__reply_json(fo->call, 200, 0, json_pack("{s:O}", "nodes", images_of(fo)->nodes));
}

/* Takes one node's answer of GET /v1/images in: ans (borrowed) or why. */
static void images_result(struct api__fanout *fo, struct api__fanout_target *t, const json_t *ans,
                          const char *why)
{
    json_t *images = json_object_get(ans, "images");
    if (json_is_array(images))
        json_object_set_new(images_of(fo)->nodes, t->ref.node,
                            json_pack("{s:O}", "images", images));
    else
        json_object_set_new(images_of(fo)->nodes, t->ref.node,
                            json_pack("{s:s}", "error", ans ? "the node sent no image list" : why));
}

/* Answers a relayed request as the node answered (res), or why it did not. */
static void relay_answer(struct api__fanout *fo, struct api__fanout_target *t,
                         const struct common_httpc_response *res, const char *why)
{
    struct api__call *call = fo->call;
    const char *node = t->ref.node;
    const char *down = t->ref.down ? " (it is marked down: no heartbeats)" : "";
    if (!res) {
        api__reply_error(call, API_BAD_GATEWAY, NULL, "%s", why);
        return;
    }
    json_t *body = res->status ? json_loadb(res->body, res->body_len, 0, NULL) : NULL;
    if (res->error == -ETIMEDOUT) {
        char limit[32];
        common_format_duration(fo->timeout_ms, limit, sizeof(limit));
        api__reply_error(call, API_GATEWAY_TIMEOUT, NULL, "node %s did not answer within %s%s",
                         node, limit, down);
    } else if (res->status == 0) {
        api__reply_error(call, API_BAD_GATEWAY, NULL, "node %s cannot be reached%s: %s", node, down,
                         res->errmsg[0] ? res->errmsg : "no answer");
    } else if (res->status == 401) {
        api__reply_error(call, API_BAD_GATEWAY, NULL,
                         "node %s refused the credential this manager has for it", node);
    } else if (!json_is_object(body)) {
        api__reply_error(call, API_BAD_GATEWAY, NULL,
                         "node %s sent an answer that is not a JSON object (HTTP %ld)", node,
                         res->status);
    } else {
        api__reply(call, (int)res->status, 0, res->body, res->body_len);
    }
    json_decref(body);
}

static void local_done(void *ctx, const json_t *answer, enum api_code code, const char *errmsg)
{
    (void)code;
    api__fanout_local_done(ctx, answer, errmsg);
}

/* This node's part of GET /v1/images: its helper's ls. */
static void *images_local(struct api__fanout *fo, struct api__fanout_target *t)
{
    static const char *const argv[] = {"ls", NULL};
    api__images_run(fo->srv, argv, API_INTERNAL, local_done, t);
    return NULL;
}

static void images_start(struct api__fanout *fo, struct api__fanout_target *t)
{
    struct images_fanout *im = images_of(fo);
    api__fanout_ask(t, im->method, im->path, im->body);
}

static const struct api__fanout_ops all_ops = {
    .start = images_start,
    .local = images_local,
    .result = images_result,
    .pending = images_pending,
    .answer = images_answer,
    .free = images_free,
};

static const struct api__fanout_ops relay_ops = {
    .start = images_start,
    .local = images_local,
    .result = images_result,
    .answer = images_answer,
    .relay = relay_answer,
    .free = images_free,
};

static struct images_fanout *images_new(struct api__call *call, const struct api__fanout_ops *ops,
                                        unsigned timeout_ms)
{
    struct images_fanout *im = xcalloc(1, sizeof(*im));
    api__fanout_init(&im->fo, call, ops, &call->srv->images_fanouts, timeout_ms);
    im->method = "GET";
    snprintf(im->path, sizeof(im->path), "/v1/node/images");
    im->nodes = json_object();
    return im;
}

/* What to send a node for cmd: method, path (API__NODE_PATH_MAX bytes) and
 * body (transferred: free(), or NULL). Returns 0, or -EINVAL with err set. */
static int node_request(struct api__call *call, enum api__image_cmd cmd, const char **method,
                        char *path, char **body, struct api_err *err)
{
    *method = "POST";
    *body = NULL;
    if (cmd == API__IMAGE_LS || cmd == API__IMAGE_GC) {
        *method = cmd == API__IMAGE_LS ? "GET" : "POST";
        snprintf(path, API__NODE_PATH_MAX, "/v1/node/images%s", cmd == API__IMAGE_GC ? "/gc" : "");
    } else if (cmd == API__IMAGE_LOAD) {
        json_auto_t *in = api__parse_body(call, err);
        const char *file = in ? api__image_load_path(in, err) : NULL;
        if (!file)
            return -EINVAL;
        json_auto_t *out = json_pack("{s:s}", "path", file);
        *body = json_dumps(out, JSON_COMPACT);
        snprintf(path, API__NODE_PATH_MAX, "/v1/node/images/load");
    } else {
        char ref[sizeof(call->arg2)], enc[API__NODE_PATH_MAX - 32];
        if (api__image_ref_decode(call->arg2, ref, sizeof(ref), err) != 0)
            return -EINVAL;
        if (api__image_ref_encode(ref, enc, sizeof(enc)) != 0)
            return api_err_set(err, API_BAD_REQUEST, NULL, "the image ref is too long");
        *method = "DELETE";
        snprintf(path, API__NODE_PATH_MAX, "/v1/node/images/%s", enc);
    }
    return 0;
}

static void relay_start(struct api__call *call, enum api__image_cmd cmd, unsigned timeout_ms)
{
    struct api_server *srv = call->srv;
    if (srv->closing) {
        api__reply_error(call, API_UNAVAILABLE, NULL, "this node is shutting down");
        return;
    }
    const struct rs_state *st = rs_store_state(srv->store);
    const struct rs_node *n = rs_state_node(st, call->arg);
    if (!n) {
        api__reply_error(call, API_NOT_FOUND, NULL, "no node \"%.200s\"", call->arg);
        return;
    }
    if (strcmp(n->id, srv->node_id) == 0) {
        api__images_serve(call, cmd, call->arg2);
        return;
    }
    struct images_fanout *im = images_new(call, &relay_ops, timeout_ms);
    struct api_err err = {0};
    if (node_request(call, cmd, &im->method, im->path, &im->body, &err) != 0) {
        api__reply_err(call, &err);
        api__fanout_drop(&im->fo);
        return;
    }
    struct api__fanout_target *t = api__fanout_add(&im->fo, st, n->id);
    if (t->ref.error) {
        api__reply_error(call, API_BAD_GATEWAY, NULL, "%s", t->ref.error);
        api__fanout_drop(&im->fo);
        return;
    }
    api__fanout_begin(&im->fo);
}

void api__nodes_images_ls(struct api__call *call)
{
    relay_start(call, API__IMAGE_LS, LS_TIMEOUT_MS);
}

void api__nodes_images_load(struct api__call *call)
{
    relay_start(call, API__IMAGE_LOAD, LONG_TIMEOUT_MS);
}

void api__nodes_images_gc(struct api__call *call)
{
    relay_start(call, API__IMAGE_GC, LONG_TIMEOUT_MS);
}

void api__nodes_images_rm(struct api__call *call)
{
    relay_start(call, API__IMAGE_RM, RM_TIMEOUT_MS);
}

void api__images_all(struct api__call *call)
{
    struct api_server *srv = call->srv;
    if (srv->closing) {
        api__reply_error(call, API_UNAVAILABLE, NULL, "this node is shutting down");
        return;
    }
    const struct rs_state *st = rs_store_state(srv->store);
    struct images_fanout *im = images_new(call, &all_ops, LS_TIMEOUT_MS);
    for (size_t i = 0; i < st->n_nodes; i++) {
        struct api__fanout_target *t = api__fanout_add(&im->fo, st, st->nodes[i]->id);
        if (t->ref.down && !t->ref.error) {
            char why[512];
            snprintf(why, sizeof(why), "node %s is down (no heartbeats): not asked", t->ref.node);
            t->ref.error = xstrdup(why);
        }
    }
    api__fanout_begin(&im->fo);
}

void api__images_fanouts_release(struct api_server *srv)
{
    api__fanouts_release(&srv->images_fanouts, "no answer before this manager stopped");
}
