#!/bin/sh
# The demo behind `make demo` / `make demo-stop`: starts a local cluster in
# ./.demo (three managers with their APIs on 127.0.0.1:7070, :7080, :7090),
# deploys the example services, waits until their tasks run and shows them;
# `stop` removes the services (their tasks stop), then stops every shoald it
# started, by pid.
set -eu
B=${SHOAL_BUILD:-$(pwd)/build}
DIR=$(pwd)/.demo

# kill_leftovers: tasks outlive shoald on purpose; kill (by pid, from their
# monitors' state files) any that a removal could not stop.
kill_leftovers() {
    for state in "$DIR"/*/tasks/*/state; do
        [ -f "$state" ] || continue
        for key in pid monitor_pid; do
            pid=$(sed -n "s/^$key=//p" "$state")
            [ -n "$pid" ] || continue
            if grep -qa "$(dirname "$state")\|SHOAL_TASK_ID=$(basename "$(dirname "$state")")" \
                "/proc/$pid/cmdline" "/proc/$pid/environ" 2>/dev/null; then
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done
    done
}

stop() {
    export SHOAL_ADDR="http://127.0.0.1:7070"
    export SHOAL_TOKEN_FILE="$DIR/m1/admin.token"
    if "$B/shoal" service ls -o json >/dev/null 2>&1; then
        names=$("$B/shoal" service ls -o json | sed -n 's/.*"name": *"\([^"]*\)".*/\1/p')
        if [ -n "$names" ]; then
            # shellcheck disable=SC2086
            "$B/shoal" service rm $names >/dev/null
            i=0
            while [ "$(curl -sf -H "Authorization: Bearer $(cat "$SHOAL_TOKEN_FILE")" \
                "$SHOAL_ADDR/v1/tasks")" != "[]" ] && [ $i -lt 150 ]; do
                sleep 0.1
                i=$((i + 1))
            done
        fi
    fi
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
    kill_leftovers
    echo "demo: services removed, $stopped shoald stopped; state kept in $DIR" \
        "(rm -rf it to start over)"
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
    if [ -f "$DIR/m3/node.json" ]; then
        # A restart: every node comes back from its data dir (m1 alone
        # would have no quorum).
        start_node m2 7080
        start_node m3 7090
    else
        wait_for 'curl -sf "$SHOAL_ADDR/v1/health" 2>/dev/null | grep -q "\"leader\":true"' \
            "the first manager did not start"
        wait_for '"$B/shoal" cluster join-token manager -q >/dev/null 2>&1' "no join token"
        mgr=$("$B/shoal" cluster join-token manager -q)
        start_node m2 7080 --join 127.0.0.1:7070 --token "$mgr"
        start_node m3 7090 --join 127.0.0.1:7070 --token "$mgr" --label zone=b
    fi
    wait_for '[ "$("$B/shoal" node ls -o json 2>/dev/null | grep -c "\"ready\"")" = 3 ]' \
        "the cluster did not form"
    wait_for '[ "$("$B/shoal" node ls -o json 2>/dev/null | grep -c "\"voter\"")" = 3 ]' \
        "the managers did not all become voters"
    echo "demo: a cluster of 3 managers is up (logs in $DIR)"
    echo "+ shoal node ls"
    "$B/shoal" node ls
    echo "+ shoal apply -f examples/web.json    # python3 http.server, one port per slot"
    "$B/shoal" apply -f examples/web.json
    echo "+ shoal apply -f examples/stack.json  # a replicated loop and a global service"
    "$B/shoal" apply -f examples/stack.json
    echo "+ shoal apply -f examples/ticker.json # a busybox loop"
    "$B/shoal" apply -f examples/ticker.json
    echo "+ shoal --addr http://127.0.0.1:7090 service scale web=3    # through a follower"
    "$B/shoal" --addr http://127.0.0.1:7090 service scale web=3
    wait_for '[ "$("$B/shoal" service ps web -o json 2>/dev/null |
        grep -o "\"state\": *\"running\"" | wc -l)" = 3 ]' "web's tasks did not start"
    echo "+ shoal service ls"
    "$B/shoal" service ls
    echo "+ shoal service ps web"
    "$B/shoal" service ps web
    wait_for 'curl -sf -o /dev/null http://127.0.0.1:8081/' "web.1 does not answer on :8081"
    echo "+ curl -s http://127.0.0.1:8081/ | head -3    # web.1"
    curl -s http://127.0.0.1:8081/ | head -3
    cat <<MSG

Try it yourself:
  export SHOAL_ADDR=$SHOAL_ADDR SHOAL_TOKEN_FILE=$SHOAL_TOKEN_FILE
  $B/shoal service ps api
  $B/shoal logs ticker --tail 5
  $B/shoal service scale ticker=5
  $B/shoal node update m3 --availability drain && $B/shoal service ps api
  $B/shoal cluster status
Stop it with: make demo-stop
MSG
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
*) echo "usage: demo.sh start|stop" >&2; exit 2 ;;
esac
