"""Plan and diff (issue 6): `POST /v1/plan` and `shoal plan -f FILE` show
what applying a spec file would change (the diff field by field, the tasks
the scheduler would create, stop and replace, the replicas it could not
place and why) and change nothing; `shoal apply --check-index` refuses to
write a service that changed since the plan. One manager and one worker,
both running tasks."""

import json
import shlex

from shoaltest import wait_until

CLUSTER = {"managers": 1, "workers": 1}

SLEEP = ["/bin/sleep", "100000"]


def svc(name, replicas, env=None, placement=None):
    s = {"name": name, "replicas": replicas, "task": {"command": SLEEP}}
    if env is not None:
        s["task"]["env"] = env
    if placement is not None:
        s["placement"] = placement
    return s


def write(tmp_path, doc, name="spec.json"):
    f = tmp_path / name
    f.write_text(json.dumps(doc))
    return f


def tasks(c, service):
    st, _, body = c.any_manager().api("GET", f"/v1/tasks?service={service}")
    assert st == 200, body
    return [t for t in body if t["id"]]


def running(c, service, n):
    ts = [t for t in tasks(c, service) if t["desired_state"] == "running"]
    return len(ts) == n and all(t["state"] == "running" for t in ts) and ts


def service(c, name):
    st, _, body = c.any_manager().api("GET", f"/v1/services/{name}")
    return body if st == 200 else None


def create(c, spec, n=None):
    c.write("POST", "/v1/services", spec)
    if n is not None:
        return wait_until(lambda: running(c, spec["name"], n), 20, what=f"{n} tasks running")
    return None


def delete(c, *names):
    for name in names:
        c.write("DELETE", f"/v1/services/{name}", want=(200, 404))


def plan(c, f, *args, via=None):
    return (via or c.any_manager()).cli("plan", "-f", str(f), *args)


def plan_json(c, f, via=None):
    p = plan(c, f, "-o", "json", via=via)
    assert p.returncode in (0, 1), f"rc {p.returncode}: {p.stderr}"
    return p.returncode, json.loads(p.stdout)


def apply_line(out):
    """The arguments of the `apply with: shoal ...` line of a plan."""
    line = next(l for l in out.splitlines() if l.startswith("apply with: shoal "))
    return shlex.split(line[len("apply with: shoal "):])


def names_of(nodes):
    return {n.name for n in nodes}


def test_plan_of_a_new_service_changes_nothing(cluster, tmp_path):
    c = cluster
    f = write(tmp_path, svc("plan-new", 3, env={"GREETING": "hi"}))
    rc, p = plan_json(c, f)
    assert rc == 1
    assert p["name"] == "plan-new" and p["action"] == "create", p
    assert p["modify_index"] == 0 and p["version"] == 0, p
    diff = {d["path"]: d for d in p["diff"]}
    assert diff["replicas"] == {"path": "replicas", "old": None, "new": 3}
    assert diff["task.env.GREETING"]["new"] == "hi"
    assert diff["task.command"]["new"] == SLEEP
    assert not any(k in diff for k in ("version", "create_index", "modify_index"))
    t = p["tasks"]
    assert sorted(x["slot"] for x in t["create"]) == [1, 2, 3], t
    assert {x["node"] for x in t["create"]} <= names_of(c.nodes), t
    assert t["stop"] == [] and t["replace"] == [] and t["unplaced"] == [], t
    # A worker forwards the plan: the same answer (placement aside: it may
    # see other tasks end in between).
    rc, w = plan_json(c, f, via=c.workers[0])
    assert rc == 1 and w["diff"] == p["diff"] and w["action"] == "create", w
    assert [x["slot"] for x in w["tasks"]["create"]] == [1, 2, 3], w
    # The human form.
    out = plan(c, f)
    assert out.returncode == 1, out.stderr
    assert "plan-new: create" in out.stdout
    assert "  + replicas: 3" in out.stdout
    assert '  + task.env.GREETING: "hi"' in out.stdout
    assert "    create   plan-new.1 on " in out.stdout
    assert apply_line(out.stdout) == ["apply", "-f", str(f), "--check-index", "0"]
    # Nothing was written.
    assert service(c, "plan-new") is None
    assert tasks(c, "plan-new") == []
    # Applied as planned; then the same file plans no change.
    ok = c.any_manager().cli(*apply_line(out.stdout))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "plan-new: created\n"
    wait_until(lambda: running(c, "plan-new", 3), 20, what="3 tasks running")
    out = plan(c, f)
    assert out.returncode == 0, out.stderr
    have = service(c, "plan-new")
    assert out.stdout == (f"plan-new: no change (version {have['version']}, "
                          f"modify_index {have['modify_index']})\n")
    rc, p = plan_json(c, f)
    assert rc == 0 and p["action"] == "none" and p["diff"] == [], p
    assert p["modify_index"] == have["modify_index"] and p["version"] == have["version"]
    assert p["tasks"] == {"create": [], "stop": [], "replace": [], "unplaced": []}, p
    delete(c, "plan-new")


