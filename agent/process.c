/* The process driver: each task runs under its own shoal-monitor (see
 * agent/monitor/monitor.c), a tiny detached process that is the program's
 * parent. It keeps the exit status and the logs while shoald is away, so
 * that tasks outlive a restart of shoald and no exit code is ever lost;
 * shoald watches each monitor with a pidfd (it need not be its child) and
 * reads the monitor's state file. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent/images.h"
#include "agent/runc.h"
#include "agent/supervisor.h"
#include "agent/task.h"
#include "api/spec.h"
#include "common/log.h"
#include "common/units.h"
#include "common/util.h"

#define MAX_ARGS      600
#define DEFAULT_PATH  "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define STOP_EXTRA_MS 5000 /* after the grace period, the monitor itself is killed */

/* What the monitor wrote (DIR/state). */
struct mon_state {
    pid_t monitor_pid, pid;
    int has_exit;
    struct agent_exit exit;
};

static int read_state(const char *dir, struct mon_state *ms)
{
    memset(ms, 0, sizeof(*ms));
    ms->exit.code = -1;
    char path[4300], line[512];
    snprintf(path, sizeof(path), "%s/state", dir);
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        char *eq = strchr(line, '=');
        if (!eq)
            continue;
        *eq = '\0';
        const char *v = eq + 1;
        long n = strtol(v, NULL, 10);
        if (strcmp(line, "monitor_pid") == 0)
            ms->monitor_pid = (pid_t)n;
        else if (strcmp(line, "pid") == 0)
            ms->pid = (pid_t)n;
        else if (strcmp(line, "exit_code") == 0)
            ms->has_exit = 1, ms->exit.code = (int)n;
        else if (strcmp(line, "signal") == 0)
            ms->exit.signal = (int)n;
        else if (strcmp(line, "oom") == 0)
            ms->exit.oom = (int)n;
        else if (strcmp(line, "stopped") == 0)
            ms->exit.stopped = (int)n;
        else if (strcmp(line, "error") == 0)
            common_strlcpy(ms->exit.error, v, sizeof(ms->exit.error));
    }
    fclose(f);
    return 0;
}

