"""Nodes run their tasks (issue 4): real processes under shoal-monitor, the
restart policy with backoff, failures of tasks and of nodes, drain, a
restart of shoald that leaves tasks running, memory limits, global services
following nodes. One manager and two workers: three nodes that all run
tasks."""

import collections
import os
import signal
import time

from clustertest import cluster_tasks as tasks
from shoaltest import wait_until

CLUSTER = {"managers": 1, "workers": 2}

SLEEP = ["/bin/sleep", "100000"]


def svc(name, replicas, command=SLEEP, placement=None, **task):
    s = {"name": name, "replicas": replicas, "task": {"command": command, **task}}
    if placement:
        s["placement"] = placement
    return s


def wanted(c, service):
    """The tasks desired running (the service's slots)."""
    return [t for t in tasks(c, service) if t["desired_state"] == "running" and t["id"]]


def running(c, service, n):
    ts = wanted(c, service)
    return len(ts) == n and all(t["state"] == "running" for t in ts) and ts


def monitor_state(c, task):
    """What the task's monitor wrote on its node (key=value lines)."""
    node = c.by_id(task["node"])
    path = node.data_dir / "tasks" / task["id"] / "state"
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def pid_of(c, task):
    return int(monitor_state(c, task).get("pid", "0"))


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not alive.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def per_node(ts):
    return collections.Counter(t["node"] for t in ts)


def delete(c, name):
    c.write("DELETE", f"/v1/services/{name}")


def test_replicas_run_as_processes_and_stop_on_delete(cluster):
    c = cluster
    c.write("POST", "/v1/services", svc("sup-web", 6))
    ts = wait_until(lambda: running(c, "sup-web", 6), 20, what="6 tasks running")
    assert sorted(per_node(ts).values()) == [2, 2, 2], ts
    pids = [pid_of(c, t) for t in ts]
    assert all(p > 0 and alive(p) for p in pids), pids
    # The task's environment names it.
    t = ts[0]
    env = open(f"/proc/{pid_of(c, t)}/environ", "rb").read().split(b"\0")
    assert f"SHOAL_TASK_ID={t['id']}".encode() in env
    assert f"SHOAL_SERVICE=sup-web".encode() in env
    c.write("POST", "/v1/services/sup-web/scale", {"replicas": 2})
    wait_until(lambda: running(c, "sup-web", 2), 20, what="scaled to 2")
    stopped = [p for t, p in zip(ts, pids) if t["slot"] > 2]
    wait_until(lambda: not any(alive(p) for p in stopped), 20, what="scaled-down processes gone")
    ended = [t for t in tasks(c, "sup-web") if t["desired_state"] == "shutdown"]
    assert {t["slot"] for t in ended} == {3, 4, 5, 6}
    wait_until(lambda: all(t["state"] == "shutdown" for t in tasks(c, "sup-web")
                           if t["desired_state"] == "shutdown"), 20, what="reported shutdown")
    # service ps shows them.
    out = c.any_manager().cli("service", "ps", "sup-web")
    assert out.returncode == 0, out.stderr
    assert "sup-web.1" in out.stdout and "running" in out.stdout and "shutdown" in out.stdout
    delete(c, "sup-web")
    wait_until(lambda: not any(alive(p) for p in pids), 20, what="every process stopped")
    wait_until(lambda: tasks(c, "sup-web") == [], 20, what="tasks of the deleted service gone")


def test_restart_policy_backoff_and_none(cluster):
    c = cluster
    c.write("POST", "/v1/services",
            svc("sup-flaky", 1, restart={"condition": "on-failure", "delay": "100ms"}))
    t = wait_until(lambda: running(c, "sup-flaky", 1), 20, what="running")[0]
    # Killed again and again: restarted each time, the delay doubling.
    for n, delay in ((1, "100ms"), (2, "200ms"), (3, "400ms")):
        pid = pid_of(c, t)
        os.kill(pid, signal.SIGKILL)

        def restarted():
            cur = wanted(c, "sup-flaky")[0]
            return cur["restarts"] == n and cur["state"] == "running" and \
                pid_of(c, cur) not in (0, pid) and cur

        wait_until(restarted, 20, what=f"restart {n}")
        assert t["id"] == wanted(c, "sup-flaky")[0]["id"]  # the same task, restarted in place
        # The node logged the exit and the delay it waited before restarting.
        log = c.by_id(t["node"]).stderr_text()
        assert f"killed by signal 9 (Killed); restarting in {delay} (restart {n})" in log, log[-2000:]
    # A clean exit with on-failure: complete, not restarted.
    delete(c, "sup-flaky")
    c.write("POST", "/v1/services",
            svc("sup-once", 1, command=["/bin/sh", "-c", "sleep 0.2; exit 0"],
                restart={"condition": "on-failure", "delay": "100ms"}))
    done = wait_until(lambda: [t for t in wanted(c, "sup-once") if t["state"] == "complete"],
                      20, what="complete")
    assert done[0]["exit_code"] == 0 and done[0]["restarts"] == 0
    # condition none: a failure ends the task for good; its slot keeps it.
    c.write("POST", "/v1/services",
            svc("sup-none", 1, restart={"condition": "none"}))
    t = wait_until(lambda: running(c, "sup-none", 1), 20, what="running")[0]
    os.kill(pid_of(c, t), signal.SIGKILL)
    failed = wait_until(lambda: [x for x in wanted(c, "sup-none") if x["state"] == "failed"],
                        20, what="failed")[0]
    assert failed["id"] == t["id"] and failed["exit_code"] == 137, failed
    assert "signal 9" in failed["message"], failed
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:  # nothing replaces it
        ts = tasks(c, "sup-none")
        assert [x["id"] for x in ts] == [t["id"]], ts
        time.sleep(0.1)
    delete(c, "sup-once")
    delete(c, "sup-none")


