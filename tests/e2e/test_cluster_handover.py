"""A leader stopped with SIGTERM hands leadership over (docs/cluster.md:
`raft_transfer` to an up-to-date voter), so a planned restart costs no
election timeout.

The managers run with a 5 s election timeout: an election after a leader
that simply vanished takes at least that long, a handover well under it,
so the bound below (4 s) tells the two apart without a tight timing."""

import signal
import time

from shoaltest import spec, wait_until

CLUSTER = {"managers": 3, "args": ["--election-timeout", "5s"]}

HANDOVER_BOUND = 4.0


def test_sigterm_leader_hands_over(cluster):
    old = cluster.leader()
    survivors = cluster.followers(old)
    cluster.write("POST", "/v1/services", spec("before-handover"))
    t0 = time.monotonic()
    old.begin_stop(signal.SIGTERM)

    def new_leader():
        for m in survivors:
            h = m.health(timeout=2)
            if h and h.get("leader"):
                return m
        return None
    leader = wait_until(new_leader, 30, 0.02, what="a new leader after SIGTERM of the old one")
    took = time.monotonic() - t0
    print(f"new leader {leader.name} known {took:.2f}s after SIGTERM of {old.name}")
    assert old.end_stop() == 0, "the old leader did not exit 0 after SIGTERM"
    assert took < HANDOVER_BOUND, (
        f"a new leader took {took:.1f}s: no handover (election timeout is 5s)")

    assert cluster.leader(among=survivors) is leader
    for m in survivors:
        st, _, body = m.api("POST", "/v1/services", spec(f"after-handover-{m.name}"))
        assert st == 201, (m.name, st, body)
    # The old leader comes back as a follower and catches up.
    old.start()
    want = {"before-handover"} | {f"after-handover-{m.name}" for m in survivors}
    wait_until(lambda: want <= old.service_names(), 20, what=f"{old.name} to catch up")
    cluster.wait_ready()
