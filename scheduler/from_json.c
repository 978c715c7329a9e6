/* The planner's input from the store's JSON: services, nodes, tasks. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "scheduler/from_json.h"

#define LIST(...) ((const char *const[]){__VA_ARGS__, NULL})

static int bad(struct sch_json_input *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int bad(struct sch_json_input *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->errmsg, sizeof(out->errmsg), fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* Follows a dotted path of object keys ("task.resources.reservations"). */
static const json_t *dig(const json_t *obj, const char *path)
{
    char key[64];
    while (obj && *path) {
        size_t len = strcspn(path, ".");
        if (len >= sizeof(key))
            return NULL;
        memcpy(key, path, len);
        key[len] = '\0';
        obj = json_object_get(obj, key);
        path += len + (path[len] == '.');
    }
    return obj;
}

/* Reads an optional string field; *value stays as it is when absent. */
static int get_str(struct sch_json_input *out, const json_t *obj, const char *path,
                   const char *where, size_t i, const char **value)
{
    const json_t *v = dig(obj, path);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return bad(out, "%s[%zu].%s: not a string", where, i, path);
    *value = json_string_value(v);
    return 0;
}

/* Reads an optional enum field as the index of its word in words. */
static int get_enum(struct sch_json_input *out, const json_t *obj, const char *path,
                    const char *where, size_t i, const char *const *words, int *value)
{
    const char *s = NULL;
    int rv = get_str(out, obj, path, where, i, &s);
    if (rv < 0 || !s)
        return rv;
    for (int k = 0; words[k]; k++) {
        if (strcmp(s, words[k]) == 0) {
            *value = k;
            return 0;
        }
    }
    return bad(out, "%s[%zu].%s: unknown value \"%s\"", where, i, path, s);
}

/* Reads an optional integer field, 0..max. */
static int get_int(struct sch_json_input *out, const json_t *obj, const char *path,
                   const char *where, size_t i, json_int_t max, json_int_t *value)
{
    const json_t *v = dig(obj, path);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
        return bad(out, "%s[%zu].%s: not an integer in 0..%lld", where, i, path, (long long)max);
    *value = json_integer_value(v);
    return 0;
}

static int get_cpu(struct sch_json_input *out, const json_t *obj, const char *path,
                   const char *where, size_t i, double *value)
{
    const json_t *v = dig(obj, path);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v) || json_number_value(v) < 0)
        return bad(out, "%s[%zu].%s: not a number >= 0", where, i, path);
    *value = json_number_value(v);
    return 0;
}

static int check_list(struct sch_json_input *out, const json_t *list, const char *what)
{
    if (list && !json_is_array(list))
        return bad(out, "%s: not a list", what);
    if (json_array_size(list) > SCH_MAX_ITEMS)
        return bad(out, "%s: more than %u entries", what, SCH_MAX_ITEMS);
    return 0;
}

static int node_labels(struct sch_json_input *out, const json_t *obj, size_t i,
                       struct sch_label *labels, size_t *n)
{
    const json_t *l = json_object_get(obj, "labels");
    const char *key;
    json_t *v;
    if (l && !json_is_object(l) && !json_is_null(l))
        return bad(out, "nodes[%zu].labels: not an object", i);
    json_object_foreach((json_t *)l, key, v)
    {
        if (!json_is_string(v))
            return bad(out, "nodes[%zu].labels.%s: not a string", i, key);
        labels[(*n)++] = (struct sch_label){key, json_string_value(v)};
    }
    return 0;
}

