/* `shoal events`: the cluster's event stream (GET /v1/events), the last
 * events or those after an index, followed with blocking queries. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/util.h"
#include "ctl/ctl.h"

#define FOLLOW_WAIT "30s" /* each blocking query of a follow */
#define PAGE        1000  /* events in a full answer after ?index= (api/events.c) */

struct events_run {
    struct ctl_ctx *ctx;
    struct common_buf query; /* "service=..&type=..&" as given */
    int follow;
    size_t count; /* events (not markers) in the last answer */
};

static const struct option opts[] = {
    {"follow", no_argument, NULL, 'f'},
    {"service", required_argument, NULL, 'S'},
    {"type", required_argument, NULL, 'T'},
    {"since-index", required_argument, NULL, 'I'},
    {"output", required_argument, NULL, 'o'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void query_add(struct common_buf *q, const char *key, const char *value)
{
    _cleanup_free_ char *esc = ctl_http_escape(value);
    common_buf_printf(q, "%s=%s&", key, esc);
}

/* Control characters of s replaced by '?', so that a message cannot mess up
 * the terminal. */
static void put_clean(struct common_buf *b, const char *s)
{
    for (; s && *s; s++)
        common_buf_append(b, ((unsigned char)*s < 0x20 || *s == 0x7f) ? "?" : s, 1);
}

static void put_time(struct common_buf *b, json_int_t at)
{
    time_t sec = (time_t)(at / 1000);
    struct tm tm;
    char text[32];
    if (at <= 0 || !gmtime_r(&sec, &tm) || !strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm))
        common_buf_puts(b, "-");
    else
        common_buf_puts(b, text);
}

static json_int_t int_of(const json_t *e, const char *key)
{
    return json_integer_value(json_object_get(e, key));
}

/* "web.1 t123 on n2" */
static void put_task(struct common_buf *b, const json_t *e)
{
    put_clean(b, ctl_json_str(e, "service", "?"));
    if (json_is_integer(json_object_get(e, "slot")))
        common_buf_printf(b, ".%lld", (long long)int_of(e, "slot"));
    common_buf_puts(b, " ");
    put_clean(b, ctl_json_str(e, "task", "?"));
    common_buf_puts(b, " on ");
    put_clean(b, ctl_json_str(e, "node_name", ctl_json_str(e, "node", "?")));
}

/* ": text" when text is not empty. */
static void put_detail(struct common_buf *b, const char *text)
{
    if (text && *text) {
        common_buf_puts(b, ": ");
        put_clean(b, text);
    }
}

/* One event as a line: time, type, what it is about and what changed. */
static void print_human(const json_t *e, const char *type)
{
    struct common_buf b = {0};
    put_time(&b, int_of(e, "at"));
    common_buf_puts(&b, " ");
    put_clean(&b, type);
    common_buf_puts(&b, " ");
    if (strncmp(type, "task.", 5) == 0) {
        put_task(&b, e);
        common_buf_puts(&b, ": ");
        put_clean(&b, ctl_json_str(e, "from", "none"));
        common_buf_puts(&b, " -> ");
        put_clean(&b, ctl_json_str(e, "to", "?"));
        if (strcmp(type, "task.state") == 0) {
            if (json_is_integer(json_object_get(e, "exit_code")))
                common_buf_printf(&b, " (exit %lld)", (long long)int_of(e, "exit_code"));
            const char *msg = ctl_json_str(e, "message", "");
            if (strcmp(msg, ctl_json_str(e, "to", "")) != 0) /* "starting: starting" */
                put_detail(&b, msg);
        } else if (strcmp(ctl_json_str(e, "to", ""), "unhealthy") == 0) {
            put_detail(&b, ctl_json_str(e, "output", ""));
        }
    } else if (strncmp(type, "rollout.", 8) == 0) {
        put_clean(&b, ctl_json_str(e, "service", "?"));
        common_buf_puts(&b, ": ");
        put_clean(&b, ctl_json_str(e, "kind", "update"));
        common_buf_printf(&b, " %lld -> %lld, %lld/%lld updated",
                          (long long)int_of(e, "from_version"), (long long)int_of(e, "to_version"),
                          (long long)int_of(e, "updated"), (long long)int_of(e, "total"));
        if (int_of(e, "failures") > 0)
            common_buf_printf(&b, ", %lld failed", (long long)int_of(e, "failures"));
        put_detail(&b, ctl_json_str(e, "message", ""));
    } else if (strcmp(type, "service.scaled") == 0) {
        put_clean(&b, ctl_json_str(e, "service", "?"));
        common_buf_printf(&b, ": %lld -> %lld replicas", (long long)int_of(e, "from"),
                          (long long)int_of(e, "to"));
    } else if (strncmp(type, "service.", 8) == 0) {
        put_clean(&b, ctl_json_str(e, "service", "?"));
        common_buf_printf(&b, ": version %lld, %lld replicas", (long long)int_of(e, "version"),
                          (long long)int_of(e, "replicas"));
    } else if (strncmp(type, "node.", 5) == 0) {
        put_clean(&b, ctl_json_str(e, "node_name", ctl_json_str(e, "node", "?")));
        common_buf_puts(&b, " (");
        put_clean(&b, ctl_json_str(e, "role", "?"));
        common_buf_puts(&b, ")");
    } else {
        put_clean(&b, ctl_json_str(e, "service", ctl_json_str(e, "node", "")));
    }
    common_buf_puts(&b, "\n");
    fwrite(b.data, 1, b.len, stdout);
    common_buf_free(&b);
}

/* Prints the lines of one answer; the lost marker goes to stderr. */
static void print_answer(struct events_run *r, const struct common_buf *body)
{
    /* SIGINT ends a follow between answers, never halfway through one. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &old);
    r->count = 0;
    for (size_t pos = 0; pos < body->len;) {
        const char *line = body->data + pos;
        const char *nl = memchr(line, '\n', body->len - pos);
        size_t len = nl ? (size_t)(nl - line) : body->len - pos;
        pos += len + 1;
        json_auto_t *e = len ? json_loadb(line, len, 0, NULL) : NULL;
        const char *type = ctl_json_str(e, "type", NULL);
        if (!type)
            continue;
        if (strcmp(type, "events.lost") == 0) {
            ctl_error("%s", ctl_json_str(e, "message", "events were lost"));
            continue;
        }
        r->count++;
        if (r->ctx->output == CTL_OUT_JSON) {
            fwrite(line, 1, len, stdout);
            fputc('\n', stdout);
        } else {
            print_human(e, type);
        }
    }
    fflush(stdout);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

static void on_sigint(int sig)
{
    (void)sig;
    _exit(CTL_EXIT_OK); /* output is flushed after every answer */
}

/* GETs the events after *index (index < 0: the last ones), waiting up to
 * wait, prints them and moves *index to where the next read resumes (never
 * back: a manager that restarted may answer an older index while it catches
 * up). Returns 0 or -1 with the error printed. */
static int read_once(struct events_run *r, long long *index, const char *wait)
{
    struct common_buf path = {0};
    common_buf_printf(&path, "/v1/events?%s", r->query.data ? r->query.data : "");
    if (*index >= 0)
        common_buf_printf(&path, "index=%lld&wait=%s", *index, wait);
    struct ctl_http_answer ans;
    int rv = ctl_http_send(r->ctx, "GET", path.data, NULL, &ans);
    common_buf_free(&path);
    if (rv != 0) {
        ctl_http_answer_free(&ans);
        ctl_error("%s", r->ctx->errmsg);
        return -1;
    }
    print_answer(r, &ans.body);
    if (ans.index > *index)
        *index = ans.index;
    ctl_http_answer_free(&ans);
    return 0;
}

static int run(struct events_run *r, long long since)
{
    long long index = since;
    if (!r->follow) {
        /* After an index: page by page until a page is not full. */
        do {
            if (read_once(r, &index, "0s") != 0)
                return CTL_EXIT_ERROR;
        } while (since >= 0 && r->count == PAGE);
        return CTL_EXIT_OK;
    }
    struct sigaction sa = {.sa_handler = on_sigint};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    if (index < 0 && read_once(r, &index, FOLLOW_WAIT) != 0)
        return CTL_EXIT_ERROR;
    for (;;) {
        if (index < 0)
            index = 0; /* an answer without an index: from the start */
        if (read_once(r, &index, FOLLOW_WAIT) != 0)
            return CTL_EXIT_ERROR;
    }
}

int ctl_events(struct ctl_ctx *ctx, int argc, char **argv)
{
    struct events_run r = {.ctx = ctx};
    long long since = -1;
    int c;
    while ((c = ctl_getopt(ctx, argc, argv, ":ho:f", opts)) >= 0) {
        if (c == 'f') {
            r.follow = 1;
        } else if (c == 'S') {
            query_add(&r.query, "service", optarg);
        } else if (c == 'T') {
            query_add(&r.query, "type", optarg);
        } else if (c == 'I') {
            char *end;
            errno = 0;
            since = strtoll(optarg, &end, 10);
            if (!optarg[0] || *end || errno || since < 0 || optarg[0] == '+' || optarg[0] == ' ') {
                common_buf_free(&r.query);
                return ctl_usage_error(ctx, "--since-index: expected an event index, not '%s'",
                                       optarg);
            }
        }
    }
    int rv = ctx->exit;
    if (c == CTL_OPT_STOP)
        ;
    else if (optind < argc)
        rv = ctl_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
    else if (ctx->output == CTL_OUT_TABLE)
        rv = ctl_usage_error(ctx, "-o: events print lines or json");
    else
        rv = run(&r, since);
    common_buf_free(&r.query);
    return rv;
}
