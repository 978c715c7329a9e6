/* shoal-image load: an OCI image layout or a `docker save` tarball. Every
 * regular file of the tarball is streamed into the store as a blob named by
 * its sha256 (blobs/sha256/<hex> entries must match their name); the layout's
 * index.json or docker's manifest.json then say which blobs make an image. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "agent/image/image.h"
#include "common/util.h"

static int is_meta(const char *name)
{
    return strcmp(name, "index.json") == 0 || strcmp(name, "manifest.json") == 0 ||
           strcmp(name, "oci-layout") == 0 || strcmp(name, "repositories") == 0;
}

static int entry_to_blob(struct img_ctx *c, struct archive *a, const char *name, char *digest)
{
    char tmp[PATH_MAX], buf[64 * 1024];
    _cleanup_close_ int fd = img_tmp_file(c, tmp, sizeof(tmp));
    if (fd < 0)
        return fd;
    struct img_hash h;
    la_ssize_t n;
    img_hash_init(&h);
    while ((n = archive_read_data(a, buf, sizeof(buf))) > 0) {
        img_hash_update(&h, buf, (size_t)n);
        if (write(fd, buf, (size_t)n) != n) {
            n = -1;
            break;
        }
    }
    img_hash_final(&h, digest);
    if (n < 0) {
        unlink(tmp);
        return img_fail(c, -EIO, "%s: %s", name, archive_error_string(a));
    }
    if (strncmp(name, "blobs/sha256/", 13) == 0 && strcmp(name + 13, digest + 7) != 0) {
        unlink(tmp);
        return img_fail(c, -EBADMSG, "%s: digest mismatch (content is %s)", name, digest);
    }
    if (img_blob_exists(c, digest)) {
        unlink(tmp);
        return 0;
    }
    return img_blob_commit(c, tmp, digest);
}

static int read_meta(struct img_ctx *c, struct archive *a, const char *name, json_t *meta)
{
    char *buf = xmalloc(IMG_MAX_JSON);
    size_t len = 0;
    la_ssize_t n;
    while ((n = archive_read_data(a, buf + len, IMG_MAX_JSON - len)) > 0)
        len += (size_t)n;
    if (n < 0 || len >= IMG_MAX_JSON) {
        free(buf);
        return img_fail(c, -EINVAL, "%s: unreadable or too large", name);
    }
    json_error_t je;
    json_t *doc = json_loadb(buf, len, 0, &je);
    free(buf);
    if (!doc && strcmp(name, "oci-layout") != 0)
        return img_fail(c, -EINVAL, "%s: invalid JSON: %s", name, je.text);
    json_object_set_new(meta, name, doc ? doc : json_null());
    return 0;
}

/* Streams the tarball: meta gets the layout files, files maps path->digest. */
static int read_tarball(struct img_ctx *c, const char *file, json_t *meta, json_t *files)
{
    struct archive *a = archive_read_new();
    struct archive_entry *e;
    int r, rv = 0;
    archive_read_support_filter_all(a);
    archive_read_support_format_tar(a);
    if (archive_read_open_filename(a, file, 64 * 1024) != ARCHIVE_OK) {
        rv = img_fail(c, -EINVAL, "%s: %s", file, archive_error_string(a));
        archive_read_free(a);
        return rv;
    }
    while (rv == 0 && ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN)) {
        const char *name = archive_entry_pathname(e);
        char digest[IMG_DIGEST_SIZE];
        while (name && name[0] == '.' && name[1] == '/')
            name += 2;
        if (!name || archive_entry_filetype(e) != AE_IFREG)
            continue;
        if (is_meta(name))
            rv = read_meta(c, a, name, meta);
        else if ((rv = entry_to_blob(c, a, name, digest)) == 0)
            json_object_set_new(files, name, json_string(digest));
    }
    if (rv == 0 && r != ARCHIVE_EOF)
        rv = img_fail(c, -EINVAL, "%s: %s", file, archive_error_string(a));
    archive_read_free(a);
    return rv;
}

static json_t *read_blob_json(struct img_ctx *c, const char *digest)
{
    size_t len;
    _cleanup_free_ char *buf = img_blob_read(c, digest, IMG_MAX_JSON, &len);
    return buf ? img_json_parse(c, digest, buf, len) : NULL;
}

