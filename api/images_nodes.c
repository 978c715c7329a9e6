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
#include "api/node_call.h"
#include "common/units.h"
#include "common/util.h"
#include "raft/state.h"

#define LS_TIMEOUT_MS   10000 /* ls, and every node of GET /v1/images */
#define RM_TIMEOUT_MS   30000
#define LONG_TIMEOUT_MS 55000 /* load and gc: within the CLI's 60 s */

struct target {
    struct api__images_fanout *fo;
    struct api__node_ref ref;
    int64_t req; /* the request in flight, 0 when none */
    int done;
};

/* One request waiting for nodes: one node whose answer is relayed, or
 * every node (GET /v1/images). */
struct api__images_fanout {
    struct api_server *srv;
    struct api__call *call; /* NULL once answered */
    int relay;              /* one node: its answer and status are the answer */
    unsigned timeout_ms;
    json_t *nodes;          /* owned (GET /v1/images): name -> {"images"} | {"error"} */
    struct target *targets; /* owned */
    size_t n_targets;
    size_t pending;
    int starting;
    unsigned refs; /* the answer, and every callback still to come */
    struct api__images_fanout *next, *prev;
};

static struct api__images_fanout *fanout_new(struct api__call *call, int relay, unsigned timeout_ms,
                                             size_t n_targets)
{
    struct api_server *srv = call->srv;
    struct api__images_fanout *fo = xcalloc(1, sizeof(*fo));
    *fo = (struct api__images_fanout){.srv = srv,
                                      .call = call,
                                      .relay = relay,
                                      .timeout_ms = timeout_ms,
                                      .nodes = json_object(),
                                      .targets = xcalloc(n_targets + 1, sizeof(struct target)),
                                      .refs = 1,
                                      .next = srv->images_fanouts};
    if (srv->images_fanouts)
        srv->images_fanouts->prev = fo;
    srv->images_fanouts = fo;
    return fo;
}

static void fanout_unref(struct api__images_fanout *fo)
{
    if (--fo->refs > 0)
        return;
    for (size_t i = 0; i < fo->n_targets; i++)
        api__node_ref_free(&fo->targets[i].ref);
    free(fo->targets);
    json_decref(fo->nodes);
    free(fo);
}

/* After the answer: out of the server's list, and the answer's reference
 * dropped. */
static void fanout_end(struct api__images_fanout *fo)
{
    fo->call = NULL;
    if (fo->next)
        fo->next->prev = fo->prev;
    if (fo->prev)
        fo->prev->next = fo->next;
    else
        fo->srv->images_fanouts = fo->next;
    fanout_unref(fo);
}

/* Answers with what came; the targets still out get why_pending and their
 * requests are cancelled (their callbacks come later). */
static void fanout_answer(struct api__images_fanout *fo, const char *why_pending)
{
    for (size_t i = 0; i < fo->n_targets; i++) {
        struct target *t = &fo->targets[i];
        if (t->done)
            continue;
        char why[512];
        snprintf(why, sizeof(why), "node %s: %s", t->ref.node, why_pending ? why_pending : "?");
        t->done = 1;
        json_object_set_new(fo->nodes, t->ref.node, json_pack("{s:s}", "error", why));
        if (t->req > 0)
            common_httpc_cancel(fo->srv->httpc, t->req);
    }
    if (fo->relay)
        api__reply_error(fo->call, API_UNAVAILABLE, NULL, "node %s: %s", fo->targets[0].ref.node,
                         why_pending);
    else
        api__reply_json(fo->call, 200, 0, json_pack("{s:O}", "nodes", fo->nodes));
    fanout_end(fo);
}

/* Takes one node's answer of GET /v1/images in: ans (borrowed) or why. */
static void target_finish(struct target *t, const json_t *ans, const char *why)
{
    struct api__images_fanout *fo = t->fo;
    if (t->done)
        return;
    t->done = 1;
    fo->pending--;
    if (!fo->call)
        return;
    json_t *images = json_object_get(ans, "images");
    if (json_is_array(images))
        json_object_set_new(fo->nodes, t->ref.node, json_pack("{s:O}", "images", images));
    else
        json_object_set_new(fo->nodes, t->ref.node,
                            json_pack("{s:s}", "error", ans ? "the node sent no image list" : why));
    if (fo->pending == 0 && !fo->starting)
        fanout_answer(fo, NULL);
}