def test_plan_of_a_changed_env_lists_the_tasks_to_replace(cluster, tmp_path):
    c = cluster
    ts = create(c, svc("plan-env", 2, env={"GREETING": "hi", "OLD": "1"}), 2)
    before = service(c, "plan-env")
    f = write(tmp_path, svc("plan-env", 2, env={"GREETING": "hello", "NEW": "2"}))
    out = plan(c, f)
    assert out.returncode == 1, out.stderr
    assert (f"plan-env: update (version {before['version']}, "
            f"modify_index {before['modify_index']})") in out.stdout
    assert '  ~ task.env.GREETING: "hi" -> "hello"' in out.stdout
    assert '  + task.env.NEW: "2"' in out.stdout
    assert '  - task.env.OLD: "1"' in out.stdout
    for t in ts:
        assert f"    replace  plan-env.{t['slot']} {t['id']} on " in out.stdout, out.stdout
    rc, p = plan_json(c, f)
    assert p["action"] == "update" and p["modify_index"] == before["modify_index"]
    assert p["diff"] == [
        {"path": "task.env.GREETING", "old": "hi", "new": "hello"},
        {"path": "task.env.NEW", "old": None, "new": "2"},
        {"path": "task.env.OLD", "old": "1", "new": None},
    ]
    nodes = {n.node_id: n.name for n in c.nodes}
    assert p["tasks"]["replace"] == [{"id": t["id"], "slot": t["slot"], "node": nodes[t["node"]]}
                                     for t in sorted(ts, key=lambda t: t["slot"])]
    assert p["tasks"]["create"] == [] and p["tasks"]["stop"] == [], p
    # Nothing changed.
    assert service(c, "plan-env") == before
    assert sorted(t["id"] for t in running(c, "plan-env", 2)) == sorted(t["id"] for t in ts)
    delete(c, "plan-env")


def test_plan_of_a_scale(cluster, tmp_path):
    c = cluster
    ts = create(c, svc("plan-scale", 2), 2)
    rc, p = plan_json(c, write(tmp_path, svc("plan-scale", 4)))
    assert rc == 1 and p["diff"] == [{"path": "replicas", "old": 2, "new": 4}], p
    assert sorted(x["slot"] for x in p["tasks"]["create"]) == [3, 4], p
    assert p["tasks"]["stop"] == [] and p["tasks"]["replace"] == [], p
    f = write(tmp_path, svc("plan-scale", 1))
    rc, p = plan_json(c, f)
    assert rc == 1 and p["diff"] == [{"path": "replicas", "old": 2, "new": 1}], p
    top = next(t for t in ts if t["slot"] == 2)
    assert [(x["id"], x["slot"], x["reason"]) for x in p["tasks"]["stop"]] == \
        [(top["id"], 2, "scale-down")], p
    assert p["tasks"]["create"] == [] and p["tasks"]["replace"] == [], p
    out = plan(c, f)
    assert "  ~ replicas: 2 -> 1" in out.stdout
    node = c.by_id(top["node"]).name
    assert f"    stop     plan-scale.2 {top['id']} on {node}: scale-down\n" in out.stdout, out.stdout
    assert len(running(c, "plan-scale", 2)) == 2
    delete(c, "plan-scale")


