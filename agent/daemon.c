#include "agent/daemon.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent/heartbeat.h"
#include "agent/images.h"
#include "agent/supervisor.h"
#include "api/server.h"
#include "common/log.h"
#include "common/util.h"
#include "raft/store.h"

#define DEFAULT_RAFT_ADDR         "127.0.0.1:7071"
#define DEFAULT_API_ADDR          "127.0.0.1:7070"
#define DEFAULT_VOTERS            3
#define DEFAULT_NODE_HEARTBEAT_MS 1000
#define DEFAULT_NODE_DOWN_MS      3000

/* Splits "host:port" binding into the address others use (advertise host
 * when given or when binding a wildcard) and the bind address. */
static int resolve_address(const char *given, const char *advertise, char *addr, size_t addr_size,
                           char *bind, size_t bind_size, char *errmsg)
{
    const char *colon = strrchr(given, ':');
    if (!colon || colon == given) {
        snprintf(errmsg, 256, "\"%s\" is not ip:port", given);
        return -EINVAL;
    }
    int wildcard = strncmp(given, "0.0.0.0:", 8) == 0;
    if (!advertise && wildcard) {
        snprintf(errmsg, 256, "%s listens on every address: give --advertise HOST", given);
        return -EINVAL;
    }
    bind[0] = '\0';
    if (advertise && strncmp(given, advertise, strlen(advertise)) != 0) {
        snprintf(addr, addr_size, "%s%s", advertise, colon);
        common_strlcpy(bind, given, bind_size);
    } else {
        common_strlcpy(addr, given, addr_size);
    }
    return 0;
}

int agent_daemon_new_identity(struct daemon *d, const struct options *o, char *errmsg)
{
    struct agent_node *n = &d->node;
    char host[64] = "node";
    gethostname(host, sizeof(host) - 1);
    char raft[64], api[64];
    int rv = resolve_address(o->listen ? o->listen : DEFAULT_RAFT_ADDR, o->advertise, raft,
                             sizeof(raft), n->raft_bind, sizeof(n->raft_bind), errmsg);
    rv = rv
             ?: resolve_address(o->api ? o->api : DEFAULT_API_ADDR, o->advertise, api, sizeof(api),
                                n->api_bind, sizeof(n->api_bind), errmsg);
    if (rv != 0)
        return rv;
    n->labels = json_object();
    for (unsigned i = 0; i < o->n_labels; i++) {
        const char *eq = strchr(o->labels[i], '=');
        char key[129];
        size_t klen = (size_t)(eq - o->labels[i]);
        if (klen >= sizeof(key)) {
            snprintf(errmsg, 256, "--label %s: key too long", o->labels[i]);
            return -EINVAL;
        }
        memcpy(key, o->labels[i], klen);
        key[klen] = '\0';
        json_object_set_new(n->labels, key, json_string(eq + 1));
    }
    const char *name = o->name ? o->name : host;
    if (o->bootstrap)
        return agent_node_create(n, name, raft, api, errmsg);
    return agent_node_new(n, name, raft, api, errmsg);
}

int agent_daemon_apply_overrides(struct daemon *d, const struct options *o, char *errmsg)
{
    struct agent_node *n = &d->node;
    if (o->listen && strcmp(o->listen, n->raft_address) != 0 &&
        strcmp(o->listen, n->raft_bind) != 0) {
        snprintf(errmsg, 256, "--listen %s differs from this node's Raft address %s", o->listen,
                 n->raft_address);
        return -EINVAL;
    }
    if (o->api && strcmp(o->api, n->api_address) != 0 && strcmp(o->api, n->api_bind) != 0) {
        snprintf(errmsg, 256, "--api %s differs from this node's API address %s", o->api,
                 n->api_address);
        return -EINVAL;
    }
    return 0;
}

int agent_daemon_load_restore(struct daemon *d, const char *path, char *errmsg)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    json_t *services = json_object_get(root, "services");
    if (!json_is_array(services)) {
        snprintf(errmsg, 256, "--restore %s: not a Shoal backup (%s)", path,
                 root ? "no services list" : jerr.text);
        json_decref(root);
        return -EINVAL;
    }
    d->restore_services = json_incref(services);
    json_decref(root);
    return 0;
}

static void leader_op_done(void *data, struct rs_op_result *res)
{
    const char *what = data;
    if (res->err.code != API_OK)
        LOGW("shoald: %s: %s", what, res->err.msg);
    else
        LOGI("shoald: %s done", what);
}

