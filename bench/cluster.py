"""Cluster benchmarks: writes/s on a 3-manager loopback cluster, failover
time after kill -9 of the leader (default and 200/20 ms timeouts), time to
mark a killed worker down, and manager and worker RSS at idle. Prints
figures; asserts nothing."""
import os
import shutil
import subprocess
import time

from benchlib import PROCS, TMP, call, free_port, rss_kb, start, stop_all, wait


def cluster(extra=()):
    """Starts 3 managers and a worker; returns (procs, apis, token)."""
    apis = [f"127.0.0.1:{free_port()}" for _ in range(4)]
    procs = [start(f"m0-{apis[0]}", ["--bootstrap", "--listen", f"127.0.0.1:{free_port()}",
                                     "--api", apis[0], "--name", "m0", *extra])]
    tokfile = os.path.join(TMP, f"m0-{apis[0]}", "data", "admin.token")
    assert wait(lambda: os.path.exists(tokfile) and
                call(apis[0], "GET", "/v1/cluster/join-token/manager",
                     open(tokfile).read().strip())[0] == 200)
    token = open(tokfile).read().strip()
    mtok = call(apis[0], "GET", "/v1/cluster/join-token/manager", token)[1]["token"]
    wtok = call(apis[0], "GET", "/v1/cluster/join-token/worker", token)[1]["token"]
    for i in (1, 2, 3):
        procs.append(start(f"n{i}-{apis[i]}", [
            "--join", apis[0], "--token", wtok if i == 3 else mtok, "--name", f"n{i}",
            "--listen", f"127.0.0.1:{free_port()}", "--api", apis[i], *extra]))

    def formed():
        st, nodes = call(apis[0], "GET", "/v1/nodes", token)
        if st != 200 or len(nodes) != 4:
            return False
        voters = [n for n in nodes if (n["manager"] or {}).get("raft_role") == "voter"]
        return len(voters) == 3 and all(n["status"] == "ready" for n in nodes)
    assert wait(formed), "cluster did not form"
    # The control plane alone: every node drained, so the replicas the
    # write benchmark asks for stay pending (bench/tasks.py runs tasks).
    st, nodes = call(apis[0], "GET", "/v1/nodes", token)
    for n in nodes:
        call(apis[0], "PATCH", f"/v1/nodes/{n['id']}", token, {"availability": "drain"})
    return procs, apis, token


def leader_index(apis, token, alive):
    for i in alive:
        st, h = call(apis[i], "GET", "/v1/health", token)
        if st == 200 and h.get("leader"):
            return i
    return None


def failover(extra, label):
    procs, apis, token = cluster(extra)
    li = leader_index(apis, token, [0, 1, 2])
    other = [i for i in (0, 1, 2) if i != li][0]
    procs[li].kill()
    t0 = time.time()
    n = 0
    while time.time() - t0 < 30:
        st, _ = call(apis[other], "POST", "/v1/services", token,
                     {"name": f"f{n}", "task": {"command": ["/bin/true"]}}, timeout=2)
        n += 1
        if st == 201:
            break
        time.sleep(0.005)
    print(f"{label:<52} {int((time.time() - t0) * 1000):>8} ms")
    procs[li].wait()
    return procs, apis, token


def main():
    print("== cluster: 3 managers + 1 worker on 127.0.0.1")
    procs, apis, token = cluster()
    time.sleep(1)
    li = leader_index(apis, token, [0, 1, 2])
    print(f"{'manager (leader) RSS idle:':<52} {rss_kb(procs[li].pid):>8} KiB")
    print(f"{'manager (follower) RSS idle:':<52} {rss_kb(procs[(li + 1) % 3].pid):>8} KiB")
    print(f"{'worker RSS idle:':<52} {rss_kb(procs[3].pid):>8} KiB")
    call(apis[li], "POST", "/v1/services", token,
         {"name": "web", "task": {"command": ["/bin/true"]}})
    lua = os.path.join(TMP, "scale.lua")
    with open(lua, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Authorization"] = "Bearer %s"\n'
                'local n = 0\nrequest = function()\n  n = n + 1\n'
                '  return wrk.format(nil, "/v1/services/web/scale", nil, '
                "'{\"replicas\": ' .. (n %% 1000) .. '}')\nend\n" % token)
    out = subprocess.run(["wrk", "-t2", "-c64", "-d5s", "-s", lua, f"http://{apis[li]}"],
                         capture_output=True, text=True).stdout
    rps = [l.split()[1] for l in out.splitlines() if l.startswith("Requests/sec")]
    print(f"{'acknowledged writes/s, 64 clients, 3 managers:':<52} {rps[0] if rps else '?':>8}")
    procs[3].kill()
    t0 = time.time()

    def worker_down():
        st, nodes = call(apis[li], "GET", "/v1/nodes", token)
        return st == 200 and any(n["name"] == "n3" and n["status"] == "down" for n in nodes)
    wait(worker_down, 20)
    print(f"{'killed worker marked down (defaults 1s/3s):':<52} "
          f"{int((time.time() - t0) * 1000):>8} ms")
    stop_all()
    failover((), "kill -9 leader -> first write acked (defaults 750/100 ms):")
    stop_all()
    failover(("--election-timeout", "200ms", "--heartbeat-timeout", "20ms"),
             "kill -9 leader -> first write acked (200/20 ms):")
    stop_all()


try:
    main()
finally:
    stop_all()
    shutil.rmtree(TMP, ignore_errors=True)
