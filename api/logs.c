/* Task logs. POST /v1/node/logs: every node answers from its own files
 * through the agent's callback, and holds a request that may wait while
 * nothing is new (read again every 100 ms). POST /v1/logs (managers): finds
 * the tasks of a service or the one task asked for, asks the nodes that ran
 * them in parallel (this node directly) and merges their answers; a node
 * that does not answer in time is an error entry, never a hang and never a
 * failure of the whole answer. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api/internal.h"
#include "common/httpc.h"
#include "common/units.h"
#include "common/util.h"

#define NODE_MAX_TASKS 1000          /* tasks in one POST /v1/node/logs */
#define POLL_MS        100           /* a parked read looks again this often */
#define FOLLOW_WAIT_MS 5000          /* the default wait of a follow */
#define NODE_GRACE_MS  3000          /* a node answers within its wait and this */
#define GATHER_MS      250           /* once lines came, how long the other nodes get */
#define ANSWER_BYTES   (4 << 20)     /* bytes of lines in one answer */
#define NODE_MIN_BYTES (64 << 10)    /* the least a node is given of them */
#define MAX_CURSORS    100000        /* entries of "cursors" */
#define MAX_TAIL       (1000 * 1000) /* entries of "tail" */
#define CURSOR_MAX     47            /* chars of "INODE:OFFSET" */
#define TS_LEN         30            /* "2026-11-26T01:02:03.123456789Z" */

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

/* "INODE:OFFSET", both decimal. */
static int cursor_ok(const char *c)
{
    size_t len = strlen(c), a = strspn(c, "0123456789");
    return len <= CURSOR_MAX && a > 0 && c[a] == ':' && c[a + 1] &&
           strspn(c + a + 1, "0123456789") == len - a - 1;
}

/* {ID: "INODE:OFFSET" or null} with at most max entries. */
static int check_cursors(json_t *v, const char *field, size_t max, struct api_err *err)
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
        if (!json_is_null(c) && !(json_is_string(c) && cursor_ok(json_string_value(c))))
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

/* Copies "tail" and "since" of body, checked, into query. */
static int check_tail_since(const json_t *body, json_t *query, struct api_err *err)
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

static int only_fields(const json_t *body, const char *const *fields, struct api_err *err)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v)
    {
        size_t i = 0;
        while (fields[i] && strcmp(fields[i], key) != 0)
            i++;
        if (!fields[i])
            return api_err_set(err, API_BAD_REQUEST, key, "unknown field");
    }
    return 0;
}

/* ---- reads of this node's logs ---- */

typedef void (*read_done_cb)(void *ctx, json_t *answer, const char *error);

