/* Unit tests for scheduler/: the planner as a plain function of cluster
 * state, driven through a small in-memory world that applies each plan the
 * way the reconciler would. Most checks compare the whole plan, written one
 * line per entry, with the expected one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/util.h"
#include "scheduler/scheduler.h"
#include "tests/unit/sched_plan_text.h"

#define MAX_NODES  32
#define MAX_SVCS   8
#define MAX_TASKS  512
#define MAX_LABELS 4
#define MIB        (INT64_C(1) << 20)
#define GIB        (INT64_C(1) << 30)

/* Node ids and service names are string literals, so that pointers to them
 * stay valid however the arrays move. Task ids are "t0000", "t0001", ... in
 * creation order. */
struct world {
    struct sch_node nodes[MAX_NODES];
    struct sch_label labels[MAX_NODES][MAX_LABELS];
    size_t n_nodes;
    struct sch_service services[MAX_SVCS];
    size_t n_services;
    struct sch_task tasks[MAX_TASKS];
    char task_ids[MAX_TASKS][16];
    size_t n_tasks;
};

static struct world *world_new(void)
{
    return xcalloc(1, sizeof(struct world));
}

static struct sch_node *add_node(struct world *w, const char *id)
{
    assert_true(w->n_nodes < MAX_NODES);
    struct sch_node *n = &w->nodes[w->n_nodes];
    *n = (struct sch_node){.id = id, .name = id, .labels = w->labels[w->n_nodes]};
    n->cpu = 8;
    n->memory = 8 * GIB;
    w->n_nodes++;
    return n;
}

static struct sch_node *node(struct world *w, const char *id)
{
    for (size_t i = 0; i < w->n_nodes; i++)
        if (strcmp(w->nodes[i].id, id) == 0)
            return &w->nodes[i];
    fail_msg("no node %s", id);
    return NULL;
}

static void set_label(struct world *w, const char *id, const char *key, const char *value)
{
    struct sch_node *n = node(w, id);
    struct sch_label *l = w->labels[n - w->nodes];
    size_t i = 0;
    while (i < n->n_labels && strcmp(l[i].key, key) != 0)
        i++;
    assert_true(i < MAX_LABELS);
    l[i] = (struct sch_label){key, value};
    n->n_labels += i == n->n_labels;
}

static void remove_node(struct world *w, const char *id)
{
    for (size_t i = (size_t)(node(w, id) - w->nodes); i + 1 < w->n_nodes; i++) {
        w->nodes[i] = w->nodes[i + 1];
        memcpy(w->labels[i], w->labels[i + 1], sizeof(w->labels[i]));
        w->nodes[i].labels = w->labels[i];
    }
    w->n_nodes--;
}

static struct sch_service *add_service(struct world *w, const char *name, uint32_t replicas)
{
    assert_true(w->n_services < MAX_SVCS);
    struct sch_service *s = &w->services[w->n_services++];
    *s = (struct sch_service){.name = name, .replicas = replicas, .version = 1};
    return s;
}

static struct sch_service *service(struct world *w, const char *name)
{
    for (size_t i = 0; i < w->n_services; i++)
        if (strcmp(w->services[i].name, name) == 0)
            return &w->services[i];
    fail_msg("no service %s", name);
    return NULL;
}

static void constrain(struct sch_service *s, const char *const *constraints, size_t n)
{
    s->constraints = constraints;
    s->n_constraints = n;
}

static struct sch_task *add_task(struct world *w, const char *svc, uint32_t slot, const char *nd,
                                 enum sch_task_state st)
{
    assert_true(w->n_tasks < MAX_TASKS);
    size_t i = w->n_tasks++;
    snprintf(w->task_ids[i], sizeof(w->task_ids[i]), "t%04zu", i);
    w->tasks[i] = (struct sch_task){.id = w->task_ids[i], .service = svc, .slot = slot, .node = nd};
    w->tasks[i].version = 1;
    w->tasks[i].state = st;
    return &w->tasks[i];
}

static struct sch_task *task(struct world *w, const char *id)
{
    for (size_t i = 0; i < w->n_tasks; i++)
        if (strcmp(w->tasks[i].id, id) == 0)
            return &w->tasks[i];
    fail_msg("no task %s", id);
    return NULL;
}

static void plan_of(const struct world *w, struct sch_plan *p)
{
    struct sch_input in = {w->nodes, w->n_nodes, w->services, w->n_services, w->tasks, w->n_tasks};
    int rv = sch_plan_compute(&in, p);
    if (rv != 0)
        fail_msg("sch_plan_compute: %d %s", rv, p->errmsg);
}

/* Applies a plan as the reconciler and the nodes would: stopped tasks end
 * (orphaned ones are marked so), created tasks run. */
static void apply(struct world *w, const struct sch_plan *p)
{
    for (size_t i = 0; i < p->n_stops; i++) {
        struct sch_task *t = task(w, p->stops[i].task);
        t->desired = SCH_DESIRED_SHUTDOWN;
        if (p->stops[i].orphaned)
            t->state = SCH_TASK_ORPHANED;
        else if (t->state <= SCH_TASK_RUNNING)
            t->state = SCH_TASK_SHUTDOWN;
    }
    for (size_t i = 0; i < p->n_creates; i++) {
        const struct sch_create *c = &p->creates[i];
        struct sch_task *t = add_task(w, c->service, c->slot, c->node, SCH_TASK_RUNNING);
        t->version = c->version;
        for (size_t k = 0; k < w->n_services; k++) {
            if (strcmp(w->services[k].name, c->service) == 0) {
                t->ports = w->services[k].ports;
                t->n_ports = w->services[k].n_ports;
            }
        }
    }
}

/* Plans, checks the plan against `expected`, and applies it when asked. */
static void check_plan(struct world *w, const char *expected, bool apply_it)
{
    struct sch_plan p;
    plan_of(w, &p);
    char *text = plan_text(&p);
    if (strcmp(text, expected) != 0)
        fail_msg("plan:\n%s--- expected:\n%s", text, expected);
    free(text);
    if (apply_it)
        apply(w, &p);
    sch_plan_free(&p);
}

