"""Rolling updates (issue 6): a new task template is rolled out by the
leader `parallelism` slots at a time, stop-first or start-first; failures
pause it or roll it back; rollback returns to the last stable spec; scaling,
a new update and a dead worker during a rollout all end correct; `shoal
rollout status` follows a rollout and says by its exit code how it ended
(0 completed, 1 rolled back, 2 paused, 3 timeout). One manager and two
workers: three nodes that run tasks. The tests sample the task list while a
rollout runs and check their invariant at every sample."""

import json
import os
import pty
import select
import subprocess
import threading
import time

from clustertest import cluster_tasks as tasks
from shoaltest import SANITIZER_MARKS, SHOAL, wait_until

CLUSTER = {"managers": 1, "workers": 2}

SLEEP = ["/bin/sleep", "100000"]
SLEEP2 = ["/bin/sleep", "100001"]
SLEEP3 = ["/bin/sleep", "100002"]
FAIL = ["/bin/sh", "-c", "exit 1"]
NO_RESTART = {"condition": "none"}

ROLLOUT_TIMEOUT = 60  # a whole rollout of a few slots, in seconds
SAMPLE_EVERY = 0.05


def svc(name, replicas, command=SLEEP, update=None, rollback=None, **task):
    s = {"name": name, "replicas": replicas, "task": {"command": command, **task}}
    if update is not None:
        s["update"] = update
    if rollback is not None:
        s["rollback"] = rollback
    return s


def service(c, name):
    st, _, body = c.any_manager().api("GET", f"/v1/services/{name}")
    assert st == 200, body
    return body


def rollout(c, name):
    st, _, body = c.any_manager().api("GET", f"/v1/services/{name}/rollout")
    assert st == 200, body
    return body


def wanted(ts):
    """The tasks desired running (the service's slots)."""
    return [t for t in ts if t["desired_state"] == "running" and t["id"]]


def all_running_at(c, name, n, version):
    """The n tasks desired running, all running at version; else None."""
    ts = wanted(tasks(c, name))
    ok = len(ts) == n and all(t["state"] == "running" and t["version"] == version for t in ts)
    return ts if ok else None


def in_service(ts):
    """Slots with a task desired running that runs."""
    return {t["slot"] for t in ts if t["desired_state"] == "running" and t["state"] == "running"}


def state_is(c, name, *states):
    def check():
        r = rollout(c, name)
        return r if r["state"] in states else None
    return check


def put(c, spec):
    return c.write("PUT", f"/v1/services/{spec['name']}", spec)


def delete(c, name):
    c.write("DELETE", f"/v1/services/{name}")
    wait_until(lambda: tasks(c, name) == [], 30, what=f"the tasks of {name} gone")


def create_running(c, spec):
    body = c.write("POST", "/v1/services", spec)
    wait_until(lambda: all_running_at(c, spec["name"], spec["replicas"], body["version"]), 30,
               what=f"{spec['name']}: {spec['replicas']} tasks running")
    return body


def table(ts):
    """The task list as lines (slot, version, desired, state, node, message)
    for an assertion message."""
    rows = sorted(ts, key=lambda t: (t["slot"], t["created_ms"]))
    return "\n" + "\n".join(f"  {t['slot']:>3} v{t['version']} {t['desired_state']:<8} "
                            f"{t['state']:<9} {t['node'][:8]:<8} {t.get('message', '')}"
                            for t in rows)


class Background:
    """A CLI run in a thread (subprocess.run stops it by pid at its
    timeout), so that the test samples tasks meanwhile."""

    def __init__(self, node, *args, timeout=ROLLOUT_TIMEOUT + 30):
        self.result = None
        self.error = None
        self.thread = threading.Thread(target=self._run, args=(node, args, timeout), daemon=True)
        self.thread.start()

    def _run(self, node, args, timeout):
        try:
            self.result = node.cli(*args, timeout=timeout)
        except BaseException as e:  # pylint: disable=broad-except
            self.error = e

    def done(self):
        return not self.thread.is_alive()

    def join(self, timeout=ROLLOUT_TIMEOUT + 40):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the CLI did not finish"
        if self.error:
            raise self.error
        return self.result


