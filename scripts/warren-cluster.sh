#!/usr/bin/env bash
# A three-node Warren cluster on this machine from one binary, for the side-by-side runs against
# scripts/rabbitmq-cluster.sh (docs/PERFORMANCE.md, docs/RELIABILITY.md).
#
#   scripts/warren-cluster.sh up [BINARY]   # nodes warren@n1..3 on 127.0.0.11, .12, .13: AMQP port
#                                           # 5791, management 15791, cluster 7791
#   scripts/warren-cluster.sh down          # stops the three (by the pids it recorded)
#
# BINARY defaults to a fresh `go build ./cmd/warren`. Data and logs: $WARREN_CLUSTER_DIR (default
# /tmp/warren-cluster); a node started again keeps its data directory and rejoins.
set -eu
dir=${WARREN_CLUSTER_DIR:-/tmp/warren-cluster}
cmd=${1:-up}
nodes="warren@n1=127.0.0.11:7791,warren@n2=127.0.0.12:7791,warren@n3=127.0.0.13:7791"

case $cmd in
up)
	bin=${2:-}
	mkdir -p "$dir"
	if [ -z "$bin" ]; then
		bin=$dir/warren
		(cd "$(dirname "$0")/.." && go build -o "$bin" ./cmd/warren)
	fi
	for i in 1 2 3; do
		if [ -f "$dir/n$i.pid" ] && kill -0 "$(cat "$dir/n$i.pid")" 2>/dev/null; then continue; fi
		mkdir -p "$dir/n$i"
		"$bin" --node-name "warren@n$i" --cluster-addr "127.0.0.1$i:7791" --cluster-nodes "$nodes" \
			--amqp-addr "127.0.0.1$i:5791" --http-addr "127.0.0.1$i:15791" --data-dir "$dir/n$i" \
			>"$dir/n$i.log" 2>&1 &
		echo $! >"$dir/n$i.pid"
	done
	for i in 1 2 3; do
		for _ in $(seq 1 600); do grep -q 'msg="warren ready"' "$dir/n$i.log" && break; sleep 0.1; done
		grep -q 'msg="warren ready"' "$dir/n$i.log" || { echo "node n$i did not start; see $dir/n$i.log" >&2; exit 1; }
	done
	echo "Warren cluster warren@n1..3: amqp://guest:guest@127.0.0.11:5791/ (.12, .13), management http://127.0.0.11:15791/"
	;;
down)
	for i in 1 2 3; do
		if [ -f "$dir/n$i.pid" ]; then
			kill "$(cat "$dir/n$i.pid")" 2>/dev/null || true
			rm -f "$dir/n$i.pid"
		fi
	done
	echo "stopped warren@n1..3"
	;;
*)
	echo "usage: $0 up [BINARY]|down" >&2
	exit 2
	;;
esac
