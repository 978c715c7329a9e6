/* Service specs, the generic half: the walker that applies a table of
 * fields (api/spec_internal.h) to a user's JSON, the generic field kinds, and
 * the entry points. The schema itself is in api/spec_fields.c. */
#include "api/spec.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "api/spec_internal.h"
#include "common/units.h"
#include "common/util.h"

#define MAX_SIZE_BYTES (INT64_C(1) << 50)

static int walk_object(const json_t *in, const struct api__spec_field *fields, size_t n,
                       const char *path, json_t *out, struct api__spec_walk *w);

int api__spec_bad(struct api__spec_walk *w, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rv = api_err_vset(w->err, API_BAD_REQUEST, path, fmt, ap);
    va_end(ap);
    return rv;
}

void api__spec_path_key(char *dst, const char *parent, const char *key)
{
    if (parent[0])
        snprintf(dst, API__SPEC_PATH_LEN, "%s.%s", parent, key);
    else
        snprintf(dst, API__SPEC_PATH_LEN, "%s", key);
}

void api__spec_path_index(char *dst, const char *parent, size_t i)
{
    snprintf(dst, API__SPEC_PATH_LEN, "%s[%zu]", parent, i);
}

/* Reads a string value: at most API_SPEC_MAX_STRING bytes, no NUL inside. */
int api__spec_get_str(const json_t *val, const char *path, struct api__spec_walk *w, const char **s)
{
    if (!json_is_string(val))
        return api__spec_bad(w, path, "must be a string");
    size_t len = json_string_length(val);
    if (len > API_SPEC_MAX_STRING)
        return api__spec_bad(w, path, "must be at most %d characters", API_SPEC_MAX_STRING);
    *s = json_string_value(val);
    if (strlen(*s) != len)
        return api__spec_bad(w, path, "must not contain NUL characters");
    return 0;
}

/* Checks that val is a list of at most max entries. */
int api__spec_get_list(const json_t *val, const char *path, size_t max, struct api__spec_walk *w)
{
    if (!json_is_array(val))
        return api__spec_bad(w, path, "must be a list");
    if (json_array_size(val) > max)
        return api__spec_bad(w, path, "must have at most %zu entries", max);
    return 0;
}

bool api__spec_in_choices(const char *const *choices, const char *s)
{
    for (; *choices; choices++)
        if (strcmp(*choices, s) == 0)
            return true;
    return false;
}

static int bad_choice(struct api__spec_walk *w, const char *path, const char *const *choices)
{
    char list[192] = "";
    size_t off = 0;
    for (const char *const *c = choices; *c && off < sizeof(list); c++) {
        int n = snprintf(list + off, sizeof(list) - off, "%s%s", c == choices ? "" : ", ", *c);
        off += n > 0 ? (size_t)n : 0;
    }
    return api__spec_bad(w, path, "must be one of: %s", list);
}

/* ---- Generic field kinds ---- */

int api__spec_string(const struct api__spec_field *f, const json_t *val, const char *path,
                     json_t *out, struct api__spec_walk *w)
{
    const char *s = f->def;
    if (val) {
        int rv = api__spec_get_str(val, path, w, &s);
        if (rv < 0)
            return rv;
    }
    if (f->valid && !f->valid(s))
        return api__spec_bad(w, path, "%s", f->rule);
    json_object_set_new(out, f->key, json_string(s));
    return 0;
}

int api__spec_enum(const struct api__spec_field *f, const json_t *val, const char *path,
                   json_t *out, struct api__spec_walk *w)
{
    const char *s = f->def;
    if (val) {
        int rv = api__spec_get_str(val, path, w, &s);
        if (rv < 0)
            return rv;
    }
    if (!api__spec_in_choices(f->choices, s))
        return bad_choice(w, path, f->choices);
    json_object_set_new(out, f->key, json_string(s));
    return 0;
}

