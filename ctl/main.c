/* shoal: global options, the command table and dispatch. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "ctl/ctl.h"

#define READ_OUTPUT  "-o, --output FMT\ttable (the default) or json (the server's answer)\n"
#define WRITE_OUTPUT "-o, --output json\tprint the server's answer instead of a summary line\n"

static const struct ctl_command commands[] = {
    {"cluster", "status", ctl_cluster_status, "[-o json|table]",
     "Show the cluster id, this node, the leader, the Raft index and the members", READ_OUTPUT,
     "Example:\n  shoal cluster status -o json\n", 0},
    {"cluster", "join-token", ctl_cluster_join_token, "worker|manager [--rotate] [-q] [-o json]",
     "Show (or rotate) the token a new worker or manager joins with",
     "--rotate\treplace the token first; the old one stops working\n"
     "-q, --quiet\tprint only the token\n"
     "-o, --output json\tprint the server's answer ({\"role\", \"token\"})\n",
     "Without -q, prints the shoald command that joins a node through the\n"
     "manager at --addr (fill in DIR and add --name, --listen, --api as needed).\n"
     "-q wins over -o json.\n"
     "\nExamples:\n  shoal cluster join-token worker\n"
     "  shoald --data-dir /var/lib/shoal --join 10.0.0.5:7070 \\\n"
     "      --token \"$(shoal cluster join-token worker -q)\"\n",
     0},
    {"cluster", "backup", ctl_cluster_backup, "FILE",
     "Save the whole cluster state to FILE (- for stdout), for shoald --restore", NULL,
     "FILE is written to a temporary file in its directory with mode 0600 and\n"
     "renamed into place, so it is either the old file or the whole backup.\n"
     "\nExample:\n  shoal cluster backup /var/backups/shoal-$(date +%F).json\n",
     0},
    {"service", "create", ctl_service_create,
     "[OPTIONS] [--] [COMMAND [ARG...]]\n       shoal service create -f SPEC.json [OPTIONS]",
     "Create a service from flags, a spec file or both (flags win)",
     "-f, --file FILE\tstart from the spec in FILE (- for stdin)\n" WRITE_OUTPUT,
     "The command and its arguments follow the options (after -- if one starts\n"
     "with -). Sizes and durations are passed on as given (\"64M\", \"1m30s\");\n"
     "shoald checks them.\n"
     "\nExample:\n  shoal service create --name web --replicas 3 --env PORT=8080 \\\n"
     "      -- /usr/bin/python3 -m http.server 8080\n",
     CTL_FLAGS_CREATE},
    {"service", "ls", ctl_service_ls, "[-o json|table]", "List services", READ_OUTPUT,
     "Example:\n  shoal service ls -o json\n", 0},
    {"service", "inspect", ctl_service_inspect, "NAME... [-o json|table]",
     "Print services as JSON (an object for one name, a list for several)",
     "-o, --output FMT\tjson (the default) or table\n", "Example:\n  shoal service inspect web\n",
     0},
    {"service", "ps", ctl_service_ps, "NAME [--stats] [-o json|table]",
     "List the tasks of a service: where they run, desired and current state, why they ended",
     "--stats\tlive cpu, memory and process counts of the running tasks\n" READ_OUTPUT,
     "Ended tasks are kept as history (5 per slot). CURRENT shows the exit code of\n"
     "an ended task; MESSAGE why it ended, or why a replica is pending.\n"
     "--stats adds the live use of the running tasks (CPU%, MEM, LIMIT, PIDS;\n"
     "\"stats\" in JSON), read from their cgroups on their nodes.\n"
     "\nExample:\n  shoal service ps web --stats\n",
     0},
    {"service", "rm", ctl_service_rm, "NAME... [-o json]", "Remove services", WRITE_OUTPUT,
     "Example:\n  shoal service rm web worker\n", 0},
    {"service", "scale", ctl_service_scale, "NAME=REPLICAS... [-o json]",
     "Set the replica count of services", WRITE_OUTPUT,
     "Example:\n  shoal service scale web=5 worker=2\n", 0},
    {"service", "update", ctl_service_update, "NAME [OPTIONS] [--detach=false]",
     "Change a service: read it, edit it, write it back unless it changed meanwhile",
     "--detach[=BOOL]\ttrue (the default): return once written; false: then follow\n"
     "\tthe rollout like 'shoal rollout status' and exit with its codes\n"
     "-o, --output json\tprint the server's answer (with --detach=false: the final\n"
     "\trollout object) instead of a summary line\n",
     "A change of the task template starts a rollout (a new version).\n"
     "\nExample:\n  shoal service update web --image registry.local/web:2 \\\n"
     "      --env-add LOG=debug --env-rm OLD --detach=false\n",
     CTL_FLAGS_UPDATE},
    {"service", "rollback", ctl_service_rollback, "NAME [-o json]",
     "Roll a service back to its last stable spec (or the one before)", WRITE_OUTPUT,
     "Starts a rollback rollout: to the last spec whose rollout completed when the\n"
     "current one never did, else to the stable spec before the current one.\n"
     "Refused (exit 1) when there is nothing to roll back to. Follow it with\n"
     "'shoal rollout status NAME' (a finished rollback is rolled_back: exit 1).\n"
     "\nExample:\n  shoal service rollback web\n",
     0},
    {"service", "rollout", ctl_service_rollout, "pause|resume NAME [-o json]",
     "Pause the rollout under way of a service, or resume a paused one", WRITE_OUTPUT,
     "Exit 1 when there is no rollout under way (pause) or no paused one (resume).\n"
     "Resuming forgives the failures that paused it and restarts the progress\n"
     "deadline.\n"
     "\nExamples:\n  shoal service rollout pause web\n  shoal service rollout resume web\n",
     0},
    {"service", "history", ctl_service_history, "NAME [-o json]",
     "Show a service's versions: current, stable, previous, and its last rollout",
     "-o, --output json\tprint {\"version\", \"rollout\", \"stable_spec\", \"previous_spec\"}\n",
     "Example:\n  shoal service history web\n", 0},
    {"rollout", "status", ctl_rollout_status, "NAME [--timeout D] [-o json]",
     "Follow the rollout of a service until it ends; the exit code tells how",
     "--timeout D\tgive up after D (30s, 5m); default: wait until it ends\n"
     "-o, --output json\tprint only the final rollout object\n",
     "Prints the progress (one line rewritten on a terminal, a line per change\n"
     "otherwise), then the final state and its message.\n"
     "Exit codes: 0 completed (or no rollout under way), 1 rolled back or an\n"
     "error, 2 paused, 3 timeout (the rollout goes on).\n"
     "\nExample:\n  shoal service update web --image web:2\n"
     "  shoal rollout status web --timeout 10m -o json\n",
     0},
    {"node", "ls", ctl_node_ls, "[-o json|table]", "List the nodes of the cluster", READ_OUTPUT,
     "Example:\n  shoal node ls\n", 0},
    {"node", "ps", ctl_node_ps, "NODE [-o json|table]", "List the tasks assigned to a node",
     READ_OUTPUT, "Example:\n  shoal node ps worker-1\n", 0},
    {"node", "inspect", ctl_node_inspect, "NODE... [-o json|table]",
     "Print nodes (by id or name) as JSON (an object for one, a list for several)",
     "-o, --output FMT\tjson (the default) or table\n", "Example:\n  shoal node inspect w1\n", 0},
    {"node", "update", ctl_node_update,
     "NODE [--availability A] [--label-add K=V]... [--label-rm K]... [-o json]",
     "Change a node's availability or labels, unless it changed meanwhile",
     "--availability A\tactive, pause (no new tasks) or drain (move tasks away)\n"
     "--label-add K=V\tadd or change a label (repeatable)\n"
     "--label-rm K\tremove a label (repeatable)\n" WRITE_OUTPUT,
     "Example:\n  shoal node update w1 --availability drain --label-add zone=a\n", 0},
    {"node", "rm", ctl_node_rm, "NODE... [--force] [-o json]", "Remove nodes from the cluster",
     "-f, --force\tremove a node even when it is ready\n" WRITE_OUTPUT,
     "Example:\n  shoal node rm --force w3\n", 0},
    {"node", "promote", ctl_node_promote, "NODE... [-o json]",
     "Make workers managers (Raft members)", WRITE_OUTPUT, "Example:\n  shoal node promote w1\n",
     0},
    {"node", "demote", ctl_node_demote, "NODE... [-o json]", "Make managers workers", WRITE_OUTPUT,
     "Example:\n  shoal node demote m4\n", 0},
    {"image", "ls", ctl_image_ls, "[-o json|table]",
     "List the images in the store of the node at --addr", READ_OUTPUT,
     "Images are per node: --addr says which node's store.\n"
     "\nExample:\n  shoal --addr 127.0.0.1:7070 image ls\n",
     0},
    {"image", "load", ctl_image_load, "FILE [-o json]",
     "Load an OCI image layout or docker save tarball into the node's store", WRITE_OUTPUT,
     "FILE must be readable by that node's shoald at the same path (it is made\n"
     "absolute here). The image's ref comes from the tarball.\n"
     "\nExample:\n  shoal image load ./busybox-oci.tar\n",
     0},
    {"image", "rm", ctl_image_rm, "REF|ID... [-o json]",
     "Remove image refs; an image goes with its last ref (refused while a task uses it)",
     WRITE_OUTPUT, "Example:\n  shoal image rm 127.0.0.1:5000/web:1\n", 0},
    {"image", "gc", ctl_image_gc, "[-o json]",
     "Remove every image no task on the node uses, and unreferenced blobs", WRITE_OUTPUT,
     "Example:\n  shoal image gc\n", 0},
    {NULL, "logs", ctl_logs, "SERVICE|TASK [-f] [--tail N] [--since T] [-t] [-o json]",
     "Print the output of a service's tasks or of one task",
     "-f, --follow\tgo on printing new lines until interrupted (Ctrl-C exits 0)\n"
     "-n, --tail N\tonly the last N lines of each task (or 'all')\n"
     "--since T\tonly lines since T: a duration ago (10m) or an RFC 3339 time\n"
     "-t, --timestamps\tprefix each line with its time\n"
     "-o, --output json\tprint the server's answers, one JSON object a line\n",
     "The name is tried as a service, then as a task id. A service's tasks are\n"
     "all those that ran, history included. stderr lines go to stderr. With\n"
     "several tasks each line starts with SERVICE.SLOT.TASK@NODE | .\n"
     "A node that cannot be read is reported on stderr with its tasks; the\n"
     "other lines are still printed, and the exit code is 1 (with -f the\n"
     "error is printed once and following goes on).\n"
     "\nExamples:\n  shoal logs web --tail 20\n  shoal logs -f --since 10m web\n",
     0},
    {NULL, "plan", ctl_plan, "-f FILE [-o json]",
     "Show what applying a spec file would change, changing nothing",
     "-f, --file FILE\tthe spec file (- for stdin), as for apply\n"
     "-o, --output json\tprint the server's answer (POST /v1/plan)\n",
     "For each service: create, update or no change, the diff field by field\n"
     "(~ changed, + added, - removed), what the scheduler would do (tasks to\n"
     "create, stop and replace, replicas it cannot place and why), then the\n"
     "apply command that refuses to write a service changed since the plan.\n"
     "Exit codes: 0 no change, 1 changes, 2 error (as kubectl diff).\n"
     "\nExample:\n  shoal plan -f stack.json\n",
     0},
    {NULL, "apply", ctl_apply, "-f FILE [--check-index [NAME=]N]... [-o json]",
     "Create or replace the services of a spec file (one spec or a list)",
     "-f, --file FILE\tthe spec file (- for stdin)\n"
     "--check-index N\twrite the file's one service only if its modify_index is\n"
     "\tstill N (0: only if it does not exist), as `shoal plan` printed it;\n"
     "\tNAME=N: the same for service NAME of the file (repeatable)\n" WRITE_OUTPUT,
     "Example:\n  shoal plan -f stack.json\n"
     "  shoal apply -f stack.json --check-index web=42 --check-index api=0\n",
     0},
    {NULL, "events", ctl_events,
     "[-f] [--service NAME] [--type PREFIX]... [--since-index N] [-o json]",
     "Print what happened in the cluster: services, rollouts, tasks, nodes",
     "-f, --follow\tgo on printing events as they come until interrupted (Ctrl-C exits 0)\n"
     "--service NAME\tonly the events of service NAME\n"
     "--type PREFIX\tonly events whose type starts with PREFIX (task., node.down);\n"
     "\trepeatable, or a comma list\n"
     "--since-index N\tthe events after index N (default: the last 100)\n"
     "-o, --output json\tprint the events as JSON, one a line\n",
     "Each line: time (UTC), type, what it is about and what changed. When\n"
     "events after the index asked for were dropped (the manager keeps the\n"
     "last 10,000), a line on stderr says so and printing goes on.\n"
     "\nExamples:\n  shoal events --service web --type rollout.\n"
     "  shoal events -f --type task.,node. -o json\n",
     0},
};

static const char global_options[] =
    "--addr URL\tshoald's API (env SHOAL_ADDR, default " CTL_DEFAULT_ADDR ")\n"
    "--token T\tAPI token (env SHOAL_TOKEN)\n"
    "--token-file F\tread the API token from F (env SHOAL_TOKEN_FILE)\n"
    "-o, --output FMT\ttable or json, for every command\n"
    "-h, --help\tshow this help\n"
    "--version\tshow the version\n";

int ctl_error(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout); /* keeps results and errors in order when both go to one file */
    va_start(ap, fmt);
    fputs("shoal: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CTL_EXIT_ERROR;
}

