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
