"""The node image store: shoal-image against a real docker-registry (and a
small Bearer-token registry stub), and the node-local image API of shoald."""

import base64
import hashlib
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import imagetest as it
from imagetest import Registry, build_image, push, run_image


def pull(store, reg_addr, ref, *extra):
    return run_image("pull", "--store", store, "--insecure-registry", reg_addr, *extra, ref)


def assert_clean(store):
    """No temp file and no rootfs left behind by a failed pull."""
    store = Path(store)
    assert list((store / "tmp").iterdir()) == []
    assert list((store / "rootfs").iterdir()) == []


def assert_default_rootfs(rootfs):
    r = Path(rootfs)
    assert (r / "bin/busybox").stat().st_mode & 0o111
    assert os.readlink(r / "bin/sh") == "busybox"
    assert (r / "bin/ls").stat().st_ino == (r / "bin/busybox").stat().st_ino
    assert (r / "etc/passwd").read_text().startswith("root:x:0:0:")
    assert (r / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert (r / "data/keep.txt").read_text() == "keep\n"
    assert not (r / "data/remove-me.txt").exists(), "whiteout not applied"
    assert not (r / "data/.wh.remove-me.txt").exists()
    assert sorted(os.listdir(r / "opaque")) == ["new.txt"], "opaque dir not applied"


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return build_image(tmp_path_factory.mktemp("img"))


def test_pull_by_tag_and_by_digest(registry, image, tmp_path):
    push(image, f"{registry.addr}/shoal/busybox:1.0")
    dg = it.layout_digests(image)
    store = tmp_path / "store"
    rc, out, err = pull(store, registry.addr, f"{registry.addr}/shoal/busybox:1.0")
    assert rc == 0, (out, err)
    assert out["ref"] == f"{registry.addr}/shoal/busybox:1.0"
    assert out["id"] == dg["config"]
    assert out["digest"].startswith("sha256:")
    assert out["config"]["Entrypoint"] == ["/bin/sh", "-c"]
    assert out["config"]["WorkingDir"] == "/var/www"
    assert "GREETING=hello" in out["config"]["Env"]
    assert out["config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert_default_rootfs(out["rootfs"])
    ref = f"{registry.addr}/shoal/busybox@{out['digest']}"
    rc, out2, err = pull(store, registry.addr, ref)
    assert rc == 0, (out2, err)
    assert (out2["id"], out2["rootfs"], out2["ref"]) == (out["id"], out["rootfs"], ref)
    rc, ins, _ = run_image("inspect", "--store", store, f"{registry.addr}/shoal/busybox:1.0")
    assert rc == 0 and ins["id"] == out["id"] and ins["config"] == out["config"]


@pytest.mark.parametrize("compression", ["zstd", None])
def test_zstd_and_plain_tar_layers(registry, tmp_path, compression):
    layout = build_image(tmp_path / "img", compression=compression)
    ref = f"{registry.addr}/c:{compression or 'tar'}"
    push(layout, ref)
    rc, out, err = pull(tmp_path / "store", registry.addr, ref)
    assert rc == 0, (out, err)
    assert_default_rootfs(out["rootfs"])


def test_docker_v2_schema2_manifest(registry, image, tmp_path):
    ref = f"{registry.addr}/docker/busybox:v2"
    push(image, ref, docker_format=True)
    rc, out, err = pull(tmp_path / "store", registry.addr, ref)
    assert rc == 0, (out, err)
    blob = tmp_path / "store/blobs/sha256" / out["digest"][7:]
    assert "vnd.docker.distribution.manifest.v2+json" in blob.read_text()
    assert_default_rootfs(out["rootfs"])
    assert out["config"]["WorkingDir"] == "/var/www"


def test_second_pull_reuses_the_rootfs(registry, image, tmp_path):
    ref = f"{registry.addr}/busybox"  # tag latest
    push(image, ref + ":latest")
    store = tmp_path / "store"
    rc, out, err = pull(store, registry.addr, ref)
    assert rc == 0, (out, err)
    marker = Path(out["rootfs"]) / "marker"
    marker.write_text("x")
    rc, out2, err = pull(store, registry.addr, ref)
    assert rc == 0, (out2, err)
    assert out2["rootfs"] == out["rootfs"] and marker.exists(), "the image was unpacked again"
    assert len(os.listdir(store / "rootfs")) == 1


def test_corrupted_blob_fails_and_leaves_nothing(registry, image, tmp_path):
    push(image, f"{registry.addr}/bad:1")
    layer = it.layout_digests(image)["layers"][1]
    p = registry.blob_path(layer)
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    store = tmp_path / "store"
    rc, out, _ = pull(store, registry.addr, f"{registry.addr}/bad:1")
    assert rc == 1
    assert "digest mismatch" in out["error"] and layer in out["error"]
    assert_clean(store)
    assert not (store / "blobs/sha256" / layer[7:]).exists()


def test_wrong_digest_and_missing_tag_fail(registry, image, tmp_path):
    push(image, f"{registry.addr}/busybox:latest")
    store = tmp_path / "store"
    rc, out, _ = pull(store, registry.addr, f"{registry.addr}/busybox@sha256:" + "0" * 64)
    assert rc == 1 and "not found" in out["error"], out
    rc, out, _ = pull(store, registry.addr, f"{registry.addr}/busybox:nope")
    assert rc == 1 and "not found" in out["error"] and "nope" in out["error"], out
    rc, out, _ = pull(store, registry.addr, f"{registry.addr}/nothere:latest")
    assert rc == 1 and "not found" in out["error"], out
    assert_clean(store)


def test_bad_reference_and_local_only_refs(tmp_path):
    store = tmp_path / "store"
    rc, out, _ = run_image("pull", "--store", store, "busybox")
    assert rc == 1 and "not in the store" in out["error"] and "load" in out["error"], out
    rc, out, _ = run_image("pull", "--store", store, "127.0.0.1:1/UPPER")
    assert rc == 1 and "invalid image reference" in out["error"], out
    rc, _, _ = run_image("pull", "--store", store)
    assert rc == 2


def test_unreachable_registry_fails_fast_then_local_copy(registry, image, tmp_path):
    store = tmp_path / "store"
    dead = f"127.0.0.1:{it.closed_port()}"
    t0 = time.monotonic()
    rc, out, _ = pull(store, dead, f"{dead}/busybox:latest")
    assert rc == 1 and "cannot reach registry" in out["error"], out
    assert time.monotonic() - t0 < 10
    assert_clean(store)
    # A tag the store has: the local copy is used when the registry is gone.
    ref = f"{registry.addr}/busybox:latest"
    push(image, ref)
    rc, out, err = pull(store, registry.addr, ref)
    assert rc == 0, (out, err)
    registry.stop()
    rc, out2, err = pull(store, registry.addr, ref)
    assert rc == 0, (out2, err)
    assert out2["id"] == out["id"] and "local copy" in err


def test_silent_registry_times_out(tmp_path):
    """A registry that accepts connections and never answers fails the pull
    by the low-speed timeout (10 s), not never."""
    import socket  # pylint: disable=import-outside-toplevel
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    addr = f"127.0.0.1:{srv.getsockname()[1]}"
    try:
        t0 = time.monotonic()
        rc, out, _ = pull(tmp_path / "store", addr, f"{addr}/busybox:latest")
        took = time.monotonic() - t0
    finally:
        srv.close()
    assert rc == 1 and "cannot reach registry" in out["error"], out
    assert 5 < took < 20, took


def test_plain_http_needs_insecure_registry(registry, image, tmp_path):
    push(image, f"{registry.addr}/busybox:latest")
    rc, out, _ = run_image("pull", "--store", tmp_path / "s", f"{registry.addr}/busybox:latest")
    assert rc == 1 and "cannot reach registry" in out["error"], out


HOSTILE = ["dotdot", "symlink_out_then_write", "absolute_symlink_dir", "absolute_path",
           "hardlink_out"]


def hostile_entries(kind, outside):
    """Layer entries that try to write into the host directory `outside`."""
    rel = "../" * 12 + str(outside).lstrip("/")
    return {
        "dotdot": [it.f(f"{rel}/escape-dotdot", "x")],
        "symlink_out_then_write": [it.symlink("link", rel), it.f("link/escape-link", "x")],
        "absolute_symlink_dir": [it.symlink("abs", str(outside)), it.f("abs/escape-abs", "x")],
        "absolute_path": [it.f(f"{outside}/escape-absolute", "x")],
        "hardlink_out": [it.hardlink("hl", f"{rel}/victim")],
    }[kind]


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_layer_fails_and_writes_nothing_outside(registry, tmp_path, kind):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("precious")
    layout = build_image(tmp_path / "img", name=f"hostile-{kind}",
                         layers=[it.base_layer(), [it.d("ok")] + hostile_entries(kind, outside)])
    ref = f"{registry.addr}/hostile:{kind.replace('_', '-')}"
    push(layout, ref, tag="latest")
    store = tmp_path / "store"
    rc, out, _ = pull(store, registry.addr, ref)
    assert rc == 1, out
    print(out["error"])
    assert "layer 2" in out["error"] and ("refused" in out["error"] or "escapes" in out["error"])
    assert sorted(os.listdir(outside)) == ["victim"]
    assert (outside / "victim").read_text() == "precious"
    assert_clean(store)


def test_diff_id_mismatch_fails(registry, tmp_path):
    layout = build_image(tmp_path / "img", layers=[it.base_layer()])
    # Rewrite the config's diff_id (and the manifest that names the config).
    dg = it.layout_digests(layout)
    blobs = layout / "blobs/sha256"
    cfg = json.loads((blobs / dg["config"][7:]).read_text())
    cfg["rootfs"]["diff_ids"] = ["sha256:" + "1" * 64]
    cfg_bytes = json.dumps(cfg).encode()
    cfg_dig = "sha256:" + hashlib.sha256(cfg_bytes).hexdigest()
    (blobs / cfg_dig[7:]).write_bytes(cfg_bytes)
    man = json.loads((blobs / dg["manifest"][7:]).read_text())
    man["config"].update(digest=cfg_dig, size=len(cfg_bytes))
    man_bytes = json.dumps(man).encode()
    man_dig = "sha256:" + hashlib.sha256(man_bytes).hexdigest()
    (blobs / man_dig[7:]).write_bytes(man_bytes)
    idx = json.loads((layout / "index.json").read_text())
    idx["manifests"][0].update(digest=man_dig, size=len(man_bytes))
    (layout / "index.json").write_text(json.dumps(idx))
    push(layout, f"{registry.addr}/diffid:latest")
    store = tmp_path / "store"
    rc, out, _ = pull(store, registry.addr, f"{registry.addr}/diffid:latest")
    assert rc == 1 and "diff_id mismatch" in out["error"], out
    assert_clean(store)


def test_basic_auth_with_htpasswd(image, tmp_path):
    reg = Registry(tmp_path, htpasswd={"alice": "s3cret"}).start()
    try:
        ref = f"{reg.addr}/private/busybox:latest"
        push(image, ref, creds=("alice", "s3cret"))
        store = tmp_path / "store"
        rc, out, _ = pull(store, reg.addr, ref)
        assert rc == 1 and "authentication" in out["error"], out
        bad = it.auth_file(tmp_path / "bad.json", reg.addr, "alice", "wrong")
        rc, out, _ = pull(store, reg.addr, ref, "--auth-file", bad)
        assert rc == 1 and "401" in out["error"], out
        for b64 in (False, True):
            good = it.auth_file(tmp_path / f"good{b64}.json", reg.addr, "alice", "s3cret", b64)
            rc, out, err = pull(tmp_path / f"store{b64}", reg.addr, ref, "--auth-file", good)
            assert rc == 0, (out, err)
            assert_default_rootfs(out["rootfs"])
    finally:
        reg.stop()


def test_bearer_token_index_and_redirects(image, tmp_path):
    stub = it.BearerRegistryStub(image, "team/busybox", "v1", "bob", "pw")
    try:
        ref = f"{stub.addr}/team/busybox:v1"
        store = tmp_path / "store"
        rc, out, _ = pull(store, stub.addr, ref)  # anonymous token refused
        assert rc == 1 and "token server" in out["error"] and "401" in out["error"], out
        bad = it.auth_file(tmp_path / "bad.json", stub.addr, "bob", "nope")
        rc, out, _ = pull(store, stub.addr, ref, "--auth-file", bad)
        assert rc == 1 and "token" in out["error"] and "401" in out["error"], out
        good = it.auth_file(tmp_path / "good.json", stub.addr, "bob", "pw")
        rc, out, err = pull(store, stub.addr, ref, "--auth-file", good)
        assert rc == 0, (out, err)
        assert out["digest"] == stub.manifest_digest  # the linux/amd64 entry of the index
        assert_default_rootfs(out["rootfs"])
        assert any("scope=repository%3Ateam%2Fbusybox%3Apull" in r and "service=stub" in r
                   for r in stub.token_requests), stub.token_requests
    finally:
        stub.stop()


def test_load_oci_layout_and_docker_save(image, tmp_path):
    store = tmp_path / "store"
    oci = it.oci_tarball(image, tmp_path / "oci.tar")
    rc, out, err = run_image("load", "--store", store, oci)
    assert rc == 0, (out, err)
    [img] = out["loaded"]
    assert img["ref"] == "busybox:latest" and img["id"] == it.layout_digests(image)["config"]
    assert_default_rootfs(img["rootfs"])
    rc, got, _ = run_image("pull", "--store", store, "busybox")  # local-only ref
    assert rc == 0 and got["id"] == img["id"], got
    saved = it.docker_save_tarball(image, tmp_path / "save.tar", "local/web:2")
    store2 = tmp_path / "store2"
    rc, out, err = run_image("load", "--store", store2, saved)
    assert rc == 0, (out, err)
    [img2] = out["loaded"]
    assert img2["ref"] == "local/web:2" and img2["id"] == img["id"]
    assert img2["config"]["Cmd"] == ["httpd -f -p 8080 -h /var/www"]
    assert_default_rootfs(img2["rootfs"])
    rc, got, _ = run_image("inspect", "--store", store2, "local/web:2")
    assert rc == 0 and got["rootfs"] == img2["rootfs"]
    rc, out, _ = run_image("load", "--store", store2, tmp_path / "nothere.tar")
    assert rc == 1 and "nothere.tar" in out["error"]
    # A layout whose blob does not match its name is refused.
    bad = tmp_path / "bad-layout"
    import shutil  # pylint: disable=import-outside-toplevel
    shutil.copytree(image, bad)
    layer = it.layout_digests(bad)["layers"][2]
    (bad / "blobs/sha256" / layer[7:]).write_bytes(b"garbage")
    rc, out, _ = run_image("load", "--store", tmp_path / "store3",
                           it.oci_tarball(bad, tmp_path / "bad.tar"))
    assert rc == 1 and "digest mismatch" in out["error"], out
    assert_clean(tmp_path / "store3")


def test_ls_rm_gc(registry, image, tmp_path):
    store = tmp_path / "store"
    other = build_image(tmp_path / "other", name="other",
                        layers=[it.base_layer(), [it.f("other.txt", "o")]])
    push(image, f"{registry.addr}/a:1")
    push(other, f"{registry.addr}/b:1")
    rc, a, _ = pull(store, registry.addr, f"{registry.addr}/a:1")
    assert rc == 0
    rc, a2, _ = pull(store, registry.addr, f"{registry.addr}/a@{a['digest']}")
    rc, b, _ = pull(store, registry.addr, f"{registry.addr}/b:1")
    assert rc == 0
    rc, ls, _ = run_image("ls", "--store", store)
    assert rc == 0
    by_id = {i["id"]: i for i in ls["images"]}
    assert set(by_id) == {a["id"], b["id"]}
    assert sorted(by_id[a["id"]]["refs"]) == sorted([a["ref"], a2["ref"]])
    assert by_id[a["id"]]["size"] > 1_000_000 and by_id[a["id"]]["created"]
    # In use: refused. Removing one of two refs keeps the image.
    rc, out, _ = run_image("rm", "--store", store, "--keep", a["id"], a["ref"])
    assert rc == 1 and "in use" in out["error"], out
    rc, out, _ = run_image("rm", "--store", store, a["ref"])
    assert rc == 0 and out["untagged"] == [a["ref"]] and out["deleted"] == [], out
    assert Path(a["rootfs"]).is_dir()
    rc, out, _ = run_image("rm", "--store", store, a2["ref"])
    assert rc == 0 and out["deleted"] == [a["id"]], out
    assert not Path(a["rootfs"]).exists()
    rc, out, _ = run_image("rm", "--store", store, a["ref"])
    assert rc == 1 and "not in store" in out["error"]
    # gc keeps what is in use and the blobs it references, drops the rest.
    rc, a, _ = pull(store, registry.addr, f"{registry.addr}/a:1")
    rc, out, _ = run_image("gc", "--store", store, "--keep", b["id"])
    assert rc == 0 and out["deleted"] == [a["id"]] and out["blobs_removed"] >= 3, out
    rc, ls, _ = run_image("ls", "--store", store)
    assert [i["id"] for i in ls["images"]] == [b["id"]]
    rc, ins, _ = run_image("inspect", "--store", store, b["id"][7:19])
    assert rc == 0 and ins["ref"] == b["ref"] and Path(ins["rootfs"], "other.txt").exists()
    blobs = set(os.listdir(store / "blobs/sha256"))
    assert b["id"][7:] in blobs and b["digest"][7:] in blobs and a["id"][7:] not in blobs
    rc, out, _ = run_image("gc", "--store", store)
    assert rc == 0 and out["deleted"] == [b["id"]]
    assert os.listdir(store / "blobs/sha256") == [] and os.listdir(store / "rootfs") == []


def test_concurrent_pulls_share_the_store(registry, image, tmp_path):
    push(image, f"{registry.addr}/busybox:latest")
    store = tmp_path / "store"
    results = []

    def one():
        results.append(pull(store, registry.addr, f"{registry.addr}/busybox:latest"))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [r[0] for r in results] == [0] * 4, results
    assert len({r[1]["rootfs"] for r in results}) == 1
    assert len(os.listdir(store / "rootfs")) == 1
    assert_default_rootfs(results[0][1]["rootfs"])


def test_node_image_api_and_cli(make_node, registry, image, tmp_path):
    n = make_node(start=False)
    n.extra_args = ["--insecure-registry", registry.addr, "--registry-auth",
                    str(it.auth_file(tmp_path / "auth.json", registry.addr, "u", "p"))]
    n.start()
    # load through the CLI, with a path relative to the CLI's directory
    oci = it.oci_tarball(image, n.base / "busybox-oci.tar")
    p = n.cli("image", "load", oci.name)
    assert p.returncode == 0, p.stderr
    assert "Loaded busybox:latest" in p.stdout
    saved = it.docker_save_tarball(image, tmp_path / "save.tar", "local/web:2")
    st, _, body = n.api("POST", "/v1/node/images/load", {"path": str(saved)})
    assert st == 200 and body["loaded"][0]["ref"] == "local/web:2", body
    img_id = body["loaded"][0]["id"]
    store = n.data_dir / "images"
    assert Path(body["loaded"][0]["rootfs"]).parent == store / "rootfs"
    # ls: API, JSON and table
    st, _, body = n.api("GET", "/v1/node/images")
    assert st == 200 and [i["id"] for i in body["images"]] == [img_id]
    assert sorted(body["images"][0]["refs"]) == ["busybox:latest", "local/web:2"]
    p = n.cli("image", "ls", "-o", "json")
    assert p.returncode == 0 and json.loads(p.stdout) == body
    p = n.cli("image", "ls")
    assert p.returncode == 0 and "busybox:latest" in p.stdout and img_id[7:19] in p.stdout
    # errors
    st, _, body = n.api("GET", "/v1/node/images", token=None)
    assert st == 401
    st, _, body = n.api("POST", "/v1/node/images/load", {"path": "relative.tar"})
    assert st == 400 and body["field"] == "path", body
    st, _, body = n.api("POST", "/v1/node/images/load", {"path": str(tmp_path / "none.tar")})
    assert st == 400 and "none.tar" in body["error"], body
    st, _, body = n.api("DELETE", "/v1/node/images/nothere%3A1")
    assert st == 404 and "not in store" in body["error"], body
    p = n.cli("image", "rm", "nothere:1")
    assert p.returncode == 1 and "not in store" in p.stderr
    # rm of a url-encoded ref, then of the last ref
    st, _, body = n.api("DELETE", "/v1/node/images/local%2Fweb%3A2")
    assert st == 200 and body == {"untagged": ["local/web:2"], "deleted": [],
                                  "blobs_removed": 0, "bytes_freed": 0}, body
    p = n.cli("image", "rm", "busybox:latest")
    assert p.returncode == 0 and f"Deleted: {img_id}" in p.stdout, p.stdout
    assert os.listdir(store / "rootfs") == []
    # gc
    p = n.cli("image", "load", oci.name)
    assert p.returncode == 0, p.stderr
    p = n.cli("image", "gc")
    assert p.returncode == 0 and f"Deleted: {img_id}" in p.stdout, p.stdout
    st, _, body = n.api("POST", "/v1/node/images/gc")
    assert st == 200 and body["deleted"] == [], body
    assert os.listdir(store / "blobs/sha256") == []
