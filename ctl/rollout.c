/* Rollouts from the CLI: `shoal rollout status` follows one with blocking
 * queries on GET /v1/services/NAME/rollout; `shoal service rollback`,
 * `service rollout pause|resume` and `service history` act on a service's
 * rollout and show its versions. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/units.h"
#include "common/util.h"
#include "ctl/ctl.h"

#define FOLLOW_WAIT_MS 10000 /* the longest blocking query of a follow */

/* "/v1/services/<name escaped><suffix>" (transferred: free()). */
static char *service_path(const char *name, const char *suffix)
{
    _cleanup_free_ char *esc = ctl_http_escape(name);
    struct common_buf b = {0};
    common_buf_printf(&b, "/v1/services/%s%s", esc, suffix);
    return common_buf_take(&b, NULL);
}

static json_int_t int_of(const json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

static bool state_is(const json_t *rollout, const char *state)
{
    return strcmp(ctl_json_str(rollout, "state", "none"), state) == 0;
}

/* Under way: the leader is still changing tasks for it. */
static bool under_way(const json_t *rollout)
{
    return state_is(rollout, "updating") || state_is(rollout, "rolling_back");
}

/* The exit code a rollout that is not under way stands for. */
static int exit_of(const json_t *rollout)
{
    if (state_is(rollout, "completed") || state_is(rollout, "none"))
        return CTL_ROLLOUT_COMPLETED;
    if (state_is(rollout, "paused"))
        return CTL_ROLLOUT_PAUSED;
    return CTL_ROLLOUT_FAILED; /* rolled_back, or a state this CLI does not know */
}

/* "web: updating 4/10 (failures 0)", and ": message" when there is one
 * other than known (NULL: any), into out. */
static void progress_line(const char *name, const json_t *r, const char *known, char *out,
                          size_t size)
{
    const char *msg = ctl_json_str(r, "message", "");
    if (known && strcmp(msg, known) == 0)
        msg = "";
    if (state_is(r, "none")) {
        snprintf(out, size, "%s: no rollout (version %" JSON_INTEGER_FORMAT ")", name,
                 int_of(r, "version"));
        return;
    }
    snprintf(out, size,
             "%s: %s %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT
             " (failures %" JSON_INTEGER_FORMAT ")%s%s",
             name, ctl_json_str(r, "state", "?"), int_of(r, "updated"), int_of(r, "total"),
             int_of(r, "failures"), *msg ? ": " : "", msg);
}

/* Replaces control characters, so that a message cannot move the cursor. */
static void printable(char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
    }
}

struct follow {
    struct ctl_ctx *ctx;
    const char *name;  /* borrowed from argv */
    bool tty;          /* stdout is a terminal: one line rewritten in place */
    bool open_line;    /* tty: a progress line without its newline is shown */
    json_int_t target; /* to_version of the rollout last shown, 0 before */
    char last[768];    /* the progress line last shown */
    char told[512];    /* the message the start line showed */
};

/* Shows the start of a rollout (or of another one, superseding it or rolling
 * it back): "web: update to version 4 (from 3)". */
static void show_start(struct follow *f, const json_t *r)
{
    char line[768];
    const char *msg = ctl_json_str(r, "message", "");
    snprintf(line, sizeof(line),
             "%s: %s to version %" JSON_INTEGER_FORMAT " (from %" JSON_INTEGER_FORMAT ")%s%s",
             f->name, ctl_json_str(r, "kind", "update"), int_of(r, "to_version"),
             int_of(r, "from_version"), *msg && under_way(r) ? ": " : "",
             *msg && under_way(r) ? msg : "");
    printable(line);
    printf("%s%s\n", f->open_line ? "\r\033[K" : "", line);
    f->open_line = false;
    f->last[0] = '\0';
    common_strlcpy(f->told, under_way(r) ? msg : "", sizeof(f->told));
}

/* Shows r when it differs from what was last shown; final: with its
 * message, even one the start line showed. */
