#include "raft/store.h"

#include <errno.h>
#include <raft/uv.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "raft/fsm.h"
#include "raft/members.h"
#include "raft/reconcile.h"
#include "raft/transport.h"

#define BATCH_MAX_OPS   512
#define BATCH_MAX_BYTES (4u << 20)
#define STOP_DRAIN_MS   10000
/* libraft 0.15's uv backend prepares its open segments on the thread pool
 * after a start (slow on a busy ext4); raft_close while that work is under
 * way crashed it (a SEGV in its close path under ASan, seen when a node was
 * stopped ~100 ms after a restart). A stop waits until raft has run this
 * long. */
#define MIN_UPTIME_MS 2000
/* Group commit: while this many entries are under way, new operations wait
 * and go out together when one completes. */
#define MAX_INFLIGHT 2

struct waiter {
    rs_store_submit_cb cb;
    void *data;
};

/* One Raft entry under way: its operations' waiters and results. */
struct batch {
    struct raft_apply req;
    char id[48];
    size_t n;
    struct waiter *waiters;
    struct rs_op_result *results;
    struct batch *next;
};

struct rs_store {
    uv_loop_t *loop;
    struct raft raft;
    struct raft_io io;
    void (*io_close)(struct raft_io *io, raft_io_close_cb cb); /* the backend's */
    raft_io_close_cb io_close_cb;                              /* raft's, called once */
    struct rs_transport transport;
    struct rs_fsm fsm;
    char nonce[17];
    uint64_t seq;

    /* Operations waiting for the next flush. */
    json_t *pending_ops;
    struct waiter *pending_waiters;
    size_t pending_n, pending_cap, pending_bytes;
    uv_check_t flush_check;

    struct batch *inflight; /* applies under way, newest first */
    size_t n_inflight;

    /* Leadership watch: a new leader appends a barrier so that its term has
     * an entry (Raft's no-op). Besides making every earlier entry applied
     * before this leader answers, it avoids a livelock of libraft 0.15's
     * pre-vote: a stale node with a longer log from an old term never learns
     * the newer term (pre-vote rejections carry the request's term), so
     * without an entry of the new term nobody can win an election (seen on
     * the fixture, tests/unit/test_fsm.c random schedules). */
    uv_timer_t leader_timer;
    int was_leader;
    int leader_ready; /* the barrier of this leadership has applied */
    struct raft_barrier barrier;
    int barrier_pending;

    rs_store_change_cb change_cb;
    void *change_data;
    rs_store_leader_cb leader_cb;
    void *leader_data;
    struct rs_members members;
    struct rs_reconciler reconciler;
    uint64_t members_tick_ms;
    uint64_t started_ms; /* monotonic: when raft started */
    struct raft_transfer transfer;
    int transfer_state; /* 0 not asked, 1 under way, 2 done */

    int stopping;
    uv_timer_t stop_timer;
    uint64_t stop_deadline;
    rs_store_stop_cb stop_cb;
    void *stop_data;
    int handles_open;
};

static struct rs_op_result *claim(struct rs_fsm *fsm, const char *batch_id, size_t n)
{
    struct rs_store *st = fsm->data;
    for (struct batch *b = st->inflight; b; b = b->next)
        if (b->n == n && strcmp(b->id, batch_id) == 0)
            return b->results;
    return NULL;
}

static void changed(struct rs_fsm *fsm)
{
    struct rs_store *st = fsm->data;
    if (st->change_cb)
        st->change_cb(st->change_data);
}

static void fail_result(struct rs_op_result *res, int status)
{
    memset(res, 0, sizeof(*res));
    if (status == RAFT_NOTLEADER)
        api_err_set(&res->err, API_NO_LEADER, NULL, "this node is not the leader");
    else if (status == RAFT_LEADERSHIPLOST)
        api_err_set(&res->err, API_NO_LEADER, NULL,
                    "leadership was lost before the write committed; it may or may not apply");
    else if (status == RAFT_SHUTDOWN)
        api_err_set(&res->err, API_UNAVAILABLE, NULL, "shutting down");
    else
        api_err_set(&res->err, API_INTERNAL, NULL, "raft: %s", raft_strerror(status));
}

