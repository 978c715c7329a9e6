/* The runc driver's own steps: see agent/runc.h. Everything here that
 * touches files, mounts or the network runs on the libuv thread pool. */
#include "agent/runc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/images.h"
#include "agent/net.h"
#include "agent/oci.h"
#include "agent/supervisor.h"
#include "agent/task.h"
#include "common/log.h"
#include "common/util.h"

#define SECCOMP_PROFILE "/usr/share/containers/seccomp.json"
#define MAX_PORTS       64

extern char **environ;

struct agent_runc_prep {
    char id[40];
    char hostname[64];
    char ref[512];
    json_t *spec;         /* owned deep copy: threads never share a json_t */
    json_t *image_config; /* owned deep copy */
    char image_rootfs[4096];
    char image_id[128];
    char data_dir[4096];
    char runc_root[4200];
    int bridge;
    struct agent_net_config net;
    struct agent_net_port ports[MAX_PORTS];
    size_t n_ports;
    char **env_extra; /* owned, NULL-terminated */
    /* Filled by the preparation. */
    char pid_file[4300], runc_log[4300];
};

/* ---- small helpers (thread side) ---- */

/* The runc binary: found on PATH (or the usual dirs) once, then
 * remembered; "" while it is not installed (looked for again next time). */
static pthread_mutex_t runc_lock = PTHREAD_MUTEX_INITIALIZER;
static char runc_found[4096];

static const char *runc_path(void)
{
    pthread_mutex_lock(&runc_lock);
    if (!runc_found[0]) {
        const char *path = getenv("PATH");
        char dirs[4096], cand[4200];
        common_strlcpy(
            dirs,
            path && path[0] ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            sizeof(dirs));
        char *save = dirs;
        for (char *d; !runc_found[0] && (d = strsep(&save, ":")) != NULL;) {
            snprintf(cand, sizeof(cand), "%s/runc", d[0] ? d : ".");
            if (access(cand, X_OK) == 0)
                common_strlcpy(runc_found, cand, sizeof(runc_found));
        }
    }
    pthread_mutex_unlock(&runc_lock);
    return runc_found;
}

/* Runs argv to its end with stdout/stderr into errbuf (256 bytes, the
 * last output). Returns the exit status, or -errno when it did not run. */
static int run_cmd(char *const *argv, char *errbuf)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -errno;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    pid_t pid;
    int rv = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rv != 0) {
        close(fds[0]);
        snprintf(errbuf, 256, "%s: %s", argv[0], strerror(rv));
        return -rv;
    }
    char buf[4096];
    size_t len = 0;
    ssize_t n;
    while ((n = read(fds[0], buf + len, sizeof(buf) - 1 - len)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0 && (len += (size_t)n) >= sizeof(buf) - 1)
            len = 0; /* keep reading; the end is what matters */
    close(fds[0]);
    buf[len] = '\0';
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
        buf[--len] = '\0';
    snprintf(errbuf, 256, "%s", buf);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int write_text(const char *path, const char *text, char *errmsg)
{
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ssize_t len = (ssize_t)strlen(text);
    if (fd < 0 || write(fd, text, (size_t)len) != len) {
        snprintf(errmsg, 256, "%s: %s", path, strerror(errno));
        return -EIO;
    }
    return 0;
}

static int make_dir(const char *path, mode_t mode, char *errmsg)
{
    if (mkdir(path, mode) != 0 && errno != EEXIST) {
        snprintf(errmsg, 256, "%s: %s", path, strerror(errno));
        return -errno;
    }
    return 0;
}

/* mkdir -p */
static int make_dirs(const char *path, char *errmsg)
{
    char p[4300];
    common_strlcpy(p, path, sizeof(p));
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            snprintf(errmsg, 256, "%s: %s", p, strerror(errno));
            return -errno;
        }
        *s = '/';
    }
    return make_dir(p, 0755, errmsg);
}

/* ---- the seccomp profile, read once per process ---- */

static pthread_mutex_t seccomp_lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *seccomp_profile;

static const json_t *seccomp_load(char *errmsg)
{
    pthread_mutex_lock(&seccomp_lock);
    if (!seccomp_profile) {
        json_error_t e;
        seccomp_profile = json_load_file(SECCOMP_PROFILE, 0, &e);
        if (!seccomp_profile)
            snprintf(errmsg, 256,
                     "seccomp profile %s: %s (install golang-github-containers-common)",
                     SECCOMP_PROFILE, e.text);
    }
    pthread_mutex_unlock(&seccomp_lock);
    return seccomp_profile;
}

/* ---- preparation ---- */

