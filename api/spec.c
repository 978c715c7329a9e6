#include "api/spec.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/units.h"
#include "common/util.h"

#define PATH_LEN       sizeof(((struct api_err *)0)->field)
#define MAX_LABEL_KEY  128
#define MAX_PORT       65535
#define MAX_CPUS       1024
#define MAX_PIDS       4194304 /* the kernel's PID_MAX_LIMIT */
#define MAX_RETRIES    100
#define MAX_SIZE_BYTES (INT64_C(1) << 50)

/* State of one normalization: where errors go and whether the walk is inside
 * `rollback`, where failure_action "rollback" is refused. */
struct walk {
    struct api_err *err;
    bool in_rollback;
};

struct field;

/* Validates val (borrowed; NULL when the key is absent) found at path and
 * sets its canonical form, or its default, as f->key in out. Returns 0 or
 * -EINVAL with w->err set. */
typedef int (*spec_field_cb)(const struct field *f, const json_t *val, const char *path,
                             json_t *out, struct walk *w);
/* Checks a built object or list as a whole (rules across its fields). */
typedef int (*spec_post_cb)(json_t *out, const char *path, struct walk *w);
/* Returns true when a string follows a field's rule. */
typedef bool (*spec_valid_cb)(const char *s);

/* One field of an object of the schema. Which members matter depends on fn. */
struct field {
    const char *key;
    spec_field_cb fn;
    bool required;
    const char *def;            /* default string, enum value or duration */
    const char *const *choices; /* enum values, NULL-terminated */
    int64_t min, max, idef;     /* integer/number bounds and default, minimum duration ms */
    spec_valid_cb valid;        /* string rule, explained by rule */
    const char *rule;
    const struct field *sub; /* fields of a nested object or of list entries */
    size_t nsub;
    spec_post_cb post;
};

static int walk_object(const json_t *in, const struct field *fields, size_t n, const char *path,
                       json_t *out, struct walk *w);

__attribute__((format(printf, 3, 4))) static int bad(struct walk *w, const char *path,
                                                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rv = api_err_vset(w->err, API_BAD_REQUEST, path, fmt, ap);
    va_end(ap);
    return rv;
}

static void path_key(char *dst, const char *parent, const char *key)
{
    if (parent[0])
        snprintf(dst, PATH_LEN, "%s.%s", parent, key);
    else
        snprintf(dst, PATH_LEN, "%s", key);
}

static void path_index(char *dst, const char *parent, size_t i)
{
    snprintf(dst, PATH_LEN, "%s[%zu]", parent, i);
}