#define expect_plan(w, expected) check_plan((w), (expected), false)
#define expect_step(w, expected) check_plan((w), (expected), true)

/* Plans and applies until the plan is empty (at most 5 rounds). */
static void converge(struct world *w)
{
    for (int round = 0; round < 5; round++) {
        struct sch_plan p;
        plan_of(w, &p);
        apply(w, &p);
        size_t changes = p.n_creates + p.n_stops;
        sch_plan_free(&p);
        if (changes == 0)
            return;
    }
    fail_msg("no fixed point after 5 rounds");
}

static int running(const struct world *w, const char *svc, const char *nd)
{
    int n = 0;
    for (size_t i = 0; i < w->n_tasks; i++) {
        const struct sch_task *t = &w->tasks[i];
        n += t->desired == SCH_DESIRED_RUNNING && t->state <= SCH_TASK_RUNNING &&
             strcmp(t->service, svc) == 0 && (!nd || (t->node && strcmp(t->node, nd) == 0));
    }
    return n;
}

/* Checks how many tasks of svc run on each node: "n1=2 n2=0 n3=2". */
static void expect_counts(const struct world *w, const char *svc, const char *expected)
{
    char text[256] = "";
    for (size_t i = 0, len = 0; i < w->n_nodes && len < sizeof(text); i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "%s%s=%d", i ? " " : "",
                                w->nodes[i].id, running(w, svc, w->nodes[i].id));
    if (strcmp(text, expected) != 0)
        fail_msg("%s runs %s, expected %s", svc, text, expected);
}

/* Checks that the live slots of svc are exactly 1..n, each once. */
static void assert_slots(const struct world *w, const char *svc, uint32_t n)
{
    int seen[MAX_TASKS] = {0};
    for (size_t i = 0; i < w->n_tasks; i++) {
        const struct sch_task *t = &w->tasks[i];
        if (t->desired == SCH_DESIRED_RUNNING && t->state <= SCH_TASK_RUNNING &&
            strcmp(t->service, svc) == 0) {
            assert_true(t->slot >= 1 && t->slot <= n);
            seen[t->slot]++;
        }
    }
    for (uint32_t s = 1; s <= n; s++)
        if (seen[s] != 1)
            fail_msg("slot %u of %s held %d times", s, svc, seen[s]);
}

static const char *label_of(const struct sch_node *n, const char *key)
{
    for (size_t i = 0; i < n->n_labels; i++)
        if (strcmp(n->labels[i].key, key) == 0)
            return n->labels[i].value;
    return NULL;
}

static struct world *three_nodes(void)
{
    struct world *w = world_new();
    add_node(w, "n1");
    add_node(w, "n2");
    add_node(w, "n3");
    return w;
}

/* Six replicas of web on n1..n3: t0000..t0005 in slots 1..6 on n1, n2, n3,
 * n1, n2, n3. */
static struct world *web6(void)
{
    struct world *w = three_nodes();
    add_service(w, "web", 6);
    expect_step(w, "create web.1 on n1\ncreate web.2 on n2\ncreate web.3 on n3\n"
                   "create web.4 on n1\ncreate web.5 on n2\ncreate web.6 on n3\n");
    return w;
}

static void test_spread_six_on_three(void **state)
{
    (void)state;
    _cleanup_free_ struct world *w = web6();
    expect_counts(w, "web", "n1=2 n2=2 n3=2");
    assert_slots(w, "web", 6);
    expect_plan(w, "");
}

static void test_scale_up_and_down(void **state)
{
    (void)state;
    _cleanup_free_ struct world *w = web6();
    service(w, "web")->replicas = 9;
    expect_step(w, "create web.7 on n1\ncreate web.8 on n2\ncreate web.9 on n3\n");
    expect_counts(w, "web", "n1=3 n2=3 n3=3");
    assert_slots(w, "web", 9);
    service(w, "web")->replicas = 2;
    expect_step(w, "stop t0002 (web.3 on n3): scale-down\n"
                   "stop t0003 (web.4 on n1): scale-down\n"
                   "stop t0004 (web.5 on n2): scale-down\n"
                   "stop t0005 (web.6 on n3): scale-down\n"
                   "stop t0006 (web.7 on n1): scale-down\n"
                   "stop t0007 (web.8 on n2): scale-down\n"
                   "stop t0008 (web.9 on n3): scale-down\n");
    assert_slots(w, "web", 2);
    expect_plan(w, "");
}

static void test_scale_up_fills_lowest_free_slots(void **state)
{
    (void)state;
    _cleanup_free_ struct world *w = three_nodes();
    add_service(w, "web", 5);
    add_task(w, "web", 1, "n1", SCH_TASK_RUNNING);
    add_task(w, "web", 3, "n2", SCH_TASK_RUNNING);
    add_task(w, "web", 5, "n3", SCH_TASK_RUNNING);
    expect_step(w, "create web.2 on n1\ncreate web.4 on n2\n");
    assert_slots(w, "web", 5);
}

static void test_label_constraint(void **state)
{
    (void)state;
    static const char *const zone_a[] = {"node.labels.zone==a"};
    _cleanup_free_ struct world *w = three_nodes();
    set_label(w, "n1", "zone", "a");
    set_label(w, "n2", "zone", "b");
    set_label(w, "n3", "zone", "a");
    constrain(add_service(w, "web", 4), zone_a, 1);
    converge(w);
    expect_counts(w, "web", "n1=2 n2=0 n3=2");
    /* n3 leaves zone a: its tasks move to n1. */
    set_label(w, "n3", "zone", "c");
    expect_step(w, "create web.2 on n1 replacing t0001\ncreate web.4 on n1 replacing t0003\n"
                   "stop t0001 (web.2 on n3): constraint\nstop t0003 (web.4 on n3): constraint\n");
    expect_counts(w, "web", "n1=4 n2=0 n3=0");
}

