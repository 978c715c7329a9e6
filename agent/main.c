/* shoald: the Shoal node agent. Parses options, takes the data dir, starts
 * the replicated store and the API on one libuv loop, and shuts down cleanly
 * on SIGTERM/SIGINT (writes under way are answered before Raft closes). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/node.h"
#include "api/server.h"
#include "common/log.h"
#include "common/units.h"
#include "common/util.h"
#include "raft/store.h"

#define DEFAULT_DATA_DIR  "/var/lib/shoal"
#define DEFAULT_RAFT_ADDR "127.0.0.1:7071"
#define DEFAULT_API_ADDR  "127.0.0.1:7070"

struct options {
    const char *data_dir;
    const char *listen;
    const char *api;
    const char *name;
    int bootstrap;
    unsigned election_ms;
    unsigned heartbeat_ms;
};

struct daemon {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    struct agent_node node;
    struct rs_store *store;
    struct api_server *api;
    int stopping;
    int exit_code;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: shoald [options]\n"
               "  --data-dir DIR          state directory (default " DEFAULT_DATA_DIR ")\n"
               "  --bootstrap             first start of a new cluster's first node\n"
               "  --listen IP:PORT        Raft address (default " DEFAULT_RAFT_ADDR ")\n"
               "  --api IP:PORT           REST API address (default " DEFAULT_API_ADDR ")\n"
               "  --name NAME             node name (default: the host name)\n"
               "  --election-timeout D    Raft election timeout (default 1s)\n"
               "  --heartbeat-timeout D   Raft heartbeat interval (default 100ms)\n"
               "  --log-level LEVEL       error, warn, info, debug or trace (default info)\n"
               "  -h, --help              this help\n"
               "Later starts need only --data-dir.\n");
}

static int parse_ms(const char *opt, const char *value, unsigned *out)
{
    int64_t ms;
    if (common_parse_duration(value, &ms) != 0 || ms <= 0 || ms > 600000) {
        fprintf(stderr, "shoald: %s: \"%s\" is not a duration such as 1s or 200ms\n", opt, value);
        return -1;
    }
    *out = (unsigned)ms;
    return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
    enum { O_DATA = 256, O_BOOT, O_LISTEN, O_API, O_NAME, O_ELECT, O_HB, O_LOG };
    static const struct option longopts[] = {
        {"data-dir", required_argument, NULL, O_DATA},
        {"bootstrap", no_argument, NULL, O_BOOT},
        {"listen", required_argument, NULL, O_LISTEN},
        {"api", required_argument, NULL, O_API},
        {"name", required_argument, NULL, O_NAME},
        {"election-timeout", required_argument, NULL, O_ELECT},
        {"heartbeat-timeout", required_argument, NULL, O_HB},
        {"log-level", required_argument, NULL, O_LOG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct options){.data_dir = DEFAULT_DATA_DIR};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_DATA:
            o->data_dir = optarg;
            break;
        case O_BOOT:
            o->bootstrap = 1;
            break;
        case O_LISTEN:
            o->listen = optarg;
            break;
        case O_API:
            o->api = optarg;
            break;
        case O_NAME:
            o->name = optarg;
            break;
        case O_ELECT:
            if (parse_ms("--election-timeout", optarg, &o->election_ms) != 0)
                return -1;
            break;
        case O_HB:
            if (parse_ms("--heartbeat-timeout", optarg, &o->heartbeat_ms) != 0)
                return -1;
            break;
        case O_LOG:
            if (common_log_set_level(optarg) != 0) {
                fprintf(stderr, "shoald: --log-level: unknown level \"%s\"\n", optarg);
                return -1;
            }
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "shoald: unexpected argument \"%s\"\n", argv[optind]);
        return -1;
    }
    return 0;
}

/* Loads the node from its data dir, or creates it when bootstrapping. */
static int node_setup(struct daemon *d, const struct options *o, char *errmsg)
{
    struct agent_node *n = &d->node;
    int rv = agent_node_lock(n, o->data_dir, errmsg);
    if (rv != 0)
        return rv;
    rv = agent_node_load(n, errmsg);
    if (rv == -ENOENT) {
        if (!o->bootstrap) {
            snprintf(errmsg, 256, "%s holds no node yet: start the first node with --bootstrap",
                     o->data_dir);
            return rv;
        }
        char host[64] = "node";
        gethostname(host, sizeof(host) - 1);
        return agent_node_create(n, o->name ? o->name : host,
                                 o->listen ? o->listen : DEFAULT_RAFT_ADDR,
                                 o->api ? o->api : DEFAULT_API_ADDR, errmsg);
    }
    if (rv != 0)
        return rv;
    if (o->listen && strcmp(o->listen, n->raft_address) != 0) {
        snprintf(errmsg, 256, "--listen %s differs from this node's Raft address %s", o->listen,
                 n->raft_address);
        return -EINVAL;
    }
    int changed = 0;
    if (o->api && strcmp(o->api, n->api_address) != 0) {
        common_strlcpy(n->api_address, o->api, sizeof(n->api_address));
        changed = 1;
    }
    if (o->name && strcmp(o->name, n->name) != 0) {
        common_strlcpy(n->name, o->name, sizeof(n->name));
        changed = 1;
    }
    return changed ? agent_node_save(n, errmsg) : 0;
}

