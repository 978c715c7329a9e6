"""The leader's reconciler and the scheduler (issue 4, placement half): the
tasks a service's replicas become, spread over the nodes, following scale,
deletion and constraints, with unplaceable replicas shown pending and why.
What nodes do with their tasks is test_supervision.py's."""

import collections

from clustertest import cluster_tasks as tasks
from shoaltest import spec, wait_until

CLUSTER = {"managers": 3, "workers": 0}


def live(c, service):
    return [t for t in tasks(c, service) if t["desired_state"] == "running" and t["node"]]


def per_node(c, service):
    return sorted(collections.Counter(t["node"] for t in live(c, service)).values())


def test_replicas_spread_scale_and_delete(cluster):
    c = cluster
    c.write("POST", "/v1/services", spec("sched-web", replicas=6))
    wait_until(lambda: per_node(c, "sched-web") == [2, 2, 2], 20, what="6 tasks spread 2/2/2")
    ts = live(c, "sched-web")
    assert sorted(t["slot"] for t in ts) == [1, 2, 3, 4, 5, 6]
    assert all(t["version"] == 1 for t in ts), ts
    wait_until(lambda: all(t["state"] == "running" for t in live(c, "sched-web")), 20,
               what="6 tasks running")
    c.write("POST", "/v1/services/sched-web/scale", {"replicas": 9})
    wait_until(lambda: per_node(c, "sched-web") == [3, 3, 3], 20, what="9 tasks 3/3/3")
    c.write("POST", "/v1/services/sched-web/scale", {"replicas": 2})
    wait_until(lambda: sorted(t["slot"] for t in live(c, "sched-web")) == [1, 2], 20,
               what="the highest slots stopped")
    # Every manager answers the same tasks.
    ids = {m.name: sorted(t["id"] for t in m.api("GET", "/v1/tasks?service=sched-web",
                                                   token=c.admin_token)[2])
           for m in c.running_managers()}
    wait_until(lambda: len({tuple(sorted(t["id"] for t in m.api(
        "GET", "/v1/tasks?service=sched-web", token=c.admin_token)[2]))
        for m in c.running_managers()}) == 1, 20, what=f"managers to agree: {ids}")
    one = live(c, "sched-web")[0]
    st, _, got = c.any_manager().api("GET", f"/v1/tasks/{one['id']}", token=c.admin_token)
    assert st == 200 and got["id"] == one["id"] and got["spec"]["command"] == ["/bin/sleep", "1000"]
    c.write("DELETE", "/v1/services/sched-web")
    wait_until(lambda: live(c, "sched-web") == [], 20, what="tasks of a deleted service gone")


def test_impossible_constraint_pending_with_reason(cluster):
    c = cluster
    c.write("POST", "/v1/services",
            spec("sched-zb", replicas=2, placement={"constraints": ["node.labels.zone==b"]}))

    def pending():
        ts = tasks(c, "sched-zb")
        return len(ts) == 2 and all(t["state"] == "pending" for t in ts) and ts

    ts = wait_until(pending, 20, what="2 pending tasks")
    assert all("node.labels.zone==b" in t["message"] for t in ts), ts
    # A node with the label appears: the replicas are placed on it.
    m = c.any_manager()
    node_id = m.nodes()[c.managers[1].name]["id"]
    c.write("PATCH", f"/v1/nodes/{node_id}", {"labels": {"zone": "b"}})
    wait_until(lambda: [t["node"] for t in live(c, "sched-zb")] == [node_id, node_id], 20,
               what="placed on the labelled node")
    assert not [t for t in tasks(c, "sched-zb") if t["state"] == "pending"]
    c.write("PATCH", f"/v1/nodes/{node_id}", {"labels": {}})
    c.write("DELETE", "/v1/services/sched-zb")