static void test_impossible_constraint_then_new_node(void **state)
{
    (void)state;
    static const char *const zone_c[] = {"node.labels.zone==c"};
    _cleanup_free_ struct world *w = three_nodes();
    constrain(add_service(w, "web", 3), zone_c, 1);
    expect_step(w, "unplaced web.1: no node satisfies constraint node.labels.zone==c\n"
                   "unplaced web.2: no node satisfies constraint node.labels.zone==c\n"
                   "unplaced web.3: no node satisfies constraint node.labels.zone==c\n");
    add_node(w, "n4");
    set_label(w, "n4", "zone", "C"); /* values compare regardless of case, as in Swarm */
    expect_step(w, "create web.1 on n4\ncreate web.2 on n4\ncreate web.3 on n4\n");
}

static void test_unplaced_reasons(void **state)
{
    (void)state;
    static const struct {
        uint32_t replicas, max_per_node;
        double cpu;
        int64_t memory;
        const char *constraint;
        double node_cpu[3];
        int64_t node_mem[3];
        const char *plan;
    } cases[] = {
        /* clang-format off */
        {2, 1, 0, 0, NULL, {1, 1, 1}, {0, 0, 0}, "create web.1 on n1\ncreate web.2 on n2\n"},
        {4, 1, 0, 0, NULL, {1, 1, 1}, {0, 0, 0},
         "create web.1 on n1\ncreate web.2 on n2\ncreate web.3 on n3\n"
         "unplaced web.4: max_replicas_per_node 1 reached on every eligible node\n"},
        {1, 0, 0, 64 * MIB, NULL, {1, 1, 1}, {32 * MIB, 8 * MIB, 0},
         "unplaced web.1: insufficient memory: needs 64 MiB, most free 32 MiB\n"},
        {1, 0, 2, 0, NULL, {1, 0.5, 1}, {0, 0, 0},
         "unplaced web.1: insufficient cpu: needs 2, most free 1\n"},
        {1, 0, 1, GIB + GIB / 2, NULL, {0.5, 1, 0}, {2 * GIB, 0, 2 * GIB},
         "unplaced web.1: insufficient resources: no node has both 1.5 GiB of memory and 1 cpu "
         "free\n"},
        {4, 0, 0.5, 16 * MIB, NULL, {1, 1, 1}, {16 * MIB, 16 * MIB, 16 * MIB},
         "create web.1 on n1\ncreate web.2 on n2\ncreate web.3 on n3\n"
         "unplaced web.4: insufficient memory: needs 16 MiB, most free 0 B\n"},
        {1, 0, 0, 0, "node.role==manager", {1, 1, 1}, {0, 0, 0},
         "unplaced web.1: no node satisfies constraint node.role==manager\n"},
        /* clang-format on */
    };
    for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
        _cleanup_free_ struct world *w = three_nodes();
        for (size_t i = 0; i < 3; i++) {
            w->nodes[i].cpu = cases[c].node_cpu[i];
            w->nodes[i].memory = cases[c].node_mem[i];
        }
        struct sch_service *s = add_service(w, "web", cases[c].replicas);
        s->max_replicas_per_node = cases[c].max_per_node;
        s->cpu = cases[c].cpu;
        s->memory = cases[c].memory;
        constrain(s, &cases[c].constraint, cases[c].constraint ? 1 : 0);
        expect_plan(w, cases[c].plan);
    }
}

static void test_no_usable_node(void **state)
{
    (void)state;
    _cleanup_free_ struct world *w = three_nodes();
    add_service(w, "web", 1);
    node(w, "n1")->status = SCH_NODE_DOWN;
    node(w, "n2")->availability = SCH_AVAIL_DRAIN;
    node(w, "n3")->availability = SCH_AVAIL_PAUSE;
    expect_plan(w, "unplaced web.1: no node is ready and active\n");
}

static void test_drain_moves_tasks(void **state)
{
    (void)state;
    _cleanup_free_ struct world *w = web6();
    node(w, "n1")->availability = SCH_AVAIL_DRAIN;
    expect_step(w, "create web.1 on n2 replacing t0000\ncreate web.4 on n3 replacing t0003\n"
                   "stop t0000 (web.1 on n1): node-drain\nstop t0003 (web.4 on n1): node-drain\n");
    expect_counts(w, "web", "n1=0 n2=3 n3=3");
    assert_slots(w, "web", 6);
    /* Active again: nothing moves back, new tasks may land there. */
    node(w, "n1")->availability = SCH_AVAIL_ACTIVE;
    expect_plan(w, "");
    service(w, "web")->replicas = 8;
    expect_step(w, "create web.7 on n1\ncreate web.8 on n1\n");
}

static void test_pause_keeps_but_places_nothing(void **state)
{
    (void)state;
    _cleanup_free_ struct world *w = web6();
    node(w, "n1")->availability = SCH_AVAIL_PAUSE;
    expect_plan(w, "");
    service(w, "web")->replicas = 10;
    expect_step(w, "create web.7 on n2\ncreate web.8 on n3\ncreate web.9 on n2\n"
                   "create web.10 on n3\n");
    expect_counts(w, "web", "n1=2 n2=4 n3=4");
}

static void test_down_node_orphans_and_replaces(void **state)
{
    (void)state;
    _cleanup_free_ struct world *w = web6();
    node(w, "n2")->status = SCH_NODE_DOWN;
    expect_step(w, "create web.2 on n1 replacing t0001\ncreate web.5 on n3 replacing t0004\n"
                   "stop t0001 (web.2 on n2): node-down orphaned\n"
                   "stop t0004 (web.5 on n2): node-down orphaned\n");
    assert_slots(w, "web", 6);
    /* The node comes back: its orphaned tasks stay stopped, nothing moves. */
    node(w, "n2")->status = SCH_NODE_READY;
    expect_plan(w, "");
}

