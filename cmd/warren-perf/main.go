// Command warren-perf is an AMQP 0-9-1 (and MQTT and STOMP) load tool in the spirit of RabbitMQ's
// PerfTest. It points at any AMQP URL (or MQTT / STOMP listener), so the same run can measure Warren
// and RabbitMQ side by side.
//
// A run declares --queues queues (server-named unless --queue is given; non-durable and
// auto-delete unless --durable; deleted at the end unless --keep), starts --consumers consumers
// (consumer i reads queue i mod --queues; at least one per queue) and --producers publishers
// (--connections is the same thing: each publisher has its own connection and channel, with
// confirm mode and a window of --confirm outstanding publishes if --confirm > 0), runs for
// --duration, then stops the producers, drains the consumers and reports published/s,
// consumed/s (deliveries: with fanout, one per queue per message) and confirmed/s over the timed
// window, plus the counts.
//
//	warren-perf --url amqp://guest:guest@127.0.0.1:5672/ --size 16 --duration 10s
//	warren-perf --exchange-type fanout --queues 10 --size 1024      # one fanout exchange, 10 queues
//	warren-perf --connections 100 --confirm 1000                     # 100 publishing connections
//	warren-perf --rate 10000 --json                                  # fixed rate, latency percentiles
//
// Producers publish to the default exchange (routing key: a queue name; producer i publishes to
// queue i mod --queues), or with --exchange-type fanout to one fanout exchange bound to every
// queue. With --rate R they publish R msg/s in all (each producer R/producers, paced by its own
// clock; a producer more than a second behind does not burst to catch up). On Linux the pacing
// is a periodic timerfd read through the Go runtime's poller (pacer_linux.go), so messages are
// evenly spaced even 100µs apart: a Go timer would round each sub-millisecond sleep up to about
// a millisecond and send the messages in bursts, which adds queueing to every latency figure.
//
// --client chooses the AMQP client of producers and consumers: amqp091 (the default,
// github.com/rabbitmq/amqp091-go, what most Go applications use) or raw (raw.go: a minimal client
// on Warren's own codec that reads, times and acknowledges deliveries on one goroutine and writes
// each batch of publishes with one call). amqp091-go passes every delivery through three
// goroutines; on a small machine that shares its cores with the broker, those wake-ups are a
// large share of an end-to-end latency figure and cap a single consumer near 200k msg/s, so the
// raw client shows more of the broker and less of the client. It does no publisher confirms.
//
// Latency: when --size >= 8 the producer writes the send time (unix nanoseconds) into the first
// 8 bytes of every body, and consumers record now - send time for every delivery in a
// log-bucketed histogram (see hist.go); the result reports p50, p99, p99.9 and max in
// microseconds. It is meaningful in fixed-rate mode: at full speed it measures the backlog.
//
// Other modes:
//
//	warren-perf --idle-conns 5000 --heartbeat 10s --hold 30s --broker-pid PID
//	    opens 5000 connections that only exchange heartbeats, holds them, and reports the
//	    broker's VmRSS (read from /proc/PID/status) before, after opening and after the hold,
//	    and the growth per connection.
//	warren-perf --compare --url-a WARREN_URL --url-b RABBITMQ_URL [--runs 3 --duration 10s]
//	    runs issue 6's scenario matrix against both, alternating, each run a fresh warren-perf
//	    process, and prints a markdown table (medians, min-max, ratio) and the raw JSON.
//	    With --mqtt-a/--mqtt-b and --stomp-a/--stomp-b it adds the mqtt-* and stomp-* scenarios
//	    (--scenarios 'mqtt-*,stomp-*' runs only those).
//	warren-perf --protocol mqtt --mqtt-addr 127.0.0.1:1883 --qos 1 --consumers 10 --size 1024
//	    the same load shape over MQTT 3.1.1 with paho.mqtt.golang (mqtt.go): --topics topics,
//	    QoS 0 or 1, --inflight unacknowledged QoS 1 publishes per producer.
//	warren-perf --protocol stomp --stomp-addr 127.0.0.1:61613 --size 16
//	    the same over STOMP 1.2 /topic destinations, with a minimal client on Warren's stomp
//	    codec (stomp.go).
//	warren-perf --protocol mqtt --idle-conns 10000 --heartbeat 60s --hold 90s --broker-pid PID
//	    idle MQTT connections with keepalive 60 s (--idle-subscribe: one subscription each).
//
// Client-side write batching: amqp091-go flushes its bufio.Writer after every frame set, so a
// single publisher makes one write syscall per message and the client, not the broker, becomes
// the bottleneck. warren-perf therefore gives amqp091-go (through Config.Dial) a net.Conn whose
// Write only appends to a 64 KiB bufio.Writer. A per-connection flusher goroutine is woken by the
// first write of a burst, waits --flush-delay (default 200µs) so the burst can accumulate, then
// flushes; bufio also writes through when the buffer fills. In fixed-rate mode a producer also
// flushes before it sleeps, so the batching adds no latency to a paced message. Close stops the
// flusher, flushes what is left and closes the socket. Every mode (fanout, many connections,
// fixed rate) goes through it. Pass --flush-delay 0 to disable the trick and measure the stock
// client.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime/pprof"
	"strings"
	"time"
)