static void batch_unlink(struct rs_store *st, struct batch *b)
{
    for (struct batch **p = &st->inflight; *p; p = &(*p)->next) {
        if (*p == b) {
            *p = b->next;
            st->n_inflight--;
            return;
        }
    }
}

static void flush_check_cb(uv_check_t *check);

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    struct batch *b = container_of(req, struct batch, req);
    struct rs_store *st = b->req.data;
    (void)result;
    batch_unlink(st, b);
    for (size_t i = 0; i < b->n; i++) {
        struct rs_op_result *res = &b->results[i];
        if (status != 0) {
            free(res->body);
            fail_result(res, status);
        } else if (res->index == 0) {
            api_err_set(&res->err, API_INTERNAL, NULL, "entry applied without a result");
        }
        b->waiters[i].cb(b->waiters[i].data, res);
        free(res->body);
    }
    free(b->waiters);
    free(b->results);
    free(b);
    if (st->pending_n > 0 && !st->stopping)
        uv_check_start(&st->flush_check, flush_check_cb);
}

static void fail_waiters(struct waiter *w, size_t n, int status)
{
    for (size_t i = 0; i < n; i++) {
        struct rs_op_result res;
        fail_result(&res, status);
        w[i].cb(w[i].data, &res);
    }
}

static void flush(struct rs_store *st)
{
    if (st->pending_n == 0)
        return;
    struct batch *b = xcalloc(1, sizeof(*b));
    snprintf(b->id, sizeof(b->id), "%s-%llu", st->nonce, (unsigned long long)++st->seq);
    b->n = st->pending_n;
    b->waiters = st->pending_waiters;
    b->results = xcalloc(b->n, sizeof(*b->results));
    b->req.data = st;
    json_t *ops = st->pending_ops;
    st->pending_ops = json_array();
    st->pending_waiters = NULL;
    st->pending_n = st->pending_cap = st->pending_bytes = 0;

    struct raft_buffer buf;
    rs_fsm_encode_batch(b->id, ops, &buf);
    json_decref(ops);
    b->next = st->inflight;
    st->inflight = b;
    st->n_inflight++;
    int rv = raft_apply(&st->raft, &b->req, &buf, 1, apply_cb);
    if (rv != 0) {
        raft_free(buf.base);
        batch_unlink(st, b);
        fail_waiters(b->waiters, b->n, rv);
        free(b->waiters);
        free(b->results);
        free(b);
    }
}

static void flush_check_cb(uv_check_t *check)
{
    struct rs_store *st = container_of(check, struct rs_store, flush_check);
    uv_check_stop(check);
    if (st->n_inflight < MAX_INFLIGHT)
        flush(st);
}

int rs_store_submit(struct rs_store *st, json_t *op, rs_store_submit_cb cb, void *data)
{
    if (st->stopping || raft_state(&st->raft) != RAFT_LEADER) {
        json_decref(op);
        return -EAGAIN;
    }
    if (st->pending_n == st->pending_cap) {
        st->pending_cap = st->pending_cap ? st->pending_cap * 2 : 16;
        st->pending_waiters =
            xrealloc(st->pending_waiters, st->pending_cap * sizeof(*st->pending_waiters));
    }
    st->pending_waiters[st->pending_n++] = (struct waiter){cb, data};
    st->pending_bytes += json_dumpb(op, NULL, 0, JSON_COMPACT);
    json_array_append_new(st->pending_ops, op);
    if (st->pending_n >= BATCH_MAX_OPS || st->pending_bytes >= BATCH_MAX_BYTES)
        flush(st);
    else if (st->pending_n == 1)
        uv_check_start(&st->flush_check, flush_check_cb);
    return 0;
}

struct read_barrier {
    struct raft_barrier req;
    void (*cb)(void *data, int status);
    void *data;
};

static void read_barrier_cb(struct raft_barrier *req, int status)
{
    struct read_barrier *b = container_of(req, struct read_barrier, req);
    b->cb(b->data, status == 0 ? 0 : -EAGAIN);
    free(b);
}

int rs_store_barrier(struct rs_store *st, void (*cb)(void *data, int status), void *data)
{
    if (st->stopping || !rs_store_is_leader(st))
        return -EAGAIN;
    struct read_barrier *b = xcalloc(1, sizeof(*b));
    b->cb = cb;
    b->data = data;
    if (raft_barrier(&st->raft, &b->req, read_barrier_cb) != 0) {
        free(b);
        return -EAGAIN;
    }
    return 0;
}

