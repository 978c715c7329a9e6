/* The object model as the replicated state machine holds it: services by
 * name with their canonical JSON and a cached serialized body, and the Raft
 * indexes that drive blocking queries. Pure: no I/O, no clock, no raft. */
#ifndef SHOAL_RAFT_STATE_H
#define SHOAL_RAFT_STATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "api/error.h"

/* A service is kept as text: its spec's JSON less the fields that change
 * without a new spec (replicas and the bookkeeping), those fields as numbers,
 * and the body answered to reads, assembled from both. A jansson tree per
 * service cost 11 KiB against 1 KiB of text (measured with 10,000 services),
 * and a scale, the most frequent write, touches no JSON at all (jansson was
 * over half of a follower's CPU when it re-parsed the body on every scale). */
struct rs_service {
    char *name; /* owned */
    char *spec; /* owned: the spec's JSON without replicas, version and indexes */
    size_t spec_len;
    int64_t replicas;
    int global; /* mode "global": replicas cannot be set */
    char *body; /* owned: the service as JSON (spec + replicas + bookkeeping) */
    size_t body_len;
    /* Rollouts. version counts task templates: 1 at create, +1 when the
     * "task" object changes (each change starts a rollout) or a rollback
     * takes an earlier one. stable: the spec (text, as `spec`) of the last
     * rollout that completed, when the current spec is not that one (NULL:
     * the current spec is stable); previous: the stable spec before that
     * (what `rollback` returns to once the current one completed), or
     * NULL. rollout: the current or last rollout (owned), NULL when none
     * ever ran: {"state", "kind": "update"|"rollback", "from_version",
     * "to_version", "updated", "total", "failures", "message", "started_ms",
     * "progress_ms", "finished_ms"}. */
    char *stable;
    uint64_t stable_version;
    char *previous;
    uint64_t previous_version;
    json_t *rollout;
    uint64_t version;
    uint64_t create_index;
    uint64_t modify_index;
};

/* A node of the cluster. Its public JSON (what GET /v1/nodes shows, less the
 * live Raft details) is obj; the credential is kept apart so that it can
 * never leak into an answer. */
struct rs_node {
    char *id;         /* owned: 16 hex digits (the Raft id for managers) */
    json_t *obj;      /* owned: id, name, role, api_address, raft_address, availability,
                         status, labels, resources, version, create_index, modify_index */
    char *credential; /* owned: the node's secret for node-to-manager calls */
    uint64_t modify_index;
};

struct rs_state {
    uint64_t index;               /* Raft index of the last applied command entry */
    uint64_t services_index;      /* Raft index of the last change to any service */
    struct rs_service **services; /* owned, sorted by name */
    size_t n_services;
    size_t cap_services;
    char *services_body; /* owned cache of the list body, NULL when stale */
    size_t services_body_len;
    /* The cluster record, NULL until cluster.init: id, admin_token,
     * worker_token, manager_token, voters, heartbeat_interval_ms,
     * node_down_after_ms. Owned. */
    json_t *cluster;
    struct rs_node **nodes; /* owned, in no order */
    size_t n_nodes;
    size_t cap_nodes;
    uint64_t nodes_index; /* Raft index of the last change to any node or the cluster */
    /* Tasks by id (owned object of task objects: id, service, slot, node,
     * version, desired_state, state, message, exit_code, restarts,
     * created_ms, updated_ms (when the state last changed), create_index,
     * modify_index, spec (the task template of its version)),
     * and per service the replicas the scheduler could not place (owned
     * object: service -> [{slot, node, reason}]). */
    json_t *tasks;
    json_t *pending;
    uint64_t tasks_index;
    /* The event stream (raft/events.h), owned: what the operations changed,
     * with an index of its own that snapshots keep. The events themselves
     * are not in snapshots: after a restore the ring starts empty, and a
     * reader behind it is told that events were lost. */
    struct rs_events *events;
};

/* The result of one operation, filled by rs_state_apply_op. */
struct rs_op_result {
    struct api_err err; /* err.code API_OK on success */
    int created;        /* 1 when the operation created the object */
    uint64_t index;     /* Raft index of the entry that carried the operation */
    char *body;         /* transferred (free()): the object as it now stands, or a small
                           JSON answer; NULL on error */
    size_t body_len;
};

