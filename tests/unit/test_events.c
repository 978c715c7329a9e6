/* The event stream (raft/events.c): the ring's order, filters, limits by
 * count and bytes with the lost marker, resuming after a snapshot, and the
 * events the FSM's hooks make, the same on two states fed the same ops. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/spec.h"
#include "common/buf.h"
#include "common/util.h"
#include "raft/events.h"
#include "raft/state.h"
#include "tests/unit/quoted_json.h"

static void push(struct rs_events *ev, const char *quoted)
{
    assert_true(rs_events_push(ev, parse(quoted)) > 0);
}

/* Reads a page and parses its lines into a list (transferred). */
static json_t *read_page(const struct rs_events *ev, int has_after, uint64_t after,
                         const struct rs_events_filter *f, size_t limit,
                         struct rs_events_page *page)
{
    struct common_buf b = {0};
    rs_events_read(ev, has_after, after, f, limit, &b, page);
    json_t *list = json_array();
    for (char *line = b.data; line && *line;) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl); /* every line ends in a newline */
        json_t *e = json_loadb(line, (size_t)(nl - line), 0, NULL);
        assert_non_null(e);
        json_array_append_new(list, e);
        line = nl + 1;
    }
    common_buf_free(&b);
    return list;
}

static json_int_t index_at(const json_t *list, size_t i)
{
    return json_integer_value(json_object_get(json_array_get(list, i), "index"));
}

static const char *type_at(const json_t *list, size_t i)
{
    return json_string_value(json_object_get(json_array_get(list, i), "type"));
}

static void test_default_max_from_env(void **state)
{
    (void)state;
    /* Read once: this test runs first. */
    setenv("SHOAL_EVENTS_MAX", "50", 1);
    assert_int_equal(rs_events_default_max(), 50);
    setenv("SHOAL_EVENTS_MAX", "7", 1);
    assert_int_equal(rs_events_default_max(), 50);
    struct rs_events *ev = rs_events_new(0, 0);
    for (int i = 0; i < 60; i++)
        push(ev, "{'type': 'x'}");
    assert_int_equal(rs_events_count(ev), 50);
    rs_events_free(ev);
}

