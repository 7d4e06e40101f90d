#!/usr/bin/env bash
# A three-node RabbitMQ 3.10.8 cluster on this machine, beside the reference node that
# ../shared/tools/rabbitmq-up starts (rabbit@HOST on 5672), for side-by-side comparisons with a
# Warren cluster (docs/PERFORMANCE.md, docs/RELIABILITY.md). Uses Debian's rabbitmq-server package.
#
#   scripts/rabbitmq-cluster.sh up      # nodes rmq1..3@HOST: AMQP 5771-5773, management 15771-15773
#   scripts/rabbitmq-cluster.sh status
#   scripts/rabbitmq-cluster.sh down    # stops only these three nodes (by node name)
#
# Each node has its own data and log directories under $RMQ_CLUSTER_DIR (default /tmp/rmq-cluster),
# its own config file (ports) and only the management plugin (the reference node owns the
# MQTT/STOMP/stream ports). Quorum queues declared on any node get three members.
set -eu
dir=${RMQ_CLUSTER_DIR:-/tmp/rmq-cluster}
host=$(hostname -s)
cmd=${1:-up}

# rmq I TOOL ARGS... runs one of RabbitMQ's tools for node I as the rabbitmq user (Debian's
# wrappers in /usr/sbin would drop the node's environment), with the Erlang cookie of the
# reference node so that rabbitmqctl reaches all of them.
rmq() {
	local i=$1 tool=$2
	shift 2
	local run=()
	if [ "$(id -u)" = 0 ]; then run=(runuser -u rabbitmq --); fi
	"${run[@]}" env HOME=/var/lib/rabbitmq \
		RABBITMQ_NODENAME="rmq$i@$host" \
		RABBITMQ_CONFIG_FILE="$dir/rmq$i/rabbitmq" \
		RABBITMQ_MNESIA_BASE="$dir/rmq$i/mnesia" \
		RABBITMQ_LOG_BASE="$dir/rmq$i/log" \
		RABBITMQ_ENABLED_PLUGINS_FILE="$dir/rmq$i/enabled_plugins" \
		RABBITMQ_PID_FILE="$dir/rmq$i/pid" \
		RABBITMQ_DIST_PORT=$((25770 + i)) \
		"/usr/lib/rabbitmq/bin/$tool" "$@"
}

case $cmd in
up)
	command -v rabbitmq-server >/dev/null || { echo "rabbitmq-server is not installed (run ../shared/tools/rabbitmq-up once)" >&2; exit 1; }
	for i in 1 2 3; do
		mkdir -p "$dir/rmq$i"
		cat >"$dir/rmq$i/rabbitmq.conf" <<CONF
listeners.tcp.default = $((5770 + i))
management.tcp.port = $((15770 + i))
loopback_users = none
CONF
		echo "[rabbitmq_management]." >"$dir/rmq$i/enabled_plugins"
		if [ "$(id -u)" = 0 ]; then chown -R rabbitmq: "$dir"; fi
		if ! rmq "$i" rabbitmqctl status >/dev/null 2>&1; then
			rmq "$i" rabbitmq-server -detached >/dev/null 2>&1
		fi
	done
	for i in 1 2 3; do
		rmq "$i" rabbitmqctl --timeout 120 await_startup >/dev/null
	done
	for i in 2 3; do
		if ! rmq "$i" rabbitmqctl cluster_status 2>/dev/null | grep -q "rmq1@$host"; then
			rmq "$i" rabbitmqctl stop_app >/dev/null
			rmq "$i" rabbitmqctl join_cluster "rmq1@$host" >/dev/null
			rmq "$i" rabbitmqctl start_app >/dev/null
		fi
	done
	echo "RabbitMQ cluster rmq1..3@$host: amqp://guest:guest@127.0.0.1:5771/ :5772 :5773, management :15771-15773"
	;;
status)
	rmq 1 rabbitmqctl cluster_status
	;;
down)
	for i in 3 2 1; do
		rmq "$i" rabbitmqctl stop >/dev/null 2>&1 || true
	done
	echo "stopped rmq1..3@$host"
	;;
*)
	echo "usage: $0 up|status|down" >&2
	exit 2
	;;
esac
