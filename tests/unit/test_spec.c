/* Unit tests for api/spec: validation and normalization of service specs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "api/spec.h"
#include "common/util.h"
#include "tests/unit/quoted_json.h"

/* Follows a dotted path ("task.restart.delay") through objects. */
static const json_t *get_path(const json_t *j, const char *path)
{
    char key[64];
    while (j && *path) {
        size_t n = strcspn(path, ".");
        assert_true(n < sizeof(key));
        memcpy(key, path, n);
        key[n] = '\0';
        j = json_object_get(j, key);
        path += n + (path[n] == '.');
    }
    return j;
}

static json_t *normalize_ok(const json_t *in)
{
    json_t *out = NULL;
    struct api_err err = {0};
    int rv = api_spec_normalize(in, &out, &err);
    if (rv != 0) {
        _cleanup_free_ char *text = json_dumps(in, JSON_COMPACT);
        fail_msg("%s refused: %s: %s", text, err.field, err.msg);
    }
    assert_non_null(out);
    return out;
}

#define MINIMAL "{'name': 'web', 'replicas': 2, 'task': {'command': ['/bin/sleep', '1000']}}"

static void test_minimal_defaults(void **state)
{
    (void)state;
    static const char *const keys[] = {"name", "mode",      "replicas", "labels",
                                       "task", "placement", "update",   "rollback"};
    static const struct {
        const char *path;
        const char *value; /* JSON, ' for " */
    } defaults[] = {
        {"name", "'web'"},
        {"mode", "'replicated'"},
        {"replicas", "2"},
        {"labels", "{}"},
        {"task.driver", "'process'"},
        {"task.image", "''"},
        {"task.command", "['/bin/sleep', '1000']"},
        {"task.args", "[]"},
        {"task.env", "{}"},
        {"task.workdir", "''"},
        {"task.user", "''"},
        {"task.resources",
         "{'reservations': {'cpu': 0.0, 'memory': 0}, 'limits': {'cpu': 0.0, 'memory': 0, "
         "'pids': 0}}"},
        {"task.restart", "{'condition': 'any', 'delay': '5s', 'max_attempts': 0, 'window': '0s'}"},
        {"task.stop_signal", "'SIGTERM'"},
        {"task.stop_grace_period", "'10s'"},
        {"task.logs", "{'max_size': 0, 'max_files': 0}"},
        {"task.health", "null"},
        {"task.ports", "[]"},
        {"task.network", "'host'"},
        {"task.read_only", "false"},
        {"task.mounts", "[]"},
        {"task.cap_add", "[]"},
        {"task.cap_drop", "[]"},
        {"placement",
         "{'constraints': [], 'max_replicas_per_node': 0, 'preferences': [], 'strategy': "
         "'spread'}"},
        {"update", "{'parallelism': 1, 'delay': '0s', 'order': 'stop-first', 'failure_action': "
                   "'pause', 'monitor': '5s', 'max_failure_ratio': 0.0, 'progress_deadline': "
                   "'10m'}"},
        {"rollback.failure_action", "'pause'"},
        {"rollback.progress_deadline", "'10m'"},
    };
    json_auto_t *in = parse(MINIMAL);
    json_auto_t *out = normalize_ok(in);

    /* Every top-level key, in the documented order, and nothing else. */
    assert_int_equal(json_object_size(out), ARRAY_SIZE(keys));
    size_t i = 0;
    const char *key;
    json_t *val;
    json_object_foreach(out, key, val)
    {
        assert_string_equal(key, keys[i++]);
    }
    assert_int_equal(json_object_size(json_object_get(out, "task")), 19);
    for (i = 0; i < ARRAY_SIZE(defaults); i++) {
        json_auto_t *want = parse(defaults[i].value);
        const json_t *got = get_path(out, defaults[i].path);
        if (!got || !json_equal(got, want)) {
            _cleanup_free_ char *text = got ? json_dumps(got, JSON_ENCODE_ANY) : NULL;
            fail_msg("%s is %s, expected %s", defaults[i].path, text ? text : "(absent)",
                     defaults[i].value);
        }
    }
    /* The input is not modified. */
    json_auto_t *again = parse(MINIMAL);
    assert_true(json_equal(in, again));
}