int api__spec_bool(const struct api__spec_field *f, const json_t *val, const char *path,
                   json_t *out, struct api__spec_walk *w)
{
    if (val && !json_is_boolean(val))
        return api__spec_bad(w, path, "must be true or false");
    json_object_set_new(out, f->key, json_boolean(val && json_is_true(val)));
    return 0;
}

int api__spec_int(const struct api__spec_field *f, const json_t *val, const char *path, json_t *out,
                  struct api__spec_walk *w)
{
    json_int_t v = f->idef;
    if (val) {
        if (!json_is_integer(val))
            return api__spec_bad(w, path, "must be an integer");
        v = json_integer_value(val);
    }
    if (v < f->min || v > f->max)
        return api__spec_bad(w, path, "must be between %lld and %lld", (long long)f->min,
                             (long long)f->max);
    json_object_set_new(out, f->key, json_integer(v));
    return 0;
}

int api__spec_number(const struct api__spec_field *f, const json_t *val, const char *path,
                     json_t *out, struct api__spec_walk *w)
{
    double v = (double)f->idef;
    if (val) {
        if (!json_is_number(val))
            return api__spec_bad(w, path, "must be a number");
        v = json_number_value(val);
    }
    if (!(v >= (double)f->min && v <= (double)f->max))
        return api__spec_bad(w, path, "must be between %lld and %lld", (long long)f->min,
                             (long long)f->max);
    json_object_set_new(out, f->key, json_real(v));
    return 0;
}

int api__spec_duration(const struct api__spec_field *f, const json_t *val, const char *path,
                       json_t *out, struct api__spec_walk *w)
{
    const char *s = f->def;
    int64_t ms = 0;
    char text[32];
    if (val) {
        int rv = api__spec_get_str(val, path, w, &s);
        if (rv < 0)
            return rv;
    }
    if (common_parse_duration(s, &ms) < 0)
        return api__spec_bad(w, path, "must be a duration such as \"5s\"");
    if (ms < f->min) {
        common_format_duration(f->min, text, sizeof(text));
        return api__spec_bad(w, path, "must be at least %s", text);
    }
    common_format_duration(ms, text, sizeof(text));
    json_object_set_new(out, f->key, json_string(text));
    return 0;
}

int api__spec_size(const struct api__spec_field *f, const json_t *val, const char *path,
                   json_t *out, struct api__spec_walk *w)
{
    int64_t bytes = 0;
    const char *s;
    if (json_is_integer(val)) {
        bytes = json_integer_value(val);
        if (bytes < 0 || bytes > MAX_SIZE_BYTES)
            return api__spec_bad(w, path, "must be between 0 and 1 PiB");
    } else if (val) {
        if (!json_is_string(val) || api__spec_get_str(val, path, w, &s) < 0 ||
            common_parse_size(s, &bytes) < 0)
            return api__spec_bad(w, path, "must be a size such as \"64M\" or a number of bytes");
    }
    json_object_set_new(out, f->key, json_integer(bytes));
    return 0;
}

int api__spec_object(const struct api__spec_field *f, const json_t *val, const char *path,
                     json_t *out, struct api__spec_walk *w)
{
    if (val && !json_is_object(val))
        return api__spec_bad(w, path, "must be an object");
    json_auto_t *sub = json_object();
    int rv = walk_object(val, f->sub, f->nsub, path, sub, w);
    if (rv == 0 && f->post)
        rv = f->post(sub, path, w);
    if (rv < 0)
        return rv;
    json_object_set_new(out, f->key, TAKE_PTR(sub));
    return 0;
}

