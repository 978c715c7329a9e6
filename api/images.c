/* Node-local image routes: each runs one command of the node's image helper
 * through the agent's callback and answers with its JSON. An operation under
 * way outlives its call when the server shuts down: the call is answered 503
 * at once and the operation is freed when the command ends. */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "api/internal.h"
#include "common/util.h"

struct api__image_op {
    struct api__call *call; /* NULL once answered by api__images_release */
    enum api_code fail;     /* the code of a failure that is not one of the kinds below */
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
    struct api__call *call = op->call;
    if (call) {
        unlink_op(call->srv, op);
        if (answer) {
            api__reply_json(call, 200, 0, json_incref((json_t *)answer));
        } else {
            enum api_code code = strstr(errmsg, "not in store")       ? API_NOT_FOUND
                                 : strstr(errmsg, "in use by a task") ? API_CONFLICT
                                 : strstr(errmsg, "shutting down")    ? API_UNAVAILABLE
                                                                      : op->fail;
            api__reply_error(call, code, NULL, "%s", errmsg);
        }
    }
    free(op);
}

static void run(struct api__call *call, const char *const *argv, enum api_code fail)
{
    struct api_server *srv = call->srv;
    if (srv->closing || !srv->node_images) {
        api__reply_error(call, API_UNAVAILABLE, NULL,
                         srv->closing ? "this node is shutting down"
                                      : "this node has no image store");
        return;
    }
    struct api__image_op *op = xcalloc(1, sizeof(*op));
    op->call = call;
    op->fail = fail;
    op->next = srv->image_ops;
    srv->image_ops = op;
    srv->node_images(srv->node_images_data, argv, op_done, op);
}

void api__images_release(struct api_server *srv)
{
    while (srv->image_ops) {
        struct api__image_op *op = srv->image_ops;
        srv->image_ops = op->next;
        api__reply_error(op->call, API_UNAVAILABLE, NULL, "this node is shutting down");
        op->call = NULL;
    }
}

void api__node_images_ls(struct api__call *call)
{
    static const char *const argv[] = {"ls", NULL};
    run(call, argv, API_INTERNAL);
}

void api__node_images_gc(struct api__call *call)
{
    static const char *const argv[] = {"gc", NULL};
    run(call, argv, API_INTERNAL);
}

void api__node_images_load(struct api__call *call)
{
    struct api_err err = {0};
    json_auto_t *body = api__parse_body(call, &err);
    if (!body) {
        api__reply_err(call, &err);
        return;
    }
    const char *path = json_string_value(json_object_get(body, "path"));
    if (!path || path[0] != '/' || strlen(path) >= PATH_MAX) {
        api__reply_error(call, API_BAD_REQUEST, "path",
                         "must be the absolute path of a tarball on this node");
        return;
    }
    const char *argv[] = {"load", path, NULL};
    run(call, argv, API_BAD_REQUEST);
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

void api__node_images_rm(struct api__call *call)
{
    char ref[sizeof(call->arg)];
    common_strlcpy(ref, call->arg, sizeof(ref));
    if (url_decode(ref) != 0 || !ref[0] || ref[0] == '-') {
        api__reply_error(call, API_BAD_REQUEST, NULL, "\"%.200s\" is not an image ref or id",
                         call->arg);
        return;
    }
    const char *argv[] = {"rm", ref, NULL};
    run(call, argv, API_BAD_REQUEST);
}