/* Answers a relayed request as the node answered, or why it did not. */
static void relay_answer(struct api__images_fanout *fo, const struct target *t,
                         const struct common_httpc_response *res)
{
    struct api__call *call = fo->call;
    const char *node = t->ref.node;
    const char *down = t->ref.down ? " (it is marked down: no heartbeats)" : "";
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

static void remote_done(void *data, const struct common_httpc_response *res)
{
    struct target *t = data;
    struct api__images_fanout *fo = t->fo;
    t->req = 0;
    if (fo->call && res->error != -ECANCELED) {
        if (fo->relay) {
            t->done = 1;
            relay_answer(fo, t, res);
            fanout_end(fo);
        } else {
            char why[512];
            json_t *ans = api__node_answer(&t->ref, res, fo->timeout_ms, why, sizeof(why));
            target_finish(t, ans, why);
            json_decref(ans);
        }
    }
    fanout_unref(fo);
}

static void local_done(void *ctx, const json_t *answer, enum api_code code, const char *errmsg)
{
    struct target *t = ctx;
    struct api__images_fanout *fo = t->fo;
    char why[512];
    (void)code;
    snprintf(why, sizeof(why), "node %s: %s", t->ref.node, errmsg ? errmsg : "no answer");
    target_finish(t, answer, why);
    fanout_unref(fo);
}

/* Asks t's node (this one: its helper, for ls only) method path with body
 * (borrowed JSON, or NULL). */
static void target_start(struct target *t, const char *method, const char *path, const char *body)
{
    struct api__images_fanout *fo = t->fo;
    if (t->ref.error) {
        target_finish(t, NULL, t->ref.error);
        return;
    }
    fo->refs++;
    if (!t->ref.addr) {
        static const char *const argv[] = {"ls", NULL};
        api__images_run(fo->srv, argv, API_INTERNAL, local_done, t);
        return;
    }
    char why[512];
    t->req = api__node_request(fo->srv, &t->ref, method, path, body, fo->timeout_ms, remote_done, t,
                               why, sizeof(why));
    if (t->req < 0) {
        t->req = 0;
        if (fo->relay) {
            api__reply_error(fo->call, API_BAD_GATEWAY, NULL, "%s", why);
            fanout_end(fo);
        } else {
            target_finish(t, NULL, why);
        }
        fanout_unref(fo);
    }
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
    struct api_err err = {0};
    const char *method;
    char path[API__NODE_PATH_MAX];
    _cleanup_free_ char *body = NULL;
    if (node_request(call, cmd, &method, path, &body, &err) != 0) {
        api__reply_err(call, &err);
        return;
    }
    struct api__images_fanout *fo = fanout_new(call, 1, timeout_ms, 1);
    struct target *t = &fo->targets[fo->n_targets++];
    t->fo = fo;
    api__node_ref_init(srv, st, n->id, &t->ref);
    fo->pending = 1;
    if (t->ref.error) {
        api__reply_error(call, API_BAD_GATEWAY, NULL, "%s", t->ref.error);
        fanout_end(fo);
        return;
    }
    target_start(t, method, path, body);
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
    struct api__images_fanout *fo = fanout_new(call, 0, LS_TIMEOUT_MS, st->n_nodes);
    for (size_t i = 0; i < st->n_nodes; i++) {
        struct target *t = &fo->targets[fo->n_targets++];
        t->fo = fo;
        api__node_ref_init(srv, st, st->nodes[i]->id, &t->ref);
        if (t->ref.down && !t->ref.error) {
            char why[512];
            snprintf(why, sizeof(why), "node %s is down (no heartbeats): not asked", t->ref.node);
            t->ref.error = xstrdup(why);
        }
    }
    fo->pending = fo->n_targets;
    fo->starting = 1;
    for (size_t i = 0; i < fo->n_targets && fo->call; i++)
        target_start(&fo->targets[i], "GET", "/v1/node/images", NULL);
    fo->starting = 0;
    if (fo->call && fo->pending == 0)
        fanout_answer(fo, NULL);
}

void api__images_fanouts_release(struct api_server *srv)
{
    while (srv->images_fanouts)
        fanout_answer(srv->images_fanouts, "no answer before this manager stopped");
}
