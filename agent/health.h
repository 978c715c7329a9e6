/* Health checks of a running task (its template's "health": an http GET, a
 * tcp connect or an exec'd command), run from the node's loop without ever
 * blocking it; the task hears of every change of status, not of every check. */
#ifndef SHOAL_AGENT_HEALTH_H
#define SHOAL_AGENT_HEALTH_H

#include <stddef.h>

/* The bytes of a check's output (or error) that are kept and reported. */
#define AGENT_HEALTH_OUTPUT_MAX 1024

/* NONE: no check, or nothing found yet in this run (not reported);
 * STARTING: no check has passed yet; HEALTHY: the last check passed, or
 * fewer than `retries` failed since; UNHEALTHY: `retries` in a row failed
 * (failures inside `start_period`, before the first success, do not count). */
enum agent_health_status {
    AGENT_HEALTH_NONE,
    AGENT_HEALTH_STARTING,
    AGENT_HEALTH_HEALTHY,
    AGENT_HEALTH_UNHEALTHY,
};

/* What the checks found; the task's own copy, kept after its checker stops. */
struct agent_health_state {
    enum agent_health_status status;
    int failures;                             /* failures in a row that count */
    char output[AGENT_HEALTH_OUTPUT_MAX + 1]; /* the last check's output or error, UTF-8 */
};

struct agent_health;
struct agent_task;

/* Told that state->status changed from `was` (state is the one given to
 * agent_health_start). It may call agent_health_stop. */
typedef void (*agent_health_cb)(void *data, enum agent_health_status was);

/* Starts checking task t (borrowed for the call: its template's "health",
 * its loop, and for exec checks its context, see agent_process_ctx_init)
 * every `interval`, the first check an `interval` after this call. Resets
 * *state to STARTING; state (borrowed) is written and cb(data) called, from
 * the loop, until agent_health_stop. Returns NULL when the template has no
 * check. */
struct agent_health *agent_health_start(struct agent_task *t, struct agent_health_state *state,
                                        agent_health_cb cb, void *data);

/* Stops the checks: no more writes to state nor calls to cb, even for a
 * check under way (an exec'd one is killed). h is freed once its handles
 * are closed. NULL is ignored. */
void agent_health_stop(struct agent_health *h);

/* "starting", "healthy", "unhealthy" ("none" for NONE). */
const char *agent_health_status_name(enum agent_health_status s);

/* Makes the first len bytes of s valid UTF-8 in place and NUL-terminates
 * them (s holds at least len + 1 bytes): a byte that starts no valid
 * sequence, and NUL, become '?'; a sequence cut short at the end is
 * dropped. Returns the new length. */
size_t agent_health_utf8_fix(char *s, size_t len);

#endif
