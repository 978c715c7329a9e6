/* The node's images from the loop: one shoal-image child per command, its
 * stdout collected and parsed when it has exited and both pipes are at EOF.
 * Pulls of the same reference share one child. A run is freed in the close
 * callback of its last handle; the service once its last run is freed. */
#include "agent/images.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"

#define MAX_OUT     (16u << 20)
#define ERR_TAIL    1024
#define DEADLINE_MS (30u * 60 * 1000) /* the helper's own timeouts come first */
#define MAX_ARGS    1024

struct waiter {
    agent_images_cb get_cb;
    agent_images_run_cb run_cb;
    void *data;
    struct waiter *next;
};

struct run {
    struct agent_images *im;
    uv_process_t proc;
    uv_pipe_t out, err;
    uv_timer_t timer;
    int handles;
    int spawned, exited, out_eof, err_eof, done;
    int64_t status;
    int term_signal;
    struct common_buf obuf;
    char etail[ERR_TAIL];
    size_t elen;
    char fail[256];
    char *key;      /* the ref of a pull, shared by its waiters; NULL otherwise */
    json_t *cached; /* an answer from the cache: no helper runs */
    struct waiter *waiters;
    struct run *next;
    char scratch[64 * 1024];
};

struct agent_images {
    uv_loop_t *loop;
    char *store_dir;
    char **insecure;
    size_t n_insecure;
    char *auth_file;
    char helper[PATH_MAX];
    agent_images_in_use_cb in_use;
    void *in_use_data;
    struct run *runs; /* not finished yet */
    json_t *cache;    /* pinned ref -> the helper's answer (see pinned()) */
    int live;         /* runs not freed yet */
    int closing;
};

static void images_free(struct agent_images *im)
{
    for (size_t i = 0; i < im->n_insecure; i++)
        free(im->insecure[i]);
    free(im->insecure);
    free(im->store_dir);
    free(im->auth_file);
    json_decref(im->cache);
    free(im);
}

/* Whether ref always names the same image: by digest, or local (no
 * registry host: only ever resolved against the store). A tag of a
 * registry is resolved again on every pull. */
static int pinned(const char *ref)
{
    if (strchr(ref, '@'))
        return 1;
    const char *slash = strchr(ref, '/');
    if (!slash)
        return 1;
    size_t n = (size_t)(slash - ref);
    return !memchr(ref, '.', n) && !memchr(ref, ':', n) && strncmp(ref, "localhost/", 10) != 0;
}

/* A cached answer whose rootfs is still there (image rm and gc clear the
 * cache; this is for a store changed by hand). */
static json_t *cache_get(struct agent_images *im, const char *ref)
{
    json_t *a = json_object_get(im->cache, ref);
    struct stat st;
    const char *rootfs = json_string_value(json_object_get(a, "rootfs"));
    if (!a || !rootfs || stat(rootfs, &st) != 0 || !S_ISDIR(st.st_mode)) {
        json_object_del(im->cache, ref);
        return NULL;
    }
    return a;
}

int agent_images_init(struct agent_images **out, uv_loop_t *loop,
                      const struct agent_images_config *cfg, char *errmsg)
{
    if (mkdir(cfg->store_dir, 0700) != 0 && errno != EEXIST) {
        int e = errno;
        snprintf(errmsg, 256, "image store %s: %s", cfg->store_dir, strerror(e));
        return -e;
    }
    struct agent_images *im = xcalloc(1, sizeof(*im));
    im->loop = loop;
    im->cache = json_object();
    im->store_dir = xstrdup(cfg->store_dir);
    im->auth_file = cfg->auth_file ? xstrdup(cfg->auth_file) : NULL;
    im->insecure = xcalloc(cfg->n_insecure + 1, sizeof(char *));
    for (size_t i = 0; i < cfg->n_insecure; i++)
        im->insecure[i] = xstrdup(cfg->insecure[i]);
    im->n_insecure = cfg->n_insecure;
    if (cfg->helper) {
        common_strlcpy(im->helper, cfg->helper, sizeof(im->helper));
    } else {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        self[n > 0 ? n : 0] = '\0';
        char *slash = strrchr(self, '/');
        if (slash)
            *slash = '\0';
        snprintf(im->helper, sizeof(im->helper), "%s/shoal-image", self[0] ? self : ".");
    }
    *out = im;
    return 0;
}

