/* A node's identity and its data directory: the lock that keeps a second
 * shoald out, node.json (id, name, cluster, addresses) and the admin token. */
#ifndef SHOAL_AGENT_NODE_H
#define SHOAL_AGENT_NODE_H

#include <jansson.h>
#include <stdint.h>

#include "agent/net.h"

struct agent_node {
    char data_dir[4096];
    uint64_t id;
    char id_hex[17];
    char name[64];
    char cluster_id[33];
    char raft_address[64];
    char api_address[64];
    char raft_bind[64];  /* where Raft listens when it differs from raft_address, else "" */
    char api_bind[64];   /* where the API listens when it differs from api_address, else "" */
    int bootstrap;       /* created with --bootstrap: bootstrap Raft on every start (idempotent) */
    char token[65];      /* admin token ("" on workers) */
    char role[16];       /* "manager" or "worker" */
    char credential[65]; /* this node's secret for node-to-manager calls */
    json_t *managers;    /* owned: API addresses of the managers, as last learnt */
    json_t *labels;      /* owned: the labels given at join */
    int lock_fd;
    struct agent_net_config net; /* bridge, subnet, nft table, DATA/net (--bridge...) */
};

/* Frees what the node owns (not the lock). */
void agent_node_close(struct agent_node *n);

/* Creates a new identity for a joining node: a random id, the given
 * addresses, no cluster yet. */
int agent_node_new(struct agent_node *n, const char *name, const char *raft_address,
                   const char *api_address, char *errmsg);

/* Writes the admin token file (0600). */
int agent_node_save_token(const struct agent_node *n, char *errmsg);

/* Creates data_dir (0700) if needed and takes an exclusive lock on it.
 * Returns 0 or a negative errno with the reason in errmsg (256 bytes);
 * -EBUSY when another process holds it. */
int agent_node_lock(struct agent_node *n, const char *data_dir, char *errmsg);

/* Loads node.json and admin.token. Returns 0, -ENOENT when the directory
 * holds no node yet, or another negative errno with errmsg set. */
int agent_node_load(struct agent_node *n, char *errmsg);

/* Creates a new identity for a bootstrapping node (random id, cluster id and
 * admin token) and writes it. Returns 0 or a negative errno with errmsg. */
int agent_node_create(struct agent_node *n, const char *name, const char *raft_address,
                      const char *api_address, char *errmsg);

/* Writes node.json atomically (temp file, fsync, rename). */
int agent_node_save(const struct agent_node *n, char *errmsg);

#endif
