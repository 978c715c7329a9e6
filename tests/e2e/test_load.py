"""Stopping under write load loses no acknowledged write: SIGTERM (a clean
shutdown, exit 0) and kill -9."""

import signal
import threading

from shoaltest import spec, wait_until

THREADS = 4
ACKS_BEFORE_STOP = 1000


class Writers:
    """THREADS threads POSTing distinct services until stopped; .acked holds
    every name answered 201."""

    def __init__(self, node):
        self.node = node
        self.acked = set()
        self.unexpected = []
        self.lock = threading.Lock()
        self.halt = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(t,), daemon=True)
                        for t in range(THREADS)]

    def run(self, t):
        n = 0
        while not self.halt.is_set():
            name = f"load-{t}-{n}"
            n += 1
            try:
                st, _, body = self.node.api("POST", "/v1/services", spec(name), timeout=20)
            except OSError:
                continue  # refused or reset while the daemon goes away
            with self.lock:
                if st == 201:
                    self.acked.add(name)
                elif st != 503:
                    self.unexpected.append((name, st, body))

    def count(self):
        with self.lock:
            return len(self.acked)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.halt.set()
        for t in self.threads:
            t.join(60)
        assert not any(t.is_alive() for t in self.threads), "writer threads hung"


def check_after_restart(node, w):
    assert not w.unexpected, w.unexpected[:5]
    lst = node.services()
    names = {s["name"] for s in lst}
    missing = w.acked - names
    assert not missing, f"{len(missing)} acknowledged services lost: {sorted(missing)[:10]}"
    for s in lst:
        assert s["name"].startswith("load-") and s["version"] == 1, s
    # it still takes writes
    st, _, body = node.api("POST", "/v1/services", spec("after"))
    assert st == 201, body


def test_sigterm_under_write_load_keeps_acknowledged_writes(node):
    with Writers(node) as w:
        wait_until(lambda: w.count() >= ACKS_BEFORE_STOP, 90, 0.05,
                   what=f"{ACKS_BEFORE_STOP} acknowledged creates")
        rc = node.stop(signal.SIGTERM)
    assert rc == 0, f"exit code {rc} after SIGTERM under load"
    node.start()
    check_after_restart(node, w)


def test_kill9_under_write_load_keeps_acknowledged_writes(node):
    with Writers(node) as w:
        wait_until(lambda: w.count() >= ACKS_BEFORE_STOP, 90, 0.05,
                   what=f"{ACKS_BEFORE_STOP} acknowledged creates")
        node.kill9()
    node.start()
    check_after_restart(node, w)
