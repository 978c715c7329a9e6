"""Containers: task start latency on a one-node cluster, from the task's
assignment (the leader's time of the plan that made it) to its first
`running` event, for a runc container (network
host and bridge) and for a process task, beside a bare `runc run -d` of the
same bundle (Shoal's own config.json, copied from a running task, with a
busybox rootfs) timed until its pid file exists, all in the same run and
interleaved; then 50 container replicas on a 3-node loopback cluster (each
node its own bridge and subnet) until all run. Prints medians and p90 of
BENCH_CONTAINER_RUNS runs (default 20); asserts nothing. Everything made is
removed at the end (kill_tasks_under, the bridges and nft tables too)."""
import json
import os
import shutil
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path

from benchlib import TMP, call, free_port, kill_tasks_under, start, stop_all, wait

RUNS = int(os.environ.get("BENCH_CONTAINER_RUNS", "20"))
REPLICAS = 50
TAG = f"{os.getpid() % 100000:05d}"
IMAGE = "busybox:latest"
SLEEP = ["/bin/sleep", "100000"]
BRIDGES = []  # (bridge, nft table) pairs the benchmark's nodes made


# ---- figures ------------------------------------------------------------------

def p90(xs):
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]


def report(label, xs, ref=None):
    if not xs:
        print(f"{label:<52} {'n/a':>9}")
        return
    line = f"{label:<52} {statistics.median(xs) * 1000:7.1f} ms  p90 {p90(xs) * 1000:6.1f} ms"
    if ref:
        line += f"  ({statistics.median(xs) / statistics.median(ref):.2f}x bare runc)"
    print(f"{line}  n={len(xs)}")


def run(cmd, timeout=60):
    """Runs cmd with no pipes (a container inherits runc's stdio)."""
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, timeout=timeout, check=False).returncode


# ---- bare runc ------------------------------------------------------------------