void rs_state_init(struct rs_state *s);
void rs_state_close(struct rs_state *s);

/* Applies one operation (borrowed JSON, not modified) at Raft index `index`.
 * Never fails as a whole: a refused operation (conflict, not found,
 * malformed) leaves the objects unchanged (only s->index moves to the
 * entry's index) and says why in res->err. What an operation changes is
 * also appended to s->events (service.*, rollout.*, task.state,
 * task.health, node.*; see docs/api.md, "Events"), with the op's "at". res may be NULL when nobody
 * waits for the answer (followers). Operations:
 *   {"op": "service.create", "spec": SPEC}
 *   {"op": "service.put", "spec": SPEC, "cas": N (optional)}
 *   {"op": "service.delete", "name": NAME, "cas": N (optional)}
 *   {"op": "service.scale", "name": NAME, "replicas": N}
 *   {"op": "service.rollback", "name": NAME, "at": MS, "auto": bool}
 *   {"op": "rollout.update", "name": NAME, "to_version": V, "at": MS, "state": S?,
 *    "updated": N?, "total": N?, "failures": N?, "message": M?, "progress": bool?}
 *   {"op": "rollout.pause" | "rollout.resume", "name": NAME, "at": MS}
 *   {"op": "services.restore", "services": [SERVICE...]}
 *   {"op": "cluster.init", "cluster": CLUSTER, "node": NODE, "credential": C}
 *   {"op": "cluster.rotate", "role": "worker"|"manager", "token": T}
 *   {"op": "node.register", "node": NODE, "credential": C}
 *   {"op": "node.update", "id": ID, "availability": A?, "labels": {..}?, "cas": N?}
 *   {"op": "node.status", "id": ID, "status": "ready"|"down"}
 *   {"op": "node.remove", "id": ID, "cas": N?}
 *   {"op": "node.role", "id": ID, "role": "manager"|"worker"}
 *   {"op": "members.reset", "keep": ID}  (removes every other manager)
 *   {"op": "tasks.plan", "create": [{id, service, slot, node, version}],
 *    "stop": [{id, orphaned}], "delete": [ID], "pending": {SERVICE: [{slot, node, reason}]},
 *    "at": MS}  (delete drops history: tasks desired shutdown)
 *   {"op": "tasks.report", "node": ID, "at": MS, "tasks": [{id, state, message,
 *    exit_code, restarts}]}  (entries for tasks of other nodes are ignored)
 * SPEC must already be canonical (api_spec_normalize). */
void rs_state_apply_op(struct rs_state *s, const json_t *op, uint64_t index,
                       struct rs_op_result *res);

/* Looks a service up by name. Returns NULL when absent; the pointer is
 * borrowed, valid until the next apply or restore. */
const struct rs_service *rs_state_service(const struct rs_state *s, const char *name);

/* Finds a node by id, or else by name (borrowed, valid until the next apply).
 * NULL when absent. */
const struct rs_node *rs_state_node(const struct rs_state *s, const char *id_or_name);

/* A string or integer field of a node's JSON ("" / 0 when absent). */
const char *rs_node_str(const struct rs_node *n, const char *key);
/* A string or integer field of the cluster record ("" / 0 when absent). */
const char *rs_cluster_str(const struct rs_state *s, const char *key);
int64_t rs_cluster_int(const struct rs_state *s, const char *key);

/* Parses a service's JSON (transferred: json_decref). */
json_t *rs_service_json(const struct rs_service *svc);

/* Returns the JSON list of all services sorted by name (borrowed, valid
 * until the next apply or restore). */
const char *rs_state_services_body(struct rs_state *s, size_t *len);

/* Serializes the whole state (transferred: free()). */
char *rs_state_encode(const struct rs_state *s, size_t *len);

/* Replaces the state with the one encoded in buf[0..len). On error (-EINVAL)
 * the state is left unchanged. */
int rs_state_decode(struct rs_state *s, const char *buf, size_t len);

#endif