/* A read of this node's logs that waits for new lines. */
struct api__node_read {
    uv_timer_t timer;
    struct api_server *srv;
    json_t *query;          /* owned: the tasks with the cursors reached so far */
    uint64_t deadline;      /* monotonic ms */
    struct api__call *call; /* the request it answers (to see its client go), or NULL */
    read_done_cb done;
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

/* Unlinks the read and frees it once its timer is closed; done is not
 * called. */
static void read_cancel(struct api__node_read *r)
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
    read_done_cb done = r->done;
    void *ctx = r->ctx;
    read_cancel(r);
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

/* Reads this node's logs for query (transferred). Calls done (answer
 * transferred, or NULL and why) at once when there are entries, wait_ms is 0,
 * or this node is stopping; else parks the read until lines come or wait_ms
 * ends, and returns it (read_cancel drops it without calling done). Returns
 * NULL when done already ran. */
static struct api__node_read *read_start(struct api_server *srv, json_t *query, int64_t wait_ms,
                                         struct api__call *call, read_done_cb done, void *ctx)
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

/* The node's own credential (a manager asking) or the admin token. */
static int node_caller_ok(struct api_server *srv, const struct api_http_req *req)
{
    const char *auth = req->authorization;
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return 0;
    if (srv->credential[0] && common_secret_equal(auth + 7, srv->credential))
        return 1;
    const char *token = api__admin_token(srv);
    return token && token[0] && common_secret_equal(auth + 7, token);
}

static void node_call_done(void *ctx, json_t *ans, const char *error)
{
    struct api__call *call = ctx;
    if (ans)
        api__reply_json(call, 200, 0, ans);
    else
        api__reply_error(call, API_INTERNAL, NULL, "%s", error);
}

/* Checks a POST /v1/node/logs body into query (what the reader takes) and
 * the wait. */
static int node_body(const json_t *body, json_t *query, int64_t *wait_ms, struct api_err *err)
{
    static const char *const fields[] = {"tasks", "since", "tail", "wait_ms", "max_bytes", NULL};
    json_t *tasks = json_object_get(body, "tasks");
    json_t *wait = json_object_get(body, "wait_ms");
    json_t *max = json_object_get(body, "max_bytes");
    if (only_fields(body, fields, err) != 0 ||
        check_cursors(tasks, "tasks", NODE_MAX_TASKS, err) != 0 ||
        check_tail_since(body, query, err) != 0)
        return -EINVAL;
    if (wait && (!json_is_integer(wait) || json_integer_value(wait) < 0 ||
                 json_integer_value(wait) > API_LOGS_MAX_WAIT_MS))
        return api_err_set(err, API_BAD_REQUEST, "wait_ms", "must be an integer from 0 to %d",
                           API_LOGS_MAX_WAIT_MS);
    if (max && (!json_is_integer(max) || json_integer_value(max) < 1 ||
                json_integer_value(max) > ANSWER_BYTES))
        return api_err_set(err, API_BAD_REQUEST, "max_bytes", "must be an integer from 1 to %d",
                           ANSWER_BYTES);
    json_object_set_new(query, "tasks", json_copy(tasks));
    if (max)
        json_object_set(query, "max_bytes", max);
    *wait_ms = wait ? json_integer_value(wait) : 0;
    return 0;
}

void api__node_logs(struct api__call *call)
{
    struct api_server *srv = call->srv;
    if (srv->closing || !srv->node_logs) {
        api__reply_error(call, API_UNAVAILABLE, NULL,
                         srv->closing ? "this node is shutting down" : "this node serves no logs");
        return;
    }
    if (!node_caller_ok(srv, call->req)) {
        api__reply_error(call, API_UNAUTHORIZED, NULL,
                         "send this node's credential or the admin token as a bearer token");
        return;
    }
    struct api_err err = {0};
    json_auto_t *body = api__parse_body(call, &err);
    json_t *query = json_object();
    int64_t wait_ms = 0;
    if (!body || node_body(body, query, &wait_ms, &err) != 0) {
        json_decref(query);
        api__reply_err(call, &err);
        return;
    }
    read_start(srv, query, wait_ms, call, node_call_done, call);
}

/* ---- POST /v1/logs ---- */

/* The tasks of one node asked in one request. */
struct target {
    struct api__fanout *fo;
    char *node_id;               /* owned */
    char *node;                  /* owned: the node's name (its id when it is not known) */
    char *addr;                  /* owned: its API address; NULL for this node */
    char *credential;            /* owned */
    json_t *tasks;               /* owned: ID -> the cursor given, or null */
    char *error;                 /* owned: why it cannot be asked, or NULL */
    int64_t req;                 /* the request in flight, 0 when none */
    struct api__node_read *read; /* this node's read while parked */
    int down;                    /* the node was marked down (no heartbeats) */
    int done;
};

/* A POST /v1/logs waiting for its nodes. */
struct api__fanout {
    struct api_server *srv;
    struct api__call *call; /* NULL once answered */
    uv_timer_t timer;       /* the time the other nodes get once lines came */
    json_t *info;           /* owned: task id -> {"service", "slot", "node" (name)} */
    json_t *entries, *cursors, *errors;
    int more;
    int follow;
    int starting;
    int64_t wait_ms;
    struct target *targets; /* owned */
    size_t n_targets, cap_targets;
    size_t pending;
    unsigned refs; /* the timer's close and every callback still to come */
    struct api__fanout *next, *prev;
};

static void fanout_unref(struct api__fanout *fo)
{
    if (--fo->refs > 0)
        return;
    for (size_t i = 0; i < fo->n_targets; i++) {
        struct target *t = &fo->targets[i];
        free(t->node_id);
        free(t->node);
        free(t->addr);
        free(t->credential);
        free(t->error);
        json_decref(t->tasks);
    }
    free(fo->targets);
    json_decref(fo->info);
    json_decref(fo->entries);
    json_decref(fo->cursors);
    json_decref(fo->errors);
    free(fo);
}

static void fanout_timer_closed(uv_handle_t *h)
{
    fanout_unref(container_of((uv_timer_t *)h, struct api__fanout, timer));
}

static void add_error(struct api__fanout *fo, const struct target *t, json_t *ids, const char *why)
{
    json_array_append_new(
        fo->errors, json_pack("{s:s, s:o, s:s}", "node", t->node, "tasks", ids, "error", why));
}

static json_t *target_ids(const struct target *t)
{
    json_t *ids = json_array();
    const char *id;
    json_t *c;
    json_object_foreach(t->tasks, id, c) json_array_append_new(ids, json_string(id));
    return ids;
}

/* The target's tasks keep the cursors they came with. */
static void keep_cursors(struct api__fanout *fo, const struct target *t)
{
    json_object_update(fo->cursors, t->tasks);
}

struct sorted_entry {
    json_t *e;
    size_t seq;
};

static int by_ts(const void *a, const void *b)
{
    const struct sorted_entry *x = a, *y = b;
    int c = strcmp(json_string_value(json_object_get(x->e, "ts")),
                   json_string_value(json_object_get(y->e, "ts")));
    if (c)
        return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

json_t *api_log_entries_sorted(const json_t *entries)
{
    size_t n = json_array_size(entries);
    struct sorted_entry *v = xcalloc(n + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++)
        v[i] = (struct sorted_entry){json_array_get(entries, i), i};
    qsort(v, n, sizeof(*v), by_ts);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append(out, v[i].e);
    free(v);
    return out;
}

/* Answers with what came; the targets still out keep their cursors, and
 * with why_pending set they are errors too. Their requests are cancelled. */
static void fanout_answer(struct api__fanout *fo, const char *why_pending)
{
    struct api_server *srv = fo->srv;
    unsigned cancelled = 0;
    for (size_t i = 0; i < fo->n_targets; i++) {
        struct target *t = &fo->targets[i];
        if (t->done)
            continue;
        keep_cursors(fo, t);
        char why[512];
        if (why_pending)
            snprintf(why, sizeof(why), "node %s: %s", t->node, why_pending);
        else if (t->down) /* else it would never show while others have lines */
            snprintf(why, sizeof(why), "node %s is down (no heartbeats) and did not answer yet",
                     t->node);
        if (why_pending || t->down)
            add_error(fo, t, target_ids(t), why);
        if (t->read) {
            read_cancel(t->read);
            t->read = NULL;
            cancelled++;
        }
        if (t->req > 0)
            common_httpc_cancel(srv->httpc, t->req); /* its callback comes later */
    }
    json_t *ans = json_pack("{s:o, s:O, s:O, s:b}", "entries", api_log_entries_sorted(fo->entries),
                            "cursors", fo->cursors, "errors", fo->errors, "more", fo->more);
    api__reply_json(fo->call, 200, 0, ans);
    fo->call = NULL;
    if (fo->next)
        fo->next->prev = fo->prev;
    if (fo->prev)
        fo->prev->next = fo->next;
    else
        srv->fanouts = fo->next;
    uv_timer_stop(&fo->timer);
    uv_close((uv_handle_t *)&fo->timer, fanout_timer_closed);
    while (cancelled-- > 0)
        fanout_unref(fo); /* the timer's close is still to come */
}

static void gather_done(uv_timer_t *timer)
{
    struct api__fanout *fo = container_of(timer, struct api__fanout, timer);
    if (fo->call)
        fanout_answer(fo, NULL);
}

/* Answers when every node did, or soon after lines came (following). */
static void fanout_check(struct api__fanout *fo)
{
    if (!fo->call || fo->starting)
        return;
    if (fo->pending == 0)
        fanout_answer(fo, NULL);
    else if (fo->follow && json_array_size(fo->entries) > 0 &&
             !uv_is_active((uv_handle_t *)&fo->timer))
        uv_timer_start(&fo->timer, gather_done, GATHER_MS, 0);
}

static int in_list(const json_t *list, const char *s)
{
    for (size_t i = 0; i < json_array_size(list); i++)
        if (strcmp(json_string_value(json_array_get(list, i)) ?: "", s) == 0)
            return 1;
    return 0;
}

/* Takes one node's answer in: its entries with their service, slot and node,
 * its cursors, its errors. */
static void merge(struct api__fanout *fo, struct target *t, const json_t *ans)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(ans, "entries"), i, e)
    {
        json_t *info = json_object_get(fo->info, json_string_value(json_object_get(e, "task")));
        if (!info || !json_object_get(t->tasks, json_string_value(json_object_get(e, "task"))) ||
            !json_is_string(json_object_get(e, "ts")) ||
            !json_is_string(json_object_get(e, "line")))
            continue;
        json_t *copy = json_copy(e);
        json_object_update(copy, info);
        json_array_append_new(fo->entries, copy);
    }
    json_t *cursors = json_object_get(ans, "cursors");
    json_t *missing = json_object_get(ans, "missing");
    json_t *errors = json_object_get(ans, "errors");
    const char *id;
    json_t *given;
    json_object_foreach(t->tasks, id, given)
    {
        json_t *c = json_object_get(cursors, id);
        if (json_is_string(c) && cursor_ok(json_string_value(c)))
            json_object_set(fo->cursors, id, c);
        else
            json_object_set_new(fo->cursors, id,
                                in_list(missing, id) ? json_null() : json_incref(given));
        const char *why = json_string_value(json_object_get(errors, id));
        if (why)
            add_error(fo, t, json_pack("[s]", id), why);
    }
    if (json_is_true(json_object_get(ans, "more")))
        fo->more = 1;
}

