"""Test images and a real local registry for Shoal's e2e tests.

- `build_image(tmp_dir, name="busybox", tag="latest", extra_layers=(), ...)`
  writes an OCI image layout (a directory) from the static /bin/busybox and
  returns its path. The default image has three gzip layers:
    1. /bin/busybox and its applets (sh, sleep, cat, id, httpd, ... as
       symlinks, `ls` and `echo` as hardlinks), /etc/passwd, /etc/group
       (root, nobody), /tmp (1777), /var/www/index.html;
    2. /data/keep.txt, /data/remove-me.txt, /opaque/old.txt, /opaque/sub/old2.txt;
    3. /data/.wh.remove-me.txt, /opaque/.wh..wh..opq, /opaque/new.txt.
  `layers=[...]` replaces them; `extra_layers=[...]` appends. A layer is a
  list of entries built with `f()`, `d()`, `symlink()`, `hardlink()`,
  `whiteout()`, `opaque()`, or raw bytes of a tar (see `raw_layer`).
- `layout_digests(layout)` -> {"manifest", "config", "layers": [...]}.
- `oci_tarball(layout, out)` / `docker_save_tarball(layout, out, repo_tag)`
  write the two tarball formats `shoal image load` reads.
- `Registry(tmp_dir, htpasswd=None).start()` runs Debian's docker-registry on
  127.0.0.1:<free port> (`.addr`, `.root` its storage dir, `.stop()` by pid);
  the `registry` fixture in conftest.py gives a started one.
- `push(layout, ref, tag="latest", creds=None)` copies a layout to a registry
  with skopeo (plain HTTP).
- `run_image(*args)` runs build/shoal-image and returns (rc, json, stderr).
"""

import base64
import gzip
import hashlib
import io
import json
import os
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from shoaltest import BUILD, SANITIZER_MARKS, free_ports, wait_until

SHOAL_IMAGE = BUILD / "shoal-image"
BUSYBOX = "/bin/busybox"
APPLETS_SYMLINK = ["sh", "sleep", "cat", "id", "httpd", "env", "true", "false", "wget", "nc",
                   "mkdir", "rm", "touch", "hostname", "ps", "kill", "grep", "head", "test"]
APPLETS_HARDLINK = ["ls", "echo"]
MTIME = 1700000000
IMAGE_CONFIG = {
    "Entrypoint": ["/bin/sh", "-c"],
    "Cmd": ["httpd -f -p 8080 -h /var/www"],
    "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "GREETING=hello"],
    "WorkingDir": "/var/www",
    "ExposedPorts": {"8080/tcp": {}},
}


# ---- layer entries ----------------------------------------------------------

def f(path, data, mode=0o644, uid=0, gid=0):
    """A regular file (data: bytes or str)."""
    return ("file", path, data.encode() if isinstance(data, str) else data, mode, uid, gid)


def d(path, mode=0o755):
    return ("dir", path, mode)


def symlink(path, target):
    return ("symlink", path, target)


def hardlink(path, target):
    return ("hardlink", path, target)


def whiteout(path):
    """Deletes `path` of the lower layers."""
    head, _, base = path.rstrip("/").rpartition("/")
    return ("file", f"{head}/.wh.{base}" if head else f".wh.{base}", b"", 0o644, 0, 0)


def opaque(dirpath):
    """Hides everything the lower layers have in dirpath."""
    return ("file", f"{dirpath.rstrip('/')}/.wh..wh..opq", b"", 0o644, 0, 0)


