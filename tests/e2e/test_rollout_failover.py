"""A rolling update survives the loss of the leader (issue 6): the rollout's
progress lives in the replicated state and every round is derived from it,
so the new leader goes on where the old one stopped, with no duplicate and
no lost task. Three managers, which also run the tasks."""

import collections

from clustertest import cluster_tasks as tasks
from shoaltest import wait_until

CLUSTER = {"managers": 3, "workers": 0}


def rollout(c, service):
    st, _, body = c.any_manager().api("GET", f"/v1/services/{service}/rollout",
                                      token=c.admin_token, timeout=5)
    assert st == 200, body
    return body


def test_rollout_goes_on_after_leader_failover(cluster):
    c = cluster
    spec = {"name": "ro-fail", "replicas": 6,
            "task": {"command": ["/bin/sleep", "100000"], "stop_grace_period": "1s"},
            "update": {"parallelism": 1, "monitor": "700ms"}}
    c.write("POST", "/v1/services", spec)

    def running(version):
        ts = [t for t in tasks(c, "ro-fail") if t["desired_state"] == "running"]
        ok = len(ts) == 6 and all(t["state"] == "running" and t["version"] == version
                                  for t in ts)
        return ok and ts

    wait_until(lambda: running(1), 30, what="6 tasks at version 1")
    spec["task"]["env"] = {"RELEASE": "2"}
    c.write("PUT", "/v1/services/ro-fail", spec)
    wait_until(lambda: rollout(c, "ro-fail")["updated"] >= 1, 30, what="the rollout under way")
    old_leader = c.leader()
    old_leader.kill9()
    new_leader = c.leader(among=[m for m in c.running_managers()])
    assert new_leader is not old_leader
    r = wait_until(lambda: (lambda x: x["state"] == "completed" and x)(rollout(c, "ro-fail")),
                   60, what="the rollout completed under the new leader")
    assert r["to_version"] == 2 and r["total"] == 6
    ts = wait_until(lambda: running(2), 30, what="6 tasks at version 2")
    # One task per slot, no duplicates.
    assert sorted(collections.Counter(t["slot"] for t in ts).values()) == [1] * 6
    assert all(t["node"] != old_leader.node_id for t in ts)
    c.write("DELETE", "/v1/services/ro-fail")