void rs_store_on_change(struct rs_store *st, rs_store_change_cb cb, void *data)
{
    st->change_cb = cb;
    st->change_data = data;
}

struct rs_state *rs_store_state(struct rs_store *st)
{
    return &st->fsm.state;
}

struct raft *rs_store_raft(struct rs_store *st)
{
    return &st->raft;
}

int rs_store_is_leader(struct rs_store *st)
{
    return raft_state(&st->raft) == RAFT_LEADER && st->leader_ready;
}

static void barrier_cb(struct raft_barrier *req, int status)
{
    struct rs_store *st = req->data;
    st->barrier_pending = 0;
    if (status == 0 && raft_state(&st->raft) == RAFT_LEADER) {
        st->leader_ready = 1;
        LOGI("raft: leader of term %llu, ready", (unsigned long long)st->raft.current_term);
        rs_members_leader_start(&st->members, common_now_ms());
        rs_reconciler_reset(&st->reconciler);
        if (st->leader_cb)
            st->leader_cb(st->leader_data);
        if (st->change_cb)
            st->change_cb(st->change_data);
    } else {
        st->was_leader = 0; /* try again on the next tick if still leader */
    }
}

static void leader_tick(uv_timer_t *t)
{
    struct rs_store *st = container_of(t, struct rs_store, leader_timer);
    int leader = raft_state(&st->raft) == RAFT_LEADER;
    if (leader && !st->was_leader && !st->barrier_pending && !st->stopping) {
        st->barrier.data = st;
        if (raft_barrier(&st->raft, &st->barrier, barrier_cb) == 0) {
            st->barrier_pending = 1;
            st->was_leader = 1;
        }
    } else if (!leader && st->was_leader) {
        LOGI("raft: no longer leader");
        st->was_leader = 0;
        st->leader_ready = 0;
    }
    uint64_t now = common_now_ms();
    if (!leader || !st->leader_ready || st->stopping)
        return;
    if (now - st->members_tick_ms >= 100) {
        st->members_tick_ms = now;
        rs_members_tick(&st->members, now);
    }
    /* Every tick (10 ms): the reconciler plans only when the state moved,
     * paced by its own cost, so a change is planned within ~10 ms. */
    rs_reconciler_tick(&st->reconciler, now);
}

void rs_store_on_leader(struct rs_store *st, rs_store_leader_cb cb, void *data)
{
    st->leader_cb = cb;
    st->leader_data = data;
}

void rs_store_heartbeat(struct rs_store *st, const char *id)
{
    if (rs_store_is_leader(st))
        rs_members_heartbeat(&st->members, id, common_now_ms());
}

uint64_t rs_store_last_seen(struct rs_store *st, const char *id)
{
    return rs_store_is_leader(st) ? rs_members_last_seen(&st->members, id) : 0;
}

/* libraft 0.15's uv backend can call its close callback twice: a double
 * free of raft's address in raft's io close callback under ASan, about one
 * stop in three hundred (before the store was freed a loop turn later, the
 * second call read freed memory: a SEGV). The backend's close is wrapped so
 * that raft hears of it once. */
static void io_closed_once(struct raft_io *io)
{
    struct rs_store *st = container_of(io, struct rs_store, io);
    raft_io_close_cb cb = st->io_close_cb;
    st->io_close_cb = NULL;
    if (cb)
        cb(io);
    else
        LOGW("raft: the io backend reported its close twice: ignored");
}

static void io_close_guarded(struct raft_io *io, raft_io_close_cb cb)
{
    struct rs_store *st = container_of(io, struct rs_store, io);
    st->io_close_cb = cb;
    st->io_close(io, io_closed_once);
}

static int raft_setup(struct rs_store *st, const struct rs_store_config *cfg, char *errmsg)
{
    int rv = rs_transport_init(&st->transport, st->loop, cfg->bind_address);
    if (rv != 0) {
        snprintf(errmsg, 256, "raft transport: %s", raft_strerror(rv));
        return -EIO;
    }
    rv = raft_uv_init(&st->io, st->loop, cfg->dir, &st->transport.outer);
    if (rv != 0) {
        snprintf(errmsg, 256, "raft log in %s: %s", cfg->dir, st->io.errmsg);
        rs_transport_close(&st->transport);
        return -EIO;
    }
    st->io_close = st->io.close;
    st->io.close = io_close_guarded;
    rv = raft_init(&st->raft, &st->io, &st->fsm.raft_fsm, cfg->id, cfg->address);
    if (rv != 0) {
        snprintf(errmsg, 256, "raft init: %s", raft_errmsg(&st->raft));
        raft_uv_close(&st->io);
        rs_transport_close(&st->transport);
        return -EIO;
    }
    return 0;
}

