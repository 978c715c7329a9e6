"""Losing the leader of a 3-manager cluster under a steady write load
(docs/cluster.md): a new leader is elected, writes go on, and no
acknowledged write is lost, not even on the killed manager once it is
back."""

import time

from clustertest import WriteLoad
from shoaltest import wait_until

CLUSTER = {"managers": 3}


def missing_on(node, names):
    return sorted(set(names) - node.service_names())


def test_leader_killed_under_write_load(cluster):
    old = cluster.leader()
    survivors = cluster.followers(old)
    load = WriteLoad(cluster, prefix="load").start()
    try:
        wait_until(lambda: len(load.acked()) >= 20, 30, what="20 writes acknowledged")
        old.kill9()
        t_kill = time.monotonic()

        def new_leader():
            ids = {m.cluster_info(timeout=5)["leader"]["id"] for m in survivors}
            return len(ids) == 1 and ids.pop() not in ("", old.node_id)
        wait_until(new_leader, 30, 0.1, what="a new leader after kill -9 of the old one")
        leader = cluster.leader(among=survivors)
        assert leader is not old
        wait_until(lambda: load.acks_after(t_kill) >= 20, 30,
                   what="20 writes acknowledged after the kill")
    finally:
        load.stop()
    assert not load.unexpected, f"answers that are neither 2xx, 503 nor 409-on-retry: " \
                                f"{load.unexpected[:10]}"
    acked = load.acked()
    print(f"acks {len(acked)} ({load.acks_after(t_kill)} after the kill), "
          f"retries {load.retries}, 409 on retry {len(load.existing)}")
    assert len(acked) == len(set(acked))
    for m in survivors:
        wait_until(lambda m=m: not missing_on(m, acked), 20,
                   what=f"every acknowledged service on {m.name}")
        assert set(load.existing) <= m.service_names()

    # The killed manager comes back (--data-dir alone) and catches up.
    old.start()
    wait_until(lambda: not missing_on(old, acked), 30,
               what=f"{old.name} to catch up with every acknowledged service")
    cluster.wait_ready()
    assert cluster.leader().node_id in {m.node_id for m in cluster.managers}
    # Writes through the returning manager work.
    st, _, body = old.api("POST", "/v1/services", {"name": "after-return", "replicas": 0,
                                                   "task": {"command": ["/bin/true"]}})
    assert st == 201, body
    for m in cluster.managers:
        wait_until(lambda m=m: "after-return" in m.service_names(), 10,
                   what=f"after-return on {m.name}")


def test_follower_killed_writes_go_on(cluster):
    leader = cluster.leader()
    f = cluster.followers(leader)[0]
    f.kill9()
    st, _, body = leader.api("POST", "/v1/services", {"name": "one-follower-down",
                                                      "replicas": 0,
                                                      "task": {"command": ["/bin/true"]}})
    assert st == 201, body
    f.start()
    wait_until(lambda: "one-follower-down" in f.service_names(), 20,
               what=f"{f.name} to catch up")
    cluster.wait_ready()
