/* Placement of what a service lacks. Replicated: the candidate nodes (ready,
 * active, matching) are grouped by the value of the spread preference's
 * label (one group without a preference); each group is a binary heap of
 * nodes ordered by the strategy (only its k best when k tasks are to be
 * placed: see select_best), and the groups sit in a heap ordered by how many
 * of the service's tasks they hold. A placement changes only the top node of
 * the top group, so it costs O(log N); a node that no longer fits is dropped
 * from its heap for good (within one service, room only shrinks). Global:
 * one pass over the nodes. */
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "scheduler/internal.h"

/* A node in a heap, with its sort key copied so that the heap reads one
 * small array: spread (a, b) = (the service's tasks, all tasks), binpack
 * (a, b) = (free memory, free cpu); ties go to the lower node index (id). */
struct ent {
    int64_t a, b;
    uint32_t node;
};

struct group {
    struct ent *h; /* a heap: the first n of the group's slice of placer.ents */
    size_t n;
    const char *value; /* the spread label's value, NULL for nodes without it */
    uint32_t count;    /* the service's tasks on nodes with this value (candidates or not) */
};

struct placer {
    struct sch__ctx *ctx;
    uint32_t s;
    const struct sch__svc *svc;
    bool binpack;
    struct ent *ents;        /* owned: the candidates, grouped like ctx->scratch */
    struct group *groups;    /* owned */
    uint32_t *group_of_rank; /* owned: group index of each spread value rank, or SCH__NONE */
    uint32_t *gh;            /* owned: a heap of group indexes */
    size_t n_gh;
};

static struct ent ent_of(const struct placer *p, uint32_t i)
{
    const struct sch__node *n = &p->ctx->nodes[i];
    if (p->binpack)
        return (struct ent){n->free_mem, n->free_cpu, i};
    return (struct ent){sch__count(n, p->s), n->total, i};
}

static bool ent_less(const struct ent *x, const struct ent *y)
{
    if (x->a != y->a)
        return x->a < y->a;
    if (x->b != y->b)
        return x->b < y->b;
    return x->node < y->node;
}

static void sift_ents(struct ent *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && ent_less(&h[l], &h[m]))
            m = l;
        if (l + 1 < n && ent_less(&h[l + 1], &h[m]))
            m = l + 1;
        if (m == i)
            return;
        struct ent tmp = h[i];
        h[i] = h[m];
        h[m] = tmp;
        i = m;
    }
}

static bool group_less(const struct placer *p, uint32_t a, uint32_t b)
{
    const struct group *x = &p->groups[a], *y = &p->groups[b];
    if (x->count != y->count)
        return x->count < y->count;
    return a < b;
}

static void sift_groups(const struct placer *p, size_t i)
{
    uint32_t *h = p->gh;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < p->n_gh && group_less(p, h[l], h[m]))
            m = l;
        if (l + 1 < p->n_gh && group_less(p, h[l + 1], h[m]))
            m = l + 1;
        if (m == i)
            return;
        uint32_t tmp = h[i];
        h[i] = h[m];
        h[m] = tmp;
        i = m;
    }
}

/* Orders label values, NULL (no label) last. */
static int cmp_value(const char *a, const char *b)
{
    if (!a || !b)
        return !a - !b;
    return strcmp(a, b);
}

struct cand {
    const char *value; /* the node's value of the spread label, NULL when it has none */
    uint32_t node;
};

static int cmp_cand(const void *pa, const void *pb)
{
    const struct cand *a = pa, *b = pb;
    int c = cmp_value(a->value, b->value);
    if (c)
        return c;
    return a->node < b->node ? -1 : a->node > b->node;
}

/* Ranks the values of label `key` over all nodes (NULL last) into
 * ctx->ranks, unless they are ranked already: services mostly share a key. */
