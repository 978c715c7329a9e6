"""`shoal logs` (POST /v1/logs and every node's POST /v1/node/logs): the
output of a service's tasks gathered from the nodes that run them, a single
task, --tail, --since, -t, -o json, following with -f, and a node that is
down: an error for its tasks within the timeout, never a hang, the other
tasks' lines still printed. Two managers and a worker: three nodes that all
run tasks."""

import json
import os
import queue
import re
import signal
import subprocess
import threading
import time

from clustertest import cluster_tasks as tasks
from shoaltest import SANITIZER_MARKS, SHOAL, wait_until

CLUSTER = {"managers": 2, "workers": 1}

LOOP = ["/bin/sh", "-c",
        "i=0; while true; do echo line $i; echo err $i >&2; i=$((i+1)); sleep 0.2; done"]

PREFIXED = re.compile(r"^(?P<service>[a-z0-9-]+)\.(?P<slot>\d+)\.(?P<task>t[0-9a-f]+)"
                      r"@(?P<node>\S+) \| (?P<line>.*)$")
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"


def running(c, service, n):
    ts = [t for t in tasks(c, service) if t["desired_state"] == "running" and t["id"]]
    return len(ts) == n and all(t["state"] == "running" for t in ts) and ts


def node_name(c, node_id):
    return c.by_id(node_id).name


def ok(p):
    assert p.returncode == 0, f"exit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    return p


def by_task(text):
    """{task id: [lines]} of prefixed output."""
    got = {}
    for line in text.splitlines():
        m = PREFIXED.match(line)
        assert m, f"line without its task prefix: {line!r}"
        got.setdefault(m["task"], []).append(m)
    return got


def start_logger(c, name, lines=5):
    """A service of 3 replicas printing a line on stdout and one on stderr
    every 0.2 s, one task per node; returns its tasks once each printed
    `lines` lines."""
    c.write("POST", "/v1/services", {"name": name, "replicas": 3, "task": {"command": LOOP}})
    ts = wait_until(lambda: running(c, name, 3), 30, what=f"{name}: 3 tasks running")
    assert len({t["node"] for t in ts}) == 3, ts
    m = c.any_manager()

    def printed():
        p = m.cli("logs", name)
        return p.returncode == 0 and all(
            len([x for x in ms if x["line"].startswith("line ")]) >= lines
            for ms in by_task(p.stdout).values()) and len(by_task(p.stdout)) == 3
    wait_until(printed, 30, 0.2, what=f"{name}: {lines} lines from each task")
    return ts


def delete(c, name):
    c.write("DELETE", f"/v1/services/{name}")


def test_service_logs_of_all_tasks_with_prefixes(cluster):
    c = cluster
    ts = start_logger(c, "logs-all")
    m = c.any_manager()
    p = ok(m.cli("logs", "logs-all"))
    out, err = by_task(p.stdout), by_task(p.stderr)
    assert set(out) == {t["id"] for t in ts} == set(err)
    for t in ts:
        for match in out[t["id"]]:
            assert match["service"] == "logs-all" and int(match["slot"]) == t["slot"]
            assert match["node"] == node_name(c, t["node"])
        # Every line of the task from its first, in order, on its stream.
        nums = [int(x["line"].split()[1]) for x in out[t["id"]]]
        assert nums == list(range(len(nums))), nums
        assert all(x["line"].startswith("err ") for x in err[t["id"]])
    # The same through the worker, which forwards to a manager.
    p = ok(c.workers[0].cli("logs", "logs-all"))
    assert set(by_task(p.stdout)) == {t["id"] for t in ts}
    # -o json: the answer, entries sorted by time.
    ans = json.loads(ok(m.cli("logs", "logs-all", "-o", "json")).stdout)
    assert ans["errors"] == [] and set(ans["cursors"]) == {t["id"] for t in ts}
    stamps = [e["ts"] for e in ans["entries"]]
    assert stamps == sorted(stamps) and all(re.fullmatch(STAMP, s) for s in stamps)
    e = ans["entries"][0]
    assert set(e) == {"task", "service", "slot", "node", "ts", "stream", "line"}, e
    delete(c, "logs-all")


