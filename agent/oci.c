/* config.json for runc: see agent/oci.h. The defaults follow Docker's
 * (moby oci/defaults.go): they are what users of `docker service create`
 * expect a container to look like from the inside. */
#include "agent/oci.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "api/spec.h"
#include "common/util.h"

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define CPU_PERIOD   100000

#if defined(__x86_64__)
#define SECCOMP_ARCH "SCMP_ARCH_X86_64"
#define DOCKER_ARCH  "amd64"
#elif defined(__aarch64__)
#define SECCOMP_ARCH "SCMP_ARCH_AARCH64"
#define DOCKER_ARCH  "arm64"
#else
#error "seccomp: unknown architecture"
#endif

static const char *const masked_paths[] = {
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
};

static const char *const readonly_paths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

static json_t *str_list(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static int list_has(const json_t *list, const char *s)
{
    size_t i;
    json_t *e;
    json_array_foreach(list, i,
                       e) if (json_is_string(e) && strcmp(json_string_value(e), s) == 0) return 1;
    return 0;
}

json_t *agent_oci_caps(const json_t *spec)
{
    const json_t *add = json_object_get(spec, "cap_add");
    const json_t *drop = json_object_get(spec, "cap_drop");
    json_t *caps = json_array();
    const char *const *base = list_has(add, "ALL") ? api_spec_caps : api_spec_default_caps;
    for (const char *const *c = base; *c; c++)
        if (!list_has(drop, "ALL") && !list_has(drop, *c))
            json_array_append_new(caps, json_string(*c));
    /* An explicit add wins over a drop of ALL (Docker's order). */
    size_t i;
    json_t *e;
    json_array_foreach(add, i, e)
    {
        const char *c = json_string_value(e);
        if (strcmp(c, "ALL") != 0 && !list_has(caps, c))
            json_array_append_new(caps, json_string(c));
    }
    return caps;
}

/* Whether a Docker profile entry applies here: its includes (all of its
 * caps, this arch) are met and no exclude matches. */
static int seccomp_applies(const json_t *call, const json_t *caps)
{
    const json_t *inc = json_object_get(call, "includes");
    const json_t *exc = json_object_get(call, "excludes");
    const json_t *arches = json_object_get(inc, "arches");
    if (json_array_size(arches) > 0 && !list_has(arches, DOCKER_ARCH))
        return 0;
    if (list_has(json_object_get(exc, "arches"), DOCKER_ARCH))
        return 0;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(inc, "caps"), i,
                       c) if (!list_has(caps, json_string_value(c))) return 0;
    json_array_foreach(json_object_get(exc, "caps"), i,
                       c) if (list_has(caps, json_string_value(c))) return 0;
    return 1;
}

json_t *agent_oci_seccomp(const json_t *profile, const json_t *caps)
{
    json_t *out = json_object();
    json_object_set(out, "defaultAction", json_object_get(profile, "defaultAction"));
    if (json_is_integer(json_object_get(profile, "defaultErrnoRet")))
        json_object_set(out, "defaultErrnoRet", json_object_get(profile, "defaultErrnoRet"));
    /* This architecture alone: each one more costs ~9 ms per start (FACTS);
     * a syscall made through another ABI (int 0x80, x32) is then refused
     * by libseccomp's bad-arch action, which kills. */
    json_object_set_new(out, "architectures", json_pack("[s]", SECCOMP_ARCH));
    json_t *calls = json_array();
    size_t i;
    json_t *call;
    json_array_foreach(json_object_get(profile, "syscalls"), i, call)
    {
        if (!seccomp_applies(call, caps))
            continue;
        json_t *o = json_object();
        json_object_set(o, "names", json_object_get(call, "names"));
        json_object_set(o, "action", json_object_get(call, "action"));
        if (json_is_integer(json_object_get(call, "errnoRet")))
            json_object_set(o, "errnoRet", json_object_get(call, "errnoRet"));
        if (json_array_size(json_object_get(call, "args")) > 0)
            json_object_set(o, "args", json_object_get(call, "args"));
        json_array_append_new(calls, o);
    }
    json_object_set_new(out, "syscalls", calls);
    return out;
}

