/* The task state machine (s6-supervise's shape: events in, a table of
 * actions) and the restart policy. */
#include "agent/task.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/supervisor.h"
#include "api/server.h"
#include "common/log.h"
#include "common/units.h"
#include "common/util.h"

/* A run this long resets the backoff (the task was healthy); for a task
 * with a health check, a healthy spell this long. */
#define HEALTHY_MS (10 * 1000)
/* The backoff doubles from the policy's delay up to this cap (or the delay
 * itself when it is longer). */
#define MAX_DELAY_MS (60 * 1000)
#define MAX_TRACKED  1000 /* restart times kept for max_attempts */

static int64_t duration_of(const json_t *obj, const char *key, int64_t def)
{
    int64_t ms;
    const char *s = json_string_value(json_object_get(obj, key));
    return s && common_parse_duration(s, &ms) == 0 ? ms : def;
}

static void read_policy(struct agent_task *t)
{
    const json_t *r = json_object_get(t->spec, "restart");
    const char *cond = json_string_value(json_object_get(r, "condition"));
    t->condition = !cond || strcmp(cond, "any") == 0 ? AGENT_RESTART_ANY
                   : strcmp(cond, "none") == 0       ? AGENT_RESTART_NONE
                                                     : AGENT_RESTART_ON_FAILURE;
    t->delay_ms = duration_of(r, "delay", 5000);
    t->window_ms = duration_of(r, "window", 0);
    t->max_attempts = json_integer_value(json_object_get(r, "max_attempts"));
    t->max_delay_ms = t->delay_ms > MAX_DELAY_MS ? t->delay_ms : MAX_DELAY_MS;
}

struct agent_task *agent_task_new(struct agent_supervisor *sup, const json_t *assignment,
                                  const char *tasks_dir)
{
    const char *id = json_string_value(json_object_get(assignment, "id"));
    const char *service = json_string_value(json_object_get(assignment, "service"));
    const json_t *spec = json_object_get(assignment, "spec");
    if (!id || !service || !json_is_object(spec) || !api_task_id_valid(id) ||
        strlen(service) >= sizeof(((struct agent_task *)0)->service))
        return NULL;
    struct agent_task *t = xcalloc(1, sizeof(*t));
    t->sup = sup;
    common_strlcpy(t->id, id, sizeof(t->id));
    common_strlcpy(t->service, service, sizeof(t->service));
    snprintf(t->dir, sizeof(t->dir), "%s/%s", tasks_dir, id);
    t->assignment = json_deep_copy(assignment);
    t->spec = json_object_get(t->assignment, "spec");
    t->pidfd = -1;
    t->exit.code = -1;
    json_t *restarts = json_object_get(assignment, "restarts");
    t->restarts = json_is_integer(restarts) ? json_integer_value(restarts) : 0;
    read_policy(t);
    uv_timer_init(agent_supervisor_loop(sup), &t->timer);
    t->timer.data = t;
    t->open_handles = 1;
    return t;
}

static void set_state(struct agent_task *t, enum agent_tstate st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_state(struct agent_task *t, enum agent_tstate st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->message, sizeof(t->message), fmt, ap);
    va_end(ap);
    t->state = st;
    LOGI("task %s: %s: %s", t->id, agent_task_state_name(t), t->message);
    t->dirty = 1;
    agent_supervisor_changed(t->sup, t);
}

/* "exited with code 3", "killed by signal 9", "out of memory (killed)". */
static void describe_exit(const struct agent_exit *e, char *out, size_t size)
{
    if (e->error[0])
        snprintf(out, size, "could not start: %s", e->error);
    else if (e->oom)
        snprintf(out, size, "killed: out of memory (the memory limit was reached)");
    else if (e->signal)
        snprintf(out, size, "killed by signal %d (%s)", e->signal, strsignal(e->signal));
    else if (e->code >= 0)
        snprintf(out, size, "exited with code %d", e->code);
    else
        snprintf(out, size, "%s", "its monitor died: exit status unknown");
}

static void start_failed(struct agent_task *t, const char *errmsg)
{
    common_strlcpy(t->exit.error, errmsg, sizeof(t->exit.error));
    t->exit.code = 127;
    agent_task_event(t, AGENT_EV_EXITED);
}

/* ---- health ---- */

