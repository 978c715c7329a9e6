/* From a manifest whose blobs are in the store to a registered image. */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/image/image.h"
#include "common/util.h"

static int descriptor_digest(struct img_ctx *c, json_t *d, const char *what, char *out,
                             int64_t *size)
{
    const char *digest = json_string_value(json_object_get(d, "digest"));
    json_t *sz = json_object_get(d, "size");
    if (!img_digest_valid(digest))
        return img_fail(c, -EINVAL, "manifest: %s has no valid sha256 digest", what);
    if (sz && (!json_is_integer(sz) || json_integer_value(sz) < 0))
        return img_fail(c, -EINVAL, "manifest: %s has a bad size", what);
    common_strlcpy(out, digest, IMG_DIGEST_SIZE);
    *size = sz ? (int64_t)json_integer_value(sz) : -1;
    return 0;
}

int img_manifest_parse(struct img_ctx *c, const char *buf, size_t len, struct img_manifest *m)
{
    json_auto_t *doc = img_json_parse(c, "manifest", buf, len);
    if (!doc)
        return -EINVAL;
    if (json_integer_value(json_object_get(doc, "schemaVersion")) != 2)
        return img_fail(c, -EINVAL, "manifest: schemaVersion is not 2");
    json_t *layers = json_object_get(doc, "layers");
    if (descriptor_digest(c, json_object_get(doc, "config"), "config", m->config,
                          &m->config_size) != 0)
        return -EINVAL;
    if (!json_is_array(layers) || json_array_size(layers) > IMG_MAX_LAYERS)
        return img_fail(c, -EINVAL, "manifest: layers missing or more than %d", IMG_MAX_LAYERS);
    m->n_layers = json_array_size(layers);
    for (size_t i = 0; i < m->n_layers; i++) {
        json_t *l = json_array_get(layers, i);
        const char *mt = json_string_value(json_object_get(l, "mediaType"));
        if (mt && (strstr(mt, "foreign") || strstr(mt, "nondistributable")))
            return img_fail(c, -ENOTSUP, "manifest: layer %zu has unsupported type %s", i, mt);
        if (descriptor_digest(c, l, "a layer", m->layers[i], &m->layer_sizes[i]) != 0)
            return -EINVAL;
    }
    return 0;
}

static json_t *read_config(struct img_ctx *c, const struct img_manifest *m)
{
    size_t len;
    _cleanup_free_ char *buf = img_blob_read(c, m->config, IMG_MAX_JSON, &len);
    json_t *cfg = buf ? img_json_parse(c, "image config", buf, len) : NULL;
    if (!cfg)
        return NULL;
    json_t *ids = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
    if (!json_is_array(ids) || json_array_size(ids) != m->n_layers) {
        img_fail(c, -EINVAL, "image config: %zu rootfs.diff_ids for %zu layers",
                 json_array_size(ids), m->n_layers);
        json_decref(cfg);
        return NULL;
    }
    for (size_t i = 0; i < m->n_layers; i++) {
        if (!img_digest_valid(json_string_value(json_array_get(ids, i)))) {
            img_fail(c, -EINVAL, "image config: diff_id %zu is not a sha256 digest", i);
            json_decref(cfg);
            return NULL;
        }
    }
    return cfg;
}

static uint64_t blob_size(const struct img_ctx *c, const char *digest)
{
    char path[PATH_MAX];
    struct stat st;
    img_blob_path(c, digest, path, sizeof(path));
    return stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

static int record(struct img_ctx *c, const char *ref, const struct img_manifest *m, json_t *cfg,
                  const char *rootfs)
{
    json_auto_t *idx = img_index_load(c);
    if (!idx)
        return -EIO;
    json_t *blobs = json_array();
    uint64_t size = img_du(rootfs) + blob_size(c, m->digest) + blob_size(c, m->config);
    json_array_append_new(blobs, json_string(m->digest));
    json_array_append_new(blobs, json_string(m->config));
    for (size_t i = 0; i < m->n_layers; i++) {
        json_array_append_new(blobs, json_string(m->layers[i]));
        size += blob_size(c, m->layers[i]);
    }
    /* The same image by another manifest (a docker save of an OCI image):
     * its blobs stay referenced while the image is there. */
    json_t *old =
               json_object_get(json_object_get(json_object_get(idx, "images"), m->config), "blobs"),
           *d;
    size_t i;
    json_array_foreach(old, i, d)
    {
        size_t k;
        json_t *e;
        int have = 0;
        json_array_foreach(blobs, k, e) have |= json_equal(e, d);
        if (!have)
            json_array_append(blobs, d);
    }
    const char *created = json_string_value(json_object_get(cfg, "created"));
    json_t *img = json_pack("{s:s,s:o,s:s,s:I}", "digest", m->digest, "blobs", blobs, "created",
                            created ? created : "", "size", (json_int_t)size);
    json_object_set_new(json_object_get(idx, "images"), m->config, img);
    if (ref)
        json_object_set_new(json_object_get(idx, "refs"), ref, json_string(m->config));
    return img_index_save(c, idx);
}

json_t *img_install(struct img_ctx *c, const char *ref, const struct img_manifest *m)
{
    json_auto_t *cfg = read_config(c, m);
    if (!cfg)
        return NULL;
    char rootfs[PATH_MAX];
    struct stat st;
    snprintf(rootfs, sizeof(rootfs), "%s/rootfs/%s", c->store, m->config + 7);
    if (stat(rootfs, &st) != 0 || !S_ISDIR(st.st_mode)) {
        for (size_t i = 0; i < m->n_layers; i++) {
            if (!img_blob_exists(c, m->layers[i])) {
                img_fail(c, -ENOENT, "layer %s is not in the store", m->layers[i]);
                return NULL;
            }
        }
        json_t *ids = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
        if (img_unpack(c, m, ids, rootfs) != 0)
            return NULL;
    }
    if (record(c, ref, m, cfg, rootfs) != 0)
        return NULL;
    json_auto_t *idx = img_index_load(c);
    return idx ? img_describe(c, idx, m->config, ref) : NULL;
}