static void target_finish(struct target *t, const json_t *ans, const char *why)
{
    struct api__fanout *fo = t->fo;
    if (t->done)
        return;
    t->done = 1;
    fo->pending--;
    if (!fo->call)
        return;
    if (ans) {
        merge(fo, t, ans);
    } else {
        keep_cursors(fo, t);
        add_error(fo, t, target_ids(t), why);
    }
    fanout_check(fo);
}

static void local_done(void *ctx, json_t *ans, const char *error)
{
    struct target *t = ctx;
    struct api__fanout *fo = t->fo;
    char why[512];
    snprintf(why, sizeof(why), "node %s: %s", t->node, error);
    t->read = NULL;
    target_finish(t, ans, why);
    json_decref(ans);
    fanout_unref(fo);
}

static void remote_done(void *data, const struct common_httpc_response *res)
{
    struct target *t = data;
    struct api__fanout *fo = t->fo;
    t->req = 0;
    if (!fo->call || res->error == -ECANCELED) {
        target_finish(t, NULL, "the request was cancelled");
        fanout_unref(fo);
        return;
    }
    char why[512] = "";
    json_t *ans = NULL;
    if (res->status == 200) {
        ans = json_loadb(res->body, res->body_len, 0, NULL);
        if (!json_is_object(ans))
            snprintf(why, sizeof(why), "node %s sent an answer that is not a JSON object", t->node);
    } else if (res->error == -ETIMEDOUT) {
        char limit[32];
        common_format_duration(fo->wait_ms + NODE_GRACE_MS, limit, sizeof(limit));
        snprintf(why, sizeof(why), "node %s did not answer within %s: %s", t->node, limit,
                 res->errmsg);
    } else if (res->status == 0) {
        snprintf(why, sizeof(why), "node %s cannot be reached: %s", t->node,
                 res->errmsg[0] ? res->errmsg : "no answer");
    } else {
        json_t *body = json_loadb(res->body, res->body_len, 0, NULL);
        const char *error = json_string_value(json_object_get(body, "error"));
        snprintf(why, sizeof(why), "node %s answered HTTP %ld: %s", t->node, res->status,
                 error ? error : "no error given");
        json_decref(body);
    }
    target_finish(t, json_is_object(ans) ? ans : NULL, why);
    json_decref(ans);
    fanout_unref(fo);
}