static void print_cmd_name(const struct ctl_command *cmd, FILE *out)
{
    if (cmd->group)
        fprintf(out, "%s ", cmd->group);
    fputs(cmd->name, out);
}

/* Prints "left\thelp\n" lines of text aligned at width. */
static void print_options(FILE *out, const char *text, int width)
{
    while (text && *text) {
        size_t left = strcspn(text, "\t\n");
        const char *help = text[left] == '\t' ? text + left + 1 : text + left;
        size_t help_len = strcspn(help, "\n");
        fprintf(out, "  %-*.*s %.*s\n", width, (int)left, text, (int)help_len, help);
        text = help + help_len + (help[help_len] == '\n');
    }
}

static void print_main_usage(FILE *out)
{
    fputs("Usage: shoal [GLOBAL OPTIONS] COMMAND [ARGS...]\n\n"
          "Manage a Shoal cluster through shoald's REST API.\n\n",
          out);
    fputs("Global options (before the command):\n", out);
    print_options(out, global_options, 18);
    fputs("\nCommands:\n", out);
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        char name[48];
        snprintf(name, sizeof(name), "%s%s%s", commands[i].group ? commands[i].group : "",
                 commands[i].group ? " " : "", commands[i].name);
        fprintf(out, "  %-20s %s\n", name, commands[i].summary);
    }
    fputs("\nRun 'shoal COMMAND --help' for the options of a command.\n"
          "Exit codes: 0 success, 1 error, 2 usage error.\n",
          out);
}