static bool is_alnum_lower(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads a string value: at most API_SPEC_MAX_STRING bytes, no NUL inside. */
static int get_str(const json_t *val, const char *path, struct walk *w, const char **s)
{
    if (!json_is_string(val))
        return bad(w, path, "must be a string");
    size_t len = json_string_length(val);
    if (len > API_SPEC_MAX_STRING)
        return bad(w, path, "must be at most %d characters", API_SPEC_MAX_STRING);
    *s = json_string_value(val);
    if (strlen(*s) != len)
        return bad(w, path, "must not contain NUL characters");
    return 0;
}

/* Checks that val is a list of at most max entries. */
static int get_list(const json_t *val, const char *path, size_t max, struct walk *w)
{
    if (!json_is_array(val))
        return bad(w, path, "must be a list");
    if (json_array_size(val) > max)
        return bad(w, path, "must have at most %zu entries", max);
    return 0;
}

static bool in_choices(const char *const *choices, const char *s)
{
    for (; *choices; choices++)
        if (strcmp(*choices, s) == 0)
            return true;
    return false;
}

static int bad_choice(struct walk *w, const char *path, const char *const *choices)
{
    char list[192] = "";
    size_t off = 0;
    for (const char *const *c = choices; *c && off < sizeof(list); c++) {
        int n = snprintf(list + off, sizeof(list) - off, "%s%s", c == choices ? "" : ", ", *c);
        off += n > 0 ? (size_t)n : 0;
    }
    return bad(w, path, "must be one of: %s", list);
}

/* ---- Generic field kinds ---- */

static int f_string(const struct field *f, const json_t *val, const char *path, json_t *out,
                    struct walk *w)
{
    const char *s = f->def;
    if (val) {
        int rv = get_str(val, path, w, &s);
        if (rv < 0)
            return rv;
    }
    if (f->valid && !f->valid(s))
        return bad(w, path, "%s", f->rule);
    json_object_set_new(out, f->key, json_string(s));
    return 0;
}

static int f_enum(const struct field *f, const json_t *val, const char *path, json_t *out,
                  struct walk *w)
{
    const char *s = f->def;
    if (val) {
        int rv = get_str(val, path, w, &s);
        if (rv < 0)
            return rv;
    }
    if (!in_choices(f->choices, s))
        return bad_choice(w, path, f->choices);
    json_object_set_new(out, f->key, json_string(s));
    return 0;
}

static int f_int(const struct field *f, const json_t *val, const char *path, json_t *out,
                 struct walk *w)
{
    json_int_t v = f->idef;
    if (val) {
        if (!json_is_integer(val))
            return bad(w, path, "must be an integer");
        v = json_integer_value(val);
    }
    if (v < f->min || v > f->max)
        return bad(w, path, "must be between %lld and %lld", (long long)f->min, (long long)f->max);
    json_object_set_new(out, f->key, json_integer(v));
    return 0;
}

static int f_number(const struct field *f, const json_t *val, const char *path, json_t *out,
                    struct walk *w)
{
    double v = (double)f->idef;
    if (val) {
        if (!json_is_number(val))
            return bad(w, path, "must be a number");
        v = json_number_value(val);
    }
    if (!(v >= (double)f->min && v <= (double)f->max))
        return bad(w, path, "must be between %lld and %lld", (long long)f->min, (long long)f->max);
    json_object_set_new(out, f->key, json_real(v));
    return 0;
}

static int f_duration(const struct field *f, const json_t *val, const char *path, json_t *out,
                      struct walk *w)
{
    const char *s = f->def;
    int64_t ms = 0;
    char text[32];
    if (val) {
        int rv = get_str(val, path, w, &s);
        if (rv < 0)
            return rv;
    }
    if (common_parse_duration(s, &ms) < 0)
        return bad(w, path, "must be a duration such as \"5s\"");
    if (ms < f->min) {
        common_format_duration(f->min, text, sizeof(text));
        return bad(w, path, "must be at least %s", text);
    }
    common_format_duration(ms, text, sizeof(text));
    json_object_set_new(out, f->key, json_string(text));
    return 0;
}

static int f_size(const struct field *f, const json_t *val, const char *path, json_t *out,
                  struct walk *w)
{
    int64_t bytes = 0;
    const char *s;
    if (json_is_integer(val)) {
        bytes = json_integer_value(val);
        if (bytes < 0 || bytes > MAX_SIZE_BYTES)
            return bad(w, path, "must be between 0 and 1 PiB");
    } else if (val) {
        if (!json_is_string(val) || get_str(val, path, w, &s) < 0 ||
            common_parse_size(s, &bytes) < 0)
            return bad(w, path, "must be a size such as \"64M\" or a number of bytes");
    }
    json_object_set_new(out, f->key, json_integer(bytes));
    return 0;
}

static int f_object(const struct field *f, const json_t *val, const char *path, json_t *out,
                    struct walk *w)
{
    if (val && !json_is_object(val))
        return bad(w, path, "must be an object");
    json_auto_t *sub = json_object();
    int rv = walk_object(val, f->sub, f->nsub, path, sub, w);
    if (rv == 0 && f->post)
        rv = f->post(sub, path, w);
    if (rv < 0)
        return rv;
    json_object_set_new(out, f->key, TAKE_PTR(sub));
    return 0;
}

/* A list of objects, each with the fields f->sub. */
static int f_objlist(const struct field *f, const json_t *val, const char *path, json_t *out,
                     struct walk *w)
{
    json_auto_t *list = json_array();
    char p[PATH_LEN];
    if (val) {
        int rv = get_list(val, path, (size_t)f->max, w);
        for (size_t i = 0; rv == 0 && i < json_array_size(val); i++) {
            const json_t *e = json_array_get(val, i);
            path_index(p, path, i);
            if (!json_is_object(e))
                return bad(w, p, "must be an object");
            json_t *o = json_object();
            json_array_append_new(list, o);
            rv = walk_object(e, f->sub, f->nsub, p, o, w);
        }
        if (rv < 0)
            return rv;
    }
    if (f->post) {
        int rv = f->post(list, path, w);
        if (rv < 0)
            return rv;
    }
    json_object_set_new(out, f->key, TAKE_PTR(list));
    return 0;
}

/* A list of at most f->max strings. */
static int f_strlist(const struct field *f, const json_t *val, const char *path, json_t *out,
                     struct walk *w)
{
    json_auto_t *list = json_array();
    char p[PATH_LEN];
    if (val) {
        int rv = get_list(val, path, (size_t)f->max, w);
        if (rv < 0)
            return rv;
        for (size_t i = 0; i < json_array_size(val); i++) {
            const char *s;
            path_index(p, path, i);
            rv = get_str(json_array_get(val, i), p, w, &s);
            if (rv < 0)
                return rv;
            json_array_append_new(list, json_string(s));
        }
    }
    json_object_set_new(out, f->key, TAKE_PTR(list));
    return 0;
}

/* version, create_index, modify_index: set by the server, checked and
 * dropped. */
static int f_readonly(const struct field *f, const json_t *val, const char *path, json_t *out,
                      struct walk *w)
{
    (void)f;
    (void)out;
    if (val && !json_is_integer(val))
        return bad(w, path, "must be an integer");
    return 0;
}

/* Checks the keys of in against fields (unknown keys are refused), then
 * builds every field in table order into out. in may be NULL (all
 * defaults). */
static int walk_object(const json_t *in, const struct field *fields, size_t n, const char *path,
                       json_t *out, struct walk *w)
{
    const char *key;
    size_t key_len;
    json_t *val;
    char p[PATH_LEN];

    json_object_keylen_foreach((json_t *)in, key, key_len, val)
    {
        size_t i = 0;
        while (i < n && (strlen(key) != key_len || strcmp(fields[i].key, key) != 0))
            i++;
        if (i == n) {
            path_key(p, path, key);
            return bad(w, p, "unknown field");
        }
    }
    for (size_t i = 0; i < n; i++) {
        val = json_object_get(in, fields[i].key);
        path_key(p, path, fields[i].key);
        if (!val && fields[i].required)
            return bad(w, p, "required");
        int rv = fields[i].fn(&fields[i], val, p, out, w);
        if (rv < 0)
            return rv;
    }
    return 0;
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
        if (!is_alpha(*s) && !is_digit(*s) && *s != '_')
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
        if (!is_digit(s[i]))
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

static int f_replicas(const struct field *f, const json_t *val, const char *path, json_t *out,
                      struct walk *w)
{
    struct field g = *f;
    bool global = strcmp(json_string_value(json_object_get(out, "mode")), "global") == 0;
    if (global)
        g.idef = 0;
    int rv = f_int(&g, val, path, out, w);
    if (rv == 0 && global && json_integer_value(json_object_get(out, f->key)) != 0)
        return bad(w, path, "must be 0 or absent when mode is global");
    return rv;
}

/* An object of strings whose keys follow key_valid (labels; env). */
static int string_map(const json_t *val, const char *path, size_t max, spec_valid_cb key_valid,
                      const char *key_rule, json_t *map, struct walk *w)
{
    const char *key, *s;
    size_t key_len;
    json_t *v;
    char p[PATH_LEN];

    if (json_object_size(val) > max)
        return bad(w, path, "must have at most %zu entries", max);
    json_object_keylen_foreach((json_t *)val, key, key_len, v)
    {
        path_key(p, path, key);
        if (strlen(key) != key_len || key_len > API_SPEC_MAX_STRING || !key_valid(key))
            return bad(w, p, "%s", key_rule);
        int rv = get_str(v, p, w, &s);
        if (rv < 0)
            return rv;
        json_object_set_new(map, key, json_string(s));
    }
    return 0;
}

static int f_labels(const struct field *f, const json_t *val, const char *path, json_t *out,
                    struct walk *w)
{
    json_auto_t *map = json_object();
    if (val && !json_is_object(val))
        return bad(w, path, "must be an object of strings");
    int rv = string_map(val, path, API_SPEC_MAX_LABELS, label_key_valid,
                        "label keys must be 1-128 characters of A-Za-z0-9._-/", map, w);
    if (rv < 0)
        return rv;
    json_object_set_new(out, f->key, TAKE_PTR(map));
    return 0;
}

static const char env_rule[] = "variable names must match [A-Za-z_][A-Za-z0-9_]*";

/* The list form of env: "K=V" entries, each name once. */
static int env_list(const json_t *val, const char *path, json_t *map, struct walk *w)
{
    char p[PATH_LEN];
    char name[API_SPEC_MAX_STRING + 1];

    for (size_t i = 0; i < json_array_size(val); i++) {
        const char *s, *eq;
        path_index(p, path, i);
        int rv = get_str(json_array_get(val, i), p, w, &s);
        if (rv < 0)
            return rv;
        eq = strchr(s, '=');
        if (!eq)
            return bad(w, p, "must be \"NAME=VALUE\"");
        memcpy(name, s, (size_t)(eq - s));
        name[eq - s] = '\0';
        if (!env_name_valid(name))
            return bad(w, p, "%s", env_rule);
        if (json_object_get(map, name))
            return bad(w, p, "variable \"%s\" is set twice", name);
        json_object_set_new(map, name, json_string(eq + 1));
    }
    return 0;
}

static int f_env(const struct field *f, const json_t *val, const char *path, json_t *out,
                 struct walk *w)
{
    json_auto_t *map = json_object();
    int rv = 0;
    if (json_is_array(val)) {
        rv = get_list(val, path, API_SPEC_MAX_LIST, w);
        if (rv == 0)
            rv = env_list(val, path, map, w);
    } else if (json_is_object(val) || !val) {
        rv = string_map(val, path, API_SPEC_MAX_LIST, env_name_valid, env_rule, map, w);
    } else {
        rv = bad(w, path, "must be an object of strings or a list of \"NAME=VALUE\"");
    }
    if (rv < 0)
        return rv;
    json_object_set_new(out, f->key, TAKE_PTR(map));
    return 0;
}

static const struct {
    const char *name; /* without "SIG" */
    int number;
} signals[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},       {"QUIT", SIGQUIT}, {"ILL", SIGILL},
    {"TRAP", SIGTRAP}, {"ABRT", SIGABRT},     {"BUS", SIGBUS},   {"FPE", SIGFPE},
    {"KILL", SIGKILL}, {"USR1", SIGUSR1},     {"SEGV", SIGSEGV}, {"USR2", SIGUSR2},
    {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},     {"TERM", SIGTERM}, {"STKFLT", SIGSTKFLT},
    {"CHLD", SIGCHLD}, {"CONT", SIGCONT},     {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},
    {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},     {"URG", SIGURG},   {"XCPU", SIGXCPU},
    {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH},
    {"IO", SIGIO},     {"PWR", SIGPWR},       {"SYS", SIGSYS},
};

/* Writes the canonical name of signal n ("SIGTERM", "SIGRTMIN+3"). Returns
 * false when n is no signal. */
static bool signal_name(int n, char *out, size_t out_size)
{
    for (size_t i = 0; i < ARRAY_SIZE(signals); i++) {
        if (signals[i].number == n) {
            snprintf(out, out_size, "SIG%s", signals[i].name);
            return true;
        }
    }
    if (n < SIGRTMIN || n > SIGRTMAX)
        return false;
    snprintf(out, out_size, "SIGRTMIN+%d", n - SIGRTMIN);
    return true;
}

/* Parses "TERM", "SIGTERM", "sigterm" or "SIGRTMIN+3". Returns 0 when s is
 * no signal name. */
static int signal_number(const char *s)
{
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < ARRAY_SIZE(signals); i++)
        if (strcasecmp(s, signals[i].name) == 0)
            return signals[i].number;
    if (strncasecmp(s, "RTMIN", 5) != 0)
        return 0;
    s += 5;
    if (*s == '\0')
        return SIGRTMIN;
    if (*s != '+' || !is_digit(s[1]) || strlen(s) > 3 || (s[2] && !is_digit(s[2])))
        return 0;
    int n = SIGRTMIN + atoi(s + 1);
    return n <= SIGRTMAX ? n : 0;
}