def sample_while(c, name, check, until, timeout=ROLLOUT_TIMEOUT):
    """Calls check(tasks) every SAMPLE_EVERY until until() is true (checked
    after each sample); fails after timeout. Returns the number of
    samples."""
    deadline = time.monotonic() + timeout
    n = 0
    while True:
        check(tasks(c, name))
        n += 1
        if until():
            return n
        assert time.monotonic() < deadline, \
            f"{name}: rollout not over after {timeout}s: {rollout(c, name)}"
        time.sleep(SAMPLE_EVERY)


def test_stop_first_at_most_parallelism_out_of_service(cluster):
    c = cluster
    m = c.any_manager()
    upd = {"parallelism": 2, "order": "stop-first", "monitor": "300ms"}
    v1 = create_running(c, svc("ro-stop", 10, update=upd))["version"]
    assert rollout(c, "ro-stop")["state"] == "none"
    assert service(c, "ro-stop")["rollout"] is None
    body = put(c, svc("ro-stop", 10, command=SLEEP2, update=upd))
    v2 = body["version"]
    assert v2 == v1 + 1 and body["rollout"]["state"] == "updating", body["rollout"]
    assert body["rollout"]["from_version"] == v1 and body["rollout"]["to_version"] == v2
    assert body["stable_spec"]["version"] == v1, body
    assert body["stable_spec"]["spec"]["task"]["command"] == SLEEP
    status = Background(m, "rollout", "status", "ro-stop")
    worst = {"out": 0}

    def check(ts):
        out = 10 - len(in_service(ts) & set(range(1, 11)))
        worst["out"] = max(worst["out"], out)
        assert out <= 2, f"{out} slots out of service: {table(ts)}"

    n = sample_while(c, "ro-stop", check, status.done)
    p = status.join()
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert worst["out"] >= 1, f"{n} samples never saw a slot being replaced"
    # Completed means done: every slot runs the new version, as counted.
    ts = tasks(c, "ro-stop")
    r = rollout(c, "ro-stop")
    assert r["state"] == "completed" and r["updated"] == 10 and r["total"] == 10, \
        f"{r}{table(ts)}"
    assert all_running_at(c, "ro-stop", 10, v2), table(ts)
    # Not a terminal: one plain line per change, then the final one.
    lines = p.stdout.splitlines()
    assert lines[0] == f"ro-stop: update to version {v2} (from {v1})", lines
    assert any(ln.startswith("ro-stop: updating ") for ln in lines), lines
    assert lines[-1] == "ro-stop: completed 10/10 (failures 0)", lines
    assert "\r" not in p.stdout
    r = rollout(c, "ro-stop")
    assert r["state"] == "completed" and r["kind"] == "update", r
    assert r["updated"] == 10 and r["total"] == 10 and r["failures"] == 0, r
    assert r["finished_ms"] >= r["started_ms"] > 0 and r["version"] == v2, r
    ts = all_running_at(c, "ro-stop", 10, v2)
    assert ts, table(tasks(c, "ro-stop"))
    assert sorted(t["slot"] for t in ts) == list(range(1, 11))
    # The completed spec is the stable one now; the one before it previous.
    s = service(c, "ro-stop")
    assert "stable_spec" not in s and s["previous_spec"]["version"] == v1, s
    # Done: status answers at once, also as JSON.
    p = m.cli("rollout", "status", "ro-stop", "-o", "json")
    assert p.returncode == 0 and json.loads(p.stdout)["state"] == "completed", p
    delete(c, "ro-stop")