void ctl_usage(const struct ctl_ctx *ctx, FILE *out)
{
    const struct ctl_command *cmd = ctx->cmd;
    if (!cmd) {
        print_main_usage(out);
        return;
    }
    fputs("Usage: shoal ", out);
    print_cmd_name(cmd, out);
    fprintf(out, " %s\n\n%s.\n\nOptions:\n", cmd->synopsis, cmd->summary);
    int width = cmd->spec_flags ? 32 : 18;
    if (cmd->spec_flags)
        ctl_spec_print_flags(cmd->spec_flags, out, width);
    print_options(out, cmd->options, width);
    print_options(out, "-h, --help\tshow this help\n", width);
    if (cmd->notes)
        fprintf(out, "\n%s", cmd->notes);
}

int ctl_usage_error(const struct ctl_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    va_start(ap, fmt);
    fputs("shoal: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fputs("Run 'shoal ", stderr);
    if (ctx->cmd) {
        print_cmd_name(ctx->cmd, stderr);
        fputc(' ', stderr);
    }
    fputs("--help' for usage.\n", stderr);
    return CTL_EXIT_USAGE;
}

/* Parses an -o value ("json" or "table") into *out. Returns 0 or -EINVAL. */
static int parse_output(const char *value, enum ctl_output *out)
{
    if (strcmp(value, "json") == 0)
        *out = CTL_OUT_JSON;
    else if (strcmp(value, "table") == 0)
        *out = CTL_OUT_TABLE;
    else
        return -EINVAL;
    return 0;
}

/* The value of an environment variable, NULL when unset or empty. */
static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* Reads and trims a token file into *out (transferred: free()). Returns 0 or
 * an exit code with the error printed. */
static int read_token_file(const char *path, char **out)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ctl_error("cannot read token file '%s': %s", path, strerror(errno));
    char buf[CTL_MAX_TOKEN_FILE + 1];
    size_t len = 0;
    while (len < sizeof(buf)) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ctl_error("cannot read token file '%s': %s", path, strerror(errno));
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > CTL_MAX_TOKEN_FILE)
        return ctl_error("token file '%s' is larger than %u bytes", path, CTL_MAX_TOKEN_FILE);
    size_t start = 0;
    while (start < len && strchr(" \t\r\n", buf[start]))
        start++;
    while (len > start && strchr(" \t\r\n", buf[len - 1]))
        len--;
    if (len == start)
        return ctl_error("token file '%s' is empty", path);
    *out = xstrndup(buf + start, len - start);
    return 0;
}