/* Valid specs: each normalizes, and normalizing the result changes nothing. */
static const char *const valid_specs[] = {
    MINIMAL,
    "{'name': 'g', 'mode': 'global', 'task': {'command': ['/bin/true']}}",
    "{'name': 'g0', 'mode': 'global', 'replicas': 0, 'task': {'command': ['/bin/true']}}",
    "{'name': 'a', 'replicas': 0, 'task': {'command': ['x']}, 'version': 3, 'create_index': 10,"
    " 'modify_index': 12}",
    "{'name': 'db-1', 'replicas': 3, 'labels': {'tier': 'data', 'a.b/c-d_e': ''},"
    " 'task': {'driver': 'runc', 'image': 'docker.io/library/redis:7', 'args': ['--port', '7000'],"
    "  'env': ['A=1', 'B=x=y', 'EMPTY='], 'workdir': '/data', 'user': '999:999',"
    "  'resources': {'reservations': {'cpu': 0.5, 'memory': '64M'},"
    "                'limits': {'cpu': 2, 'memory': '1.5g', 'pids': 100}},"
    "  'restart': {'condition': 'on-failure', 'delay': '1m30s', 'max_attempts': 5,"
    "              'window': '2h'},"
    "  'stop_signal': 'int', 'stop_grace_period': '90s',"
    "  'health': {'type': 'tcp', 'port': 7000, 'interval': '250ms', 'timeout': '1.5s',"
    "             'retries': 5, 'start_period': '0'},"
    "  'ports': [{'published': 7000, 'target': 7000}, {'published': 7000, 'target': 7000,"
    "             'protocol': 'udp'}], 'network': 'host'},"
    " 'placement': {'constraints': ['node.labels.disk == ssd', 'node.role!=manager',"
    "  'node.hostname==h1'], 'max_replicas_per_node': 1,"
    "  'preferences': [{'spread': 'node.labels.zone'}], 'strategy': 'binpack'},"
    " 'update': {'parallelism': 0, 'delay': '10s', 'order': 'start-first',"
    "  'failure_action': 'rollback', 'monitor': '1m', 'max_failure_ratio': 0.25,"
    "  'progress_deadline': '1h'},"
    " 'rollback': {'parallelism': 2, 'failure_action': 'continue', 'max_failure_ratio': 1}}",
    "{'name': 'h', 'task': {'command': ['srv'], 'env': {'PATH': '/bin', '_x1': 'y'},"
    " 'stop_signal': 9, 'health': {'type': 'http', 'port': 8080, 'path': '/healthz'}}}",
    "{'name': 'e', 'task': {'command': ['srv'], 'stop_signal': 'SIGRTMIN+3',"
    " 'health': {'type': 'exec', 'command': ['/bin/check', '-q']}}}",
    "{'name': 'n', 'task': {'command': ['srv'], 'health': null, 'user': 'nobody',"
    " 'resources': {'limits': {'memory': 1048576}}}}",
    "{'name': 'r', 'task': {'driver': 'runc', 'image': 'alpine', 'network': 'bridge'}}",
};

static void test_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(valid_specs); i++) {
        json_auto_t *in = parse(valid_specs[i]);
        json_auto_t *once = normalize_ok(in);
        json_auto_t *twice = normalize_ok(once);
        if (!json_equal(once, twice)) {
            _cleanup_free_ char *a = json_dumps(once, JSON_COMPACT);
            _cleanup_free_ char *b = json_dumps(twice, JSON_COMPACT);
            fail_msg("spec %zu is not stable:\n%s\n%s", i, a, b);
        }
    }
}

