/* The Raft state machine: decodes committed entries (batches of operations),
 * applies them to the object model, hands each operation's result to the
 * node that proposed it, and snapshots and restores the whole state. */
#ifndef SHOAL_RAFT_FSM_H
#define SHOAL_RAFT_FSM_H

#include <raft.h>

#include "raft/state.h"

struct rs_fsm;

/* Called by the FSM for each applied entry whose batch id was proposed by this
 * process: returns the result array for the batch's operations (borrowed,
 * at least n entries), or NULL when the batch is not ours. */
typedef struct rs_op_result *(*rs_fsm_claim_cb)(struct rs_fsm *fsm, const char *batch_id, size_t n);
/* Called after every applied entry that changed the state. */
typedef void (*rs_fsm_changed_cb)(struct rs_fsm *fsm);

struct rs_fsm {
    struct raft_fsm raft_fsm; /* given to raft_init; its data points back here */
    struct raft *raft;        /* borrowed: the instance applying, for entry indexes */
    struct rs_state state;
    rs_fsm_claim_cb claim;     /* may be NULL */
    rs_fsm_changed_cb changed; /* may be NULL */
    void *data;                /* for the callbacks */
};

/* Initializes fsm (version 2, synchronous snapshots owned by raft). Set
 * fsm->raft before the raft instance starts applying. */
void rs_fsm_init(struct rs_fsm *fsm);
void rs_fsm_close(struct rs_fsm *fsm);

/* Encodes a batch entry into a raft_malloc'd buffer (transferred to
 * raft_apply): {"b": batch_id, "ops": ops}. ops is borrowed. */
int rs_fsm_encode_batch(const char *batch_id, const json_t *ops, struct raft_buffer *buf);

#endif