/* Picks the token: --token, --token-file, SHOAL_TOKEN, SHOAL_TOKEN_FILE, in
 * that order. Returns 0 or an exit code with the error printed. */
static int resolve_token(struct ctl_ctx *ctx)
{
    const char *token = ctx->token_arg, *token_file = ctx->token_file_arg;
    if (token && token_file)
        return ctl_usage_error(&(const struct ctl_ctx){0},
                               "give either --token or --token-file, not both");
    if (!token && !token_file) {
        token = env("SHOAL_TOKEN");
        token_file = token ? NULL : env("SHOAL_TOKEN_FILE");
    }
    if (token_file) {
        int rv = read_token_file(token_file, &ctx->token);
        if (rv != 0)
            return rv;
    } else if (token && *token) {
        ctx->token = xstrdup(token);
    }
    for (const char *p = ctx->token; p && *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return ctl_error("the token holds a control character");
    }
    return 0;
}

/* Sets ctx->addr from addr: "http://" is added when there is no scheme and
 * trailing slashes are dropped. Returns 0 or an exit code. */
static int resolve_addr(struct ctl_ctx *ctx)
{
    const struct ctl_ctx top = {0}; /* global options: the hint names 'shoal --help' */
    const char *addr = ctx->addr_arg, *from = "--addr";
    if (!addr && (addr = env("SHOAL_ADDR")))
        from = "SHOAL_ADDR";
    if (!addr)
        addr = CTL_DEFAULT_ADDR;
    const char *sep = strstr(addr, "://");
    if (sep && strncmp(addr, "http://", 7) != 0 && strncmp(addr, "https://", 8) != 0)
        return ctl_usage_error(&top, "%s: expected an http:// or https:// URL, not '%s'", from,
                               addr);
    size_t len = strlen(addr);
    while (len > 0 && addr[len - 1] == '/')
        len--;
    if (len == 0 || (sep && len <= (size_t)(sep - addr) + 3))
        return ctl_usage_error(&top, "%s: empty address", from);
    ctx->addr = xmalloc(len + 8);
    snprintf(ctx->addr, len + 8, "%s%.*s", sep ? "" : "http://", (int)len, addr);
    return 0;
}

