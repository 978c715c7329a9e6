/* shoal service: create, list, inspect, remove, scale and update services. */
#include <errno.h>
#include <string.h>

#include "common/buf.h"
#include "common/util.h"
#include "ctl/ctl.h"

/* "/v1/services/<name escaped><suffix>" (transferred: free()). */
static const struct ctl_collection services = {"/v1/services", "service", "service name",
                                               ctl_print_service_table};

static char *service_path(const char *name, const char *suffix)
{
    return ctl_object_path(&services, name, suffix);
}

/* Parses the spec flags of `where` and the extra options of a command into
 * edits (an array of at least argc entries). Returns -1 when the command
 * goes on, else an exit code. *file receives -f's value when extra has it;
 * *detach is set by --detach when extra has it: 1 alone or =true, 0 for
 * =false. */
static int spec_options(struct ctl_ctx *ctx, int argc, char **argv, unsigned where,
                        const char *shortopts, const struct option *extra, size_t nextra,
                        struct ctl_spec_edit *edits, size_t *nedits, const char **file, int *detach)
{
    _cleanup_free_ struct option *opts = ctl_spec_options(where, extra, nextra);
    char errmsg[256];
    int c;
    while ((c = ctl_getopt(ctx, argc, argv, shortopts, opts)) >= 0) {
        const struct ctl_spec_flag *flag = ctl_spec_flag_at(c);
        if (c == 'f') {
            *file = optarg;
        } else if (c == 'D') {
            if (!optarg || strcmp(optarg, "true") == 0)
                *detach = 1;
            else if (strcmp(optarg, "false") == 0)
                *detach = 0;
            else
                return ctl_usage_error(ctx, "--detach: expected true or false, not '%s'", optarg);
        } else if (flag) {
            if (ctl_spec_check(flag, optarg, errmsg, sizeof(errmsg)) < 0)
                return ctl_usage_error(ctx, "%s", errmsg);
            edits[(*nedits)++] = (struct ctl_spec_edit){flag, optarg};
        }
    }
    return c == CTL_OPT_STOP ? ctx->exit : -1;
}

/* Applies edits to spec. Returns 0 or an exit code with the error printed. */
static int apply_edits(json_t *spec, const struct ctl_spec_edit *edits, size_t nedits)
{
    char errmsg[256];
    for (size_t i = 0; i < nedits; i++) {
        if (ctl_spec_apply(spec, &edits[i], errmsg, sizeof(errmsg)) < 0)
            return ctl_error("%s", errmsg);
    }
    return 0;
}

/* Starts the spec of `service create` from -f FILE, or empty. Returns 0 or
 * an exit code with the error printed. */
static int load_create_spec(const char *file, json_t **spec)
{
    char errmsg[512];
    if (!file) {
        *spec = json_object();
        return 0;
    }
    if (ctl_read_json_file(file, spec, errmsg, sizeof(errmsg)) < 0)
        return ctl_error("%s", errmsg);
    if (json_is_array(*spec))
        return ctl_error("%s holds a list of specs: use 'shoal apply -f %s'", file, file);
    if (!json_is_object(*spec))
        return ctl_error("%s does not hold a JSON object", file);
    return 0;
}

/* Sets task.command of spec to the n words of argv. Returns 0 or an exit
 * code with the error printed. */
static int set_command(json_t *spec, int n, char **argv)
{
    json_t *task = json_object_get(spec, "task");
    if (!task) {
        task = json_object();
        json_object_set_new(spec, "task", task);
    }
    if (!json_is_object(task))
        return ctl_error("task is not an object");
    json_t *cmd = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(cmd, json_string(argv[i])); /* checked to be UTF-8 */
    json_object_set_new(task, "command", cmd);
    return 0;
}