static int pidfd_open_(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_signal(int pidfd, int sig)
{
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* The monitor binary sits next to shoald. */
static void monitor_path(char *out, size_t size)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    snprintf(out, size, "%s/shoal-monitor", self[0] ? self : ".");
}

static void fsev_stop(struct agent_task *t)
{
    if (!t->fsev_active)
        return;
    t->fsev_active = 0;
    uv_fs_event_stop(&t->fsev);
    uv_close((uv_handle_t *)&t->fsev, agent_task_handle_closed);
}

static void monitor_gone(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    struct agent_task *t = h->data;
    uv_poll_stop(h);
    uv_close((uv_handle_t *)h, agent_task_handle_closed);
    t->poll_active = 0;
    fsev_stop(t);
    close(t->pidfd);
    t->pidfd = -1;
    t->monitor_pid = 0;
    uv_timer_stop(&t->timer);
    struct mon_state ms;
    if (read_state(t->dir, &ms) == 0 && ms.has_exit)
        t->exit = ms.exit;
    else
        t->exit.code = -1;
    if (!t->pid && ms.pid)
        t->pid = ms.pid;
    agent_task_event(t, AGENT_EV_EXITED);
}

/* Watches the monitor's pidfd. Returns 0, or -ESRCH when it is gone. */
static int watch_monitor(struct agent_task *t, pid_t monitor_pid)
{
    int fd = pidfd_open_(monitor_pid);
    if (fd < 0)
        return -errno;
    t->pidfd = fd;
    t->monitor_pid = monitor_pid;
    uv_poll_init(agent_supervisor_loop(t->sup), &t->poll, fd);
    t->poll.data = t;
    t->poll_active = 1;
    t->open_handles++;
    uv_poll_start(&t->poll, UV_READABLE, monitor_gone);
    return 0;
}

/* Whether the monitor's state file names the program's pid: then it runs.
 * Returns 1 when the start was seen (or the end is for the pidfd). */
static int check_started(struct agent_task *t)
{
    struct mon_state ms;
    if (read_state(t->dir, &ms) == 0 && ms.pid > 0) {
        fsev_stop(t);
        uv_timer_stop(&t->timer);
        t->pid = ms.pid;
        agent_task_event(t, AGENT_EV_STARTED);
        return 1;
    }
    return ms.has_exit; /* the pidfd reports the end */
}

/* The state file is replaced (renamed over) when the monitor learns the
 * pid: inotify tells at once (a container's start takes tens of ms, and a
 * poll would add up to its interval to every start). */
static void state_changed(uv_fs_event_t *h, const char *filename, int events, int status)
{
    (void)events;
    struct agent_task *t = h->data;
    if (status == 0 && (!filename || strcmp(filename, "state") == 0) &&
        t->state == AGENT_T_STARTING)
        check_started(t);
}

/* Polls the state file until the monitor says the program runs (a few ms):
 * every 2 ms at first, backing off to 100 ms; inotify usually sees it
 * first. */
static void start_poll(uv_timer_t *h)
{
    struct agent_task *t = h->data;
    if (check_started(t))
        return;
    t->polls++;
    uv_timer_start(h, start_poll, t->polls < 10 ? 2 : t->polls < 40 ? 20 : 100, 0);
}

static void watch_state_file(struct agent_task *t)
{
    uv_fs_event_init(agent_supervisor_loop(t->sup), &t->fsev);
    t->fsev.data = t;
    t->open_handles++;
    if (uv_fs_event_start(&t->fsev, state_changed, t->dir, 0) != 0) {
        uv_close((uv_handle_t *)&t->fsev, agent_task_handle_closed);
        return; /* the poll alone then */
    }
    t->fsev_active = 1;
}

static void proc_exited(uv_process_t *p, int64_t status, int sig)
{
    (void)status;
    (void)sig;
    struct agent_task *t = p->data;
    t->proc_active = 0;
    uv_close((uv_handle_t *)p, agent_task_handle_closed);
}

/* user: "", "name", "uid" or "uid:gid" -> ids and supplementary groups. */
static int resolve_user(const char *user, uid_t *uid, gid_t *gid, gid_t *groups, int *n_groups,
                        char *errmsg)
{
    char name[256];
    common_strlcpy(name, user, sizeof(name));
    char *colon = strchr(name, ':');
    if (colon)
        *colon = '\0';
    char *end;
    unsigned long n = strtoul(name, &end, 10);
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (*end == '\0' && name[0]) {
        *uid = (uid_t)n;
        getpwuid_r(*uid, &pw, buf, sizeof(buf), &res);
        *gid = res ? res->pw_gid : (gid_t)n;
    } else {
        getpwnam_r(name, &pw, buf, sizeof(buf), &res);
        if (!res) {
            snprintf(errmsg, 256, "user \"%s\": no such user on this node", name);
            return -ENOENT;
        }
        *uid = res->pw_uid;
        *gid = res->pw_gid;
    }
    if (colon)
        *gid = (gid_t)strtoul(colon + 1, NULL, 10);
    *n_groups = 0;
    if (res) {
        int ng = AGENT_MAX_GROUPS;
        if (getgrouplist(res->pw_name, *gid, groups, &ng) >= 0)
            *n_groups = ng;
    }
    return 0;
}

struct argv_buf {
    char *v[MAX_ARGS + 40];
    size_t n;
    char *owned[40];
    size_t n_owned;
};

static void add(struct argv_buf *a, const char *s)
{
    a->v[a->n++] = (char *)s;
}

static void addf(struct argv_buf *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void addf(struct argv_buf *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s;
    if (vasprintf(&s, fmt, ap) < 0)
        abort();
    va_end(ap);
    a->owned[a->n_owned++] = s;
    add(a, s);
}

static void argv_free(struct argv_buf *a)
{
    for (size_t i = 0; i < a->n_owned; i++)
        free(a->owned[i]);
}

/* What the preparation (off the loop) found and made. */
struct agent_prep {
    uv_work_t work;
    struct agent_task *t;
    char *assignment; /* owned: task.json's text */
    struct agent_process_ctx ctx;
    struct agent_cgroup_limits lim;
    struct agent_cgroup cgroup;
    struct agent_runc_prep *runc; /* owned: the runc driver's part, NULL for processes */
    int rv;
    char errmsg[256];
};

static void user_args(const struct agent_process_ctx *c, struct argv_buf *a)
{
    if (!c->has_user)
        return;
    add(a, "--uid");
    addf(a, "%u", (unsigned)c->uid);
    add(a, "--gid");
    addf(a, "%u", (unsigned)c->gid);
    char list[AGENT_MAX_GROUPS * 12] = "";
    size_t len = 0;
    for (int i = 0; i < c->n_groups; i++)
        len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%u", i ? "," : "",
                                (unsigned)c->groups[i]);
    if (c->n_groups > 0) {
        add(a, "--groups");
        addf(a, "%s", list);
    }
}

/* The monitor's command line: options from the template, then the program. */
static void build_argv(struct agent_task *t, const struct agent_process_ctx *c, const char *monitor,
                       struct argv_buf *a)
{
    const json_t *command = json_object_get(t->spec, "command");
    const json_t *args = json_object_get(t->spec, "args");
    add(a, monitor);
    add(a, "--dir");
    add(a, t->dir);
    if (!t->prep->runc) {
        user_args(c, a);
        add(a, "--cwd");
        add(a, c->workdir);
    }
    const char *sig = json_string_value(json_object_get(t->spec, "stop_signal"));
    int signo = sig ? api_spec_signal_number(sig) : 0;
    add(a, "--stop-signal");
    addf(a, "%d", signo > 0 ? signo : SIGTERM);
    int64_t grace = 10000;
    const char *g = json_string_value(json_object_get(t->spec, "stop_grace_period"));
    if (g)
        common_parse_duration(g, &grace);
    add(a, "--grace-ms");
    addf(a, "%lld", (long long)grace);
    const json_t *logs = json_object_get(t->spec, "logs");
    json_int_t max_size = json_integer_value(json_object_get(logs, "max_size"));
    json_int_t max_files = json_integer_value(json_object_get(logs, "max_files"));
    if (max_size > 0) {
        add(a, "--log-max-size");
        addf(a, "%lld", (long long)max_size);
    }
    if (max_files > 0) {
        add(a, "--log-max-files");
        addf(a, "%lld", (long long)max_files);
    }
    for (size_t i = 0; i < t->cgroup.n_dirs; i++) {
        add(a, "--cgroup");
        add(a, t->cgroup.dirs[i]);
    }
    if (t->prep->runc) {
        const char *launch[24];
        agent_runc_launch_args(t->prep->runc, t->dir, launch);
        for (size_t k = 0; launch[k]; k++)
            add(a, launch[k]);
        add(a, NULL);
        return;
    }
    add(a, "--");
    size_t i;
    json_t *e;
    json_array_foreach(command, i, e) add(a, json_string_value(e));
    json_array_foreach(args, i, e) add(a, json_string_value(e));
    add(a, NULL);
}

static char **build_env(const struct agent_task *t)
{
    const json_t *env = json_object_get(t->spec, "env");
    size_t n = json_object_size(env), k = 0;
    char **out = xcalloc(n + 8, sizeof(*out));
    int has_path = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)env, key, v)
    {
        has_path |= strcmp(key, "PATH") == 0;
        if (asprintf(&out[k++], "%s=%s", key, json_string_value(v)) < 0)
            abort();
    }
    if (!has_path)
        out[k++] = xstrdup(DEFAULT_PATH);
    agent_process_shoal_env(t, out + k);
    return out;
}

