#!/bin/sh
# Container start latency and replicas (bench/containers.py).
exec /usr/bin/python3 "$(dirname "$0")/containers.py" "$1"