def test_max_attempts_gives_up(cluster):
    c = cluster
    c.write("POST", "/v1/services",
            svc("sup-crash", 1, command=["/bin/sh", "-c", "echo boom >&2; exit 3"],
                restart={"condition": "any", "delay": "50ms", "max_attempts": 2}))
    t = wait_until(lambda: [x for x in wanted(c, "sup-crash") if x["state"] == "failed"], 20,
                   what="failed after 2 restarts")[0]
    assert t["restarts"] == 2 and t["exit_code"] == 3, t
    assert "restart limit reached" in t["message"], t
    delete(c, "sup-crash")


def test_missing_program_fails_with_reason(cluster):
    c = cluster
    c.write("POST", "/v1/services",
            svc("sup-nope", 1, command=["/no/such/program"], restart={"condition": "none"}))
    t = wait_until(lambda: [x for x in wanted(c, "sup-nope") if x["state"] == "failed"], 20,
                   what="failed")[0]
    assert t["exit_code"] == 127 and "/no/such/program" in t["message"], t
    delete(c, "sup-nope")


def test_restart_shoald_keeps_tasks(cluster):
    c = cluster
    c.write("POST", "/v1/services", svc("sup-keep", 3, restart={"delay": "100ms"}))
    ts = wait_until(lambda: running(c, "sup-keep", 3), 20, what="running")
    w = c.workers[0]
    mine = [t for t in ts if t["node"] == w.node_id]
    assert mine, ts
    pids = {t["id"]: pid_of(c, t) for t in mine}
    w.restart()
    c.wait_ready()
    ts2 = wait_until(lambda: running(c, "sup-keep", 3), 20, what="still running")
    assert {t["id"] for t in ts2} == {t["id"] for t in ts}
    for tid, pid in pids.items():
        assert alive(pid) and pid_of(c, {"id": tid, "node": w.node_id}) == pid
    # Found again: an exit after the restart is seen and acted on.
    one = mine[0]
    os.kill(pids[one["id"]], signal.SIGKILL)
    wait_until(lambda: [x for x in wanted(c, "sup-keep")
                        if x["id"] == one["id"] and x["restarts"] == 1 and
                        x["state"] == "running"], 20, what="restarted after shoald's restart")
    # An exit while shoald is away (killed) is not lost either.
    cur = next(x for x in wanted(c, "sup-keep") if x["id"] == one["id"])
    w.kill9()
    os.kill(pid_of(c, cur), signal.SIGKILL)
    w.start()
    c.wait_ready()
    wait_until(lambda: [x for x in wanted(c, "sup-keep")
                        if x["id"] == one["id"] and x["restarts"] == 2 and x["state"] == "running"],
               20, what="the exit seen after the restart, and acted on")
    delete(c, "sup-keep")


def test_node_down_tasks_move_and_return_cleanly(cluster):
    c = cluster
    c.write("POST", "/v1/services", svc("sup-move", 6))
    ts = wait_until(lambda: running(c, "sup-move", 6), 20, what="running")
    w = c.workers[1]
    lost = [t for t in ts if t["node"] == w.node_id]
    lost_pids = [pid_of(c, t) for t in lost]
    assert lost
    w.kill9()
    # Replaced on the other nodes; the lost ones orphaned.
    moved = wait_until(lambda: (lambda r: r and all(t["node"] != w.node_id for t in r) and r)(
        running(c, "sup-move", 6)), 30, what="replaced elsewhere")
    assert len(moved) == 6
    old = {t["id"]: t for t in tasks(c, "sup-move")}
    assert all(old[t["id"]]["state"] == "orphaned" for t in lost), [old[t["id"]] for t in lost]
    # Its processes still run (shoald is gone, not the node) ...
    assert all(alive(p) for p in lost_pids)
    w.start()
    c.wait_ready()
    # ... until it comes back and stops what was replaced.
    wait_until(lambda: not any(alive(p) for p in lost_pids), 30, what="replaced tasks stopped")
    assert len(running(c, "sup-move", 6)) == 6
    wait_until(lambda: all(x["state"] == "shutdown" for x in tasks(c, "sup-move")
                           if x["id"] in {t["id"] for t in lost}), 20,
               what="returning node reports them shut down")
    delete(c, "sup-move")