static json_t *cluster_init_op(struct daemon *d)
{
    const struct options *o = d->opts;
    struct agent_node *n = &d->node;
    char worker[41], manager[41], wtok[64], mtok[64];
    common_random_hex(worker, 20);
    common_random_hex(manager, 20);
    snprintf(wtok, sizeof(wtok), "SHOAL-WRK-%s", worker);
    snprintf(mtok, sizeof(mtok), "SHOAL-MGR-%s", manager);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long long mem = (long long)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE);
    /* "at": the time of its events (node.joined), as every command gives. */
    return json_pack(
        "{s:s, s:I, s:{s:s, s:s, s:s, s:s, s:i, s:i, s:i}, s:{s:s, s:s, s:s, s:s, s:s, s:O, "
        "s:{s:f, s:I}}, s:s}",
        "op", "cluster.init", "at", (json_int_t)common_wall_ms(), "cluster", "id", n->cluster_id,
        "admin_token", n->token, "worker_token", wtok, "manager_token", mtok, "voters",
        o && o->voters ? (int)o->voters : DEFAULT_VOTERS, "heartbeat_interval_ms",
        o && o->node_heartbeat_ms ? (int)o->node_heartbeat_ms : DEFAULT_NODE_HEARTBEAT_MS,
        "node_down_after_ms", o && o->node_down_ms ? (int)o->node_down_ms : DEFAULT_NODE_DOWN_MS,
        "node", "id", n->id_hex, "name", n->name, "role", "manager", "api_address", n->api_address,
        "raft_address", n->raft_address, "labels", n->labels, "resources", "cpu",
        (double)(cpus > 0 ? cpus : 1), "memory", (json_int_t)mem, "credential", n->credential);
}

void agent_daemon_on_leader(void *data)
{
    struct daemon *d = data;
    struct rs_state *st = rs_store_state(d->store);
    if (!st->cluster && d->node.bootstrap)
        rs_store_submit(d->store, cluster_init_op(d), leader_op_done, "cluster initialization");
    if (d->restore_services && !d->restore_done) {
        d->restore_done = 1;
        rs_store_submit(
            d->store,
            json_pack("{s:s, s:O}", "op", "services.restore", "services", d->restore_services),
            leader_op_done, "restore of the backup's services");
    }
    if (d->opts && d->opts->force_new_cluster && !d->reset_done) {
        d->reset_done = 1;
        rs_store_submit(d->store,
                        json_pack("{s:s, s:s}", "op", "members.reset", "keep", d->node.id_hex),
                        leader_op_done, "membership reset (--force-new-cluster)");
    }
}

void agent_daemon_on_role(void *data, const char *role)
{
    struct daemon *d = data;
    if (d->stopping)
        return;
    LOGW("shoald: this node is now a %s", role);
    common_strlcpy(d->node.role, role, sizeof(d->node.role));
    d->node.bootstrap = 0;
    char errmsg[256];
    if (agent_node_save(&d->node, errmsg) != 0) {
        LOGE("shoald: %s", errmsg);
        return;
    }
    if (strcmp(role, "worker") == 0) {
        /* A manager's Raft log means nothing to a worker; a later promotion
         * starts from a fresh copy sent by the leader. */
        char raft_dir[4200], old[4300];
        snprintf(raft_dir, sizeof(raft_dir), "%s/raft", d->node.data_dir);
        snprintf(old, sizeof(old), "%s/raft.demoted", d->node.data_dir);
        char cmd_dir[4400];
        snprintf(cmd_dir, sizeof(cmd_dir), "%s.%llu", old, (unsigned long long)common_wall_ms());
        if (rename(raft_dir, cmd_dir) != 0 && errno != ENOENT)
            LOGW("shoald: rename %s: %s", raft_dir, strerror(errno));
    }
    d->reexec = 1;
    agent_daemon_shutdown(d);
}

static void signal_closed(uv_handle_t *h)
{
    (void)h;
}

static void api_closed(void *data)
{
    struct daemon *d = data;
    d->api = NULL;
    if (d->images)
        agent_images_close(d->images);
    d->images = NULL;
    uv_close((uv_handle_t *)&d->sigterm, signal_closed);
    uv_close((uv_handle_t *)&d->sigint, signal_closed);
    LOGI("shoald: stopped");
}

static void store_stopped(void *data)
{
    struct daemon *d = data;
    d->store = NULL;
    if (d->api)
        api_server_close(d->api, api_closed, d);
    else
        api_closed(d);
}

static void heartbeat_stopped(void *data)
{
    struct daemon *d = data;
    d->heartbeat = NULL;
    if (d->store)
        rs_store_stop(d->store, store_stopped, d);
    else
        store_stopped(d);
}

static void supervisor_stopped(void *data)
{
    struct daemon *d = data;
    d->supervisor = NULL;
    if (d->heartbeat)
        agent_heartbeat_stop(d->heartbeat, heartbeat_stopped, d);
    else
        heartbeat_stopped(d);
}

/* Tasks keep running: the next shoald finds them again. */
void agent_daemon_shutdown(struct daemon *d)
{
    if (d->stopping)
        return;
    d->stopping = 1;
    if (d->api)
        api_server_stop_accepting(d->api);
    if (d->supervisor)
        agent_supervisor_stop(d->supervisor, supervisor_stopped, d);
    else if (d->heartbeat)
        agent_heartbeat_stop(d->heartbeat, heartbeat_stopped, d);
    else
        heartbeat_stopped(d);
}

void agent_daemon_on_signal(uv_signal_t *h, int signum)
{
    struct daemon *d = h->data;
    if (d->stopping) {
        LOGW("shoald: second signal %d: exiting now", signum);
        exit(1);
    }
    LOGI("shoald: signal %d: shutting down", signum);
    agent_daemon_shutdown(d);
}
