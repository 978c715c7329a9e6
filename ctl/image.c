/* shoal image: the image stores of the nodes (ls, load, rm, gc). Images are
 * per node: with --node NODE a manager asks that node (/v1/nodes/NODE/images),
 * without it ls lists every node's images (/v1/images) and load, rm and gc
 * work on the store of the node at --addr (/v1/node/images). */
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

static const struct option image_opts[] = {
    {"node", required_argument, NULL, 'n'},
    {"output", required_argument, NULL, 'o'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Parses -o, -h and --node (*node: borrowed from argv, or NULL) and checks
 * that from min to max operands follow (else a usage error: want, or the
 * first unexpected one when max is 0). Returns -1 when the command goes on
 * (optind is then the first operand), else the exit code to return. */
static int image_options(struct ctl_ctx *ctx, int argc, char **argv, const char **node, int min,
                         int max, const char *want)
{
    int c;
    *node = NULL;
    while ((c = ctl_getopt(ctx, argc, argv, ":hn:o:", image_opts)) >= 0) {
        if (c == 'n')
            *node = optarg;
    }
    if (c == CTL_OPT_STOP)
        return ctx->exit;
    if (*node && !**node)
        return ctl_usage_error(ctx, "--node wants a node name or id");
    if (max == 0 && optind < argc)
        return ctl_usage_error(ctx, "unexpected argument \"%s\"", argv[optind]);
    if (argc - optind < min || argc - optind > max)
        return ctl_usage_error(ctx, "%s", want);
    return -1;
}

/* The path of an image route: /v1/nodes/NODE/images<suffix>[/REF] for a
 * node, else this node's /v1/node/images<suffix>[/REF]; ref may be NULL
 * (transferred: free()). */
static char *image_path(const char *node, const char *suffix, const char *ref)
{
    _cleanup_free_ char *n = node ? ctl_http_escape(node) : NULL;
    _cleanup_free_ char *r = ref ? ctl_http_escape(ref) : NULL;
    const char *a = node ? "s/" : "", *b = node ? n : "", *c = r ? "/" : "", *d = r ? r : "";
    int len = snprintf(NULL, 0, "/v1/node%s%s/images%s%s%s", a, b, suffix, c, d);
    char *path = xmalloc((size_t)len + 1);
    snprintf(path, (size_t)len + 1, "/v1/node%s%s/images%s%s%s", a, b, suffix, c, d);
    return path;
}

/* Adds the rows of images (a JSON list), each after node's cell when node
 * is not NULL. */
static void add_rows(struct ctl_table *t, const char *node, const json_t *images)
{
    json_t *img, *ref;
    size_t i, k;
    json_array_foreach(images, i, img)
    {
        const char *id = ctl_json_str(img, "id", "");
        char size[32];
        size_text(json_integer_value(json_object_get(img, "size")), size, sizeof(size));
        json_t *refs = json_object_get(img, "refs");
        for (k = 0; k < (json_array_size(refs) ? json_array_size(refs) : 1); k++) {
            ref = json_array_get(refs, k);
            if (node)
                ctl_table_cell(t, node);
            ctl_table_cell(t, ref ? json_string_value(ref) : "<none>");
            ctl_table_cellf(t, "%.12s", strncmp(id, "sha256:", 7) == 0 ? id + 7 : id);
            ctl_table_cell(t, size);
            ctl_table_cell(t, ctl_json_str(img, "created", ""));
        }
    }
}

static int by_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Prints the answer of GET /v1/images as one table with a NODE column,
 * nodes by name, and each node's error on stderr. Returns an exit code. */
static int print_all_nodes(const json_t *nodes)
{
    static const char *const head[] = {"NODE", "REF", "ID", "SIZE", "CREATED"};
    size_t n = json_object_size(nodes), i = 0;
    _cleanup_free_ const char **names = xcalloc(n + 1, sizeof(*names));
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)nodes, name, v) names[i++] = name;
    qsort(names, n, sizeof(*names), by_key);
    struct ctl_table t;
    int exit = CTL_EXIT_OK;
    ctl_table_init(&t, ARRAY_SIZE(head), head);
    for (i = 0; i < n; i++) {
        v = json_object_get(nodes, names[i]);
        json_t *images = json_object_get(v, "images");
        if (json_is_array(images))
            add_rows(&t, names[i], images);
        else
            exit = ctl_error("%s", ctl_json_str(v, "error", "no answer"));
    }
    ctl_table_print(&t, stdout, 0);
    ctl_table_free(&t);
    return exit;
}

static int any_error(const json_t *nodes)
{
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)nodes, name, v)
    {
        if (!json_is_array(json_object_get(v, "images")))
            return 1;
    }
    return 0;
}

