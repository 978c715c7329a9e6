/* shoal apply: create or replace the services of a spec file, optionally
 * only if they did not change since a plan (--check-index). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/util.h"
#include "ctl/ctl.h"

enum { OPT_CHECK_INDEX = 256 };

static const struct option apply_opts[] = {
    {"file", required_argument, NULL, 'f'},
    {"check-index", required_argument, NULL, OPT_CHECK_INDEX},
    {"output", required_argument, NULL, 'o'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int ctl_check_specs(const char *file, const json_t *list)
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

/* Parses the N of --check-index (decimal digits, no sign). Returns 0 or
 * -EINVAL. */
static int parse_index(const char *s, json_int_t *out)
{
    if (!*s || strspn(s, "0123456789") != strlen(s))
        return -EINVAL;
    errno = 0;
    uintmax_t v = strtoumax(s, NULL, 10);
    if (errno || v > (uintmax_t)INT64_MAX)
        return -EINVAL;
    *out = (json_int_t)v;
    return 0;
}

/* Turns the --check-index values (n of them) into name -> index for the
 * specs of list. Returns 0 with *out set (transferred), or a usage error's
 * exit code with the error printed. */
static int check_indexes(struct ctl_ctx *ctx, const char *const *values, size_t n,
                         const json_t *list, json_t **out)
{
    json_auto_t *want = json_object();
    for (size_t i = 0; i < n; i++) {
        const char *eq = strrchr(values[i], '=');
        const char *num = eq ? eq + 1 : values[i];
        json_int_t index;
        if (parse_index(num, &index) != 0)
            return ctl_usage_error(ctx, "--check-index: expected N or NAME=N with N >= 0, not '%s'",
                                   values[i]);
        _cleanup_free_ char *name =
            eq ? xstrndup(values[i], (size_t)(eq - values[i]))
            : json_array_size(list) == 1
                ? xstrdup(json_string_value(json_object_get(json_array_get(list, 0), "name")))
                : NULL;
        if (!name)
            return ctl_usage_error(ctx,
                                   "--check-index %s: the file holds several services: "
                                   "give NAME=N for each",
                                   values[i]);
        int found = 0;
        size_t k;
        json_t *spec;
        json_array_foreach(list, k, spec)
        {
            found |= strcmp(json_string_value(json_object_get(spec, "name")), name) == 0;
        }
        if (!found)
            return ctl_usage_error(ctx, "--check-index %s: no service \"%s\" in the file",
                                   values[i], name);
        if (json_object_get(want, name))
            return ctl_usage_error(ctx, "--check-index: \"%s\" given twice", name);
        json_object_set_new(want, name, json_integer(index));
    }
    *out = json_incref(want);
    return 0;
}

/* Explains a refused compare-and-set: the service's modify_index now. */
static int stale(struct ctl_ctx *ctx, const char *name, const char *path, json_int_t index)
{
    char why[sizeof(ctx->errmsg)];
    memcpy(why, ctx->errmsg, sizeof(why));
    json_auto_t *svc = NULL;
    long status = 0;
    int err = ctl_http_request(ctx, "GET", path, NULL, &svc, &status);
    if (err == 0 && json_is_integer(json_object_get(svc, "modify_index")))
        return ctl_error("%s changed since the plan (index %" JSON_INTEGER_FORMAT
                         ", now %" JSON_INTEGER_FORMAT "): plan again",
                         name, index, json_integer_value(json_object_get(svc, "modify_index")));
    if (status == 404)
        return ctl_error("%s changed since the plan (index %" JSON_INTEGER_FORMAT
                         ", now deleted): plan again",
                         name, index);
    return ctl_error("%s changed since the plan (index %" JSON_INTEGER_FORMAT "): %s: plan again",
                     name, index, why);
}

/* PUTs one spec, with ?index=N when indexes (name -> N) names it. Returns
 * an exit code, the error printed. */
static int apply_one(struct ctl_ctx *ctx, json_t *spec, const json_t *indexes, json_t *answers)
{
    const char *name = json_string_value(json_object_get(spec, "name"));
    _cleanup_free_ char *esc = ctl_http_escape(name);
    _cleanup_free_ char *path = xmalloc(strlen(esc) + sizeof("/v1/services/"));
    sprintf(path, "/v1/services/%s", esc);
    const json_t *index = json_object_get(indexes, name);
    struct common_buf url = {0};
    common_buf_puts(&url, path);
    if (index)
        common_buf_printf(&url, "?index=%" JSON_INTEGER_FORMAT, json_integer_value(index));
    json_auto_t *svc = NULL;
    long status = 0;
    int err = ctl_http_request(ctx, "PUT", url.data, spec, &svc, &status);
    common_buf_free(&url);
    if (err < 0 && index && status == 409)
        return stale(ctx, name, path, json_integer_value(index));
    if (err < 0)
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
    _cleanup_free_ const char **check = xcalloc((size_t)argc + 1, sizeof(*check));
    size_t n_check = 0;
    int c;
    while ((c = ctl_getopt(ctx, argc, argv, ":ho:f:", apply_opts)) >= 0) {
        if (c == 'f')
            file = optarg;
        else if (c == OPT_CHECK_INDEX)
            check[n_check++] = optarg;
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
    int rv = ctl_check_specs(strcmp(file, "-") == 0 ? "<stdin>" : file, list);
    if (rv != 0)
        return rv;
    json_auto_t *indexes = NULL;
    rv = check_indexes(ctx, check, n_check, list, &indexes);
    if (rv != 0)
        return rv;

    json_auto_t *answers = json_array();
    size_t i;
    json_t *spec;
    json_array_foreach(list, i, spec)
    {
        if (apply_one(ctx, spec, indexes, answers) != CTL_EXIT_OK)
            rv = CTL_EXIT_ERROR;
    }
    if (ctx->output == CTL_OUT_JSON && !single)
        ctl_print_json(answers);
    else if (ctx->output == CTL_OUT_JSON && json_array_size(answers) == 1)
        ctl_print_json(json_array_get(answers, 0));
    return rv;
}