def tar_bytes(entries):
    """An uncompressed tar of entries (paths kept as given: hostile layers
    use '../x' or '/abs')."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for e in entries:
            info = tarfile.TarInfo(e[1])
            info.mtime = MTIME
            if e[0] == "file":
                info.size, info.mode, info.uid, info.gid = len(e[2]), e[3], e[4], e[5]
                t.addfile(info, io.BytesIO(e[2]))
                continue
            if e[0] == "dir":
                info.type, info.mode = tarfile.DIRTYPE, e[2]
            elif e[0] == "symlink":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, e[2], 0o777
            elif e[0] == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, e[2]
            t.addfile(info)
    return buf.getvalue()


def raw_layer(data):
    """A layer given as the bytes of a tar."""
    return ("raw", data)


def base_layer():
    entries = [d("bin"), d("etc"), d("tmp", 0o1777), d("root", 0o700), d("var"), d("var/www")]
    entries.append(f("bin/busybox", Path(BUSYBOX).read_bytes(), 0o755))
    entries += [symlink(f"bin/{a}", "busybox") for a in APPLETS_SYMLINK]
    entries += [hardlink(f"bin/{a}", "bin/busybox") for a in APPLETS_HARDLINK]
    entries += [
        f("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
        f("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        f("var/www/index.html", "hello from shoal\n"),
    ]
    return entries


def default_layers():
    layer2 = [d("data"), f("data/keep.txt", "keep\n"), f("data/remove-me.txt", "bye\n"),
              d("opaque"), f("opaque/old.txt", "old\n"), d("opaque/sub"),
              f("opaque/sub/old2.txt", "old2\n")]
    layer3 = [d("data"), whiteout("data/remove-me.txt"), d("opaque"), opaque("opaque"),
              f("opaque/new.txt", "new\n")]
    return [base_layer(), layer2, layer3]


# ---- OCI layout -------------------------------------------------------------

def _sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _put_blob(layout, data):
    digest = _sha(data)
    p = Path(layout) / "blobs" / "sha256" / digest[7:]
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return {"digest": digest, "size": len(data)}


def build_image(tmp_dir, name="busybox", tag="latest", extra_layers=(), layers=None,
                config=None, compression="gzip"):
    """Writes an OCI image layout under tmp_dir and returns its path.

    compression: "gzip", "zstd" or None (plain tar layers)."""
    layout = Path(tmp_dir) / f"oci-{name.replace('/', '_')}-{tag}"
    layout.mkdir(parents=True, exist_ok=True)
    descs, diff_ids = [], []
    for entries in list(layers if layers is not None else default_layers()) + list(extra_layers):
        raw = entries[1] if entries and entries[0] == "raw" else tar_bytes(entries)
        diff_ids.append(_sha(raw))
        if compression == "gzip":
            blob, mt = gzip.compress(raw, compresslevel=1, mtime=0), "tar+gzip"
        elif compression == "zstd":
            blob = subprocess.run(["zstd", "-q", "-c"], input=raw, capture_output=True,
                                  check=True, timeout=60).stdout
            mt = "tar+zstd"
        else:
            blob, mt = raw, "tar"
        descs.append({"mediaType": f"application/vnd.oci.image.layer.v1.{mt}",
                      **_put_blob(layout, blob)})
    cfg = {
        "created": "2024-01-01T00:00:00Z", "architecture": "amd64", "os": "linux",
        "config": dict(config if config is not None else IMAGE_CONFIG),
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    cfg_desc = {"mediaType": "application/vnd.oci.image.config.v1+json",
                **_put_blob(layout, json.dumps(cfg).encode())}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": cfg_desc, "layers": descs}
    man_desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                **_put_blob(layout, json.dumps(manifest).encode()),
                "annotations": {"org.opencontainers.image.ref.name": tag,
                                "io.containerd.image.name": f"{name}:{tag}"}}
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [man_desc]}))
    return layout


def layout_digests(layout):
    """{"manifest", "config", "layers", "diff_ids"} of a layout's first image."""
    layout = Path(layout)
    idx = json.loads((layout / "index.json").read_text())
    mdig = idx["manifests"][0]["digest"]
    man = json.loads((layout / "blobs" / "sha256" / mdig[7:]).read_text())
    cfg = json.loads((layout / "blobs" / "sha256" / man["config"]["digest"][7:]).read_text())
    return {"manifest": mdig, "config": man["config"]["digest"],
            "layers": [l["digest"] for l in man["layers"]], "diff_ids": cfg["rootfs"]["diff_ids"]}


def oci_tarball(layout, out):
    """The layout as a tarball (what `shoal image load` takes)."""
    with tarfile.open(out, "w") as t:
        for p in sorted(Path(layout).rglob("*")):
            t.add(p, arcname=str(p.relative_to(layout)), recursive=False)
    return Path(out)


