/* Service specs, the schema half: string rules, fields with rules of their
 * own, rules across fields, and the tables of docs/service-spec.md. */
#include "api/spec.h"

#include <ctype.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "api/spec_internal.h"
#include "common/util.h"

#define MAX_LABEL_KEY 128
#define MAX_PORT      65535
#define MAX_CPUS      1024
#define MAX_PIDS      4194304 /* the kernel's PID_MAX_LIMIT */
#define MAX_RETRIES   100
#define MAX_LOG_FILES 100

static bool is_alnum_lower(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* ---- String rules ---- */

int api_spec_name_valid(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > API_SPEC_MAX_NAME)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_alnum_lower(name[i]) && name[i] != '-')
            return 0;
    return name[0] != '-' && name[len - 1] != '-';
}

static bool name_valid(const char *s)
{
    return api_spec_name_valid(s);
}

static bool label_key_valid(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > MAX_LABEL_KEY)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/") == len;
}

static bool env_name_valid(const char *s)
{
    if (!is_alpha(s[0]) && s[0] != '_')
        return false;
    for (s++; *s; s++)
        if (!is_alpha(*s) && !api__spec_is_digit(*s) && *s != '_')
            return false;
    return true;
}

static bool abs_path_or_empty(const char *s)
{
    return s[0] == '\0' || s[0] == '/';
}

static bool abs_path(const char *s)
{
    return s[0] == '/';
}

/* A decimal id that fits in 32 bits, below the invalid id (uid_t)-1. */
static bool numeric_id(const char *s, size_t len)
{
    unsigned long long v = 0;
    if (len == 0 || len > 10)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!api__spec_is_digit(s[i]))
            return false;
        v = v * 10 + (unsigned long long)(s[i] - '0');
    }
    return v < UINT32_MAX;
}

/* "", a user name, a uid or uid:gid. */
static bool user_valid(const char *s)
{
    const char *colon = strchr(s, ':');
    size_t len = strlen(s);
    if (len == 0)
        return true;
    if (colon)
        return numeric_id(s, (size_t)(colon - s)) && numeric_id(colon + 1, strlen(colon + 1));
    if (numeric_id(s, len))
        return true;
    if (len > 32 || (!is_alpha(s[0]) && s[0] != '_'))
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == len;
}

static bool spread_valid(const char *s)
{
    static const char prefix[] = "node.labels.";
    return strncmp(s, prefix, sizeof(prefix) - 1) == 0 && label_key_valid(s + sizeof(prefix) - 1);
}

/* ---- Fields with their own rules ---- */

static int f_replicas(const struct api__spec_field *f, const json_t *val, const char *path,
                      json_t *out, struct api__spec_walk *w)
{
    struct api__spec_field g = *f;
    bool global = strcmp(json_string_value(json_object_get(out, "mode")), "global") == 0;
    if (global)
        g.idef = 0;
    int rv = api__spec_int(&g, val, path, out, w);
    if (rv == 0 && global && json_integer_value(json_object_get(out, f->key)) != 0)
        return api__spec_bad(w, path, "must be 0 or absent when mode is global");
    return rv;
}

/* An object of strings whose keys follow key_valid (labels; env). */
static int string_map(const json_t *val, const char *path, size_t max, api__spec_valid_cb key_valid,
                      const char *key_rule, json_t *map, struct api__spec_walk *w)
{
    const char *key, *s;
    size_t key_len;
    json_t *v;
    char p[API__SPEC_PATH_LEN];

    if (json_object_size(val) > max)
        return api__spec_bad(w, path, "must have at most %zu entries", max);
    json_object_keylen_foreach((json_t *)val, key, key_len, v)
    {
        api__spec_path_key(p, path, key);
        if (strlen(key) != key_len || key_len > API_SPEC_MAX_STRING || !key_valid(key))
            return api__spec_bad(w, p, "%s", key_rule);
        int rv = api__spec_get_str(v, p, w, &s);
        if (rv < 0)
            return rv;
        json_object_set_new(map, key, json_string(s));
    }
    return 0;
}