static void test_order_and_index(void **state)
{
    (void)state;
    struct rs_events *ev = rs_events_new(5, 0);
    struct rs_events_page page;
    json_t *list = read_page(ev, 1, 0, NULL, 10, &page);
    assert_int_equal(json_array_size(list), 0);
    assert_int_equal(page.index, 0);
    json_decref(list);
    push(ev, "{'type': 'service.created', 'at': 5, 'service': 'web'}");
    push(ev, "{'type': 'service.scaled', 'service': 'web', 'index': 99}");
    push(ev, "{'type': 'node.down', 'node': 'n1'}");
    assert_int_equal(rs_events_push(ev, parse("{'no': 'type'}")), 0);
    assert_int_equal(rs_events_head(ev), 3);
    assert_int_equal(rs_events_floor(ev), 0);
    list = read_page(ev, 1, 0, NULL, 10, &page);
    assert_int_equal(json_array_size(list), 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(index_at(list, i), (json_int_t)i + 1);
    assert_string_equal(type_at(list, 0), "service.created");
    assert_int_equal(page.index, 3);
    assert_int_equal(page.count, 3);
    assert_false(page.lost);
    json_decref(list);
    /* The index comes first in each line, whatever the event said. */
    struct common_buf b = {0};
    rs_events_read(ev, 1, 1, NULL, 1, &b, &page);
    assert_string_equal(b.data, "{\"index\":2,\"type\":\"service.scaled\",\"service\":\"web\"}\n");
    assert_int_equal(page.index, 2); /* cut by the limit: resume after it */
    common_buf_free(&b);
    /* Resuming exactly after the last seen; nothing newer: the head. */
    list = read_page(ev, 1, 2, NULL, 10, &page);
    assert_int_equal(json_array_size(list), 1);
    assert_int_equal(index_at(list, 0), 3);
    json_decref(list);
    list = read_page(ev, 1, 3, NULL, 10, &page);
    assert_int_equal(json_array_size(list), 0);
    assert_int_equal(page.index, 3);
    json_decref(list);
    list = read_page(ev, 1, 40, NULL, 10, &page); /* ahead of the ring */
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
    /* Without an index: the last ones. */
    list = read_page(ev, 0, 0, NULL, 2, &page);
    assert_int_equal(json_array_size(list), 2);
    assert_int_equal(index_at(list, 0), 2);
    assert_int_equal(index_at(list, 1), 3);
    assert_int_equal(page.index, 3);
    json_decref(list);
    rs_events_free(ev);
}

static void test_filters(void **state)
{
    (void)state;
    struct rs_events *ev = rs_events_new(100, 0);
    push(ev, "{'type': 'service.created', 'service': 'web'}");
    push(ev, "{'type': 'task.state', 'service': 'web'}");
    push(ev, "{'type': 'task.health', 'service': 'api'}");
    push(ev, "{'type': 'node.down', 'node': 'n1'}");
    push(ev, "{'type': 'task.health', 'service': 'web'}");
    static const struct {
        const char *service;
        const char *types[3];
        size_t n_types;
        const char *want; /* indexes */
    } cases[] = {
        {NULL, {NULL}, 0, "12345"},
        {"", {NULL}, 0, "12345"},
        {"web", {NULL}, 0, "125"},
        {"api", {NULL}, 0, "3"},
        {"nope", {NULL}, 0, ""},
        {NULL, {"task."}, 1, "235"},
        {NULL, {"task"}, 1, "235"},
        {NULL, {"task.health"}, 1, "35"},
        {NULL, {"node.", "service."}, 2, "14"},
        {NULL, {""}, 1, "12345"},
        {NULL, {"rollout."}, 1, ""},
        {"web", {"task."}, 1, "25"},
        {"web", {"node."}, 1, ""}, /* no service: never matches one */
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct rs_events_filter f = {cases[i].service, cases[i].types, cases[i].n_types};
        struct rs_events_page page;
        json_t *list = read_page(ev, 1, 0, &f, 100, &page);
        char got[16] = "";
        for (size_t k = 0; k < json_array_size(list) && k < 15; k++)
            got[k] = (char)('0' + index_at(list, k));
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, got, cases[i].want);
        assert_int_equal(page.index, 5); /* not cut: the head */
        json_decref(list);
    }
    /* The last N that match, without an index. */
    const char *types[] = {"task."};
    struct rs_events_filter f = {NULL, types, 1};
    struct rs_events_page page;
    json_t *list = read_page(ev, 0, 0, &f, 2, &page);
    assert_int_equal(json_array_size(list), 2);
    assert_int_equal(index_at(list, 0), 3);
    assert_int_equal(index_at(list, 1), 5);
    json_decref(list);
    /* A limit on the matching ones only: resume after the last given. */
    list = read_page(ev, 1, 0, &f, 2, &page);
    assert_int_equal(json_array_size(list), 2);
    assert_int_equal(page.index, 3);
    json_decref(list);
    rs_events_free(ev);
}

