"""A cluster of 3 managers and 2 workers (docs/cluster.md): forming, writes
seen by every manager, join tokens and refused joins, node updates,
removal, a worker lost and back, backup and restore.

The tests share one cluster and leave it as they found it (extra nodes
they add are removed or retired)."""

import json
import re
import time

from shoaltest import assert_error, spec, wait_until

CLUSTER = {"managers": 3, "workers": 2}

NODE_FIELDS = ("id", "name", "role", "status", "availability")


def node_names(c):
    """{name: id} as every running manager lists it (they must agree)."""
    views = {m.name: {n: v["id"] for n, v in m.nodes().items()} for m in c.running_managers()}
    first = next(iter(views.values()))
    assert all(v == first for v in views.values()), f"the managers disagree: {views}"
    return first


def test_cluster_forms(cluster):
    m = cluster.any_manager()
    p = m.cli("node", "ls", "-o", "json")
    assert p.returncode == 0, p.stderr
    nodes = json.loads(p.stdout)
    assert isinstance(nodes, list)
    by_name = {n["name"]: n for n in nodes}
    assert sorted(by_name) == ["m1", "m2", "m3", "w1", "w2"], nodes
    assert [n["name"] for n in nodes] == sorted(by_name), "not sorted by name"
    for n in nodes:
        for f in NODE_FIELDS:
            assert isinstance(n.get(f), str) and n[f], f"{n.get('name')}: field {f}: {n}"
        assert n["status"] == "ready", n
        assert n["availability"] == "active", n
    for node in cluster.nodes:
        got = by_name[node.name]
        assert got["role"] == node.role, got
        assert got["api_address"] == node.api_addr, got
        if node.is_manager:
            assert got["manager"]["raft_address"] == node.raft_addr, got
            assert got["manager"]["raft_role"] == "voter", got
            assert got["id"] == node.health()["node"], got
        else:
            assert got["manager"] is None, got
    assert sum(1 for n in nodes if n["manager"] and n["manager"]["leader"]) == 1, nodes
    assert len({n["id"] for n in nodes}) == 5, "node ids are not unique"

    # Every manager agrees; joined managers hold the cluster's admin token.
    node_names(cluster)
    leader = cluster.leader()
    infos = [x.cluster_info() for x in cluster.managers]
    assert len({i["id"] for i in infos}) == 1, infos
    for i in infos:
        assert i["leader"]["id"] == leader.node_id, i
        assert sorted(x["role"] for x in i["members"]) == ["voter"] * 3, i
        assert {x["address"] for x in i["members"]} == {x.raft_addr for x in cluster.managers}
    for x in cluster.managers:
        assert (x.data_dir / "admin.token").read_text().strip() == cluster.admin_token

    # The table: a row per node, the leader marked; a worker serves its health.
    p = m.cli("node", "ls")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "ROLE", "STATUS", "AVAILABILITY", "MANAGER",
                                "ADDRESS"], lines[0]
    rows = {ln.split()[1]: ln.split() for ln in lines[1:]}
    assert sorted(rows) == sorted(by_name), p.stdout
    for name, n in by_name.items():
        assert rows[name][0] == n["id"] and rows[name][2] == n["role"], rows[name]
        assert rows[name][-1] == n["api_address"], rows[name]
    assert rows[leader.name][5] == "leader", rows[leader.name]
    for w in cluster.workers:
        h = w.health()
        assert h and h["status"] == "ok" and h["leader"] is False, h


def test_writes_through_follower_and_leader_seen_everywhere(cluster):
    leader = cluster.leader()
    follower = cluster.followers(leader)[0]
    st, _, body = follower.api("POST", "/v1/services", spec("via-follower"))
    assert st == 201, body
    # The follower answers only once it has applied the write itself.
    st, _, body = follower.api("GET", "/v1/services/via-follower")
    assert st == 200, body
    st, _, body = leader.api("POST", "/v1/services", spec("via-leader"))
    assert st == 201, body

    for m in cluster.managers:
        for name in ("via-follower", "via-leader"):
            def seen(m=m, name=name):
                st, hdrs, body = m.api("GET", f"/v1/services/{name}")
                return st == 200 and body["name"] == name and hdrs
            hdrs = wait_until(seen, 10, what=f"{name} on {m.name}")
            assert hdrs.get("X-Shoal-Known-Leader") == "true", dict(hdrs)
            assert hdrs.get("X-Shoal-Stale") in (None, "false"), dict(hdrs)
    # A leader-checked read through the other follower.
    other = cluster.followers(leader)[-1]
    st, _, body = other.api("GET", "/v1/services/via-leader?consistent")
    assert st == 200 and body["name"] == "via-leader", (st, body)

    # A write through a follower that the leader refuses is answered as
    # the leader answered it.
    st, _, body = follower.api("POST", "/v1/services", spec("via-leader"))
    assert_error(st, body, 409, "conflict")
    for name in ("via-follower", "via-leader"):
        cluster.write("DELETE", f"/v1/services/{name}")