func main() { os.Exit(mainCode()) }

// mainCode is main returning its exit status, so that deferred work (the CPU profile) runs.
func mainCode() int {
	if len(os.Args) == 2 && os.Args[1] == floorForwarderFlag {
		if err := runFloorForwarder(); err != nil {
			fatal(err)
		}
		return 0
	}
	cfg := &config{}
	var (
		connections, idleConns, brokerPID, dialParallel int
		hold                                            time.Duration
		cc                                              compareConfig
		compare                                         bool
	)
	flag.StringVar(&cfg.url, "url", "amqp://guest:guest@127.0.0.1:5672/", "AMQP URL")
	flag.IntVar(&cfg.producers, "producers", 1, "publishers, each on its own connection and channel")
	flag.IntVar(&connections, "connections", 0, "publishing connections (sets --producers; each has one channel)")
	flag.IntVar(&cfg.consumers, "consumers", 1, "consumer connections (raised to --queues if fewer; 0 = none)")
	flag.IntVar(&cfg.queues, "queues", 1, "queues (producer i publishes to queue i mod N; consumer j reads queue j mod N)")
	flag.StringVar(&cfg.exchangeType, "exchange-type", "direct", "direct (the default exchange) or fanout (one fanout exchange bound to every queue)")
	flag.IntVar(&cfg.size, "size", 16, "message body size in bytes (>= 8 to measure latency)")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "timed window")
	flag.Float64Var(&cfg.rate, "rate", 0, "fixed publish rate in msg/s across all producers (0 = as fast as possible)")
	flag.StringVar(&cfg.queue, "queue", "", "queue name, or prefix (name-0, name-1, ...) with --queues > 1 (default: server-named)")
	flag.IntVar(&cfg.confirm, "confirm", 0, "publisher confirms window per producer (0 = off)")
	flag.IntVar(&cfg.prefetch, "prefetch", 1000, "consumer prefetch (basic.qos) with manual acks")
	flag.IntVar(&cfg.ackEvery, "ack-every", 0, "ack with multiple=true every N deliveries (default prefetch/10)")
	flag.BoolVar(&cfg.autoack, "autoack", false, "consume with no-ack")
	flag.BoolVar(&cfg.persistent, "persistent", false, "publish with delivery-mode 2")
	flag.BoolVar(&cfg.jsonOut, "json", false, "print the result as JSON")
	flag.DurationVar(&cfg.flushDelay, "flush-delay", 200*time.Microsecond, "client write batching delay (0 = one write per frame set)")
	flag.DurationVar(&cfg.drainTimeout, "drain-timeout", 5*time.Second, "at the end, give up draining after this long without progress")
	flag.StringVar(&cfg.queueType, "queue-type", "", "x-queue-type of the queues (quorum: durable, named warren-perf.PID.TIME.I unless --queue)")
	flag.BoolVar(&cfg.durable, "durable", false, "declare the queues (and exchange) durable (default: transient, auto-delete)")
	flag.BoolVar(&cfg.keep, "keep", false, "do not delete the queues at the end")
	flag.Int64Var(&cfg.count, "count", 0, "publish this many messages in all, then stop (0 = for --duration)")
	flag.BoolVar(&cfg.random, "random", false, "random bodies, a new one per message (default: zeros, which a store compresses)")
	flag.StringVar(&cfg.client, "client", "amqp091", "AMQP client for producers and consumers: amqp091 (github.com/rabbitmq/amqp091-go) or raw (a minimal client on Warren's codec, for latency; no --confirm, plain amqp:// only)")
	flag.StringVar(&cfg.pacer, "pacer", "timerfd", "with --rate: timerfd (evenly spaced; Linux, else sleep) or sleep (Go timers: about 1 ms granularity, so bursts)")
	flag.DurationVar(&cfg.heartbeat, "heartbeat", 10*time.Second, "AMQP heartbeat interval the client asks for (with --idle-conns --protocol mqtt: the MQTT keepalive)")
	flag.StringVar(&cfg.protocol, "protocol", "amqp", "amqp (AMQP 0-9-1 on --url), mqtt (MQTT 3.1.1 with paho.mqtt.golang on --mqtt-addr) or stomp (STOMP 1.2 on --stomp-addr)")
	flag.StringVar(&cfg.mqttAddr, "mqtt-addr", "127.0.0.1:1883", "with --protocol mqtt: the broker's MQTT listener")
	flag.StringVar(&cfg.stompAddr, "stomp-addr", "127.0.0.1:61613", "with --protocol stomp: the broker's STOMP listener")
	flag.StringVar(&cfg.user, "user", "guest", "with --protocol mqtt or stomp: login user")
	flag.StringVar(&cfg.pass, "pass", "guest", "with --protocol mqtt or stomp: login password")
	flag.IntVar(&cfg.topics, "topics", 1, "with --protocol mqtt or stomp: topics (producer i publishes to topic i mod N, consumer j subscribes to topic j mod N)")
	flag.IntVar(&cfg.qos, "qos", 0, "with --protocol mqtt: QoS of publishes and subscriptions (0 or 1)")
	flag.IntVar(&cfg.inflight, "inflight", 100, "with --protocol mqtt --qos 1: publishes awaiting their PUBACK per producer")
	flag.DurationVar(&cfg.drainMax, "drain-max", 0, "with --protocol mqtt or stomp: stop draining after this long in all and report the rest as undrained (0: drain until done or --drain-timeout without progress)")
	flag.BoolVar(&cfg.idleSubscribe, "idle-subscribe", false, "with --idle-conns and --protocol mqtt: each connection also subscribes at QoS 1 to a topic of its own")
	sourceAddrs := flag.String("source-addrs", "", "with --idle-conns and --protocol mqtt: comma-separated local addresses (e.g. 127.0.0.2,127.0.0.3) to spread the connections over")
	flag.IntVar(&idleConns, "idle-conns", 0, "memory mode: open this many idle connections (heartbeats only), hold them, report the broker's RSS")
	flag.DurationVar(&hold, "hold", 30*time.Second, "with --idle-conns: how long to hold the connections")
	flag.IntVar(&brokerPID, "broker-pid", 0, "with --idle-conns: the broker's process id, to read its VmRSS from /proc (RabbitMQ: beam.smp)")
	flag.IntVar(&dialParallel, "dial-parallel", 32, "with --idle-conns: connections opened concurrently")
	flag.BoolVar(&compare, "compare", false, "run issue 6's scenario matrix against --url-a and --url-b and print a markdown table")
	flag.StringVar(&cc.urls[0], "url-a", "amqp://guest:guest@127.0.0.1:5673/", "with --compare: first broker (Warren)")
	flag.StringVar(&cc.urls[1], "url-b", "amqp://guest:guest@127.0.0.1:5672/", "with --compare: second broker (RabbitMQ)")
	flag.StringVar(&cc.labels[0], "label-a", "Warren", "with --compare: name of --url-a")
	flag.StringVar(&cc.labels[1], "label-b", "RabbitMQ", "with --compare: name of --url-b")
	flag.StringVar(&cc.mqtt[0], "mqtt-a", "", "with --compare: MQTT listener (host:port) of --url-a; with --mqtt-b, adds the mqtt-* scenarios")
	flag.StringVar(&cc.mqtt[1], "mqtt-b", "", "with --compare: MQTT listener of --url-b (RabbitMQ's plugin: 127.0.0.1:1883)")
	flag.StringVar(&cc.stomp[0], "stomp-a", "", "with --compare: STOMP listener (host:port) of --url-a; with --stomp-b, adds the stomp-* scenarios")
	flag.StringVar(&cc.stomp[1], "stomp-b", "", "with --compare: STOMP listener of --url-b (RabbitMQ's plugin: 127.0.0.1:61613)")
	flag.IntVar(&cc.runs, "runs", 3, "with --compare: runs per broker and scenario")
	flag.StringVar(&cc.only, "scenarios", "all", "with --compare: comma-separated scenario names or patterns such as 'mqtt-*' (see --list-scenarios)")
	flag.StringVar(&cc.rawOut, "raw-out", "", "with --compare: write the raw JSON results to this file (default: print them after the table)")
	flag.DurationVar(&cc.pause, "pause", time.Second, "with --compare: pause between runs")
	floor := flag.Bool("floor", false, "measure this machine's latency floor: --rate messages of --size bytes through a do-nothing TCP forwarder in a child process (see floor.go)")
	list := flag.Bool("list-scenarios", false, "list the --compare scenarios and exit")
	cpuProfile := flag.String("cpuprofile", "", "write the load tool's own CPU profile to this file (where the client's time goes)")
	flag.Parse()
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			fatal(err)
		}
		defer stop()
	}

	if *list {
		for _, s := range scenarios {
			fmt.Printf("%-24s %s\n    flags: %v\n", s.name, s.title, s.args)
		}
		return 0
	}
	if compare {
		cc.duration = cfg.duration
		drainSet := false
		flag.Visit(func(f *flag.Flag) {
			drainSet = drainSet || f.Name == "drain-timeout"
			switch f.Name {
			case "flush-delay", "drain-timeout", "heartbeat", "client", "pacer", "drain-max", "user", "pass", "inflight":
				cc.extra = append(cc.extra, "--"+f.Name, f.Value.String())
			}
		})
		if !drainSet {
			// A broker holding back confirms under 100 connections can be silent for a while.
			cc.extra = append(cc.extra, "--drain-timeout", "30s")
		}
		if cc.runs < 1 {
			fatal(fmt.Errorf("--runs must be at least 1"))
		}
		if err := runCompare(&cc, os.Stdout); err != nil {
			fatal(err)
		}
		return 0
	}
	if *floor {
		r, err := runFloor(cfg)
		if err != nil {
			fatal(err)
		}
		if cfg.jsonOut {
			json.NewEncoder(os.Stdout).Encode(r)
		} else if l := r.Latency; l != nil {
			fmt.Printf("floor: %d messages of %d B at %.0f msg/s through a do-nothing forwarder: latency (µs): p50 %.0f  p99 %.0f  p99.9 %.0f  max %.0f\n",
				r.Sent, r.Size, r.Rate, l.P50, l.P99, l.P999, l.Max)
		}
		for _, e := range r.Errors {
			fmt.Fprintln(os.Stderr, "error:", e)
		}
		if len(r.Errors) > 0 {
			return 2
		}
		return 0
	}
	if idleConns > 0 {
		if cfg.protocol != "amqp" && cfg.protocol != "mqtt" {
			fatal(fmt.Errorf("--idle-conns supports --protocol amqp and mqtt"))
		}
		for a := range strings.SplitSeq(*sourceAddrs, ",") {
			if a = strings.TrimSpace(a); a == "" {
				continue
			}
			ip := net.ParseIP(a)
			if ip == nil {
				fatal(fmt.Errorf("--source-addrs: %q is not an IP address", a))
			}
			cfg.sourceAddrs = append(cfg.sourceAddrs, ip)
		}
		r, err := runIdle(cfg, idleConns, hold, brokerPID, dialParallel)
		if err != nil {
			fatal(err)
		}
		if cfg.jsonOut {
			json.NewEncoder(os.Stdout).Encode(r)
		} else {
			fmt.Printf("%d/%d idle connections to %s open in %.1fs, %d alive after %.0fs (heartbeat/keepalive %s)\n",
				r.Opened, r.Connections, r.URL, r.OpenSeconds, r.AliveAfterHold, r.HoldSeconds, r.Heartbeat)
			if brokerPID > 0 {
				fmt.Printf("broker VmRSS: before %.1f MiB, open %.1f MiB, after hold %.1f MiB: %.1f KiB per connection\n",
					float64(r.RSSBeforeKiB)/1024, float64(r.RSSOpenKiB)/1024, float64(r.RSSHeldKiB)/1024, r.PerConnKiB)
			}
			for _, e := range r.Errors {
				fmt.Println("error:", e)
			}
		}
		if len(r.Errors) > 0 {
			return 2
		}
		return 0
	}

	if connections > 0 {
		cfg.producers = connections
	}
	switch {
	case cfg.queues < 1:
		fatal(fmt.Errorf("--queues must be at least 1"))
	case cfg.protocol != "amqp" && cfg.protocol != "mqtt" && cfg.protocol != "stomp":
		fatal(fmt.Errorf("--protocol must be amqp, mqtt or stomp, not %q", cfg.protocol))
	case cfg.topics < 1:
		fatal(fmt.Errorf("--topics must be at least 1"))
	case cfg.qos != 0 && cfg.qos != 1:
		fatal(fmt.Errorf("--qos must be 0 or 1"))
	case cfg.inflight < 1:
		fatal(fmt.Errorf("--inflight must be at least 1"))
	case cfg.exchangeType != "direct" && cfg.exchangeType != "fanout":
		fatal(fmt.Errorf("--exchange-type must be direct or fanout, not %q", cfg.exchangeType))
	case cfg.producers < 0 || cfg.consumers < 0 || cfg.rate < 0 || cfg.size < 0:
		fatal(fmt.Errorf("--producers, --consumers, --rate and --size must not be negative"))
	case cfg.client != "amqp091" && cfg.client != "raw":
		fatal(fmt.Errorf("--client must be amqp091 or raw, not %q", cfg.client))
	case cfg.pacer != "timerfd" && cfg.pacer != "sleep":
		fatal(fmt.Errorf("--pacer must be timerfd or sleep, not %q", cfg.pacer))
	case cfg.client == "raw" && cfg.confirm > 0:
		fatal(fmt.Errorf("--client raw does not do publisher confirms: drop --confirm or use --client amqp091"))
	case cfg.client == "raw" && cfg.prefetch > 65535:
		fatal(fmt.Errorf("--prefetch must be at most 65535"))
	}
	if cfg.consumers > 0 && cfg.consumers < cfg.queues {
		cfg.consumers = cfg.queues
	}
	if cfg.protocol != "amqp" && cfg.consumers > 0 && cfg.consumers < cfg.topics {
		cfg.consumers = cfg.topics
	}
	if cfg.ackEvery <= 0 {
		cfg.ackEvery = max(1, cfg.prefetch/10)
	}
	if cfg.prefetch > 0 && cfg.ackEvery > cfg.prefetch {
		cfg.ackEvery = cfg.prefetch
	}
	runner := run
	switch cfg.protocol {
	case "mqtt":
		runner = runMQTT
	case "stomp":
		runner = runSTOMP
	}
	r, err := runner(cfg)
	if err != nil {
		fatal(err)
	}
	if cfg.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		_ = enc.Encode(r)
	} else {
		fmt.Printf("%.1fs  published %.0f msg/s  consumed %.0f msg/s", r.Seconds, r.PublishRate, r.ConsumeRate)
		if cfg.confirm > 0 || r.ConfirmRate > 0 {
			fmt.Printf("  confirmed %.0f msg/s", r.ConfirmRate)
		}
		fmt.Printf("  (window: published %d consumed %d; total: published %d consumed %d)\n",
			r.Published, r.Consumed, r.PublishedAll, r.ConsumedAll)
		if r.Undrained > 0 {
			fmt.Printf("undrained: %d deliveries still queued when --drain-max ended the drain\n", r.Undrained)
		}
		if l := r.Latency; l != nil {
			fmt.Printf("latency (µs, %d deliveries): p50 %.0f  p99 %.0f  p99.9 %.0f  max %.0f\n", l.Count, l.P50, l.P99, l.P999, l.Max)
		}
		for _, e := range r.Errors {
			fmt.Println("error:", e)
		}
	}
	if len(r.Errors) > 0 {
		return 2
	}
	return 0
}

// startCPUProfile profiles this process into path until the returned function is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "warren-perf:", err)
	os.Exit(1)
}
