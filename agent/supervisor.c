#include "agent/supervisor.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/cgroup.h"
#include "agent/images.h"
#include "agent/runc.h"
#include "agent/task.h"
#include "common/httpc.h"
#include "common/log.h"
#include "common/util.h"
#include "scheduler/scheduler.h"

#define WATCH_WAIT       "30s"
#define WATCH_TIMEOUT_MS 40000
#define RETRY_MS         500
#define REPORT_DELAY_MS  2 /* gathers the changes of one loop turn into one report */
#define REPORT_TIMEOUT   10000

struct agent_supervisor {
    uv_loop_t *loop;
    struct agent_node *node;
    struct agent_supervisor_managers managers;
    struct agent_images *images; /* borrowed */
    struct common_httpc *httpc;
    char tasks_dir[4200];
    struct agent_task **tasks; /* owned */
    size_t n_tasks, cap_tasks;
    uint64_t index;    /* of the last assignments seen */
    int64_t watch_req; /* 0 when none in flight */
    int64_t report_req;
    int synced;              /* the assignments were seen once */
    uv_timer_t watch_timer;  /* retry after an error */
    uv_timer_t report_timer; /* batches reports */
    int closing;
    int open_handles;
    void (*stop_cb)(void *);
    void *stop_data;
};

static void watch(struct agent_supervisor *sup);

uv_loop_t *agent_supervisor_loop(struct agent_supervisor *sup)
{
    return sup->loop;
}

void agent_supervisor_task_dir(const struct agent_node *node, const char *id, char *out,
                               size_t size)
{
    snprintf(out, size, "%s/tasks/%s", node->data_dir, id);
}

static struct agent_task *find(struct agent_supervisor *sup, const char *id)
{
    for (size_t i = 0; i < sup->n_tasks; i++)
        if (strcmp(sup->tasks[i]->id, id) == 0)
            return sup->tasks[i];
    return NULL;
}

static void add_task(struct agent_supervisor *sup, struct agent_task *t)
{
    if (sup->n_tasks == sup->cap_tasks) {
        sup->cap_tasks = sup->cap_tasks ? 2 * sup->cap_tasks : 16;
        sup->tasks = xrealloc(sup->tasks, sup->cap_tasks * sizeof(*sup->tasks));
    }
    sup->tasks[sup->n_tasks++] = t;
}

/* Removes the files of a task no longer assigned (its logs and its work dir
 * go with it); never follows a symlink the task left there, nor enters a
 * container's rootfs that is still mounted. */
static void remove_dir(const char *dir)
{
    common_rm_tree(dir);
}

/* Frees the forgotten tasks that have ended. */
static void sweep(struct agent_supervisor *sup)
{
    size_t k = 0;
    for (size_t i = 0; i < sup->n_tasks; i++) {
        struct agent_task *t = sup->tasks[i];
        if (t->forgotten && agent_task_ended(t) && !t->bg_busy) {
            remove_dir(t->dir);
            agent_task_close(t);
        } else {
            sup->tasks[k++] = t;
        }
    }
    sup->n_tasks = k;
}

/* ---- reports ---- */

static void schedule_report(struct agent_supervisor *sup, uint64_t delay_ms);

static void report_done(void *data, const struct common_httpc_response *res)
{
    struct agent_supervisor *sup = data;
    sup->report_req = 0;
    if (res->error == -ECANCELED)
        return;
    if (res->status != 200) {
        LOGD("supervisor: report: %s", res->status ? res->body : res->errmsg);
        if (res->status == 0)
            sup->managers.failed(sup->managers.data);
        for (size_t i = 0; i < sup->n_tasks; i++)
            if (sup->tasks[i]->dirty == 2)
                sup->tasks[i]->dirty = 1;
        schedule_report(sup, RETRY_MS);
        return;
    }
    for (size_t i = 0; i < sup->n_tasks; i++)
        if (sup->tasks[i]->dirty == 2)
            sup->tasks[i]->dirty = 0;
    sweep(sup);
    for (size_t i = 0; i < sup->n_tasks; i++)
        if (sup->tasks[i]->dirty) {
            schedule_report(sup, REPORT_DELAY_MS);
            break;
        }
}