def test_join_token_cli(cluster):
    m = cluster.followers()[0]
    for role in ("worker", "manager"):
        st, _, body = m.api("GET", f"/v1/cluster/join-token/{role}")
        assert st == 200 and body["role"] == role, body
        p = m.cli("cluster", "join-token", role, "-q")
        assert p.returncode == 0, p.stderr
        assert p.stdout == body["token"] + "\n", repr(p.stdout)
        p = m.cli("cluster", "join-token", role)
        assert p.returncode == 0, p.stderr
        assert body["token"] in p.stdout, p.stdout

    old = m.cli("cluster", "join-token", "worker", "-q").stdout.strip()
    p = m.cli("cluster", "join-token", "worker", "--rotate", "-q")
    assert p.returncode == 0, p.stderr
    new = p.stdout.strip()
    assert p.stdout == new + "\n" and new and new != old, (old, p.stdout)
    for x in cluster.managers:
        wait_until(lambda x=x: x.api("GET", "/v1/cluster/join-token/worker")[2]["token"] == new,
                   10, what=f"the rotated token on {x.name}")
    # The manager token did not change with the worker's.
    assert m.cli("cluster", "join-token", "manager", "-q").stdout.strip() != new

    p = m.cli("cluster", "join-token", "bogus")
    assert p.returncode == 2 and p.stderr.startswith("shoal: "), (p.returncode, p.stderr)


def test_refused_joins(cluster):
    before = node_names(cluster)
    via = cluster.any_manager().api_addr

    def refused(name, what, pattern, **start_kw):
        n = cluster.new_node("worker", name=name)
        if "once_args" in start_kw:
            start_kw["once_args"] = [a.format(raft=n.raft_addr, api=n.api_addr)
                                     for a in start_kw["once_args"]]
        rc, err = n.run_to_exit(**start_kw)
        assert rc is not None, f"{what}: shoald --join kept running:\n{err}"
        assert rc != 0, f"{what}: shoald --join exited 0:\n{err}"
        assert re.search(pattern, err, re.I), f"{what}: no clear message in stderr:\n{err}"

    refused("bad1", "wrong token", r"token", token="SHOAL-WRK-" + "0" * 40)
    old = cluster.join_token("worker")
    cluster.write("POST", "/v1/cluster/join-token/worker/rotate")
    assert cluster.join_token("worker") != old
    refused("bad2", "rotated token", r"token", token=old)
    refused("bad3", "empty token", r"token", token="")
    refused("bad4", "missing token", r"token",
            once_args=["--join", via, "--name", "bad4", "--listen", "{raft}", "--api", "{api}"])
    refused("w1", "name in use", r"name|w1|409", token=cluster.join_token("worker"))

    assert node_names(cluster) == before
    for m in cluster.managers:
        assert m.running(), f"{m.name} died"


