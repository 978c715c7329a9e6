/* `shoal logs SERVICE|TASK`: the output of a service's tasks or of one task,
 * gathered by a manager from the nodes that ran them (POST /v1/logs), once
 * or followed. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/units.h"
#include "common/util.h"
#include "ctl/ctl.h"

#define FOLLOW_WAIT  "5s"
#define IDLE_POLL_MS 1000 /* a follow that got nothing asks again at most this often */

struct logs_run {
    struct ctl_ctx *ctx;
    json_t *body;    /* owned: the request; its cursors move on */
    int follow;      /* -f */
    int timestamps;  /* -t */
    int prefix;      /* "service.slot.task@node | " before each line */
    json_t *failing; /* owned: node name -> true while its error was printed */
    int errors;      /* some node could not be read */
};

static const struct option opts[] = {
    {"follow", no_argument, NULL, 'f'},
    {"tail", required_argument, NULL, 'n'},
    {"since", required_argument, NULL, 'S'},
    {"timestamps", no_argument, NULL, 't'},
    {"output", required_argument, NULL, 'o'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* --since: a duration ago ("10m") as an RFC 3339 UTC time with nanoseconds,
 * or a time given as such (shoald checks it). Returns 0 or -EINVAL. */
static int since_value(const char *arg, char *out, size_t size)
{
    int64_t ms;
    if (common_parse_duration(arg, &ms) == 0) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        int64_t ns = (int64_t)now.tv_nsec - (ms % 1000) * 1000000;
        time_t sec = now.tv_sec - (time_t)(ms / 1000);
        if (ns < 0) {
            ns += 1000000000;
            sec--;
        }
        struct tm tm;
        if (!gmtime_r(&sec, &tm))
            return -EINVAL;
        snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)ns);
        return 0;
    }
    if (strlen(arg) < 20 || strspn(arg, "0123456789") != 4 || arg[4] != '-')
        return -EINVAL;
    common_strlcpy(out, arg, size);
    return 0;
}

/* --tail: a count, or "all". Returns 0 or -EINVAL. */
static int tail_value(const char *arg, json_int_t *out)
{
    if (strcmp(arg, "all") == 0) {
        *out = -1;
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (!arg[0] || *end || errno || v < 0 || arg[0] == '+' || arg[0] == ' ')
        return -EINVAL;
    *out = v;
    return 0;
}

static void print_entry(const struct logs_run *r, const json_t *e)
{
    int err = strcmp(ctl_json_str(e, "stream", ""), "stderr") == 0;
    FILE *out = err ? stderr : stdout;
    if (err)
        fflush(stdout); /* keeps both streams in order when they go to one place */
    if (r->timestamps)
        fprintf(out, "%s ", ctl_json_str(e, "ts", "-"));
    if (r->prefix)
        fprintf(out, "%s.%lld.%s@%s | ", ctl_json_str(e, "service", "?"),
                (long long)json_integer_value(json_object_get(e, "slot")),
                ctl_json_str(e, "task", "?"), ctl_json_str(e, "node", "?"));
    json_t *line = json_object_get(e, "line");
    fwrite(json_string_value(line) ? json_string_value(line) : "", 1, json_string_length(line),
           out);
    fputc('\n', out);
}

/* Prints a node's error once, until lines come from it again (following). */
static void print_errors(struct logs_run *r, const json_t *ans)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(ans, "entries"), i, e)
        json_object_del(r->failing, ctl_json_str(e, "node", ""));
    json_array_foreach(json_object_get(ans, "errors"), i, e)
    {
        const char *node = ctl_json_str(e, "node", "?");
        r->errors = 1;
        if (json_object_get(r->failing, node))
            continue;
        json_object_set_new(r->failing, node, json_true());
        _cleanup_free_ char *tasks = ctl_join_words(json_object_get(e, "tasks"));
        ctl_error("%s (tasks: %s)", ctl_json_str(e, "error", "no answer"), tasks);
    }
}