/* Resolves the address and the token once a command's options are parsed,
 * so that --help works whatever the environment holds. Returns 0 or an exit
 * code with the error printed. */
static int resolve_connection(struct ctl_ctx *ctx)
{
    if (ctx->addr)
        return 0;
    int rv = resolve_addr(ctx);
    return rv != 0 ? rv : resolve_token(ctx);
}

/* Names the option getopt_long just refused, for the error message. */
static void refused_option(char **argv, char *name, size_t size)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    if (strncmp(arg, "--", 2) == 0)
        snprintf(name, size, "%.*s", (int)strcspn(arg, "="), arg);
    else if (optopt > 0 && optopt < 128)
        snprintf(name, size, "-%c", optopt);
    else
        snprintf(name, size, "%s", arg);
}

int ctl_getopt(struct ctl_ctx *ctx, int argc, char **argv, const char *shortopts,
               const struct option *longopts)
{
    char name[64];
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, shortopts, longopts, NULL);
        switch (c) {
        case 'h':
            ctl_usage(ctx, stdout);
            ctx->exit = CTL_EXIT_OK;
            return CTL_OPT_STOP;
        case 'o':
            if (parse_output(optarg, &ctx->output) == 0)
                continue;
            ctx->exit = ctl_usage_error(ctx, "-o: expected json or table, not '%s'", optarg);
            return CTL_OPT_STOP;
        case '?':
            refused_option(argv, name, sizeof(name));
            ctx->exit = ctl_usage_error(ctx, "unknown option '%s'", name);
            return CTL_OPT_STOP;
        case ':':
            refused_option(argv, name, sizeof(name));
            ctx->exit = ctl_usage_error(ctx, "option '%s' needs a value", name);
            return CTL_OPT_STOP;
        case -1:
            if (ctx->cmd && (ctx->exit = resolve_connection(ctx)) != 0)
                return CTL_OPT_STOP;
            return -1;
        default:
            return c;
        }
    }
}

