"""Tasks on a 3-node loopback cluster (1 manager, 2 workers): time from
`service create --replicas 100` (a sleep) until all 100 run, 100 -> 500,
kill -9 of a worker holding 50 tasks until they all run elsewhere (default
heartbeat settings), shoald's RSS with 500 tasks and each monitor's. Prints
figures; asserts nothing."""
import os
import shutil
import time
from pathlib import Path

from benchlib import TMP, call, free_port, kill_tasks_under, rss_kb, start, stop_all, wait


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cluster():
    apis = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    procs = [start("m1", ["--bootstrap", "--listen", f"127.0.0.1:{free_port()}",
                          "--api", apis[0], "--name", "m1"])]
    tokfile = os.path.join(TMP, "m1", "data", "admin.token")
    assert wait(lambda: os.path.exists(tokfile) and
                call(apis[0], "GET", "/v1/cluster/join-token/worker",
                     open(tokfile).read().strip())[0] == 200)
    token = open(tokfile).read().strip()
    wtok = call(apis[0], "GET", "/v1/cluster/join-token/worker", token)[1]["token"]
    for i in (1, 2):
        procs.append(start(f"w{i}", ["--join", apis[0], "--token", wtok, "--name", f"w{i}",
                                     "--listen", f"127.0.0.1:{free_port()}", "--api", apis[i]]))

    def formed():
        st, nodes = call(apis[0], "GET", "/v1/nodes", token)
        return st == 200 and len(nodes) == 3 and all(n["status"] == "ready" for n in nodes)
    assert wait(formed), "cluster did not form"
    return procs, apis, token


def running(api, token, service):
    st, ts = call(api, "GET", f"/v1/tasks?service={service}", token)
    if st != 200:
        return []
    return [t for t in ts if t["desired_state"] == "running" and t["state"] == "running"]


def timed(label, pred, timeout=60):
    t0 = time.time()
    ok = wait(pred, timeout)
    ms = int((time.time() - t0) * 1000)
    print(f"{label:<52} {ms if ok else 'TIMEOUT':>8} ms")


def rollout_state(api, token, name):
    st, r = call(api, "GET", f"/v1/services/{name}/rollout", token)
    return r.get("state") if st == 200 and r else None


def rollouts(api, token):
    """A rolling update of 20 replicas, parallelism 5, no monitor delay; then
    a failing update rolled back automatically."""
    spec = {"name": "roll", "replicas": 20,
            "task": {"command": ["/bin/sleep", "100000"], "stop_grace_period": "1s"},
            "update": {"parallelism": 5, "monitor": "0s", "failure_action": "rollback"},
            "rollback": {"parallelism": 0, "monitor": "0s"}}
    call(api, "POST", "/v1/services", token, spec)
    wait(lambda: len(running(api, token, "roll")) == 20, 60)
    spec["task"]["env"] = {"RELEASE": "2"}
    call(api, "PUT", "/v1/services/roll", token, spec)
    timed("rolling update, 20 replicas, parallelism 5:",
          lambda: rollout_state(api, token, "roll") == "completed" and
          len(running(api, token, "roll")) == 20)
    spec["task"]["command"] = ["/bin/sh", "-c", "exit 1"]
    spec["task"]["restart"] = {"condition": "none"}
    call(api, "PUT", "/v1/services/roll", token, spec)
    timed("failing update -> all 20 back on the old spec:",
          lambda: rollout_state(api, token, "roll") == "rolled_back" and
          len(running(api, token, "roll")) == 20)
    call(api, "DELETE", "/v1/services/roll", token)
    wait(lambda: call(api, "GET", "/v1/tasks?service=roll", token)[1] in ([], None), 60)


def main():
    print("== tasks: 1 manager + 2 workers on 127.0.0.1, /bin/sleep under shoal-monitor")
    procs, apis, token = cluster()
    api = apis[0]
    spec = {"name": "bench", "replicas": 100,
            "task": {"command": ["/bin/sleep", "100000"], "stop_grace_period": "1s"}}
    call(api, "POST", "/v1/services", token, spec)
    timed("create --replicas 100 -> all 100 running:",
          lambda: len(running(api, token, "bench")) == 100)
    call(api, "POST", "/v1/services/bench/scale", token, {"replicas": 500})
    timed("scale 100 -> 500 -> all 500 running:",
          lambda: len(running(api, token, "bench")) == 500)
    time.sleep(1)
    print(f"{'manager shoald RSS (500 tasks in the cluster):':<52} {rss_kb(procs[0].pid):>8} KiB")
    print(f"{'worker shoald RSS (its share of the 500 tasks):':<52} {rss_kb(procs[1].pid):>8} KiB")
    mons = []
    for state in Path(TMP).glob("w1/data/tasks/*/state"):
        kv = dict(l.split("=", 1) for l in state.read_text().splitlines() if "=" in l)
        if kv.get("monitor_pid"):
            mons.append(int(kv["monitor_pid"]))
    if mons:
        rss = sum(rss_kb(p) for p in mons) / len(mons)
        pss = sum(pss_kb(p) for p in mons) / len(mons)
        print(f"{'per task: shoal-monitor RSS (Pss):':<52} {rss:>8.0f} KiB ({pss:.0f} KiB)")
    call(api, "POST", "/v1/services/bench/scale", token, {"replicas": 150})
    wait(lambda: len(running(api, token, "bench")) == 150 and
         len(call(api, "GET", "/v1/tasks?service=bench", token)[1]) <= 150 + 350, 60)
    st, nodes = call(api, "GET", "/v1/nodes", token)
    w2 = next(n["id"] for n in nodes if n["name"] == "w2")
    on_w2 = [t for t in running(api, token, "bench") if t["node"] == w2]
    procs[2].kill()
    timed(f"kill -9 worker with {len(on_w2)} tasks -> all run elsewhere:",
          lambda: (lambda r: len(r) == 150 and all(t["node"] != w2 for t in r))(
              running(api, token, "bench")))
    call(api, "DELETE", "/v1/services/bench", token)
    wait(lambda: call(api, "GET", "/v1/tasks?service=bench", token)[1] in ([], None), 60)
    rollouts(api, token)


try:
    main()
finally:
    stop_all()
    kill_tasks_under(TMP)
    shutil.rmtree(TMP, ignore_errors=True)