/* Values as written by users and their canonical form. */
static const struct {
    const char *spec;
    const char *path;
    const char *value; /* JSON, ' for " */
} canonical[] = {
    {"{'name': 'a', 'task': {'command': ['x'], 'stop_grace_period': '90s'}}",
     "task.stop_grace_period", "'1m30s'"},
    {"{'name': 'a', 'task': {'command': ['x'], 'restart': {'delay': '1.5s'}}}",
     "task.restart.delay", "'1s500ms'"},
    {"{'name': 'a', 'task': {'command': ['x'], 'restart': {'window': '0'}}}", "task.restart.window",
     "'0s'"},
    {"{'name': 'a', 'task': {'command': ['x'], 'resources': {'limits': {'memory': '64M'}}}}",
     "task.resources.limits.memory", "67108864"},
    {"{'name': 'a', 'task': {'command': ['x'], 'resources': {'reservations': {'memory': "
     "'512kb'}}}}",
     "task.resources.reservations.memory", "524288"},
    {"{'name': 'a', 'task': {'command': ['x'], 'resources': {'limits': {'cpu': 2}}}}",
     "task.resources.limits.cpu", "2.0"},
    {"{'name': 'a', 'task': {'command': ['x'], 'env': ['A=1', 'B=']}}", "task.env",
     "{'A': '1', 'B': ''}"},
    {"{'name': 'a', 'task': {'command': ['x'], 'stop_signal': 'TERM'}}", "task.stop_signal",
     "'SIGTERM'"},
    {"{'name': 'a', 'task': {'command': ['x'], 'stop_signal': 'sigkill'}}", "task.stop_signal",
     "'SIGKILL'"},
    {"{'name': 'a', 'task': {'command': ['x'], 'stop_signal': 1}}", "task.stop_signal", "'SIGHUP'"},
    {"{'name': 'a', 'task': {'command': ['x'], 'stop_signal': 'winch'}}", "task.stop_signal",
     "'SIGWINCH'"},
    {"{'name': 'a', 'task': {'driver': 'runc', 'image': 'alpine'}}", "task.network", "'bridge'"},
    {"{'name': 'a', 'task': {'driver': 'runc', 'image': 'alpine'}}", "task.command", "[]"},
    {"{'name': 'a', 'mode': 'global', 'task': {'command': ['x']}}", "replicas", "0"},
    {"{'name': 'a', 'task': {'command': ['x'], 'health': {'type': 'http', 'port': 80}}}",
     "task.health",
     "{'type': 'http', 'port': 80, 'path': '/', 'interval': '1s', 'timeout': '1s', 'retries': "
     "3, 'start_period': '0s'}"},
    {"{'name': 'a', 'task': {'command': ['x'], 'ports': [{'published': 80, 'target': 8080}]}}",
     "task.ports", "[{'published': 80, 'target': 8080, 'protocol': 'tcp'}]"},
    {"{'name': 'a', 'task': {'command': ['x'], 'ports': [{'published': 80}]}}", "task.ports",
     "[{'published': 80, 'target': 0, 'protocol': 'tcp'}]"},
    {"{'name': 'a', 'task': {'command': ['x']}, 'placement': {'constraints': ['node.labels.a "
     "== b', 'node.id !=x']}}",
     "placement.constraints", "['node.labels.a==b', 'node.id!=x']"},
    {"{'name': 'a', 'task': {'command': ['x']}, 'update': {'monitor': '3600s'}}", "update.monitor",
     "'1h'"},
};

static void test_canonical(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(canonical); i++) {
        json_auto_t *in = parse(canonical[i].spec);
        json_auto_t *out = normalize_ok(in);
        json_auto_t *want = parse(canonical[i].value);
        const json_t *got = get_path(out, canonical[i].path);
        if (!got || !json_equal(got, want)) {
            _cleanup_free_ char *text = got ? json_dumps(got, JSON_ENCODE_ANY) : NULL;
            fail_msg("case %zu: %s is %s, expected %s", i, canonical[i].path,
                     text ? text : "(absent)", canonical[i].value);
        }
    }
}

#define T(task) "{'name': 'web', 'task': " task "}"
#define C       "'command': ['/bin/true']"
#define S(rest) "{'name': 'web', 'task': {" C "}, " rest "}"

