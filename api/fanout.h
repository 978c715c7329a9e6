/* One request of a manager waiting for several nodes: its targets (this node
 * or another, asked over HTTP), each target's result or why there is none
 * ("node X: why"), the reference count, the answer once every target
 * finished, and the answer with what came when the server stops. */
#ifndef SHOAL_API_FANOUT_H
#define SHOAL_API_FANOUT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "api/internal.h"
#include "api/node_call.h"
#include "common/httpc.h"

struct rs_state;
struct api__fanout;

/* One node asked (one request). */
struct api__fanout_target {
    struct api__fanout *fo;   /* borrowed: its fan-out */
    struct api__node_ref ref; /* the node */
    json_t *tasks;            /* owned: what the user asks of it, or NULL */
    int64_t req;              /* the request in flight, 0 when none */
    void *local;              /* the user's local work under way, or NULL */
    int done;
};

/* What one kind of fan-out does; every member but those marked optional is
 * required. */
struct api__fanout_ops {
    /* Asks t: builds what to send and calls api__fanout_ask. */
    void (*start)(struct api__fanout *fo, struct api__fanout_target *t);
    /* Starts the work on this node for t; it ends with api__fanout_local_cb
     * (or api__fanout_local_done) with t as its context. Returns what
     * cancel_local takes, or NULL. */
    void *(*local)(struct api__fanout *fo, struct api__fanout_target *t);
    /* Optional: drops local (from the start) without its callback. */
    void (*cancel_local)(void *local);
    /* Takes t's result in: ans (borrowed), or NULL and why (borrowed). */
    void (*result)(struct api__fanout *fo, struct api__fanout_target *t, const json_t *ans,
                   const char *why);
    /* Optional: after a result while targets are still out. */
    void (*progress)(struct api__fanout *fo);
    /* Optional: a target still out when the answer goes; why is
     * "node X: why_pending", or NULL when the answer goes without one. */
    void (*pending)(struct api__fanout *fo, struct api__fanout_target *t, const char *why);
    /* Answers fo->call (set); why_pending as given to api__fanout_answer. */
    void (*answer)(struct api__fanout *fo, const char *why_pending);
    /* Optional: one target whose raw answer is the answer. Called with res
     * (borrowed), or with res NULL and why when the request could not be
     * sent; answers fo->call. */
    void (*relay)(struct api__fanout *fo, struct api__fanout_target *t,
                  const struct common_httpc_response *res, const char *why);
    /* Frees the user's parts and the object fo is embedded in. */
    void (*free)(struct api__fanout *fo);
};

/* Embedded by value in each kind's own object (reached with container_of). */
struct api__fanout {
    struct api_server *srv;
    struct api__call *call; /* NULL once answered */
    const struct api__fanout_ops *ops;
    struct api__fanout **list;          /* borrowed: the server's list it is on once begun */
    unsigned timeout_ms;                /* of a node's request */
    struct api__fanout_target *targets; /* owned */
    size_t n_targets, cap_targets;
    size_t pending;
    int starting;
    unsigned refs; /* the answer, and every callback still to come */
    struct api__fanout *next, *prev;
};

/* Sets fo up for call (borrowed, answered once) with ops (borrowed, static)
 * and list (borrowed: a list of srv that api__fanouts_release answers).
 * It holds one reference, the answer's. */
void api__fanout_init(struct api__fanout *fo, struct api__call *call,
                      const struct api__fanout_ops *ops, struct api__fanout **list,
                      unsigned timeout_ms);

/* Adds a target for node_id (borrowed) from st (borrowed). Returns it
 * (borrowed, valid until the next add). */
struct api__fanout_target *api__fanout_add(struct api__fanout *fo, const struct rs_state *st,
                                           const char *node_id);

/* The target of node_id that has fewer than max_tasks tasks, or a new one
 * with tasks an empty object (object) or array. */
struct api__fanout_target *api__fanout_target_for(struct api__fanout *fo, const struct rs_state *st,
                                                  const char *node_id, size_t max_tasks,
                                                  int object);

/* Puts fo on its list and starts every target (ops->start); answers at once
 * when none is left out. */
void api__fanout_begin(struct api__fanout *fo);

/* Asks t's node: its error as the result, ops->local on this node, or
 * method path (borrowed) with body (borrowed JSON, or NULL). */
void api__fanout_ask(struct api__fanout_target *t, const char *method, const char *path,
                     const char *body);

/* Ends t's local work: answer (transferred) or error (borrowed). ctx is t. */
void api__fanout_local_cb(void *ctx, json_t *answer, const char *error);

/* The same with answer borrowed. */
void api__fanout_local_done(struct api__fanout_target *t, const json_t *answer, const char *error);

/* Answers with what came (fo->call set): the targets still out are given to
 * ops->pending and their work is cancelled. */
void api__fanout_answer(struct api__fanout *fo, const char *why_pending);

/* Drops a fan-out that never began (its answer already given). */
void api__fanout_drop(struct api__fanout *fo);

/* Takes or drops a reference (a handle's close, say). */
void api__fanout_ref(struct api__fanout *fo);
void api__fanout_unref(struct api__fanout *fo);

/* Answers every fan-out of *list, the targets still out with why. */
void api__fanouts_release(struct api__fanout **list, const char *why);

#endif