const char *agent_oci_user_name(const json_t *spec, const json_t *image_config)
{
    const char *u = json_string_value(json_object_get(spec, "user"));
    if (u && u[0])
        return u;
    u = json_string_value(json_object_get(image_config, "User"));
    return u ? u : "";
}

/* Reads a file of the rootfs into a new string, resolving its path inside
 * the rootfs (RESOLVE_IN_ROOT): an image's symlink cannot reach the host. */
static char *read_in_root(const char *rootfs, const char *path)
{
    _cleanup_close_ int root = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return NULL;
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT};
    _cleanup_close_ int fd = (int)syscall(SYS_openat2, root, path, &how, sizeof(how));
    if (fd < 0)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = xmalloc(cap + 1);
    ssize_t n;
    while ((n = read(fd, buf + len, cap - len)) > 0) {
        len += (size_t)n;
        if (len == cap && cap < (16u << 20))
            buf = xrealloc(buf, (cap *= 2) + 1);
        else if (len == cap)
            break;
    }
    buf[len] = '\0';
    return buf;
}

/* Walks the lines of an /etc/passwd or /etc/group text: *p (advanced past
 * the line) is copied into line (size bytes) and split on ':' into fields
 * (at most 4, the rest NULL). Returns the number of fields, 0 for a line too
 * long (skipped), -1 at the end. */
static int next_entry(const char **p, char *line, size_t size, char **fields)
{
    if (!*p || !**p)
        return -1;
    const char *nl = strchr(*p, '\n');
    size_t len = nl ? (size_t)(nl - *p) : strlen(*p);
    int k = 0;
    memset(fields, 0, 4 * sizeof(*fields));
    if (len < size) {
        memcpy(line, *p, len);
        line[len] = '\0';
        char *save = line;
        for (char *f; k < 4 && (f = strsep(&save, ":")) != NULL;)
            fields[k++] = f;
    }
    *p = nl ? nl + 1 : NULL;
    return k;
}

/* Finds the entry whose name (field 0) or id (field 2) is key; fields point
 * into line. Returns 1 when found. */
static int find_entry(const char *text, const char *key, int by_id, char *line, size_t size,
                      char **fields)
{
    int k;
    while ((k = next_entry(&text, line, size, fields)) >= 0)
        if (k >= 3 && strcmp(fields[by_id ? 2 : 0], key) == 0)
            return 1;
    return 0;
}

static int is_number(const char *s)
{
    return s[0] && strspn(s, "0123456789") == strlen(s);
}

/* The groups that list name as a member. */
static void member_groups(const char *groups, const char *name, struct agent_oci_user *u)
{
    char line[4096], *fields[4];
    int k;
    while (u->n_groups < AGENT_OCI_MAX_GROUPS &&
           (k = next_entry(&groups, line, sizeof(line), fields)) >= 0) {
        char *members = k == 4 ? fields[3] : NULL;
        for (char *m; members && (m = strsep(&members, ",")) != NULL;)
            if (strcmp(m, name) == 0)
                u->groups[u->n_groups++] = (gid_t)strtoul(fields[2], NULL, 10);
    }
}

