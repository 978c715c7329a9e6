/* Shared by the files of the state module: answers, refusals, and the
 * operations on nodes and the cluster record (raft/state_nodes.c). */
#ifndef SHOAL_RAFT_STATE_INTERNAL_H
#define SHOAL_RAFT_STATE_INTERNAL_H

#include "raft/state.h"

/* Fill res (when not NULL) with a success body (copied / transferred). */
void rs__answer(struct rs_op_result *res, const char *body, size_t len, int created);
void rs__answer_json(struct rs_op_result *res, json_t *body);
void rs__refuse(struct rs_op_result *res, enum api_code code, const char *field, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));
/* 1 when op has no "cas" or its cas equals have; else refuses with 409. */
int rs__cas_ok(const json_t *op, uint64_t have, const char *what, struct rs_op_result *res);

/* Services (raft/state.c): where name is in the sorted array (or would go,
 * *found 0), the body re-assembled after a change, the list cache dropped. */
size_t rs__service_pos(const struct rs_state *s, const char *name, int *found);
void rs__service_render(struct rs_service *svc);
void rs__services_changed(struct rs_state *s, uint64_t index);

/* Rollouts (raft/state_rollout.c). begin: a new template (version `to`) is
 * to be rolled out, by kind "update" or "rollback"; the spec stored until
 * now becomes the stable one if it was. load: a snapshot's rollout fields. */
void rs__rollout_begin(struct rs_service *svc, const char *kind, uint64_t to, json_int_t at,
                       json_int_t total);
void rs__rollout_load(struct rs_service *svc, const json_t *obj);

typedef void (*rs__op_fn)(struct rs_state *s, const json_t *op, uint64_t index,
                          struct rs_op_result *res);
void rs__op_cluster_init(struct rs_state *s, const json_t *op, uint64_t index,
                         struct rs_op_result *res);
void rs__op_cluster_rotate(struct rs_state *s, const json_t *op, uint64_t index,
                           struct rs_op_result *res);
void rs__op_node_register(struct rs_state *s, const json_t *op, uint64_t index,
                          struct rs_op_result *res);
void rs__op_node_update(struct rs_state *s, const json_t *op, uint64_t index,
                        struct rs_op_result *res);
void rs__op_node_status(struct rs_state *s, const json_t *op, uint64_t index,
                        struct rs_op_result *res);
void rs__op_node_remove(struct rs_state *s, const json_t *op, uint64_t index,
                        struct rs_op_result *res);
void rs__op_node_role(struct rs_state *s, const json_t *op, uint64_t index,
                      struct rs_op_result *res);
void rs__op_members_reset(struct rs_state *s, const json_t *op, uint64_t index,
                          struct rs_op_result *res);

void rs__op_service_rollback(struct rs_state *s, const json_t *op, uint64_t index,
                             struct rs_op_result *res);
void rs__op_rollout_update(struct rs_state *s, const json_t *op, uint64_t index,
                           struct rs_op_result *res);
void rs__op_rollout_pause(struct rs_state *s, const json_t *op, uint64_t index,
                          struct rs_op_result *res);
void rs__op_rollout_resume(struct rs_state *s, const json_t *op, uint64_t index,
                           struct rs_op_result *res);
void rs__op_tasks_report(struct rs_state *s, const json_t *op, uint64_t index,
                         struct rs_op_result *res);
void rs__op_tasks_plan(struct rs_state *s, const json_t *op, uint64_t index,
                       struct rs_op_result *res);

void rs__nodes_free(struct rs_state *s);
/* Encodes nodes and the cluster record into b as `,"cluster":...,"nodes":[...]`. */
struct common_buf;
void rs__nodes_encode(const struct rs_state *s, struct common_buf *b);
/* Decodes them from a snapshot root into fresh (empty) state. Returns 0 or -EINVAL. */
int rs__nodes_decode(struct rs_state *fresh, const json_t *root);

#endif
