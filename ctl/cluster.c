/* shoal cluster: cluster-wide state, join tokens and backups. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/util.h"
#include "ctl/ctl.h"

/* The integer at key of obj as text, "-" when absent. */
static const char *int_text(const json_t *obj, const char *key, char *buf, size_t size)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        return "-";
    snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return buf;
}

static void print_status(const json_t *c)
{
    char index[32], applied[32], term[32];
    struct ctl_table t;

    ctl_table_init(&t, 2, NULL);
    ctl_table_cell(&t, "Cluster:");
    ctl_table_cell(&t, ctl_json_str(c, "id", "-"));
    ctl_table_cell(&t, "This node:");
    ctl_table_cellf(&t, "%s (%s), %s, raft %s, api %s", ctl_json_str(c, "node.name", "-"),
                    ctl_json_str(c, "node.id", "-"), ctl_json_str(c, "node.state", "-"),
                    ctl_json_str(c, "node.raft_address", "-"),
                    ctl_json_str(c, "node.api_address", "-"));
    ctl_table_cell(&t, "Leader:");
    if (*ctl_json_str(c, "leader.id", ""))
        ctl_table_cellf(&t, "%s at %s", ctl_json_str(c, "leader.id", "-"),
                        ctl_json_str(c, "leader.address", "-"));
    else
        ctl_table_cell(&t, "none (no quorum)");
    ctl_table_cell(&t, "Index:");
    ctl_table_cellf(&t, "%s (applied %s, term %s)", int_text(c, "index", index, sizeof(index)),
                    int_text(c, "applied", applied, sizeof(applied)),
                    int_text(c, "term", term, sizeof(term)));
    ctl_table_print(&t, stdout, 0);
    ctl_table_free(&t);

    static const char *const headers[] = {"ID", "ADDRESS", "ROLE"};
    ctl_table_init(&t, ARRAY_SIZE(headers), headers);
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(c, "members"), i, m)
    {
        ctl_table_cell(&t, ctl_json_str(m, "id", "-"));
        ctl_table_cell(&t, ctl_json_str(m, "address", "-"));
        ctl_table_cell(&t, ctl_json_str(m, "role", "-"));
    }
    printf("Members:\n");
    ctl_table_print(&t, stdout, 2);
    ctl_table_free(&t);
}

int ctl_cluster_status(struct ctl_ctx *ctx, int argc, char **argv)
{
    int rv = ctl_plain_options(ctx, argc, argv);
    if (rv >= 0)
        return rv;
    if (optind < argc)
        return ctl_usage_error(ctx, "unexpected argument '%s'", argv[optind]);

    json_auto_t *cluster = NULL;
    if (ctl_http_request(ctx, "GET", "/v1/cluster", NULL, &cluster, NULL) < 0)
        return ctl_error("%s", ctx->errmsg);
    if (ctx->output == CTL_OUT_JSON)
        ctl_print_json(cluster);
    else
        print_status(cluster);
    return CTL_EXIT_OK;
}

static const char *const join_roles[] = {"worker", "manager"};