int agent_oci_resolve_user(const char *rootfs, const char *user, struct agent_oci_user *out,
                           char *errmsg)
{
    memset(out, 0, sizeof(*out));
    if (!user[0])
        return 0;
    char name[256], line[4096], *fields[4] = {0};
    common_strlcpy(name, user, sizeof(name));
    char *group = strchr(name, ':');
    if (group)
        *group++ = '\0';
    char *passwd = read_in_root(rootfs, "/etc/passwd");
    char *groups = read_in_root(rootfs, "/etc/group");
    int rv = 0, numeric = is_number(name);
    if (find_entry(passwd, name, numeric, line, sizeof(line), fields)) {
        out->uid = (uid_t)strtoul(fields[2], NULL, 10);
        out->gid = (gid_t)strtoul(fields[3] ? fields[3] : "0", NULL, 10);
        char pname[256];
        common_strlcpy(pname, fields[0], sizeof(pname));
        member_groups(groups, pname, out);
    } else if (numeric) {
        out->uid = out->gid = (uid_t)strtoul(name, NULL, 10);
    } else {
        snprintf(errmsg, 256, "user \"%s\": not in the image's /etc/passwd", name);
        rv = -ENOENT;
    }
    if (rv == 0 && group && is_number(group)) {
        out->gid = (gid_t)strtoul(group, NULL, 10);
    } else if (rv == 0 && group) {
        if (find_entry(groups, group, 0, line, sizeof(line), fields)) {
            out->gid = (gid_t)strtoul(fields[2], NULL, 10);
        } else {
            snprintf(errmsg, 256, "group \"%s\": not in the image's /etc/group", group);
            rv = -ENOENT;
        }
    }
    free(passwd);
    free(groups);
    return rv;
}

/* Entrypoint + Cmd of the image, with command replacing the entrypoint
 * (and the image's Cmd) and args replacing Cmd, as Docker does. */
static json_t *process_args(const json_t *spec, const json_t *img)
{
    const json_t *command = json_object_get(spec, "command");
    const json_t *args = json_object_get(spec, "args");
    json_t *argv = json_array();
    if (json_array_size(command) > 0) {
        json_array_extend(argv, (json_t *)command);
    } else {
        const json_t *ep = json_object_get(img, "Entrypoint");
        if (json_is_array(ep))
            json_array_extend(argv, (json_t *)ep);
        if (json_array_size(args) == 0 && json_is_array(json_object_get(img, "Cmd")))
            json_array_extend(argv, json_object_get(img, "Cmd"));
    }
    json_array_extend(argv, (json_t *)args);
    return argv;
}

/* The image's Env, then the template's (replacing by name), then extra. */
static json_t *process_env(const struct agent_oci_in *in)
{
    json_t *byname = json_object(), *order = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(in->image_config, "Env"), i, e)
    {
        const char *kv = json_string_value(e);
        const char *eq = kv ? strchr(kv, '=') : NULL;
        if (!eq || eq == kv)
            continue;
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)(eq - kv), kv);
        if (!json_object_get(byname, name))
            json_array_append_new(order, json_string(name));
        json_object_set_new(byname, name, json_string(eq + 1));
    }
    const char *key;
    json_object_foreach((json_t *)json_object_get(in->spec, "env"), key, e)
    {
        if (!json_object_get(byname, key))
            json_array_append_new(order, json_string(key));
        json_object_set(byname, key, e);
    }
    json_t *env = json_array();
    if (!json_object_get(byname, "PATH"))
        json_array_append_new(env, json_string(DEFAULT_PATH));
    json_array_foreach(order, i, e)
    {
        const char *name = json_string_value(e);
        char *kv;
        if (asprintf(&kv, "%s=%s", name, json_string_value(json_object_get(byname, name))) < 0)
            abort();
        json_array_append_new(env, json_string(kv));
        free(kv);
    }
    for (size_t k = 0; in->env_extra && in->env_extra[k]; k++)
        json_array_append_new(env, json_string(in->env_extra[k]));
    json_decref(byname);
    json_decref(order);
    return env;
}

