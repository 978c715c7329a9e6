/* shoald: the Shoal node agent. Parses options, takes the data dir, joins or
 * bootstraps a cluster, starts the replicated store (managers), the API and
 * heartbeats on one libuv loop, and shuts down cleanly on SIGTERM/SIGINT
 * (writes under way are answered, leadership is handed over, Raft closes). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/daemon.h"
#include "agent/heartbeat.h"
#include "agent/images.h"
#include "agent/supervisor.h"
#include "agent/join.h"
#include "agent/logs.h"
#include "agent/stats.h"
#include "api/server.h"
#include "common/log.h"
#include "common/util.h"
#include "raft/store.h"

/* Loads the node from its data dir, or creates it by bootstrapping or by
 * joining a cluster. */
static int node_setup(struct daemon *d, const struct options *o, char *errmsg)
{
    struct agent_node *n = &d->node;
    int rv = agent_node_lock(n, o->data_dir, errmsg);
    if (rv != 0)
        return rv;
    rv = agent_node_load(n, errmsg);
    if (rv == 0) {
        if (o->restore || (o->join && o->token)) {
            snprintf(errmsg, 256,
                     "%s already holds a node: --restore and --join need a new data dir",
                     o->data_dir);
            return -EEXIST;
        }
        return agent_daemon_apply_overrides(d, o, errmsg);
    }
    if (rv != -ENOENT)
        return rv;
    if (!o->bootstrap && !o->join) {
        snprintf(errmsg, 256,
                 "%s holds no node yet: start the first node with --bootstrap, the others with "
                 "--join ADDR --token TOKEN",
                 o->data_dir);
        return rv;
    }
    rv = agent_daemon_new_identity(d, o, errmsg);
    if (rv != 0)
        return rv;
    if (o->bootstrap)
        return 0;
    rv = agent_join(n, o->join, o->token ? o->token : "", errmsg);
    if (rv == 0 && n->token[0])
        rv = agent_node_save_token(n, errmsg);
    if (rv == 0)
        rv = agent_node_save(n, errmsg);
    if (rv == 0)
        LOGI("shoald: joined cluster %s as a %s", n->cluster_id, n->role);
    return rv;
}

static int start_store(struct daemon *d, const struct options *o, char *errmsg)
{
    char raft_dir[4200];
    snprintf(raft_dir, sizeof(raft_dir), "%s/raft", d->node.data_dir);
    if (mkdir(raft_dir, 0700) != 0 && errno != EEXIST) {
        int e = errno;
        snprintf(errmsg, 256, "create %s: %s", raft_dir, strerror(e));
        return -e;
    }
    struct rs_store_config scfg = {
        .dir = raft_dir,
        .id = d->node.id,
        .address = d->node.raft_address,
        .bind_address = d->node.raft_bind,
        .bootstrap = d->node.bootstrap,
        .force_new_cluster = o->force_new_cluster,
        .election_timeout_ms = o->election_ms,
        .heartbeat_timeout_ms = o->heartbeat_ms,
    };
    int rv = rs_store_start(&d->store, &d->loop, &scfg, errmsg);
    if (rv == 0)
        rs_store_on_leader(d->store, agent_daemon_on_leader, d);
    return rv;
}

static const char *current_manager(void *data)
{
    struct daemon *d = data;
    return d->heartbeat ? agent_heartbeat_manager(d->heartbeat) : NULL;
}

/* The supervisor's manager: a manager watches its own store; a worker the
 * manager its heartbeats go to. */
static const char *supervisor_manager(void *data)
{
    struct daemon *d = data;
    return d->manager ? d->node.api_address : current_manager(d);
}

static void supervisor_manager_failed(void *data)
{
    struct daemon *d = data;
    if (!d->manager && d->heartbeat)
        agent_heartbeat_failover(d->heartbeat);
}

static void node_images(void *data, const char *const *argv, api_node_images_done_cb done, void *op)
{
    struct daemon *d = data;
    agent_images_run(d->images, argv, done, op);
}

/* The image store DATA/images and the registries' settings. */
static int start_images(struct daemon *d, const struct options *o, char *errmsg)
{
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/images", d->node.data_dir);
    struct agent_images_config icfg = {
        .store_dir = dir,
        .insecure = o->insecure_registries,
        .n_insecure = o->n_insecure,
        .auth_file = o->registry_auth,
    };
    return agent_images_init(&d->images, &d->loop, &icfg, errmsg);
}

