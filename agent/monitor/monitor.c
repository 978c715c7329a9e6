/* shoal-monitor: one process per task (conmon's design). It starts the
 * task and stays its parent, so the exit status is kept even while shoald
 * is down; it writes the task's output into rotated log files, stops the
 * task on SIGTERM/SIGINT, and records everything in DIR/state. Plain libc,
 * one poll loop, no allocation after start-up. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/monitor/cgroup.h"
#include "agent/monitor/launch.h"
#include "agent/monitor/options.h"
#include "agent/monitor/spawn.h"
#include "agent/monitor/state.h"
#include "agent/monitor/tasklog.h"

#define EXIT_USAGE 2
#define EXIT_SETUP 1

static const char usage[] =
    "usage: shoal-monitor --dir DIR [--uid N --gid N] [--groups G1,G2,...] [--cwd PATH]\n"
    "                     [--stop-signal N] [--grace-ms N] [--log-max-size BYTES]\n"
    "                     [--log-max-files N] [--cgroup CGDIR]...\n"
    "                     [--pid-file FILE [--launcher-log FILE]] -- PROGRAM [ARG...]\n";

/* The task's lifecycle: state x event -> action (s6-supervise style). */
enum phase { PHASE_RUNNING, PHASE_STOPPING, PHASE_KILLED, PHASE_DONE, PHASE_COUNT };
enum event { EV_STOP, EV_GRACE_OVER, EV_TASK_EXITED, EV_COUNT };

struct monitor {
    struct mon_options opt;
    int dirfd;   /* DIR (O_PATH) */
    int devnull; /* the task's stdin */
    int sigfd;   /* SIGCHLD, SIGTERM, SIGINT */
    int timerfd; /* the stop grace period */
    enum phase phase;
    bool reaped;    /* status holds the task's wait status */
    pid_t launcher; /* launcher mode: the launcher while it runs, else 0 */
    int status;
    struct mon_state state;
    struct mon_tasklog log;
    struct mon_pipe out;
    struct mon_pipe err;
};

typedef void (*action_cb)(struct monitor *m);

/* The monitor's own diagnostics: on stderr until start-up is done, then in
 * DIR/monitor.log (fd 2). */
