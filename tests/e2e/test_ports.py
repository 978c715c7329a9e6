"""Published ports are a placement constraint (issues 5 and 6): two tasks
that publish the same port and protocol never share a node, a replica that
finds the port taken on every eligible node is pending and says which port,
and a start-first rollout whose new task needs the port its old one holds
falls back to stop-first for that slot instead of waiting forever. One
manager and one worker, on one host: real process tasks bind their ports
with network host."""

import sys
import urllib.request

from clustertest import cluster_tasks as tasks
from shoaltest import free_ports, wait_until

CLUSTER = {"managers": 1, "workers": 1}

SLEEP = ["/bin/sleep", "100000"]


def live(c, name):
    return [t for t in tasks(c, name) if t["desired_state"] == "running" and t["node"]]


def pending(c, name):
    return [t for t in tasks(c, name) if t["state"] == "pending"]


def ports(port):
    return [{"published": port, "target": port, "protocol": "tcp"}]


def test_port_taken_on_every_node_is_pending(cluster):
    c = cluster
    port, = free_ports(1)
    c.write("POST", "/v1/services", {"name": "pt-a", "replicas": 3, "task": {
        "command": SLEEP, "network": "host", "ports": ports(port)}})
    # One per node; the third replica has nowhere to go.
    wait_until(lambda: len({t["node"] for t in live(c, "pt-a")}) == 2 and pending(c, "pt-a"), 20,
               what="2 tasks on 2 nodes and one pending")
    p = pending(c, "pt-a")
    assert len(p) == 1, p
    assert p[0]["message"] == f"port {port}/tcp is in use on every eligible node", p
    # Another service with the port: pending too; udp on the same number is free.
    c.write("POST", "/v1/services", {"name": "pt-b", "replicas": 1, "task": {
        "command": SLEEP, "ports": ports(port)}})
    c.write("POST", "/v1/services", {"name": "pt-u", "replicas": 2, "task": {
        "command": SLEEP, "ports": [{"published": port, "target": port, "protocol": "udp"}]}})
    wait_until(lambda: pending(c, "pt-b") and len(live(c, "pt-u")) == 2, 20,
               what="pt-b pending, pt-u placed")
    # Scale pt-a down to one: the freed node takes pt-b.
    c.write("POST", "/v1/services/pt-a/scale", {"replicas": 1})
    wait_until(lambda: len(live(c, "pt-b")) == 1 and not pending(c, "pt-b"), 20,
               what="pt-b placed once a node has the port free")
    nodes_a = {t["node"] for t in live(c, "pt-a")}
    nodes_b = {t["node"] for t in live(c, "pt-b")}
    assert not nodes_a & nodes_b, (nodes_a, nodes_b)
    for name in ("pt-a", "pt-b", "pt-u"):
        c.write("DELETE", f"/v1/services/{name}")
    wait_until(lambda: not any(tasks(c, n) for n in ("pt-a", "pt-b", "pt-u")), 30,
               what="tasks gone")


def serves(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def test_start_first_falls_back_to_stop_first_on_port_conflict(cluster):
    c = cluster
    port, = free_ports(1)
    upd = {"parallelism": 1, "order": "start-first", "monitor": "300ms"}

    def spec(v):
        return {"name": "pt-web", "replicas": 1, "update": upd,
                "placement": {"constraints": ["node.role==manager"]},
                "task": {"command": [sys.executable, "-m", "http.server", str(port), "--bind",
                                     "127.0.0.1", "--directory", "/"],
                         "env": {"V": v}, "network": "host", "ports": ports(port),
                         "health": {"type": "http", "port": port, "path": "/",
                                    "interval": "200ms", "timeout": "1s", "retries": 3}}}

    c.write("POST", "/v1/services", spec("1"))
    wait_until(lambda: [t for t in live(c, "pt-web") if t["state"] == "running"]
               and serves(port), 30, what="pt-web serving")
    v2 = c.write("PUT", "/v1/services/pt-web", spec("2"))["version"]
    worst = {"running": 0}

    def done():
        ts = tasks(c, "pt-web")
        worst["running"] = max(worst["running"], len([t for t in ts if t["state"] == "running"]))
        st, _, r = c.any_manager().api("GET", "/v1/services/pt-web/rollout",
                                       token=c.admin_token, timeout=5)
        assert st == 200, r
        assert r["state"] in ("updating", "completed"), r
        return r["state"] == "completed" and r

    r = wait_until(done, 60, interval=0.05, what="the rollout to complete")
    assert r["updated"] == 1 and r["total"] == 1, r
    # Never two at once (the port is one), never a new task failing on it.
    assert worst["running"] == 1, worst
    ts = live(c, "pt-web")
    assert len(ts) == 1 and ts[0]["version"] == v2 and ts[0]["state"] == "running", ts
    assert ts[0]["restarts"] == 0, ts
    assert not [t for t in tasks(c, "pt-web") if t["state"] in ("failed", "rejected")]
    wait_until(lambda: serves(port), 10, what="the new task serving")
    c.write("DELETE", "/v1/services/pt-web")
    wait_until(lambda: not tasks(c, "pt-web"), 30, what="pt-web gone")
