"""The single node's view of its cluster, and its health."""

from shoaltest import spec


def test_health(node):
    st, _, body = node.api("GET", "/v1/health", token=None)
    assert st == 200, body
    assert body["status"] == "ok"
    assert body["leader"] is True
    assert isinstance(body["node"], str) and body["node"]


def test_cluster_single_node(node):
    c, _ = node.get_ok("/v1/cluster")
    _, _, health = node.api("GET", "/v1/health", token=None)
    me = c["node"]
    assert me["id"] == health["node"]
    assert me["raft_address"] == f"127.0.0.1:{node.raft_port}"
    assert me["api_address"] == f"127.0.0.1:{node.api_port}"
    assert isinstance(me["name"], str) and me["name"]
    assert isinstance(me["state"], str) and me["state"]
    assert c["leader"]["id"] == me["id"]
    assert c["leader"]["address"] == me["raft_address"]
    assert isinstance(c["id"], str) and c["id"]
    assert len(c["members"]) == 1
    m = c["members"][0]
    assert m["id"] == me["id"] and m["address"] == me["raft_address"]
    assert m["role"] == "voter"
    assert c["term"] >= 1
    assert isinstance(c["index"], int) and isinstance(c["applied"], int)


def test_cluster_index_follows_writes(node):
    c1, _ = node.get_ok("/v1/cluster")
    st, _, body = node.api("POST", "/v1/services", spec("web"))
    assert st == 201, body
    c2, _ = node.get_ok("/v1/cluster")
    assert c2["index"] >= body["modify_index"] > c1["index"]
    assert c2["applied"] >= body["modify_index"]
    assert c2["id"] == c1["id"]


def test_identity_survives_restart(node):
    c1, _ = node.get_ok("/v1/cluster")
    assert node.restart() == 0
    c2, _ = node.get_ok("/v1/cluster")
    assert c2["id"] == c1["id"]
    assert c2["node"]["id"] == c1["node"]["id"]
    assert c2["node"]["raft_address"] == c1["node"]["raft_address"]
    assert c2["node"]["api_address"] == c1["node"]["api_address"]
    assert c2["term"] >= c1["term"]
