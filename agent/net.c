/* Container networking on a node: the bridge and Shoal's nft table
 * (agent_net_init), per-task netns, veth and port map elements (setup and
 * teardown). See agent/net.h; net_sys.c runs the commands, net_alloc.c
 * keeps the allocations. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/net.h"
#include "agent/net_internal.h"
#include "common/util.h"

/* Serializes every change in this process; the file lock on DATA/net/lock
 * keeps out another process working on the same state. */
static pthread_mutex_t net_mutex = PTHREAD_MUTEX_INITIALIZER;

static int name_ok(const char *s, size_t max, const char *extra)
{
    size_t len = strlen(s);
    if (len == 0 || len > max || s[0] == '.' || s[0] == '-')
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr(extra, *p)))
            return 0;
    return 1;
}

static int task_id_ok(const char *id)
{
    return id && name_ok(id, 64, "_.-");
}

int agent_net_config_init(struct agent_net_config *cfg, const char *node_data_dir,
                          const char *bridge, const char *subnet, char *errmsg)
{
    memset(cfg, 0, sizeof(*cfg));
    bridge = bridge ? bridge : AGENT_NET_DEFAULT_BR;
    subnet = subnet ? subnet : AGENT_NET_DEFAULT_CIDR;
    struct agent_net__subnet sn;
    if (!name_ok(bridge, IFNAMSIZ - 1, "_-")) {
        snprintf(errmsg, 256,
                 "--bridge: \"%.32s\" is not an interface name (1-15 of a-z A-Z 0-9 _ -)", bridge);
        return -EINVAL;
    }
    if (agent_net__parse_subnet(subnet, &sn) != 0) {
        snprintf(errmsg, 256,
                 "--bridge-subnet: \"%.40s\" is not an IPv4 network such as 10.88.0.0/24 "
                 "(/8 to /29, host bits zero)",
                 subnet);
        return -EINVAL;
    }
    common_strlcpy(cfg->bridge, bridge, sizeof(cfg->bridge));
    common_strlcpy(cfg->subnet, subnet, sizeof(cfg->subnet));
    if (strcmp(bridge, AGENT_NET_DEFAULT_BR) == 0)
        common_strlcpy(cfg->table, AGENT_NET_DEFAULT_TABLE, sizeof(cfg->table));
    else
        snprintf(cfg->table, sizeof(cfg->table), "shoal_%s", bridge);
    for (char *p = cfg->table; *p; p++)
        *p = *p == '-' ? '_' : *p;
    char cwd[4096] = "";
    if (node_data_dir[0] != '/' && !getcwd(cwd, sizeof(cwd))) {
        snprintf(errmsg, 256, "getcwd: %s", strerror(errno));
        return -errno;
    }
    int n = snprintf(cfg->data_dir, sizeof(cfg->data_dir), "%s%s%s/net", cwd, cwd[0] ? "/" : "",
                     node_data_dir);
    if (n < 0 || (size_t)n >= sizeof(cfg->data_dir) - 80) {
        snprintf(errmsg, 256, "data dir too long for the network state");
        return -ENAMETOOLONG;
    }
    return 0;
}

void agent_net_veth_name(const struct agent_net_config *cfg, const char *task_id, char out[16])
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (const char *p = cfg->table; *p; p++)
        h = (h ^ (unsigned char)*p) * UINT64_C(1099511628211);
    h = (h ^ '/') * UINT64_C(1099511628211);
    for (const char *p = task_id; *p; p++)
        h = (h ^ (unsigned char)*p) * UINT64_C(1099511628211);
    snprintf(out, 16, "vs%010llx", (unsigned long long)(h & UINT64_C(0xffffffffff)));
}

/* Whether the host has a link called name whose driver is veth: teardown
 * deletes only that, never a foreign interface that took the name. */