static void health_changed(void *data, enum agent_health_status was)
{
    struct agent_task *t = data;
    uint64_t now = common_now_ms();
    if (t->health.status == AGENT_HEALTH_HEALTHY) {
        t->healthy_at = now;
    } else if (was == AGENT_HEALTH_HEALTHY) {
        if (now - t->healthy_at > t->healthy_longest)
            t->healthy_longest = now - t->healthy_at;
        t->healthy_at = 0;
    }
    LOGI("task %s: %s: \"%s\"", t->id, agent_health_status_name(t->health.status),
         t->health.output);
    if (t->health.status == AGENT_HEALTH_UNHEALTHY) {
        agent_task_event(t, AGENT_EV_UNHEALTHY);
        return;
    }
    t->dirty = 1;
    agent_supervisor_changed(t->sup, t);
}

/* Starts the checker of a running task that has a check and none yet. */
static void health_start(struct agent_task *t)
{
    if (t->checker || t->closing)
        return;
    t->healthy_at = t->healthy_longest = 0;
    t->checker = agent_health_start(t, &t->health, health_changed, t);
}

/* Stops the checker; what it found stays (reported until a restart). */
static void health_stop(struct agent_task *t)
{
    agent_health_stop(t->checker);
    t->checker = NULL;
    if (t->healthy_at) {
        uint64_t spell = common_now_ms() - t->healthy_at;
        if (spell > t->healthy_longest)
            t->healthy_longest = spell;
        t->healthy_at = 0;
    }
}

/* A new run: nothing is known of its health. */
static void health_reset(struct agent_task *t)
{
    health_stop(t);
    memset(&t->health, 0, sizeof(t->health));
    t->healthy_longest = 0;
    t->unhealthy[0] = '\0';
}

/* Whether the run that ended was a healthy one, which resets the backoff:
 * it lasted HEALTHY_MS, healthy that long when it had a check. */
static int ran_healthy(const struct agent_task *t, uint64_t now)
{
    if (json_is_object(json_object_get(t->spec, "health")))
        return t->healthy_longest >= HEALTHY_MS;
    return t->started_ms && now - t->started_ms >= HEALTHY_MS;
}

/* ---- actions ---- */

/* This node cannot run it (no such user here, no cgroups, a disk error...):
 * rejected, for the reconciler to place again, after a backoff. */
static void act_rejected(struct agent_task *t)
{
    agent_process_cleanup(t);
    if (!t->desired_running)
        set_state(t, AGENT_T_SHUTDOWN, "%s", "stopped before it started");
    else
        set_state(t, AGENT_T_REJECTED, "rejected by this node: %s", t->exit.error);
}

static void act_start(struct agent_task *t)
{
    char errmsg[256];
    memset(&t->exit, 0, sizeof(t->exit));
    t->exit.code = -1;
    t->pid = 0;
    health_reset(t);
    set_state(t, AGENT_T_PREPARING, "%s", "preparing");
    if (agent_process_prepare(t, errmsg) != 0) {
        common_strlcpy(t->exit.error, errmsg, sizeof(t->exit.error));
        act_rejected(t);
    }
}

static void act_prepared(struct agent_task *t)
{
    char errmsg[256];
    if (!t->desired_running) {
        agent_process_cleanup(t);
        set_state(t, AGENT_T_SHUTDOWN, "%s", "stopped before it started");
        return;
    }
    if (agent_process_spawn(t, errmsg) != 0) {
        start_failed(t, errmsg);
        return;
    }
    set_state(t, AGENT_T_STARTING, "%s", "starting");
}

/* Stopped while its preparation runs: PREPARED then ends it. */
static void act_stop_preparing(struct agent_task *t)
{
    t->desired_running = 0;
}

static void act_started(struct agent_task *t)
{
    t->started_ms = common_now_ms();
    health_start(t);
    set_state(t, AGENT_T_RUNNING, "running (pid %d)", (int)t->pid);
}

/* Its check failed `retries` times in a row: stopped (stop signal, grace,
 * KILL), its end a failure for the restart policy. */
static void act_unhealthy(struct agent_task *t)
{
    health_stop(t);
    snprintf(t->unhealthy, sizeof(t->unhealthy), "unhealthy: %s (%d failure%s in a row)",
             t->health.output, t->health.failures, t->health.failures == 1 ? "" : "s");
    agent_health_utf8_fix(t->unhealthy, strlen(t->unhealthy));
    agent_process_stop(t);
    set_state(t, AGENT_T_RECYCLING, "%s; stopping it", t->unhealthy);
}

