/* The content-addressed store: STORE/blobs/sha256/<hex>, one unpacked rootfs
 * per image in STORE/rootfs/<config hex>, the ref and image index in
 * STORE/index.json (replaced by rename under the flock of STORE/lock) and
 * temp files in STORE/tmp. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/image/image.h"
#include "common/util.h"

int img_store_open(struct img_ctx *c, const char *dir)
{
    static const char *const sub[] = {"", "/blobs", "/blobs/sha256", "/rootfs", "/tmp"};
    char path[PATH_MAX];
    for (size_t i = 0; i < ARRAY_SIZE(sub); i++) {
        snprintf(path, sizeof(path), "%s%s", dir, sub[i]);
        if (mkdir(path, 0700) != 0 && errno != EEXIST)
            return img_fail(c, -errno, "store %s: %s", path, strerror(errno));
    }
    if (!realpath(dir, c->store))
        return img_fail(c, -errno, "store %s: %s", dir, strerror(errno));
    return 0;
}

int img_store_lock(struct img_ctx *c)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/lock", c->store);
    c->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (c->lock_fd < 0 || flock(c->lock_fd, LOCK_EX) != 0)
        return img_fail(c, -errno, "store lock %s: %s", path, strerror(errno));
    snprintf(path, sizeof(path), "%s/tmp", c->store);
    DIR *d = opendir(path);
    if (!d)
        return img_fail(c, -errno, "store %s: %s", path, strerror(errno));
    struct dirent *e;
    char p[PATH_MAX];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        img_rm_rf(p);
    }
    closedir(d);
    return 0;
}

void img_blob_path(const struct img_ctx *c, const char *digest, char *out, size_t size)
{
    snprintf(out, size, "%s/blobs/sha256/%s", c->store, digest + 7);
}

int img_blob_exists(const struct img_ctx *c, const char *digest)
{
    char path[PATH_MAX];
    struct stat st;
    img_blob_path(c, digest, path, sizeof(path));
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int img_tmp_file(struct img_ctx *c, char *out, size_t size)
{
    snprintf(out, size, "%s/tmp/blob-XXXXXX", c->store);
    int fd = mkostemp(out, O_CLOEXEC);
    if (fd < 0)
        return img_fail(c, -errno, "temp file in %s/tmp: %s", c->store, strerror(errno));
    return fd;
}

int img_blob_commit(struct img_ctx *c, const char *tmp, const char *digest)
{
    char path[PATH_MAX];
    img_blob_path(c, digest, path, sizeof(path));
    if (chmod(tmp, 0644) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return img_fail(c, -e, "store blob %s: %s", digest, strerror(e));
    }
    return 0;
}

char *img_blob_read(struct img_ctx *c, const char *digest, size_t max, size_t *len)
{
    char path[PATH_MAX], got[IMG_DIGEST_SIZE];
    if (!img_digest_valid(digest)) {
        img_fail(c, -EINVAL, "invalid digest \"%.100s\"", digest);
        return NULL;
    }
    img_blob_path(c, digest, path, sizeof(path));
    char *buf = img_read_file(path, max, len);
    if (!buf) {
        img_fail(c, -errno, "blob %s: %s", digest, strerror(errno));
        return NULL;
    }
    struct img_hash h;
    img_hash_init(&h);
    img_hash_update(&h, buf, *len);
    img_hash_final(&h, got);
    if (strcmp(got, digest) != 0) {
        free(buf);
        img_fail(c, -EBADMSG, "blob %s: digest mismatch in the store (got %s)", digest, got);
        return NULL;
    }
    return buf;
}

int img_blob_put(struct img_ctx *c, const void *buf, size_t len, char *digest)
{
    char tmp[PATH_MAX];
    struct img_hash h;
    img_hash_init(&h);
    img_hash_update(&h, buf, len);
    img_hash_final(&h, digest);
    if (img_blob_exists(c, digest))
        return 0;
    _cleanup_close_ int fd = img_tmp_file(c, tmp, sizeof(tmp));
    if (fd < 0)
        return fd;
    if (write(fd, buf, len) != (ssize_t)len) {
        unlink(tmp);
        return img_fail(c, -EIO, "write %s: %s", tmp, strerror(errno));
    }
    return img_blob_commit(c, tmp, digest);
}

json_t *img_index_load(struct img_ctx *c)
{
    char path[PATH_MAX];
    size_t len;
    snprintf(path, sizeof(path), "%s/index.json", c->store);
    _cleanup_free_ char *buf = img_read_file(path, 64u << 20, &len);
    if (!buf && errno == ENOENT)
        return json_pack("{s:{},s:{}}", "refs", "images");
    if (!buf) {
        img_fail(c, -errno, "%s: %s", path, strerror(errno));
        return NULL;
    }
    json_t *idx = img_json_parse(c, path, buf, len);
    if (idx && (!json_is_object(json_object_get(idx, "refs")) ||
                !json_is_object(json_object_get(idx, "images")))) {
        json_decref(idx);
        img_fail(c, -EINVAL, "%s: no refs or images", path);
        return NULL;
    }
    return idx;
}

int img_index_save(struct img_ctx *c, json_t *idx)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/index.json", c->store);
    _cleanup_close_ int fd = img_tmp_file(c, tmp, sizeof(tmp));
    if (fd < 0)
        return fd;
    if (json_dumpfd(idx, fd, JSON_INDENT(1) | JSON_SORT_KEYS) != 0 || fsync(fd) != 0 ||
        chmod(tmp, 0644) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return img_fail(c, -e, "write %s: %s", path, strerror(e));
    }
    return 0;
}

const char *img_index_find(json_t *idx, const char *name)
{
    json_t *refs = json_object_get(idx, "refs"), *images = json_object_get(idx, "images");
    struct img_ref r;
    struct img_ctx scratch = {0};
    const char *id = json_string_value(json_object_get(refs, name));
    if (!id && img_ref_parse(&scratch, name, &r) == 0)
        id = json_string_value(json_object_get(refs, r.full));
    if (id || json_object_get(images, name))
        return id ? id : json_object_iter_key(json_object_iter_at(images, name));
    /* A unique prefix of an id, with or without "sha256:", 12 digits at least. */
    const char *hex = strncmp(name, "sha256:", 7) == 0 ? name + 7 : name;
    const char *found = NULL, *key;
    json_t *v;
    if (strlen(hex) < 12)
        return NULL;
    json_object_foreach(images, key, v)
    {
        if (strncmp(key + 7, hex, strlen(hex)) == 0) {
            if (found)
                return NULL;
            found = key;
        }
    }
    return found;
}

json_t *img_describe(struct img_ctx *c, json_t *idx, const char *id, const char *ref)
{
    json_t *img = json_object_get(json_object_get(idx, "images"), id);
    if (!img) {
        img_fail(c, -ENOENT, "image %s not in store", id);
        return NULL;
    }
    if (!ref) {
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(idx, "refs"), k,
                            v) if (strcmp(json_string_value(v), id) == 0 && !ref) ref = k;
    }
    size_t len;
    _cleanup_free_ char *buf = img_blob_read(c, id, IMG_MAX_JSON, &len);
    json_t *cfg = buf ? img_json_parse(c, "image config", buf, len) : NULL;
    if (!cfg)
        return NULL;
    json_t *conf = json_object_get(cfg, "config");
    conf = json_is_object(conf) ? json_incref(conf) : json_object();
    char rootfs[PATH_MAX];
    snprintf(rootfs, sizeof(rootfs), "%s/rootfs/%s", c->store, id + 7);
    json_t *out = json_pack("{s:s?,s:s,s:O,s:s,s:o}", "ref", ref, "id", id, "digest",
                            json_object_get(img, "digest"), "rootfs", rootfs, "config", conf);
    json_decref(cfg);
    return out;
}
