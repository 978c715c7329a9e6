/* The scheduler: a pure planner that turns the cluster's state (nodes,
 * services, tasks) into a plan (tasks to create, tasks to stop, replicas that
 * cannot be placed and why), with Swarm's semantics. No I/O, no clock, no
 * globals, no JSON: plain structs in, plain structs out, the same plan for
 * the same input whatever the order of its arrays.
 *
 * What the planner decides:
 * - A node is eligible for new tasks when it is ready and active; pause keeps
 *   the tasks a node has, drain stops them (they are replaced elsewhere).
 * - Tasks on down or removed nodes are lost: stopped with `orphaned` set (the
 *   node cannot report, so the caller marks them orphaned itself) and, for
 *   replicated services, replaced on other nodes.
 * - Replicated: a service holds `replicas` slots, numbered from 1. Scale-up
 *   fills the lowest free slots, scale-down stops the highest slots in use
 *   first (so slots stay 1..replicas unless tasks went unplaced, which can
 *   leave gaps that are not renumbered); a slot whose task ended
 *   (rejected, shutdown, orphaned) while desired running is replaced (the
 *   create's `replaces` names the old task). A task that completed or failed
 *   on a usable node at the service's version is final (its node applied the
 *   restart policy and gave up) and keeps its slot; at an older version, or on
 *   a node it must leave, it is replaced. Two tasks desired running in one slot:
 *   the better one is kept (on a usable node, furthest in its lifecycle, at
 *   the service's version, then the lowest task id), the other stopped.
 * - Global: one task per eligible node matching the constraints; stopped on
 *   drained, removed and no longer matching nodes, orphaned (never replaced)
 *   on down nodes, kept on paused nodes.
 * - A task whose node no longer satisfies the service's constraints is
 *   stopped and replaced; a task of a deleted service is stopped.
 * - Placement filters: constraints, reservations (cpu, memory) within the
 *   node's capacity less the reservations of the tasks on it that have not
 *   ended (whatever their desired state; tasks of deleted services reserve
 *   nothing, their reservations being unknown), max_replicas_per_node. Then the
 *   optional spread preference balances the service's tasks across the values
 *   of one node label (nodes without the label form one more group; a value
 *   counts the service's tasks on all its nodes, paused ones too), and the
 *   strategy picks the node inside the group: spread = fewest tasks of this
 *   service, then fewest tasks in all, then lowest node id; binpack = least
 *   free memory, then least free cpu, then lowest node id.
 * - Published ports: a node where a live task (any service, any desired
 *   state, or a task this plan creates) publishes a port number and protocol
 *   that a service publishes too cannot take a task of that service; such a
 *   service gets at most one task per node.
 * - Rolling updates are not the planner's: a task at an older version keeps
 *   its slot; new tasks are created at the service's version.
 * Cost: about O(T + R log N + S * N) for T tasks, R replicas placed, N nodes
 * and S services (tasks are grouped by a counting sort on slot or node):
 * 100,000 replicas on 1,000 nodes take about 15 ms, 10,000 services of 10
 * replicas about 150 ms (bench/planner.c). */
#ifndef SHOAL_SCHEDULER_SCHEDULER_H
#define SHOAL_SCHEDULER_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

/* Hard limits on the input, checked before anything is allocated. */
#define SCH_MAX_REPLICAS    100000     /* per replicated service */
#define SCH_MAX_CONSTRAINTS 32         /* per service */
#define SCH_MAX_ITEMS       (1u << 24) /* nodes, services, tasks, labels per node */
#define SCH_MAX_CPU         1000000    /* CPUs, in a capacity or a reservation */
#define SCH_MAX_PORTS       1024       /* published ports per service or task */

enum sch_role { SCH_ROLE_WORKER, SCH_ROLE_MANAGER };
enum sch_node_status { SCH_NODE_READY, SCH_NODE_DOWN };
enum sch_availability { SCH_AVAIL_ACTIVE, SCH_AVAIL_PAUSE, SCH_AVAIL_DRAIN };
enum sch_mode { SCH_MODE_REPLICATED, SCH_MODE_GLOBAL };
enum sch_strategy { SCH_STRATEGY_SPREAD, SCH_STRATEGY_BINPACK };
enum sch_desired { SCH_DESIRED_RUNNING, SCH_DESIRED_SHUTDOWN };
enum sch_proto { SCH_PROTO_TCP, SCH_PROTO_UDP };

/* A port a task publishes on its node (whatever its network mode: a host
 * task binds it, a bridge task gets a DNAT on the node's addresses). */
