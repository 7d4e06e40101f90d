package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/warrenmq/warren/server"
)

// startBroker runs an in-process Warren on 127.0.0.1:0 and returns its URL.
func startBroker(t *testing.T) string {
	t.Helper()
	srv, err := server.New(server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil && !errors.Is(err, server.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return "amqp://guest:guest@" + ln.Addr().String() + "/"
}

func baseConfig(url string) *config {
	return &config{url: url, producers: 1, consumers: 1, queues: 1, exchangeType: "direct", size: 16,
		duration: 300 * time.Millisecond, flushDelay: 200 * time.Microsecond, prefetch: 100, ackEvery: 10,
		drainTimeout: 5 * time.Second, heartbeat: 10 * time.Second}
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
