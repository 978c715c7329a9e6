/* The runc driver: the parts of a container task's life that differ from a
 * process's. The process driver (agent/process.c) keeps the shared parts:
 * the task runs under its shoal-monitor, which here launches `runc run -d`
 * and, as a subreaper, becomes the parent of the container's init (so the
 * exit status and the logs work as for processes, and survive shoald).
 *
 * Before the monitor starts: the image (agent/images.h, pulled by
 * shoal-image), then off the loop the bundle in the task dir: an overlay
 * rootfs (the image's shared rootfs below, DIR/upper above), the /etc files,
 * named volumes, the network namespace (agent/net.h) and config.json
 * (agent/oci.h). After the end: `runc delete`, unmount, network and
 * cgroups removed, also off the loop; a restart in place waits for that. */
#ifndef SHOAL_AGENT_RUNC_H
#define SHOAL_AGENT_RUNC_H

#include <jansson.h>

#include "agent/cgroup.h"

struct agent_task;
struct agent_image;
struct agent_supervisor;
struct agent_runc_prep;

/* Whether t runs with the runc driver. */
int agent_runc_is(const struct agent_task *t);

/* The preparation of one run (on the loop: copies what the thread needs). */
struct agent_runc_prep *agent_runc_prep_new(struct agent_task *t);
void agent_runc_prep_free(struct agent_runc_prep *r);
/* The image ref of the task. */
const char *agent_runc_image_ref(const struct agent_runc_prep *r);
/* Records the image to run (copied). */
void agent_runc_prep_set_image(struct agent_runc_prep *r, const struct agent_image *img);

/* Off the loop: makes the bundle in dir (see above); fills cg with the
 * cgroup dirs the monitor watches (runc creates them). Returns 0, or a
 * negative errno with errmsg (256 bytes); on error nothing is left. */
int agent_runc_prepare(struct agent_runc_prep *r, const char *dir, struct agent_cgroup *cg,
                       char *errmsg);

/* The monitor's launcher arguments for this run: "--pid-file F
 * --launcher-log L -- runc --root R ... run -d ... ID" (pointers valid
 * while r lives), at most 24 entries, NULL-terminated. */
void agent_runc_launch_args(const struct agent_runc_prep *r, const char *dir, const char **out);

/* After a run ended (or never started): removes the container, the mount,
 * the network and the cgroups, off the loop. t->bg_busy is set until it is
 * done; then, if a start waits (t->prep_deferred), it goes on. */
void agent_runc_cleanup(struct agent_task *t);

/* Off the loop, once at start: removes the containers and networks of
 * tasks whose directory is gone (a crash between removing the dir and the
 * clean-up, or a dir removed by hand). */
void agent_runc_sweep(struct agent_supervisor *sup);

/* The id of the image the task's last run used (DIR/image.id). Returns 0,
 * or -ENOENT when there is none. */
int agent_runc_image_id(const char *dir, char *out, size_t size);

/* The address of the task in its network (bridge mode), "" when none:
 * what health checks connect to. Reads DIR/net.ip. */
void agent_runc_task_ip(const char *dir, char *out, size_t size);

/* The argv of an exec health check run inside the container: runc exec.
 * Returns a new NULL-terminated list (free each entry and the list), or
 * NULL when runc is not found. */
char **agent_runc_exec_argv(const struct agent_task *t, char *const *command);

#endif
