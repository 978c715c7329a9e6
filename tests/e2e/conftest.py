"""Fixtures for Shoal's end-to-end tests (FRR topotests style).

`node` yields one started shoald, leader of its own one-voter cluster. In
teardown every node is stopped by pid (SIGTERM, then SIGKILL after a
deadline) and the test fails when a daemon's stderr holds a sanitizer
report, when it did not exit 0 on a SIGTERM, or when it exited by itself.
"""

import os
import signal
import subprocess

import pytest

import shoaltest
from clustertest import Cluster
from shoaltest import SANITIZER_MARKS, SHOALD, Node


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        for n in getattr(item, "_shoal_nodes", []):
            rep.sections.append((f"{n.name} shoald stderr (last lines of {n.stderr_path})",
                                 n.stderr_tail()))


def _finish(nodes):
    problems = []
    for n in nodes:
        problems += n.teardown_problems()
    if problems:
        for n in nodes:
            print(f"---- {n.name} stderr ({n.stderr_path}), last lines ----")
            print(n.stderr_tail())
        pytest.fail("; ".join(problems))


@pytest.fixture
def make_node(tmp_path, request):
    """Factory for nodes (started unless start=False); every one is stopped
    and checked in teardown."""
    nodes = []
    request.node._shoal_nodes = nodes

    def make(name=None, start=True, **kw):
        n = Node(tmp_path, name or f"n{len(nodes) + 1}", **kw)
        nodes.append(n)
        if start:
            n.start()
        return n

    yield make
    _finish(nodes)


@pytest.fixture
def node(make_node):
    """A started single node, leader of its own one-voter cluster."""
    return make_node()


class _SharedNodes:
    """The node a module's tests share; replaced by a fresh one when a test
    made it crash (that test fails, the next ones get a new node)."""

    def __init__(self, tmp_path_factory):
        self.tmp_path_factory = tmp_path_factory
        self.node = None
        self.live = []

    def get(self):
        if self.node is None:
            self.node = Node(self.tmp_path_factory.mktemp("shared"), "shared")
            self.live.append(self.node)
            self.node.start()
        return self.node

    def discard(self, n):
        self.node = None
        self.live.remove(n)
        _finish([n])


@pytest.fixture(scope="module")
def shared_nodes(tmp_path_factory):
    s = _SharedNodes(tmp_path_factory)
    yield s
    _finish(s.live)


@pytest.fixture
def snode(shared_nodes, request):
    """One node shared by the tests of a module, each of which leaves its
    state as it found it. A test after which it crashed or reported a
    sanitizer error fails in teardown."""
    n = shared_nodes.get()
    request.node._shoal_nodes = [n]
    offset = len(n.stderr_text())
    yield n
    new_err = n.stderr_text()[offset:]
    if not n.running() or any(m in new_err for m in SANITIZER_MARKS):
        shared_nodes.discard(n)


class _NodesOf:
    """The nodes of some clusters, as they are when iterated (for the
    report hook, which shows their stderr when a test fails)."""

    def __init__(self, clusters):
        self.clusters = clusters

    def __iter__(self):
        for c in self.clusters:
            yield from c.nodes


def _finish_clusters(clusters):
    problems = []
    for c in clusters:
        problems += c.teardown_problems()
    if problems:
        for n in _NodesOf(clusters):
            print(f"---- {n.name} stderr ({n.stderr_path}), last lines ----")
            print(n.stderr_tail())
        pytest.fail("; ".join(problems))


def _log_level():
    return os.environ.get("SHOAL_E2E_LOG_LEVEL")


@pytest.fixture
def make_cluster(tmp_path, request):
    """Factory for started clusters (clustertest.Cluster's arguments: managers,
    workers, voters, args, first_args); every node of every one is stopped
    and checked in teardown."""
    clusters = []
    request.node._shoal_nodes = _NodesOf(clusters)

    def make(managers=3, workers=0, **kw):
        kw.setdefault("log_level", _log_level())
        c = Cluster(tmp_path / f"cluster{len(clusters) + 1}", managers, workers, **kw)
        clusters.append(c)
        return c.start()

    yield make
    _finish_clusters(clusters)


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory, request):
    """One cluster for a module's tests, built from the module's CLUSTER
    dict (Cluster's arguments; default 3 managers). Stopped and checked
    after the module."""
    kw = dict(getattr(request.module, "CLUSTER", {}))
    kw.setdefault("log_level", _log_level())
    c = Cluster(tmp_path_factory.mktemp("cluster"), **kw)
    try:
        c.start()
    except BaseException:
        c.teardown_problems()
        raise
    yield c
    _finish_clusters([c])


@pytest.fixture
def cluster(shared_cluster, request):
    """The module's shared cluster, healed first (every node that is not
    retired running, a leader, all ready). A test after which a node
    crashed or printed a sanitizer report fails in teardown; the next test
    gets the node restarted."""
    c = shared_cluster
    request.node._shoal_nodes = _NodesOf([c])
    c.heal()
    marks = c.stderr_marks()
    yield c
    problems = c.problems_since(marks)
    if problems:
        pytest.fail("; ".join(problems))


@pytest.fixture(scope="session", autouse=True)
def _stop_everything():
    if not SHOALD.exists():
        pytest.exit(f"{SHOALD} does not exist: build it first (make)", returncode=1)
    yield
    for p in shoaltest.STARTED:
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                pass


@pytest.fixture
def registry(tmp_path):
    """A started docker-registry on 127.0.0.1:<free port> (imagetest.Registry:
    .addr, .root), stopped by pid in teardown."""
    from imagetest import Registry  # pylint: disable=import-outside-toplevel

    r = Registry(tmp_path).start()
    yield r
    r.stop()
