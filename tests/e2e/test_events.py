"""The event stream (issue 6): GET /v1/events answers what happened to
services, rollouts, tasks and nodes as newline-delimited JSON, in order,
filtered by service and type prefixes, resumable from an index and blocking
like the other reads; a reader that fell behind the ring is told so by an
events.lost line; `shoal events [-f]` prints them. One manager and one
worker (the worker forwards reads to the manager)."""

import json
import os
import queue
import signal
import subprocess
import threading
import time

from shoaltest import HTTP_TIMEOUT, SANITIZER_MARKS, SHOAL, wait_until

CLUSTER = {"managers": 1, "workers": 1}

SLEEP = ["/bin/sleep", "100000"]
SLEEP2 = ["/bin/sleep", "100001"]


def svc(name, replicas, command=SLEEP, **extra):
    return {"name": name, "replicas": replicas, "task": {"command": command}, **extra}


def get_events(node, query="", timeout=HTTP_TIMEOUT):
    """GET /v1/events?query on node: (the events as a list, X-Shoal-Index)."""
    conn = node.connect(timeout)
    try:
        conn.request("GET", f"/v1/events{'?' + query if query else ''}",
                     headers={"Authorization": f"Bearer {node.token}"})
        resp = conn.getresponse()
        text = resp.read().decode()
        assert resp.status == 200, f"GET /v1/events?{query}: {resp.status} {text}"
        assert text == "" or text.endswith("\n"), text
        return [json.loads(line) for line in text.splitlines()], int(resp.headers["X-Shoal-Index"])
    finally:
        conn.close()


def head(node):
    return get_events(node)[1]


def since(node, index, query=""):
    """The events after index (immediate answer) matching query."""
    return get_events(node, f"index={index}&wait=0s{'&' + query if query else ''}")[0]


def types(evs):
    return [e["type"] for e in evs]


def running(c, name, n):
    st, _, body = c.any_manager().api("GET", f"/v1/tasks?service={name}", token=c.admin_token)
    assert st == 200, body
    live = [t for t in body if t["desired_state"] == "running" and t["id"]]
    return len(live) == n and all(t["state"] == "running" for t in live) and live


def gone(c, name):
    st, _, body = c.any_manager().api("GET", f"/v1/tasks?service={name}", token=c.admin_token)
    return st == 200 and body == []


def test_ndjson_type_and_init_time(cluster):
    """The stream says it is NDJSON (also when a worker forwards it); the
    events of the cluster's initialization carry its real time."""
    c = cluster
    m, w = c.any_manager(), c.workers[0]
    for node in (m, w):
        conn = node.connect(HTTP_TIMEOUT)
        try:
            conn.request("GET", "/v1/events?index=0&wait=0s",
                         headers={"Authorization": f"Bearer {node.token}"})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
            assert resp.getheader("Content-Type") == "application/x-ndjson", resp.getheaders()
        finally:
            conn.close()
    evs = since(m, 0, "type=node.joined")
    first = [e for e in evs if e.get("node_name") == m.name]
    assert first and first[0]["at"] > 1700000000000, evs
    assert abs(first[0]["at"] - time.time() * 1000) < 3600 * 1000, first[0]
    # Other answers stay JSON.
    st, headers, _ = m.api("GET", "/v1/services", token=c.admin_token)
    assert st == 200 and headers.get("Content-Type") == "application/json", headers


