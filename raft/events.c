/* The event ring and the FSM's hooks that fill it (see raft/events.h). */
#include "raft/events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/util.h"
#include "raft/state.h"

/* One kept event: its JSON line, then its type and service, in one
 * allocation. */
struct rs_event {
    uint64_t index;
    char *text; /* owned: line NUL type NUL service NUL */
    size_t len; /* of the line */
    size_t cost;
    const char *type;    /* in text */
    const char *service; /* in text; "" when none */
};

struct rs_events {
    struct rs_event *slots; /* max of them once the first event came; owned */
    size_t max;
    size_t max_bytes;
    size_t first; /* the slot of the oldest */
    size_t n;
    size_t bytes;
    uint64_t head;
    uint64_t floor;
};

size_t rs_events_default_max(void)
{
    static size_t max; /* parsed once: an option, like the log level */
    if (!max) {
        const char *v = getenv("SHOAL_EVENTS_MAX");
        char *end = NULL;
        unsigned long long n = v && *v ? strtoull(v, &end, 10) : 0;
        max =
            end && !*end && n >= 1 && n <= RS_EVENTS_LIMIT_MAX ? (size_t)n : RS_EVENTS_DEFAULT_MAX;
    }
    return max;
}

struct rs_events *rs_events_new(size_t max, size_t max_bytes)
{
    struct rs_events *ev = xcalloc(1, sizeof(*ev));
    ev->max = max ? max : rs_events_default_max();
    if (!max_bytes)
        max_bytes = ev->max > RS_EVENTS_DEFAULT_MAX ? ev->max * RS_EVENTS_BYTES_EACH
                                                    : RS_EVENTS_DEFAULT_BYTES;
    ev->max_bytes = max_bytes;
    return ev;
}

static struct rs_event *slot_at(const struct rs_events *ev, size_t i)
{
    return &ev->slots[(ev->first + i) % ev->max];
}

static void drop_oldest(struct rs_events *ev)
{
    struct rs_event *e = slot_at(ev, 0);
    ev->bytes -= e->cost;
    free(e->text);
    memset(e, 0, sizeof(*e));
    ev->first = (ev->first + 1) % ev->max;
    ev->n--;
    ev->floor++;
}

static void drop_all(struct rs_events *ev)
{
    while (ev->n)
        drop_oldest(ev);
}

void rs_events_free(struct rs_events *ev)
{
    if (!ev)
        return;
    if (ev->slots)
        drop_all(ev);
    free(ev->slots);
    free(ev);
}

/* Keeps the line text[0..len) (transferred: malloc()ed) of the event `index`
 * (head+1) of this type and service (NULL: none; both copied). */
static uint64_t store(struct rs_events *ev, uint64_t index, char *text, size_t len,
                      const char *type, const char *service)
{
    if (!service)
        service = "";
    size_t tlen = strlen(type), slen = strlen(service);
    text = xrealloc(text, len + tlen + slen + 3);
    text[len] = '\0';
    memcpy(text + len + 1, type, tlen + 1);
    memcpy(text + len + 2 + tlen, service, slen + 1);
    size_t cost = len + tlen + slen + 3 + sizeof(struct rs_event);
    if (!ev->slots)
        ev->slots = xcalloc(ev->max, sizeof(*ev->slots));
    while (ev->n > 0 && (ev->n >= ev->max || ev->bytes + cost > ev->max_bytes))
        drop_oldest(ev);
    struct rs_event *slot = slot_at(ev, ev->n);
    *slot = (struct rs_event){index, text, len, cost, text + len + 1, text + len + 2 + tlen};
    ev->n++;
    ev->bytes += cost;
    ev->head = index;
    return index;
}

/* Appends e (transferred), an event object whose "type" is a string and
 * whose "index" (first in the line if it is there already) is set here. */
static uint64_t push_built(struct rs_events *ev, json_t *e)
{
    uint64_t index = ev->head + 1;
    json_object_set_new(e, "index", json_integer((json_int_t)index));
    char *text = json_dumps(e, JSON_COMPACT); /* malloc()ed: jansson's default allocator */
    if (!text)
        abort();
    index = store(ev, index, text, strlen(text), json_string_value(json_object_get(e, "type")),
                  json_string_value(json_object_get(e, "service")));
    json_decref(e);
    return index;
}

uint64_t rs_events_push(struct rs_events *ev, json_t *event)
{
    if (!json_is_object(event) || !json_is_string(json_object_get(event, "type"))) {
        json_decref(event);
        return 0;
    }
    json_t *e = json_pack("{s:i}", "index", 0); /* first in the line */
    json_object_update(e, event);
    json_decref(event);
    return push_built(ev, e);
}

void rs_events_resume(struct rs_events *ev, uint64_t head)
{
    drop_all(ev);
    if (head > ev->head)
        ev->head = head;
    ev->floor = ev->head;
}

uint64_t rs_events_head(const struct rs_events *ev)
{
    return ev->head;
}

