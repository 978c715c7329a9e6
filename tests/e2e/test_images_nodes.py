"""Any node's images through a manager (issue 5): GET /v1/images (every
node), GET /v1/nodes/{node}/images, POST .../images/load and .../images/gc,
DELETE .../images/{ref}, and `shoal image ls|load|rm|gc --node NODE`. The
manager asks the node's own routes (/v1/node/images...) with the node's
credential, since workers do not hold the admin token. One manager and one
worker, so that the node asked is another process."""

import json
import signal
import time

import pytest

import imagetest as it
from clustertest import cluster_tasks as tasks
from shoaltest import assert_error, wait_until

CLUSTER = {"managers": 1, "workers": 1}
REF = "busybox:latest"


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    d = tmp_path_factory.mktemp("img")
    layout = it.build_image(d)
    return it.oci_tarball(layout, d / "busybox-oci.tar"), it.layout_digests(layout)["config"]


def images(c, node):
    st, _, body = c.node("m1").api("GET", f"/v1/nodes/{node}/images", token=c.admin_token)
    assert st == 200, body
    return body["images"]


def clean(c):
    """No image left on any node (the shared cluster's next test starts empty)."""
    for n in ("m1", "w1"):
        for img in images(c, n):
            st, _, body = c.node("m1").api("DELETE", f"/v1/nodes/{n}/images/{img['id']}",
                                           token=c.admin_token)
            assert st == 200, body


def test_worker_images_through_the_manager(cluster, tarball):
    c = cluster
    tar, img_id = tarball
    m, w = c.node("m1"), c.node("w1")
    p = m.cli("image", "load", "--node", "w1", str(tar))
    assert p.returncode == 0 and f"Loaded {REF} ({img_id})" in p.stdout, p
    assert list((w.data_dir / "images/rootfs").iterdir()), "not in the worker's store"
    assert images(c, "m1") == []
    [img] = images(c, "w1")
    assert img["id"] == img_id and img["refs"] == [REF], img
    # By id too, and the same through the worker's API (forwarded to the manager).
    st, _, body = m.api("GET", f"/v1/nodes/{w.node_id}/images", token=c.admin_token)
    assert st == 200 and body["images"] == [img], body
    st, _, body = w.api("GET", "/v1/nodes/w1/images", token=c.admin_token)
    assert st == 200 and body["images"] == [img], body
    # Every node: the API and the CLI's table with a NODE column.
    st, _, body = m.api("GET", "/v1/images", token=c.admin_token)
    assert st == 200 and body == {"nodes": {"m1": {"images": []}, "w1": {"images": [img]}}}, body
    p = m.cli("image", "ls")
    assert p.returncode == 0, p
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["NODE", "REF", "ID", "SIZE", "CREATED"], p.stdout
    assert [ln.split()[:3] for ln in lines[1:]] == [["w1", REF, img_id[7:19]]], p.stdout
    p = m.cli("image", "ls", "-o", "json")
    assert p.returncode == 0 and json.loads(p.stdout) == body, p
    p = m.cli("image", "ls", "--node", "w1", "-o", "json")
    assert p.returncode == 0 and json.loads(p.stdout) == {"images": [img]}, p
    p = m.cli("image", "ls", "--node", "w1")
    assert p.returncode == 0 and p.stdout.split()[:5] == ["REF", "ID", "SIZE", "CREATED", REF], p
    # rm through the manager: the worker's answer, then its 404.
    p = m.cli("image", "rm", "--node", "w1", REF)
    assert p.returncode == 0 and f"Deleted: {img_id}" in p.stdout, p
    assert images(c, "w1") == []
    st, _, body = m.api("DELETE", "/v1/nodes/w1/images/busybox%3Alatest", token=c.admin_token)
    assert_error(st, body, 404)
    assert "not in store" in body["error"], body
    p = m.cli("image", "rm", "--node", "w1", REF)
    assert p.returncode == 1 and "not in store" in p.stderr, p
    # gc through the manager.
    p = m.cli("image", "load", "--node", "w1", str(tar))
    assert p.returncode == 0, p
    p = m.cli("image", "gc", "--node", "w1")
    assert p.returncode == 0 and f"Deleted: {img_id}" in p.stdout and "Freed" in p.stdout, p
    st, _, body = m.api("POST", "/v1/nodes/w1/images/gc", token=c.admin_token)
    assert st == 200 and body["deleted"] == [], body
    assert images(c, "w1") == []


def test_manager_asking_itself(cluster, tarball):
    c = cluster
    tar, img_id = tarball
    m = c.node("m1")
    p = m.cli("image", "load", "--node", "m1", str(tar))
    assert p.returncode == 0 and f"Loaded {REF}" in p.stdout, p
    assert [i["id"] for i in images(c, "m1")] == [img_id]
    # The node-local route with the admin token, as without --node.
    p = m.cli("image", "ls", "-o", "json")
    assert p.returncode == 0, p
    assert [i["id"] for i in json.loads(p.stdout)["nodes"]["m1"]["images"]] == [img_id]
    p = m.cli("image", "rm", "--node", "m1", img_id[7:19])
    assert p.returncode == 0 and f"Deleted: {img_id}" in p.stdout, p
    p = m.cli("image", "load", str(tar))
    assert p.returncode == 0, p
    st, _, body = m.api("POST", "/v1/nodes/m1/images/gc", token=c.admin_token)
    assert st == 200 and body["deleted"] == [img_id], body