static const struct option join_token_opts[] = {
    {"rotate", no_argument, NULL, 'r'},
    {"quiet", no_argument, NULL, 'q'},
    {"output", required_argument, NULL, 'o'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Writes into out the host:port of url (a resolved ctx->addr) that shoald's
 * --join takes: without scheme, user info and path, with the scheme's
 * default port when the URL names none. */
static void join_address(const char *url, char *out, size_t size)
{
    const char *sep = strstr(url, "://");
    const char *host = sep ? sep + 3 : url;
    size_t len = strcspn(host, "/?#");
    const char *at = memrchr(host, '@', len);
    if (at) {
        len -= (size_t)(at + 1 - host);
        host = at + 1;
    }
    const char *bracket = memrchr(host, ']', len); /* an IPv6 literal: [::1]:7070 */
    const char *from = bracket ? bracket : host;
    int has_port = memchr(from, ':', len - (size_t)(from - host)) != NULL;
    const char *port = has_port ? "" : strncmp(url, "https:", 6) == 0 ? ":443" : ":80";
    snprintf(out, size, "%.*s%s", (int)len, host, port);
}

/* A token that can be pasted into a shell command: printable ASCII, no
 * blanks or quotes. */
static int token_ok(const char *t)
{
    if (!t || !*t)
        return 0;
    for (; *t; t++) {
        if (*t <= ' ' || *t >= 0x7f || strchr("\"'\\`$", *t))
            return 0;
    }
    return 1;
}

int ctl_cluster_join_token(struct ctl_ctx *ctx, int argc, char **argv)
{
    int rotate = 0, quiet = 0, c;
    while ((c = ctl_getopt(ctx, argc, argv, ":hqo:", join_token_opts)) >= 0) {
        if (c == 'r')
            rotate = 1;
        else if (c == 'q')
            quiet = 1;
    }
    if (c == CTL_OPT_STOP)
        return ctx->exit;
    if (optind >= argc)
        return ctl_usage_error(ctx, "give the role: worker or manager");
    if (argc - optind > 1)
        return ctl_usage_error(ctx, "unexpected argument '%s'", argv[optind + 1]);
    const char *role = NULL;
    for (size_t i = 0; i < ARRAY_SIZE(join_roles); i++) {
        if (strcmp(argv[optind], join_roles[i]) == 0)
            role = join_roles[i];
    }
    if (!role)
        return ctl_usage_error(ctx, "expected worker or manager, not '%s'", argv[optind]);

    char path[64];
    snprintf(path, sizeof(path), "/v1/cluster/join-token/%s%s", role, rotate ? "/rotate" : "");
    json_auto_t *answer = NULL;
    if (ctl_http_request(ctx, rotate ? "POST" : "GET", path, NULL, &answer, NULL) < 0)
        return ctl_error("%s", ctx->errmsg);
    const char *token = json_string_value(json_object_get(answer, "token"));
    if (!token_ok(token))
        return ctl_error("shoald answered without a valid %s token", role);
    if (quiet) {
        printf("%s\n", token);
        return CTL_EXIT_OK;
    }
    if (ctx->output == CTL_OUT_JSON) {
        ctl_print_json(answer);
        return CTL_EXIT_OK;
    }
    char addr[256];
    join_address(ctx->addr, addr, sizeof(addr));
    if (rotate)
        printf("Rotated the %s join token; the old one no longer works.\n\n", role);
    printf("To add a %s to this cluster, run:\n"
           "    shoald --data-dir DIR --join %s --token %s\n",
           role, addr, token);
    return CTL_EXIT_OK;
}

/* Writes all of data to fd. Returns 0 or -errno. */
static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Syncs the directory that holds path, so that a rename in it is durable.
 * Failures are ignored: the file itself is complete either way. */
static void sync_parent(const char *path)
{
    _cleanup_free_ char *copy = xstrdup(path);
    _cleanup_close_ int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0)
        (void)fsync(fd);
}

/* Writes len bytes of data to path atomically: into a temporary file of
 * mode 0600 in the same directory, synced, then renamed over path. Returns 0
 * or -errno with errmsg set; the temporary file is removed on failure. */
static int write_atomic(const char *path, const char *data, size_t len, char *errmsg,
                        size_t errmsg_size)
{
    _cleanup_free_ char *tmp = xmalloc(strlen(path) + sizeof(".tmp-XXXXXX"));
    sprintf(tmp, "%s.tmp-XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        int rv = -errno;
        snprintf(errmsg, errmsg_size, "cannot create a temporary file for %s: %s", path,
                 strerror(-rv));
        return rv;
    }
    int rv = fchmod(fd, 0600) < 0 ? -errno : write_all(fd, data, len);
    if (rv == 0 && fsync(fd) < 0)
        rv = -errno;
    if (close(fd) < 0 && rv == 0)
        rv = -errno;
    if (rv == 0 && rename(tmp, path) < 0)
        rv = -errno;
    if (rv < 0) {
        unlink(tmp);
        snprintf(errmsg, errmsg_size, "cannot write %s: %s", path, strerror(-rv));
        return rv;
    }
    sync_parent(path);
    return 0;
}

/* Checks a backup (body) and writes it to file ("-": stdout). Returns an
 * exit code, the error printed. */
static int save_backup(const struct common_buf *body, long long header_index, const char *file)
{
    json_error_t jerr;
    json_auto_t *doc = json_loadb(body->data ? body->data : "", body->len, 0, &jerr);
    if (!json_is_object(doc))
        return ctl_error("shoald sent a backup that is not a JSON object: %s",
                         doc ? "another JSON value" : jerr.text);
    json_t *index = json_object_get(doc, "index");
    long long n = json_is_integer(index) ? (long long)json_integer_value(index) : header_index;

    int to_stdout = strcmp(file, "-") == 0;
    if (to_stdout) {
        if (fwrite(body->data, 1, body->len, stdout) != body->len || fflush(stdout) != 0)
            return ctl_error("cannot write the backup to stdout: %s", strerror(errno));
    } else {
        char errmsg[512];
        if (write_atomic(file, body->data, body->len, errmsg, sizeof(errmsg)) < 0)
            return ctl_error("%s", errmsg);
    }
    /* With "-" the backup is the output: the summary goes to stderr. */
    FILE *out = to_stdout ? stderr : stdout;
    const char *name = to_stdout ? "stdout" : file;
    if (n >= 0)
        fprintf(out, "backup of index %lld written to %s\n", n, name);
    else
        fprintf(out, "backup written to %s\n", name);
    return CTL_EXIT_OK;
}

int ctl_cluster_backup(struct ctl_ctx *ctx, int argc, char **argv)
{
    int rv = ctl_plain_options(ctx, argc, argv);
    if (rv >= 0)
        return rv;
    if (optind >= argc)
        return ctl_usage_error(ctx, "give the FILE to write the backup to (- for stdout)");
    if (argc - optind > 1)
        return ctl_usage_error(ctx, "unexpected argument '%s'", argv[optind + 1]);
    if (!*argv[optind])
        return ctl_usage_error(ctx, "FILE is empty");

    struct ctl_http_answer ans;
    if (ctl_http_send(ctx, "GET", "/v1/cluster/backup", NULL, &ans) < 0)
        rv = ctl_error("%s", ctx->errmsg);
    else
        rv = save_backup(&ans.body, ans.index, argv[optind]);
    ctl_http_answer_free(&ans);
    return rv;
}
