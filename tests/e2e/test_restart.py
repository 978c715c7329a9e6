"""State survives a restart: a clean SIGTERM, and kill -9 (every
acknowledged write is on disk)."""

import os
import signal
import stat

from shoaltest import MINIMAL, spec


def make_state(node):
    """Creates, updates, scales and deletes a few services; returns the list."""
    assert node.api("POST", "/v1/services", MINIMAL)[0] == 201
    for i in range(5):
        st, _, body = node.api("POST", "/v1/services", spec(f"svc-{i}", labels={"i": str(i)}))
        assert st == 201, body
    assert node.api("POST", "/v1/services/svc-1/scale", {"replicas": 0})[0] == 200
    assert node.api("PUT", "/v1/services/svc-2", spec("svc-2", replicas=0,
                                                      labels={"v": "2"}))[0] == 200
    assert node.api("DELETE", "/v1/services/svc-3")[0] == 200
    lst = node.services()
    assert [s["name"] for s in lst] == ["svc-0", "svc-1", "svc-2", "svc-4", "web"]
    return lst


def test_token_file_is_private(node):
    p = node.data_dir / "admin.token"
    mode = stat.S_IMODE(os.stat(p).st_mode)
    assert mode == 0o600, oct(mode)
    assert len(node.token) >= 16


def test_restart_after_sigterm_keeps_state(node):
    before = make_state(node)
    _, hdrs = node.get_ok("/v1/services")
    token = node.token
    rc = node.stop()
    assert rc == 0, f"exit code {rc} after SIGTERM"
    node.start()  # --data-dir alone
    assert "--bootstrap" not in node.command()
    assert node.token == token
    after, hdrs2 = node.get_ok("/v1/services")
    assert after == before
    assert hdrs2["X-Shoal-Index"] == hdrs["X-Shoal-Index"]
    # and it still takes writes, at a later index
    st, _, body = node.api("POST", "/v1/services", spec("later"))
    assert st == 201, body
    assert body["create_index"] > max(s["modify_index"] for s in before)


def test_restart_after_kill9_keeps_acknowledged_writes(node):
    before = make_state(node)
    node.kill9()
    node.start()
    after = node.services()
    assert after == before
    st, _, body = node.api("POST", "/v1/services/web/scale", {"replicas": 3})
    assert st == 200, body
    assert body["version"] == 1  # a scale: same template
    assert body["modify_index"] > max(s["modify_index"] for s in before)


def test_two_restarts_in_a_row(node):
    before = make_state(node)
    assert node.restart() == 0
    assert node.services() == before
    st, _, body = node.api("POST", "/v1/services/web/scale", {"replicas": 1})
    assert st == 200, body
    expect = node.services()
    node.kill9()
    node.start()
    assert node.services() == expect
    assert node.restart() == 0
    assert node.services() == expect


def test_sigint_is_a_clean_shutdown(node):
    before = make_state(node)
    rc = node.stop(signal.SIGINT)
    assert rc == 0, f"exit code {rc} after SIGINT"
    node.start()
    assert node.services() == before


def test_debug_log_level(make_node):
    n = make_node(log_level="debug")
    assert n.api("POST", "/v1/services", spec("web"))[0] == 201
    assert "--log-level" in n.command()
    assert n.stop() == 0
    logged = [ln for ln in n.stderr_text().splitlines() if ln and not ln.startswith("==== e2e")]
    assert logged, "nothing logged on stderr"


def test_restart_from_snapshot(node):
    """Enough entries for raft to take snapshots (threshold 1024): a restart
    loads the snapshot plus the log after it, and kill -9 too."""
    assert node.api("POST", "/v1/services", MINIMAL)[0] == 201
    for i in range(1300):
        st, _, body = node.api("POST", "/v1/services/web/scale", {"replicas": i % 50})
        assert st == 200, body
    raft_dir = node.data_dir / "raft"
    assert any(p.name.startswith("snapshot-") for p in raft_dir.iterdir())
    before = node.services()
    assert before[0]["replicas"] == 1299 % 50 and before[0]["version"] == 1
    node.kill9()
    node.start()
    assert node.services() == before
    assert node.stop() == 0
    node.start()
    assert node.services() == before
