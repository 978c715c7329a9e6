/* Task logs, the part every node serves: the checks of a log request that
 * POST /v1/node/logs and POST /v1/logs share, reads of this node's own files
 * through the agent's callback, and POST /v1/node/logs, whose request may
 * wait while nothing is new (read again every 100 ms). POST /v1/logs, which
 * asks the nodes and merges their answers, is in api/logs_fanout.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/logs_internal.h"
#include "common/util.h"

#define POLL_MS    100           /* a parked read looks again this often */
#define MAX_TAIL   (1000 * 1000) /* entries of "tail" */
#define CURSOR_MAX 47            /* chars of "INODE:OFFSET" */
#define TS_LEN     30            /* "2026-11-26T01:02:03.123456789Z" */

/* ---- checking requests ---- */

int api_task_id_valid(const char *id)
{
    size_t len = strlen(id);
    if (len == 0 || len > 64 || id[0] == '.')
        return 0;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return 0;
    return 1;
}

int api__logs_cursor_ok(const char *c)
{
    size_t len = strlen(c), a = strspn(c, "0123456789");
    return len <= CURSOR_MAX && a > 0 && c[a] == ':' && c[a + 1] &&
           strspn(c + a + 1, "0123456789") == len - a - 1;
}

int api__logs_check_cursors(json_t *v, const char *field, size_t max, struct api_err *err)
{
    if (!json_is_object(v) || json_object_size(v) > max)
        return api_err_set(err, API_BAD_REQUEST, field,
                           "must be an object of at most %zu task ids to cursors", max);
    const char *id;
    json_t *c;
    json_object_foreach(v, id, c)
    {
        if (!api_task_id_valid(id))
            return api_err_set(err, API_BAD_REQUEST, field, "\"%.64s\" is not a task id", id);
        if (!json_is_null(c) && !(json_is_string(c) && api__logs_cursor_ok(json_string_value(c))))
            return api_err_set(err, API_BAD_REQUEST, field,
                               "the cursor of %s must be null or a cursor from an earlier answer",
                               id);
    }
    return 0;
}

static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9')
            return -1;
        v = v * 10 + (**p - '0');
    }
    *out = v;
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return days[m - 1] + (m == 2 && leap);
}

/* Parses an RFC 3339 time ("2026-11-26T01:02:03Z", "...03.5+01:00") into
 * the form the log files write (UTC, 9 fraction digits), so that times
 * compare as strings. Returns 0 or -EINVAL. */
static int normalize_time(const char *s, char out[TS_LEN + 1])
{
    int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
    long nsec = 0;
    const char *p = s;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
        digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' ') || (p++, digits(&p, 2, &h)) ||
        *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' || digits(&p, 2, &sec))
        return -EINVAL;
    if (*p == '.') {
        p++;
        int n = 0;
        for (; *p >= '0' && *p <= '9'; p++, n++)
            if (n < 9)
                nsec = nsec * 10 + (*p - '0');
        if (n == 0)
            return -EINVAL;
        for (; n < 9; n++)
            nsec *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p++ == '+' ? 1 : -1;
        if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 || om > 59)
            return -EINVAL;
    } else {
        return -EINVAL;
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        sec > 60)
        return -EINVAL;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    time_t t = timegm(&tm) - sign * (oh * 3600 + om * 60);
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
        return -EINVAL;
    snprintf(out, TS_LEN + 1, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, nsec);
    return 0;
}

int api__logs_check_tail_since(const json_t *body, json_t *query, struct api_err *err)
{
    json_t *tail = json_object_get(body, "tail");
    if (tail && (!json_is_integer(tail) || json_integer_value(tail) < 0 ||
                 json_integer_value(tail) > MAX_TAIL))
        return api_err_set(err, API_BAD_REQUEST, "tail", "must be an integer from 0 to %d",
                           MAX_TAIL);
    if (tail)
        json_object_set(query, "tail", tail);
    json_t *since = json_object_get(body, "since");
    char ts[TS_LEN + 1];
    if (since && (!json_is_string(since) || normalize_time(json_string_value(since), ts) != 0))
        return api_err_set(err, API_BAD_REQUEST, "since",
                           "must be an RFC 3339 time such as \"2026-11-26T01:02:03Z\"");
    if (since)
        json_object_set_new(query, "since", json_string(ts));
    return 0;
}

/* ---- reads of this node's logs ---- */

/* A read of this node's logs that waits for new lines. */
struct api__node_read {
    uv_timer_t timer;
    struct api_server *srv;
    json_t *query;          /* owned: the tasks with the cursors reached so far */
    uint64_t deadline;      /* monotonic ms */
    struct api__call *call; /* the request it answers (to see its client go), or NULL */
    api__node_read_cb done;
    void *ctx;
    struct api__node_read *next, *prev;
};

/* Reads once. Returns the answer (transferred) or NULL with errmsg set. */
static json_t *read_now(struct api_server *srv, const json_t *query, char *errmsg)
{
    if (!srv->node_logs) {
        snprintf(errmsg, 256, "this node serves no logs");
        return NULL;
    }
    json_t *ans = NULL;
    if (srv->node_logs(srv->node_logs_data, query, &ans, errmsg) != 0 || !ans) {
        if (!errmsg[0])
            snprintf(errmsg, 256, "reading the logs failed");
        json_decref(ans);
        return NULL;
    }
    return ans;
}

