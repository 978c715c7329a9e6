/* The planner's passes: classify every task desired running (keep it, or
 * stop it and say whether its slot needs a replacement), then place what
 * each service lacks (place.c), global services first. */
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "scheduler/internal.h"

#define GROW(arr, n, cap)                                                                          \
    do {                                                                                           \
        if ((n) == (cap)) {                                                                        \
            (cap) = (cap) ? 2 * (cap) : 16;                                                        \
            (arr) = xrealloc((arr), (cap) * sizeof(*(arr)));                                       \
        }                                                                                          \
    } while (0)

void sch__add_create(struct sch_plan *plan, const struct sch_create *c)
{
    GROW(plan->creates, plan->n_creates, plan->cap_creates_);
    plan->creates[plan->n_creates++] = *c;
}

void sch__add_unplaced(struct sch_plan *plan, const struct sch_unplaced *u)
{
    GROW(plan->unplaced, plan->n_unplaced, plan->cap_unplaced_);
    plan->unplaced[plan->n_unplaced++] = *u;
}

const char *sch__reason(struct sch_plan *plan, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    GROW(plan->reasons_, plan->n_reasons_, plan->cap_reasons_);
    return plan->reasons_[plan->n_reasons_++] = xstrdup(buf);
}

static void add_need(struct sch__ctx *ctx, uint32_t slot, const char *replaces)
{
    GROW(ctx->needs, ctx->n_needs, ctx->cap_needs);
    ctx->needs[ctx->n_needs++] = (struct sch__need){.slot = slot, .replaces = replaces};
}

static void add_stop(struct sch__ctx *ctx, const struct sch__task *t, enum sch_stop_reason reason)
{
    struct sch_plan *plan = ctx->plan;
    GROW(plan->stops, plan->n_stops, plan->cap_stops_);
    bool gone = t->node == SCH__NONE || ctx->nodes[t->node].in->status == SCH_NODE_DOWN;
    bool live = t->state <= SCH_TASK_RUNNING;
    plan->stops[plan->n_stops++] = (struct sch_stop){
        .task = t->in->id,
        .service = t->in->service,
        .node = t->in->node,
        .slot = t->slot,
        .reason = reason,
        .orphaned = gone && live && t->verdict != SCH__UNASSIGNED,
    };
}

bool sch__node_matches(struct sch__ctx *ctx, uint32_t s, uint32_t i)
{
    struct sch__node *n = &ctx->nodes[i];
    if (n->match_stamp != s + 1) {
        const struct sch__svc *svc = &ctx->svcs[s];
        n->match_stamp = s + 1;
        n->match = true;
        for (size_t c = 0; c < svc->n_cons && n->match; c++)
            n->match = sch__cons_cached(ctx, &svc->cons[c], i);
    }
    return n->match;
}

/* Adds one task of service s to node n's count for s. */
static void count_one(struct sch__node *n, uint32_t s)
{
    if (n->svc_stamp != s + 1) {
        n->svc_stamp = s + 1;
        n->svc_count = 0;
    }
    n->svc_count++;
}

void sch__take(struct sch__ctx *ctx, uint32_t s, struct sch__node *n)
{
    const struct sch__svc *svc = &ctx->svcs[s];
    count_one(n, s);
    n->total++;
    n->free_cpu -= svc->cpu;
    n->free_mem -= svc->in->memory;
    sch__ports_add(&ctx->ports, (uint32_t)(n - ctx->nodes), svc->in->ports, svc->in->n_ports);
}

void sch__count_service(struct sch__ctx *ctx, uint32_t s)
{
    const struct sch__svc *svc = &ctx->svcs[s];
    for (size_t i = svc->t_begin; i < svc->t_end; i++)
        if (ctx->tasks[i].kept)
            count_one(&ctx->nodes[ctx->tasks[i].node], s);
}