def test_plan_with_an_impossible_constraint(cluster, tmp_path):
    c = cluster
    where = {"constraints": ["node.labels.zone==nowhere"]}
    # A new service: every replica unplaced, with the reason.
    rc, p = plan_json(c, write(tmp_path, svc("plan-nowhere", 2, placement=where)))
    assert rc == 1 and p["tasks"]["create"] == [], p
    un = p["tasks"]["unplaced"]
    assert [x["slot"] for x in un] == [1, 2], p
    assert all("node.labels.zone==nowhere" in x["reason"] for x in un), un
    # A running service moved there: its tasks stopped, its replicas unplaced.
    ts = create(c, svc("plan-move", 2), 2)
    f = write(tmp_path, svc("plan-move", 2, placement=where))
    rc, p = plan_json(c, f)
    assert rc == 1
    assert p["diff"] == [{"path": "placement.constraints[0]", "old": None,
                          "new": "node.labels.zone==nowhere"}], p
    assert sorted(x["id"] for x in p["tasks"]["stop"]) == sorted(t["id"] for t in ts), p
    assert {x["reason"] for x in p["tasks"]["stop"]} == {"constraint"}, p
    assert [x["slot"] for x in p["tasks"]["unplaced"]] == [1, 2], p
    out = plan(c, f)
    assert "    unplaced plan-move.1: " in out.stdout and "zone==nowhere" in out.stdout
    assert len(running(c, "plan-move", 2)) == 2
    assert service(c, "plan-nowhere") is None
    delete(c, "plan-move")


def test_plan_errors_exit_2(cluster, tmp_path):
    c = cluster
    m = c.any_manager()
    bad = svc("plan-bad", 1)
    bad["task"]["restart"] = {"delay": "soon"}
    out = plan(c, write(tmp_path, bad))
    assert out.returncode == 2 and out.stdout == "", out
    assert "(field: task.restart.delay) [HTTP 400]" in out.stderr, out.stderr
    # In a list the entry is named.
    out = plan(c, write(tmp_path, [svc("plan-ok", 1), bad]))
    assert out.returncode == 2 and "(field: [1].task.restart.delay)" in out.stderr, out.stderr
    out = plan(c, write(tmp_path, [svc("plan-ok", 1), svc("plan-ok", 2)]))
    assert out.returncode == 2 and "twice" in out.stderr and "[1].name" in out.stderr, out.stderr
    # Not a spec, malformed JSON, no file, no -f, an unreachable server.
    out = plan(c, write(tmp_path, [{"replicas": 1}]))
    assert out.returncode == 2 and "has no string name" in out.stderr, out.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": ')
    assert plan(c, broken).returncode == 2
    assert plan(c, tmp_path / "absent.json").returncode == 2
    out = m.cli("plan")
    assert out.returncode == 2 and "-f FILE is required" in out.stderr
    out = m.cli("--addr", "http://127.0.0.1:1", "plan", "-f", str(write(tmp_path, svc("x", 1))))
    assert out.returncode == 2 and "cannot reach shoald" in out.stderr, out.stderr
    out = m.cli("plan", "-f", str(write(tmp_path, svc("x", 1))), auth=False,
                env={"SHOAL_ADDR": m.addr})
    assert out.returncode == 2 and "HTTP 401" in out.stderr, out.stderr
    # The API: a bad body is a 400 naming the field; nothing is written.
    st, _, body = m.api("POST", "/v1/plan", bad)
    assert st == 400 and body["field"] == "task.restart.delay", body
    st, _, body = m.api("POST", "/v1/plan", raw_body="[]")
    assert st == 400, body
    st, _, body = m.api("POST", "/v1/plan", raw_body='"web"')
    assert st == 400, body
    st, _, body = m.api("POST", "/v1/plan", [svc("plan-ok", 1), 3])
    assert st == 400 and body["field"] == "[1]", body
    st, _, body = m.api("GET", "/v1/plan")
    assert st == 405, body
    assert service(c, "plan-ok") is None and service(c, "plan-bad") is None


def test_plan_then_apply_with_check_index(cluster, tmp_path):
    c = cluster
    create(c, svc("plan-cas", 1, env={"V": "1"}), 1)
    f = write(tmp_path, svc("plan-cas", 1, env={"V": "2"}))
    out = plan(c, f)
    assert out.returncode == 1, out.stderr
    index = service(c, "plan-cas")["modify_index"]
    args = apply_line(out.stdout)
    assert args == ["apply", "-f", str(f), "--check-index", str(index)]
    done = c.any_manager().cli(*args)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "plan-cas: updated\n"
    now = service(c, "plan-cas")
    assert now["task"]["env"] == {"V": "2"} and now["modify_index"] > index
    assert plan(c, f).returncode == 0
    delete(c, "plan-cas")