static int veth_exists(const char *name)
{
    if (if_nametoindex(name) == 0)
        return 0;
    _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ethtool_drvinfo info = {.cmd = ETHTOOL_GDRVINFO};
    struct ifreq ifr = {.ifr_data = (void *)&info};
    common_strlcpy(ifr.ifr_name, name, sizeof(ifr.ifr_name));
    return fd >= 0 && ioctl(fd, SIOCETHTOOL, &ifr) == 0 && strcmp(info.driver, "veth") == 0;
}

/* ---- locking ---- */

/* Takes the mutex and the file lock. Returns the lock fd (>= 0) or a
 * negative errno with errmsg, and then holds nothing. */
static int lock_state(const struct agent_net_config *cfg, int create, char *errmsg)
{
    pthread_mutex_lock(&net_mutex);
    char path[4200];
    snprintf(path, sizeof(path), "%s/lock", cfg->data_dir);
    int fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
    if (fd >= 0 && flock(fd, LOCK_EX) == 0)
        return fd;
    int e = errno;
    if (fd >= 0)
        close(fd);
    pthread_mutex_unlock(&net_mutex);
    snprintf(errmsg, 256, "lock %s: %s", path, strerror(e));
    return -e;
}

static void unlock_state(int fd)
{
    close(fd);
    pthread_mutex_unlock(&net_mutex);
}

/* ---- node side ---- */

static int make_dirs(const struct agent_net_config *cfg, char *errmsg)
{
    static const char *const subs[] = {"", "/tasks", "/ns"};
    for (size_t i = 0; i < ARRAY_SIZE(subs); i++) {
        char path[4200];
        snprintf(path, sizeof(path), "%s%s", cfg->data_dir, subs[i]);
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            int e = errno;
            snprintf(errmsg, 256, "create %s: %s", path, strerror(e));
            return -e;
        }
    }
    return 0;
}

static int bridge_up(const struct agent_net_config *cfg, char *errmsg)
{
    struct agent_net__subnet sn;
    agent_net__parse_subnet(cfg->subnet, &sn);
    char gw[16], script[256], sysctl[64];
    agent_net__ip_text(sn.net + 1, gw);
    if (if_nametoindex(cfg->bridge) == 0) {
        const char *add[] = {"ip", "link", "add", "name", cfg->bridge, "type", "bridge", NULL};
        int rv = agent_net__run(add, NULL, NULL, errmsg);
        if (rv != 0 && rv != -EEXIST)
            return rv;
    }
    snprintf(script, sizeof(script), "addr replace %s/%d dev %s\nlink set %s up\n", gw, sn.prefix,
             cfg->bridge, cfg->bridge);
    const char *batch[] = {"ip", "-batch", "-", NULL};
    int rv = agent_net__run(batch, script, NULL, errmsg);
    if (rv != 0)
        return rv;
    snprintf(sysctl, sizeof(sysctl), "net/ipv4/conf/%s/route_localnet", cfg->bridge);
    rv = agent_net__sysctl("net/ipv4/ip_forward", "1", errmsg);
    return rv ? rv : agent_net__sysctl(sysctl, "1", errmsg);
}

/* The table, replaced chain by chain in one transaction; the map (and so
 * the running tasks' ports) is kept. */