static void rank_values(struct sch__ctx *ctx, const char *key)
{
    struct sch__ranks *r = &ctx->ranks;
    if (r->key && strcmp(r->key, key) == 0)
        return;
    size_t keylen = strlen(key);
    _cleanup_free_ struct cand *c = xcalloc(ctx->n_nodes, sizeof(*c));
    for (uint32_t i = 0; i < ctx->n_nodes; i++)
        c[i] = (struct cand){sch__node_label(ctx->nodes[i].in, key, keylen), i};
    qsort(c, ctx->n_nodes, sizeof(*c), cmp_cand);
    r->key = key;
    r->of_node = xrealloc(r->of_node, (ctx->n_nodes + 1) * sizeof(*r->of_node));
    r->value = xrealloc(r->value, (ctx->n_nodes + 1) * sizeof(*r->value));
    r->n = 0;
    for (size_t i = 0; i < ctx->n_nodes; i++) {
        if (i == 0 || cmp_value(c[i].value, c[i - 1].value) != 0)
            r->value[r->n++] = c[i].value;
        r->of_node[c[i].node] = (uint32_t)(r->n - 1);
    }
}

static bool eligible(struct sch__ctx *ctx, uint32_t s, uint32_t i)
{
    return ctx->nodes[i].usable && sch__node_matches(ctx, s, i);
}

/* Puts the eligible nodes at the start of ctx->scratch (in id order).
 * Returns how many there are. */
static size_t eligible_nodes(struct placer *p)
{
    struct sch__ctx *ctx = p->ctx;
    size_t n = 0;
    for (uint32_t i = 0; i < ctx->n_nodes; i++) {
        bool ok = ctx->nodes[i].usable;
        for (size_t c = 0; ok && c < p->svc->n_cons; c++)
            ok = sch__cons_cached(ctx, &p->svc->cons[c], i);
        if (ok)
            ctx->scratch[n++] = i;
    }
    return n;
}

/* Fills ctx->scratch with the candidates, grouped by the rank of their
 * spread label value (a counting sort), and sets up the groups. Returns how
 * many candidates there are. */
static size_t candidates(struct placer *p)
{
    struct sch__ctx *ctx = p->ctx;
    size_t n = eligible_nodes(p);
    if (!p->svc->spread) {
        p->groups = xcalloc(1, sizeof(*p->groups));
        p->groups[0] = (struct group){.h = p->ents, .n = n};
        p->n_gh = n ? 1 : 0;
        return n;
    }
    rank_values(ctx, p->svc->spread);
    const struct sch__ranks *r = &ctx->ranks;
    _cleanup_free_ uint32_t *elig = xmalloc((n + 1) * sizeof(*elig));
    _cleanup_free_ size_t *at = xcalloc(r->n + 1, sizeof(*at));
    memcpy(elig, ctx->scratch, n * sizeof(*elig));
    for (size_t i = 0; i < n; i++)
        at[r->of_node[elig[i]] + 1]++;
    p->groups = xcalloc(r->n, sizeof(*p->groups));
    p->group_of_rank = xmalloc(r->n * sizeof(*p->group_of_rank));
    for (size_t k = 0; k < r->n; k++) {
        p->group_of_rank[k] = at[k + 1] ? (uint32_t)p->n_gh : SCH__NONE;
        if (at[k + 1])
            p->groups[p->n_gh++] = (struct group){.h = p->ents + at[k], .value = r->value[k]};
        at[k + 1] += at[k];
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t k = r->of_node[elig[i]];
        ctx->scratch[at[k]++] = elig[i];
        p->groups[p->group_of_rank[k]].n++;
    }
    return n;
}

/* Counts the service's kept tasks into the groups of their nodes' values, so
 * that tasks on paused nodes count for their zone too. */
static void count_groups(struct placer *p)
{
    struct sch__ctx *ctx = p->ctx;
    for (size_t t = p->svc->t_begin; t < p->svc->t_end; t++) {
        if (!ctx->tasks[t].kept)
            continue;
        uint32_t g = p->group_of_rank[ctx->ranks.of_node[ctx->tasks[t].node]];
        if (g != SCH__NONE)
            p->groups[g].count++;
    }
}

static bool room(const struct placer *p, uint32_t i)
{
    const struct sch__node *n = &p->ctx->nodes[i];
    uint32_t max = p->svc->in->max_replicas_per_node;
    return (max == 0 || sch__count(n, p->s) < max) && sch__fits(n, p->svc) &&
           (p->svc->in->n_ports == 0 || !sch__port_conflict(p->ctx, p->s, i));
}

