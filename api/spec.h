/* Service specs: validation of a user's JSON against the object model, with
 * every default filled in, so that the store only ever holds complete,
 * canonical specs. The schema is documented in docs/service-spec.md. */
#ifndef SHOAL_API_SPEC_H
#define SHOAL_API_SPEC_H

#include <jansson.h>

#include "api/error.h"

/* Hard limits on what comes from outside. */
#define API_SPEC_MAX_NAME        63
#define API_SPEC_MAX_STRING      4096
#define API_SPEC_MAX_LIST        256 /* command/args entries, env entries, ports, mounts */
#define API_SPEC_MAX_LABELS      64
#define API_SPEC_MAX_CONSTRAINTS 32
#define API_SPEC_MAX_REPLICAS    100000
#define API_SPEC_MAX_DEPTH       16 /* JSON nesting depth of a request body */

/* Validates a service spec and returns its canonical form.
 *
 * in: the user's JSON (borrowed, not modified).
 * out: on success a new object (transferred: json_decref) holding every field
 *      of the schema with defaults filled in and values in canonical form
 *      (durations as strings such as "10s" or "1m30s", sizes as integer
 *      bytes, env as an object, signals as "SIGTERM"). The read-only fields
 *      `version`, `create_index`, `modify_index` are accepted in `in` and
 *      dropped from `out`, so a GET body can be edited and PUT back.
 * err: on failure filled with API_BAD_REQUEST, the JSON path of the first
 *      offending field ("task.restart.delay", "task.env.FOO", "name") and a
 *      message ("unknown field", "must be a duration such as \"5s\"").
 * Returns 0 or a negative errno (-EINVAL) with err set. */
int api_spec_normalize(const json_t *in, json_t **out, struct api_err *err);

/* Checks that a service name is a DNS label: 1-63 of [a-z0-9-], starting and
 * ending with a letter or digit. Returns 1 when valid. */
int api_spec_name_valid(const char *name);

/* Returns the number of the signal whose canonical name (as
 * api_spec_normalize writes stop_signal: "SIGTERM", "SIGRTMIN+3") is name,
 * or -1 when name is NULL or not such a name ("TERM", "sigterm", "SIGRTMIN"
 * and "SIGFOO" are -1). */
int api_spec_signal_number(const char *name);

/* The Linux capability names ("CAP_CHOWN" ...), NULL-terminated, and
 * Docker's default set for containers (also NULL-terminated). */
extern const char *const api_spec_caps[];
extern const char *const api_spec_default_caps[];

/* Returns the nesting depth of the JSON text s[0..len) (strings skipped), so a
 * body can be refused before it is parsed. */
int api_json_depth(const char *s, size_t len);

#endif