static void __attribute__((format(printf, 1, 2))) diag(const char *fmt, ...)
{
    char line[512];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    mon_tasklog_stamp(line, &ts);
    size_t len = strlen(line);
    len += snprintf(line + len, sizeof(line) - len, " shoal-monitor[%d]: ", (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + len, sizeof(line) - len - 1, fmt, ap);
    va_end(ap);
    len = strlen(line);
    line[len++] = '\n';
    ssize_t w = write(2, line, len);
    (void)w; /* nowhere else to report it */
}

static void save_state(struct monitor *m)
{
    char errmsg[256];
    if (mon_state_write(m->dirfd, &m->state, errmsg) < 0)
        diag("state file: %s", errmsg);
}

static void report_log_error(struct monitor *m)
{
    if (m->log.error_new)
        diag("task log: %s", m->log.errmsg);
    m->log.error_new = false;
}

/* Signals the task's process group, or the task alone when the group is
 * gone. */
static void kill_task(const struct monitor *m, int sig)
{
    /* Never kill(0) or kill(-1). A launcher is not signalled: a stop asked
     * for during a launch is sent to the task once it runs. */
    pid_t pid = m->state.pid;
    if (pid <= 0)
        return;
    if (kill(-pid, sig) < 0)
        kill(pid, sig);
}

static void send_stop(struct monitor *m)
{
    /* A zero grace still goes through the timer, armed for 1 ns. */
    struct itimerspec its = {
        .it_value.tv_sec = (time_t)(m->opt.grace_ms / 1000),
        .it_value.tv_nsec = (long)(m->opt.grace_ms % 1000) * 1000000 + (m->opt.grace_ms == 0),
    };
    m->state.stopped = true;
    diag("stop request: signal %d to task %d, SIGKILL in %llu ms", m->opt.stop_signal,
         (int)m->state.pid, (unsigned long long)m->opt.grace_ms);
    kill_task(m, m->opt.stop_signal);
    if (timerfd_settime(m->timerfd, 0, &its, NULL) < 0)
        diag("timerfd_settime: %s", strerror(errno));
}

static void kill_all(struct monitor *m)
{
    diag("grace period over: SIGKILL to task %d and its cgroups", (int)m->state.pid);
    kill_task(m, SIGKILL);
    if (m->launcher > 0)
        kill(m->launcher, SIGKILL);
    for (size_t i = 0; i < m->opt.n_cgroups; i++) {
        int r = mon_cgroup_kill(m->opt.cgroups[i], SIGKILL, getpid());
        if (r < 0)
            diag("cgroup \"%s\": %s", m->opt.cgroups[i], strerror(-r));
    }
}

/* The task has exited (and is a zombie unless m->reaped): log what its
 * pipes still hold, kill what is left of its process group while the
 * zombie keeps the group id from being reused, reap it, record the end. */
static void finish(struct monitor *m)
{
    mon_pipe_drain(&m->out, &m->log);
    mon_pipe_drain(&m->err, &m->log);
    report_log_error(m);
    if (m->state.pid > 0)
        kill(-m->state.pid, SIGKILL);
    while (!m->reaped && waitpid(m->state.pid, &m->status, 0) < 0 && errno == EINTR)
        ;
    struct mon_state *s = &m->state;
    s->done = true;
    s->exited_ms = mon_state_now_ms();
    s->signal = WIFSIGNALED(m->status) ? WTERMSIG(m->status) : 0;
    s->exit_code = s->signal != 0 ? 128 + s->signal : WEXITSTATUS(m->status);
    for (size_t i = 0; i < m->opt.n_cgroups; i++)
        s->oom |= mon_cgroup_oom(m->opt.cgroups[i]);
    save_state(m);
    diag("task %d ended: exit_code=%d signal=%d oom=%d stopped=%d", (int)s->pid, s->exit_code,
         s->signal, s->oom, s->stopped);
}

static const struct {
    action_cb action; /* NULL: nothing to do */
    enum phase next;
} fsm[PHASE_COUNT][EV_COUNT] = {
    [PHASE_RUNNING] =
        {
            [EV_STOP] = {send_stop, PHASE_STOPPING},
            [EV_GRACE_OVER] = {NULL, PHASE_RUNNING},
            [EV_TASK_EXITED] = {finish, PHASE_DONE},
        },
    [PHASE_STOPPING] =
        {
            [EV_STOP] = {NULL, PHASE_STOPPING},
            [EV_GRACE_OVER] = {kill_all, PHASE_KILLED},
            [EV_TASK_EXITED] = {finish, PHASE_DONE},
        },
    [PHASE_KILLED] =
        {
            [EV_STOP] = {NULL, PHASE_KILLED},
            [EV_GRACE_OVER] = {NULL, PHASE_KILLED},
            [EV_TASK_EXITED] = {finish, PHASE_DONE},
        },
    [PHASE_DONE] =
        {
            [EV_STOP] = {NULL, PHASE_DONE},
            [EV_GRACE_OVER] = {NULL, PHASE_DONE},
            [EV_TASK_EXITED] = {NULL, PHASE_DONE},
        },
};

static void dispatch(struct monitor *m, enum event ev)
{
    action_cb action = fsm[m->phase][ev].action;
    m->phase = fsm[m->phase][ev].next;
    if (action != NULL)
        action(m);
}

static void start_failed(struct monitor *m, int exit_code, const char *errmsg);

/* Launcher mode: the launcher ended. Exit 0 and a pid file: the task runs
 * (re-parented here); anything else: the start failed, with the launcher's
 * own last error as the reason. A stop asked for meanwhile is sent now. */
static void launched(struct monitor *m, const siginfo_t *si)
{
    m->launcher = 0;
    pid_t pid = -EINVAL;
    if (si->si_code == CLD_EXITED && si->si_status == 0)
        pid = mon_launch_read_pid(m->opt.pid_file);
    if (pid > 0) {
        m->state.pid = pid;
        m->state.started_ms = mon_state_now_ms();
        save_state(m);
        diag("task %d started by launcher \"%s\"", (int)pid, m->opt.argv[0]);
        if (m->phase != PHASE_RUNNING)
            kill_task(m, m->opt.stop_signal);
        return;
    }
    char why[256] = "", errmsg[256];
    if (m->opt.launcher_log)
        mon_launch_last_error(m->opt.launcher_log, why, sizeof(why));
    if (why[0])
        snprintf(errmsg, sizeof(errmsg), "%s: %s", m->opt.argv[0], why);
    else if (si->si_code == CLD_EXITED)
        snprintf(errmsg, sizeof(errmsg), "%s exited with status %d%s", m->opt.argv[0],
                 si->si_status, si->si_status == 0 ? " without a pid file" : "");
    else
        snprintf(errmsg, sizeof(errmsg), "%s killed by signal %d", m->opt.argv[0], si->si_status);
    start_failed(m, 126, errmsg);
}

/* Looks at the task first without reaping it; then reaps whatever else
 * exited (as a subreaper the monitor inherits the task's orphans). While a
 * launcher runs only the launcher is reaped: the task it starts may end
 * before the pid file is read, and must stay a zombie until then. */
static void on_sigchld(struct monitor *m)
{
    siginfo_t si = {0};
    if (m->launcher > 0) {
        if (waitid(P_PID, (id_t)m->launcher, &si, WEXITED | WNOHANG) != 0 ||
            si.si_pid != m->launcher)
            return;
        launched(m, &si);
        if (m->phase == PHASE_DONE || m->state.pid <= 0)
            return;
        memset(&si, 0, sizeof(si));
    }
    if (waitid(P_PID, (id_t)m->state.pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        si.si_pid == m->state.pid) {
        dispatch(m, EV_TASK_EXITED);
        return;
    }
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == m->state.pid) {
            m->status = status;
            m->reaped = true;
            dispatch(m, EV_TASK_EXITED);
            return;
        }
    }
}

