/* Unit tests for raft/state_tasks: plans create tasks carrying their
 * template, nodes' reports move them through their lifecycle (only their
 * own tasks, never back from an end), history is dropped only once ended. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "api/spec.h"
#include "common/util.h"
#include "raft/state.h"
#include "tests/unit/quoted_json.h"

static void apply(struct rs_state *s, const char *quoted, uint64_t index, enum api_code want)
{
    json_auto_t *op = parse(quoted);
    struct rs_op_result res = {0};
    rs_state_apply_op(s, op, index, &res);
    if (res.err.code != want)
        fail_msg("%s: code %d (%s), expected %d", quoted, res.err.code, res.err.msg, want);
    free(res.body);
}

static void setup_web(struct rs_state *s)
{
    rs_state_init(s);
    json_auto_t *in = parse("{'name': 'web', 'replicas': 2, 'task': {'command': ['/bin/true'], "
                            "'stop_signal': 'SIGINT'}}");
    json_t *spec = NULL;
    struct api_err err = {0};
    assert_int_equal(api_spec_normalize(in, &spec, &err), 0);
    json_auto_t *op = json_pack("{s:s, s:o}", "op", "service.create", "spec", spec);
    struct rs_op_result res = {0};
    rs_state_apply_op(s, op, 2, &res);
    assert_int_equal(res.err.code, API_OK);
    free(res.body);
    apply(s,
          "{'op': 'tasks.plan', 'at': 1000, 'create': [{'id': 't1', 'service': 'web', 'slot': 1, "
          "'node': 'n1', 'version': 1}, {'id': 't2', 'service': 'web', 'slot': 2, 'node': 'n2', "
          "'version': 1}, {'id': 't3', 'service': 'gone', 'slot': 1, 'node': 'n2', 'version': 1}]}",
          3, API_OK);
}

static const char *field(const struct rs_state *s, const char *id, const char *key)
{
    return json_string_value(json_object_get(json_object_get(s->tasks, id), key));
}

static json_int_t ifield(const struct rs_state *s, const char *id, const char *key)
{
    return json_integer_value(json_object_get(json_object_get(s->tasks, id), key));
}

static void test_plan_embeds_template(void **state)
{
    (void)state;
    struct rs_state s;
    setup_web(&s);
    assert_int_equal(json_object_size(s.tasks), 2); /* not for a service that is gone */
    json_t *spec = json_object_get(json_object_get(s.tasks, "t1"), "spec");
    assert_string_equal(json_string_value(json_object_get(spec, "stop_signal")), "SIGINT");
    assert_string_equal(field(&s, "t1", "state"), "assigned");
    assert_int_equal(ifield(&s, "t1", "created_ms"), 1000);
    assert_int_equal(s.tasks_index, 3);
    rs_state_close(&s);
}