int agent_runc_is(const struct agent_task *t)
{
    const char *d = json_string_value(json_object_get(t->spec, "driver"));
    return d && strcmp(d, "runc") == 0;
}

static char **env_extra(const struct agent_task *t)
{
    char **out = xcalloc(5, sizeof(*out));
    agent_process_shoal_env(t, out);
    return out;
}

struct agent_runc_prep *agent_runc_prep_new(struct agent_task *t)
{
    struct agent_runc_prep *r = xcalloc(1, sizeof(*r));
    common_strlcpy(r->id, t->id, sizeof(r->id));
    json_int_t slot = json_integer_value(json_object_get(t->assignment, "slot"));
    if (slot > 0)
        snprintf(r->hostname, sizeof(r->hostname), "%.40s-%lld", t->service, (long long)slot);
    else
        snprintf(r->hostname, sizeof(r->hostname), "%.40s-%.12s", t->service, t->id);
    common_strlcpy(r->ref, json_string_value(json_object_get(t->spec, "image")), sizeof(r->ref));
    r->spec = json_deep_copy(t->spec);
    common_strlcpy(r->data_dir, agent_supervisor_data_dir(t->sup), sizeof(r->data_dir));
    snprintf(r->runc_root, sizeof(r->runc_root), "%s/runc", r->data_dir);
    const char *network = json_string_value(json_object_get(t->spec, "network"));
    r->bridge = !network || strcmp(network, "bridge") == 0;
    r->net = *agent_supervisor_net(t->sup);
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(t->spec, "ports"), i, p)
    {
        if (r->n_ports == MAX_PORTS)
            break;
        struct agent_net_port *np = &r->ports[r->n_ports++];
        np->published = (int)json_integer_value(json_object_get(p, "published"));
        np->target = (int)json_integer_value(json_object_get(p, "target"));
        const char *proto = json_string_value(json_object_get(p, "protocol"));
        common_strlcpy(np->proto, proto ? proto : "tcp", sizeof(np->proto));
    }
    r->env_extra = env_extra(t);
    return r;
}

void agent_runc_prep_free(struct agent_runc_prep *r)
{
    if (!r)
        return;
    json_decref(r->spec);
    json_decref(r->image_config);
    for (size_t i = 0; r->env_extra && r->env_extra[i]; i++)
        free(r->env_extra[i]);
    free(r->env_extra);
    free(r);
}

const char *agent_runc_image_ref(const struct agent_runc_prep *r)
{
    return r->ref;
}

void agent_runc_prep_set_image(struct agent_runc_prep *r, const struct agent_image *img)
{
    common_strlcpy(r->image_rootfs, img->rootfs, sizeof(r->image_rootfs));
    common_strlcpy(r->image_id, img->id, sizeof(r->image_id));
    json_decref(r->image_config);
    r->image_config = img->config ? json_deep_copy(img->config) : NULL;
}

/* hosts, hostname and resolv.conf for the container, in DIR/etc. */
static int write_etc(const struct agent_runc_prep *r, const char *dir, const char *ip, char *errmsg)
{
    char etc[4300], path[4400], text[8192];
    snprintf(etc, sizeof(etc), "%s/etc", dir);
    int rv = make_dir(etc, 0755, errmsg);
    snprintf(text, sizeof(text),
             "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n",
             ip[0] ? ip : "127.0.1.1", r->hostname);
    snprintf(path, sizeof(path), "%s/hosts", etc);
    rv = rv ?: write_text(path, text, errmsg);
    snprintf(text, sizeof(text), "%s\n", r->hostname);
    snprintf(path, sizeof(path), "%s/hostname", etc);
    rv = rv ?: write_text(path, text, errmsg);
    /* The node's resolvers; in a netns a loopback resolver is unreachable. */
    size_t len = 0;
    text[0] = '\0';
    FILE *f = fopen("/etc/resolv.conf", "re");
    char line[512];
    while (f && fgets(line, sizeof(line), f)) {
        if (r->bridge && strncmp(line, "nameserver", 10) == 0 && strstr(line, " 127."))
            continue;
        if (len + strlen(line) < sizeof(text))
            len += (size_t)snprintf(text + len, sizeof(text) - len, "%s", line);
    }
    if (f)
        fclose(f);
    snprintf(path, sizeof(path), "%s/resolv.conf", etc);
    return rv ?: write_text(path, text, errmsg);
}

