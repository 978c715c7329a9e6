"""The voter target (docs/cluster.md): managers beyond `--voters` are
standbys, and the leader promotes a healthy standby when a voter is removed
or down past node_down_after."""

from shoaltest import wait_until

CLUSTER = {"managers": 6, "voters": 5}


def raft_roles(m):
    """{name: raft_role} of the ready managers, as m lists them."""
    return {n["name"]: n["manager"]["raft_role"] for n in m.nodes().values()
            if n["role"] == "manager" and n["status"] == "ready"}


def config_voters(m):
    return sorted(x["id"] for x in m.cluster_info()["members"] if x["role"] == "voter")


def test_six_managers_five_voters(cluster):
    leader = cluster.leader()
    roles = raft_roles(leader)
    assert sorted(roles) == [m.name for m in cluster.managers]
    assert sorted(roles.values()) == ["standby"] + ["voter"] * 5, roles
    for m in cluster.managers:
        assert len(config_voters(m)) == 5


def test_removed_voter_standby_promoted(cluster):
    leader = cluster.leader()
    roles = raft_roles(leader)
    standby = next(n for n, r in roles.items() if r == "standby")
    gone = next(m for m in cluster.followers(leader) if roles[m.name] == "voter")
    assert gone.stop() == 0
    p = leader.cli("node", "rm", "--force", gone.name)
    assert p.returncode == 0, p.stderr
    gone.retired = True

    def promoted():
        r = raft_roles(leader)
        return (gone.name not in leader.nodes() and r.get(standby) == "voter"
                and sorted(r.values()) == ["voter"] * 5 and r)
    wait_until(promoted, 20, 0.1, what=f"{standby} promoted to voter after {gone.name} removed")
    for m in cluster.running_managers():
        wait_until(lambda m=m: gone.node_id not in {x["id"] for x in m.cluster_info()["members"]}
                   and len(config_voters(m)) == 5 and gone.name not in m.nodes(),
                   10, what=f"{gone.name} out of {m.name}'s Raft configuration")


def test_down_voter_standby_promoted(cluster):
    """With 5 voters and a standby more, a voter killed and left down is
    replaced by a ready standby; back, it is a standby (the target is 5)."""
    new = cluster.add("manager")
    leader = cluster.leader()
    before = raft_roles(leader)
    assert before[new.name] == "standby", before
    standbys = {n for n, r in before.items() if r == "standby"}
    victim = next(m for m in cluster.followers(leader) if before[m.name] == "voter")
    victim.kill9()

    def replaced():
        r = raft_roles(leader)
        voters = config_voters(leader)
        ready_voters = {n for n, role in r.items() if role == "voter"}
        return (victim.node_id not in voters and len(voters) == 5 and len(ready_voters) == 5
                and ready_voters & standbys and r)
    wait_until(replaced, 20, 0.1,
               what=f"a standby promoted in place of {victim.name} (down after 3s)")
    assert leader.nodes()[victim.name]["status"] == "down"

    victim.start()
    cluster.wait_ready()
    wait_until(lambda: raft_roles(leader).get(victim.name) == "standby", 20,
               what=f"{victim.name} back as a standby")
    roles = raft_roles(leader)
    assert sorted(roles.values()) == ["standby"] * (len(roles) - 5) + ["voter"] * 5, roles