static int node_from_json(struct sch_json_input *out, const json_t *obj, size_t i,
                          struct sch_node *n, struct sch_label *labels)
{
    int role = SCH_ROLE_WORKER, status = SCH_NODE_READY, avail = SCH_AVAIL_ACTIVE;
    json_int_t memory = 0;
    *n = (struct sch_node){.labels = labels};
    if (!json_is_object(obj))
        return bad(out, "nodes[%zu]: not an object", i);
    int rv = get_str(out, obj, "id", "nodes", i, &n->id);
    if (rv == 0)
        rv = get_str(out, obj, "name", "nodes", i, &n->name);
    if (rv == 0)
        rv = get_enum(out, obj, "role", "nodes", i, LIST("worker", "manager"), &role);
    if (rv == 0)
        rv = get_enum(out, obj, "status", "nodes", i, LIST("ready", "down"), &status);
    if (rv == 0)
        rv = get_enum(out, obj, "availability", "nodes", i, LIST("active", "pause", "drain"),
                      &avail);
    if (rv == 0)
        rv = get_cpu(out, obj, "resources.cpu", "nodes", i, &n->cpu);
    if (rv == 0)
        rv = get_int(out, obj, "resources.memory", "nodes", i, INT64_MAX, &memory);
    if (rv == 0)
        rv = node_labels(out, obj, i, labels, &n->n_labels);
    if (rv == 0 && !n->id)
        rv = bad(out, "nodes[%zu]: no id", i);
    n->role = (enum sch_role)role;
    n->status = (enum sch_node_status)status;
    n->availability = (enum sch_availability)avail;
    n->memory = memory;
    return rv;
}

static int nodes_from_json(struct sch_json_input *out, const json_t *nodes)
{
    size_t n = json_array_size(nodes), n_labels = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *l = json_object_get(json_array_get(nodes, i), "labels");
        n_labels += json_is_object(l) ? json_object_size(l) : 0;
    }
    out->nodes_ = xcalloc(n, sizeof(*out->nodes_));
    out->labels_ = xcalloc(n_labels, sizeof(*out->labels_));
    for (size_t i = 0, at = 0; i < n; i++) {
        int rv =
            node_from_json(out, json_array_get(nodes, i), i, &out->nodes_[i], out->labels_ + at);
        if (rv < 0)
            return rv;
        at += out->nodes_[i].n_labels;
    }
    out->in.nodes = out->nodes_;
    out->in.n_nodes = n;
    return 0;
}

/* Reads placement.constraints into cons (at most SCH_MAX_CONSTRAINTS). */
static int constraints_from_json(struct sch_json_input *out, const json_t *obj, size_t i,
                                 const char **cons, size_t *n)
{
    const json_t *list = dig(obj, "placement.constraints");
    if (list && !json_is_array(list) && !json_is_null(list))
        return bad(out, "services[%zu].placement.constraints: not a list", i);
    if (json_array_size(list) > SCH_MAX_CONSTRAINTS)
        return bad(out, "services[%zu].placement.constraints: more than %d", i,
                   SCH_MAX_CONSTRAINTS);
    for (size_t k = 0; k < json_array_size(list); k++) {
        const char *c = json_string_value(json_array_get(list, k));
        if (!c)
            return bad(out, "services[%zu].placement.constraints[%zu]: not a string", i, k);
        cons[(*n)++] = c;
    }
    return 0;
}

static int spread_from_json(struct sch_json_input *out, const json_t *obj, size_t i,
                            const char **spread)
{
    const json_t *prefs = dig(obj, "placement.preferences");
    if (prefs && !json_is_array(prefs) && !json_is_null(prefs))
        return bad(out, "services[%zu].placement.preferences: not a list", i);
    if (json_array_size(prefs) == 0)
        return 0;
    return get_str(out, json_array_get(prefs, 0), "spread", "services", i, spread);
}

/* The number of entries of the port lists at path in list's objects,
 * to size the port array. */
static size_t count_ports(const json_t *list, const char *path)
{
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(list); i++) {
        const json_t *p = dig(json_array_get(list, i), path);
        n += json_is_array(p) ? json_array_size(p) : 0;
    }
    return n;
}