static int load_oci_entry(struct img_ctx *c, json_t *desc, json_t *loaded)
{
    struct img_manifest m = {0};
    struct img_ref r;
    const char *d = json_string_value(json_object_get(desc, "digest"));
    json_t *ann = json_object_get(desc, "annotations");
    const char *name = json_string_value(json_object_get(ann, "io.containerd.image.name"));
    if (!name)
        name = json_string_value(json_object_get(ann, "org.opencontainers.image.ref.name"));
    if (name && img_ref_parse(c, name, &r) != 0)
        return -EINVAL;
    if (!img_digest_valid(d))
        return img_fail(c, -EINVAL, "index.json: a manifest without a sha256 digest");
    common_strlcpy(m.digest, d, sizeof(m.digest));
    json_auto_t *doc = read_blob_json(c, m.digest);
    if (doc && json_is_array(json_object_get(doc, "manifests"))) {
        if (img_select_platform(c, doc, m.digest) != 0)
            return -ENOENT;
        json_decref(doc);
        doc = read_blob_json(c, m.digest);
    }
    char *txt = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    int rv = txt ? img_manifest_parse(c, txt, strlen(txt), &m) : -EINVAL;
    free(txt);
    json_t *img = rv == 0 ? img_install(c, name ? r.full : NULL, &m) : NULL;
    if (!img)
        return -EINVAL;
    json_array_append_new(loaded, img);
    return 0;
}

static json_t *layer_desc(const char *digest, const char *mt, const struct img_ctx *c)
{
    char path[PATH_MAX];
    img_blob_path(c, digest, path, sizeof(path));
    FILE *f = fopen(path, "re");
    long size = f && fseek(f, 0, SEEK_END) == 0 ? ftell(f) : 0;
    if (f)
        fclose(f);
    return json_pack("{s:s,s:s,s:I}", "mediaType", mt, "digest", digest, "size", (json_int_t)size);
}

/* A docker save entry {Config, RepoTags, Layers}: an OCI manifest is made for
 * it (its layers are plain tars, so their digests are the diff_ids). */
static int load_docker_entry(struct img_ctx *c, json_t *ent, json_t *files, json_t *loaded)
{
    struct img_manifest m = {0};
    json_t *layers = json_object_get(ent, "Layers"), *l, *tags = json_object_get(ent, "RepoTags");
    const char *cfg = json_string_value(
        json_object_get(files, json_string_value(json_object_get(ent, "Config"))));
    size_t i;
    if (!cfg || !json_is_array(layers) || json_array_size(layers) > IMG_MAX_LAYERS)
        return img_fail(c, -EINVAL, "manifest.json: an entry without its Config or Layers");
    json_t *descs = json_array();
    json_array_foreach(layers, i, l)
    {
        const char *d = json_string_value(json_object_get(files, json_string_value(l)));
        if (!d) {
            json_decref(descs);
            return img_fail(c, -EINVAL, "manifest.json: layer %zu is not in the tarball", i);
        }
        json_array_append_new(descs, layer_desc(d, "application/vnd.oci.image.layer.v1.tar", c));
    }
    json_auto_t *man =
        json_pack("{s:i,s:s,s:o,s:o}", "schemaVersion", 2, "mediaType",
                  "application/vnd.oci.image.manifest.v1+json", "config",
                  layer_desc(cfg, "application/vnd.oci.image.config.v1+json", c), "layers", descs);
    _cleanup_free_ char *txt = json_dumps(man, JSON_COMPACT | JSON_SORT_KEYS);
    int rv = img_blob_put(c, txt, strlen(txt), m.digest);
    if (rv == 0)
        rv = img_manifest_parse(c, txt, strlen(txt), &m);
    if (rv != 0)
        return rv;
    size_t ntags = json_array_size(tags);
    for (size_t k = 0; k < (ntags ? ntags : 1); k++) {
        struct img_ref r;
        const char *tag = json_string_value(json_array_get(tags, k));
        if (tag && img_ref_parse(c, tag, &r) != 0)
            return -EINVAL;
        json_t *img = img_install(c, tag ? r.full : NULL, &m);
        if (!img)
            return -EINVAL;
        json_array_append_new(loaded, img);
    }
    return 0;
}

int img_cmd_load(struct img_ctx *c, const char *file, json_t **out)
{
    int rv = img_store_lock(c);
    if (rv != 0)
        return rv;
    json_auto_t *meta = json_object(), *files = json_object(), *loaded = json_array();
    if ((rv = read_tarball(c, file, meta, files)) != 0)
        return img_wrap(c, rv, "load %s", file);
    json_t *index = json_object_get(meta, "index.json");
    json_t *docker = json_object_get(meta, "manifest.json"), *e;
    size_t i;
    if (json_is_object(index)) {
        json_array_foreach(json_object_get(index, "manifests"), i,
                           e) if ((rv = load_oci_entry(c, e, loaded)) !=
                                  0) return img_wrap(c, rv, "load %s", file);
    } else if (json_is_array(docker)) {
        json_array_foreach(docker, i, e) if ((rv = load_docker_entry(c, e, files, loaded)) !=
                                             0) return img_wrap(c, rv, "load %s", file);
    } else {
        return img_fail(c, -EINVAL,
                        "load %s: neither an OCI image layout (index.json) nor a docker save "
                        "tarball (manifest.json)",
                        file);
    }
    if (json_array_size(loaded) == 0)
        return img_fail(c, -ENOENT, "load %s: no image in the tarball", file);
    *out = json_pack("{s:O}", "loaded", loaded);
    return 0;
}
