/* Health checks from the node's loop. One check at a time per task, the
 * next `interval` after the last one ended; each is bounded by `timeout`:
 * an http GET through common/httpc, a tcp connect with its own timer, or a
 * command started with uv_spawn in the task's context (its environment,
 * work dir and user, as the process driver builds them), its output read
 * from a pipe and the command killed (its whole process group) at the
 * deadline. The checker outlives agent_health_stop only as long as its
 * handles take to close; nothing of the task is touched after the stop. */
#include "agent/health.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "agent/runc.h"
#include "agent/supervisor.h"
#include "agent/task.h"
#include "common/httpc.h"
#include "common/log.h"
#include "common/units.h"
#include "common/util.h"

#define DEFAULT_INTERVAL_MS 1000
#define DEFAULT_TIMEOUT_MS  1000
#define DEFAULT_RETRIES     3

enum check_type { CHECK_HTTP, CHECK_TCP, CHECK_EXEC };

struct probe;
struct exec_run;

struct agent_health {
    uv_loop_t *loop;
    char task_id[40];
    enum check_type type;
    int port;
    char host[16];                /* where http and tcp checks connect: 127.0.0.1, or the
                                   * container's address in its network */
    char url[2200];               /* http: http://HOST:PORT/PATH */
    char **argv;                  /* owned: exec: the command, NULL-terminated */
    struct agent_process_ctx ctx; /* owned: exec: the task's context */
    char ctx_error[256];          /* exec: why the context could not be had */
    uint64_t interval_ms, timeout_ms, start_period_ms;
    int retries;
    char timed_out[64];               /* "timed out after 1s" */
    uint64_t started;                 /* uv_now() at start */
    struct agent_health_state *state; /* borrowed: until stopped */
    agent_health_cb cb;
    void *data;
    struct common_httpc *httpc; /* owned: http */
    uv_timer_t timer;           /* the next check */
    uv_timer_t deadline;        /* the check under way (tcp, exec) */
    struct probe *probe;        /* the tcp check under way */
    struct exec_run *run;       /* the exec check under way */
    int stopped;
    int refs; /* itself until stopped, each open handle, check, work and httpc */
};

/* A tcp check: freed when its handle is closed. */
struct probe {
    uv_tcp_t tcp;
    uv_connect_t req;
    struct agent_health *h;
    int done;
};

/* An exec check: freed when its process and pipe handles are closed. */
struct exec_run {
    uv_process_t proc;
    uv_pipe_t out;
    struct agent_health *h;
    int handles;  /* open: the process until it exits, the pipe until closed */
    int exited;   /* its exit status is known */
    int eof;      /* its output ended */
    int reported; /* the check's result is given (or no longer wanted) */
    int64_t status;
    int signal;
    size_t len;
    char buf[AGENT_HEALTH_OUTPUT_MAX + 1];
    char scratch[4096]; /* read buffer; what does not fit in buf is dropped */
};

static void run_check(uv_timer_t *timer);

const char *agent_health_status_name(enum agent_health_status s)
{
    static const char *const names[] = {
        [AGENT_HEALTH_NONE] = "none",
        [AGENT_HEALTH_STARTING] = "starting",
        [AGENT_HEALTH_HEALTHY] = "healthy",
        [AGENT_HEALTH_UNHEALTHY] = "unhealthy",
    };
    return (size_t)s < ARRAY_SIZE(names) ? names[s] : "none";
}

/* The length of the valid UTF-8 sequence at s (n bytes left): 1-4, 0 when
 * the bytes are a valid start cut short by the end, -1 when invalid. */
static int utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    int len;
    unsigned char lo = 0x80, hi = 0xbf; /* the range of the second byte */
    if (c >= 0x01 && c <= 0x7f)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else
        return -1;
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n)
            return 0;
        unsigned char min = i == 1 ? lo : 0x80, max = i == 1 ? hi : 0xbf;
        if (s[i] < min || s[i] > max)
            return -1;
    }
    return len;
}

size_t agent_health_utf8_fix(char *s, size_t len)
{
    unsigned char *u = (unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        int n = utf8_seq(u + i, len - i);
        if (n == 0) {
            len = i;
            break;
        }
        if (n < 0) {
            u[i++] = '?';
            continue;
        }
        i += (size_t)n;
    }
    s[len] = '\0';
    return len;
}

