package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/testbroker"
)

// startBroker runs an in-process Warren on 127.0.0.1:0 and returns its URL.
func startBroker(t *testing.T) string {
	t.Helper()
	return testbroker.Start(t).URL
}

// baseConfig is a short run. drainTimeout is the tool's default (30 s): under -race on a loaded
// 2-core machine a raw producer's unread backlog can take more than 5 s to drain.
func baseConfig(url string) *config {
	return &config{url: url, producers: 1, consumers: 1, queues: 1, exchangeType: "direct", size: 16,
		duration: 300 * time.Millisecond, flushDelay: 200 * time.Microsecond, prefetch: 100, ackEvery: 10,
		drainTimeout: 30 * time.Second, heartbeat: 10 * time.Second, client: "amqp091", pacer: "timerfd"}
}

// Every mode delivers every message it published (fanout: once per queue), confirms them all,
// and reports latency for each delivery.
func TestRunModes(t *testing.T) {
	url := startBroker(t)
	cases := []struct {
		name string
		set  func(*config)
	}{
		{"fanout", func(c *config) { c.exchangeType, c.queues, c.consumers, c.size = "fanout", 3, 3, 1024 }},
		{"queues", func(c *config) { c.queues, c.consumers, c.producers = 2, 2, 2 }},
		{"connections+confirms", func(c *config) { c.producers, c.confirm = 5, 20 }},
		{"rate", func(c *config) { c.rate = 2000 }},
		{"persistent", func(c *config) { c.persistent, c.durable, c.confirm = true, true, 50 }},
		{"stock client", func(c *config) { c.flushDelay, c.rate = 0, 1000 }},
		{"raw", func(c *config) { c.client = "raw" }},
		{"raw rate", func(c *config) { c.client, c.rate = "raw", 2000 }},
		{"sleep pacer", func(c *config) { c.pacer, c.rate = "sleep", 2000 }},
		{"raw autoack", func(c *config) { c.client, c.autoack = "raw", true }},
		{"raw fanout", func(c *config) { c.client, c.exchangeType, c.queues, c.consumers, c.size = "raw", "fanout", 3, 3, 1024 }},
		// Bodies of several frames each (the frame max is 128 KiB), published persistently.
		{"raw large persistent", func(c *config) {
			c.client, c.size, c.persistent, c.durable, c.count, c.duration = "raw", 300<<10, true, true, 50, time.Minute
		}},
		{"raw empty body", func(c *config) { c.client, c.size, c.count, c.duration = "raw", 0, 100, time.Minute }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig(url)
			tc.set(cfg)
			r, err := run(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Errors) > 0 {
				t.Fatalf("errors: %q", r.Errors)
			}
			want := r.PublishedAll * int64(max(1, map[bool]int{true: cfg.queues}[cfg.exchangeType == "fanout"]))
			if r.PublishedAll == 0 || r.ConsumedAll != want {
				t.Fatalf("published %d, consumed %d, want %d", r.PublishedAll, r.ConsumedAll, want)
			}
			if cfg.confirm > 0 && (r.Nacked != 0 || r.Confirmed == 0) {
				t.Fatalf("confirmed %d nacked %d", r.Confirmed, r.Nacked)
			}
			if cfg.count > 0 && r.PublishedAll != cfg.count {
				t.Fatalf("published %d of --count %d", r.PublishedAll, cfg.count)
			}
			if cfg.size < 8 {
				if r.Latency != nil {
					t.Fatalf("latency %+v without timestamps", r.Latency)
				}
				return
			}
			if r.Latency == nil || r.Latency.Count != uint64(r.ConsumedAll) || r.Latency.P50 > r.Latency.Max {
				t.Fatalf("latency %+v for %d deliveries", r.Latency, r.ConsumedAll)
			}
		})
	}
}