static json_t *node_query(const struct api__fanout *fo, const struct target *t,
                          const json_t *shared)
{
    json_t *q = json_copy((json_t *)shared);
    json_object_set_new(q, "tasks", json_copy(t->tasks));
    size_t share = ANSWER_BYTES / (fo->n_targets ? fo->n_targets : 1);
    json_object_set_new(q, "max_bytes",
                        json_integer(share > NODE_MIN_BYTES ? (json_int_t)share : NODE_MIN_BYTES));
    return q;
}

static void target_start(struct api__fanout *fo, struct target *t, const json_t *shared)
{
    struct api_server *srv = fo->srv;
    if (t->error) {
        target_finish(t, NULL, t->error);
        return;
    }
    json_t *q = node_query(fo, t, shared);
    fo->refs++;
    if (!t->addr) {
        t->read = read_start(srv, q, fo->wait_ms, NULL, local_done, t);
        return;
    }
    json_object_set_new(q, "wait_ms", json_integer(fo->wait_ms));
    _cleanup_free_ char *body = json_dumps(q, JSON_COMPACT);
    json_decref(q);
    char url[128], auth[200];
    snprintf(url, sizeof(url), "http://%s/v1/node/logs", t->addr);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", t->credential);
    const char *headers[] = {auth, "Content-Type: application/json", NULL};
    t->req = common_httpc_request(srv->httpc, "POST", url, headers, body, strlen(body),
                                  (unsigned)(fo->wait_ms + NODE_GRACE_MS), remote_done, t);
    if (t->req < 0) {
        char why[512];
        snprintf(why, sizeof(why), "node %s cannot be asked: %s", t->node, strerror((int)-t->req));
        t->req = 0;
        target_finish(t, NULL, why);
        fanout_unref(fo);
    }
}

