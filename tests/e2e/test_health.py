"""Health checks (issue 6): http, tcp and exec checks run by the node of
each task; health in the task's state (GET /v1/tasks, `shoal service ps`);
an unhealthy task restarted by its restart policy, or failed when the
policy gives up; the start period; checks that hang never stall the node.
One manager and one worker; the tasks run on the worker."""

import json
import os
import time

import pytest

from clustertest import cluster_tasks as tasks
from shoaltest import free_ports, wait_until

CLUSTER = {"managers": 1, "workers": 1}

SLEEP = ["/bin/sleep", "100000"]
PY = "/usr/bin/python3"
ON_WORKER = {"constraints": ["node.role==worker"]}


def svc(name, command=SLEEP, **task):
    return {"name": name, "replicas": 1, "placement": ON_WORKER,
            "task": {"command": command, **task}}


def current(c, service):
    """The one task of the service desired running, or None."""
    ts = [t for t in tasks(c, service) if t["desired_state"] == "running" and t["id"]]
    return ts[0] if len(ts) == 1 else None


def health_is(c, service, status, **more):
    def check():
        t = current(c, service)
        h = t and t.get("health")
        return t if h and t["state"] == "running" and h["status"] == status and \
            all(more_ok(t, k, v) for k, v in more.items()) else None
    return check


def more_ok(t, key, want):
    if key == "restarts":
        return t["restarts"] == want
    return t["health"].get(key) == want


def delete(c, name):
    c.write("DELETE", f"/v1/services/{name}")
    wait_until(lambda: tasks(c, name) == [], 30, what=f"the tasks of {name} gone")


def python_server(port, script):
    """A python3 task serving on 127.0.0.1:port with `script` (its handler)."""
    return [PY, "-c", script, str(port)]


# Answers 200 while the file argv[2] exists, 500 once it is gone.
FLIP_SERVER = """
import http.server, os, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if os.path.exists(sys.argv[2]) else 500
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""

# Accepts connections and never answers them.
HANG_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(128)
held = []
while True:
    held.append(s.accept()[0])
"""


