/* shoal image: the image store of the node at --addr (ls, load, rm, gc);
 * images are per node, so these talk to that node's local routes. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "ctl/ctl.h"

static void size_text(json_int_t bytes, char *out, size_t size)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1000 && u + 1 < ARRAY_SIZE(units)) {
        v /= 1000;
        u++;
    }
    snprintf(out, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void print_table(const json_t *images)
{
    static const char *const head[] = {"REF", "ID", "SIZE", "CREATED"};
    struct ctl_table t;
    json_t *img, *ref;
    size_t i, k;
    ctl_table_init(&t, ARRAY_SIZE(head), head);
    json_array_foreach(images, i, img)
    {
        const char *id = ctl_json_str(img, "id", "");
        char size[32];
        size_text(json_integer_value(json_object_get(img, "size")), size, sizeof(size));
        json_t *refs = json_object_get(img, "refs");
        for (k = 0; k < (json_array_size(refs) ? json_array_size(refs) : 1); k++) {
            ref = json_array_get(refs, k);
            ctl_table_cell(&t, ref ? json_string_value(ref) : "<none>");
            ctl_table_cellf(&t, "%.12s", strncmp(id, "sha256:", 7) == 0 ? id + 7 : id);
            ctl_table_cell(&t, size);
            ctl_table_cell(&t, ctl_json_str(img, "created", ""));
        }
    }
    ctl_table_print(&t, stdout, 0);
    ctl_table_free(&t);
}

int ctl_image_ls(struct ctl_ctx *ctx, int argc, char **argv)
{
    int rv = ctl_plain_options(ctx, argc, argv);
    if (rv >= 0)
        return rv;
    if (optind < argc)
        return ctl_usage_error(ctx, "unexpected argument \"%s\"", argv[optind]);
    json_auto_t *ans = NULL;
    if (ctl_http_request(ctx, "GET", "/v1/node/images", NULL, &ans, NULL) != 0)
        return ctl_error("%s", ctx->errmsg);
    if (ctx->output == CTL_OUT_JSON)
        ctl_print_json(ans);
    else
        print_table(json_object_get(ans, "images"));
    return CTL_EXIT_OK;
}

static void print_list(const char *label, const json_t *list)
{
    json_t *v;
    size_t i;
    json_array_foreach(list, i, v) printf("%s: %s\n", label, json_string_value(v));
}

int ctl_image_load(struct ctl_ctx *ctx, int argc, char **argv)
{
    int rv = ctl_plain_options(ctx, argc, argv);
    if (rv >= 0)
        return rv;
    if (optind + 1 != argc)
        return ctl_usage_error(ctx, "give one tarball (an OCI layout or docker save)");
    char path[PATH_MAX];
    if (!realpath(argv[optind], path))
        return ctl_error("%s: %s", argv[optind], strerror(errno));
    json_auto_t *body = json_pack("{s:s}", "path", path), *ans = NULL;
    if (ctl_http_request(ctx, "POST", "/v1/node/images/load", body, &ans, NULL) != 0)
        return ctl_error("%s", ctx->errmsg);
    if (ctx->output == CTL_OUT_JSON) {
        ctl_print_json(ans);
        return CTL_EXIT_OK;
    }
    json_t *img;
    size_t i;
    json_array_foreach(json_object_get(ans, "loaded"), i, img) printf(
        "Loaded %s (%s)\n", ctl_json_str(img, "ref", "<no ref>"), ctl_json_str(img, "id", ""));
    return CTL_EXIT_OK;
}

int ctl_image_rm(struct ctl_ctx *ctx, int argc, char **argv)
{
    int rv = ctl_plain_options(ctx, argc, argv);
    if (rv >= 0)
        return rv;
    if (optind >= argc)
        return ctl_usage_error(ctx, "give at least one image ref or id");
    int exit = CTL_EXIT_OK;
    for (int i = optind; i < argc; i++) {
        _cleanup_free_ char *esc = ctl_http_escape(argv[i]);
        char path[4096];
        snprintf(path, sizeof(path), "/v1/node/images/%s", esc);
        json_auto_t *ans = NULL;
        if (ctl_http_request(ctx, "DELETE", path, NULL, &ans, NULL) != 0) {
            exit = ctl_error("%s: %s", argv[i], ctx->errmsg);
            continue;
        }
        if (ctx->output == CTL_OUT_JSON) {
            ctl_print_json(ans);
            continue;
        }
        print_list("Untagged", json_object_get(ans, "untagged"));
        print_list("Deleted", json_object_get(ans, "deleted"));
    }
    return exit;
}

int ctl_image_gc(struct ctl_ctx *ctx, int argc, char **argv)
{
    int rv = ctl_plain_options(ctx, argc, argv);
    if (rv >= 0)
        return rv;
    if (optind < argc)
        return ctl_usage_error(ctx, "unexpected argument \"%s\"", argv[optind]);
    json_auto_t *ans = NULL;
    if (ctl_http_request(ctx, "POST", "/v1/node/images/gc", NULL, &ans, NULL) != 0)
        return ctl_error("%s", ctx->errmsg);
    if (ctx->output == CTL_OUT_JSON) {
        ctl_print_json(ans);
        return CTL_EXIT_OK;
    }
    print_list("Deleted", json_object_get(ans, "deleted"));
    char freed[32];
    size_text(json_integer_value(json_object_get(ans, "bytes_freed")), freed, sizeof(freed));
    printf("Freed %s\n", freed);
    return CTL_EXIT_OK;
}
