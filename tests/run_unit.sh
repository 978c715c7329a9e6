#!/bin/sh
# Runs every cmocka unit-test binary given as argument and prints one summary.
passed=0
failed=0
for t in "$@"; do
    if "$t"; then
        passed=$((passed + 1))
    else
        echo "unit: FAILED: $t" >&2
        failed=$((failed + 1))
    fi
done
echo "unit binaries: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
