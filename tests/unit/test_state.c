/* Unit tests for raft/state: operations on services, their bookkeeping
 * indexes, the cached list body, and snapshots (encode/decode). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/spec.h"
#include "common/util.h"
#include "tests/unit/quoted_json.h"
#include "raft/state.h"

#define NO_CAS INT64_MIN

/* A canonical spec named name with the extra fields extra ("'mode':
 * 'global'", NULL for none), as the API hands it to the store. */
static json_t *spec_new(const char *name, const char *extra)
{
    char text[512];
    bool own_task = extra && strstr(extra, "'task'");
    snprintf(text, sizeof(text), "{'name': '%s'%s%s%s}", name,
             own_task ? "" : ", 'task': {'command': ['x']}", extra ? ", " : "", extra ? extra : "");
    json_auto_t *in = parse(text);
    json_t *out = NULL;
    struct api_err err = {0};
    if (api_spec_normalize(in, &out, &err) < 0)
        fail_msg("%s refused: %s: %s", text, err.field, err.msg);
    return out;
}

static char *encode(const struct rs_state *s)
{
    size_t len;
    char *text = rs_state_encode(s, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

/* The encoding enc ({"format":1,"index":N,"services_index":...) with N
 * replaced by index: what a refused operation at a later index leaves. */
static char *encode_with_index(const char *enc, uint64_t index)
{
    const char *rest = strstr(enc, ",\"services_index\":");
    assert_non_null(rest);
    char *text = NULL;
    assert_true(asprintf(&text, "{\"format\":1,\"index\":%" PRIu64 "%s", index, rest) > 0);
    return text;
}

static void create(struct rs_state *s, const char *name, const char *extra, uint64_t index)
{
    json_auto_t *op =
        json_pack("{s:s, s:o}", "op", "service.create", "spec", spec_new(name, extra));
    struct rs_op_result res;
    rs_state_apply_op(s, op, index, &res);
    if (res.err.code != API_OK)
        fail_msg("create %s: %s: %s", name, res.err.field, res.err.msg);
    free(res.body);
}

/* ---- Operations, one table applied in order to one state ---- */

struct step {
    const char *kind;  /* "service.create" ...; NULL: raw is the whole op */
    const char *name;  /* the spec's name (create, put) or the op's (delete, scale) */
    const char *extra; /* create, put: extra spec fields; scale: the replicas JSON */
    int64_t cas;       /* NO_CAS: no "cas" in the op */
    const char *raw;
    uint64_t index;
    enum api_code code;
    const char *field; /* err.field */
    const char *msg;   /* err.msg; NULL: not checked */
    /* On success (modify_index is always index) */
    int created;
    uint64_t version, create_index;
    int64_t replicas; /* -1: not checked */
};

#define APPLIED(c, v, ci, r)                                                                       \
    .code = API_OK, .field = "", .created = c, .version = v, .create_index = ci, .replicas = r
#define REFUSED(c, f, m) .code = c, .field = f, .msg = m

/* clang-format off */
static const struct step steps[] = {
    {"service.create", "web", NULL, NO_CAS, NULL, 10, APPLIED(1, 1, 10, 1)},
    {"service.create", "web", "'replicas': 3", NO_CAS, NULL, 11,
     REFUSED(API_CONFLICT, "name", "service \"web\" already exists")},
    {"service.put", "web", "'replicas': 2", NO_CAS, NULL, 12, APPLIED(0, 1, 10, 2)},
    {"service.put", "web", NULL, 10, NULL, 13,
     REFUSED(API_CONFLICT, "index", "stale index 10: the service's modify_index is 12")},
    {"service.put", "web", NULL, 0, NULL, 13,
     REFUSED(API_CONFLICT, "index", "stale index 0: the service's modify_index is 12")},
    {"service.put", "web", "'replicas': 4", 12, NULL, 14, APPLIED(0, 1, 10, 4)},
    /* cas 0 on an absent service is a create; any other cas a conflict. */
    {"service.put", "api", NULL, 0, NULL, 15, APPLIED(1, 1, 15, 1)},
    {"service.put", "db", NULL, 5, NULL, 16,
     REFUSED(API_CONFLICT, "index", "stale index 5: the service's modify_index is 0")},
    {"service.put", "db", NULL, NO_CAS, NULL, 17, APPLIED(1, 1, 17, 1)},
    {"service.create", "db2", NULL, 0, NULL, 18, APPLIED(1, 1, 18, 1)},
    {"service.create", "db2", NULL, 18, NULL, 19, REFUSED(API_CONFLICT, "name", NULL)},
    /* scale */
    {"service.scale", "web", "5", NO_CAS, NULL, 20, APPLIED(0, 1, 10, 5)},
    {"service.scale", "web", "0", NO_CAS, NULL, 21, APPLIED(0, 1, 10, 0)},
    {"service.scale", "web", "-1", NO_CAS, NULL, 22,
     REFUSED(API_BAD_REQUEST, "replicas", "must be an integer >= 0")},
    {"service.scale", "web", "'3'", NO_CAS, NULL, 22, REFUSED(API_BAD_REQUEST, "replicas", NULL)},
    {"service.scale", "web", "3.0", NO_CAS, NULL, 22, REFUSED(API_BAD_REQUEST, "replicas", NULL)},
    {"service.scale", "web", "null", NO_CAS, NULL, 22, REFUSED(API_BAD_REQUEST, "replicas", NULL)},
    {"service.scale", "web", NULL, NO_CAS, NULL, 22, REFUSED(API_BAD_REQUEST, "replicas", NULL)},
    {"service.scale", "web", "2", 20, NULL, 22,
     REFUSED(API_CONFLICT, "index", "stale index 20: the service's modify_index is 21")},
    {"service.scale", "web", "2", 21, NULL, 22, APPLIED(0, 1, 10, 2)},
    {"service.scale", "nope", "2", NO_CAS, NULL, 23,
     REFUSED(API_NOT_FOUND, "name", "no service \"nope\"")},
    {"service.create", "glob", "'mode': 'global'", NO_CAS, NULL, 24, APPLIED(1, 1, 24, 0)},
    {"service.scale", "glob", "3", NO_CAS, NULL, 25,
     REFUSED(API_BAD_REQUEST, "replicas", "service \"glob\" is global: it cannot be scaled")},
    {"service.scale", "glob", "0", NO_CAS, NULL, 25, REFUSED(API_BAD_REQUEST, "replicas", NULL)},
    {"service.put", "glob", "'mode': 'global'", NO_CAS, NULL, 26, APPLIED(0, 1, 24, 0)},
    /* delete */
    {"service.delete", "nope", NULL, NO_CAS, NULL, 27,
     REFUSED(API_NOT_FOUND, "name", "no service \"nope\"")},
    {"service.delete", "api", NULL, 14, NULL, 27,
     REFUSED(API_CONFLICT, "index", "stale index 14: the service's modify_index is 15")},
    {"service.delete", "api", NULL, 0, NULL, 27, REFUSED(API_CONFLICT, "index", NULL)},
    {"service.delete", "api", NULL, 15, NULL, 28, APPLIED(0, 0, 0, -1)},
    {"service.delete", "api", NULL, NO_CAS, NULL, 29, REFUSED(API_NOT_FOUND, "name", NULL)},
    {"service.delete", "db", NULL, NO_CAS, NULL, 30, APPLIED(0, 0, 0, -1)},
    /* A service created again starts over. */
    {"service.create", "db", NULL, NO_CAS, NULL, 31, APPLIED(1, 1, 31, 1)},
    /* Only a new task template is a new version. */
    {"service.put", "db", "'task': {'command': ['y']}", NO_CAS, NULL, 32, APPLIED(0, 2, 31, 1)},
    /* Malformed commands */
    {NULL, NULL, NULL, NO_CAS, "{}", 32, REFUSED(API_BAD_REQUEST, "op", "malformed command: no op")},
    {NULL, NULL, NULL, NO_CAS, "{'op': 5, 'name': 'web'}", 32, REFUSED(API_BAD_REQUEST, "op", NULL)},
    {NULL, NULL, NULL, NO_CAS, "{'op': 'service.frob', 'name': 'web'}", 32,
     REFUSED(API_BAD_REQUEST, "op", "malformed command: unknown op \"service.frob\"")},
    {NULL, NULL, NULL, NO_CAS, "{'op': 'service.create'}", 32,
     REFUSED(API_BAD_REQUEST, "spec", "malformed command: spec without a name")},
    {NULL, NULL, NULL, NO_CAS, "{'op': 'service.put', 'spec': {'replicas': 3}}", 32,
     REFUSED(API_BAD_REQUEST, "spec", NULL)},
    {NULL, NULL, NULL, NO_CAS, "{'op': 'service.put', 'spec': {'name': 7}}", 32,
     REFUSED(API_BAD_REQUEST, "spec", NULL)},
    {NULL, NULL, NULL, NO_CAS, "{'op': 'service.put', 'spec': 'web'}", 32,
     REFUSED(API_BAD_REQUEST, "spec", NULL)},
    {NULL, NULL, NULL, NO_CAS, "{'op': 'service.delete'}", 32,
     REFUSED(API_NOT_FOUND, "name", "no service \"\"")},
    {NULL, NULL, NULL, NO_CAS, "{'op': 'service.delete', 'name': 3}", 32,
     REFUSED(API_NOT_FOUND, "name", NULL)},
    {NULL, NULL, NULL, NO_CAS, "{'op': 'service.scale', 'replicas': 3}", 32,
     REFUSED(API_NOT_FOUND, "name", NULL)},
    {NULL, NULL, NULL, NO_CAS, "[]", 32, REFUSED(API_BAD_REQUEST, "op", NULL)},
    /* An index at or below the last one leaves s->index alone. */
    {NULL, NULL, NULL, NO_CAS, "{}", 5, REFUSED(API_BAD_REQUEST, "op", NULL)},
};
/* clang-format on */

static json_t *step_op(const struct step *st)
{
    if (!st->kind)
        return parse(st->raw);
    json_t *op = json_pack("{s:s}", "op", st->kind);
    if (strcmp(st->kind, "service.create") == 0 || strcmp(st->kind, "service.put") == 0) {
        json_object_set_new(op, "spec", spec_new(st->name, st->extra));
    } else {
        json_object_set_new(op, "name", json_string(st->name));
        if (st->extra)
            json_object_set_new(op, "replicas", parse(st->extra));
    }
    if (st->cas != NO_CAS)
        json_object_set_new(op, "cas", json_integer(st->cas));
    return op;
}

static int64_t body_int(const json_t *body, const char *key)
{
    const json_t *v = json_object_get(body, key);
    if (!json_is_integer(v))
        fail_msg("body has no integer %s", key);
    return json_integer_value(v);
}

/* What a successful operation answers and leaves. */
static void check_applied(struct rs_state *s, const struct step *st, const struct rs_op_result *res)
{
    assert_non_null(res->body);
    assert_int_equal(strlen(res->body), res->body_len);
    assert_int_equal(res->created, st->created);
    assert_int_equal(s->services_index, st->index);
    const struct rs_service *svc = rs_state_service(s, st->name);
    if (strcmp(st->kind, "service.delete") == 0) {
        char want[128];
        snprintf(want, sizeof(want), "{\"deleted\":\"%s\",\"index\":%" PRIu64 "}", st->name,
                 st->index);
        assert_string_equal(res->body, want);
        assert_null(svc);
        return;
    }
    assert_non_null(svc);
    assert_string_equal(svc->name, st->name);
    assert_int_equal(svc->version, st->version);
    assert_int_equal(svc->create_index, st->create_index);
    assert_int_equal(svc->modify_index, st->index);
    assert_int_equal(svc->body_len, res->body_len);
    assert_memory_equal(svc->body, res->body, res->body_len);

    json_auto_t *body = parse(res->body);
    assert_int_equal(body_int(body, "version"), st->version);
    assert_int_equal(body_int(body, "create_index"), st->create_index);
    assert_int_equal(body_int(body, "modify_index"), st->index);
    if (st->replicas >= 0)
        assert_int_equal(body_int(body, "replicas"), st->replicas);
    json_auto_t *parsed = rs_service_json(svc);
    assert_true(json_equal(parsed, body));
    /* The rest of the body is the spec as given. */
    json_object_del(body, "version");
    json_object_del(body, "create_index");
    json_object_del(body, "modify_index");
    json_object_del(body, "rollout");
    json_object_del(body, "stable_spec");
    json_object_del(body, "previous_spec");
    if (strcmp(st->kind, "service.scale") != 0) {
        json_auto_t *spec = spec_new(st->name, st->extra);
        assert_true(json_equal(body, spec));
    }
}

/* What a refused operation answers and leaves: nothing changes but
 * s->index, which follows the entry that carried the operation. */
static void check_refused(struct rs_state *s, const struct step *st, const char *before,
                          uint64_t services_index, const char *list, const struct rs_op_result *res)
{
    assert_null(res->body);
    assert_int_equal(res->created, 0);
    if (st->msg)
        assert_string_equal(res->err.msg, st->msg);
    assert_int_equal(s->services_index, services_index);
    _cleanup_free_ char *want = encode_with_index(before, s->index);
    _cleanup_free_ char *after = encode(s);
    assert_string_equal(after, want);
    size_t len;
    assert_ptr_equal(rs_state_services_body(s, &len), list); /* the cache was kept */
}

static void test_ops(void **state)
{
    (void)state;
    struct rs_state s, follower;
    rs_state_init(&s);
    rs_state_init(&follower);
    for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
        const struct step *st = &steps[i];
        _cleanup_free_ char *before = encode(&s);
        uint64_t services_index = s.services_index, index = s.index;
        size_t len;
        const char *list = rs_state_services_body(&s, &len);
        json_auto_t *op = step_op(st);
        json_auto_t *op_copy = json_deep_copy(op);
        struct rs_op_result res;
        memset(&res, 0xa5, sizeof(res)); /* filled whatever it held */

        rs_state_apply_op(&s, op, st->index, &res);
        assert_int_equal(res.index, st->index);
        assert_int_equal(s.index, st->index > index ? st->index : index);
        if (st->code != API_OK && st->index <= index) {
            _cleanup_free_ char *after = encode(&s);
            assert_string_equal(after, before); /* byte for byte */
        }
        if (res.err.code != st->code || strcmp(res.err.field, st->field) != 0)
            fail_msg("step %zu: code %d field \"%s\" (%s), expected code %d field \"%s\"", i,
                     res.err.code, res.err.field, res.err.msg, st->code, st->field);
        if (st->code == API_OK)
            check_applied(&s, st, &res);
        else
            check_refused(&s, st, before, services_index, list, &res);
        free(res.body);

        /* A follower applies the same command without a result and ends up
         * in the same state. */
        rs_state_apply_op(&follower, op_copy, st->index, NULL);
        _cleanup_free_ char *a = encode(&s);
        _cleanup_free_ char *b = encode(&follower);
        assert_string_equal(a, b);
    }
    rs_state_close(&s);
    rs_state_close(&follower);
}

/* A refused operation at the state's own index leaves its encoding as it
 * was, byte for byte. */
static void test_refused_same_index(void **state)
{
    (void)state;
    static const char *const ops[] = {
        "{'op': 'service.create', 'spec': {'name': 'a'}}",
        "{'op': 'service.put', 'spec': {'name': 'b'}, 'cas': 1}",
        "{'op': 'service.put', 'spec': {'name': 'a'}, 'cas': 0}",
        "{'op': 'service.delete', 'name': 'a', 'cas': 2}",
        "{'op': 'service.delete', 'name': 'c'}",
        "{'op': 'service.scale', 'name': 'a', 'replicas': -5}",
        "{'op': 'service.scale', 'name': 'g', 'replicas': 1}",
        "{'op': 'service.scale', 'name': 'a', 'replicas': 1, 'cas': 2}",
        "{'op': 'nope'}",
        "{'spec': {'name': 'z'}}",
    };
    struct rs_state s;
    rs_state_init(&s);
    create(&s, "a", NULL, 1);
    create(&s, "g", "'mode': 'global'", 2);
    for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
        for (int with_res = 0; with_res <= 1; with_res++) {
            _cleanup_free_ char *before = encode(&s);
            json_auto_t *op = parse(ops[i]);
            struct rs_op_result res;
            rs_state_apply_op(&s, op, 2, with_res ? &res : NULL);
            if (with_res) {
                assert_int_not_equal(res.err.code, API_OK);
                assert_null(res.body);
            }
            _cleanup_free_ char *after = encode(&s);
            if (strcmp(before, after) != 0)
                fail_msg("%s changed the state:\n%s\n%s", ops[i], before, after);
        }
    }
    rs_state_close(&s);
}

