/* The event stream: a bounded ring of what happened to services, rollouts,
 * tasks and nodes, filled by the FSM as it applies operations, so that every
 * manager holds the same events under the same indexes. Pure: no I/O, no
 * clock (an event's "at" is its operation's). */
#ifndef SHOAL_RAFT_EVENTS_H
#define SHOAL_RAFT_EVENTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define RS_EVENTS_DEFAULT_MAX   10000      /* events kept (SHOAL_EVENTS_MAX overrides it) */
#define RS_EVENTS_LIMIT_MAX     1000000    /* the most SHOAL_EVENTS_MAX may ask for */
#define RS_EVENTS_DEFAULT_BYTES (4u << 20) /* bytes kept, for up to the default count */
#define RS_EVENTS_BYTES_EACH    420        /* bytes kept per event above the default count */
#define RS_EVENTS_MAX_TEXT      256        /* bytes of a message or output in an event */

struct common_buf;

/* The ring. Every event is one line of compact JSON, `{"index": N, "type":
 * T, "at": MS, ...}`, whose index is one more than the event before: the
 * index counts every event ever made (kept in snapshots), so a reader can
 * resume after the last index it saw. The ring keeps the events after its
 * floor: the oldest kept is floor+1, the newest head (head == floor when
 * none is kept). */
struct rs_events;

/* Creates an empty ring (transferred: rs_events_free) that keeps at most max
 * events and max_bytes bytes of them (text and bookkeeping); the oldest go
 * first. 0 for either: the default (rs_events_default_max(); 4 MiB, or 420
 * bytes an event when more than 10,000 are kept). Slots are allocated on the
 * first push. */
struct rs_events *rs_events_new(size_t max, size_t max_bytes);
void rs_events_free(struct rs_events *ev);

/* SHOAL_EVENTS_MAX from the environment when it is an integer from 1 to
 * 1,000,000 (read once, at the first call), else RS_EVENTS_DEFAULT_MAX. */
size_t rs_events_default_max(void);

/* Appends an event (transferred): a JSON object with a string "type" (an
 * object without one is dropped). Its "index" is set to head+1 (first in the
 * line when the object has no "index" yet); strings in it must be at most a
 * few KiB (the FSM's hooks cut messages to RS_EVENTS_MAX_TEXT). Drops the
 * oldest events as the limits require (the newest is always kept). Returns
 * the new event's index, or 0 when dropped. */
uint64_t rs_events_push(struct rs_events *ev, json_t *event);

/* Empties the ring and moves its head and floor to `head`, or keeps them
 * where they are if they are past it (an index never goes backwards). */
void rs_events_resume(struct rs_events *ev, uint64_t head);

uint64_t rs_events_head(const struct rs_events *ev);
uint64_t rs_events_floor(const struct rs_events *ev);
size_t rs_events_count(const struct rs_events *ev);
size_t rs_events_bytes(const struct rs_events *ev);

/* Which events a read wants. service: exact name, NULL or "" for any (an
 * event without a service never matches one). types: prefixes of the type
 * ("task." matches task.state and task.health), any one matching; n_types
 * 0 for any. Both borrowed. */
struct rs_events_filter {
    const char *service;
    const char *const *types;
    size_t n_types;
};

/* 1 when the event of this type and service (NULL: none) passes f. */
int rs_events_match(const struct rs_events_filter *f, const char *type, const char *service);

/* The answer of rs_events_read. */
struct rs_events_page {
    size_t count;   /* events written (the lost marker not counted) */
    int lost;       /* the marker was written first */
    uint64_t index; /* where the next read resumes: the last event written when
                       the limit cut the page, else the head */
};

/* Appends to out the events that pass f, one JSON line each ending in "\n",
 * oldest first, at most limit of them. has_after: the events after index
 * `after`; when some of those were dropped (after < floor) the page starts
 * with the line {"index": FLOOR, "type": "events.lost", "at": 0, "message":
 * "events after N were dropped (the oldest kept is M): resuming from M"}.
 * Without has_after: the last `limit` events that pass f. */
void rs_events_read(const struct rs_events *ev, int has_after, uint64_t after,
                    const struct rs_events_filter *f, size_t limit, struct common_buf *out,
                    struct rs_events_page *page);

/* The FSM's hooks (raft/state*.c). Each appends at most one or two events
 * to s->events describing a change the operation being applied makes; `at`
 * is the operation's "at" (0 when absent, see rs__op_at). They read the
 * objects (borrowed) and never change them. */
struct rs_state;
struct rs_service;
struct rs_node;

json_int_t rs__op_at(const json_t *op);
/* Any event: type, at, and fields (transferred: an object, e.g.
 * {"service": NAME, ...}). */
void rs__event(struct rs_state *s, json_int_t at, const char *type, json_t *fields);
/* service.created / service.updated / service.deleted: its name, version
 * and replicas. */
void rs__event_service(struct rs_state *s, json_int_t at, const char *type,
                       const struct rs_service *svc);
/* service.scaled: from its replicas (before the change) to `to`, when they
 * differ. */
void rs__event_scaled(struct rs_state *s, json_int_t at, const struct rs_service *svc,
                      json_int_t to);
/* rollout.*: the service's rollout as it now stands (kind, from_version,
 * to_version, updated, total, failures, message). type NULL: "rollout." and
 * the rollout's state when that is paused, completed or rolled_back, else
 * nothing. */
void rs__event_rollout(struct rs_state *s, json_int_t at, const char *type,
                       const struct rs_service *svc);
/* node.*: the node's id, name and role. */
void rs__event_node(struct rs_state *s, json_int_t at, const char *type, const struct rs_node *n);
/* node.active / node.paused / node.drained when availability (the
 * operation's, borrowed; may be NULL) is a string other than the node's
 * current one; call it before the change. */
void rs__event_availability(struct rs_state *s, json_int_t at, const struct rs_node *n,
                            const json_t *availability);
/* After a change of a task: task.state when its state is no longer `from`
 * (from, to, message, exit_code); then task.health when health (the new
 * health object, borrowed; NULL or null: none to compare) has a status
 * other than the task's current "health" one; call it before storing
 * health. */
void rs__event_task(struct rs_state *s, json_int_t at, const json_t *task, const char *from,
                    const json_t *health);
/* Snapshots: `,"events_index":HEAD` appended to b; on decode the fresh
 * state's ring starts empty at the snapshot's index (0 when absent), as on
 * every manager that restores it. Raft restores only a snapshot ahead of
 * the state it replaces (at start the state is empty), so a manager's
 * index does not go back. */
void rs__events_encode(const struct rs_state *s, struct common_buf *b);
void rs__events_decode(struct rs_state *fresh, const json_t *root);

#endif
