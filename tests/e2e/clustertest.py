"""Multi-node helpers for Shoal's end-to-end tests (docs/cluster.md).

A `Cluster` is N managers and M workers, each a real `shoald` on 127.0.0.1
with free ports and its own data dir: the first manager bootstraps
(`--bootstrap --name m1 --listen .. --api ..` plus `--voters N` when asked),
the others join through a running manager's API with a token from
`GET /v1/cluster/join-token/{manager,worker}`. Later starts of a node pass
`--data-dir` alone (plus the cluster-wide `args`, such as Raft timeouts).

Every wait is bounded (`wait_until`); nodes are signalled by pid only.
The fixtures that build clusters and check them in teardown are in
conftest.py (`make_cluster`, `shared_cluster`, `cluster`).
"""

import http.client
import random
import signal
import threading
import time
from pathlib import Path

import pytest

from shoaltest import HTTP_TIMEOUT, SANITIZER_MARKS, SHOALD, STOP_TIMEOUT, Node, spec, wait_until

JOIN_TIMEOUT = 30.0  # a joining shoald: until it serves its API (or exits)
READY_TIMEOUT = 30.0  # until every node shows ready in every manager's list
LEADER_TIMEOUT = 30.0  # until the running managers agree on a leader

# What a connection to a node that is gone (or going) raises.
CONN_ERRORS = (OSError, http.client.HTTPException)


class ClusterNode(Node):
    """One shoald of a Cluster. `role` is what its join token asked for.

    First start: bootstrap (the cluster's first node) or join; later
    starts: `--data-dir` alone, or `once_args` given to start()."""

    def __init__(self, cluster, name, role, first=False, first_args=(), dirname=None):
        super().__init__(cluster.base, dirname or name, log_level=cluster.log_level)
        self.name = name
        self.cluster = cluster
        self.role = role
        self.first = first
        self.first_args = list(first_args)
        self.once_args = None  # extra options for the next start only
        self.join_token = None
        self.join_via = None
        self.node_id = None  # from /v1/health once it serves
        self.retired = False  # removed or never joined: not expected in lists

    @property
    def is_manager(self):
        return self.role == "manager"

    @property
    def raft_addr(self):
        return f"127.0.0.1:{self.raft_port}"

    @property
    def api_addr(self):
        return f"127.0.0.1:{self.api_port}"

    @property
    def token(self):
        """The admin token: the node's own admin.token (bootstrap and
        joined managers), else the cluster's (workers have none)."""
        if self._token is None:
            f = self.data_dir / "admin.token"
            self._token = f.read_text().strip() if f.exists() else self.cluster.admin_token
        return self._token

    def command(self):
        cmd = [str(SHOALD), "--data-dir", str(self.data_dir)]
        if self.once_args is not None:
            cmd += self.once_args
            self.once_args = None
        elif not self.bootstrapped:
            where = ["--name", self.name, "--listen", self.raft_addr, "--api", self.api_addr]
            if self.first:
                cmd += ["--bootstrap", *where]
            else:
                cmd += ["--join", self.join_via, "--token", self.join_token, *where]
            cmd += self.first_args
        cmd += self.cluster.args + self.net_args()
        if self.log_level:
            cmd += ["--log-level", self.log_level]
        return cmd

    def start(self, wait=True, token=None, via=None, once_args=None):
        """Starts shoald. A first start of a joining node joins through
        `via` (default: a running manager) with `token` (default: the
        cluster's current token for the node's role). wait: until it
        serves its API (the first node: until it leads)."""
        if not self.bootstrapped and not self.first:
            self.join_token = token if token is not None else self.cluster.join_token(self.role)
            self.join_via = via or self.cluster.any_manager().api_addr
        if once_args is not None:
            self.once_args = list(once_args)
        first_boot = self.first and not self.bootstrapped
        Node.start(self, wait_leader=False)
        if wait:
            self.wait_serving(leader=first_boot)
        return self

    def wait_serving(self, leader=False, timeout=JOIN_TIMEOUT):
        """Waits until /v1/health answers 200 (and leader: true when asked);
        fails at once when shoald exits."""

        def serving():
            if not self.running():
                pytest.fail(f"{self.name}: shoald exited with {self.proc.returncode} during start;"
                            f" stderr:\n{self.stderr_tail()}")
            st, _, body = self.api("GET", "/v1/health", token=None, timeout=5)
            if st != 200 or not isinstance(body, dict):
                return False
            if leader and body.get("leader") is not True:
                return False
            self.node_id = body.get("node")
            return True

        wait_until(serving, timeout, 0.05, what=f"{self.name} to serve its API")

    def run_to_exit(self, timeout=JOIN_TIMEOUT, **start_kw):
        """Starts shoald expecting it to exit by itself (a refused join).
        Returns (exit code or None when it kept running, the stderr it
        wrote). The node is retired either way."""
        offset = len(self.stderr_text())
        self.allow_exit = True
        self.retired = True
        self.start(wait=False, **start_kw)
        rc = self.wait_exit(timeout)
        if rc is None:
            self.stop(signal.SIGKILL)
        else:
            self.proc._e2e_stopped = True
        return rc, self.stderr_text()[offset:]

    def begin_stop(self, sig=signal.SIGTERM):
        """Sends sig by pid without waiting; finish with end_stop()."""
        self._note_exit()
        assert self.running(), f"{self.name} is not running"
        self.proc._e2e_stopped = True
        self._stop_sig = sig
        self.send_signal(sig)

    def end_stop(self, timeout=STOP_TIMEOUT):
        """Waits for the exit begin_stop() asked for (SIGKILL after timeout)
        and records it for teardown; returns the code (None: killed)."""
        rc = self.wait_exit(timeout)
        if rc is None:
            self.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.stops.append((self._stop_sig, rc))
        return rc

    def health(self, timeout=5):
        st, _, body = self.api("GET", "/v1/health", token=None, timeout=timeout)
        return body if st == 200 and isinstance(body, dict) else None

    def nodes(self, timeout=10):
        """This node's GET /v1/nodes as {name: NODE}."""
        st, _, body = self.api("GET", "/v1/nodes", timeout=timeout)
        assert st == 200, f"{self.name}: GET /v1/nodes: {st} {body}"
        return {n["name"]: n for n in body}

    def cluster_info(self, timeout=10):
        st, _, body = self.api("GET", "/v1/cluster", timeout=timeout)
        assert st == 200, f"{self.name}: GET /v1/cluster: {st} {body}"
        return body

    def service_names(self, timeout=10):
        st, _, body = self.api("GET", "/v1/services", timeout=timeout)
        assert st == 200, f"{self.name}: GET /v1/services: {st} {body}"
        return {s["name"] for s in body}


