#!/bin/sh
# Image pulls from a local registry (bench/images.py).
exec /usr/bin/python3 "$(dirname "$0")/images.py" "$1"
