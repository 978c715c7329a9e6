/* The plan as text, one line per entry, for the scheduler tests to compare
 * whole plans (included by tests/unit/test_sched*.c only). */
#ifndef SHOAL_TESTS_SCHED_PLAN_TEXT_H
#define SHOAL_TESTS_SCHED_PLAN_TEXT_H

#include "common/buf.h"
#include "scheduler/scheduler.h"

/* The plan, one line per entry: "create web.3 on n1 replacing t0002",
 * "stop t0002 (web.3 on n2): node-down orphaned", "unplaced web.4: why"
 * (global services have no slot: "create agent on n1"). */
static char *plan_text(const struct sch_plan *p)
{
    struct common_buf b = {0};
    for (size_t i = 0; i < p->n_creates; i++) {
        const struct sch_create *c = &p->creates[i];
        common_buf_printf(&b, "create %s", c->service);
        if (c->slot)
            common_buf_printf(&b, ".%u", c->slot);
        common_buf_printf(&b, " on %s", c->node);
        if (c->version != 1)
            common_buf_printf(&b, " v%llu", (unsigned long long)c->version);
        if (c->replaces)
            common_buf_printf(&b, " replacing %s", c->replaces);
        common_buf_puts(&b, "\n");
    }
    for (size_t i = 0; i < p->n_stops; i++) {
        const struct sch_stop *s = &p->stops[i];
        common_buf_printf(&b, "stop %s (%s", s->task, s->service);
        if (s->slot)
            common_buf_printf(&b, ".%u", s->slot);
        common_buf_printf(&b, " on %s): %s%s\n", s->node ? s->node : "-",
                          sch_stop_reason_name(s->reason), s->orphaned ? " orphaned" : "");
    }
    for (size_t i = 0; i < p->n_unplaced; i++) {
        const struct sch_unplaced *u = &p->unplaced[i];
        if (u->node)
            common_buf_printf(&b, "unplaced %s on %s: %s\n", u->service, u->node, u->reason);
        else
            common_buf_printf(&b, "unplaced %s.%u: %s\n", u->service, u->slot, u->reason);
    }
    return common_buf_take(&b, NULL);
}

#endif
