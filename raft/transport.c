#include "raft/transport.h"

#include <stdlib.h>

#include "common/util.h"

struct connect_req {
    struct raft_uv_connect inner;
    struct raft_uv_connect *user;
};

static struct rs_transport *outer_of(struct raft_uv_transport *outer)
{
    return container_of(outer, struct rs_transport, outer);
}

static struct rs_transport *inner_of(struct raft_uv_transport *inner)
{
    return container_of(inner, struct rs_transport, inner);
}

static int t_init(struct raft_uv_transport *outer, raft_id id, const char *address)
{
    struct rs_transport *t = outer_of(outer);
    int rv = t->inner.init(&t->inner, id, address);
    if (rv != 0)
        common_strlcpy(outer->errmsg, t->inner.errmsg, sizeof(outer->errmsg));
    return rv;
}

static void accepted(struct raft_uv_transport *inner, raft_id id, const char *address,
                     struct uv_stream_s *stream)
{
    struct rs_transport *t = inner_of(inner);
    uv_tcp_nodelay((uv_tcp_t *)stream, 1);
    t->accept_cb(&t->outer, id, address, stream);
}

static int t_listen(struct raft_uv_transport *outer, raft_uv_accept_cb cb)
{
    struct rs_transport *t = outer_of(outer);
    t->accept_cb = cb;
    int rv = t->inner.listen(&t->inner, accepted);
    if (rv != 0)
        common_strlcpy(outer->errmsg, t->inner.errmsg, sizeof(outer->errmsg));
    return rv;
}

static void connected(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
    struct connect_req *c = container_of(req, struct connect_req, inner);
    struct raft_uv_connect *user = c->user;
    free(c);
    if (status == 0)
        uv_tcp_nodelay((uv_tcp_t *)stream, 1);
    user->cb(user, stream, status);
}

static int t_connect(struct raft_uv_transport *outer, struct raft_uv_connect *req, raft_id id,
                     const char *address, raft_uv_connect_cb cb)
{
    struct rs_transport *t = outer_of(outer);
    struct connect_req *c = xcalloc(1, sizeof(*c));
    c->user = req;
    req->cb = cb;
    int rv = t->inner.connect(&t->inner, &c->inner, id, address, connected);
    if (rv != 0) {
        common_strlcpy(outer->errmsg, t->inner.errmsg, sizeof(outer->errmsg));
        free(c);
    }
    return rv;
}

/* Passed on once: see io_closed_once in raft/store.c. */
static void closed(struct raft_uv_transport *inner)
{
    struct rs_transport *t = inner_of(inner);
    raft_uv_transport_close_cb cb = t->close_cb;
    t->close_cb = NULL;
    if (cb)
        cb(&t->outer);
}

static void t_close(struct raft_uv_transport *outer, raft_uv_transport_close_cb cb)
{
    struct rs_transport *t = outer_of(outer);
    t->close_cb = cb;
    t->inner.close(&t->inner, closed);
}

int rs_transport_init(struct rs_transport *t, uv_loop_t *loop, const char *bind)
{
    int rv = raft_uv_tcp_init(&t->inner, loop);
    if (rv != 0)
        return rv;
    if (bind && bind[0])
        raft_uv_tcp_set_bind_address(&t->inner, bind);
    t->outer.init = t_init;
    t->outer.listen = t_listen;
    t->outer.connect = t_connect;
    t->outer.close = t_close;
    return 0;
}

void rs_transport_close(struct rs_transport *t)
{
    raft_uv_tcp_close(&t->inner);
}