static enum sch__verdict verdict(struct sch__ctx *ctx, const struct sch__task *t)
{
    if (t->no_node)
        return SCH__UNASSIGNED;
    if (t->node == SCH__NONE)
        return SCH__REMOVED;
    const struct sch_node *n = ctx->nodes[t->node].in;
    if (n->status == SCH_NODE_DOWN)
        return SCH__DOWN;
    if (n->availability == SCH_AVAIL_DRAIN)
        return SCH__DRAIN;
    if (t->svc != SCH__NONE && !sch__node_matches(ctx, t->svc, t->node))
        return SCH__CONSTRAINT;
    return SCH__OK;
}

static bool is_live(const struct sch__task *t)
{
    return t->state <= SCH_TASK_RUNNING;
}

/* The order in which the tasks of one slot (or global node) compete to be
 * kept: live on a usable node, then live elsewhere, then ended; among live
 * ones the furthest in their lifecycle, then those at the service's version. */
static uint8_t keep_order(const struct sch__task *t)
{
    if (!is_live(t))
        return 0xff;
    unsigned cls = t->verdict == SCH__OK ? 0 : 1;
    unsigned stage = (unsigned)(SCH_TASK_RUNNING - t->state);
    return (uint8_t)(cls << 6 | t->stale << 5 | stage);
}

static enum sch_stop_reason verdict_reason(const struct sch__task *t)
{
    static const enum sch_stop_reason reasons[] = {
        [SCH__OK] = SCH_STOP_ENDED,
        [SCH__DOWN] = SCH_STOP_NODE_DOWN,
        [SCH__REMOVED] = SCH_STOP_NODE_REMOVED,
        [SCH__DRAIN] = SCH_STOP_NODE_DRAIN,
        [SCH__CONSTRAINT] = SCH_STOP_CONSTRAINT,
        [SCH__UNASSIGNED] = SCH_STOP_INVALID,
    };
    return is_live(t) || t->verdict == SCH__UNASSIGNED ? reasons[t->verdict] : SCH_STOP_ENDED;
}

static const char *node_of(const struct sch__task *t)
{
    return t->in->node ? t->in->node : "";
}

/* Settles ties of task ids, which should not happen (the store keys tasks by
 * id), so that even then the order, hence the plan, depends on nothing but
 * the tasks' contents. */
static int cmp_same_id(const struct sch__task *a, const struct sch__task *b)
{
    int c = strcmp(a->in->id, b->in->id);
    if (c)
        return c;
    if ((c = strcmp(node_of(a), node_of(b))) != 0)
        return c;
    if (a->in->version != b->in->version)
        return a->in->version < b->in->version ? -1 : 1;
    return (int)a->state - (int)b->state;
}

/* Orders a service's tasks by sort key, which groups them by slot (or node)
 * and puts the one to keep first; the tasks of unknown nodes share one key
 * and are grouped by node id here. Task ids settle the rest. */
static int cmp_task(const void *pa, const void *pb)
{
    const struct sch__task *a = pa, *b = pb;
    if (a->key != b->key)
        return a->key < b->key ? -1 : 1;
    if (a->key == UINT64_MAX) {
        int c = strcmp(node_of(a), node_of(b));
        if (c)
            return c;
        if (a->order != b->order)
            return a->order < b->order ? -1 : 1;
    }
    return cmp_same_id(a, b);
}

static bool same_node(const struct sch__task *a, const struct sch__task *b)
{
    if (a->node != b->node)
        return false;
    return a->node != SCH__NONE || strcmp(node_of(a), node_of(b)) == 0;
}

/* A task that completed or failed for good on a usable node, at the
 * service's version: its node applied the restart policy and gave up (or the
 * policy said not to restart), so the slot stays as it ended; an update of
 * the service, or a move off the node, gives it a new task. */
static bool is_final(const struct sch__task *t)
{
    return (t->state == SCH_TASK_COMPLETE || t->state == SCH_TASK_FAILED) &&
           t->verdict == SCH__OK && !t->stale;
}

/* Keeps the head of a group of tasks (one slot or one node) when it is live
 * on a usable node, or else the first final one, and stops the rest. Returns
 * whether one was kept. */
