/* shoal node: list, inspect, update, remove, promote and demote nodes. */
#include <errno.h>
#include <string.h>

#include "common/buf.h"
#include "common/util.h"
#include "ctl/ctl.h"

/* NODE is an id or a name: shoald resolves both. */
static const struct ctl_collection nodes = {"/v1/nodes", "node", "node id or name",
                                            ctl_print_node_table};

static char *node_path(const char *name, const char *suffix)
{
    return ctl_object_path(&nodes, name, suffix);
}

int ctl_node_ls(struct ctl_ctx *ctx, int argc, char **argv)
{
    return ctl_object_ls(&nodes, ctx, argc, argv);
}

int ctl_node_inspect(struct ctl_ctx *ctx, int argc, char **argv)
{
    return ctl_object_inspect(&nodes, ctx, argc, argv);
}

/* The flags of `node update`, applied with the spec machinery to an object
 * that holds the fields a PATCH may change. */
static const struct ctl_spec_flag update_flags[] = {
    {"availability", "availability", CTL_KIND_STRING, 0, "A", "active, pause or drain"},
    {"label-add", "labels", CTL_KIND_MAP_PUT, 0, "K=V", "add or change a label (repeatable)"},
    {"label-rm", "labels", CTL_KIND_MAP_REMOVE, 0, "K", "remove a label (repeatable)"},
};

#define UPDATE_OPT_BASE 1000

