/* shoal plan: what `shoal apply -f FILE` would change, without changing
 * anything (POST /v1/plan), and the apply command that refuses to write if
 * a service changed in between. Exit codes as kubectl diff's: 0 no change,
 * 1 changes, 2 error. */
#include <string.h>

#include "common/buf.h"
#include "common/util.h"
#include "ctl/ctl.h"

enum { PLAN_NO_CHANGE = 0, PLAN_CHANGES = 1, PLAN_ERROR = 2 };

static const struct option plan_opts[] = {
    {"file", required_argument, NULL, 'f'},
    {"output", required_argument, NULL, 'o'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* A JSON value on one line (transferred: free()). */
static char *compact(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    return s ? s : xstrdup("?");
}

static void print_diff(const json_t *diff)
{
    size_t i;
    json_t *d;
    json_array_foreach(diff, i, d)
    {
        const char *path = ctl_json_str(d, "path", "");
        const json_t *old = json_object_get(d, "old"), *new = json_object_get(d, "new");
        _cleanup_free_ char *o = compact(old), *n = compact(new);
        if (json_is_null(old))
            printf("  + %s: %s\n", path, n);
        else if (json_is_null(new))
            printf("  - %s: %s\n", path, o);
        else
            printf("  ~ %s: %s -> %s\n", path, o, n);
    }
}

/* "web.3" for a replica, "web@w1" for the task of a global service. */
static void print_place(const char *name, const json_t *e)
{
    json_int_t slot = json_integer_value(json_object_get(e, "slot"));
    if (slot > 0)
        printf("%s.%" JSON_INTEGER_FORMAT, name, slot);
    else
        printf("%s@%s", name, ctl_json_str(e, "node", "?"));
}

static void print_tasks(const char *name, const json_t *tasks)
{
    const json_t *create = json_object_get(tasks, "create"), *stop = json_object_get(tasks, "stop");
    const json_t *replace = json_object_get(tasks, "replace");
    const json_t *unplaced = json_object_get(tasks, "unplaced");
    if (!json_array_size(create) && !json_array_size(stop) && !json_array_size(replace) &&
        !json_array_size(unplaced))
        return;
    printf("  tasks:\n");
    size_t i;
    json_t *e;
    json_array_foreach(create, i, e)
    {
        printf("    create   ");
        print_place(name, e);
        printf(" on %s", ctl_json_str(e, "node", "?"));
        if (json_is_string(json_object_get(e, "replaces")))
            printf(" (replaces %s)", ctl_json_str(e, "replaces", ""));
        printf("\n");
    }
    json_array_foreach(stop, i, e)
    {
        printf("    stop     ");
        print_place(name, e);
        printf(" %s on %s: %s\n", ctl_json_str(e, "id", "?"), ctl_json_str(e, "node", "?"),
               ctl_json_str(e, "reason", "?"));
    }
    json_array_foreach(replace, i, e)
    {
        printf("    replace  ");
        print_place(name, e);
        printf(" %s on %s\n", ctl_json_str(e, "id", "?"), ctl_json_str(e, "node", "?"));
    }
    json_array_foreach(unplaced, i, e)
    {
        printf("    unplaced ");
        print_place(name, e);
        printf(": %s\n", ctl_json_str(e, "reason", "?"));
    }
}

/* Prints one service's plan. */
static void print_one(const json_t *p)
{
    const char *name = ctl_json_str(p, "name", "?");
    const char *action = ctl_json_str(p, "action", "?");
    json_int_t index = json_integer_value(json_object_get(p, "modify_index"));
    json_int_t version = json_integer_value(json_object_get(p, "version"));
    if (strcmp(action, "create") == 0)
        printf("%s: create\n", name);
    else
        printf("%s: %s (version %" JSON_INTEGER_FORMAT ", modify_index %" JSON_INTEGER_FORMAT ")\n",
               name, strcmp(action, "none") == 0 ? "no change" : action, version, index);
    print_diff(json_object_get(p, "diff"));
    print_tasks(name, json_object_get(p, "tasks"));
}

/* Writes s to b quoted for a POSIX shell when it needs it. */
static void shell_word(struct common_buf *b, const char *s)
{
    if (*s &&
        strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-+:=,@") ==
            strlen(s)) {
        common_buf_puts(b, s);
        return;
    }
    common_buf_puts(b, "'");
    for (; *s; s++) {
        if (*s == '\'')
            common_buf_puts(b, "'\\''");
        else
            common_buf_append(b, s, 1);
    }
    common_buf_puts(b, "'");
}

/* The apply command that refuses to write a service changed since this
 * plan: every service of the file with its modify_index. */
static void print_apply_line(const char *file, const json_t *plans, int single)
{
    struct common_buf b = {0};
    common_buf_puts(&b, "apply with: shoal apply -f ");
    shell_word(&b, file);
    size_t i;
    json_t *p;
    json_array_foreach(plans, i, p)
    {
        json_int_t index = json_integer_value(json_object_get(p, "modify_index"));
        if (single)
            common_buf_printf(&b, " --check-index %" JSON_INTEGER_FORMAT, index);
        else
            common_buf_printf(&b, " --check-index %s=%" JSON_INTEGER_FORMAT,
                              ctl_json_str(p, "name", "?"), index);
    }
    printf("%s\n", b.data);
    common_buf_free(&b);
}

/* Checks that the answer has the shape asked for: an object per spec. */
static int answer_ok(const json_t *answer, int single, size_t n)
{
    if (single)
        return json_is_object(answer);
    if (!json_is_array(answer) || json_array_size(answer) != n)
        return 0;
    size_t i;
    json_t *p;
    json_array_foreach(answer, i, p) if (!json_is_object(p)) return 0;
    return 1;
}

int ctl_plan(struct ctl_ctx *ctx, int argc, char **argv)
{
    const char *file = NULL;
    int c;
    while ((c = ctl_getopt(ctx, argc, argv, ":ho:f:", plan_opts)) >= 0) {
        if (c == 'f')
            file = optarg;
    }
    if (c == CTL_OPT_STOP) /* help (0), or a usage or token-file error */
        return ctx->exit == CTL_EXIT_OK ? CTL_EXIT_OK : PLAN_ERROR;
    if (optind < argc)
        return ctl_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
    if (!file)
        return ctl_usage_error(ctx, "-f FILE is required");

    char errmsg[512];
    json_auto_t *doc = NULL;
    if (ctl_read_json_file(file, &doc, errmsg, sizeof(errmsg)) < 0) {
        ctl_error("%s", errmsg);
        return PLAN_ERROR;
    }
    int single = !json_is_array(doc);
    json_auto_t *list = single ? json_pack("[O]", doc) : json_incref(doc);
    if (ctl_check_specs(strcmp(file, "-") == 0 ? "<stdin>" : file, list) != 0)
        return PLAN_ERROR;

    json_auto_t *answer = NULL;
    if (ctl_http_request(ctx, "POST", "/v1/plan", doc, &answer, NULL) < 0) {
        ctl_error("%s", ctx->errmsg);
        return PLAN_ERROR;
    }
    if (!answer_ok(answer, single, json_array_size(list))) {
        ctl_error("shoald answered something else than a plan for each service");
        return PLAN_ERROR;
    }
    json_auto_t *plans = single ? json_pack("[O]", answer) : json_incref(answer);
    int changes = 0;
    size_t i;
    json_t *p;
    json_array_foreach(plans, i, p)
    {
        changes |= strcmp(ctl_json_str(p, "action", ""), "none") != 0;
    }
    if (ctx->output == CTL_OUT_JSON) {
        ctl_print_json(answer);
        return changes ? PLAN_CHANGES : PLAN_NO_CHANGE;
    }
    json_array_foreach(plans, i, p)
    {
        print_one(p);
    }
    if (changes)
        print_apply_line(file, plans, single);
    return changes ? PLAN_CHANGES : PLAN_NO_CHANGE;
}
