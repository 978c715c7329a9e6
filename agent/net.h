/* Container networking on a node: a bridge, a network namespace and veth per
 * task, and published ports as nftables DNAT in Shoal's own table.
 *
 * Every function here BLOCKS (it execs `ip` and `nft -f -`, a few ms each):
 * call them from the libuv thread pool, never on the loop. They are
 * thread-safe against each other: one process-wide mutex plus a file lock on
 * DATA/net/lock serialize every change.
 *
 * What exists on the host for a node whose config is cfg:
 * - the bridge cfg->bridge, address = first address of cfg->subnet, up;
 *   net.ipv4.ip_forward=1 and route_localnet=1 on the bridge;
 * - the nft table `ip cfg->table` with a map `ports` (proto . published port
 *   : task ip . target port), DNAT of every local address (127.0.0.1
 *   included) through it in prerouting and output, masquerade of the subnet
 *   leaving the node and of localhost or hairpin traffic DNATed into the
 *   bridge, and forward accept rules for the bridge. No other table is read
 *   or written. Those accepts cannot override a drop elsewhere: where
 *   Docker's FORWARD policy is DROP, forwarded traffic of the bridge (to and
 *   from other hosts) is dropped there; 127.0.0.1 and the node's own
 *   addresses still work (they are not forwarded);
 * - per task: DATA/net/tasks/ID.json (the allocation: address, veth name,
 *   ports; written before anything else is made, so that a crash midway
 *   leaves a record that teardown can follow), the netns bind-mounted on
 *   DATA/net/ns/ID, a veth pair (host end "vs" + 10 hex of a hash of table
 *   and id, on the bridge; the other end eth0 in the netns), and one map
 *   element per published port. */
#ifndef SHOAL_AGENT_NET_H
#define SHOAL_AGENT_NET_H

#include <stddef.h>

#define AGENT_NET_MAX_PORTS     64
#define AGENT_NET_DEFAULT_BR    "shoal0"
#define AGENT_NET_DEFAULT_CIDR  "10.88.0.0/24"
#define AGENT_NET_DEFAULT_TABLE "shoal"

struct agent_net_config {
    char bridge[16];     /* interface name, default "shoal0" */
    char subnet[32];     /* IPv4 CIDR with host bits zero, /8 to /29, default 10.88.0.0/24 */
    char table[32];      /* nft table: "shoal" for the default bridge, else "shoal_" + bridge */
    char data_dir[4096]; /* absolute: node data dir + "/net" */
};

/* Fills cfg for a node: node_data_dir (made absolute) + "/net", bridge and
 * subnet (NULL for the defaults), the table name derived from the bridge.
 * Touches nothing on the system. Returns 0, or -EINVAL / -ENAMETOOLONG with
 * the reason in errmsg (256 bytes). */
int agent_net_config_init(struct agent_net_config *cfg, const char *node_data_dir,
                          const char *bridge, const char *subnet, char *errmsg);

/* Sets up the node side (see above): the state dirs, the bridge if missing,
 * the sysctls and the nft table. Idempotent: chains are replaced in one nft
 * transaction and the map keeps its elements, so a restarted shoald keeps
 * its tasks' ports. Needs root. Returns 0 or a negative errno with errmsg. */
int agent_net_init(const struct agent_net_config *cfg, char *errmsg);

/* agent_net_init once per process and config (a later call with the same
 * config returns 0 at once; one that failed is tried again next time).
 * This is what the runc driver calls, from the thread pool, before the
 * first setup: shoald does not touch the network at start. */
int agent_net_ensure(const struct agent_net_config *cfg, char *errmsg);

struct agent_net_port {
    int published; /* 1-65535, unique per proto on the node */
    int target;    /* 1-65535 */
    char proto[4]; /* "tcp" or "udp" */
};

struct agent_net_task {
    char netns[4200]; /* the netns path to give runc: DATA/net/ns/ID */
    char ip[16];      /* the task's address, e.g. "10.88.0.2" */
    char gateway[16]; /* the bridge's address, the default route */
    int prefix;       /* the subnet's prefix length */
    char veth[16];    /* host end of the veth pair */
};

/* Networking for a bridge-mode task: allocates an address (persisted, so a
 * restarted shoald does not reuse it), creates the netns with lo up and eth0
 * (address, up, default route via the gateway), and a map element per port
 * (the published port on every node address, 127.0.0.1 included, to ip:target).
 * Call agent_net_ensure first. task_id: 1-64 of [A-Za-z0-9_.-], not starting
 * with '.'. ports (n_ports <= AGENT_NET_MAX_PORTS) are copied; out is filled.
 * Idempotent: a second call for the same id and ports returns the same
 * result; with other ports (or when the netns or veth has vanished, as after
 * a reboot) the old state is torn down and made again. On failure everything
 * this call made is undone. Returns 0, -EINVAL (bad id or port), -EADDRINUSE
 * (a published port already used by another task), -ENOSPC (subnet full) or
 * another negative errno, with the reason in errmsg. */
int agent_net_task_setup(const struct agent_net_config *cfg, const char *task_id,
                         const struct agent_net_port *ports, size_t n_ports,
                         struct agent_net_task *out, char *errmsg);

/* Removes everything made for the task: map elements, veth, netns, the
 * allocation (last). Idempotent and safe when nothing exists (clean-up of
 * leftovers after a restart). Goes on after a failed step and returns the
 * first error (0 or a negative errno with errmsg). */
int agent_net_task_teardown(const struct agent_net_config *cfg, const char *task_id, char *errmsg);

/* The ids of the tasks with network state on this node (an allocation or a
 * netns file), sorted. *ids is transferred (free with agent_net_list_free).
 * Returns 0 (with *n = 0 when there is none) or a negative errno. */
int agent_net_list(const struct agent_net_config *cfg, char ***ids, size_t *n);
void agent_net_list_free(char **ids, size_t n);

/* The host-side veth name for a task (12 chars + NUL into out[16]). */
void agent_net_veth_name(const struct agent_net_config *cfg, const char *task_id, char out[16]);

#endif
