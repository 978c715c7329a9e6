/* shoal-image: pull, load, inspect, ls, rm and gc of the node's image store.
 * Prints one JSON document on stdout; on failure {"error": "..."} and exit
 * status 1; usage errors exit 2. */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <string.h>

#include "agent/image/image.h"
#include "common/util.h"

#define MAX_LIST 256

static void usage(FILE *f)
{
    fprintf(f, "usage: shoal-image pull --store DIR [--insecure-registry HOST:PORT]... "
               "[--auth-file FILE] REF\n"
               "       shoal-image load --store DIR FILE\n"
               "       shoal-image inspect --store DIR REF|ID\n"
               "       shoal-image ls --store DIR\n"
               "       shoal-image rm --store DIR [--keep ID]... REF|ID\n"
               "       shoal-image gc --store DIR [--keep ID]...\n");
}

struct command {
    const char *name;
    int nargs;
    int (*run)(struct img_ctx *c, const char *arg, json_t **out);
};

static int run_ls(struct img_ctx *c, const char *arg, json_t **out)
{
    (void)arg;
    return img_cmd_ls(c, out);
}

static int run_gc(struct img_ctx *c, const char *arg, json_t **out)
{
    (void)arg;
    return img_cmd_gc(c, out);
}

static const struct command commands[] = {
    {"pull", 1, img_cmd_pull}, {"load", 1, img_cmd_load}, {"inspect", 1, img_cmd_inspect},
    {"ls", 0, run_ls},         {"rm", 1, img_cmd_rm},     {"gc", 0, run_gc},
};

static const struct option longopts[] = {
    {"store", required_argument, NULL, 's'},
    {"insecure-registry", required_argument, NULL, 'i'},
    {"auth-file", required_argument, NULL, 'a'},
    {"keep", required_argument, NULL, 'k'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int parse(int argc, char **argv, struct img_ctx *c, const char **store)
{
    static const char *insecure[MAX_LIST], *keep[MAX_LIST];
    int o;
    c->insecure = insecure;
    c->keep = keep;
    while ((o = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (o == 's')
            *store = optarg;
        else if (o == 'a')
            c->auth_file = optarg;
        else if (o == 'i' && c->n_insecure < MAX_LIST)
            insecure[c->n_insecure++] = optarg;
        else if (o == 'k' && c->n_keep < MAX_LIST)
            keep[c->n_keep++] = optarg;
        else
            return -1;
    }
    return *store ? 0 : -1;
}

static int print(json_t *doc)
{
    int rv = json_dumpf(doc, stdout, JSON_COMPACT) == 0 && fputc('\n', stdout) != EOF &&
                     fflush(stdout) == 0
                 ? 0
                 : 1;
    json_decref(doc);
    return rv;
}

int main(int argc, char **argv)
{
    struct img_ctx c = {.lock_fd = -1};
    const char *store = NULL;
    const struct command *cmd = NULL;
    for (size_t i = 0; argc > 1 && i < ARRAY_SIZE(commands); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            cmd = &commands[i];
    if (!cmd || parse(argc - 1, argv + 1, &c, &store) != 0 || argc - 1 - optind != cmd->nargs) {
        usage(stderr);
        return 2;
    }
    const char *arg = cmd->nargs ? argv[1 + optind] : NULL;
    json_t *out = NULL;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rv = img_store_open(&c, store);
    if (rv == 0)
        rv = cmd->run(&c, arg, &out);
    curl_global_cleanup();
    if (c.lock_fd >= 0)
        close(c.lock_fd);
    if (rv != 0) {
        json_decref(out);
        print(json_pack("{s:s}", "error", c.err[0] ? c.err : strerror(-rv)));
        return 1;
    }
    return print(out);
}
