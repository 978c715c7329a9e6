/* The planner's input: validated, sorted (nodes by id, services by name),
 * indexed with hash maps, tasks resolved to their service and node and
 * grouped by service, node resources less the reservations of live tasks. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "scheduler/internal.h"

#define LABEL_PREFIX "node.labels."

/* The largest cache of constraint results (distinct constraints x nodes). */
#define CMATCH_MAX (1u << 24)

/* An open-addressing map from borrowed strings to indexes. Each slot keeps
 * the key's hash, so a probe rarely has to read the key itself. */
struct slot {
    const char *key; /* borrowed, NULL when free */
    uint32_t hash;
    uint32_t val;
};

struct map {
    struct slot *slots; /* owned */
    size_t mask;
};

static uint32_t hash(const char *s)
{
    uint64_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return (uint32_t)(h ^ (h >> 32));
}

static void map_init(struct map *m, size_t n)
{
    size_t cap = 16;
    while (cap < n + n / 2)
        cap *= 2;
    m->slots = xcalloc(cap, sizeof(*m->slots));
    m->mask = cap - 1;
}

static void map_free(struct map *m)
{
    free(m->slots);
    *m = (struct map){0};
}

/* Inserts key -> val unless key is there. Returns the value key had, or
 * SCH__NONE when it was inserted. */
static uint32_t map_put(struct map *m, const char *key, uint32_t val)
{
    uint32_t h = hash(key);
    size_t i = h & m->mask;
    for (; m->slots[i].key; i = (i + 1) & m->mask)
        if (m->slots[i].hash == h && strcmp(m->slots[i].key, key) == 0)
            return m->slots[i].val;
    m->slots[i] = (struct slot){key, h, val};
    return SCH__NONE;
}

static uint32_t map_get(const struct map *m, const char *key)
{
    uint32_t h = hash(key);
    for (size_t i = h & m->mask; m->slots[i].key; i = (i + 1) & m->mask)
        if (m->slots[i].hash == h && strcmp(m->slots[i].key, key) == 0)
            return m->slots[i].val;
    return SCH__NONE;
}