/* Sifts h[i] down in a heap that keeps the largest entry on top. */
static void sift_max(struct ent *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && ent_less(&h[m], &h[l]))
            m = l;
        if (l + 1 < n && ent_less(&h[m], &h[l + 1]))
            m = l + 1;
        if (m == i)
            return;
        struct ent tmp = h[i];
        h[i] = h[m];
        h[m] = tmp;
        i = m;
    }
}

/* Keeps in h[0..) the k smallest entries of h[0..n) whose nodes have room,
 * and returns how many that is (at most k). k placements can only ever go
 * to those: a node gets a task or loses room only by taking one, so while
 * fewer than k tasks are placed, one of the k has neither, and it comes
 * before every node left out. */
static size_t select_best(const struct placer *p, struct ent *h, size_t n, size_t k)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        struct ent e = h[i];
        if (!room(p, e.node))
            continue;
        if (m < k) {
            size_t c = m++;
            for (; c > 0 && ent_less(&h[(c - 1) / 2], &e); c = (c - 1) / 2)
                h[c] = h[(c - 1) / 2];
            h[c] = e;
        } else if (ent_less(&e, &h[0])) {
            h[0] = e;
            sift_max(h, m, 0);
        }
    }
    return m;
}

/* Sets up the heaps for service s. Returns the number of candidates. */
static size_t placer_init(struct placer *p, struct sch__ctx *ctx, uint32_t s)
{
    *p = (struct placer){.ctx = ctx, .s = s, .svc = &ctx->svcs[s]};
    p->binpack = p->svc->in->strategy == SCH_STRATEGY_BINPACK;
    sch__count_service(ctx, s);
    p->ents = xmalloc((ctx->n_nodes + 1) * sizeof(*p->ents));
    size_t n = candidates(p);
    for (size_t i = 0; i < n; i++)
        p->ents[i] = ent_of(p, ctx->scratch[i]);
    p->gh = xcalloc(p->n_gh ? p->n_gh : 1, sizeof(*p->gh));
    if (p->svc->spread)
        count_groups(p);
    size_t needs = p->svc->need_end - p->svc->need_begin;
    for (size_t g = 0; g < p->n_gh; g++) {
        struct group *gr = &p->groups[g];
        if (needs < gr->n)
            gr->n = select_best(p, gr->h, gr->n, needs);
        for (size_t i = gr->n / 2; i-- > 0;)
            sift_ents(gr->h, gr->n, i);
        p->gh[g] = (uint32_t)g;
    }
    for (size_t i = p->n_gh / 2; i-- > 0;)
        sift_groups(p, i);
    return n;
}

static void placer_free(struct placer *p)
{
    free(p->ents);
    free(p->groups);
    free(p->group_of_rank);
    free(p->gh);
}

/* Returns the node the next task goes to (the top of the top group), or
 * SCH__NONE when no candidate has room left. A node without room is dropped
 * from its heap, a group without nodes from the group heap. */
static uint32_t pick(struct placer *p)
{
    while (p->n_gh > 0) {
        struct group *g = &p->groups[p->gh[0]];
        while (g->n > 0 && !room(p, g->h[0].node)) {
            g->h[0] = g->h[--g->n];
            sift_ents(g->h, g->n, 0);
        }
        if (g->n > 0)
            return g->h[0].node;
        p->gh[0] = p->gh[--p->n_gh];
        sift_groups(p, 0);
    }
    return SCH__NONE;
}

/* Places a task on node i, which pick() returned. */
static void place_on(struct placer *p, uint32_t i)
{
    struct group *g = &p->groups[p->gh[0]];
    sch__take(p->ctx, p->s, &p->ctx->nodes[i]);
    g->h[0] = ent_of(p, i);
    sift_ents(g->h, g->n, 0);
    g->count++;
    sift_groups(p, 0);
}

static void format_size(int64_t bytes, char *out, size_t size)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = bytes < 0 ? 0 : (double)bytes;
    size_t u = 0;
    while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
        v /= 1024;
        u++;
    }
    int len = snprintf(out, size, "%.2f", v);
    while (len > 0 && (size_t)len < size && out[len - 1] == '0')
        out[--len] = '\0';
    if (len > 0 && (size_t)len < size && out[len - 1] == '.')
        out[--len] = '\0';
    snprintf(out + len, size - (size_t)len, " %s", units[u]);
}