def docker_save_tarball(layout, out, repo_tag):
    """A `docker save` style tarball of the layout's image: <id>/layer.tar
    (uncompressed), <config hex>.json, manifest.json, repositories."""
    layout, dg = Path(layout), layout_digests(layout)
    blob = lambda dig: (layout / "blobs" / "sha256" / dig[7:]).read_bytes()  # noqa: E731
    files = {f"{dg['config'][7:]}.json": blob(dg["config"])}
    names = []
    for dig in dg["layers"]:
        data = blob(dig)
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        name = f"{hashlib.sha256(data).hexdigest()}/layer.tar"
        files[name] = data
        names.append(name)
    repo, _, tag = repo_tag.rpartition(":")
    files["manifest.json"] = json.dumps([{"Config": f"{dg['config'][7:]}.json",
                                          "RepoTags": [repo_tag], "Layers": names}]).encode()
    files["repositories"] = json.dumps({repo: {tag: names[-1].split("/")[0]}}).encode()
    with tarfile.open(out, "w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), MTIME
            t.addfile(info, io.BytesIO(data))
    return Path(out)


# ---- registry -----------------------------------------------------------------

def htpasswd_line(user, password):
    """A bcrypt htpasswd line (docker-registry accepts only bcrypt)."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # pylint: disable=import-outside-toplevel,deprecated-module
    return f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))}\n"


class Registry:
    """Debian's docker-registry on 127.0.0.1:<free port>, storage in tmp."""

    def __init__(self, tmp_dir, htpasswd=None):
        self.dir = Path(tmp_dir) / f"registry-{os.getpid()}-{time.monotonic_ns()}"
        self.root = self.dir / "storage"
        self.port = free_ports(1)[0]
        self.addr = f"127.0.0.1:{self.port}"
        self.htpasswd = htpasswd  # {"user": "password"} or None
        self.proc = None

    def start(self, timeout=20.0):
        self.root.mkdir(parents=True, exist_ok=True)
        conf = ["version: 0.1", "log:", "  level: warn", "storage:", "  filesystem:",
                f"    rootdirectory: {self.root}", "  delete:", "    enabled: true",
                "http:", f"  addr: {self.addr}"]
        if self.htpasswd:
            path = self.dir / "htpasswd"
            path.write_text("".join(htpasswd_line(u, p) for u, p in self.htpasswd.items()))
            conf += ["auth:", "  htpasswd:", "    realm: shoal-test", f"    path: {path}"]
        (self.dir / "config.yml").write_text("\n".join(conf) + "\n")
        self.log = open(self.dir / "registry.log", "ab")  # pylint: disable=consider-using-with
        self.proc = subprocess.Popen(["docker-registry", "serve", str(self.dir / "config.yml")],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        wait_until(self._up, timeout=timeout, what=f"docker-registry on {self.addr}")
        return self

    def _up(self):
        assert self.proc.poll() is None, "docker-registry exited"
        try:
            with urllib.request.urlopen(f"http://{self.addr}/v2/", timeout=2):
                return True
        except urllib.error.HTTPError as e:
            return e.code == 401
        except OSError:
            return False

    def blob_path(self, digest):
        """The file the registry serves a blob from (tests tamper with it)."""
        h = digest[7:]
        return self.root / "docker/registry/v2/blobs/sha256" / h[:2] / h / "data"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc:
            self.log.close()
        self.proc = None


def push(layout, ref, tag="latest", creds=None, timeout=120, docker_format=False):
    """skopeo copy oci:LAYOUT:TAG docker://REF over plain HTTP (with
    docker_format: converted to a Docker v2 schema 2 manifest)."""
    cmd = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
    if docker_format:
        cmd += ["--format", "v2s2"]
    if creds:
        cmd += ["--dest-creds", f"{creds[0]}:{creds[1]}"]
    cmd += [f"oci:{layout}:{tag}", f"docker://{ref}"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    assert r.returncode == 0, f"skopeo push of {ref} failed: {r.stderr}"


def auth_file(path, host, user, password, as_b64=False):
    """A node auth file with credentials for host."""
    entry = ({"auth": base64.b64encode(f"{user}:{password}".encode()).decode()} if as_b64
             else {"username": user, "password": password})
    Path(path).write_text(json.dumps({"auths": {host: entry}}))
    return Path(path)


def run_image(*args, timeout=60):
    """Runs build/shoal-image; returns (returncode, parsed stdout, stderr)."""
    r = subprocess.run([str(SHOAL_IMAGE), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, check=False)
    for mark in SANITIZER_MARKS:
        assert mark not in r.stderr, f"shoal-image {args}: sanitizer report:\n{r.stderr}"
    try:
        out = json.loads(r.stdout) if r.stdout.strip() else None
    except ValueError:
        out = r.stdout
    return r.returncode, out, r.stderr


def closed_port():
    """A 127.0.0.1 port nothing listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class BearerRegistryStub:
    """A small registry on 127.0.0.1 serving one OCI layout with the Bearer
    token flow: /v2/ answers 401 with a Bearer challenge, /token gives a token
    for Basic credentials, the tag resolves to an image index (linux/arm64 and
    linux/amd64), blob GETs are redirected (307) to an unauthenticated path.
    `.addr`, `.token_requests` (scopes asked), `.stop()`."""

    TOKEN = "stub-token-123"

    def __init__(self, layout, name, tag, user, password):
        import http.server  # pylint: disable=import-outside-toplevel
        import threading  # pylint: disable=import-outside-toplevel

        self.layout, self.name, self.tag = Path(layout), name, tag
        self.creds = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.token_requests = []
        dg = layout_digests(layout)
        amd64 = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                 "digest": dg["manifest"], "platform": {"os": "linux", "architecture": "amd64"},
                 "size": len(self.blob(dg["manifest"]))}
        arm = dict(amd64, digest="sha256:" + "e" * 64,
                   platform={"os": "linux", "architecture": "arm64"})
        self.index = json.dumps({"schemaVersion": 2,
                                 "mediaType": "application/vnd.oci.image.index.v1+json",
                                 "manifests": [arm, amd64]}).encode()
        self.manifest_digest = dg["manifest"]
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                stub.handle(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.addr = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def blob(self, digest):
        p = self.layout / "blobs" / "sha256" / digest[7:]
        return p.read_bytes() if p.exists() else None

    @staticmethod
    def reply(h, code, body=b"", ctype="application/json", headers=()):
        h.send_response(code)
        for k, v in headers:
            h.send_header(k, v)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def handle(self, h):
        path = h.path
        if path.startswith("/token"):
            self.token_requests.append(path)
            if h.headers.get("Authorization") != self.creds:
                return self.reply(h, 401, b'{"details": "bad credentials"}')
            return self.reply(h, 200, json.dumps({"token": self.TOKEN}).encode())
        if path.startswith("/blobstore/"):
            data = self.blob(path.rsplit("/", 1)[1])
            return self.reply(h, 200 if data else 404, data or b"", "application/octet-stream")
        if h.headers.get("Authorization") != f"Bearer {self.TOKEN}":
            challenge = (f'Bearer realm="http://{self.addr}/token",service="stub",'
                         f'scope="repository:{self.name}:pull"')
            return self.reply(h, 401, b'{"errors": [{"code": "UNAUTHORIZED"}]}',
                              headers=[("WWW-Authenticate", challenge)])
        prefix = f"/v2/{self.name}/"
        if path == "/v2/":
            return self.reply(h, 200, b"{}")
        if path == prefix + f"manifests/{self.tag}":
            return self.reply(h, 200, self.index, "application/vnd.oci.image.index.v1+json")
        if path.startswith(prefix + "manifests/sha256:"):
            data = self.blob(path.rsplit("/", 1)[1])
            return self.reply(h, 200 if data else 404, data or b"{}",
                              "application/vnd.oci.image.manifest.v1+json")
        if path.startswith(prefix + "blobs/"):
            return self.reply(h, 307, headers=[("Location",
                                                f"/blobstore/{path.rsplit('/', 1)[1]}")])
        return self.reply(h, 404, b'{"errors": [{"code": "NAME_UNKNOWN"}]}')

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
