"""Live task stats (issue 5): GET /v1/tasks/{id}/stats and GET
/v1/services/{name}/stats on a manager ask the nodes running the tasks
(POST /v1/node/stats) for cpu, memory and process counts read from the
tasks' cgroups; `shoal service ps --stats` shows them. One manager and one
worker, so that one of the nodes asked is another process."""

import json
import sys

from clustertest import cluster_tasks as tasks
from shoaltest import assert_error, wait_until

CLUSTER = {"managers": 1, "workers": 1}

MIB = 1 << 20
# Holds 50 MiB of touched memory, then sleeps.
HOLD = [sys.executable, "-c",
        "import time\nb = b'x' * (50 << 20)\nprint('holding', flush=True)\ntime.sleep(100000)"]
SPIN = [sys.executable, "-c", "while True: pass"]


def running(c, name, n):
    ts = [t for t in tasks(c, name) if t["desired_state"] == "running"]
    return ts if len(ts) == n and all(t["state"] == "running" for t in ts) else None


def api(c, path):
    return c.any_manager().api("GET", path, token=c.admin_token, timeout=10)


def test_service_and_task_stats(cluster):
    c = cluster
    c.write("POST", "/v1/services", {"name": "st-mem", "replicas": 2, "task": {
        "command": HOLD, "resources": {"limits": {"memory": 256 * MIB}}}})
    ts = wait_until(lambda: running(c, "st-mem", 2), 30, what="2 st-mem tasks running")
    assert len({t["node"] for t in ts}) == 2, ts  # one here, one on the worker

    def full():
        st, _, body = api(c, "/v1/services/st-mem/stats")
        assert st == 200, body
        rows = body["tasks"]
        return body if len(rows) == 2 and all(r["memory"] > 40 * MIB for r in rows) else None

    body = wait_until(full, 30, what="both tasks holding 50 MiB")
    assert body["errors"] == [] and body["missing"] == [], body
    for r in body["tasks"]:
        assert r["service"] == "st-mem" and r["slot"] in (1, 2), r
        assert 40 * MIB < r["memory"] < 200 * MIB, r
        assert r["memory_limit"] == 256 * MIB, r
        assert r["pids"] >= 1, r
        assert r["cpu_ns"] > 0 and r["cpu_percent"] is not None and r["cpu_percent"] >= 0, r
    assert [r["slot"] for r in body["tasks"]] == [1, 2]
    one = body["tasks"][0]
    st, _, row = api(c, f"/v1/tasks/{one['id']}/stats")
    assert st == 200 and row["id"] == one["id"] and row["memory"] > 40 * MIB, row
    assert row["memory_limit"] == 256 * MIB and row["node"] == one["node"], row
    # The CLI: the columns, and "stats" in JSON.
    m = c.any_manager()
    p = m.cli("service", "ps", "st-mem", "--stats")
    assert p.returncode == 0, p
    head = p.stdout.splitlines()[0].split()
    assert head[7:11] == ["CPU%", "MEM", "LIMIT", "PIDS"], p.stdout
    assert "256.0MiB" in p.stdout and "%" in p.stdout, p.stdout
    p = m.cli("service", "ps", "st-mem", "--stats", "-o", "json")
    assert p.returncode == 0, p
    rows = [t for t in json.loads(p.stdout) if t["state"] == "running"]
    assert len(rows) == 2 and all(t["stats"]["memory"] > 40 * MIB for t in rows), rows
    assert all(t["stats"]["pids"] >= 1 for t in rows), rows
    c.write("DELETE", "/v1/services/st-mem")
    wait_until(lambda: not tasks(c, "st-mem"), 30, what="st-mem gone")


def test_cpu_percent(cluster):
    c = cluster
    c.write("POST", "/v1/services", {"name": "st-spin", "replicas": 1, "task": {
        "command": SPIN, "resources": {"limits": {"cpu": 0.5}}}})
    t, = wait_until(lambda: running(c, "st-spin", 1), 30, what="st-spin running")

    def busy():
        st, _, row = api(c, f"/v1/tasks/{t['id']}/stats")
        assert st == 200, row
        return row if row["cpu_percent"] and row["cpu_percent"] > 20 else None

    row = wait_until(busy, 20, what="cpu use seen")
    assert row["cpu_percent"] < 80, row  # limited to half a CPU
    c.write("DELETE", "/v1/services/st-spin")
    wait_until(lambda: not tasks(c, "st-spin"), 30, what="st-spin gone")


def test_stats_errors(cluster):
    c = cluster
    st, _, body = api(c, "/v1/tasks/tnosuchtask/stats")
    assert_error(st, body, 404)
    st, _, body = api(c, "/v1/services/st-none/stats")
    assert_error(st, body, 404)
    # A task that ended: 409, saying so.
    c.write("POST", "/v1/services", {"name": "st-done", "replicas": 1, "task": {
        "command": ["/bin/true"], "restart": {"condition": "none"}}})
    t = wait_until(lambda: [t for t in tasks(c, "st-done") if t["state"] == "complete"], 30,
                   what="st-done complete")[0]
    st, _, body = api(c, f"/v1/tasks/{t['id']}/stats")
    assert_error(st, body, 409)
    assert "not running" in body["error"] and "complete" in body["error"], body
    st, _, body = api(c, "/v1/services/st-done/stats")
    assert st == 200 and body["tasks"] == [], body
    # The node endpoint wants a credential and a list of task ids.
    m = c.any_manager()
    st, _, body = m.api("POST", "/v1/node/stats", {"tasks": []}, token="wrong")
    assert_error(st, body, 401)
    st, _, body = m.api("POST", "/v1/node/stats", {"tasks": "x"}, token=c.admin_token)
    assert_error(st, body, 400, field="tasks")
    st, _, body = m.api("POST", "/v1/node/stats", {"tasks": [t["id"]]}, token=c.admin_token)
    assert st == 200 and body["missing"] == [t["id"]] and body["stats"] == {}, body
    p = m.cli("service", "ps", "st-done", "--stats")
    assert p.returncode == 0 and "CPU%" in p.stdout, p
    c.write("DELETE", "/v1/services/st-done")