int rs_store_start(struct rs_store **out, uv_loop_t *loop, const struct rs_store_config *cfg,
                   char *errmsg)
{
    struct rs_store *st = xcalloc(1, sizeof(*st));
    st->loop = loop;
    st->pending_ops = json_array();
    rs_fsm_init(&st->fsm);
    rs_members_init(&st->members, st);
    rs_reconciler_init(&st->reconciler, st);
    st->fsm.raft = &st->raft;
    st->fsm.claim = claim;
    st->fsm.changed = changed;
    st->fsm.data = st;
    int rv = common_random_hex(st->nonce, 8);
    if (rv == 0)
        rv = raft_setup(st, cfg, errmsg);
    if (rv != 0) {
        if (rv != -EIO)
            snprintf(errmsg, 256, "random: %s", strerror(-rv));
        rs_fsm_close(&st->fsm);
        json_decref(st->pending_ops);
        free(st);
        return rv;
    }
    uv_check_init(loop, &st->flush_check);
    uv_timer_init(loop, &st->stop_timer);
    uv_timer_init(loop, &st->leader_timer);
    uv_timer_start(&st->leader_timer, leader_tick, 10, 10);
    st->handles_open = 3;
    raft_set_pre_vote(&st->raft, true);
    raft_set_election_timeout(&st->raft, cfg->election_timeout_ms ? cfg->election_timeout_ms
                                                                  : RS_STORE_DEFAULT_ELECTION_MS);
    raft_set_heartbeat_timeout(&st->raft, cfg->heartbeat_timeout_ms
                                              ? cfg->heartbeat_timeout_ms
                                              : RS_STORE_DEFAULT_HEARTBEAT_MS);
    if (cfg->bootstrap) {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        raft_configuration_add(&conf, cfg->id, cfg->address, RAFT_VOTER);
        rv = raft_bootstrap(&st->raft, &conf);
        raft_configuration_close(&conf);
        if (rv == RAFT_CANTBOOTSTRAP)
            LOGI("raft: log already holds a cluster; bootstrap skipped");
        else if (rv != 0)
            snprintf(errmsg, 256, "raft bootstrap: %s", raft_errmsg(&st->raft));
    }
    if ((rv == 0 || rv == RAFT_CANTBOOTSTRAP) && cfg->force_new_cluster) {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        raft_configuration_add(&conf, cfg->id, cfg->address, RAFT_VOTER);
        rv = raft_recover(&st->raft, &conf);
        raft_configuration_close(&conf);
        if (rv != 0)
            snprintf(errmsg, 256, "raft recover: %s", raft_errmsg(&st->raft));
        else
            LOGW("raft: configuration forced to this node alone (--force-new-cluster)");
    }
    if (rv == 0 || rv == RAFT_CANTBOOTSTRAP) {
        st->started_ms = common_now_ms();
        rv = raft_start(&st->raft);
        if (rv != 0)
            snprintf(errmsg, 256, "raft start: %s", raft_errmsg(&st->raft));
    }
    if (rv != 0) {
        /* The instance is initialized: it must be closed through the loop. */
        rs_store_stop(st, NULL, NULL);
        return -EIO;
    }
    *out = st;
    return 0;
}

static void last_closed(uv_handle_t *h)
{
    struct rs_store *st = h->data;
    raft_uv_close(&st->io);
    rs_transport_close(&st->transport);
    rs_store_stop_cb cb = st->stop_cb;
    void *data = st->stop_data;
    json_decref(st->pending_ops);
    free(st->pending_waiters);
    rs_members_close(&st->members);
    rs_fsm_close(&st->fsm);
    free(st);
    if (cb)
        cb(data);
}

