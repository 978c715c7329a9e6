#!/bin/sh
# Installs every Debian package the build, the tests, the benchmarks and the
# demo need. Idempotent and quick when everything is already present.
set -eu
PKGS="build-essential pkg-config clang-format libraft-dev liblz4-dev libuv1-dev \
libjansson-dev libcurl4-openssl-dev libhttp-parser-dev libcmocka-dev \
python3 python3-pytest python3-requests wrk curl busybox-static \
libarchive-dev libssl-dev docker-registry skopeo umoci zstd nftables iproute2 runc \
golang-github-containers-common"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages:$missing (run as root to install)" >&2
    exit 1
fi
echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
