/* Shared between api/images.c and api/images_nodes.c: image commands run on
 * this node, and the checks of image requests both kinds of route make. */
#ifndef SHOAL_API_IMAGES_INTERNAL_H
#define SHOAL_API_IMAGES_INTERNAL_H

#include <jansson.h>
#include <stddef.h>

#include "api/error.h"
#include "api/internal.h"

enum api__image_cmd {
    API__IMAGE_LS,
    API__IMAGE_LOAD,
    API__IMAGE_RM,
    API__IMAGE_GC,
};

/* Called once when an image command ends: answer (borrowed, valid during the
 * call) is the helper's JSON answer, or NULL with code and errmsg (borrowed)
 * saying why. */
typedef void (*api__image_cb)(void *ctx, const json_t *answer, enum api_code code,
                              const char *errmsg);

/* Runs argv (borrowed, NULL-terminated: "ls" | "load" PATH | "rm" REF |
 * "gc") on this node's image helper. done runs exactly once: at once when
 * this node is stopping or has no image store (503), else when the command
 * ends, or with 503 from api__images_release. An error the helper reports
 * is 404 (not in store), 409 (in use by a task), 503 (shutting down) or fail. */
void api__images_run(struct api_server *srv, const char *const *argv, enum api_code fail,
                     api__image_cb done, void *ctx);

/* Serves cmd on this node for call and answers it with the command's answer:
 * for load the call's body is checked ({"path"}), for rm segment (borrowed)
 * is the ref or id as a percent-encoded path segment. No authentication
 * here: the routes check their callers first. */
void api__images_serve(struct api__call *call, enum api__image_cmd cmd, const char *segment);

/* Decodes segment (borrowed, percent-encoded) into ref (size bytes) and
 * checks it can be an image ref or id. Returns 0, or -EINVAL with err set. */
int api__image_ref_decode(const char *segment, char *ref, size_t size, struct api_err *err);

/* Percent-encodes s (borrowed) as one path segment into out (size bytes).
 * Returns 0, or -ENAMETOOLONG when it does not fit. */
int api__image_ref_encode(const char *s, char *out, size_t size);

/* The tarball path of a load body (borrowed from body), or NULL with err set
 * when it is not an absolute path. */
const char *api__image_load_path(const json_t *body, struct api_err *err);

/* Answers every image request of images_nodes.c still waiting for nodes
 * and cancels their requests. */
void api__images_fanouts_release(struct api_server *srv);

#endif