static void test_wrap_and_lost_marker(void **state)
{
    (void)state;
    struct rs_events *ev = rs_events_new(5, 0);
    for (int i = 0; i < 12; i++)
        push(ev, i % 2 ? "{'type': 'task.state', 'service': 'web'}" : "{'type': 'node.up'}");
    assert_int_equal(rs_events_count(ev), 5);
    assert_int_equal(rs_events_floor(ev), 7);
    assert_int_equal(rs_events_head(ev), 12);
    struct rs_events_page page;
    json_t *list = read_page(ev, 1, 3, NULL, 100, &page);
    assert_int_equal(json_array_size(list), 6);
    assert_string_equal(type_at(list, 0), "events.lost");
    assert_int_equal(index_at(list, 0), 7);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "message")),
                        "events after 3 were dropped (the oldest kept is 8): resuming from 8");
    for (size_t i = 1; i < 6; i++)
        assert_int_equal(index_at(list, i), (json_int_t)i + 7);
    assert_true(page.lost);
    assert_int_equal(page.count, 5);
    json_decref(list);
    /* The marker comes whatever the filter, even with nothing after it. */
    const char *types[] = {"rollout."};
    struct rs_events_filter f = {NULL, types, 1};
    list = read_page(ev, 1, 0, &f, 100, &page);
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(type_at(list, 0), "events.lost");
    assert_int_equal(page.index, 12);
    json_decref(list);
    /* From the floor on, nothing was lost. */
    list = read_page(ev, 1, 7, NULL, 2, &page);
    assert_int_equal(json_array_size(list), 2);
    assert_int_equal(index_at(list, 0), 8);
    assert_int_equal(page.index, 9);
    assert_false(page.lost);
    json_decref(list);
    rs_events_free(ev);
}