static int f_labels(const struct api__spec_field *f, const json_t *val, const char *path,
                    json_t *out, struct api__spec_walk *w)
{
    json_auto_t *map = json_object();
    if (val && !json_is_object(val))
        return api__spec_bad(w, path, "must be an object of strings");
    int rv = string_map(val, path, API_SPEC_MAX_LABELS, label_key_valid,
                        "label keys must be 1-128 characters of A-Za-z0-9._-/", map, w);
    if (rv < 0)
        return rv;
    json_object_set_new(out, f->key, TAKE_PTR(map));
    return 0;
}

static const char env_rule[] = "variable names must match [A-Za-z_][A-Za-z0-9_]*";

/* The list form of env: "K=V" entries, each name once. */
static int env_list(const json_t *val, const char *path, json_t *map, struct api__spec_walk *w)
{
    char p[API__SPEC_PATH_LEN];
    char name[API_SPEC_MAX_STRING + 1];

    for (size_t i = 0; i < json_array_size(val); i++) {
        const char *s, *eq;
        api__spec_path_index(p, path, i);
        int rv = api__spec_get_str(json_array_get(val, i), p, w, &s);
        if (rv < 0)
            return rv;
        eq = strchr(s, '=');
        if (!eq)
            return api__spec_bad(w, p, "must be \"NAME=VALUE\"");
        memcpy(name, s, (size_t)(eq - s));
        name[eq - s] = '\0';
        if (!env_name_valid(name))
            return api__spec_bad(w, p, "%s", env_rule);
        if (json_object_get(map, name))
            return api__spec_bad(w, p, "variable \"%s\" is set twice", name);
        json_object_set_new(map, name, json_string(eq + 1));
    }
    return 0;
}

static int f_env(const struct api__spec_field *f, const json_t *val, const char *path, json_t *out,
                 struct api__spec_walk *w)
{
    json_auto_t *map = json_object();
    int rv = 0;
    if (json_is_array(val)) {
        rv = api__spec_get_list(val, path, API_SPEC_MAX_LIST, w);
        if (rv == 0)
            rv = env_list(val, path, map, w);
    } else if (json_is_object(val) || !val) {
        rv = string_map(val, path, API_SPEC_MAX_LIST, env_name_valid, env_rule, map, w);
    } else {
        rv = api__spec_bad(w, path, "must be an object of strings or a list of \"NAME=VALUE\"");
    }
    if (rv < 0)
        return rv;
    json_object_set_new(out, f->key, TAKE_PTR(map));
    return 0;
}

static const char *const network_choices[] = {"host", "bridge", NULL};

static int f_network(const struct api__spec_field *f, const json_t *val, const char *path,
                     json_t *out, struct api__spec_walk *w)
{
    struct api__spec_field g = *f;
    const char *driver = json_string_value(json_object_get(out, "driver"));
    g.def = driver && strcmp(driver, "runc") == 0 ? "bridge" : "host";
    return api__spec_enum(&g, val, path, out, w);
}

static const char *health_type(const json_t *out)
{
    return json_string_value(json_object_get(out, "type"));
}

static int f_health_port(const struct api__spec_field *f, const json_t *val, const char *path,
                         json_t *out, struct api__spec_walk *w)
{
    if (strcmp(health_type(out), "exec") == 0)
        return val ? api__spec_bad(w, path, "only for http and tcp checks") : 0;
    if (!val)
        return api__spec_bad(w, path, "required for http and tcp checks");
    return api__spec_int(f, val, path, out, w);
}

static int f_health_path(const struct api__spec_field *f, const json_t *val, const char *path,
                         json_t *out, struct api__spec_walk *w)
{
    if (strcmp(health_type(out), "http") != 0)
        return val ? api__spec_bad(w, path, "only for http checks") : 0;
    return api__spec_string(f, val, path, out, w);
}

static int f_health_command(const struct api__spec_field *f, const json_t *val, const char *path,
                            json_t *out, struct api__spec_walk *w)
{
    if (strcmp(health_type(out), "exec") != 0)
        return val ? api__spec_bad(w, path, "only for exec checks") : 0;
    int rv = api__spec_strlist(f, val, path, out, w);
    if (rv == 0 && json_array_size(json_object_get(out, f->key)) == 0)
        return api__spec_bad(w, path, "must be a non-empty list of strings for exec checks");
    return rv;
}