def test_http_check_healthy_then_unhealthy_and_restarted(cluster, tmp_path):
    c = cluster
    port, port2 = free_ports(2)
    # A real web server: healthy, shown so by the API and `service ps`.
    c.write("POST", "/v1/services",
            svc("hc-web", [PY, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                health={"type": "http", "port": port, "path": "/", "interval": "200ms"}))
    t = wait_until(health_is(c, "hc-web", "healthy"), 30, what="hc-web healthy")
    assert t["health"] == {"status": "healthy", "failures": 0, "output": "HTTP 200"}, t
    out = c.any_manager().cli("service", "ps", "hc-web")
    assert out.returncode == 0, out.stderr
    assert "running (healthy)" in out.stdout, out.stdout
    st, _, one = c.any_manager().api("GET", f"/v1/tasks/{t['id']}")
    assert st == 200 and one["health"]["status"] == "healthy", one
    # A restarted shoald checks the task it finds running again.
    w = c.by_id(t["node"])
    line = f"task {t['id']}: healthy: \"HTTP 200\""
    before = w.stderr_text().count(line)
    w.restart()
    c.wait_ready()
    wait_until(lambda: w.stderr_text().count(line) > before, 30,
               what="the adopted task checked again")
    t2 = wait_until(health_is(c, "hc-web", "healthy"), 30, what="hc-web healthy again")
    assert t2["id"] == t["id"] and t2["restarts"] == 0, t2
    delete(c, "hc-web")
    # One that serves, then stops serving (500): unhealthy after `retries`
    # failures, stopped and restarted with the reason; healthy again once
    # it serves again.
    ok = tmp_path / "ok"
    ok.write_text("")
    c.write("POST", "/v1/services",
            svc("hc-flip", python_server(port2, FLIP_SERVER) + [str(ok)],
                restart={"delay": "100ms"},
                health={"type": "http", "port": port2, "path": "/ready?x=1",
                        "interval": "100ms", "retries": 2}))
    wait_until(health_is(c, "hc-flip", "healthy"), 30, what="hc-flip healthy")
    ok.unlink()
    t = wait_until(lambda: (lambda x: x if x and x["restarts"] >= 1 else None)(
        current(c, "hc-flip")), 30, what="hc-flip restarted")
    ok.write_text("")
    t = wait_until(health_is(c, "hc-flip", "healthy"), 30, what="hc-flip healthy again")
    assert t["restarts"] >= 1, t
    log = c.by_id(t["node"]).stderr_text()
    assert "unhealthy: HTTP 500 (2 failures in a row); restarting in" in log, log[-3000:]
    delete(c, "hc-flip")


def test_tcp_unhealthy_restarts_then_fails(cluster):
    c = cluster
    (port,) = free_ports(1)  # nothing listens there
    check = {"type": "tcp", "port": port, "interval": "200ms", "retries": 2}
    reason = f"unhealthy: connect 127.0.0.1:{port}: connection refused (2 failures in a row)"
    c.write("POST", "/v1/services", svc("hc-tcp", restart={"delay": "100ms"}, health=check))
    # Restarted again and again, the reason in its message.
    seen = set()

    def restarted_twice():
        t = current(c, "hc-tcp")
        if t and t["message"].startswith(reason):
            seen.add(t["message"])
        return t if t and t["restarts"] >= 2 else None

    t = wait_until(restarted_twice, 30, what="hc-tcp restarted twice")
    log = c.by_id(t["node"]).stderr_text()
    assert f"{reason}; restarting in 100ms (restart 1)" in log, log[-3000:]
    delete(c, "hc-tcp")
    # The policy gives up: failed, with the reason and its last health.
    c.write("POST", "/v1/services",
            svc("hc-tcp-once", restart={"condition": "on-failure", "delay": "100ms",
                                        "max_attempts": 1}, health=check))
    t = wait_until(lambda: (lambda x: x if x and x["state"] == "failed" else None)(
        current(c, "hc-tcp-once")), 30, what="hc-tcp-once failed")
    assert t["restarts"] == 1 and "unhealthy" in t["message"], t
    assert t["message"].startswith(reason) and "restart limit reached" in t["message"], t
    assert t["exit_code"] == 143, t  # stopped with its stop signal (SIGTERM)
    assert t["health"] == {"status": "unhealthy", "failures": 2,
                           "output": f"connect 127.0.0.1:{port}: connection refused"}, t
    delete(c, "hc-tcp-once")


def test_exec_check_in_task_context(cluster, tmp_path):
    c = cluster
    ready = tmp_path / "ready"
    # Its output names the task and its work dir; an invalid UTF-8 byte in
    # it comes out as "?". A long start period: failures do not count until
    # the first success.
    script = (f'echo "$SHOAL_TASK_ID $(pwd)"; test -f {ready} && exit 0; '
              f"printf 'no \\377file' >&2; exit 3")
    c.write("POST", "/v1/services",
            svc("hc-exec", restart={"delay": "100ms"},
                health={"type": "exec", "command": ["/bin/sh", "-c", script],
                        "interval": "100ms", "retries": 2, "start_period": "1h"}))
    t = wait_until(health_is(c, "hc-exec", "starting"), 30, what="hc-exec starting")
    assert t["health"] == {"status": "starting", "failures": 0, "output": ""}, t
    workdir = os.path.realpath(c.by_id(t["node"]).data_dir / "tasks" / t["id"] / "work")
    w = c.by_id(t["node"])
    # Failing checks in the start period: reported on a change of status
    # only, so seen in the node's log (debug) or not at all; it stays.
    ready.write_text("")
    t = wait_until(health_is(c, "hc-exec", "healthy"), 30, what="hc-exec healthy")
    assert t["health"]["output"] == f"{t['id']} {workdir}", t
    assert t["restarts"] == 0, t
    ready.unlink()
    t = wait_until(lambda: (lambda x: x if x and x["restarts"] == 1 else None)(
        current(c, "hc-exec")), 30, what="hc-exec restarted once unhealthy")
    want = (f"unhealthy: exit 3: {t['id']} {workdir}\nno ?file (2 failures in a row); "
            "restarting in 100ms (restart 1)")
    assert want in w.stderr_text(), w.stderr_text()[-3000:]
    # The new run starts over: starting again (inside its start period).
    wait_until(health_is(c, "hc-exec", "starting", restarts=1), 30,
               what="hc-exec starting again")
    delete(c, "hc-exec")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to change credentials")
def test_exec_check_runs_as_the_tasks_user(cluster):
    c = cluster
    c.write("POST", "/v1/services",
            svc("hc-user", user="nobody", workdir="/",  # the test's dirs are root's only
                health={"type": "exec", "interval": "100ms",
                        "command": ["/bin/sh", "-c", 'echo "$(id -u):$(id -g) $(pwd)"']}))
    t = wait_until(health_is(c, "hc-user", "healthy"), 30, what="hc-user healthy")
    assert t["health"]["output"] == "65534:65534 /", t
    delete(c, "hc-user")


def test_start_period(cluster):
    c = cluster
    p1, p2 = free_ports(2)

    def slow_server(port):
        return ["/bin/sh", "-c",
                f"sleep 1; exec {PY} -m http.server {port} --bind 127.0.0.1"]

    def check(port, start_period):
        return {"type": "http", "port": port, "interval": "200ms", "retries": 1,
                "start_period": start_period}

    # Failing for about 1 s, inside a 3 s start period: stays and turns healthy.
    c.write("POST", "/v1/services",
            svc("hc-slow", slow_server(p1), restart={"delay": "100ms"},
                health=check(p1, "3s")))
    # The same without a start period: its first failure makes it unhealthy.
    c.write("POST", "/v1/services",
            svc("hc-hasty", slow_server(p2), restart={"delay": "100ms"},
                health=check(p2, "0s")))
    t = wait_until(health_is(c, "hc-slow", "healthy"), 30, what="hc-slow healthy")
    assert t["restarts"] == 0, t
    wait_until(lambda: (lambda x: x and x["restarts"] >= 1)(current(c, "hc-hasty")), 30,
               what="hc-hasty restarted")
    assert current(c, "hc-slow")["restarts"] == 0
    delete(c, "hc-slow")
    delete(c, "hc-hasty")


def sleeps_999():
    """Processes running /bin/sleep 999 (the hanging exec check)."""
    n = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if f.read() == b"/bin/sleep\x00999\x00":
                    n += 1
        except OSError:
            pass
    return n


def test_hanging_checks_never_stall_the_node(cluster):
    c = cluster
    (port,) = free_ports(1)
    w = c.workers[0]
    # An http check against a server that accepts and never answers, and an
    # exec check that never ends: each runs to its timeout, twice, then the
    # task is unhealthy and restarted.
    c.write("POST", "/v1/services",
            svc("hc-hang", python_server(port, HANG_SERVER), restart={"delay": "100ms"},
                health={"type": "http", "port": port, "interval": "100ms",
                        "timeout": "5s", "retries": 2}))
    c.write("POST", "/v1/services",
            svc("hc-stuck", restart={"delay": "100ms"},
                health={"type": "exec", "command": ["/bin/sleep", "999"],
                        "interval": "100ms", "timeout": "2s", "retries": 2}))
    wait_until(lambda: sleeps_999() >= 1, 30, what="the exec check under way")
    # Meanwhile the node answers at once, and starts and reports other tasks.
    t0 = time.monotonic()
    c.write("POST", "/v1/services", svc("hc-other"))
    for _ in range(20):
        s = time.monotonic()
        assert w.health(timeout=5), "the worker's API does not answer"
        assert time.monotonic() - s < 1, "the worker's API answered slowly"
        assert sleeps_999() <= 1, "timed-out exec checks left running"
        time.sleep(0.05)
    wait_until(lambda: (lambda x: x and x["state"] == "running")(current(c, "hc-other")), 30,
               what="hc-other running")
    assert time.monotonic() - t0 < 10
    # Each timeout is a failure; the killed check leaves nothing behind.
    for name, reason in (("hc-stuck", "unhealthy: timed out after 2s (2 failures in a row)"),
                         ("hc-hang", "unhealthy: timed out after 5s (2 failures in a row)")):
        def restarted():
            assert sleeps_999() <= 1, "timed-out exec checks left running"
            t = current(c, name)
            return t if t and t["restarts"] >= 1 else None
        t = wait_until(restarted, 30, what=f"{name} restarted")
        assert f"task {t['id']}: starting: {reason}; restarting in" in w.stderr_text(), \
            w.stderr_text()[-3000:]
    delete(c, "hc-stuck")
    wait_until(lambda: sleeps_999() == 0, 10, what="the check killed with its task")
    delete(c, "hc-hang")
    delete(c, "hc-other")


def test_reports_with_bad_health_are_refused(cluster):
    c = cluster
    w = c.workers[0]
    cred = json.loads((w.data_dir / "node.json").read_text())["credential"]
    m = c.any_manager()
    good = {"status": "healthy", "failures": 0, "output": ""}
    for bad, field in [("sick", "tasks.health.status"),
                       ({**good, "status": "sick"}, "tasks.health.status"),
                       ({"failures": 0, "output": ""}, "tasks.health.status"),
                       ({**good, "failures": "1"}, "tasks.health.failures"),
                       ({**good, "failures": -1}, "tasks.health.failures"),
                       ({**good, "output": 5}, "tasks.health.output"),
                       ({**good, "output": "x" * 1025}, "tasks.health.output")]:
        body = {"tasks": [{"id": "t0", "state": "running", "health": bad}]}
        st, _, ans = m.api("POST", f"/v1/nodes/{w.node_id}/tasks", body, token=cred)
        assert st == 400 and ans["field"] == field, (bad, st, ans)
    body = {"tasks": [{"id": "t0", "state": "running", "health": {**good, "output": "x" * 1024}}]}
    st, _, ans = m.api("POST", f"/v1/nodes/{w.node_id}/tasks", body, token=cred)
    assert st == 200 and ans == {"accepted": 0}, ans