void agent_process_shoal_env(const struct agent_task *t, char **out)
{
    json_int_t slot = json_integer_value(json_object_get(t->assignment, "slot"));
    const char *node = json_string_value(json_object_get(t->assignment, "node"));
    if (asprintf(&out[0], "SHOAL_TASK_ID=%s", t->id) < 0 ||
        asprintf(&out[1], "SHOAL_SERVICE=%s", t->service) < 0 ||
        asprintf(&out[2], "SHOAL_TASK_SLOT=%lld", (long long)slot) < 0 ||
        asprintf(&out[3], "SHOAL_NODE_ID=%s", node ? node : "") < 0)
        abort();
}

static void free_env(char **env)
{
    for (size_t i = 0; env && env[i]; i++)
        free(env[i]);
    free(env);
}

void agent_process_ctx_init(const struct agent_task *t, struct agent_process_ctx *c)
{
    memset(c, 0, sizeof(*c));
    c->env = build_env(t);
    const char *user = json_string_value(json_object_get(t->spec, "user"));
    const char *workdir = json_string_value(json_object_get(t->spec, "workdir"));
    c->has_user = user && user[0];
    common_strlcpy(c->user, c->has_user ? user : "", sizeof(c->user));
    c->own_workdir = !workdir || !workdir[0];
    if (c->own_workdir)
        snprintf(c->workdir, sizeof(c->workdir), "%s/work", t->dir);
    else
        common_strlcpy(c->workdir, workdir, sizeof(c->workdir));
}