func TestIdleConns(t *testing.T) {
	cfg := baseConfig(startBroker(t))
	r, err := runIdle(cfg, 20, 0, os.Getpid(), 4)
	if err != nil {
		t.Fatal(err)
	}
	if r.Opened != 20 || r.AliveAfterHold != 20 || len(r.Errors) > 0 || r.RSSBeforeKiB <= 0 || r.RSSHeldKiB <= 0 {
		t.Fatalf("%+v", r)
	}
}

// The raw client reports the server's refusal (here: no such queue) rather than hanging, and
// refuses URLs it cannot serve.
func TestRawClientErrors(t *testing.T) {
	url := startBroker(t)
	cnt := &counters{}
	var ready sync.WaitGroup
	ready.Add(1)
	stop := make(chan struct{})
	cfg := baseConfig(url)
	consumeRaw(cfg, 0, "no-such-queue", cnt, &ready, stop)
	if len(cnt.errs) != 1 || !strings.Contains(cnt.errs[0], "404") || !strings.Contains(cnt.errs[0], "no-such-queue") {
		t.Fatalf("errors: %q", cnt.errs)
	}
	if _, err := rawDial("amqps://guest:guest@127.0.0.1:1/", "x"); err == nil || !strings.Contains(err.Error(), "amqp://") {
		t.Fatalf("amqps: %v", err)
	}
	if _, err := rawDial(strings.Replace(url, "guest:guest", "guest:wrong", 1), "x"); err == nil {
		t.Fatal("bad password accepted")
	}
}

// A pacer hands out slots, waits for the next one, and stops waiting when its run ends.
func TestPacer(t *testing.T) {
	for _, kind := range []string{"timerfd", "sleep"} {
		t.Run(kind, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			p := newPacer(ctx, kind, time.Millisecond)
			if _, isSleep := p.(*sleepPacer); isSleep != (kind == "sleep" || runtime.GOOS != "linux") {
				t.Fatalf("%s: got a %T", kind, p)
			}
			defer p.close()
			if !p.ready() {
				t.Fatal("the first slot is not due at once")
			}
			for range 5 {
				p.take()
				if !p.wait() {
					t.Fatal("wait ended before the run did")
				}
				if !p.ready() {
					t.Fatal("not ready after wait")
				}
			}
			p.take()
			cancel()
			for p.ready() { // slots that came due meanwhile may still be spent
				p.take()
			}
			done := make(chan bool)
			go func() { done <- p.wait() }()
			select {
			case ok := <-done:
				if ok {
					t.Fatal("wait reported a slot after the run ended")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("wait did not return after the run ended")
			}
		})
	}
}

// TestMain lets the test binary serve as --floor's forwarder child (runFloor starts
// os.Executable with floorForwarderFlag).
func TestMain(m *testing.M) {
	if len(os.Args) == 2 && os.Args[1] == floorForwarderFlag {
		if err := runFloorForwarder(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// --floor sends every message through the forwarder child and times each one.
func TestFloor(t *testing.T) {
	cfg := baseConfig("")
	cfg.rate, cfg.duration = 2000, 200*time.Millisecond
	r, err := runFloor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Errors) > 0 || r.Sent == 0 || r.Latency == nil || r.Latency.Count != uint64(r.Sent) || r.Latency.P50 > r.Latency.Max {
		t.Fatalf("%+v latency %+v", r, r.Latency)
	}
	cfg.size = 4
	if _, err := runFloor(cfg); err == nil {
		t.Fatal("--size 4 accepted: there is no room for the send time")
	}
}

// --cpuprofile writes a profile go tool pprof can read (it starts with gzip's magic bytes).
func TestStartCPUProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.prof")
	stop, err := startCPUProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("profile of %d bytes does not start with gzip's magic", len(b))
	}
	if _, err := startCPUProfile(filepath.Join(t.TempDir(), "missing", "cpu.prof")); err == nil {
		t.Fatal("a profile path in a missing directory was accepted")
	}
}