static int table_up(const struct agent_net_config *cfg, char *errmsg)
{
    static const char fmt[] =
        "add table ip %1$s\n"
        "add map ip %1$s ports { type inet_proto . inet_service : ipv4_addr . inet_service; }\n"
        "add chain ip %1$s prerouting { type nat hook prerouting priority dstnat; }\n"
        "add chain ip %1$s output { type nat hook output priority -100; }\n"
        "add chain ip %1$s postrouting { type nat hook postrouting priority srcnat; }\n"
        "add chain ip %1$s forward { type filter hook forward priority filter; }\n"
        "flush chain ip %1$s prerouting\n"
        "flush chain ip %1$s output\n"
        "flush chain ip %1$s postrouting\n"
        "flush chain ip %1$s forward\n"
        "add rule ip %1$s prerouting meta l4proto { tcp, udp } fib daddr type local "
        "dnat to meta l4proto . th dport map @ports\n"
        "add rule ip %1$s output meta l4proto { tcp, udp } fib daddr type local "
        "dnat to meta l4proto . th dport map @ports\n"
        "add rule ip %1$s postrouting oifname \"%2$s\" ip saddr 127.0.0.0/8 masquerade\n"
        "add rule ip %1$s postrouting oifname \"%2$s\" ip saddr %3$s ct status dnat masquerade\n"
        "add rule ip %1$s postrouting oifname != \"%2$s\" ip saddr %3$s masquerade\n"
        "add rule ip %1$s forward iifname \"%2$s\" accept\n"
        "add rule ip %1$s forward oifname \"%2$s\" accept\n";
    char script[2048];
    snprintf(script, sizeof(script), fmt, cfg->table, cfg->bridge, cfg->subnet);
    const char *nft[] = {"nft", "-f", "-", NULL};
    return agent_net__run(nft, script, NULL, errmsg);
}

int agent_net_init(const struct agent_net_config *cfg, char *errmsg)
{
    char why[256] = "";
    int rv = make_dirs(cfg, why);
    int fd = rv ? rv : lock_state(cfg, 1, why);
    if (fd < 0) {
        snprintf(errmsg, 256, "network init: %s", why);
        return fd;
    }
    rv = bridge_up(cfg, why);
    if (rv == 0)
        rv = table_up(cfg, why);
    unlock_state(fd);
    if (rv != 0)
        snprintf(errmsg, 256, "network init (bridge %s, table ip %s): %s", cfg->bridge, cfg->table,
                 why);
    return rv;
}

int agent_net_ensure(const struct agent_net_config *cfg, char *errmsg)
{
    static pthread_mutex_t once_mutex = PTHREAD_MUTEX_INITIALIZER;
    static struct agent_net_config done;
    static int done_ok;
    pthread_mutex_lock(&once_mutex);
    int rv = 0;
    if (!done_ok || memcmp(&done, cfg, sizeof(done)) != 0) {
        done_ok = 0;
        rv = agent_net_init(cfg, errmsg);
        if (rv == 0) {
            done = *cfg;
            done_ok = 1;
        }
    }
    pthread_mutex_unlock(&once_mutex);
    return rv;
}

/* ---- tasks ---- */

/* "proto . published" for every port, comma-separated, followed by
 * " : ip . target" when with_data. */
static void port_elements(const struct agent_net__alloc *a, int with_data, char *out, size_t size)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < a->n_ports && len < size; i++) {
        const struct agent_net_port *p = &a->ports[i];
        int n = with_data ? snprintf(out + len, size - len, "%s%s . %d : %s . %d", i ? ", " : "",
                                     p->proto, p->published, a->ip, p->target)
                          : snprintf(out + len, size - len, "%s%s . %d", i ? ", " : "", p->proto,
                                     p->published);
        len += n > 0 ? (size_t)n : 0;
    }
}

/* Adds (or removes) the task's map elements in one transaction. Removing
 * adds them first, so that it succeeds when they are already gone (nft
 * 1.0.6 has no `destroy element`). */
static int ports_apply(const struct agent_net_config *cfg, const struct agent_net__alloc *a,
                       int remove, char *errmsg)
{
    if (a->n_ports == 0)
        return 0;
    char with[AGENT_NET_MAX_PORTS * 48], keys[AGENT_NET_MAX_PORTS * 24], script[8192];
    port_elements(a, 1, with, sizeof(with));
    port_elements(a, 0, keys, sizeof(keys));
    if (!remove)
        snprintf(script, sizeof(script), "add element ip %s ports { %s }\n", cfg->table, with);
    else
        snprintf(script, sizeof(script),
                 "add table ip %1$s\n"
                 "add map ip %1$s ports { type inet_proto . inet_service : ipv4_addr . "
                 "inet_service; }\n"
                 "add element ip %1$s ports { %2$s }\n"
                 "delete element ip %1$s ports { %3$s }\n",
                 cfg->table, with, keys);
    const char *nft[] = {"nft", "-f", "-", NULL};
    return agent_net__run(nft, script, NULL, errmsg);
}

