"""Containers (issue 5): services of driver runc, their images pulled from a
real docker-registry on 127.0.0.1 (images built by the test from
busybox-static, with whiteouts), real runc, per-task network namespaces on
each node's bridge with published ports, and everything removed with the
task. One manager and two workers on 127.0.0.1, each with its own bridge.
"""

import json
import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

import imagetest as it
from clustertest import Cluster
from clustertest import cluster_tasks as tasks
from shoaltest import free_ports, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")

# Docker's default capability set (14 capabilities) as /proc/PID/status shows it.
DOCKER_CAPS = 0xa80425fb


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    r = it.Registry(tmp_path_factory.mktemp("registry")).start()
    layout = it.build_image(tmp_path_factory.mktemp("img"))
    it.push(layout, f"{r.addr}/busybox:v1")
    r.layout = layout
    r.digests = it.layout_digests(layout)
    yield r
    r.stop()


@pytest.fixture(scope="module")
def cc(tmp_path_factory, reg):
    """The module's cluster, allowed to pull from the test registry."""
    c = Cluster(tmp_path_factory.mktemp("ccluster"), managers=1, workers=2,
                args=["--insecure-registry", reg.addr])
    try:
        c.start()
        yield c
    finally:
        problems = c.teardown_problems()
        assert not problems, problems


def svc(reg, name, replicas=1, image=None, **task):
    return {"name": name, "replicas": replicas,
            "task": {"driver": "runc", "image": image or f"{reg.addr}/busybox:v1",
                     "stop_grace_period": "1s", **task}}


def wanted(c, name):
    return [t for t in tasks(c, name) if t["desired_state"] == "running"]


def running(c, name, n):
    ts = wanted(c, name)
    return len(ts) == n and all(t["state"] == "running" for t in ts) and ts


def delete(c, name):
    c.write("DELETE", f"/v1/services/{name}")
    wait_until(lambda: not tasks(c, name), 30, what=f"{name}'s tasks gone")


def node_of(c, task):
    return c.by_id(task["node"])


def task_dir(c, task):
    return node_of(c, task).data_dir / "tasks" / task["id"]


def log_of(c, task):
    try:
        text = (task_dir(c, task) / "log").read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(line.split(" ", 2)[2] for line in text.splitlines() if line.count(" ") >= 2)


def http_get(addr, timeout=3):
    with urllib.request.urlopen(f"http://{addr}/", timeout=timeout) as r:
        return r.read().decode()


def leftovers(c, ids, live=0):
    """What is left on the host of the given tasks: mounts, netns files,
    cgroups, runc containers; and veths on the nodes' bridges and published
    ports beyond those of the `live` tasks still running."""
    found = []
    mounts = Path("/proc/self/mountinfo").read_text()
    for n in c.nodes:
        net = n.data_dir / "net"
        for tid in ids:
            if tid in mounts:
                found.append(f"mount of {tid}")
            if (net / "ns" / tid).exists() or (net / "tasks" / f"{tid}.json").exists():
                found.append(f"network state of {tid} on {n.name}")
            if (n.data_dir / "runc" / tid).exists():
                found.append(f"runc state of {tid} on {n.name}")
            found += [f"cgroup {g}" for g in Path("/sys/fs/cgroup").glob(f"*/shoal/{tid}")]
    ports, veths = [], []
    for n in c.nodes:
        r = subprocess.run(["nft", "list", "map", "ip", f"shoal_{n.bridge}", "ports"],
                           capture_output=True, text=True, check=False)
        ports += re.findall(r"(?:tcp|udp) \. \d+ : [\d.]+ \. \d+", r.stdout)
        links = subprocess.run(["ip", "-o", "link", "show", "master", n.bridge],
                               capture_output=True, text=True, check=False).stdout
        veths += re.findall(r"\d+: (vs[0-9a-f]+)@", links)
    if len(ports) > live:
        found.append(f"published ports: {ports}")
    if len(veths) > live:
        found.append(f"veths: {veths}")
    return found