static json_t *process_obj(const struct agent_oci_in *in, json_t *args, const json_t *caps)
{
    const char *cwd = json_string_value(json_object_get(in->spec, "workdir"));
    if (!cwd || !cwd[0])
        cwd = json_string_value(json_object_get(in->image_config, "WorkingDir"));
    json_t *gids = json_array();
    for (size_t i = 0; i < in->user.n_groups; i++)
        json_array_append_new(gids, json_integer(in->user.groups[i]));
    json_t *user = json_pack("{s:I, s:I, s:o}", "uid", (json_int_t)in->user.uid, "gid",
                             (json_int_t)in->user.gid, "additionalGids", gids);
    json_t *capset =
        json_pack("{s:O, s:O, s:O}", "bounding", caps, "effective", caps, "permitted", caps);
    return json_pack("{s:b, s:o, s:o, s:o, s:s, s:o, s:b}", "terminal", 0, "user", user, "args",
                     args, "env", process_env(in), "cwd", cwd && cwd[0] ? cwd : "/", "capabilities",
                     capset, "noNewPrivileges", 1);
}

static json_t *mount(const char *dst, const char *type, const char *src, const char *opts)
{
    json_t *o = json_array();
    char buf[512];
    common_strlcpy(buf, opts, sizeof(buf));
    char *save = buf;
    for (char *t; (t = strsep(&save, ",")) != NULL;)
        if (t[0])
            json_array_append_new(o, json_string(t));
    return json_pack("{s:s, s:s, s:s, s:o}", "destination", dst, "type", type, "source", src,
                     "options", o);
}

static void etc_mount(json_t *mounts, const char *etc_dir, const char *name)
{
    char src[4300], dst[64];
    snprintf(src, sizeof(src), "%s/%s", etc_dir, name);
    snprintf(dst, sizeof(dst), "/etc/%s", name);
    json_array_append_new(mounts, mount(dst, "bind", src, "rbind,rprivate"));
}

/* The template's mounts: bind (host path), volume (node-local, named) and
 * tmpfs. */
static void user_mounts(const struct agent_oci_in *in, json_t *mounts)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(in->spec, "mounts"), i, m)
    {
        const char *type = json_string_value(json_object_get(m, "type"));
        const char *src = json_string_value(json_object_get(m, "source"));
        const char *dst = json_string_value(json_object_get(m, "target"));
        const char *ro = json_is_true(json_object_get(m, "read_only")) ? ",ro" : ",rw";
        char opts[128], path[4300];
        if (strcmp(type, "tmpfs") == 0) {
            json_int_t size = json_integer_value(json_object_get(m, "size"));
            snprintf(opts, sizeof(opts), "nosuid,nodev,mode=1777%s", ro);
            if (size > 0)
                snprintf(opts + strlen(opts), sizeof(opts) - strlen(opts), ",size=%lld",
                         (long long)size);
            json_array_append_new(mounts, mount(dst, "tmpfs", "tmpfs", opts));
            continue;
        }
        if (strcmp(type, "volume") == 0) {
            snprintf(path, sizeof(path), "%s/%s/_data", in->volumes_dir, src);
            src = path;
        }
        snprintf(opts, sizeof(opts), "rbind,rprivate%s", ro);
        json_array_append_new(mounts, mount(dst, "bind", src, opts));
    }
}

static json_t *mounts_obj(const struct agent_oci_in *in)
{
    json_t *m = json_array();
    json_array_append_new(m, mount("/proc", "proc", "proc", "nosuid,noexec,nodev"));
    json_array_append_new(
        m, mount("/dev", "tmpfs", "tmpfs", "nosuid,strictatime,mode=755,size=65536k"));
    json_array_append_new(m, mount("/dev/pts", "devpts", "devpts",
                                   "nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5"));
    json_array_append_new(
        m, mount("/dev/shm", "tmpfs", "shm", "nosuid,noexec,nodev,mode=1777,size=65536k"));
    json_array_append_new(m, mount("/dev/mqueue", "mqueue", "mqueue", "nosuid,noexec,nodev"));
    json_array_append_new(m, mount("/sys", "sysfs", "sysfs", "nosuid,noexec,nodev,ro"));
    json_array_append_new(
        m, mount("/sys/fs/cgroup", "cgroup", "cgroup", "nosuid,noexec,nodev,relatime,ro"));
    etc_mount(m, in->etc_dir, "hosts");
    etc_mount(m, in->etc_dir, "hostname");
    etc_mount(m, in->etc_dir, "resolv.conf");
    user_mounts(in, m);
    return m;
}