int ctl_image_ls(struct ctl_ctx *ctx, int argc, char **argv)
{
    const char *node;
    int rv = image_options(ctx, argc, argv, &node, 0, 0, NULL);
    if (rv >= 0)
        return rv;
    _cleanup_free_ char *path = node ? image_path(node, "", NULL) : xstrdup("/v1/images");
    json_auto_t *ans = NULL;
    if (ctl_http_request(ctx, "GET", path, NULL, &ans, NULL) != 0)
        return ctl_error("%s", ctx->errmsg);
    if (ctx->output == CTL_OUT_JSON) {
        ctl_print_json(ans);
        return node || !any_error(json_object_get(ans, "nodes")) ? CTL_EXIT_OK : CTL_EXIT_ERROR;
    }
    if (!node)
        return print_all_nodes(json_object_get(ans, "nodes"));
    static const char *const head[] = {"REF", "ID", "SIZE", "CREATED"};
    struct ctl_table t;
    ctl_table_init(&t, ARRAY_SIZE(head), head);
    add_rows(&t, NULL, json_object_get(ans, "images"));
    ctl_table_print(&t, stdout, 0);
    ctl_table_free(&t);
    return CTL_EXIT_OK;
}

static void print_list(const char *label, const json_t *list)
{
    json_t *v;
    size_t i;
    json_array_foreach(list, i, v) printf("%s: %s\n", label, json_string_value(v));
}

/* Sends method route with body (borrowed, or NULL) and sets *ans (transferred)
 * to the answer. Returns -1 when the caller prints it as text, else the exit
 * code: the error (after "what: ", what non-NULL), or 0 with the answer
 * printed as JSON. */
static int image_call(struct ctl_ctx *ctx, const char *method, const char *route, json_t *body,
                      json_t **ans, const char *what)
{
    if (ctl_http_request(ctx, method, route, body, ans, NULL) != 0)
        return what ? ctl_error("%s: %s", what, ctx->errmsg) : ctl_error("%s", ctx->errmsg);
    if (ctx->output == CTL_OUT_JSON) {
        ctl_print_json(*ans);
        return CTL_EXIT_OK;
    }
    return -1;
}

int ctl_image_load(struct ctl_ctx *ctx, int argc, char **argv)
{
    const char *node;
    int rv = image_options(ctx, argc, argv, &node, 1, 1,
                           "give one tarball (an OCI layout or docker save)");
    if (rv >= 0)
        return rv;
    char path[PATH_MAX];
    if (!realpath(argv[optind], path))
        return ctl_error("%s: %s", argv[optind], strerror(errno));
    json_auto_t *body = json_pack("{s:s}", "path", path), *ans = NULL;
    _cleanup_free_ char *route = image_path(node, "/load", NULL);
    if ((rv = image_call(ctx, "POST", route, body, &ans, NULL)) >= 0)
        return rv;
    json_t *img;
    size_t i;
    json_array_foreach(json_object_get(ans, "loaded"), i, img) printf(
        "Loaded %s (%s)\n", ctl_json_str(img, "ref", "<no ref>"), ctl_json_str(img, "id", ""));
    return CTL_EXIT_OK;
}

int ctl_image_rm(struct ctl_ctx *ctx, int argc, char **argv)
{
    const char *node;
    int rv = image_options(ctx, argc, argv, &node, 1, INT_MAX, "give at least one image ref or id");
    if (rv >= 0)
        return rv;
    int exit = CTL_EXIT_OK;
    for (int i = optind; i < argc; i++) {
        _cleanup_free_ char *path = image_path(node, "", argv[i]);
        json_auto_t *ans = NULL;
        if ((rv = image_call(ctx, "DELETE", path, NULL, &ans, argv[i])) >= 0) {
            if (rv != CTL_EXIT_OK)
                exit = rv;
            continue;
        }
        print_list("Untagged", json_object_get(ans, "untagged"));
        print_list("Deleted", json_object_get(ans, "deleted"));
    }
    return exit;
}

int ctl_image_gc(struct ctl_ctx *ctx, int argc, char **argv)
{
    const char *node;
    int rv = image_options(ctx, argc, argv, &node, 0, 0, NULL);
    if (rv >= 0)
        return rv;
    json_auto_t *ans = NULL;
    _cleanup_free_ char *path = image_path(node, "/gc", NULL);
    if ((rv = image_call(ctx, "POST", path, NULL, &ans, NULL)) >= 0)
        return rv;
    print_list("Deleted", json_object_get(ans, "deleted"));
    char freed[32];
    size_text(json_integer_value(json_object_get(ans, "bytes_freed")), freed, sizeof(freed));
    printf("Freed %s\n", freed);
    return CTL_EXIT_OK;
}
