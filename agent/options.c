/* shoald's command line. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/daemon.h"
#include "common/log.h"
#include "common/units.h"

#define DEFAULT_DATA_DIR "/var/lib/shoal"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shoald [options]\n"
            "  --data-dir DIR            state directory (default " DEFAULT_DATA_DIR ")\n"
            "  --bootstrap               first start of a new cluster's first node\n"
            "  --join ADDR --token T     join the cluster through the manager API at ADDR\n"
            "  --name NAME               node name (default: the host name)\n"
            "  --label K=V               node label (repeatable)\n"
            "  --listen IP:PORT          Raft address (default 127.0.0.1:7071)\n"
            "  --api IP:PORT             REST API address (default 127.0.0.1:7070)\n"
            "  --advertise HOST          address other nodes use when listening on 0.0.0.0\n"
            "  --voters N                with --bootstrap: Raft voters to keep (1-7, default 3)\n"
            "  --heartbeat-interval D    with --bootstrap: node heartbeat interval (default 1s)\n"
            "  --node-down-after D       with --bootstrap: node down after (default 3s)\n"
            "  --force-new-cluster       after quorum loss: continue alone with this node's state\n"
            "  --restore FILE            with --bootstrap: start from a backup\n"
            "  --election-timeout D      Raft election timeout (default 750ms)\n"
            "  --heartbeat-timeout D     Raft heartbeat interval (default 100ms)\n"
            "  --insecure-registry H:P   pull from this registry over plain HTTP (repeatable)\n"
            "  --registry-auth FILE      registry credentials ({\"auths\": {\"host:port\": ...}})\n"
            "  --bridge NAME             container bridge (default " AGENT_NET_DEFAULT_BR ")\n"
            "  --bridge-subnet CIDR      its IPv4 subnet (default " AGENT_NET_DEFAULT_CIDR ")\n"
            "  --log-level LEVEL         error, warn, info, debug or trace (default info)\n"
            "  -h, --help                this help\n"
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

enum {
    O_DATA = 256,
    O_BOOT,
    O_JOIN,
    O_TOKEN,
    O_LISTEN,
    O_API,
    O_NAME,
    O_LABEL,
    O_ADVERTISE,
    O_VOTERS,
    O_NODE_HB,
    O_NODE_DOWN,
    O_FORCE,
    O_RESTORE,
    O_ELECT,
    O_HB,
    O_LOG,
    O_INSECURE,
    O_REG_AUTH,
    O_BRIDGE,
    O_BRIDGE_SUBNET,
};

static const struct option longopts[] = {
    {"data-dir", required_argument, NULL, O_DATA},
    {"bootstrap", no_argument, NULL, O_BOOT},
    {"join", required_argument, NULL, O_JOIN},
    {"token", required_argument, NULL, O_TOKEN},
    {"listen", required_argument, NULL, O_LISTEN},
    {"api", required_argument, NULL, O_API},
    {"name", required_argument, NULL, O_NAME},
    {"label", required_argument, NULL, O_LABEL},
    {"advertise", required_argument, NULL, O_ADVERTISE},
    {"voters", required_argument, NULL, O_VOTERS},
    {"heartbeat-interval", required_argument, NULL, O_NODE_HB},
    {"node-down-after", required_argument, NULL, O_NODE_DOWN},
    {"force-new-cluster", no_argument, NULL, O_FORCE},
    {"restore", required_argument, NULL, O_RESTORE},
    {"election-timeout", required_argument, NULL, O_ELECT},
    {"heartbeat-timeout", required_argument, NULL, O_HB},
    {"log-level", required_argument, NULL, O_LOG},
    {"insecure-registry", required_argument, NULL, O_INSECURE},
    {"registry-auth", required_argument, NULL, O_REG_AUTH},
    {"bridge", required_argument, NULL, O_BRIDGE},
    {"bridge-subnet", required_argument, NULL, O_BRIDGE_SUBNET},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int one_option(int c, struct options *o)
{
    switch (c) {
    case O_DATA:
        o->data_dir = optarg;
        return 0;
    case O_BOOT:
        o->bootstrap = 1;
        return 0;
    case O_JOIN:
        o->join = optarg;
        return 0;
    case O_TOKEN:
        o->token = optarg;
        return 0;
    case O_LISTEN:
        o->listen = optarg;
        return 0;
    case O_API:
        o->api = optarg;
        return 0;
    case O_NAME:
        o->name = optarg;
        return 0;
    case O_ADVERTISE:
        o->advertise = optarg;
        return 0;
    case O_RESTORE:
        o->restore = optarg;
        return 0;
    case O_INSECURE:
        if (o->n_insecure == AGENT_MAX_REGISTRIES || !optarg[0] || strpbrk(optarg, "/ ")) {
            fprintf(stderr, "shoald: --insecure-registry: \"%s\" is not HOST:PORT (at most %d)\n",
                    optarg, AGENT_MAX_REGISTRIES);
            return -1;
        }
        o->insecure_registries[o->n_insecure++] = optarg;
        return 0;
    case O_REG_AUTH:
        o->registry_auth = optarg;
        return 0;
    case O_FORCE:
        o->force_new_cluster = 1;
        return 0;
    case O_LABEL:
        if (o->n_labels == AGENT_MAX_LABELS || !strchr(optarg, '=') || optarg[0] == '=') {
            fprintf(stderr, "shoald: --label: \"%s\" is not K=V (at most %d labels)\n", optarg,
                    AGENT_MAX_LABELS);
            return -1;
        }
        o->labels[o->n_labels++] = optarg;
        return 0;
    case O_VOTERS: {
        char *end;
        long v = strtol(optarg, &end, 10);
        if (*end || v < 1 || v > 7) {
            fprintf(stderr, "shoald: --voters: must be from 1 to 7\n");
            return -1;
        }
        o->voters = (unsigned)v;
        return 0;
    }
    case O_NODE_HB:
        return parse_ms("--heartbeat-interval", optarg, &o->node_heartbeat_ms);
    case O_NODE_DOWN:
        return parse_ms("--node-down-after", optarg, &o->node_down_ms);
    case O_ELECT:
        return parse_ms("--election-timeout", optarg, &o->election_ms);
    case O_HB:
        return parse_ms("--heartbeat-timeout", optarg, &o->heartbeat_ms);
    case O_LOG:
        if (common_log_set_level(optarg) == 0)
            return 0;
        fprintf(stderr, "shoald: --log-level: unknown level \"%s\"\n", optarg);
        return -1;
    case O_BRIDGE:
    case O_BRIDGE_SUBNET: {
        /* checked here so that a bad value stops shoald at once */
        struct agent_net_config probe;
        char errmsg[256];
        *(c == O_BRIDGE ? &o->bridge : &o->bridge_subnet) = optarg;
        if (agent_net_config_init(&probe, "/", o->bridge, o->bridge_subnet, errmsg) == 0)
            return 0;
        fprintf(stderr, "shoald: %s\n", errmsg);
        return -1;
    }
    case 'h':
        usage(stdout);
        exit(0);
    default:
        usage(stderr);
        return -1;
    }
}

int agent_daemon_parse_options(int argc, char **argv, struct options *o)
{
    memset(o, 0, sizeof(*o));
    o->data_dir = DEFAULT_DATA_DIR;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1)
        if (one_option(c, o) != 0)
            return -1;
    if (optind < argc) {
        fprintf(stderr, "shoald: unexpected argument \"%s\"\n", argv[optind]);
        return -1;
    }
    const char *clash = o->bootstrap && o->join           ? "--bootstrap and --join"
                        : o->restore && !o->bootstrap     ? "--restore without --bootstrap"
                        : o->force_new_cluster && o->join ? "--force-new-cluster and --join"
                        : o->force_new_cluster && o->bootstrap
                            ? "--force-new-cluster and --bootstrap"
                            : NULL;
    if (o->join && !o->token) {
        fprintf(stderr, "shoald: --join needs --token (from `shoal cluster join-token`)\n");
        return -1;
    }
    if (clash) {
        fprintf(stderr, "shoald: %s do not go together\n", clash);
        return -1;
    }
    return 0;
}