static void test_returning_node_extra_replicas_stopped(void **state)
{
    (void)state;
    /* The stops of a node-down plan never reached the store: when n1 comes
     * back, its tasks still say running, and their slots have new tasks. */
    _cleanup_free_ struct world *w = three_nodes();
    add_service(w, "web", 4);
    add_task(w, "web", 1, "n1", SCH_TASK_RUNNING);
    add_task(w, "web", 2, "n1", SCH_TASK_RUNNING);
    add_task(w, "web", 1, "n2", SCH_TASK_RUNNING);
    add_task(w, "web", 2, "n3", SCH_TASK_STARTING);
    add_task(w, "web", 3, "n2", SCH_TASK_RUNNING);
    add_task(w, "web", 4, "n3", SCH_TASK_RUNNING);
    add_task(w, "web", 5, "n1", SCH_TASK_RUNNING); /* a slot beyond replicas */
    /* Slot 1: both run, the lower id stays. Slot 2: starting loses. */
    expect_step(w, "stop t0002 (web.1 on n2): duplicate\nstop t0003 (web.2 on n3): duplicate\n"
                   "stop t0006 (web.5 on n1): scale-down\n");
    assert_int_equal(running(w, "web", NULL), 4);
    assert_slots(w, "web", 4);
    expect_plan(w, "");
}

static void test_ended_tasks_replaced(void **state)
{
    (void)state;
    static const enum sch_task_state ended[] = {SCH_TASK_REJECTED, SCH_TASK_SHUTDOWN,
                                                SCH_TASK_ORPHANED};
    for (size_t e = 0; e < ARRAY_SIZE(ended); e++) {
        _cleanup_free_ struct world *w = web6();
        task(w, "t0002")->state = ended[e];
        /* n3 has one task less, so it gets the replacement. */
        expect_step(w, "create web.3 on n3 replacing t0002\nstop t0002 (web.3 on n3): ended\n");
        assert_slots(w, "web", 6);
    }
}

/* Failed or complete for good (the node's restart policy gave up): the slot
 * keeps it, until the service changes version or the node must be left. */
static void test_final_tasks_kept(void **state)
{
    (void)state;
    static const enum sch_task_state final[] = {SCH_TASK_FAILED, SCH_TASK_COMPLETE};
    for (size_t e = 0; e < ARRAY_SIZE(final); e++) {
        _cleanup_free_ struct world *w = web6();
        task(w, "t0002")->state = final[e];
        expect_plan(w, "");
        service(w, "web")->version = 2;
        expect_step(w, "create web.3 on n3 v2 replacing t0002\nstop t0002 (web.3 on n3): ended\n");
    }
    _cleanup_free_ struct world *w = web6();
    task(w, "t0002")->state = SCH_TASK_FAILED;
    node(w, "n3")->availability = SCH_AVAIL_DRAIN;
    expect_step(w, "create web.3 on n1 replacing t0002\ncreate web.6 on n2 replacing t0005\n"
                   "stop t0002 (web.3 on n3): ended\nstop t0005 (web.6 on n3): node-drain\n");
}

static void test_global_follows_nodes(void **state)
{
    (void)state;
    static const char *const agent_ok[] = {"node.labels.agent!=no"};
    _cleanup_free_ struct world *w = three_nodes();
    struct sch_service *g = add_service(w, "agent", 0);
    g->mode = SCH_MODE_GLOBAL;
    constrain(g, agent_ok, 1);
    expect_step(w, "create agent on n1\ncreate agent on n2\ncreate agent on n3\n");
    add_node(w, "n4"); /* joins */
    expect_step(w, "create agent on n4\n");
    node(w, "n2")->availability = SCH_AVAIL_DRAIN;
    node(w, "n3")->status = SCH_NODE_DOWN;
    remove_node(w, "n4");
    set_label(w, "n1", "agent", "no");
    /* A global task is never moved elsewhere. */
    expect_step(w, "stop t0000 (agent on n1): constraint\nstop t0001 (agent on n2): node-drain\n"
                   "stop t0002 (agent on n3): node-down orphaned\n"
                   "stop t0003 (agent on n4): node-removed orphaned\n");
    node(w, "n2")->availability = SCH_AVAIL_ACTIVE;
    node(w, "n3")->status = SCH_NODE_READY;
    expect_step(w, "create agent on n2\ncreate agent on n3\n");
}

static void test_global_pause_and_failure(void **state)
{
    (void)state;
    _cleanup_free_ struct world *w = three_nodes();
    struct sch_service *g = add_service(w, "agent", 0);
    g->mode = SCH_MODE_GLOBAL;
    g->memory = 64 * MIB;
    node(w, "n3")->memory = 32 * MIB;
    const char *full = "unplaced agent on n3: insufficient memory on node n3: needs 64 MiB, "
                       "free 32 MiB\n";
    char expected[512];
    snprintf(expected, sizeof(expected), "create agent on n1\ncreate agent on n2\n%s", full);
    expect_step(w, expected);
    /* Paused: kept. Rejected on an active node: replaced in place; on a
     * paused node: stopped, not replaced. Failed for good: kept. */
    node(w, "n1")->availability = SCH_AVAIL_PAUSE;
    expect_plan(w, full);
    task(w, "t0000")->state = SCH_TASK_REJECTED;
    task(w, "t0001")->state = SCH_TASK_REJECTED;
    snprintf(expected, sizeof(expected),
             "create agent on n2 replacing t0001\nstop t0000 (agent on n1): ended\n"
             "stop t0001 (agent on n2): ended\n%s",
             full);
    expect_step(w, expected);
    task(w, "t0002")->state = SCH_TASK_FAILED;
    expect_plan(w, full);
}

static void test_binpack_vs_spread(void **state)
{
    (void)state;
    for (int binpack = 0; binpack <= 1; binpack++) {
        _cleanup_free_ struct world *w = three_nodes();
        node(w, "n1")->memory = 2 * GIB;
        node(w, "n2")->memory = 1 * GIB;
        node(w, "n3")->memory = 4 * GIB;
        struct sch_service *s = add_service(w, "web", 6);
        s->memory = 256 * MIB;
        s->strategy = binpack ? SCH_STRATEGY_BINPACK : SCH_STRATEGY_SPREAD;
        converge(w);
        /* binpack: the fullest node first until it is full: n2 (4 fit), n1. */
        expect_counts(w, "web", binpack ? "n1=2 n2=4 n3=0" : "n1=2 n2=2 n3=2");
    }
}