def test_start_first_keeps_every_slot_running(cluster):
    c = cluster
    m = c.any_manager()
    upd = {"parallelism": 1, "order": "start-first", "monitor": "300ms"}
    create_running(c, svc("ro-start", 4, update=upd))
    v2 = put(c, svc("ro-start", 4, command=SLEEP2, update=upd))["version"]
    status = Background(m, "rollout", "status", "ro-start")
    seen = {"two": False}

    def check(ts):
        missing = set(range(1, 5)) - in_service(ts)
        assert not missing, f"slots {missing} without a running task: {table(ts)}"
        live = [t for t in ts if t["state"] == "running"]
        if len(live) > 4:
            seen["two"] = True

    sample_while(c, "ro-start", check, status.done)
    p = status.join()
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert seen["two"], "never saw an old and a new task running side by side"
    wait_until(lambda: all_running_at(c, "ro-start", 4, v2), 30,
               what="every task at the new version")
    delete(c, "ro-start")


def test_failed_update_rolls_back_automatically(cluster):
    c = cluster
    m = c.any_manager()
    upd = {"parallelism": 2, "monitor": "300ms", "failure_action": "rollback"}
    rb = {"parallelism": 0, "monitor": "300ms"}
    v1 = create_running(c, svc("ro-bad", 4, update=upd, rollback=rb))["version"]
    good = service(c, "ro-bad")["task"]
    v2 = put(c, svc("ro-bad", 4, command=FAIL, update=upd, rollback=rb,
                    restart=NO_RESTART))["version"]
    p = m.cli("rollout", "status", "ro-bad", timeout=ROLLOUT_TIMEOUT)
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    lines = p.stdout.splitlines()
    assert lines[0] == f"ro-bad: update to version {v2} (from {v1})", lines
    assert any(ln.startswith(f"ro-bad: rollback to version {v2 + 1} (from {v2})")
               for ln in lines), lines
    assert lines[-1].startswith("ro-bad: rolled_back "), lines
    assert "rolled back automatically" in lines[-1], lines
    r = rollout(c, "ro-bad")
    assert r["state"] == "rolled_back" and r["kind"] == "rollback", r
    assert r["from_version"] == v2 and r["to_version"] == v2 + 1 == r["version"], r
    assert "rolled back automatically" in r["message"] and "failed" in r["message"], r
    # The spec is the stable one again (a new version of it), all tasks on it.
    s = service(c, "ro-bad")
    assert s["task"] == good and s["task"]["command"] == SLEEP, s["task"]
    assert s["version"] == v2 + 1
    assert "stable_spec" not in s, s
    ts = wait_until(lambda: all_running_at(c, "ro-bad", 4, v2 + 1), 30,
                    what="every task running the rolled-back spec")
    assert len(ts) == 4
    # -o json: only the final object, same exit code.
    p = m.cli("rollout", "status", "ro-bad", "-o", "json")
    assert p.returncode == 1, p
    out = json.loads(p.stdout)
    assert out["state"] == "rolled_back" and out["service"] == "ro-bad", out
    delete(c, "ro-bad")


def test_failed_update_of_one_replica_rolls_back(cluster):
    """One replica (the last batch of any stop-first rollout): its old task
    stops, and the new one must still be created and watched (monitor)
    before the rollout may complete."""
    c = cluster
    m = c.any_manager()
    upd = {"parallelism": 0, "monitor": "500ms", "failure_action": "rollback"}
    create_running(c, svc("ro-all", 1, update=upd))
    v2 = put(c, svc("ro-all", 1, command=FAIL, update=upd, restart=NO_RESTART))["version"]
    p = m.cli("rollout", "status", "ro-all", timeout=ROLLOUT_TIMEOUT)
    ts = tasks(c, "ro-all")
    assert p.returncode == 1, f"{p.returncode} {p.stdout} {p.stderr} {rollout(c, 'ro-all')}" \
        f"{table(ts)}"
    r = rollout(c, "ro-all")
    assert r["state"] == "rolled_back" and r["to_version"] == v2 + 1, r
    assert service(c, "ro-all")["task"]["command"] == SLEEP
    wait_until(lambda: all_running_at(c, "ro-all", 1, v2 + 1), 30,
               what="every task running the rolled-back spec")
    delete(c, "ro-all")