/* ---- The list body and services_index ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Checks that the list body holds every service's body, sorted by name. */
static void check_list(struct rs_state *s)
{
    size_t len;
    const char *list = rs_state_services_body(s, &len);
    assert_int_equal(strlen(list), len);
    json_auto_t *arr = parse(list);
    assert_true(json_is_array(arr));
    assert_int_equal(json_array_size(arr), s->n_services);
    const char *prev = NULL;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *e = json_array_get(arr, i);
        const char *name = json_string_value(json_object_get(e, "name"));
        assert_non_null(name);
        if (prev && strcmp(prev, name) >= 0)
            fail_msg("list not sorted: \"%s\" before \"%s\"", prev, name);
        prev = name;
        const struct rs_service *svc = rs_state_service(s, name);
        assert_non_null(svc);
        json_auto_t *want = rs_service_json(svc);
        assert_true(json_equal(e, want));
    }
}

static void test_list_sorted(void **state)
{
    (void)state;
    static const char *const tricky[] = {"b", "a", "a-b", "a0", "0a", "z", "a-a", "9", "ab"};
    const char *names[200 + ARRAY_SIZE(tricky)];
    char storage[200][16];
    size_t n = 0;
    for (size_t i = 0; i < ARRAY_SIZE(tricky); i++)
        names[n++] = tricky[i];
    for (size_t i = 0; i < 200; i++) {
        snprintf(storage[i], sizeof(storage[i]), "svc-%03zu", (i * 137) % 200);
        names[n++] = storage[i];
    }
    struct rs_state s;
    rs_state_init(&s);
    size_t len;
    assert_string_equal(rs_state_services_body(&s, &len), "[]");
    assert_int_equal(len, 2);
    for (size_t i = 0; i < n; i++) {
        create(&s, names[i], NULL, 100 + i);
        assert_int_equal(s.services_index, 100 + i);
        if (i % 50 == 0 || i < ARRAY_SIZE(tricky))
            check_list(&s);
    }
    check_list(&s);
    qsort(names, n, sizeof(names[0]), cmp_str);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(s.services[i]->name, names[i]);
    for (size_t i = 0; i < n; i++)
        assert_non_null(rs_state_service(&s, names[i]));
    assert_null(rs_state_service(&s, "svc-200"));
    assert_null(rs_state_service(&s, ""));

    /* Deleting every other one keeps the order. */
    for (size_t i = 0; i < n; i += 2) {
        json_auto_t *op = json_pack("{s:s, s:s}", "op", "service.delete", "name", names[i]);
        rs_state_apply_op(&s, op, 1000 + i, NULL);
        assert_null(rs_state_service(&s, names[i]));
    }
    assert_int_equal(s.n_services, n / 2);
    check_list(&s);
    rs_state_close(&s);
}

