#include "api/fanout.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

void api__fanout_init(struct api__fanout *fo, struct api__call *call,
                      const struct api__fanout_ops *ops, struct api__fanout **list,
                      unsigned timeout_ms)
{
    *fo = (struct api__fanout){.srv = call->srv,
                               .call = call,
                               .ops = ops,
                               .list = list,
                               .timeout_ms = timeout_ms,
                               .refs = 1};
}

void api__fanout_ref(struct api__fanout *fo)
{
    fo->refs++;
}

void api__fanout_unref(struct api__fanout *fo)
{
    if (--fo->refs > 0)
        return;
    for (size_t i = 0; i < fo->n_targets; i++) {
        api__node_ref_free(&fo->targets[i].ref);
        json_decref(fo->targets[i].tasks);
    }
    free(fo->targets);
    fo->ops->free(fo);
}

void api__fanout_drop(struct api__fanout *fo)
{
    fo->call = NULL;
    api__fanout_unref(fo);
}

struct api__fanout_target *api__fanout_add(struct api__fanout *fo, const struct rs_state *st,
                                           const char *node_id)
{
    if (fo->n_targets == fo->cap_targets) {
        fo->cap_targets = fo->cap_targets ? 2 * fo->cap_targets : 4;
        fo->targets = xrealloc(fo->targets, fo->cap_targets * sizeof(*fo->targets));
    }
    struct api__fanout_target *t = &fo->targets[fo->n_targets++];
    *t = (struct api__fanout_target){.fo = fo};
    api__node_ref_init(fo->srv, st, node_id, &t->ref);
    return t;
}

static size_t n_tasks(const json_t *tasks)
{
    return json_is_object(tasks) ? json_object_size(tasks) : json_array_size(tasks);
}

struct api__fanout_target *api__fanout_target_for(struct api__fanout *fo, const struct rs_state *st,
                                                  const char *node_id, size_t max_tasks, int object)
{
    for (size_t i = 0; i < fo->n_targets; i++) {
        struct api__fanout_target *t = &fo->targets[i];
        if (strcmp(t->ref.node_id, node_id) == 0 && n_tasks(t->tasks) < max_tasks)
            return t;
    }
    struct api__fanout_target *t = api__fanout_add(fo, st, node_id);
    t->tasks = object ? json_object() : json_array();
    return t;
}

/* After the answer: out of the list, and the answer's reference dropped. */
static void fanout_end(struct api__fanout *fo)
{
    fo->call = NULL;
    if (fo->next)
        fo->next->prev = fo->prev;
    if (fo->prev)
        fo->prev->next = fo->next;
    else if (*fo->list == fo)
        *fo->list = fo->next;
    api__fanout_unref(fo);
}

void api__fanout_answer(struct api__fanout *fo, const char *why_pending)
{
    for (size_t i = 0; i < fo->n_targets; i++) {
        struct api__fanout_target *t = &fo->targets[i];
        if (t->done)
            continue;
        t->done = 1;
        char why[512];
        if (why_pending)
            snprintf(why, sizeof(why), "node %s: %s", t->ref.node, why_pending);
        if (fo->ops->pending)
            fo->ops->pending(fo, t, why_pending ? why : NULL);
        if (t->local && fo->ops->cancel_local) {
            fo->ops->cancel_local(t->local);
            t->local = NULL;
            fo->refs--; /* its callback never comes */
        }
        if (t->req > 0)
            common_httpc_cancel(fo->srv->httpc, t->req); /* its callback comes later */
    }
    fo->ops->answer(fo, why_pending);
    fanout_end(fo);
}

/* Answers when every target finished, else tells the user. */
static void fanout_check(struct api__fanout *fo)
{
    if (!fo->call || fo->starting)
        return;
    if (fo->pending == 0)
        api__fanout_answer(fo, NULL);
    else if (fo->ops->progress)
        fo->ops->progress(fo);
}

static void target_finish(struct api__fanout_target *t, const json_t *ans, const char *why)
{
    struct api__fanout *fo = t->fo;
    if (t->done)
        return;
    t->done = 1;
    fo->pending--;
    if (!fo->call)
        return;
    fo->ops->result(fo, t, ans, why);
    fanout_check(fo);
}

void api__fanout_local_done(struct api__fanout_target *t, const json_t *answer, const char *error)
{
    struct api__fanout *fo = t->fo;
    char why[512];
    snprintf(why, sizeof(why), "node %s: %s", t->ref.node, error ? error : "no answer");
    t->local = NULL;
    target_finish(t, answer, why);
    api__fanout_unref(fo);
}

void api__fanout_local_cb(void *ctx, json_t *answer, const char *error)
{
    api__fanout_local_done(ctx, answer, error);
    json_decref(answer);
}

static void remote_done(void *data, const struct common_httpc_response *res)
{
    struct api__fanout_target *t = data;
    struct api__fanout *fo = t->fo;
    t->req = 0;
    if (!fo->call || res->error == -ECANCELED) {
        target_finish(t, NULL, "the request was cancelled");
    } else if (fo->ops->relay) {
        t->done = 1;
        fo->ops->relay(fo, t, res, NULL);
        fanout_end(fo);
    } else {
        char why[512] = "";
        json_t *ans = api__node_answer(&t->ref, res, fo->timeout_ms, why, sizeof(why));
        target_finish(t, ans, why);
        json_decref(ans);
    }
    api__fanout_unref(fo);
}

void api__fanout_ask(struct api__fanout_target *t, const char *method, const char *path,
                     const char *body)
{
    struct api__fanout *fo = t->fo;
    if (t->ref.error) {
        target_finish(t, NULL, t->ref.error);
        return;
    }
    fo->refs++;
    if (!t->ref.addr) {
        void *local = fo->ops->local(fo, t);
        if (!t->done)
            t->local = local;
        return;
    }
    char why[512];
    t->req = api__node_request(fo->srv, &t->ref, method, path, body, fo->timeout_ms, remote_done, t,
                               why, sizeof(why));
    if (t->req < 0) {
        t->req = 0;
        if (fo->ops->relay) {
            t->done = 1;
            fo->ops->relay(fo, t, NULL, why);
            fanout_end(fo);
        } else {
            target_finish(t, NULL, why);
        }
        api__fanout_unref(fo);
    }
}

void api__fanout_begin(struct api__fanout *fo)
{
    api__fanout_ref(fo); /* fo stays while its targets start */
    fo->next = *fo->list;
    if (*fo->list)
        (*fo->list)->prev = fo;
    *fo->list = fo;
    fo->pending = fo->n_targets;
    fo->starting = 1;
    for (size_t i = 0; i < fo->n_targets && fo->call; i++)
        fo->ops->start(fo, &fo->targets[i]);
    fo->starting = 0;
    fanout_check(fo);
    api__fanout_unref(fo);
}

void api__fanouts_release(struct api__fanout **list, const char *why)
{
    while (*list)
        api__fanout_answer(*list, why);
}
