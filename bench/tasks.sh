#!/bin/sh
# Running tasks (bench/tasks.py).
exec /usr/bin/python3 "$(dirname "$0")/tasks.py" "$1"
