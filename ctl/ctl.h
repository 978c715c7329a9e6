/* The shoal CLI: the context every command gets, the command table's entry,
 * the HTTP client, output helpers and the flag table that builds and edits
 * service specs. */
#ifndef SHOAL_CTL_CTL_H
#define SHOAL_CTL_CTL_H

#include <getopt.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "common/buf.h"

#define CTL_VERSION      "0.1.0"
#define CTL_DEFAULT_ADDR "http://127.0.0.1:7070"

/* Hard limits on what comes from outside. */
#define CTL_MAX_ANSWER     (64u << 20) /* bytes of one HTTP answer */
#define CTL_MAX_FILE       (64u << 20) /* bytes of a spec file */
#define CTL_MAX_TOKEN_FILE (16u << 10) /* bytes of a token file */

/* Process exit codes. Command handlers return one of these. */
enum ctl_exit {
    CTL_EXIT_OK = 0,
    CTL_EXIT_ERROR = 1,
    CTL_EXIT_USAGE = 2,
};

enum ctl_output {
    CTL_OUT_DEFAULT, /* what the command prints without -o */
    CTL_OUT_TABLE,
    CTL_OUT_JSON,
};

struct ctl_command;

struct ctl_ctx {
    const char *addr_arg;          /* borrowed from argv: --addr, or NULL */
    const char *token_arg;         /* borrowed from argv: --token, or NULL */
    const char *token_file_arg;    /* borrowed from argv: --token-file, or NULL */
    char *addr;                    /* owned: base URL, no trailing slash; see ctl_getopt */
    char *token;                   /* owned; NULL when no token was given */
    enum ctl_output output;        /* from -o, global or after the verb */
    void *curl;                    /* owned CURL *; NULL until the first request */
    const struct ctl_command *cmd; /* borrowed: the command being run */
    int exit;                      /* exit code when ctl_getopt says stop */
    char errmsg[512]; /* detail of the last failure; room for the server's error and field */
};

/* Runs a command. argv[0] is the verb ("create", "apply"); options and
 * operands follow. Returns an enum ctl_exit. */
typedef int (*ctl_command_cb)(struct ctl_ctx *ctx, int argc, char **argv);

/* Which spec flags of the table a command takes (bit set). */
#define CTL_FLAGS_CREATE 1u
#define CTL_FLAGS_UPDATE 2u

struct ctl_command {
    const char *group;    /* "cluster", "service", or NULL for a top-level verb */
    const char *name;     /* "status", "create", "apply" */
    ctl_command_cb run;   /* the handler */
    const char *synopsis; /* what follows the verb in the usage line */
    const char *summary;  /* one line for the command list */
    const char *options;  /* "-f, --file FILE\thelp\n" lines; may be NULL */
    const char *notes;    /* text after the options (examples); may be NULL */
    unsigned spec_flags;  /* CTL_FLAGS_* to list the spec flag table in the help */
};

