/* Shared between api/stats.c and api/stats_fanout.c: sampling this node's
 * task stats twice, apart in time, for their cpu percent. */
#ifndef SHOAL_API_STATS_INTERNAL_H
#define SHOAL_API_STATS_INTERNAL_H

#include <jansson.h>

#include "api/internal.h"

#define API__STATS_MAX_TASKS 1000 /* tasks in one POST /v1/node/stats */
#define API__STATS_SAMPLE_MS 150  /* between the two reads */

/* Called once a sample ends: answer (transferred, free with json_decref) is
 * the node's answer, each task's stats with "cpu_percent" (null when there
 * was one read only), or NULL and error (borrowed, valid during the call)
 * says why. */
typedef void (*api__stats_cb)(void *ctx, json_t *answer, const char *error);

/* Reads the stats of tasks (borrowed list of task ids) on this node now and
 * again API__STATS_SAMPLE_MS later, on a timer, then calls done. Calls done
 * at once, and returns NULL, when the first read fails, finds nothing or
 * this node is stopping. Else returns the sample (borrowed, valid until done
 * runs or api__stats_sample_cancel). */
struct api__stats_sample *api__stats_sample_start(struct api_server *srv, const json_t *tasks,
                                                  api__stats_cb done, void *ctx);

/* Drops a sample without calling its done (freed once its timer closed). */
void api__stats_sample_cancel(struct api__stats_sample *s);

/* Answers every stats fan-out still waiting (stats_fanout.c). */
void api__stats_fanouts_release(struct api_server *srv);

#endif
