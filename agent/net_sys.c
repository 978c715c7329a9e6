/* The net module's contact with the system: `ip` and `nft` run as children
 * (optionally inside a netns), netns files, sysctls.
 *
 * Why exec rather than netlink: nft's own language gives one atomic
 * transaction per script (the table, its chains and map, or a task's map
 * elements) that is readable in logs and in `nft list table`, where raw
 * nf_tables netlink means hand-encoding expressions (or libnftnl); `ip`
 * handles veth peers created straight into a netns. The price is ~1-5 ms
 * per exec on calls that run on the thread pool, a few per task start. */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/net_internal.h"
#include "common/util.h"

#define RUN_TIMEOUT_MS 10000
#define MAX_ARGS       16

static const char *const bin_dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};

static int find_prog(const char *name, char *out, size_t size)
{
    for (size_t i = 0; i < ARRAY_SIZE(bin_dirs); i++) {
        snprintf(out, size, "%s/%s", bin_dirs[i], name);
        if (access(out, X_OK) == 0)
            return 0;
    }
    return -ENOENT;
}

/* The forked child: only async-signal-safe calls from here on (the parent
 * may have threads). */
static void child_exec(const char *path, char *const argv[], int in_fd, int out_fd, int ns_fd)
{
    static char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", NULL};
    if (ns_fd >= 0 && setns(ns_fd, CLONE_NEWNET) != 0)
        _exit(126);
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
        _exit(126);
    execve(path, argv, envp);
    _exit(127);
}

/* Reads the child's output until EOF or the deadline into buf. Returns 0,
 * or -ETIMEDOUT. */
static int collect(int fd, char *buf, size_t size, uint64_t deadline)
{
    size_t len = 0;
    for (;;) {
        uint64_t now = common_now_ms();
        if (now >= deadline)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)(deadline - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r == 0 ? -ETIMEDOUT : -errno;
        char scratch[512];
        ssize_t n = read(fd, scratch, sizeof(scratch));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0;
        size_t keep = (size_t)n < size - 1 - len ? (size_t)n : size - 1 - len;
        memcpy(buf + len, scratch, keep);
        len += keep;
        buf[len] = '\0';
    }
}

/* "PROG: first non-empty line of out" into errmsg. */
static void first_line(const char *prog, const char *out, int status, char *errmsg)
{
    while (*out == '\n')
        out++;
    size_t n = strcspn(out, "\n");
    if (n == 0)
        snprintf(errmsg, 256, "%s: exit status %d", prog, status);
    else
        snprintf(errmsg, 256, "%s: %.*s", prog, (int)n, out);
}

static int spawn(const char *path, char *const argv[], int ns_fd, int *in_w, int *out_r, pid_t *pid)
{
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0)
        return -errno;
    if (pipe2(out, O_CLOEXEC) != 0) {
        int e = errno;
        close(in[0]);
        close(in[1]);
        return -e;
    }
    *pid = fork();
    if (*pid == 0)
        child_exec(path, argv, in[0], out[1], ns_fd);
    int e = *pid < 0 ? errno : 0;
    close(in[0]);
    close(out[1]);
    if (e) {
        close(in[1]);
        close(out[0]);
        return -e;
    }
    *in_w = in[1];
    *out_r = out[0];
    return 0;
}

int agent_net__run(const char *const argv[], const char *input, const char *netns_path,
                   char *errmsg)
{
    char path[64];
    if (find_prog(argv[0], path, sizeof(path)) != 0) {
        snprintf(errmsg, 256, "%s: not found (install %s)", argv[0],
                 strcmp(argv[0], "ip") == 0 ? "iproute2" : argv[0]);
        return -ENOENT;
    }
    _cleanup_close_ int ns_fd = -1;
    if (netns_path && (ns_fd = open(netns_path, O_RDONLY | O_CLOEXEC)) < 0) {
        int e = errno;
        snprintf(errmsg, 256, "open netns %s: %s", netns_path, strerror(e));
        return -e;
    }
    char *args[MAX_ARGS + 1];
    size_t n = 0;
    for (; argv[n] && n < MAX_ARGS; n++)
        args[n] = (char *)argv[n];
    args[n] = NULL;
    _cleanup_close_ int in_w = -1;
    _cleanup_close_ int out_r = -1;
    pid_t pid = -1;
    int rv = spawn(path, args, ns_fd, &in_w, &out_r, &pid);
    if (rv != 0) {
        snprintf(errmsg, 256, "%s: fork: %s", argv[0], strerror(-rv));
        return rv;
    }
    /* Scripts are far below the pipe's 64 KiB: this write never waits on
     * the child reading. */
    size_t len = input ? strlen(input) : 0;
    if (len && write(in_w, input, len) != (ssize_t)len)
        rv = -EIO;
    close(in_w);
    in_w = -1;
    char out[1024] = "";
    int crv = collect(out_r, out, sizeof(out), common_now_ms() + RUN_TIMEOUT_MS);
    if (crv == -ETIMEDOUT)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (crv == -ETIMEDOUT) {
        snprintf(errmsg, 256, "%s: no answer within %d ms", argv[0], RUN_TIMEOUT_MS);
        return crv;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && rv == 0)
        return 0;
    first_line(argv[0], out, WIFEXITED(status) ? WEXITSTATUS(status) : -1, errmsg);
    return strstr(out, "File exists") ? -EEXIST : -EIO;
}

int agent_net__netns_alive(const char *path)
{
    struct statfs st;
    return statfs(path, &st) == 0 && (unsigned long)st.f_type == (unsigned long)NSFS_MAGIC;
}

int agent_net__netns_create(const char *path, char *errmsg)
{
    int fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0444);
    if (fd < 0) {
        int e = errno;
        snprintf(errmsg, 256, "create %s: %s", path, strerror(e));
        return -e;
    }
    close(fd);
    pid_t pid = fork();
    if (pid == 0) {
        if (unshare(CLONE_NEWNET) != 0)
            _exit(errno);
        if (mount("/proc/self/ns/net", path, "none", MS_BIND, NULL) != 0)
            _exit(errno);
        _exit(0);
    }
    if (pid < 0) {
        int e = errno;
        snprintf(errmsg, 256, "netns %s: fork: %s", path, strerror(e));
        unlink(path);
        return -e;
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    int e = WIFEXITED(status) ? WEXITSTATUS(status) : EIO;
    snprintf(errmsg, 256, "netns %s: %s", path, strerror(e));
    unlink(path);
    return -e;
}

int agent_net__netns_remove(const char *path, char *errmsg)
{
    if (umount2(path, MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
        int e = errno;
        snprintf(errmsg, 256, "unmount %s: %s", path, strerror(e));
        return -e;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        int e = errno;
        snprintf(errmsg, 256, "remove %s: %s", path, strerror(e));
        return -e;
    }
    return 0;
}

int agent_net__sysctl(const char *path, const char *value, char *errmsg)
{
    char full[256];
    snprintf(full, sizeof(full), "/proc/sys/%s", path);
    _cleanup_close_ int fd = open(full, O_WRONLY | O_CLOEXEC);
    size_t len = strlen(value);
    if (fd < 0 || write(fd, value, len) != (ssize_t)len) {
        int e = errno;
        snprintf(errmsg, 256, "sysctl %s=%s: %s", path, value, strerror(e));
        return -e;
    }
    return 0;
}