/* Named volumes exist (made on first use); bind sources must. */
static int check_mounts(const struct agent_runc_prep *r, char *errmsg)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(r->spec, "mounts"), i, m)
    {
        const char *type = json_string_value(json_object_get(m, "type"));
        const char *src = json_string_value(json_object_get(m, "source"));
        char path[4400];
        if (strcmp(type, "volume") == 0) {
            snprintf(path, sizeof(path), "%s/volumes/%s/_data", r->data_dir, src);
            int rv = make_dirs(path, errmsg);
            if (rv < 0)
                return rv;
        } else if (strcmp(type, "bind") == 0 && access(src, F_OK) != 0) {
            snprintf(errmsg, 256, "bind mount source %s: %s", src, strerror(errno));
            return -ENOENT;
        }
    }
    return 0;
}

static int mount_rootfs(const struct agent_runc_prep *r, const char *dir, char *errmsg)
{
    char upper[4300], work[4300], merged[4300], opts[13000];
    snprintf(upper, sizeof(upper), "%s/upper", dir);
    snprintf(work, sizeof(work), "%s/ovwork", dir);
    snprintf(merged, sizeof(merged), "%s/rootfs", dir);
    int rv = make_dir(upper, 0755, errmsg);
    rv = rv ?: make_dir(work, 0700, errmsg);
    rv = rv ?: make_dir(merged, 0755, errmsg);
    if (rv < 0)
        return rv;
    snprintf(opts, sizeof(opts), "lowerdir=%s,upperdir=%s,workdir=%s", r->image_rootfs, upper,
             work);
    if (mount("overlay", merged, "overlay", 0, opts) != 0) {
        snprintf(errmsg, 256, "overlay mount on %s: %s", merged, strerror(errno));
        return -errno;
    }
    return 0;
}

static int swap_accounting(void)
{
    return agent_cgroup_version() == 2 ||
           access("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes", F_OK) == 0;
}

static int write_config(const struct agent_runc_prep *r, const char *dir,
                        const struct agent_net_task *net, char *errmsg)
{
    char rootfs[4300], etc[4300], volumes[4300], path[4400];
    snprintf(rootfs, sizeof(rootfs), "%s/rootfs", dir);
    snprintf(etc, sizeof(etc), "%s/etc", dir);
    snprintf(volumes, sizeof(volumes), "%s/volumes", r->data_dir);
    const json_t *seccomp = seccomp_load(errmsg);
    if (!seccomp)
        return -ENOENT;
    struct agent_oci_in in = {
        .spec = r->spec,
        .image_config = r->image_config,
        .id = r->id,
        .hostname = r->hostname,
        .rootfs = rootfs,
        .etc_dir = etc,
        .netns = r->bridge ? net->netns : NULL,
        .volumes_dir = volumes,
        .env_extra = (const char *const *)r->env_extra,
        .seccomp = seccomp,
        .swap_accounting = swap_accounting(),
    };
    const char *user = agent_oci_user_name(r->spec, r->image_config);
    int rv = agent_oci_resolve_user(rootfs, user, &in.user, errmsg);
    json_t *config = NULL;
    rv = rv ?: agent_oci_config(&in, &config, errmsg);
    if (rv < 0)
        return rv;
    snprintf(path, sizeof(path), "%s/config.json", dir);
    if (json_dump_file(config, path, JSON_COMPACT) != 0) {
        snprintf(errmsg, 256, "%s: cannot write", path);
        rv = -EIO;
    }
    json_decref(config);
    return rv;
}

/* Everything a run leaves: the container, the mount, the upper dir, the
 * network, the cgroups (runc makes one per v1 controller). */
static void teardown(const char *runc_root, const struct agent_net_config *net, const char *id,
                     const char *dir)
{
    char path[4400], errbuf[256];
    snprintf(path, sizeof(path), "%s/%s", runc_root, id);
    const char *runc_bin = runc_path();
    if (access(path, F_OK) == 0 && runc_bin[0]) {
        char *argv[] = {(char *)runc_bin, "--root", (char *)runc_root, "delete", "--force",
                        (char *)id,       NULL};
        int rv = run_cmd(argv, errbuf);
        if (rv != 0)
            LOGW("task %s: runc delete: %s", id, errbuf);
    }
    snprintf(path, sizeof(path), "%s/rootfs", dir);
    if (umount2(path, MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
        LOGW("task %s: umount %s: %s", id, path, strerror(errno));
    rmdir(path);
    static const char *const dirs[] = {"upper", "ovwork"};
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, dirs[i]);
        common_rm_tree(path);
    }
    snprintf(path, sizeof(path), "%s/net.ip", dir);
    if (access(path, F_OK) == 0) {
        if (agent_net_task_teardown(net, id, errbuf) != 0)
            LOGW("task %s: network: %s", id, errbuf);
        unlink(path);
    }
    agent_cgroup_remove_all(id);
}