def test_failed_rollback_pauses_and_resumes_as_a_rollback(cluster, tmp_path):
    """A rollback can fail too (here the stable spec needs a file that is
    gone): its failure_action pauses it; resumed once the file is back, it
    is still a rollback and ends rolled_back."""
    c = cluster
    m = c.any_manager()
    flag = tmp_path / "ready"
    flag.write_text("")
    needs_flag = ["/bin/sh", "-c", f"test -e {flag} && exec /bin/sleep 100000"]
    upd = {"parallelism": 1, "monitor": "300ms", "failure_action": "rollback"}
    rb = {"parallelism": 0, "monitor": "300ms", "failure_action": "pause"}
    v1 = create_running(c, svc("ro-rbfail", 2, command=needs_flag, update=upd, rollback=rb,
                               restart=NO_RESTART))["version"]
    flag.unlink()
    v2 = put(c, svc("ro-rbfail", 2, command=FAIL, update=upd, rollback=rb,
                    restart=NO_RESTART))["version"]
    p = m.cli("rollout", "status", "ro-rbfail", timeout=ROLLOUT_TIMEOUT)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    r = rollout(c, "ro-rbfail")
    assert r["state"] == "paused" and r["kind"] == "rollback", r
    assert r["from_version"] == v2 and r["to_version"] == v2 + 1 == v1 + 2, r
    assert "failed" in r["message"], r
    flag.write_text("")
    p = m.cli("service", "rollout", "resume", "ro-rbfail", "-o", "json")
    assert p.returncode == 0, p
    r = json.loads(p.stdout)["rollout"]
    assert r["state"] == "rolling_back" and r["kind"] == "rollback", r
    p = m.cli("rollout", "status", "ro-rbfail", timeout=ROLLOUT_TIMEOUT)
    r = rollout(c, "ro-rbfail")
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr, r)
    assert r["state"] == "rolled_back", r
    wait_until(lambda: all_running_at(c, "ro-rbfail", 2, v2 + 1), 30,
               what="every task running the rolled-back spec")
    delete(c, "ro-rbfail")