uint64_t rs_events_floor(const struct rs_events *ev)
{
    return ev->floor;
}

size_t rs_events_count(const struct rs_events *ev)
{
    return ev->n;
}

size_t rs_events_bytes(const struct rs_events *ev)
{
    return ev->bytes;
}

int rs_events_match(const struct rs_events_filter *f, const char *type, const char *service)
{
    if (!f)
        return 1;
    if (f->service && f->service[0] && (!service || strcmp(f->service, service) != 0))
        return 0;
    if (f->n_types == 0)
        return 1;
    for (size_t i = 0; i < f->n_types; i++)
        if (strncmp(type, f->types[i], strlen(f->types[i])) == 0)
            return 1;
    return 0;
}

static void write_event(const struct rs_event *e, struct common_buf *out)
{
    common_buf_append(out, e->text, e->len);
    common_buf_puts(out, "\n");
}

void rs_events_read(const struct rs_events *ev, int has_after, uint64_t after,
                    const struct rs_events_filter *f, size_t limit, struct common_buf *out,
                    struct rs_events_page *page)
{
    *page = (struct rs_events_page){.index = ev->head};
    if (!has_after) {
        size_t start = ev->n, found = 0;
        for (size_t i = ev->n; i > 0 && found < limit; i--) {
            const struct rs_event *e = slot_at(ev, i - 1);
            if (rs_events_match(f, e->type, e->service)) {
                found++;
                start = i - 1;
            }
        }
        for (size_t i = start; i < ev->n && page->count < found; i++) {
            const struct rs_event *e = slot_at(ev, i);
            if (rs_events_match(f, e->type, e->service)) {
                write_event(e, out);
                page->count++;
            }
        }
        return;
    }
    if (after < ev->floor) {
        unsigned long long n = after, m = ev->floor + 1;
        common_buf_printf(out,
                          "{\"index\":%llu,\"type\":\"events.lost\",\"at\":0,\"message\":\"events "
                          "after %llu were dropped (the oldest kept is %llu): resuming from "
                          "%llu\"}\n",
                          (unsigned long long)ev->floor, n, m, m);
        page->lost = 1;
        after = ev->floor;
    }
    for (size_t i = after < ev->head ? (size_t)(after - ev->floor) : ev->n;
         i < ev->n && page->count < limit; i++) {
        const struct rs_event *e = slot_at(ev, i);
        if (!rs_events_match(f, e->type, e->service))
            continue;
        write_event(e, out);
        if (++page->count == limit)
            page->index = e->index;
    }
}

/* ---- the FSM's hooks ------------------------------------------------- */

json_int_t rs__op_at(const json_t *op)
{
    return json_integer_value(json_object_get(op, "at"));
}

/* s (a UTF-8 string, or NULL) cut to RS_EVENTS_MAX_TEXT bytes on a
 * character boundary (transferred). */
static json_t *short_text(const char *s)
{
    size_t len = s ? strnlen(s, RS_EVENTS_MAX_TEXT + 1) : 0;
    if (len > RS_EVENTS_MAX_TEXT) {
        len = RS_EVENTS_MAX_TEXT;
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
            len--;
    }
    json_t *j = json_stringn(s ? s : "", len);
    return j ? j : json_string("");
}

void rs__event(struct rs_state *s, json_int_t at, const char *type, json_t *fields)
{
    if (!s->events || !fields) {
        json_decref(fields);
        return;
    }
    json_t *e = json_pack("{s:i, s:s, s:I}", "index", 0, "type", type, "at", at);
    json_object_update(e, fields);
    json_decref(fields);
    push_built(s->events, e);
}

/* s as a JSON string. */
static void put_string(struct common_buf *b, const char *s)
{
    common_buf_puts(b, "\"");
    for (const char *p = s; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\')
            common_buf_printf(b, "\\%c", ch);
        else if (ch < 0x20)
            common_buf_printf(b, "\\u%04x", ch);
        else
            common_buf_append(b, p, 1);
    }
    common_buf_puts(b, "\"");
}

/* A service event with two numbers, written without jansson: the most
 * frequent writes (creates, scales) make these. */
static void service_event(struct rs_state *s, json_int_t at, const char *type, const char *name,
                          const char *k1, json_int_t v1, const char *k2, json_int_t v2)
{
    if (!s->events)
        return;
    struct common_buf b = {0};
    uint64_t index = s->events->head + 1;
    common_buf_printf(&b, "{\"index\":%llu,\"type\":\"%s\",\"at\":%lld,\"service\":",
                      (unsigned long long)index, type, (long long)at);
    put_string(&b, name);
    common_buf_printf(&b, ",\"%s\":%lld,\"%s\":%lld}", k1, (long long)v1, k2, (long long)v2);
    size_t len;
    char *text = common_buf_take(&b, &len);
    store(s->events, index, text, len, type, name);
}

void rs__event_service(struct rs_state *s, json_int_t at, const char *type,
                       const struct rs_service *svc)
{
    service_event(s, at, type, svc->name, "version", (json_int_t)svc->version, "replicas",
                  (json_int_t)svc->replicas);
}

