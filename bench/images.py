"""Images: shoal-image pulling the 3-layer busybox test image (about 1 MB
compressed, 2 MB unpacked) from a local docker-registry on 127.0.0.1 into a
fresh store (fetch, verify, unpack), a second pull of the same tag into the
same store (manifest re-resolved, nothing unpacked), and a load of the OCI
layout tarball. Prints medians of 5 runs; asserts nothing."""
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["SHOAL_BUILD"] = os.path.abspath(sys.argv[1])
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

import imagetest as it  # noqa: E402  pylint: disable=wrong-import-position

RUNS = 5


def timed(args):
    t0 = time.monotonic()
    rc, out, err = it.run_image(*args)
    dt = time.monotonic() - t0
    if rc != 0:
        raise SystemExit(f"bench images: shoal-image {args[0]} failed: {out} {err}")
    return dt


def main(tmp):
    layout = it.build_image(tmp)
    size = sum(p.stat().st_size for p in (layout / "blobs/sha256").iterdir())
    reg = it.Registry(tmp).start()
    try:
        ref = f"{reg.addr}/bench/busybox:latest"
        it.push(layout, ref)
        cold, warm, load = [], [], []
        tar = it.oci_tarball(layout, Path(tmp) / "oci.tar")
        for i in range(RUNS):
            store = Path(tmp) / f"store{i}"
            pull = ["pull", "--store", store, "--insecure-registry", reg.addr, ref]
            cold.append(timed(pull))
            warm.append(timed(pull))
            load.append(timed(["load", "--store", Path(tmp) / f"load{i}", tar]))
            shutil.rmtree(store)
    finally:
        reg.stop()
    ms = lambda xs: f"{statistics.median(xs) * 1000:.0f} ms"  # noqa: E731
    print(f"images: 3-layer image, {size / 1e6:.1f} MB of blobs")
    print(f"images: pull + verify + unpack into an empty store: {ms(cold)}")
    print(f"images: pull again (tag re-resolved, rootfs shared): {ms(warm)}")
    print(f"images: load of the OCI layout tarball: {ms(load)}")


if __name__ == "__main__":
    d = tempfile.mkdtemp(prefix="shoal-bench-images.")
    try:
        main(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
