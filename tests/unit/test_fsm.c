/* The replicated state machine on raft's in-memory fixture: applies,
 * results reaching the proposer, snapshots and restores, leader changes and
 * a seeded random schedule of kills and partitions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <raft.h>
#include <raft/fixture.h>

#include "common/util.h"
#include "raft/fsm.h"

#define N_MAX 5

struct cluster {
    struct raft_fixture f;
    struct rs_fsm fsms[N_MAX];
    unsigned n;
    /* Results for the batch under way (one at a time in these tests). */
    char batch_id[32];
    struct rs_op_result results[8];
    unsigned seq;
    unsigned proposer;
};

static struct rs_op_result *claim(struct rs_fsm *fsm, const char *batch_id, size_t n)
{
    struct cluster *c = fsm->data;
    /* As in the store, only the proposer's own FSM hands results over. */
    if (fsm != &c->fsms[c->proposer] || strcmp(batch_id, c->batch_id) != 0 ||
        n > ARRAY_SIZE(c->results))
        return NULL;
    return c->results;
}

static struct cluster *cluster_new(unsigned n, unsigned snapshot_threshold)
{
    struct cluster *c = xcalloc(1, sizeof(*c));
    c->n = n;
    assert_int_equal(raft_fixture_initialize(&c->f), 0);
    for (unsigned i = 0; i < n; i++) {
        rs_fsm_init(&c->fsms[i]);
        c->fsms[i].claim = claim;
        c->fsms[i].data = c;
        assert_int_equal(raft_fixture_grow(&c->f, &c->fsms[i].raft_fsm), 0);
        struct raft *r = raft_fixture_get(&c->f, i);
        c->fsms[i].raft = r;
        raft_set_pre_vote(r, true);
        if (snapshot_threshold) {
            raft_set_snapshot_threshold(r, snapshot_threshold);
            raft_set_snapshot_trailing(r, 1);
        }
    }
    struct raft_configuration conf;
    assert_int_equal(raft_fixture_configuration(&c->f, n, &conf), 0);
    assert_int_equal(raft_fixture_bootstrap(&c->f, &conf), 0);
    raft_configuration_close(&conf);
    assert_int_equal(raft_fixture_start(&c->f), 0);
    assert_true(raft_fixture_step_until_has_leader(&c->f, 10000));
    return c;
}

static void cluster_free(struct cluster *c)
{
    raft_fixture_close(&c->f);
    for (unsigned i = 0; i < c->n; i++)
        rs_fsm_close(&c->fsms[i]);
    free(c);
}

struct apply_ctx {
    int done;
    int status;
};

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    struct apply_ctx *ctx = req->data;
    (void)result;
    ctx->done = 1;
    ctx->status = status;
}

static void free_results(struct cluster *c)
{
    for (size_t i = 0; i < ARRAY_SIZE(c->results); i++) {
        free(c->results[i].body);
        c->results[i].body = NULL;
    }
}

/* Proposes one batch of ops (JSON text) on the leader and steps until it is
 * answered. Returns the raft status (0 when committed and applied). */
static int propose(struct cluster *c, const char *ops_text)
{
    unsigned leader = raft_fixture_leader_index(&c->f);
    if (leader >= c->n)
        return RAFT_NOTLEADER;
    struct raft *r = raft_fixture_get(&c->f, leader);
    c->proposer = leader;
    json_t *ops = json_loads(ops_text, 0, NULL);
    assert_non_null(ops);
    snprintf(c->batch_id, sizeof(c->batch_id), "test-%u", ++c->seq);
    /* An earlier batch that was not answered may have been applied since. */
    free_results(c);
    memset(c->results, 0, sizeof(c->results));
    struct raft_buffer buf;
    assert_int_equal(rs_fsm_encode_batch(c->batch_id, ops, &buf), 0);
    assert_int_equal(buf.len % 8, 0);
    json_decref(ops);
    struct apply_ctx ctx = {0};
    struct raft_apply *req = xcalloc(1, sizeof(*req));
    req->data = &ctx;
    int rv = raft_apply(r, req, &buf, 1, apply_cb);
    if (rv != 0) {
        raft_free(buf.base);
        free(req);
        return rv;
    }
    for (unsigned i = 0; i < 5000 && !ctx.done; i++)
        raft_fixture_step(&c->f);
    free(req);
    return ctx.done ? ctx.status : -1;
}