def test_drain_moves_tasks_and_active_takes_new_ones(cluster):
    c = cluster
    c.write("POST", "/v1/services", svc("sup-drain", 3))
    wait_until(lambda: running(c, "sup-drain", 3), 20, what="running")
    w = c.workers[0]
    c.write("PATCH", f"/v1/nodes/{w.node_id}", {"availability": "drain"})
    try:
        ts = wait_until(lambda: (lambda r: r and all(t["node"] != w.node_id for t in r) and r)(
            running(c, "sup-drain", 3)), 20, what="moved off the drained node")
        assert len(ts) == 3
        on_w = [t for t in tasks(c, "sup-drain") if t["node"] == w.node_id]
        wait_until(lambda: all(alive(pid_of(c, t)) is False for t in on_w), 20,
                   what="drained node's processes stopped")
    finally:
        c.write("PATCH", f"/v1/nodes/{w.node_id}", {"availability": "active"})
    c.write("POST", "/v1/services/sup-drain/scale", {"replicas": 6})
    ts = wait_until(lambda: running(c, "sup-drain", 6), 20, what="scaled to 6")
    assert per_node(ts)[w.node_id] >= 1, ts
    delete(c, "sup-drain")


def test_memory_limit_kills_and_reports(cluster):
    c = cluster
    hog = ["/usr/bin/python3", "-c", "x = bytearray(300 * 1024 * 1024); import time; "
           "time.sleep(100)"]
    c.write("POST", "/v1/services",
            svc("sup-hog", 1, command=hog, restart={"condition": "none"},
                resources={"limits": {"memory": "48M"}}))
    t = wait_until(lambda: [x for x in wanted(c, "sup-hog") if x["state"] == "failed"], 30,
                   what="killed by the memory limit")[0]
    assert t["exit_code"] == 137 and "out of memory" in t["message"], t
    delete(c, "sup-hog")


def test_label_constraint_places_only_on_matching_nodes(cluster):
    c = cluster
    w = c.workers[1]
    c.write("PATCH", f"/v1/nodes/{w.node_id}", {"labels": {"disk": "ssd"}})
    try:
        c.write("POST", "/v1/services",
                svc("sup-ssd", 3, placement={"constraints": ["node.labels.disk==ssd"]}))
        ts = wait_until(lambda: running(c, "sup-ssd", 3), 20, what="running")
        assert {t["node"] for t in ts} == {w.node_id}
        delete(c, "sup-ssd")
    finally:
        c.write("PATCH", f"/v1/nodes/{w.node_id}", {"labels": {}})


def test_node_ps(cluster):
    c = cluster
    c.write("POST", "/v1/services", svc("sup-ps", 3))
    wait_until(lambda: running(c, "sup-ps", 3), 20, what="running")
    w = c.workers[0]
    out = c.any_manager().cli("node", "ps", w.name, "-o", "json")
    assert out.returncode == 0, out.stderr
    import json
    listed = json.loads(out.stdout)
    assert listed and all(t["node"] == w.node_id for t in listed), listed
    bad = c.any_manager().cli("node", "ps", "no-such-node")
    assert bad.returncode == 1 and "no-such-node" in bad.stderr
    bad = c.any_manager().cli("service", "ps", "no-such-service")
    assert bad.returncode == 1 and "no-such-service" in bad.stderr
    delete(c, "sup-ps")


def test_global_service_follows_joining_node(make_cluster):
    c = make_cluster(managers=1, workers=1)
    c.write("POST", "/v1/services", {"name": "sup-agent", "mode": "global",
                                     "task": {"command": SLEEP}})
    wait_until(lambda: running(c, "sup-agent", 2), 20, what="one per node")
    w = c.add("worker")
    ts = wait_until(lambda: running(c, "sup-agent", 3), 20, what="on the new node too")
    assert w.node_id in {t["node"] for t in ts}
    c.write("PATCH", f"/v1/nodes/{w.node_id}", {"availability": "drain"})
    wait_until(lambda: running(c, "sup-agent", 2), 20, what="gone from the drained node")
    delete(c, "sup-agent")


def test_rejected_tasks_replaced_with_backoff(cluster):
    """A node that cannot prepare a task (here: no such user) rejects it;
    the reconciler places it again only after the restart delay, doubling
    with every rejection of the slot: never a hot loop."""
    c = cluster
    c.write("POST", "/v1/services",
            svc("sup-reject", 1, user="no-such-user-shoal", restart={"delay": "200ms"}))

    def rejected():
        ts = sorted((t for t in tasks(c, "sup-reject") if t["state"] == "rejected"),
                    key=lambda t: t["created_ms"])
        return len(ts) >= 3 and ts

    ts = wait_until(rejected, 30, what="three rejections")
    assert all("no such user" in t["message"] for t in ts), ts
    # Each replacement came no sooner than the doubled delay after the
    # rejection before it (lower bounds only: never faster).
    for before, after, delay in ((ts[0], ts[1], 200), (ts[1], ts[2], 400)):
        assert after["created_ms"] - before["updated_ms"] >= delay, (before, after)
    delete(c, "sup-reject")