static void test_byte_cap(void **state)
{
    (void)state;
    struct rs_events *ev = rs_events_new(1000, 4000);
    char big[600];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    for (int i = 0; i < 50; i++) {
        json_t *e = json_pack("{s:s, s:s}", "type", "task.state", "message", big);
        rs_events_push(ev, e);
        assert_true(rs_events_bytes(ev) <= 4000);
    }
    assert_true(rs_events_count(ev) >= 4 && rs_events_count(ev) < 10);
    assert_int_equal(rs_events_head(ev), 50);
    assert_int_equal(rs_events_floor(ev) + rs_events_count(ev), 50);
    /* One event above the cap is still kept, alone. */
    char huge[5000];
    memset(huge, 'b', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    rs_events_push(ev, json_pack("{s:s, s:s}", "type", "task.state", "message", huge));
    assert_int_equal(rs_events_count(ev), 1);
    assert_int_equal(rs_events_floor(ev), 50);
    rs_events_push(ev, json_pack("{s:s}", "type", "node.up"));
    assert_int_equal(rs_events_count(ev), 1);
    assert_int_equal(rs_events_floor(ev), 51);
    rs_events_free(ev);
}

static void test_resume_never_goes_back(void **state)
{
    (void)state;
    struct rs_events *ev = rs_events_new(10, 0);
    push(ev, "{'type': 'a'}");
    push(ev, "{'type': 'a'}");
    push(ev, "{'type': 'a'}");
    rs_events_resume(ev, 2);
    assert_int_equal(rs_events_head(ev), 3);
    assert_int_equal(rs_events_floor(ev), 3);
    assert_int_equal(rs_events_count(ev), 0);
    rs_events_resume(ev, 10);
    assert_int_equal(rs_events_head(ev), 10);
    push(ev, "{'type': 'b'}");
    assert_int_equal(rs_events_head(ev), 11);
    struct rs_events_page page;
    json_t *list = read_page(ev, 1, 5, NULL, 10, &page);
    assert_int_equal(json_array_size(list), 2);
    assert_string_equal(type_at(list, 0), "events.lost");
    assert_int_equal(index_at(list, 1), 11);
    json_decref(list);
    list = read_page(ev, 1, 10, NULL, 10, &page);
    assert_int_equal(json_array_size(list), 1);
    json_decref(list);
    rs_events_free(ev);
}

/* ---- the FSM's hooks ------------------------------------------------ */

static void apply(struct rs_state *s, const char *quoted, uint64_t index, enum api_code want)
{
    json_auto_t *op = parse(quoted);
    struct rs_op_result res = {0};
    rs_state_apply_op(s, op, index, &res);
    if (res.err.code != want)
        fail_msg("%s: code %d (%s), expected %d", quoted, res.err.code, res.err.msg, want);
    free(res.body);
}

static void apply_spec(struct rs_state *s, const char *op_name, const char *quoted, uint64_t index)
{
    json_auto_t *in = parse(quoted);
    json_t *spec = NULL;
    struct api_err err = {0};
    assert_int_equal(api_spec_normalize(in, &spec, &err), 0);
    json_auto_t *op =
        json_pack("{s:s, s:o, s:I}", "op", op_name, "spec", spec, "at", (json_int_t)(index * 1000));
    struct rs_op_result res = {0};
    rs_state_apply_op(s, op, index, &res);
    assert_int_equal(res.err.code, API_OK);
    free(res.body);
}

#define NODE(id, name, role)                                                                       \
    "{'id':'" id "','name':'" name "','role':'" role "','api_address':'127.0.0.1:1',"              \
    "'raft_address':'127.0.0.1:2','labels':{},'resources':{}}"

/* A cluster of m1 and w1, a service web (2 replicas) with a task t1 on w1
 * that runs and turns healthy, an update rolled out, w1 drained and down,
 * the task orphaned, the service deleted. */
static void story(struct rs_state *s)
{
    apply(s,
          "{'op':'cluster.init','cluster':{'id':'c1','admin_token':'a'},'node':" NODE(
              "00000000000000m1", "m1", "manager") ",'credential':'x'}",
          1, API_OK);
    apply(s,
          "{'op':'node.register','at':2000,'node':" NODE("00000000000000w1", "w1",
                                                         "worker") ",'credential':'y'}",
          2, API_OK);
    apply_spec(s, "service.create", "{'name': 'web', 'replicas': 2, 'task': {'command': ['a']}}",
               3);
    apply(s, "{'op':'service.delete','name':'nope'}", 4, API_NOT_FOUND);
    apply(s, "{'op':'service.scale','name':'web','replicas':3}", 5, API_OK);
    apply(s, "{'op':'service.scale','name':'web','replicas':3}", 5, API_OK); /* no change */
    apply(s, "{'op':'service.scale','name':'nope','replicas':3}", 6, API_NOT_FOUND);
    apply(s,
          "{'op':'tasks.plan','at':7000,'create':[{'id':'t1','service':'web','slot':1,"
          "'node':'00000000000000w1','version':1}]}",
          7, API_OK);
    apply(s,
          "{'op':'tasks.report','node':'00000000000000w1','at':8000,'tasks':[{'id':'t1',"
          "'state':'running','message':'pid 5','health':{'status':'starting','failures':0,"
          "'output':''}}]}",
          8, API_OK);
    /* The same again: nothing changed, no event. */
    apply(s,
          "{'op':'tasks.report','node':'00000000000000w1','at':8500,'tasks':[{'id':'t1',"
          "'state':'running','message':'pid 5','health':{'status':'starting','failures':0,"
          "'output':''}}]}",
          9, API_OK);
    apply(s,
          "{'op':'tasks.report','node':'00000000000000w1','at':9000,'tasks':[{'id':'t1',"
          "'state':'running','message':'pid 5','health':{'status':'healthy','failures':0,"
          "'output':'HTTP 200'}}]}",
          10, API_OK);
    apply_spec(s, "service.put", "{'name': 'web', 'replicas': 3, 'task': {'command': ['b']}}", 11);
    apply(s, "{'op':'rollout.update','name':'web','to_version':2,'at':12000,'updated':1}", 12,
          API_OK);
    apply(s,
          "{'op':'rollout.update','name':'web','to_version':2,'at':13000,'state':'completed',"
          "'updated':3,'total':3}",
          13, API_OK);
    apply(s, "{'op':'node.update','id':'00000000000000w1','availability':'drain'}", 14, API_OK);
    apply(s, "{'op':'node.update','id':'00000000000000w1','availability':'drain'}", 15, API_OK);
    apply(s, "{'op':'node.status','id':'00000000000000w1','status':'down'}", 16, API_OK);
    apply(s, "{'op':'node.status','id':'00000000000000w1','status':'down'}", 17, API_OK);
    apply(s, "{'op':'tasks.plan','at':18000,'stop':[{'id':'t1','orphaned':true}]}", 18, API_OK);
    apply(s, "{'op':'service.delete','name':'web'}", 19, API_OK);
}

static void test_hooks(void **state)
{
    (void)state;
    struct rs_state s;
    rs_state_init(&s);
    story(&s);
    static const char *const want[] = {
        "node.joined",  "node.joined", "service.created", "service.scaled",  "task.state",
        "task.health",  "task.health", "service.updated", "rollout.started", "rollout.completed",
        "node.drained", "node.down",   "task.state",      "service.deleted",
    };
    struct rs_events_page page;
    json_auto_t *list = read_page(s.events, 1, 0, NULL, 1000, &page);
    for (size_t i = 0; i < json_array_size(list) && i < ARRAY_SIZE(want); i++)
        if (strcmp(type_at(list, i), want[i]) != 0)
            fail_msg("event %zu: %s, want %s", i, type_at(list, i), want[i]);
    assert_int_equal(json_array_size(list), ARRAY_SIZE(want));
    /* Their fields. */
    json_t *e = json_array_get(list, 1);
    assert_string_equal(json_string_value(json_object_get(e, "node_name")), "w1");
    assert_int_equal(json_integer_value(json_object_get(e, "at")), 2000);
    e = json_array_get(list, 0); /* cluster.init has no "at" */
    assert_int_equal(json_integer_value(json_object_get(e, "at")), 0);
    e = json_array_get(list, 3);
    assert_int_equal(json_integer_value(json_object_get(e, "from")), 2);
    assert_int_equal(json_integer_value(json_object_get(e, "to")), 3);
    e = json_array_get(list, 4);
    assert_string_equal(json_string_value(json_object_get(e, "from")), "assigned");
    assert_string_equal(json_string_value(json_object_get(e, "to")), "running");
    assert_string_equal(json_string_value(json_object_get(e, "message")), "pid 5");
    assert_string_equal(json_string_value(json_object_get(e, "task")), "t1");
    assert_string_equal(json_string_value(json_object_get(e, "service")), "web");
    assert_string_equal(json_string_value(json_object_get(e, "node_name")), "w1");
    assert_int_equal(json_integer_value(json_object_get(e, "slot")), 1);
    assert_true(json_is_null(json_object_get(e, "exit_code")));
    assert_int_equal(json_integer_value(json_object_get(e, "at")), 8000);
    e = json_array_get(list, 5);
    assert_true(json_is_null(json_object_get(e, "from")));
    assert_string_equal(json_string_value(json_object_get(e, "to")), "starting");
    e = json_array_get(list, 6);
    assert_string_equal(json_string_value(json_object_get(e, "from")), "starting");
    assert_string_equal(json_string_value(json_object_get(e, "to")), "healthy");
    assert_string_equal(json_string_value(json_object_get(e, "output")), "HTTP 200");
    e = json_array_get(list, 7);
    assert_int_equal(json_integer_value(json_object_get(e, "version")), 2);
    e = json_array_get(list, 8);
    assert_string_equal(json_string_value(json_object_get(e, "kind")), "update");
    assert_int_equal(json_integer_value(json_object_get(e, "from_version")), 1);
    assert_int_equal(json_integer_value(json_object_get(e, "to_version")), 2);
    assert_int_equal(json_integer_value(json_object_get(e, "at")), 11000);
    e = json_array_get(list, 9);
    assert_int_equal(json_integer_value(json_object_get(e, "updated")), 3);
    assert_int_equal(json_integer_value(json_object_get(e, "at")), 13000);
    e = json_array_get(list, 12);
    assert_string_equal(json_string_value(json_object_get(e, "from")), "running");
    assert_string_equal(json_string_value(json_object_get(e, "to")), "orphaned");
    assert_string_equal(json_string_value(json_object_get(e, "message")),
                        "its node is down or gone");
    rs_state_close(&s);
}

static void test_rollout_pause_resume_rollback(void **state)
{
    (void)state;
    struct rs_state s;
    rs_state_init(&s);
    apply_spec(&s, "service.create", "{'name': 'web', 'replicas': 2, 'task': {'command': ['a']}}",
               1);
    apply_spec(&s, "service.put", "{'name': 'web', 'replicas': 2, 'task': {'command': ['b']}}", 2);
    apply(&s, "{'op':'rollout.pause','name':'web','at':3000}", 3, API_OK);
    apply(&s, "{'op':'rollout.pause','name':'web','at':3000}", 4, API_CONFLICT);
    apply(&s, "{'op':'rollout.resume','name':'web','at':5000}", 5, API_OK);
    apply(&s,
          "{'op':'rollout.update','name':'web','to_version':2,'at':6000,'state':'paused',"
          "'message':'2 of 2 new tasks failed'}",
          6, API_OK);
    apply(&s, "{'op':'service.rollback','name':'web','at':7000,'auto':true}", 7, API_OK);
    apply(&s, "{'op':'rollout.update','name':'web','to_version':3,'at':8000,'state':'rolled_back'}",
          8, API_OK);
    static const char *const want[] = {
        "service.created", "service.updated", "rollout.started", "rollout.paused",
        "rollout.resumed", "rollout.paused",  "rollout.started", "rollout.rolled_back",
    };
    struct rs_events_page page;
    json_auto_t *list = read_page(s.events, 1, 0, NULL, 1000, &page);
    for (size_t i = 0; i < json_array_size(list) && i < ARRAY_SIZE(want); i++)
        if (strcmp(type_at(list, i), want[i]) != 0)
            fail_msg("event %zu: %s, want %s", i, type_at(list, i), want[i]);
    assert_int_equal(json_array_size(list), ARRAY_SIZE(want));
    json_t *e = json_array_get(list, 5);
    assert_string_equal(json_string_value(json_object_get(e, "message")),
                        "2 of 2 new tasks failed");
    e = json_array_get(list, 6);
    assert_string_equal(json_string_value(json_object_get(e, "kind")), "rollback");
    assert_int_equal(json_integer_value(json_object_get(e, "from_version")), 2);
    assert_int_equal(json_integer_value(json_object_get(e, "to_version")), 3);
    rs_state_close(&s);
}

static void test_same_on_every_manager_and_snapshots(void **state)
{
    (void)state;
    struct rs_state a, b;
    rs_state_init(&a);
    rs_state_init(&b);
    story(&a);
    story(&b);
    struct common_buf ta = {0}, tb = {0};
    struct rs_events_page page;
    rs_events_read(a.events, 1, 0, NULL, 1000, &ta, &page);
    rs_events_read(b.events, 1, 0, NULL, 1000, &tb, &page);
    assert_int_equal(ta.len, tb.len);
    assert_memory_equal(ta.data, tb.data, ta.len);
    common_buf_free(&ta);
    common_buf_free(&tb);
    uint64_t head = rs_events_head(a.events);
    /* A snapshot keeps the index, not the events. */
    size_t len;
    char *snap = rs_state_encode(&a, &len);
    struct rs_state c;
    rs_state_init(&c);
    assert_int_equal(rs_state_decode(&c, snap, len), 0);
    assert_int_equal(rs_events_head(c.events), head);
    assert_int_equal(rs_events_count(c.events), 0);
    json_auto_t *list = read_page(c.events, 1, 2, NULL, 1000, &page);
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(type_at(list, 0), "events.lost");
    /* The next event follows on. */
    apply(&c, "{'op':'node.status','id':'00000000000000w1','status':'ready'}", 20, API_OK);
    assert_int_equal(rs_events_head(c.events), head + 1);
    /* Restored again: where the snapshot says, as on every manager. */
    assert_int_equal(rs_state_decode(&c, snap, len), 0);
    assert_int_equal(rs_events_head(c.events), head);
    free(snap);
    /* A snapshot from before events had an index: from 0. */
    struct rs_state d;
    rs_state_init(&d);
    const char *old = "{\"format\":1,\"index\":3,\"services\":[]}";
    assert_int_equal(rs_state_decode(&d, old, strlen(old)), 0);
    assert_int_equal(rs_events_head(d.events), 0);
    rs_state_close(&a);
    rs_state_close(&b);
    rs_state_close(&c);
    rs_state_close(&d);
}

static void test_long_text_is_cut(void **state)
{
    (void)state;
    struct rs_state s;
    rs_state_init(&s);
    apply_spec(&s, "service.create", "{'name': 'web', 'replicas': 1, 'task': {'command': ['a']}}",
               1);
    apply(&s,
          "{'op':'tasks.plan','at':2,'create':[{'id':'t1','service':'web','slot':1,"
          "'node':'n1','version':1}]}",
          2, API_OK);
    /* 300 two-byte characters: cut to at most 256 bytes, never mid-character. */
    struct common_buf msg = {0};
    for (int i = 0; i < 300; i++)
        common_buf_puts(&msg, "\xc3\xa9");
    json_auto_t *op =
        json_pack("{s:s, s:s, s:I, s:[{s:s, s:s, s:s}]}", "op", "tasks.report", "node", "n1", "at",
                  (json_int_t)3, "tasks", "id", "t1", "state", "failed", "message", msg.data);
    common_buf_free(&msg);
    struct rs_op_result res = {0};
    rs_state_apply_op(&s, op, 3, &res);
    assert_int_equal(res.err.code, API_OK);
    free(res.body);
    struct rs_events_page page;
    json_auto_t *list = read_page(s.events, 1, 1, NULL, 10, &page);
    assert_int_equal(json_array_size(list), 1);
    json_t *e = json_array_get(list, 0);
    assert_string_equal(type_at(list, 0), "task.state");
    assert_int_equal(json_string_length(json_object_get(e, "message")), 256);
    assert_true(json_is_null(json_object_get(e, "node_name"))); /* no such node */
    rs_state_close(&s);
}

static void test_names_are_escaped(void **state)
{
    (void)state;
    struct rs_state s;
    rs_state_init(&s);
    /* A restore takes names as they come: the lines stay JSON. */
    json_auto_t *op = json_pack("{s:s, s:[{s:s, s:i, s:{}}]}", "op", "services.restore", "services",
                                "name", "we\"b\\\n", "replicas", 1, "task");
    struct rs_op_result res = {0};
    rs_state_apply_op(&s, op, 1, &res);
    assert_int_equal(res.err.code, API_OK);
    free(res.body);
    json_auto_t *scale =
        json_pack("{s:s, s:s, s:i}", "op", "service.scale", "name", "we\"b\\\n", "replicas", 2);
    rs_state_apply_op(&s, scale, 2, &res);
    assert_int_equal(res.err.code, API_OK);
    free(res.body);
    const struct rs_events_filter f = {"we\"b\\\n", NULL, 0};
    struct rs_events_page page;
    json_auto_t *list = read_page(s.events, 1, 0, &f, 10, &page);
    assert_int_equal(json_array_size(list), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "service")),
                        "we\"b\\\n");
    rs_state_close(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_max_from_env),
        cmocka_unit_test(test_order_and_index),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_wrap_and_lost_marker),
        cmocka_unit_test(test_byte_cap),
        cmocka_unit_test(test_resume_never_goes_back),
        cmocka_unit_test(test_hooks),
        cmocka_unit_test(test_rollout_pause_resume_rollback),
        cmocka_unit_test(test_same_on_every_manager_and_snapshots),
        cmocka_unit_test(test_long_text_is_cut),
        cmocka_unit_test(test_names_are_escaped),
    };
    return cmocka_run_group_tests_name("events", tests, NULL, NULL);
}