static int f_signal(const struct field *f, const json_t *val, const char *path, json_t *out,
                    struct walk *w)
{
    static const char rule[] = "must be a signal name such as \"SIGTERM\" or its number";
    char name[32];
    int n = SIGTERM;
    if (json_is_integer(val)) {
        json_int_t v = json_integer_value(val);
        n = v >= 1 && v <= 64 ? (int)v : 0;
    } else if (val) {
        const char *s;
        if (!json_is_string(val) || get_str(val, path, w, &s) < 0)
            return bad(w, path, rule);
        n = signal_number(s);
    }
    if (n == 0 || !signal_name(n, name, sizeof(name)))
        return bad(w, path, rule);
    json_object_set_new(out, f->key, json_string(name));
    return 0;
}

static const char *const network_choices[] = {"host", "bridge", NULL};

static int f_network(const struct field *f, const json_t *val, const char *path, json_t *out,
                     struct walk *w)
{
    struct field g = *f;
    const char *driver = json_string_value(json_object_get(out, "driver"));
    g.def = driver && strcmp(driver, "runc") == 0 ? "bridge" : "host";
    return f_enum(&g, val, path, out, w);
}

static const char *health_type(const json_t *out)
{
    return json_string_value(json_object_get(out, "type"));
}

static int f_health_port(const struct field *f, const json_t *val, const char *path, json_t *out,
                         struct walk *w)
{
    if (strcmp(health_type(out), "exec") == 0)
        return val ? bad(w, path, "only for http and tcp checks") : 0;
    if (!val)
        return bad(w, path, "required for http and tcp checks");
    return f_int(f, val, path, out, w);
}