static void backoff_done(uv_timer_t *h)
{
    agent_task_event(h->data, AGENT_EV_TIMER);
}

/* Counts the restarts inside the window; drops older ones. */
static size_t recent_restarts(struct agent_task *t, uint64_t now)
{
    size_t k = 0;
    for (size_t i = 0; i < t->n_restart_at; i++)
        if (t->window_ms <= 0 || now - t->restart_at[i] < (uint64_t)t->window_ms)
            t->restart_at[k++] = t->restart_at[i];
    return t->n_restart_at = k;
}

static void act_exited(struct agent_task *t)
{
    health_stop(t);
    agent_process_cleanup(t);
    char what[300];
    if (t->unhealthy[0])
        common_strlcpy(what, t->unhealthy, sizeof(what));
    else
        describe_exit(&t->exit, what, sizeof(what));
    int ok = t->exit.code == 0 && !t->exit.error[0] && !t->unhealthy[0];
    enum agent_tstate final = ok ? AGENT_T_COMPLETE : AGENT_T_FAILED;
    if (!t->desired_running) {
        set_state(t, AGENT_T_SHUTDOWN, "%s", what);
        return;
    }
    if (t->condition == AGENT_RESTART_NONE || (t->condition == AGENT_RESTART_ON_FAILURE && ok)) {
        set_state(t, final, "%s", what);
        return;
    }
    uint64_t now = common_now_ms();
    size_t recent = recent_restarts(t, now);
    if (t->max_attempts > 0 && recent >= (uint64_t)t->max_attempts) {
        char window[32] = "";
        if (t->window_ms > 0)
            common_format_duration(t->window_ms, window, sizeof(window));
        set_state(t, final, "%s; restart limit reached (%zu restarts%s%s)", what, recent,
                  window[0] ? " in " : "", window);
        return;
    }
    if (ran_healthy(t, now))
        t->consecutive = 0;
    int64_t delay = t->delay_ms;
    for (unsigned i = 0; i < t->consecutive && delay < t->max_delay_ms; i++)
        delay *= 2;
    if (delay > t->max_delay_ms)
        delay = t->max_delay_ms;
    t->consecutive++;
    t->restarts++;
    if (t->max_attempts > 0 && t->n_restart_at < MAX_TRACKED) {
        t->restart_at = xrealloc(t->restart_at, (t->n_restart_at + 1) * sizeof(*t->restart_at));
        t->restart_at[t->n_restart_at++] = now;
    }
    char wait[32];
    common_format_duration(delay, wait, sizeof(wait));
    /* The next run's health is its own: none is reported while waiting. */
    memset(&t->health, 0, sizeof(t->health));
    uv_timer_start(&t->timer, backoff_done, (uint64_t)delay, 0);
    set_state(t, AGENT_T_BACKOFF, "%s; restarting in %s (restart %lld)", what, wait,
              (long long)t->restarts);
}

static void act_stop(struct agent_task *t)
{
    t->desired_running = 0;
    health_stop(t);
    agent_process_stop(t);
    set_state(t, AGENT_T_STOPPING, "%s", "stopping");
}

/* Asked to stop while stopping an unhealthy task: the stop under way is
 * the one asked for, and no restart follows. */
static void act_stop_recycling(struct agent_task *t)
{
    t->desired_running = 0;
    t->unhealthy[0] = '\0';
    set_state(t, AGENT_T_STOPPING, "%s", "stopping");
}

static void act_cancel(struct agent_task *t)
{
    t->desired_running = 0;
    uv_timer_stop(&t->timer);
    set_state(t, AGENT_T_SHUTDOWN, "%s", "stopped before it started");
}

static void act_stopped(struct agent_task *t)
{
    agent_process_cleanup(t);
    char what[300];
    describe_exit(&t->exit, what, sizeof(what));
    set_state(t, AGENT_T_SHUTDOWN, "stopped: %s", what);
}

typedef void (*action_fn)(struct agent_task *t);