def test_published_port_answers_on_every_node_and_all_is_removed(cc, reg):
    c = cc
    port = free_ports(1)[0]
    c.write("POST", "/v1/services",
            svc(reg, "c-web", 3, ports=[{"published": port, "target": 8080}]))
    ts = wait_until(lambda: running(c, "c-web", 3), 60, what="3 containers running")
    assert len({t["node"] for t in ts}) == 3, ts
    # Every node publishes the port on 127.0.0.1; every task answers at its
    # own address inside its node's bridge.
    assert http_get(f"127.0.0.1:{port}") == "hello from shoal\n"
    for t in ts:
        ip = (task_dir(c, t) / "net.ip").read_text().strip()
        assert http_get(f"{ip}:8080") == "hello from shoal\n", t
    first_ids = [t["id"] for t in ts]
    c.write("POST", "/v1/services/c-web/scale", {"replicas": 1})
    kept = wait_until(lambda: running(c, "c-web", 1), 30, what="scaled to 1")
    gone = [i for i in first_ids if i != kept[0]["id"]]
    wait_until(lambda: all(t["state"] == "shutdown" for t in tasks(c, "c-web")
                           if t["id"] in gone), 30, what="2 tasks shut down")
    wait_until(lambda: not leftovers(c, gone, live=1), 30,
               what="nothing left of the stopped containers")
    assert http_get(f"127.0.0.1:{port}") == "hello from shoal\n"
    delete(c, "c-web")
    wait_until(lambda: not leftovers(c, first_ids), 30,
               what="no mount, netns, veth, cgroup, runc state or nft element left")


def test_pull_by_digest_and_image_config(cc, reg):
    c = cc
    ref = f"{reg.addr}/busybox@{reg.digests['manifest']}"
    spec = svc(reg, "c-digest", 1, image=ref, network="host",
               args=["env; pwd; id; ls /data /opaque; sleep 100000"])
    spec["placement"] = {"constraints": ["node.role==manager"]}  # its image API: admin token
    c.write("POST", "/v1/services", spec)
    ts = wait_until(lambda: running(c, "c-digest", 1), 60, what="pulled by digest")
    out = wait_until(lambda: "nobody" not in log_of(c, ts[0]) and "new.txt" in log_of(c, ts[0])
                     and log_of(c, ts[0]), 10, what="its output")
    # Image config: Env, WorkingDir; the entrypoint ["/bin/sh", "-c"] with
    # the template's args in place of Cmd; layers with a whiteout
    # (remove-me.txt) and an opaque dir (old.txt) applied.
    assert "GREETING=hello" in out and "SHOAL_SERVICE=c-digest" in out
    assert "/var/www" in out and "uid=0(root)" in out
    assert "keep.txt" in out and "remove-me.txt" not in out
    assert "new.txt" in out and "old.txt" not in out
    st, _, imgs = node_of(c, ts[0]).api("GET", "/v1/node/images", token=c.admin_token)
    assert st == 200 and any(i["digest"] == reg.digests["manifest"] for i in imgs["images"]), imgs
    # In use: image rm is refused with 409 and the image stays.
    img_id = next(i["id"] for i in imgs["images"] if i["digest"] == reg.digests["manifest"])
    st, _, body = node_of(c, ts[0]).api("DELETE", f"/v1/node/images/{img_id[7:19]}",
                                        token=c.admin_token)
    assert st == 409, body
    delete(c, "c-digest")


def test_user_from_spec_and_exit_code(cc, reg):
    c = cc
    c.write("POST", "/v1/services",
            svc(reg, "c-user", 1, network="host", user="nobody",
                restart={"condition": "none"}, command=["/bin/sh", "-c", "id; exit 3"]))
    t = wait_until(lambda: [t for t in tasks(c, "c-user") if t["state"] == "failed"], 60,
                   what="failed with its exit code")[0]
    assert t["exit_code"] == 3 and "exited with code 3" in t["message"], t
    assert "uid=65534(nobody)" in log_of(c, t)
    delete(c, "c-user")


@pytest.mark.parametrize("case", ["corrupt_blob", "wrong_digest", "missing_tag", "unreachable",
                                  "hostile_layer"])