static int f_health(const struct api__spec_field *f, const json_t *val, const char *path,
                    json_t *out, struct api__spec_walk *w)
{
    if (!val || json_is_null(val)) {
        json_object_set_new(out, f->key, json_null());
        return 0;
    }
    return api__spec_object(f, val, path, out, w);
}

static int ports_post(json_t *list, const char *path, struct api__spec_walk *w)
{
    char p[API__SPEC_PATH_LEN];
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *a = json_array_get(list, i);
        for (size_t j = 0; j < i; j++) {
            const json_t *b = json_array_get(list, j);
            if (json_equal(json_object_get(a, "published"), json_object_get(b, "published")) &&
                json_equal(json_object_get(a, "protocol"), json_object_get(b, "protocol"))) {
                snprintf(p, sizeof(p), "%s[%zu].published", path, i);
                return api__spec_bad(w, p, "published port is already used by %s[%zu]", path, j);
            }
        }
    }
    return 0;
}

/* Canonical form of a constraint "node.labels.KEY==V", "node.role!=worker"
 * ... with blanks around the operator removed. Returns false when malformed. */
static bool constraint_canon(const char *s, char *out, size_t out_size)
{
    static const char *const attrs[] = {"node.role", "node.name", "node.id", "node.hostname", NULL};
    const char *op = strstr(s, "==");
    const char *ne = strstr(s, "!=");
    if (!op || (ne && ne < op))
        op = ne;
    if (!op)
        return false;
    size_t klen = (size_t)(op - s);
    while (klen > 0 && s[klen - 1] == ' ')
        klen--;
    const char *v = op + 2 + strspn(op + 2, " ");
    size_t vlen = strlen(v);
    if (klen == 0 || klen + 2 + vlen >= out_size || vlen == 0 || strcspn(v, " \t\r\n=!") != vlen)
        return false;
    memcpy(out, s, klen);
    out[klen] = '\0';
    if (!api__spec_in_choices(attrs, out) && !spread_valid(out))
        return false;
    if (strcmp(out, "node.role") == 0 && strcmp(v, "manager") != 0 && strcmp(v, "worker") != 0)
        return false;
    snprintf(out + klen, out_size - klen, "%.2s%s", op, v);
    return true;
}

static int f_constraints(const struct api__spec_field *f, const json_t *val, const char *path,
                         json_t *out, struct api__spec_walk *w)
{
    json_auto_t *list = json_array();
    char p[API__SPEC_PATH_LEN];
    char canon[API_SPEC_MAX_STRING + 1];
    if (val) {
        int rv = api__spec_get_list(val, path, API_SPEC_MAX_CONSTRAINTS, w);
        for (size_t i = 0; rv == 0 && i < json_array_size(val); i++) {
            const char *s;
            api__spec_path_index(p, path, i);
            rv = api__spec_get_str(json_array_get(val, i), p, w, &s);
            if (rv == 0 && !constraint_canon(s, canon, sizeof(canon)))
                rv = api__spec_bad(
                    w, p,
                    "must be \"node.labels.KEY==VALUE\", \"node.role==manager|worker\", "
                    "\"node.name==N\", \"node.id==ID\" or \"node.hostname==H\" (or !=)");
            if (rv == 0)
                json_array_append_new(list, json_string(canon));
        }
        if (rv < 0)
            return rv;
    }
    json_object_set_new(out, f->key, TAKE_PTR(list));
    return 0;
}

static const char *const update_actions[] = {"pause", "continue", "rollback", NULL};
static const char *const rollback_actions[] = {"pause", "continue", NULL};

static int f_failure_action(const struct api__spec_field *f, const json_t *val, const char *path,
                            json_t *out, struct api__spec_walk *w)
{
    struct api__spec_field g = *f;
    g.choices = w->in_rollback ? rollback_actions : update_actions;
    return api__spec_enum(&g, val, path, out, w);
}

static int f_rollback(const struct api__spec_field *f, const json_t *val, const char *path,
                      json_t *out, struct api__spec_walk *w)
{
    w->in_rollback = true;
    int rv = api__spec_object(f, val, path, out, w);
    w->in_rollback = false;
    return rv;
}

/* ---- Rules across fields ---- */