def test_failure_pauses_then_a_new_update_supersedes(cluster):
    c = cluster
    m = c.any_manager()
    upd = {"parallelism": 1, "monitor": "300ms", "failure_action": "pause"}
    v1 = create_running(c, svc("ro-pause", 3, update=upd))["version"]
    # The CLI way: update and wait; a failure pauses it (exit 2).
    p = m.cli("service", "update", "ro-pause", "--command", "/no/such/program",
              "--restart-condition", "none", "--detach=false", timeout=ROLLOUT_TIMEOUT)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    last = p.stdout.splitlines()[-1]
    assert last.startswith("ro-pause: paused ") and "failed" in last, p.stdout
    r = rollout(c, "ro-pause")
    assert r["state"] == "paused", r
    paused = r  # its failures are checked at the end
    assert "/no/such/program" in r["message"] or "failed" in r["message"], r
    v2 = r["to_version"]
    assert v2 == v1 + 1
    # Paused: nothing more is replaced; the old tasks that were not touched
    # still run.
    before = table(tasks(c, "ro-pause"))
    old = [t for t in wanted(tasks(c, "ro-pause")) if t["version"] == v1]
    assert len(old) >= 2 and all(t["state"] == "running" for t in old), before
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        now = wanted(tasks(c, "ro-pause"))
        assert {t["id"] for t in old} <= {t["id"] for t in now}, f"{before}\nnow:{table(now)}"
        time.sleep(0.1)
    p = m.cli("rollout", "status", "ro-pause")
    assert p.returncode == 2 and "paused" in p.stdout, p
    p = m.cli("rollout", "status", "ro-pause", "-o", "json")
    assert p.returncode == 2 and json.loads(p.stdout)["state"] == "paused", p
    # Resume: the failures are forgiven, the failed task retried; it fails
    # again and the rollout pauses again (never hangs).
    resumed_at = int(time.time() * 1000) - 1000
    p = m.cli("service", "rollout", "resume", "ro-pause")
    assert p.returncode == 0 and p.stdout.strip() == "ro-pause", p
    p = m.cli("rollout", "status", "ro-pause", timeout=ROLLOUT_TIMEOUT)
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    r = rollout(c, "ro-pause")
    assert r["state"] == "paused" and r["progress_ms"] >= resumed_at, r
    # A good update supersedes the paused rollout and completes.
    p = m.cli("service", "update", "ro-pause", "--command", " ".join(SLEEP2),
              "--restart-condition", "any", "--detach=false", timeout=ROLLOUT_TIMEOUT)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert p.stdout.splitlines()[-1].startswith("ro-pause: completed "), p.stdout
    r = rollout(c, "ro-pause")
    assert r["state"] == "completed" and r["to_version"] == v2 + 1, r
    wait_until(lambda: all_running_at(c, "ro-pause", 3, v2 + 1), 30,
               what="every task at the newest version")
    # The paused spec never became stable: the previous one is v1's.
    s = service(c, "ro-pause")
    assert s["previous_spec"]["version"] == v1, s
    assert s["previous_spec"]["spec"]["task"]["command"] == SLEEP
    # The paused rollout counted the failure that paused it.
    assert paused["failures"] >= 1 and paused["updated"] == 0, paused
    # Nothing to pause or resume now: 409, exit 1.
    p = m.cli("service", "rollout", "pause", "ro-pause")
    assert p.returncode == 1 and "no rollout under way" in p.stderr, p
    p = m.cli("service", "rollout", "resume", "ro-pause")
    assert p.returncode == 1 and "no paused rollout" in p.stderr, p
    p = m.cli("service", "rollout", "stop", "ro-pause")
    assert p.returncode == 2 and "pause or resume" in p.stderr, p
    delete(c, "ro-pause")


def test_user_pause_and_resume(cluster):
    c = cluster
    m = c.any_manager()
    upd = {"parallelism": 1, "monitor": "500ms"}
    create_running(c, svc("ro-hold", 5, update=upd))
    v2 = put(c, svc("ro-hold", 5, command=SLEEP2, update=upd))["version"]
    p = m.cli("service", "rollout", "pause", "ro-hold", "-o", "json")
    assert p.returncode == 0, p
    assert json.loads(p.stdout)["rollout"]["state"] == "paused", p.stdout
    r = rollout(c, "ro-hold")
    assert r["state"] == "paused" and r["message"] == "paused by a user", r

    def new_slots():
        return {t["slot"] for t in wanted(tasks(c, "ro-hold")) if t["version"] == v2}

    # What was started goes on; nothing new starts: after a moment the new
    # slots stay as they are.
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        time.sleep(0.1)
    frozen = new_slots()
    assert len(frozen) <= 2, table(tasks(c, "ro-hold"))
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        assert new_slots() == frozen, table(tasks(c, "ro-hold"))
        time.sleep(0.1)
    p = m.cli("rollout", "status", "ro-hold", "--timeout", "5s")
    assert p.returncode == 2 and "paused by a user" in p.stdout, p
    p = m.cli("service", "rollout", "resume", "ro-hold")
    assert p.returncode == 0, p
    p = m.cli("rollout", "status", "ro-hold", timeout=ROLLOUT_TIMEOUT)
    assert p.returncode == 0, (p.stdout, p.stderr)
    wait_until(lambda: all_running_at(c, "ro-hold", 5, v2), 30,
               what="every task at the new version")
    delete(c, "ro-hold")