def busybox_rootfs(rootfs):
    """/bin/busybox and its applets, /etc/passwd and /etc/group, /tmp."""
    for d in ("bin", "etc", "tmp", "proc", "dev", "sys"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    shutil.copy("/bin/busybox", rootfs / "bin" / "busybox")
    for applet in ("sh", "sleep", "cat", "true"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\n")


def spec_config(bundle):
    """runc's own template (`runc spec`), for when no Shoal config exists."""
    run(["runc", "spec", "--bundle", str(bundle)])
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["process"].update(terminal=False, args=SLEEP)
    cfg["root"] = {"path": str(bundle / "rootfs"), "readonly": False}
    return cfg


def shoal_config(task_dir, bundle):
    """A running Shoal task's config.json with its paths moved to bundle: the
    rootfs is ours, the task's etc/ files are copied, a netns path is dropped
    (runc makes an empty one)."""
    text = (task_dir / "config.json").read_text().replace(str(task_dir), str(bundle))
    cfg = json.loads(text)
    cfg["root"]["path"] = str(bundle / "rootfs")
    if (task_dir / "etc").is_dir():
        shutil.copytree(task_dir / "etc", bundle / "etc", dirs_exist_ok=True)
    for ns in cfg.get("linux", {}).get("namespaces", []):
        ns.pop("path", None)
    return cfg


def make_bundle(task_dir):
    """The bare runc bundle: busybox rootfs, Shoal's config when task_dir
    has one (else runc's template). Returns (bundle, label)."""
    bundle = Path(TMP) / "bare" / "bundle"
    if bundle.exists():
        shutil.rmtree(bundle)
    busybox_rootfs(bundle / "rootfs")
    if task_dir and (task_dir / "config.json").exists():
        cfg, label = shoal_config(task_dir, bundle), "Shoal's config.json"
    else:
        cfg, label = spec_config(bundle), "runc spec's config.json"
    (bundle / "config.json").write_text(json.dumps(cfg, indent=1))
    return bundle, label


def bare_run(bundle, i):
    """`runc run -d` of the bundle, timed until the pid file exists; then
    kill + delete (not timed). Returns seconds or None."""
    root, cid = Path(TMP) / "bare" / "runc", f"bare{TAG}x{i}"
    cfg = json.loads((bundle / "config.json").read_text())
    cfg.setdefault("linux", {})["cgroupsPath"] = f"/shoal/{cid}"
    (bundle / "config.json").write_text(json.dumps(cfg, indent=1))
    pidfile = bundle / f"{cid}.pid"
    t0 = time.monotonic()
    p = subprocess.Popen(["runc", "--root", str(root), "run", "-d", "--pid-file", str(pidfile),
                          "--bundle", str(bundle), cid], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dt = None
    while time.monotonic() - t0 < 30:
        if pidfile.exists() and pidfile.stat().st_size > 0:
            dt = time.monotonic() - t0
            break
        if p.poll() not in (None, 0):
            break
        time.sleep(0.0005)
    p.wait(timeout=30)
    run(["runc", "--root", str(root), "kill", cid, "KILL"])
    run(["runc", "--root", str(root), "delete", "--force", cid])
    pidfile.unlink(missing_ok=True)
    return dt


# ---- one node: start latency --------------------------------------------------------

def get_events(api, token, index, name, wait_s=30):
    """task.state events of service name after index (a blocking query);
    returns (events, next index)."""
    url = (f"http://{api}/v1/events?index={index}&wait={wait_s}s&service={name}"
           f"&type=task.state")
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=wait_s + 10) as r:
        nxt = int(r.headers.get("X-Shoal-Index") or index)
        return [json.loads(l) for l in r.read().splitlines() if l.strip()], nxt


def event_head(api, token):
    req = urllib.request.Request(f"http://{api}/v1/events?type=task.state",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return int(r.headers.get("X-Shoal-Index") or 0)


def start_latency(api, token, spec, timeout=60):
    """Creates spec (1 replica), times from its task's assignment (the
    plan's commit) to its `running` event. Returns (seconds or None, task id, {state: ms
    from the create's answer to the event's `at`, the time the API applied
    the node's report})."""
    index = event_head(api, token)
    st, body = call(api, "POST", "/v1/services", token, spec)
    t0, wall0 = time.monotonic(), time.time() * 1000
    if st not in (200, 201):
        print(f"containers: create {spec['name']} answered {st} {body}")
        return None, None, {}
    phases = {}
    while time.monotonic() - t0 < timeout:
        evs, index = get_events(api, token, index, spec["name"])
        for e in evs:
            phases.setdefault(e.get("to"), e.get("at", 0) - wall0)
            if e.get("to") == "running":
                # Assignment -> running: from the leader's time of the plan
                # that made the task (created_ms) to the time it applied
                # the node's report (the event's at), both on its clock.
                st, task = call(api, "GET", f"/v1/tasks/{e.get('task')}", token)
                created = task.get("created_ms") if st == 200 and task else None
                if created:
                    return (e.get("at", 0) - created) / 1000, e.get("task"), phases
                return time.monotonic() - t0, e.get("task"), phases
            if e.get("to") in ("failed", "rejected"):
                print(f"containers: {spec['name']}: task {e.get('to')}: {e.get('message')}")
                return None, e.get("task"), phases
    return None, None, phases


def report_phases(runs):
    """The median time of each state's event after the create's answer."""
    states = [st for st in ("assigned", "preparing", "starting", "running")
              if any(st in r for r in runs)]
    parts = [f"{st} {statistics.median(r[st] for r in runs if st in r):.0f}" for st in states]
    if parts:
        print(f"    state events, median ms after the create's answer: {', '.join(parts)}")


def delete_service(api, token, name, nodes_dirs=(), timeout=60):
    """Deletes the service; waits until its tasks are gone and no runc
    container is left in nodes_dirs' runc roots."""
    call(api, "DELETE", f"/v1/services/{name}", token)
    wait(lambda: call(api, "GET", f"/v1/tasks?service={name}", token)[1] in ([], None) and
         not any(any(Path(d, "runc").glob("*/state.json")) for d in nodes_dirs), timeout)


def container_spec(name, network, replicas=1):
    return {"name": name, "replicas": replicas,
            "task": {"driver": "runc", "image": IMAGE, "command": SLEEP, "network": network,
                     "stop_grace_period": "1s"}}


def process_spec(name):
    return {"name": name, "replicas": 1, "task": {"command": SLEEP, "stop_grace_period": "1s"}}


# ---- nodes ------------------------------------------------------------------------

def free_subnets(n):
    """n /24 subnets of 10.200-10.249.x no route on this host uses yet."""
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, timeout=30,
                            check=False).stdout
    out = []
    for k in range(os.getpid() % 200, os.getpid() % 200 + 12800):
        net = f"10.{200 + (k // 256) % 50}.{k % 256}.0/24"
        if net.split("/")[0][:-1] not in routes and net not in out:
            out.append(net)
        if len(out) == n:
            return out
    raise SystemExit("containers: no free 10.x subnet")


def node_args(name, api, subnet, extra=()):
    """shoald options of node name: API, Raft port, its own bridge and
    subnet (recorded in BRIDGES for the clean-up)."""
    bridge = f"sb{TAG}{name}"
    BRIDGES.append((bridge, f"shoal_{bridge}"))
    return ["--listen", f"127.0.0.1:{free_port()}", "--api", api, "--name", name,
            "--bridge", bridge, "--bridge-subnet", subnet, *extra]


def admin_token(name, api):
    tokfile = Path(TMP) / name / "data" / "admin.token"
    ok = wait(lambda: tokfile.exists() and call(api, "GET", "/v1/cluster", tokfile.read_text()
                                                .strip())[0] == 200)
    if not ok:
        raise SystemExit(f"containers: {name} did not start (see {TMP}/{name}/log)")
    return tokfile.read_text().strip()


def image_tarball():
    """The 3-layer busybox test image (tests/e2e/imagetest.py) as an OCI
    layout tarball: what `shoal image load` takes."""
    import imagetest  # pylint: disable=import-outside-toplevel
    layout = imagetest.build_image(Path(TMP) / "image")
    return imagetest.oci_tarball(layout, Path(TMP) / "image" / "busybox-oci.tar")


def load_image(api, token, tar):
    st, body = call(api, "POST", "/v1/node/images/load", token, {"path": str(tar)}, timeout=120)
    if st != 200:
        print(f"containers: image load on {api} answered {st} {body}")
    return st == 200


def cluster(n, subnets, tar):
    """n managers, each with its own bridge, the image loaded on every node
    (a worker never gets the admin token its image routes ask for). Returns
    (apis, token, data dirs)."""
    apis = [f"127.0.0.1:{free_port()}" for _ in range(n)]
    start("k1", ["--bootstrap", *node_args("k1", apis[0], subnets[0])])
    token = admin_token("k1", apis[0])
    answers = []
    if not wait(lambda: answers.append(call(apis[0], "GET", "/v1/cluster/join-token/manager",
                                            token)) or answers[-1][0] == 200, 60):
        raise SystemExit(f"containers: no join token: {answers[-1]}")
    mtok = answers[-1][1]["token"]
    for i in range(1, n):
        start(f"k{i + 1}", ["--join", apis[0], "--token", mtok,
                            *node_args(f"k{i + 1}", apis[i], subnets[i])])

    def formed():
        st, nodes = call(apis[0], "GET", "/v1/nodes", token)
        return st == 200 and len(nodes) == n and all(x["status"] == "ready" for x in nodes)
    if not wait(formed, 60):
        raise SystemExit("containers: the cluster did not form")
    for api in apis:
        load_image(api, token, tar)
    return apis, token, [Path(TMP) / f"k{i + 1}" / "data" for i in range(n)]


# ---- the benchmarks --------------------------------------------------------------------

def warm_up(api, token, data):
    """One container (host network) and one process task, not counted; the
    container's config.json becomes the bare runc bundle's."""
    dt, task, _ = start_latency(api, token, container_spec("warm", "host"))
    task_dir = data / "tasks" / task if dt is not None and task else None
    bundle, label = make_bundle(task_dir)
    delete_service(api, token, "warm", [data])
    start_latency(api, token, process_spec("warmp"))
    delete_service(api, token, "warmp", [data])
    return bundle, label, dt is not None


def start_latencies(tar):
    """Bare runc, Shoal container (host, bridge), Shoal process task: RUNS
    of each, interleaved, on a one-node cluster."""
    api = f"127.0.0.1:{free_port()}"
    start("c1", ["--bootstrap", *node_args("c1", api, free_subnets(1)[0])])
    token = admin_token("c1", api)
    data = Path(TMP) / "c1" / "data"
    runc_ok = load_image(api, token, tar)
    bundle, label, runc_ok = warm_up(api, token, data) if runc_ok else (*make_bundle(None), False)
    print(f"== containers: start latency, 1 node, {RUNS} runs each; bare runc with {label}")
    kinds = ["bare runc run -d", "process task"]
    if runc_ok:
        kinds[1:1] = ["runc task, network host", "runc task, network bridge"]
    series = {k: [] for k in kinds}
    phases = {k: [] for k in kinds}
    for i in range(RUNS):
        series[kinds[0]].append(bare_run(bundle, i))
        for kind in kinds[1:]:
            name = f"s{i}{kind.split()[0][0]}{kind.split()[-1][0]}"
            spec = (process_spec(name) if kind == "process task" else
                    container_spec(name, kind.split()[-1]))
            dt, _, ph = start_latency(api, token, spec)
            series[kind].append(dt)
            phases[kind].append(ph)
            delete_service(api, token, name, [data])
    bare = [x for x in series[kinds[0]] if x is not None]
    for kind in kinds:
        xs = [x for x in series[kind] if x is not None]
        report(f"{kind}: assignment -> running:" if kind != kinds[0] else
               f"{kind} (until the pid file exists):", xs,
               bare if kind.startswith("runc") else None)
        report_phases(phases[kind])
        if len(xs) < RUNS:
            print(f"    {RUNS - len(xs)} of {RUNS} runs failed or timed out")
    if not runc_ok:
        print("containers: no runc task ran (no runc driver or image load failed): skipped")
    return runc_ok


def count_running(api, token, name):
    st, ts = call(api, "GET", f"/v1/tasks?service={name}", token)
    return sum(1 for t in ts if t.get("state") == "running") if st == 200 and ts else 0


def replicas_on_cluster(tar):
    """REPLICAS containers on a 3-node loopback cluster: create -> all
    running, then delete -> all gone, for each network mode."""
    print(f"== containers: {REPLICAS} replicas on 3 nodes (127.0.0.1, a bridge each)")
    apis, token, dirs = cluster(3, free_subnets(3), tar)
    api = apis[0]
    for network in ("bridge", "host"):
        name = f"many{network}"
        call(api, "POST", "/v1/services", token, container_spec(name, network, REPLICAS))
        t0 = time.monotonic()
        ok = wait(lambda: count_running(api, token, name) == REPLICAS, 180)
        took = f"{(time.monotonic() - t0) * 1000:7.0f} ms" if ok else \
            f"TIMEOUT ({count_running(api, token, name)} running)"
        st, ts = call(api, "GET", f"/v1/tasks?service={name}", token)
        nodes = {t.get("node") for t in ts} if st == 200 and ts else set()
        per_node = sorted(sum(1 for t in ts if t.get("node") == n) for n in nodes)
        print(f"{f'create --replicas {REPLICAS}, network {network} -> all running:':<52} "
              f"{took}  per node {per_node}")
        call(api, "DELETE", f"/v1/services/{name}", token)
        t0 = time.monotonic()
        ok = wait(lambda: call(api, "GET", f"/v1/tasks?service={name}", token)[1] in ([], None)
                  and not any(any(Path(d, "runc").glob("*/state.json")) for d in dirs), 180)
        took = f"{(time.monotonic() - t0) * 1000:7.0f} ms" if ok else "TIMEOUT"
        print(f"{f'delete, network {network} -> all gone:':<52} {took}")
    return api, token


def rollout_state(api, token, name):
    st, r = call(api, "GET", f"/v1/services/{name}/rollout", token)
    return r.get("state") if st == 200 and r else None


def rolling_updates(api, token):
    """Issue 6's figures for containers: a rolling update of 20 replicas,
    parallelism 5, no monitor delay; then a failing update rolled back."""
    name = "croll"
    spec = container_spec(name, "bridge", 20)
    # An init that ends on SIGTERM (a sleeping PID 1 ignores it and would
    # wait out the grace period at every stop).
    spec["task"]["command"] = ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
    spec["update"] = {"parallelism": 5, "monitor": "0s", "failure_action": "rollback"}
    spec["rollback"] = {"parallelism": 0, "monitor": "0s"}
    call(api, "POST", "/v1/services", token, spec)
    wait(lambda: count_running(api, token, name) == 20, 120)

    def timed(label, pred):
        t0 = time.monotonic()
        ok = wait(pred, 120)
        took = f"{(time.monotonic() - t0) * 1000:7.0f} ms" if ok else "TIMEOUT"
        print(f"{label:<52} {took}")

    spec["task"]["env"] = {"RELEASE": "2"}
    call(api, "PUT", f"/v1/services/{name}", token, spec)
    timed("containers: rolling update, 20 replicas, par. 5:",
          lambda: rollout_state(api, token, name) == "completed" and
          count_running(api, token, name) == 20)
    spec["task"]["command"] = ["/bin/sh", "-c", "exit 1"]
    spec["task"]["restart"] = {"condition": "none"}
    call(api, "PUT", f"/v1/services/{name}", token, spec)
    timed("containers: failing update -> all 20 back:",
          lambda: rollout_state(api, token, name) == "rolled_back" and
          count_running(api, token, name) == 20)
    call(api, "DELETE", f"/v1/services/{name}", token)
    wait(lambda: call(api, "GET", f"/v1/tasks?service={name}", token)[1] in ([], None), 120)


def main():
    tar = image_tarball()
    if start_latencies(tar):
        stop_all()
        api, token = replicas_on_cluster(tar)
        rolling_updates(api, token)


if __name__ == "__main__":
    try:
        main()
    finally:
        stop_all()
        kill_tasks_under(TMP, bridges=BRIDGES)
        shutil.rmtree(TMP, ignore_errors=True)