static int f_health_path(const struct field *f, const json_t *val, const char *path, json_t *out,
                         struct walk *w)
{
    if (strcmp(health_type(out), "http") != 0)
        return val ? bad(w, path, "only for http checks") : 0;
    return f_string(f, val, path, out, w);
}

static int f_health_command(const struct field *f, const json_t *val, const char *path, json_t *out,
                            struct walk *w)
{
    if (strcmp(health_type(out), "exec") != 0)
        return val ? bad(w, path, "only for exec checks") : 0;
    int rv = f_strlist(f, val, path, out, w);
    if (rv == 0 && json_array_size(json_object_get(out, f->key)) == 0)
        return bad(w, path, "must be a non-empty list of strings for exec checks");
    return rv;
}

static int f_health(const struct field *f, const json_t *val, const char *path, json_t *out,
                    struct walk *w)
{
    if (!val || json_is_null(val)) {
        json_object_set_new(out, f->key, json_null());
        return 0;
    }
    return f_object(f, val, path, out, w);
}

static int ports_post(json_t *list, const char *path, struct walk *w)
{
    char p[PATH_LEN];
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *a = json_array_get(list, i);
        for (size_t j = 0; j < i; j++) {
            const json_t *b = json_array_get(list, j);
            if (json_equal(json_object_get(a, "published"), json_object_get(b, "published")) &&
                json_equal(json_object_get(a, "protocol"), json_object_get(b, "protocol"))) {
                snprintf(p, sizeof(p), "%s[%zu].published", path, i);
                return bad(w, p, "published port is already used by %s[%zu]", path, j);
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
    if (!in_choices(attrs, out) && !spread_valid(out))
        return false;
    if (strcmp(out, "node.role") == 0 && strcmp(v, "manager") != 0 && strcmp(v, "worker") != 0)
        return false;
    snprintf(out + klen, out_size - klen, "%.2s%s", op, v);
    return true;
}

static int f_constraints(const struct field *f, const json_t *val, const char *path, json_t *out,
                         struct walk *w)
{
    json_auto_t *list = json_array();
    char p[PATH_LEN];
    char canon[API_SPEC_MAX_STRING + 1];
    if (val) {
        int rv = get_list(val, path, API_SPEC_MAX_CONSTRAINTS, w);
        for (size_t i = 0; rv == 0 && i < json_array_size(val); i++) {
            const char *s;
            path_index(p, path, i);
            rv = get_str(json_array_get(val, i), p, w, &s);
            if (rv == 0 && !constraint_canon(s, canon, sizeof(canon)))
                rv = bad(w, p,
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

static int f_failure_action(const struct field *f, const json_t *val, const char *path, json_t *out,
                            struct walk *w)
{
    struct field g = *f;
    g.choices = w->in_rollback ? rollback_actions : update_actions;
    return f_enum(&g, val, path, out, w);
}

static int f_rollback(const struct field *f, const json_t *val, const char *path, json_t *out,
                      struct walk *w)
{
    w->in_rollback = true;
    int rv = f_object(f, val, path, out, w);
    w->in_rollback = false;
    return rv;
}

/* ---- Rules across fields ---- */

static int resources_post(json_t *res, const char *path, struct walk *w)
{
    static const char *const keys[] = {"cpu", "memory"};
    const json_t *lim = json_object_get(res, "limits");
    const json_t *rsv = json_object_get(res, "reservations");
    char p[PATH_LEN];
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        double l = json_number_value(json_object_get(lim, keys[i]));
        double r = json_number_value(json_object_get(rsv, keys[i]));
        if (l > 0 && l < r) {
            snprintf(p, sizeof(p), "%s.limits.%s", path, keys[i]);
            return bad(w, p, "must not be below the reservation");
        }
    }
    return 0;
}

static int task_post(json_t *task, const char *path, struct walk *w)
{
    char p[PATH_LEN];
    const char *driver = json_string_value(json_object_get(task, "driver"));
    if (strcmp(driver, "runc") == 0 && json_string_length(json_object_get(task, "image")) == 0) {
        path_key(p, path, "image");
        return bad(w, p, "required when driver is runc");
    }
    if (strcmp(driver, "process") == 0 && json_array_size(json_object_get(task, "command")) == 0) {
        path_key(p, path, "command");
        return bad(w, p, "required (a non-empty list of strings) when driver is process");
    }
    return 0;
}

/* ---- The schema (docs/service-spec.md), leaves first ---- */

/* clang-format off */
#define STR(k, d, check, why) {.key = k, .fn = f_string, .def = d, .valid = check, .rule = why}
#define ENUM(k, d, ch) {.key = k, .fn = f_enum, .def = d, .choices = ch}
#define INT(k, lo, hi, d) {.key = k, .fn = f_int, .min = lo, .max = hi, .idef = d}
#define NUM(k, lo, hi) {.key = k, .fn = f_number, .min = lo, .max = hi}
#define DUR(k, d, lo) {.key = k, .fn = f_duration, .def = d, .min = lo}
#define SIZE(k) {.key = k, .fn = f_size}
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

static const struct field reservation_fields[] = {NUM("cpu", 0, MAX_CPUS), SIZE("memory")};

static const struct field limit_fields[] = {
    NUM("cpu", 0, MAX_CPUS),
    SIZE("memory"),
    INT("pids", 0, MAX_PIDS, 0),
};

static const struct field resource_fields[] = {
    NESTED("reservations", f_object, reservation_fields, NULL),
    NESTED("limits", f_object, limit_fields, NULL),
};

static const struct field restart_fields[] = {
    ENUM("condition", "any", condition_choices),
    DUR("delay", "5s", 0),
    INT("max_attempts", 0, INT_MAX, 0),
    DUR("window", "0s", 0),
};

static const struct field health_fields[] = {
    {.key = "type", .fn = f_enum, .required = true, .choices = health_choices},
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

static const struct field port_fields[] = {
    {.key = "published", .fn = f_int, .required = true, .min = 1, .max = MAX_PORT},
    {.key = "target", .fn = f_int, .required = true, .min = 1, .max = MAX_PORT},
    ENUM("protocol", "tcp", protocol_choices),
};

static const struct field task_fields[] = {
    ENUM("driver", "process", driver_choices),
    STR("image", "", NULL, NULL),
    {.key = "command", .fn = f_strlist, .max = API_SPEC_MAX_LIST},
    {.key = "args", .fn = f_strlist, .max = API_SPEC_MAX_LIST},
    CUSTOM("env", f_env),
    STR("workdir", "", abs_path_or_empty, "must be an absolute path"),
    STR("user", "", user_valid, "must be a user name, a uid or uid:gid"),
    NESTED("resources", f_object, resource_fields, resources_post),
    NESTED("restart", f_object, restart_fields, NULL),
    CUSTOM("stop_signal", f_signal),
    DUR("stop_grace_period", "10s", 0),
    NESTED("health", f_health, health_fields, NULL),
    {.key = "ports",
     .fn = f_objlist,
     .max = API_SPEC_MAX_LIST,
     .sub = port_fields,
     .nsub = ARRAY_SIZE(port_fields),
     .post = ports_post},
    {.key = "network", .fn = f_network, .choices = network_choices},
};

static const struct field preference_fields[] = {
    {.key = "spread",
     .fn = f_string,
     .required = true,
     .valid = spread_valid,
     .rule = "must be \"node.labels.KEY\""},
};

static const struct field placement_fields[] = {
    CUSTOM("constraints", f_constraints),
    INT("max_replicas_per_node", 0, API_SPEC_MAX_REPLICAS, 0),
    {.key = "preferences",
     .fn = f_objlist,
     .max = API_SPEC_MAX_LIST,
     .sub = preference_fields,
     .nsub = ARRAY_SIZE(preference_fields)},
    ENUM("strategy", "spread", strategy_choices),
};

static const struct field update_fields[] = {
    INT("parallelism", 0, API_SPEC_MAX_REPLICAS, 1),
    DUR("delay", "0s", 0),
    ENUM("order", "stop-first", order_choices),
    {.key = "failure_action", .fn = f_failure_action, .def = "pause"},
    DUR("monitor", "5s", 0),
    NUM("max_failure_ratio", 0, 1),
    DUR("progress_deadline", "10m", 0),
};

static const struct field spec_fields[] = {
    {.key = "name",
     .fn = f_string,
     .required = true,
     .valid = name_valid,
     .rule = "must be a DNS label: 1-63 of a-z, 0-9 and '-', starting and ending with a letter "
             "or digit"},
    ENUM("mode", "replicated", mode_choices),
    {.key = "replicas", .fn = f_replicas, .min = 0, .max = API_SPEC_MAX_REPLICAS, .idef = 1},
    CUSTOM("labels", f_labels),
    {.key = "task",
     .fn = f_object,
     .required = true,
     .sub = task_fields,
     .nsub = ARRAY_SIZE(task_fields),
     .post = task_post},
    NESTED("placement", f_object, placement_fields, NULL),
    NESTED("update", f_object, update_fields, NULL),
    NESTED("rollback", f_rollback, update_fields, NULL),
    CUSTOM("version", f_readonly),
    CUSTOM("create_index", f_readonly),
    CUSTOM("modify_index", f_readonly),
};

int api_spec_normalize(const json_t *in, json_t **out, struct api_err *err)
{
    struct walk w = {.err = err};
    *out = NULL;
    if (!json_is_object(in))
        return api_err_set(err, API_BAD_REQUEST, NULL, "a service spec must be a JSON object");
    json_auto_t *spec = json_object();
    int rv = walk_object(in, spec_fields, ARRAY_SIZE(spec_fields), "", spec, &w);
    if (rv < 0)
        return rv;
    *out = TAKE_PTR(spec);
    return 0;
}

int api_json_depth(const char *s, size_t len)
{
    int depth = 0, max = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++; /* the escaped character cannot end the string */
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (depth < INT_MAX)
                depth++;
            if (depth > max)
                max = depth;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return max;
}