def test_service_story_in_order_with_filters_and_resume(cluster):
    c = cluster
    m, w = c.any_manager(), c.workers[0]
    start = head(m)
    c.write("POST", "/v1/services", svc("ev-web", 1, update={"monitor": "100ms"}))
    wait_until(lambda: running(c, "ev-web", 1), 20, what="1 task running")
    c.write("POST", "/v1/services/ev-web/scale", {"replicas": 2})
    wait_until(lambda: running(c, "ev-web", 2), 20, what="2 tasks running")
    c.write("PUT", "/v1/services/ev-web", svc("ev-web", 2, SLEEP2, update={"monitor": "100ms"}))
    wait_until(lambda: "rollout.completed" in types(since(m, start, "service=ev-web")), 60,
               what="the rollout to complete")
    wait_until(lambda: (lambda r: r and all(t["version"] == 2 for t in r))(
        running(c, "ev-web", 2)), 20, what="2 new tasks running")
    c.write("DELETE", "/v1/services/ev-web")
    wait_until(lambda: gone(c, "ev-web"), 20, what="the tasks of ev-web gone")
    evs = wait_until(lambda: (lambda e: "service.deleted" in types(e) and e)(
        since(m, start, "service=ev-web")), 20, what="service.deleted")

    # In order, indexes unique and increasing, all about ev-web.
    idx = [e["index"] for e in evs]
    assert idx == sorted(set(idx)) and idx[0] > start, idx
    assert all(e["service"] == "ev-web" for e in evs), evs
    t = types(evs)
    first = {k: t.index(k) for k in ("service.created", "service.scaled", "service.updated",
                                      "rollout.started", "rollout.completed", "service.deleted")}
    assert first["service.created"] < first["service.scaled"] < first["service.updated"] < \
        first["rollout.started"] < first["rollout.completed"] < first["service.deleted"], t
    assert "rollout.started" not in t[:first["service.updated"]], t  # none at create
    created = evs[first["service.created"]]
    assert created["version"] == 1 and created["replicas"] == 1 and created["at"] > 0, created
    scaled = evs[first["service.scaled"]]
    assert (scaled["from"], scaled["to"]) == (1, 2), scaled
    started = evs[first["rollout.started"]]
    assert (started["kind"], started["from_version"], started["to_version"]) == ("update", 1, 2)
    to_running = [e for e in evs if e["type"] == "task.state" and e["to"] == "running"]
    assert len({e["task"] for e in to_running}) >= 4, to_running  # 2 tasks, then 2 new ones
    assert all(e["node_name"] in (m.name, w.name) and e["node"] for e in to_running)
    assert t.index("task.state") < first["service.scaled"], t
    # The old tasks were stopped by the rollout: their end is there too.
    assert any(e["type"] == "task.state" and e["to"] == "shutdown" for e in evs), t

    # Filters: a type prefix, several as a comma list or repeated.
    roll = since(m, start, "service=ev-web&type=rollout.")
    assert types(roll) == ["rollout.started", "rollout.completed"], types(roll)
    both = since(m, start, "service=ev-web&type=service.,rollout.")
    assert both == since(m, start, "service=ev-web&type=service.&type=rollout.")
    assert [e for e in evs if e["type"].split(".")[0] in ("service", "rollout")] == both
    assert since(m, start, "service=ev-web&type=task.") == \
        [e for e in evs if e["type"].startswith("task.")]
    assert since(m, start, "service=ev-web&type=node.") == []
    assert since(m, start, "service=no-such-service") == []

    # Resuming after an index answers exactly what came after it.
    k = evs[len(evs) // 2]["index"]
    assert since(m, k, "service=ev-web") == [e for e in evs if e["index"] > k]
    got, index = get_events(m, f"service=ev-web&index={evs[-1]['index']}&wait=0s")
    assert got == [] and index >= evs[-1]["index"]
    # Without an index: the last ones (at most 100), newest last.
    last, index = get_events(m, "service=ev-web")
    assert last == evs[-100:] and index >= evs[-1]["index"]

    # A worker forwards the read to a manager: the same events.
    assert since(w, start, "service=ev-web") == evs


def test_blocking_read_parks_and_wakes(cluster):
    c = cluster
    m, w = c.any_manager(), c.workers[0]
    h = head(m)
    # Nothing new: held for the wait, then an empty answer at the head.
    t0 = time.monotonic()
    got, index = get_events(m, f"index={h}&wait=1s&service=ev-none")
    if index == h:  # nothing at all happened meanwhile
        assert got == [] and time.monotonic() - t0 >= 0.9
    # Parked on the manager and on the worker (forwarded): a new event wakes both.
    results = queue.Queue()

    def reader(node):
        try:
            results.put((node.name, get_events(node, f"index={h}&wait=30s&service=ev-wake")))
        except Exception as e:  # pylint: disable=broad-except
            results.put((node.name, e))

    threads = [threading.Thread(target=reader, args=(n,), daemon=True) for n in (m, w)]
    for th in threads:
        th.start()
    time.sleep(0.3)  # let both park (an event before that is answered at once anyway)
    t0 = time.monotonic()
    c.write("POST", "/v1/services", svc("ev-wake", 0))
    try:
        for _ in threads:
            name, res = results.get(timeout=20)
            assert not isinstance(res, Exception), (name, res)
            evs, index = res
            # A wake may come before the create with another event; then
            # nothing of ev-wake is in it, and it is never an error.
            assert all(e["service"] == "ev-wake" for e in evs), evs
            assert index > h
        assert time.monotonic() - t0 < 15
        evs = wait_until(lambda: since(m, h, "service=ev-wake"), 10, what="ev-wake created")
        assert types(evs) == ["service.created"]
    finally:
        for th in threads:
            th.join(timeout=35)
        c.write("DELETE", "/v1/services/ev-wake")


def test_node_events(cluster):
    c = cluster
    m, w = c.any_manager(), c.workers[0]
    start = head(m)
    c.write("PATCH", f"/v1/nodes/{w.node_id}", {"availability": "drain"})
    try:
        c.write("PATCH", f"/v1/nodes/{w.node_id}", {"availability": "drain"})  # no change
    finally:
        c.write("PATCH", f"/v1/nodes/{w.node_id}", {"availability": "active"})
    evs = since(m, start, "type=node.")
    assert types(evs) == ["node.drained", "node.active"], evs
    assert all(e["node"] == w.node_id and e["node_name"] == w.name and e["role"] == "worker"
               for e in evs), evs
    # A worker killed: down; back: up.
    start = head(m)
    w.kill9()
    try:
        wait_until(lambda: "node.down" in types(since(m, start, "type=node.down")), 60,
                   what="node.down")
    finally:
        w.start()
    c.wait_ready()
    evs = wait_until(lambda: (lambda e: "node.up" in types(e) and e)(since(m, start, "type=node.")),
                     30, what="node.up")
    assert types(evs) == ["node.down", "node.up"], evs
    assert evs[0]["node_name"] == w.name
    # Joins are events too (the cluster's start is within the last 100).
    joined, _ = get_events(m, "type=node.joined")
    assert {m.name, w.name} <= {e["node_name"] for e in joined}, joined


def cli_env(node):
    e = dict(os.environ)
    e["SHOAL_ADDR"] = node.addr
    e["SHOAL_TOKEN"] = node.token
    return e


def test_cli_prints_and_follows(cluster):
    c = cluster
    m = c.any_manager()
    start = head(m)
    c.write("POST", "/v1/services", svc("ev-cli", 0))
    c.write("POST", "/v1/services/ev-cli/scale", {"replicas": 0})  # no change: no event
    out = m.cli("events", "--service", "ev-cli")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 1 and lines[0].endswith(" service.created ev-cli: version 1, 0 replicas"), \
        out.stdout
    assert lines[0][:4].isdigit() and lines[0][19] == "Z", lines  # 2026-11-26T01:02:03Z
    out = m.cli("events", "--since-index", str(start), "--type", "service.", "-o", "json")
    assert out.returncode == 0, out.stderr
    evs = [json.loads(line) for line in out.stdout.splitlines()]
    assert [e for e in evs if e["service"] == "ev-cli"] == since(m, start, "service=ev-cli")
    out = m.cli("events", "--service", "ev-cli", "--type", "node.,task.")
    assert out.returncode == 0 and out.stdout == "", out
    bad = m.cli("events", "--since-index", "x")
    assert bad.returncode == 2 and "--since-index" in bad.stderr, bad

    # -f prints new events as they come and exits 0 on SIGINT.
    proc = subprocess.Popen([str(SHOAL), "events", "-f", "--service", "ev-cli2"], env=cli_env(m),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=m.base)
    lines = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout],
                              daemon=True)
    reader.start()
    try:
        c.write("POST", "/v1/services", svc("ev-cli2", 0))
        c.write("POST", "/v1/services/ev-cli2/scale", {"replicas": 0})
        got = []
        deadline = time.monotonic() + 20
        while not any("service.created ev-cli2" in line for line in got):
            assert time.monotonic() < deadline, f"shoal events -f printed {got}"
            try:
                got.append(lines.get(timeout=0.5))
            except queue.Empty:
                assert proc.poll() is None, proc.stderr.read()
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        reader.join(timeout=5)
    assert not any(mark in err for mark in SANITIZER_MARKS), err
    c.write("DELETE", "/v1/services/ev-cli")
    c.write("DELETE", "/v1/services/ev-cli2")


