"""Quorum loss and `--force-new-cluster` (docs/cluster.md): with 2 of 3
managers stopped the survivor refuses writes with 503 no_leader and still
answers reads, marked stale; restarted with --force-new-cluster it is a
one-voter cluster holding every write committed before."""

import itertools

from clustertest import CONN_ERRORS
from shoaltest import assert_error, spec, wait_until


def test_quorum_loss_then_force_new_cluster(make_cluster):
    c = make_cluster(managers=3)
    names = [f"kept-{i}" for i in range(5)]
    for name in names:
        c.write("POST", "/v1/services", spec(name))
    leader = c.leader()
    survivor, other = c.followers(leader)
    wait_until(lambda: set(names) <= survivor.service_names(), 10,
               what="the writes on the survivor")

    # Stop a follower, then the leader (which may hand over to the
    # survivor before it goes): 1 of 3 left.
    assert other.stop() == 0
    assert leader.stop() == 0

    probes = itertools.count()

    def refused():
        try:
            st, _, body = survivor.api("POST", "/v1/services", spec(f"probe-{next(probes)}"),
                                       timeout=5)
        except CONN_ERRORS:
            return None  # a write held by a leader that has not stepped down yet
        if st == 503:
            assert_error(st, body, 503, "no_leader")
            return True
        return None
    wait_until(refused, 30, 0.2, what="writes on the survivor to fail with 503 no_leader")

    def stale_read():
        st, hdrs, body = survivor.api("GET", "/v1/services", timeout=5)
        assert st == 200, (st, body)
        return hdrs.get("X-Shoal-Stale") == "true" and (hdrs, body)
    hdrs, body = wait_until(stale_read, 10, what="a read marked X-Shoal-Stale: true")
    assert hdrs.get("X-Shoal-Known-Leader") == "false", dict(hdrs)
    assert set(names) <= {s["name"] for s in body}
    st, hdrs, body = survivor.api("GET", f"/v1/services/{names[0]}")
    assert st == 200 and hdrs.get("X-Shoal-Stale") == "true", (st, dict(hdrs))
    st, _, body = survivor.api("DELETE", f"/v1/services/{names[0]}")
    assert_error(st, body, 503, "no_leader")

    # The survivor alone, with the same data, as a new one-voter cluster.
    assert survivor.stop() == 0
    survivor.start(once_args=["--force-new-cluster"])
    assert "--force-new-cluster" in survivor.stderr_text().split("==== e2e: starting")[-1]
    wait_until(lambda: (survivor.health() or {}).get("leader") is True, 30,
               what="the survivor to lead after --force-new-cluster")
    st, _, body = survivor.api("POST", "/v1/services", spec("after-force"))
    assert st == 201, body
    assert set(names) | {"after-force"} <= survivor.service_names()
    # The lost managers leave the Raft configuration one change at a time,
    # after the survivor leads: wait for it rather than race it.
    info = wait_until(lambda: (lambda i: [m["id"] for m in i.get("members", [])] ==
                               [survivor.node_id] and i)(survivor.cluster_info()), 30,
                      what="the survivor alone in the Raft configuration")
    assert info["members"][0]["role"] == "voter", info

    # A later plain restart keeps it that way.
    assert survivor.stop() == 0
    survivor.start()
    wait_until(lambda: (survivor.health() or {}).get("leader") is True, 30,
               what="the survivor to lead after a plain restart")
    assert set(names) | {"after-force"} <= survivor.service_names()
    st, _, body = survivor.api("POST", "/v1/services", spec("after-restart"))
    assert st == 201, body