/* Devices deny-all (runc adds its default allow list after these rules),
 * and the template's limits. */
static json_t *resources_obj(const struct agent_oci_in *in)
{
    json_t *r = json_pack("{s:[{s:b, s:s}]}", "devices", "allow", 0, "access", "rwm");
    const json_t *res = json_object_get(in->spec, "resources");
    const json_t *lim = json_object_get(res, "limits");
    json_int_t mem = json_integer_value(json_object_get(lim, "memory"));
    double cpu = json_number_value(json_object_get(lim, "cpu"));
    double share = json_number_value(json_object_get(json_object_get(res, "reservations"), "cpu"));
    json_int_t pids = json_integer_value(json_object_get(lim, "pids"));
    if (mem > 0) {
        json_t *m = json_pack("{s:I}", "limit", mem);
        if (in->swap_accounting)
            json_object_set_new(m, "swap", json_integer(mem)); /* no swap on top */
        json_object_set_new(r, "memory", m);
    }
    if (cpu > 0 || share > 0) {
        json_t *c = json_object();
        if (cpu > 0) {
            json_object_set_new(c, "quota", json_integer((json_int_t)(cpu * CPU_PERIOD + 0.5)));
            json_object_set_new(c, "period", json_integer(CPU_PERIOD));
        }
        if (share > 0)
            json_object_set_new(c, "shares", json_integer((json_int_t)(share * 1024 + 0.5)));
        json_object_set_new(r, "cpu", c);
    }
    if (pids > 0)
        json_object_set_new(r, "pids", json_pack("{s:I}", "limit", pids));
    return r;
}

static json_t *linux_obj(const struct agent_oci_in *in, const json_t *caps)
{
    json_t *ns = json_pack("[{s:s}, {s:s}, {s:s}, {s:s}]", "type", "pid", "type", "ipc", "type",
                           "uts", "type", "mount");
    if (in->netns)
        json_array_append_new(ns, json_pack("{s:s, s:s}", "type", "network", "path", in->netns));
    char cgpath[128];
    snprintf(cgpath, sizeof(cgpath), "/shoal/%s", in->id);
    json_t *l = json_pack("{s:o, s:s, s:o, s:o, s:o}", "namespaces", ns, "cgroupsPath", cgpath,
                          "resources", resources_obj(in), "maskedPaths",
                          str_list(masked_paths, ARRAY_SIZE(masked_paths)), "readonlyPaths",
                          str_list(readonly_paths, ARRAY_SIZE(readonly_paths)));
    if (in->seccomp)
        json_object_set_new(l, "seccomp", agent_oci_seccomp(in->seccomp, caps));
    return l;
}

int agent_oci_config(const struct agent_oci_in *in, json_t **out, char *errmsg)
{
    json_t *args = process_args(in->spec, in->image_config);
    if (json_array_size(args) == 0) {
        json_decref(args);
        snprintf(errmsg, 256, "%s",
                 "no program: the image has no Entrypoint or Cmd and task.command is empty");
        return -EINVAL;
    }
    json_t *caps = agent_oci_caps(in->spec);
    json_t *root = json_pack("{s:s, s:b}", "path", in->rootfs, "readonly",
                             json_is_true(json_object_get(in->spec, "read_only")));
    *out = json_pack("{s:s, s:o, s:o, s:s, s:o, s:o}", "ociVersion", "1.0.2", "process",
                     process_obj(in, args, caps), "root", root, "hostname", in->hostname, "mounts",
                     mounts_obj(in), "linux", linux_obj(in, caps));
    json_decref(caps);
    return 0;
}