def test_join_and_heartbeat_api(cluster):
    """The answers of POST /v1/cluster/join and of a heartbeat, as
    docs/cluster.md gives them; a removed node's heartbeat gets 401."""
    m = cluster.followers()[0]
    token = cluster.join_token("worker")
    req = {"token": token, "id": "00000000000000a1", "name": "api-join",
           "api_address": "127.0.0.1:9", "labels": {"k": "v"},
           "resources": {"cpu": 1.0, "memory": 1000000}}
    st, _, ans = m.api("POST", "/v1/cluster/join", req, token=None)
    assert st == 200, ans
    lacking = []  # contract keys missing from answers, reported together
    nid = ans["node"]["id"]
    auth = {"Authorization": f"Bearer {ans['credential']}"}
    try:
        lacking += [f"join answer: {k}" for k in (
            "node", "credential", "cluster_id", "managers", "heartbeat_interval",
            "node_down_after") if k not in ans]
        assert "admin_token" not in ans, "a worker got the admin token"
        assert ans["node"]["name"] == "api-join" and ans["node"]["role"] == "worker", ans
        assert ans["node"]["labels"] == {"k": "v"}, ans
        assert ans["cluster_id"] == m.cluster_info()["id"]
        assert {x["name"] for x in ans["managers"]} == {"m1", "m2", "m3"}, ans
        for x in ans["managers"]:
            assert set(x) >= {"id", "name", "api_address", "raft_address"}, x
        st, _, hb = m.api("POST", f"/v1/nodes/{nid}/heartbeat", {}, token=None, headers=auth)
        assert st == 200, hb
        lacking += [f"heartbeat answer: {k}" for k in (
            "managers", "heartbeat_interval", "node_down_after", "leader") if k not in hb]
        if "leader" in hb:
            assert hb["leader"] == cluster.leader().node_id, hb
        st, _, hb = m.api("POST", f"/v1/nodes/{nid}/heartbeat", {}, token=None,
                          headers={"Authorization": "Bearer nope"})
        assert_error(st, hb, 401)

        # The same name from another node: 409; no token: 401.
        st, _, body = m.api("POST", "/v1/cluster/join", dict(req, id="00000000000000a2"),
                            token=None)
        assert_error(st, body, 409)
        st, _, body = m.api("POST", "/v1/cluster/join",
                            {k: v for k, v in req.items() if k != "token"}, token=None)
        assert_error(st, body, 401)
    finally:
        st, _, body = m.api("DELETE", "/v1/nodes/api-join?force=true")
        assert st == 200, body
    assert "api-join" not in m.nodes()
    st, _, hb = m.api("POST", f"/v1/nodes/{nid}/heartbeat", {}, token=None, headers=auth)
    assert_error(st, hb, 401)
    assert not lacking, f"answers lack fields of docs/cluster.md: {lacking} " \
                        f"(join answer keys: {sorted(ans)})"


def test_node_update_cli(cluster):
    leader = cluster.leader()
    follower = cluster.followers(leader)[0]

    def everywhere(name, pred, what):
        for m in cluster.managers:
            wait_until(lambda m=m: pred(m.nodes()[name]), 10, what=f"{what} on {m.name}")

    for target, via in (("w1", follower), ("m3", leader)):
        for avail in ("drain", "pause", "active"):
            p = via.cli("node", "update", target, "--availability", avail)
            assert p.returncode == 0, p.stderr
            everywhere(target, lambda n, a=avail: n["availability"] == a, f"{target} {avail}")
        p = via.cli("node", "update", target, "--label-add", "zone=a", "--label-add", "disk=ssd")
        assert p.returncode == 0, p.stderr
        everywhere(target, lambda n: n["labels"] == {"zone": "a", "disk": "ssd"},
                   f"{target} labels added")
        p = via.cli("node", "update", target, "--label-rm", "zone")
        assert p.returncode == 0, p.stderr
        everywhere(target, lambda n: n["labels"] == {"disk": "ssd"}, f"{target} zone removed")
        p = via.cli("node", "update", target, "--label-rm", "disk")
        assert p.returncode == 0, p.stderr
        everywhere(target, lambda n: n["labels"] == {}, f"{target} labels removed")

    # Refused changes change nothing.
    before = leader.nodes()["w1"]
    p = follower.cli("node", "update", "w1", "--availability", "sideways")
    assert p.returncode == 1 and "shoal: " in p.stderr, (p.returncode, p.stderr)
    p = follower.cli("node", "update", "nope", "--availability", "drain")
    assert p.returncode == 1 and "shoal: " in p.stderr, (p.returncode, p.stderr)
    st, _, body = follower.api("PATCH", "/v1/nodes/w1", {"availability": "sideways"})
    assert_error(st, body, 400, "bad_request", "availability")
    st, _, body = follower.api("PATCH", f"/v1/nodes/w1?index={before['modify_index'] + 1000}",
                               {"availability": "drain"})
    assert_error(st, body, 409, "conflict")
    after = leader.nodes()["w1"]
    assert (after["availability"], after["labels"], after["modify_index"]) == (
        before["availability"], before["labels"], before["modify_index"])
    st, _, body = follower.api("PATCH", f"/v1/nodes/w1?index={before['modify_index']}",
                               {"availability": "active", "labels": {}})
    assert st == 200 and body["name"] == "w1", body


