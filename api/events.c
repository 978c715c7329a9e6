/* GET /v1/events: the event stream as newline-delimited JSON, read from this
 * manager's copy of the state, filtered by service and type prefixes,
 * resumable from an event index and blocking like the other reads. */
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "common/buf.h"
#include "common/util.h"
#include "raft/events.h"

#define EVENTS_PAGE     1000 /* events in one answer after ?index= */
#define EVENTS_LAST     100  /* events in an answer without ?index= */
#define MAX_TYPES       16   /* type prefixes in one request */
#define MAX_TYPE_LEN    64
#define MAX_SERVICE_LEN 128

struct filter {
    char service[MAX_SERVICE_LEN];
    char types[MAX_TYPES][MAX_TYPE_LEN];
    const char *type_ptrs[MAX_TYPES];
    struct rs_events_filter f;
};

/* Adds the comma-separated prefixes of value to f. Returns 0, or -1 when
 * there are too many or one is too long. */
static int add_types(struct filter *f, const char *value)
{
    for (const char *p = value; *p;) {
        size_t len = strcspn(p, ",");
        if (len >= MAX_TYPE_LEN || (len > 0 && f->f.n_types == MAX_TYPES))
            return -1;
        if (len > 0) {
            memcpy(f->types[f->f.n_types], p, len);
            f->types[f->f.n_types][len] = '\0';
            f->type_ptrs[f->f.n_types] = f->types[f->f.n_types];
            f->f.n_types++;
        }
        p += len + (p[len] == ',');
    }
    return 0;
}

/* Reads ?service= and every ?type= (repeated, or comma lists) of the call.
 * Returns 0, or -1 after answering 400. */
static int parse_filter(struct api__call *call, struct filter *f)
{
    memset(f, 0, sizeof(*f));
    f->f.types = f->type_ptrs;
    if (api_http_query(call->req, "service", f->service, sizeof(f->service)) < 0) {
        api__reply_error(call, API_BAD_REQUEST, "service", "must be at most %d bytes",
                         MAX_SERVICE_LEN - 1);
        return -1;
    }
    f->f.service = f->service;
    /* api_http_query finds the first "type" only: each "type=..." part of the
     * query is looked at on its own. */
    for (const char *p = call->req->query; *p;) {
        size_t len = strcspn(p, "&");
        char part[MAX_TYPES * MAX_TYPE_LEN * 3 + 8];
        char value[MAX_TYPES * MAX_TYPE_LEN];
        if (len >= 4 && memcmp(p, "type", 4) == 0 && (len == 4 || p[4] == '=')) {
            struct api_http_req one = {.query = part};
            int got = -1;
            if (len < sizeof(part)) {
                memcpy(part, p, len);
                part[len] = '\0';
                got = api_http_query(&one, "type", value, sizeof(value));
            }
            if (got < 0 || add_types(f, value) != 0) {
                api__reply_error(call, API_BAD_REQUEST, "type",
                                 "at most %d type prefixes of at most %d bytes each", MAX_TYPES,
                                 MAX_TYPE_LEN - 1);
                return -1;
            }
        }
        p += len + (p[len] == '&');
    }
    return 0;
}

static uint64_t events_index(struct api_server *srv, const char *arg)
{
    (void)arg;
    return rs_events_head(rs_store_state(srv->store)->events);
}

static void events_render(struct api__call *call, struct api__doc *doc)
{
    struct filter f;
    char value[64];
    parse_filter(call, &f); /* checked before: cannot fail now */
    int has_index = api_http_query(call->req, "index", value, sizeof(value)) > 0;
    uint64_t after = has_index ? strtoull(value, NULL, 10) : 0;
    const struct rs_events *ev = rs_store_state(call->srv->store)->events;
    struct common_buf b = {0};
    struct rs_events_page page;
    rs_events_read(ev, has_index, after, &f.f, has_index ? EVENTS_PAGE : EVENTS_LAST, &b, &page);
    doc->status = 200;
    doc->content_type = "application/x-ndjson";
    doc->owned = common_buf_take(&b, &doc->len);
    doc->body = doc->owned;
    doc->index = page.index;
}

void api__events(struct api__call *call)
{
    struct filter f;
    if (parse_filter(call, &f) == 0)
        api__serve_get(call, events_index, events_render);
}
