"""shoal-monitor, the per-task monitor, run directly (no shoald): exit
statuses kept in DIR/state, output in DIR/log with rotation, stop with a
grace period, cwd and environment, detaching, and (as root, with a memory
cgroup) OOM kills and cgroup-wide kills.

The monitor detaches (its own session), so every test tracks it by the
monitor_pid of its state file and the fixture kills it, and its task, by
pid in teardown. Waits are bounded polls (wait_until), never fixed sleeps.
"""

import os
import re
import signal
import subprocess
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from shoaltest import BUILD, SANITIZER_MARKS, wait_until

MONITOR = BUILD / "shoal-monitor"
PY = "/usr/bin/python3"
LINE_MAX = 16 * 1024
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"
ENTRY = re.compile(rf"({STAMP}) (stdout|stderr) (.*)", re.S)
INT_KEYS = ("monitor_pid", "pid", "started_ms", "exited_ms", "exit_code", "signal", "oom",
            "stopped")

# A task that ignores SIGTERM and says so once it does.
IGNORE_TERM = [PY, "-c", "import signal, time\n"
               "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
               "print('ready', flush=True)\n"
               "time.sleep(600)\n"]


def read_state(d):
    """DIR/state as a dict (numbers as int), {} when there is none yet."""
    try:
        text = (Path(d) / "state").read_text()
    except FileNotFoundError:
        return {}
    state = dict(line.split("=", 1) for line in text.splitlines())
    return {k: int(v) if k in INT_KEYS else v for k, v in state.items()}


def alive(pid):
    """Whether pid runs (a zombie counts as gone: whoever adopted it may
    never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def parse_entries(text):
    """Log entries as (time, stream, line) tuples."""
    assert text == "" or text.endswith("\n"), f"log does not end with a newline: {text[-80:]!r}"
    entries = []
    for raw in text[:-1].split("\n") if text else []:
        m = ENTRY.fullmatch(raw)
        assert m, f"not a log entry: {raw[:200]!r}"
        entries.append(m.groups())
    return entries


def stamp_seconds(stamp):
    t = datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return t.timestamp() + int(stamp[20:29]) / 1e9


class Monitor:
    """One shoal-monitor and its task directory. proc is the process the
    test started: the monitor itself, or a launcher that started it."""

    def __init__(self, d, proc, stderr_path):
        self.dir = d
        self.proc = proc
        self.stderr_path = stderr_path

    def state(self):
        return read_state(self.dir)

    def wait_state(self, key, timeout=20.0):
        return wait_until(lambda: (s := self.state()) and key in s and s, timeout,
                          what=f"{key} in {self.dir}/state")

    @property
    def pid(self):
        return self.wait_state("monitor_pid")["monitor_pid"]

    def task_pid(self):
        return self.wait_state("pid")["pid"]

    def gone(self):
        pid = self.state().get("monitor_pid")
        if pid is None or pid == self.proc.pid:
            return self.proc.poll() is not None
        return not alive(pid)

    def wait_done(self, timeout=20.0):
        """Waits until the monitor is gone and returns the final state; a
        monitor gone without an exit_code fails the test."""
        def done():
            if not self.gone():
                return None
            s = self.state()
            assert "exit_code" in s, f"monitor gone without a final state: {s}\n{self.diag()}"
            return s
        return wait_until(done, timeout, what=f"the monitor of {self.dir} to finish")

    def signal(self, sig):
        os.kill(self.pid, sig)

    def entries(self, name="log"):
        return parse_entries((self.dir / name).read_text(errors="replace"))

    def lines(self, stream="stdout", name="log"):
        return [line for _, s, line in self.entries(name) if s == stream]

    def wait_line(self, line, timeout=20.0):
        wait_until(lambda: (self.dir / "log").exists() and line in self.lines(), timeout,
                   what=f"{line!r} in {self.dir}/log")

    def diag(self):
        out = []
        for p in (self.dir / "monitor.log", self.stderr_path):
            try:
                out.append(f"--- {p}:\n{p.read_text(errors='replace')}")
            except FileNotFoundError:
                pass
        return "\n".join(out)

    def cleanup(self):
        """Kills, by pid, the monitor and its task if they still run;
        returns the problems found in the monitor's output."""
        s = self.state()
        if "pid" in s and "exit_code" not in s:
            try:
                os.killpg(s["pid"], signal.SIGKILL)
            except OSError:
                pass
        if not self.gone():
            try:
                os.kill(s.get("monitor_pid", self.proc.pid), signal.SIGKILL)
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        text = self.diag()
        return [f"{self.dir}: sanitizer report ({m!r})" for m in SANITIZER_MARKS if m in text]