void agent_images_set_in_use(struct agent_images *im, agent_images_in_use_cb fn, void *data)
{
    im->in_use = fn;
    im->in_use_data = data;
}

static void handle_closed(uv_handle_t *h)
{
    struct run *r = h->data;
    if (--r->handles > 0)
        return;
    struct agent_images *im = r->im;
    common_buf_free(&r->obuf);
    json_decref(r->cached);
    free(r->key);
    free(r);
    if (--im->live == 0 && im->closing)
        images_free(im);
}

static void unlink_run(struct run *r)
{
    for (struct run **p = &r->im->runs; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            return;
        }
    }
}

static void close_handles(struct run *r)
{
    uv_handle_t *hs[] = {(uv_handle_t *)&r->proc, (uv_handle_t *)&r->out, (uv_handle_t *)&r->err,
                         (uv_handle_t *)&r->timer};
    for (size_t i = 0; i < ARRAY_SIZE(hs); i++)
        if (hs[i]->data && !uv_is_closing(hs[i]))
            uv_close(hs[i], handle_closed);
}

/* Calls every waiter with answer or errmsg, then forgets them. */
static void deliver(struct run *r, const json_t *answer, const char *errmsg)
{
    struct waiter *w = r->waiters;
    r->waiters = NULL;
    while (w) {
        struct waiter *next = w->next;
        if (w->run_cb) {
            w->run_cb(w->data, answer, errmsg);
        } else {
            struct agent_image img = {
                .ref = json_string_value(json_object_get(answer, "ref")),
                .id = json_string_value(json_object_get(answer, "id")),
                .digest = json_string_value(json_object_get(answer, "digest")),
                .rootfs = json_string_value(json_object_get(answer, "rootfs")),
                .config = json_object_get(answer, "config"),
            };
            int ok = answer && img.id && img.digest && img.rootfs && json_is_object(img.config);
            if (ok && !img.ref)
                img.ref = r->key;
            w->get_cb(w->data, ok ? &img : NULL,
                      ok       ? NULL
                      : errmsg ? errmsg
                               : "shoal-image: incomplete answer");
        }
        free(w);
        w = next;
    }
}

static void finish(struct run *r)
{
    char errmsg[512] = "";
    r->done = 1;
    unlink_run(r);
    uv_timer_stop(&r->timer);
    json_error_t je;
    json_t *answer = r->cached ? json_incref(r->cached)
                     : r->fail[0]
                         ? NULL
                         : json_loadb(r->obuf.data ? r->obuf.data : "", r->obuf.len, 0, &je);
    const char *error = json_string_value(json_object_get(answer, "error"));
    r->etail[r->elen] = '\0';
    if (r->fail[0])
        snprintf(errmsg, sizeof(errmsg), "%s", r->fail);
    else if (error)
        snprintf(errmsg, sizeof(errmsg), "%s", error);
    else if (!r->cached &&
             (!r->exited || r->status != 0 || r->term_signal || !json_is_object(answer)))
        snprintf(errmsg, sizeof(errmsg), "shoal-image failed (status %lld, signal %d): %.300s",
                 (long long)r->status, r->term_signal, r->etail[0] ? r->etail : "no output");
    if (errmsg[0]) {
        json_decref(answer);
        answer = NULL;
    }
    if (answer && r->key && !r->cached && pinned(r->key))
        json_object_set(r->im->cache, r->key, answer);
    deliver(r, answer, errmsg[0] ? errmsg : NULL);
    json_decref(answer);
    close_handles(r);
}