/* Removes what exists of the task; a's ports may be empty when the
 * allocation is gone. Keeps the first error. */
static int teardown_locked(const struct agent_net_config *cfg, const char *id,
                           const struct agent_net__alloc *a, char *errmsg)
{
    char why[256], nspath[4200], veth[16];
    int first = 0;
    if (ports_apply(cfg, a, 1, why) != 0 && !first) {
        first = -EIO;
        snprintf(errmsg, 256, "remove ports: %s", why);
    }
    agent_net_veth_name(cfg, id, veth);
    if (veth_exists(veth)) {
        const char *del[] = {"ip", "link", "del", veth, NULL};
        int rv = agent_net__run(del, NULL, NULL, why);
        if (rv != 0 && veth_exists(veth) && !first) {
            first = rv;
            snprintf(errmsg, 256, "remove veth %s: %s", veth, why);
        }
    }
    int rv = agent_net__netns_path(cfg, id, nspath, sizeof(nspath));
    if (rv == 0)
        rv = agent_net__netns_remove(nspath, why);
    if (rv != 0 && !first) {
        first = rv;
        snprintf(errmsg, 256, "remove netns: %s", why);
    }
    if ((rv = agent_net__alloc_remove(cfg, id, why)) != 0 && !first) {
        first = rv;
        snprintf(errmsg, 256, "%s", why);
    }
    return first;
}

int agent_net_task_teardown(const struct agent_net_config *cfg, const char *task_id, char *errmsg)
{
    if (!task_id_ok(task_id)) {
        snprintf(errmsg, 256, "network teardown: \"%.64s\" is not a task id", task_id);
        return -EINVAL;
    }
    char path[4200];
    snprintf(path, sizeof(path), "%s/lock", cfg->data_dir);
    if (access(path, F_OK) != 0)
        return 0; /* never initialized: nothing can exist */
    char why[256] = "";
    int fd = lock_state(cfg, 0, why);
    if (fd < 0) {
        snprintf(errmsg, 256, "network teardown of %s: %s", task_id, why);
        return fd;
    }
    struct agent_net__alloc a;
    int rv = agent_net__alloc_load(cfg, task_id, &a, why);
    if (rv != 0)
        memset(&a, 0, sizeof(a));
    rv = teardown_locked(cfg, task_id, &a, why);
    unlock_state(fd);
    if (rv != 0)
        snprintf(errmsg, 256, "network teardown of %s: %s", task_id, why);
    return rv;
}

static int ports_valid(const struct agent_net_port *ports, size_t n, char *errmsg)
{
    if (n > AGENT_NET_MAX_PORTS) {
        snprintf(errmsg, 256, "at most %d published ports", AGENT_NET_MAX_PORTS);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        const struct agent_net_port *p = &ports[i];
        if (p->published < 1 || p->published > 65535 || p->target < 1 || p->target > 65535 ||
            (strcmp(p->proto, "tcp") != 0 && strcmp(p->proto, "udp") != 0)) {
            snprintf(errmsg, 256, "port %d:%d/%.3s: ports are 1-65535, protocols tcp or udp",
                     p->published, p->target, p->proto);
            return -EINVAL;
        }
        for (size_t j = 0; j < i; j++)
            if (ports[j].published == p->published && strcmp(ports[j].proto, p->proto) == 0) {
                snprintf(errmsg, 256, "port %d/%s is published twice", p->published, p->proto);
                return -EINVAL;
            }
    }
    return 0;
}

/* Picks the lowest free address and checks that no other task holds one of
 * a's ports or its veth name. Fills a->ip. */