@pytest.fixture
def run_monitor(tmp_path, request):
    """Starts shoal-monitor --dir tmp_path/NAME [args] -- program; kills
    what is left in teardown and fails on a sanitizer report."""
    if not MONITOR.exists():
        pytest.fail(f"{MONITOR} does not exist: build it first (make)")
    started = []

    def run(*program, args=(), env=None, name=None, launcher=None, pass_fds=()):
        d = tmp_path / (name or f"task{len(started) + 1}")
        d.mkdir()
        cmd = [str(MONITOR), "--dir", str(d), *map(str, args), "--", *map(str, program)]
        stderr_path = tmp_path / f"{d.name}.stderr"
        with open(stderr_path, "wb") as err:
            proc = subprocess.Popen([*(launcher or []), *cmd], stdin=subprocess.DEVNULL,
                                    stdout=err, stderr=err, env=env, pass_fds=pass_fds,
                                    start_new_session=launcher is not None)
        m = Monitor(d, proc, stderr_path)
        started.append(m)
        return m

    yield run
    problems = []
    for m in started:
        problems += m.cleanup()
    if problems:
        pytest.fail("; ".join(problems))


@pytest.mark.parametrize("code", [0, 3])
def test_exit_code_is_recorded(run_monitor, code):
    before = int(time.time() * 1000)
    m = run_monitor("/bin/sh", "-c", f"exit {code}")
    s = m.wait_done()
    assert m.proc.returncode == 0
    assert s["exit_code"] == code and s["signal"] == 0, s
    assert s["oom"] == 0 and s["stopped"] == 0, s
    assert s["monitor_pid"] > 0 and s["pid"] > 0, s
    assert before - 1000 <= s["started_ms"] <= s["exited_ms"] <= time.time() * 1000 + 1000, s
    assert "error" not in s
    assert set(s) == {"monitor_pid", "pid", "started_ms", "exited_ms", "exit_code", "signal",
                      "oom", "stopped"}


def test_state_while_running(run_monitor, tmp_path):
    with open(tmp_path / "inherited", "w") as f:  # an fd the monitor inherits
        m = run_monitor("/bin/sleep", "600", pass_fds=(f.fileno(),))
        s = m.wait_state("pid")
    assert set(s) == {"monitor_pid", "pid", "started_ms"}, s
    assert alive(s["pid"]) and alive(s["monitor_pid"])
    # The task leads its own session and process group; the monitor too.
    assert os.getsid(s["pid"]) == s["pid"] and os.getpgid(s["pid"]) == s["pid"]
    assert os.getsid(s["monitor_pid"]) == s["monitor_pid"]
    # stdin is /dev/null, stdout and stderr are pipes.
    assert os.readlink(f"/proc/{s['pid']}/fd/0") == "/dev/null"
    for fd in (1, 2):
        assert os.readlink(f"/proc/{s['pid']}/fd/{fd}").startswith("pipe:")
    assert os.readlink(f"/proc/{s['monitor_pid']}/fd/2") == os.path.realpath(m.dir / "monitor.log")
    # Nothing else reaches the task, not even what the monitor inherited.
    assert sorted(os.listdir(f"/proc/{s['pid']}/fd")) == ["0", "1", "2"]


def test_monitor_killed_leaves_no_exit_code(run_monitor):
    m = run_monitor("/bin/sleep", "600")
    task = m.task_pid()
    m.signal(signal.SIGKILL)
    wait_until(m.gone, what="the monitor to die")
    assert "exit_code" not in m.state()
    assert alive(task)  # the fixture kills it


def test_killed_from_outside(run_monitor):
    m = run_monitor("/bin/sleep", "600")
    os.kill(m.task_pid(), signal.SIGKILL)
    s = m.wait_done()
    assert (s["exit_code"], s["signal"], s["stopped"]) == (137, 9, 0), s