struct sch_port {
    uint32_t published; /* 1..65535 */
    enum sch_proto protocol;
};

/* A task's observed state, in lifecycle order: NEW..RUNNING are "live" (the
 * task holds its slot and its node's resources), the rest have ended. */
enum sch_task_state {
    SCH_TASK_NEW,
    SCH_TASK_ASSIGNED,
    SCH_TASK_PREPARING,
    SCH_TASK_STARTING,
    SCH_TASK_RUNNING,
    SCH_TASK_COMPLETE,
    SCH_TASK_FAILED,
    SCH_TASK_SHUTDOWN,
    SCH_TASK_REJECTED,
    SCH_TASK_ORPHANED,
};
#define SCH_TASK_STATE_COUNT (SCH_TASK_ORPHANED + 1)

/* Why the plan stops a task (names from sch_stop_reason_name). */
enum sch_stop_reason {
    SCH_STOP_SCALE_DOWN,      /* "scale-down": more slots in use than replicas */
    SCH_STOP_SERVICE_DELETED, /* "service-deleted" */
    SCH_STOP_NODE_DOWN,       /* "node-down": lost with its node (orphaned) */
    SCH_STOP_NODE_REMOVED,    /* "node-removed": its node left the cluster (orphaned) */
    SCH_STOP_NODE_DRAIN,      /* "node-drain" */
    SCH_STOP_CONSTRAINT,      /* "constraint": its node no longer satisfies the constraints */
    SCH_STOP_ENDED,           /* "ended": it ended while desired running (replaced if wanted) */
    SCH_STOP_DUPLICATE,       /* "duplicate": another task holds its slot (or node, global) */
    SCH_STOP_INVALID,         /* "invalid": replicated without a slot, or without a node */
};
#define SCH_STOP_REASON_COUNT (SCH_STOP_INVALID + 1)

struct sch_label {
    const char *key;   /* borrowed, non-NULL */
    const char *value; /* borrowed, non-NULL */
};

struct sch_node {
    const char *id;       /* borrowed: unique and non-empty; ties are broken by it */
    const char *name;     /* borrowed, may be NULL (then "") */
    const char *hostname; /* borrowed, may be NULL (then name) */
    enum sch_role role;
    enum sch_node_status status;
    enum sch_availability availability;
    const struct sch_label *labels; /* borrowed: n_labels entries, unique keys */
    size_t n_labels;
    double cpu;     /* capacity in CPUs, >= 0 */
    int64_t memory; /* capacity in bytes, >= 0 */
};

struct sch_service {
    const char *name; /* borrowed: unique and non-empty */
    enum sch_mode mode;
    uint32_t replicas; /* replicated: 0..SCH_MAX_REPLICAS; ignored for global */
    uint64_t version;  /* given to the tasks the plan creates */
    double cpu;        /* reservation per task in CPUs, >= 0 */
    int64_t memory;    /* reservation per task in bytes, >= 0 */
    /* borrowed: n_constraints strings such as "node.labels.zone==a",
     * "node.role!=manager", "node.name==n1", "node.id==ID", "node.hostname==H"
     * (see sch_constraint_valid). Values compare without regard to case, as
     * Swarm's do; `!=` on a label a node lacks is satisfied. A service with a
     * malformed constraint keeps its tasks and places nothing (its replicas
     * are unplaced with the reason). */
    const char *const *constraints;
    size_t n_constraints;
    uint32_t max_replicas_per_node; /* 0 = no limit; replicated only */
    enum sch_strategy strategy;
    /* borrowed: the label key to balance over ("zone" or "node.labels.zone"),
     * NULL or "" for none. */
    const char *spread;
    /* borrowed: the ports its new tasks publish (n_ports entries, at most
     * SCH_MAX_PORTS). A node where a live task publishes one of them (same
     * number and protocol) cannot take a task of this service. */
    const struct sch_port *ports;
    size_t n_ports;
};

struct sch_task {
    /* borrowed, non-NULL: unique. Not checked (the store keys tasks by id;
     * checking cost half the time of a re-plan): duplicates still give the
     * same plan for the same tasks in any order, but one naming an id twice. */
    const char *id;
    const char *service; /* borrowed: a name absent from the services = deleted */
    uint32_t slot;       /* replicated: 1..; ignored for global services */
    const char *node;    /* borrowed: node id; NULL or "" = not assigned (invalid) */
    uint64_t version;    /* the service version the task runs */
    enum sch_desired desired;
    enum sch_task_state state; /* observed */
    /* borrowed: the ports the task publishes (those of the spec it runs,
     * which may be older than its service's): held on its node while it is
     * live, whatever its desired state or service (deleted ones too). */
    const struct sch_port *ports;
    size_t n_ports;
};