static int bad(struct sch__ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(struct sch__ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->plan->errmsg, sizeof(ctx->plan->errmsg), fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static bool resource_ok(double cpu, int64_t memory)
{
    return isfinite(cpu) && cpu >= 0 && cpu <= SCH_MAX_CPU && memory >= 0;
}

static int node_check(struct sch__ctx *ctx, const struct sch_node *n, size_t i)
{
    if (!n->id || !*n->id)
        return bad(ctx, "nodes[%zu]: no id", i);
    if ((unsigned)n->role > SCH_ROLE_MANAGER || (unsigned)n->status > SCH_NODE_DOWN ||
        (unsigned)n->availability > SCH_AVAIL_DRAIN)
        return bad(ctx, "node \"%s\": role, status or availability out of range", n->id);
    if (!resource_ok(n->cpu, n->memory))
        return bad(ctx, "node \"%s\": capacity must be finite, >= 0, cpu <= %d", n->id,
                   SCH_MAX_CPU);
    if (n->n_labels > SCH_MAX_ITEMS || (n->n_labels && !n->labels))
        return bad(ctx, "node \"%s\": bad label list", n->id);
    for (size_t l = 0; l < n->n_labels; l++)
        if (!n->labels[l].key || !n->labels[l].value)
            return bad(ctx, "node \"%s\": label %zu has no key or value", n->id, l);
    return 0;
}

static int cmp_node(const void *a, const void *b)
{
    return strcmp(((const struct sch__node *)a)->in->id, ((const struct sch__node *)b)->in->id);
}

static int nodes_init(struct sch__ctx *ctx, struct map *m)
{
    const struct sch_input *in = ctx->in;
    ctx->nodes = xcalloc(in->n_nodes, sizeof(*ctx->nodes));
    for (size_t i = 0; i < in->n_nodes; i++) {
        int rv = node_check(ctx, &in->nodes[i], i);
        if (rv < 0)
            return rv;
        ctx->nodes[i] = (struct sch__node){.in = &in->nodes[i],
                                           .usable = in->nodes[i].status == SCH_NODE_READY &&
                                                     in->nodes[i].availability == SCH_AVAIL_ACTIVE,
                                           .free_cpu = llround(in->nodes[i].cpu * SCH__NANO),
                                           .free_mem = in->nodes[i].memory};
    }
    ctx->n_nodes = in->n_nodes;
    qsort(ctx->nodes, ctx->n_nodes, sizeof(*ctx->nodes), cmp_node);
    map_init(m, ctx->n_nodes);
    for (size_t i = 0; i < ctx->n_nodes; i++)
        if (map_put(m, ctx->nodes[i].in->id, (uint32_t)i) != SCH__NONE)
            return bad(ctx, "node \"%s\": duplicate id", ctx->nodes[i].in->id);
    ctx->scratch = xcalloc(ctx->n_nodes, sizeof(*ctx->scratch));
    return 0;
}

static int service_check(struct sch__ctx *ctx, const struct sch_service *s, size_t i)
{
    if (!s->name || !*s->name)
        return bad(ctx, "services[%zu]: no name", i);
    if ((unsigned)s->mode > SCH_MODE_GLOBAL || (unsigned)s->strategy > SCH_STRATEGY_BINPACK)
        return bad(ctx, "service \"%s\": mode or strategy out of range", s->name);
    if (s->mode == SCH_MODE_REPLICATED && s->replicas > SCH_MAX_REPLICAS)
        return bad(ctx, "service \"%s\": more than %d replicas", s->name, SCH_MAX_REPLICAS);
    if (!resource_ok(s->cpu, s->memory))
        return bad(ctx, "service \"%s\": reservations must be finite, >= 0, cpu <= %d", s->name,
                   SCH_MAX_CPU);
    if (s->n_constraints > SCH_MAX_CONSTRAINTS)
        return bad(ctx, "service \"%s\": more than %d constraints", s->name, SCH_MAX_CONSTRAINTS);
    if (s->n_constraints && !s->constraints)
        return bad(ctx, "service \"%s\": no constraint list", s->name);
    char what[160];
    snprintf(what, sizeof(what), "service \"%.140s\"", s->name);
    return sch__ports_check(s->ports, s->n_ports, what, ctx->plan->errmsg,
                            sizeof(ctx->plan->errmsg));
}

static int cmp_svc(const void *a, const void *b)
{
    return strcmp(((const struct sch__svc *)a)->in->name, ((const struct sch__svc *)b)->in->name);
}

/* Parses the constraints and the spread preference of ctx->svcs[i]; texts
 * maps each distinct constraint text to its id. */
static void service_prepare(struct sch__ctx *ctx, size_t i, size_t *n_cons, struct map *texts,
                            uint32_t *n_texts)
{
    struct sch__svc *s = &ctx->svcs[i];
    s->cons = ctx->cons + *n_cons;
    for (size_t c = 0; c < s->in->n_constraints; c++) {
        const char *text = s->in->constraints[c];
        struct sch__cons *cons = &s->cons[s->n_cons];
        if (sch__cons_parse(text, cons) == 0) {
            cons->id = map_put(texts, text, *n_texts);
            if (cons->id == SCH__NONE)
                cons->id = (*n_texts)++;
            s->n_cons++;
        } else if (!s->bad_cons) {
            s->bad_cons = text ? text : "(null)";
        }
    }
    *n_cons += s->n_cons;
    const char *spread = s->in->spread;
    if (spread && strncmp(spread, LABEL_PREFIX, strlen(LABEL_PREFIX)) == 0)
        spread += strlen(LABEL_PREFIX);
    s->spread = spread && *spread ? spread : NULL;
}

static int services_init(struct sch__ctx *ctx, struct map *m)
{
    const struct sch_input *in = ctx->in;
    size_t n_cons = 0;
    ctx->svcs = xcalloc(in->n_services, sizeof(*ctx->svcs));
    for (size_t i = 0; i < in->n_services; i++) {
        int rv = service_check(ctx, &in->services[i], i);
        if (rv < 0)
            return rv;
        ctx->svcs[i].in = &in->services[i];
        ctx->svcs[i].cpu = llround(in->services[i].cpu * SCH__NANO);
        n_cons += in->services[i].n_constraints;
    }
    ctx->n_svcs = in->n_services;
    qsort(ctx->svcs, ctx->n_svcs, sizeof(*ctx->svcs), cmp_svc);
    ctx->cons = xcalloc(n_cons, sizeof(*ctx->cons));
    struct map texts;
    map_init(&texts, n_cons);
    uint32_t n_texts = 0;
    n_cons = 0;
    map_init(m, ctx->n_svcs);
    int rv = 0;
    for (size_t i = 0; i < ctx->n_svcs && rv == 0; i++) {
        if (map_put(m, ctx->svcs[i].in->name, (uint32_t)i) != SCH__NONE)
            rv = bad(ctx, "service \"%s\": duplicate name", ctx->svcs[i].in->name);
        else
            service_prepare(ctx, i, &n_cons, &texts, &n_texts);
    }
    map_free(&texts);
    if (rv == 0 && n_texts && (uint64_t)n_texts * ctx->n_nodes <= CMATCH_MAX)
        ctx->cmatch = xcalloc((size_t)n_texts * ctx->n_nodes, 1);
    return rv;
}

static int task_check(struct sch__ctx *ctx, const struct sch_task *t, size_t i)
{
    if (!t->id)
        return bad(ctx, "tasks[%zu]: no id", i);
    if (!t->service)
        return bad(ctx, "task \"%s\": no service", t->id);
    if ((unsigned)t->desired > SCH_DESIRED_SHUTDOWN || (unsigned)t->state > SCH_TASK_ORPHANED)
        return bad(ctx, "task \"%s\": desired or observed state out of range", t->id);
    char what[160];
    snprintf(what, sizeof(what), "task \"%.140s\"", t->id);
    return sch__ports_check(t->ports, t->n_ports, what, ctx->plan->errmsg,
                            sizeof(ctx->plan->errmsg));
}

/* Resolves every task to its service and node, takes the reservations of
 * live tasks off their nodes, and counts the tasks desired running per
 * service (count[ctx->n_svcs] for deleted services). */
static int tasks_resolve(struct sch__ctx *ctx, const struct map *nodes, const struct map *svcs,
                         uint32_t *svc_of, uint32_t *node_of, size_t *count)
{
    const struct sch_input *in = ctx->in;
    int rv = 0;
    for (size_t i = 0; i < in->n_tasks && rv == 0; i++) {
        const struct sch_task *t = &in->tasks[i];
        rv = task_check(ctx, t, i);
        if (rv < 0)
            break;
        svc_of[i] = map_get(svcs, t->service);
        node_of[i] = t->node && *t->node ? map_get(nodes, t->node) : SCH__NONE;
        if (node_of[i] != SCH__NONE && svc_of[i] != SCH__NONE && t->state <= SCH_TASK_RUNNING) {
            struct sch__node *n = &ctx->nodes[node_of[i]];
            n->free_cpu -= ctx->svcs[svc_of[i]].cpu;
            n->free_mem -= ctx->svcs[svc_of[i]].in->memory;
        }
        if (node_of[i] != SCH__NONE && t->state <= SCH_TASK_RUNNING)
            sch__ports_add(&ctx->ports, node_of[i], t->ports, t->n_ports);
        if (t->desired == SCH_DESIRED_RUNNING)
            count[svc_of[i] == SCH__NONE ? ctx->n_svcs : svc_of[i]]++;
    }
    return rv;
}

/* Groups the tasks desired running by service, counting-sort style. */
static void tasks_group(struct sch__ctx *ctx, const uint32_t *svc_of, const uint32_t *node_of,
                        size_t *count)
{
    size_t at = 0;
    for (size_t s = 0; s <= ctx->n_svcs; s++) {
        size_t c = count[s];
        count[s] = at;
        if (s < ctx->n_svcs) {
            ctx->svcs[s].t_begin = at;
            ctx->svcs[s].t_end = at + c;
        }
        at += c;
    }
    ctx->deleted_begin = count[ctx->n_svcs];
    ctx->n_tasks = at;
    ctx->tasks = xcalloc(at, sizeof(*ctx->tasks));
    for (size_t i = 0; i < ctx->in->n_tasks; i++) {
        const struct sch_task *t = &ctx->in->tasks[i];
        if (t->desired != SCH_DESIRED_RUNNING)
            continue;
        size_t s = svc_of[i] == SCH__NONE ? ctx->n_svcs : svc_of[i];
        ctx->tasks[count[s]++] = (struct sch__task){
            .in = t,
            .slot = t->slot,
            .svc = svc_of[i],
            .node = node_of[i],
            .state = (uint8_t)t->state,
            .no_node = !t->node || !*t->node,
            .stale = svc_of[i] != SCH__NONE && t->version != ctx->svcs[svc_of[i]].in->version};
    }
}

static int tasks_init(struct sch__ctx *ctx, const struct map *nodes, const struct map *svcs)
{
    size_t n = ctx->in->n_tasks;
    _cleanup_free_ uint32_t *svc_of = xcalloc(n, sizeof(*svc_of));
    _cleanup_free_ uint32_t *node_of = xcalloc(n, sizeof(*node_of));
    _cleanup_free_ size_t *count = xcalloc(ctx->n_svcs + 1, sizeof(*count));
    int rv = tasks_resolve(ctx, nodes, svcs, svc_of, node_of, count);
    if (rv < 0)
        return rv;
    tasks_group(ctx, svc_of, node_of, count);
    return 0;
}

int sch__ctx_init(struct sch__ctx *ctx, const struct sch_input *in, struct sch_plan *plan)
{
    *ctx = (struct sch__ctx){.in = in, .plan = plan};
    if (!in)
        return bad(ctx, "no input");
    if (in->n_nodes > SCH_MAX_ITEMS || in->n_services > SCH_MAX_ITEMS ||
        in->n_tasks > SCH_MAX_ITEMS)
        return bad(ctx, "more than %u nodes, services or tasks", SCH_MAX_ITEMS);
    if ((in->n_nodes && !in->nodes) || (in->n_services && !in->services) ||
        (in->n_tasks && !in->tasks))
        return bad(ctx, "a list has entries but no array");
    struct map nodes = {0}, svcs = {0};
    int rv = nodes_init(ctx, &nodes);
    if (rv == 0)
        rv = services_init(ctx, &svcs);
    if (rv == 0)
        rv = tasks_init(ctx, &nodes, &svcs);
    map_free(&nodes);
    map_free(&svcs);
    return rv;
}

void sch__ctx_free(struct sch__ctx *ctx)
{
    free(ctx->nodes);
    free(ctx->svcs);
    free(ctx->cons);
    free(ctx->cmatch);
    free(ctx->tasks);
    free(ctx->needs);
    free(ctx->scratch);
    free(ctx->ranks.of_node);
    free(ctx->ranks.value);
    sch__ports_free(&ctx->ports);
    *ctx = (struct sch__ctx){0};
}

static const char *const stop_reasons[SCH_STOP_REASON_COUNT] = {
    [SCH_STOP_SCALE_DOWN] = "scale-down", [SCH_STOP_SERVICE_DELETED] = "service-deleted",
    [SCH_STOP_NODE_DOWN] = "node-down",   [SCH_STOP_NODE_REMOVED] = "node-removed",
    [SCH_STOP_NODE_DRAIN] = "node-drain", [SCH_STOP_CONSTRAINT] = "constraint",
    [SCH_STOP_ENDED] = "ended",           [SCH_STOP_DUPLICATE] = "duplicate",
    [SCH_STOP_INVALID] = "invalid",
};

static const char *const task_states[SCH_TASK_STATE_COUNT] = {
    [SCH_TASK_NEW] = "new",
    [SCH_TASK_ASSIGNED] = "assigned",
    [SCH_TASK_PREPARING] = "preparing",
    [SCH_TASK_STARTING] = "starting",
    [SCH_TASK_RUNNING] = "running",
    [SCH_TASK_COMPLETE] = "complete",
    [SCH_TASK_FAILED] = "failed",
    [SCH_TASK_SHUTDOWN] = "shutdown",
    [SCH_TASK_REJECTED] = "rejected",
    [SCH_TASK_ORPHANED] = "orphaned",
};

const char *sch_stop_reason_name(enum sch_stop_reason reason)
{
    return (unsigned)reason < SCH_STOP_REASON_COUNT ? stop_reasons[reason] : "unknown";
}

const char *sch_task_state_name(enum sch_task_state state)
{
    return (unsigned)state < SCH_TASK_STATE_COUNT ? task_states[state] : "unknown";
}

int sch_task_state_parse(const char *name, enum sch_task_state *out)
{
    for (size_t i = 0; name && i < SCH_TASK_STATE_COUNT; i++) {
        if (strcmp(name, task_states[i]) == 0) {
            *out = (enum sch_task_state)i;
            return 0;
        }
    }
    return -EINVAL;
}
