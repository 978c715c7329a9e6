/* Internals shared by the scheduler's files: the planner's working copy of
 * its input (sorted, indexed, with per-node counters) and the helpers its
 * passes share. Nothing here is used outside scheduler/. */
#ifndef SHOAL_SCHEDULER_INTERNAL_H
#define SHOAL_SCHEDULER_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scheduler/scheduler.h"

#define SCH__NONE UINT32_MAX
#define SCH__NANO 1000000000.0 /* nano-CPUs per CPU */

enum sch__attr {
    SCH__ATTR_ID,
    SCH__ATTR_NAME,
    SCH__ATTR_HOSTNAME,
    SCH__ATTR_ROLE,
    SCH__ATTR_LABEL
};

/* A parsed constraint; its pointers are borrowed from the constraint text. */
struct sch__cons {
    const char *text; /* the whole constraint, for messages */
    enum sch__attr attr;
    bool ne;         /* operator != */
    const char *key; /* label key (SCH__ATTR_LABEL) */
    size_t key_len;
    const char *value;
    size_t value_len;
    uint32_t id; /* the same for the same text (index into ctx->cmatch) */
};

/* Where a task stands with respect to its node, for the service it serves. */
enum sch__verdict {
    SCH__OK,         /* the node is ready, active or paused, and matches */
    SCH__DOWN,       /* the node is down */
    SCH__REMOVED,    /* the node is not in the input */
    SCH__DRAIN,      /* the node is drained */
    SCH__CONSTRAINT, /* the node no longer satisfies the constraints */
    SCH__UNASSIGNED, /* the task has no node */
};

struct sch__node {
    const struct sch_node *in; /* borrowed */
    bool usable;               /* ready and active: may take new tasks */
    int64_t free_cpu;     /* nano-CPUs: capacity less the reservations of live tasks and creates */
    int64_t free_mem;     /* bytes, likewise */
    uint32_t total;       /* tasks kept or created by the plan, all services */
    uint32_t svc_count;   /* tasks kept or created of service svc_stamp - 1 (sch__count) */
    uint32_t svc_stamp;   /* service index + 1 that svc_count counts for, 0 = none */
    uint32_t match_stamp; /* service index + 1 that `match` was computed for */
    bool match;
};

struct sch__svc {
    const struct sch_service *in; /* borrowed */
    int64_t cpu;                  /* reservation in nano-CPUs (integers keep sums exact) */
    struct sch__cons *cons;       /* in ctx->cons */
    size_t n_cons;
    const char *bad_cons; /* the first malformed constraint, NULL when all parse */
    const char *spread;   /* label key to balance over (prefix stripped), NULL for none */
    size_t t_begin;       /* its tasks desired running: ctx->tasks[t_begin..t_end) */
    size_t t_end;
    size_t need_begin; /* replicated slots to fill: ctx->needs[need_begin..need_end) */
    size_t need_end;
};

/* A task desired running, with the fields the passes read copied from its
 * input so that sorting and classifying do not chase pointers. */
struct sch__task {
    const struct sch_task *in; /* borrowed */
    uint64_t key;              /* sort key: slot or node index, then order (plan.c) */
    uint32_t slot;
    uint32_t svc;    /* index into ctx->svcs, SCH__NONE = deleted service */
    uint32_t node;   /* index into ctx->nodes, SCH__NONE = unknown or none */
    uint8_t state;   /* enum sch_task_state */
    uint8_t verdict; /* enum sch__verdict */
    uint8_t order;   /* which task of a slot to keep: lower is better */
    bool no_node;    /* the task names no node */
    bool stale;      /* its version is not the service's */
    bool kept;
};

struct sch__need {
    uint32_t slot;
    const char *replaces; /* borrowed task id, or NULL */
};

/* The values of one label over all nodes, ranked (NULL, no label, last). */
struct sch__ranks {
    const char *key;    /* borrowed: the label key ranked, NULL before the first */
    uint32_t *of_node;  /* owned: the rank of each node's value */
    const char **value; /* owned: the value of each rank (borrowed strings) */
    size_t n;
};

/* A set of (node, port, protocol) held by live tasks and by the plan's
 * creates: open addressing over keys with their top bit set (0 = free). */
struct sch__ports {
    uint64_t *keys; /* owned, cap entries */
    size_t cap, n;
};

