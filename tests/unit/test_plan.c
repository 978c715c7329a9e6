/* Unit tests for api/plan_diff: the field-by-field JSON diff of POST
 * /v1/plan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "api/internal.h"
#include "api/spec.h"
#include "common/util.h"
#include "tests/unit/quoted_json.h"

/* old and new: quoted JSON, NULL for absent; want: the expected list. */
static const struct {
    const char *old;
    const char *new;
    const char *want;
} cases[] = {
    /* Nothing differs. */
    {"{}", "{}", "[]"},
    {"{'a': 1, 'b': [1, {'c': null}]}", "{'b': [1, {'c': null}], 'a': 1}", "[]"},
    {"3", "3", "[]"},
    {NULL, NULL, "[]"},
    /* Scalars by value, at the root and in objects. */
    {"1", "2", "[{'path': '', 'old': 1, 'new': 2}]"},
    {"{'replicas': 2}", "{'replicas': 4}", "[{'path': 'replicas', 'old': 2, 'new': 4}]"},
    {"{'a': 1}", "{'a': 1.0}", "[{'path': 'a', 'old': 1, 'new': 1.0}]"},
    {"{'a': 'x'}", "{'a': null}", "[{'path': 'a', 'old': 'x', 'new': null}]"},
    /* Nested objects by key; added and removed keys; keys in byte order. */
    {"{'task': {'env': {'GREETING': 'hi', 'OLD': 'y'}}}",
     "{'task': {'env': {'GREETING': 'hello', 'NEW': 'x'}}}",
     "[{'path': 'task.env.GREETING', 'old': 'hi', 'new': 'hello'},"
     " {'path': 'task.env.NEW', 'old': null, 'new': 'x'},"
     " {'path': 'task.env.OLD', 'old': 'y', 'new': null}]"},
    {"{'b': 1, 'a': 1}", "{'a': 2, 'B': 2, 'b': 2}",
     "[{'path': 'B', 'old': null, 'new': 2}, {'path': 'a', 'old': 1, 'new': 2},"
     " {'path': 'b', 'old': 1, 'new': 2}]"},
    /* Arrays by index; longer and shorter; objects inside arrays by key. */
    {"{'c': ['a', 'b']}", "{'c': ['a', 'x', 'y']}",
     "[{'path': 'c[1]', 'old': 'b', 'new': 'x'}, {'path': 'c[2]', 'old': null, 'new': 'y'}]"},
    {"{'c': ['a', 'b', 'c']}", "{'c': ['a']}",
     "[{'path': 'c[1]', 'old': 'b', 'new': null}, {'path': 'c[2]', 'old': 'c', 'new': null}]"},
    {"{'c': []}", "{'c': ['a']}", "[{'path': 'c[0]', 'old': null, 'new': 'a'}]"},
    {"{'p': [{'port': 80, 'proto': 'tcp'}]}", "{'p': [{'port': 81, 'proto': 'tcp'}]}",
     "[{'path': 'p[0].port', 'old': 80, 'new': 81}]"},
    {"[[1, 2]]", "[[1, 3]]", "[{'path': '[0][1]', 'old': 2, 'new': 3}]"},
    /* An item added or removed whole, objects too. */
    {"{'p': []}", "{'p': [{'port': 80}]}", "[{'path': 'p[0]', 'old': null, 'new': {'port': 80}}]"},
    /* Another type: the values whole. */
    {"{'a': {'b': 1}}", "{'a': [1]}", "[{'path': 'a', 'old': {'b': 1}, 'new': [1]}]"},
    {"{'a': [1]}", "{'a': 'x'}", "[{'path': 'a', 'old': [1], 'new': 'x'}]"},
    {"{'a': {'b': 1}}", "{'a': null}", "[{'path': 'a', 'old': {'b': 1}, 'new': null}]"},
    /* An object on one side only: field by field, an empty one whole. */
    {"{}", "{'health': {'type': 'tcp', 'port': 80}}",
     "[{'path': 'health.port', 'old': null, 'new': 80},"
     " {'path': 'health.type', 'old': null, 'new': 'tcp'}]"},
    {"{'labels': {'a': 'b'}}", "{}", "[{'path': 'labels.a', 'old': 'b', 'new': null}]"},
    {"{}", "{'labels': {}}", "[{'path': 'labels', 'old': null, 'new': {}}]"},
    {"{'labels': {}}", "{}", "[{'path': 'labels', 'old': {}, 'new': null}]"},
    {"{}", "{'cmd': ['a', 'b']}", "[{'path': 'cmd', 'old': null, 'new': ['a', 'b']}]"},
    /* Absent at the root: a new service, listed field by field. */
    {NULL, "{'name': 'web', 'task': {'env': {'A': '1'}}}",
     "[{'path': 'name', 'old': null, 'new': 'web'},"
     " {'path': 'task.env.A', 'old': null, 'new': '1'}]"},
    {"{'name': 'web'}", NULL, "[{'path': 'name', 'old': 'web', 'new': null}]"},
    {NULL, "{}", "[{'path': '', 'old': null, 'new': {}}]"},
    {NULL, "[1]", "[{'path': '', 'old': null, 'new': [1]}]"},
};