/* Reads the port list at path ({published, protocol} objects) into ports. */
static int ports_from_json(struct sch_json_input *out, const json_t *obj, const char *path,
                           const char *where, size_t i, struct sch_port *ports, size_t *n)
{
    const json_t *list = dig(obj, path);
    if (list && !json_is_array(list) && !json_is_null(list))
        return bad(out, "%s[%zu].%s: not a list", where, i, path);
    if (json_array_size(list) > SCH_MAX_PORTS)
        return bad(out, "%s[%zu].%s: more than %d", where, i, path, SCH_MAX_PORTS);
    for (size_t k = 0; k < json_array_size(list); k++) {
        const json_t *p = json_array_get(list, k);
        const json_t *num = json_object_get(p, "published");
        const char *proto = json_string_value(json_object_get(p, "protocol"));
        if (!json_is_integer(num) || json_integer_value(num) < 1 || json_integer_value(num) > 65535)
            return bad(out, "%s[%zu].%s[%zu].published: not a port number", where, i, path, k);
        if (proto && strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0)
            return bad(out, "%s[%zu].%s[%zu].protocol: unknown value \"%s\"", where, i, path, k,
                       proto);
        ports[(*n)++] = (struct sch_port){
            .published = (uint32_t)json_integer_value(num),
            .protocol = proto && strcmp(proto, "udp") == 0 ? SCH_PROTO_UDP : SCH_PROTO_TCP};
    }
    return 0;
}

static int service_from_json(struct sch_json_input *out, const json_t *obj, size_t i,
                             struct sch_service *s, const char **cons, struct sch_port *ports)
{
    int mode = SCH_MODE_REPLICATED, strategy = SCH_STRATEGY_SPREAD;
    json_int_t replicas = 1, version = 0, memory = 0, max_per_node = 0;
    *s = (struct sch_service){.constraints = cons, .ports = ports};
    if (!json_is_object(obj))
        return bad(out, "services[%zu]: not an object", i);
    int rv = get_str(out, obj, "name", "services", i, &s->name);
    if (rv == 0)
        rv = get_enum(out, obj, "mode", "services", i, LIST("replicated", "global"), &mode);
    if (rv == 0)
        rv = get_int(out, obj, "replicas", "services", i, SCH_MAX_REPLICAS, &replicas);
    if (rv == 0)
        rv = get_int(out, obj, "version", "services", i, INT64_MAX, &version);
    if (rv == 0)
        rv = get_cpu(out, obj, "task.resources.reservations.cpu", "services", i, &s->cpu);
    if (rv == 0)
        rv = get_int(out, obj, "task.resources.reservations.memory", "services", i, INT64_MAX,
                     &memory);
    if (rv == 0)
        rv = get_int(out, obj, "placement.max_replicas_per_node", "services", i, UINT32_MAX,
                     &max_per_node);
    if (rv == 0)
        rv = get_enum(out, obj, "placement.strategy", "services", i, LIST("spread", "binpack"),
                      &strategy);
    if (rv == 0)
        rv = constraints_from_json(out, obj, i, cons, &s->n_constraints);
    if (rv == 0)
        rv = spread_from_json(out, obj, i, &s->spread);
    if (rv == 0)
        rv = ports_from_json(out, obj, "task.ports", "services", i, ports, &s->n_ports);
    if (rv == 0 && !s->name)
        rv = bad(out, "services[%zu]: no name", i);
    s->mode = (enum sch_mode)mode;
    s->strategy = (enum sch_strategy)strategy;
    s->replicas = mode == SCH_MODE_GLOBAL ? 0 : (uint32_t)replicas;
    s->version = (uint64_t)version;
    s->memory = memory;
    s->max_replicas_per_node = (uint32_t)max_per_node;
    return rv;
}

static int services_from_json(struct sch_json_input *out, const json_t *services)
{
    size_t n = json_array_size(services), n_cons = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *list = dig(json_array_get(services, i), "placement.constraints");
        n_cons += json_is_array(list) ? json_array_size(list) : 0;
    }
    out->services_ = xcalloc(n, sizeof(*out->services_));
    out->constraints_ = xcalloc(n_cons, sizeof(*out->constraints_));
    struct sch_port *ports = out->ports_;
    for (size_t i = 0, at = 0; i < n; i++) {
        int rv = service_from_json(out, json_array_get(services, i), i, &out->services_[i],
                                   out->constraints_ + at, ports);
        if (rv < 0)
            return rv;
        at += out->services_[i].n_constraints;
        ports += out->services_[i].n_ports;
    }
    out->in.services = out->services_;
    out->in.n_services = n;
    return 0;
}