static const struct option create_extra[] = {
    {"file", required_argument, NULL, 'f'},
    {"output", required_argument, NULL, 'o'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int ctl_service_create(struct ctl_ctx *ctx, int argc, char **argv)
{
    _cleanup_free_ struct ctl_spec_edit *edits = xcalloc((size_t)argc, sizeof(*edits));
    size_t nedits = 0;
    const char *file = NULL;
    int rv = spec_options(ctx, argc, argv, CTL_FLAGS_CREATE, "+:ho:f:", create_extra,
                          ARRAY_SIZE(create_extra) - 1, edits, &nedits, &file, NULL);
    if (rv >= 0)
        return rv;
    for (int i = optind; i < argc; i++) {
        json_auto_t *probe = json_string(argv[i]);
        if (!probe)
            return ctl_usage_error(ctx, "the command holds an argument that is not UTF-8");
    }
    for (size_t i = 0; optind < argc && i < nedits; i++) {
        if (strcmp(edits[i].flag->flag, "command") == 0)
            return ctl_usage_error(ctx, "give the command either with --command or after "
                                        "the options, not both");
    }

    json_auto_t *spec = NULL;
    if ((rv = load_create_spec(file, &spec)) != 0 || (rv = apply_edits(spec, edits, nedits)) != 0)
        return rv;
    if (optind < argc && (rv = set_command(spec, argc - optind, argv + optind)) != 0)
        return rv;
    if (!json_is_string(json_object_get(spec, "name")))
        return ctl_usage_error(ctx, "--name is required (or a \"name\" in the file)");

    json_auto_t *svc = NULL;
    if (ctl_http_request(ctx, "POST", "/v1/services", spec, &svc, NULL) < 0)
        return ctl_error("%s", ctx->errmsg);
    if (ctx->output == CTL_OUT_JSON)
        ctl_print_json(svc);
    else
        printf("%s\n", ctl_json_str(svc, "name", json_string_value(json_object_get(spec, "name"))));
    return CTL_EXIT_OK;
}

int ctl_service_ls(struct ctl_ctx *ctx, int argc, char **argv)
{
    return ctl_object_ls(&services, ctx, argc, argv);
}

int ctl_service_inspect(struct ctl_ctx *ctx, int argc, char **argv)
{
    return ctl_object_inspect(&services, ctx, argc, argv);
}

int ctl_service_rm(struct ctl_ctx *ctx, int argc, char **argv)
{
    int rv = ctl_plain_options(ctx, argc, argv);
    if (rv >= 0)
        return rv;
    if (optind >= argc)
        return ctl_usage_error(ctx, "give at least one service name");
    json_auto_t *answers = json_array();
    rv = CTL_EXIT_OK;
    for (int i = optind; i < argc; i++) {
        _cleanup_free_ char *path = service_path(argv[i], "");
        json_t *answer = NULL;
        if (ctl_http_request(ctx, "DELETE", path, NULL, &answer, NULL) < 0) {
            rv = ctl_error("%s: %s", argv[i], ctx->errmsg);
            continue;
        }
        if (ctx->output == CTL_OUT_JSON)
            json_array_append(answers, answer);
        else
            printf("%s\n", argv[i]);
        json_decref(answer);
    }
    if (ctx->output == CTL_OUT_JSON)
        ctl_print_answers(answers, argc - optind);
    return rv;
}

/* Splits "NAME=N" into name and replicas. Returns 0 or -EINVAL. */
static int parse_scale_arg(const char *arg, char **name, json_int_t *replicas)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1] || strspn(eq + 1, "0123456789") != strlen(eq + 1) ||
        strlen(eq + 1) > 18)
        return -EINVAL;
    *replicas = strtoll(eq + 1, NULL, 10);
    *name = xstrndup(arg, (size_t)(eq - arg));
    return 0;
}

/* Scales one service. Returns an exit code, the error printed. */
static int scale_one(struct ctl_ctx *ctx, const char *name, json_int_t replicas, json_t *answers)
{
    _cleanup_free_ char *path = service_path(name, "/scale");
    json_auto_t *body = json_pack("{sI}", "replicas", replicas);
    json_auto_t *svc = NULL;
    if (ctl_http_request(ctx, "POST", path, body, &svc, NULL) < 0)
        return ctl_error("%s: %s", name, ctx->errmsg);
    if (ctx->output == CTL_OUT_JSON)
        json_array_append(answers, svc);
    else
        printf("%s scaled to %" JSON_INTEGER_FORMAT "\n", name, replicas);
    return CTL_EXIT_OK;
}