def test_bad_images_reject_the_task_with_a_reason(cc, reg, tmp_path, case):
    c = cc
    name = f"c-bad-{case.replace('_', '-')}"
    if case == "corrupt_blob":
        layout = it.build_image(tmp_path, name="corrupt",
                                extra_layers=[[it.f("junk.txt", "x" * 4096)]])
        it.push(layout, f"{reg.addr}/corrupt:v1")
        blob = reg.blob_path(it.layout_digests(layout)["layers"][-1])
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0xFF
        blob.write_bytes(bytes(data))
        image, why = f"{reg.addr}/corrupt:v1", "digest"
    elif case == "wrong_digest":
        image, why = f"{reg.addr}/busybox@sha256:{'0' * 64}", "not found"
    elif case == "missing_tag":
        image, why = f"{reg.addr}/busybox:nope", "not found"
    elif case == "unreachable":
        image, why = f"127.0.0.1:{it.closed_port()}/busybox:v1", "127.0.0.1"
    else:
        layout = it.build_image(tmp_path, name="hostile",
                                layers=[it.base_layer(),
                                        [it.symlink("out", "/tmp"), it.f("out/shoal-escape", "x")]])
        it.push(layout, f"{reg.addr}/hostile:v1")
        image, why = f"{reg.addr}/hostile:v1", "layer"
    c.write("POST", "/v1/services", svc(reg, name, 1, image=image))
    t = wait_until(lambda: [t for t in tasks(c, name) if t["state"] == "rejected"], 60,
                   what="the task rejected")[0]
    assert "image pull: " in t["message"] and why.lower() in t["message"].lower(), t
    node = node_of(c, t)
    tmp = node.data_dir / "images" / "tmp"
    assert not tmp.exists() or not list(tmp.iterdir()), list(tmp.iterdir())
    assert not Path("/tmp/shoal-escape").exists()
    delete(c, name)


def test_oom_and_grace_kill_are_reported(cc, reg):
    c = cc
    c.write("POST", "/v1/services",
            svc(reg, "c-oom", 1, network="host", restart={"condition": "none"},
                resources={"limits": {"memory": "16M"}},
                command=["/bin/sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1"]))
    t = wait_until(lambda: [t for t in tasks(c, "c-oom") if t["state"] == "failed"], 60,
                   what="killed by the memory limit")[0]
    assert t["exit_code"] == 137 and "out of memory" in t["message"], t
    delete(c, "c-oom")
    # PID 1 ignoring SIGTERM: killed once the grace period is over.
    c.write("POST", "/v1/services",
            svc(reg, "c-term", 1, network="host",
                command=["/bin/sh", "-c", "trap '' TERM; while true; do sleep 1; done"]))
    ts = wait_until(lambda: running(c, "c-term", 1), 60, what="running")
    c.write("DELETE", "/v1/services/c-term")
    t0 = time.monotonic()
    wait_until(lambda: not tasks(c, "c-term"), 30, what="stopped")
    took = time.monotonic() - t0
    assert 0.9 < took < 15, took
    wait_until(lambda: not leftovers(c, [ts[0]["id"]]), 30, what="nothing left")


def test_inside_the_container_defaults_hold(cc, reg):
    c = cc
    script = ("grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status; "
              "echo timer_list=$(wc -c < /proc/timer_list); "
              "touch /proc/sys/kernel/shoal 2>/dev/null && echo procsys=rw || echo procsys=ro; "
              "mknod /tmp/sda b 8 0 2>/dev/null && (head -c1 /tmp/sda >/dev/null 2>&1 && "
              "echo dev=open || echo dev=denied) || echo dev=denied; "
              "mount -t tmpfs x /mnt 2>/dev/null && echo mount=yes || echo mount=no; "
              "hostname; cat /etc/hosts; echo root=$(touch /rootfile 2>/dev/null && echo rw || echo ro); "
              "echo scratch > /scratch/f && echo scratch=ok; "
              "cat /data/persist 2>/dev/null; echo again > /data/persist; sleep 100000")
    c.write("POST", "/v1/services",
            svc(reg, "c-sec", 1, read_only=True, command=["/bin/sh", "-c", script],
                mounts=[{"type": "tmpfs", "target": "/scratch"},
                        {"type": "volume", "source": "c-sec-data", "target": "/data"}]))
    t = wait_until(lambda: running(c, "c-sec", 1), 60, what="running")[0]
    out = wait_until(lambda: "scratch=" in log_of(c, t) and log_of(c, t), 15, what="its output")
    fields = dict(re.findall(r"^(\w+):\s*(\S+)", out, re.M))
    assert int(fields["CapEff"], 16) == DOCKER_CAPS, out
    assert fields["Seccomp"] == "2" and fields["NoNewPrivs"] == "1", out
    assert "timer_list=0" in out  # masked
    assert "procsys=ro" in out and "dev=denied" in out and "mount=no" in out, out
    assert "root=ro" in out and "scratch=ok" in out, out
    assert "c-sec-1" in out, out
    # The named volume outlives the task: a restart sees what it wrote.
    vol = node_of(c, t).data_dir / "volumes" / "c-sec-data" / "_data" / "persist"
    wait_until(vol.exists, 10, what="the volume written")
    delete(c, "c-sec")
    assert vol.read_text() == "again\n"


