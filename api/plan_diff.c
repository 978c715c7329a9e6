/* A field-by-field difference of two JSON documents, for POST /v1/plan:
 * objects compared key by key, arrays index by index, anything else by
 * value. */
#include <stdlib.h>
#include <string.h>

#include "api/internal.h"
#include "common/buf.h"
#include "common/util.h"

static void add(json_t *out, const char *path, const json_t *old, const json_t *new)
{
    json_array_append_new(out, json_pack("{s:s, s:O, s:O}", "path", path, "old",
                                         old ? (json_t *)old : json_null(), "new",
                                         new ? (json_t *)new : json_null()));
}

static int by_string(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void diff_at(json_t *out, struct common_buf *path, const json_t *old, const json_t *new);

/* The keys of both objects (either may be NULL), sorted, each once. */
static const char **union_keys(const json_t *a, const json_t *b, size_t *n)
{
    const char **keys = xcalloc(json_object_size(a) + json_object_size(b) + 1, sizeof(*keys));
    const char *key;
    json_t *v;
    *n = 0;
    json_object_foreach((json_t *)a, key, v)
    {
        keys[(*n)++] = key;
    }
    json_object_foreach((json_t *)b, key, v)
    {
        if (!json_object_get(a, key))
            keys[(*n)++] = key;
    }
    qsort(keys, *n, sizeof(*keys), by_string);
    return keys;
}

static void diff_objects(json_t *out, struct common_buf *path, const json_t *old, const json_t *new)
{
    size_t n, len = path->len;
    const char **keys = union_keys(old, new, &n);
    for (size_t i = 0; i < n; i++) {
        if (len)
            common_buf_puts(path, ".");
        common_buf_puts(path, keys[i]);
        diff_at(out, path, json_object_get(old, keys[i]), json_object_get(new, keys[i]));
        path->len = len;
        path->data[len] = '\0';
    }
    free(keys);
}

static void diff_arrays(json_t *out, struct common_buf *path, const json_t *old, const json_t *new)
{
    size_t len = path->len, n_old = json_array_size(old), n_new = json_array_size(new);
    for (size_t i = 0; i < (n_old > n_new ? n_old : n_new); i++) {
        common_buf_printf(path, "[%zu]", i);
        const json_t *a = json_array_get(old, i), *b = json_array_get(new, i);
        if (a && b)
            diff_at(out, path, a, b);
        else
            add(out, path->data, a, b);
        path->len = len;
        path->data[len] = '\0';
    }
}

/* An absent side next to an object counts as an empty object, so that each
 * field of an added or removed object is listed on its own; an empty object
 * added or removed is listed whole. */
static void diff_at(json_t *out, struct common_buf *path, const json_t *old, const json_t *new)
{
    if (old && new &&json_equal((json_t *)old, (json_t *)new))
        return;
    int obj_old = json_is_object(old), obj_new = json_is_object(new);
    if ((obj_old && obj_new) || (obj_old && !new &&json_object_size(old)) ||
        (obj_new && !old && json_object_size(new))) {
        diff_objects(out, path, old, new);
        return;
    }
    if (json_is_array(old) && json_is_array(new)) {
        diff_arrays(out, path, old, new);
        return;
    }
    if (old || new)
        add(out, path->data, old, new);
}

json_t *api__plan_diff(const json_t *old, const json_t *new)
{
    json_t *out = json_array();
    struct common_buf path = {0};
    common_buf_append(&path, "", 0); /* data is never NULL below */
    diff_at(out, &path, old, new);
    common_buf_free(&path);
    return out;
}