/* A port without a target goes to the one the image exposes for its
 * protocol ("80/tcp" in ExposedPorts), else to the published port. */
static int default_target(const json_t *image_config, const struct agent_net_port *p)
{
    const char *key;
    json_t *v;
    int found = 0, n = 0;
    json_object_foreach((json_t *)json_object_get(image_config, "ExposedPorts"), key, v)
    {
        char proto[8] = "tcp";
        int port = 0;
        if (sscanf(key, "%d/%7s", &port, proto) >= 1 && strcmp(proto, p->proto) == 0 && port > 0 &&
            port < 65536) {
            found = port;
            n++;
        }
    }
    return n == 1 ? found : p->published;
}

static int setup_net(struct agent_runc_prep *r, const char *dir, struct agent_net_task *net,
                     char *errmsg)
{
    memset(net, 0, sizeof(*net));
    if (!r->bridge)
        return 0;
    for (size_t i = 0; i < r->n_ports; i++)
        if (r->ports[i].target == 0)
            r->ports[i].target = default_target(r->image_config, &r->ports[i]);
    int rv = agent_net_ensure(&r->net, errmsg);
    rv = rv ?: agent_net_task_setup(&r->net, r->id, r->ports, r->n_ports, net, errmsg);
    if (rv < 0)
        return rv;
    char path[4300];
    snprintf(path, sizeof(path), "%s/net.ip", dir);
    return write_text(path, net->ip, errmsg);
}

int agent_runc_prepare(struct agent_runc_prep *r, const char *dir, struct agent_cgroup *cg,
                       char *errmsg)
{
    if (!runc_path()[0]) {
        snprintf(errmsg, 256, "%s", "runc is not installed on this node (package runc)");
        return -ENOENT;
    }
    snprintf(r->pid_file, sizeof(r->pid_file), "%s/container.pid", dir);
    snprintf(r->runc_log, sizeof(r->runc_log), "%s/runc.log", dir);
    /* What an earlier run of this task may have left. */
    teardown(r->runc_root, &r->net, r->id, dir);
    unlink(r->pid_file);
    unlink(r->runc_log);
    struct agent_net_task net;
    int rv = make_dir(r->runc_root, 0700, errmsg);
    rv = rv ?: mount_rootfs(r, dir, errmsg);
    rv = rv ?: check_mounts(r, errmsg);
    rv = rv ?: setup_net(r, dir, &net, errmsg);
    rv = rv ?: write_etc(r, dir, net.ip, errmsg);
    rv = rv ?: write_config(r, dir, &net, errmsg);
    char path[4300], line[160];
    snprintf(path, sizeof(path), "%s/image.id", dir);
    snprintf(line, sizeof(line), "%s\n", r->image_id);
    rv = rv ?: write_text(path, line, errmsg);
    if (rv < 0) {
        teardown(r->runc_root, &r->net, r->id, dir);
        return rv;
    }
    agent_cgroup_watched(r->id, cg);
    return 0;
}

void agent_runc_launch_args(const struct agent_runc_prep *r, const char *dir, const char **out)
{
    size_t n = 0;
    out[n++] = "--pid-file";
    out[n++] = r->pid_file;
    out[n++] = "--launcher-log";
    out[n++] = r->runc_log;
    out[n++] = "--";
    out[n++] = runc_path();
    out[n++] = "--root";
    out[n++] = r->runc_root;
    out[n++] = "--log";
    out[n++] = r->runc_log;
    out[n++] = "--log-format";
    out[n++] = "json";
    out[n++] = "run";
    out[n++] = "-d";
    out[n++] = "--bundle";
    out[n++] = dir;
    out[n++] = "--pid-file";
    out[n++] = r->pid_file;
    out[n++] = r->id;
    out[n] = NULL;
}

/* ---- clean-up ---- */

struct cleanup {
    uv_work_t work;
    struct agent_task *t;
    char id[40];
    char dir[4200];
    char runc_root[4200];
    struct agent_net_config net;
};

static void cleanup_work(uv_work_t *w)
{
    struct cleanup *c = container_of(w, struct cleanup, work);
    teardown(c->runc_root, &c->net, c->id, c->dir);
}

static void cleanup_done(uv_work_t *w, int status)
{
    (void)status;
    struct cleanup *c = container_of(w, struct cleanup, work);
    struct agent_task *t = c->t;
    free(c);
    t->bg_busy = 0;
    if (!t->closing) {
        if (t->prep_deferred) {
            t->prep_deferred = 0;
            agent_process_resume_prepare(t);
        } else {
            t->dirty = 1; /* ended for real now (agent_task_report) */
            agent_supervisor_changed(t->sup, t);
        }
    }
    agent_task_unref(t);
}

