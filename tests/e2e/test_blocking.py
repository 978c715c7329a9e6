"""Blocking queries: GET ...?index=N&wait=D is held until what is read
changes past N or until D elapses."""

import json
import threading
import time

from shoaltest import MINIMAL, spec, wait_until


class BlockingGet(threading.Thread):
    """One GET in a thread; .result is (status, index header, body, seconds)."""

    def __init__(self, node, path, timeout=120):
        super().__init__(daemon=True)
        self.node, self.path, self.timeout = node, path, timeout
        self.sent = threading.Event()
        self.done = threading.Event()
        self.result = None
        self.error = None

    def run(self):
        conn = self.node.connect(self.timeout)
        try:
            t0 = time.monotonic()
            conn.request("GET", self.path,
                         headers={"Authorization": f"Bearer {self.node.token}"})
            self.sent.set()
            resp = conn.getresponse()
            body = json.loads(resp.read())
            self.result = (resp.status, resp.headers.get("X-Shoal-Index"), body,
                           time.monotonic() - t0)
        except Exception as e:  # pylint: disable=broad-except
            self.error = e
        finally:
            conn.close()
            self.done.set()

    def wait(self, timeout):
        wait_until(self.done.is_set, timeout, what=f"GET {self.path} to return")
        assert self.error is None, f"GET {self.path} failed: {self.error!r}"
        return self.result


def create_web(node):
    st, hdrs, body = node.api("POST", "/v1/services", MINIMAL)
    assert st == 201, body
    _, hdrs = node.get_ok("/v1/services/web")
    return int(hdrs["X-Shoal-Index"])


def test_blocking_get_returns_after_a_change(node):
    idx = create_web(node)
    q = BlockingGet(node, f"/v1/services/web?index={idx}&wait=30s")
    q.start()
    wait_until(q.sent.is_set, 10, what="the blocking request to be sent")
    # Held: no answer within a second, while nothing changes.
    assert not q.done.wait(1.0), f"answered without a change: {q.result}"
    st, _, scaled = node.api("POST", "/v1/services/web/scale", {"replicas": 4})
    assert st == 200, scaled
    t_change = time.monotonic()
    status, hidx, body, _ = q.wait(20)
    # Woken by the change, well before the 30 s wait ran out.
    assert time.monotonic() - t_change < 15
    assert status == 200
    assert int(hidx) == scaled["modify_index"] > idx
    assert body["replicas"] == 4 and body["version"] == 1  # a scale: same template


def test_blocking_get_times_out_with_same_index(node):
    idx = create_web(node)
    before, _ = node.get_ok("/v1/services/web")
    q = BlockingGet(node, f"/v1/services/web?index={idx}&wait=2s")
    q.start()
    status, hidx, body, secs = q.wait(30)
    assert status == 200
    assert int(hidx) == idx
    assert body == before
    assert secs >= 1.5, f"answered after {secs:.2f}s, before the 2s wait"


def test_blocking_get_on_list_wakes_on_create(node):
    create_web(node)
    _, hdrs = node.get_ok("/v1/services")
    idx = int(hdrs["X-Shoal-Index"])
    q = BlockingGet(node, f"/v1/services?index={idx}&wait=30s")
    q.start()
    wait_until(q.sent.is_set, 10, what="the blocking request to be sent")
    assert not q.done.wait(1.0), f"answered without a change: {q.result}"
    st, _, created = node.api("POST", "/v1/services", spec("api"))
    assert st == 201, created
    t_change = time.monotonic()
    status, hidx, body, _ = q.wait(20)
    assert time.monotonic() - t_change < 15
    assert status == 200
    assert int(hidx) == created["modify_index"] > idx
    assert [s["name"] for s in body] == ["api", "web"]


def test_blocking_get_on_delete(node):
    idx = create_web(node)
    q = BlockingGet(node, f"/v1/services?index={idx}&wait=30s")
    q.start()
    wait_until(q.sent.is_set, 10, what="the blocking request to be sent")
    assert not q.done.wait(1.0), f"answered without a change: {q.result}"
    st, _, d = node.api("DELETE", "/v1/services/web")
    assert st == 200, d
    t_change = time.monotonic()
    status, hidx, body, _ = q.wait(20)
    assert time.monotonic() - t_change < 15
    assert status == 200 and body == []
    assert int(hidx) >= d["index"] > idx


def test_old_index_answers_at_once(node):
    idx = create_web(node)
    st, _, _ = node.api("POST", "/v1/services/web/scale", {"replicas": 3})
    assert st == 200
    q = BlockingGet(node, f"/v1/services/web?index={idx}&wait=60s")
    q.start()
    status, hidx, body, secs = q.wait(30)
    assert status == 200 and body["replicas"] == 3
    assert int(hidx) > idx
    assert secs < 20


def test_many_blocked_queries_all_wake(node):
    idx = create_web(node)
    qs = [BlockingGet(node, f"/v1/services/web?index={idx}&wait=30s") for _ in range(20)]
    for q in qs:
        q.start()
    for q in qs:
        wait_until(q.sent.is_set, 10, what="the blocking requests to be sent")
    # While they are held, an ordinary request is answered.
    assert node.get_ok("/v1/services/web")[0]["replicas"] == 2
    st, _, scaled = node.api("POST", "/v1/services/web/scale", {"replicas": 6})
    assert st == 200, scaled
    for q in qs:
        status, hidx, body, _ = q.wait(20)
        assert status == 200 and body["replicas"] == 6
        assert int(hidx) == scaled["modify_index"]


def test_fresh_node_answers_an_index(node):
    """Every successful GET carries X-Shoal-Index, also before any write,
    so that a watcher of the empty list has an index to block on."""
    for path in ("/v1/services", "/v1/cluster"):
        _, hdrs = node.get_ok(path)
        assert hdrs.get("X-Shoal-Index") is not None, f"GET {path}: no X-Shoal-Index"
    _, hdrs = node.get_ok("/v1/services")
    idx = int(hdrs["X-Shoal-Index"])
    q = BlockingGet(node, f"/v1/services?index={idx}&wait=30s")
    q.start()
    wait_until(q.sent.is_set, 10, what="the blocking request to be sent")
    assert not q.done.wait(1.0), f"answered without a change: {q.result}"
    st, _, created = node.api("POST", "/v1/services", spec("first"))
    assert st == 201, created
    status, hidx, body, _ = q.wait(20)
    assert status == 200 and [s["name"] for s in body] == ["first"]
    assert int(hidx) == created["modify_index"]
