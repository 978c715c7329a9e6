"""Helpers for Shoal's end-to-end tests, in the style of FRR's topotests.

A `Node` is one real `shoald` process with its own data dir and ports. Tests
wait with deadlines (`wait_until`), never with fixed sleeps. The fixtures that
start nodes and check them in teardown are in conftest.py.

Binaries come from $SHOAL_BUILD (default: the repo's build/). Set
SHOAL_E2E_LOG_LEVEL=debug to start the daemons with --log-level debug.
"""

import http.client
import json
import os
import re
import resource
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("SHOAL_BUILD") or REPO / "build").resolve()
SHOALD = BUILD / "shoald"
SHOAL = BUILD / "shoal"

START_TIMEOUT = 30.0  # until /v1/health says leader: true
STOP_TIMEOUT = 15.0  # SIGTERM to exit
HTTP_TIMEOUT = 30.0  # one API request
CLI_TIMEOUT = 30.0  # one CLI run

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")

MINIMAL = {"name": "web", "replicas": 2, "task": {"command": ["/bin/sleep", "1000"]}}

# SHOAL_E2E_CORE=1: let shoald dump core (into its node dir) on a crash.
CORES = os.environ.get("SHOAL_E2E_CORE") == "1"

# Every process a Node started, so the session can stop it even if a
# fixture never got to its teardown.
STARTED = []


def _allow_core():
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def spec(name, replicas=0, **extra):
    """A small valid spec. replicas defaults to 0 so that no task runs."""
    s = {"name": name, "replicas": replicas, "task": {"command": ["/bin/sleep", "1000"]}}
    s.update(extra)
    return s