static void test_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        json_t *old = parse(cases[i].old), *new = parse(cases[i].new);
        json_t *want = parse(cases[i].want);
        json_t *got = api__plan_diff(old, new);
        if (!json_equal(got, want)) {
            _cleanup_free_ char *text = json_dumps(got, JSON_COMPACT);
            fail_msg("case %zu: %s -> %s: got %s, want %s", i, cases[i].old, cases[i].new, text,
                     cases[i].want);
        }
        json_decref(old);
        json_decref(new);
        json_decref(want);
        json_decref(got);
    }
}

/* The inputs are left as they were. */
static void test_inputs_unchanged(void **state)
{
    (void)state;
    json_t *old = parse("{'a': [1, {'b': 2}], 'c': {}}");
    json_t *new = parse("{'a': [1, {'b': 3}, 4], 'd': {'e': null}}");
    json_t *old_copy = json_deep_copy(old), *new_copy = json_deep_copy(new);
    json_t *got = api__plan_diff(old, new);
    assert_int_equal(json_array_size(got), 4);
    assert_true(json_equal(old, old_copy));
    assert_true(json_equal(new, new_copy));
    json_decref(got);
    json_decref(old);
    json_decref(new);
    json_decref(old_copy);
    json_decref(new_copy);
}

static json_t *normalized(const char *quoted)
{
    json_t *in = parse(quoted), *out = NULL;
    struct api_err err = {0};
    if (api_spec_normalize(in, &out, &err) != 0)
        fail_msg("%s refused: %s: %s", quoted, err.field, err.msg);
    json_decref(in);
    return out;
}

/* Over canonical forms, the defaults and spellings a user left out or
 * wrote differently are no change; a real change is one line. */
static void test_canonical_specs(void **state)
{
    (void)state;
    json_t *a = normalized("{'name': 'web', 'task': {'command': ['/bin/sleep', '100'],"
                           " 'env': {'GREETING': 'hi'}}}");
    json_t *b = normalized("{'name': 'web', 'replicas': 1, 'task': {'command': ['/bin/sleep',"
                           " '100'], 'env': ['GREETING=hi']}}");
    json_t *c = normalized("{'name': 'web', 'replicas': 3, 'task': {'command': ['/bin/sleep',"
                           " '100'], 'env': {'GREETING': 'hello'}}}");
    json_t *none = api__plan_diff(a, b);
    if (json_array_size(none) != 0) {
        _cleanup_free_ char *text = json_dumps(none, JSON_COMPACT);
        fail_msg("equal specs differ: %s", text);
    }
    json_t *got = api__plan_diff(a, c);
    json_t *want = parse("[{'path': 'replicas', 'old': 1, 'new': 3},"
                         " {'path': 'task.env.GREETING', 'old': 'hi', 'new': 'hello'}]");
    if (!json_equal(got, want)) {
        _cleanup_free_ char *text = json_dumps(got, JSON_COMPACT);
        fail_msg("got %s", text);
    }
    /* A new service: every field of the canonical spec, each a leaf. */
    json_t *created = api__plan_diff(NULL, a);
    size_t i;
    json_t *d;
    json_array_foreach(created, i, d)
    {
        const json_t *nv = json_object_get(d, "new");
        assert_true(json_is_null(json_object_get(d, "old")));
        assert_false(json_is_object(nv) && json_object_size(nv) > 0);
    }
    assert_true(json_array_size(created) > 5);
    json_decref(created);
    json_decref(none);
    json_decref(got);
    json_decref(want);
    json_decref(a);
    json_decref(b);
    json_decref(c);
}

/* Deep documents (a request body's nesting is bounded, but the helper
 * itself should cope with more) and long arrays. */
static void test_deep_and_long(void **state)
{
    (void)state;
    json_t *old = json_integer(1), *new = json_integer(2);
    for (int i = 0; i < 200; i++) {
        old = json_pack("{s:o}", "k", old);
        new = json_pack("{s:o}", "k", new);
    }
    json_t *got = api__plan_diff(old, new);
    assert_int_equal(json_array_size(got), 1);
    const char *path = json_string_value(json_object_get(json_array_get(got, 0), "path"));
    assert_int_equal(strlen(path), 200 * 2 - 1);
    json_decref(got);
    json_decref(old);
    json_decref(new);
    json_t *a = json_array(), *b = json_array();
    for (int i = 0; i < 1000; i++) {
        json_array_append_new(a, json_integer(i));
        json_array_append_new(b, json_integer(i % 10 ? i : -i));
    }
    got = api__plan_diff(a, b);
    assert_int_equal(json_array_size(got), 99); /* 10, 20, ... 990: not 0 */
    assert_string_equal(json_string_value(json_object_get(json_array_get(got, 98), "path")),
                        "[990]");
    json_decref(got);
    json_decref(a);
    json_decref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_inputs_unchanged),
        cmocka_unit_test(test_canonical_specs),
        cmocka_unit_test(test_deep_and_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