/* A list of objects, each with the fields f->sub. */
int api__spec_objlist(const struct api__spec_field *f, const json_t *val, const char *path,
                      json_t *out, struct api__spec_walk *w)
{
    json_auto_t *list = json_array();
    char p[API__SPEC_PATH_LEN];
    if (val) {
        int rv = api__spec_get_list(val, path, (size_t)f->max, w);
        for (size_t i = 0; rv == 0 && i < json_array_size(val); i++) {
            const json_t *e = json_array_get(val, i);
            api__spec_path_index(p, path, i);
            if (!json_is_object(e))
                return api__spec_bad(w, p, "must be an object");
            json_t *o = json_object();
            json_array_append_new(list, o);
            rv = walk_object(e, f->sub, f->nsub, p, o, w);
        }
        if (rv < 0)
            return rv;
    }
    if (f->post) {
        int rv = f->post(list, path, w);
        if (rv < 0)
            return rv;
    }
    json_object_set_new(out, f->key, TAKE_PTR(list));
    return 0;
}

/* A list of at most f->max strings. */
int api__spec_strlist(const struct api__spec_field *f, const json_t *val, const char *path,
                      json_t *out, struct api__spec_walk *w)
{
    json_auto_t *list = json_array();
    char p[API__SPEC_PATH_LEN];
    if (val) {
        int rv = api__spec_get_list(val, path, (size_t)f->max, w);
        if (rv < 0)
            return rv;
        for (size_t i = 0; i < json_array_size(val); i++) {
            const char *s;
            api__spec_path_index(p, path, i);
            rv = api__spec_get_str(json_array_get(val, i), p, w, &s);
            if (rv < 0)
                return rv;
            json_array_append_new(list, json_string(s));
        }
    }
    json_object_set_new(out, f->key, TAKE_PTR(list));
    return 0;
}

/* version, create_index, modify_index: set by the server, checked and
 * dropped. */
int api__spec_readonly(const struct api__spec_field *f, const json_t *val, const char *path,
                       json_t *out, struct api__spec_walk *w)
{
    (void)f;
    (void)out;
    if (val && !json_is_integer(val))
        return api__spec_bad(w, path, "must be an integer");
    return 0;
}

/* rollout, stable_spec, previous_spec: written by the server, dropped on
 * input (a service read, edited and written back carries them). */
int api__spec_server_set(const struct api__spec_field *f, const json_t *val, const char *path,
                         json_t *out, struct api__spec_walk *w)
{
    (void)f;
    (void)val;
    (void)path;
    (void)out;
    (void)w;
    return 0;
}

/* Checks the keys of in against fields (unknown keys are refused), then
 * builds every field in table order into out. in may be NULL (all
 * defaults). */
static int walk_object(const json_t *in, const struct api__spec_field *fields, size_t n,
                       const char *path, json_t *out, struct api__spec_walk *w)
{
    const char *key;
    size_t key_len;
    json_t *val;
    char p[API__SPEC_PATH_LEN];

    json_object_keylen_foreach((json_t *)in, key, key_len, val)
    {
        size_t i = 0;
        while (i < n && (strlen(key) != key_len || strcmp(fields[i].key, key) != 0))
            i++;
        if (i == n) {
            api__spec_path_key(p, path, key);
            return api__spec_bad(w, p, "unknown field");
        }
    }
    for (size_t i = 0; i < n; i++) {
        val = json_object_get(in, fields[i].key);
        api__spec_path_key(p, path, fields[i].key);
        if (!val && fields[i].required)
            return api__spec_bad(w, p, "required");
        int rv = fields[i].fn(&fields[i], val, p, out, w);
        if (rv < 0)
            return rv;
    }
    return 0;
}

int api_spec_normalize(const json_t *in, json_t **out, struct api_err *err)
{
    struct api__spec_walk w = {.err = err};
    *out = NULL;
    if (!json_is_object(in))
        return api_err_set(err, API_BAD_REQUEST, NULL, "a service spec must be a JSON object");
    json_auto_t *spec = json_object();
    int rv = walk_object(in, api__spec_fields, api__spec_nfields, "", spec, &w);
    if (rv < 0)
        return rv;
    *out = TAKE_PTR(spec);
    return 0;
}

int api_json_depth(const char *s, size_t len)
{
    int depth = 0, max = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++; /* the escaped character cannot end the string */
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (depth < INT_MAX)
                depth++;
            if (depth > max)
                max = depth;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return max;
}
