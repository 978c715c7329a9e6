/* Shared between the files of the spec module: the table that describes one
 * field of the schema, the walker state, and the generic field kinds and
 * helpers the schema in api/spec_fields.c is built from. */
#ifndef SHOAL_API_SPEC_INTERNAL_H
#define SHOAL_API_SPEC_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/error.h"

/* Size of a JSON path buffer: the field of an api_err. */
#define API__SPEC_PATH_LEN sizeof(((struct api_err *)0)->field)

/* State of one normalization: where errors go and whether the walk is inside
 * `rollback`, where failure_action "rollback" is refused. */
struct api__spec_walk {
    struct api_err *err; /* borrowed, valid for the walk */
    bool in_rollback;
};

struct api__spec_field;

/* Validates val (borrowed; NULL when the key is absent) found at path and
 * sets its canonical form, or its default, as f->key in out. Returns 0 or
 * -EINVAL with w->err set. */
typedef int (*api__spec_field_cb)(const struct api__spec_field *f, const json_t *val,
                                  const char *path, json_t *out, struct api__spec_walk *w);
/* Checks a built object or list as a whole (rules across its fields). */
typedef int (*api__spec_post_cb)(json_t *out, const char *path, struct api__spec_walk *w);
/* Returns true when a string follows a field's rule. */
typedef bool (*api__spec_valid_cb)(const char *s);

/* One field of an object of the schema. Which members matter depends on fn. */
struct api__spec_field {
    const char *key;
    api__spec_field_cb fn;
    bool required;
    const char *def;            /* default string, enum value or duration */
    const char *const *choices; /* enum values, NULL-terminated */
    int64_t min, max, idef;     /* integer/number bounds and default, minimum duration ms */
    api__spec_valid_cb valid;   /* string rule, explained by rule */
    const char *rule;
    const struct api__spec_field *sub; /* fields of a nested object or of list entries */
    size_t nsub;
    api__spec_post_cb post;
};

/* The top-level fields of a service spec (api/spec_fields.c). */
extern const struct api__spec_field api__spec_fields[];
extern const size_t api__spec_nfields;

static inline bool api__spec_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ---- Helpers (api/spec.c) ---- */

/* Sets w->err to API_BAD_REQUEST at path with a formatted message. Returns
 * -EINVAL. */
__attribute__((format(printf, 3, 4))) int api__spec_bad(struct api__spec_walk *w, const char *path,
                                                        const char *fmt, ...);
/* Writes "parent.key" (or "key" at the top) into dst (API__SPEC_PATH_LEN). */
void api__spec_path_key(char *dst, const char *parent, const char *key);
/* Writes "parent[i]" into dst (API__SPEC_PATH_LEN). */
void api__spec_path_index(char *dst, const char *parent, size_t i);
/* Reads a string value (*s borrowed from val): at most API_SPEC_MAX_STRING
 * bytes, no NUL inside. Returns 0 or -EINVAL. */
int api__spec_get_str(const json_t *val, const char *path, struct api__spec_walk *w,
                      const char **s);
/* Checks that val is a list of at most max entries. Returns 0 or -EINVAL. */
int api__spec_get_list(const json_t *val, const char *path, size_t max, struct api__spec_walk *w);
/* Returns true when s is one of the NULL-terminated choices. */
bool api__spec_in_choices(const char *const *choices, const char *s);

/* ---- Generic field kinds (api/spec.c), all api__spec_field_cb ---- */

/* A string, f->def when absent, checked by f->valid when set. */
int api__spec_string(const struct api__spec_field *f, const json_t *val, const char *path,
                     json_t *out, struct api__spec_walk *w);
/* One of f->choices, f->def when absent. */
int api__spec_enum(const struct api__spec_field *f, const json_t *val, const char *path,
                   json_t *out, struct api__spec_walk *w);
/* An integer in [f->min, f->max], f->idef when absent. */
int api__spec_int(const struct api__spec_field *f, const json_t *val, const char *path, json_t *out,
                  struct api__spec_walk *w);
/* A number in [f->min, f->max], f->idef when absent. */
int api__spec_number(const struct api__spec_field *f, const json_t *val, const char *path,
                     json_t *out, struct api__spec_walk *w);
/* A duration of at least f->min ms, f->def when absent, canonical as "1m30s". */
int api__spec_duration(const struct api__spec_field *f, const json_t *val, const char *path,
                       json_t *out, struct api__spec_walk *w);
/* true or false, false when absent. */
int api__spec_bool(const struct api__spec_field *f, const json_t *val, const char *path,
                   json_t *out, struct api__spec_walk *w);
/* A size ("64M" or bytes), canonical as integer bytes, 0 when absent. */
int api__spec_size(const struct api__spec_field *f, const json_t *val, const char *path,
                   json_t *out, struct api__spec_walk *w);
/* An object with the fields f->sub, then checked by f->post. */
int api__spec_object(const struct api__spec_field *f, const json_t *val, const char *path,
                     json_t *out, struct api__spec_walk *w);
/* A list of at most f->max objects with the fields f->sub, then f->post. */
int api__spec_objlist(const struct api__spec_field *f, const json_t *val, const char *path,
                      json_t *out, struct api__spec_walk *w);
/* A list of at most f->max strings. */
int api__spec_strlist(const struct api__spec_field *f, const json_t *val, const char *path,
                      json_t *out, struct api__spec_walk *w);
/* A server-set integer (version, create_index, modify_index): checked and
 * dropped. */
int api__spec_server_set(const struct api__spec_field *f, const json_t *val, const char *path,
                         json_t *out, struct api__spec_walk *w);
int api__spec_readonly(const struct api__spec_field *f, const json_t *val, const char *path,
                       json_t *out, struct api__spec_walk *w);

/* ---- Capabilities (api/spec_caps.c) ---- */

/* A list of capability names ("NET_ADMIN", "cap_net_admin" or "ALL"),
 * canonical as "CAP_NET_ADMIN", no duplicates. */
int api__spec_caps(const struct api__spec_field *f, const json_t *val, const char *path,
                   json_t *out, struct api__spec_walk *w);

/* ---- Signals (api/spec_signal.c) ---- */

/* A signal name or number, canonical as "SIGTERM", SIGTERM when absent. */
int api__spec_signal(const struct api__spec_field *f, const json_t *val, const char *path,
                     json_t *out, struct api__spec_walk *w);

#endif