static void maybe_finish(struct run *r)
{
    if (!r->done && r->exited && r->out_eof && r->err_eof)
        finish(r);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct run *r = h->data;
    buf->base = r->scratch;
    buf->len = sizeof(r->scratch);
}

static void on_out(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct run *r = s->data;
    if (n > 0 && r->obuf.len + (size_t)n <= MAX_OUT) {
        common_buf_append(&r->obuf, buf->base, (size_t)n);
    } else if (n > 0) {
        snprintf(r->fail, sizeof(r->fail), "shoal-image: answer larger than %u bytes", MAX_OUT);
    } else if (n < 0) {
        uv_read_stop(s);
        r->out_eof = 1;
        maybe_finish(r);
    }
}

static void on_err(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct run *r = s->data;
    if (n > 0) {
        /* Keep the last ERR_TAIL-1 bytes and log each chunk. */
        size_t len = (size_t)n < ERR_TAIL - 1 ? (size_t)n : ERR_TAIL - 1;
        const char *p = buf->base + (size_t)n - len;
        if (r->elen + len > ERR_TAIL - 1) {
            size_t drop = r->elen + len - (ERR_TAIL - 1);
            memmove(r->etail, r->etail + drop, r->elen - drop);
            r->elen -= drop;
        }
        memcpy(r->etail + r->elen, p, len);
        r->elen += len;
        int show = (int)len;
        while (show > 0 && p[show - 1] == '\n')
            show--;
        LOGI("shoal-image: %.*s", show, p);
    } else if (n < 0) {
        uv_read_stop(s);
        r->err_eof = 1;
        maybe_finish(r);
    }
}

static void on_exit_cb(uv_process_t *p, int64_t status, int term_signal)
{
    struct run *r = p->data;
    r->exited = 1;
    r->status = status;
    r->term_signal = term_signal;
    maybe_finish(r);
}

static void on_timer(uv_timer_t *t)
{
    struct run *r = t->data;
    if (!r->spawned || r->cached) {
        finish(r);
        return;
    }
    snprintf(r->fail, sizeof(r->fail), "shoal-image took longer than %u s: killed",
             DEADLINE_MS / 1000);
    uv_process_kill(&r->proc, SIGKILL);
}

/* Starts the helper with argv (borrowed, NULL-terminated, argv[0] unused). */
static struct run *start(struct agent_images *im, char **argv, const char *key)
{
    struct run *r = xcalloc(1, sizeof(*r));
    r->im = im;
    r->key = key ? xstrdup(key) : NULL;
    r->next = im->runs;
    im->runs = r;
    im->live++;
    uv_timer_init(im->loop, &r->timer);
    uv_pipe_init(im->loop, &r->out, 0);
    uv_pipe_init(im->loop, &r->err, 0);
    r->timer.data = r->out.data = r->err.data = r->proc.data = r;
    r->handles = 4;
    argv[0] = im->helper;
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&r->out},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&r->err},
    };
    uv_process_options_t o = {
        .exit_cb = on_exit_cb, .file = im->helper, .args = argv, .stdio_count = 3, .stdio = stdio};
    int rv = uv_spawn(im->loop, &r->proc, &o);
    if (rv != 0) {
        /* uv_spawn leaves the handle to be closed even when it fails. */
        snprintf(r->fail, sizeof(r->fail), "start %s: %s", im->helper, uv_strerror(rv));
        uv_timer_start(&r->timer, on_timer, 0, 0);
        return r;
    }
    r->spawned = 1;
    uv_read_start((uv_stream_t *)&r->out, on_alloc, on_out);
    uv_read_start((uv_stream_t *)&r->err, on_alloc, on_err);
    uv_timer_start(&r->timer, on_timer, DEADLINE_MS, 0);
    return r;
}

