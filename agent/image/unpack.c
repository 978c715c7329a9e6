/* Layer extraction: a forked child chroot()s into a temp dir of the store and
 * streams each layer through libarchive (gzip, zstd or plain tar), applying
 * whiteouts as it goes and hashing the uncompressed tar to check its diff_id.
 * The parent renames the temp dir to the image's rootfs only on success. */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/image/image.h"
#include "common/util.h"

#define EXTRACT_FLAGS                                                                              \
    (ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_ACL |   \
     ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS |   \
     ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS)

/* The decompressed stream of one layer, read by the tar reader and hashed. */
struct layer_stream {
    struct archive *outer;
    struct img_hash hash;
    char buf[64 * 1024];
};

static la_ssize_t stream_read(struct archive *a, void *data, const void **out)
{
    struct layer_stream *s = data;
    la_ssize_t n = archive_read_data(s->outer, s->buf, sizeof(s->buf));
    if (n < 0) {
        archive_set_error(a, EIO, "%s", archive_error_string(s->outer));
        return -1;
    }
    img_hash_update(&s->hash, s->buf, (size_t)n);
    *out = s->buf;
    return n;
}

/* Strips "./" and "/" prefixes and a trailing "/"; fails on ".." parts. */
static int normalize(const char *in, char *out, size_t size)
{
    while (in[0] == '/' || (in[0] == '.' && in[1] == '/'))
        in += in[0] == '/' ? 1 : 2;
    if (common_strlcpy(out, in, size) >= size)
        return -ENAMETOOLONG;
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '/')
        out[--n] = '\0';
    for (const char *p = out; p && *p; p = strchr(p, '/'), p = p ? p + 1 : NULL)
        if (p[0] == '.' && p[1] == '.' && (p[2] == '/' || p[2] == '\0'))
            return -EPERM;
    return 0;
}

static void make_opaque(const char *dir, json_t *seen)
{
    DIR *d = opendir(dir[0] ? dir : ".");
    if (!d)
        return;
    struct dirent *e;
    char path[PATH_MAX];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s%s%s", dir, dir[0] ? "/" : "", e->d_name);
        if (!json_object_get(seen, path))
            img_rm_rf(path);
    }
    closedir(d);
}

/* Applies a whiteout entry; returns 1 if path was one, 0 if not. */
static int whiteout(const char *path, json_t *seen)
{
    char dir[PATH_MAX], target[PATH_MAX];
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (strncmp(base, ".wh.", 4) != 0)
        return 0;
    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 0, path);
    if (strcmp(base, ".wh..wh..opq") == 0) {
        make_opaque(dir, seen);
        return 1;
    }
    if (strcmp(base + 4, "") != 0 && strcmp(base + 4, ".") != 0) {
        snprintf(target, sizeof(target), "%s%s%s", dir, dir[0] ? "/" : "", base + 4);
        img_rm_rf(target);
    }
    return 1;
}

/* archive_read_extract2() turns a refused header into a warning; this does
 * not: only metadata the disk cannot take (xattrs, times) may warn. */
static int extract_entry(struct archive *tar, struct archive *disk, struct archive_entry *e)
{
    const void *block;
    size_t len;
    la_int64_t off;
    int r = archive_write_header(disk, e);
    if (r < ARCHIVE_WARN)
        return -EPERM;
    while (archive_entry_size(e) > 0 &&
           (r = archive_read_data_block(tar, &block, &len, &off)) == ARCHIVE_OK) {
        if (archive_write_data_block(disk, block, len, off) < ARCHIVE_WARN)
            return -EIO;
    }
    if (archive_entry_size(e) > 0 && r != ARCHIVE_EOF) {
        archive_set_error(disk, EIO, "%s", archive_error_string(tar));
        return -EIO;
    }
    return archive_write_finish_entry(disk) < ARCHIVE_WARN ? -EIO : 0;
}