def test_manual_rollback_and_history(cluster):
    c = cluster
    m = c.any_manager()
    upd = {"parallelism": 0, "monitor": "200ms"}
    v1 = create_running(c, svc("ro-back", 3, update=upd, rollback=upd))["version"]
    # Never updated: nothing to roll back to.
    p = m.cli("service", "rollback", "ro-back")
    assert p.returncode == 1, p
    assert "no earlier spec to roll back to" in p.stderr and "[HTTP 400]" in p.stderr, p.stderr
    st, _, body = m.api("POST", "/v1/services/ro-back/rollback")
    assert st == 400 and body["code"] == "bad_request", body
    p = m.cli("service", "history", "ro-back")
    assert p.returncode == 0, p
    assert "current, stable" in p.stdout and "No rollout yet" in p.stdout, p.stdout
    # v1 -> v2, completed.
    p = m.cli("service", "update", "ro-back", "--command", " ".join(SLEEP2), "--detach=false",
              timeout=ROLLOUT_TIMEOUT)
    assert p.returncode == 0, (p.stdout, p.stderr)
    v2 = v1 + 1
    p = m.cli("service", "history", "ro-back", "-o", "json")
    h = json.loads(p.stdout)
    assert set(h) == {"version", "rollout", "stable_spec", "previous_spec"}, h
    assert h["version"] == v2 and h["rollout"]["state"] == "completed", h
    assert h["stable_spec"] is None and h["previous_spec"]["version"] == v1, h
    # Rollback: to the previous spec, as a new version.
    p = m.cli("service", "rollback", "ro-back")
    assert p.returncode == 0 and p.stdout.strip() == "ro-back", p
    p = m.cli("rollout", "status", "ro-back", timeout=ROLLOUT_TIMEOUT)
    assert p.returncode == 1, (p.stdout, p.stderr)  # rolled back
    assert p.stdout.splitlines()[-1].startswith("ro-back: rolled_back "), p.stdout
    s = service(c, "ro-back")
    assert s["task"]["command"] == SLEEP and s["version"] == v2 + 1, s
    assert s["rollout"]["kind"] == "rollback" and s["rollout"]["from_version"] == v2, s
    wait_until(lambda: all_running_at(c, "ro-back", 3, v2 + 1), 30,
               what="every task at the rolled-back spec")
    # The spec rolled back from is now the previous one: a second rollback
    # goes back to it (it toggles, like `docker service rollback`).
    assert s["previous_spec"]["version"] == v2, s
    assert s["previous_spec"]["spec"]["task"]["command"] == SLEEP2, s
    p = m.cli("service", "history", "ro-back")
    assert p.returncode == 0, p
    rows = [ln.split() for ln in p.stdout.splitlines()[1:3]]
    assert rows[0][:3] == [str(v2 + 1), "current,", "stable"], p.stdout
    assert rows[1][:2] == [str(v2), "previous"], p.stdout
    assert "Last rollout: rollback to version" in p.stdout, p.stdout
    p = m.cli("service", "rollback", "ro-back", "-o", "json")
    assert p.returncode == 0 and json.loads(p.stdout)["version"] == v2 + 2, p
    p = m.cli("rollout", "status", "ro-back", timeout=ROLLOUT_TIMEOUT)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert service(c, "ro-back")["task"]["command"] == SLEEP2
    wait_until(lambda: all_running_at(c, "ro-back", 3, v2 + 2), 30,
               what="every task at the spec rolled back to")
    # Errors: an unknown service.
    p = m.cli("service", "rollback", "ro-nope")
    assert p.returncode == 1 and "ro-nope" in p.stderr, p
    p = m.cli("rollout", "status", "ro-nope")
    assert p.returncode == 1 and "ro-nope" in p.stderr, p
    p = m.cli("service", "history")
    assert p.returncode == 2, p
    delete(c, "ro-back")