static double cpus(int64_t nano)
{
    return nano < 0 ? 0 : (double)nano / SCH__NANO;
}

/* Why no candidate exists: no usable node, or a constraint nothing meets. */
static const char *no_candidate_reason(struct sch__ctx *ctx, uint32_t s)
{
    const struct sch__svc *svc = &ctx->svcs[s];
    size_t usable = 0;
    for (size_t i = 0; i < ctx->n_nodes; i++)
        usable += ctx->nodes[i].usable;
    if (usable == 0)
        return sch__reason(ctx->plan, ctx->n_nodes ? "no node is ready and active" : "no node");
    for (size_t c = 0; c < svc->n_cons; c++) {
        bool met = false;
        for (size_t i = 0; i < ctx->n_nodes && !met; i++)
            met = ctx->nodes[i].usable && sch__cons_match(&svc->cons[c], ctx->nodes[i].in);
        if (!met)
            return sch__reason(ctx->plan, "no node satisfies constraint %s", svc->cons[c].text);
    }
    char list[200] = "";
    for (size_t c = 0, len = 0; c < svc->n_cons && len < sizeof(list); c++)
        len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", c ? ", " : "",
                                svc->cons[c].text);
    return sch__reason(ctx->plan, "no node satisfies all of the constraints %s", list);
}

/* Why the candidates that are not at max_replicas_per_node all hold one of
 * service s's ports: names the port when they all hold the same one. */
static const char *port_reason(struct sch__ctx *ctx, const struct sch_port *port, bool same)
{
    if (same)
        return sch__reason(ctx->plan, "port %u/%s is in use on every eligible node",
                           port->published, sch__proto_name(port->protocol));
    return sch__reason(ctx->plan,
                       "published ports are in use on every eligible node (%u/%s and others)",
                       port->published, sch__proto_name(port->protocol));
}

/* Why the candidates cannot take one more task of service s. */
static const char *full_reason(struct sch__ctx *ctx, uint32_t s, size_t n_cand)
{
    const struct sch__svc *svc = &ctx->svcs[s];
    uint32_t max = svc->in->max_replicas_per_node;
    int64_t best_mem = INT64_MIN, best_cpu = INT64_MIN;
    const struct sch_port *port = NULL;
    bool same_port = true;
    for (size_t c = 0; c < n_cand; c++) {
        uint32_t i = ctx->scratch[c];
        const struct sch__node *n = &ctx->nodes[i];
        if (max && sch__count(n, s) >= max)
            continue;
        const struct sch_port *taken = svc->in->n_ports ? sch__port_conflict(ctx, s, i) : NULL;
        if (taken) {
            same_port &= !port || port == taken;
            port = port && port < taken ? port : taken;
            continue;
        }
        best_mem = n->free_mem > best_mem ? n->free_mem : best_mem;
        best_cpu = n->free_cpu > best_cpu ? n->free_cpu : best_cpu;
    }
    if (best_mem == INT64_MIN && port)
        return port_reason(ctx, port, same_port);
    if (best_mem == INT64_MIN)
        return sch__reason(ctx->plan, "max_replicas_per_node %u reached on every eligible node",
                           max);
    char need[32], most[32];
    if (svc->in->memory > 0 && best_mem < svc->in->memory) {
        format_size(svc->in->memory, need, sizeof(need));
        format_size(best_mem, most, sizeof(most));
        return sch__reason(ctx->plan, "insufficient memory: needs %s, most free %s", need, most);
    }
    if (svc->cpu > 0 && best_cpu < svc->cpu)
        return sch__reason(ctx->plan, "insufficient cpu: needs %g, most free %g", cpus(svc->cpu),
                           cpus(best_cpu));
    format_size(svc->in->memory, need, sizeof(need));
    return sch__reason(ctx->plan,
                       "insufficient resources: no node has both %s of memory and %g cpu free",
                       need, cpus(svc->cpu));
}

