/* Unit tests for raft/rollout: which old tasks a round replaces (stop-first
 * and start-first, parallelism counted over every place out of service),
 * completion, and the failure action. The state is built through the FSM's
 * own operations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "api/spec.h"
#include "common/util.h"
#include "raft/rollout.h"
#include "raft/state.h"
#include "scheduler/from_json.h"
#include "scheduler/scheduler.h"
#include "tests/unit/quoted_json.h"

static uint64_t idx = 1;

static void apply(struct rs_state *s, json_t *op)
{
    struct rs_op_result res = {0};
    rs_state_apply_op(s, op, ++idx, &res);
    if (res.err.code != API_OK)
        fail_msg("op refused: %s", res.err.msg);
    free(res.body);
    json_decref(op);
}

static void put(struct rs_state *s, const char *quoted)
{
    json_auto_t *in = parse(quoted);
    json_t *spec = NULL;
    struct api_err err = {0};
    if (api_spec_normalize(in, &spec, &err) != 0)
        fail_msg("%s: %s", err.field, err.msg);
    apply(s, json_pack("{s:s, s:o, s:I}", "op", "service.put", "spec", spec, "at", 1000));
}

/* Tasks web.1..n at version v, running since t=0 on n1. */
static void tasks_at(struct rs_state *s, int from, int n, int v, const char *prefix)
{
    for (int i = from; i <= n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "%s%d", prefix, i);
        json_t *t = json_pack("{s:s, s:s, s:i, s:s, s:i, s:s, s:s, s:i, s:i, s:i, s:n}", "id", id,
                              "service", "web", "slot", i, "node", "n1", "version", v,
                              "desired_state", "running", "state", "running", "restarts", 0,
                              "created_ms", 0, "updated_ms", 0, "health");
        json_object_set_new(s->tasks, id, t);
    }
}

static void setup(struct rs_state *s, const char *order, int parallelism)
{
    rs_state_init(s);
    char spec[512];
    snprintf(spec, sizeof(spec),
             "{'name': 'web', 'replicas': 4, 'task': {'command': ['a']}, 'update': {'order': "
             "'%s', 'parallelism': %d, 'monitor': '1s', 'failure_action': 'pause'}}",
             order, parallelism);
    put(s, spec);
    tasks_at(s, 1, 4, 1, "o");
    /* A new template: a rollout to version 2. */
    char *p = strstr(spec, "['a']");
    p[2] = 'b';
    put(s, spec);
}

static size_t count_desired(const json_t *tasks, const char *desired)
{
    size_t n = 0, i;
    json_t *t;
    json_array_foreach(tasks, i, t) n +=
        strcmp(json_string_value(json_object_get(t, "desired_state")), desired) == 0;
    return n;
}

static json_t *input(const struct rs_state *s)
{
    json_t *tasks = json_array();
    const char *id;
    json_t *t;
    json_object_foreach((json_t *)s->tasks, id, t) json_array_append(tasks, t);
    return tasks;
}

static void test_stop_first_batches(void **state)
{
    (void)state;
    struct rs_state s;
    setup(&s, "stop-first", 2);
    json_auto_t *tasks = input(&s);
    struct rs_rollout_round r;
    rs_rollout_round(&s, 2000, tasks, &r);
    /* The two lowest slots are stopped first. */
    assert_int_equal(json_array_size(r.stops), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(r.stops, 0), "id")), "o1");
    rs_rollout_round_free(&r);
    /* Once they stop, nothing more until their places serve again. */
    json_object_set_new(json_object_get(s.tasks, "o1"), "desired_state", json_string("shutdown"));
    json_object_set_new(json_object_get(s.tasks, "o2"), "desired_state", json_string("shutdown"));
    json_decref(tasks);
    tasks = input(&s);
    rs_rollout_round(&s, 2100, tasks, &r);
    assert_int_equal(json_array_size(r.stops), 0);
    rs_rollout_round_free(&r);
    /* New tasks run in slots 1 and 2 (old ones ended) but not for the
     * monitor window yet: still nothing; after it: the next two. */
    json_object_set_new(json_object_get(s.tasks, "o1"), "state", json_string("shutdown"));
    json_object_set_new(json_object_get(s.tasks, "o2"), "state", json_string("shutdown"));
    tasks_at(&s, 1, 2, 2, "n");
    json_decref(tasks);
    tasks = input(&s);
    rs_rollout_round(&s, 500, tasks, &r);
    assert_int_equal(json_array_size(r.stops), 0);
    rs_rollout_round_free(&r);
    rs_rollout_round(&s, 5000, tasks, &r);
    assert_int_equal(json_array_size(r.stops), 2);
    rs_rollout_round_free(&r);
    rs_state_close(&s);
}