/* Refused specs and the field each error names. */
static const struct {
    const char *spec;
    const char *field;
} bad_specs[] = {
    /* unknown fields at every depth */
    {S("'foo': 1"), "foo"},
    {T("{" C ", 'bogus': true}"), "task.bogus"},
    {T("{" C ", 'restart': {'dalay': '5s'}}"), "task.restart.dalay"},
    {T("{" C ", 'resources': {'limits': {'swap': 1}}}"), "task.resources.limits.swap"},
    {T("{" C ", 'resources': {'reservations': {'pids': 1}}}"), "task.resources.reservations.pids"},
    {T("{" C ", 'resources': {'cpu': 1}}"), "task.resources.cpu"},
    {T("{" C ", 'health': {'type': 'tcp', 'port': 1, 'tries': 1}}"), "task.health.tries"},
    {T("{" C ", 'ports': [{'published': 1, 'target': 1, 'host': 'x'}]}"), "task.ports[0].host"},
    {S("'placement': {'constraint': []}"), "placement.constraint"},
    {S("'placement': {'preferences': [{'spread': 'node.labels.a', 'x': 1}]}"),
     "placement.preferences[0].x"},
    {S("'update': {'paralelism': 1}"), "update.paralelism"},
    {S("'rollback': {'foo': 1}"), "rollback.foo"},
    /* types */
    {"{'name': 5, 'task': {" C "}}", "name"},
    {S("'replicas': 1.5"), "replicas"},
    {S("'replicas': 1.0"), "replicas"},
    {S("'replicas': true"), "replicas"},
    {S("'replicas': '2'"), "replicas"},
    {S("'labels': ['a']"), "labels"},
    {S("'labels': {'a': 1}"), "labels.a"},
    {"{'name': 'web', 'task': []}", "task"},
    {T("{'command': '/bin/true'}"), "task.command"},
    {T("{'command': ['/bin/true', 5]}"), "task.command[1]"},
    {T("{" C ", 'args': {}}"), "task.args"},
    {T("{" C ", 'env': 'A=1'}"), "task.env"},
    {T("{" C ", 'health': 5}"), "task.health"},
    {T("{" C ", 'stop_grace_period': 10}"), "task.stop_grace_period"},
    {T("{" C ", 'resources': {'limits': {'pids': 1.5}}}"), "task.resources.limits.pids"},
    {T("{" C ", 'resources': {'reservations': {'cpu': '1'}}}"), "task.resources.reservations.cpu"},
    {T("{" C ", 'ports': {}}"), "task.ports"},
    {T("{" C ", 'ports': [1]}"), "task.ports[0]"},
    {S("'version': '3'"), "version"},
    {S("'create_index': 1.5"), "create_index"},
    {S("'placement': []"), "placement"},
    /* required fields */
    {"{'task': {" C "}}", "name"},
    {"{'name': 'web'}", "task"},
    {T("{}"), "task.command"},
    {T("{'command': []}"), "task.command"},
    {T("{'driver': 'runc'}"), "task.image"},
    {T("{'driver': 'runc', 'image': ''}"), "task.image"},
    {T("{'driver': 'process', 'image': 'alpine'}"), "task.command"},
    /* names */
    {"{'name': 'Web', 'task': {" C "}}", "name"},
    {"{'name': '-a', 'task': {" C "}}", "name"},
    {"{'name': 'a-', 'task': {" C "}}", "name"},
    {"{'name': 'a_b', 'task': {" C "}}", "name"},
    {"{'name': '', 'task': {" C "}}", "name"},
    {"{'name': 'a.b', 'task': {" C "}}", "name"},
    {"{'name': 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'task': {" C
     "}}",
     "name"},
    /* enums and ranges */
    {S("'mode': 'both'"), "mode"},
    {S("'replicas': -1"), "replicas"},
    {S("'replicas': 100001"), "replicas"},
    {S("'mode': 'global', 'replicas': 3"), "replicas"},
    {T("{" C ", 'driver': 'docker'}"), "task.driver"},
    {T("{" C ", 'network': 'overlay'}"), "task.network"},
    {T("{" C ", 'restart': {'condition': 'always'}}"), "task.restart.condition"},
    {T("{" C ", 'restart': {'max_attempts': -1}}"), "task.restart.max_attempts"},
    {S("'update': {'parallelism': -1}"), "update.parallelism"},
    {S("'update': {'order': 'random'}"), "update.order"},
    {S("'update': {'max_failure_ratio': 1.5}"), "update.max_failure_ratio"},
    {S("'update': {'failure_action': 'stop'}"), "update.failure_action"},
    {S("'rollback': {'failure_action': 'rollback'}"), "rollback.failure_action"},
    {S("'placement': {'strategy': 'random'}"), "placement.strategy"},
    {S("'placement': {'max_replicas_per_node': -1}"), "placement.max_replicas_per_node"},
    /* durations and sizes */
    {T("{" C ", 'restart': {'delay': '5'}}"), "task.restart.delay"},
    {T("{" C ", 'restart': {'delay': '5 s'}}"), "task.restart.delay"},
    {T("{" C ", 'restart': {'window': '-1s'}}"), "task.restart.window"},
    {T("{" C ", 'stop_grace_period': '1d'}"), "task.stop_grace_period"},
    {S("'update': {'monitor': '1e3s'}"), "update.monitor"},
    {S("'rollback': {'progress_deadline': ''}"), "rollback.progress_deadline"},
    {T("{" C ", 'resources': {'reservations': {'memory': '10x'}}}"),
     "task.resources.reservations.memory"},
    {T("{" C ", 'resources': {'limits': {'memory': -1}}}"), "task.resources.limits.memory"},
    {T("{" C ", 'resources': {'limits': {'memory': '1e3'}}}"), "task.resources.limits.memory"},
    {T("{" C ", 'resources': {'limits': {'memory': 1.5}}}"), "task.resources.limits.memory"},
    {T("{" C ", 'resources': {'limits': {'cpu': 2000}}}"), "task.resources.limits.cpu"},
    {T("{" C ", 'resources': {'limits': {'cpu': -0.5}}}"), "task.resources.limits.cpu"},
    /* limits below reservations */
    {T("{" C ", 'resources': {'reservations': {'memory': '1G'}, 'limits': {'memory': '512M'}}}"),
     "task.resources.limits.memory"},
    {T("{" C ", 'resources': {'reservations': {'cpu': 2}, 'limits': {'cpu': 1.5}}}"),
     "task.resources.limits.cpu"},
    /* env, labels, workdir, user, signal */
    {T("{" C ", 'env': {'FOO-BAR': 'x'}}"), "task.env.FOO-BAR"},
    {T("{" C ", 'env': {'1A': 'x'}}"), "task.env.1A"},
    {T("{" C ", 'env': {'FOO': 1}}"), "task.env.FOO"},
    {T("{" C ", 'env': ['A=1', 'B']}"), "task.env[1]"},
    {T("{" C ", 'env': ['A=1', '=1']}"), "task.env[1]"},
    {T("{" C ", 'env': ['A=1', 'A=2']}"), "task.env[1]"},
    {S("'labels': {'a b': 'x'}"), "labels.a b"},
    {S("'labels': {'': 'x'}"), "labels."},
    {T("{" C ", 'workdir': 'data'}"), "task.workdir"},
    {T("{" C ", 'user': 'a:b'}"), "task.user"},
    {T("{" C ", 'user': '1:'}"), "task.user"},
    {T("{" C ", 'stop_signal': 'SIGFOO'}"), "task.stop_signal"},
    {T("{" C ", 'stop_signal': 0}"), "task.stop_signal"},
    {T("{" C ", 'stop_signal': 65}"), "task.stop_signal"},
    {T("{" C ", 'stop_signal': 15.0}"), "task.stop_signal"},
    {T("{" C ", 'stop_signal': 'SIGRTMIN+99'}"), "task.stop_signal"},
    /* ports */
    {T("{" C ", 'ports': [{'published': 80, 'target': 80}, {'published': 80, 'target': 81}]}"),
     "task.ports[1].published"},
    {T("{" C ", 'ports': [{'published': 0, 'target': 80}]}"), "task.ports[0].published"},
    {T("{" C ", 'ports': [{'published': 65536, 'target': 80}]}"), "task.ports[0].published"},
    {T("{" C ", 'ports': [{'published': 80, 'target': -1}]}"), "task.ports[0].target"},
    {T("{" C ", 'ports': [{'published': 80, 'target': 65536}]}"), "task.ports[0].target"},
    {T("{" C ", 'ports': [{'published': 80, 'target': 80, 'protocol': 'sctp'}]}"),
     "task.ports[0].protocol"},
    /* health */
    {T("{" C ", 'health': {'type': 'grpc'}}"), "task.health.type"},
    {T("{" C ", 'health': {'port': 80}}"), "task.health.type"},
    {T("{" C ", 'health': {'type': 'tcp'}}"), "task.health.port"},
    {T("{" C ", 'health': {'type': 'http', 'port': 70000}}"), "task.health.port"},
    {T("{" C ", 'health': {'type': 'http', 'port': 80, 'path': 'x'}}"), "task.health.path"},
    {T("{" C ", 'health': {'type': 'tcp', 'port': 80, 'path': '/'}}"), "task.health.path"},
    {T("{" C ", 'health': {'type': 'http', 'port': 80, 'command': ['x']}}"), "task.health.command"},
    {T("{" C ", 'health': {'type': 'exec'}}"), "task.health.command"},
    {T("{" C ", 'health': {'type': 'exec', 'command': ['x'], 'port': 1}}"), "task.health.port"},
    {T("{" C ", 'health': {'type': 'tcp', 'port': 80, 'interval': '0s'}}"), "task.health.interval"},
    {T("{" C ", 'health': {'type': 'tcp', 'port': 80, 'retries': 0}}"), "task.health.retries"},
    /* placement */
    {S("'placement': {'constraints': ['node.labels.disk=ssd']}"), "placement.constraints[0]"},
    {S("'placement': {'constraints': ['node.role==manager', 'node.role==boss']}"),
     "placement.constraints[1]"},
    {S("'placement': {'constraints': ['node.color==red']}"), "placement.constraints[0]"},
    {S("'placement': {'constraints': ['node.name==']}"), "placement.constraints[0]"},
    {S("'placement': {'constraints': ['==x']}"), "placement.constraints[0]"},
    {S("'placement': {'constraints': ['node.name==a==b']}"), "placement.constraints[0]"},
    {S("'placement': {'constraints': [1]}"), "placement.constraints[0]"},
    {S("'placement': {'preferences': [{'spread': 'node.name'}]}"),
     "placement.preferences[0].spread"},
    {S("'placement': {'preferences': [{}]}"), "placement.preferences[0].spread"},
};