def test_exec_health_check_runs_inside_the_container(cc, reg):
    c = cc
    c.write("POST", "/v1/services",
            svc(reg, "c-health", 1, network="host",
                command=["/bin/sh", "-c", "touch /tmp/ok; sleep 3; rm /tmp/ok; sleep 100000"],
                health={"type": "exec", "command": ["test", "-f", "/tmp/ok"], "interval": "500ms",
                        "retries": 2}))
    wait_until(lambda: any((t.get("health") or {}).get("status") == "healthy"
                           for t in tasks(c, "c-health")), 30, what="healthy")
    t = wait_until(lambda: [t for t in tasks(c, "c-health") if t.get("restarts", 0) >= 1], 30,
                   what="unhealthy, then restarted")[0]
    assert "unhealthy" in t["message"] or t["state"] in ("running", "starting"), t
    delete(c, "c-health")


def test_shoald_restart_keeps_containers(cc, reg):
    c = cc
    c.write("POST", "/v1/services", svc(reg, "c-keep", 2, network="host",
                                        command=["/bin/sleep", "100000"]))
    ts = wait_until(lambda: running(c, "c-keep", 2), 60, what="2 running")
    pids = {t["id"]: (task_dir(c, t) / "container.pid").read_text().strip() for t in ts}
    worker = next(n for n in c.workers if any(t["node"] == n.node_id for t in ts))
    worker.stop()
    worker.start()
    c.wait_ready()
    after = wait_until(lambda: running(c, "c-keep", 2), 30, what="still running")
    assert {t["id"] for t in after} == set(pids), after
    for t in after:
        assert (task_dir(c, t) / "container.pid").read_text().strip() == pids[t["id"]]
        assert Path(f"/proc/{pids[t['id']]}").exists()
    ids = list(pids)
    delete(c, "c-keep")
    try:
        wait_until(lambda: not leftovers(c, ids), 30, what="nothing left")
    finally:
        print("LEFT", leftovers(c, ids))
    assert not leftovers(c, ids), leftovers(c, ids)


def test_containers_removed_while_shoald_was_away_are_cleaned(cc, reg):
    c = cc
    spec = svc(reg, "c-away", 1, command=["/bin/sleep", "100000"],
               ports=[{"published": free_ports(1)[0], "target": 9}])
    spec["placement"] = {"constraints": ["node.role==worker"]}
    c.write("POST", "/v1/services", spec)
    t = wait_until(lambda: running(c, "c-away", 1), 60, what="running")[0]
    worker = node_of(c, t)
    worker.kill9()
    c.write("DELETE", "/v1/services/c-away")
    worker.start()
    c.wait_ready()
    wait_until(lambda: not tasks(c, "c-away"), 30, what="the task gone")
    wait_until(lambda: not leftovers(c, [t["id"]]), 30, what="nothing left")
    assert not (worker.data_dir / "tasks" / t["id"]).exists()