static void show_progress(struct follow *f, const json_t *r, bool final)
{
    char line[sizeof(f->last)];
    if (!state_is(r, "none") && int_of(r, "to_version") != f->target) {
        f->target = int_of(r, "to_version");
        show_start(f, r);
    }
    progress_line(f->name, r, final ? NULL : f->told, line, sizeof(line));
    printable(line);
    if (strcmp(line, f->last) == 0)
        return;
    common_strlcpy(f->last, line, sizeof(f->last));
    if (f->tty) {
        printf("\r\033[K%s", line);
        f->open_line = true;
    } else {
        printf("%s\n", line);
    }
    fflush(stdout);
}

/* Shows the end: the last line again, finished, on a line of its own. */
static void show_end(struct follow *f, const json_t *r)
{
    if (f->ctx->output == CTL_OUT_JSON) {
        ctl_print_json(r);
        return;
    }
    show_progress(f, r, true);
    if (f->tty && f->open_line)
        putchar('\n');
    f->open_line = false;
    fflush(stdout);
}

/* One GET of the rollout, a blocking query when index > 0. *out:
 * transferred. Returns 0, or an exit code with the error printed. */
static int get_rollout(struct follow *f, long long index, int64_t wait_ms, json_t **out,
                       long long *out_index)
{
    char path_suffix[96];
    if (index > 0)
        snprintf(path_suffix, sizeof(path_suffix), "/rollout?index=%lld&wait=%" PRId64 "ms", index,
                 wait_ms);
    else
        snprintf(path_suffix, sizeof(path_suffix), "/rollout");
    _cleanup_free_ char *path = service_path(f->name, path_suffix);
    struct ctl_http_answer ans;
    int rv = ctl_http_send(f->ctx, "GET", path, NULL, &ans);
    if (rv < 0) {
        ctl_http_answer_free(&ans);
        if (f->open_line)
            putchar('\n');
        f->open_line = false;
        return ctl_error("%s: %s", f->name, f->ctx->errmsg);
    }
    json_error_t jerr;
    *out = json_loadb(ans.body.data ? ans.body.data : "", ans.body.len, 0, &jerr);
    *out_index = ans.index;
    ctl_http_answer_free(&ans);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return ctl_error("%s: shoald sent something else than a rollout: %s", f->name, jerr.text);
    }
    return 0;
}

