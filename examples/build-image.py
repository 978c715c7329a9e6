"""Builds the demo's container image without a network: an OCI image layout
tarball (what `shoal image load` reads) of the static /bin/busybox
(busybox-static) whose Entrypoint and Cmd run `httpd -f -p 8080 -h
/var/www`, as user nobody, serving an index.html of its own.

    python3 examples/build-image.py OUT.tar

prints the image's ref (shoal-demo/httpd:1). The layout is written by the
e2e tests' image module (tests/e2e/imagetest.py): two layers, busybox with
its applets and /etc/passwd, then the site. The same input gives the same
digests."""
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

import imagetest as it  # noqa: E402  pylint: disable=wrong-import-position

NAME, TAG = "shoal-demo/httpd", "1"
CONFIG = {
    "Entrypoint": ["/bin/httpd"],
    "Cmd": ["-f", "-v", "-p", "8080", "-h", "/var/www"],
    "Env": ["PATH=/bin"],
    "WorkingDir": "/var/www",
    "User": "nobody",
    "ExposedPorts": {"8080/tcp": {}},
}
SITE = [it.d("var"), it.d("var/www"),
        it.f("var/www/index.html", "hello from a Shoal container\n")]


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: build-image.py OUT.tar")
    out = Path(argv[1]).resolve()
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        layout = it.build_image(tmp, name=NAME, tag=TAG, layers=[it.base_layer(), SITE],
                                config=CONFIG)
        it.oci_tarball(layout, out.with_suffix(".tmp"))
        out.with_suffix(".tmp").replace(out)
    print(f"{NAME}:{TAG}")


if __name__ == "__main__":
    main(sys.argv)