static int start(struct daemon *d, const struct options *o, char *errmsg)
{
    int rv = node_setup(d, o, errmsg);
    if (rv == 0)
        rv = agent_net_config_init(&d->node.net, d->node.data_dir, o->bridge, o->bridge_subnet,
                                   errmsg);
    if (rv != 0)
        return rv;
    d->manager = strcmp(d->node.role, "manager") == 0;
    if (o->restore && (rv = agent_daemon_load_restore(d, o->restore, errmsg)) != 0)
        return rv;
    if (d->manager && (rv = start_store(d, o, errmsg)) != 0)
        return rv;
    if ((rv = start_images(d, o, errmsg)) != 0)
        return rv;
    struct api_server_config acfg = {
        .listen = d->node.api_bind[0] ? d->node.api_bind : d->node.api_address,
        .token = d->node.token,
        .cluster_id = d->node.cluster_id,
        .node_id = d->node.id_hex,
        .node_name = d->node.name,
        .raft_address = d->node.raft_address,
        .manager_cb = current_manager,
        .manager_data = d,
        .credential = d->node.credential,
        .node_logs = agent_logs_query,
        .node_logs_data = &d->node,
        .node_stats = agent_stats_query,
        .node_images = node_images,
        .node_images_data = d,
    };
    rv = api_server_start(&d->api, &d->loop, d->store, &acfg, errmsg);
    if (rv == 0)
        rv = agent_heartbeat_start(&d->heartbeat, &d->loop, &d->node, agent_daemon_on_role, d);
    struct agent_supervisor_managers managers = {supervisor_manager, supervisor_manager_failed, d};
    if (rv == 0)
        rv = agent_supervisor_start(&d->supervisor, &d->loop, &d->node, &managers, d->images,
                                    errmsg);
    if (rv != 0 && !errmsg[0])
        snprintf(errmsg, 256, "start: %s", strerror(-rv));
    return rv;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    struct options o;
    const char *env_level = getenv("SHOAL_LOG");
    if (env_level)
        common_log_set_level(env_level);
    if (agent_daemon_parse_options(argc, argv, &o) != 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    static struct daemon d;
    uv_loop_init(&d.loop);
    uv_signal_init(&d.loop, &d.sigterm);
    uv_signal_init(&d.loop, &d.sigint);
    d.sigterm.data = d.sigint.data = &d;
    d.opts = &o;
    char errmsg[256] = "";
    if (start(&d, &o, errmsg) != 0) {
        LOGE("shoald: %s", errmsg);
        agent_daemon_shutdown(&d);
        uv_run(&d.loop, UV_RUN_DEFAULT);
        return 1;
    }
    uv_signal_start(&d.sigterm, agent_daemon_on_signal, SIGTERM);
    uv_signal_start(&d.sigint, agent_daemon_on_signal, SIGINT);
    LOGI("shoald: %s %s (%s) raft %s api %s data %s", d.node.role, d.node.id_hex, d.node.name,
         d.manager ? d.node.raft_address : "-", d.node.api_address, d.node.data_dir);
    uv_run(&d.loop, UV_RUN_DEFAULT);
    int rv = uv_loop_close(&d.loop);
    if (rv != 0)
        LOGW("shoald: loop closed with handles open: %s", uv_strerror(rv));
    agent_node_close(&d.node);
    json_decref(d.restore_services);
    if (d.node.lock_fd >= 0)
        close(d.node.lock_fd);
    if (d.reexec) {
        /* The node's role changed: start again as what it now is. */
        LOGI("shoald: restarting as a %s", d.node.role);
        char *args[12 + 2 * AGENT_MAX_REGISTRIES] = {argv[0], "--data-dir", d.node.data_dir};
        size_t n = 3;
        for (unsigned i = 0; i < o.n_insecure; i++) {
            args[n++] = "--insecure-registry";
            args[n++] = (char *)o.insecure_registries[i];
        }
        if (o.registry_auth) {
            args[n++] = "--registry-auth";
            args[n++] = (char *)o.registry_auth;
        }
        if (o.bridge) {
            args[n++] = "--bridge";
            args[n++] = (char *)o.bridge;
        }
        if (o.bridge_subnet) {
            args[n++] = "--bridge-subnet";
            args[n++] = (char *)o.bridge_subnet;
        }
        execv("/proc/self/exe", args);
        LOGE("shoald: re-exec: %s", strerror(errno));
        return 1;
    }
    return 0;
}
