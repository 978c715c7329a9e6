"""Connections: many idle clients do not block others, a slow client is cut
off, keep-alive serves several requests on one connection."""

import json
import select
import socket
import threading
import time

from shoaltest import MINIMAL, RawConn, spec, wait_until


def open_sockets(node, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", node.api_port), timeout=30)
        socks.append(s)
    return socks


def closed_by_peer(sock):
    """True once the server closed sock (EOF or reset; a 408 answer before
    the close is allowed)."""
    r, _, _ = select.select([sock], [], [], 0)
    if not r:
        return False
    try:
        data = sock.recv(65536)
    except (ConnectionResetError, BrokenPipeError):
        return True
    if data == b"":
        return True
    assert data.startswith(b"HTTP/1.1 408") or data.startswith(b"HTTP/1.1 400"), data[:200]
    return False  # the close follows


def test_many_idle_connections_do_not_block(node):
    socks = open_sockets(node, 200)
    try:
        t0 = time.monotonic()
        st, _, body = node.api("POST", "/v1/services", MINIMAL, timeout=20)
        assert st == 201, body
        got, _ = node.get_ok("/v1/services/web")
        assert got["replicas"] == 2
        assert time.monotonic() - t0 < 15
        # half of them now send a partial request; still no blocking
        for s in socks[:100]:
            s.sendall(b"GET /v1/services HTTP/1.1\r\nHost: x\r\n")
        assert node.get_ok("/v1/services")[0][0]["name"] == "web"
    finally:
        for s in socks:
            s.close()
    assert node.api("GET", "/v1/health", token=None)[0] == 200


def test_partial_request_is_closed(node):
    """Headers or a body that do not arrive whole within 10 s get the
    connection closed; meanwhile other requests are served."""
    partial_head = socket.create_connection(("127.0.0.1", node.api_port), timeout=30)
    partial_body = socket.create_connection(("127.0.0.1", node.api_port), timeout=30)
    try:
        t0 = time.monotonic()
        partial_head.sendall(b"GET /v1/services HTTP/1.1\r\nHost: x\r\nAuthoriz")
        partial_body.sendall(
            (f"POST /v1/services HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {node.token}\r\n"
             "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
             '{"name": "slow",').encode())
        # others are served while these hang
        assert node.api("GET", "/v1/health", token=None)[0] == 200
        assert node.api("POST", "/v1/services", spec("fast"))[0] == 201
        wait_until(lambda: closed_by_peer(partial_head), 45, 0.1,
                   what="the server to close the partial-headers connection")
        wait_until(lambda: closed_by_peer(partial_body), 45, 0.1,
                   what="the server to close the partial-body connection")
        elapsed = time.monotonic() - t0
        assert elapsed >= 5, f"closed after {elapsed:.1f}s, long before the 10 s timeout"
    finally:
        partial_head.close()
        partial_body.close()
    assert [s["name"] for s in node.services()] == ["fast"]


def test_keep_alive_two_requests_one_connection(node):
    conn = node.connect()
    auth = {"Authorization": f"Bearer {node.token}"}
    try:
        conn.request("GET", "/v1/health")
        r1 = conn.getresponse()
        assert r1.status == 200
        r1.read()
        sock1 = conn.sock
        assert sock1 is not None, "server closed the connection after the first answer"
        conn.request("POST", "/v1/services", body=b'{"name": "ka", "task": '
                     b'{"command": ["/bin/true"]}}', headers=auth)
        r2 = conn.getresponse()
        assert r2.status == 201, r2.read()
        r2.read()
        assert conn.sock is sock1, "second request needed a new connection"
        conn.request("GET", "/v1/services/ka", headers=auth)
        r3 = conn.getresponse()
        assert r3.status == 200
        assert b'"ka"' in r3.read()
        assert conn.sock is sock1
        # an error answer keeps the connection too
        conn.request("GET", "/v1/services/nope", headers=auth)
        r4 = conn.getresponse()
        assert r4.status == 404
        r4.read()
        conn.request("GET", "/v1/health")
        r5 = conn.getresponse()
        assert r5.status == 200
        r5.read()
    finally:
        conn.close()


def test_pipelined_requests_answered_in_order(node):
    assert node.api("POST", "/v1/services", spec("one"))[0] == 201
    assert node.api("POST", "/v1/services", spec("two"))[0] == 201
    req = ("GET /v1/services/%s HTTP/1.1\r\nHost: x\r\n"
           f"Authorization: Bearer {node.token}\r\n\r\n")
    with RawConn(node) as c:
        c.send(((req % "one") + (req % "nope") + (req % "two")).encode())
        answers = [c.read_response() for _ in range(3)]
    assert [a[0] for a in answers] == [200, 404, 200], answers
    assert json.loads(answers[0][2])["name"] == "one"
    assert json.loads(answers[2][2])["name"] == "two"


def test_concurrent_clients(node):
    """Eight threads with their own connections create and read services."""
    errors = []

    def worker(i):
        try:
            for j in range(10):
                name = f"c{i}-{j}"
                st, _, body = node.api("POST", "/v1/services", spec(name))
                assert st == 201, body
                st, _, body = node.api("GET", f"/v1/services/{name}")
                assert st == 200 and body["name"] == name, body
        except BaseException as e:  # pylint: disable=broad-except
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not any(t.is_alive() for t in ts), "workers hung"
    assert not errors, errors
    names = [s["name"] for s in node.services()]
    assert names == sorted(f"c{i}-{j}" for i in range(8) for j in range(10))
