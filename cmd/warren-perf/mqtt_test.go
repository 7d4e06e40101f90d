package main

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warrenmq/warren/internal/testbroker"
)

// protoConfig is a short MQTT or STOMP run against an in-process broker's listener.
func protoConfig(t *testing.T, protocol string) *config {
	t.Helper()
	b := testbroker.Start(t)
	cfg := baseConfig(b.URL)
	cfg.protocol, cfg.user, cfg.pass, cfg.topics, cfg.inflight = protocol, "guest", "guest", 1, 100
	if protocol == "mqtt" {
		cfg.mqttAddr = b.StartMQTT(t)
	} else {
		cfg.stompAddr = b.STOMP(t)
	}
	return cfg
}

// Every MQTT and STOMP shape delivers each message published on a topic once to each of its
// subscribers, counts QoS 1 PUBACKs as confirms, and times every delivery.
func TestRunMQTTAndSTOMP(t *testing.T) {
	cases := []struct {
		name, protocol string
		set            func(*config)
	}{
		{"mqtt qos0", "mqtt", func(c *config) {}},
		{"mqtt qos1", "mqtt", func(c *config) { c.qos = 1 }},
		{"mqtt qos1 rate", "mqtt", func(c *config) { c.qos, c.rate = 1, 2000 }},
		{"mqtt fanout", "mqtt", func(c *config) { c.consumers, c.size = 3, 1024 }},
		{"mqtt topics", "mqtt", func(c *config) { c.qos, c.producers, c.topics, c.consumers = 1, 3, 3, 3 }},
		{"mqtt unbatched", "mqtt", func(c *config) { c.flushDelay = 0 }},
		{"stomp", "stomp", func(c *config) {}},
		{"stomp rate", "stomp", func(c *config) { c.rate = 2000 }},
		{"stomp autoack", "stomp", func(c *config) { c.autoack = true }},
		{"stomp fanout", "stomp", func(c *config) { c.consumers, c.size = 3, 1024 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := protoConfig(t, tc.protocol)
			tc.set(cfg)
			runner := runMQTT
			if cfg.protocol == "stomp" {
				runner = runSTOMP
			}
			r, err := runner(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Errors) > 0 || r.Undrained != 0 {
				t.Fatalf("errors: %q, undrained %d", r.Errors, r.Undrained)
			}
			subsPerTopic := int64(cfg.consumers / cfg.topics)
			if r.PublishedAll == 0 || r.ConsumedAll != r.PublishedAll*subsPerTopic {
				t.Fatalf("published %d, consumed %d, want %d", r.PublishedAll, r.ConsumedAll, r.PublishedAll*subsPerTopic)
			}
			if cfg.protocol == "mqtt" && cfg.qos == 1 && (r.ConfirmedAll != r.PublishedAll || r.Confirmed == 0 || r.Nacked != 0) {
				t.Fatalf("confirmed %d (window %d) nacked %d of %d", r.ConfirmedAll, r.Confirmed, r.Nacked, r.PublishedAll)
			}
			if r.Latency == nil || r.Latency.Count != uint64(r.ConsumedAll) {
				t.Fatalf("latency %+v for %d deliveries", r.Latency, r.ConsumedAll)
			}
		})
	}
}

// A broker that refuses the login is an error, not a hang.
func TestRunMQTTAndSTOMPRefused(t *testing.T) {
	for _, protocol := range []string{"mqtt", "stomp"} {
		cfg := protoConfig(t, protocol)
		cfg.pass = "wrong"
		runner := runMQTT
		if protocol == "stomp" {
			runner = runSTOMP
		}
		if _, err := runner(cfg); err == nil {
			t.Fatalf("%s: a wrong password was accepted", protocol)
		}
	}
}

// --drain-max cuts the drain and reports the rest as undrained instead of failing the run; the
// deliveries the subscriber never got are what a cut drain leaves.
func TestDrainDeliveriesMax(t *testing.T) {
	cfg := &config{drainTimeout: time.Minute, drainMax: 20 * time.Millisecond}
	cnt := &counters{}
	cnt.consumed.Store(5)
	if n := drainDeliveries(cfg, cnt, 8); n != 3 || len(cnt.errs) != 0 {
		t.Fatalf("undrained %d, errors %q", n, cnt.errs)
	}
	cfg = &config{drainTimeout: 20 * time.Millisecond}
	if n := drainDeliveries(cfg, cnt, 8); n != 0 || len(cnt.errs) != 1 || !strings.Contains(cnt.errs[0], "3 of 8") {
		t.Fatalf("undrained %d, errors %q", n, cnt.errs)
	}
}

// --idle-conns --protocol mqtt holds MQTT connections (with a subscription each) and reads the
// broker's memory.
func TestIdleConnsMQTT(t *testing.T) {
	cfg := protoConfig(t, "mqtt")
	cfg.idleSubscribe, cfg.heartbeat = true, 60*time.Second
	r, err := runIdle(cfg, 20, 0, os.Getpid(), 4)
	if err != nil {
		t.Fatal(err)
	}
	if r.Opened != 20 || r.AliveAfterHold != 20 || len(r.Errors) > 0 || r.RSSHeldKiB <= 0 || !r.Subscribe {
		t.Fatalf("%+v", r)
	}
}

// --compare picks a protocol's scenarios only when both brokers have its address, and
// --scenarios takes patterns.
func TestCompareSelection(t *testing.T) {
	names := func(cc *compareConfig) []string {
		var out []string
		for _, s := range scenarios {
			if cc.selected(s) {
				out = append(out, s.name)
			}
		}
		return out
	}
	cc := &compareConfig{only: "all"}
	if got := names(cc); slices.ContainsFunc(got, func(n string) bool { return strings.HasPrefix(n, "mqtt-") || strings.HasPrefix(n, "stomp-") }) {
		t.Fatalf("without addresses: %v", got)
	}
	cc.mqtt = [2]string{"a:1", "b:1"}
	cc.only = "mqtt-qos1-*,transient-16B"
	got := names(cc)
	if !slices.Equal(got, []string{"transient-16B", "mqtt-qos1-16B", "mqtt-qos1-1KiB"}) {
		t.Fatalf("got %v", got)
	}
	for _, s := range scenarios {
		if p := s.protocol(); strings.HasPrefix(s.name, "mqtt-") != (p == "mqtt") || strings.HasPrefix(s.name, "stomp-") != (p == "stomp") {
			t.Fatalf("%s: protocol %s", s.name, p)
		}
	}
}