static void test_spread_ties_by_total_tasks(void **state)
{
    (void)state;
    _cleanup_free_ struct world *w = three_nodes();
    add_service(w, "db", 2);
    add_task(w, "db", 1, "n1", SCH_TASK_RUNNING);
    add_task(w, "db", 2, "n2", SCH_TASK_RUNNING);
    add_service(w, "web", 2);
    expect_plan(w, "create web.1 on n3\ncreate web.2 on n1\n");
}

static void test_spread_preference_over_zones(void **state)
{
    (void)state;
    static const char *const ids[] = {"n1", "n2", "n3", "n4", "n5"};
    static const char *const zones[] = {"a", "b", "b", "b", NULL};
    _cleanup_free_ struct world *w = world_new();
    for (size_t i = 0; i < ARRAY_SIZE(ids); i++) {
        add_node(w, ids[i]);
        if (zones[i])
            set_label(w, ids[i], "zone", zones[i]);
    }
    add_service(w, "web", 6)->spread = "node.labels.zone";
    /* Zone a, zone b and the nodes without a zone get 2 each. */
    converge(w);
    expect_counts(w, "web", "n1=2 n2=1 n3=1 n4=0 n5=2");
    /* Without the preference: by node. */
    service(w, "web")->spread = NULL;
    service(w, "web")->replicas = 12;
    converge(w);
    expect_counts(w, "web", "n1=3 n2=3 n3=2 n4=2 n5=2");
}

static void test_spread_preference_counts_paused_nodes(void **state)
{
    (void)state;
    _cleanup_free_ struct world *w = world_new();
    add_node(w, "n1");
    add_node(w, "n2");
    set_label(w, "n1", "zone", "a");
    set_label(w, "n2", "zone", "b");
    add_service(w, "web", 4)->spread = "zone";
    converge(w);
    /* n1 pauses and n3 joins zone a: zone a still holds 2 tasks, so the
     * two new ones go one to each zone, not both to n3. */
    node(w, "n1")->availability = SCH_AVAIL_PAUSE;
    add_node(w, "n3");
    set_label(w, "n3", "zone", "a");
    service(w, "web")->replicas = 6;
    converge(w);
    expect_counts(w, "web", "n1=2 n2=3 n3=1");
}

static void test_deleted_service(void **state)
{
    (void)state;
    _cleanup_free_ struct world *w = web6();
    add_service(w, "db", 1);
    expect_step(w, "create db.1 on n1\n");
    task(w, "t0000")->state = SCH_TASK_FAILED; /* ended but still desired running */
    node(w, "n3")->status = SCH_NODE_DOWN;
    w->services[0] = w->services[1]; /* web is deleted */
    w->n_services = 1;
    expect_step(w, "stop t0000 (web.1 on n1): service-deleted\n"
                   "stop t0001 (web.2 on n2): service-deleted\n"
                   "stop t0002 (web.3 on n3): service-deleted orphaned\n"
                   "stop t0003 (web.4 on n1): service-deleted\n"
                   "stop t0004 (web.5 on n2): service-deleted\n"
                   "stop t0005 (web.6 on n3): service-deleted orphaned\n");
    assert_int_equal(running(w, "web", NULL), 0);
    assert_int_equal(running(w, "db", NULL), 1);
}

static void test_reservations_accounting(void **state)
{
    (void)state;
    _cleanup_free_ struct world *w = world_new();
    add_node(w, "n1")->memory = 256 * MIB;
    struct sch_service *s = add_service(w, "web", 3);
    s->memory = 64 * MIB;
    /* Being stopped but still running: holds its memory. Ended: holds none. */
    add_task(w, "web", 1, "n1", SCH_TASK_RUNNING)->desired = SCH_DESIRED_SHUTDOWN;
    add_task(w, "web", 2, "n1", SCH_TASK_FAILED)->desired = SCH_DESIRED_SHUTDOWN;
    add_task(w, "web", 3, "n1", SCH_TASK_RUNNING);
    expect_plan(w, "create web.1 on n1\ncreate web.2 on n1\n");
    s->replicas = 4;
    expect_plan(w, "create web.1 on n1\ncreate web.2 on n1\n"
                   "unplaced web.4: insufficient memory: needs 64 MiB, most free 0 B\n");
}

static void test_invalid_constraint_keeps_tasks(void **state)
{
    (void)state;
    static const char *const bad[] = {"node.color==red"};
    _cleanup_free_ struct world *w = web6();
    constrain(service(w, "web"), bad, 1);
    service(w, "web")->replicas = 7;
    expect_plan(w, "unplaced web.7: invalid constraint \"node.color==red\"\n");
}

static void test_invalid_tasks_stopped(void **state)
{
    (void)state;
    _cleanup_free_ struct world *w = three_nodes();
    add_service(w, "web", 1);
    add_task(w, "web", 0, "n1", SCH_TASK_RUNNING); /* no slot */
    add_task(w, "web", 1, NULL, SCH_TASK_NEW);     /* no node */
    expect_step(w, "create web.1 on n1 replacing t0001\nstop t0000 (web on n1): invalid\n"
                   "stop t0001 (web.1 on -): invalid\n");
    expect_plan(w, "");
}

/* A scenario with some of everything, for the determinism checks. */
static struct world *busy_world(void)
{
    static const char *const ids[] = {"n01", "n02", "n03", "n04", "n05",
                                      "n06", "n07", "n08", "n09", "n10"};
    static const char *const zones[] = {"a", "b", "c"};
    static const char *const api_constraints[] = {"node.role!=manager", "node.labels.disk==ssd"};
    struct world *w = world_new();
    for (size_t i = 0; i < ARRAY_SIZE(ids); i++) {
        struct sch_node *n = add_node(w, ids[i]);
        n->memory = (int64_t)(i % 4 + 1) * GIB;
        n->role = i < 3 ? SCH_ROLE_MANAGER : SCH_ROLE_WORKER;
        set_label(w, ids[i], "zone", zones[i % 3]);
        set_label(w, ids[i], "disk", i % 2 ? "ssd" : "hdd");
    }
    struct sch_service *s = add_service(w, "web", 12);
    s->memory = 128 * MIB;
    s->spread = "zone";
    s = add_service(w, "api", 7);
    constrain(s, api_constraints, 2);
    s->max_replicas_per_node = 2;
    s = add_service(w, "batch", 9);
    s->strategy = SCH_STRATEGY_BINPACK;
    s->memory = 512 * MIB;
    s->cpu = 0.5;
    add_service(w, "agent", 0)->mode = SCH_MODE_GLOBAL;
    converge(w);
    node(w, "n02")->status = SCH_NODE_DOWN;
    node(w, "n05")->availability = SCH_AVAIL_DRAIN;
    node(w, "n07")->availability = SCH_AVAIL_PAUSE;
    service(w, "web")->replicas = 15;
    service(w, "batch")->replicas = 4;
    service(w, "api")->version = 2;
    w->tasks[3].state = SCH_TASK_REJECTED;
    add_task(w, "gone", 1, "n03", SCH_TASK_RUNNING);
    return w;
}

