#include "agent/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

#define ROOT   "/sys/fs/cgroup"
#define PREFIX "shoal"
#define PERIOD 100000 /* cpu quota period, microseconds */

static const char *const v1_controllers[] = {"memory", "cpu", "pids", "cpuacct"};

int agent_cgroup_version(void)
{
    static int version = -1;
    if (version < 0) {
        if (access(ROOT "/cgroup.controllers", F_OK) == 0)
            version = 2;
        else if (access(ROOT "/memory/cgroup.procs", F_OK) == 0)
            version = 1;
        else
            version = 0;
    }
    return version;
}

static int write_file(const char *dir, const char *file, const char *value, char *errmsg)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t len = (ssize_t)strlen(value);
    if (fd < 0 || write(fd, value, (size_t)len) != len) {
        int err = errno;
        snprintf(errmsg, 256, "cgroup %s = %s: %s", path, value, strerror(err));
        return -err;
    }
    return 0;
}

static int make_dir(const char *path, char *errmsg)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        int err = errno;
        snprintf(errmsg, 256, "cgroup %s: %s", path, strerror(err));
        return -err;
    }
    return 0;
}

/* v2: the controllers must be enabled in every parent's subtree_control. */
static int v2_enable(char *errmsg)
{
    int rv = write_file(ROOT, "cgroup.subtree_control", "+memory +cpu +pids", errmsg);
    rv = rv ?: make_dir(ROOT "/" PREFIX, errmsg);
    return rv
               ?: write_file(ROOT "/" PREFIX, "cgroup.subtree_control", "+memory +cpu +pids",
                             errmsg);
}

static int v2_create(const char *task, const struct agent_cgroup_limits *lim,
                     struct agent_cgroup *out, char *errmsg)
{
    char *dir = out->dirs[0];
    snprintf(dir, sizeof(out->dirs[0]), ROOT "/" PREFIX "/%s", task);
    int rv = v2_enable(errmsg) ?: make_dir(dir, errmsg);
    if (rv != 0)
        return rv;
    out->n_dirs = 1;
    char v[64];
    if (lim->memory > 0) {
        snprintf(v, sizeof(v), "%lld", (long long)lim->memory);
        rv = write_file(dir, "memory.max", v, errmsg);
        if (rv == 0 && access(ROOT "/" PREFIX "/memory.swap.max", F_OK) == 0)
            rv = write_file(dir, "memory.swap.max", "0", errmsg);
    }
    if (rv == 0 && lim->cpu > 0) {
        snprintf(v, sizeof(v), "%lld %d", (long long)(lim->cpu * PERIOD), PERIOD);
        rv = write_file(dir, "cpu.max", v, errmsg);
    }
    if (rv == 0 && lim->pids > 0) {
        snprintf(v, sizeof(v), "%lld", (long long)lim->pids);
        rv = write_file(dir, "pids.max", v, errmsg);
    }
    return rv;
}

/* v1: one group per controller; memsw (when swap accounting is on) keeps a
 * limited task from swapping its way past the limit. */
static int v1_limits(const char *ctrl, const char *dir, const struct agent_cgroup_limits *lim,
                     char *errmsg)
{
    char v[64];
    int rv = 0;
    if (strcmp(ctrl, "memory") == 0 && lim->memory > 0) {
        snprintf(v, sizeof(v), "%lld", (long long)lim->memory);
        rv = write_file(dir, "memory.limit_in_bytes", v, errmsg);
        char memsw[300];
        snprintf(memsw, sizeof(memsw), "%s/memory.memsw.limit_in_bytes", dir);
        if (rv == 0 && access(memsw, F_OK) == 0)
            rv = write_file(dir, "memory.memsw.limit_in_bytes", v, errmsg);
    } else if (strcmp(ctrl, "cpu") == 0 && lim->cpu > 0) {
        snprintf(v, sizeof(v), "%lld", (long long)(lim->cpu * PERIOD));
        rv = write_file(dir, "cpu.cfs_period_us", "100000", errmsg)
                 ?: write_file(dir, "cpu.cfs_quota_us", v, errmsg);
    } else if (strcmp(ctrl, "pids") == 0 && lim->pids > 0) {
        snprintf(v, sizeof(v), "%lld", (long long)lim->pids);
        rv = write_file(dir, "pids.max", v, errmsg);
    }
    return rv;
}

