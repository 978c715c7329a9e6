/* shoald's process: its options, the pieces it runs and how they start and
 * stop together; the cluster duties of a bootstrapping or recovering node. */
#ifndef SHOAL_AGENT_DAEMON_H
#define SHOAL_AGENT_DAEMON_H

#include <jansson.h>
#include <uv.h>

#include "agent/node.h"

#define AGENT_MAX_LABELS     64
#define AGENT_MAX_REGISTRIES 64

struct options {
    const char *data_dir;
    const char *listen;
    const char *api;
    const char *name;
    const char *join;
    const char *token;
    const char *advertise;
    const char *restore;
    const char *labels[AGENT_MAX_LABELS];
    unsigned n_labels;
    int bootstrap;
    int force_new_cluster;
    unsigned voters;
    unsigned election_ms;
    unsigned heartbeat_ms;
    unsigned node_heartbeat_ms;
    unsigned node_down_ms;
    const char *insecure_registries[AGENT_MAX_REGISTRIES]; /* --insecure-registry */
    unsigned n_insecure;
    const char *registry_auth; /* --registry-auth FILE, or NULL */
    /* container networking (agent/net.h); NULL for the defaults */
    const char *bridge;
    const char *bridge_subnet;
};

struct daemon {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    struct agent_node node;
    struct rs_store *store; /* managers only */
    struct api_server *api;
    struct agent_heartbeat *heartbeat;
    struct agent_supervisor *supervisor;
    /* The node's images (DATA/images), from --insecure-registry and
     * --registry-auth; created at start, closed after the API. */
    struct agent_images *images;
    int manager;
    const struct options *opts;
    json_t *restore_services; /* from --restore, submitted once leader */
    int restore_done;
    int reset_done;
    int stopping;
    int reexec;
};

/* Parses argv into o. Returns 0, or -1 after printing the problem. */
int agent_daemon_parse_options(int argc, char **argv, struct options *o);

/* A new node's identity from the options (bootstrap or join). */
int agent_daemon_new_identity(struct daemon *d, const struct options *o, char *errmsg);

/* Applies --api/--name given on a later start. */
int agent_daemon_apply_overrides(struct daemon *d, const struct options *o, char *errmsg);

/* Reads the services of a backup file for --restore. */
int agent_daemon_load_restore(struct daemon *d, const char *path, char *errmsg);

/* The store's leader callback: initializes the cluster record on a
 * bootstrapping node, restores a backup, resets the membership after
 * --force-new-cluster. */
void agent_daemon_on_leader(void *data);

/* The heartbeat's role callback: restart as the new role. */
void agent_daemon_on_role(void *data, const char *role);

void agent_daemon_on_signal(uv_signal_t *h, int signum);

/* Stops every piece in order; the loop ends when all are closed. */
void agent_daemon_shutdown(struct daemon *d);

#endif
