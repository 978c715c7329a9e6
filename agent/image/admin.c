/* shoal-image inspect, ls, rm and gc: the store's bookkeeping. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/image/image.h"
#include "common/util.h"

int img_cmd_inspect(struct img_ctx *c, const char *name, json_t **out)
{
    json_auto_t *idx = img_index_load(c);
    if (!idx)
        return -EIO;
    const char *id = img_index_find(idx, name);
    if (!id)
        return img_fail(c, -ENOENT, "image %s not in store", name);
    struct img_ref r;
    struct img_ctx scratch = {0};
    const char *ref = json_object_get(json_object_get(idx, "refs"), name) ? name : NULL;
    if (!ref && img_ref_parse(&scratch, name, &r) == 0 &&
        json_object_get(json_object_get(idx, "refs"), r.full))
        ref = r.full;
    *out = img_describe(c, idx, id, ref);
    return *out ? 0 : -EIO;
}

static json_t *refs_of(json_t *idx, const char *id)
{
    json_t *refs = json_array(), *v;
    const char *k;
    json_object_foreach(json_object_get(idx, "refs"), k,
                        v) if (strcmp(json_string_value(v), id) == 0)
        json_array_append_new(refs, json_string(k));
    return refs;
}

int img_cmd_ls(struct img_ctx *c, json_t **out)
{
    json_auto_t *idx = img_index_load(c);
    if (!idx)
        return -EIO;
    json_t *list = json_array(), *img;
    const char *id;
    json_object_foreach(json_object_get(idx, "images"), id, img)
    {
        json_array_append_new(list, json_pack("{s:o,s:s,s:O,s:O,s:O}", "refs", refs_of(idx, id),
                                              "id", id, "digest", json_object_get(img, "digest"),
                                              "size", json_object_get(img, "size"), "created",
                                              json_object_get(img, "created")));
    }
    *out = json_pack("{s:o}", "images", list);
    return 0;
}

static int kept(const struct img_ctx *c, const char *id)
{
    for (size_t i = 0; i < c->n_keep; i++)
        if (strcmp(c->keep[i], id) == 0 || strcmp(c->keep[i], id + 7) == 0)
            return 1;
    return 0;
}

/* Unregisters an image and its refs (the caller saves the index). */
static void forget(json_t *idx, const char *id, json_t *untagged)
{
    json_t *refs = json_object_get(idx, "refs"), *v;
    const char *k;
    void *tmp;
    json_object_foreach_safe(refs, tmp, k, v)
    {
        if (strcmp(json_string_value(v), id) == 0) {
            json_array_append_new(untagged, json_string(k));
            json_object_del(refs, k);
        }
    }
}

/* Deletes rootfs dirs and blobs no image of the index references. */
static int sweep(struct img_ctx *c, json_t *idx, json_t *report)
{
    json_auto_t *used = json_object();
    json_t *img, *d;
    const char *id;
    size_t i;
    json_object_foreach(json_object_get(idx, "images"), id, img)
    {
        json_object_set_new(used, id + 7, json_true());
        json_array_foreach(json_object_get(img, "blobs"), i,
                           d) if (img_digest_valid(json_string_value(d)))
            json_object_set_new(used, json_string_value(d) + 7, json_true());
    }
    static const char *const dirs[] = {"rootfs", "blobs/sha256"};
    uint64_t freed = 0, blobs = 0;
    for (size_t k = 0; k < ARRAY_SIZE(dirs); k++) {
        char dir[PATH_MAX], path[PATH_MAX], gone[PATH_MAX];
        snprintf(dir, sizeof(dir), "%s/%s", c->store, dirs[k]);
        DIR *dh = opendir(dir);
        struct dirent *e;
        while (dh && (e = readdir(dh)) != NULL) {
            if (e->d_name[0] == '.' || json_object_get(used, e->d_name))
                continue;
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            snprintf(gone, sizeof(gone), "%s/tmp/gone-%s", c->store, e->d_name);
            freed += img_du(path);
            blobs += k == 1;
            if (rename(path, gone) == 0)
                img_rm_rf(gone);
        }
        if (dh)
            closedir(dh);
    }
    json_object_set_new(report, "blobs_removed", json_integer((json_int_t)blobs));
    json_object_set_new(report, "bytes_freed", json_integer((json_int_t)freed));
    return 0;
}

int img_cmd_rm(struct img_ctx *c, const char *name, json_t **out)
{
    int rv = img_store_lock(c);
    json_auto_t *idx = rv == 0 ? img_index_load(c) : NULL;
    if (!idx)
        return -EIO;
    const char *found = img_index_find(idx, name);
    if (!found)
        return img_fail(c, -ENOENT, "image %s not in store", name);
    char id[IMG_DIGEST_SIZE];
    common_strlcpy(id, found, sizeof(id));
    if (kept(c, id))
        return img_fail(c, -EBUSY, "image %s (%s) is in use by a task", name, id);
    json_t *refs = json_object_get(idx, "refs"), *untagged = json_array(), *deleted = json_array();
    struct img_ref r;
    struct img_ctx scratch = {0};
    const char *ref = json_object_get(refs, name) ? name : NULL;
    if (!ref && img_ref_parse(&scratch, name, &r) == 0 && json_object_get(refs, r.full))
        ref = r.full;
    json_auto_t *left = NULL;
    if (ref) {
        json_array_append_new(untagged, json_string(ref));
        json_object_del(refs, ref);
        left = refs_of(idx, id);
    }
    if (!ref || json_array_size(left) == 0) {
        forget(idx, id, untagged);
        json_object_del(json_object_get(idx, "images"), id);
        json_array_append_new(deleted, json_string(id));
    }
    *out = json_pack("{s:o,s:o}", "untagged", untagged, "deleted", deleted);
    if ((rv = img_index_save(c, idx)) != 0)
        return rv;
    return sweep(c, idx, *out);
}

int img_cmd_gc(struct img_ctx *c, json_t **out)
{
    int rv = img_store_lock(c);
    json_auto_t *idx = rv == 0 ? img_index_load(c) : NULL;
    if (!idx)
        return -EIO;
    json_t *images = json_object_get(idx, "images"), *img;
    json_t *untagged = json_array(), *deleted = json_array();
    const char *id;
    void *tmp;
    json_object_foreach_safe(images, tmp, id, img)
    {
        if (kept(c, id))
            continue;
        forget(idx, id, untagged);
        json_array_append_new(deleted, json_string(id));
        json_object_del(images, id);
    }
    *out = json_pack("{s:o,s:o}", "untagged", untagged, "deleted", deleted);
    if ((rv = img_index_save(c, idx)) != 0)
        return rv;
    return sweep(c, idx, *out);
}
