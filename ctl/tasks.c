/* `shoal service ps` and `shoal node ps`: tasks as the cluster holds them,
 * with `--stats` their live cpu, memory and process counts. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "ctl/ctl.h"

/* "3 seconds ago", "2 minutes ago" from a time in ms since the epoch. */
static void ago(json_int_t ms, char *out, size_t size)
{
    if (ms <= 0) {
        snprintf(out, size, "-");
        return;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long secs = ((long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 - ms) / 1000;
    if (secs < 0)
        secs = 0;
    static const struct {
        long long size;
        const char *unit;
    } units[] = {{86400, "day"}, {3600, "hour"}, {60, "minute"}, {1, "second"}};
    for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
        if (secs >= units[i].size || units[i].size == 1) {
            long long n = secs / units[i].size;
            snprintf(out, size, "%lld %s%s ago", n, units[i].unit, n == 1 ? "" : "s");
            return;
        }
    }
}

/* Node id -> name, from GET /v1/nodes (NULL when it cannot be read). */
static json_t *node_names(struct ctl_ctx *ctx)
{
    json_t *nodes = NULL, *names = json_object();
    if (ctl_http_request(ctx, "GET", "/v1/nodes", NULL, &nodes, NULL) == 0) {
        size_t i;
        json_t *n;
        json_array_foreach(nodes, i, n)
            json_object_set(names, ctl_json_str(n, "id", ""), json_object_get(n, "name"));
    }
    json_decref(nodes);
    return names;
}

/* "50.2MiB" */
static void bytes_cell(struct ctl_table *t, const json_t *v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    if (!json_is_integer(v)) {
        ctl_table_cell(t, "-");
        return;
    }
    double b = (double)json_integer_value(v);
    size_t u = 0;
    while (b >= 1024 && u + 1 < ARRAY_SIZE(units)) {
        b /= 1024;
        u++;
    }
    ctl_table_cellf(t, u ? "%.1f%s" : "%.0f%s", b, units[u]);
}

/* The CPU%, MEM, LIMIT and PIDS cells of a task (row from the stats
 * answer, NULL when it has none). */
static void stats_cells(struct ctl_table *t, const json_t *row)
{
    json_t *cpu = json_object_get(row, "cpu_percent");
    if (json_is_number(cpu))
        ctl_table_cellf(t, "%.1f%%", json_number_value(cpu));
    else
        ctl_table_cell(t, "-");
    bytes_cell(t, json_object_get(row, "memory"));
    bytes_cell(t, json_object_get(row, "memory_limit"));
    json_t *pids = json_object_get(row, "pids");
    if (json_is_integer(pids))
        ctl_table_cellf(t, "%lld", (long long)json_integer_value(pids));
    else
        ctl_table_cell(t, "-");
}

/* Prints the tasks; with stats (task id -> stats row) the stats columns. */
static void print_tasks(const json_t *list, const json_t *names, const json_t *stats)
{
    static const char *const headers[] = {"ID",      "NAME",  "NODE",     "DESIRED",
                                          "CURRENT", "SINCE", "RESTARTS", "MESSAGE"};
    static const char *const stats_headers[] = {"ID",      "NAME",  "NODE",     "DESIRED",
                                                "CURRENT", "SINCE", "RESTARTS", "CPU%",
                                                "MEM",     "LIMIT", "PIDS",     "MESSAGE"};
    struct ctl_table t;
    if (stats)
        ctl_table_init(&t, ARRAY_SIZE(stats_headers), stats_headers);
    else
        ctl_table_init(&t, ARRAY_SIZE(headers), headers);
    size_t i;
    json_t *task;
    json_array_foreach(list, i, task)
    {
        const char *node = ctl_json_str(task, "node", "");
        const char *node_name = json_string_value(json_object_get(names, node));
        json_int_t slot = json_integer_value(json_object_get(task, "slot"));
        const char *id = ctl_json_str(task, "id", "");
        ctl_table_cell(&t, id[0] ? id : "-");
        if (slot > 0)
            ctl_table_cellf(&t, "%s.%lld", ctl_json_str(task, "service", "?"), (long long)slot);
        else
            ctl_table_cellf(&t, "%s@%s", ctl_json_str(task, "service", "?"),
                            node_name ? node_name
                            : node[0] ? node
                                      : "-");
        ctl_table_cell(&t, node_name ? node_name : node[0] ? node : "-");
        ctl_table_cell(&t, ctl_json_str(task, "desired_state", "-"));
        json_t *code = json_object_get(task, "exit_code");
        const char *state = ctl_json_str(task, "state", "-");
        const char *health =
            json_string_value(json_object_get(json_object_get(task, "health"), "status"));
        if (json_is_integer(code))
            ctl_table_cellf(&t, "%s (%lld)", state, (long long)json_integer_value(code));
        else if (health && strcmp(state, "running") == 0)
            ctl_table_cellf(&t, "%s (%s)", state, health);
        else
            ctl_table_cell(&t, state);
        char since[64];
        ago(json_integer_value(json_object_get(task, "updated_ms")), since, sizeof(since));
        ctl_table_cell(&t, since);
        ctl_table_cellf(&t, "%lld",
                        (long long)json_integer_value(json_object_get(task, "restarts")));
        if (stats)
            stats_cells(&t, json_object_get(stats, id));
        ctl_table_cell(&t, ctl_json_str(task, "message", ""));
    }
    ctl_table_print(&t, stdout, 0);
    ctl_table_free(&t);
}

/* GET /v1/services/NAME/stats as task id -> row (NULL when it cannot be
 * read: said on stderr); node errors are said on stderr too. */
static json_t *service_stats(struct ctl_ctx *ctx, const char *escaped)
{
    _cleanup_free_ char *path = NULL;
    if (asprintf(&path, "/v1/services/%s/stats", escaped) < 0)
        abort();
    json_t *ans = NULL;
    if (ctl_http_request(ctx, "GET", path, NULL, &ans, NULL) < 0) {
        fprintf(stderr, "shoal: stats: %s\n", ctx->errmsg);
        return NULL;
    }
    json_t *by_id = json_object();
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(ans, "tasks"), i, e)
        json_object_set(by_id, ctl_json_str(e, "id", ""), e);
    json_array_foreach(json_object_get(ans, "errors"), i, e)
        fprintf(stderr, "shoal: stats: %s\n", ctl_json_str(e, "error", "?"));
    json_decref(ans);
    return by_id;
}

