#!/bin/sh
# Single-node control plane: acknowledged writes/s (1 and 64 clients), GET/s,
# and shoald's RSS idle and holding 10,000 services.
set -eu
B=$1
. "$(dirname "$0")/lib.sh"

echo "== control plane, one node (wrk on the same 2 cores as shoald)"
bench_start_node cp 27070 27071
# The control plane alone: the node is drained, so the replicas these
# benchmarks ask for are planned (and stay pending) but never run here
# (bench/tasks.py measures running tasks).
node_id=$(curl -sf "$NODE_URL/v1/health" | sed 's/.*"node":"\([0-9a-f]*\)".*/\1/')
curl -sf -XPATCH -H "Authorization: Bearer $NODE_TOKEN" "$NODE_URL/v1/nodes/$node_id" \
    -d '{"availability": "drain"}' >/dev/null
sleep 1
printf '%-44s %10s KiB\n' "shoald RSS idle:" "$(bench_rss_kb "$NODE_PID")"

curl -sf -XPOST -H "Authorization: Bearer $NODE_TOKEN" "$NODE_URL/v1/services" \
    -d '{"name": "web", "replicas": 2, "task": {"command": ["/bin/sleep", "1000"]}}' >/dev/null

cat >"$bench_tmp/scale.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $NODE_TOKEN"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/v1/services/web/scale", nil, '{"replicas": ' .. (n % 1000) .. '}')
end
LUA
cat >"$bench_tmp/get.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $NODE_TOKEN"
LUA

bench_wrk "acknowledged writes, 1 client" -t1 -c1 -d5s -s "$bench_tmp/scale.lua" "$NODE_URL"
bench_wrk "acknowledged writes, 64 clients" -t2 -c64 -d5s -s "$bench_tmp/scale.lua" "$NODE_URL"
bench_wrk "GET /v1/services/web, 64 clients" -t2 -c64 -d5s -s "$bench_tmp/get.lua" \
    "$NODE_URL/v1/services/web"

start=$(date +%s%N)
/usr/bin/python3 "$(dirname "$0")/load_services.py" "$NODE_URL" "$NODE_TOKEN" 10000 16
end=$(date +%s%N)
printf '%-44s %10s ms\n' "create 10,000 services (16 clients):" $(((end - start) / 1000000))
sleep 1
printf '%-44s %10s KiB\n' "shoald RSS with 10,000 services:" "$(bench_rss_kb "$NODE_PID")"