static int64_t duration_of(const json_t *obj, const char *key, int64_t def)
{
    int64_t ms;
    const char *s = json_string_value(json_object_get(obj, key));
    return s && common_parse_duration(s, &ms) == 0 ? ms : def;
}

/* The URL of an http check; bytes a request line cannot carry (blanks,
 * controls, non-ASCII) are percent-encoded. */
static void build_url(struct agent_health *h, const char *path)
{
    size_t n = (size_t)snprintf(h->url, sizeof(h->url), "http://%s:%d", h->host, h->port);
    if (!path || path[0] != '/')
        path = "/";
    for (const unsigned char *p = (const unsigned char *)path; *p && n + 4 < sizeof(h->url); p++) {
        if (*p <= 0x20 || *p >= 0x7f)
            n += (size_t)snprintf(h->url + n, sizeof(h->url) - n, "%%%02X", *p);
        else
            h->url[n++] = (char)*p;
    }
    h->url[n] = '\0';
}

static void parse_check(struct agent_health *h, const json_t *check)
{
    const char *type = json_string_value(json_object_get(check, "type"));
    h->type = type && strcmp(type, "http") == 0   ? CHECK_HTTP
              : type && strcmp(type, "exec") == 0 ? CHECK_EXEC
                                                  : CHECK_TCP;
    json_int_t port = json_integer_value(json_object_get(check, "port"));
    h->port = port > 0 && port < 65536 ? (int)port : 0;
    if (h->type == CHECK_HTTP)
        build_url(h, json_string_value(json_object_get(check, "path")));
    const json_t *command = json_object_get(check, "command");
    h->argv = xcalloc(json_array_size(command) + 1, sizeof(*h->argv));
    size_t i, k = 0;
    json_t *arg;
    json_array_foreach(command, i, arg)
    {
        if (json_is_string(arg))
            h->argv[k++] = xstrdup(json_string_value(arg));
    }
    h->interval_ms = (uint64_t)duration_of(check, "interval", DEFAULT_INTERVAL_MS);
    h->timeout_ms = (uint64_t)duration_of(check, "timeout", DEFAULT_TIMEOUT_MS);
    h->start_period_ms = (uint64_t)duration_of(check, "start_period", 0);
    if (h->interval_ms == 0)
        h->interval_ms = DEFAULT_INTERVAL_MS;
    if (h->timeout_ms == 0)
        h->timeout_ms = DEFAULT_TIMEOUT_MS;
    json_t *retries = json_object_get(check, "retries");
    h->retries = json_is_integer(retries) && json_integer_value(retries) > 0 &&
                         json_integer_value(retries) <= 1000
                     ? (int)json_integer_value(retries)
                     : DEFAULT_RETRIES;
    char d[32];
    common_format_duration((int64_t)h->timeout_ms, d, sizeof(d));
    snprintf(h->timed_out, sizeof(h->timed_out), "timed out after %s", d);
}

static void health_free(struct agent_health *h)
{
    for (size_t i = 0; h->argv && h->argv[i]; i++)
        free(h->argv[i]);
    free(h->argv);
    agent_process_ctx_free(&h->ctx);
    free(h);
}

static void unref(struct agent_health *h)
{
    if (--h->refs == 0)
        health_free(h);
}

static void handle_closed(uv_handle_t *handle)
{
    unref(handle->data);
}

static void schedule(struct agent_health *h)
{
    if (!h->stopped)
        uv_timer_start(&h->timer, run_check, h->interval_ms, 0);
}

/* One check ended: its output (or error) is kept, the status follows, the
 * task hears of a change, and the next check is scheduled. */