static int v1_create(const char *task, const struct agent_cgroup_limits *lim,
                     struct agent_cgroup *out, char *errmsg)
{
    /* pids and cpuacct without limits are for stats: skipped where the
     * controller is not mounted. */
    const int wanted[] = {2, lim->cpu > 0 ? 2 : 0, lim->pids > 0 ? 2 : 1, 1};
    for (size_t i = 0; i < ARRAY_SIZE(v1_controllers); i++) {
        char parent[256];
        snprintf(parent, sizeof(parent), ROOT "/%s", v1_controllers[i]);
        if (!wanted[i] || (wanted[i] == 1 && access(parent, W_OK) != 0))
            continue;
        snprintf(parent, sizeof(parent), ROOT "/%s/" PREFIX, v1_controllers[i]);
        char *dir = out->dirs[out->n_dirs];
        snprintf(dir, sizeof(out->dirs[0]), "%s/%s", parent, task);
        int rv = make_dir(parent, errmsg) ?: make_dir(dir, errmsg);
        if (rv != 0)
            return rv;
        out->n_dirs++;
        if ((rv = v1_limits(v1_controllers[i], dir, lim, errmsg)) != 0)
            return rv;
    }
    return 0;
}

int agent_cgroup_create(const char *task, const struct agent_cgroup_limits *lim,
                        struct agent_cgroup *out, char *errmsg)
{
    memset(out, 0, sizeof(*out));
    int version = agent_cgroup_version();
    int rv = 0;
    if (version == 2)
        rv = v2_create(task, lim, out, errmsg);
    else if (version == 1)
        rv = v1_create(task, lim, out, errmsg);
    else if (lim->memory > 0 || lim->cpu > 0 || lim->pids > 0) {
        snprintf(errmsg, 256, "resource limits need cgroups: no cgroupfs at " ROOT);
        return -ENOTSUP;
    }
    if (rv != 0) {
        agent_cgroup_remove(out);
        memset(out, 0, sizeof(*out));
    }
    return rv;
}

void agent_cgroup_find(const char *task, struct agent_cgroup *out)
{
    memset(out, 0, sizeof(*out));
    int version = agent_cgroup_version();
    for (size_t i = 0; i < (version == 2   ? 1
                            : version == 1 ? ARRAY_SIZE(v1_controllers)
                                           : 0);
         i++) {
        char *dir = out->dirs[out->n_dirs];
        if (version == 2)
            snprintf(dir, sizeof(out->dirs[0]), ROOT "/" PREFIX "/%s", task);
        else
            snprintf(dir, sizeof(out->dirs[0]), ROOT "/%s/" PREFIX "/%s", v1_controllers[i], task);
        if (access(dir, F_OK) == 0)
            out->n_dirs++;
    }
}

const char *agent_cgroup_dir(const struct agent_cgroup *cg, const char *controller)
{
    char prefix[64];
    if (agent_cgroup_version() == 2)
        return cg->n_dirs ? cg->dirs[0] : NULL;
    snprintf(prefix, sizeof(prefix), ROOT "/%s/", controller);
    for (size_t i = 0; i < cg->n_dirs; i++)
        if (strncmp(cg->dirs[i], prefix, strlen(prefix)) == 0)
            return cg->dirs[i];
    return NULL;
}

static void kill_members(const char *dir)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    long pid;
    while (fscanf(f, "%ld", &pid) == 1)
        if (pid > 1)
            kill((pid_t)pid, SIGKILL);
    fclose(f);
}

void agent_cgroup_remove(const struct agent_cgroup *cg)
{
    for (size_t i = 0; i < cg->n_dirs; i++) {
        /* Killed processes leave the group once reaped: retry briefly. */
        for (int attempt = 0; attempt < 50 && rmdir(cg->dirs[i]) != 0 && errno == EBUSY;
             attempt++) {
            kill_members(cg->dirs[i]);
            usleep(1000);
        }
    }
}

void agent_cgroup_watched(const char *task, struct agent_cgroup *out)
{
    memset(out, 0, sizeof(*out));
    int version = agent_cgroup_version();
    if (version == 2)
        snprintf(out->dirs[out->n_dirs++], sizeof(out->dirs[0]), ROOT "/" PREFIX "/%s", task);
    else if (version == 1)
        snprintf(out->dirs[out->n_dirs++], sizeof(out->dirs[0]), ROOT "/memory/" PREFIX "/%s",
                 task);
}

void agent_cgroup_remove_all(const char *task)
{
    char path[512];
    glob_t g;
    snprintf(path, sizeof(path), ROOT "/*/" PREFIX "/%s", task);
    if (glob(path, 0, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; i++)
            rmdir(g.gl_pathv[i]);
    globfree(&g);
    snprintf(path, sizeof(path), ROOT "/" PREFIX "/%s", task);
    rmdir(path);
}