static const struct option plain_opts[] = {
    {"output", required_argument, NULL, 'o'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int ctl_plain_options(struct ctl_ctx *ctx, int argc, char **argv)
{
    int c;
    while ((c = ctl_getopt(ctx, argc, argv, ":ho:", plain_opts)) >= 0)
        ;
    return c == CTL_OPT_STOP ? ctx->exit : -1;
}

static void print_group_usage(const char *group, FILE *out)
{
    fprintf(out, "Usage: shoal %s COMMAND [ARGS...]\n\nCommands:\n", group);
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        if (commands[i].group && strcmp(commands[i].group, group) == 0)
            fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(out, "\nRun 'shoal %s COMMAND --help' for the options of a command.\n", group);
}

static int is_group(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        if (commands[i].group && strcmp(commands[i].group, name) == 0)
            return 1;
    }
    return 0;
}

static const struct ctl_command *find_command(const char *group, const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        const struct ctl_command *c = &commands[i];
        if ((group ? c->group && strcmp(c->group, group) == 0 : !c->group) &&
            strcmp(c->name, name) == 0)
            return c;
    }
    return NULL;
}

static int is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0 || strcmp(arg, "help") == 0;
}

/* Finds the command named by argv[0] (and argv[1] for a group) and runs it.
 * Returns an exit code. */
static int dispatch(struct ctl_ctx *ctx, int argc, char **argv)
{
    if (is_help(argv[0])) {
        print_main_usage(stdout);
        return CTL_EXIT_OK;
    }
    if (!is_group(argv[0])) {
        ctx->cmd = find_command(NULL, argv[0]);
        if (!ctx->cmd)
            return ctl_usage_error(ctx, "unknown command '%s'", argv[0]);
        optind = 0;
        return ctx->cmd->run(ctx, argc, argv);
    }
    if (argc < 2 || is_help(argv[1])) {
        print_group_usage(argv[0], argc < 2 ? stderr : stdout);
        return argc < 2 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
    }
    ctx->cmd = find_command(argv[0], argv[1]);
    if (!ctx->cmd) {
        ctl_error("unknown command '%s %s'", argv[0], argv[1]);
        fprintf(stderr, "Run 'shoal %s --help' for its commands.\n", argv[0]);
        return CTL_EXIT_USAGE;
    }
    optind = 0;
    return ctx->cmd->run(ctx, argc - 1, argv + 1);
}

static void print_version(void)
{
    printf("shoal version %s (libcurl %s, jansson %s)\n", CTL_VERSION,
           curl_version_info(CURLVERSION_NOW)->version, JANSSON_VERSION);
}

enum { OPT_ADDR = 256, OPT_TOKEN, OPT_TOKEN_FILE, OPT_VERSION };

static const struct option global_opts[] = {
    {"addr", required_argument, NULL, OPT_ADDR},
    {"token", required_argument, NULL, OPT_TOKEN},
    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
    {"version", no_argument, NULL, OPT_VERSION},
    {"output", required_argument, NULL, 'o'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Parses the global options and runs the command. Returns an exit code. */
static int run(struct ctl_ctx *ctx, int argc, char **argv)
{
    int c;
    while ((c = ctl_getopt(ctx, argc, argv, "+:ho:", global_opts)) >= 0) {
        if (c == OPT_ADDR)
            ctx->addr_arg = optarg;
        else if (c == OPT_TOKEN)
            ctx->token_arg = optarg;
        else if (c == OPT_TOKEN_FILE)
            ctx->token_file_arg = optarg;
        else if (c == OPT_VERSION) {
            print_version();
            return CTL_EXIT_OK;
        }
    }
    if (c == CTL_OPT_STOP)
        return ctx->exit;
    if (optind >= argc) {
        print_main_usage(stderr);
        return CTL_EXIT_USAGE;
    }
    return dispatch(ctx, argc - optind, argv + optind);
}

int main(int argc, char **argv)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return ctl_error("cannot initialise libcurl");
    struct ctl_ctx ctx = {.output = CTL_OUT_DEFAULT};
    int rv = run(&ctx, argc, argv);
    ctl_http_close(&ctx);
    free(ctx.addr);
    if (ctx.token) {
        explicit_bzero(ctx.token, strlen(ctx.token));
        free(ctx.token);
    }
    curl_global_cleanup();
    if (fflush(stdout) != 0 || ferror(stdout)) {
        ctl_error("cannot write the output: %s", strerror(errno));
        rv = CTL_EXIT_ERROR;
    }
    return rv;
}
