#!/bin/sh
# Benchmarks for `make bench`: they print figures, they assert nothing.
# Needs SHOAL_BUILD (the build dir) and Debian's wrk; containers.sh needs root and runc.
set -eu
B=${SHOAL_BUILD:-$(pwd)/build}
HERE=$(cd "$(dirname "$0")" && pwd)
for b in "$HERE"/*.sh; do
    [ "$(basename "$b")" = run.sh ] && continue
    sh "$b" "$B"
done
