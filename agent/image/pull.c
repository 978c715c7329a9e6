/* shoal-image pull: resolve a reference on its registry, fetch and verify the
 * manifest, config and layers, unpack, record. */
#include <errno.h>
#include <string.h>

#include "agent/image/image.h"
#include "common/util.h"

static int is_index(const char *ctype, json_t *doc)
{
    return strstr(ctype, "image.index") || strstr(ctype, "manifest.list") ||
           json_is_array(json_object_get(doc, "manifests"));
}

/* Picks the linux/amd64 entry of an index or manifest list. */
int img_select_platform(struct img_ctx *c, json_t *doc, char *digest)
{
    json_t *list = json_object_get(doc, "manifests"), *m;
    size_t i;
    char seen[200] = "";
    json_array_foreach(list, i, m)
    {
        json_t *p = json_object_get(m, "platform");
        const char *os = json_string_value(json_object_get(p, "os"));
        const char *arch = json_string_value(json_object_get(p, "architecture"));
        const char *d = json_string_value(json_object_get(m, "digest"));
        if (os && arch && strcmp(os, "linux") == 0 && strcmp(arch, "amd64") == 0 &&
            img_digest_valid(d)) {
            common_strlcpy(digest, d, IMG_DIGEST_SIZE);
            return 0;
        }
        size_t n = strlen(seen);
        snprintf(seen + n, sizeof(seen) - n, "%s%s/%s", n ? ", " : "", os ? os : "?",
                 arch ? arch : "?");
    }
    return img_fail(c, -ENOENT, "no linux/amd64 image in the index (it has: %s)",
                    seen[0] ? seen : "nothing");
}

/* Gets a manifest, checks it against want (if set) and stores it as a blob. */
static int fetch_manifest(struct img_ctx *c, struct img_reg *g, const char *what, const char *want,
                          char *digest, json_t **doc, char *ctype)
{
    _cleanup_free_ char *body = NULL;
    size_t len;
    int rv = img_reg_manifest(g, what, &body, &len, ctype, 128);
    if (rv != 0)
        return rv;
    if ((rv = img_blob_put(c, body, len, digest)) != 0)
        return rv;
    if (want && strcmp(want, digest) != 0)
        return img_fail(c, -EBADMSG, "manifest %s: digest mismatch (received %s)", want, digest);
    *doc = img_json_parse(c, "manifest", body, len);
    return *doc ? 0 : -EINVAL;
}

static int resolve(struct img_ctx *c, const struct img_ref *r, struct img_manifest *m)
{
    struct img_reg *g = NULL;
    char ctype[128], inner[IMG_DIGEST_SIZE];
    json_auto_t *doc = NULL;
    int rv = img_reg_open(c, r, &g);
    if (rv != 0)
        return rv;
    const char *what = r->digest[0] ? r->digest : r->tag;
    rv = fetch_manifest(c, g, what, r->digest[0] ? r->digest : NULL, m->digest, &doc, ctype);
    if (rv == 0 && is_index(ctype, doc)) {
        rv = img_select_platform(c, doc, inner);
        json_decref(TAKE_PTR(doc));
        if (rv == 0)
            rv = fetch_manifest(c, g, inner, inner, m->digest, &doc, ctype);
    }
    if (rv == 0) {
        char *txt = json_dumps(doc, JSON_COMPACT);
        rv = img_manifest_parse(c, txt, strlen(txt), m);
        free(txt);
    }
    if (rv == 0)
        rv = img_reg_blob(g, m->config, m->config_size);
    char rootfs[4200];
    snprintf(rootfs, sizeof(rootfs), "%s/rootfs/%s", c->store, m->config + 7);
    for (size_t i = 0; rv == 0 && i < m->n_layers && access(rootfs, F_OK) != 0; i++)
        rv = img_reg_blob(g, m->layers[i], m->layer_sizes[i]);
    img_reg_close(g);
    return rv;
}

int img_cmd_pull(struct img_ctx *c, const char *refstr, json_t **out)
{
    struct img_ref r;
    struct img_manifest m = {0};
    int rv = img_ref_parse(c, refstr, &r);
    if (rv == 0)
        rv = img_store_lock(c);
    if (rv != 0)
        return rv;
    json_auto_t *idx = img_index_load(c);
    if (!idx)
        return -EIO;
    const char *local = img_index_find(idx, r.full);
    if (!r.host[0] && !local)
        return img_fail(c, -ENOENT,
                        "image %s is not in the store (a reference without a registry host "
                        "names a local image: load it with shoal image load)",
                        r.full);
    if (r.host[0]) {
        rv = resolve(c, &r, &m);
        if (rv == -EHOSTUNREACH && local) {
            fprintf(stderr, "shoal-image: %s; using the local copy of %s\n", c->err, r.full);
            rv = 0;
        } else if (rv != 0) {
            return img_wrap(c, rv, "pull %s", r.full);
        } else {
            *out = img_install(c, r.full, &m);
            return *out ? 0 : img_wrap(c, -EIO, "pull %s", r.full);
        }
    }
    *out = img_describe(c, idx, local, r.full);
    return *out ? 0 : -EIO;
}