/* The target for a task on node_id: one per node, a new one every
 * NODE_MAX_TASKS tasks. */
static struct target *target_for(struct api__fanout *fo, const struct rs_state *st,
                                 const char *node_id)
{
    struct api_server *srv = fo->srv;
    const struct rs_node *n = rs_state_node(st, node_id);
    if (n && strcmp(n->id, node_id) != 0)
        n = NULL; /* found by name: not the node the task names */
    const char *name = n ? rs_node_str(n, "name") : node_id;
    for (size_t i = 0; i < fo->n_targets; i++) {
        struct target *t = &fo->targets[i];
        if (strcmp(t->node_id, node_id) == 0 && json_object_size(t->tasks) < NODE_MAX_TASKS)
            return t;
    }
    if (fo->n_targets == fo->cap_targets) {
        fo->cap_targets = fo->cap_targets ? 2 * fo->cap_targets : 4;
        fo->targets = xrealloc(fo->targets, fo->cap_targets * sizeof(*fo->targets));
    }
    struct target *t = &fo->targets[fo->n_targets++];
    *t = (struct target){.fo = fo,
                         .node_id = xstrdup(node_id),
                         .node = xstrdup(name[0] ? name : node_id),
                         .tasks = json_object()};
    t->down = n && strcmp(rs_node_str(n, "status"), "down") == 0;
    char why[512];
    if (!n) {
        snprintf(why, sizeof(why), "node %s is not in the cluster", node_id);
        t->error = xstrdup(why);
    } else if (strcmp(n->id, srv->node_id) != 0) {
        const char *addr = rs_node_str(n, "api_address");
        t->addr = xstrdup(addr);
        t->credential = xstrdup(n->credential ? n->credential : "");
        if (!addr[0] || strlen(addr) > 64) {
            snprintf(why, sizeof(why), "node %s has no API address", t->node);
            t->error = xstrdup(why);
        }
    }
    return t;
}

static void add_task(struct api__fanout *fo, const struct rs_state *st, const json_t *task,
                     const json_t *cursors)
{
    const char *id = json_string_value(json_object_get(task, "id"));
    const char *node = json_string_value(json_object_get(task, "node"));
    if (!id || !api_task_id_valid(id) || !node || !node[0])
        return;
    struct target *t = target_for(fo, st, node);
    json_t *c = json_object_get(cursors, id);
    json_object_set_new(t->tasks, id, json_is_string(c) ? json_incref(c) : json_null());
    json_object_set_new(fo->info, id,
                        json_pack("{s:O?, s:O?, s:s}", "service", json_object_get(task, "service"),
                                  "slot", json_object_get(task, "slot"), "node", t->node));
}

/* Checks a POST /v1/logs body: the fields other than the tasks' go into
 * shared (what every node is asked), the wait into fo. */