def test_bad_requests(cluster):
    m = cluster.any_manager()
    st, _, _ = m.api("GET", "/v1/events", token=None)
    assert st == 401
    st, _, body = m.api("GET", "/v1/events?index=-1")
    assert st == 400 and body["field"] == "index", body
    st, _, body = m.api("GET", "/v1/events?type=" + ",".join(["a"] * 17))
    assert st == 400 and body["field"] == "type", body
    st, _, body = m.api("GET", "/v1/events?type=" + "x" * 100)
    assert st == 400 and body["field"] == "type", body
    st, _, body = m.api("GET", "/v1/events?service=" + "x" * 200)
    assert st == 400 and body["field"] == "service", body


def test_reader_behind_the_ring_is_told(make_node, monkeypatch):
    """SHOAL_EVENTS_MAX (read once when shoald starts) keeps 20 events."""
    monkeypatch.setenv("SHOAL_EVENTS_MAX", "20")
    n = make_node()
    start = head(n)
    unplaceable = {"constraints": ["node.labels.nowhere==x"]}  # no tasks, no task events
    st, _, body = n.api("POST", "/v1/services", svc("ev-lost", 0, placement=unplaceable))
    assert st == 201, body
    for r in range(1, 31):
        st, _, body = n.api("POST", "/v1/services/ev-lost/scale", {"replicas": r})
        assert st == 200, body
    evs = since(n, start)
    assert evs[0]["type"] == "events.lost", evs[:2]
    floor = evs[0]["index"]
    assert evs[0]["message"] == (f"events after {start} were dropped (the oldest kept is "
                                 f"{floor + 1}): resuming from {floor + 1}"), evs[0]
    kept = evs[1:]
    assert len(kept) == 20 and [e["index"] for e in kept] == list(range(floor + 1, floor + 21))
    assert kept[-1]["type"] == "service.scaled" and kept[-1]["to"] == 30
    # Filters do not hide the marker; from the floor on nothing was lost.
    assert types(since(n, start, "type=node.")) == ["events.lost"]
    assert since(n, floor) == kept
    last, _ = get_events(n)
    assert last == kept
    # The CLI says so on stderr and goes on.
    out = n.cli("events", "--since-index", str(start))
    assert out.returncode == 0, out.stderr
    assert f"events after {start} were dropped" in out.stderr, out.stderr
    assert len(out.stdout.splitlines()) == 20, out.stdout
    assert "service.scaled ev-lost: 29 -> 30 replicas" in out.stdout.splitlines()[-1]