def test_tail_task_timestamps_and_since(cluster):
    c = cluster
    ts = start_logger(c, "logs-tail")
    m = c.any_manager()
    # --tail 2: the last two entries of each task (stdout and stderr).
    p = ok(m.cli("logs", "logs-tail", "--tail", "2"))
    counts = {}
    for tid, ms in list(by_task(p.stdout).items()) + list(by_task(p.stderr).items()):
        counts[tid] = counts.get(tid, 0) + len(ms)
    assert counts == {t["id"]: 2 for t in ts}, (p.stdout, p.stderr)
    # One task by id: its lines alone, without prefix; -t puts the time first.
    one = ts[0]
    p = ok(m.cli("logs", one["id"], "-t"))
    lines = p.stdout.splitlines()
    assert len(lines) >= 5 and all(re.fullmatch(STAMP + r" line \d+", x) for x in lines), lines
    assert all(re.fullmatch(STAMP + r" err \d+", x) for x in p.stderr.splitlines())
    nums = [int(x.split()[2]) for x in lines]
    assert nums == list(range(len(nums)))
    # --since a time: the entries at or after it; --since a duration.
    entries = json.loads(ok(m.cli("logs", one["id"], "-o", "json")).stdout)["entries"]
    mid = entries[len(entries) // 2]["ts"]
    later = json.loads(ok(m.cli("logs", one["id"], "--since", mid, "-o", "json")).stdout)
    assert later["entries"] and later["entries"][0]["ts"] == mid
    want = [e["ts"] for e in entries if e["ts"] >= mid]
    assert [e["ts"] for e in later["entries"]][:len(want)] == want
    assert len(ok(m.cli("logs", one["id"], "--since", "1h")).stdout.splitlines()) >= len(lines)
    p = ok(m.cli("logs", one["id"], "--since", "2099-01-01T00:00:00Z"))
    assert p.stdout == ""
    # Errors: unknown names, bad options.
    p = m.cli("logs", "no-such-thing")
    assert p.returncode == 1 and "no service or task named 'no-such-thing'" in p.stderr
    p = m.cli("logs", "logs-tail", "--since", "yesterday")
    assert p.returncode == 2 and "--since" in p.stderr
    p = m.cli("logs", "logs-tail", "--tail", "-3")
    assert p.returncode == 2 and "--tail" in p.stderr
    delete(c, "logs-tail")


def test_endpoints_check_their_callers_and_bodies(cluster):
    c = cluster
    m = c.any_manager()
    w = c.workers[0]
    st, _, body = m.api("POST", "/v1/logs", {"service": "nope"})
    assert st == 404 and body["field"] == "service", body
    st, _, body = m.api("POST", "/v1/logs", {"task": "t000000000000"})
    assert st == 404 and body["field"] == "task", body
    for bad, field in [({"service": "a", "task": "b"}, "task"), ({}, "service"),
                       ({"service": "a", "wait": "5s"}, "wait"),
                       ({"service": "a", "follow": True, "wait": "31s"}, "wait"),
                       ({"service": "a", "since": "monday"}, "since"),
                       ({"service": "a", "tail": -1}, "tail"),
                       ({"service": "a", "cursors": {"t1": "x"}}, "cursors"),
                       ({"service": "a", "color": 1}, "color")]:
        st, _, body = m.api("POST", "/v1/logs", bad)
        assert st == 400 and body["field"] == field, (bad, body)
    st, _, _ = m.api("POST", "/v1/logs", {"service": "nope"}, token="wrong")
    assert st == 401
    # A node's own endpoint: its credential or the admin token, served by
    # the worker itself (not forwarded).
    q = {"tasks": {"t123": None}}
    st, _, body = m.api("POST", "/v1/node/logs", q, token="wrong")
    assert st == 401, body
    st, _, body = w.api("POST", "/v1/node/logs", q, token="wrong")
    assert st == 401, body
    cred = json.loads((w.data_dir / "node.json").read_text())["credential"]
    st, _, body = w.api("POST", "/v1/node/logs", q, token=cred)
    assert st == 200 and body["missing"] == ["t123"] and body["entries"] == [], body
    st, _, body = m.api("POST", "/v1/node/logs", q)
    assert st == 200 and body["missing"] == ["t123"], body
    for bad, field in [({"tasks": {"../x": None}}, "tasks"), ({"tasks": []}, "tasks"),
                       ({"tasks": {}, "wait_ms": 30001}, "wait_ms"),
                       ({"tasks": {f"t{i}": None for i in range(1001)}}, "tasks")]:
        st, _, body = w.api("POST", "/v1/node/logs", bad, token=cred)
        assert st == 400 and body["field"] == field, (bad, body)
    # Waiting with nothing new: held about wait_ms, then the cursors as they were.
    t0 = time.monotonic()
    st, _, body = w.api("POST", "/v1/node/logs", {"tasks": {"t123": None}, "wait_ms": 400},
                        token=cred)
    assert st == 200 and 0.3 < time.monotonic() - t0 < 5, body


class Follower:
    """`shoal logs -f` running, its stdout and stderr lines gathered by
    threads."""

    def __init__(self, node, *args):
        e = dict(os.environ, SHOAL_ADDR=node.addr, SHOAL_TOKEN=node.token)
        self.proc = subprocess.Popen([str(SHOAL), "logs", "-f", *args], env=e,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.queues = {"out": queue.Queue(), "err": queue.Queue()}
        self.got = {"out": [], "err": []}
        self.readers = [threading.Thread(target=self._read, args=(f, self.queues[k]), daemon=True)
                        for k, f in (("out", self.proc.stdout), ("err", self.proc.stderr))]
        for r in self.readers:
            r.start()

    @staticmethod
    def _read(f, q):
        for line in f:
            q.put(line.rstrip("\n"))

    def take(self, which="out"):
        """Every line of stdout (or stderr) so far."""
        while True:
            try:
                self.got[which].append(self.queues[which].get_nowait())
            except queue.Empty:
                return self.got[which]

    def stop(self):
        """SIGINT by pid; returns (exit code, stderr)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=20)
            raise
        for r in self.readers:
            r.join(timeout=20)
        self.proc.stdout.close()
        self.proc.stderr.close()
        err = "\n".join(self.take("err"))
        for mark in SANITIZER_MARKS:
            assert mark not in err, err
        return rc, err


def test_follow_prints_new_lines_until_interrupted(cluster):
    c = cluster
    ts = start_logger(c, "logs-follow")
    f = Follower(c.any_manager(), "logs-follow", "--tail", "1")
    try:
        def newest():
            last = {}
            for line in f.take():
                m = PREFIXED.match(line)
                assert m, line
                last[m["task"]] = max(last.get(m["task"], -1), int(m["line"].split()[1]))
            return last

        first = wait_until(lambda: (lambda n: len(n) == 3 and n)(newest()), 20,
                           what="the tail of every task")
        # New lines keep coming, from every task.
        wait_until(lambda: all(newest().get(t["id"], -1) >= first[t["id"]] + 5 for t in ts),
                   20, what="5 new lines from each task")
        # Each line is printed once.
        lines = f.take()
        assert len(lines) == len(set(lines)), lines
    finally:
        rc, err = f.stop()
    assert rc == 0, err
    delete(c, "logs-follow")


def check_other_tasks_printed(p, ts, w):
    assert p.returncode == 1, (p.stdout, p.stderr)
    printed = by_task(p.stdout)
    assert {t["id"] for t in ts if t["node"] != w.node_id} <= set(printed), p.stdout
    on_w = [t["id"] for t in ts if t["node"] == w.node_id]
    assert on_w[0] not in printed
    assert f"node {w.name}" in p.stderr and on_w[0] in p.stderr, p.stderr


def follow_without(ts, w, m):
    """Following goes on without w: the other tasks' new lines, w's error
    once."""
    others = {t["id"] for t in ts if t["node"] != w.node_id}
    f = Follower(m, "logs-down", "--tail", "1")
    try:
        wait_until(lambda: len({PREFIXED.match(x)["task"] for x in f.take()} & others) == 2
                   and len(f.take()) >= 6, 20, what="lines of the tasks on running nodes")
        wait_until(lambda: any(f"node {w.name}" in x for x in f.take("err")), 20,
                   what=f"the error for {w.name}")
        n = len(f.take())
        wait_until(lambda: len(f.take()) >= n + 4, 20, what="more lines after the error")
    finally:
        rc, err = f.stop()
    assert rc == 0, err
    assert err.count(f"node {w.name}") == 1, err


def test_node_down_is_an_error_for_its_tasks(cluster):
    c = cluster
    ts = start_logger(c, "logs-down")
    w = c.workers[0]
    assert len([t for t in ts if t["node"] == w.node_id]) == 1, ts
    m = c.any_manager()
    # A node that takes connections but does not answer (stopped by SIGSTOP):
    # an error after the 3 s the manager gives it.
    w.send_signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        p = m.cli("logs", "logs-down")
        took = time.monotonic() - t0
        check_other_tasks_printed(p, ts, w)
        assert "did not answer within 3s" in p.stderr, p.stderr
        assert 2.5 < took < 10, took
        follow_without(ts, w, m)
    finally:
        w.send_signal(signal.SIGCONT)
    c.wait_ready()
    # A node that is gone: refused at once.
    w.stop()
    try:
        t0 = time.monotonic()
        p = m.cli("logs", "logs-down")
        assert time.monotonic() - t0 < 10
        check_other_tasks_printed(p, ts, w)
        assert "cannot be reached" in p.stderr, p.stderr
        follow_without(ts, w, m)
    finally:
        w.start()
        c.wait_ready()
    delete(c, "logs-down")


def test_parked_requests_are_answered_when_shoald_stops(cluster):
    """A request that waits for lines is answered at once (not after its
    wait) when the node stops, and the node still exits 0."""
    c = cluster
    c.write("POST", "/v1/services",
            {"name": "logs-quiet", "replicas": 3, "task": {"command": ["/bin/sleep", "100000"]}})
    wait_until(lambda: running(c, "logs-quiet", 3), 30, what="3 quiet tasks running")
    w = c.workers[0]
    m = c.followers()[0]
    cred = json.loads((w.data_dir / "node.json").read_text())["credential"]
    answers, sent = {}, {"node": threading.Event(), "logs": threading.Event()}

    def ask(key, node, path, body, token):
        conn = node.connect(timeout=60)
        try:
            conn.request("POST", path, body=json.dumps(body),
                         headers={"Authorization": f"Bearer {token}",
                                  "Content-Type": "application/json"})
            sent[key].set()
            resp = conn.getresponse()
            answers[key] = (resp.status, json.loads(resp.read()))
        except Exception as e:  # pylint: disable=broad-except
            answers[key] = (None, repr(e))
        finally:
            sent[key].set()
            conn.close()

    threads = [
        threading.Thread(target=ask, args=("node", w, "/v1/node/logs",
                                           {"tasks": {"t1": None}, "wait_ms": 30000}, cred)),
        threading.Thread(target=ask, args=("logs", m, "/v1/logs",
                                           {"service": "logs-quiet", "follow": True,
                                            "wait": "30s"}, c.admin_token)),
    ]
    for t in threads:
        t.start()
    try:
        assert all(e.wait(10) for e in sent.values())
        # A request sent later and answered: the parked ones were read.
        for n in (w, m):
            assert n.api("GET", "/v1/health", token=None)[0] == 200
        assert not answers, answers
        t0 = time.monotonic()
        assert w.stop() == 0
        assert m.stop() == 0
        for t in threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in threads)
        assert time.monotonic() - t0 < 20
        st, body = answers["node"]
        assert st == 200 and body["entries"] == [] and body["missing"] == ["t1"], body
        st, body = answers["logs"]
        assert st == 200 and body["entries"] == [], body
        assert any("stopped" in e["error"] for e in body["errors"]), body
    finally:
        for n in (w, m):
            if not n.running():
                n.start()
        c.wait_ready()
    delete(c, "logs-quiet")