static void check_done(struct agent_health *h, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void check_done(struct agent_health *h, int ok, const char *fmt, ...)
{
    if (h->stopped)
        return;
    uv_timer_stop(&h->deadline);
    struct agent_health_state *st = h->state;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(st->output, sizeof(st->output), fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof(st->output) ? (size_t)n : sizeof(st->output) - 1;
    agent_health_utf8_fix(st->output, len);
    enum agent_health_status was = st->status, now = was;
    if (ok) {
        st->failures = 0;
        now = AGENT_HEALTH_HEALTHY;
    } else if (was == AGENT_HEALTH_STARTING && uv_now(h->loop) - h->started < h->start_period_ms) {
        /* Inside the start period: a failure does not count. */
    } else if (++st->failures >= h->retries) {
        now = AGENT_HEALTH_UNHEALTHY;
    }
    LOGD("task %s: health check %s (%d failures in a row): \"%s\"", h->task_id,
         ok ? "passed" : "failed", st->failures, st->output);
    if (now != was) {
        st->status = now;
        h->refs++; /* cb may stop h */
        h->cb(h->data, was);
        schedule(h);
        unref(h);
        return;
    }
    schedule(h);
}

/* ---- http ---- */

static void http_done(void *data, const struct common_httpc_response *res)
{
    struct agent_health *h = data;
    if (h->stopped || res->error == -ECANCELED)
        return;
    if (res->error == 0)
        check_done(h, res->status >= 200 && res->status < 400, "HTTP %ld", res->status);
    else if (res->error == -ETIMEDOUT)
        check_done(h, 0, "%s", h->timed_out);
    else if (res->error == -ECONNREFUSED)
        check_done(h, 0, "connect %s:%d: connection refused", h->host, h->port);
    else
        check_done(h, 0, "%s", res->errmsg);
}

static void http_check(struct agent_health *h)
{
    static const char *const headers[] = {"User-Agent: shoal-health", NULL};
    if (!h->port) {
        check_done(h, 0, "%s", "no port to check");
        return;
    }
    int64_t id = common_httpc_request(h->httpc, "GET", h->url, headers, NULL, 0,
                                      (unsigned)h->timeout_ms, http_done, h);
    if (id <= 0)
        check_done(h, 0, "GET %s: %s", h->url, strerror((int)-id));
}

/* ---- tcp ---- */

static void probe_closed(uv_handle_t *handle)
{
    struct probe *p = handle->data;
    struct agent_health *h = p->h;
    free(p);
    unref(h);
}

/* Ends a probe: no result is given for it from now on. */
static void probe_end(struct probe *p)
{
    p->done = 1;
    p->h->probe = NULL;
    uv_close((uv_handle_t *)&p->tcp, probe_closed);
}

static void probe_connected(uv_connect_t *req, int status)
{
    struct probe *p = container_of(req, struct probe, req);
    if (p->done)
        return; /* timed out or stopped: closing */
    struct agent_health *h = p->h;
    probe_end(p);
    if (status == 0)
        check_done(h, 1, "connected to %s:%d", h->host, h->port);
    else
        check_done(h, 0, "connect %s:%d: %s", h->host, h->port, uv_strerror(status));
}

static void tcp_check(struct agent_health *h)
{
    struct sockaddr_in sa;
    if (!h->port || uv_ip4_addr(h->host, h->port, &sa) != 0) {
        check_done(h, 0, "%s", "no port to check");
        return;
    }
    struct probe *p = xcalloc(1, sizeof(*p));
    p->h = h;
    uv_tcp_init(h->loop, &p->tcp);
    p->tcp.data = p;
    h->refs++;
    h->probe = p;
    int rv = uv_tcp_connect(&p->req, &p->tcp, (const struct sockaddr *)&sa, probe_connected);
    if (rv != 0) {
        probe_end(p);
        check_done(h, 0, "connect %s:%d: %s", h->host, h->port, uv_strerror(rv));
    }
}

/* ---- exec ---- */

static void run_handle_closed(uv_handle_t *handle)
{
    struct exec_run *r = handle->data;
    if (--r->handles > 0)
        return;
    struct agent_health *h = r->h;
    free(r);
    unref(h);
}

/* No more result is wanted from r: its output is closed, the command is
 * killed (its process group: it runs in a session of its own) unless it
 * has exited; its process handle closes when it has. */
static void run_end(struct exec_run *r)
{
    r->reported = 1;
    r->h->run = NULL;
    if (!r->exited)
        kill(-r->proc.pid, SIGKILL);
    if (!uv_is_closing((uv_handle_t *)&r->out))
        uv_close((uv_handle_t *)&r->out, run_handle_closed);
}

/* The command exited and its output is read (or its deadline came with
 * the output still held open by something it left behind). */
static void run_report(struct exec_run *r)
{
    struct agent_health *h = r->h;
    while (r->len > 0 && strchr(" \t\r\n", r->buf[r->len - 1]))
        r->len--;
    r->buf[r->len] = '\0';
    agent_health_utf8_fix(r->buf, r->len);
    run_end(r);
    const char *sep = r->buf[0] ? ": " : "";
    if (r->signal)
        check_done(h, 0, "killed by signal %d%s%s", r->signal, sep, r->buf);
    else if (r->status != 0)
        check_done(h, 0, "exit %lld%s%s", (long long)r->status, sep, r->buf);
    else
        check_done(h, 1, "%s", r->buf);
}

static void run_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct exec_run *r = handle->data;
    buf->base = r->scratch;
    buf->len = sizeof(r->scratch);
}

static void run_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct exec_run *r = s->data;
    if (nread > 0) {
        size_t room = sizeof(r->buf) - 1 - r->len;
        size_t n = (size_t)nread < room ? (size_t)nread : room;
        memcpy(r->buf + r->len, buf->base, n);
        r->len += n;
    } else if (nread < 0) {
        r->eof = 1;
        uv_read_stop(s);
        if (r->exited && !r->reported)
            run_report(r);
    }
}

