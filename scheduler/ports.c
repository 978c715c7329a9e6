/* Published ports per node: which (node, port, protocol) are taken by live
 * tasks and by the tasks the plan creates, so that placement can skip a
 * node where a service's port is in use. */
#include <errno.h>
#include <stdio.h>

#include "common/util.h"
#include "scheduler/internal.h"

#define USED (UINT64_C(1) << 63)

static uint64_t key_of(uint32_t node, const struct sch_port *p)
{
    return USED | (uint64_t)node << 20 | (uint64_t)(p->protocol & 0xf) << 16 |
           (p->published & 0xffff);
}

static size_t slot_of(uint64_t key, size_t mask)
{
    key ^= key >> 33;
    key *= UINT64_C(0xff51afd7ed558ccd);
    key ^= key >> 33;
    return (size_t)key & mask;
}

static bool has(const struct sch__ports *set, uint64_t key)
{
    if (!set->cap)
        return false;
    for (size_t i = slot_of(key, set->cap - 1); set->keys[i]; i = (i + 1) & (set->cap - 1))
        if (set->keys[i] == key)
            return true;
    return false;
}

static void put(struct sch__ports *set, uint64_t key)
{
    size_t i = slot_of(key, set->cap - 1);
    for (; set->keys[i]; i = (i + 1) & (set->cap - 1))
        if (set->keys[i] == key)
            return;
    set->keys[i] = key;
    set->n++;
}

static void grow(struct sch__ports *set)
{
    struct sch__ports old = *set;
    set->cap = old.cap ? 2 * old.cap : 64;
    set->keys = xcalloc(set->cap, sizeof(*set->keys));
    set->n = 0;
    for (size_t i = 0; i < old.cap; i++)
        if (old.keys[i])
            put(set, old.keys[i]);
    free(old.keys);
}

void sch__ports_add(struct sch__ports *set, uint32_t i, const struct sch_port *ports, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (2 * (set->n + 1) > set->cap)
            grow(set);
        put(set, key_of(i, &ports[k]));
    }
}

const struct sch_port *sch__port_conflict(const struct sch__ctx *ctx, uint32_t s, uint32_t i)
{
    const struct sch_service *svc = ctx->svcs[s].in;
    for (size_t k = 0; k < svc->n_ports; k++)
        if (has(&ctx->ports, key_of(i, &svc->ports[k])))
            return &svc->ports[k];
    return NULL;
}

const char *sch__proto_name(enum sch_proto p)
{
    return p == SCH_PROTO_UDP ? "udp" : "tcp";
}

void sch__ports_free(struct sch__ports *set)
{
    free(set->keys);
    *set = (struct sch__ports){0};
}

int sch__ports_check(const struct sch_port *ports, size_t n, const char *what, char *errmsg,
                     size_t size)
{
    if (n > SCH_MAX_PORTS || (n && !ports)) {
        snprintf(errmsg, size, "%s: bad port list", what);
        return -EINVAL;
    }
    for (size_t k = 0; k < n; k++) {
        if (ports[k].published == 0 || ports[k].published > 65535 ||
            (unsigned)ports[k].protocol > SCH_PROTO_UDP) {
            snprintf(errmsg, size, "%s: port %zu out of range", what, k);
            return -EINVAL;
        }
    }
    return 0;
}