static void test_list_cache(void **state)
{
    (void)state;
    struct rs_state s;
    rs_state_init(&s);
    create(&s, "web", NULL, 3);
    size_t len, len2;
    const char *list = rs_state_services_body(&s, &len);
    _cleanup_free_ char *first = xstrdup(list);
    /* Read twice: the same cached text. */
    assert_ptr_equal(rs_state_services_body(&s, &len2), list);
    assert_int_equal(len2, len);

    /* Refused operations keep the cache and services_index; the entry's
     * index still moves s->index. */
    static const char *const refused[] = {
        "{'op': 'service.delete', 'name': 'nope'}",
        "{'op': 'service.scale', 'name': 'web', 'replicas': -1}",
        "{'op': 'service.put', 'spec': {'name': 'web'}, 'cas': 99}",
        "{'op': 'bogus'}",
    };
    for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
        json_auto_t *op = parse(refused[i]);
        rs_state_apply_op(&s, op, 4 + i, NULL);
        assert_ptr_equal(rs_state_services_body(&s, &len2), list);
        assert_int_equal(s.services_index, 3);
        assert_int_equal(s.index, 4 + i);
    }

    /* Every change drops it. */
    json_auto_t *scale = parse("{'op': 'service.scale', 'name': 'web', 'replicas': 7}");
    rs_state_apply_op(&s, scale, 10, NULL);
    assert_int_equal(s.services_index, 10);
    list = rs_state_services_body(&s, &len);
    assert_string_not_equal(list, first);
    assert_non_null(strstr(list, "\"replicas\":7"));
    check_list(&s);

    create(&s, "api", NULL, 11);
    assert_int_equal(s.services_index, 11);
    check_list(&s);
    list = rs_state_services_body(&s, &len);
    assert_true(strncmp(list, "[{\"name\":\"api\"", 14) == 0);

    json_auto_t *put = json_pack("{s:s, s:o}", "op", "service.put", "spec",
                                 spec_new("api", "'labels': {'k': 'v'}"));
    rs_state_apply_op(&s, put, 12, NULL);
    assert_int_equal(s.services_index, 12);
    list = rs_state_services_body(&s, &len);
    assert_non_null(strstr(list, "\"labels\":{\"k\":\"v\"}"));
    check_list(&s);

    json_auto_t *del = parse("{'op': 'service.delete', 'name': 'web'}");
    rs_state_apply_op(&s, del, 13, NULL);
    assert_int_equal(s.services_index, 13);
    list = rs_state_services_body(&s, &len);
    assert_null(strstr(list, "\"web\""));
    check_list(&s);

    rs_state_apply_op(&s, del, 14, NULL);
    assert_ptr_equal(rs_state_services_body(&s, &len2), list);
    assert_int_equal(s.services_index, 13);
    rs_state_close(&s);
}