static int has_entries(const json_t *ans)
{
    return json_array_size(json_object_get(ans, "entries")) > 0;
}

/* The cursors an answer reached become those of the next read (so that a
 * tail applies only once). */
static void advance(json_t *query, const json_t *ans)
{
    json_t *tasks = json_object_get(query, "tasks");
    const char *id;
    json_t *c;
    json_object_foreach(json_object_get(ans, "cursors"), id, c) json_object_set(tasks, id, c);
}

static void read_closed(uv_handle_t *h)
{
    struct api__node_read *r = container_of((uv_timer_t *)h, struct api__node_read, timer);
    json_decref(r->query);
    free(r);
}

void api__node_read_cancel(struct api__node_read *r)
{
    struct api_server *srv = r->srv;
    if (r->next)
        r->next->prev = r->prev;
    if (r->prev)
        r->prev->next = r->next;
    else
        srv->node_reads = r->next;
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, read_closed);
}

static void read_finish(struct api__node_read *r, json_t *ans, const char *error)
{
    api__node_read_cb done = r->done;
    void *ctx = r->ctx;
    api__node_read_cancel(r);
    done(ctx, ans, error);
}

static void read_tick(uv_timer_t *t)
{
    struct api__node_read *r = container_of(t, struct api__node_read, timer);
    if (r->call && !r->call->req->conn) {
        read_finish(r, NULL, "the client is gone"); /* answers into nothing */
        return;
    }
    char errmsg[256] = "";
    json_t *ans = read_now(r->srv, r->query, errmsg);
    if (ans && !has_entries(ans) && common_now_ms() < r->deadline) {
        advance(r->query, ans);
        json_decref(ans);
        return;
    }
    read_finish(r, ans, errmsg);
}

struct api__node_read *api__node_read_start(struct api_server *srv, json_t *query, int64_t wait_ms,
                                            struct api__call *call, api__node_read_cb done,
                                            void *ctx)
{
    char errmsg[256] = "";
    json_t *ans = read_now(srv, query, errmsg);
    if (!ans || has_entries(ans) || wait_ms <= 0 || srv->closing) {
        json_decref(query);
        done(ctx, ans, errmsg);
        return NULL;
    }
    struct api__node_read *r = xcalloc(1, sizeof(*r));
    r->srv = srv;
    r->query = query;
    r->deadline = common_now_ms() + (uint64_t)wait_ms;
    r->call = call;
    r->done = done;
    r->ctx = ctx;
    advance(query, ans);
    json_decref(ans);
    uv_timer_init(srv->loop, &r->timer);
    uv_timer_start(&r->timer, read_tick, POLL_MS, POLL_MS);
    r->next = srv->node_reads;
    if (srv->node_reads)
        srv->node_reads->prev = r;
    srv->node_reads = r;
    return r;
}

/* ---- POST /v1/node/logs ---- */

/* Checks a POST /v1/node/logs body into query (what the reader takes) and
 * the wait. */
static int node_body(const json_t *body, json_t *query, int64_t *wait_ms, struct api_err *err)
{
    static const char *const fields[] = {"tasks", "since", "tail", "wait_ms", "max_bytes", NULL};
    json_t *tasks = json_object_get(body, "tasks");
    json_t *wait = json_object_get(body, "wait_ms");
    json_t *max = json_object_get(body, "max_bytes");
    if (api__body_only_fields(body, fields, err) != 0 ||
        api__logs_check_cursors(tasks, "tasks", API__LOGS_NODE_MAX_TASKS, err) != 0 ||
        api__logs_check_tail_since(body, query, err) != 0)
        return -EINVAL;
    if (wait && (!json_is_integer(wait) || json_integer_value(wait) < 0 ||
                 json_integer_value(wait) > API_LOGS_MAX_WAIT_MS))
        return api_err_set(err, API_BAD_REQUEST, "wait_ms", "must be an integer from 0 to %d",
                           API_LOGS_MAX_WAIT_MS);
    if (max && (!json_is_integer(max) || json_integer_value(max) < 1 ||
                json_integer_value(max) > API__LOGS_ANSWER_BYTES))
        return api_err_set(err, API_BAD_REQUEST, "max_bytes", "must be an integer from 1 to %d",
                           API__LOGS_ANSWER_BYTES);
    json_object_set_new(query, "tasks", json_copy(tasks));
    if (max)
        json_object_set(query, "max_bytes", max);
    *wait_ms = wait ? json_integer_value(wait) : 0;
    return 0;
}

void api__node_logs(struct api__call *call)
{
    json_auto_t *body = api__node_route_body(call, call->srv->node_logs != NULL, "logs");
    if (!body)
        return;
    struct api_err err = {0};
    json_t *query = json_object();
    int64_t wait_ms = 0;
    if (node_body(body, query, &wait_ms, &err) != 0) {
        json_decref(query);
        api__reply_err(call, &err);
        return;
    }
    api__node_read_start(call->srv, query, wait_ms, call, api__node_route_done, call);
}

void api__logs_release(struct api_server *srv)
{
    while (srv->node_reads) {
        struct api__node_read *r = srv->node_reads;
        char errmsg[256] = "";
        json_t *ans = read_now(srv, r->query, errmsg);
        read_finish(r, ans, errmsg);
    }
    api__logs_fanouts_release(srv);
}
