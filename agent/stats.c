#include "agent/stats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/cgroup.h"
#include "common/util.h"

/* v1 writes this (or near it) for "no limit". */
#define V1_NO_LIMIT (INT64_C(1) << 60)

/* Reads dir/file (at most size - 1 bytes) into buf. Returns the length or a
 * negative errno. */
static ssize_t read_small(const char *dir, const char *file, char *buf, size_t size)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = 0;
    while (len + 1 < size) {
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return (ssize_t)len;
}

/* Reads one integer from dir/file ("max" reads as -1). */
static int read_int(const char *dir, const char *file, int64_t *out)
{
    char buf[64];
    ssize_t n = read_small(dir, file, buf, sizeof(buf));
    if (n < 0)
        return (int)n;
    if (strncmp(buf, "max", 3) == 0) {
        *out = -1;
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || end == buf)
        return -EINVAL;
    *out = v;
    return 0;
}

/* The value of `key` in a "key value" file (memory.stat, cpu.stat); 0 when
 * absent. */
static int64_t stat_value(const char *dir, const char *file, const char *key)
{
    char buf[8192];
    if (read_small(dir, file, buf, sizeof(buf)) < 0)
        return 0;
    size_t klen = strlen(key);
    for (char *line = buf; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : 0)
        if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
            return strtoll(line + klen + 1, NULL, 10);
    return 0;
}

/* The processes of the group in dir: their count, and the sum of their
 * utime + stime in nanoseconds (for v1 without cpuacct). */
static void procs(const char *dir, int64_t *count, int64_t *cpu_ns)
{
    char path[512], stat[1024];
    snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
    FILE *f = fopen(path, "re");
    *count = 0;
    *cpu_ns = 0;
    if (!f)
        return;
    long tick = sysconf(_SC_CLK_TCK);
    long pid;
    while (fscanf(f, "%ld", &pid) == 1) {
        (*count)++;
        char proc[64];
        snprintf(proc, sizeof(proc), "/proc/%ld", pid);
        if (read_small(proc, "stat", stat, sizeof(stat)) < 0)
            continue;
        /* After "(comm)", fields from 3 on: utime and stime are 14 and 15. */
        char *p = strrchr(stat, ')');
        unsigned long long ut = 0, st = 0;
        if (p &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2 &&
            tick > 0)
            *cpu_ns += (int64_t)((ut + st) * (1000000000ull / (unsigned long long)tick));
    }
    fclose(f);
}

static int read_v2(const char *dir, struct agent_task_stats *out)
{
    int64_t current = 0, limit = -1, pids = -1, ncpu;
    int rv = read_int(dir, "memory.current", &current);
    if (rv < 0)
        return rv;
    read_int(dir, "memory.max", &limit);
    out->memory = current - stat_value(dir, "memory.stat", "inactive_file");
    out->memory_limit = limit > 0 ? limit : 0;
    out->cpu_ns = stat_value(dir, "cpu.stat", "usage_usec") * 1000;
    procs(dir, &out->pids, &ncpu);
    if (read_int(dir, "pids.current", &pids) == 0 && pids >= 0)
        out->pids = pids;
    return 0;
}

static int read_v1(const struct agent_cgroup *cg, struct agent_task_stats *out)
{
    const char *mem = agent_cgroup_dir(cg, "memory");
    const char *acct = agent_cgroup_dir(cg, "cpuacct");
    const char *pids_dir = agent_cgroup_dir(cg, "pids");
    int64_t usage = 0, limit = 0, v, cpu_ns;
    if (!mem)
        return -ENOENT;
    int rv = read_int(mem, "memory.usage_in_bytes", &usage);
    if (rv < 0)
        return rv;
    read_int(mem, "memory.limit_in_bytes", &limit);
    out->memory = usage - stat_value(mem, "memory.stat", "total_inactive_file");
    out->memory_limit = limit > 0 && limit < V1_NO_LIMIT ? limit : 0;
    procs(mem, &out->pids, &cpu_ns);
    out->cpu_ns = acct && read_int(acct, "cpuacct.usage", &v) == 0 ? v : cpu_ns;
    if (pids_dir && read_int(pids_dir, "pids.current", &v) == 0 && v >= 0)
        out->pids = v;
    return 0;
}

int agent_stats_read(const char *task, struct agent_task_stats *out, char *errmsg)
{
    struct agent_cgroup cg;
    memset(out, 0, sizeof(*out));
    agent_cgroup_find(task, &cg);
    if (cg.n_dirs == 0)
        return -ENOENT;
    int rv = agent_cgroup_version() == 2 ? read_v2(cg.dirs[0], out) : read_v1(&cg, out);
    if (rv == -ENOENT)
        return rv;
    if (rv < 0) {
        snprintf(errmsg, 256, "cgroup of task %s: %s", task, strerror(-rv));
        return rv;
    }
    if (out->memory < 0)
        out->memory = 0;
    return out->pids > 0 ? 0 : -ENOENT;
}

int agent_stats_query(void *data, const json_t *tasks, json_t **answer, char *errmsg)
{
    (void)data;
    if (!json_is_array(tasks) || json_array_size(tasks) > AGENT_STATS_MAX_TASKS) {
        snprintf(errmsg, 256, "tasks: must be a list of at most %d task ids",
                 AGENT_STATS_MAX_TASKS);
        return -EINVAL;
    }
    json_t *stats = json_object(), *missing = json_array(), *errors = json_object();
    size_t i;
    json_t *e;
    json_array_foreach(tasks, i, e)
    {
        const char *id = json_string_value(e);
        char why[256] = "";
        struct agent_task_stats s;
        int rv = id ? agent_stats_read(id, &s, why) : -EINVAL;
        if (rv == 0)
            json_object_set_new(
                stats, id,
                json_pack("{s:I, s:o, s:I, s:I}", "memory", (json_int_t)s.memory, "memory_limit",
                          s.memory_limit ? json_integer(s.memory_limit) : json_null(), "cpu_ns",
                          (json_int_t)s.cpu_ns, "pids", (json_int_t)s.pids));
        else if (rv == -ENOENT)
            json_array_append_new(missing, json_string(id));
        else if (id)
            json_object_set_new(errors, id, json_string(why[0] ? why : strerror(-rv)));
    }
    *answer = json_pack("{s:o, s:o, s:o}", "stats", stats, "missing", missing, "errors", errors);
    return 0;
}