void rs__event_scaled(struct rs_state *s, json_int_t at, const struct rs_service *svc,
                      json_int_t to)
{
    if (svc->replicas != to)
        service_event(s, at, "service.scaled", svc->name, "from", (json_int_t)svc->replicas, "to",
                      to);
}

void rs__event_rollout(struct rs_state *s, json_int_t at, const char *type,
                       const struct rs_service *svc)
{
    const json_t *r = svc->rollout;
    char name[64];
    if (!r)
        return;
    if (!type) {
        const char *state = json_string_value(json_object_get(r, "state"));
        if (!state || (strcmp(state, "paused") != 0 && strcmp(state, "completed") != 0 &&
                       strcmp(state, "rolled_back") != 0))
            return;
        snprintf(name, sizeof(name), "rollout.%s", state);
        type = name;
    }
    const char *kind = json_string_value(json_object_get(r, "kind"));
    json_t *fields = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:o}", "service", svc->name,
                               "kind", kind ? kind : "update", "from_version",
                               json_integer_value(json_object_get(r, "from_version")), "to_version",
                               json_integer_value(json_object_get(r, "to_version")), "updated",
                               json_integer_value(json_object_get(r, "updated")), "total",
                               json_integer_value(json_object_get(r, "total")), "failures",
                               json_integer_value(json_object_get(r, "failures")), "message",
                               short_text(json_string_value(json_object_get(r, "message"))));
    rs__event(s, at, type, fields);
}

void rs__event_node(struct rs_state *s, json_int_t at, const char *type, const struct rs_node *n)
{
    rs__event(s, at, type,
              json_pack("{s:s, s:s, s:s}", "node", n->id, "node_name", rs_node_str(n, "name"),
                        "role", rs_node_str(n, "role")));
}

void rs__event_availability(struct rs_state *s, json_int_t at, const struct rs_node *n,
                            const json_t *availability)
{
    static const struct {
        const char *availability, *type;
    } types[] = {{"active", "node.active"}, {"pause", "node.paused"}, {"drain", "node.drained"}};
    const char *to = json_string_value(availability);
    if (!to || strcmp(to, rs_node_str(n, "availability")) == 0)
        return;
    for (size_t i = 0; i < ARRAY_SIZE(types); i++)
        if (strcmp(types[i].availability, to) == 0)
            rs__event_node(s, at, types[i].type, n);
}

/* The fields that name a task in an event (transferred). */
static json_t *task_fields(struct rs_state *s, const json_t *task)
{
    const char *node = json_string_value(json_object_get(task, "node"));
    const struct rs_node *n = node ? rs_state_node(s, node) : NULL;
    json_t *slot = json_object_get(task, "slot");
    return json_pack("{s:s?, s:s?, s:O?, s:s?, s:s?}", "service",
                     json_string_value(json_object_get(task, "service")), "task",
                     json_string_value(json_object_get(task, "id")), "slot",
                     json_is_integer(slot) ? slot : NULL, "node", node, "node_name",
                     n ? rs_node_str(n, "name") : NULL);
}

static const char *health_status(const json_t *health)
{
    return json_string_value(json_object_get(health, "status"));
}

void rs__event_task(struct rs_state *s, json_int_t at, const json_t *task, const char *from,
                    const json_t *health)
{
    const char *to = json_string_value(json_object_get(task, "state"));
    if (from && to && strcmp(from, to) != 0) {
        json_t *f = task_fields(s, task);
        json_t *code = json_object_get(task, "exit_code");
        json_object_set_new(f, "from", json_string(from));
        json_object_set_new(f, "to", json_string(to));
        json_object_set_new(f, "message",
                            short_text(json_string_value(json_object_get(task, "message"))));
        json_object_set_new(f, "exit_code",
                            json_is_integer(code) ? json_incref(code) : json_null());
        rs__event(s, at, "task.state", f);
    }
    const char *now = health_status(health);
    const char *was = health_status(json_object_get(task, "health"));
    if (now && (!was || strcmp(now, was) != 0)) {
        json_t *f = task_fields(s, task);
        json_object_set_new(f, "from", was ? json_string(was) : json_null());
        json_object_set_new(f, "to", json_string(now));
        json_object_set(f, "failures", json_object_get(health, "failures"));
        json_object_set_new(f, "output",
                            short_text(json_string_value(json_object_get(health, "output"))));
        rs__event(s, at, "task.health", f);
    }
}

void rs__events_encode(const struct rs_state *s, struct common_buf *b)
{
    common_buf_printf(b, ",\"events_index\":%llu",
                      (unsigned long long)(s->events ? rs_events_head(s->events) : 0));
}

void rs__events_decode(struct rs_state *fresh, const json_t *root)
{
    json_int_t head = json_integer_value(json_object_get(root, "events_index"));
    rs_events_resume(fresh->events, head > 0 ? (uint64_t)head : 0);
}