static int task_from_json(struct sch_json_input *out, const json_t *obj, size_t i,
                          struct sch_task *t, struct sch_port *ports)
{
    const char *state = NULL;
    int desired = SCH_DESIRED_RUNNING;
    json_int_t slot = 0, version = 0;
    *t = (struct sch_task){.state = SCH_TASK_NEW, .ports = ports};
    if (!json_is_object(obj))
        return bad(out, "tasks[%zu]: not an object", i);
    int rv = get_str(out, obj, "id", "tasks", i, &t->id);
    if (rv == 0)
        rv = get_str(out, obj, "service", "tasks", i, &t->service);
    if (rv == 0)
        rv = get_str(out, obj, "node", "tasks", i, &t->node);
    if (rv == 0)
        rv = get_int(out, obj, "slot", "tasks", i, UINT32_MAX, &slot);
    if (rv == 0)
        rv = get_int(out, obj, "version", "tasks", i, INT64_MAX, &version);
    if (rv == 0)
        rv = get_enum(out, obj, "desired_state", "tasks", i, LIST("running", "shutdown"), &desired);
    if (rv == 0)
        rv = get_str(out, obj, "state", "tasks", i, &state);
    if (rv == 0)
        rv = ports_from_json(out, obj, "spec.ports", "tasks", i, ports, &t->n_ports);
    if (rv == 0 && state && sch_task_state_parse(state, &t->state) < 0)
        rv = bad(out, "tasks[%zu].state: unknown task state \"%s\"", i, state);
    if (rv == 0 && (!t->id || !t->service))
        rv = bad(out, "tasks[%zu]: no id or no service", i);
    t->slot = (uint32_t)slot;
    t->version = (uint64_t)version;
    t->desired = (enum sch_desired)desired;
    return rv;
}

static int tasks_from_json(struct sch_json_input *out, const json_t *tasks)
{
    size_t n = json_array_size(tasks);
    out->tasks_ = xcalloc(n, sizeof(*out->tasks_));
    struct sch_port *ports = out->ports_ + out->n_service_ports_;
    for (size_t i = 0; i < n; i++) {
        int rv = task_from_json(out, json_array_get(tasks, i), i, &out->tasks_[i], ports);
        if (rv < 0)
            return rv;
        ports += out->tasks_[i].n_ports;
    }
    out->in.tasks = out->tasks_;
    out->in.n_tasks = n;
    return 0;
}

int sch_input_from_json(const json_t *services, const json_t *nodes, const json_t *tasks,
                        struct sch_json_input *out)
{
    *out = (struct sch_json_input){0};
    int rv = check_list(out, services, "services");
    if (rv == 0)
        rv = check_list(out, nodes, "nodes");
    if (rv == 0)
        rv = check_list(out, tasks, "tasks");
    if (rv == 0) {
        out->n_service_ports_ = count_ports(services, "task.ports");
        out->ports_ = xcalloc(out->n_service_ports_ + count_ports(tasks, "spec.ports") + 1,
                              sizeof(*out->ports_));
        rv = services_from_json(out, services);
    }
    if (rv == 0)
        rv = nodes_from_json(out, nodes);
    if (rv == 0)
        rv = tasks_from_json(out, tasks);
    if (rv < 0) {
        char errmsg[sizeof(out->errmsg)];
        memcpy(errmsg, out->errmsg, sizeof(errmsg));
        sch_json_input_free(out);
        memcpy(out->errmsg, errmsg, sizeof(errmsg));
    }
    return rv;
}

void sch_json_input_free(struct sch_json_input *in)
{
    free(in->nodes_);
    free(in->labels_);
    free(in->services_);
    free(in->constraints_);
    free(in->tasks_);
    free(in->ports_);
    *in = (struct sch_json_input){0};
}