def test_errors_and_credentials(cluster, tarball):
    c = cluster
    tar, _ = tarball
    m, w = c.node("m1"), c.node("w1")
    for method, path in [("GET", "/v1/nodes/nosuch/images"), ("POST", "/v1/nodes/nosuch/images/gc"),
                         ("DELETE", "/v1/nodes/nosuch/images/x")]:
        st, _, body = m.api(method, path, token=c.admin_token)
        assert_error(st, body, 404)
        assert "nosuch" in body["error"], body
    p = m.cli("image", "ls", "--node", "nosuch")
    assert p.returncode == 1 and "no node" in p.stderr, p
    # The manager routes take the admin token only.
    st, _, body = m.api("GET", "/v1/nodes/w1/images", token=None)
    assert_error(st, body, 401)
    st, _, body = m.api("GET", "/v1/images", token="wrong")
    assert_error(st, body, 401)
    # Bad requests are refused before the node is asked.
    st, _, body = m.api("POST", "/v1/nodes/w1/images/load", {"path": "rel.tar"},
                        token=c.admin_token)
    assert_error(st, body, 400, field="path")
    st, _, body = m.api("POST", "/v1/nodes/w1/images/load", {"path": str(tar) + ".none"},
                        token=c.admin_token)
    assert_error(st, body, 400)
    assert ".none" in body["error"], body  # the worker's own words
    # The worker's node route: its credential, never a wrong or missing token;
    # the admin token is not the worker's to know.
    cred = json.loads((w.data_dir / "node.json").read_text())["credential"]
    for token in (None, "wrong", c.admin_token):
        st, _, body = w.api("GET", "/v1/node/images", token=token)
        assert_error(st, body, 401)
    st, _, body = w.api("GET", "/v1/node/images", token=cred)
    assert st == 200 and body == {"images": []}, body
    st, _, body = w.api("POST", "/v1/node/images/gc", token=cred)
    assert st == 200 and body["deleted"] == [], body
    # A manager's node route: its own credential or the admin token.
    mcred = json.loads((m.data_dir / "node.json").read_text())["credential"]
    for token in (mcred, c.admin_token):
        st, _, body = m.api("GET", "/v1/node/images", token=token)
        assert st == 200, body
    st, _, body = m.api("GET", "/v1/node/images", token=cred)
    assert_error(st, body, 401)


def test_rm_of_an_image_a_container_uses(cluster, tarball):
    c = cluster
    tar, img_id = tarball
    m = c.node("m1")
    p = m.cli("image", "load", "--node", "w1", str(tar))
    assert p.returncode == 0, p
    c.write("POST", "/v1/services", {
        "name": "img-user", "task": {"driver": "runc", "image": REF,
                                     "command": ["/bin/sleep", "100000"], "network": "host"},
        "placement": {"constraints": ["node.name==w1"]}})

    def running():
        ts = [t for t in tasks(c, "img-user") if t["state"] == "running"]
        return ts or None

    wait_until(running, 60, what="the img-user container running on w1")
    st, _, body = m.api("DELETE", "/v1/nodes/w1/images/busybox%3Alatest", token=c.admin_token)
    assert_error(st, body, 409)
    assert "in use" in body["error"], body
    p = m.cli("image", "rm", "--node", "w1", img_id)
    assert p.returncode == 1 and "in use" in p.stderr, p
    st, _, body = m.api("POST", "/v1/nodes/w1/images/gc", token=c.admin_token)
    assert st == 200 and body["deleted"] == [], body
    assert [i["id"] for i in images(c, "w1")] == [img_id]
    c.write("DELETE", "/v1/services/img-user")
    wait_until(lambda: not tasks(c, "img-user"), 60, what="img-user gone")

    def removed():
        st, _, body = m.api("DELETE", "/v1/nodes/w1/images/busybox%3Alatest",
                            token=c.admin_token)
        return body if st == 200 else None

    body = wait_until(removed, 30, what="the image removable once its task ended")
    assert body["deleted"] == [img_id], body
    clean(c)


def test_node_that_does_not_answer(cluster):
    c = cluster
    m, w = c.node("m1"), c.node("w1")
    w.send_signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        st, _, body = m.api("GET", "/v1/nodes/w1/images", token=c.admin_token, timeout=30)
        assert_error(st, body, 504)
        assert "w1" in body["error"] and "did not answer" in body["error"], body
        assert time.monotonic() - t0 < 20
        st, _, body = m.api("GET", "/v1/images", token=c.admin_token, timeout=30)
        assert st == 200 and body["nodes"]["m1"] == {"images": []}, body
        assert "w1" in body["nodes"]["w1"]["error"], body
    finally:
        w.send_signal(signal.SIGCONT)
    w.stop()
    st, _, body = m.api("GET", "/v1/nodes/w1/images", token=c.admin_token)
    assert_error(st, body, 502)
    assert "w1" in body["error"], body
    p = m.cli("image", "ls")
    assert p.returncode == 1 and "w1" in p.stderr and "NODE" in p.stdout, p
