/* One task on this node: its template as assigned, its lifecycle as an
 * explicit state x event table, the restart policy with backoff, and what is
 * reported to the managers. The driver (process now, runc next) does the
 * work; the supervisor feeds assignments in and reports out. */
#ifndef SHOAL_AGENT_TASK_H
#define SHOAL_AGENT_TASK_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "agent/cgroup.h"
#include "agent/health.h"

struct agent_prep;

struct agent_supervisor;

/* The node-side lifecycle. BACKOFF waits to restart after an exit (reported
 * as "starting" with the reason); STOPPING waits for the stop to finish;
 * RECYCLING stops a task found unhealthy, whose end then goes through the
 * restart policy as a failure (both reported as "running"). */
enum agent_tstate {
    AGENT_T_NEW,
    AGENT_T_PREPARING,
    AGENT_T_STARTING,
    AGENT_T_RUNNING,
    AGENT_T_BACKOFF,
    AGENT_T_STOPPING,
    AGENT_T_RECYCLING,
    AGENT_T_COMPLETE,
    AGENT_T_FAILED,
    AGENT_T_SHUTDOWN,
    AGENT_T_REJECTED,
    AGENT_T_STATE_COUNT,
};

enum agent_tevent {
    AGENT_EV_START,     /* assigned and desired running */
    AGENT_EV_STARTED,   /* the program runs (its pid is known) */
    AGENT_EV_EXITED,    /* the program ended (or never started): exit fields set */
    AGENT_EV_STOP,      /* desired shutdown, or no longer assigned */
    AGENT_EV_TIMER,     /* the backoff delay passed */
    AGENT_EV_PREPARED,  /* its files, cgroups and user are ready: spawn */
    AGENT_EV_REJECTED,  /* it cannot be prepared here (exit.error says why) */
    AGENT_EV_UNHEALTHY, /* its health check failed `retries` times in a row */
    AGENT_EV_COUNT,
};

enum agent_restart { AGENT_RESTART_NONE, AGENT_RESTART_ON_FAILURE, AGENT_RESTART_ANY };

/* How the program last ended. */
struct agent_exit {
    int code;        /* exit status, 128+signal when killed, -1 when unknown */
    int signal;      /* 0 when it exited by itself */
    int oom;         /* killed by the memory limit */
    int stopped;     /* the end followed our stop request */
    char error[256]; /* why it could not start, "" when it did */
};

struct agent_task {
    struct agent_supervisor *sup;
    char id[40];
    char service[64];
    char dir[4200];     /* DATA/tasks/ID: task.json, state, log files */
    json_t *assignment; /* owned: the task as assigned (id, service, slot, node, spec...) */
    const json_t *spec; /* borrowed from assignment: the task template */
    enum agent_tstate state;
    int desired_running;
    /* The restart policy, read from the template. */
    enum agent_restart condition;
    int64_t delay_ms, max_delay_ms, window_ms;
    int64_t max_attempts;
    /* Runtime. */
    pid_t monitor_pid;
    int pidfd;           /* the monitor's, -1 when none */
    pid_t pid;           /* the program's, 0 when unknown */
    uint64_t started_ms; /* when it last started (monotonic) */
    struct agent_exit exit;
    struct agent_cgroup cgroup;
    int64_t restarts;     /* restarts in all, as reported */
    unsigned consecutive; /* quick failures in a row: the backoff exponent */
    uint64_t *restart_at; /* owned: monotonic ms of the recent restarts (window) */
    size_t n_restart_at;
    char message[512];
    int dirty;               /* changed since last reported */
    int forgotten;           /* no longer assigned: freed once ended */
    uv_timer_t timer;        /* backoff, start polling, stop watchdog */
    uv_poll_t poll;          /* readable when the monitor exits */
    uv_fs_event_t fsev;      /* DIR changed while starting: the state file may name the pid */
    uv_process_t proc;       /* the monitor, when this shoald spawned it */
    struct agent_prep *prep; /* the preparation under way (owned by it) */
    /* Health: the checker of the current run, and what it last found (kept
     * once the run ends; status NONE when there is nothing to report). */
    struct agent_health *checker; /* owned: stopped with agent_health_stop */
    struct agent_health_state health;
    uint64_t healthy_at;      /* monotonic ms the current healthy spell began, 0 if none */
    uint64_t healthy_longest; /* the longest healthy spell of this run (ms) */
    char unhealthy[300];      /* why RECYCLING stopped it, "" otherwise */
    int bg_busy;              /* runc: the clean-up of the last run is under way */
    int prep_deferred;        /* runc: a start waits for that clean-up */
    int poll_active, proc_active, fsev_active, polls;
    int open_handles;
    int closing;
};

