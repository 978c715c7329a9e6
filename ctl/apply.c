/* shoal apply: create or replace the services of a spec file. */
#include <string.h>

#include "common/util.h"
#include "ctl/ctl.h"

static const struct option apply_opts[] = {
    {"file", required_argument, NULL, 'f'},
    {"output", required_argument, NULL, 'o'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Checks that every spec of list is an object with a string name, so that
 * nothing is sent when the file is malformed. Returns 0 or an exit code with
 * the error printed. */
static int check_specs(const char *file, const json_t *list)
{
    size_t i;
    json_t *spec;
    json_array_foreach(list, i, spec)
    {
        const char *what = !json_is_object(spec)                            ? "is not an object"
                           : !json_is_string(json_object_get(spec, "name")) ? "has no string name"
                                                                            : NULL;
        if (what) {
            if (json_array_size(list) == 1)
                return ctl_error("%s: the spec %s", file, what);
            return ctl_error("%s: entry %zu %s", file, i, what);
        }
    }
    return 0;
}

/* PUTs one spec. Returns an exit code, the error printed. */
static int apply_one(struct ctl_ctx *ctx, json_t *spec, json_t *answers)
{
    const char *name = json_string_value(json_object_get(spec, "name"));
    _cleanup_free_ char *esc = ctl_http_escape(name);
    _cleanup_free_ char *path = xmalloc(strlen(esc) + sizeof("/v1/services/"));
    sprintf(path, "/v1/services/%s", esc);
    json_auto_t *svc = NULL;
    long status = 0;
    if (ctl_http_request(ctx, "PUT", path, spec, &svc, &status) < 0)
        return ctl_error("%s: %s", name, ctx->errmsg);
    if (ctx->output == CTL_OUT_JSON)
        json_array_append(answers, svc);
    else
        printf("%s: %s\n", name, status == 201 ? "created" : "updated");
    return CTL_EXIT_OK;
}

int ctl_apply(struct ctl_ctx *ctx, int argc, char **argv)
{
    const char *file = NULL;
    int c;
    while ((c = ctl_getopt(ctx, argc, argv, ":ho:f:", apply_opts)) >= 0) {
        if (c == 'f')
            file = optarg;
    }
    if (c == CTL_OPT_STOP)
        return ctx->exit;
    if (optind < argc)
        return ctl_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
    if (!file)
        return ctl_usage_error(ctx, "-f FILE is required");

    char errmsg[512];
    json_auto_t *doc = NULL;
    if (ctl_read_json_file(file, &doc, errmsg, sizeof(errmsg)) < 0)
        return ctl_error("%s", errmsg);
    int single = !json_is_array(doc);
    json_auto_t *list = single ? json_pack("[O]", doc) : json_incref(doc);
    int rv = check_specs(strcmp(file, "-") == 0 ? "<stdin>" : file, list);
    if (rv != 0)
        return rv;

    json_auto_t *answers = json_array();
    size_t i;
    json_t *spec;
    json_array_foreach(list, i, spec)
    {
        if (apply_one(ctx, spec, answers) != CTL_EXIT_OK)
            rv = CTL_EXIT_ERROR;
    }
    if (ctx->output == CTL_OUT_JSON && !single)
        ctl_print_json(answers);
    else if (ctx->output == CTL_OUT_JSON && json_array_size(answers) == 1)
        ctl_print_json(json_array_get(answers, 0));
    return rv;
}
