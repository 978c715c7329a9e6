/* shoal: the one table of service flags that `service create` and `service
 * update` share, the JSON edits they make, and reading spec files. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>

#include "common/buf.h"
#include "common/util.h"
#include "ctl/ctl.h"

#define C CTL_FLAGS_CREATE
#define U CTL_FLAGS_UPDATE

static const struct ctl_spec_flag flags[] = {
    {"name", "name", CTL_KIND_STRING, C, "NAME", "service name (required unless in the file)"},
    {"replicas", "replicas", CTL_KIND_INT, C | U, "N", "number of replicas"},
    {"mode", "mode", CTL_KIND_STRING, C, "MODE", "replicated or global"},
    {"driver", "task.driver", CTL_KIND_STRING, C | U, "DRIVER", "process or runc"},
    {"image", "task.image", CTL_KIND_STRING, C | U, "REF", "image (runc driver)"},
    {"command", "task.command", CTL_KIND_WORDS, C | U, "\"CMD ARG...\"",
     "command, split into words like a shell does"},
    {"args", "task.args", CTL_KIND_WORDS, C | U, "\"ARG...\"", "arguments appended to the command"},
    {"env", "task.env", CTL_KIND_MAP_PUT, C, "K=V", "environment variable (repeatable)"},
    {"env-add", "task.env", CTL_KIND_MAP_PUT, U, "K=V", "add or change a variable (repeatable)"},
    {"env-rm", "task.env", CTL_KIND_MAP_REMOVE, U, "K", "remove a variable (repeatable)"},
    {"label", "labels", CTL_KIND_MAP_PUT, C, "K=V", "service label (repeatable)"},
    {"label-add", "labels", CTL_KIND_MAP_PUT, U, "K=V", "add or change a label (repeatable)"},
    {"label-rm", "labels", CTL_KIND_MAP_REMOVE, U, "K", "remove a label (repeatable)"},
    {"constraint", "placement.constraints", CTL_KIND_LIST_APPEND, C, "EXPR",
     "placement constraint such as node.labels.zone==a (repeatable)"},
    {"constraint-add", "placement.constraints", CTL_KIND_LIST_APPEND, U, "EXPR",
     "add a placement constraint (repeatable)"},
    {"constraint-rm", "placement.constraints", CTL_KIND_LIST_REMOVE, U, "EXPR",
     "remove a placement constraint (repeatable)"},
    {"max-replicas-per-node", "placement.max_replicas_per_node", CTL_KIND_INT, C | U, "N",
     "at most N replicas on one node (0: no limit)"},
    {"placement-strategy", "placement.strategy", CTL_KIND_STRING, C | U, "S", "spread or binpack"},
    {"workdir", "task.workdir", CTL_KIND_STRING, C | U, "DIR", "working directory"},
    {"user", "task.user", CTL_KIND_STRING, C | U, "USER", "user: name, uid or uid:gid"},
    {"network", "task.network", CTL_KIND_STRING, C | U, "NET", "host or bridge"},
    {"restart-condition", "task.restart.condition", CTL_KIND_STRING, C | U, "C",
     "none, on-failure or any"},
    {"restart-delay", "task.restart.delay", CTL_KIND_STRING, C | U, "D", "delay between restarts"},
    {"restart-max-attempts", "task.restart.max_attempts", CTL_KIND_INT, C | U, "N",
     "restarts before giving up (0: unlimited)"},
    {"restart-window", "task.restart.window", CTL_KIND_STRING, C | U, "D",
     "window in which restarts are counted"},
    {"stop-signal", "task.stop_signal", CTL_KIND_STRING_INT, C | U, "SIG",
     "signal that stops a task (name or number)"},
    {"stop-grace-period", "task.stop_grace_period", CTL_KIND_STRING, C | U, "D",
     "wait before killing a stopping task"},
    {"reserve-cpu", "task.resources.reservations.cpu", CTL_KIND_NUMBER, C | U, "X",
     "CPUs reserved, e.g. 0.5"},
    {"reserve-memory", "task.resources.reservations.memory", CTL_KIND_STRING_INT, C | U, "SIZE",
     "memory reserved, e.g. 64M"},
    {"limit-cpu", "task.resources.limits.cpu", CTL_KIND_NUMBER, C | U, "X", "CPU limit"},
    {"limit-memory", "task.resources.limits.memory", CTL_KIND_STRING_INT, C | U, "SIZE",
     "memory limit, e.g. 1G"},
    {"limit-pids", "task.resources.limits.pids", CTL_KIND_INT, C | U, "N",
     "process limit (0: none)"},
    {"update-parallelism", "update.parallelism", CTL_KIND_INT, C | U, "N",
     "tasks updated at once (0: all)"},
    {"update-delay", "update.delay", CTL_KIND_STRING, C | U, "D", "delay between update batches"},
    {"update-order", "update.order", CTL_KIND_STRING, C | U, "O", "stop-first or start-first"},
    {"update-failure-action", "update.failure_action", CTL_KIND_STRING, C | U, "A",
     "pause, continue or rollback"},
    {"update-monitor", "update.monitor", CTL_KIND_STRING, C | U, "D",
     "how long a new task is watched for failure"},
    {"update-max-failure-ratio", "update.max_failure_ratio", CTL_KIND_NUMBER, C | U, "X",
     "failure ratio tolerated, 0..1"},
    {"update-progress-deadline", "update.progress_deadline", CTL_KIND_STRING, C | U, "D",
     "time an update may take"},
};

#undef C
#undef U

struct option *ctl_spec_options(unsigned where, const struct option *extra, size_t nextra)
{
    struct option *opts = xcalloc(ARRAY_SIZE(flags) + nextra + 1, sizeof(*opts));
    size_t n = 0;
    for (size_t i = 0; i < ARRAY_SIZE(flags); i++) {
        if (flags[i].where & where)
            opts[n++] =
                (struct option){flags[i].flag, required_argument, NULL, CTL_SPEC_OPT_BASE + (int)i};
    }
    for (size_t i = 0; i < nextra; i++)
        opts[n++] = extra[i];
    return opts;
}

const struct ctl_spec_flag *ctl_spec_flag_at(int val)
{
    if (val < CTL_SPEC_OPT_BASE || val >= CTL_SPEC_OPT_BASE + (int)ARRAY_SIZE(flags))
        return NULL;
    return &flags[val - CTL_SPEC_OPT_BASE];
}

void ctl_spec_print_flags(unsigned where, FILE *out, int width)
{
    for (size_t i = 0; i < ARRAY_SIZE(flags); i++) {
        if (!(flags[i].where & where))
            continue;
        char left[64];
        snprintf(left, sizeof(left), "--%s %s", flags[i].flag, flags[i].metavar);
        fprintf(out, "  %-*s %s\n", width, left, flags[i].help);
    }
}

/* Splits s into words as a POSIX shell does, without expansions: blanks
 * separate words, '...' is literal, "..." allows \" \\ \$ \`, and \ outside
 * quotes escapes the next character. Appends the words to list when it is
 * not NULL. Returns 0 or -EINVAL for an unterminated quote or escape. */