struct sch_input {
    const struct sch_node *nodes; /* borrowed: n_nodes entries, any order */
    size_t n_nodes;
    const struct sch_service *services; /* borrowed: n_services entries, any order */
    size_t n_services;
    const struct sch_task *tasks; /* borrowed: n_tasks entries, any order */
    size_t n_tasks;
};

/* In a plan, every string pointer is borrowed from the input (valid while the
 * input's strings are) except `reason`, which the plan owns. */
struct sch_create {
    const char *service;
    uint32_t slot;        /* replicated: 1..replicas; global: 0 */
    const char *node;     /* the chosen node's id */
    uint64_t version;     /* the service's version */
    const char *replaces; /* the task this one replaces (stopped in the same plan), or NULL */
};

struct sch_stop {
    const char *task;
    const char *service;
    const char *node; /* as the task had it (may be NULL) */
    uint32_t slot;
    enum sch_stop_reason reason;
    int orphaned; /* 1 when it was live on a node that is down or gone: nobody will
                     report its end, the caller marks it orphaned */
};

struct sch_unplaced {
    const char *service;
    uint32_t slot;        /* replicated: the slot left empty; global: 0 */
    const char *node;     /* global: the node it should run on; replicated: NULL */
    const char *replaces; /* as in sch_create */
    const char *reason;   /* owned by the plan: "no node satisfies constraint node.labels.zone==b",
                             "insufficient memory: needs 64 MiB, most free 32 MiB", ... */
};

/* Order: creates and unplaced by service (global services first, then
 * replicated, each by name), then slot or node id; stops by service name,
 * then slot (replicated) or node id (global), the tasks of deleted services
 * last (by service, slot, task id). */
struct sch_plan {
    struct sch_create *creates; /* owned */
    size_t n_creates;
    struct sch_stop *stops; /* owned */
    size_t n_stops;
    struct sch_unplaced *unplaced; /* owned */
    size_t n_unplaced;
    char errmsg[256]; /* why sch_plan_compute failed */
    /* Private. */
    char **reasons_;
    size_t n_reasons_;
    size_t cap_creates_, cap_stops_, cap_unplaced_, cap_reasons_;
};

/* Computes the plan that brings the tasks to the state the services and
 * nodes ask for. Pure: the same input (in any order) gives the same plan.
 *
 * in: borrowed, not modified, read only during the call (the plan keeps
 *     pointers to its strings, though: see struct sch_create).
 * plan: filled on success (free with sch_plan_free); on failure empty but
 *       for plan->errmsg; freeing it then is allowed, not needed.
 * Returns 0, or -EINVAL when the input is malformed (a NULL array with
 * entries, a NULL or empty node id or service name, a NULL task id or
 * service, duplicate node ids or service names, an enum out of range, a
 * negative, non-finite or too large (SCH_MAX_CPU) capacity or reservation,
 * a port out of 1..65535 or of unknown protocol, more than SCH_MAX_PORTS,
 * replicas above SCH_MAX_REPLICAS, more than SCH_MAX_CONSTRAINTS constraints
 * or SCH_MAX_ITEMS of anything, a label without key or value), with
 * plan->errmsg saying which ("node \"n2\": duplicate id"). */
int sch_plan_compute(const struct sch_input *in, struct sch_plan *plan);

/* Frees what the plan owns and empties it. Safe on an empty (zeroed) plan. */
void sch_plan_free(struct sch_plan *plan);

/* Checks one constraint string. Returns 1 when it is well formed:
 * blanks allowed around the operator, attribute one of node.id, node.name,
 * node.hostname, node.role (value manager or worker), node.labels.KEY, operator
 * == or !=, non-empty value. */
int sch_constraint_valid(const char *constraint);

/* Names for logs and JSON ("scale-down", "node-down", ...; "running",
 * "failed", ...). Return "unknown" for a value out of range. */
const char *sch_stop_reason_name(enum sch_stop_reason reason);
const char *sch_task_state_name(enum sch_task_state state);

/* Parses a task state name as sch_task_state_name writes it. Returns 0 with
 * *out set, or -EINVAL (name NULL or unknown). */
int sch_task_state_parse(const char *name, enum sch_task_state *out);

#endif
