#include "agent/node.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

int agent_node_lock(struct agent_node *n, const char *data_dir, char *errmsg)
{
    memset(n, 0, sizeof(*n));
    n->lock_fd = -1;
    if (common_strlcpy(n->data_dir, data_dir, sizeof(n->data_dir)) >= sizeof(n->data_dir) - 64) {
        snprintf(errmsg, 256, "data dir path too long");
        return -ENAMETOOLONG;
    }
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
        int e = errno;
        snprintf(errmsg, 256, "create data dir %s: %s", data_dir, strerror(e));
        return -e;
    }
    char path[4200];
    snprintf(path, sizeof(path), "%s/lock", data_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        snprintf(errmsg, 256, "open %s: %s", path, strerror(e));
        return -e;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        snprintf(errmsg, 256, "data dir %s is in use by another shoald (%s)", data_dir,
                 e == EWOULDBLOCK ? "locked" : strerror(e));
        return e == EWOULDBLOCK ? -EBUSY : -e;
    }
    n->lock_fd = fd;
    return 0;
}

static int write_file_atomic(const char *dir, const char *name, const char *text, mode_t mode,
                             char *errmsg)
{
    char tmp[4200], path[4200];
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    size_t len = strlen(text);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) != 0 || close(fd) != 0 ||
        rename(tmp, path) != 0) {
        int e = errno;
        snprintf(errmsg, 256, "write %s: %s", path, strerror(e));
        return -e;
    }
    return 0;
}

static int read_small_file(const char *dir, const char *name, char *out, size_t out_size)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t r = read(fd, out, out_size - 1);
    int e = errno;
    close(fd);
    if (r < 0)
        return -e;
    out[r] = '\0';
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

static int copy_field(const json_t *root, const char *key, char *out, size_t size)
{
    const char *v = json_string_value(json_object_get(root, key));
    return v && common_strlcpy(out, v, size) < size ? 0 : -EINVAL;
}

int agent_node_load(struct agent_node *n, char *errmsg)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/node.json", n->data_dir);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        if (access(path, F_OK) != 0)
            return -ENOENT;
        snprintf(errmsg, 256, "%s: %s", path, jerr.text);
        return -EINVAL;
    }
    int rv = copy_field(root, "id", n->id_hex, sizeof(n->id_hex));
    rv = rv ?: copy_field(root, "name", n->name, sizeof(n->name));
    rv = rv ?: copy_field(root, "cluster_id", n->cluster_id, sizeof(n->cluster_id));
    rv = rv ?: copy_field(root, "raft_address", n->raft_address, sizeof(n->raft_address));
    rv = rv ?: copy_field(root, "api_address", n->api_address, sizeof(n->api_address));
    n->bootstrap = json_is_true(json_object_get(root, "bootstrap"));
    copy_field(root, "role", n->role, sizeof(n->role));
    copy_field(root, "raft_bind", n->raft_bind, sizeof(n->raft_bind));
    copy_field(root, "api_bind", n->api_bind, sizeof(n->api_bind));
    copy_field(root, "credential", n->credential, sizeof(n->credential));
    json_t *managers = json_object_get(root, "managers");
    json_t *labels = json_object_get(root, "labels");
    n->managers = json_is_array(managers) ? json_incref(managers) : json_array();
    n->labels = json_is_object(labels) ? json_incref(labels) : json_object();
    json_decref(root);
    if (!n->role[0])
        common_strlcpy(n->role, "manager", sizeof(n->role));
    n->id = strtoull(n->id_hex, NULL, 16);
    if (rv != 0 || n->id == 0) {
        snprintf(errmsg, 256, "%s: missing or invalid fields", path);
        return -EINVAL;
    }
    rv = read_small_file(n->data_dir, "admin.token", n->token, sizeof(n->token));
    /* Workers never get the admin token, nor does a promoted worker until
     * its store catches up (the API then takes the cluster's). */
    if (rv == -ENOENT && !n->bootstrap)
        rv = 0;
    if (rv != 0) {
        snprintf(errmsg, 256, "%s/admin.token: %s", n->data_dir, strerror(-rv));
        return rv;
    }
    return 0;
}

int agent_node_save(const struct agent_node *n, char *errmsg)
{
    json_t *root = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:s, s:O, s:O}", "id", n->id_hex, "name",
        n->name, "cluster_id", n->cluster_id, "raft_address", n->raft_address, "api_address",
        n->api_address, "raft_bind", n->raft_bind, "api_bind", n->api_bind, "bootstrap",
        n->bootstrap, "role", n->role, "credential", n->credential, "managers",
        n->managers ? n->managers : json_array(), "labels", n->labels ? n->labels : json_object());
    _cleanup_free_ char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    return write_file_atomic(n->data_dir, "node.json", text, 0600, errmsg);
}

void agent_node_close(struct agent_node *n)
{
    json_decref(n->managers);
    json_decref(n->labels);
    n->managers = n->labels = NULL;
}

int agent_node_save_token(const struct agent_node *n, char *errmsg)
{
    char token_line[80];
    snprintf(token_line, sizeof(token_line), "%s\n", n->token);
    return write_file_atomic(n->data_dir, "admin.token", token_line, 0600, errmsg);
}

int agent_node_new(struct agent_node *n, const char *name, const char *raft_address,
                   const char *api_address, char *errmsg)
{
    do {
        int rv = common_random(&n->id, sizeof(n->id));
        if (rv != 0) {
            snprintf(errmsg, 256, "random: %s", strerror(-rv));
            return rv;
        }
    } while (n->id == 0);
    snprintf(n->id_hex, sizeof(n->id_hex), "%016llx", (unsigned long long)n->id);
    common_strlcpy(n->name, name, sizeof(n->name));
    common_strlcpy(n->raft_address, raft_address, sizeof(n->raft_address));
    common_strlcpy(n->api_address, api_address, sizeof(n->api_address));
    if (!n->managers)
        n->managers = json_array();
    if (!n->labels)
        n->labels = json_object();
    return 0;
}

int agent_node_create(struct agent_node *n, const char *name, const char *raft_address,
                      const char *api_address, char *errmsg)
{
    int rv = agent_node_new(n, name, raft_address, api_address, errmsg);
    if (rv != 0)
        return rv;
    if (common_random_hex(n->cluster_id, 16) != 0 || common_random_hex(n->token, 32) != 0 ||
        common_random_hex(n->credential, 32) != 0) {
        snprintf(errmsg, 256, "random: %s", strerror(errno));
        return -EIO;
    }
    n->bootstrap = 1;
    common_strlcpy(n->role, "manager", sizeof(n->role));
    json_array_append_new(n->managers, json_string(api_address));
    rv = agent_node_save_token(n, errmsg);
    return rv ?: agent_node_save(n, errmsg);
}
