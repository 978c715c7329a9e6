"""kill_tasks_under leaves nothing of what a container node killed -9 left:
processes in task cgroups, runc state, overlay and netns mounts, veths, the
node's bridge and nft table (when named), cgroups. The first test makes the
leftovers by hand (a real runc container, a sleep in its own netns and
cgroup, a veth pair, mounts), so it needs no shoald; the last one kills -9 a
real node running containers."""

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

import imagetest
from shoaltest import CGROUP_ROOT, _mounts_under, kill_tasks_under, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mounts, cgroups, veths)")

MEMORY = CGROUP_ROOT / "memory"


def sh(*cmd):
    subprocess.run(cmd, check=True, timeout=30, stdin=subprocess.DEVNULL,
                   capture_output=True)


def link_exists(name):
    return Path("/sys/class/net", name).exists()


def table_exists(table):
    return subprocess.run(["nft", "list", "table", "ip", table], capture_output=True,
                          timeout=30, check=False).returncode == 0


def runc_bundle(bundle, task_id, args):
    """A bundle of a busybox rootfs with `runc spec`'s config, not a
    terminal, its cgroups at /shoal/task_id."""
    rootfs = bundle / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", rootfs / "bin" / "busybox")
    for applet in ("sh", "sleep"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    sh("runc", "spec", "--bundle", str(bundle))
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"].update(terminal=False, args=args)
    cfg["root"]["path"] = str(rootfs)
    cfg["linux"]["cgroupsPath"] = f"/shoal/{task_id}"
    (bundle / "config.json").write_text(json.dumps(cfg))


def fake_container_task(data, task_id, veth):
    """A sleep in its own netns and memory cgroup, the netns bind-mounted on
    DATA/net/ns/ID, a veth with its peer inside, an overlay rootfs with a
    tmpfs on its /dev, the allocation naming the veth. Returns the Popen."""
    proc = subprocess.Popen(["unshare", "--net", "sleep", "1000"], stdin=subprocess.DEVNULL)
    wait_until(lambda: Path(f"/proc/{proc.pid}/comm").read_text().strip() == "sleep",
               10, what="unshare to exec sleep")
    group = MEMORY / "shoal" / task_id
    group.mkdir(parents=True)
    (group / "cgroup.procs").write_text(str(proc.pid))
    (CGROUP_ROOT / "pids" / "shoal" / task_id).mkdir(parents=True)
    tdir = data / "tasks" / task_id
    lower = data / "images" / "rootfs" / "img"
    for d in (tdir / "upper", tdir / "ovwork", tdir / "rootfs", lower / "dev"):
        d.mkdir(parents=True, exist_ok=True)
    (tdir / "state").write_text(f"monitor_pid=0\npid={proc.pid}\n")
    sh("mount", "-t", "overlay", "overlay", "-o",
       f"lowerdir={lower},upperdir={tdir / 'upper'},workdir={tdir / 'ovwork'}",
       str(tdir / "rootfs"))
    sh("mount", "-t", "tmpfs", "tmpfs", str(tdir / "rootfs" / "dev"))
    ns = data / "net" / "ns" / task_id
    ns.parent.mkdir(parents=True)
    ns.touch()
    sh("mount", "--bind", f"/proc/{proc.pid}/ns/net", str(ns))
    sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "p" + veth[1:])
    sh("ip", "link", "set", "p" + veth[1:], "netns", str(proc.pid))
    allocs = data / "net" / "tasks"
    allocs.mkdir(parents=True, exist_ok=True)
    (allocs / f"{task_id}.json").write_text(
        json.dumps({"ip": "10.251.0.2", "veth": veth, "ports": []}))
    return proc


