/* What `service` and `node` share: a collection under /v1, listed and
 * inspected the same way, each with its own table. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/util.h"
#include "ctl/ctl.h"

char *ctl_object_path(const struct ctl_collection *c, const char *name, const char *suffix)
{
    _cleanup_free_ char *esc = ctl_http_escape(name);
    struct common_buf b = {0};
    common_buf_printf(&b, "%s/%s%s", c->path, esc, suffix);
    return common_buf_take(&b, NULL);
}

int ctl_object_ls(const struct ctl_collection *c, struct ctl_ctx *ctx, int argc, char **argv)
{
    int rv = ctl_plain_options(ctx, argc, argv);
    if (rv >= 0)
        return rv;
    if (optind < argc)
        return ctl_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
    json_auto_t *list = NULL;
    if (ctl_http_request(ctx, "GET", c->path, NULL, &list, NULL) < 0)
        return ctl_error("%s", ctx->errmsg);
    if (!json_is_array(list))
        return ctl_error("shoald answered something else than a list of %ss", c->what);
    if (ctx->output == CTL_OUT_JSON)
        ctl_print_json(list);
    else
        c->table(list);
    return CTL_EXIT_OK;
}

int ctl_object_inspect(const struct ctl_collection *c, struct ctl_ctx *ctx, int argc, char **argv)
{
    int rv = ctl_plain_options(ctx, argc, argv);
    if (rv >= 0)
        return rv;
    if (optind >= argc)
        return ctl_usage_error(ctx, "give at least one %s", c->operand);
    json_auto_t *found = json_array();
    rv = CTL_EXIT_OK;
    for (int i = optind; i < argc; i++) {
        _cleanup_free_ char *path = ctl_object_path(c, argv[i], "");
        json_t *obj = NULL;
        if (ctl_http_request(ctx, "GET", path, NULL, &obj, NULL) < 0) {
            rv = ctl_error("%s: %s", argv[i], ctx->errmsg);
            continue;
        }
        json_array_append_new(found, obj);
    }
    if (ctx->output == CTL_OUT_TABLE)
        c->table(found);
    else
        ctl_print_answers(found, argc - optind);
    return rv;
}

int ctl_object_write_back(const struct ctl_collection *c, struct ctl_ctx *ctx, const char *method,
                          const char *path, const char *name, json_int_t index, json_t *body)
{
    struct common_buf url = {0};
    common_buf_printf(&url, "%s?index=%" JSON_INTEGER_FORMAT, path, index);
    json_auto_t *updated = NULL;
    long status = 0;
    int err = ctl_http_request(ctx, method, url.data, body, &updated, &status);
    common_buf_free(&url);
    if (err < 0 && status == 409)
        return ctl_error("%s: %s; the %s changed since it was read: run the update again", name,
                         ctx->errmsg, c->what);
    if (err < 0)
        return ctl_error("%s: %s", name, ctx->errmsg);
    ctl_object_print_written(ctx, updated, name);
    return CTL_EXIT_OK;
}

void ctl_object_print_written(struct ctl_ctx *ctx, const json_t *obj, const char *name)
{
    if (ctx->output == CTL_OUT_JSON)
        ctl_print_json(obj);
    else
        printf("%s\n", ctl_json_str(obj, "name", name));
}
