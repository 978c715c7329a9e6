#!/bin/sh
# Cluster benchmarks (bench/cluster.py).
exec /usr/bin/python3 "$(dirname "$0")/cluster.py" "$1"