static void on_signals(struct monitor *m)
{
    struct signalfd_siginfo si;
    bool child = false;
    while (read(m->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGCHLD) {
            child = true;
        } else {
            diag("signal %u from pid %u", si.ssi_signo, si.ssi_pid);
            dispatch(m, EV_STOP);
        }
    }
    if (child)
        on_sigchld(m);
}

static void on_timer(struct monitor *m)
{
    uint64_t expirations;
    if (read(m->timerfd, &expirations, sizeof(expirations)) == (ssize_t)sizeof(expirations))
        dispatch(m, EV_GRACE_OVER);
}

static void run_loop(struct monitor *m)
{
    while (m->phase != PHASE_DONE) {
        struct pollfd pfd[4] = {
            {.fd = m->out.fd, .events = POLLIN},
            {.fd = m->err.fd, .events = POLLIN},
            {.fd = m->timerfd, .events = POLLIN},
            {.fd = m->sigfd, .events = POLLIN},
        };
        if (poll(pfd, 4, -1) < 0) {
            if (errno != EINTR) {
                diag("poll: %s", strerror(errno));
                nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
            }
            continue;
        }
        if (pfd[0].revents != 0)
            mon_pipe_read(&m->out, &m->log);
        if (pfd[1].revents != 0)
            mon_pipe_read(&m->err, &m->log);
        report_log_error(m);
        if (pfd[2].revents != 0)
            on_timer(m);
        if (pfd[3].revents != 0)
            on_signals(m);
    }
}

/* Makes sure fds 0, 1 and 2 are open, so that no file opened later takes
 * one of them and then gets replaced by dup2. */
static void keep_std_fds(void)
{
    for (;;) {
        int fd = open("/dev/null", O_RDWR);
        if (fd < 0 || fd > 2) {
            if (fd > 2)
                close(fd);
            return;
        }
    }
}