static void test_reports(void **state)
{
    (void)state;
    struct rs_state s;
    setup_web(&s);
    /* The node's own task moves; another node's task does not. */
    apply(&s,
          "{'op': 'tasks.report', 'node': 'n1', 'at': 2000, 'tasks': [{'id': 't1', 'state': "
          "'running', 'message': 'pid 5', 'restarts': 0}, {'id': 't2', 'state': 'running'}]}",
          4, API_OK);
    assert_string_equal(field(&s, "t1", "state"), "running");
    assert_string_equal(field(&s, "t1", "message"), "pid 5");
    assert_int_equal(ifield(&s, "t1", "updated_ms"), 2000);
    assert_int_equal(ifield(&s, "t1", "modify_index"), 4);
    assert_string_equal(field(&s, "t2", "state"), "assigned");
    assert_int_equal(s.tasks_index, 4);
    /* A report that changes nothing known leaves tasks_index. */
    apply(&s,
          "{'op': 'tasks.report', 'node': 'n1', 'at': 1, 'tasks': [{'id': 'nope', 'state': "
          "'running'}]}",
          5, API_OK);
    assert_int_equal(s.tasks_index, 4);
    /* Failed for good: stays failed, with its exit code. */
    apply(&s,
          "{'op': 'tasks.report', 'node': 'n1', 'at': 3000, 'tasks': [{'id': 't1', 'state': "
          "'failed', 'exit_code': 3, 'restarts': 2, 'message': 'exited with code 3'}]}",
          6, API_OK);
    assert_int_equal(ifield(&s, "t1", "exit_code"), 3);
    assert_int_equal(ifield(&s, "t1", "restarts"), 2);
    apply(&s,
          "{'op': 'tasks.report', 'node': 'n1', 'at': 4000, 'tasks': [{'id': 't1', 'state': "
          "'running'}]}",
          7, API_OK);
    assert_string_equal(field(&s, "t1", "state"), "failed");
    assert_int_equal(ifield(&s, "t1", "updated_ms"), 3000);
    /* Nodes cannot claim states that are not theirs to report. */
    apply(&s,
          "{'op': 'tasks.report', 'node': 'n2', 'at': 1, 'tasks': [{'id': 't2', 'state': "
          "'orphaned'}, {'id': 't2', 'state': 'assigned'}]}",
          8, API_OK);
    assert_string_equal(field(&s, "t2", "state"), "assigned");
    apply(&s, "{'op': 'tasks.report', 'node': 'n2'}", 9, API_BAD_REQUEST);
    rs_state_close(&s);
}

static void test_orphaned_learns_its_end(void **state)
{
    (void)state;
    struct rs_state s;
    setup_web(&s);
    apply(&s,
          "{'op': 'tasks.report', 'node': 'n2', 'at': 2, 'tasks': [{'id': 't2', 'state': "
          "'running'}]}",
          4, API_OK);
    apply(&s, "{'op': 'tasks.plan', 'at': 5, 'stop': [{'id': 't2', 'orphaned': true}]}", 5, API_OK);
    assert_string_equal(field(&s, "t2", "state"), "orphaned");
    assert_string_equal(field(&s, "t2", "desired_state"), "shutdown");
    /* Back, still running it: stays orphaned; then stopped: shutdown. */
    apply(&s,
          "{'op': 'tasks.report', 'node': 'n2', 'at': 6, 'tasks': [{'id': 't2', 'state': "
          "'running'}]}",
          6, API_OK);
    assert_string_equal(field(&s, "t2", "state"), "orphaned");
    apply(&s,
          "{'op': 'tasks.report', 'node': 'n2', 'at': 7, 'tasks': [{'id': 't2', 'state': "
          "'shutdown', 'exit_code': 143}]}",
          7, API_OK);
    assert_string_equal(field(&s, "t2", "state"), "shutdown");
    rs_state_close(&s);
}

static void test_delete_history_only(void **state)
{
    (void)state;
    struct rs_state s;
    setup_web(&s);
    apply(&s,
          "{'op': 'tasks.report', 'node': 'n1', 'at': 2, 'tasks': [{'id': 't1', 'state': "
          "'running'}]}",
          4, API_OK);
    /* Still desired running: never dropped. */
    apply(&s, "{'op': 'tasks.plan', 'delete': ['t1', 'nope', 3]}", 5, API_OK);
    assert_non_null(json_object_get(s.tasks, "t1"));
    apply(&s, "{'op': 'tasks.plan', 'stop': [{'id': 't1'}], 'delete': ['t1']}", 6, API_OK);
    assert_null(json_object_get(s.tasks, "t1"));
    /* An assigned task that no node started is dropped when stopped. */
    apply(&s, "{'op': 'tasks.plan', 'stop': [{'id': 't2'}]}", 7, API_OK);
    assert_null(json_object_get(s.tasks, "t2"));
    apply(&s, "{'op': 'tasks.plan', 'delete': 'x'}", 8, API_BAD_REQUEST);
    rs_state_close(&s);
}

static const json_t *health(const struct rs_state *s, const char *id)
{
    return json_object_get(json_object_get(s->tasks, id), "health");
}