class Cluster:
    """N managers and M workers; see the module's doc."""

    def __init__(self, base_dir, managers=3, workers=0, voters=None, args=(), first_args=(),
                 log_level=None):
        self.base = Path(base_dir)
        self.base.mkdir(parents=True, exist_ok=True)
        self.n_managers = managers
        self.n_workers = workers
        self.voters = voters
        self.args = list(args)  # on every start of every node
        self.first_args = list(first_args)  # on the first node's first start
        self.log_level = log_level
        self.nodes = []
        self._admin_token = None
        self._count = {"manager": 0, "worker": 0}

    # ---- building ---------------------------------------------------------

    def new_node(self, role, name=None):
        """A node that is not started yet (start() joins it). Its files are
        in a directory of its own even when its name is taken."""
        self._count[role] += 1
        if name is None:
            name = f"{'m' if role == 'manager' else 'w'}{self._count[role]}"
        dirname = name
        while (self.base / dirname).exists():
            dirname += "_"
        n = ClusterNode(self, name, role, dirname=dirname)
        self.nodes.append(n)
        return n

    def start(self):
        """Bootstraps the first manager, joins the others one by one, then
        the workers, and waits until every node is ready everywhere."""
        first_args = list(self.first_args)
        if self.voters is not None:
            first_args += ["--voters", str(self.voters)]
        self._count["manager"] += 1
        first = ClusterNode(self, "m1", "manager", first=True, first_args=first_args)
        self.nodes.append(first)
        first.start()
        for _ in range(1, self.n_managers):
            self.add("manager")
        for _ in range(self.n_workers):
            self.add("worker")
        self.wait_ready()
        return self

    def add(self, role, name=None, **start_kw):
        """Joins a new node and waits until the leader lists it ready (a
        manager also settled as voter or standby)."""
        n = self.new_node(role, name)
        n.start(**start_kw)
        self.wait_ready(nodes=[n], on=[self.leader()])
        return n

    # ---- looking ----------------------------------------------------------

    @property
    def managers(self):
        return [n for n in self.nodes if n.is_manager and not n.retired]

    @property
    def workers(self):
        return [n for n in self.nodes if not n.is_manager and not n.retired]

    def running_managers(self):
        return [n for n in self.managers if n.running()]

    def expected(self):
        """The nodes that should be listed ready: running, not retired."""
        return [n for n in self.nodes if not n.retired and n.running()]

    def any_manager(self):
        live = self.running_managers()
        assert live, "no manager is running"
        return live[0]

    def node(self, name):
        return next(n for n in self.nodes if n.name == name)

    def by_id(self, node_id):
        return next((n for n in self.nodes if n.node_id == node_id), None)

    @property
    def admin_token(self):
        if self._admin_token is None:
            self._admin_token = (self.nodes[0].data_dir / "admin.token").read_text().strip()
        return self._admin_token

    def join_token(self, role):
        """The current join token for role, from a running manager."""
        def get():
            for m in self.running_managers():
                try:
                    st, _, body = m.api("GET", f"/v1/cluster/join-token/{role}", timeout=5)
                except CONN_ERRORS:
                    continue
                if st == 200:
                    return body["token"]
            return None
        return wait_until(get, 20, 0.1, what=f"a {role} join token")

    def leader(self, timeout=LEADER_TIMEOUT, among=None):
        """The leader all running managers (or `among`) agree on; waits."""
        def agreed():
            ids = set()
            for m in among or self.running_managers():
                c = m.cluster_info(timeout=5)
                ids.add((c.get("leader") or {}).get("id") or "")
            if len(ids) != 1 or "" in ids:
                return None
            node = self.by_id(ids.pop())
            if node is None or not node.running():
                return None
            h = node.health()
            return node if h and h.get("leader") is True else None
        return wait_until(agreed, timeout, 0.1, what="the managers to agree on a running leader")

    def followers(self, leader=None):
        leader = leader or self.leader()
        return [m for m in self.running_managers() if m is not leader]

    def wait_ready(self, nodes=None, on=None, timeout=READY_TIMEOUT):
        """Waits until every manager in `on` (default: every running one)
        lists every node of `nodes` (default: expected()) as ready with its
        role; a manager also as voter or standby in the Raft configuration."""
        def ready():
            want = nodes if nodes is not None else self.expected()
            for m in on or self.running_managers():
                listed = m.nodes(timeout=5)
                for n in want:
                    got = listed.get(n.name)
                    if got is None or got.get("status") != "ready" or got.get("role") != n.role:
                        return False
                    if n.node_id is None:
                        n.node_id = got.get("id")
                    if n.is_manager and ((got.get("manager") or {}).get("raft_role")
                                         not in ("voter", "standby")):
                        return False
            return True
        names = ",".join(n.name for n in (nodes if nodes is not None else self.expected()))
        wait_until(ready, timeout, 0.1, what=f"{names} ready in the managers' node lists")

    def heal(self):
        """Starts every node that is not running and not retired (with
        --data-dir alone), then waits for a leader and every node ready."""
        for n in self.nodes:
            if not n.retired and not n.running() and n.bootstrapped:
                n.start()
        self.leader()
        self.wait_ready()

    # ---- writing ----------------------------------------------------------

    def write(self, method, path, body=None, want=(200, 201), timeout=30.0, via=None):
        """One write, retried on 503 and connection errors across the
        running managers (or `via`) until it answers a status in `want`."""
        order = list(via or self.running_managers())
        state = {"i": 0, "last": None}

        def attempt():
            m = order[state["i"] % len(order)]
            state["i"] += 1
            try:
                st, _, ans = m.api(method, path, body, timeout=10)
            except CONN_ERRORS as e:
                state["last"] = repr(e)
                return None
            state["last"] = (st, ans)
            if st in want:
                return ans
            assert st == 503, f"{method} {path} on {m.name}: {st} {ans}"
            return None
        return wait_until(attempt, timeout, 0.1, what=f"{method} {path} to succeed")

    # ---- stopping ---------------------------------------------------------

    def stderr_marks(self):
        return {n: len(n.stderr_text()) for n in self.nodes}

    def problems_since(self, marks):
        """Crashes and sanitizer reports since marks (from stderr_marks)."""
        problems = []
        for n in self.nodes:
            if n.proc is not None:
                n._note_exit()
            for rc in n.unexpected_exits:
                problems.append(f"{n.name}: shoald exited by itself with code {rc}")
            n.unexpected_exits.clear()
            new = n.stderr_text()[marks.get(n, 0):]
            for mark in SANITIZER_MARKS:
                if mark in new:
                    problems.append(f"{n.name}: sanitizer report ({mark!r}) in {n.stderr_path}")
        return problems

    def teardown_problems(self):
        """Stops every node by pid (workers, then followers, the leader
        last) and returns what went wrong (see Node.teardown_problems)."""
        leader = None
        for m in self.running_managers():
            try:
                h = m.health(timeout=2)
            except CONN_ERRORS:
                continue
            if h and h.get("leader"):
                leader = m
        order = [n for n in self.nodes if not n.is_manager]
        order += [n for n in self.nodes if n.is_manager and n is not leader]
        order += [leader] if leader else []
        problems = []
        for n in order:
            problems += n.teardown_problems()
        return problems