def wait_until(pred, timeout=20.0, interval=0.05, what=None):
    """Calls pred() until it returns a truthy value, which is returned.

    Fails the test after `timeout` seconds, naming `what` (or pred)."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
            last_exc = None
        except Exception as e:  # pylint: disable=broad-except
            last_exc = e
        if time.monotonic() >= deadline:
            desc = what or getattr(pred, "__name__", repr(pred))
            msg = f"timed out after {timeout:.1f}s waiting for {desc}"
            if last_exc is not None:
                msg += f" (last error: {last_exc!r})"
            pytest.fail(msg)
        time.sleep(interval)


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _decode(data, headers):
    text = data.decode("utf-8", errors="replace")
    ctype = headers.get("Content-Type", "") if headers is not None else ""
    if "json" in ctype or text[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


class Node:
    """One shoald process: data dir, ports, log files, API and CLI access."""

    _DEFAULT = object()

    def __init__(self, base_dir, name="n1", log_level=None):
        self.name = name
        self.base = Path(base_dir) / name
        self.data_dir = self.base / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = self.base / "shoald.stderr"
        self.stdout_path = self.base / "shoald.stdout"
        self.raft_port, self.api_port = free_ports(2)
        self.log_level = log_level or os.environ.get("SHOAL_E2E_LOG_LEVEL")
        self.proc = None
        self.bootstrapped = False
        self.stops = []  # (signal, returncode) of every stop, for teardown
        self.unexpected_exits = []  # return codes of exits nobody asked for
        self.allow_exit = False  # True: exiting by itself is not a problem
        self._token = None
        self.extra_args = []  # more shoald options, given on every start

    # ---- process control -------------------------------------------------

    @property
    def addr(self):
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def command(self):
        cmd = [str(SHOALD), "--data-dir", str(self.data_dir)]
        if not self.bootstrapped:
            cmd += [
                "--bootstrap",
                "--listen", f"127.0.0.1:{self.raft_port}",
                "--api", f"127.0.0.1:{self.api_port}",
            ]
        if self.log_level:
            cmd += ["--log-level", self.log_level]
        return cmd + self.net_args() + list(self.extra_args)

    @property
    def bridge(self):
        """This node's container bridge: nodes share the host's network, so
        each has its own bridge, subnet and nft table (made only when a
        container with a bridge network starts)."""
        return f"sb{self.api_port}"

    def net_args(self):
        p = self.api_port
        return ["--bridge", self.bridge,
                "--bridge-subnet", f"10.{100 + (p >> 8) % 150}.{p & 255}.0/24"]

    def start(self, wait_leader=True):
        """Starts shoald (bootstrapping on first start, then with --data-dir
        alone) and waits until it serves and is leader."""
        assert not self.running(), "node already running"
        self._note_exit()
        cmd = self.command()
        with open(self.stderr_path, "ab") as err, open(self.stdout_path, "ab") as out:
            err.write(f"\n==== e2e: starting {' '.join(cmd)}\n".encode())
            err.flush()
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=self.base,
                start_new_session=True, preexec_fn=_allow_core if CORES else None)
        STARTED.append(self.proc)
        self.bootstrapped = True
        if wait_leader:
            self.wait_leader()
        return self

    def wait_leader(self, timeout=START_TIMEOUT):
        def leader():
            if not self.running():
                pytest.fail(f"shoald exited with {self.proc.returncode} during start;"
                            f" stderr:\n{self.stderr_tail()}")
            st, _, body = self.api("GET", "/v1/health", token=None, timeout=5)
            return st == 200 and isinstance(body, dict) and body.get("leader") is True
        wait_until(leader, timeout, 0.05, what=f"{self.name} to serve as leader")
        self._token = None

    def _note_exit(self):
        """Records an exit of the current process that no stop() asked for."""
        if self.proc is not None and self.proc.poll() is not None and not getattr(
                self.proc, "_e2e_stopped", False):
            self.proc._e2e_stopped = True
            if not self.allow_exit:
                self.unexpected_exits.append(self.proc.returncode)

    def send_signal(self, sig):
        """Sends sig to shoald's pid (never by name)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        """Waits for the process to exit; returns its code or None on timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Sends sig and waits up to timeout; escalates to SIGKILL after it.
        Returns the exit code (None when it had to be killed)."""
        if self.proc is None:
            return None
        self._note_exit()
        if getattr(self.proc, "_e2e_stopped", False):
            return self.proc.returncode
        self.proc._e2e_stopped = True
        self.send_signal(sig)
        rc = self.wait_exit(timeout)
        if rc is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.stops.append((sig, rc))
        return rc

    def kill9(self):
        """SIGKILL; the test takes responsibility for the exit code."""
        return self.stop(signal.SIGKILL, timeout=30)

    def restart(self, sig=signal.SIGTERM):
        """Stops with sig, starts again with --data-dir alone; returns the
        exit code of the stop."""
        rc = self.stop(sig)
        self.start()
        return rc

    # ---- access ----------------------------------------------------------

    @property
    def token(self):
        if self._token is None:
            self._token = (self.data_dir / "admin.token").read_text().strip()
        return self._token

    def connect(self, timeout=HTTP_TIMEOUT):
        return http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=timeout)

    def api(self, method, path, body=None, token=_DEFAULT, raw_body=None, headers=None,
            timeout=HTTP_TIMEOUT):
        """One request on a fresh connection. Returns (status, headers, body)
        where body is parsed JSON when it is JSON, else text."""
        hdrs = {}
        if token is Node._DEFAULT:
            token = self.token
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        data = raw_body
        if body is not None:
            data = json.dumps(body).encode()
        if isinstance(data, str):
            data = data.encode()
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        conn = self.connect(timeout)
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            return resp.status, resp.headers, _decode(payload, resp.headers)
        finally:
            conn.close()

    def get_ok(self, path):
        st, hdrs, body = self.api("GET", path)
        assert st == 200, f"GET {path}: {st} {body}"
        return body, hdrs

    def services(self):
        return self.get_ok("/v1/services")[0]

    def cli(self, *args, env=None, auth=True, timeout=CLI_TIMEOUT, input=None):
        """Runs build/shoal with SHOAL_ADDR/SHOAL_TOKEN set (auth=False: not
        set). Returns the CompletedProcess (text mode); fails the test when
        the CLI crashed or printed a sanitizer report."""
        assert SHOAL.exists(), f"{SHOAL} does not exist: build it first (make)"
        e = dict(os.environ)
        e.pop("SHOAL_ADDR", None)
        e.pop("SHOAL_TOKEN", None)
        if auth:
            e["SHOAL_ADDR"] = self.addr
            e["SHOAL_TOKEN"] = self.token
        e.update(env or {})
        p = subprocess.run([str(SHOAL), *args], env=e, capture_output=True, text=True,
                           timeout=timeout, input=input,
                           stdin=None if input else subprocess.DEVNULL, cwd=self.base)
        for mark in SANITIZER_MARKS:
            assert mark not in p.stderr, f"shoal {' '.join(args)}: sanitizer report:\n{p.stderr}"
        assert p.returncode >= 0, f"shoal {' '.join(args)} died of signal {-p.returncode}"
        return p

    # ---- diagnostics -----------------------------------------------------

    def stderr_text(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stderr_tail(self, n=60):
        return "\n".join(self.stderr_text().splitlines()[-n:])

    def teardown_problems(self):
        """Stops the node and returns a list of what went wrong."""
        problems = []
        if self.proc is not None:
            self._note_exit()
            for rc in self.unexpected_exits:
                problems.append(f"{self.name}: shoald exited by itself with code {rc}")
            self.stop()
            for sig, rc in self.stops:
                if sig in (signal.SIGTERM, signal.SIGINT) and rc != 0:
                    problems.append(f"{self.name}: exit code {rc} after {signal.Signals(sig).name}"
                                    " (None: still running after the timeout)")
        kill_tasks_under(self.base)
        remove_bridge(self.bridge)
        text = self.stderr_text()
        for mark in SANITIZER_MARKS:
            if mark in text:
                problems.append(f"{self.name}: sanitizer report ({mark!r}) in {self.stderr_path}")
        return problems


def _proc_has(pid, name, needle):
    try:
        return needle in (Path("/proc") / str(pid) / name).read_bytes()
    except OSError:
        return False


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def remove_bridge(bridge):
    """Removes a node's container bridge and its nft table (shoald leaves
    them, as a daemon should; a test removes what its nodes made)."""
    if Path(f"/sys/class/net/{bridge}").exists():
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
    subprocess.run(["nft", "delete", "table", "ip", f"shoal_{bridge}"], capture_output=True,
                   check=False)


CGROUP_ROOT = Path("/sys/fs/cgroup")
CLEANUP_TIMEOUT = 10.0  # per step: processes to die, runc to delete, mounts to go


def _run_quiet(cmd, timeout=CLEANUP_TIMEOUT):
    """Runs cmd, ignoring its output and failure; True when it exited 0."""
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=timeout,
                              check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _data_dirs(base):
    """The node data dirs at most 3 levels below base (base itself
    included): those holding tasks/, runc/ or net/tasks/."""
    dirs, level = [], [base]
    for depth in range(4):
        dirs += [d for d in level if any((d / sub).is_dir()
                                         for sub in ("tasks", "runc", "net/tasks"))]
        if depth < 3:
            level = [c for d in level for c in _subdirs(d)]
    return dirs


def _subdirs(d):
    try:
        return [c for c in d.iterdir() if c.is_dir() and not c.is_symlink()]
    except OSError:
        return []


def _task_ids(data_dirs):
    """Every task id a node left a trace of: task dirs, runc containers,
    network allocations."""
    ids = set()
    for data in data_dirs:
        ids.update(p.name for p in (data / "tasks").glob("*") if p.is_dir())
        ids.update(p.name for p in (data / "runc").glob("*") if p.is_dir())
        ids.update(p.stem for p in (data / "net" / "tasks").glob("*.json"))
    return sorted(i for i in ids if i and not i.startswith(".") and "/" not in i)


def _task_cgroups(task_id):
    """The task's cgroups on every v1 controller and on v2 (unified)."""
    return [g for g in list(CGROUP_ROOT.glob(f"*/shoal/{task_id}")) +
            list(CGROUP_ROOT.glob(f"shoal/{task_id}")) if g.is_dir()]