int agent_process_ctx_resolve(struct agent_process_ctx *c, char *errmsg)
{
    if (!c->has_user)
        return 0;
    return resolve_user(c->user, &c->uid, &c->gid, c->groups, &c->n_groups, errmsg);
}

void agent_process_ctx_free(struct agent_process_ctx *c)
{
    free_env(c->env);
    c->env = NULL;
}

static int limits_of(const json_t *spec, struct agent_cgroup_limits *lim)
{
    const json_t *l = json_object_get(json_object_get(spec, "resources"), "limits");
    lim->memory = json_integer_value(json_object_get(l, "memory"));
    lim->cpu = json_number_value(json_object_get(l, "cpu"));
    lim->pids = json_integer_value(json_object_get(l, "pids"));
    return 0;
}

/* Writes the assignment into DIR/task.json (temp file, rename), so that a
 * restarted shoald knows what runs there. */
static int save_assignment(const char *dir, const char *text, char *errmsg)
{
    char path[4300], tmp[4310];
    snprintf(path, sizeof(path), "%s/task.json", dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ssize_t len = (ssize_t)strlen(text);
    if (fd < 0 || write(fd, text, (size_t)len) != len || rename(tmp, path) != 0) {
        snprintf(errmsg, 256, "%s: %s", path, strerror(errno));
        return -EIO;
    }
    return 0;
}

static int spawn_monitor(struct agent_task *t, char **argv, char **env, char *errmsg)
{
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE}, {.flags = UV_IGNORE}, {.flags = UV_IGNORE}};
    uv_process_options_t o = {.exit_cb = proc_exited,
                              .file = argv[0],
                              .args = argv,
                              .env = env,
                              .flags = UV_PROCESS_DETACHED,
                              .stdio_count = 3,
                              .stdio = stdio};
    t->proc.data = t;
    int rv = uv_spawn(agent_supervisor_loop(t->sup), &t->proc, &o);
    if (rv != 0) {
        /* uv_spawn leaves the handle to be closed even when it fails. */
        uv_close((uv_handle_t *)&t->proc, agent_task_handle_closed);
        t->open_handles++;
        snprintf(errmsg, 256, "spawn %s: %s", argv[0], uv_strerror(rv));
        return rv;
    }
    t->proc_active = 1;
    t->open_handles++;
    return watch_monitor(t, t->proc.pid);
}

/* Off the loop (the thread pool): the files, the cgroups and the user of a
 * task. File creation is the slow part of a start on a busy ext4 (inode
 * allocation scans), so a hundred starts run side by side, not one by one
 * on the loop. */