static void run_exited(uv_process_t *proc, int64_t status, int term_signal)
{
    struct exec_run *r = proc->data;
    r->exited = 1;
    r->status = status;
    r->signal = term_signal;
    uv_close((uv_handle_t *)proc, run_handle_closed);
    if (r->eof && !r->reported)
        run_report(r);
}

static void exec_check(struct agent_health *h)
{
    if (h->ctx_error[0]) {
        check_done(h, 0, "%s", h->ctx_error);
        return;
    }
    if (!h->argv[0]) {
        check_done(h, 0, "%s", "no command to run");
        return;
    }
    uv_file fds[2];
    int rv = uv_pipe(fds, 0, 0);
    if (rv != 0) {
        check_done(h, 0, "pipe: %s", uv_strerror(rv));
        return;
    }
    struct exec_run *r = xcalloc(1, sizeof(*r));
    r->h = h;
    h->refs++;
    uv_pipe_init(h->loop, &r->out, 0);
    r->out.data = r->proc.data = r;
    r->handles = 1;
    rv = uv_pipe_open(&r->out, fds[0]);
    if (rv != 0) {
        close(fds[0]);
        close(fds[1]);
        r->exited = 1;
        run_end(r);
        check_done(h, 0, "pipe: %s", uv_strerror(rv));
        return;
    }
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = fds[1]},
        {.flags = UV_INHERIT_FD, .data.fd = fds[1]},
    };
    uv_process_options_t o = {
        .exit_cb = run_exited,
        .file = h->argv[0],
        .args = h->argv,
        .env = h->ctx.env,
        .cwd = h->ctx.workdir,
        .flags = UV_PROCESS_DETACHED,
        .stdio_count = 3,
        .stdio = stdio,
    };
    if (h->ctx.has_user) {
        /* libuv drops the supplementary groups when it sets the ids. */
        o.flags |= UV_PROCESS_SETUID | UV_PROCESS_SETGID;
        o.uid = h->ctx.uid;
        o.gid = h->ctx.gid;
    }
    rv = uv_spawn(h->loop, &r->proc, &o);
    close(fds[1]);
    r->handles++;
    h->run = r;
    if (rv != 0) {
        /* uv_spawn leaves the handle to be closed even when it fails. */
        r->exited = 1;
        uv_close((uv_handle_t *)&r->proc, run_handle_closed);
        run_end(r);
        check_done(h, 0, "exec \"%s\": %s", h->argv[0], uv_strerror(rv));
        return;
    }
    uv_read_start((uv_stream_t *)&r->out, run_alloc, run_read);
}

/* ---- scheduling ---- */

static void deadline_passed(uv_timer_t *timer)
{
    struct agent_health *h = timer->data;
    if (h->probe) {
        probe_end(h->probe);
        check_done(h, 0, "%s", h->timed_out);
    } else if (h->run && h->run->exited) {
        run_report(h->run); /* what it left behind holds its output open */
    } else if (h->run) {
        run_end(h->run);
        check_done(h, 0, "%s", h->timed_out);
    }
}

static void run_check(uv_timer_t *timer)
{
    struct agent_health *h = timer->data;
    if (h->stopped || h->probe || h->run)
        return;
    switch (h->type) {
    case CHECK_HTTP:
        http_check(h);
        return;
    case CHECK_TCP:
        tcp_check(h);
        break;
    case CHECK_EXEC:
        exec_check(h);
        break;
    }
    if (h->probe || h->run)
        uv_timer_start(&h->deadline, deadline_passed, h->timeout_ms, 0);
}