static char *encode(struct cluster *c, unsigned i)
{
    size_t len;
    return rs_state_encode(&c->fsms[i].state, &len);
}

static void dump(struct cluster *c)
{
    for (unsigned j = 0; j < c->n; j++) {
        struct raft *r = raft_fixture_get(&c->f, j);
        print_error("server %u: state %d alive %d last %llu applied %llu term %llu\n", j,
                    raft_state(r), raft_fixture_alive(&c->f, j),
                    (unsigned long long)raft_last_index(r),
                    (unsigned long long)raft_last_applied(r), (unsigned long long)r->current_term);
    }
}

/* Steps until every live server applied the leader's last index, then checks
 * that all live servers hold the same state. */
static void assert_converged(struct cluster *c)
{
    unsigned leader = raft_fixture_leader_index(&c->f);
    assert_true(leader < c->n);
    raft_index last = raft_last_index(raft_fixture_get(&c->f, leader));
    for (unsigned i = 0; i < c->n; i++) {
        if (raft_fixture_alive(&c->f, i) &&
            !raft_fixture_step_until_applied(&c->f, i, last, 20000)) {
            dump(c);
            fail_msg("server %u did not apply index %llu", i, (unsigned long long)last);
        }
    }
    _cleanup_free_ char *ref = encode(c, leader);
    for (unsigned i = 0; i < c->n; i++) {
        if (!raft_fixture_alive(&c->f, i))
            continue;
        _cleanup_free_ char *other = encode(c, i);
        assert_string_equal(ref, other);
    }
}

static json_int_t replicas_of(const struct rs_state *st, const char *name)
{
    const struct rs_service *svc = rs_state_service(st, name);
    assert_non_null(svc);
    json_t *obj = rs_service_json(svc);
    json_int_t n = json_integer_value(json_object_get(obj, "replicas"));
    json_decref(obj);
    return n;
}

#define SPEC(name, replicas)                                                                       \
    "{\"name\":\"" name "\",\"mode\":\"replicated\",\"replicas\":" #replicas                       \
    ",\"task\":{\"command\":[\"/bin/true\"]}}"

static void test_apply_and_results(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3, 0);
    assert_int_equal(propose(c, "[{\"op\":\"service.create\",\"spec\":" SPEC("web", 2) "}]"), 0);
    assert_int_equal(c->results[0].err.code, API_OK);
    assert_true(c->results[0].created);
    assert_non_null(strstr(c->results[0].body, "\"version\":1"));
    uint64_t create_index = c->results[0].index;
    free_results(c);

    /* One entry, four operations, each with its own answer. */
    assert_int_equal(
        propose(c, "[{\"op\":\"service.create\",\"spec\":" SPEC(
                       "web", 3) "},"
                                 "{\"op\":\"service.scale\",\"name\":\"web\",\"replicas\":7},"
                                 "{\"op\":\"service.put\",\"spec\":" SPEC(
                                     "web", 1) ",\"cas\":1},"
                                               "{\"op\":\"service.delete\",\"name\":\"nope\"}]"),
        0);
    assert_int_equal(c->results[0].err.code, API_CONFLICT);
    assert_int_equal(c->results[1].err.code, API_OK);
    assert_non_null(strstr(c->results[1].body, "\"replicas\":7"));
    assert_non_null(strstr(c->results[1].body, "\"version\":1")); /* scale: same template */
    assert_int_equal(c->results[2].err.code, API_CONFLICT);
    assert_string_equal(c->results[2].err.field, "index");
    assert_int_equal(c->results[3].err.code, API_NOT_FOUND);
    assert_true(c->results[1].index > create_index);
    free_results(c);
    assert_converged(c);
    assert_int_equal(replicas_of(&c->fsms[1].state, "web"), 7);
    cluster_free(c);
}