static void prepare_work(uv_work_t *w)
{
    struct agent_prep *p = container_of(w, struct agent_prep, work);
    const char *dir = p->t->dir; /* fixed for the task's life */
    char state[4300];
    snprintf(state, sizeof(state), "%s/state", dir);
    if ((mkdir(dir, 0711) != 0 && errno != EEXIST) || chmod(dir, 0711) != 0) {
        p->rv = -errno;
        snprintf(p->errmsg, 256, "%s: %s", dir, strerror(errno));
        return;
    }
    unlink(state);
    p->rv = save_assignment(dir, p->assignment, p->errmsg);
    if (p->runc) {
        if (p->rv == 0)
            p->rv = agent_runc_prepare(p->runc, dir, &p->cgroup, p->errmsg);
        return;
    }
    if (p->rv == 0)
        p->rv = agent_process_ctx_resolve(&p->ctx, p->errmsg);
    if (p->rv == 0 && p->ctx.own_workdir) {
        /* A private scratch dir, the task's user's own; the task dir above
         * it (logs, state) stays root's, traversable only. */
        if ((mkdir(p->ctx.workdir, 0700) != 0 && errno != EEXIST) ||
            chown(p->ctx.workdir, p->ctx.uid, p->ctx.gid) != 0) {
            p->rv = -errno;
            snprintf(p->errmsg, 256, "%s: %s", p->ctx.workdir, strerror(errno));
        }
    }
    if (p->rv == 0)
        p->rv = agent_cgroup_create(p->t->id, &p->lim, &p->cgroup, p->errmsg);
}

static void prep_free(struct agent_prep *p)
{
    agent_runc_prep_free(p->runc);
    agent_process_ctx_free(&p->ctx);
    free(p->assignment);
    free(p);
}

static void prepare_done(uv_work_t *w, int status)
{
    struct agent_prep *p = container_of(w, struct agent_prep, work);
    struct agent_task *t = p->t;
    t->prep = NULL;
    if (t->closing) {
        /* shoald is stopping: a container's bundle stays for the next
         * shoald to clean (it finds the task dir without a monitor). */
        agent_cgroup_remove(&p->cgroup);
        prep_free(p);
        agent_task_unref(t);
        return;
    }
    agent_task_unref(t);
    if (status != 0 && p->rv == 0) {
        p->rv = status;
        snprintf(p->errmsg, 256, "prepare: %s", uv_strerror(status));
    }
    t->cgroup = p->cgroup;
    if (p->rv != 0) {
        common_strlcpy(t->exit.error, p->errmsg, sizeof(t->exit.error));
        prep_free(p);
        agent_task_event(t, AGENT_EV_REJECTED);
        return;
    }
    t->prep = p;
    agent_task_event(t, AGENT_EV_PREPARED);
    t->prep = NULL;
    prep_free(p);
}

static int queue_prepare(struct agent_prep *p, char *errmsg)
{
    int rv = uv_queue_work(agent_supervisor_loop(p->t->sup), &p->work, prepare_work, prepare_done);
    if (rv != 0)
        snprintf(errmsg, 256, "prepare: %s", uv_strerror(rv));
    return rv;
}

/* A container's image is there (or could not be had): the bundle next. */
static void image_ready(void *data, const struct agent_image *img, const char *why)
{
    struct agent_prep *p = data;
    struct agent_task *t = p->t;
    if (!t->closing && img) {
        agent_runc_prep_set_image(p->runc, img);
        if (queue_prepare(p, p->errmsg) == 0)
            return; /* the task's reference goes to the work */
    } else if (!t->closing) {
        /* The helper's reason names the image: "REF: manifest ... not found". */
        snprintf(p->errmsg, sizeof(p->errmsg), "image pull: %s",
                 why && why[0] ? why : agent_runc_image_ref(p->runc));
    }
    t->prep = NULL;
    if (!t->closing) {
        common_strlcpy(t->exit.error, p->errmsg, sizeof(t->exit.error));
        agent_task_event(t, AGENT_EV_REJECTED);
    }
    prep_free(p);
    agent_task_unref(t);
}

void agent_process_resume_prepare(struct agent_task *t)
{
    struct agent_prep *p = t->prep;
    agent_images_get(agent_supervisor_images(t->sup), agent_runc_image_ref(p->runc), image_ready,
                     p);
}

