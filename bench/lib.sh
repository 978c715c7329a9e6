# Helpers shared by the benchmark scripts (sourced, not run).
bench_tmp=$(mktemp -d /tmp/shoal-bench.XXXXXX)
bench_pids=""

bench_cleanup() {
    for p in $bench_pids; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in $bench_pids; do
        while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
    done
    rm -rf "$bench_tmp"
}
trap bench_cleanup EXIT INT TERM

# bench_start_node NAME API_PORT RAFT_PORT: bootstraps a one-node cluster
# and waits until it is leader. Sets NODE_PID, NODE_URL, NODE_TOKEN.
bench_start_node() {
    d="$bench_tmp/$1"
    "$B/shoald" --data-dir "$d" --bootstrap --listen "127.0.0.1:$3" --api "127.0.0.1:$2" \
        --log-level warn 2>"$d.log" &
    NODE_PID=$!
    bench_pids="$bench_pids $NODE_PID"
    NODE_URL="http://127.0.0.1:$2"
    i=0
    until curl -sf "$NODE_URL/v1/health" 2>/dev/null | grep -q '"leader":true'; do
        i=$((i + 1))
        if [ $i -gt 100 ]; then
            echo "bench: node $1 did not become leader" >&2
            cat "$d.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    NODE_TOKEN=$(cat "$d/admin.token")
}

# bench_rss_kb PID: resident set size in KiB.
bench_rss_kb() {
    awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}

# bench_wrk LABEL ARGS...: runs wrk and prints "LABEL: N req/s (p50 L)".
bench_wrk() {
    label=$1
    shift
    out=$(wrk "$@")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    lat=$(echo "$out" | awk '/Latency/ {print $2}')
    printf '%-44s %10s req/s   mean latency %s%s\n' "$label:" "$rps" "$lat" \
        "${non2xx:+   NON-2XX: $non2xx}"
}
