/* The scheduler's input side: constraint parsing, names, and the JSON
 * adapter from the store's documents to the planner's structs. */
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
#include "tests/unit/quoted_json.h"
#include "scheduler/scheduler.h"
#include "scheduler/from_json.h"
#include "tests/unit/sched_plan_text.h"

#define MIB (INT64_C(1) << 20)

static void test_constraints(void **state)
{
    (void)state;
    static const struct sch_label labels[] = {{"zone", "a"}, {"disk", "ssd"}};
    static const struct sch_node n1 = {.id = "abc123",
                                       .name = "n1",
                                       .hostname = "host1",
                                       .role = SCH_ROLE_MANAGER,
                                       .labels = labels,
                                       .n_labels = 2};
    static const struct {
        const char *c;
        int valid, match; /* match: on n1 */
    } cases[] = {
        {"node.labels.zone==a", 1, 1},
        {"node.labels.zone == a", 1, 1},
        {" node.labels.zone==A ", 1, 1},
        {"node.labels.zone!=a", 1, 0},
        {"node.labels.rack!=r1", 1, 1},
        {"node.labels.rack==r1", 1, 0},
        {"node.role==manager", 1, 1},
        {"node.role!=manager", 1, 0},
        {"node.role==worker", 1, 0},
        {"node.name==n1", 1, 1},
        {"node.id==abc123", 1, 1},
        {"node.hostname==host1", 1, 1},
        {"node.hostname!=n1", 1, 1},
        {"node.role==boss", 0, 0},
        {"node.labels.==a", 0, 0},
        {"node.labels==a", 0, 0},
        {"node.zone==a", 0, 0},
        {"node.labels.zone=a", 0, 0},
        {"node.labels.zone==", 0, 0},
        {"node.labels.zone==a b", 0, 0},
        {"node.labels.zone==a==b", 0, 0},
        {"==a", 0, 0},
        {"", 0, 0},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        if (sch_constraint_valid(cases[i].c) != cases[i].valid)
            fail_msg("\"%s\": valid %d", cases[i].c, !cases[i].valid);
        if (!cases[i].valid)
            continue;
        const char *const cons[] = {cases[i].c};
        struct sch_service s = {
            .name = "s", .replicas = 1, .constraints = cons, .n_constraints = 1};
        struct sch_input in = {.nodes = &n1, .n_nodes = 1, .services = &s, .n_services = 1};
        struct sch_plan p;
        assert_int_equal(sch_plan_compute(&in, &p), 0);
        if ((int)p.n_creates != cases[i].match)
            fail_msg("\"%s\": match %d", cases[i].c, !cases[i].match);
        sch_plan_free(&p);
    }
    assert_false(sch_constraint_valid(NULL));
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(sch_stop_reason_name(SCH_STOP_SCALE_DOWN), "scale-down");
    assert_string_equal(sch_stop_reason_name(SCH_STOP_INVALID), "invalid");
    assert_string_equal(sch_stop_reason_name((enum sch_stop_reason)99), "unknown");
    for (int s = 0; s < SCH_TASK_STATE_COUNT; s++) {
        enum sch_task_state back;
        assert_int_equal(sch_task_state_parse(sch_task_state_name((enum sch_task_state)s), &back),
                         0);
        assert_int_equal(back, s);
    }
    enum sch_task_state st;
    assert_int_equal(sch_task_state_parse("Running", &st), -EINVAL);
    assert_int_equal(sch_task_state_parse(NULL, &st), -EINVAL);
}