static int allocate(const struct agent_net_config *cfg, struct agent_net__alloc *a, char *errmsg)
{
    _cleanup_free_ struct agent_net__alloc *all = NULL;
    size_t n = 0;
    int rv = agent_net__alloc_all(cfg, &all, &n, errmsg);
    if (rv != 0)
        return rv;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(all[i].veth, a->veth) == 0) {
            snprintf(errmsg, 256, "veth name %s is taken by task %s", a->veth, all[i].id);
            return -EEXIST;
        }
        for (size_t k = 0; k < all[i].n_ports; k++)
            for (size_t m = 0; m < a->n_ports; m++)
                if (all[i].ports[k].published == a->ports[m].published &&
                    strcmp(all[i].ports[k].proto, a->ports[m].proto) == 0) {
                    snprintf(errmsg, 256, "port %d/%s is published by task %s",
                             a->ports[m].published, a->ports[m].proto, all[i].id);
                    return -EADDRINUSE;
                }
    }
    struct agent_net__subnet sn;
    agent_net__parse_subnet(cfg->subnet, &sn);
    uint32_t last = sn.net + (UINT32_C(1) << (32 - sn.prefix)) - 2; /* below broadcast */
    for (uint32_t ip = sn.net + 2; ip <= last; ip++) {
        agent_net__ip_text(ip, a->ip);
        size_t i = 0;
        while (i < n && strcmp(all[i].ip, a->ip) != 0)
            i++;
        if (i == n)
            return 0;
    }
    snprintf(errmsg, 256, "no free address left in %s", cfg->subnet);
    return -ENOSPC;
}

/* Creates the netns, the veth pair and the addresses, then the ports. */
static int build(const struct agent_net_config *cfg, const struct agent_net__alloc *a,
                 const struct agent_net_task *t, char *errmsg)
{
    char why[256], script[512];
    int rv = agent_net__netns_create(t->netns, why);
    if (rv != 0) {
        snprintf(errmsg, 256, "%s", why);
        return rv;
    }
    /* hairpin: with br_netfilter, DNAT of a task's own published port
     * (through the gateway) bridges the frame back out the port it came in */
    snprintf(script, sizeof(script),
             "link add %1$s type veth peer name eth0 netns %2$s\nlink set %1$s master %3$s up\n"
             "link set %1$s type bridge_slave hairpin on\n",
             a->veth, t->netns, cfg->bridge);
    const char *batch[] = {"ip", "-batch", "-", NULL};
    if ((rv = agent_net__run(batch, script, NULL, why)) != 0) {
        snprintf(errmsg, 256, "veth %s: %s", a->veth, why);
        return rv;
    }
    snprintf(script, sizeof(script),
             "addr add %s/%d dev eth0\nlink set eth0 up\nlink set lo up\n"
             "route add default via %s\n",
             t->ip, t->prefix, t->gateway);
    if ((rv = agent_net__run(batch, script, t->netns, why)) != 0) {
        snprintf(errmsg, 256, "address %s in the netns: %s", t->ip, why);
        return rv;
    }
    if ((rv = ports_apply(cfg, a, 0, why)) != 0) {
        snprintf(errmsg, 256, "publish ports: %s", why);
        return rv;
    }
    return 0;
}

static void fill_task(const struct agent_net_config *cfg, const struct agent_net__alloc *a,
                      struct agent_net_task *t)
{
    struct agent_net__subnet sn;
    agent_net__parse_subnet(cfg->subnet, &sn);
    memset(t, 0, sizeof(*t));
    agent_net__netns_path(cfg, a->id, t->netns, sizeof(t->netns));
    common_strlcpy(t->ip, a->ip, sizeof(t->ip));
    agent_net__ip_text(sn.net + 1, t->gateway);
    t->prefix = sn.prefix;
    common_strlcpy(t->veth, a->veth, sizeof(t->veth));
}