static int extract_entries(struct archive *tar, struct archive *disk, int no, char *err,
                           size_t size)
{
    json_auto_t *seen = json_object();
    struct archive_entry *e;
    char path[PATH_MAX];
    int r;
    while ((r = archive_read_next_header(tar, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
        const char *name = archive_entry_pathname(e);
        if (!name || normalize(name, path, sizeof(path)) != 0) {
            snprintf(err, size, "layer %d: entry \"%.200s\" escapes the rootfs", no,
                     name ? name : "");
            return -EPERM;
        }
        if (whiteout(path, seen))
            continue;
        json_object_set_new(seen, path, json_true());
        if (extract_entry(tar, disk, e) != 0) {
            const char *why = archive_error_string(disk);
            snprintf(err, size, "layer %d: entry \"%.200s\" refused: %s", no, name,
                     why ? why : archive_error_string(tar));
            return -EPERM;
        }
    }
    if (r != ARCHIVE_EOF) {
        snprintf(err, size, "layer %d: %s", no, archive_error_string(tar));
        return -EINVAL;
    }
    return 0;
}

static int extract_layer(int fd, const char *diff_id, int no, char *err, size_t size)
{
    struct layer_stream *s = xcalloc(1, sizeof(*s));
    struct archive *tar = archive_read_new(), *disk = archive_write_disk_new();
    struct archive_entry *e;
    char got[IMG_DIGEST_SIZE];
    int rv = -EINVAL;
    s->outer = archive_read_new();
    img_hash_init(&s->hash);
    archive_read_support_filter_all(s->outer);
    archive_read_support_format_raw(s->outer);
    archive_read_support_format_tar(tar);
    archive_write_disk_set_options(disk, EXTRACT_FLAGS);
    if (archive_read_open_fd(s->outer, fd, 64 * 1024) != ARCHIVE_OK ||
        archive_read_next_header(s->outer, &e) != ARCHIVE_OK) {
        snprintf(err, size, "layer %d: %s", no, archive_error_string(s->outer));
        goto out;
    }
    if (archive_read_open(tar, s, NULL, stream_read, NULL) != ARCHIVE_OK) {
        snprintf(err, size, "layer %d: not a tar archive: %s", no, archive_error_string(tar));
        goto out;
    }
    if ((rv = extract_entries(tar, disk, no, err, size)) != 0)
        goto out;
    const void *dummy;
    la_ssize_t n;
    while ((n = stream_read(tar, s, &dummy)) > 0)
        ;
    if (n < 0) {
        snprintf(err, size, "layer %d: %s", no, archive_error_string(tar));
        rv = -EINVAL;
        goto out;
    }
    img_hash_final(&s->hash, got);
    rv = strcmp(got, diff_id) == 0 ? 0 : -EBADMSG;
    if (rv != 0)
        snprintf(err, size, "layer %d: diff_id mismatch: the config says %s, the layer is %s", no,
                 diff_id, got);
out:
    if (s->hash.md)
        img_hash_free(&s->hash);
    archive_write_free(disk);
    archive_read_free(tar);
    archive_read_free(s->outer);
    free(s);
    return rv;
}

static int child_main(const char *root, const int *fds, json_t *ids, size_t n, char *err,
                      size_t size)
{
    if (chroot(root) != 0 || chdir("/") != 0) {
        snprintf(err, size, "chroot %s: %s", root, strerror(errno));
        return -errno;
    }
    umask(022);
    for (size_t i = 0; i < n; i++) {
        int rv =
            extract_layer(fds[i], json_string_value(json_array_get(ids, i)), (int)i + 1, err, size);
        if (rv != 0)
            return rv;
    }
    return 0;
}

static int run_child(struct img_ctx *c, const char *tmp, const int *fds, json_t *ids, size_t n)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return img_fail(c, -errno, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return img_fail(c, -errno, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        char err[IMG_ERR_SIZE] = "";
        close(p[0]);
        int rv = child_main(tmp, fds, ids, n, err, sizeof(err));
        if (rv != 0 && write(p[1], err, strlen(err)) < 0)
            _exit(1);
        _exit(rv != 0);
    }
    close(p[1]);
    char msg[IMG_ERR_SIZE];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof(msg) - 1 && (r = read(p[0], msg + got, sizeof(msg) - 1 - got)) != 0)
        if (r > 0)
            got += (size_t)r;
        else if (errno != EINTR)
            break;
    msg[got] = '\0';
    close(p[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    return img_fail(c, -EINVAL, "%s", got ? msg : "layer extraction crashed");
}

int img_unpack(struct img_ctx *c, const struct img_manifest *m, json_t *diff_ids, const char *dest)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    int fds[IMG_MAX_LAYERS];
    size_t opened = 0;
    int rv = 0;
    snprintf(tmp, sizeof(tmp), "%s/tmp/rootfs-XXXXXX", c->store);
    if (!mkdtemp(tmp) || chmod(tmp, 0755) != 0)
        return img_fail(c, -errno, "unpack: temp dir: %s", strerror(errno));
    for (; opened < m->n_layers; opened++) {
        img_blob_path(c, m->layers[opened], path, sizeof(path));
        fds[opened] = open(path, O_RDONLY | O_CLOEXEC);
        if (fds[opened] < 0) {
            rv = img_fail(c, -errno, "layer %s: %s", m->layers[opened], strerror(errno));
            break;
        }
    }
    if (rv == 0)
        rv = run_child(c, tmp, fds, diff_ids, m->n_layers);
    for (size_t i = 0; i < opened; i++)
        close(fds[i]);
    if (rv == 0 && rename(tmp, dest) != 0)
        rv = img_fail(c, -errno, "rename %s: %s", dest, strerror(errno));
    if (rv != 0) {
        img_rm_rf(tmp);
        return img_wrap(c, rv, "unpack");
    }
    return 0;
}
