/* The state's nodes and cluster record (raft/state_nodes.c): every op, its
 * refusals, and the snapshot round trip with credentials kept apart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/util.h"
#include "tests/unit/quoted_json.h"
#include "raft/state.h"

static uint64_t next_index = 1;

/* Applies an op given as JSON text with ' for ", returns the result code and
 * the answer body (transferred) in *body when body is not NULL. */
static enum api_code apply(struct rs_state *s, const char *quoted, json_t **body)
{
    json_t *op = parse(quoted);
    struct rs_op_result res;
    rs_state_apply_op(s, op, next_index++, &res);
    json_decref(op);
    if (body)
        *body = res.body ? json_loads(res.body, 0, NULL) : NULL;
    free(res.body);
    return res.err.code;
}

#define NODE(id, name, role)                                                                       \
    "{'id':'" id "','name':'" name "','role':'" role "','api_address':'127.0.0.1:1',"              \
    "'raft_address':'127.0.0.1:2','labels':{},'resources':{}}"

static void init_cluster(struct rs_state *s)
{
    assert_int_equal(
        apply(s,
              "{'op':'cluster.init','cluster':{'id':'c1','admin_token':'adm',"
              "'worker_token':'w1','manager_token':'m1','voters':3},"
              "'node':" NODE("0000000000000001", "m1", "manager") ",'credential':'s1'}",
              NULL),
        API_OK);
}

static void test_init_and_register(void **state)
{
    (void)state;
    struct rs_state s;
    rs_state_init(&s);
    init_cluster(&s);
    assert_string_equal(rs_cluster_str(&s, "admin_token"), "adm");
    assert_int_equal(rs_cluster_int(&s, "voters"), 3);
    /* A second init is refused. */
    assert_int_equal(apply(&s,
                           "{'op':'cluster.init','cluster':{},'node':" NODE("0000000000000009", "x",
                                                                            "manager") "}",
                           NULL),
                     API_CONFLICT);
    json_t *body;
    assert_int_equal(apply(&s,
                           "{'op':'node.register','node':" NODE("0000000000000002", "w1",
                                                                "worker") ",'credential':'s2'}",
                           &body),
                     API_OK);
    assert_string_equal(json_string_value(json_object_get(body, "status")), "ready");
    assert_string_equal(json_string_value(json_object_get(body, "availability")), "active");
    assert_null(json_object_get(body, "credential"));
    json_decref(body);
    /* Same name, other id: refused. Same id again: a re-join, kept. */
    assert_int_equal(apply(&s,
                           "{'op':'node.register','node':" NODE("0000000000000003", "w1",
                                                                "worker") ",'credential':'s3'}",
                           NULL),
                     API_CONFLICT);
    assert_int_equal(apply(&s,
                           "{'op':'node.register','node':" NODE("0000000000000002", "w1",
                                                                "worker") ",'credential':'s4'}",
                           NULL),
                     API_OK);
    assert_int_equal(s.n_nodes, 2);
    assert_string_equal(rs_state_node(&s, "w1")->credential, "s4");
    assert_ptr_equal(rs_state_node(&s, "0000000000000002"), rs_state_node(&s, "w1"));
    assert_null(rs_state_node(&s, "nope"));
    assert_int_equal(apply(&s, "{'op':'node.register','node':{'id':'x'}}", NULL), API_BAD_REQUEST);
    rs_state_close(&s);
}

static void test_update_status_role_remove(void **state)
{
    (void)state;
    struct rs_state s;
    rs_state_init(&s);
    init_cluster(&s);
    apply(&s, "{'op':'node.register','node':" NODE("0000000000000002", "w1", "worker") "}", NULL);
    uint64_t mi = rs_state_node(&s, "w1")->modify_index;
    char op[256];
    snprintf(op, sizeof(op),
             "{'op':'node.update','id':'0000000000000002','availability':'drain','cas':%llu}",
             (unsigned long long)mi + 1);
    assert_int_equal(apply(&s, op, NULL), API_CONFLICT);
    snprintf(op, sizeof(op),
             "{'op':'node.update','id':'0000000000000002','availability':'drain',"
             "'labels':{'zone':'a'},'cas':%llu}",
             (unsigned long long)mi);
    assert_int_equal(apply(&s, op, NULL), API_OK);
    const struct rs_node *n = rs_state_node(&s, "w1");
    assert_string_equal(rs_node_str(n, "availability"), "drain");
    assert_true(n->modify_index > mi);
    uint64_t nodes_index = s.nodes_index;
    assert_int_equal(
        apply(&s, "{'op':'node.status','id':'0000000000000002','status':'down'}", NULL), API_OK);
    assert_string_equal(rs_node_str(rs_state_node(&s, "w1"), "status"), "down");
    assert_true(s.nodes_index > nodes_index);
    assert_int_equal(apply(&s, "{'op':'node.status','id':'0000000000000002','status':'zzz'}", NULL),
                     API_BAD_REQUEST);
    /* The last manager cannot be demoted; a worker can be promoted. */
    assert_int_equal(apply(&s, "{'op':'node.role','id':'0000000000000001','role':'worker'}", NULL),
                     API_CONFLICT);
    assert_int_equal(apply(&s, "{'op':'node.role','id':'0000000000000002','role':'manager'}", NULL),
                     API_OK);
    assert_int_equal(apply(&s, "{'op':'node.role','id':'0000000000000001','role':'worker'}", NULL),
                     API_OK);
    assert_int_equal(apply(&s, "{'op':'node.remove','id':'0000000000000001'}", NULL), API_OK);
    assert_int_equal(apply(&s, "{'op':'node.remove','id':'0000000000000001'}", NULL),
                     API_NOT_FOUND);
    assert_int_equal(s.n_nodes, 1);
    rs_state_close(&s);
}