static void test_from_json(void **state)
{
    (void)state;
    json_auto_t *services =
        parse("[{'name': 'web', 'mode': 'replicated', 'replicas': 3, 'version': 4,"
              "  'task': {'command': ['/bin/true'], 'ports': [{'published': 8080, 'target': 80,"
              "    'protocol': 'tcp'}, {'published': 53, 'target': 53, 'protocol': 'udp'}],"
              "    'resources': {"
              "    'reservations': {'cpu': 0.5, 'memory': 67108864},"
              "    'limits': {'cpu': 0, 'memory': 0, 'pids': 0}}},"
              "  'placement': {'constraints': ['node.labels.zone==a'], 'max_replicas_per_node': 2,"
              "    'preferences': [{'spread': 'node.labels.rack'}], 'strategy': 'binpack'},"
              "  'create_index': 5, 'modify_index': 9},"
              " {'name': 'agent', 'mode': 'global', 'replicas': 0, 'version': 1,"
              "  'task': {'command': ['/bin/true']}}]");
    json_auto_t *nodes = parse(
        "[{'id': '5d74bec8e2c19675', 'name': 'n1', 'role': 'manager',"
        "  'manager': {'raft_address': '127.0.0.1:7071', 'raft_role': 'voter'},"
        "  'availability': 'active', 'status': 'ready', 'labels': {'zone': 'a', 'rack': 'r1'},"
        "  'resources': {'cpu': 2.0, 'memory': 25000000000}, 'version': 3},"
        " {'id': '00000000000000b2', 'name': 'n2', 'role': 'worker', 'manager': null,"
        "  'availability': 'drain', 'status': 'down', 'labels': {}, 'resources': {}}]");
    json_auto_t *tasks =
        parse("[{'id': 't1', 'service': 'web', 'slot': 1, 'node': '5d74bec8e2c19675', 'version': 4,"
              "  'state': 'running', 'desired_state': 'running',"
              "  'spec': {'ports': [{'published': 9090, 'target': 80}]}},"
              " {'id': 't2', 'service': 'agent', 'node': '00000000000000b2', 'state': 'failed',"
              "  'desired_state': 'shutdown'}]");
    struct sch_json_input in;
    assert_int_equal(sch_input_from_json(services, nodes, tasks, &in), 0);
    assert_int_equal(in.in.n_services, 2);
    const struct sch_service *web = &in.in.services[0];
    assert_string_equal(web->name, "web");
    assert_true(web->replicas == 3 && web->version == 4 && web->cpu == 0.5);
    assert_true(web->memory == 64 * MIB && web->max_replicas_per_node == 2);
    assert_true(web->n_constraints == 1 && web->strategy == SCH_STRATEGY_BINPACK);
    assert_string_equal(web->constraints[0], "node.labels.zone==a");
    assert_string_equal(web->spread, "node.labels.rack");
    assert_int_equal(web->n_ports, 2);
    assert_true(web->ports[0].published == 8080 && web->ports[0].protocol == SCH_PROTO_TCP);
    assert_true(web->ports[1].published == 53 && web->ports[1].protocol == SCH_PROTO_UDP);
    assert_int_equal(in.in.services[1].mode, SCH_MODE_GLOBAL);
    assert_int_equal(in.in.services[1].n_ports, 0);
    assert_int_equal(in.in.n_nodes, 2);
    const struct sch_node *n1 = &in.in.nodes[0], *n2 = &in.in.nodes[1];
    assert_true(n1->role == SCH_ROLE_MANAGER && n1->n_labels == 2 && n1->cpu == 2.0);
    assert_string_equal(n1->labels[0].key, "zone");
    assert_string_equal(n1->labels[0].value, "a");
    assert_int_equal(n1->memory, INT64_C(25000000000));
    assert_true(n2->availability == SCH_AVAIL_DRAIN && n2->status == SCH_NODE_DOWN);
    assert_true(n2->n_labels == 0 && n2->memory == 0);
    assert_int_equal(in.in.n_tasks, 2);
    assert_true(in.in.tasks[0].slot == 1 && in.in.tasks[0].state == SCH_TASK_RUNNING);
    assert_int_equal(in.in.tasks[0].n_ports, 1);
    assert_true(in.in.tasks[0].ports[0].published == 9090 &&
                in.in.tasks[0].ports[0].protocol == SCH_PROTO_TCP);
    assert_int_equal(in.in.tasks[1].n_ports, 0);
    assert_true(in.in.tasks[1].desired == SCH_DESIRED_SHUTDOWN &&
                in.in.tasks[1].state == SCH_TASK_FAILED);

    struct sch_plan p;
    assert_int_equal(sch_plan_compute(&in.in, &p), 0);
    _cleanup_free_ char *text = plan_text(&p);
    sch_plan_free(&p);
    sch_json_input_free(&in);
    assert_string_equal(text, "create agent on 5d74bec8e2c19675\n"
                              "create web.2 on 5d74bec8e2c19675 v4\n"
                              "unplaced web.3: max_replicas_per_node 2 reached on every "
                              "eligible node\n");
}

static void test_from_json_errors(void **state)
{
    (void)state;
    static const struct {
        const char *services, *nodes, *tasks, *error;
    } cases[] = {
        {"{}", NULL, NULL, "services: not a list"},
        {"[{'name': 3}]", NULL, NULL, "services[0].name: not a string"},
        {"[{'name': 'a', 'mode': 'both'}]", NULL, NULL, "services[0].mode: unknown value \"both\""},
        {"[{'name': 'a', 'replicas': -1}]", NULL, NULL,
         "services[0].replicas: not an integer in 0..100000"},
        {"[{'name': 'a', 'placement': {'constraints': [1]}}]", NULL, NULL,
         "services[0].placement.constraints[0]: not a string"},
        {"[{}]", NULL, NULL, "services[0]: no name"},
        {NULL, "[{'id': 'x', 'labels': {'k': 1}}]", NULL, "nodes[0].labels.k: not a string"},
        {NULL, "[{'id': 'x', 'resources': {'cpu': '2'}}]", NULL,
         "nodes[0].resources.cpu: not a number >= 0"},
        {NULL, "[{'name': 'x'}]", NULL, "nodes[0]: no id"},
        {NULL, NULL, "[{'id': 't', 'service': 's', 'state': 'runing'}]",
         "tasks[0].state: unknown task state \"runing\""},
        {NULL, NULL, "[{'id': 't'}]", "tasks[0]: no id or no service"},
        {NULL, NULL, "[3]", "tasks[0]: not an object"},
        {"[{'name': 'a', 'task': {'ports': [{'published': 0}]}}]", NULL, NULL,
         "services[0].task.ports[0].published: not a port number"},
        {"[{'name': 'a', 'task': {'ports': {}}}]", NULL, NULL,
         "services[0].task.ports: not a list"},
        {NULL, NULL,
         "[{'id': 't', 'service': 's', 'spec': {'ports': [{'published': 1, "
         "'protocol': 'sctp'}]}}]",
         "tasks[0].spec.ports[0].protocol: unknown value \"sctp\""},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        json_auto_t *s = parse(cases[i].services);
        json_auto_t *n = parse(cases[i].nodes);
        json_auto_t *t = parse(cases[i].tasks);
        struct sch_json_input in;
        assert_int_equal(sch_input_from_json(s, n, t, &in), -EINVAL);
        assert_string_equal(in.errmsg, cases[i].error);
        assert_null(in.in.nodes);
        sch_json_input_free(&in);
    }
    struct sch_json_input in;
    assert_int_equal(sch_input_from_json(NULL, NULL, NULL, &in), 0);
    assert_int_equal(in.in.n_nodes + in.in.n_services + in.in.n_tasks, 0);
    sch_json_input_free(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constraints),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_from_json),
        cmocka_unit_test(test_from_json_errors),
    };
    return cmocka_run_group_tests_name("scheduler input", tests, NULL, NULL);
}
