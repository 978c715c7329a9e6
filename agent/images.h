/* The node's images, from the loop: runs the shoal-image helper (it sits next
 * to shoald) with uv_spawn, one child per command, and parses the JSON it
 * prints. shoald links no libcurl or libarchive: pulls and unpacking happen
 * in the helper, which also keeps a hostile layer out of the daemon. */
#ifndef SHOAL_AGENT_IMAGES_H
#define SHOAL_AGENT_IMAGES_H

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

struct agent_images;

struct agent_images_config {
    const char *store_dir;       /* borrowed: DATA/images */
    const char *const *insecure; /* borrowed: "host:port" registries spoken to over plain HTTP */
    size_t n_insecure;
    const char *auth_file; /* borrowed; may be NULL: {"auths": {"host:port": {...}}} */
    const char *helper;    /* borrowed; NULL: shoal-image next to this program (tests set it) */
};

/* A pulled image. Every field is borrowed: valid only during the callback. */
struct agent_image {
    const char *ref;      /* the reference as asked, normalised ("host/name:tag") */
    const char *id;       /* "sha256:<config digest>" */
    const char *digest;   /* "sha256:<manifest digest>" */
    const char *rootfs;   /* absolute path of the unpacked, shared rootfs: read only */
    const json_t *config; /* the image config's "config": Entrypoint, Cmd, Env, ... */
};

/* img is NULL on error, and errmsg (borrowed) then says why. */
typedef void (*agent_images_cb)(void *data, const struct agent_image *img, const char *errmsg);

/* answer (borrowed: valid during the callback) is the helper's JSON answer,
 * or NULL with errmsg set. */
typedef void (*agent_images_run_cb)(void *data, const json_t *answer, const char *errmsg);

/* The image ids tasks on this node use (a new JSON array of strings, or
 * NULL for none): rm refuses them and gc keeps them. */
typedef json_t *(*agent_images_in_use_cb)(void *data);

/* Creates the image service. cfg's strings are copied; loop is borrowed and
 * must outlive it. Creates store_dir. Returns 0 or a negative errno with
 * errmsg (256 bytes) set. */
int agent_images_init(struct agent_images **out, uv_loop_t *loop,
                      const struct agent_images_config *cfg, char *errmsg);

/* Kills running helpers, calls every pending callback (synchronously, from
 * inside this call) with img/answer NULL and errmsg "shutting down", and
 * frees the service once its handles are closed (the loop must run). A get
 * or run made from such a callback is answered at once with the same error.
 * Callers whose data dies earlier use agent_images_cancel first. */
void agent_images_close(struct agent_images *im);

/* Sets the hook that lists the image ids in use (default: none). */
void agent_images_set_in_use(struct agent_images *im, agent_images_in_use_cb fn, void *data);

/* Gets REF, pulling it if needed (a tag is resolved again on every call;
 * when its registry is unreachable the store's copy is used). Concurrent
 * requests for the same REF share one helper run. cb is called exactly
 * once, always later from the loop (never from inside this call). */
void agent_images_get(struct agent_images *im, const char *ref, agent_images_cb cb, void *data);

/* Forgets every pending callback whose data is data, so
 * that it is never called: for a caller about to free data. The helper run
 * goes on for the other waiters. */
void agent_images_cancel(struct agent_images *im, void *data);

/* Runs `shoal-image ARGV[0] --store DIR ... ARGV[1..]` (argv borrowed,
 * NULL-terminated; ARGV[0] one of ls, load, inspect, rm, gc); rm and gc get
 * the in-use ids as --keep. cb is called exactly once, later. */
void agent_images_run(struct agent_images *im, const char *const *argv, agent_images_run_cb cb,
                      void *data);

#endif
