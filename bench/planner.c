/* Benchmark of the pure planner (scheduler/): 100,000 replicas of four
 * services placed on 1,000 nodes with pseudo-random labels and capacities
 * (a fixed seed, so every run plans the same input), then a scale-up of that
 * placement to 150,000, a re-plan of the converged state (nothing to do), and
 * global services on every node. Prints the best of a few runs of each. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "scheduler/scheduler.h"

#define N_NODES 1000
#define N_MANY  10000 /* services in the many-services case */
#define RUNS    5
#define MIB     (INT64_C(1) << 20)
#define GIB     (INT64_C(1) << 30)

struct bench {
    struct sch_node nodes[N_NODES];
    struct sch_label labels[N_NODES][3];
    char ids[N_NODES][16];
    char racks[N_NODES][8];
    struct sch_service *services; /* owned: N_MANY entries */
    char (*names)[16];            /* owned: N_MANY service names */
    size_t n_services;
    struct sch_task *tasks; /* owned */
    char (*task_ids)[16];   /* owned */
    size_t n_tasks;
    uint32_t seed; /* of the pseudo-random labels, capacities and task order */
};

static uint32_t rnd(struct bench *b, uint32_t n)
{
    b->seed = b->seed * 1103515245u + 12345u;
    return (b->seed >> 8) % n;
}

static void make_nodes(struct bench *b)
{
    static const char *const zones[] = {"zone-a", "zone-b", "zone-c", "zone-d", "zone-e"};
    for (size_t i = 0; i < N_NODES; i++) {
        snprintf(b->ids[i], sizeof(b->ids[i]), "node-%04zu", i);
        snprintf(b->racks[i], sizeof(b->racks[i]), "r%02u", rnd(b, 50));
        b->labels[i][0] = (struct sch_label){"zone", zones[rnd(b, 5)]};
        b->labels[i][1] = (struct sch_label){"rack", b->racks[i]};
        b->labels[i][2] = (struct sch_label){"disk", rnd(b, 2) ? "ssd" : "hdd"};
        b->nodes[i] = (struct sch_node){.id = b->ids[i],
                                        .name = b->ids[i],
                                        .role = i < 5 ? SCH_ROLE_MANAGER : SCH_ROLE_WORKER,
                                        .status = SCH_NODE_READY,
                                        .availability = SCH_AVAIL_ACTIVE,
                                        .labels = b->labels[i],
                                        .n_labels = 3,
                                        .cpu = 64 + rnd(b, 65),
                                        .memory = (64 + (int64_t)rnd(b, 193)) * GIB};
    }
}

static const char *const ssd_only[] = {"node.labels.disk==ssd"};
static const char *const workers_only[] = {"node.role!=manager"};

static void make_replicated(struct bench *b)
{
    b->n_services = 0;
    b->services[b->n_services++] = (struct sch_service){.name = "web",
                                                        .replicas = 40000,
                                                        .version = 1,
                                                        .cpu = 0.1,
                                                        .memory = 64 * MIB,
                                                        .spread = "node.labels.zone"};
    b->services[b->n_services++] = (struct sch_service){.name = "api",
                                                        .replicas = 30000,
                                                        .version = 1,
                                                        .cpu = 0.25,
                                                        .memory = 128 * MIB,
                                                        .constraints = ssd_only,
                                                        .n_constraints = 1};
    b->services[b->n_services++] = (struct sch_service){.name = "batch",
                                                        .replicas = 20000,
                                                        .version = 1,
                                                        .cpu = 0.5,
                                                        .memory = 256 * MIB,
                                                        .strategy = SCH_STRATEGY_BINPACK};
    b->services[b->n_services++] = (struct sch_service){.name = "cache",
                                                        .replicas = 10000,
                                                        .version = 1,
                                                        .memory = 32 * MIB,
                                                        .constraints = workers_only,
                                                        .n_constraints = 1,
                                                        .max_replicas_per_node = 20};
}

static void make_global(struct bench *b)
{
    static const char *const names[] = {"g-log", "g-metrics", "g-dns",   "g-proxy", "g-sec",
                                        "g-net", "g-backup",  "g-trace", "g-gpu",   "g-disk"};
    b->n_services = 0;
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        b->services[b->n_services++] =
            (struct sch_service){.name = names[i],
                                 .mode = SCH_MODE_GLOBAL,
                                 .version = 1,
                                 .cpu = 0.05,
                                 .memory = 16 * MIB,
                                 .constraints = i % 3 == 0   ? ssd_only
                                                : i % 3 == 1 ? workers_only
                                                             : NULL,
                                 .n_constraints = i % 3 < 2 ? 1 : 0};
}

/* Many small services: 10 replicas each, a third spread over zones, a
 * third on ssd nodes, a third off the managers. */