static void check_refused(const json_t *in, const char *field, const char *what)
{
    json_t *out = (json_t *)1;
    struct api_err err = {0};
    int rv = api_spec_normalize(in, &out, &err);
    if (rv == 0) {
        json_decref(out);
        fail_msg("%s: accepted", what);
    }
    assert_int_equal(rv, -EINVAL);
    assert_null(out);
    assert_int_equal(err.code, API_BAD_REQUEST);
    assert_true(err.msg[0] != '\0');
    if (strcmp(err.field, field) != 0)
        fail_msg("%s: field \"%s\" (%s), expected \"%s\"", what, err.field, err.msg, field);
}

static void test_bad_specs(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(bad_specs); i++) {
        json_auto_t *in = parse(bad_specs[i].spec);
        check_refused(in, bad_specs[i].field, bad_specs[i].spec);
    }
}

static void test_not_an_object(void **state)
{
    (void)state;
    static const char *const texts[] = {"[]", "null", "1", "\"web\"", "true", "[{}]"};
    for (size_t i = 0; i < ARRAY_SIZE(texts); i++) {
        json_auto_t *in = json_loads(texts[i], JSON_DECODE_ANY, NULL);
        assert_non_null(in);
        check_refused(in, "", texts[i]);
    }
    check_refused(NULL, "", "NULL");
}