static bool settle_group(struct sch__ctx *ctx, struct sch__task *g, size_t n)
{
    size_t kept = n;
    if (is_live(&g[0]) && g[0].verdict == SCH__OK) {
        kept = 0;
        ctx->nodes[g[0].node].total++;
    } else {
        for (size_t i = 0; i < n && kept == n; i++)
            if (is_final(&g[i]))
                kept = i;
    }
    if (kept < n)
        g[kept].kept = true;
    for (size_t i = 0; i < n; i++)
        if (i != kept)
            add_stop(ctx, &g[i],
                     kept == 0 && is_live(&g[i]) ? SCH_STOP_DUPLICATE : verdict_reason(&g[i]));
    return kept < n;
}

/* The group of a task when sorting by node: known nodes in id order, then
 * unknown ones. */
static uint32_t node_group(const struct sch__ctx *ctx, const struct sch__task *t)
{
    return t->node == SCH__NONE ? (uint32_t)ctx->n_nodes : t->node;
}

/* Sorts t[0..n) with cmp_task: a counting sort on the slot or node (groups
 * of them in all), then each group of more than one task by cmp_task. */
static void sort_counting(struct sch__ctx *ctx, struct sch__task *t, size_t n, bool by_node,
                          size_t groups)
{
    _cleanup_free_ size_t *at = xcalloc(groups + 1, sizeof(*at));
    _cleanup_free_ struct sch__task *tmp = xmalloc(n * sizeof(*tmp));
    for (size_t i = 0; i < n; i++)
        at[(by_node ? node_group(ctx, &t[i]) : t[i].slot) + 1]++;
    for (size_t g = 1; g <= groups; g++)
        at[g] += at[g - 1];
    for (size_t i = 0; i < n; i++)
        tmp[at[by_node ? node_group(ctx, &t[i]) : t[i].slot]++] = t[i];
    memcpy(t, tmp, n * sizeof(*t));
    for (size_t i = 0, j; i < n; i = j) {
        uint32_t g = by_node ? node_group(ctx, &t[i]) : t[i].slot;
        for (j = i + 1; j < n && (by_node ? node_group(ctx, &t[j]) : t[j].slot) == g; j++)
            ;
        if (j - i > 1)
            qsort(t + i, j - i, sizeof(*t), cmp_task);
    }
}

/* Computes the verdicts of a service's tasks and sorts them by slot, or by
 * node (known nodes in id order, then unknown ones by id). */
static void sort_tasks(struct sch__ctx *ctx, const struct sch__svc *s, bool by_node)
{
    struct sch__task *t = ctx->tasks + s->t_begin;
    size_t n = s->t_end - s->t_begin;
    uint32_t max_slot = 0;
    for (size_t i = 0; i < n; i++) {
        t[i].verdict = (uint8_t)verdict(ctx, &t[i]);
        t[i].order = keep_order(&t[i]);
        uint64_t group = by_node ? t[i].node : t[i].slot;
        t[i].key = by_node && t[i].node == SCH__NONE ? UINT64_MAX : group << 8 | t[i].order;
        max_slot = t[i].slot > max_slot ? t[i].slot : max_slot;
    }
    /* Slots are dense in practice; a sparse range is sorted the slow way. */
    if (by_node)
        sort_counting(ctx, t, n, true, ctx->n_nodes + 1);
    else if (max_slot <= 4 * n + 1024)
        sort_counting(ctx, t, n, false, (size_t)max_slot + 1);
    else
        qsort(t, n, sizeof(*t), cmp_task);
}

/* The highest slot kept when a service has more slots than replicas
 * (UINT32_MAX when it has no more), and how many slots it lacks. */
static uint32_t slot_cutoff(const struct sch__task *t, size_t n, uint32_t replicas,
                            uint32_t *missing)
{
    uint32_t distinct = 0, prev = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t slot = t[i].slot;
        if (slot == 0 || slot == prev)
            continue;
        if (distinct == replicas) {
            *missing = 0;
            return prev;
        }
        prev = slot;
        distinct++;
    }
    *missing = replicas - distinct;
    return UINT32_MAX;
}