/* ---- Snapshots ---- */

/* A state with some history: puts, scales, a delete. */
static void build_history(struct rs_state *s)
{
    static const char *const ops[] = {
        "{'op': 'service.scale', 'name': 'web', 'replicas': 4}",
        "{'op': 'service.delete', 'name': 'old'}",
        "{'op': 'service.scale', 'name': 'api', 'replicas': 0}",
        "{'op': 'unknown'}",
    };
    create(s, "web", "'task': {'command': ['x'], 'env': {'A': 'é \\\" /'}}", 5);
    create(s, "old", NULL, 6);
    create(s, "api", "'task': {'command': ['y'], 'resources': {'limits': {'cpu': 0.1}}}", 7);
    create(s, "glob", "'mode': 'global', 'labels': {'z': '1', 'a': '2'}", 8);
    json_auto_t *put =
        json_pack("{s:s, s:o, s:I}", "op", "service.put", "spec", spec_new("web", NULL), "cas", 5);
    rs_state_apply_op(s, put, 9, NULL);
    for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
        json_auto_t *op = parse(ops[i]);
        rs_state_apply_op(s, op, 10 + i, NULL);
    }
}

static void assert_states_equal(struct rs_state *a, struct rs_state *b)
{
    assert_int_equal(a->index, b->index);
    assert_int_equal(a->services_index, b->services_index);
    assert_int_equal(a->n_services, b->n_services);
    for (size_t i = 0; i < a->n_services; i++) {
        const struct rs_service *x = a->services[i], *y = b->services[i];
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->version, y->version);
        assert_int_equal(x->create_index, y->create_index);
        assert_int_equal(x->modify_index, y->modify_index);
        assert_int_equal(x->body_len, y->body_len);
        assert_memory_equal(x->body, y->body, x->body_len);
    }
    size_t la, lb;
    const char *sa = rs_state_services_body(a, &la);
    const char *sb = rs_state_services_body(b, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(sa, sb, la);
    _cleanup_free_ char *ea = encode(a);
    _cleanup_free_ char *eb = encode(b);
    assert_string_equal(ea, eb);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct rs_state s, t;
    rs_state_init(&s);
    rs_state_init(&t);
    build_history(&s);
    assert_int_equal(s.index, 13);
    assert_int_equal(s.services_index, 12);
    assert_int_equal(s.n_services, 3);

    _cleanup_free_ char *enc = encode(&s);
    /* Into a state that holds something else: replaced. */
    create(&t, "other", NULL, 99);
    assert_int_equal(rs_state_decode(&t, enc, strlen(enc)), 0);
    assert_null(rs_state_service(&t, "other"));
    assert_states_equal(&s, &t);

    /* Both go on the same way. */
    json_auto_t *op = parse("{'op': 'service.scale', 'name': 'api', 'replicas': 2, 'cas': 12}");
    struct rs_op_result ra, rb;
    rs_state_apply_op(&s, op, 20, &ra);
    rs_state_apply_op(&t, op, 20, &rb);
    assert_int_equal(ra.err.code, API_OK);
    assert_int_equal(rb.err.code, API_OK);
    assert_string_equal(ra.body, rb.body);
    free(ra.body);
    free(rb.body);
    assert_states_equal(&s, &t);

    /* The empty state too. */
    struct rs_state e;
    rs_state_init(&e);
    _cleanup_free_ char *empty = encode(&e);
    assert_int_equal(rs_state_decode(&t, empty, strlen(empty)), 0);
    assert_states_equal(&e, &t);
    assert_int_equal(t.n_services, 0);

    /* Only len bytes are read. */
    _cleanup_free_ char *padded = NULL;
    assert_true(asprintf(&padded, "%sGARBAGE", enc) > 0);
    assert_int_equal(rs_state_decode(&t, padded, strlen(enc)), 0);
    _cleanup_free_ char *again = encode(&t);
    assert_string_equal(again, enc);

    rs_state_close(&e);
    rs_state_close(&s);
    rs_state_close(&t);
}