static uint32_t lcg(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

#define SHUFFLE(arr, n, seed)                                                                      \
    for (size_t i_ = (n); i_ > 1; i_--) {                                                          \
        size_t j_ = lcg(seed) % i_;                                                                \
        __typeof__((arr)[0]) tmp_ = (arr)[i_ - 1];                                                 \
        (arr)[i_ - 1] = (arr)[j_];                                                                 \
        (arr)[j_] = tmp_;                                                                          \
    }

static void test_determinism(void **state)
{
    (void)state;
    _cleanup_free_ struct world *w = busy_world();
    struct sch_plan p;
    plan_of(w, &p);
    assert_true(p.n_creates > 0 && p.n_stops > 0);
    _cleanup_free_ char *first = plan_text(&p);
    sch_plan_free(&p);
    expect_plan(w, first);
    for (uint32_t seed = 1; seed <= 20; seed++) {
        _cleanup_free_ struct world *s = xmalloc(sizeof(*s));
        memcpy(s, w, sizeof(*s));
        uint32_t rnd = seed;
        for (size_t i = 0; i < s->n_nodes; i++)
            SHUFFLE(s->labels[i], s->nodes[i].n_labels, &rnd);
        SHUFFLE(s->nodes, s->n_nodes, &rnd);
        SHUFFLE(s->services, s->n_services, &rnd);
        SHUFFLE(s->tasks, s->n_tasks, &rnd);
        /* Labels moved with their arrays, not with the nodes: re-point. */
        for (size_t i = 0; i < s->n_nodes; i++)
            for (size_t k = 0; k < w->n_nodes; k++)
                if (strcmp(w->nodes[k].id, s->nodes[i].id) == 0)
                    s->nodes[i].labels = s->labels[k];
        expect_plan(s, first);
    }
}

static void test_duplicate_ids_still_deterministic(void **state)
{
    (void)state;
    static const char *const nodes[] = {"n3", "n1", "n2", "n1"};
    _cleanup_free_ struct world *w = three_nodes();
    add_service(w, "web", 2);
    for (size_t i = 0; i < ARRAY_SIZE(nodes); i++)
        add_task(w, "web", 1 + (i == 3), nodes[i], SCH_TASK_RUNNING)->id = "same";
    add_task(w, "gone", 1, "n2", SCH_TASK_RUNNING)->id = "same";
    add_task(w, "gone", 1, "n1", SCH_TASK_FAILED)->id = "same";
    struct sch_plan p;
    plan_of(w, &p);
    _cleanup_free_ char *first = plan_text(&p);
    sch_plan_free(&p);
    for (uint32_t seed = 1; seed <= 20; seed++) {
        uint32_t rnd = seed;
        SHUFFLE(w->tasks, w->n_tasks, &rnd);
        expect_plan(w, first);
    }
}

/* A random world: 2-7 nodes in random states with labels zone=a|b, 1-3
 * services with random modes, replicas, reservations and placement rules. */
static struct world *random_world(uint32_t *rnd)
{
    static const char *const ids[] = {"n1", "n2", "n3", "n4", "n5", "n6", "n7"};
    static const char *const names[] = {"s1", "s2", "s3"};
    static const char *const cons[] = {"node.labels.zone==a", "node.role!=manager"};
    struct world *w = world_new();
    for (size_t i = 0, n = 2 + lcg(rnd) % 6; i < n; i++) {
        struct sch_node *nd = add_node(w, ids[i]);
        nd->memory = (int64_t)(1 + lcg(rnd) % 4) * 256 * MIB;
        nd->role = lcg(rnd) % 3 ? SCH_ROLE_WORKER : SCH_ROLE_MANAGER;
        nd->status = lcg(rnd) % 5 ? SCH_NODE_READY : SCH_NODE_DOWN;
        nd->availability = (enum sch_availability)(lcg(rnd) % 5 < 3 ? 0 : lcg(rnd) % 3);
        if (lcg(rnd) % 4)
            set_label(w, ids[i], "zone", lcg(rnd) % 2 ? "a" : "b");
    }
    for (size_t i = 0, n = 1 + lcg(rnd) % 3; i < n; i++) {
        struct sch_service *s = add_service(w, names[i], lcg(rnd) % 13);
        s->mode = lcg(rnd) % 4 ? SCH_MODE_REPLICATED : SCH_MODE_GLOBAL;
        s->memory = (int64_t)(lcg(rnd) % 3) * 64 * MIB;
        s->max_replicas_per_node = lcg(rnd) % 4;
        s->strategy = lcg(rnd) % 2 ? SCH_STRATEGY_SPREAD : SCH_STRATEGY_BINPACK;
        s->spread = lcg(rnd) % 3 ? NULL : "zone";
        if (lcg(rnd) % 3 == 0)
            constrain(s, &cons[lcg(rnd) % 2], 1);
    }
    return w;
}

/* Checks a converged world against what its last plan left unplaced. */
static void check_world(struct world *w, const struct sch_plan *last)
{
    for (size_t k = 0; k < w->n_services; k++) {
        const struct sch_service *s = &w->services[k];
        size_t unplaced = 0;
        for (size_t u = 0; u < last->n_unplaced; u++)
            unplaced += strcmp(last->unplaced[u].service, s->name) == 0;
        int total = 0;
        for (size_t i = 0; i < w->n_nodes; i++) {
            const struct sch_node *n = &w->nodes[i];
            int here = running(w, s->name, n->id);
            total += here;
            bool ok = n->status == SCH_NODE_READY && n->availability != SCH_AVAIL_DRAIN;
            for (size_t c = 0; c < s->n_constraints && here; c++)
                ok = ok && sch_constraint_valid(s->constraints[c]) &&
                     (strstr(s->constraints[c], "role")
                          ? n->role == SCH_ROLE_WORKER
                          : label_of(n, "zone") && !strcmp(label_of(n, "zone"), "a"));
            assert_true(here == 0 || ok);
            if (s->mode == SCH_MODE_REPLICATED && s->max_replicas_per_node)
                assert_true(here <= (int)s->max_replicas_per_node);
            if (s->mode == SCH_MODE_GLOBAL)
                assert_true(here <= 1);
        }
        if (s->mode == SCH_MODE_REPLICATED) {
            /* Live and unplaced slots: replicas of them, each once (not
             * necessarily 1..replicas: scaling down keeps the lowest ones in
             * use, which may have gaps). */
            assert_int_equal((size_t)total + unplaced, s->replicas);
            int seen[64] = {0};
            for (size_t u = 0; u < last->n_unplaced; u++)
                if (strcmp(last->unplaced[u].service, s->name) == 0)
                    seen[last->unplaced[u].slot < 64 ? last->unplaced[u].slot : 0]++;
            for (size_t t = 0; t < w->n_tasks; t++)
                if (w->tasks[t].desired == SCH_DESIRED_RUNNING &&
                    w->tasks[t].state <= SCH_TASK_RUNNING && !strcmp(w->tasks[t].service, s->name))
                    seen[w->tasks[t].slot < 64 ? w->tasks[t].slot : 0]++;
            assert_int_equal(seen[0], 0);
            for (size_t k2 = 1; k2 < 64; k2++)
                assert_true(seen[k2] <= 1);
        }
    }
    for (size_t i = 0; i < w->n_nodes; i++) {
        int64_t used = 0;
        for (size_t k = 0; k < w->n_services; k++)
            used += running(w, w->services[k].name, w->nodes[i].id) * w->services[k].memory;
        assert_true(used <= w->nodes[i].memory);
    }
}

static void test_random_worlds(void **state)
{
    (void)state;
    for (uint32_t seed = 1; seed <= 300; seed++) {
        uint32_t rnd = seed;
        _cleanup_free_ struct world *w = random_world(&rnd);
        for (int change = 0; change < 3; change++) {
            struct sch_plan p = {0};
            int round = 0;
            for (; round < 5; round++) {
                sch_plan_free(&p);
                plan_of(w, &p);
                if (p.n_creates + p.n_stops == 0)
                    break;
                apply(w, &p);
            }
            if (round == 5)
                fail_msg("seed %u: no fixed point", seed);
            check_world(w, &p);
            sch_plan_free(&p);
            /* Then a node changes state, or a service scales. */
            struct sch_node *n = &w->nodes[lcg(&rnd) % w->n_nodes];
            n->status = lcg(&rnd) % 3 ? SCH_NODE_READY : SCH_NODE_DOWN;
            n->availability = (enum sch_availability)(lcg(&rnd) % 3);
            w->services[0].replicas = lcg(&rnd) % 13;
        }
    }
}

static void test_busy_world_converges(void **state)
{
    (void)state;
    _cleanup_free_ struct world *w = busy_world();
    converge(w);
    assert_int_equal(running(w, "web", NULL), 15);
    assert_slots(w, "web", 15);
    assert_int_equal(running(w, "batch", NULL), 4);
    assert_int_equal(running(w, "gone", NULL), 0);
    assert_int_equal(running(w, "web", "n02") + running(w, "web", "n05"), 0);
    for (size_t i = 0; i < w->n_nodes; i++) {
        const struct sch_node *n = &w->nodes[i];
        bool usable = n->status == SCH_NODE_READY && n->availability != SCH_AVAIL_DRAIN;
        assert_int_equal(running(w, "agent", n->id), usable);
        assert_true(running(w, "api", n->id) <= 2);
        if (running(w, "api", n->id))
            assert_true(n->role == SCH_ROLE_WORKER && strcmp(n->labels[1].value, "ssd") == 0);
    }
}

static const struct sch_port http_port[] = {{8080, SCH_PROTO_TCP}};

/* A port published by a live task on a node, whatever its service or
 * desired state, keeps other tasks publishing it off that node; the plan's
 * own creates count too (one task per node). */
static void test_published_ports(void **state)
{
    (void)state;
    static const struct sch_port udp_port[] = {{8080, SCH_PROTO_UDP}};
    _cleanup_free_ struct world *w = three_nodes();
    struct sch_task *other = add_task(w, "old", 1, "n1", SCH_TASK_RUNNING);
    other->desired = SCH_DESIRED_SHUTDOWN; /* stopping, service deleted: still holds it */
    other->ports = http_port;
    other->n_ports = 1;
    struct sch_task *dns = add_task(w, "dns", 1, "n2", SCH_TASK_RUNNING);
    dns->ports = udp_port; /* another protocol: no conflict */
    dns->n_ports = 1;
    add_service(w, "dns", 1)->ports = udp_port;
    service(w, "dns")->n_ports = 1;
    struct sch_service *web = add_service(w, "web", 3);
    web->ports = http_port;
    web->n_ports = 1;
    expect_step(w, "create web.1 on n3\ncreate web.2 on n2\n" /* n2 runs dns */
                   "unplaced web.3: port 8080/tcp is in use on every eligible node\n");
    /* The old task ends: its port is free again. */
    other->state = SCH_TASK_SHUTDOWN;
    expect_step(w, "create web.3 on n1\n");
    expect_counts(w, "web", "n1=1 n2=1 n3=1");
    web->replicas = 4;
    expect_plan(w, "unplaced web.4: port 8080/tcp is in use on every eligible node\n");
    add_node(w, "n4");
    expect_step(w, "create web.4 on n4\n");
    expect_plan(w, "");
}

/* Global services: per node, with the node named; two services in one plan
 * compete for a port in the plan's order (global ones first). */
static void test_published_ports_global(void **state)
{
    (void)state;
    _cleanup_free_ struct world *w = three_nodes();
    struct sch_task *t = add_task(w, "web", 1, "n2", SCH_TASK_STARTING);
    t->ports = http_port;
    t->n_ports = 1;
    struct sch_service *web = add_service(w, "web", 2);
    web->ports = http_port;
    web->n_ports = 1;
    struct sch_service *g = add_service(w, "agent", 0);
    g->mode = SCH_MODE_GLOBAL;
    g->ports = http_port;
    g->n_ports = 1;
    expect_step(w, "create agent on n1\ncreate agent on n3\n"
                   "unplaced agent on n2: port 8080/tcp is in use on node n2\n"
                   "unplaced web.2: port 8080/tcp is in use on every eligible node\n");
    /* Determinism: the same plan with the input in another order. */
    struct world *r = world_new();
    *r = *w;
    for (size_t i = 0; i < r->n_nodes; i++)
        r->nodes[i].labels = r->labels[i];
    for (size_t i = 0; i < r->n_tasks; i++)
        r->tasks[i].id = r->task_ids[i];
    struct sch_task tmp = r->tasks[0];
    r->tasks[0] = r->tasks[r->n_tasks - 1];
    r->tasks[r->n_tasks - 1] = tmp;
    struct sch_service stmp = r->services[0];
    r->services[0] = r->services[1];
    r->services[1] = stmp;
    expect_plan(r, "unplaced agent on n2: port 8080/tcp is in use on node n2\n"
                   "unplaced web.2: port 8080/tcp is in use on every eligible node\n");
    free(r);
}

static void test_invalid_input(void **state)
{
    (void)state;
    static const char *const what[] = {
        "dup node", "dup service", "empty node id", "no task id", "replicas", "memory",
        "cpu nan",  "role",        "constraints",   "labels",     "port 0",   "protocol",
    };
    static const struct sch_port bad_ports[] = {{0, SCH_PROTO_TCP}, {80, (enum sch_proto)3}};
    for (size_t c = 0; c < ARRAY_SIZE(what); c++) {
        _cleanup_free_ struct world *w = web6();
        const char *k = what[c];
        if (!strcmp(k, "dup node"))
            add_node(w, "n2");
        else if (!strcmp(k, "dup service"))
            add_service(w, "web", 1);
        else if (!strcmp(k, "empty node id"))
            add_node(w, "");
        else if (!strcmp(k, "no task id"))
            w->tasks[0].id = NULL;
        else if (!strcmp(k, "replicas"))
            service(w, "web")->replicas = SCH_MAX_REPLICAS + 1;
        else if (!strcmp(k, "memory"))
            service(w, "web")->memory = -1;
        else if (!strcmp(k, "cpu nan"))
            node(w, "n1")->cpu = NAN;
        else if (!strcmp(k, "role"))
            node(w, "n1")->role = (enum sch_role)7;
        else if (!strcmp(k, "constraints"))
            service(w, "web")->n_constraints = SCH_MAX_CONSTRAINTS + 1;
        else if (!strcmp(k, "labels"))
            node(w, "n1")->n_labels = 1;
        if (!strcmp(k, "labels"))
            node(w, "n1")->labels = NULL;
        if (!strncmp(k, "port", 4) || !strcmp(k, "protocol")) {
            w->tasks[0].ports = &bad_ports[k[0] == 'p' && k[1] == 'o' ? 0 : 1];
            w->tasks[0].n_ports = 1;
        }
        struct sch_plan p;
        struct sch_input in = {w->nodes,      w->n_nodes, w->services,
                               w->n_services, w->tasks,   w->n_tasks};
        if (sch_plan_compute(&in, &p) != -EINVAL)
            fail_msg("%s: accepted", k);
        assert_true(p.errmsg[0] != '\0');
        assert_int_equal(p.n_creates + p.n_stops + p.n_unplaced, 0);
        sch_plan_free(&p);
    }
    struct sch_plan p;
    assert_int_equal(sch_plan_compute(NULL, &p), -EINVAL);
    struct sch_input empty = {0};
    assert_int_equal(sch_plan_compute(&empty, &p), 0);
    assert_int_equal(p.n_creates + p.n_stops + p.n_unplaced, 0);
    sch_plan_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spread_six_on_three),
        cmocka_unit_test(test_scale_up_and_down),
        cmocka_unit_test(test_scale_up_fills_lowest_free_slots),
        cmocka_unit_test(test_label_constraint),
        cmocka_unit_test(test_impossible_constraint_then_new_node),
        cmocka_unit_test(test_unplaced_reasons),
        cmocka_unit_test(test_no_usable_node),
        cmocka_unit_test(test_drain_moves_tasks),
        cmocka_unit_test(test_pause_keeps_but_places_nothing),
        cmocka_unit_test(test_down_node_orphans_and_replaces),
        cmocka_unit_test(test_returning_node_extra_replicas_stopped),
        cmocka_unit_test(test_ended_tasks_replaced),
        cmocka_unit_test(test_final_tasks_kept),
        cmocka_unit_test(test_global_follows_nodes),
        cmocka_unit_test(test_global_pause_and_failure),
        cmocka_unit_test(test_binpack_vs_spread),
        cmocka_unit_test(test_spread_ties_by_total_tasks),
        cmocka_unit_test(test_spread_preference_over_zones),
        cmocka_unit_test(test_spread_preference_counts_paused_nodes),
        cmocka_unit_test(test_deleted_service),
        cmocka_unit_test(test_reservations_accounting),
        cmocka_unit_test(test_invalid_constraint_keeps_tasks),
        cmocka_unit_test(test_invalid_tasks_stopped),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_duplicate_ids_still_deterministic),
        cmocka_unit_test(test_busy_world_converges),
        cmocka_unit_test(test_random_worlds),
        cmocka_unit_test(test_published_ports),
        cmocka_unit_test(test_published_ports_global),
        cmocka_unit_test(test_invalid_input),
    };
    return cmocka_run_group_tests_name("scheduler", tests, NULL, NULL);
}
