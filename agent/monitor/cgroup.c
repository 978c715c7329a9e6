/* cgroup files, read and written with plain open/read/write. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/monitor/cgroup.h"

/* Opens dir/file; returns the fd or a negative errno. */
static int open_in(const char *dir, const char *file, int flags)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >= sizeof(path))
        return -ENAMETOOLONG;
    int fd = open(path, flags | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int mon_cgroup_join(const char *dir)
{
    int fd = open_in(dir, "cgroup.procs", O_WRONLY);
    if (fd < 0)
        return fd;
    int r = 0;
    if (write(fd, "0", 1) != 1)
        r = -errno;
    close(fd);
    return r;
}

typedef void (*line_cb)(const char *line, void *data);

/* Calls cb(line, data) for each line of dir/file (lines longer than 255
 * bytes are cut). Returns 0 or a negative errno. */
static int each_line(const char *dir, const char *file, line_cb cb, void *data)
{
    int fd = open_in(dir, file, O_RDONLY);
    if (fd < 0)
        return fd;
    char buf[4096], line[256];
    size_t len = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n') {
                line[len] = '\0';
                cb(line, data);
                len = 0;
            } else if (len < sizeof(line) - 1) {
                line[len++] = buf[i];
            }
        }
    }
    int r = n < 0 ? -errno : 0;
    if (len > 0) {
        line[len] = '\0';
        cb(line, data);
    }
    close(fd);
    return r;
}

struct kill_ctx {
    int sig;
    pid_t skip;
};

static void kill_line(const char *line, void *data)
{
    const struct kill_ctx *k = data;
    char *end;
    long pid = strtol(line, &end, 10);
    if (end != line && *end == '\0' && pid > 0 && pid <= INT_MAX && pid != k->skip)
        kill((pid_t)pid, k->sig);
}

int mon_cgroup_kill(const char *dir, int sig, pid_t skip)
{
    struct kill_ctx k = {.sig = sig, .skip = skip};
    return each_line(dir, "cgroup.procs", kill_line, &k);
}

static void oom_line(const char *line, void *data)
{
    bool *oom = data;
    if (strncmp(line, "oom_kill ", 9) == 0 && strtoull(line + 9, NULL, 10) > 0)
        *oom = true;
}

bool mon_cgroup_oom(const char *dir)
{
    bool oom = false;
    each_line(dir, "memory.oom_control", oom_line, &oom);
    each_line(dir, "memory.events", oom_line, &oom);
    return oom;
}