static void send_report(uv_timer_t *h)
{
    struct agent_supervisor *sup = h->data;
    const char *addr = sup->managers.current(sup->managers.data);
    if (sup->report_req || sup->closing)
        return;
    sweep(sup);
    if (!addr) {
        schedule_report(sup, RETRY_MS);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < sup->n_tasks; i++) {
        struct agent_task *t = sup->tasks[i];
        if (t->dirty && !t->forgotten) {
            json_array_append_new(list, agent_task_report(t));
            t->dirty = 2; /* in flight */
        }
    }
    if (json_array_size(list) == 0) {
        json_decref(list);
        return;
    }
    json_t *body = json_pack("{s:o}", "tasks", list);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    char url[512], auth[128];
    snprintf(url, sizeof(url), "http://%s/v1/nodes/%s/tasks", addr, sup->node->id_hex);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", sup->node->credential);
    const char *headers[] = {auth, "Content-Type: application/json", NULL};
    int64_t id = common_httpc_request(sup->httpc, "POST", url, headers, text, strlen(text),
                                      REPORT_TIMEOUT, report_done, sup);
    free(text);
    if (id > 0)
        sup->report_req = id;
}

static void schedule_report(struct agent_supervisor *sup, uint64_t delay_ms)
{
    if (!sup->closing && !sup->report_req && !uv_is_active((uv_handle_t *)&sup->report_timer))
        uv_timer_start(&sup->report_timer, send_report, delay_ms, 0);
}

void agent_supervisor_changed(struct agent_supervisor *sup, struct agent_task *t)
{
    /* The cluster forgot this task: nobody to tell, but its end lets the
     * next turn sweep it (never from here: its state machine is running). */
    if (t && t->forgotten)
        t->dirty = 0;
    schedule_report(sup, REPORT_DELAY_MS);
}

/* ---- assignments ---- */

/* Brings one assigned task to its desired state. */
static void apply_assignment(struct agent_supervisor *sup, const json_t *a)
{
    const char *id = json_string_value(json_object_get(a, "id"));
    const char *desired = json_string_value(json_object_get(a, "desired_state"));
    const char *state = json_string_value(json_object_get(a, "state"));
    if (!id || !desired || !state)
        return;
    int run = strcmp(desired, "running") == 0;
    struct agent_task *t = find(sup, id);
    if (!t) {
        /* Never seen here: start it, unless it is to stop or has ended.
         * One the cluster believes live but this node has no file of (its
         * shoald died before writing any) is started too: nothing runs it,
         * and left alone it would stay "preparing" forever. */
        enum sch_task_state st;
        if (!run || sch_task_state_parse(state, &st) != 0 || st > SCH_TASK_RUNNING)
            return;
        t = agent_task_new(sup, a, sup->tasks_dir);
        if (!t) {
            LOGW("supervisor: malformed assignment \"%s\"", id);
            return;
        }
        add_task(sup, t);
    }
    t->forgotten = 0;
    /* A restarted shoald knows its tasks from their files; the count of
     * restarts it reported before is the cluster's. */
    json_t *restarts = json_object_get(a, "restarts");
    if (json_integer_value(restarts) > t->restarts)
        t->restarts = json_integer_value(restarts);
    if (t->state == AGENT_T_RUNNING && t->exit.code != -1 && t->pidfd < 0) {
        /* Adopted after it ended while shoald was away. */
        t->desired_running = run;
        agent_task_event(t, AGENT_EV_EXITED);
    }
    agent_task_event(t, run ? AGENT_EV_START : AGENT_EV_STOP);
    /* What the managers hold differs from what happened (a report lost
     * with a manager, or this shoald restarted): tell them again. */
    if (strcmp(state, agent_task_state_name(t)) != 0 && !t->dirty) {
        t->dirty = 1;
        agent_supervisor_changed(sup, t);
    }
}