static void signal_closed(uv_handle_t *h)
{
    (void)h;
}

static void api_closed(void *data)
{
    struct daemon *d = data;
    d->api = NULL;
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

static void on_signal(uv_signal_t *h, int signum)
{
    struct daemon *d = h->data;
    if (d->stopping) {
        LOGW("shoald: second signal %d: exiting now", signum);
        exit(1);
    }
    d->stopping = 1;
    LOGI("shoald: signal %d: shutting down", signum);
    if (d->api)
        api_server_stop_accepting(d->api);
    rs_store_stop(d->store, store_stopped, d);
}

static int start(struct daemon *d, const struct options *o, char *errmsg)
{
    int rv = node_setup(d, o, errmsg);
    if (rv != 0)
        return rv;
    char raft_dir[4200];
    snprintf(raft_dir, sizeof(raft_dir), "%s/raft", d->node.data_dir);
    if (mkdir(raft_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(errmsg, 256, "create %s: %s", raft_dir, strerror(errno));
        return -errno;
    }
    struct rs_store_config scfg = {
        .dir = raft_dir,
        .id = d->node.id,
        .address = d->node.raft_address,
        .bootstrap = d->node.bootstrap,
        .election_timeout_ms = o->election_ms,
        .heartbeat_timeout_ms = o->heartbeat_ms,
    };
    rv = rs_store_start(&d->store, &d->loop, &scfg, errmsg);
    if (rv != 0)
        return rv;
    struct api_server_config acfg = {
        .listen = d->node.api_address,
        .token = d->node.token,
        .cluster_id = d->node.cluster_id,
        .node_id = d->node.id_hex,
        .node_name = d->node.name,
        .raft_address = d->node.raft_address,
    };
    rv = api_server_start(&d->api, &d->loop, d->store, &acfg, errmsg);
    if (rv != 0) {
        rs_store_stop(d->store, NULL, NULL);
        d->store = NULL;
        return rv;
    }
    return 0;
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
    if (parse_options(argc, argv, &o) != 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    static struct daemon d;
    uv_loop_init(&d.loop);
    uv_signal_init(&d.loop, &d.sigterm);
    uv_signal_init(&d.loop, &d.sigint);
    d.sigterm.data = d.sigint.data = &d;
    char errmsg[256] = "";
    if (start(&d, &o, errmsg) != 0) {
        LOGE("shoald: %s", errmsg);
        uv_close((uv_handle_t *)&d.sigterm, signal_closed);
        uv_close((uv_handle_t *)&d.sigint, signal_closed);
        uv_run(&d.loop, UV_RUN_DEFAULT);
        return 1;
    }
    uv_signal_start(&d.sigterm, on_signal, SIGTERM);
    uv_signal_start(&d.sigint, on_signal, SIGINT);
    LOGI("shoald: node %s (%s) raft %s api %s data %s", d.node.id_hex, d.node.name,
         d.node.raft_address, d.node.api_address, d.node.data_dir);
    uv_run(&d.loop, UV_RUN_DEFAULT);
    int rv = uv_loop_close(&d.loop);
    if (rv != 0)
        LOGW("shoald: loop closed with handles open: %s", uv_strerror(rv));
    if (d.node.lock_fd >= 0)
        close(d.node.lock_fd);
    return 0;
}