int ctl_rollout_follow(struct ctl_ctx *ctx, const char *name, int64_t timeout_ms,
                       json_int_t unchanged_version)
{
    struct follow f = {.ctx = ctx, .name = name};
    f.tty = ctx->output != CTL_OUT_JSON && isatty(STDOUT_FILENO);
    uint64_t deadline = timeout_ms >= 0 ? common_now_ms() + (uint64_t)timeout_ms : 0;
    json_t *r = NULL;
    long long index = 0;
    int rv;
    for (;;) {
        int64_t wait_ms = FOLLOW_WAIT_MS;
        if (deadline) {
            uint64_t now = common_now_ms();
            wait_ms = now >= deadline ? 0 : (int64_t)(deadline - now);
            if (wait_ms > FOLLOW_WAIT_MS)
                wait_ms = FOLLOW_WAIT_MS;
        }
        if (r && wait_ms == 0) {
            show_end(&f, r);
            if (ctx->output != CTL_OUT_JSON) {
                char d[32];
                common_format_duration(timeout_ms, d, sizeof(d));
                printf("%s: timed out after %s, the rollout goes on\n", name, d);
            }
            rv = CTL_ROLLOUT_TIMEOUT;
            break;
        }
        json_t *next = NULL;
        long long next_index = -1;
        if ((rv = get_rollout(&f, index, wait_ms, &next, &next_index)) != 0)
            break;
        bool first = !r;
        json_decref(r);
        r = next;
        index = next_index > 0 ? next_index : index;
        if (first && unchanged_version > 0 && int_of(r, "version") == unchanged_version &&
            !under_way(r) && !state_is(r, "paused")) {
            /* The write started no rollout and none is under way. */
            if (ctx->output == CTL_OUT_JSON)
                ctl_print_json(r);
            else
                printf("%s: no rollout (the task template did not change; version "
                       "%" JSON_INTEGER_FORMAT ")\n",
                       name, unchanged_version);
            rv = CTL_ROLLOUT_COMPLETED;
            break;
        }
        if (!under_way(r)) {
            show_end(&f, r);
            rv = exit_of(r);
            break;
        }
        if (ctx->output != CTL_OUT_JSON)
            show_progress(&f, r, false);
        if (index <= 0) { /* no index to block on: poll */
            struct timespec ts = {0, 500 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    json_decref(r);
    fflush(stdout);
    return rv;
}

static const struct option status_opts[] = {
    {"timeout", required_argument, NULL, 't'},
    {"output", required_argument, NULL, 'o'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int ctl_rollout_status(struct ctl_ctx *ctx, int argc, char **argv)
{
    int64_t timeout_ms = -1;
    int c;
    while ((c = ctl_getopt(ctx, argc, argv, ":ho:t:", status_opts)) >= 0) {
        if (c == 't' && (common_parse_duration(optarg, &timeout_ms) != 0 || timeout_ms <= 0))
            return ctl_usage_error(ctx, "--timeout: expected a duration (30s, 5m), not '%s'",
                                   optarg);
    }
    if (c == CTL_OPT_STOP)
        return ctx->exit;
    if (optind >= argc)
        return ctl_usage_error(ctx, "give the name of the service");
    if (argc - optind > 1)
        return ctl_usage_error(ctx, "unexpected argument '%s'", argv[optind + 1]);
    if (ctx->output == CTL_OUT_TABLE)
        return ctl_usage_error(ctx, "-o: rollout status prints lines or json");
    return ctl_rollout_follow(ctx, argv[optind], timeout_ms, 0);
}

/* POSTs to a service's suffix with no body and prints the service answered:
 * its name, or the JSON with -o json. Returns an exit code. */
static int post_service(struct ctl_ctx *ctx, const char *name, const char *suffix)
{
    _cleanup_free_ char *path = service_path(name, suffix);
    json_auto_t *svc = NULL;
    if (ctl_http_request(ctx, "POST", path, NULL, &svc, NULL) < 0)
        return ctl_error("%s: %s", name, ctx->errmsg);
    ctl_object_print_written(ctx, svc, name);
    return CTL_EXIT_OK;
}

/* The one NAME operand of a command after its options. Returns -1 when the
 * command goes on, else an exit code. */
static int one_name(struct ctl_ctx *ctx, int argc, char **argv)
{
    int rv = ctl_plain_options(ctx, argc, argv);
    if (rv >= 0)
        return rv;
    if (optind >= argc)
        return ctl_usage_error(ctx, "give the name of the service");
    if (argc - optind > 1)
        return ctl_usage_error(ctx, "unexpected argument '%s'", argv[optind + 1]);
    return -1;
}

int ctl_service_rollback(struct ctl_ctx *ctx, int argc, char **argv)
{
    int rv = one_name(ctx, argc, argv);
    return rv >= 0 ? rv : post_service(ctx, argv[optind], "/rollback");
}

int ctl_service_rollout(struct ctl_ctx *ctx, int argc, char **argv)
{
    int rv = ctl_plain_options(ctx, argc, argv);
    if (rv >= 0)
        return rv;
    if (optind >= argc)
        return ctl_usage_error(ctx, "give pause or resume, then the name of the service");
    const char *action = argv[optind];
    if (strcmp(action, "pause") != 0 && strcmp(action, "resume") != 0)
        return ctl_usage_error(ctx, "expected pause or resume, not '%s'", action);
    if (optind + 1 >= argc)
        return ctl_usage_error(ctx, "give the name of the service");
    if (argc - optind > 2)
        return ctl_usage_error(ctx, "unexpected argument '%s'", argv[optind + 2]);
    return post_service(ctx, argv[optind + 1],
                        strcmp(action, "pause") == 0 ? "/rollout/pause" : "/rollout/resume");
}

/* The task of a spec in a few words: its image, else its command. */
static void task_words(const json_t *spec, char *out, size_t size)
{
    const json_t *task = json_object_get(spec, "task");
    const char *image = ctl_json_str(task, "image", "");
    if (*image) {
        snprintf(out, size, "%s", image);
        return;
    }
    json_t *words = json_array();
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(task, "command"), i, w) json_array_append(words, w);
    json_array_foreach(json_object_get(task, "args"), i, w) json_array_append(words, w);
    _cleanup_free_ char *joined = ctl_join_words(words);
    json_decref(words);
    snprintf(out, size, "%s", joined);
}

static void history_row(struct ctl_table *t, json_int_t version, const char *what,
                        const json_t *spec)
{
    char words[256];
    task_words(spec, words, sizeof(words));
    ctl_table_cellf(t, "%" JSON_INTEGER_FORMAT, version);
    ctl_table_cell(t, what);
    ctl_table_cell(t, words);
}

static void print_history(const json_t *svc)
{
    static const char *const headers[] = {"VERSION", "SPEC", "TASK"};
    const json_t *r = json_object_get(svc, "rollout");
    const json_t *stable = json_object_get(svc, "stable_spec");
    const json_t *previous = json_object_get(svc, "previous_spec");
    struct ctl_table t;
    ctl_table_init(&t, ARRAY_SIZE(headers), headers);
    history_row(&t, int_of(svc, "version"), json_is_object(stable) ? "current" : "current, stable",
                svc);
    if (json_is_object(stable))
        history_row(&t, int_of(stable, "version"), "stable", json_object_get(stable, "spec"));
    if (json_is_object(previous))
        history_row(&t, int_of(previous, "version"), "previous", json_object_get(previous, "spec"));
    ctl_table_print(&t, stdout, 0);
    ctl_table_free(&t);
    if (!json_is_object(r)) {
        printf("\nNo rollout yet: version %" JSON_INTEGER_FORMAT " is the one created.\n",
               int_of(svc, "version"));
        return;
    }
    json_int_t started = int_of(r, "started_ms"), finished = int_of(r, "finished_ms");
    char took[32] = "";
    if (finished >= started && finished > 0)
        common_format_duration(finished - started, took, sizeof(took));
    char msg[512];
    common_strlcpy(msg, ctl_json_str(r, "message", ""), sizeof(msg));
    printable(msg);
    printf("\nLast rollout: %s to version %" JSON_INTEGER_FORMAT " (from %" JSON_INTEGER_FORMAT
           "): %s, %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT " updated, %" JSON_INTEGER_FORMAT
           " failures%s%s\n",
           ctl_json_str(r, "kind", "update"), int_of(r, "to_version"), int_of(r, "from_version"),
           ctl_json_str(r, "state", "?"), int_of(r, "updated"), int_of(r, "total"),
           int_of(r, "failures"), *took ? ", in " : "", took);
    if (*msg)
        printf("  %s\n", msg);
}

int ctl_service_history(struct ctl_ctx *ctx, int argc, char **argv)
{
    int rv = one_name(ctx, argc, argv);
    if (rv >= 0)
        return rv;
    const char *name = argv[optind];
    _cleanup_free_ char *path = service_path(name, "");
    json_auto_t *svc = NULL;
    if (ctl_http_request(ctx, "GET", path, NULL, &svc, NULL) < 0)
        return ctl_error("%s: %s", name, ctx->errmsg);
    if (!json_is_object(svc))
        return ctl_error("%s: shoald answered something else than a service", name);
    if (ctx->output == CTL_OUT_JSON) {
        static const char *const keys[] = {"rollout", "stable_spec", "previous_spec"};
        json_auto_t *out = json_pack("{s:I}", "version", int_of(svc, "version"));
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
            json_t *v = json_object_get(svc, keys[i]);
            json_object_set_new(out, keys[i], v ? json_incref(v) : json_null());
        }
        ctl_print_json(out);
    } else {
        print_history(svc);
    }
    return CTL_EXIT_OK;
}