def test_container_leftovers_are_removed(tmp_path):
    tag = uuid.uuid4().hex[:8]
    base, data = tmp_path / "n1", tmp_path / "n1" / "data"
    data.mkdir(parents=True)
    sibling = tmp_path / "n1-sibling"  # shares base's prefix: must be kept
    a_id, b_id, c_id = f"cleanupa{tag}", f"cleanupb{tag}", f"cleanupc{tag}"
    veth_a, veth_b = f"vt{tag}a", f"vt{tag}b"
    bridge, kept = f"bt{tag}", f"bk{tag}"
    table = f"shoal_{bridge}"
    procs = []
    try:
        procs.append(fake_container_task(data, a_id, veth_a))
        sh("ip", "link", "add", veth_b, "type", "veth", "peer", "name", "p" + veth_b[1:])
        (data / "net" / "tasks" / f"{b_id}.json").write_text(json.dumps({"veth": veth_b}))
        spaced = data / "tasks" / b_id / "with space"
        spaced.mkdir(parents=True)
        sh("mount", "-t", "tmpfs", "tmpfs", str(spaced))
        sibling.mkdir()
        sh("mount", "-t", "tmpfs", "tmpfs", str(sibling))
        for br in (bridge, kept):
            sh("ip", "link", "add", br, "type", "bridge")
        sh("nft", "add", "table", "ip", table)
        runc_root = data / "runc"
        runc_bundle(tmp_path / "bundle", c_id, ["/bin/sleep", "1000"])
        # The container inherits runc's stdio: no pipes, or run would wait on them.
        subprocess.run(["runc", "--root", str(runc_root), "run", "-d", "--bundle",
                        str(tmp_path / "bundle"), c_id], check=True, timeout=30,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        assert (MEMORY / "shoal" / c_id / "cgroup.procs").read_text().strip()

        kill_tasks_under(base, bridges=[(bridge, table)])

        assert procs[0].wait(timeout=10) == -9
        assert _mounts_under(str(base.resolve())) == []
        assert _mounts_under(str(sibling.resolve())) == [str(sibling.resolve())]
        for name in (veth_a, veth_b, bridge):
            assert not link_exists(name), name
        assert link_exists(kept)
        assert not table_exists(table)
        for task_id in (a_id, c_id):
            assert not list(CGROUP_ROOT.glob(f"*/shoal/{task_id}")), task_id
        assert not (runc_root / c_id).exists()
        out = subprocess.run(["runc", "--root", str(runc_root), "list", "-q"],
                             capture_output=True, text=True, timeout=30, check=False)
        assert out.stdout.strip() == ""
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        kill_tasks_under(base, bridges=[(bridge, table)])
        subprocess.run(["umount", "-l", str(sibling)], capture_output=True, timeout=30,
                       check=False)
        for name in (kept, bridge, veth_a, veth_b):
            if link_exists(name):
                subprocess.run(["ip", "link", "del", name], capture_output=True, timeout=30,
                               check=False)


def test_no_containers_is_a_no_op(tmp_path):
    """A node that ran only process tasks: its dirs stay, nothing is run."""
    tdir = tmp_path / "n1" / "data" / "tasks" / f"proc{uuid.uuid4().hex[:8]}"
    tdir.mkdir(parents=True)
    (tdir / "state").write_text("monitor_pid=0\npid=0\n")
    kill_tasks_under(tmp_path / "n1")
    assert tdir.is_dir() and (tdir / "state").exists()


def test_node_killed_with_containers(make_node, tmp_path):
    n = make_node()
    bridge, table = n.bridge, f"shoal_{n.bridge}"
    try:
        tar = imagetest.oci_tarball(imagetest.build_image(tmp_path), tmp_path / "oci.tar")
        st, _, body = n.api("POST", "/v1/node/images/load", {"path": str(tar)})
        assert st == 200, body
        task = {"driver": "runc", "image": "busybox:latest", "command": ["/bin/sleep", "1000"]}
        for name, network, replicas in (("b", "bridge", 2), ("h", "host", 1)):
            st, _, body = n.api("POST", "/v1/services", {
                "name": name, "replicas": replicas, "task": dict(task, network=network)})
            assert st in (200, 201), body

        def running():
            _, _, ts = n.api("GET", "/v1/tasks")
            return sum(1 for t in ts if t.get("state") == "running") == 3
        wait_until(running, 60, what="3 containers running")
        ids = [d.name for d in (n.data_dir / "tasks").iterdir()]
        veths = [json.loads(f.read_text())["veth"]
                 for f in (n.data_dir / "net" / "tasks").glob("*.json")]
        assert len(veths) == 2 and all(link_exists(v) for v in veths)
        n.kill9()

        kill_tasks_under(n.base, bridges=[(bridge, table)])

        assert _mounts_under(str(n.base.resolve())) == []
        assert not [g for i in ids for g in CGROUP_ROOT.glob(f"*/shoal/{i}")]
        assert not list((n.data_dir / "runc").glob("*"))
        assert not [v for v in veths + [bridge] if link_exists(v)]
        assert not table_exists(table)
    finally:
        n.kill9()
        kill_tasks_under(n.base, bridges=[(bridge, table)])