def _cgroup_pids(groups):
    pids = set()
    for g in groups:
        for procs in [g / "cgroup.procs"] + list(g.glob("**/cgroup.procs")):
            try:
                pids.update(int(x) for x in procs.read_text().split())
            except (OSError, ValueError):
                pass
    return pids


def _kill_cgroups(task_ids):
    """SIGKILLs (by pid) every process in the tasks' cgroups, thawing a frozen
    group first, until they are empty or CLEANUP_TIMEOUT passed."""
    groups = [g for t in task_ids for g in _task_cgroups(t)]
    for g in groups:
        if (g / "freezer.state").exists():
            try:
                (g / "freezer.state").write_text("THAWED")
            except OSError:
                pass
    deadline = time.monotonic() + CLEANUP_TIMEOUT
    while time.monotonic() < deadline:
        pids = _cgroup_pids(groups) - {os.getpid()}
        if not pids:
            return
        for pid in pids:
            _kill(pid)
        time.sleep(0.02)


def _runc_delete(data_dirs):
    """`runc --root DATA/runc delete --force ID` for every container left."""
    for data in data_dirs:
        root = data / "runc"
        for c in sorted(root.glob("*")):
            if c.is_dir():
                _run_quiet(["runc", "--root", str(root), "delete", "--force", c.name])


def _mounts_under(base):
    """Mount points at or below base, from /proc/self/mountinfo (octal
    escapes decoded), deepest first."""
    points = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            fields = line.split(" ")
            if len(fields) < 5:
                continue
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            if point == base or point.startswith(base + "/"):
                points.append(point)
    return sorted(points, key=lambda p: (p.count("/"), len(p)), reverse=True)


def _unmount_under(base):
    """Unmounts everything mounted under base (stacked mounts included),
    deepest first; `umount -l` when a plain umount fails."""
    deadline = time.monotonic() + CLEANUP_TIMEOUT
    while time.monotonic() < deadline:
        points = _mounts_under(base)
        if not points:
            return
        for point in points:
            if not _run_quiet(["umount", point]):
                _run_quiet(["umount", "-l", point])


def _delete_veths(data_dirs):
    """Deletes the host veths the nodes' network allocations name."""
    for data in data_dirs:
        for alloc in (data / "net" / "tasks").glob("*.json"):
            try:
                veth = json.loads(alloc.read_text()).get("veth")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(veth, str) and re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", veth) and \
                    Path("/sys/class/net", veth).exists():
                _run_quiet(["ip", "link", "del", veth])