static void test_start_first_keeps_old_until_new_runs(void **state)
{
    (void)state;
    struct rs_state s;
    setup(&s, "start-first", 1);
    json_auto_t *tasks = input(&s);
    struct rs_rollout_round r;
    rs_rollout_round(&s, 2000, tasks, &r);
    /* Nothing stopped; one old task hidden from the scheduler so that it
     * places a new one in its slot. */
    assert_int_equal(json_array_size(r.stops), 0);
    assert_int_equal(count_desired(tasks, "shutdown"), 1);
    rs_rollout_round_free(&r);
    /* Its replacement runs long enough: now the old one stops. */
    tasks_at(&s, 1, 1, 2, "n");
    json_decref(tasks);
    tasks = input(&s);
    rs_rollout_round(&s, 5000, tasks, &r);
    assert_int_equal(json_array_size(r.stops), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(r.stops, 0), "id")), "o1");
    rs_rollout_round_free(&r);
    rs_state_close(&s);
}

static void test_failure_pauses_and_completion(void **state)
{
    (void)state;
    struct rs_state s;
    setup(&s, "stop-first", 0);
    /* All old ones gone, one new task failed: paused with the reason. */
    for (int i = 1; i <= 4; i++) {
        char id[8];
        snprintf(id, sizeof(id), "o%d", i);
        json_object_del(s.tasks, id);
    }
    tasks_at(&s, 1, 4, 2, "n");
    json_t *bad = json_object_get(s.tasks, "n3");
    json_object_set_new(bad, "state", json_string("failed"));
    json_object_set_new(bad, "created_ms", json_integer(2000));
    json_object_set_new(bad, "message", json_string("exited with code 3"));
    json_auto_t *tasks = input(&s);
    struct rs_rollout_round r;
    rs_rollout_round(&s, 6000, tasks, &r);
    json_t *op = json_array_get(r.ops, 0);
    assert_non_null(op);
    assert_string_equal(json_string_value(json_object_get(op, "state")), "paused");
    assert_non_null(strstr(json_string_value(json_object_get(op, "message")), "code 3"));
    rs_rollout_round_free(&r);
    /* Healthy everywhere: completed. */
    json_object_set_new(bad, "state", json_string("running"));
    rs_rollout_round(&s, 6000, tasks, &r);
    op = json_array_get(r.ops, 0);
    assert_string_equal(json_string_value(json_object_get(op, "state")), "completed");
    json_incref(op);
    rs_rollout_round_free(&r);
    apply(&s, op);
    const struct rs_service *svc = rs_state_service(&s, "web");
    assert_null(svc->stable); /* the current spec is now the stable one */
    assert_non_null(svc->previous);
    rs_state_close(&s);
}

/* web: 2 replicas publishing 8080/tcp, o1 on n1 and o2 on n2, and an update
 * to version 2, start-first one at a time. */
static void setup_ports(struct rs_state *s)
{
    rs_state_init(s);
    char spec[] = "{'name': 'web', 'replicas': 2, 'task': {'command': ['a'], 'ports': "
                  "[{'published': 8080, 'target': 8080}]}, 'update': {'order': 'start-first', "
                  "'parallelism': 1, 'monitor': '1s'}}";
    put(s, spec);
    tasks_at(s, 1, 2, 1, "o");
    json_object_set_new(json_object_get(s->tasks, "o2"), "node", json_string("n2"));
    for (int i = 1; i <= 2; i++)
        json_object_set_new(json_object_get(s->tasks, i == 1 ? "o1" : "o2"), "spec",
                            parse("{'ports': [{'published': 8080, 'protocol': 'tcp'}]}"));
    strstr(spec, "['a']")[2] = 'b';
    put(s, spec);
}

/* One rollout round and the plan made with it, as the reconciler does;
 * returns the plan as "create SLOT on NODE" / "unplaced SLOT" words. */
static void round_with_plan(struct rs_state *s, const char *nodes_json, struct rs_rollout_round *r,
                            size_t *fell_back, char *text, size_t size)
{
    json_auto_t *services = json_array();
    json_array_append_new(services, rs_service_json(rs_state_service(s, "web")));
    json_auto_t *nodes = parse(nodes_json);
    json_auto_t *tasks = input(s);
    rs_rollout_round(s, 2000, tasks, r);
    struct sch_json_input in;
    struct sch_plan p = {0};
    assert_int_equal(sch_input_from_json(services, nodes, tasks, &in), 0);
    assert_int_equal(sch_plan_compute(&in.in, &p), 0);
    *fell_back = rs_rollout_fallback(r, &p, services, nodes, tasks);
    size_t len = 0;
    text[0] = '\0';
    for (size_t i = 0; i < p.n_creates; i++)
        len += (size_t)snprintf(text + len, size - len, "create %u on %s\n", p.creates[i].slot,
                                p.creates[i].node);
    for (size_t i = 0; i < p.n_unplaced; i++)
        len += (size_t)snprintf(text + len, size - len, "unplaced %u: %s\n", p.unplaced[i].slot,
                                p.unplaced[i].reason);
    sch_plan_free(&p);
    sch_json_input_free(&in);
}

