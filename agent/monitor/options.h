/* shoal-monitor's command line, parsed into options that point into argv. */
#ifndef SHOAL_AGENT_MONITOR_OPTIONS_H
#define SHOAL_AGENT_MONITOR_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MON_MAX_CGROUPS   32
#define MON_MAX_GROUPS    65536 /* the kernel's NGROUPS_MAX */
#define MON_MAX_GRACE_MS  86400000
#define MON_MAX_LOG_SIZE  (UINT64_C(1) << 50)
#define MON_MAX_LOG_FILES 1000

struct mon_options {
    const char *dir; /* borrowed from argv: the task's directory (state, logs) */
    bool has_ids;    /* --uid and --gid were given */
    uid_t uid;
    gid_t gid;
    gid_t *groups; /* owned (mon_options_free): --groups, NULL when none */
    size_t n_groups;
    const char *cwd; /* borrowed from argv, NULL when not given */
    int stop_signal;
    uint64_t grace_ms;
    uint64_t log_max_size;
    unsigned log_max_files;
    const char *cgroups[MON_MAX_CGROUPS]; /* borrowed from argv */
    size_t n_cgroups;
    /* Launcher mode (runc run -d): PROGRAM starts the task and exits 0; the
     * task is then the pid written in pid_file, re-parented to the monitor
     * (a subreaper). The cgroups are only watched and killed, not joined
     * (the launcher puts the task in them). launcher_log: a JSON-lines log
     * whose last error says why a launch failed. Borrowed from argv. */
    const char *pid_file;
    const char *launcher_log;
    char **argv; /* borrowed: PROGRAM and its arguments, NULL-terminated */
};

/* Fills o from the command line (argv borrowed: it must outlive o). On a
 * bad argument returns -EINVAL with one line for the user in errmsg (256
 * bytes); o is then freed. */
int mon_options_parse(struct mon_options *o, int argc, char **argv, char *errmsg);

/* Frees what o owns. */
void mon_options_free(struct mon_options *o);

#endif