void agent_runc_cleanup(struct agent_task *t)
{
    struct cleanup *c = xcalloc(1, sizeof(*c));
    c->t = t;
    common_strlcpy(c->id, t->id, sizeof(c->id));
    common_strlcpy(c->dir, t->dir, sizeof(c->dir));
    snprintf(c->runc_root, sizeof(c->runc_root), "%s/runc", agent_supervisor_data_dir(t->sup));
    c->net = *agent_supervisor_net(t->sup);
    if (uv_queue_work(agent_supervisor_loop(t->sup), &c->work, cleanup_work, cleanup_done) != 0) {
        cleanup_work(&c->work); /* cannot happen with a live loop; stay correct anyway */
        free(c);
        return;
    }
    t->bg_busy = 1;
    t->open_handles++;
}

/* The first line of DIR/name into out ("" when none). */
static void read_line(const char *dir, const char *name, char *out, size_t size)
{
    char path[4300];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    out[0] = '\0';
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    if (!fgets(out, (int)size, f))
        out[0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    fclose(f);
}

/* ---- orphans ---- */

struct sweep {
    uv_work_t work;
    char data_dir[4096];
    char runc_root[4200];
    struct agent_net_config net;
};

/* Whether DATA/tasks/ID exists. */
static int task_known(const char *data_dir, const char *id)
{
    char path[4400];
    snprintf(path, sizeof(path), "%s/tasks/%s", data_dir, id);
    return access(path, F_OK) == 0;
}

static void sweep_work(uv_work_t *w)
{
    struct sweep *s = container_of(w, struct sweep, work);
    char dir[4400];
    DIR *d = opendir(s->runc_root);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || task_known(s->data_dir, e->d_name))
            continue;
        LOGI("runc: removing container %s: its task is gone", e->d_name);
        snprintf(dir, sizeof(dir), "%s/tasks/%s", s->data_dir, e->d_name);
        teardown(s->runc_root, &s->net, e->d_name, dir);
    }
    if (d)
        closedir(d);
    char **ids = NULL, errbuf[256];
    size_t n = 0;
    if (agent_net_list(&s->net, &ids, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (task_known(s->data_dir, ids[i]))
            continue;
        LOGI("net: removing the network of %s: its task is gone", ids[i]);
        if (agent_net_task_teardown(&s->net, ids[i], errbuf) != 0)
            LOGW("net: %s: %s", ids[i], errbuf);
    }
    agent_net_list_free(ids, n);
}

static void sweep_done(uv_work_t *w, int status)
{
    (void)status;
    free(container_of(w, struct sweep, work));
}

void agent_runc_sweep(struct agent_supervisor *sup)
{
    struct sweep *s = xcalloc(1, sizeof(*s));
    common_strlcpy(s->data_dir, agent_supervisor_data_dir(sup), sizeof(s->data_dir));
    snprintf(s->runc_root, sizeof(s->runc_root), "%s/runc", s->data_dir);
    s->net = *agent_supervisor_net(sup);
    if (access(s->runc_root, F_OK) != 0 && access(s->net.data_dir, F_OK) != 0) {
        free(s); /* this node never ran a container */
        return;
    }
    if (uv_queue_work(agent_supervisor_loop(sup), &s->work, sweep_work, sweep_done) != 0)
        free(s);
}

void agent_runc_task_ip(const char *dir, char *out, size_t size)
{
    read_line(dir, "net.ip", out, size);
}

int agent_runc_image_id(const char *dir, char *out, size_t size)
{
    read_line(dir, "image.id", out, size);
    return out[0] ? 0 : -ENOENT;
}

char **agent_runc_exec_argv(const struct agent_task *t, char *const *command)
{
    const char *bin = runc_path();
    if (!bin[0])
        return NULL;
    size_t n = 0;
    while (command && command[n])
        n++;
    char **argv = xcalloc(n + 6, sizeof(*argv));
    size_t k = 0;
    argv[k++] = xstrdup(bin);
    argv[k++] = xstrdup("--root");
    if (asprintf(&argv[k++], "%s/runc", agent_supervisor_data_dir(t->sup)) < 0)
        abort();
    argv[k++] = xstrdup("exec");
    argv[k++] = xstrdup(t->id);
    for (size_t i = 0; i < n; i++)
        argv[k++] = xstrdup(command[i]);
    return argv;
}