def test_scale_during_rollout(cluster):
    c = cluster
    m = c.any_manager()
    upd = {"parallelism": 1, "monitor": "400ms"}
    create_running(c, svc("ro-scale", 4, update=upd))
    v2 = put(c, svc("ro-scale", 4, command=SLEEP2, update=upd))["version"]
    wait_until(lambda: rollout(c, "ro-scale")["updated"] >= 1, 30, what="one slot updated")
    body = c.write("POST", "/v1/services/ro-scale/scale", {"replicas": 7})
    assert body["version"] == v2, body  # scaling is no new version
    p = m.cli("rollout", "status", "ro-scale", timeout=ROLLOUT_TIMEOUT)
    assert p.returncode == 0, (p.stdout, p.stderr)
    ts = wait_until(lambda: all_running_at(c, "ro-scale", 7, v2), 30,
                    what="7 tasks at the new version")
    assert sorted(t["slot"] for t in ts) == list(range(1, 8)), table(ts)
    r = rollout(c, "ro-scale")
    assert r["state"] == "completed" and r["total"] == 7, r
    # And down during the next one.
    v3 = put(c, svc("ro-scale", 7, command=SLEEP3, update=upd))["version"]
    wait_until(lambda: rollout(c, "ro-scale")["updated"] >= 1, 30, what="one slot updated")
    c.write("POST", "/v1/services/ro-scale/scale", {"replicas": 2})
    p = m.cli("rollout", "status", "ro-scale", timeout=ROLLOUT_TIMEOUT)
    assert p.returncode == 0, (p.stdout, p.stderr)
    ts = wait_until(lambda: all_running_at(c, "ro-scale", 2, v3), 30,
                    what="2 tasks at the newest version")
    assert sorted(t["slot"] for t in ts) == [1, 2], table(ts)
    delete(c, "ro-scale")


def test_update_during_update_supersedes(cluster):
    c = cluster
    m = c.any_manager()
    upd = {"parallelism": 1, "monitor": "500ms"}
    v1 = create_running(c, svc("ro-twice", 5, update=upd))["version"]
    v2 = put(c, svc("ro-twice", 5, command=SLEEP2, update=upd))["version"]
    status = Background(m, "rollout", "status", "ro-twice")
    wait_until(lambda: rollout(c, "ro-twice")["updated"] >= 1, 30, what="one slot updated")
    body = put(c, svc("ro-twice", 5, command=SLEEP3, update=upd))
    v3 = body["version"]
    assert v3 == v2 + 1 and body["rollout"]["from_version"] == v2, body["rollout"]
    assert body["rollout"]["state"] == "updating" and body["rollout"]["updated"] == 0
    # The half-applied v2 is not stable: v1 still is.
    assert body["stable_spec"]["version"] == v1, body
    p = status.join()
    assert p.returncode == 0, (p.stdout, p.stderr)
    lines = p.stdout.splitlines()
    assert f"ro-twice: update to version {v3} (from {v2})" in lines, lines
    ts = wait_until(lambda: all_running_at(c, "ro-twice", 5, v3), 30,
                    what="every task at the newest version")
    assert len(ts) == 5
    s = service(c, "ro-twice")
    assert s["task"]["command"] == SLEEP3 and s["rollout"]["state"] == "completed", s
    assert s["previous_spec"]["version"] == v1, s  # never v2
    delete(c, "ro-twice")