static const char *bad_cons_reason(struct sch__ctx *ctx, const struct sch__svc *svc)
{
    return sch__reason(ctx->plan, "invalid constraint \"%s\"", svc->bad_cons);
}

void sch__place_replicated(struct sch__ctx *ctx, uint32_t s)
{
    const struct sch__svc *svc = &ctx->svcs[s];
    size_t next = svc->need_begin;
    if (next == svc->need_end)
        return;
    const char *reason = NULL;
    if (svc->bad_cons) {
        reason = bad_cons_reason(ctx, svc);
    } else {
        struct placer p;
        size_t n_cand = placer_init(&p, ctx, s);
        for (uint32_t i; next < svc->need_end && (i = pick(&p)) != SCH__NONE; next++) {
            place_on(&p, i);
            sch__add_create(ctx->plan, &(struct sch_create){.service = svc->in->name,
                                                            .slot = ctx->needs[next].slot,
                                                            .node = ctx->nodes[i].in->id,
                                                            .version = svc->in->version,
                                                            .replaces = ctx->needs[next].replaces});
        }
        placer_free(&p);
        if (next < svc->need_end)
            reason = n_cand ? full_reason(ctx, s, n_cand) : no_candidate_reason(ctx, s);
    }
    for (; next < svc->need_end; next++)
        sch__add_unplaced(ctx->plan, &(struct sch_unplaced){.service = svc->in->name,
                                                            .slot = ctx->needs[next].slot,
                                                            .replaces = ctx->needs[next].replaces,
                                                            .reason = reason});
}

static const char *node_full_reason(struct sch__ctx *ctx, const struct sch__svc *svc,
                                    const struct sch__node *n)
{
    const char *name = n->in->name && *n->in->name ? n->in->name : n->in->id;
    char need[32], have[32];
    if (svc->in->memory > 0 && n->free_mem < svc->in->memory) {
        format_size(svc->in->memory, need, sizeof(need));
        format_size(n->free_mem, have, sizeof(have));
        return sch__reason(ctx->plan, "insufficient memory on node %s: needs %s, free %s", name,
                           need, have);
    }
    return sch__reason(ctx->plan, "insufficient cpu on node %s: needs %g, free %g", name,
                       cpus(svc->cpu), cpus(n->free_cpu));
}

void sch__place_global(struct sch__ctx *ctx, uint32_t s)
{
    const struct sch__svc *svc = &ctx->svcs[s];
    const struct sch__task *t = ctx->tasks + svc->t_begin;
    size_t n = svc->t_end - svc->t_begin, j = 0;
    const char *bad_reason = NULL;
    const struct sch_port *taken;
    for (uint32_t i = 0; i < ctx->n_nodes; i++) {
        const char *replaces = j < n && t[j].node == i ? t[j].in->id : NULL;
        bool kept = false;
        for (; j < n && t[j].node == i; j++)
            kept |= t[j].kept;
        if (kept || !eligible(ctx, s, i))
            continue;
        struct sch__node *node = &ctx->nodes[i];
        struct sch_unplaced u = {
            .service = svc->in->name, .node = node->in->id, .replaces = replaces};
        if (svc->bad_cons) {
            u.reason = bad_reason ? bad_reason : (bad_reason = bad_cons_reason(ctx, svc));
            sch__add_unplaced(ctx->plan, &u);
        } else if (!sch__fits(node, svc)) {
            u.reason = node_full_reason(ctx, svc, node);
            sch__add_unplaced(ctx->plan, &u);
        } else if ((taken = svc->in->n_ports ? sch__port_conflict(ctx, s, i) : NULL)) {
            u.reason =
                sch__reason(ctx->plan, "port %u/%s is in use on node %s", taken->published,
                            sch__proto_name(taken->protocol),
                            node->in->name && *node->in->name ? node->in->name : node->in->id);
            sch__add_unplaced(ctx->plan, &u);
        } else {
            sch__take(ctx, s, node);
            sch__add_create(ctx->plan, &(struct sch_create){.service = svc->in->name,
                                                            .node = node->in->id,
                                                            .version = svc->in->version,
                                                            .replaces = replaces});
        }
    }
}