@pytest.mark.parametrize("program,args,code,error", [
    ("/bin/nope", [], 127, 'exec "/bin/nope": No such file or directory'),
    ("shoal-no-such-program", [], 127,
     'exec "shoal-no-such-program": No such file or directory'),
    ("/etc/passwd", [], 126, 'exec "/etc/passwd": Permission denied'),
    ("/bin/true", ["--cwd", "/shoal-missing-dir"], 126,
     'chdir "/shoal-missing-dir": No such file or directory'),
])
def test_start_failure(run_monitor, program, args, code, error):
    m = run_monitor(program, args=args)
    s = m.wait_done()
    assert m.proc.returncode == 0
    assert s["error"] == error, s
    assert s["exit_code"] == code and s["signal"] == 0, s
    assert "pid" not in s and "started_ms" not in s, s
    assert "did not start" in (m.dir / "monitor.log").read_text()


def test_log_format_and_partial_line(run_monitor):
    before = time.time()
    m = run_monitor("/bin/sh", "-c",
                    "printf 'out 1\\nout 2\\n'; printf 'err 1\\n' >&2; printf '  spaced  \\n';"
                    " printf '\\n'; printf 'no newline'")
    s = m.wait_done()
    assert s["exit_code"] == 0, s
    entries = m.entries()
    assert [line for _, st, line in entries if st == "stdout"] == [
        "out 1", "out 2", "  spaced  ", "", "no newline"]
    assert [line for _, st, line in entries if st == "stderr"] == ["err 1"]
    for stamp, _, _ in entries:
        assert before - 5 <= stamp_seconds(stamp) <= time.time() + 5, stamp
    stamps = [stamp_seconds(e[0]) for e in entries]
    assert stamps == sorted(stamps)


def test_long_lines_are_cut(run_monitor):
    m = run_monitor(PY, "-c", "import sys\n"
                    f"sys.stdout.write('x' * 40000 + '\\n' + 'y' * {LINE_MAX} + '\\n')\n"
                    "sys.stdout.flush()\n"
                    f"sys.stderr.write('z' * {LINE_MAX + 1})\n")
    s = m.wait_done()
    assert s["exit_code"] == 0, s
    out = m.lines("stdout")
    assert [len(x) for x in out] == [LINE_MAX, LINE_MAX, 40000 - 2 * LINE_MAX, LINE_MAX]
    assert "".join(out[:3]) == "x" * 40000 and out[3] == "y" * LINE_MAX
    assert m.lines("stderr") == ["z" * LINE_MAX, "z"]


@pytest.mark.parametrize("max_files", [3, 1])
def test_log_rotation(run_monitor, max_files):
    size = 2000
    m = run_monitor(PY, "-c", "for i in range(300): print(f'line {i:04d}', flush=True)",
                    args=["--log-max-size", size, "--log-max-files", max_files])
    s = m.wait_done()
    assert s["exit_code"] == 0, s
    logs = sorted(p.name for p in m.dir.iterdir() if p.name.startswith("log"))
    assert logs == ["log"] + [f"log.{i}" for i in range(1, max_files)]
    for name in logs:
        assert 0 < (m.dir / name).stat().st_size <= size, name
    # The kept files hold the last lines, in order, without a gap.
    numbers = [int(line.split()[1])
               for name in reversed(logs) for line in m.lines(name=name)]
    assert numbers[-1] == 299 and numbers[0] > 0
    assert numbers == list(range(numbers[0], 300))


def test_stop_kills_after_grace(run_monitor):
    m = run_monitor(*IGNORE_TERM, args=["--grace-ms", 500])
    m.wait_line("ready")
    stop_ms = time.time() * 1000
    m.signal(signal.SIGTERM)
    m.signal(signal.SIGTERM)  # a second request changes nothing
    s = m.wait_done()
    assert (s["exit_code"], s["signal"], s["stopped"]) == (137, 9, 1), s
    assert s["exited_ms"] - stop_ms >= 450, s
    text = (m.dir / "monitor.log").read_text()
    assert text.count("stop request:") == 1 and "grace period over" in text