static void make_many(struct bench *b)
{
    b->n_services = 0;
    for (size_t i = 0; i < N_MANY; i++) {
        snprintf(b->names[i], sizeof(b->names[i]), "svc-%05zu", i);
        b->services[b->n_services++] =
            (struct sch_service){.name = b->names[i],
                                 .replicas = 10,
                                 .version = 1,
                                 .cpu = 0.01,
                                 .memory = 4 * MIB,
                                 .spread = i % 3 == 0 ? "zone" : NULL,
                                 .constraints = i % 3 == 1 ? ssd_only : workers_only,
                                 .n_constraints = i % 3 ? 1 : 0};
    }
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Plans RUNS times; keeps the last plan in *out. Returns the best time. */
static double time_plan(const struct bench *b, struct sch_plan *out)
{
    struct sch_input in = {b->nodes, N_NODES, b->services, b->n_services, b->tasks, b->n_tasks};
    double best = 1e9;
    for (int r = 0; r < RUNS; r++) {
        if (r > 0)
            sch_plan_free(out);
        double t0 = now_ms();
        if (sch_plan_compute(&in, out) != 0) {
            fprintf(stderr, "planner: %s\n", out->errmsg);
            exit(1);
        }
        double dt = now_ms() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

/* Turns a plan's creates into running tasks (as the reconciler would). */
static void apply_creates(struct bench *b, const struct sch_plan *p)
{
    b->tasks = xrealloc(b->tasks, (b->n_tasks + p->n_creates) * sizeof(*b->tasks));
    b->task_ids = xrealloc(b->task_ids, (b->n_tasks + p->n_creates) * sizeof(*b->task_ids));
    for (size_t i = 0; i < p->n_creates; i++) {
        size_t k = b->n_tasks++;
        snprintf(b->task_ids[k], sizeof(b->task_ids[k]), "t%07zu", k);
        b->tasks[k] = (struct sch_task){.service = p->creates[i].service,
                                        .slot = p->creates[i].slot,
                                        .node = p->creates[i].node,
                                        .version = p->creates[i].version,
                                        .desired = SCH_DESIRED_RUNNING,
                                        .state = SCH_TASK_RUNNING};
    }
    for (size_t k = 0; k < b->n_tasks; k++) /* task_ids may have moved */
        b->tasks[k].id = b->task_ids[k];
    /* A store hands tasks over in id order, which says nothing of their
     * service, slot or node: shuffle them. */
    for (size_t k = b->n_tasks; k > 1; k--) {
        size_t j = rnd(b, (uint32_t)k);
        struct sch_task tmp = b->tasks[k - 1];
        b->tasks[k - 1] = b->tasks[j];
        b->tasks[j] = tmp;
    }
}

static void expect(const struct sch_plan *p, size_t creates, const char *what)
{
    if (p->n_creates != creates || p->n_unplaced != 0 || p->n_stops != 0) {
        fprintf(stderr, "planner: %s: %zu creates (expected %zu), %zu stops, %zu unplaced%s%s\n",
                what, p->n_creates, creates, p->n_stops, p->n_unplaced, p->n_unplaced ? ": " : "",
                p->n_unplaced ? p->unplaced[0].reason : "");
        exit(1);
    }
}

int main(void)
{
    struct bench *b = xcalloc(1, sizeof(*b));
    b->seed = 12345;
    b->services = xcalloc(N_MANY, sizeof(*b->services));
    b->names = xcalloc(N_MANY, sizeof(*b->names));
    struct sch_plan p;
    make_nodes(b);
    make_replicated(b);
    double ms = time_plan(b, &p);
    expect(&p, 100000, "placement");
    printf("planner: placed 100000 replicas on %d nodes in %.1f ms\n", N_NODES, ms);

    apply_creates(b, &p);
    sch_plan_free(&p);
    for (size_t i = 0; i < b->n_services; i++)
        b->services[i].replicas += b->services[i].replicas / 2;
    ms = time_plan(b, &p);
    expect(&p, 50000, "scale-up");
    printf("planner: scaled up 100000 -> 150000 replicas on %d nodes in %.1f ms\n", N_NODES, ms);

    apply_creates(b, &p);
    sch_plan_free(&p);
    ms = time_plan(b, &p);
    expect(&p, 0, "steady state");
    printf("planner: re-planned 150000 running replicas (nothing to do) in %.1f ms\n", ms);
    sch_plan_free(&p);

    make_global(b);
    b->n_tasks = 0;
    ms = time_plan(b, &p);
    printf("planner: global mode: %zu services on %d nodes (%zu tasks) in %.1f ms\n", b->n_services,
           N_NODES, p.n_creates, ms);
    sch_plan_free(&p);

    make_many(b);
    ms = time_plan(b, &p);
    expect(&p, 10 * N_MANY, "many services");
    printf("planner: placed %d services x 10 replicas on %d nodes in %.1f ms\n", N_MANY, N_NODES,
           ms);
    apply_creates(b, &p);
    sch_plan_free(&p);
    ms = time_plan(b, &p);
    expect(&p, 0, "many services, steady state");
    printf("planner: re-planned %d services x 10 running replicas (nothing to do) in %.1f ms\n",
           N_MANY, ms);
    sch_plan_free(&p);

    free(b->services);
    free(b->names);
    free(b->tasks);
    free(b->task_ids);
    free(b);
    return 0;
}