/* Builders for specs over the hard limits. */
static json_t *base_spec(void)
{
    return parse(S("'labels': {}"));
}

static json_t *too_many_labels(void)
{
    json_t *s = base_spec();
    char key[16];
    for (int i = 0; i <= API_SPEC_MAX_LABELS; i++) {
        snprintf(key, sizeof(key), "l%d", i);
        json_object_set_new(json_object_get(s, "labels"), key, json_string("v"));
    }
    return s;
}

static json_t *too_many_commands(void)
{
    json_t *s = base_spec();
    json_t *cmd = json_object_get(json_object_get(s, "task"), "command");
    for (int i = 0; i < API_SPEC_MAX_LIST; i++)
        json_array_append_new(cmd, json_string("x"));
    return s;
}

static json_t *too_many_constraints(void)
{
    json_t *s = base_spec();
    json_t *list = json_array();
    for (int i = 0; i <= API_SPEC_MAX_CONSTRAINTS; i++)
        json_array_append_new(list, json_string("node.role==worker"));
    json_object_set_new(s, "placement", json_pack("{s:o}", "constraints", list));
    return s;
}

static json_t *too_many_env(void)
{
    json_t *s = base_spec();
    json_t *env = json_array();
    for (int i = 0; i <= API_SPEC_MAX_LIST; i++)
        json_array_append_new(env, json_sprintf("V%d=1", i));
    json_object_set_new(json_object_get(s, "task"), "env", env);
    return s;
}

static json_t *long_string(size_t len)
{
    char *text = xmalloc(len + 1);
    memset(text, 'a', len);
    text[len] = '\0';
    json_t *j = json_string(text);
    free(text);
    return j;
}

static json_t *too_long_label(void)
{
    json_t *s = base_spec();
    json_object_set_new(json_object_get(s, "labels"), "k", long_string(API_SPEC_MAX_STRING + 1));
    return s;
}

