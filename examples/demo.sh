#!/bin/sh
# The demo behind `make demo` / `make demo-stop`: starts a local cluster in
# ./.demo (three managers with their APIs on 127.0.0.1:7070, :7080, :7090),
# deploys the example services, waits until their tasks run and shows them.
# As root it also builds a container image from busybox-static (no network),
# loads it on every node and runs examples/cweb.json from it, published on
# 127.0.0.1:8090. The nodes share the host's network, so each has its own
# container bridge: shoal<api port> with 10.88.<api port - 7000>.0/24 (nft
# table shoal_shoal<api port>).
# `stop` removes the services (their tasks stop, shoald removes their
# containers), stops every shoald it started, by pid, then deletes the
# demo's bridges and nft tables.
set -eu
B=${SHOAL_BUILD:-$(pwd)/build}
DIR=$(pwd)/.demo
PORTS="7070 7080 7090"
IMAGE_TAR=$DIR/httpd-image.tar

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

# What the demo's containers leave on the host while they exist: runc
# state, mounts under $DIR (overlay rootfs, netns files).
containers_left() {
    ls -d "$DIR"/*/runc/* 2>/dev/null
    grep -F " $DIR/" /proc/self/mountinfo | cut -d' ' -f5
}

# clean_containers: shoald removes a task's container when the task ends;
# anything left once every shoald is stopped (a removal cut short) goes here,
# and is named, since it should not happen.
clean_containers() {
    for state in "$DIR"/*/runc/*; do
        [ -d "$state" ] || continue
        echo "demo: leftover container $(basename "$state"), deleting it" >&2
        runc --root "$(dirname "$state")" delete --force "$(basename "$state")" || true
    done
    grep -F " $DIR/" /proc/self/mountinfo | cut -d' ' -f5 | sort -r | while read -r m; do
        echo "demo: leftover mount $m, unmounting it" >&2
        umount -l "$m" || true
    done
}

# remove_bridges: the demo nodes' container bridges and their nft tables
# (shoald leaves them, as a daemon should); no other table is touched.
remove_bridges() {
    for port in $PORTS; do
        if [ -e "/sys/class/net/shoal$port" ]; then
            ip link del "shoal$port"
        fi
        if nft list table ip "shoal_shoal$port" >/dev/null 2>&1; then
            nft delete table ip "shoal_shoal$port"
        fi
    done
}

stop() {
    export SHOAL_ADDR="http://127.0.0.1:7070"
    export SHOAL_TOKEN_FILE="$DIR/m1/admin.token"
    if "$B/shoal" service ls -o json >/dev/null 2>&1; then
        # (a service's JSON also holds the name in its stable and previous specs)
        names=$("$B/shoal" service ls -o json | sed -n 's/.*"name": *"\([^"]*\)".*/\1/p' |
            sort -u)
        if [ -n "$names" ]; then
            # shellcheck disable=SC2086
            "$B/shoal" service rm $names >/dev/null
            i=0
            while [ "$(curl -sf -H "Authorization: Bearer $(cat "$SHOAL_TOKEN_FILE")" \
                "$SHOAL_ADDR/v1/tasks")" != "[]" ] && [ $i -lt 150 ]; do
                sleep 0.1
                i=$((i + 1))
            done
            i=0
            while [ -n "$(containers_left)" ] && [ $i -lt 150 ]; do
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
    if [ "$(id -u)" = 0 ]; then
        clean_containers
        remove_bridges
    fi
    echo "demo: services removed, $stopped shoald stopped, bridges removed; state kept in $DIR" \
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

# leader_up: whether one of the demo's nodes is the Raft leader.
leader_up() {
    for port in $PORTS; do
        if curl -sf "http://127.0.0.1:$port/v1/health" 2>/dev/null | grep -q '"leader":true'; then
            return 0
        fi
    done
    return 1
}

# start_node NAME PORT ARGS...: starts one shoald unless it already runs;
# ARGS only on its first start. Its bridge options are given every time.
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
        --listen "127.0.0.1:$((port + 1))" --bridge "shoal$port" \
        --bridge-subnet "10.88.$((port - 7000)).0/24" "$@" </dev/null >>"$DIR/$name.log" 2>&1 &
    echo $! >"$DIR/$name.pid"
}

# containers: the image built here, loaded on every node, a service of 3
# containers from it with a published port.
containers() {
    echo "+ python3 examples/build-image.py .demo/httpd-image.tar    # busybox-static + httpd, offline"
    ref=$(/usr/bin/python3 examples/build-image.py "$IMAGE_TAR")
    for port in $PORTS; do
        echo "+ shoal --addr http://127.0.0.1:$port image load .demo/httpd-image.tar"
        "$B/shoal" --addr "http://127.0.0.1:$port" image load "$IMAGE_TAR"
    done
    echo "+ shoal apply -f examples/cweb.json    # 3 containers of $ref, published on :8090"
    "$B/shoal" apply -f examples/cweb.json
    wait_for '[ "$("$B/shoal" service ps cweb 2>/dev/null | grep -c "running (healthy)")" = 3 ]' \
        "cweb's containers did not start (or are not healthy)"
    echo "+ shoal service ps cweb"
    "$B/shoal" service ps cweb
    wait_for 'curl -sf -o /dev/null http://127.0.0.1:8090/' "cweb does not answer on :8090"
    echo "+ curl -s http://127.0.0.1:8090/    # a container, through its node's DNAT"
    curl -s http://127.0.0.1:8090/
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
    # Every node, not only m1: after a restart a follower has the nodes (and
    # so the leader's API address, to forward writes to) only once it has
    # caught up with the leader.
    wait_for leader_up "no leader was elected"
    for port in $PORTS; do
        wait_for '[ "$("$B/shoal" --addr "http://127.0.0.1:$port" node ls -o json 2>/dev/null |
            grep -c "\"ready\"")" = 3 ]' "the cluster did not form (as :$port sees it)"
        wait_for '[ "$("$B/shoal" --addr "http://127.0.0.1:$port" node ls -o json 2>/dev/null |
            grep -c "\"voter\"")" = 3 ]' "the managers did not all become voters (as :$port sees it)"
    done
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
    if [ "$(id -u)" = 0 ]; then
        containers
    else
        echo "demo: not root, so no container service (runc, bridges and nftables need root)"
    fi
    cat <<MSG

Try it yourself:
  export SHOAL_ADDR=$SHOAL_ADDR SHOAL_TOKEN_FILE=$SHOAL_TOKEN_FILE
  $B/shoal service ps api
  $B/shoal logs ticker --tail 5
  $B/shoal service scale ticker=5
  $B/shoal node update m3 --availability drain && $B/shoal service ps api
  $B/shoal cluster status
  $B/shoal --addr http://127.0.0.1:7080 image ls
  $B/shoal service update cweb --env-add GREETING=hi --detach=false   # rolling, health-gated
  $B/shoal logs cweb --tail 5
Stop it with: make demo-stop
MSG
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
*) echo "usage: demo.sh start|stop" >&2; exit 2 ;;
esac