static void test_rotate_and_reset(void **state)
{
    (void)state;
    struct rs_state s;
    rs_state_init(&s);
    assert_int_equal(apply(&s, "{'op':'cluster.rotate','role':'worker','token':'t'}", NULL),
                     API_BAD_REQUEST); /* no cluster yet */
    init_cluster(&s);
    assert_int_equal(apply(&s, "{'op':'cluster.rotate','role':'worker','token':'w2'}", NULL),
                     API_OK);
    assert_string_equal(rs_cluster_str(&s, "worker_token"), "w2");
    assert_int_equal(apply(&s, "{'op':'cluster.rotate','role':'admin','token':'x'}", NULL),
                     API_BAD_REQUEST);
    apply(&s, "{'op':'node.register','node':" NODE("0000000000000002", "m2", "manager") "}", NULL);
    apply(&s, "{'op':'node.register','node':" NODE("0000000000000003", "m3", "manager") "}", NULL);
    apply(&s, "{'op':'node.register','node':" NODE("0000000000000004", "w", "worker") "}", NULL);
    json_t *body;
    assert_int_equal(apply(&s, "{'op':'members.reset','keep':'0000000000000001'}", &body), API_OK);
    assert_int_equal(json_integer_value(json_object_get(body, "removed")), 2);
    json_decref(body);
    assert_int_equal(s.n_nodes, 2);
    assert_non_null(rs_state_node(&s, "w"));
    assert_non_null(rs_state_node(&s, "m1"));
    rs_state_close(&s);
}

static void test_snapshot_round_trip(void **state)
{
    (void)state;
    struct rs_state s, t;
    rs_state_init(&s);
    rs_state_init(&t);
    init_cluster(&s);
    apply(&s,
          "{'op':'node.register','node':" NODE("0000000000000002", "w1",
                                               "worker") ",'credential':'secret2'}",
          NULL);
    size_t len;
    _cleanup_free_ char *a = rs_state_encode(&s, &len);
    assert_int_equal(rs_state_decode(&t, a, len), 0);
    _cleanup_free_ char *b = rs_state_encode(&t, &len);
    assert_string_equal(a, b);
    assert_string_equal(rs_state_node(&t, "w1")->credential, "secret2");
    assert_null(json_object_get(rs_state_node(&t, "w1")->obj, "credential"));
    assert_string_equal(rs_cluster_str(&t, "manager_token"), "m1");
    rs_state_close(&s);
    rs_state_close(&t);
}

static void test_services_restore(void **state)
{
    (void)state;
    struct rs_state s;
    rs_state_init(&s);
    init_cluster(&s);
    assert_int_equal(apply(&s,
                           "{'op':'services.restore','services':[{'name':'b','version':4,"
                           "'create_index':900,'modify_index':990},{'name':'a','version':1}]}",
                           NULL),
                     API_OK);
    assert_int_equal(s.n_services, 2);
    assert_string_equal(s.services[0]->name, "a");
    assert_int_equal(s.services[1]->version, 4);
    assert_int_equal(s.services[1]->modify_index, s.index);
    assert_int_equal(
        apply(&s, "{'op':'services.restore','services':[{'name':'a'},{'name':'a'}]}", NULL),
        API_BAD_REQUEST);
    assert_int_equal(s.n_services, 2);
    rs_state_close(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_and_register), cmocka_unit_test(test_update_status_role_remove),
        cmocka_unit_test(test_rotate_and_reset),  cmocka_unit_test(test_snapshot_round_trip),
        cmocka_unit_test(test_services_restore),
    };
    return cmocka_run_group_tests_name("nodes", tests, NULL, NULL);
}
