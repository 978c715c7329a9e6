/* Helpers shared by the files of the net module: running `ip` and `nft`,
 * network namespace files, and the persisted per-task allocations. */
#ifndef SHOAL_AGENT_NET_INTERNAL_H
#define SHOAL_AGENT_NET_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "agent/net.h"

/* ---- net_sys.c ---- */

/* Runs argv (argv[0] "ip" or "nft", looked up in the sbin and bin dirs)
 * with input (may be NULL) on its stdin, inside the netns at netns_path
 * when not NULL, for at most 10 s. Returns 0 when it exits 0, else a
 * negative errno with "PROG: first line of its output" in errmsg. */
int agent_net__run(const char *const argv[], const char *input, const char *netns_path,
                   char *errmsg);

/* Creates a new network namespace bind-mounted on path (an empty file is
 * made first). Returns 0 or a negative errno with errmsg. */
int agent_net__netns_create(const char *path, char *errmsg);

/* Unmounts and removes a netns file. 0 also when it does not exist. */
int agent_net__netns_remove(const char *path, char *errmsg);

/* Whether path holds a mounted network namespace (nsfs). */
int agent_net__netns_alive(const char *path);

/* Writes value to /proc/sys/PATH. Returns 0 or a negative errno. */
int agent_net__sysctl(const char *path, const char *value, char *errmsg);

/* ---- net_alloc.c ---- */

struct agent_net__alloc {
    char id[65];
    char ip[16];
    char veth[16];
    struct agent_net_port ports[AGENT_NET_MAX_PORTS];
    size_t n_ports;
};

/* A parsed subnet: network address and prefix length, host order. */
struct agent_net__subnet {
    uint32_t net;
    int prefix;
};

int agent_net__parse_subnet(const char *cidr, struct agent_net__subnet *out);
void agent_net__ip_text(uint32_t ip, char out[16]);

/* Paths under cfg->data_dir. Return -ENAMETOOLONG when size is too small. */
int agent_net__alloc_path(const struct agent_net_config *cfg, const char *id, char *out,
                          size_t size);
int agent_net__netns_path(const struct agent_net_config *cfg, const char *id, char *out,
                          size_t size);

/* Loads the allocation of id. Returns 0, -ENOENT or another negative errno
 * with errmsg. */
int agent_net__alloc_load(const struct agent_net_config *cfg, const char *id,
                          struct agent_net__alloc *a, char *errmsg);

/* Writes a's file atomically (temp file, fsync, rename). */
int agent_net__alloc_save(const struct agent_net_config *cfg, const struct agent_net__alloc *a,
                          char *errmsg);

/* Removes id's allocation file; 0 also when it does not exist. */
int agent_net__alloc_remove(const struct agent_net_config *cfg, const char *id, char *errmsg);

/* Every allocation on the node. *all is transferred (free with free()). */
int agent_net__alloc_all(const struct agent_net_config *cfg, struct agent_net__alloc **all,
                         size_t *n, char *errmsg);

#endif
