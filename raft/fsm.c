#include "raft/fsm.h"

#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

static int fsm_apply(struct raft_fsm *raft_fsm, const struct raft_buffer *buf, void **result)
{
    struct rs_fsm *fsm = raft_fsm->data;
    /* raft 0.15 applies entry i while last_applied is still i-1. */
    uint64_t index = raft_last_applied(fsm->raft) + 1;
    json_error_t jerr;
    json_t *entry = json_loadb(buf->base, buf->len, 0, &jerr);
    json_t *ops = json_object_get(entry, "ops");
    const char *batch_id = json_string_value(json_object_get(entry, "b"));
    *result = NULL;
    if (!json_is_array(ops)) {
        /* Never fail an apply: that wedges the node on this entry. A
         * malformed entry is skipped and its proposer told so. */
        LOGE("fsm: entry %llu is malformed, skipped", (unsigned long long)index);
        json_decref(entry);
        return 0;
    }
    size_t n = json_array_size(ops);
    struct rs_op_result *results = fsm->claim && batch_id ? fsm->claim(fsm, batch_id, n) : NULL;
    for (size_t i = 0; i < n; i++)
        rs_state_apply_op(&fsm->state, json_array_get(ops, i), index, results ? &results[i] : NULL);
    json_decref(entry);
    if (fsm->changed)
        fsm->changed(fsm);
    return 0;
}

static int fsm_snapshot(struct raft_fsm *raft_fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct rs_fsm *fsm = raft_fsm->data;
    size_t len;
    _cleanup_free_ char *text = rs_state_encode(&fsm->state, &len);
    struct raft_buffer *b = raft_malloc(sizeof(*b));
    void *base = raft_malloc(len);
    if (!b || !base) {
        raft_free(b);
        raft_free(base);
        return RAFT_NOMEM;
    }
    memcpy(base, text, len);
    b->base = base;
    b->len = len;
    *bufs = b;
    *n_bufs = 1;
    return 0;
}

static int fsm_restore(struct raft_fsm *raft_fsm, struct raft_buffer *buf)
{
    struct rs_fsm *fsm = raft_fsm->data;
    int rv = rs_state_decode(&fsm->state, buf->base, buf->len);
    if (rv != 0) {
        LOGE("fsm: snapshot of %zu bytes is malformed", buf->len);
        return RAFT_MALFORMED;
    }
    raft_free(buf->base);
    if (fsm->changed)
        fsm->changed(fsm);
    return 0;
}

void rs_fsm_init(struct rs_fsm *fsm)
{
    memset(fsm, 0, sizeof(*fsm));
    fsm->raft_fsm.version = 2;
    fsm->raft_fsm.data = fsm;
    fsm->raft_fsm.apply = fsm_apply;
    fsm->raft_fsm.snapshot = fsm_snapshot;
    fsm->raft_fsm.restore = fsm_restore;
    fsm->raft_fsm.snapshot_finalize = NULL;
    rs_state_init(&fsm->state);
}

void rs_fsm_close(struct rs_fsm *fsm)
{
    rs_state_close(&fsm->state);
}

int rs_fsm_encode_batch(const char *batch_id, const json_t *ops, struct raft_buffer *buf)
{
    json_t *entry = json_pack("{s:s, s:O}", "b", batch_id, "ops", ops);
    if (!entry)
        return -ENOMEM;
    size_t len = json_dumpb(entry, NULL, 0, JSON_COMPACT);
    /* raft_uv requires entry lengths to be multiples of 8 (it asserts so
     * only in debug builds and silently writes a corrupt segment
     * otherwise): pad with JSON whitespace. */
    size_t padded = (len + 7) & ~(size_t)7;
    char *base = raft_malloc(padded);
    if (!base)
        abort();
    json_dumpb(entry, base, len, JSON_COMPACT);
    memset(base + len, ' ', padded - len);
    json_decref(entry);
    buf->base = base;
    buf->len = padded;
    return 0;
}
