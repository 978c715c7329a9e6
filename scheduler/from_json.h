/* The planner's input built from the JSON the store keeps: service bodies
 * (docs/service-spec.md), node objects (docs/cluster.md) and task objects.
 * A thin adapter kept apart from the planner, which sees no JSON. */
#ifndef SHOAL_SCHEDULER_FROM_JSON_H
#define SHOAL_SCHEDULER_FROM_JSON_H

#include <jansson.h>

#include "scheduler/scheduler.h"

struct sch_json_input {
    struct sch_input in; /* what to pass to sch_plan_compute */
    char errmsg[256];    /* why sch_input_from_json failed */
    /* Private: the arrays `in` points into (owned). */
    struct sch_node *nodes_;
    struct sch_label *labels_;
    struct sch_service *services_;
    const char **constraints_;
    struct sch_task *tasks_;
    struct sch_port *ports_; /* the services' ports, then the tasks' */
    size_t n_service_ports_;
};

/* Converts JSON arrays (each borrowed, may be NULL for none) into out:
 * - services: service bodies as the API answers them: name, mode, replicas,
 *   version, task.resources.reservations.{cpu, memory},
 *   placement.{constraints, max_replicas_per_node, strategy, preferences}
 *   (the first {"spread": "node.labels.KEY"} preference is used),
 *   task.ports[].{published, protocol};
 * - nodes: id, name, role, status, availability, labels, resources.{cpu,
 *   memory} (absent resources are 0: such a node takes only tasks that
 *   reserve nothing);
 * - tasks: id, service, slot, node, version, desired_state
 *   ("running"|"shutdown"), state (sch_task_state_name's words),
 *   spec.ports[].{published, protocol} (the ports of the spec it runs).
 * Absent fields take the defaults of docs/service-spec.md (absent task
 * state: "new"; absent desired_state: "running").
 * out: filled on success; its strings are borrowed from the JSON (valid while
 *      the JSON lives and is not modified), its arrays are owned (free with
 *      sch_json_input_free). On failure out holds nothing to free but
 *      out->errmsg ("tasks[3].state: unknown task state \"runing\"").
 * Returns 0 or -EINVAL (a wrong type, an unknown enum word, a negative
 * number, more than SCH_MAX_ITEMS entries). */
int sch_input_from_json(const json_t *services, const json_t *nodes, const json_t *tasks,
                        struct sch_json_input *out);

/* Frees the arrays of an input filled by sch_input_from_json and empties it.
 * Safe on a zeroed or failed input. */
void sch_json_input_free(struct sch_json_input *in);

#endif