static void apply_assignments(struct agent_supervisor *sup, const json_t *list)
{
    for (size_t i = 0; i < sup->n_tasks; i++)
        sup->tasks[i]->forgotten = 1;
    size_t i;
    json_t *a;
    json_array_foreach(list, i, a) apply_assignment(sup, a);
    /* No longer assigned (deleted from the cluster's state): stop. */
    for (i = 0; i < sup->n_tasks; i++) {
        struct agent_task *t = sup->tasks[i];
        if (!t->forgotten)
            continue;
        if (t->state == AGENT_T_RUNNING && t->exit.code != -1 && t->pidfd < 0) {
            t->desired_running = 0;
            agent_task_event(t, AGENT_EV_EXITED);
        }
        agent_task_event(t, AGENT_EV_STOP);
        t->dirty = 0;
    }
    sup->synced = 1;
    agent_supervisor_changed(sup, NULL);
}

static void watch_retry(uv_timer_t *h)
{
    watch(h->data);
}

static void watch_done(void *data, const struct common_httpc_response *res)
{
    struct agent_supervisor *sup = data;
    sup->watch_req = 0;
    if (res->error == -ECANCELED || sup->closing)
        return;
    json_t *list = res->status == 200 ? json_loadb(res->body, res->body_len, 0, NULL) : NULL;
    if (!json_is_array(list)) {
        LOGD("supervisor: assignments: %s", res->status ? res->body : res->errmsg);
        json_decref(list);
        if (res->status != 401)
            sup->managers.failed(sup->managers.data);
        uv_timer_start(&sup->watch_timer, watch_retry, RETRY_MS, 0);
        return;
    }
    const char *index = common_httpc_header(res, "X-Shoal-Index");
    uint64_t idx = index ? strtoull(index, NULL, 10) : 0;
    /* An index going back means another manager, or a restored cluster:
     * start over rather than wait for it to catch up. */
    sup->index = idx;
    apply_assignments(sup, list);
    json_decref(list);
    watch(sup);
}

static void watch(struct agent_supervisor *sup)
{
    const char *addr = sup->managers.current(sup->managers.data);
    if (sup->closing || sup->watch_req)
        return;
    if (!addr) {
        uv_timer_start(&sup->watch_timer, watch_retry, RETRY_MS, 0);
        return;
    }
    char url[512], auth[128];
    snprintf(url, sizeof(url), "http://%s/v1/nodes/%s/tasks?index=%llu&wait=" WATCH_WAIT, addr,
             sup->node->id_hex, (unsigned long long)(sup->synced ? sup->index : 0));
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", sup->node->credential);
    const char *headers[] = {auth, NULL};
    int64_t id = common_httpc_request(sup->httpc, "GET", url, headers, NULL, 0, WATCH_TIMEOUT_MS,
                                      watch_done, sup);
    if (id > 0)
        sup->watch_req = id;
    else
        uv_timer_start(&sup->watch_timer, watch_retry, RETRY_MS, 0);
}

/* ---- start and stop ---- */

/* Finds the tasks an earlier shoald left (DATA/tasks/ID/task.json). */
static void adopt_all(struct agent_supervisor *sup)
{
    DIR *d = opendir(sup->tasks_dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[4500];
        snprintf(path, sizeof(path), "%s/%s/task.json", sup->tasks_dir, e->d_name);
        json_t *a = json_load_file(path, 0, NULL);
        struct agent_task *t = a ? agent_task_new(sup, a, sup->tasks_dir) : NULL;
        json_decref(a);
        if (!t) {
            snprintf(path, sizeof(path), "%s/%s", sup->tasks_dir, e->d_name);
            remove_dir(path);
            continue;
        }
        int rv = agent_process_adopt(t);
        if (rv < 0) /* never started: the assignment will say what to do */
            t->state = AGENT_T_NEW;
        if (rv < 0 && agent_runc_is(t))
            agent_process_cleanup(t); /* a bundle half made when shoald stopped */
        LOGI("supervisor: task %s: %s", t->id,
             rv == 0   ? "still running"
             : rv == 1 ? "ended while shoald was away"
                       : "not started");
        add_task(sup, t);
    }
    closedir(d);
}