/* Opens DIR, monitor.log and /dev/null. Returns 0 or an exit code. */
static int open_files(struct monitor *m, int *monlog)
{
    m->dirfd = open(m->opt.dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (m->dirfd < 0) {
        fprintf(stderr, "shoal-monitor: --dir \"%s\": %s\n", m->opt.dir, strerror(errno));
        return EXIT_USAGE;
    }
    *monlog = openat(m->dirfd, "monitor.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (*monlog < 0) {
        fprintf(stderr, "shoal-monitor: open \"%s/monitor.log\": %s\n", m->opt.dir,
                strerror(errno));
        return EXIT_SETUP;
    }
    m->devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (m->devnull < 0) {
        fprintf(stderr, "shoal-monitor: open \"/dev/null\": %s\n", strerror(errno));
        return EXIT_SETUP;
    }
    return 0;
}

/* Session, subreaper, signals (blocked by main), the signalfd and the
 * timer. Returns 0 or an exit code. */
static int set_up_process(struct monitor *m, const sigset_t *mask)
{
    if (getsid(0) != getpid() && setsid() < 0)
        diag("setsid: %s (staying in the caller's session)", strerror(errno));
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
        diag("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    m->sigfd = signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK);
    m->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (m->sigfd < 0 || m->timerfd < 0) {
        diag("%s: %s", m->sigfd < 0 ? "signalfd" : "timerfd_create", strerror(errno));
        return EXIT_SETUP;
    }
    m->state.monitor_pid = getpid();
    char errmsg[256];
    if (mon_state_write(m->dirfd, &m->state, errmsg) < 0) {
        diag("state file in \"%s\": %s", m->opt.dir, errmsg);
        return EXIT_SETUP;
    }
    return 0;
}

/* Moves the monitor's stdin and stdout to /dev/null and stderr to
 * monitor.log (whose fd is closed). */
static void redirect_stdio(struct monitor *m, int monlog)
{
    if (dup2(m->devnull, 0) < 0 || dup2(m->devnull, 1) < 0 || dup2(monlog, 2) < 0)
        diag("dup2: %s", strerror(errno));
    close(monlog);
}

static int open_pipe(struct mon_pipe *p, const char *name, int *write_end)
{
    int fds[2];
    p->name = name;
    p->fd = -1;
    p->len = 0;
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    p->fd = fds[0];
    *write_end = fds[1];
    return 0;
}

/* A start that failed is the end: the state says why, the monitor exits. */
static void start_failed(struct monitor *m, int exit_code, const char *errmsg)
{
    m->phase = PHASE_DONE;
    m->state.done = true;
    m->state.exited_ms = mon_state_now_ms();
    m->state.exit_code = exit_code;
    snprintf(m->state.error, sizeof(m->state.error), "%s", errmsg);
    save_state(m);
    diag("task did not start: %s", errmsg);
}

static void start_task(struct monitor *m)
{
    struct mon_spawn_fds fds = {.in = m->devnull, .out = -1, .err = -1};
    char errmsg[256];
    int exit_code = 126;
    int r = open_pipe(&m->out, "stdout", &fds.out);
    if (r == 0)
        r = open_pipe(&m->err, "stderr", &fds.err);
    if (r < 0)
        snprintf(errmsg, sizeof(errmsg), "pipe: %s", strerror(-r));
    int64_t now = mon_state_now_ms();
    if (r == 0)
        r = mon_spawn(&m->opt, &fds, &m->state.pid, &exit_code, errmsg);
    if (fds.out >= 0)
        close(fds.out);
    if (fds.err >= 0)
        close(fds.err);
    if (r < 0) {
        m->state.pid = 0;
        start_failed(m, exit_code, errmsg);
        return;
    }
    if (m->opt.pid_file) {
        m->launcher = m->state.pid;
        m->state.pid = 0;
        diag("launcher %d started: \"%s\"", (int)m->launcher, m->opt.argv[0]);
        return;
    }
    m->state.started_ms = now;
    save_state(m);
    diag("task %d started: \"%s\"", (int)m->state.pid, m->opt.argv[0]);
}

static void close_all(struct monitor *m)
{
    mon_tasklog_close(&m->log);
    int *fds[] = {&m->dirfd, &m->devnull, &m->sigfd, &m->timerfd, &m->out.fd, &m->err.fd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (*fds[i] >= 0)
            close(*fds[i]);
        *fds[i] = -1;
    }
    mon_options_free(&m->opt);
}

int main(int argc, char **argv)
{
    struct monitor m = {.dirfd = -1, .devnull = -1, .sigfd = -1, .timerfd = -1};
    m.out.fd = m.err.fd = -1;
    m.log.fd = -1;
    char errmsg[256];
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    keep_std_fds();
    if (mon_options_parse(&m.opt, argc, argv, errmsg) < 0) {
        fprintf(stderr, "shoal-monitor: %s\n%s", errmsg, usage);
        return EXIT_USAGE;
    }
    int monlog = -1;
    int code = open_files(&m, &monlog);
    if (code == 0)
        code = set_up_process(&m, &mask);
    if (code != 0) {
        if (monlog >= 0)
            close(monlog);
        close_all(&m);
        return code;
    }
    redirect_stdio(&m, monlog);
    mon_tasklog_open(&m.log, m.dirfd, m.opt.log_max_size, m.opt.log_max_files);
    report_log_error(&m);
    start_task(&m);
    run_loop(&m);
    close_all(&m);
    return 0;
}