static int resources_post(json_t *res, const char *path, struct api__spec_walk *w)
{
    static const char *const keys[] = {"cpu", "memory"};
    const json_t *lim = json_object_get(res, "limits");
    const json_t *rsv = json_object_get(res, "reservations");
    char p[API__SPEC_PATH_LEN];
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        double l = json_number_value(json_object_get(lim, keys[i]));
        double r = json_number_value(json_object_get(rsv, keys[i]));
        if (l > 0 && l < r) {
            snprintf(p, sizeof(p), "%s.limits.%s", path, keys[i]);
            return api__spec_bad(w, p, "must not be below the reservation");
        }
    }
    return 0;
}

static int task_post(json_t *task, const char *path, struct api__spec_walk *w)
{
    char p[API__SPEC_PATH_LEN];
    const char *driver = json_string_value(json_object_get(task, "driver"));
    if (strcmp(driver, "runc") == 0 && json_string_length(json_object_get(task, "image")) == 0) {
        api__spec_path_key(p, path, "image");
        return api__spec_bad(w, p, "required when driver is runc");
    }
    if (strcmp(driver, "process") == 0 && json_array_size(json_object_get(task, "command")) == 0) {
        api__spec_path_key(p, path, "command");
        return api__spec_bad(w, p, "required (a non-empty list of strings) when driver is process");
    }
    if (strcmp(driver, "process") != 0)
        return 0;
    static const char *const runc_only[] = {"mounts", "cap_add", "cap_drop"};
    for (size_t i = 0; i < ARRAY_SIZE(runc_only); i++) {
        if (json_array_size(json_object_get(task, runc_only[i])) > 0) {
            api__spec_path_key(p, path, runc_only[i]);
            return api__spec_bad(w, p, "only for the runc driver");
        }
    }
    if (json_is_true(json_object_get(task, "read_only"))) {
        api__spec_path_key(p, path, "read_only");
        return api__spec_bad(w, p, "only for the runc driver");
    }
    if (strcmp(json_string_value(json_object_get(task, "network")), "bridge") == 0) {
        api__spec_path_key(p, path, "network");
        return api__spec_bad(w, p,
                             "\"bridge\" needs the runc driver (processes use the "
                             "node's network: \"host\")");
    }
    return 0;
}

static bool volume_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || !isalnum((unsigned char)s[0]))
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

/* One mount: bind needs an absolute host path, volume a name, tmpfs no
 * source; size is for tmpfs; no target twice. */
static int mount_check(const json_t *m, const char *path, struct api__spec_walk *w)
{
    char p[API__SPEC_PATH_LEN];
    const char *type = json_string_value(json_object_get(m, "type"));
    const char *src = json_string_value(json_object_get(m, "source"));
    api__spec_path_key(p, path, "source");
    size_t len = strlen(src);
    int dotdot = strstr(src, "/../") != NULL || (len >= 3 && strcmp(src + len - 3, "/..") == 0);
    if (strcmp(type, "bind") == 0 && (src[0] != '/' || dotdot))
        return api__spec_bad(w, p, "must be an absolute host path for a bind mount");
    if (strcmp(type, "volume") == 0 && !volume_name_valid(src))
        return api__spec_bad(w, p,
                             "must be a volume name (letters, digits, '_', '.', '-') for a "
                             "volume mount");
    if (strcmp(type, "tmpfs") == 0 && src[0])
        return api__spec_bad(w, p, "must be empty for a tmpfs mount");
    if (strcmp(type, "tmpfs") != 0 && json_integer_value(json_object_get(m, "size")) > 0) {
        api__spec_path_key(p, path, "size");
        return api__spec_bad(w, p, "only for tmpfs mounts");
    }
    api__spec_path_key(p, path, "target");
    if (strcmp(json_string_value(json_object_get(m, "target")), "/") == 0)
        return api__spec_bad(w, p, "must not be \"/\"");
    return 0;
}

static int mounts_post(json_t *list, const char *path, struct api__spec_walk *w)
{
    char p[API__SPEC_PATH_LEN];
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *a = json_array_get(list, i);
        api__spec_path_index(p, path, i);
        int rv = mount_check(a, p, w);
        if (rv < 0)
            return rv;
        for (size_t j = 0; j < i; j++) {
            if (json_equal(json_object_get(a, "target"),
                           json_object_get(json_array_get(list, j), "target"))) {
                snprintf(p, sizeof(p), "%s[%zu].target", path, i);
                return api__spec_bad(w, p, "already mounted by %s[%zu]", path, j);
            }
        }
    }
    return 0;
}

