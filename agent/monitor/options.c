/* shoal-monitor's command line: a table of options, each with its parser. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/monitor/options.h"

#define CGROUP_PATH_MAX 3900 /* leaves room for "/memory.oom_control" in PATH_MAX */

typedef int (*opt_parse_cb)(struct mon_options *o, const char *name, const char *arg, char *errmsg);

/* Parses a decimal number in [min, max]: digits only, no sign, no spaces. */
static int parse_number(const char *name, const char *arg, uint64_t min, uint64_t max,
                        uint64_t *out, char *errmsg)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    if (arg[0] < '0' || arg[0] > '9' || *end != '\0' || errno != 0 || v < min || v > max) {
        snprintf(errmsg, 256, "%s: \"%s\" is not a number from %llu to %llu", name, arg,
                 (unsigned long long)min, (unsigned long long)max);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

static int opt_dir(struct mon_options *o, const char *name, const char *arg, char *errmsg)
{
    if (arg[0] == '\0') {
        snprintf(errmsg, 256, "%s: empty path", name);
        return -EINVAL;
    }
    o->dir = arg;
    return 0;
}

static int opt_cwd(struct mon_options *o, const char *name, const char *arg, char *errmsg)
{
    if (arg[0] == '\0') {
        snprintf(errmsg, 256, "%s: empty path", name);
        return -EINVAL;
    }
    o->cwd = arg;
    return 0;
}

static int opt_uid(struct mon_options *o, const char *name, const char *arg, char *errmsg)
{
    uint64_t v = 0;
    int r = parse_number(name, arg, 0, (uid_t)-2, &v, errmsg);
    o->uid = (uid_t)v;
    o->has_ids = true;
    return r;
}

static int opt_gid(struct mon_options *o, const char *name, const char *arg, char *errmsg)
{
    uint64_t v = 0;
    int r = parse_number(name, arg, 0, (gid_t)-2, &v, errmsg);
    o->gid = (gid_t)v;
    return r;
}

/* "G1,G2,...", or "" for none. */
static int opt_groups(struct mon_options *o, const char *name, const char *arg, char *errmsg)
{
    size_t n = 1;
    for (const char *p = arg; *p; p++)
        n += *p == ',';
    if (arg[0] == '\0')
        n = 0;
    if (n > MON_MAX_GROUPS) {
        snprintf(errmsg, 256, "%s: more than %d groups", name, MON_MAX_GROUPS);
        return -EINVAL;
    }
    free(o->groups);
    o->groups = NULL;
    o->n_groups = 0;
    if (n == 0)
        return 0;
    o->groups = calloc(n, sizeof(*o->groups));
    if (o->groups == NULL)
        abort();
    char item[16];
    for (const char *p = arg; o->n_groups < n; p++) {
        size_t len = strcspn(p, ",");
        uint64_t v;
        snprintf(item, sizeof(item), "%.*s", (int)len, p);
        if (len >= sizeof(item) || parse_number(name, item, 0, (gid_t)-2, &v, errmsg) < 0) {
            snprintf(errmsg, 256, "%s: \"%s\" is not a list of group ids such as 10,20", name, arg);
            return -EINVAL;
        }
        o->groups[o->n_groups++] = (gid_t)v;
        p += len;
    }
    return 0;
}

static int opt_signal(struct mon_options *o, const char *name, const char *arg, char *errmsg)
{
    uint64_t v = 0;
    int r = parse_number(name, arg, 1, (uint64_t)SIGRTMAX, &v, errmsg);
    o->stop_signal = (int)v;
    return r;
}

static int opt_grace(struct mon_options *o, const char *name, const char *arg, char *errmsg)
{
    return parse_number(name, arg, 0, MON_MAX_GRACE_MS, &o->grace_ms, errmsg);
}

static int opt_log_size(struct mon_options *o, const char *name, const char *arg, char *errmsg)
{
    return parse_number(name, arg, 1, MON_MAX_LOG_SIZE, &o->log_max_size, errmsg);
}

static int opt_log_files(struct mon_options *o, const char *name, const char *arg, char *errmsg)
{
    uint64_t v = 0;
    int r = parse_number(name, arg, 1, MON_MAX_LOG_FILES, &v, errmsg);
    o->log_max_files = (unsigned)v;
    return r;
}

static int opt_cgroup(struct mon_options *o, const char *name, const char *arg, char *errmsg)
{
    if (arg[0] != '/' || strlen(arg) > CGROUP_PATH_MAX) {
        snprintf(errmsg, 256, "%s: \"%s\" is not an absolute path of at most %d bytes", name, arg,
                 CGROUP_PATH_MAX);
        return -EINVAL;
    }
    if (o->n_cgroups == MON_MAX_CGROUPS) {
        snprintf(errmsg, 256, "%s: more than %d cgroups", name, MON_MAX_CGROUPS);
        return -EINVAL;
    }
    o->cgroups[o->n_cgroups++] = arg;
    return 0;
}

static int opt_pid_file(struct mon_options *o, const char *name, const char *arg, char *errmsg)
{
    (void)name;
    (void)errmsg;
    o->pid_file = arg;
    return 0;
}

static int opt_launcher_log(struct mon_options *o, const char *name, const char *arg, char *errmsg)
{
    (void)name;
    (void)errmsg;
    o->launcher_log = arg;
    return 0;
}

static const struct {
    const char *name;
    opt_parse_cb parse;
} options[] = {
    {"--dir", opt_dir},
    {"--uid", opt_uid},
    {"--gid", opt_gid},
    {"--groups", opt_groups},
    {"--cwd", opt_cwd},
    {"--stop-signal", opt_signal},
    {"--grace-ms", opt_grace},
    {"--log-max-size", opt_log_size},
    {"--log-max-files", opt_log_files},
    {"--cgroup", opt_cgroup},
    {"--pid-file", opt_pid_file},
    {"--launcher-log", opt_launcher_log},
};

static opt_parse_cb find_option(const char *name)
{
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
        if (strcmp(options[i].name, name) == 0)
            return options[i].parse;
    return NULL;
}

/* Checks what no single option can: required ones and combinations. */
static int check(const struct mon_options *o, bool has_gid, char *errmsg)
{
    if (o->dir == NULL)
        snprintf(errmsg, 256, "--dir is required");
    else if (o->argv == NULL)
        snprintf(errmsg, 256, "\"--\" and the program to run are required");
    else if (o->argv[0] == NULL || o->argv[0][0] == '\0')
        snprintf(errmsg, 256, "no program after \"--\"");
    else if (o->has_ids != has_gid)
        snprintf(errmsg, 256, "--uid and --gid go together");
    else if (o->groups != NULL && !o->has_ids)
        snprintf(errmsg, 256, "--groups needs --uid and --gid");
    else if (o->pid_file != NULL && (o->has_ids || o->cwd != NULL))
        snprintf(errmsg, 256, "--pid-file (launcher mode) takes no --uid, --gid or --cwd");
    else if (o->launcher_log != NULL && o->pid_file == NULL)
        snprintf(errmsg, 256, "--launcher-log needs --pid-file");
    else
        return 0;
    return -EINVAL;
}

static int parse_args(struct mon_options *o, int argc, char **argv, char *errmsg)
{
    bool has_gid = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            o->argv = argv + i + 1;
            break;
        }
        opt_parse_cb parse = find_option(argv[i]);
        if (parse == NULL) {
            snprintf(errmsg, 256, "unknown option \"%s\"", argv[i]);
            return -EINVAL;
        }
        if (i + 1 >= argc) {
            snprintf(errmsg, 256, "%s needs a value", argv[i]);
            return -EINVAL;
        }
        has_gid |= parse == opt_gid;
        int r = parse(o, argv[i], argv[i + 1], errmsg);
        if (r < 0)
            return r;
        i++;
    }
    return check(o, has_gid, errmsg);
}

int mon_options_parse(struct mon_options *o, int argc, char **argv, char *errmsg)
{
    *o = (struct mon_options){
        .stop_signal = SIGTERM,
        .grace_ms = 10000,
        .log_max_size = 10 * 1024 * 1024,
        .log_max_files = 3,
    };
    int r = parse_args(o, argc, argv, errmsg);
    if (r < 0)
        mon_options_free(o);
    return r;
}

void mon_options_free(struct mon_options *o)
{
    free(o->groups);
    o->groups = NULL;
    o->n_groups = 0;
}