int ctl_service_scale(struct ctl_ctx *ctx, int argc, char **argv)
{
    int rv = ctl_plain_options(ctx, argc, argv);
    if (rv >= 0)
        return rv;
    if (optind >= argc)
        return ctl_usage_error(ctx, "give at least one NAME=REPLICAS");
    for (int i = optind; i < argc; i++) {
        _cleanup_free_ char *name = NULL;
        json_int_t n;
        if (parse_scale_arg(argv[i], &name, &n) < 0)
            return ctl_usage_error(ctx, "expected NAME=REPLICAS with a number, not '%s'", argv[i]);
    }
    json_auto_t *answers = json_array();
    rv = CTL_EXIT_OK;
    for (int i = optind; i < argc; i++) {
        _cleanup_free_ char *name = NULL;
        json_int_t n = 0;
        parse_scale_arg(argv[i], &name, &n);
        if (scale_one(ctx, name, n, answers) != CTL_EXIT_OK)
            rv = CTL_EXIT_ERROR;
    }
    if (ctx->output == CTL_OUT_JSON)
        ctl_print_answers(answers, argc - optind);
    return rv;
}

/* --detach=false: writes svc back like ctl_object_write_back, without
 * printing it, then follows the rollout (if the write started none, or
 * another one is under way, see ctl_rollout_follow). Returns an exit code. */
static int update_and_wait(struct ctl_ctx *ctx, const char *path, const char *name,
                           json_int_t index, json_t *svc)
{
    json_int_t version = json_integer_value(json_object_get(svc, "version"));
    struct common_buf url = {0};
    common_buf_printf(&url, "%s?index=%" JSON_INTEGER_FORMAT, path, index);
    long status = 0;
    int err = ctl_http_request(ctx, "PUT", url.data, svc, NULL, &status);
    common_buf_free(&url);
    if (err < 0 && status == 409)
        return ctl_error("%s: %s; the service changed since it was read: run the update again",
                         name, ctx->errmsg);
    if (err < 0)
        return ctl_error("%s: %s", name, ctx->errmsg);
    return ctl_rollout_follow(ctx, name, -1, version);
}

/* Reads a service, applies edits and writes it back if its modify_index
 * has not moved; detach 0: then waits for its rollout. Returns an exit
 * code, the error printed. */
static int update_one(struct ctl_ctx *ctx, const char *name, const struct ctl_spec_edit *edits,
                      size_t nedits, int detach)
{
    _cleanup_free_ char *path = service_path(name, "");
    json_auto_t *svc = NULL;
    if (ctl_http_request(ctx, "GET", path, NULL, &svc, NULL) < 0)
        return ctl_error("%s: %s", name, ctx->errmsg);
    json_t *index = json_object_get(svc, "modify_index");
    if (!json_is_object(svc) || !json_is_integer(index))
        return ctl_error("%s: the answer of shoald has no modify_index", name);
    int rv = apply_edits(svc, edits, nedits);
    if (rv != 0)
        return rv;
    if (!detach)
        return update_and_wait(ctx, path, name, json_integer_value(index), svc);
    return ctl_object_write_back(&services, ctx, "PUT", path, name, json_integer_value(index), svc);
}

static const struct option update_extra[] = {
    {"detach", optional_argument, NULL, 'D'},
    {"output", required_argument, NULL, 'o'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int ctl_service_update(struct ctl_ctx *ctx, int argc, char **argv)
{
    _cleanup_free_ struct ctl_spec_edit *edits = xcalloc((size_t)argc, sizeof(*edits));
    size_t nedits = 0;
    const char *unused = NULL;
    int detach = 1;
    int rv = spec_options(ctx, argc, argv, CTL_FLAGS_UPDATE, ":ho:", update_extra,
                          ARRAY_SIZE(update_extra) - 1, edits, &nedits, &unused, &detach);
    if (rv >= 0)
        return rv;
    if (optind >= argc)
        return ctl_usage_error(ctx, "give the name of the service to update");
    if (argc - optind > 1)
        return ctl_usage_error(ctx, "unexpected argument '%s'", argv[optind + 1]);
    if (nedits == 0)
        return ctl_usage_error(ctx, "nothing to change: give at least one option");
    if (!detach && ctx->output == CTL_OUT_TABLE)
        return ctl_usage_error(ctx, "-o: --detach=false prints lines or json");
    return update_one(ctx, argv[optind], edits, nedits, detach);
}