static void test_health(void **state)
{
    (void)state;
    struct rs_state s, copy;
    setup_web(&s);
    assert_true(json_is_null(health(&s, "t1")));
    /* Stored from a report, only its three fields. */
    apply(&s,
          "{'op': 'tasks.report', 'node': 'n1', 'at': 2, 'tasks': [{'id': 't1', 'state': "
          "'running', 'health': {'status': 'starting', 'failures': 0, 'output': ''}}]}",
          4, API_OK);
    assert_string_equal(json_string_value(json_object_get(health(&s, "t1"), "status")), "starting");
    apply(&s,
          "{'op': 'tasks.report', 'node': 'n1', 'at': 3, 'tasks': [{'id': 't1', 'state': "
          "'running', 'health': {'status': 'healthy', 'failures': 1, 'output': 'HTTP 200', "
          "'extra': true}}]}",
          5, API_OK);
    json_auto_t *want = parse("{'status': 'healthy', 'failures': 1, 'output': 'HTTP 200'}");
    assert_true(json_equal(health(&s, "t1"), want));
    assert_int_equal(ifield(&s, "t1", "modify_index"), 5);
    /* Kept in snapshots. */
    size_t len;
    _cleanup_free_ char *text = rs_state_encode(&s, &len);
    rs_state_init(&copy);
    assert_int_equal(rs_state_decode(&copy, text, len), 0);
    assert_true(json_equal(health(&copy, "t1"), want));
    rs_state_close(&copy);
    /* Restarted: the node reports no health while it waits, which clears
     * what the last run found. */
    apply(&s,
          "{'op': 'tasks.report', 'node': 'n1', 'at': 4, 'tasks': [{'id': 't1', 'state': "
          "'starting', 'restarts': 1, 'message': 'unhealthy: HTTP 500 (3 failures in a row); "
          "restarting in 5s (restart 1)'}]}",
          6, API_OK);
    assert_true(json_is_null(health(&s, "t1")));
    /* A malformed health (refused by the API) is never stored. */
    apply(&s,
          "{'op': 'tasks.report', 'node': 'n1', 'at': 5, 'tasks': [{'id': 't1', 'state': "
          "'running', 'health': {'status': 'sick', 'failures': 0, 'output': ''}}]}",
          7, API_OK);
    assert_true(json_is_null(health(&s, "t1")));
    /* Failed for good when unhealthy: the last health stays with it. */
    apply(&s,
          "{'op': 'tasks.report', 'node': 'n1', 'at': 6, 'tasks': [{'id': 't1', 'state': "
          "'failed', 'exit_code': 143, 'health': {'status': 'unhealthy', 'failures': 2, "
          "'output': 'connect 127.0.0.1:9: connection refused'}}]}",
          8, API_OK);
    assert_string_equal(field(&s, "t1", "state"), "failed");
    assert_string_equal(json_string_value(json_object_get(health(&s, "t1"), "status")),
                        "unhealthy");
    assert_int_equal(json_integer_value(json_object_get(health(&s, "t1"), "failures")), 2);
    rs_state_close(&s);
}

static void test_snapshot_keeps_tasks(void **state)
{
    (void)state;
    struct rs_state s, t;
    setup_web(&s);
    rs_state_init(&t);
    size_t len;
    _cleanup_free_ char *text = rs_state_encode(&s, &len);
    assert_int_equal(rs_state_decode(&t, text, len), 0);
    assert_true(json_equal(s.tasks, t.tasks));
    rs_state_close(&s);
    rs_state_close(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_embeds_template),    cmocka_unit_test(test_reports),
        cmocka_unit_test(test_orphaned_learns_its_end), cmocka_unit_test(test_delete_history_only),
        cmocka_unit_test(test_snapshot_keeps_tasks),    cmocka_unit_test(test_health),
    };
    return cmocka_run_group_tests_name("tasks", tests, NULL, NULL);
}