/* ---- The schema (docs/service-spec.md), leaves first ---- */

/* clang-format off */
#define STR(k, d, check, why) \
    {.key = k, .fn = api__spec_string, .def = d, .valid = check, .rule = why}
#define ENUM(k, d, ch) {.key = k, .fn = api__spec_enum, .def = d, .choices = ch}
#define INT(k, lo, hi, d) {.key = k, .fn = api__spec_int, .min = lo, .max = hi, .idef = d}
#define NUM(k, lo, hi) {.key = k, .fn = api__spec_number, .min = lo, .max = hi}
#define DUR(k, d, lo) {.key = k, .fn = api__spec_duration, .def = d, .min = lo}
#define SIZE(k) {.key = k, .fn = api__spec_size}
#define CUSTOM(k, f) {.key = k, .fn = f}
#define NESTED(k, f, tbl, post_cb) \
    {.key = k, .fn = f, .sub = tbl, .nsub = ARRAY_SIZE(tbl), .post = post_cb}
/* clang-format on */

static const char *const mode_choices[] = {"replicated", "global", NULL};
static const char *const driver_choices[] = {"process", "runc", NULL};
static const char *const condition_choices[] = {"none", "on-failure", "any", NULL};
static const char *const health_choices[] = {"http", "tcp", "exec", NULL};
static const char *const protocol_choices[] = {"tcp", "udp", NULL};
static const char *const strategy_choices[] = {"spread", "binpack", NULL};
static const char *const order_choices[] = {"stop-first", "start-first", NULL};

static const struct api__spec_field reservation_fields[] = {NUM("cpu", 0, MAX_CPUS),
                                                            SIZE("memory")};

static const struct api__spec_field limit_fields[] = {
    NUM("cpu", 0, MAX_CPUS),
    SIZE("memory"),
    INT("pids", 0, MAX_PIDS, 0),
};

static const struct api__spec_field resource_fields[] = {
    NESTED("reservations", api__spec_object, reservation_fields, NULL),
    NESTED("limits", api__spec_object, limit_fields, NULL),
};

static const struct api__spec_field restart_fields[] = {
    ENUM("condition", "any", condition_choices),
    DUR("delay", "5s", 0),
    INT("max_attempts", 0, INT_MAX, 0),
    DUR("window", "0s", 0),
};

/* 0 = the node's default (10 MiB, 3 files). */
static const struct api__spec_field log_fields[] = {
    SIZE("max_size"),
    INT("max_files", 0, MAX_LOG_FILES, 0),
};

static const struct api__spec_field health_fields[] = {
    {.key = "type", .fn = api__spec_enum, .required = true, .choices = health_choices},
    {.key = "port", .fn = f_health_port, .min = 1, .max = MAX_PORT},
    {.key = "path",
     .fn = f_health_path,
     .def = "/",
     .valid = abs_path,
     .rule = "must be a path starting with \"/\""},
    {.key = "command", .fn = f_health_command, .max = API_SPEC_MAX_LIST},
    DUR("interval", "1s", 1),
    DUR("timeout", "1s", 1),
    INT("retries", 1, MAX_RETRIES, 3),
    DUR("start_period", "0s", 0),
};

static const struct api__spec_field port_fields[] = {
    {.key = "published", .fn = api__spec_int, .required = true, .min = 1, .max = MAX_PORT},
    /* 0 (absent): the port the image exposes for the protocol (ExposedPorts,
     * when it exposes exactly one), else the published port. */
    {.key = "target", .fn = api__spec_int, .min = 0, .max = MAX_PORT, .idef = 0},
    ENUM("protocol", "tcp", protocol_choices),
};

static const char *const mount_choices[] = {"bind", "volume", "tmpfs", NULL};

static const struct api__spec_field mount_fields[] = {
    {.key = "type", .fn = api__spec_enum, .required = true, .choices = mount_choices},
    STR("source", "", NULL, NULL),
    {.key = "target",
     .fn = api__spec_string,
     .required = true,
     .valid = abs_path,
     .rule = "must be an absolute path in the container"},
    {.key = "read_only", .fn = api__spec_bool},
    SIZE("size"),
};