static void test_malformed_entry_skipped(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3, 0);
    /* An op without a name or a bad op never wedges the FSM. */
    assert_int_equal(propose(c, "[{\"op\":\"service.create\",\"spec\":{}},{\"op\":\"bogus\"},{}]"),
                     0);
    assert_int_equal(c->results[0].err.code, API_BAD_REQUEST);
    assert_int_equal(c->results[1].err.code, API_BAD_REQUEST);
    assert_int_equal(c->results[2].err.code, API_BAD_REQUEST);
    free_results(c);
    assert_int_equal(propose(c, "[{\"op\":\"service.create\",\"spec\":" SPEC("ok", 1) "}]"), 0);
    assert_int_equal(c->results[0].err.code, API_OK);
    free_results(c);
    assert_converged(c);
    cluster_free(c);
}

static void test_snapshot_restore_to_lagging_follower(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3, 4);
    unsigned leader = raft_fixture_leader_index(&c->f);
    unsigned lagging = (leader + 1) % 3;
    raft_fixture_kill(&c->f, lagging);
    char ops[256];
    for (int i = 0; i < 20; i++) {
        snprintf(ops, sizeof(ops), "[{\"op\":\"service.put\",\"spec\":{\"name\":\"s%d\"}}]", i);
        assert_int_equal(propose(c, ops), 0);
        free_results(c);
    }
    raft_fixture_revive(&c->f, lagging);
    assert_converged(c);
    assert_int_equal(c->fsms[lagging].state.n_services, 20);
    assert_true(raft_fixture_get(&c->f, leader)->log.snapshot.last_index > 0);
    cluster_free(c);
}

static void test_leader_change(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(5, 0);
    assert_int_equal(propose(c, "[{\"op\":\"service.create\",\"spec\":" SPEC("a", 1) "}]"), 0);
    free_results(c);
    unsigned old = raft_fixture_leader_index(&c->f);
    raft_fixture_kill(&c->f, old);
    assert_true(raft_fixture_step_until_has_no_leader(&c->f, 10000));
    assert_true(raft_fixture_step_until_has_leader(&c->f, 20000));
    assert_int_not_equal(raft_fixture_leader_index(&c->f), old);
    assert_int_equal(propose(c, "[{\"op\":\"service.scale\",\"name\":\"a\",\"replicas\":4}]"), 0);
    assert_int_equal(c->results[0].err.code, API_OK);
    free_results(c);
    raft_fixture_revive(&c->f, old);
    assert_converged(c);
    assert_int_equal(replicas_of(&c->fsms[old].state, "a"), 4);
    cluster_free(c);
}

static void isolate(struct cluster *c, unsigned who, int connect)
{
    for (unsigned j = 0; j < c->n; j++) {
        if (j == who)
            continue;
        if (connect) {
            raft_fixture_reconnect(&c->f, who, j);
            raft_fixture_reconnect(&c->f, j, who);
        } else {
            raft_fixture_disconnect(&c->f, who, j);
            raft_fixture_disconnect(&c->f, j, who);
        }
    }
}

static void barrier_cb(struct raft_barrier *req, int status)
{
    (void)status;
    free(req);
}

/* Steps the cluster; whenever a new leader appears it appends a barrier, as
 * the store does on election (see raft/store.c: without an entry of the new
 * term, libraft 0.15's pre-vote can livelock). */
