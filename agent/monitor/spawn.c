/* fork + execvpe with an error pipe (the way conmon and crun report a
 * failed exec): the child writes "what: strerror" and exits 127 or 126;
 * end of file with nothing read means the exec happened. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/monitor/cgroup.h"
#include "agent/monitor/spawn.h"

#define EXIT_NOT_FOUND 127
#define EXIT_CANNOT    126

static void __attribute__((noreturn, format(printf, 3, 4)))
child_fail(int errfd, int code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(msg) - 1)
        n = (int)sizeof(msg) - 1;
    if (n > 0) {
        ssize_t w = write(errfd, msg, (size_t)n);
        (void)w; /* on failure the exit code is all the parent learns */
    }
    _exit(code);
}

/* Back to the defaults a program expects: every disposition SIG_DFL (the
 * monitor ignores SIGPIPE and SIGHUP, which exec would keep), no mask. */
static void reset_signals(void)
{
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static void set_ids(const struct mon_options *o, int errfd)
{
    if (!o->has_ids)
        return;
    if (setgroups(o->n_groups, o->groups) < 0)
        child_fail(errfd, EXIT_CANNOT, "setgroups: %s", strerror(errno));
    if (setgid(o->gid) < 0)
        child_fail(errfd, EXIT_CANNOT, "setgid %u: %s", (unsigned)o->gid, strerror(errno));
    if (setuid(o->uid) < 0)
        child_fail(errfd, EXIT_CANNOT, "setuid %u: %s", (unsigned)o->uid, strerror(errno));
}

static void __attribute__((noreturn))
run_child(const struct mon_options *o, const struct mon_spawn_fds *fds, int errfd)
{
    if (setsid() < 0)
        child_fail(errfd, EXIT_CANNOT, "setsid: %s", strerror(errno));
    for (size_t i = 0; i < o->n_cgroups && o->pid_file == NULL; i++) {
        int r = mon_cgroup_join(o->cgroups[i]);
        if (r < 0)
            child_fail(errfd, EXIT_CANNOT, "cgroup \"%s\": %s", o->cgroups[i], strerror(-r));
    }
    set_ids(o, errfd);
    if (o->cwd != NULL && chdir(o->cwd) < 0)
        child_fail(errfd, EXIT_CANNOT, "chdir \"%s\": %s", o->cwd, strerror(errno));
    if (dup2(fds->in, 0) < 0 || dup2(fds->out, 1) < 0 || dup2(fds->err, 2) < 0)
        child_fail(errfd, EXIT_CANNOT, "dup2: %s", strerror(errno));
    /* Whatever the monitor inherited without O_CLOEXEC stops here too (a
     * kernel before 5.11 refuses the flag: then they pass, as before). */
    close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    reset_signals();
    execvpe(o->argv[0], o->argv, environ);
    int e = errno;
    child_fail(errfd, e == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT, "exec \"%s\": %s", o->argv[0],
               strerror(e));
}

/* Reads the child's message (at most 255 bytes) until end of file; returns
 * its length. */
static size_t read_failure(int fd, char *errmsg)
{
    size_t len = 0;
    while (len < 255) {
        ssize_t n = read(fd, errmsg + len, 255 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    errmsg[len] = '\0';
    return len;
}

int mon_spawn(const struct mon_options *o, const struct mon_spawn_fds *fds, pid_t *pid,
              int *exit_code, char *errmsg)
{
    int errpipe[2];
    *exit_code = EXIT_CANNOT;
    if (pipe2(errpipe, O_CLOEXEC) < 0) {
        int r = -errno;
        snprintf(errmsg, 256, "pipe: %s", strerror(-r));
        return r;
    }
    pid_t child = fork();
    if (child < 0) {
        int r = -errno;
        snprintf(errmsg, 256, "fork: %s", strerror(-r));
        close(errpipe[0]);
        close(errpipe[1]);
        return r;
    }
    if (child == 0) {
        close(errpipe[0]);
        run_child(o, fds, errpipe[1]);
    }
    close(errpipe[1]);
    size_t len = read_failure(errpipe[0], errmsg);
    close(errpipe[0]);
    if (len == 0) {
        *pid = child;
        return 0;
    }
    int status = 0, r;
    while ((r = waitpid(child, &status, 0)) < 0 && errno == EINTR)
        ;
    if (r == child && WIFEXITED(status) && WEXITSTATUS(status) == EXIT_NOT_FOUND)
        *exit_code = EXIT_NOT_FOUND;
    return -ECHILD;
}