def test_backup_and_restore(cluster, make_cluster, tmp_path):
    for i in range(3):
        cluster.write("PUT", f"/v1/services/kept-{i}",
                      spec(f"kept-{i}", labels={"n": str(i)}))
    follower = cluster.followers()[0]
    f = tmp_path / "backup.json"
    p = follower.cli("cluster", "backup", str(f))
    assert p.returncode == 0, p.stderr
    assert re.fullmatch(rf"backup of index \d+ written to {re.escape(str(f))}\n", p.stdout), \
        p.stdout
    backup = json.loads(f.read_text())
    assert isinstance(backup, dict), type(backup)
    assert (f.stat().st_mode & 0o777) == 0o600, oct(f.stat().st_mode)

    def comparable(services):
        return {s["name"]: {k: v for k, v in s.items()
                            if k not in ("create_index", "modify_index", "version")}
                for s in services}
    want = comparable(cluster.leader().services())
    assert {"kept-0", "kept-1", "kept-2"} <= set(want)

    restored = make_cluster(managers=1, first_args=["--restore", str(f)])
    r = restored.nodes[0]
    got = wait_until(lambda: (lambda s: s if set(comparable(s)) == set(want) else None)(
        r.services()), 15, what="the restored services")
    assert comparable(got) == want
    assert list(r.nodes()) == ["m1"], "a restored cluster is a one-node cluster"
    assert len(r.cluster_info()["members"]) == 1
    # It is a working cluster of its own.
    st, _, body = r.api("POST", "/v1/services", spec("after-restore"))
    assert st == 201, body
    assert "after-restore" not in cluster.any_manager().service_names()
    for i in range(3):
        cluster.write("DELETE", f"/v1/services/kept-{i}")


def test_removed_worker_stays_gone(cluster):
    w = cluster.add("worker", name="w9")
    w.allow_exit = True  # a removed node may stop by itself
    offset = len(w.stderr_text())
    m = cluster.followers()[0]
    try:
        p = m.cli("node", "rm", "w9")
        assert p.returncode == 1 and "w9" in p.stderr, "a ready node needs --force"
        p = m.cli("node", "rm", "--force", "w9")
        assert p.returncode == 0, p.stderr
        for x in cluster.managers:
            wait_until(lambda x=x: "w9" not in x.nodes(), 10, what=f"w9 gone from {x.name}")
        wait_until(lambda: re.search(r"removed|not in the cluster|401|refus",
                                     w.stderr_text()[offset:], re.I),
                   15, what="w9 to log that its heartbeats are refused")
        # It never comes back: watch it for a few heartbeat intervals.
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            for x in cluster.managers:
                assert "w9" not in x.nodes(), f"removed w9 is listed again by {x.name}"
            time.sleep(0.2)
    finally:
        # Leave the cluster as it was, whatever happened above.
        w.retired = True
        w.stop()
        if "w9" in m.nodes():
            cluster.write("DELETE", "/v1/nodes/w9?force=true")


def test_worker_killed_is_down_then_back(cluster):
    w = cluster.node("w2")
    names = set(cluster.leader().nodes())
    w.kill9()
    t0 = time.monotonic()
    leader = cluster.leader()
    wait_until(lambda: leader.nodes()["w2"]["status"] == "down", 10,
               what="w2 marked down (node_down_after 3s)")
    for m in cluster.managers:
        wait_until(lambda m=m: m.nodes()["w2"]["status"] == "down", 5,
                   what=f"w2 down on {m.name}")
    assert time.monotonic() - t0 >= 2.0, "w2 was marked down before node_down_after"
    # The other worker stays ready.
    assert leader.nodes()["w1"]["status"] == "ready"

    w.start()  # --data-dir alone
    assert "--join" not in " ".join(w.command())
    cluster.wait_ready(nodes=[w], timeout=15)
    n = leader.nodes()["w2"]
    assert n["role"] == "worker" and n["id"] == w.node_id
    assert set(leader.nodes()) == names


def test_node_rm_refuses_ready_node(cluster):
    leader = cluster.leader()
    m = cluster.followers(leader)[0]
    names = set(m.nodes())
    st, _, body = m.api("DELETE", "/v1/nodes/w1")
    assert_error(st, body, 409)
    st, _, body = m.api("DELETE", "/v1/nodes/nope")
    assert_error(st, body, 404)
    assert set(m.nodes()) == names
    st, _, body = m.api("GET", f"/v1/nodes/{leader.node_id}")
    assert st == 200 and body["name"] == leader.name, body


