#!/bin/sh
# The demo behind `make demo` / `make demo-stop`: starts a local cluster in
# ./.demo (three managers with their APIs on 127.0.0.1:7070, :7080, :7090 and
# a worker on :7100), deploys the example services and shows them; `stop`
# stops every shoald it started, by pid.
set -eu
B=${SHOAL_BUILD:-$(pwd)/build}
DIR=$(pwd)/.demo
NODES="m1:7070 m2:7080 m3:7090 w1:7100"

stop() {
    stopped=0
    for pidfile in "$DIR"/*.pid; do
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if kill -TERM "$pid" 2>/dev/null; then
            i=0
            while kill -0 "$pid" 2>/dev/null && [ $i -lt 150 ]; do
                sleep 0.1
                i=$((i + 1))
            done
            stopped=$((stopped + 1))
        fi
        rm -f "$pidfile"
    done
    echo "demo: $stopped shoald stopped; state kept in $DIR (rm -rf it to start over)"
}

wait_for() {
    i=0
    until eval "$1"; do
        i=$((i + 1))
        if [ $i -gt 150 ]; then
            echo "demo: $2; see the logs in $DIR" >&2
            exit 1
        fi
        sleep 0.1
    done
}

# start_node NAME PORT ARGS...: starts one shoald unless it already runs.
start_node() {
    name=$1
    port=$2
    shift 2
    if [ -f "$DIR/$name.pid" ] && kill -0 "$(cat "$DIR/$name.pid")" 2>/dev/null; then
        return
    fi
    if [ -f "$DIR/$name/node.json" ]; then
        set --
    fi
    "$B/shoald" --data-dir "$DIR/$name" --name "$name" --api "127.0.0.1:$port" \
        --listen "127.0.0.1:$((port + 1))" "$@" </dev/null >>"$DIR/$name.log" 2>&1 &
    echo $! >"$DIR/$name.pid"
}

start() {
    mkdir -p "$DIR"
    export SHOAL_ADDR="http://127.0.0.1:7070"
    export SHOAL_TOKEN_FILE="$DIR/m1/admin.token"
    start_node m1 7070 --bootstrap
    if [ -f "$DIR/w1/node.json" ]; then
        # A restart: every node comes back from its data dir (m1 alone
        # would have no quorum).
        start_node m2 7080
        start_node m3 7090
        start_node w1 7100
    else
        wait_for 'curl -sf "$SHOAL_ADDR/v1/health" 2>/dev/null | grep -q "\"leader\":true"' \
            "the first manager did not start"
        wait_for '"$B/shoal" cluster join-token manager -q >/dev/null 2>&1' "no join token"
        mgr=$("$B/shoal" cluster join-token manager -q)
        wrk=$("$B/shoal" cluster join-token worker -q)
        start_node m2 7080 --join 127.0.0.1:7070 --token "$mgr"
        start_node m3 7090 --join 127.0.0.1:7070 --token "$mgr"
        start_node w1 7100 --join 127.0.0.1:7070 --token "$wrk" --label zone=a
    fi
    wait_for '[ "$("$B/shoal" node ls -o json 2>/dev/null | grep -c "\"ready\"")" = 4 ]' \
        "the cluster did not form"
    wait_for '[ "$("$B/shoal" node ls -o json 2>/dev/null | grep -c "\"voter\"")" = 3 ]' \
        "the managers did not all become voters"
    echo "demo: a cluster of 3 managers and 1 worker is up (logs in $DIR)"
    echo "+ shoal node ls"
    "$B/shoal" node ls
    echo "+ shoal apply -f examples/web.json"
    "$B/shoal" apply -f examples/web.json
    echo "+ shoal apply -f examples/stack.json"
    "$B/shoal" apply -f examples/stack.json
    echo "+ shoal --addr http://127.0.0.1:7090 service scale web=3    # through a follower"
    "$B/shoal" --addr http://127.0.0.1:7090 service scale web=3
    echo "+ shoal service ls"
    "$B/shoal" service ls
    cat <<MSG

Try it yourself:
  export SHOAL_ADDR=$SHOAL_ADDR SHOAL_TOKEN_FILE=$SHOAL_TOKEN_FILE
  $B/shoal service inspect web
  $B/shoal service update web --env-add GREETING=hello
  $B/shoal node update w1 --availability drain
  $B/shoal cluster status
Stop it with: make demo-stop
MSG
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
*) echo "usage: demo.sh start|stop" >&2; exit 2 ;;
esac