static void test_decode_order(void **state)
{
    (void)state;
    /* Services out of order in a snapshot are sorted; missing bookkeeping
     * reads as 0. */
    static const char snap[] = "{'format': 1, 'index': 9, 'services_index': 8, 'services': ["
                               "{'name': 'b', 'version': 2, 'create_index': 3, 'modify_index': 8},"
                               "{'name': 'a'}]}";
    json_auto_t *j = parse(snap);
    _cleanup_free_ char *text = json_dumps(j, JSON_COMPACT);
    struct rs_state s;
    rs_state_init(&s);
    assert_int_equal(rs_state_decode(&s, text, strlen(text)), 0);
    assert_int_equal(s.index, 9);
    assert_int_equal(s.services_index, 8);
    assert_int_equal(s.n_services, 2);
    assert_string_equal(s.services[0]->name, "a");
    assert_int_equal(s.services[0]->version, 0);
    assert_string_equal(s.services[1]->name, "b");
    assert_int_equal(s.services[1]->version, 2);
    assert_int_equal(s.services[1]->create_index, 3);
    assert_int_equal(s.services[1]->modify_index, 8);
    check_list(&s);
    rs_state_close(&s);
}

static void test_decode_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "not json",
        "null",
        "[]",
        "{}",
        "{'format': 1}",
        "{'format': 1, 'services': {}}",
        "{'format': 1, 'services': null}",
        "{'format': 2, 'services': []}",
        "{'format': 0, 'services': []}",
        "{'format': '1', 'services': []}",
        "{'format': 1.0, 'services': []}",
        "{'index': 3, 'services': []}",
        "{'format': 1, 'services': [5]}",
        "{'format': 1, 'services': [{}]}",
        "{'format': 1, 'services': [{'name': 7}]}",
        "{'format': 1, 'services': [{'name': 'a'}, {'name': 'a'}]}",
        "{'format': 1, 'services': [{'name': 'a'}, {'name': 'b'}, {'name': 'a'}]}",
        "{'format': 1, 'services': []} trailing",
        "{'format': 1, 'services': [",
    };
    struct rs_state s;
    rs_state_init(&s);
    build_history(&s);
    _cleanup_free_ char *before = encode(&s);
    size_t len;
    const char *list = rs_state_services_body(&s, &len);
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        _cleanup_free_ char *text = xstrdup(bad[i]);
        for (char *p = text; *p; p++)
            if (*p == '\'')
                *p = '"';
        int rv = rs_state_decode(&s, text, strlen(text));
        if (rv != -EINVAL)
            fail_msg("%s: %d, expected -EINVAL", bad[i], rv);
        _cleanup_free_ char *after = encode(&s);
        assert_string_equal(after, before);
        assert_ptr_equal(rs_state_services_body(&s, &len), list);
    }
    /* A valid snapshot cut short. */
    for (size_t cut = 0; cut < strlen(before); cut += 7) {
        assert_int_equal(rs_state_decode(&s, before, cut), -EINVAL);
        _cleanup_free_ char *after = encode(&s);
        assert_string_equal(after, before);
    }
    rs_state_close(&s);
}