static int split_words(const char *s, json_t *list)
{
    struct common_buf w = {0};
    int in_word = 0, rv = 0;
    for (const char *p = s;; p++) {
        if (*p == '\0' || strchr(" \t\n", *p)) {
            if (in_word && list)
                json_array_append_new(list, json_string(w.data ? w.data : ""));
            common_buf_reset(&w);
            in_word = 0;
            if (*p == '\0')
                break;
            continue;
        }
        in_word = 1;
        if (*p == '\'') {
            const char *end = strchr(p + 1, '\'');
            if (!end) {
                rv = -EINVAL;
                break;
            }
            common_buf_append(&w, p + 1, (size_t)(end - p - 1));
            p = end;
        } else if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1] && strchr("\"\\$`", p[1]))
                    p++;
                common_buf_append(&w, p, 1);
            }
            if (!*p) {
                rv = -EINVAL;
                break;
            }
        } else if (*p == '\\') {
            if (!p[1]) {
                rv = -EINVAL;
                break;
            }
            common_buf_append(&w, ++p, 1);
        } else {
            common_buf_append(&w, p, 1);
        }
    }
    common_buf_free(&w);
    return rv;
}

/* Parses a whole string as a decimal integer. Returns 0 or -EINVAL. */
static int parse_int(const char *s, json_int_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_number(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v))
        return -EINVAL;
    *out = v;
    return 0;
}