static int same_ports(const struct agent_net__alloc *a, const struct agent_net_port *ports,
                      size_t n)
{
    if (a->n_ports != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (a->ports[i].published != ports[i].published || a->ports[i].target != ports[i].target ||
            strcmp(a->ports[i].proto, ports[i].proto) != 0)
            return 0;
    return 1;
}

static int setup_locked(const struct agent_net_config *cfg, struct agent_net__alloc *a,
                        struct agent_net_task *out, char *errmsg)
{
    struct agent_net__alloc old;
    char why[256];
    int rv = agent_net__alloc_load(cfg, a->id, &old, why);
    if (rv == 0) {
        fill_task(cfg, &old, out);
        /* the same task again: make sure its ports are still published */
        if (same_ports(&old, a->ports, a->n_ports) && agent_net__netns_alive(out->netns) &&
            veth_exists(old.veth) && ports_apply(cfg, &old, 0, why) == 0)
            return 0;
        if ((rv = teardown_locked(cfg, a->id, &old, why)) != 0) {
            snprintf(errmsg, 256, "replace the old state: %s", why);
            return rv;
        }
    } else if (rv != -ENOENT) {
        snprintf(errmsg, 256, "%s", why);
        return rv;
    }
    if ((rv = allocate(cfg, a, errmsg)) != 0 || (rv = agent_net__alloc_save(cfg, a, errmsg)) != 0)
        return rv;
    fill_task(cfg, a, out);
    if ((rv = build(cfg, a, out, errmsg)) != 0) {
        teardown_locked(cfg, a->id, a, why);
        memset(out, 0, sizeof(*out));
    }
    return rv;
}

int agent_net_task_setup(const struct agent_net_config *cfg, const char *task_id,
                         const struct agent_net_port *ports, size_t n_ports,
                         struct agent_net_task *out, char *errmsg)
{
    char why[256] = "";
    int rv = task_id_ok(task_id) ? 0 : -EINVAL;
    if (rv != 0)
        snprintf(why, sizeof(why), "not a task id");
    else
        rv = ports_valid(ports, n_ports, why);
    int fd = rv ? rv : lock_state(cfg, 0, why);
    if (fd == -ENOENT)
        snprintf(why, sizeof(why), "the node network is not set up (agent_net_ensure)");
    if (fd < 0) {
        snprintf(errmsg, 256, "network setup of \"%.64s\": %s", task_id ? task_id : "", why);
        return fd;
    }
    struct agent_net__alloc a;
    memset(&a, 0, sizeof(a));
    common_strlcpy(a.id, task_id, sizeof(a.id));
    agent_net_veth_name(cfg, task_id, a.veth);
    memcpy(a.ports, ports, n_ports * sizeof(*ports));
    a.n_ports = n_ports;
    rv = setup_locked(cfg, &a, out, why);
    unlock_state(fd);
    if (rv != 0)
        snprintf(errmsg, 256, "network setup of %s: %s", task_id, why);
    return rv;
}

/* ---- listing ---- */

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static void add_unique(char ***ids, size_t *n, size_t *cap, const char *id)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*ids)[i], id) == 0)
            return;
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        *ids = xrealloc(*ids, *cap * sizeof(**ids));
    }
    (*ids)[(*n)++] = xstrdup(id);
}

int agent_net_list(const struct agent_net_config *cfg, char ***ids, size_t *n)
{
    char why[256];
    _cleanup_free_ struct agent_net__alloc *all = NULL;
    size_t n_all = 0, cap = 0;
    *ids = NULL;
    *n = 0;
    int rv = agent_net__alloc_all(cfg, &all, &n_all, why);
    if (rv != 0)
        return rv;
    for (size_t i = 0; i < n_all; i++)
        add_unique(ids, n, &cap, all[i].id);
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/ns", cfg->data_dir);
    DIR *d = opendir(dir);
    for (struct dirent *de; d && (de = readdir(d)) != NULL;)
        if (task_id_ok(de->d_name))
            add_unique(ids, n, &cap, de->d_name);
    if (d)
        closedir(d);
    if (*n)
        qsort(*ids, *n, sizeof(**ids), cmp_str);
    return 0;
}

void agent_net_list_free(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}