static void step_with_barriers(struct cluster *c, unsigned n)
{
    for (unsigned k = 0; k < n; k++) {
        raft_id before = c->f.leader_id;
        raft_fixture_step(&c->f);
        if (c->f.leader_id != 0 && c->f.leader_id != before) {
            struct raft *r = raft_fixture_get(&c->f, raft_fixture_leader_index(&c->f));
            struct raft_barrier *req = xcalloc(1, sizeof(*req));
            if (raft_barrier(r, req, barrier_cb) != 0)
                free(req);
        }
    }
}

/* Random partitions, one-way link cuts, permanent crashes of a minority and
 * writes; every acknowledged create must survive and all live servers must
 * converge. Prints the seed on failure. (The fixture cannot restart a killed
 * server faithfully: a kill drops its disk writes under way, so kills here
 * are permanent, as a crash whose disk is lost.) */
static void random_schedule(unsigned seed)
{
    srand(seed);
    struct cluster *c = cluster_new(5, 8);
    int acked[200] = {0};
    int n_ops = 0, kills = 0;
    char ops[256];
    for (int round = 0; round < 200; round++) {
        unsigned who = (unsigned)rand() % c->n;
        switch (rand() % 10) {
        case 0:
            if (kills < 2 && raft_fixture_alive(&c->f, who)) {
                raft_fixture_kill(&c->f, who);
                kills++;
            }
            break;
        case 1:
            isolate(c, who, 0);
            break;
        case 2:
        case 3:
            isolate(c, who, 1);
            break;
        case 4:
            raft_fixture_disconnect(&c->f, who, (who + 1) % c->n);
            break;
        default:
            if (n_ops < (int)ARRAY_SIZE(acked)) {
                snprintf(ops, sizeof(ops),
                         "[{\"op\":\"service.create\",\"spec\":{\"name\":\"s%d\"}}]", n_ops);
                if (propose(c, ops) == 0 && c->results[0].err.code == API_OK)
                    acked[n_ops] = 1;
                free_results(c);
                n_ops++;
            }
        }
        step_with_barriers(c, 20);
    }
    for (unsigned i = 0; i < c->n; i++)
        isolate(c, i, 1);
    int ok = raft_fixture_step_until_has_leader(&c->f, 60000);
    /* An empty batch commits everything before it in the new term. */
    for (int tries = 0; ok && tries < 10; tries++)
        if ((ok = propose(c, "[]") == 0))
            break;
    if (!ok) {
        dump(c);
        fail_msg("random schedule seed %u: no leader or no commit after healing", seed);
    }
    assert_converged(c);
    unsigned leader = raft_fixture_leader_index(&c->f);
    for (int i = 0; i < n_ops; i++) {
        char name[16];
        snprintf(name, sizeof(name), "s%d", i);
        if (acked[i] && !rs_state_service(&c->fsms[leader].state, name))
            fail_msg("random schedule seed %u: acknowledged create %s lost", seed, name);
    }
    cluster_free(c);
}

static void test_random_schedules(void **state)
{
    (void)state;
    /* Fixed seeds by default, so that CI is deterministic; explore with
     * SHOAL_TEST_SEED=N (or "time" for a new base every run). Seed 361162452
     * ends with no commit after healing (5 servers, 2 killed): not yet
     * understood, see the closing note of issue 4. */
    const char *env = getenv("SHOAL_TEST_SEED");
    unsigned base = !env                       ? 1000u
                    : strcmp(env, "time") == 0 ? (unsigned)common_wall_ms()
                                               : (unsigned)strtoul(env, NULL, 10);
    for (unsigned i = 0; i < 10; i++) {
        unsigned seed = base + i;
        print_message("random schedule seed %u (rerun with SHOAL_TEST_SEED=%u)\n", seed, seed);
        random_schedule(seed);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply_and_results),
        cmocka_unit_test(test_malformed_entry_skipped),
        cmocka_unit_test(test_snapshot_restore_to_lagging_follower),
        cmocka_unit_test(test_leader_change),
        cmocka_unit_test(test_random_schedules),
    };
    return cmocka_run_group_tests_name("fsm", tests, NULL, NULL);
}
