/* The replicated store: one canonical/raft instance on libuv with its TCP
 * transport, the FSM over the object model, and the batching of concurrent
 * writes into shared Raft entries. A write is answered only once the entry
 * carrying it is committed and applied. */
#ifndef SHOAL_RAFT_STORE_H
#define SHOAL_RAFT_STORE_H

#include <jansson.h>
#include <raft.h>
#include <stdint.h>
#include <uv.h>

#include "raft/state.h"

struct rs_store;

/* Raft's election timeout (randomized by raft over [T, 2T]) and heartbeat.
 * 750 ms rather than libraft's 1000: a dead leader is replaced in 1.1-1.6 s
 * instead of 1.4-2 s (bench/cluster.py), still 7 missed heartbeats away from
 * a spurious election, and pre-vote keeps a slow node from disrupting. */
#define RS_STORE_DEFAULT_ELECTION_MS  750
#define RS_STORE_DEFAULT_HEARTBEAT_MS 100

struct rs_store_config {
    const char *dir;               /* borrowed: existing directory for the Raft log and snapshots */
    uint64_t id;                   /* this node's Raft id, > 0 */
    const char *address;           /* borrowed: "ip:port" other nodes reach this node at */
    const char *bind_address;      /* borrowed: where to listen when it differs, else NULL or "" */
    int bootstrap;                 /* 1 on the first start of a new cluster's first node */
    int force_new_cluster;         /* rewrite the configuration to this node alone (raft_recover) */
    unsigned election_timeout_ms;  /* 0 for RS_STORE_DEFAULT_ELECTION_MS */
    unsigned heartbeat_timeout_ms; /* 0 for RS_STORE_DEFAULT_HEARTBEAT_MS */
};

/* Answer to one submitted operation. res is borrowed for the duration of the
 * call; the callee may take res->body (set it to NULL). */
typedef void (*rs_store_submit_cb)(void *data, struct rs_op_result *res);
/* Called after every change of the state (applies and restores). */
typedef void (*rs_store_change_cb)(void *data);
/* Called each time this node becomes a leader ready to serve (its barrier
 * applied). */
typedef void (*rs_store_leader_cb)(void *data);
/* Called once the store is closed; the store is freed. */
typedef void (*rs_store_stop_cb)(void *data);

/* Opens the Raft log in cfg->dir, bootstraps if asked (a no-op when the log
 * already holds a cluster), and starts the instance on loop (borrowed, must
 * outlive the store). On error returns a negative errno and writes the
 * reason into errmsg (256 bytes). */
int rs_store_start(struct rs_store **out, uv_loop_t *loop, const struct rs_store_config *cfg,
                   char *errmsg);

/* Queues one operation (see rs_state_apply_op; transferred) for the next
 * batch. cb is called exactly once, from the loop, never from inside this
 * call. Returns 0, or -EAGAIN when this node is not the leader or is
 * stopping (then cb is never called and op is freed). */
int rs_store_submit(struct rs_store *st, json_t *op, rs_store_submit_cb cb, void *data);

/* Confirms leadership with a Raft barrier, then calls cb(data, 0), or with
 * a negative errno when leadership is lost. Returns 0 or -EAGAIN (not the
 * leader; cb is not called). */
int rs_store_barrier(struct rs_store *st, void (*cb)(void *data, int status), void *data);

/* Sets the change listener (one). */
void rs_store_on_change(struct rs_store *st, rs_store_change_cb cb, void *data);

/* Sets the leadership listener (one). */
void rs_store_on_leader(struct rs_store *st, rs_store_leader_cb cb, void *data);

/* Records a heartbeat from node id (leader only; ignored elsewhere). */
void rs_store_heartbeat(struct rs_store *st, const char *id);

/* The leader's last heartbeat time of a node (monotonic ms), 0 when unknown
 * or when this node is not the leader. */
uint64_t rs_store_last_seen(struct rs_store *st, const char *id);

/* The state as this node has applied it (borrowed, valid until the next
 * loop iteration that applies). */
struct rs_state *rs_store_state(struct rs_store *st);

/* The raft instance, for read-only inspection (state, term, configuration). */
struct raft *rs_store_raft(struct rs_store *st);

/* 1 when this node is the leader. */
int rs_store_is_leader(struct rs_store *st);

/* Stops taking writes, waits (up to 10 s) for the writes already submitted
 * to be answered, hands leadership to another voter when this node leads,
 * closes Raft, frees the store, then calls cb. */
void rs_store_stop(struct rs_store *st, rs_store_stop_cb cb, void *data);

#endif