/* GETs the tasks at path and prints them (with their stats from stats,
 * borrowed, unless NULL). */
static int show_tasks(struct ctl_ctx *ctx, const char *path, const json_t *stats)
{
    json_t *list = NULL;
    if (ctl_http_request(ctx, "GET", path, NULL, &list, NULL) < 0)
        return ctl_error("%s", ctx->errmsg);
    if (ctx->output == CTL_OUT_JSON) {
        size_t i;
        json_t *task;
        json_array_foreach(list, i, task)
        {
            if (!stats)
                break;
            json_t *row = json_deep_copy(json_object_get(stats, ctl_json_str(task, "id", "")));
            if (row) {
                static const char *const drop[] = {"id", "service", "slot", "node"};
                for (size_t k = 0; k < ARRAY_SIZE(drop); k++)
                    json_object_del(row, drop[k]);
            }
            json_object_set_new(task, "stats", row ? row : json_null());
        }
        ctl_print_json(list);
    } else {
        json_t *names = node_names(ctx);
        print_tasks(list, names, stats);
        json_decref(names);
    }
    json_decref(list);
    return CTL_EXIT_OK;
}

static const struct option ps_opts[] = {
    {"stats", no_argument, NULL, 's'},
    {"output", required_argument, NULL, 'o'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int ctl_service_ps(struct ctl_ctx *ctx, int argc, char **argv)
{
    int c, with_stats = 0;
    while ((c = ctl_getopt(ctx, argc, argv, ":ho:", ps_opts)) >= 0)
        with_stats |= c == 's';
    if (c == CTL_OPT_STOP)
        return ctx->exit;
    if (optind + 1 != argc)
        return ctl_usage_error(ctx, "give one service name");
    /* A name that is no service is an error, not an empty list. */
    _cleanup_free_ char *name = ctl_http_escape(argv[optind]);
    _cleanup_free_ char *svc = NULL, *path = NULL;
    if (asprintf(&svc, "/v1/services/%s", name) < 0 ||
        asprintf(&path, "/v1/tasks?service=%s", name) < 0)
        abort();
    json_t *obj = NULL;
    if (ctl_http_request(ctx, "GET", svc, NULL, &obj, NULL) < 0)
        return ctl_error("%s: %s", argv[optind], ctx->errmsg);
    json_decref(obj);
    json_auto_t *stats = with_stats ? service_stats(ctx, name) : NULL;
    if (with_stats && !stats)
        stats = json_object();
    return show_tasks(ctx, path, stats);
}

int ctl_node_ps(struct ctl_ctx *ctx, int argc, char **argv)
{
    int rv = ctl_plain_options(ctx, argc, argv);
    if (rv >= 0)
        return rv;
    if (optind + 1 != argc)
        return ctl_usage_error(ctx, "give one node (id or name)");
    _cleanup_free_ char *name = ctl_http_escape(argv[optind]);
    _cleanup_free_ char *node = NULL, *path = NULL;
    if (asprintf(&node, "/v1/nodes/%s", name) < 0)
        abort();
    json_t *obj = NULL;
    if (ctl_http_request(ctx, "GET", node, NULL, &obj, NULL) < 0)
        return ctl_error("%s: %s", argv[optind], ctx->errmsg);
    _cleanup_free_ char *id = ctl_http_escape(ctl_json_str(obj, "id", argv[optind]));
    json_decref(obj);
    if (asprintf(&path, "/v1/tasks?node=%s", id) < 0)
        abort();
    return show_tasks(ctx, path, NULL);
}