/* state x event -> action; NULL: the event means nothing in that state. */
static const action_fn table[AGENT_T_STATE_COUNT][AGENT_EV_COUNT] = {
    [AGENT_T_NEW] = {[AGENT_EV_START] = act_start, [AGENT_EV_STOP] = act_cancel},
    [AGENT_T_STARTING] = {[AGENT_EV_STARTED] = act_started,
                          [AGENT_EV_EXITED] = act_exited,
                          [AGENT_EV_STOP] = act_stop},
    [AGENT_T_RUNNING] = {[AGENT_EV_EXITED] = act_exited,
                         [AGENT_EV_STOP] = act_stop,
                         [AGENT_EV_UNHEALTHY] = act_unhealthy},
    [AGENT_T_RECYCLING] = {[AGENT_EV_EXITED] = act_exited, [AGENT_EV_STOP] = act_stop_recycling},
    [AGENT_T_BACKOFF] = {[AGENT_EV_TIMER] = act_start, [AGENT_EV_STOP] = act_cancel},
    [AGENT_T_STOPPING] = {[AGENT_EV_EXITED] = act_stopped},
    [AGENT_T_PREPARING] = {[AGENT_EV_PREPARED] = act_prepared,
                           [AGENT_EV_REJECTED] = act_rejected,
                           [AGENT_EV_EXITED] = act_exited,
                           [AGENT_EV_STOP] = act_stop_preparing},
    /* The ended states take no event: a final task stays as it ended. */
};

void agent_task_event(struct agent_task *t, enum agent_tevent ev)
{
    if (ev == AGENT_EV_START)
        t->desired_running = 1;
    action_fn fn = table[t->state][ev];
    if (fn)
        fn(t);
    /* A task found running by a new shoald (adopted) gets its checker
     * here, at its first event. */
    if (t->state == AGENT_T_RUNNING && !t->checker && t->pidfd >= 0 &&
        json_is_object(json_object_get(t->spec, "health"))) {
        health_start(t);
        t->dirty = 1;
        agent_supervisor_changed(t->sup, t);
    }
}

const char *agent_task_state_name(const struct agent_task *t)
{
    static const char *const names[] = {
        [AGENT_T_NEW] = "assigned",      [AGENT_T_PREPARING] = "preparing",
        [AGENT_T_STARTING] = "starting", [AGENT_T_RUNNING] = "running",
        [AGENT_T_BACKOFF] = "starting",  [AGENT_T_STOPPING] = "running",
        [AGENT_T_COMPLETE] = "complete", [AGENT_T_FAILED] = "failed",
        [AGENT_T_SHUTDOWN] = "shutdown", [AGENT_T_REJECTED] = "rejected",
        [AGENT_T_RECYCLING] = "running",
    };
    return names[t->state];
}

int agent_task_ended(const struct agent_task *t)
{
    return t->state >= AGENT_T_COMPLETE;
}

json_t *agent_task_report(const struct agent_task *t)
{
    /* A container that ended still holds its network and published ports
     * until its clean-up is done: ended only then, so that nothing is
     * placed on its ports meanwhile (the clean-up reports again). */
    const char *state = agent_task_ended(t) && t->bg_busy ? "running" : agent_task_state_name(t);
    json_t *r = json_pack("{s:s, s:s, s:s, s:I}", "id", t->id, "state", state, "message",
                          t->message, "restarts", (json_int_t)t->restarts);
    if (t->exit.code >= 0 && (t->state == AGENT_T_BACKOFF || agent_task_ended(t)))
        json_object_set_new(r, "exit_code", json_integer(t->exit.code));
    if (t->health.status != AGENT_HEALTH_NONE)
        json_object_set_new(r, "health",
                            json_pack("{s:s, s:i, s:s}", "status",
                                      agent_health_status_name(t->health.status), "failures",
                                      t->health.failures, "output", t->health.output));
    return r;
}

void agent_task_handle_closed(uv_handle_t *h)
{
    agent_task_unref(h->data);
}

void agent_task_unref(struct agent_task *t)
{
    if (--t->open_handles > 0)
        return;
    json_decref(t->assignment);
    free(t->restart_at);
    free(t);
}

void agent_task_close(struct agent_task *t)
{
    if (t->closing)
        return;
    t->closing = 1;
    health_stop(t);
    uv_close((uv_handle_t *)&t->timer, agent_task_handle_closed);
    if (t->poll_active)
        uv_close((uv_handle_t *)&t->poll, agent_task_handle_closed);
    if (t->proc_active)
        uv_close((uv_handle_t *)&t->proc, agent_task_handle_closed);
    if (t->fsev_active) {
        t->fsev_active = 0;
        uv_close((uv_handle_t *)&t->fsev, agent_task_handle_closed);
    }
    if (t->pidfd >= 0)
        close(t->pidfd);
    t->pidfd = -1;
}
