#!/usr/bin/env bash
# compare.sh: Warren against RabbitMQ's streams on this machine, interleaved.
#
# Builds cmd/warren and this package's test binary, starts Warren as its own process on a fresh
# Pebble directory (AMQP 127.0.0.1:5682, stream protocol 127.0.0.1:5562), then RUNS times runs
# BenchmarkStreamClient (the stream protocol, rabbitmq-stream-go-client) and BenchmarkStreamAMQP
# (AMQP 0-9-1, amqp091-go) against Warren and then against RabbitMQ (AMQP 5672, stream 5552), and
# prints the median msgs/s of each and their ratio. Each sub-benchmark is N messages: publish
# with confirms, consume from first.
#
#   RUNS=3 N=200000 integration/streamclient/compare.sh
#
# With REPLAY=M (e.g. 10000000) it instead publishes M 16-byte messages to a Warren stream and
# replays them from first with the stream client, sampling Warren's VmRSS every second
# (BenchmarkStreamClient/consume/16B, which publishes M and then consumes M).
set -euo pipefail
RUNS=${RUNS:-3}
N=${N:-200000}
REPLAY=${REPLAY:-0}
RABBIT_AMQP=${RABBIT_AMQP:-amqp://guest:guest@127.0.0.1:5672/}
RABBIT_STREAM=${RABBIT_STREAM:-rabbitmq-stream://guest:guest@127.0.0.1:5552/}
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
go build -o "$tmp/warren" ./cmd/warren
go test -c -o "$tmp/sc.test" ./integration/streamclient
"$tmp/warren" --amqp-addr 127.0.0.1:5682 --http-addr "" --stream-addr 127.0.0.1:5562 --data-dir "$tmp/data" \
	--log-level warning >"$tmp/warren.log" 2>&1 &
wpid=$!
trap 'kill $wpid 2>/dev/null; wait $wpid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do
	if (exec 3<>/dev/tcp/127.0.0.1/5562) 2>/dev/null; then break; fi
	sleep 0.1
done
WARREN_AMQP=amqp://guest:guest@127.0.0.1:5682/
WARREN_STREAM=rabbitmq-stream://guest:guest@127.0.0.1:5562/

bench() { # label amqp-url stream-url pattern benchtime
	echo "== $1" >&2
	WARREN_TEST_URL=$2 WARREN_TEST_STREAM_URL=$3 "$tmp/sc.test" -test.run XXX -test.bench "$4" \
		-test.benchtime "$5" 2>/dev/null | awk -v who="$1" '/msgs\/s/ { for (i = 1; i <= NF; i++) if ($(i+1) == "msgs/s") { sub(/-[0-9]+$/, "", $1); print who, $1, $i } }'
}

if [ "$REPLAY" -gt 0 ]; then
	(while kill -0 $wpid 2>/dev/null; do
		echo "$(date +%s) $(awk '/VmRSS/ { print $2 }' /proc/$wpid/status)"
		sleep 1
	done) >"$tmp/rss.txt" &
	spid=$!
	start=$(date +%s)
	bench Warren $WARREN_AMQP $WARREN_STREAM 'BenchmarkStreamClient/consume/16B' "${REPLAY}x"
	end=$(date +%s)
	kill $spid; wait $spid 2>/dev/null || true
	echo "start $start end $end (unix seconds); VmRSS in kB by second:"
	cat "$tmp/rss.txt"
	exit 0
fi

for r in $(seq "$RUNS"); do
	bench Warren $WARREN_AMQP $WARREN_STREAM 'BenchmarkStream(Client|AMQP)' "${N}x"
	bench RabbitMQ "$RABBIT_AMQP" "$RABBIT_STREAM" 'BenchmarkStream(Client|AMQP)' "${N}x"
done | tee "$tmp/raw.txt" >&2
python3 - "$tmp/raw.txt" <<'PY'
import sys, statistics, collections
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    who, name, rate = line.split()
    d[(name, who)].append(float(rate))
names = sorted({n for n, _ in d}, key=lambda n: (("AMQP" in n), n))
print("| benchmark | Warren msgs/s (median; runs) | RabbitMQ msgs/s (median; runs) | Warren / RabbitMQ |")
print("|---|---|---|---|")
for n in names:
    w, r = d[(n, "Warren")], d[(n, "RabbitMQ")]
    mw, mr = statistics.median(w), statistics.median(r)
    f = lambda xs: ", ".join(f"{x:.0f}" for x in xs)
    print(f"| {n} | {mw:.0f} ({f(w)}) | {mr:.0f} ({f(r)}) | {mw/mr:.2f} |")
PY