def test_rolling_update_of_containers_and_bridge_http_health(cc, reg):
    c = cc
    port = free_ports(1)[0]
    # No target: the port the image exposes (ExposedPorts 8080/tcp).
    spec = svc(reg, "c-roll", 3, ports=[{"published": port}],
               health={"type": "http", "port": 8080, "path": "/", "interval": "200ms"})
    spec["update"] = {"parallelism": 1, "order": "start-first", "monitor": "0s"}
    c.write("POST", "/v1/services", spec)
    ts = wait_until(lambda: running(c, "c-roll", 3), 60, what="3 running")
    wait_until(lambda: all((t.get("health") or {}).get("status") == "healthy"
                           for t in wanted(c, "c-roll")), 30, what="healthy through the bridge")
    spec["task"]["env"] = {"VERSION": "2"}
    c.write("PUT", "/v1/services/c-roll", spec)
    r = c.any_manager().cli("rollout", "status", "c-roll", "--timeout", "90s", timeout=120)
    assert r.returncode == 0, (r.stdout, r.stderr)
    after = wait_until(lambda: running(c, "c-roll", 3), 30, what="3 running the new spec")
    assert not {t["id"] for t in after} & {t["id"] for t in ts}
    assert http_get(f"127.0.0.1:{port}") == "hello from shoal\n"
    ids = [t["id"] for t in ts + after]
    delete(c, "c-roll")
    wait_until(lambda: not leftovers(c, ids), 30, what="nothing left")


def test_bind_mount_capabilities_and_stats(cc, reg, tmp_path):
    c = cc
    host_dir = tmp_path / "shared"
    host_dir.mkdir()
    (host_dir / "from-host.txt").write_text("host data\n")
    script = ("cat /host/from-host.txt; echo x > /host/new 2>/dev/null && echo bind=rw || "
              "echo bind=ro; grep CapEff /proc/self/status; sleep 100000")
    spec = svc(reg, "c-bind", 1, network="host", command=["/bin/sh", "-c", script],
               cap_add=["NET_ADMIN"], cap_drop=["NET_RAW"],
               mounts=[{"type": "bind", "source": str(host_dir), "target": "/host",
                        "read_only": True}])
    c.write("POST", "/v1/services", spec)
    t = wait_until(lambda: running(c, "c-bind", 1), 60, what="running")[0]
    out = wait_until(lambda: "CapEff" in log_of(c, t) and log_of(c, t), 15, what="its output")
    assert "host data" in out and "bind=ro" in out, out
    caps = int(re.search(r"CapEff:\s*([0-9a-f]+)", out).group(1), 16)
    assert caps & (1 << 12), out  # CAP_NET_ADMIN added
    assert not caps & (1 << 13), out  # CAP_NET_RAW dropped
    assert not (host_dir / "new").exists()
    # Live stats come from the container's cgroups.
    st, _, body = c.any_manager().api("GET", f"/v1/tasks/{t['id']}/stats", token=c.admin_token)
    assert st == 200, body
    assert body["pids"] >= 1 and body["memory"] > 0, body
    delete(c, "c-bind")


def test_updates_on_one_node_reuse_the_published_port(cc, reg):
    """The replacement lands on the node the old task leaves: its port is
    free only once the old container's clean-up is done, which the node
    reports as the end of the old task."""
    c = cc
    port = free_ports(1)[0]
    # By digest: once present, no registry round trip delays the new task.
    spec = svc(reg, "c-same", 1, command=["/bin/sleep", "100000"],
               image=f"{reg.addr}/busybox@{reg.digests['manifest']}",
               ports=[{"published": port, "target": 9}])
    spec["placement"] = {"constraints": ["node.name==w1"]}
    spec["update"] = {"parallelism": 1, "order": "start-first", "monitor": "0s",
                      "failure_action": "pause"}
    c.write("POST", "/v1/services", spec)
    wait_until(lambda: running(c, "c-same", 1), 60, what="running")
    for i in range(3):
        spec["task"]["env"] = {"ROUND": str(i)}
        c.write("PUT", "/v1/services/c-same", spec)
        r = c.any_manager().cli("rollout", "status", "c-same", "--timeout", "60s", timeout=90)
        assert r.returncode == 0, (i, r.stdout, r.stderr, tasks(c, "c-same"))
    delete(c, "c-same")