struct sch__ctx {
    const struct sch_input *in;
    struct sch_plan *plan;
    struct sch__node *nodes; /* owned, sorted by id */
    size_t n_nodes;
    struct sch__svc *svcs; /* owned, sorted by name */
    size_t n_svcs;
    struct sch__cons *cons; /* owned, every service's constraints */
    /* owned, NULL when too large: whether node i satisfies the constraint of
     * id c at [c * n_nodes + i], 0 = not known yet, 1 = no, 2 = yes. */
    uint8_t *cmatch;
    struct sch__task *tasks; /* owned: tasks desired running, grouped by service (in svcs
                                order), then those of deleted services */
    size_t n_tasks;
    size_t deleted_begin;    /* tasks[deleted_begin..n_tasks) serve deleted services */
    struct sch__need *needs; /* owned */
    size_t n_needs;
    size_t cap_needs;
    uint32_t *scratch;       /* owned: n_nodes entries for placement */
    struct sch__ranks ranks; /* the spread preference's values, for the last key */
    struct sch__ports ports; /* the ports in use on each node */
};

/* input.c: validates and indexes the input into ctx (tasks resolved, node
 * resources less the live tasks' reservations). Returns 0 or -EINVAL with
 * ctx->plan->errmsg set. sch__ctx_free frees what ctx owns. */
int sch__ctx_init(struct sch__ctx *ctx, const struct sch_input *in, struct sch_plan *plan);
void sch__ctx_free(struct sch__ctx *ctx);

/* ports.c: marks the ports of a task (or service) as used on node i. */
void sch__ports_add(struct sch__ports *set, uint32_t i, const struct sch_port *ports, size_t n);
/* The first of service s's ports in use on node i, or NULL when all are free. */
const struct sch_port *sch__port_conflict(const struct sch__ctx *ctx, uint32_t s, uint32_t i);
/* "8080/tcp" */
const char *sch__proto_name(enum sch_proto p);
void sch__ports_free(struct sch__ports *set);
/* Checks a port list from the input. Returns 0, or -EINVAL with errmsg set
 * ("what": "service \"web\"", ...). */
int sch__ports_check(const struct sch_port *ports, size_t n, const char *what, char *errmsg,
                     size_t size);

/* constraint.c */
int sch__cons_parse(const char *text, struct sch__cons *out);
bool sch__cons_match(const struct sch__cons *c, const struct sch_node *n);
/* The value of label key[0..key_len) on n, or NULL when n has none. */
const char *sch__node_label(const struct sch_node *n, const char *key, size_t key_len);

/* plan.c: is node i ready, not drained and matching service s? (cached) */
bool sch__node_matches(struct sch__ctx *ctx, uint32_t s, uint32_t i);
/* Whether a task of service s fits on node n now. */
static inline bool sch__fits(const struct sch__node *n, const struct sch__svc *s)
{
    return (s->in->memory == 0 || n->free_mem >= s->in->memory) &&
           (s->cpu == 0 || n->free_cpu >= s->cpu);
}

/* Whether node i satisfies constraint c, through ctx->cmatch when there is
 * one (services share constraints). */
static inline bool sch__cons_cached(struct sch__ctx *ctx, const struct sch__cons *c, uint32_t i)
{
    if (!ctx->cmatch)
        return sch__cons_match(c, ctx->nodes[i].in);
    uint8_t *m = &ctx->cmatch[(size_t)c->id * ctx->n_nodes + i];
    if (*m == 0)
        *m = sch__cons_match(c, ctx->nodes[i].in) ? 2 : 1;
    return *m == 2;
}
/* Accounts a task of service s placed on node n (counters and resources). */
void sch__take(struct sch__ctx *ctx, uint32_t s, struct sch__node *n);
/* Counts service s's kept tasks per node (read with sch__count); call once
 * per service, before placing its tasks. */
void sch__count_service(struct sch__ctx *ctx, uint32_t s);
/* The number of tasks of service s on node n, kept or created. */
static inline uint32_t sch__count(const struct sch__node *n, uint32_t s)
{
    return n->svc_stamp == s + 1 ? n->svc_count : 0;
}
void sch__add_create(struct sch_plan *plan, const struct sch_create *c);
void sch__add_unplaced(struct sch_plan *plan, const struct sch_unplaced *u);
/* Formats a reason the plan owns (valid until sch_plan_free). */
const char *sch__reason(struct sch_plan *plan, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* place.c: creates or reports as unplaced the tasks service s lacks. */
void sch__place_replicated(struct sch__ctx *ctx, uint32_t s);
void sch__place_global(struct sch__ctx *ctx, uint32_t s);

#endif