/* Creates a task from its assignment (id, service, spec), with its dir
 * under tasks_dir. Returns NULL when the assignment is malformed. */
struct agent_task *agent_task_new(struct agent_supervisor *sup, const json_t *assignment,
                                  const char *tasks_dir);

/* Feeds one event to the task's state machine. */
void agent_task_event(struct agent_task *t, enum agent_tevent ev);

/* The name reported for the task's state ("running", "failed", ...). */
const char *agent_task_state_name(const struct agent_task *t);

/* Whether the task has ended (nothing runs, no restart is pending). */
int agent_task_ended(const struct agent_task *t);

/* The report entry of the task (transferred). */
json_t *agent_task_report(const struct agent_task *t);

/* Closes the task's handles, then frees it. The program keeps running. */
void agent_task_close(struct agent_task *t);

/* The close callback of every handle a task owns (frees it after the last),
 * and the same for a pending piece of work. */
void agent_task_handle_closed(uv_handle_t *h);
void agent_task_unref(struct agent_task *t);

/* The context a task's program runs in, built by the process driver for its
 * program and for its exec health checks alike: environment (the
 * template's env, PATH, SHOAL_*), working dir and user. */
#define AGENT_MAX_GROUPS 64
struct agent_process_ctx {
    char **env;         /* owned: NULL-terminated "NAME=value" list */
    char workdir[4300]; /* the template's workdir, or DIR/work */
    int own_workdir;    /* workdir is the task's private DIR/work */
    char user[256];     /* the template's user, "" for shoald's own */
    int has_user;
    /* Filled by agent_process_ctx_resolve when has_user. */
    uid_t uid;
    gid_t gid, groups[AGENT_MAX_GROUPS];
    int n_groups;
};

/* Fills c from t's template (on the loop: nothing blocks); free it with
 * agent_process_ctx_free. */
void agent_process_ctx_init(const struct agent_task *t, struct agent_process_ctx *c);
/* Resolves c->user into ids and groups. It may block (NSS lookups): call it
 * off the loop. Returns 0, or -ENOENT with errmsg (256 bytes) when there is
 * no such user on this node. */
int agent_process_ctx_resolve(struct agent_process_ctx *c, char *errmsg);
/* The task's SHOAL_TASK_ID, SHOAL_SERVICE, SHOAL_TASK_SLOT and
 * SHOAL_NODE_ID as 4 new "NAME=value" strings into out[0..3]. */
void agent_process_shoal_env(const struct agent_task *t, char **out);
/* Frees what c owns (c itself is the caller's). */
void agent_process_ctx_free(struct agent_process_ctx *c);

/* The process driver (agent/process.c). prepare: makes the task's files,
 * cgroups and work dir off the loop, then feeds AGENT_EV_PREPARED (or
 * AGENT_EV_REJECTED with the reason in exit.error); returns an error at once
 * when the task cannot be run at all. spawn (on PREPARED): starts the monitor, which
 * runs the program; its events come back through agent_task_event. stop:
 * asks the monitor to stop the program (stop signal, grace, KILL). adopt:
 * finds the monitor of a task started by an earlier shoald: returns 0 when
 * it still runs (state RUNNING or STARTING, watched again), 1 when it ended
 * meanwhile (state RUNNING with t->exit filled: feed AGENT_EV_EXITED once
 * the desired state is known), -ENOENT when it never started. */
int agent_process_prepare(struct agent_task *t, char *errmsg);
int agent_process_spawn(struct agent_task *t, char *errmsg);
void agent_process_stop(struct agent_task *t);
int agent_process_adopt(struct agent_task *t);
/* Removes what the driver made for a run (cgroups; for containers also the
 * mount, network and runc state, off the loop); keeps logs. */
void agent_process_cleanup(struct agent_task *t);
/* Goes on with a start that waited for the clean-up of the last run. */
void agent_process_resume_prepare(struct agent_task *t);

#endif