/* The image ids the tasks here use (what the runc driver recorded in
 * DIR/image.id), so that image rm and gc leave them. */
static json_t *images_in_use(void *data)
{
    struct agent_supervisor *sup = data;
    json_t *ids = json_array();
    for (size_t i = 0; i < sup->n_tasks; i++) {
        char id[128];
        if (!agent_task_ended(sup->tasks[i]) &&
            agent_runc_image_id(sup->tasks[i]->dir, id, sizeof(id)) == 0)
            json_array_append_new(ids, json_string(id));
    }
    return ids;
}

struct agent_images *agent_supervisor_images(struct agent_supervisor *sup)
{
    return sup->images;
}

const struct agent_net_config *agent_supervisor_net(struct agent_supervisor *sup)
{
    return &sup->node->net;
}

const char *agent_supervisor_data_dir(struct agent_supervisor *sup)
{
    return sup->node->data_dir;
}

int agent_supervisor_start(struct agent_supervisor **out, uv_loop_t *loop, struct agent_node *node,
                           const struct agent_supervisor_managers *managers,
                           struct agent_images *images, char *errmsg)
{
    struct agent_supervisor *sup = xcalloc(1, sizeof(*sup));
    sup->loop = loop;
    sup->node = node;
    sup->images = images;
    sup->managers = *managers;
    snprintf(sup->tasks_dir, sizeof(sup->tasks_dir), "%s/tasks", node->data_dir);
    if (mkdir(sup->tasks_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(errmsg, 256, "%s: %s", sup->tasks_dir, strerror(errno));
        free(sup);
        return -errno;
    }
    int rv = common_httpc_init(&sup->httpc, loop);
    if (rv != 0) {
        snprintf(errmsg, 256, "supervisor: %s", strerror(-rv));
        free(sup);
        return rv;
    }
    agent_cgroup_version(); /* detected once, before task threads ask */
    uv_timer_init(loop, &sup->watch_timer);
    uv_timer_init(loop, &sup->report_timer);
    sup->watch_timer.data = sup->report_timer.data = sup;
    sup->open_handles = 2;
    adopt_all(sup);
    agent_runc_sweep(sup);
    if (images)
        agent_images_set_in_use(images, images_in_use, sup);
    watch(sup);
    *out = sup;
    return 0;
}

static void sup_closed(uv_handle_t *h)
{
    struct agent_supervisor *sup = h->data;
    if (--sup->open_handles > 0)
        return;
    void (*cb)(void *) = sup->stop_cb;
    void *data = sup->stop_data;
    free(sup->tasks);
    free(sup);
    if (cb)
        cb(data);
}

static void httpc_closed(void *data)
{
    struct agent_supervisor *sup = data;
    uv_close((uv_handle_t *)&sup->watch_timer, sup_closed);
    uv_close((uv_handle_t *)&sup->report_timer, sup_closed);
}

void agent_supervisor_stop(struct agent_supervisor *sup, void (*cb)(void *data), void *data)
{
    if (sup->closing)
        return;
    sup->closing = 1;
    sup->stop_cb = cb;
    sup->stop_data = data;
    if (sup->images)
        agent_images_set_in_use(sup->images, NULL, NULL);
    for (size_t i = 0; i < sup->n_tasks; i++)
        agent_task_close(sup->tasks[i]);
    sup->n_tasks = 0;
    common_httpc_close(sup->httpc, httpc_closed, sup);
}