/* ---- the task's user, looked up off the loop ---- */

struct resolve {
    uv_work_t work;
    struct agent_health *h;
    int rv;
    char errmsg[256];
};

static void resolve_work(uv_work_t *w)
{
    struct resolve *rs = container_of(w, struct resolve, work);
    /* The loop leaves h->ctx alone until resolve_done: no check is
     * scheduled before. */
    rs->rv = agent_process_ctx_resolve(&rs->h->ctx, rs->errmsg);
}

static void resolve_done(uv_work_t *w, int status)
{
    struct resolve *rs = container_of(w, struct resolve, work);
    struct agent_health *h = rs->h;
    if (status != 0)
        snprintf(h->ctx_error, sizeof(h->ctx_error), "user lookup: %s", uv_strerror(status));
    else if (rs->rv != 0)
        common_strlcpy(h->ctx_error, rs->errmsg, sizeof(h->ctx_error));
    free(rs);
    schedule(h);
    unref(h);
}

/* ---- start and stop ---- */

struct agent_health *agent_health_start(struct agent_task *t, struct agent_health_state *state,
                                        agent_health_cb cb, void *data)
{
    const json_t *check = json_object_get(t->spec, "health");
    if (!json_is_object(check))
        return NULL;
    struct agent_health *h = xcalloc(1, sizeof(*h));
    h->loop = agent_supervisor_loop(t->sup);
    common_strlcpy(h->task_id, t->id, sizeof(h->task_id));
    int runc = agent_runc_is(t);
    snprintf(h->host, sizeof(h->host), "127.0.0.1");
    if (runc)
        agent_runc_task_ip(t->dir, h->host, sizeof(h->host));
    if (!h->host[0])
        snprintf(h->host, sizeof(h->host), "127.0.0.1");
    parse_check(h, check);
    h->state = state;
    h->cb = cb;
    h->data = data;
    memset(state, 0, sizeof(*state));
    state->status = AGENT_HEALTH_STARTING;
    h->started = uv_now(h->loop);
    uv_timer_init(h->loop, &h->timer);
    uv_timer_init(h->loop, &h->deadline);
    h->timer.data = h->deadline.data = h;
    h->refs = 3; /* itself and its two timers */
    if (h->type == CHECK_HTTP) {
        common_httpc_init(&h->httpc, h->loop);
        h->refs++;
    }
    if (h->type == CHECK_EXEC && runc) {
        /* Inside the container: runc exec takes its env, cwd and user. */
        agent_process_ctx_init(t, &h->ctx);
        h->ctx.has_user = 0;
        snprintf(h->ctx.workdir, sizeof(h->ctx.workdir), "/");
        char **argv = agent_runc_exec_argv(t, h->argv);
        if (!argv)
            snprintf(h->ctx_error, sizeof(h->ctx_error), "%s", "runc is not installed");
        for (size_t i = 0; argv && h->argv[i]; i++)
            free(h->argv[i]);
        if (argv) {
            free(h->argv);
            h->argv = argv;
        }
    } else if (h->type == CHECK_EXEC) {
        agent_process_ctx_init(t, &h->ctx);
        if (h->ctx.has_user) {
            struct resolve *rs = xcalloc(1, sizeof(*rs));
            rs->h = h;
            int rv = uv_queue_work(h->loop, &rs->work, resolve_work, resolve_done);
            if (rv == 0) {
                h->refs++;
                return h; /* scheduled once the user is known */
            }
            free(rs);
            snprintf(h->ctx_error, sizeof(h->ctx_error), "user lookup: %s", uv_strerror(rv));
        }
    }
    schedule(h);
    return h;
}

static void httpc_closed(void *data)
{
    unref(data);
}

void agent_health_stop(struct agent_health *h)
{
    if (!h || h->stopped)
        return;
    h->stopped = 1;
    uv_close((uv_handle_t *)&h->timer, handle_closed);
    uv_close((uv_handle_t *)&h->deadline, handle_closed);
    if (h->probe)
        probe_end(h->probe);
    if (h->run)
        run_end(h->run);
    if (h->httpc)
        common_httpc_close(h->httpc, httpc_closed, h);
    h->httpc = NULL;
    unref(h);
}