int agent_process_prepare(struct agent_task *t, char *errmsg)
{
    const json_t *command = json_object_get(t->spec, "command");
    const json_t *args = json_object_get(t->spec, "args");
    int runc = agent_runc_is(t);
    if (!runc && json_array_size(command) + json_array_size(args) == 0) {
        snprintf(errmsg, 256, "%s", "task.command is empty: the process driver needs a program");
        return -EINVAL;
    }
    struct agent_prep *p = xcalloc(1, sizeof(*p));
    p->t = t;
    p->assignment = json_dumps(t->assignment, JSON_COMPACT);
    agent_process_ctx_init(t, &p->ctx);
    limits_of(t->spec, &p->lim);
    if (runc) {
        /* The user, work dir and limits are the container's (config.json). */
        p->ctx.has_user = 0;
        p->ctx.own_workdir = 0;
        p->runc = agent_runc_prep_new(t);
        t->prep = p;
        t->open_handles++; /* the task lives until the preparation ends */
        if (t->bg_busy)
            t->prep_deferred = 1; /* the last run's clean-up goes first */
        else
            agent_process_resume_prepare(t);
        return 0;
    }
    int rv = queue_prepare(p, errmsg);
    if (rv != 0) {
        prep_free(p);
        return rv;
    }
    t->prep = p;
    t->open_handles++; /* the task lives until the work is done */
    return 0;
}

int agent_process_spawn(struct agent_task *t, char *errmsg)
{
    char monitor[PATH_MAX];
    monitor_path(monitor, sizeof(monitor));
    struct argv_buf a = {0};
    build_argv(t, &t->prep->ctx, monitor, &a);
    int rv = spawn_monitor(t, a.v, t->prep->ctx.env, errmsg);
    argv_free(&a);
    if (rv != 0)
        return rv;
    t->polls = 0;
    if (!t->fsev_active)
        watch_state_file(t);
    uv_timer_start(&t->timer, start_poll, 1, 0);
    return 0;
}

static void stop_overdue(uv_timer_t *h)
{
    struct agent_task *t = h->data;
    LOGW("task %s: its monitor did not stop it in time: killing both", t->id);
    if (t->pidfd >= 0)
        pidfd_signal(t->pidfd, SIGKILL);
    agent_cgroup_remove(&t->cgroup);
}

void agent_process_stop(struct agent_task *t)
{
    uv_timer_stop(&t->timer);
    if (t->pidfd < 0)
        return;
    pidfd_signal(t->pidfd, SIGTERM);
    int64_t grace = 10000;
    const char *g = json_string_value(json_object_get(t->spec, "stop_grace_period"));
    if (g)
        common_parse_duration(g, &grace);
    uv_timer_start(&t->timer, stop_overdue, (uint64_t)(grace + STOP_EXTRA_MS), 0);
}

/* Whether pid is the monitor of this task (not a recycled pid). */
static int is_our_monitor(const struct agent_task *t, pid_t pid)
{
    char path[64], cmd[8192];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, cmd, sizeof(cmd) - 1) : -1;
    if (n <= 0)
        return 0;
    for (ssize_t i = 0; i < n; i++)
        if (cmd[i] == '\0')
            cmd[i] = ' ';
    cmd[n] = '\0';
    return strstr(cmd, t->dir) != NULL;
}

int agent_process_adopt(struct agent_task *t)
{
    struct mon_state ms;
    if (read_state(t->dir, &ms) != 0 || ms.monitor_pid <= 0)
        return -ENOENT;
    agent_cgroup_find(t->id, &t->cgroup);
    t->pid = ms.pid;
    t->desired_running = 1;
    if (!ms.has_exit && is_our_monitor(t, ms.monitor_pid) &&
        watch_monitor(t, ms.monitor_pid) == 0) {
        t->started_ms = common_now_ms();
        t->state = ms.pid > 0 ? AGENT_T_RUNNING : AGENT_T_STARTING;
        if (!ms.pid)
            uv_timer_start(&t->timer, start_poll, 1, 0);
        return 0;
    }
    /* It ended while shoald was away: the caller feeds the exit. */
    t->state = AGENT_T_RUNNING;
    t->exit = ms.exit;
    if (!ms.has_exit)
        t->exit.code = -1;
    return 1;
}

void agent_process_cleanup(struct agent_task *t)
{
    if (agent_runc_is(t)) {
        agent_runc_cleanup(t);
        memset(&t->cgroup, 0, sizeof(t->cgroup));
        return;
    }
    agent_cgroup_remove(&t->cgroup);
    memset(&t->cgroup, 0, sizeof(t->cgroup));
}
