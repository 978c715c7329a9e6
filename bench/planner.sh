#!/bin/sh
# Planner benchmark (bench/planner.c): placement of 100,000 replicas on 1,000
# nodes, a scale-up, a steady-state re-plan and global mode, in-process.
exec "$1/bench/planner"
