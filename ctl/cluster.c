/* shoal cluster: cluster-wide state. */
#include <string.h>

#include "common/util.h"
#include "ctl/ctl.h"

static const struct option status_opts[] = {
    {"output", required_argument, NULL, 'o'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* The integer at key of obj as text, "-" when absent. */
static const char *int_text(const json_t *obj, const char *key, char *buf, size_t size)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        return "-";
    snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return buf;
}

static void print_status(const json_t *c)
{
    char index[32], applied[32], term[32];
    struct ctl_table t;

    ctl_table_init(&t, 2, NULL);
    ctl_table_cell(&t, "Cluster:");
    ctl_table_cell(&t, ctl_json_str(c, "id", "-"));
    ctl_table_cell(&t, "This node:");
    ctl_table_cellf(&t, "%s (%s), %s, raft %s, api %s", ctl_json_str(c, "node.name", "-"),
                    ctl_json_str(c, "node.id", "-"), ctl_json_str(c, "node.state", "-"),
                    ctl_json_str(c, "node.raft_address", "-"),
                    ctl_json_str(c, "node.api_address", "-"));
    ctl_table_cell(&t, "Leader:");
    if (*ctl_json_str(c, "leader.id", ""))
        ctl_table_cellf(&t, "%s at %s", ctl_json_str(c, "leader.id", "-"),
                        ctl_json_str(c, "leader.address", "-"));
    else
        ctl_table_cell(&t, "none (no quorum)");
    ctl_table_cell(&t, "Index:");
    ctl_table_cellf(&t, "%s (applied %s, term %s)", int_text(c, "index", index, sizeof(index)),
                    int_text(c, "applied", applied, sizeof(applied)),
                    int_text(c, "term", term, sizeof(term)));
    ctl_table_print(&t, stdout, 0);
    ctl_table_free(&t);

    static const char *const headers[] = {"ID", "ADDRESS", "ROLE"};
    ctl_table_init(&t, ARRAY_SIZE(headers), headers);
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(c, "members"), i, m)
    {
        ctl_table_cell(&t, ctl_json_str(m, "id", "-"));
        ctl_table_cell(&t, ctl_json_str(m, "address", "-"));
        ctl_table_cell(&t, ctl_json_str(m, "role", "-"));
    }
    printf("Members:\n");
    ctl_table_print(&t, stdout, 2);
    ctl_table_free(&t);
}

int ctl_cluster_status(struct ctl_ctx *ctx, int argc, char **argv)
{
    int c;
    while ((c = ctl_getopt(ctx, argc, argv, ":ho:", status_opts)) >= 0)
        ;
    if (c == CTL_OPT_STOP)
        return ctx->exit;
    if (optind < argc)
        return ctl_usage_error(ctx, "unexpected argument '%s'", argv[optind]);

    json_auto_t *cluster = NULL;
    if (ctl_http_request(ctx, "GET", "/v1/cluster", NULL, &cluster, NULL) < 0)
        return ctl_error("%s", ctx->errmsg);
    if (ctx->output == CTL_OUT_JSON)
        ctl_print_json(cluster);
    else
        print_status(cluster);
    return CTL_EXIT_OK;
}