class WriteLoad:
    """A steady write load: `threads` threads each create services named
    PREFIX-T-I against the managers in turn, recording every 2xx ack with
    its time, moving to the next manager and retrying the same name on 503
    or a connection error. A 409 for a name that was already tried means
    the earlier attempt did commit: it counts as `existing`, not acked."""

    def __init__(self, cluster, prefix="load", threads=3, pace=0.01):
        self.cluster = cluster
        self.prefix = prefix
        self.threads = threads
        self.pace = pace
        self.targets = list(cluster.managers)
        self.lock = threading.Lock()
        self.acks = []  # (name, monotonic time of the ack)
        self.existing = []  # names answered 409 on a retry
        self.retries = 0
        self.unexpected = []  # (manager, name, status, body)
        self._stop = threading.Event()
        self._threads = []

    def _run(self, t):
        rnd = random.Random(t)
        k = rnd.randrange(len(self.targets))
        i = 0
        tried = False
        token = self.cluster.admin_token
        while not self._stop.is_set():
            name = f"{self.prefix}-{t}-{i}"
            m = self.targets[k % len(self.targets)]
            try:
                st, _, body = m.api("POST", "/v1/services", spec(name), token=token, timeout=10)
            except CONN_ERRORS:
                st, body = None, None
            now = time.monotonic()
            with self.lock:
                if st in (200, 201):
                    self.acks.append((name, now))
                elif st == 409 and tried:
                    self.existing.append(name)
                elif st == 503 or st is None:
                    self.retries += 1
                    tried = True
                    k += 1
                    time.sleep(0.05)
                    continue
                else:
                    self.unexpected.append((m.name, name, st, body))
            i += 1
            tried = False
            k += 1
            time.sleep(self.pace)

    def start(self):
        for t in range(self.threads):
            th = threading.Thread(target=self._run, args=(t,), daemon=True)
            th.start()
            self._threads.append(th)
        return self

    def stop(self):
        self._stop.set()
        for th in self._threads:
            th.join(timeout=HTTP_TIMEOUT)
        assert not any(th.is_alive() for th in self._threads), "write load threads did not stop"

    def acked(self):
        with self.lock:
            return [name for name, _ in self.acks]

    def acks_after(self, t):
        with self.lock:
            return sum(1 for _, at in self.acks if at > t)


def cluster_tasks(c, service=None):
    """GET /v1/tasks (of one service) from a running manager."""
    path = "/v1/tasks" + (f"?service={service}" if service else "")
    st, _, body = c.any_manager().api("GET", path, token=c.admin_token, timeout=5)
    assert st == 200, body
    return body