/* The operation is borrowed (const): applying it must not change it. */
static void test_op_not_modified(void **state)
{
    (void)state;
    static const struct {
        const char *kind;
        const char *name;
        bool spec;
        int64_t cas;
        int64_t replicas;
    } ops[] = {
        {"service.put", "web", true, NO_CAS, -1},     {"service.put", "web", true, 2, -1},
        {"service.create", "new", true, NO_CAS, -1},  {"service.scale", "web", false, NO_CAS, 3},
        {"service.delete", "web", false, NO_CAS, -1},
    };
    struct rs_state s;
    rs_state_init(&s);
    create(&s, "web", NULL, 1);
    bool modified = false;
    for (size_t i = 0; i < ARRAY_SIZE(ops); i++) {
        json_auto_t *op = json_pack("{s:s}", "op", ops[i].kind);
        if (ops[i].spec)
            json_object_set_new(op, "spec", spec_new(ops[i].name, NULL));
        else
            json_object_set_new(op, "name", json_string(ops[i].name));
        if (ops[i].cas != NO_CAS)
            json_object_set_new(op, "cas", json_integer(ops[i].cas));
        if (ops[i].replicas >= 0)
            json_object_set_new(op, "replicas", json_integer(ops[i].replicas));
        _cleanup_free_ char *before = json_dumps(op, JSON_COMPACT);
        struct rs_op_result res;
        rs_state_apply_op(&s, op, 2 + i, &res);
        free(res.body);
        _cleanup_free_ char *after = json_dumps(op, JSON_COMPACT);
        if (strcmp(before, after) != 0) {
            const json_t *spec = json_object_get(op, "spec");
            print_message("%s changed its op%s\n", ops[i].kind,
                          json_object_get(spec, "version")
                              ? ": spec gained version, create_index, modify_index"
                              : "");
            modified = true;
        }
    }
    rs_state_close(&s);
    assert_false(modified);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops),
        cmocka_unit_test(test_refused_same_index),
        cmocka_unit_test(test_list_sorted),
        cmocka_unit_test(test_list_cache),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_decode_order),
        cmocka_unit_test(test_decode_refused),
        cmocka_unit_test(test_op_not_modified),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