static void add_waiter(struct run *r, agent_images_cb get_cb, agent_images_run_cb run_cb,
                       void *data)
{
    struct waiter *w = xcalloc(1, sizeof(*w));
    *w = (struct waiter){get_cb, run_cb, data, NULL};
    struct waiter **p = &r->waiters;
    while (*p)
        p = &(*p)->next;
    *p = w;
}

void agent_images_cancel(struct agent_images *im, void *data)
{
    for (struct run *r = im->runs; r; r = r->next) {
        struct waiter **p = &r->waiters;
        while (*p) {
            struct waiter *w = *p;
            if (w->data == data) {
                *p = w->next;
                free(w);
            } else {
                p = &w->next;
            }
        }
    }
}

void agent_images_get(struct agent_images *im, const char *ref, agent_images_cb cb, void *data)
{
    if (im->closing) {
        cb(data, NULL, "shutting down");
        return;
    }
    for (struct run *r = im->runs; r; r = r->next) {
        if (r->key && strcmp(r->key, ref) == 0 && !r->done) {
            add_waiter(r, cb, NULL, data);
            return;
        }
    }
    json_t *hit = cache_get(im, ref);
    if (hit) {
        /* Answered from memory, on the next loop turn: a helper run costs
         * ~15 ms of process start on every container start. */
        struct run *r = xcalloc(1, sizeof(*r));
        r->im = im;
        r->key = xstrdup(ref);
        r->cached = json_incref(hit);
        r->next = im->runs;
        im->runs = r;
        im->live++;
        uv_timer_init(im->loop, &r->timer);
        r->timer.data = r;
        r->handles = 1;
        add_waiter(r, cb, NULL, data);
        uv_timer_start(&r->timer, on_timer, 0, 0);
        return;
    }
    char *argv[8 + 2 * 64] = {NULL, "pull", "--store", im->store_dir};
    size_t n = 4;
    for (size_t i = 0; i < im->n_insecure && i < 64; i++) {
        argv[n++] = "--insecure-registry";
        argv[n++] = im->insecure[i];
    }
    if (im->auth_file) {
        argv[n++] = "--auth-file";
        argv[n++] = im->auth_file;
    }
    argv[n++] = "--";
    argv[n++] = (char *)ref;
    add_waiter(start(im, argv, ref), cb, NULL, data);
}

void agent_images_run(struct agent_images *im, const char *const *argv, agent_images_run_cb cb,
                      void *data)
{
    char *args[MAX_ARGS + 8] = {NULL, (char *)argv[0], "--store", im->store_dir};
    size_t n = 4;
    json_t *keep = NULL, *id;
    size_t i;
    if (im->closing) {
        cb(data, NULL, "shutting down");
        return;
    }
    int keeps = strcmp(argv[0], "rm") == 0 || strcmp(argv[0], "gc") == 0;
    if (keeps || strcmp(argv[0], "load") == 0)
        json_object_clear(im->cache); /* the store changes */
    if (keeps && im->in_use)
        keep = im->in_use(im->in_use_data);
    json_array_foreach(keep, i, id)
    {
        if (json_is_string(id) && n + 2 < MAX_ARGS / 2) {
            args[n++] = "--keep";
            args[n++] = (char *)json_string_value(id);
        }
    }
    args[n++] = "--";
    for (size_t k = 1; argv[k] && n < MAX_ARGS; k++)
        args[n++] = (char *)argv[k];
    add_waiter(start(im, args, NULL), NULL, cb, data);
    json_decref(keep);
}

void agent_images_close(struct agent_images *im)
{
    im->closing = 1;
    while (im->runs) {
        struct run *r = im->runs;
        im->runs = r->next;
        r->done = 1;
        if (r->spawned && !r->exited)
            uv_process_kill(&r->proc, SIGKILL);
        deliver(r, NULL, "shutting down");
        close_handles(r);
    }
    if (im->live == 0)
        images_free(im);
}