/* tasks.c */
int ctl_service_ps(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_node_ps(struct ctl_ctx *ctx, int argc, char **argv);

/* image.c: the image store of the node at --addr. */
int ctl_image_ls(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_image_load(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_image_rm(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_image_gc(struct ctl_ctx *ctx, int argc, char **argv);

/* logs.c */
int ctl_logs(struct ctl_ctx *ctx, int argc, char **argv);

/* main.c: the command table, usage and option helpers. */

/* Prints the usage of ctx->cmd to out. */
void ctl_usage(const struct ctl_ctx *ctx, FILE *out);

/* Prints "shoal: <message>" and a hint to run --help for ctx->cmd on stderr.
 * Returns CTL_EXIT_USAGE. */
int ctl_usage_error(const struct ctl_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prints "shoal: <message>" on stderr. Returns CTL_EXIT_ERROR. */
int ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Option returned by ctl_getopt when the command must stop: help was
 * printed (ctx->exit is 0) or a usage error was reported (ctx->exit is 2). */
#define CTL_OPT_STOP (-2)

/* getopt_long for a command, with the options every command shares handled
 * here: -h/--help prints the usage, -o/--output sets ctx->output, unknown
 * options and missing values are reported as usage errors. At the end of a
 * command's options it also resolves ctx->addr and ctx->token from the global
 * options and the environment (once; an error there stops too). shortopts must
 * start with ':' (after an optional '+') and contain "ho:"; longopts must hold
 * "help" -> 'h' and "output" -> 'o'. Returns the next other option, -1 at the
 * end of the options (optind is then the first operand), or CTL_OPT_STOP.
 * Set optind to 0 before the first call for an argv. */
int ctl_getopt(struct ctl_ctx *ctx, int argc, char **argv, const char *shortopts,
               const struct option *longopts);

/* objects.c: a collection under /v1 (services, nodes). */
struct ctl_collection {
    const char *path;                  /* "/v1/services" */
    const char *what;                  /* "service", for messages */
    const char *operand;               /* "service name", for usage errors */
    void (*table)(const json_t *list); /* prints a list as a table */
};

/* "<path>/<name escaped><suffix>" (transferred: free()). */
char *ctl_object_path(const struct ctl_collection *c, const char *name, const char *suffix);
/* `ls`: GET the collection, print it as JSON or a table. */
int ctl_object_ls(const struct ctl_collection *c, struct ctl_ctx *ctx, int argc, char **argv);
/* `inspect NAME...`: GET each, print them as JSON or a table. */
int ctl_object_inspect(const struct ctl_collection *c, struct ctl_ctx *ctx, int argc, char **argv);

/* Writes an edited object back with ?index=<index> (compare-and-set), by
 * method (PUT, PATCH) to path; a 409 says the object changed meanwhile.
 * Prints the answer like ctl_object_print_written. Returns an exit code. */
int ctl_object_write_back(const struct ctl_collection *c, struct ctl_ctx *ctx, const char *method,
                          const char *path, const char *name, json_int_t index, json_t *body);
/* Prints a written object: as JSON with -o json, else its name. */
void ctl_object_print_written(struct ctl_ctx *ctx, const json_t *obj, const char *name);

/* Parses the options of a command that takes only -o and -h. Returns -1
 * when the command goes on (optind is then the first operand), else the
 * exit code to return (help printed or usage error reported). */
int ctl_plain_options(struct ctl_ctx *ctx, int argc, char **argv);

/* http.c: a blocking JSON client for shoald's REST API. */

/* Sends one request to ctx->addr + path and reads the answer.
 *
 * method: "GET", "POST", "PUT", "PATCH", "DELETE". path: starts with '/', already
 * escaped (see ctl_http_escape). body: borrowed, sent as JSON; NULL for none.
 * out_json: when not NULL, receives the parsed answer of a 2xx (transferred:
 * json_decref), NULL otherwise. status: when not NULL, receives the HTTP
 * status, 0 when no answer came.
 * Returns 0 on a 2xx answer. Otherwise ctx->errmsg holds the reason and the
 * result is -EREMOTEIO for a non-2xx answer (errmsg: "<error> (field: <f>)
 * [HTTP <status>]" taken from the JSON error body), -EHOSTUNREACH when shoald
 * could not be reached or timed out ("cannot reach shoald at URL: ..."),
 * -EINVAL for a bad address, -EBADMSG for an answer that is not JSON, -E2BIG
 * for an answer above CTL_MAX_ANSWER. */
int ctl_http_request(struct ctl_ctx *ctx, const char *method, const char *path, json_t *body,
                     json_t **out_json, long *status);

/* A raw answer of ctl_http_send. */
struct ctl_http_answer {
    struct common_buf body; /* owned (ctl_http_answer_free): the body of a 2xx, else empty */
    long status;            /* HTTP status, 0 when no answer came */
    long long index;        /* the X-Shoal-Index header of a 2xx, -1 when absent */
};

/* Sends one request like ctl_http_request but keeps the answer's body as
 * sent, unparsed. ans is always initialised: free it with
 * ctl_http_answer_free whatever the result. Returns 0 on a 2xx answer, or the
 * errors of ctl_http_request except -EBADMSG, with ctx->errmsg set. */
int ctl_http_send(struct ctl_ctx *ctx, const char *method, const char *path, json_t *body,
                  struct ctl_http_answer *ans);

/* Frees the body of ans and empties it. */
void ctl_http_answer_free(struct ctl_http_answer *ans);

/* Returns s percent-encoded for use as one path segment (transferred:
 * free()). */
char *ctl_http_escape(const char *s);

/* Frees the curl handle of ctx, if any. */
void ctl_http_close(struct ctl_ctx *ctx);

/* output.c: tables and JSON. */

struct ctl_table {
    size_t ncols;
    size_t ncells;
    size_t cap;
    char **cells; /* owned, row-major, header row first */
};

/* Starts a table of ncols columns whose header row is the ncols strings of
 * headers (copied), or without a header row when headers is NULL. */
void ctl_table_init(struct ctl_table *t, size_t ncols, const char *const *headers);
/* Appends one cell (copied, with control characters replaced by '?'); rows
 * fill left to right. */
void ctl_table_cell(struct ctl_table *t, const char *s);
void ctl_table_cellf(struct ctl_table *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints the table to out with columns padded, each line after indent
 * spaces. */
void ctl_table_print(const struct ctl_table *t, FILE *out, int indent);
void ctl_table_free(struct ctl_table *t);

/* Prints j as indented JSON and a newline on stdout. */
void ctl_print_json(const json_t *j);

/* Returns a dotted path ("task.driver") of root, or NULL when a step is
 * missing or not an object (borrowed from root). */
json_t *ctl_json_get(const json_t *root, const char *path);
/* The string at path, or fallback when absent or not a string (borrowed). */
const char *ctl_json_str(const json_t *root, const char *path, const char *fallback);

/* Writes the words of a JSON list of strings joined by spaces into a new
 * string, quoting words with spaces or quotes (transferred: free()). */
char *ctl_join_words(const json_t *list);

/* Prints the answers collected by a command that takes several names
 * (answers: a JSON array, nnames: how many names were given): the one
 * object when one name was given, else the list. */
void ctl_print_answers(const json_t *answers, int nnames);

/* Prints the services of list (a JSON array) as the `service ls` table. */
void ctl_print_service_table(const json_t *list);

/* Prints the nodes of list (a JSON array) as the `node ls` table. */
void ctl_print_node_table(const json_t *list);

/* spec.c: the flag table shared by `service create` and `service update`. */

enum ctl_kind {
    CTL_KIND_STRING,      /* sets a string */
    CTL_KIND_STRING_INT,  /* sets an integer when all digits, else a string (sizes, signals) */
    CTL_KIND_INT,         /* sets an integer */
    CTL_KIND_NUMBER,      /* sets a number */
    CTL_KIND_WORDS,       /* sets a list of strings split like a shell does */
    CTL_KIND_LIST_APPEND, /* appends a string to a list */
    CTL_KIND_LIST_REMOVE, /* removes every equal string from a list */
    CTL_KIND_MAP_PUT,     /* K=V: sets key K of an object */
    CTL_KIND_MAP_REMOVE,  /* K: removes key K of an object */
};

struct ctl_spec_flag {
    const char *flag; /* long option, without "--" */
    const char *path; /* dotted JSON path in the spec */
    enum ctl_kind kind;
    unsigned where;      /* CTL_FLAGS_CREATE and/or CTL_FLAGS_UPDATE */
    const char *metavar; /* name of the value in the help */
    const char *help;
};

/* One flag as given on the command line. */
struct ctl_spec_edit {
    const struct ctl_spec_flag *flag; /* borrowed from the table */
    const char *value;                /* borrowed from argv */
};

/* Option `val`s of spec flags in the long options built below start here. */
#define CTL_SPEC_OPT_BASE 1000

/* Builds getopt_long options: the spec flags for `where` (val is
 * CTL_SPEC_OPT_BASE + their index, see ctl_spec_flag_at) followed by extra
 * (nextra entries, copied) and a terminating zero entry. Transferred: free(). */
struct option *ctl_spec_options(unsigned where, const struct option *extra, size_t nextra);

/* Returns the flag whose option val is val, or NULL. */
const struct ctl_spec_flag *ctl_spec_flag_at(int val);

/* Checks the syntax of value for flag (an integer where one is expected,
 * K=V for map puts, balanced quotes for words). Returns 0, or -EINVAL with
 * errmsg set to "--flag: ...". */
int ctl_spec_check(const struct ctl_spec_flag *flag, const char *value, char *errmsg,
                   size_t errmsg_size);

/* Applies one checked edit to spec (an object, modified in place), creating
 * intermediate objects. Returns 0, or -EINVAL with errmsg set when a step of
 * the path holds something else than an object or list. */
int ctl_spec_apply(json_t *spec, const struct ctl_spec_edit *edit, char *errmsg,
                   size_t errmsg_size);

/* Prints the flags for `where` with their help aligned at width, one per
 * line. */
void ctl_spec_print_flags(unsigned where, FILE *out, int width);

/* Reads a JSON file (path "-" is stdin), at most CTL_MAX_FILE bytes.
 * out: transferred (json_decref). Returns 0, or -errno / -EINVAL with errmsg
 * set to "<path>: <reason>" (with line and column for JSON errors). */
int ctl_read_json_file(const char *path, json_t **out, char *errmsg, size_t errmsg_size);

/* apply.c: checks that every spec of list (a JSON array, borrowed) is an
 * object with a string name, so that nothing is sent when the file is
 * malformed; file names the file in the message. Returns 0, or
 * CTL_EXIT_ERROR with the error printed. */
int ctl_check_specs(const char *file, const json_t *list);

/* plan.c: shoal plan -f FILE. */
int ctl_plan(struct ctl_ctx *ctx, int argc, char **argv);

/* rollout.c: following and steering rollouts. */

/* Exit codes of a followed rollout (`rollout status`, `service update
 * --detach=false`); errors exit CTL_EXIT_ERROR (1) too. */
enum ctl_rollout_exit {
    CTL_ROLLOUT_COMPLETED = 0, /* completed, or nothing under way */
    CTL_ROLLOUT_FAILED = 1,    /* rolled back (or a state it does not know) */
    CTL_ROLLOUT_PAUSED = 2,    /* paused, by a failure or a user */
    CTL_ROLLOUT_TIMEOUT = 3,   /* still under way when the timeout passed */
};

/* Follows the rollout of service name (borrowed) with blocking queries on
 * GET /v1/services/NAME/rollout until it is no longer under way, or until
 * timeout_ms passed (< 0: no timeout). Prints its progress on stdout (one
 * line rewritten in place on a terminal, else a line per change) and a final
 * line, or with -o json only the last rollout object. unchanged_version > 0:
 * the version of the service before a write; if the service is still at it
 * and no rollout is under way or paused, the write started none, which is
 * printed and answers CTL_ROLLOUT_COMPLETED. Returns an enum
 * ctl_rollout_exit, or CTL_EXIT_ERROR with the error printed. */
int ctl_rollout_follow(struct ctl_ctx *ctx, const char *name, int64_t timeout_ms,
                       json_int_t unchanged_version);

int ctl_rollout_status(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_service_rollback(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_service_rollout(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_service_history(struct ctl_ctx *ctx, int argc, char **argv);

/* Command handlers (cluster.c, node.c, service.c, apply.c). */
int ctl_cluster_status(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_cluster_join_token(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_cluster_backup(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_node_ls(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_node_inspect(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_node_update(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_node_rm(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_node_promote(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_node_demote(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_service_create(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_service_ls(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_service_inspect(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_service_rm(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_service_scale(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_service_update(struct ctl_ctx *ctx, int argc, char **argv);
int ctl_apply(struct ctl_ctx *ctx, int argc, char **argv);
/* events.c: shoal events [-f]. */
int ctl_events(struct ctl_ctx *ctx, int argc, char **argv);

#endif