static const struct api__spec_field task_fields[] = {
    ENUM("driver", "process", driver_choices),
    STR("image", "", NULL, NULL),
    {.key = "command", .fn = api__spec_strlist, .max = API_SPEC_MAX_LIST},
    {.key = "args", .fn = api__spec_strlist, .max = API_SPEC_MAX_LIST},
    CUSTOM("env", f_env),
    STR("workdir", "", abs_path_or_empty, "must be an absolute path"),
    STR("user", "", user_valid, "must be a user name, a uid or uid:gid"),
    NESTED("resources", api__spec_object, resource_fields, resources_post),
    NESTED("restart", api__spec_object, restart_fields, NULL),
    CUSTOM("stop_signal", api__spec_signal),
    DUR("stop_grace_period", "10s", 0),
    NESTED("logs", api__spec_object, log_fields, NULL),
    NESTED("health", f_health, health_fields, NULL),
    {.key = "ports",
     .fn = api__spec_objlist,
     .max = API_SPEC_MAX_LIST,
     .sub = port_fields,
     .nsub = ARRAY_SIZE(port_fields),
     .post = ports_post},
    {.key = "network", .fn = f_network, .choices = network_choices},
    {.key = "read_only", .fn = api__spec_bool},
    {.key = "mounts",
     .fn = api__spec_objlist,
     .max = API_SPEC_MAX_LIST,
     .sub = mount_fields,
     .nsub = ARRAY_SIZE(mount_fields),
     .post = mounts_post},
    {.key = "cap_add", .fn = api__spec_caps, .max = 64},
    {.key = "cap_drop", .fn = api__spec_caps, .max = 64},
};

static const struct api__spec_field preference_fields[] = {
    {.key = "spread",
     .fn = api__spec_string,
     .required = true,
     .valid = spread_valid,
     .rule = "must be \"node.labels.KEY\""},
};

static const struct api__spec_field placement_fields[] = {
    CUSTOM("constraints", f_constraints),
    INT("max_replicas_per_node", 0, API_SPEC_MAX_REPLICAS, 0),
    {.key = "preferences",
     .fn = api__spec_objlist,
     .max = API_SPEC_MAX_LIST,
     .sub = preference_fields,
     .nsub = ARRAY_SIZE(preference_fields)},
    ENUM("strategy", "spread", strategy_choices),
};

static const struct api__spec_field update_fields[] = {
    INT("parallelism", 0, API_SPEC_MAX_REPLICAS, 1),
    DUR("delay", "0s", 0),
    ENUM("order", "stop-first", order_choices),
    {.key = "failure_action", .fn = f_failure_action, .def = "pause"},
    DUR("monitor", "5s", 0),
    NUM("max_failure_ratio", 0, 1),
    DUR("progress_deadline", "10m", 0),
};

const struct api__spec_field api__spec_fields[] = {
    {.key = "name",
     .fn = api__spec_string,
     .required = true,
     .valid = name_valid,
     .rule = "must be a DNS label: 1-63 of a-z, 0-9 and '-', starting and ending with a letter "
             "or digit"},
    ENUM("mode", "replicated", mode_choices),
    {.key = "replicas", .fn = f_replicas, .min = 0, .max = API_SPEC_MAX_REPLICAS, .idef = 1},
    CUSTOM("labels", f_labels),
    {.key = "task",
     .fn = api__spec_object,
     .required = true,
     .sub = task_fields,
     .nsub = ARRAY_SIZE(task_fields),
     .post = task_post},
    NESTED("placement", api__spec_object, placement_fields, NULL),
    NESTED("update", api__spec_object, update_fields, NULL),
    NESTED("rollback", f_rollback, update_fields, NULL),
    CUSTOM("rollout", api__spec_server_set),
    CUSTOM("stable_spec", api__spec_server_set),
    CUSTOM("previous_spec", api__spec_server_set),
    CUSTOM("version", api__spec_readonly),
    CUSTOM("create_index", api__spec_readonly),
    CUSTOM("modify_index", api__spec_readonly),
};

const size_t api__spec_nfields = ARRAY_SIZE(api__spec_fields);