/* libraft's uv backend may still have handle close callbacks queued when it
 * calls raft_closed, and libuv runs close callbacks newest first: freeing
 * the store (which holds struct raft and its raft_io) from our own close
 * callbacks made those read freed memory (a SEGV in libraft's io close
 * callback under ASan, on about one stop in twenty). So the store is freed
 * from a timer that fires on a later loop iteration, once every close
 * callback queued before has run. */
static void free_later(uv_timer_t *t)
{
    uv_close((uv_handle_t *)t, last_closed);
}

static void handle_closed(uv_handle_t *h)
{
    struct rs_store *st = h->data;
    if (--st->handles_open > 1)
        return;
    uv_timer_start(&st->leader_timer, free_later, 1, 0);
}

static void raft_closed(struct raft *r)
{
    struct rs_store *st = container_of(r, struct rs_store, raft);
    st->flush_check.data = st;
    st->stop_timer.data = st;
    st->leader_timer.data = st;
    uv_timer_stop(&st->leader_timer);
    uv_close((uv_handle_t *)&st->flush_check, handle_closed);
    uv_close((uv_handle_t *)&st->stop_timer, handle_closed);
}

static void transfer_cb(struct raft_transfer *req)
{
    struct rs_store *st = req->data;
    st->transfer_state = 2;
    raft_id id = 0;
    const char *address = NULL;
    raft_leader(&st->raft, &id, &address);
    LOGI("raft: leadership %s", id && id != st->raft.id ? "transferred" : "transfer timed out");
}

/* Hands leadership over before a planned stop, so the cluster does not wait
 * an election timeout. Returns 1 while a transfer is under way. */
static int transfer_leadership(struct rs_store *st)
{
    if (st->transfer_state == 0) {
        st->transfer_state = 2;
        if (raft_state(&st->raft) != RAFT_LEADER)
            return 0;
        st->transfer.data = st;
        int rv = raft_transfer(&st->raft, &st->transfer, 0, transfer_cb);
        if (rv == 0) {
            st->transfer_state = 1;
            LOGI("raft: transferring leadership before stopping");
        } else if (rv != RAFT_NOTFOUND) {
            LOGW("raft: leadership transfer: %s", raft_strerror(rv));
        }
    }
    return st->transfer_state == 1;
}

static void stop_poll(uv_timer_t *t)
{
    struct rs_store *st = container_of(t, struct rs_store, stop_timer);
    /* A snapshot being taken or stored counts as pending too: libraft 0.15
     * crashed in raft_close with one under way (a restart with a long log
     * takes one soon after start; seen as a SEGV under ASan). */
    int snapshotting = st->raft.snapshot.pending.term != 0 || st->raft.snapshot.put.data != NULL;
    int young = common_now_ms() - st->started_ms < MIN_UPTIME_MS;
    size_t pending = st->n_inflight + (size_t)st->barrier_pending + (size_t)snapshotting;
    int members_change = st->members.change_pending;
    if ((pending > 0 || members_change || young) && common_now_ms() < st->stop_deadline)
        return;
    if (pending == 0 && !members_change && transfer_leadership(st) &&
        common_now_ms() < st->stop_deadline)
        return;
    uv_timer_stop(t);
    if (pending > 0) {
        /* libraft 0.15 crashes when closed with applies pending: leave it
         * open; the process is about to exit and the log on disk is
         * consistent. */
        LOGW("raft: %zu writes still pending after %d ms; exiting without closing raft", pending,
             STOP_DRAIN_MS);
        if (st->stop_cb)
            st->stop_cb(st->stop_data);
        return;
    }
    raft_close(&st->raft, raft_closed);
}

void rs_store_stop(struct rs_store *st, rs_store_stop_cb cb, void *data)
{
    st->stopping = 1;
    uv_timer_stop(&st->leader_timer);
    st->stop_cb = cb;
    st->stop_data = data;
    uv_check_stop(&st->flush_check);
    /* Operations not yet proposed are refused; those under way are waited for. */
    struct waiter *w = st->pending_waiters;
    size_t n = st->pending_n;
    st->pending_waiters = NULL;
    st->pending_n = st->pending_cap = st->pending_bytes = 0;
    json_array_clear(st->pending_ops);
    fail_waiters(w, n, RAFT_SHUTDOWN);
    free(w);
    st->stop_deadline = common_now_ms() + STOP_DRAIN_MS;
    uv_timer_start(&st->stop_timer, stop_poll, 0, 10);
}
