"""Helpers shared by the Python benchmarks: shoald processes in a temporary
dir (argv[1] is the build dir), API calls, waits, RSS. kill_tasks_under is
the e2e tests' clean-up (tests/e2e/shoaltest.py): what nodes left under a
dir (monitors, tasks, containers, mounts, veths, cgroups) goes."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from shoaltest import kill_tasks_under  # noqa: E402,F401  pylint: disable=wrong-import-position

B = sys.argv[1]
TMP = tempfile.mkdtemp(prefix="shoal-bench-cluster.")
PROCS = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def call(api, method, path, token, body=None, timeout=5):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{api}{path}", data=data, method=method,
                                 headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except OSError:
        return 0, None


def start(name, args):
    d = os.path.join(TMP, name)
    os.makedirs(d, exist_ok=True)
    log = open(os.path.join(d, "log"), "w")
    p = subprocess.Popen([f"{B}/shoald", "--data-dir", os.path.join(d, "data"),
                          "--log-level", os.environ.get("BENCH_LOG_LEVEL", "warn")] + args, stderr=log, stdin=subprocess.DEVNULL)
    PROCS.append(p)
    return p


def wait(pred, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def stop_all():
    for p in PROCS:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in PROCS:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    PROCS.clear()