/* Prints one answer and takes its cursors for the next request. */
static void print_answer(struct logs_run *r, const json_t *ans)
{
    /* SIGINT ends a follow between answers, never halfway through one. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &old);
    json_t *cursors = json_object_get(ans, "cursors");
    if (json_object_size(cursors) > 1)
        r->prefix = 1;
    if (r->ctx->output == CTL_OUT_JSON) {
        json_dumpf(ans, stdout, JSON_COMPACT);
        fputc('\n', stdout);
    } else {
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(ans, "entries"), i, e) print_entry(r, e);
    }
    fflush(stdout);
    print_errors(r, ans);
    if (json_is_object(cursors))
        json_object_set(r->body, "cursors", cursors);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

static void on_sigint(int sig)
{
    (void)sig;
    _exit(CTL_EXIT_OK); /* output is flushed after every answer */
}

/* The first request: the name as a service, else as a task id. */
static int first_request(struct logs_run *r, const char *name, json_t **ans)
{
    long status = 0;
    json_object_set_new(r->body, "service", json_string(name));
    int rv = ctl_http_request(r->ctx, "POST", "/v1/logs", r->body, ans, &status);
    if (rv != -EREMOTEIO || status != 404)
        return rv == 0 ? 0 : ctl_error("%s", r->ctx->errmsg);
    json_object_del(r->body, "service");
    json_object_set_new(r->body, "task", json_string(name));
    rv = ctl_http_request(r->ctx, "POST", "/v1/logs", r->body, ans, &status);
    if (rv == -EREMOTEIO && (status == 404 || status == 400))
        return ctl_error("no service or task named '%s'", name);
    return rv == 0 ? 0 : ctl_error("%s", r->ctx->errmsg);
}

static int run(struct logs_run *r, const char *name)
{
    json_t *ans = NULL;
    if (first_request(r, name, &ans) != 0)
        return CTL_EXIT_ERROR;
    for (;;) {
        print_answer(r, ans);
        int more = json_is_true(json_object_get(ans, "more"));
        size_t got = json_array_size(json_object_get(ans, "entries"));
        json_decref(ans);
        ans = NULL;
        if (!r->follow && !(more && got > 0))
            break;
        uint64_t start = common_now_ms();
        if (ctl_http_request(r->ctx, "POST", "/v1/logs", r->body, &ans, NULL) != 0)
            return ctl_error("%s", r->ctx->errmsg);
        uint64_t took = common_now_ms() - start;
        if (r->follow && json_array_size(json_object_get(ans, "entries")) == 0 &&
            took < IDLE_POLL_MS) {
            /* Nothing to wait on there (no tasks, or every node failing). */
            struct timespec ts = {0, (long)(IDLE_POLL_MS - took) * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    return r->errors ? CTL_EXIT_ERROR : CTL_EXIT_OK;
}

int ctl_logs(struct ctl_ctx *ctx, int argc, char **argv)
{
    struct logs_run r = {.ctx = ctx};
    json_int_t tail = -1;
    char since[64] = "";
    int c;
    while ((c = ctl_getopt(ctx, argc, argv, ":ho:fn:t", opts)) >= 0) {
        if (c == 'f') {
            r.follow = 1;
        } else if (c == 't') {
            r.timestamps = 1;
        } else if (c == 'n' && tail_value(optarg, &tail) != 0) {
            return ctl_usage_error(ctx, "--tail: expected a number of lines or 'all', not '%s'",
                                   optarg);
        } else if (c == 'S' && since_value(optarg, since, sizeof(since)) != 0) {
            return ctl_usage_error(ctx,
                                   "--since: expected a duration (10m) or an RFC 3339 time "
                                   "(2026-11-26T01:02:03Z), not '%s'",
                                   optarg);
        }
    }
    if (c == CTL_OPT_STOP)
        return ctx->exit;
    if (optind + 1 != argc)
        return ctl_usage_error(ctx, "give one service name or task id");
    if (ctx->output == CTL_OUT_TABLE)
        return ctl_usage_error(ctx, "-o: logs print lines or json");
    r.body = json_object();
    r.failing = json_object();
    if (tail >= 0)
        json_object_set_new(r.body, "tail", json_integer(tail));
    if (since[0])
        json_object_set_new(r.body, "since", json_string(since));
    if (r.follow) {
        json_object_set_new(r.body, "follow", json_true());
        json_object_set_new(r.body, "wait", json_string(FOLLOW_WAIT));
        struct sigaction sa = {.sa_handler = on_sigint};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
    }
    int rv = run(&r, argv[optind]);
    json_decref(r.body);
    json_decref(r.failing);
    return rv;
}