static json_t *too_long_image(void)
{
    json_t *s = base_spec();
    json_object_set_new(json_object_get(s, "task"), "image", long_string(API_SPEC_MAX_STRING + 1));
    return s;
}

static json_t *nul_in_string(void)
{
    json_t *s = base_spec();
    json_object_set_new(json_object_get(s, "task"), "user", json_stringn("root\0x", 6));
    return s;
}

static json_t *nul_in_key(void)
{
    json_t *s = base_spec();
    json_object_setn_new(s, "name\0x", 6, json_string("web"));
    return s;
}

static void test_limits(void **state)
{
    (void)state;
    static const struct {
        json_t *(*build)(void);
        const char *field;
    } cases[] = {
        {too_many_labels, "labels"},
        {too_many_commands, "task.command"},
        {too_many_constraints, "placement.constraints"},
        {too_many_env, "task.env"},
        {too_long_label, "labels.k"},
        {too_long_image, "task.image"},
        {nul_in_string, "task.user"},
        {nul_in_key, "name"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        json_auto_t *in = cases[i].build();
        char what[32];
        snprintf(what, sizeof(what), "limit case %zu", i);
        check_refused(in, cases[i].field, what);
    }
}

/* Exactly at the limits is fine. */
static void test_at_limits(void **state)
{
    (void)state;
    json_auto_t *in = too_many_commands();
    json_t *task = json_object_get(in, "task");
    json_array_remove(json_object_get(task, "command"), 0);
    json_t *labels = json_object_get(in, "labels");
    char key[16];
    for (int i = 0; i < API_SPEC_MAX_LABELS; i++) {
        snprintf(key, sizeof(key), "l%d", i);
        json_object_set_new(labels, key, json_string("v"));
    }
    json_t *list = json_array();
    for (int i = 0; i < API_SPEC_MAX_CONSTRAINTS; i++)
        json_array_append_new(list, json_string("node.role==worker"));
    json_object_set_new(in, "placement", json_pack("{s:o}", "constraints", list));
    json_object_set_new(task, "image", long_string(API_SPEC_MAX_STRING));
    json_auto_t *out = normalize_ok(in);
    assert_int_equal(json_array_size(get_path(out, "task.command")), API_SPEC_MAX_LIST);
    assert_int_equal(json_object_size(get_path(out, "labels")), API_SPEC_MAX_LABELS);
    assert_int_equal(json_array_size(get_path(out, "placement.constraints")),
                     API_SPEC_MAX_CONSTRAINTS);
}

static void test_readonly_dropped(void **state)
{
    (void)state;
    json_auto_t *in = parse(S("'version': 4, 'create_index': 7, 'modify_index': 9"));
    json_auto_t *out = normalize_ok(in);
    assert_null(json_object_get(out, "version"));
    assert_null(json_object_get(out, "create_index"));
    assert_null(json_object_get(out, "modify_index"));
}

/* Replaces every value of a full spec, at every depth, with values of every
 * type: whatever the verdict, nothing crashes or leaks (ASan/LSan). */
static void mutate(json_t *root, json_t *node)
{
    static const char *const values[] = {"null",  "true", "0",  "-1",  "1.5",      "\"\"",
                                         "\"x\"", "[]",   "{}", "[1]", "{\"a\":1}"};
    if (json_is_object(node)) {
        const char *key;
        json_t *val;
        void *tmp;
        json_object_foreach_safe(node, tmp, key, val)
        {
            json_incref(val);
            for (size_t i = 0; i < ARRAY_SIZE(values); i++) {
                json_object_set_new(node, key, json_loads(values[i], JSON_DECODE_ANY, NULL));
                json_t *out = NULL;
                struct api_err err;
                int rv = api_spec_normalize(root, &out, &err);
                assert_true(rv == 0 || rv == -EINVAL);
                assert_true((rv == 0) == (out != NULL));
                json_decref(out);
            }
            json_object_set_new(node, key, val);
            mutate(root, val);
        }
    } else if (json_is_array(node)) {
        for (size_t i = 0; i < json_array_size(node); i++)
            mutate(root, json_array_get(node, i));
    }
}

static void test_mutations(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(valid_specs); i++) {
        json_auto_t *in = parse(valid_specs[i]);
        json_auto_t *out = normalize_ok(in);
        mutate(in, in);
        mutate(out, out);
    }
}