int ctl_spec_check(const struct ctl_spec_flag *flag, const char *value, char *errmsg,
                   size_t errmsg_size)
{
    json_int_t i;
    double d;
    const char *why = NULL;
    switch (flag->kind) {
    case CTL_KIND_INT:
        why = parse_int(value, &i) ? "expected an integer" : NULL;
        break;
    case CTL_KIND_NUMBER:
        why = parse_number(value, &d) ? "expected a number" : NULL;
        break;
    case CTL_KIND_WORDS:
        why = split_words(value, NULL) ? "unterminated quote or trailing backslash" : NULL;
        break;
    case CTL_KIND_MAP_PUT:
        why = (value[0] == '=' || !strchr(value, '=')) ? "expected KEY=VALUE" : NULL;
        break;
    case CTL_KIND_MAP_REMOVE:
        why = !*value ? "expected a KEY" : NULL;
        break;
    default:
        break;
    }
    json_auto_t *probe = json_string(value);
    if (!probe)
        why = "not valid UTF-8";
    if (!why)
        return 0;
    snprintf(errmsg, errmsg_size, "--%s: %s, not '%s'", flag->flag, why, value);
    return -EINVAL;
}

/* Returns the object that holds the last step of path in root, creating
 * missing objects on the way; *leaf is set to the last step. Returns NULL
 * with errmsg set when a step holds something else than an object. */
static json_t *path_parent(json_t *root, const char *path, const char **leaf, char *errmsg,
                           size_t errmsg_size)
{
    json_t *j = root;
    const char *full = path, *dot;
    while ((dot = strchr(path, '.'))) {
        json_t *next = json_object_getn(j, path, (size_t)(dot - path));
        if (!next) {
            next = json_object();
            json_object_setn_new(j, path, (size_t)(dot - path), next);
        } else if (!json_is_object(next)) {
            snprintf(errmsg, errmsg_size, "%.*s is not an object", (int)(dot - full), full);
            return NULL;
        }
        j = next;
        path = dot + 1;
    }
    *leaf = path;
    return j;
}

/* Turns an env list of "K=V" strings into an object. Returns NULL when an
 * entry is not of that form. Transferred: json_decref. */
static json_t *list_to_map(const json_t *list)
{
    json_t *map = json_object();
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item)
    {
        const char *s = json_string_value(item);
        const char *eq = s ? strchr(s, '=') : NULL;
        if (!eq || eq == s) {
            json_decref(map);
            return NULL;
        }
        json_object_setn_new(map, s, (size_t)(eq - s), json_string(eq + 1));
    }
    return map;
}

/* Puts "K=V" into, or removes "K" from, the object parent[leaf]. */
static int edit_map(json_t *parent, const char *leaf, const struct ctl_spec_edit *edit,
                    char *errmsg, size_t errmsg_size)
{
    json_t *map = json_object_get(parent, leaf);
    if (json_is_array(map)) {
        map = list_to_map(map);
        if (!map) {
            snprintf(errmsg, errmsg_size, "%s holds an entry that is not KEY=VALUE",
                     edit->flag->path);
            return -EINVAL;
        }
        json_object_set_new(parent, leaf, map);
    } else if (!map) {
        map = json_object();
        json_object_set_new(parent, leaf, map);
    } else if (!json_is_object(map)) {
        snprintf(errmsg, errmsg_size, "%s is not an object", edit->flag->path);
        return -EINVAL;
    }
    const char *value = edit->value;
    if (edit->flag->kind == CTL_KIND_MAP_REMOVE) {
        json_object_del(map, value);
        return 0;
    }
    const char *eq = strchr(value, '=');
    json_object_setn_new(map, value, (size_t)(eq - value), json_string(eq + 1));
    return 0;
}