def _delete_bridges(bridges):
    """Deletes each (bridge, nft table) pair the caller made (None: skip)."""
    for bridge, table in bridges:
        if bridge and Path("/sys/class/net", bridge, "bridge").exists():
            _run_quiet(["ip", "link", "del", bridge])
        if table and _run_quiet(["nft", "list", "table", "ip", table]):
            _run_quiet(["nft", "delete", "table", "ip", table])


def _remove_cgroups(task_ids):
    """Removes the tasks' cgroups (children first), retrying while the last
    killed processes are still leaving them."""
    for task_id in task_ids:
        for group in _task_cgroups(task_id):
            for sub in sorted((p for p in group.glob("**/*") if p.is_dir()),
                              key=lambda p: len(p.parts), reverse=True) + [group]:
                deadline = time.monotonic() + 2
                while time.monotonic() < deadline:
                    try:
                        sub.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.02)


def _kill_processes_under(base, task_ids):
    """Kills (by pid) the monitors (their command line names the dir), the
    process tasks (their environment holds SHOAL_TASK_ID) and processes
    whose cwd is inside base."""
    for state in Path(base).glob("**/tasks/*/state"):
        task_id = state.parent.name
        values = dict(line.split("=", 1) for line in state.read_text(errors="replace").splitlines()
                      if "=" in line)
        pid = int(values.get("pid", "0") or 0)
        if pid > 1 and _proc_has(pid, "environ", f"SHOAL_TASK_ID={task_id}".encode()):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            _kill(pid)
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        pid = int(d.name)
        if _proc_has(pid, "cmdline", b"--dir\0" + base.encode() + b"/"):
            _kill(pid)
            continue
        if any(_proc_has(pid, "environ", f"SHOAL_TASK_ID={t}".encode()) for t in task_ids):
            _kill(pid)
            continue
        try:
            cwd = os.readlink(d / "cwd")
        except OSError:
            continue
        if cwd == base or cwd.startswith(base + "/"):
            _kill(pid)


def kill_tasks_under(base, bridges=()):
    """Leaves nothing on the host of what nodes whose dirs are under base
    left behind (say after a kill -9 of shoald with tasks running), in this
    order: the monitors, process tasks and processes working inside base
    (by pid); every process in the tasks' cgroups (by pid); runc's state
    (`runc --root DATA/runc delete --force` per container); every mount at or
    below base (overlay rootfs, netns bind mounts), deepest first; the host
    veths named in DATA/net/tasks/*.json; each (bridge, nft table) pair of
    `bridges` (only those the caller made: a node's defaults may be shared);
    then the tasks' cgroups on every controller. A task is known by its dir
    under DATA/tasks, DATA/runc or DATA/net/tasks. Touches nothing outside
    base but those cgroups, veths, bridges and tables; with no tasks and no
    mounts it does nothing."""
    base = str(Path(base).resolve())
    data_dirs = _data_dirs(Path(base))
    task_ids = _task_ids(data_dirs)
    _kill_processes_under(base, task_ids)
    _kill_cgroups(task_ids)
    _runc_delete(data_dirs)
    _unmount_under(base)
    _delete_veths(data_dirs)
    _delete_bridges(bridges)
    _remove_cgroups(task_ids)


class RawConn:
    """A bare TCP connection to a node's API for requests http.client will
    not send (partial, pipelined, oversize); answers are parsed by hand."""

    def __init__(self, node, timeout=HTTP_TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", node.api_port), timeout=timeout)
        self.rfile = self.sock.makefile("rb")

    def send(self, data):
        self.sock.sendall(data)

    def read_response(self):
        """Returns (status, headers with lower-case names, body bytes), or
        None when the server closed the connection before a status line."""
        line = self.rfile.readline(65537)
        if not line:
            return None
        parts = line.split(None, 2)
        assert len(parts) >= 2 and parts[0] == b"HTTP/1.1", line
        status = int(parts[1])
        headers = {}
        while True:
            h = self.rfile.readline(65537)
            assert h, "connection closed inside the headers"
            if h in (b"\r\n", b"\n"):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            body = self.rfile.read(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read()
        return status, headers, body

    def close(self):
        self.rfile.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def assert_error(status, body, want_status, code=None, field=None):
    """Checks an error answer: the status, and a JSON body with "error",
    "code" and "field" (field checked when given)."""
    assert status == want_status, f"want {want_status}, got {status}: {body!r}"
    assert isinstance(body, dict), f"error body is not a JSON object: {body!r}"
    assert isinstance(body.get("error"), str) and body["error"], body
    assert "field" in body and isinstance(body["field"], str), body
    if code is not None:
        assert body.get("code") == code, body
    if field is not None:
        assert body["field"] == field, body