static int logs_body(struct api__fanout *fo, const json_t *body, json_t *shared,
                     struct api_err *err)
{
    static const char *const fields[] = {"service", "task", "tail",    "since",
                                         "follow",  "wait", "cursors", NULL};
    json_t *service = json_object_get(body, "service"), *task = json_object_get(body, "task");
    json_t *follow = json_object_get(body, "follow"), *wait = json_object_get(body, "wait");
    json_t *cursors = json_object_get(body, "cursors");
    int64_t wait_ms = FOLLOW_WAIT_MS;
    if (only_fields(body, fields, err) != 0)
        return -EINVAL;
    if (!service == !task)
        return api_err_set(err, API_BAD_REQUEST, service ? "task" : "service",
                           "give either \"service\" or \"task\"");
    if (service && (!json_is_string(service) || !json_string_length(service)))
        return api_err_set(err, API_BAD_REQUEST, "service", "must be a service name");
    if (task && (!json_is_string(task) || !api_task_id_valid(json_string_value(task))))
        return api_err_set(err, API_BAD_REQUEST, "task", "must be a task id");
    if (follow && !json_is_boolean(follow))
        return api_err_set(err, API_BAD_REQUEST, "follow", "must be true or false");
    if (wait && !json_is_true(follow))
        return api_err_set(err, API_BAD_REQUEST, "wait", "only with \"follow\": true");
    if (wait &&
        (!json_is_string(wait) || common_parse_duration(json_string_value(wait), &wait_ms) != 0 ||
         wait_ms > API_LOGS_MAX_WAIT_MS))
        return api_err_set(err, API_BAD_REQUEST, "wait", "must be a duration of at most 30s");
    if (cursors && check_cursors(cursors, "cursors", MAX_CURSORS, err) != 0)
        return -EINVAL;
    if (check_tail_since(body, shared, err) != 0)
        return -EINVAL;
    fo->follow = json_is_true(follow);
    fo->wait_ms = fo->follow ? wait_ms : 0;
    return 0;
}

/* Picks the tasks: the one asked for, or every task of the service that has
 * a node (history included). Returns 0, or -ENOENT with err set. */
static int pick_tasks(struct api__fanout *fo, const json_t *body, struct api_err *err)
{
    const struct rs_state *st = rs_store_state(fo->srv->store);
    json_t *cursors = json_object_get(body, "cursors");
    const char *task = json_string_value(json_object_get(body, "task"));
    if (task) {
        const json_t *t = json_object_get(st->tasks, task);
        if (!t)
            return api_err_set(err, API_NOT_FOUND, "task", "no task \"%s\"", task);
        add_task(fo, st, t, cursors);
        return 0;
    }
    const char *name = json_string_value(json_object_get(body, "service"));
    int known = rs_state_service(st, name) != NULL;
    const char *id;
    json_t *t;
    json_object_foreach(st->tasks, id, t)
    {
        const char *s = json_string_value(json_object_get(t, "service"));
        if (s && strcmp(s, name) == 0) {
            known = 1;
            add_task(fo, st, t, cursors);
        }
    }
    if (!known)
        return api_err_set(err, API_NOT_FOUND, "service", "no service \"%.200s\"", name);
    return 0;
}

void api__logs(struct api__call *call)
{
    struct api_server *srv = call->srv;
    if (srv->closing) {
        api__reply_error(call, API_UNAVAILABLE, NULL, "this node is shutting down");
        return;
    }
    struct api_err err = {0};
    json_auto_t *body = api__parse_body(call, &err);
    if (!body) {
        api__reply_err(call, &err);
        return;
    }
    struct api__fanout *fo = xcalloc(1, sizeof(*fo));
    fo->srv = srv;
    fo->call = call;
    fo->info = json_object();
    fo->entries = json_array();
    fo->cursors = json_object();
    fo->errors = json_array();
    fo->refs = 1; /* the timer's close, from here on */
    json_auto_t *shared = json_object();
    if (logs_body(fo, body, shared, &err) != 0 || pick_tasks(fo, body, &err) != 0) {
        api__reply_err(call, &err);
        fanout_unref(fo);
        return;
    }
    uv_timer_init(srv->loop, &fo->timer);
    fo->next = srv->fanouts;
    if (srv->fanouts)
        srv->fanouts->prev = fo;
    srv->fanouts = fo;
    fo->pending = fo->n_targets;
    fo->starting = 1;
    for (size_t i = 0; i < fo->n_targets && fo->call; i++)
        target_start(fo, &fo->targets[i], shared);
    fo->starting = 0;
    fanout_check(fo);
}

void api__logs_release(struct api_server *srv)
{
    while (srv->node_reads) {
        struct api__node_read *r = srv->node_reads;
        char errmsg[256] = "";
        json_t *ans = read_now(srv, r->query, errmsg);
        read_finish(r, ans, errmsg);
    }
    while (srv->fanouts)
        fanout_answer(srv->fanouts, "no answer before this manager stopped");
}