static const struct option update_opts[] = {
    {"availability", required_argument, NULL, UPDATE_OPT_BASE + 0},
    {"label-add", required_argument, NULL, UPDATE_OPT_BASE + 1},
    {"label-rm", required_argument, NULL, UPDATE_OPT_BASE + 2},
    {"output", required_argument, NULL, 'o'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

_Static_assert(ARRAY_SIZE(update_opts) == ARRAY_SIZE(update_flags) + 3,
               "update_opts holds one option per update flag, then -o and -h");

/* The fields of node that a PATCH may change: its availability (when it
 * has one) and its labels (an empty object when it has none). Transferred:
 * json_decref. */
static json_t *patchable(const json_t *node)
{
    json_t *labels = json_object_get(node, "labels");
    json_t *availability = json_object_get(node, "availability");
    json_t *out = json_object();
    json_object_set_new(out, "labels",
                        json_is_object(labels) ? json_deep_copy(labels) : json_object());
    if (availability)
        json_object_set_new(out, "availability", json_deep_copy(availability));
    return out;
}

/* The PATCH body for node and edits: the fields that the edits change.
 * Returns 0 with *body set (transferred; an empty object when nothing
 * changes) or an exit code with the error printed. */
static int patch_body(const char *name, const json_t *node, const struct ctl_spec_edit *edits,
                      size_t nedits, json_t **body)
{
    char errmsg[256];
    json_auto_t *before = patchable(node);
    json_auto_t *after = json_deep_copy(before);
    for (size_t i = 0; i < nedits; i++) {
        if (ctl_spec_apply(after, &edits[i], errmsg, sizeof(errmsg)) < 0)
            return ctl_error("%s: %s", name, errmsg);
    }
    *body = json_object();
    const char *field;
    json_t *v;
    json_object_foreach(after, field, v)
    {
        if (!json_equal(v, json_object_get(before, field)))
            json_object_set(*body, field, v);
    }
    return 0;
}

/* Reads a node, applies edits and PATCHes the fields that change if its
 * modify_index has not moved. Returns an exit code, the error printed. */
static int update_one(struct ctl_ctx *ctx, const char *name, const struct ctl_spec_edit *edits,
                      size_t nedits)
{
    _cleanup_free_ char *path = node_path(name, "");
    json_auto_t *node = NULL;
    if (ctl_http_request(ctx, "GET", path, NULL, &node, NULL) < 0)
        return ctl_error("%s: %s", name, ctx->errmsg);
    json_t *index = json_object_get(node, "modify_index");
    if (!json_is_object(node) || !json_is_integer(index))
        return ctl_error("%s: the answer of shoald has no modify_index", name);
    json_auto_t *body = NULL;
    int rv = patch_body(name, node, edits, nedits, &body);
    if (rv != 0)
        return rv;

    if (json_object_size(body) == 0) {
        ctl_object_print_written(ctx, node, name); /* nothing changes: nothing is sent */
        return CTL_EXIT_OK;
    }
    return ctl_object_write_back(&nodes, ctx, "PATCH", path, name, json_integer_value(index), body);
}

int ctl_node_update(struct ctl_ctx *ctx, int argc, char **argv)
{
    _cleanup_free_ struct ctl_spec_edit *edits = xcalloc((size_t)argc, sizeof(*edits));
    size_t nedits = 0;
    char errmsg[256];
    int c;
    while ((c = ctl_getopt(ctx, argc, argv, ":ho:", update_opts)) >= 0) {
        size_t i = (size_t)(c - UPDATE_OPT_BASE);
        if (c < UPDATE_OPT_BASE || i >= ARRAY_SIZE(update_flags))
            continue;
        if (ctl_spec_check(&update_flags[i], optarg, errmsg, sizeof(errmsg)) < 0)
            return ctl_usage_error(ctx, "%s", errmsg);
        edits[nedits++] = (struct ctl_spec_edit){&update_flags[i], optarg};
    }
    if (c == CTL_OPT_STOP)
        return ctx->exit;
    if (optind >= argc)
        return ctl_usage_error(ctx, "give the id or name of the node to update");
    if (argc - optind > 1)
        return ctl_usage_error(ctx, "unexpected argument '%s'", argv[optind + 1]);
    if (nedits == 0)
        return ctl_usage_error(ctx, "nothing to change: give at least one option");
    return update_one(ctx, argv[optind], edits, nedits);
}

/* What `node rm`, `promote` and `demote` send for each node, and what they
 * print after the node as given for each success without -o json. */
struct node_action {
    const char *method;
    const char *suffix;
    const char *done;
};

enum { ACTION_RM, ACTION_RM_FORCE, ACTION_PROMOTE, ACTION_DEMOTE };

static const struct node_action actions[] = {
    [ACTION_RM] = {"DELETE", "", ""},
    [ACTION_RM_FORCE] = {"DELETE", "?force=true", ""},
    [ACTION_PROMOTE] = {"POST", "/promote", " promoted to manager"},
    [ACTION_DEMOTE] = {"POST", "/demote", " demoted to worker"},
};

/* Sends action for each node of argv[optind..argc-1], going on after a
 * failure. Returns an exit code: 1 if any failed. */
static int each_node(struct ctl_ctx *ctx, int argc, char **argv, int action)
{
    const struct node_action *a = &actions[action];
    json_auto_t *answers = json_array();
    int rv = CTL_EXIT_OK;
    for (int i = optind; i < argc; i++) {
        _cleanup_free_ char *path = node_path(argv[i], a->suffix);
        json_auto_t *answer = NULL;
        long status = 0;
        if (ctl_http_request(ctx, a->method, path, NULL, &answer, &status) < 0) {
            const char *hint = action == ACTION_RM && status == 409
                                   ? " (--force removes a node that is still ready)"
                                   : "";
            rv = ctl_error("%s: %s%s", argv[i], ctx->errmsg, hint);
            continue;
        }
        if (ctx->output == CTL_OUT_JSON)
            json_array_append(answers, answer);
        else
            printf("%s%s\n", argv[i], a->done);
    }
    if (ctx->output == CTL_OUT_JSON)
        ctl_print_answers(answers, argc - optind);
    return rv;
}

static const struct option rm_opts[] = {
    {"force", no_argument, NULL, 'f'},
    {"output", required_argument, NULL, 'o'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int ctl_node_rm(struct ctl_ctx *ctx, int argc, char **argv)
{
    int force = 0, c;
    while ((c = ctl_getopt(ctx, argc, argv, ":hfo:", rm_opts)) >= 0) {
        if (c == 'f')
            force = 1;
    }
    if (c == CTL_OPT_STOP)
        return ctx->exit;
    if (optind >= argc)
        return ctl_usage_error(ctx, "give at least one node id or name");
    return each_node(ctx, argc, argv, force ? ACTION_RM_FORCE : ACTION_RM);
}

/* `node promote` and `node demote`: only -o and -h, one or more nodes. */
static int change_role(struct ctl_ctx *ctx, int argc, char **argv, int action)
{
    int rv = ctl_plain_options(ctx, argc, argv);
    if (rv >= 0)
        return rv;
    if (optind >= argc)
        return ctl_usage_error(ctx, "give at least one node id or name");
    return each_node(ctx, argc, argv, action);
}

int ctl_node_promote(struct ctl_ctx *ctx, int argc, char **argv)
{
    return change_role(ctx, argc, argv, ACTION_PROMOTE);
}

int ctl_node_demote(struct ctl_ctx *ctx, int argc, char **argv)
{
    return change_role(ctx, argc, argv, ACTION_DEMOTE);
}