def test_a_change_after_the_plan_makes_the_apply_fail(cluster, tmp_path):
    c = cluster
    m = c.any_manager()
    create(c, svc("plan-race", 1, env={"V": "1"}), 1)
    f = write(tmp_path, svc("plan-race", 1, env={"V": "2"}))
    rc, p = plan_json(c, f)
    assert rc == 1
    index = p["modify_index"]
    # Someone scales the service in between.
    c.write("POST", "/v1/services/plan-race/scale", {"replicas": 2})
    before = service(c, "plan-race")
    assert before["modify_index"] > index
    out = m.cli("apply", "-f", str(f), "--check-index", str(index))
    assert out.returncode == 1, out
    assert (f"plan-race changed since the plan (index {index}, now {before['modify_index']}):"
            " plan again") in out.stderr, out.stderr
    assert service(c, "plan-race") == before  # nothing changed
    # The same with NAME=N, and with 0 (must not exist yet) for an existing one.
    out = m.cli("apply", "-f", str(f), "--check-index", f"plan-race={index}")
    assert out.returncode == 1 and "plan again" in out.stderr, out.stderr
    out = m.cli("apply", "-f", str(f), "--check-index", "0")
    assert out.returncode == 1 and "(index 0, now" in out.stderr, out.stderr
    assert service(c, "plan-race") == before
    # The API's answer to a stale index is a 409.
    st, _, body = m.api("PUT", f"/v1/services/plan-race?index={index}",
                        svc("plan-race", 1, env={"V": "2"}))
    assert st == 409 and body["code"] == "conflict", body
    # Bad --check-index values are usage errors; nothing is sent.
    for bad in (["--check-index", "x"], ["--check-index", "-1"],
                ["--check-index", "other=1"], ["--check-index", "1", "--check-index", "2"]):
        out = m.cli("apply", "-f", str(f), *bad)
        assert out.returncode == 2, (bad, out)
    assert service(c, "plan-race") == before
    delete(c, "plan-race")


def test_plan_of_a_list(cluster, tmp_path):
    c = cluster
    m = c.any_manager()
    create(c, svc("plan-a", 1), 1)
    create(c, svc("plan-b", 1), 1)
    doc = [svc("plan-a", 1), svc("plan-b", 2), svc("plan-c", 1)]
    f = write(tmp_path, doc, "stack.json")
    rc, ps = plan_json(c, f)
    assert rc == 1
    assert [(p["name"], p["action"]) for p in ps] == \
        [("plan-a", "none"), ("plan-b", "update"), ("plan-c", "create")], ps
    assert [x["slot"] for x in ps[1]["tasks"]["create"]] == [2]
    assert [x["slot"] for x in ps[2]["tasks"]["create"]] == [1]
    out = plan(c, f)
    assert out.returncode == 1, out.stderr
    assert "plan-a: no change" in out.stdout and "plan-c: create" in out.stdout
    args = apply_line(out.stdout)
    idx = {p["name"]: p["modify_index"] for p in ps}
    assert args == ["apply", "-f", str(f), "--check-index", f"plan-a={idx['plan-a']}",
                    "--check-index", f"plan-b={idx['plan-b']}", "--check-index", "plan-c=0"]
    # A bare index is refused for a list.
    out = m.cli("apply", "-f", str(f), "--check-index", "3")
    assert out.returncode == 2 and "NAME=N" in out.stderr, out.stderr
    assert service(c, "plan-c") is None
    done = m.cli(*args)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "plan-a: updated\nplan-b: updated\nplan-c: created\n"
    assert service(c, "plan-b")["replicas"] == 2
    # The API answers a list for a list, an object for an object.
    st, _, body = m.api("POST", "/v1/plan", doc)
    assert st == 200 and [p["action"] for p in body] == ["none", "none", "none"], body
    st, _, body = m.api("POST", "/v1/plan", doc[0])
    assert st == 200 and body["name"] == "plan-a", body
    delete(c, "plan-a", "plan-b", "plan-c")