def test_worker_killed_during_rollout(cluster):
    c = cluster
    m = c.any_manager()
    upd = {"parallelism": 1, "monitor": "1s"}
    create_running(c, svc("ro-node", 6, update=upd))
    v2 = put(c, svc("ro-node", 6, command=SLEEP2, update=upd))["version"]
    wait_until(lambda: rollout(c, "ro-node")["updated"] >= 1, 30, what="one slot updated")
    w = c.workers[1]
    assert any(t["node"] == w.node_id for t in wanted(tasks(c, "ro-node"))), \
        table(tasks(c, "ro-node"))
    w.kill9()
    wait_until(lambda: m.nodes()[w.name]["status"] == "down", 30, what=f"{w.name} down")
    r = rollout(c, "ro-node")
    assert r["state"] == "updating", f"the rollout did not overlap the node's death: {r}"
    p = m.cli("rollout", "status", "ro-node", "--timeout", "90s", timeout=120)
    ts = tasks(c, "ro-node")
    assert p.returncode == 0, f"{p.returncode} {p.stdout} {p.stderr}{table(ts)}"
    ts = wait_until(lambda: all_running_at(c, "ro-node", 6, v2), 60,
                    what="6 tasks at the new version")
    assert all(t["node"] != w.node_id for t in ts), table(ts)
    delete(c, "ro-node")


def test_status_timeout(cluster):
    c = cluster
    m = c.any_manager()
    upd = {"parallelism": 1, "monitor": "30s"}
    create_running(c, svc("ro-slow", 2, update=upd))
    put(c, svc("ro-slow", 2, command=SLEEP2, update=upd))
    started = time.monotonic()
    p = m.cli("rollout", "status", "ro-slow", "--timeout", "1s")
    took = time.monotonic() - started
    assert p.returncode == 3, (p.returncode, p.stdout, p.stderr)
    assert took < 10, took
    assert p.stdout.splitlines()[-1] == "ro-slow: timed out after 1s, the rollout goes on", p.stdout
    p = m.cli("rollout", "status", "ro-slow", "--timeout", "1s", "-o", "json")
    assert p.returncode == 3 and json.loads(p.stdout)["state"] == "updating", p
    p = m.cli("rollout", "status", "ro-slow", "--timeout", "soon")
    assert p.returncode == 2 and "--timeout" in p.stderr, p
    delete(c, "ro-slow")


def run_on_terminal(node, *args, timeout=ROLLOUT_TIMEOUT):
    """Runs the CLI with its stdout on a pseudo-terminal; returns (exit code,
    what it wrote there)."""
    master, slave = pty.openpty()
    env = dict(os.environ, SHOAL_ADDR=node.addr, SHOAL_TOKEN=node.token)
    p = subprocess.Popen([str(SHOAL), *args], stdout=slave, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:  # EIO: the CLI closed the terminal
                    break
                if not data:
                    break
                out += data
            elif p.poll() is not None:
                break
        rc = p.wait(timeout=max(deadline - time.monotonic(), 1))
        err = p.stderr.read().decode(errors="replace")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stderr.close()
        os.close(master)
    for mark in SANITIZER_MARKS:
        assert mark not in err, f"shoal {' '.join(args)}: sanitizer report:\n{err}"
    return rc, out.decode()


def test_status_on_a_terminal_rewrites_one_line(cluster):
    c = cluster
    m = c.any_manager()
    upd = {"parallelism": 1, "monitor": "300ms"}
    create_running(c, svc("ro-tty", 3, update=upd))
    v2 = put(c, svc("ro-tty", 3, command=SLEEP2, update=upd))["version"]
    rc, out = run_on_terminal(m, "rollout", "status", "ro-tty")
    assert rc == 0, out
    lines = out.split("\r\n")  # the terminal turns \n into \r\n
    assert lines[0] == f"ro-tty: update to version {v2} (from 1)", out
    # The progress: one line rewritten in place, the final state last.
    assert out.count("\r\x1b[K") >= 2, repr(out)
    assert lines[1].startswith("\r\x1b[Kro-tty: updating "), repr(out)
    assert lines[1].rsplit("\r\x1b[K", 1)[1].startswith("ro-tty: completed "), repr(out)
    assert lines[2:] == [""], repr(out)
    delete(c, "ro-tty")