@pytest.mark.parametrize("sig,args,code", [
    (signal.SIGTERM, [], 143),
    (signal.SIGINT, ["--stop-signal", int(signal.SIGUSR1)], 128 + signal.SIGUSR1),
])
def test_stop_with_signal(run_monitor, sig, args, code):
    m = run_monitor("/bin/sleep", "600", args=args)
    m.task_pid()
    m.signal(sig)
    # Well before the default 10 s grace period.
    s = m.wait_done(timeout=5)
    assert (s["exit_code"], s["signal"], s["stopped"]) == (code, code - 128, 1), s


def test_cwd_environment_and_path(run_monitor, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    script = bindir / "shoal-test-hello"
    script.write_text('#!/bin/sh\npwd -P\necho "value=$SHOAL_TEST_VALUE"\n')
    script.chmod(0o755)
    env = dict(os.environ, SHOAL_TEST_VALUE="hello world",
               PATH=f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    m = run_monitor("shoal-test-hello", args=["--cwd", work], env=env)
    s = m.wait_done()
    assert s["exit_code"] == 0, s
    assert m.lines() == [os.path.realpath(work), "value=hello world"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to change credentials")
def test_uid_gid_groups(run_monitor):
    m = run_monitor("/bin/sh", "-c", "id -u; id -g; id -G",
                    args=["--uid", 65534, "--gid", 65534, "--groups", "65533,65532", "--cwd", "/"])
    s = m.wait_done()
    assert s["exit_code"] == 0, s
    assert m.lines() == ["65534", "65534", "65534 65532 65533"]


def test_orphans_are_adopted(run_monitor):
    # The subshell starts sleep and exits: the monitor, a subreaper, adopts it.
    m = run_monitor("/bin/sh", "-c", "(/bin/sleep 600 & echo $!); exec /bin/sleep 600")
    m.wait_state("pid")
    orphan = int(wait_until(lambda: m.lines() and m.lines()[0], what="the orphan's pid"))

    def parent():
        status = Path(f"/proc/{orphan}/status").read_text()
        return int(re.search(r"^PPid:\s+(\d+)", status, re.M).group(1)) == m.pid
    wait_until(parent, what="the monitor to adopt the orphan")
    m.signal(signal.SIGTERM)
    s = m.wait_done()
    assert s["exit_code"] == 143, s
    # The orphan was in the task's process group: the stop signal got it too.
    wait_until(lambda: not alive(orphan), what="the orphan to exit")


def test_task_outlives_whoever_started_the_monitor(run_monitor):
    launcher = [PY, "-c", "import subprocess, sys, time\n"
                "subprocess.Popen(sys.argv[1:])\n"
                "time.sleep(600)\n"]
    m = run_monitor("/bin/sh", "-c", "while :; do echo tick; sleep 0.05; done",
                    launcher=launcher)
    task = m.task_pid()
    assert m.pid != m.proc.pid
    os.killpg(m.proc.pid, signal.SIGKILL)  # the launcher's whole process group
    m.proc.wait(timeout=30)
    assert alive(m.pid) and alive(task)
    seen = len(m.lines())
    wait_until(lambda: len(m.lines()) > seen + 2, what="output logged after the launcher died")
    m.signal(signal.SIGTERM)
    s = m.wait_done()
    assert (s["exit_code"], s["stopped"]) == (143, 1), s


@pytest.mark.parametrize("args", [
    [],
    ["--dir", "{d}"],
    ["--dir", "{d}", "--"],
    ["--dir", "{d}", "--grace-ms", "soon", "--", "true"],
    ["--dir", "{d}", "--stop-signal", "0", "--", "true"],
    ["--dir", "{d}", "--log-max-files", "0", "--", "true"],
    ["--dir", "{d}", "--log-max-size", "-1", "--", "true"],
    ["--dir", "{d}", "--uid", "1", "--", "true"],
    ["--dir", "{d}", "--groups", "1,x", "--uid", "1", "--gid", "1", "--", "true"],
    ["--dir", "{d}", "--cgroup", "relative", "--", "true"],
    ["--dir", "{d}", "--bogus", "1", "--", "true"],
    ["--dir", "{d}", "--cwd"],
    ["--dir", "{d}/missing", "--", "true"],
])
def test_bad_arguments(tmp_path, args):
    p = subprocess.run([str(MONITOR), *(a.format(d=tmp_path) for a in args)],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 2, p
    assert p.stderr.startswith("shoal-monitor: "), p.stderr
    assert not any(m in p.stderr for m in SANITIZER_MARKS), p.stderr
    assert not (tmp_path / "state").exists()


# ---- cgroups (root, with a memory controller) ------------------------------

def _memory_hierarchy():
    if os.geteuid() != 0:
        return None
    v1 = Path("/sys/fs/cgroup/memory")
    if (v1 / "memory.limit_in_bytes").exists():
        return "v1", v1
    v2 = Path("/sys/fs/cgroup")
    try:
        if "memory" in (v2 / "cgroup.subtree_control").read_text().split():
            return "v2", v2
    except OSError:
        pass
    return None


MEMORY = _memory_hierarchy()
needs_memory_cgroup = pytest.mark.skipif(
    MEMORY is None, reason="needs root and a cgroup v1 memory controller or cgroup v2")


@pytest.fixture
def memory_cgroup():
    """A fresh cgroup shoal-test-<random> in the memory hierarchy; emptied
    (by pid) and removed in teardown."""
    version, root = MEMORY
    path = root / f"shoal-test-{uuid.uuid4().hex[:12]}"
    path.mkdir()
    yield version, path

    def removed():
        for pid in (path / "cgroup.procs").read_text().split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
        try:
            path.rmdir()
            return True
        except OSError:  # EBUSY while the last processes exit
            return False
    wait_until(removed, what=f"rmdir {path}")


def _set_memory_limit(version, path, limit):
    if version == "v1":
        (path / "memory.limit_in_bytes").write_text(str(limit))
        optional = ["memory.memsw.limit_in_bytes"]
    else:
        (path / "memory.max").write_text(str(limit))
        optional = ["memory.swap.max"]
    for name in optional:  # no swapping out of the limit where swap exists
        try:
            (path / name).write_text(str(limit) if version == "v1" else "0")
        except OSError:
            pass


@needs_memory_cgroup
def test_memory_limit_oom_kill(run_monitor, memory_cgroup):
    version, path = memory_cgroup
    _set_memory_limit(version, path, 32 * 1024 * 1024)
    m = run_monitor(PY, "-c", "b = b'x' * (200 * 1024 * 1024)\nprint('survived')",
                    args=["--cgroup", path])
    s = m.wait_done(timeout=60)
    assert (s["exit_code"], s["signal"], s["oom"]) == (137, 9, 1), s
    assert "survived" not in m.lines()


@needs_memory_cgroup
def test_start_in_missing_cgroup_fails(run_monitor, memory_cgroup):
    _, path = memory_cgroup
    missing = path / "missing"
    m = run_monitor("/bin/true", args=["--cgroup", missing])
    s = m.wait_done()
    assert s["error"] == f'cgroup "{missing}": No such file or directory', s
    assert s["exit_code"] == 126 and "pid" not in s, s


@needs_memory_cgroup
def test_stop_kills_every_process_in_the_cgroup(run_monitor, memory_cgroup):
    _, path = memory_cgroup
    # The task and a child in a session of its own both ignore SIGTERM;
    # only the cgroup reaches the child.
    m = run_monitor(PY, "-c", "import signal, subprocess, sys, time\n"
                    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                    "p = subprocess.Popen(['/bin/sleep', '600'], start_new_session=True)\n"
                    "print(p.pid, flush=True)\n"
                    "time.sleep(600)\n",
                    args=["--cgroup", path, "--grace-ms", 300])
    task = m.task_pid()
    child = int(wait_until(lambda: m.lines() and m.lines()[0], what="the child's pid"))
    procs = {int(p) for p in (path / "cgroup.procs").read_text().split()}
    assert {task, child} <= procs and m.pid not in procs
    m.signal(signal.SIGTERM)
    s = m.wait_done()
    assert (s["exit_code"], s["signal"], s["stopped"], s["oom"]) == (137, 9, 1, 0), s
    wait_until(lambda: not alive(child), what="the child in the cgroup to be killed")