static void classify_replicated(struct sch__ctx *ctx, uint32_t s)
{
    struct sch__svc *svc = &ctx->svcs[s];
    sort_tasks(ctx, svc, false);
    struct sch__task *t = ctx->tasks + svc->t_begin;
    size_t n = svc->t_end - svc->t_begin;
    uint32_t missing;
    uint32_t cutoff = slot_cutoff(t, n, svc->in->replicas, &missing);
    uint32_t next_free = 1;
    svc->need_begin = ctx->n_needs;
    for (size_t i = 0, j; i < n; i = j) {
        uint32_t slot = t[i].slot;
        for (j = i + 1; j < n && t[j].slot == slot; j++)
            ;
        if (slot == 0 || slot > cutoff) {
            for (size_t k = i; k < j; k++)
                add_stop(ctx, &t[k], slot ? SCH_STOP_SCALE_DOWN : SCH_STOP_INVALID);
            continue;
        }
        for (; missing > 0 && next_free < slot; missing--)
            add_need(ctx, next_free++, NULL);
        next_free = slot + 1;
        if (!settle_group(ctx, t + i, j - i))
            add_need(ctx, slot, t[i].in->id);
    }
    for (; missing > 0; missing--)
        add_need(ctx, next_free++, NULL);
    svc->need_end = ctx->n_needs;
}

static void classify_global(struct sch__ctx *ctx, uint32_t s)
{
    struct sch__svc *svc = &ctx->svcs[s];
    sort_tasks(ctx, svc, true);
    struct sch__task *t = ctx->tasks + svc->t_begin;
    size_t n = svc->t_end - svc->t_begin;
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && same_node(&t[i], &t[j]); j++)
            ;
        settle_group(ctx, t + i, j - i);
    }
}

static int cmp_deleted(const void *pa, const void *pb)
{
    const struct sch__task *a = pa, *b = pb;
    int c = strcmp(a->in->service, b->in->service);
    if (c)
        return c;
    if (a->slot != b->slot)
        return a->slot < b->slot ? -1 : 1;
    return cmp_same_id(a, b);
}

static void stop_deleted(struct sch__ctx *ctx)
{
    struct sch__task *t = ctx->tasks + ctx->deleted_begin;
    size_t n = ctx->n_tasks - ctx->deleted_begin;
    qsort(t, n, sizeof(*t), cmp_deleted);
    for (size_t i = 0; i < n; i++) {
        t[i].verdict = (uint8_t)verdict(ctx, &t[i]);
        add_stop(ctx, &t[i], SCH_STOP_SERVICE_DELETED);
    }
}

int sch_plan_compute(const struct sch_input *in, struct sch_plan *plan)
{
    *plan = (struct sch_plan){0};
    struct sch__ctx ctx;
    int rv = sch__ctx_init(&ctx, in, plan);
    if (rv < 0) {
        sch__ctx_free(&ctx);
        return rv;
    }
    for (uint32_t s = 0; s < ctx.n_svcs; s++) {
        if (ctx.svcs[s].in->mode == SCH_MODE_GLOBAL)
            classify_global(&ctx, s);
        else
            classify_replicated(&ctx, s);
    }
    stop_deleted(&ctx);
    for (uint32_t s = 0; s < ctx.n_svcs; s++)
        if (ctx.svcs[s].in->mode == SCH_MODE_GLOBAL)
            sch__place_global(&ctx, s);
    for (uint32_t s = 0; s < ctx.n_svcs; s++)
        if (ctx.svcs[s].in->mode == SCH_MODE_REPLICATED)
            sch__place_replicated(&ctx, s);
    sch__ctx_free(&ctx);
    return 0;
}

void sch_plan_free(struct sch_plan *plan)
{
    free(plan->creates);
    free(plan->stops);
    free(plan->unplaced);
    for (size_t i = 0; i < plan->n_reasons_; i++)
        free(plan->reasons_[i]);
    free(plan->reasons_);
    *plan = (struct sch_plan){0};
}
