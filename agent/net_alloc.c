/* The net module's persisted allocations: one JSON file per task under
 * DATA/net/tasks ({"ip", "veth", "ports": [{"published", "target",
 * "proto"}]}), written atomically, and the subnet arithmetic. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent/net_internal.h"
#include "common/util.h"

#define MAX_TASKS 65536

int agent_net__parse_subnet(const char *cidr, struct agent_net__subnet *out)
{
    char addr[32];
    const char *slash = strchr(cidr, '/');
    if (!slash || (size_t)(slash - cidr) >= sizeof(addr))
        return -EINVAL;
    memcpy(addr, cidr, (size_t)(slash - cidr));
    addr[slash - cidr] = '\0';
    struct in_addr in;
    if (inet_pton(AF_INET, addr, &in) != 1)
        return -EINVAL;
    char *end;
    long prefix = strtol(slash + 1, &end, 10);
    if (*end || slash[1] < '0' || slash[1] > '9' || prefix < 8 || prefix > 29)
        return -EINVAL;
    uint32_t net = ntohl(in.s_addr);
    uint32_t mask = ~UINT32_C(0) << (32 - prefix);
    if (net & ~mask)
        return -EINVAL;
    out->net = net;
    out->prefix = (int)prefix;
    return 0;
}

void agent_net__ip_text(uint32_t ip, char out[16])
{
    snprintf(out, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
}

int agent_net__alloc_path(const struct agent_net_config *cfg, const char *id, char *out,
                          size_t size)
{
    int n = snprintf(out, size, "%s/tasks/%s.json", cfg->data_dir, id);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int agent_net__netns_path(const struct agent_net_config *cfg, const char *id, char *out,
                          size_t size)
{
    int n = snprintf(out, size, "%s/ns/%s", cfg->data_dir, id);
    return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static int from_json(const json_t *j, const char *id, struct agent_net__alloc *a)
{
    memset(a, 0, sizeof(*a));
    const char *ip = json_string_value(json_object_get(j, "ip"));
    const char *veth = json_string_value(json_object_get(j, "veth"));
    const json_t *ports = json_object_get(j, "ports");
    if (!ip || !veth || !json_is_array(ports) || json_array_size(ports) > AGENT_NET_MAX_PORTS ||
        common_strlcpy(a->ip, ip, sizeof(a->ip)) >= sizeof(a->ip) ||
        common_strlcpy(a->veth, veth, sizeof(a->veth)) >= sizeof(a->veth) ||
        common_strlcpy(a->id, id, sizeof(a->id)) >= sizeof(a->id))
        return -EINVAL;
    size_t i;
    const json_t *p;
    json_array_foreach(ports, i, p)
    {
        const char *proto = json_string_value(json_object_get(p, "proto"));
        struct agent_net_port *o = &a->ports[i];
        o->published = (int)json_integer_value(json_object_get(p, "published"));
        o->target = (int)json_integer_value(json_object_get(p, "target"));
        if (!proto || common_strlcpy(o->proto, proto, sizeof(o->proto)) >= sizeof(o->proto))
            return -EINVAL;
    }
    a->n_ports = json_array_size(ports);
    return 0;
}

int agent_net__alloc_load(const struct agent_net_config *cfg, const char *id,
                          struct agent_net__alloc *a, char *errmsg)
{
    char path[4200];
    if (agent_net__alloc_path(cfg, id, path, sizeof(path)) != 0) {
        snprintf(errmsg, 256, "allocation of %s: path too long", id);
        return -ENAMETOOLONG;
    }
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    if (!j) {
        if (access(path, F_OK) != 0 && errno == ENOENT)
            return -ENOENT;
        snprintf(errmsg, 256, "read %s: %s", path, jerr.text);
        return -EIO;
    }
    int rv = from_json(j, id, a);
    json_decref(j);
    if (rv != 0)
        snprintf(errmsg, 256, "read %s: not an allocation", path);
    return rv;
}

int agent_net__alloc_save(const struct agent_net_config *cfg, const struct agent_net__alloc *a,
                          char *errmsg)
{
    char path[4200], tmp[4210];
    if (agent_net__alloc_path(cfg, a->id, path, sizeof(path)) != 0) {
        snprintf(errmsg, 256, "allocation of %s: path too long", a->id);
        return -ENAMETOOLONG;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    json_t *ports = json_array();
    for (size_t i = 0; i < a->n_ports; i++)
        json_array_append_new(ports,
                              json_pack("{s:i, s:i, s:s}", "published", a->ports[i].published,
                                        "target", a->ports[i].target, "proto", a->ports[i].proto));
    json_t *j = json_pack("{s:s, s:s, s:o}", "ip", a->ip, "veth", a->veth, "ports", ports);
    _cleanup_free_ char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!text)
        abort();
    size_t len = strlen(text);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) != 0 || close(fd) != 0 ||
        rename(tmp, path) != 0) {
        int e = errno ? errno : EIO;
        snprintf(errmsg, 256, "write %s: %s", path, strerror(e));
        unlink(tmp);
        return -e;
    }
    return 0;
}

int agent_net__alloc_remove(const struct agent_net_config *cfg, const char *id, char *errmsg)
{
    char path[4200];
    if (agent_net__alloc_path(cfg, id, path, sizeof(path)) != 0)
        return 0;
    if (unlink(path) != 0 && errno != ENOENT) {
        int e = errno;
        snprintf(errmsg, 256, "remove %s: %s", path, strerror(e));
        return -e;
    }
    return 0;
}

static void closedirp(DIR **d)
{
    if (*d)
        closedir(*d);
}

int agent_net__alloc_all(const struct agent_net_config *cfg, struct agent_net__alloc **all,
                         size_t *n, char *errmsg)
{
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/tasks", cfg->data_dir);
    *all = NULL;
    *n = 0;
    __attribute__((cleanup(closedirp))) DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        if (e == ENOENT)
            return 0;
        snprintf(errmsg, 256, "list %s: %s", dir, strerror(e));
        return -e;
    }
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && *n < MAX_TASKS) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len < 6 || len > 64 + 5 ||
            strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        char id[65];
        memcpy(id, de->d_name, len - 5);
        id[len - 5] = '\0';
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            *all = xrealloc(*all, cap * sizeof(**all));
        }
        char ignored[256];
        if (agent_net__alloc_load(cfg, id, &(*all)[*n], ignored) == 0)
            (*n)++;
    }
    return 0;
}