#define TWO_NODES                                                                                  \
    "[{'id': 'n1', 'status': 'ready', 'availability': 'active'},"                                  \
    " {'id': 'n2', 'status': 'ready', 'availability': 'active'}]"

/* start-first where the new task needs the port its old one holds on every
 * node: that slot falls back to stop-first (its old task is stopped, the
 * new one placed once it ended), one slot at a time. */
static void test_start_first_port_conflict_falls_back(void **state)
{
    (void)state;
    struct rs_state s;
    setup_ports(&s);
    struct rs_rollout_round r;
    size_t fell_back;
    char text[512];
    round_with_plan(&s, TWO_NODES, &r, &fell_back, text, sizeof(text));
    assert_string_equal(text, "unplaced 1: port 8080/tcp is in use on every eligible node\n");
    assert_int_equal(fell_back, 1);
    assert_int_equal(json_array_size(r.stops), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(r.stops, 0), "id")), "o1");
    rs_rollout_round_free(&r);
    /* o1 stops (still running): slot 1 is out of service, so slot 2 waits. */
    json_object_set_new(json_object_get(s.tasks, "o1"), "desired_state", json_string("shutdown"));
    json_object_set_new(json_object_get(s.tasks, "o1"), "replaced", json_true());
    round_with_plan(&s, TWO_NODES, &r, &fell_back, text, sizeof(text));
    assert_string_equal(text, "unplaced 1: port 8080/tcp is in use on every eligible node\n");
    assert_int_equal(fell_back + json_array_size(r.stops), 0);
    rs_rollout_round_free(&r);
    /* o1 ended: its replacement takes n1. */
    json_object_set_new(json_object_get(s.tasks, "o1"), "state", json_string("shutdown"));
    round_with_plan(&s, TWO_NODES, &r, &fell_back, text, sizeof(text));
    assert_string_equal(text, "create 1 on n1\n");
    assert_int_equal(fell_back + json_array_size(r.stops), 0);
    rs_rollout_round_free(&r);
    rs_state_close(&s);
}

/* A third node without the port: start-first as usual, nothing stopped. */
static void test_start_first_port_free_elsewhere(void **state)
{
    (void)state;
    struct rs_state s;
    setup_ports(&s);
    struct rs_rollout_round r;
    size_t fell_back;
    char text[512];
    round_with_plan(&s,
                    "[{'id': 'n1'}, {'id': 'n2'}, {'id': 'n3', 'status': 'ready', "
                    "'availability': 'active'}]",
                    &r, &fell_back, text, sizeof(text));
    assert_string_equal(text, "create 1 on n3\n");
    assert_int_equal(fell_back + json_array_size(r.stops), 0);
    rs_rollout_round_free(&r);
    rs_state_close(&s);
}

/* A global service: the new task must go on the old one's node, where the
 * port is taken: the node falls back to stop-first, one node at a time. */
static void test_start_first_port_conflict_global(void **state)
{
    (void)state;
    struct rs_state s;
    rs_state_init(&s);
    char spec[] = "{'name': 'web', 'mode': 'global', 'task': {'command': ['a'], 'ports': "
                  "[{'published': 9000, 'target': 9000}]}, 'update': {'order': 'start-first', "
                  "'parallelism': 1, 'monitor': '1s'}}";
    put(&s, spec);
    for (int i = 1; i <= 2; i++) {
        char id[8], node[8];
        snprintf(id, sizeof(id), "g%d", i);
        snprintf(node, sizeof(node), "n%d", i);
        json_t *t = json_pack("{s:s, s:s, s:i, s:s, s:i, s:s, s:s, s:i, s:i, s:i, s:n, s:o}", "id",
                              id, "service", "web", "slot", 0, "node", node, "version", 1,
                              "desired_state", "running", "state", "running", "restarts", 0,
                              "created_ms", 0, "updated_ms", 0, "health", "spec",
                              parse("{'ports': [{'published': 9000, 'protocol': 'tcp'}]}"));
        json_object_set_new(s.tasks, id, t);
    }
    strstr(spec, "['a']")[2] = 'b';
    put(&s, spec);
    struct rs_rollout_round r;
    size_t fell_back;
    char text[512];
    round_with_plan(&s, TWO_NODES, &r, &fell_back, text, sizeof(text));
    assert_string_equal(text, "unplaced 0: port 9000/tcp is in use on node n1\n");
    assert_int_equal(fell_back, 1);
    assert_int_equal(json_array_size(r.stops), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(r.stops, 0), "id")), "g1");
    rs_rollout_round_free(&r);
    rs_state_close(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_first_batches),
        cmocka_unit_test(test_start_first_keeps_old_until_new_runs),
        cmocka_unit_test(test_failure_pauses_and_completion),
        cmocka_unit_test(test_start_first_port_conflict_falls_back),
        cmocka_unit_test(test_start_first_port_free_elsewhere),
        cmocka_unit_test(test_start_first_port_conflict_global),
    };
    return cmocka_run_group_tests_name("rollout", tests, NULL, NULL);
}