def test_workers_fail_over_to_another_manager(cluster):
    """Workers heartbeat to any manager and fail over: with the manager
    they joined through stopped, they stay ready past node_down_after."""
    first = cluster.node("m1")  # every worker joined through it
    assert first.stop() == 0
    try:
        others = cluster.running_managers()
        leader = cluster.leader(among=others)
        deadline = time.monotonic() + 6  # twice node_down_after
        while time.monotonic() < deadline:
            listed = leader.nodes()
            for w in cluster.workers:
                assert listed[w.name]["status"] == "ready", (
                    f"{w.name} went down while {first.name} was stopped: {listed[w.name]}")
            time.sleep(0.2)
    finally:
        first.start()
    cluster.wait_ready()


def test_promote_and_demote(cluster):
    """A worker promoted becomes a manager that runs Raft itself (a
    standby: the 3 voters are there): its own GET /v1/cluster answers as
    itself and it applies the log; demoted, it leaves the Raft
    configuration and goes on heartbeating as a worker."""
    w = cluster.add("worker", name="w8")
    leader = cluster.leader()
    try:
        p = leader.cli("node", "promote", "w8")
        assert p.returncode == 0, p.stderr
        assert p.stdout == "w8 promoted to manager\n", p.stdout

        def listed_member():
            for m in cluster.running_managers():
                n = m.nodes()["w8"]
                if n["role"] != "manager" or n["status"] != "ready" or (
                        (n["manager"] or {}).get("raft_role") not in ("standby", "voter")):
                    return False
            return n
        n = wait_until(listed_member, 30, 0.1, what="w8 listed as a Raft member after promote")
        assert n["manager"]["raft_role"] == "standby", n

        def runs_raft():
            c = w.cluster_info(timeout=5)
            return (c["node"]["id"] == w.node_id and c["leader"]["id"] == leader.node_id
                    and any(x["id"] == w.node_id for x in c["members"]))
        wait_until(runs_raft, 30, 0.1, what="w8 to run Raft itself (its own /v1/cluster)")
        assert w.running(), "the promoted node's shoald stopped"
        cluster.write("PUT", "/v1/services/seen-by-w8", spec("seen-by-w8"))
        wait_until(lambda: "seen-by-w8" in w.service_names(), 10,
                   what="w8 to apply a write from its own log")
        w.role = "manager"

        m = cluster.followers(leader)[0]
        st, _, body = m.api("POST", "/v1/nodes/w8/demote")
        assert st == 200 and body["name"] == "w8", body

        def worker_again():
            for x in cluster.running_managers():
                n = x.nodes()["w8"]
                if n["role"] != "worker" or n["manager"] is not None or n["status"] != "ready":
                    return False
                if any(mm["id"] == w.node_id for mm in x.cluster_info()["members"]):
                    return False
            return True
        wait_until(worker_again, 30, 0.1, what="w8 a worker again, out of the Raft configuration")
        w.role = "worker"
        # It goes on heartbeating: ready past node_down_after.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            assert leader.nodes()["w8"]["status"] == "ready", "demoted w8 went down"
            time.sleep(0.2)
        assert w.running(), "the demoted node's shoald stopped"
    finally:
        w.retired = True
        w.stop()
        cluster.write("DELETE", "/v1/nodes/w8?force=true")
        cluster.write("DELETE", "/v1/services/seen-by-w8", want=(200, 404))
    cluster.wait_ready()


def test_blocking_query_through_a_worker(cluster):
    """A worker forwards a blocking query to a manager; it is held there and
    answers when the service changes."""
    import threading

    w = cluster.workers[0]
    cluster.write("POST", "/v1/services", spec("bq-worker"))
    st, hdrs, _ = w.api("GET", "/v1/services/bq-worker", token=cluster.admin_token)
    assert st == 200
    index = int(hdrs["X-Shoal-Index"])
    got = {}

    def watch():
        got["answer"] = w.api("GET", f"/v1/services/bq-worker?index={index}&wait=20s",
                              token=cluster.admin_token, timeout=40)
        got["at"] = time.time()

    t = threading.Thread(target=watch)
    t.start()
    time.sleep(0.5)
    assert "answer" not in got, "the blocking query did not block"
    changed_at = time.time()
    cluster.write("POST", "/v1/services/bq-worker/scale", {"replicas": 4})
    t.join(30)
    assert not t.is_alive()
    st, hdrs, body = got["answer"]
    assert st == 200 and body["replicas"] == 4, (st, body)
    assert int(hdrs["X-Shoal-Index"]) > index
    assert got["at"] - changed_at < 15
    cluster.write("DELETE", "/v1/services/bq-worker")