static void test_name_valid(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int valid;
    } cases[] = {
        {"web", 1},
        {"a", 1},
        {"0", 1},
        {"web-1", 1},
        {"a-b-c", 1},
        {"123456789012345678901234567890123456789012345678901234567890123", 1},
        {"1234567890123456789012345678901234567890123456789012345678901234", 0},
        {"", 0},
        {"-a", 0},
        {"a-", 0},
        {"Web", 0},
        {"a_b", 0},
        {"a.b", 0},
        {"a b", 0},
        {"é", 0},
        {NULL, 0},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
        if (api_spec_name_valid(cases[i].name) != cases[i].valid)
            fail_msg("\"%s\" should be %s", cases[i].name ? cases[i].name : "(null)",
                     cases[i].valid ? "valid" : "invalid");
}

static void test_signal_number(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int number; /* -1: refused; 0: SIGRTMIN + rt */
        int rt;
    } cases[] = {
        {"SIGTERM", SIGTERM, 0},
        {"SIGKILL", SIGKILL, 0},
        {"SIGHUP", SIGHUP, 0},
        {"SIGWINCH", SIGWINCH, 0},
        {"SIGSTKFLT", SIGSTKFLT, 0},
        {"SIGSYS", SIGSYS, 0},
        {"SIGRTMIN+0", 0, 0},
        {"SIGRTMIN+3", 0, 3},
        {"TERM", -1, 0},
        {"sigterm", -1, 0},
        {"SIGterm", -1, 0},
        {"SIGRTMIN", -1, 0},
        {"SIGRTMIN+03", -1, 0},
        {"SIGRTMIN+99", -1, 0},
        {"SIGRTMAX", -1, 0},
        {"SIGFOO", -1, 0},
        {"15", -1, 0},
        {"", -1, 0},
        {NULL, -1, 0},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        int want = cases[i].number == 0 ? SIGRTMIN + cases[i].rt : cases[i].number;
        int got = api_spec_signal_number(cases[i].name);
        if (got != want)
            fail_msg("\"%s\": %d, expected %d", cases[i].name ? cases[i].name : "(null)", got,
                     want);
    }
    /* Every name the normalizer writes is read back as the same signal. */
    for (int n = 1; n <= SIGRTMAX; n++) {
        char text[64];
        snprintf(text, sizeof(text), "{'name': 'a', 'task': {'command': ['x'], 'stop_signal': %d}}",
                 n);
        json_auto_t *in = parse(text);
        json_t *out = NULL;
        struct api_err err = {0};
        if (api_spec_normalize(in, &out, &err) < 0) {
            /* Only the numbers glibc keeps for itself below SIGRTMIN. */
            assert_true(n > SIGSYS && n < SIGRTMIN);
            continue;
        }
        json_auto_t *spec = out;
        const char *name = json_string_value(get_path(spec, "task.stop_signal"));
        if (api_spec_signal_number(name) != n)
            fail_msg("%d is written as \"%s\", read back as %d", n, name,
                     api_spec_signal_number(name));
    }
}

static void test_json_depth(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int depth;
    } cases[] = {
        {"", 0},
        {"1", 0},
        {"\"x\"", 0},
        {"{}", 1},
        {"[]", 1},
        {"{\"a\": [1, {\"b\": []}]}", 4},
        {"[[[]], [[[]]]]", 4},
        {"\"[[[[\"", 0},
        {"[\"\\\"[[[\"]", 1},
        {"[\"\\\\\", [[]]]", 3},
        {"{\"a\\\\\": {}}", 2},
        {"]]]]", 0},
        {"[[[", 3},
        {"}{", 1},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        int d = api_json_depth(cases[i].text, strlen(cases[i].text));
        if (d != cases[i].depth)
            fail_msg("%s: depth %d, expected %d", cases[i].text, d, cases[i].depth);
    }
    /* Only len bytes are read. */
    assert_int_equal(api_json_depth("[[[[", 2), 2);
    char deep[1000];
    memset(deep, '[', sizeof(deep));
    assert_int_equal(api_json_depth(deep, sizeof(deep)), 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_defaults), cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_canonical),        cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_not_an_object),    cmocka_unit_test(test_limits),
        cmocka_unit_test(test_at_limits),        cmocka_unit_test(test_readonly_dropped),
        cmocka_unit_test(test_mutations),        cmocka_unit_test(test_name_valid),
        cmocka_unit_test(test_json_depth),       cmocka_unit_test(test_signal_number),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
