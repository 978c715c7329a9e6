/* Node-local image routes: each runs one command of the node's image helper
 * through the agent's callback and answers with its JSON. An operation under
 * way outlives its caller when the server shuts down: the caller is answered
 * 503 at once and the operation is freed when the command ends. */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "api/images_internal.h"
#include "common/util.h"

struct api__image_op {
    api__image_cb done; /* NULL once answered by api__images_release */
    void *ctx;
    struct api_server *srv;
    enum api_code fail; /* the code of a failure that is not one of the kinds below */
    struct api__image_op *next;
};

static void unlink_op(struct api_server *srv, struct api__image_op *op)
{
    for (struct api__image_op **p = &srv->image_ops; *p; p = &(*p)->next) {
        if (*p == op) {
            *p = op->next;
            return;
        }
    }
}

static void op_done(void *data, const json_t *answer, const char *errmsg)
{
    struct api__image_op *op = data;
    if (op->done) {
        unlink_op(op->srv, op);
        enum api_code code = answer                               ? API_OK
                             : strstr(errmsg, "not in store")     ? API_NOT_FOUND
                             : strstr(errmsg, "in use by a task") ? API_CONFLICT
                             : strstr(errmsg, "shutting down")    ? API_UNAVAILABLE
                                                                  : op->fail;
        op->done(op->ctx, answer, code, errmsg);
    }
    free(op);
}

void api__images_run(struct api_server *srv, const char *const *argv, enum api_code fail,
                     api__image_cb done, void *ctx)
{
    if (srv->closing || !srv->node_images) {
        done(ctx, NULL, API_UNAVAILABLE,
             srv->closing ? "this node is shutting down" : "this node has no image store");
        return;
    }
    struct api__image_op *op = xcalloc(1, sizeof(*op));
    *op = (struct api__image_op){
        .done = done, .ctx = ctx, .srv = srv, .fail = fail, .next = srv->image_ops};
    srv->image_ops = op;
    srv->node_images(srv->node_images_data, argv, op_done, op);
}

void api__images_release(struct api_server *srv)
{
    while (srv->image_ops) {
        struct api__image_op *op = srv->image_ops;
        api__image_cb done = op->done;
        srv->image_ops = op->next;
        op->done = NULL;
        done(op->ctx, NULL, API_UNAVAILABLE, "this node is shutting down");
    }
    api__images_fanouts_release(srv);
}

static void call_done(void *ctx, const json_t *answer, enum api_code code, const char *errmsg)
{
    struct api__call *call = ctx;
    if (answer)
        api__reply_json(call, 200, 0, json_incref((json_t *)answer));
    else
        api__reply_error(call, code, NULL, "%s", errmsg);
}

const char *api__image_load_path(const json_t *body, struct api_err *err)
{
    const char *path = json_string_value(json_object_get(body, "path"));
    if (!path || path[0] != '/' || strlen(path) >= PATH_MAX) {
        api_err_set(err, API_BAD_REQUEST, "path",
                    "must be the absolute path of a tarball on the node");
        return NULL;
    }
    return path;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decodes s in place. Returns 0 or -EINVAL. */
static int url_decode(char *s)
{
    char *out = s;
    for (; *s; s++) {
        if (*s == '%') {
            int hi = hexval(s[1]), lo = hi < 0 ? -1 : hexval(s[2]);
            if (lo < 0 || (hi == 0 && lo == 0))
                return -EINVAL;
            *out++ = (char)(hi * 16 + lo);
            s += 2;
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
    return 0;
}

int api__image_ref_decode(const char *segment, char *ref, size_t size, struct api_err *err)
{
    if (common_strlcpy(ref, segment, size) >= size || url_decode(ref) != 0 || !ref[0] ||
        ref[0] == '-')
        return api_err_set(err, API_BAD_REQUEST, NULL, "\"%.200s\" is not an image ref or id",
                           segment);
    return 0;
}

int api__image_ref_encode(const char *s, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~';
        if (n + (plain ? 1 : 3) >= size)
            return -ENAMETOOLONG;
        if (plain) {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
    return 0;
}

void api__images_serve(struct api__call *call, enum api__image_cmd cmd, const char *segment)
{
    struct api_err err = {0};
    char ref[sizeof(call->arg)];
    json_auto_t *body = NULL;
    const char *argv[3] = {NULL, NULL, NULL};
    enum api_code fail = API_BAD_REQUEST;
    switch (cmd) {
    case API__IMAGE_LS:
    case API__IMAGE_GC:
        argv[0] = cmd == API__IMAGE_LS ? "ls" : "gc";
        fail = API_INTERNAL;
        break;
    case API__IMAGE_LOAD:
        argv[0] = "load";
        body = api__parse_body(call, &err);
        if (!body || !(argv[1] = api__image_load_path(body, &err))) {
            api__reply_err(call, &err);
            return;
        }
        break;
    case API__IMAGE_RM:
        argv[0] = "rm";
        argv[1] = ref;
        if (api__image_ref_decode(segment, ref, sizeof(ref), &err) != 0) {
            api__reply_err(call, &err);
            return;
        }
        break;
    }
    api__images_run(call->srv, argv, fail, call_done, call);
}

void api__node_images_ls(struct api__call *call)
{
    if (api__node_caller_check(call) == 0)
        api__images_serve(call, API__IMAGE_LS, NULL);
}

void api__node_images_gc(struct api__call *call)
{
    if (api__node_caller_check(call) == 0)
        api__images_serve(call, API__IMAGE_GC, NULL);
}

void api__node_images_load(struct api__call *call)
{
    if (api__node_caller_check(call) == 0)
        api__images_serve(call, API__IMAGE_LOAD, NULL);
}

void api__node_images_rm(struct api__call *call)
{
    if (api__node_caller_check(call) == 0)
        api__images_serve(call, API__IMAGE_RM, call->arg);
}
