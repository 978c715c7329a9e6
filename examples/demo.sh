#!/bin/sh
# The demo behind `make demo` / `make demo-stop`: starts a local shoald in
# ./.demo (API on 127.0.0.1:7070), deploys the example services and shows
# them; `stop` stops it by its pid.
set -eu
B=${SHOAL_BUILD:-$(pwd)/build}
DIR=$(pwd)/.demo
API=${SHOAL_DEMO_API:-127.0.0.1:7070}
RAFT=${SHOAL_DEMO_RAFT:-127.0.0.1:7071}

stop() {
    if [ -f "$DIR/shoald.pid" ]; then
        pid=$(cat "$DIR/shoald.pid")
        if kill -TERM "$pid" 2>/dev/null; then
            i=0
            while kill -0 "$pid" 2>/dev/null && [ $i -lt 150 ]; do
                sleep 0.1
                i=$((i + 1))
            done
            echo "demo: shoald (pid $pid) stopped; state kept in $DIR (rm -rf it to start over)"
        fi
        rm -f "$DIR/shoald.pid"
    else
        echo "demo: not running"
    fi
}

start() {
    mkdir -p "$DIR"
    if [ -f "$DIR/shoald.pid" ] && kill -0 "$(cat "$DIR/shoald.pid")" 2>/dev/null; then
        echo "demo: already running (make demo-stop first)"
    else
        "$B/shoald" --data-dir "$DIR/node1" --bootstrap --listen "$RAFT" --api "$API" </dev/null \
            >>"$DIR/node1.log" 2>&1 &
        echo $! >"$DIR/shoald.pid"
    fi
    export SHOAL_ADDR="http://$API"
    i=0
    until curl -sf "$SHOAL_ADDR/v1/health" 2>/dev/null | grep -q '"leader":true'; do
        i=$((i + 1))
        if [ $i -gt 100 ]; then
            echo "demo: shoald did not start; see $DIR/node1.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    export SHOAL_TOKEN_FILE="$DIR/node1/admin.token"
    echo "demo: shoald is up at $SHOAL_ADDR (log: $DIR/node1.log)"
    echo "+ shoal apply -f examples/web.json"
    "$B/shoal" apply -f examples/web.json
    echo "+ shoal apply -f examples/stack.json"
    "$B/shoal" apply -f examples/stack.json
    echo "+ shoal service scale web=3"
    "$B/shoal" service scale web=3
    echo "+ shoal service ls"
    "$B/shoal" service ls
    echo "+ shoal cluster status"
    "$B/shoal" cluster status
    cat <<MSG

Try it yourself:
  export SHOAL_ADDR=$SHOAL_ADDR SHOAL_TOKEN_FILE=$SHOAL_TOKEN_FILE
  $B/shoal service inspect web
  $B/shoal service update web --env-add GREETING=hello
Stop it with: make demo-stop
MSG
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
*) echo "usage: demo.sh start|stop" >&2; exit 2 ;;
esac