/* Appends value to, or removes every copy of it from, the list parent[leaf]. */
static int edit_list(json_t *parent, const char *leaf, const struct ctl_spec_edit *edit,
                     char *errmsg, size_t errmsg_size)
{
    json_t *list = json_object_get(parent, leaf);
    if (!list) {
        list = json_array();
        json_object_set_new(parent, leaf, list);
    } else if (!json_is_array(list)) {
        snprintf(errmsg, errmsg_size, "%s is not a list", edit->flag->path);
        return -EINVAL;
    }
    if (edit->flag->kind == CTL_KIND_LIST_APPEND)
        return json_array_append_new(list, json_string(edit->value)) ? -EINVAL : 0;
    for (size_t i = json_array_size(list); i-- > 0;) {
        const char *s = json_string_value(json_array_get(list, i));
        if (s && strcmp(s, edit->value) == 0)
            json_array_remove(list, i);
    }
    return 0;
}

/* The JSON value a flag of a scalar or words kind sets (transferred). */
static json_t *scalar_value(const struct ctl_spec_flag *flag, const char *value)
{
    json_int_t i = 0;
    double d = 0;
    size_t len = strlen(value);
    switch (flag->kind) {
    case CTL_KIND_STRING_INT:
        if (len > 0 && len <= 18 && strspn(value, "0123456789") == len && !parse_int(value, &i))
            return json_integer(i);
        return json_string(value);
    case CTL_KIND_INT:
        parse_int(value, &i);
        return json_integer(i);
    case CTL_KIND_NUMBER:
        parse_number(value, &d);
        return json_real(d);
    case CTL_KIND_WORDS: {
        json_t *list = json_array();
        split_words(value, list);
        return list;
    }
    default:
        return json_string(value);
    }
}

int ctl_spec_apply(json_t *spec, const struct ctl_spec_edit *edit, char *errmsg, size_t errmsg_size)
{
    const char *leaf;
    if (!json_is_object(spec)) {
        snprintf(errmsg, errmsg_size, "the spec is not an object");
        return -EINVAL;
    }
    json_t *parent = path_parent(spec, edit->flag->path, &leaf, errmsg, errmsg_size);
    if (!parent)
        return -EINVAL;
    switch (edit->flag->kind) {
    case CTL_KIND_MAP_PUT:
    case CTL_KIND_MAP_REMOVE:
        return edit_map(parent, leaf, edit, errmsg, errmsg_size);
    case CTL_KIND_LIST_APPEND:
    case CTL_KIND_LIST_REMOVE:
        return edit_list(parent, leaf, edit, errmsg, errmsg_size);
    default:
        break;
    }
    json_t *value = scalar_value(edit->flag, edit->value);
    if (!value || json_object_set_new(parent, leaf, value) != 0) {
        snprintf(errmsg, errmsg_size, "--%s: cannot set %s", edit->flag->flag, edit->flag->path);
        return -EINVAL;
    }
    return 0;
}

/* Reads all of fd into b, failing above CTL_MAX_FILE bytes. Returns 0 or
 * -errno (-EFBIG when too large). */
static int read_all(int fd, struct common_buf *b)
{
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return 0;
        if ((size_t)n > CTL_MAX_FILE - b->len)
            return -EFBIG;
        common_buf_append(b, chunk, (size_t)n);
    }
}

int ctl_read_json_file(const char *path, json_t **out, char *errmsg, size_t errmsg_size)
{
    int is_stdin = strcmp(path, "-") == 0;
    const char *name = is_stdin ? "<stdin>" : path;
    _cleanup_close_ int fd = is_stdin ? -1 : open(path, O_RDONLY | O_CLOEXEC);
    if (!is_stdin && fd < 0) {
        int rv = -errno;
        snprintf(errmsg, errmsg_size, "%s: %s", name, strerror(-rv));
        return rv;
    }
    struct common_buf b = {0};
    int rv = read_all(is_stdin ? STDIN_FILENO : fd, &b);
    if (rv != 0) {
        common_buf_free(&b);
        if (rv == -EFBIG)
            snprintf(errmsg, errmsg_size, "%s: larger than %u bytes", name, CTL_MAX_FILE);
        else
            snprintf(errmsg, errmsg_size, "%s: %s", name, strerror(-rv));
        return rv;
    }
    json_error_t jerr;
    *out = json_loadb(b.data ? b.data : "", b.len, JSON_REJECT_DUPLICATES, &jerr);
    common_buf_free(&b);
    if (!*out) {
        snprintf(errmsg, errmsg_size, "%s:%d:%d: %s", name, jerr.line, jerr.column, jerr.text);
        return -EINVAL;
    }
    return 0;
}
