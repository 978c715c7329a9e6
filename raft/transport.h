/* raft_uv's TCP transport with TCP_NODELAY on every connection. libraft
 * 0.15 leaves Nagle's algorithm on, and its small append and ack messages
 * then wait for delayed ACKs: on 3 loopback managers writes took 12 ms at 16
 * clients and stalled up to 40 ms. The wrapper only adds nodelay. */
#ifndef SHOAL_RAFT_TRANSPORT_H
#define SHOAL_RAFT_TRANSPORT_H

#include <raft.h>
#include <raft/uv.h>

struct rs_transport {
    struct raft_uv_transport outer; /* given to raft_uv_init */
    struct raft_uv_transport inner; /* raft_uv_tcp */
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb close_cb;
};

/* Initializes t on loop; bind may be NULL. Returns 0 or a RAFT_* code. */
int rs_transport_init(struct rs_transport *t, uv_loop_t *loop, const char *bind);

/* Releases what rs_transport_init allocated (after raft_uv is closed). */
void rs_transport_close(struct rs_transport *t);

#endif
