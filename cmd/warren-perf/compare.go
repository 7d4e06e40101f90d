package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"
	"time"
)

// A scenario is one row group of the compare matrix: warren-perf flags and what to read from the
// result. The scenarios are issue 6's targets.
type scenario struct {
	name    string
	title   string
	args    []string
	metrics []metric
	floor   bool // no broker: run once per round with --floor, reported in a table of its own
}

type metric struct {
	name        string
	lowerBetter bool
	unit        string // "msg/s" or "µs"
	get         func(*Result) float64
}

var (
	consumedPerSec  = metric{"consumed/s", false, "msg/s", func(r *Result) float64 { return r.ConsumeRate }}
	deliveredPerSec = metric{"deliveries/s", false, "msg/s", func(r *Result) float64 { return r.ConsumeRate }}
	confirmedPerSec = metric{"confirmed/s", false, "msg/s", func(r *Result) float64 { return r.ConfirmRate }}
	latencyP50      = metric{"p50 latency", true, "µs", func(r *Result) float64 { return latOr(r, func(l *Latency) float64 { return l.P50 }) }}
	latencyP99      = metric{"p99 latency", true, "µs", func(r *Result) float64 { return latOr(r, func(l *Latency) float64 { return l.P99 }) }}
	latencyP999     = metric{"p99.9 latency", true, "µs", func(r *Result) float64 { return latOr(r, func(l *Latency) float64 { return l.P999 }) }}
)

func latOr(r *Result, f func(*Latency) float64) float64 {
	if r.Latency == nil {
		return 0
	}
	return f(r.Latency)
}

var scenarios = []scenario{
	{"transient-16B", "transient 1 -> 1, 16 B, manual acks (prefetch 1000)",
		[]string{"--size", "16"}, []metric{consumedPerSec}, false},
	{"transient-1KiB", "transient 1 -> 1, 1 KiB, manual acks (prefetch 1000)",
		[]string{"--size", "1024"}, []metric{consumedPerSec}, false},
	{"fanout10-1KiB", "fanout to 10 queues, 1 KiB transient, 1 consumer per queue",
		[]string{"--exchange-type", "fanout", "--queues", "10", "--consumers", "10", "--size", "1024"}, []metric{deliveredPerSec}, false},
	{"persistent-16B", "persistent 16 B, confirms (window 1000), prefetch 1000, durable queue",
		[]string{"--persistent", "--durable", "--confirm", "1000", "--prefetch", "1000", "--size", "16"}, []metric{consumedPerSec}, false},
	{"persistent-1KiB", "persistent 1 KiB, confirms (window 1000), prefetch 1000, durable queue",
		[]string{"--persistent", "--durable", "--confirm", "1000", "--prefetch", "1000", "--size", "1024"}, []metric{consumedPerSec}, false},
	{"connections100-confirms", "100 publishing connections with confirms (window 1000 each), 16 B, 1 consumer",
		[]string{"--connections", "100", "--confirm", "1000", "--size", "16"}, []metric{confirmedPerSec}, false},
	{"latency-10k", "fixed 10,000 msg/s, 16 B, end-to-end latency",
		[]string{"--rate", "10000", "--size", "16"}, []metric{latencyP50, latencyP99, latencyP999}, false},
	{"latency-10k-raw", "fixed 10,000 msg/s, 16 B, end-to-end latency, raw client (--client raw)",
		[]string{"--rate", "10000", "--size", "16", "--client", "raw"}, []metric{latencyP50, latencyP99, latencyP999}, false},
	{"transient-16B-raw", "transient 1 -> 1, 16 B, manual acks (prefetch 1000), raw client (--client raw)",
		[]string{"--size", "16", "--client", "raw"}, []metric{consumedPerSec}, false},
	// MQTT (--protocol mqtt, paho.mqtt.golang; --mqtt-a/--mqtt-b) and STOMP (--protocol stomp,
	// the raw STOMP 1.2 client; --stomp-a/--stomp-b): the same shapes over the other protocols.
	{"mqtt-qos0-16B", "MQTT QoS 0 1 -> 1, 16 B",
		[]string{"--protocol", "mqtt", "--qos", "0", "--size", "16"}, []metric{consumedPerSec}, false},
	{"mqtt-qos0-1KiB", "MQTT QoS 0 1 -> 1, 1 KiB",
		[]string{"--protocol", "mqtt", "--qos", "0", "--size", "1024"}, []metric{consumedPerSec}, false},
	{"mqtt-qos1-16B", "MQTT QoS 1 1 -> 1, 16 B (100 in flight; subscriber QoS 1)",
		[]string{"--protocol", "mqtt", "--qos", "1", "--size", "16"}, []metric{consumedPerSec}, false},
	{"mqtt-qos1-1KiB", "MQTT QoS 1 1 -> 1, 1 KiB (100 in flight; subscriber QoS 1)",
		[]string{"--protocol", "mqtt", "--qos", "1", "--size", "1024"}, []metric{consumedPerSec}, false},
	{"mqtt-fanout10-1KiB", "MQTT QoS 0 1 -> 10 subscribers of one topic, 1 KiB",
		[]string{"--protocol", "mqtt", "--qos", "0", "--consumers", "10", "--size", "1024"}, []metric{deliveredPerSec}, false},
	{"mqtt-10x10-qos1-16B", "MQTT QoS 1, 10 publishers -> 10 topics -> 10 subscribers, 16 B",
		[]string{"--protocol", "mqtt", "--qos", "1", "--producers", "10", "--topics", "10", "--consumers", "10", "--size", "16"}, []metric{consumedPerSec}, false},
	{"mqtt-latency-1k-qos0", "MQTT QoS 0, fixed 1,000 msg/s, 16 B, end-to-end latency",
		[]string{"--protocol", "mqtt", "--qos", "0", "--rate", "1000", "--size", "16"}, []metric{latencyP50, latencyP99, latencyP999}, false},
	{"mqtt-latency-1k-qos1", "MQTT QoS 1, fixed 1,000 msg/s, 16 B, end-to-end latency",
		[]string{"--protocol", "mqtt", "--qos", "1", "--rate", "1000", "--size", "16"}, []metric{latencyP50, latencyP99, latencyP999}, false},
	{"stomp-16B", "STOMP 1 -> 1 via /topic, 16 B, ack:client (prefetch 1000)",
		[]string{"--protocol", "stomp", "--size", "16"}, []metric{consumedPerSec}, false},
	{"stomp-1KiB", "STOMP 1 -> 1 via /topic, 1 KiB, ack:client (prefetch 1000)",
		[]string{"--protocol", "stomp", "--size", "1024"}, []metric{consumedPerSec}, false},
	{"stomp-fanout10-1KiB", "STOMP 1 -> 10 subscribers of one /topic, 1 KiB, ack:client",
		[]string{"--protocol", "stomp", "--consumers", "10", "--size", "1024"}, []metric{deliveredPerSec}, false},
	{"stomp-latency-1k", "STOMP, fixed 1,000 msg/s, 16 B, end-to-end latency",
		[]string{"--protocol", "stomp", "--rate", "1000", "--size", "16"}, []metric{latencyP50, latencyP99, latencyP999}, false},
	{"latency-10k-floor", "fixed 10,000 msg/s, 16 B, through a do-nothing forwarder (--floor): this machine's floor",
		[]string{"--floor", "--rate", "10000", "--size", "16"}, []metric{latencyP50, latencyP99, latencyP999}, true},
}

type compareConfig struct {
	urls, labels [2]string
	mqtt, stomp  [2]string // MQTT and STOMP listeners of A and B ("": skip those scenarios)
	runs         int
	duration     time.Duration
	only         string
	rawOut       string
	pause        time.Duration
	extra        []string // flags passed to every run (e.g. --flush-delay)
}

// RawRun is one run in the compare driver's raw JSON.
type RawRun struct {
	Scenario string   `json:"scenario"`
	Broker   string   `json:"broker"`
	Run      int      `json:"run"`
	Args     []string `json:"args"`
	Result   *Result  `json:"result,omitempty"`
	Error    string   `json:"error,omitempty"`
}

func redact(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Redacted()
	}
	return u
}

// runCompare runs every scenario runs times against both URLs, alternating which broker goes
// first, each run a fresh warren-perf process, and prints a markdown table and the raw results.
func runCompare(cc *compareConfig, out io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	var scs []scenario
	for _, s := range scenarios {
		if cc.selected(s) {
			scs = append(scs, s)
		}
	}
	if len(scs) == 0 {
		return fmt.Errorf("compare: no scenario matches %q", cc.only)
	}
	loadBefore := loadAvg()
	var raw []RawRun
	results := map[string][2][]*Result{} // scenario -> per broker
	for run := range cc.runs {
		for si, s := range scs {
			order := []int{0, 1}
			if (run+si)%2 == 1 {
				order = []int{1, 0}
			}
			if s.floor {
				order = []int{0} // no broker: once per round
			}
			for _, b := range order {
				args := []string{"--url", cc.urls[b], "--duration", cc.duration.String(), "--json"}
				switch s.protocol() {
				case "mqtt":
					args[0], args[1] = "--mqtt-addr", cc.mqtt[b]
				case "stomp":
					args[0], args[1] = "--stomp-addr", cc.stomp[b]
				}
				label := cc.labels[b]
				if s.floor {
					args, label = args[2:], "floor"
				}
				args = append(append(args, s.args...), cc.extra...)
				fmt.Fprintf(os.Stderr, "run %d/%d %-24s %-9s ", run+1, cc.runs, s.name, label)
				res, err := runOnce(self, args, cc.duration)
				rr := RawRun{Scenario: s.name, Broker: label, Run: run + 1, Args: redactArgs(args), Result: res}
				if err != nil {
					rr.Error = err.Error()
					fmt.Fprintf(os.Stderr, "error: %v\n", err)
				} else {
					fmt.Fprintf(os.Stderr, "%s\n", summary(s, res))
					rs := results[s.name]
					rs[b] = append(rs[b], res)
					results[s.name] = rs
				}
				raw = append(raw, rr)
				time.Sleep(cc.pause)
			}
		}
	}

	fmt.Fprintf(out, "warren-perf --compare: %d run(s) of %v per broker and scenario, brokers alternating; %s\n\n",
		cc.runs, cc.duration, time.Now().UTC().Format(time.RFC3339))
	for b := range 2 {
		fmt.Fprintf(out, "- %s: %s", cc.labels[b], redact(cc.urls[b]))
		if cc.mqtt[b] != "" {
			fmt.Fprintf(out, ", MQTT %s", cc.mqtt[b])
		}
		if cc.stomp[b] != "" {
			fmt.Fprintf(out, ", STOMP %s", cc.stomp[b])
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "- load average (1, 5, 15 min) before: %s; after: %s\n\n", loadBefore, loadAvg())
	fmt.Fprintf(out, "| scenario | metric | %s median (min-max) | %s median (min-max) | %s / %s |\n",
		cc.labels[0], cc.labels[1], cc.labels[0], cc.labels[1])
	fmt.Fprintf(out, "|---|---|---|---|---|\n")
	var floors []scenario
	for _, s := range scs {
		if s.floor {
			floors = append(floors, s)
			continue
		}
		rs := results[s.name]
		for _, m := range s.metrics {
			var cells [2]string
			var meds [2]float64
			for b := range 2 {
				cells[b], meds[b] = medianCell(rs[b], m)
			}
			ratio := "-"
			if meds[0] > 0 && meds[1] > 0 {
				ratio = fmt.Sprintf("%.3gx", meds[0]/meds[1])
				if m.lowerBetter {
					ratio += " (lower is better)"
				}
			}
			fmt.Fprintf(out, "| %s | %s | %s | %s | %s |\n", s.title, m.name, cells[0], cells[1], ratio)
		}
	}
	if len(floors) > 0 {
		fmt.Fprintf(out, "\nNo broker, same rounds (what the machine costs before any broker work):\n\n")
		fmt.Fprintf(out, "| scenario | metric | median (min-max) |\n|---|---|---|\n")
		for _, s := range floors {
			for _, m := range s.metrics {
				cell, _ := medianCell(results[s.name][0], m)
				fmt.Fprintf(out, "| %s | %s | %s |\n", s.title, m.name, cell)
			}
		}
	}
	enc, err := json.MarshalIndent(raw, "", "  ")
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	if cc.rawOut != "" {
		if err := os.WriteFile(cc.rawOut, append(enc, '\n'), 0o644); err != nil {
			return fmt.Errorf("compare: raw output: %w", err)
		}
		fmt.Fprintf(out, "\nRaw results: %s\n", cc.rawOut)
	} else {
		fmt.Fprintf(out, "\nRaw results:\n\n```json\n%s\n```\n", enc)
	}
	for _, rr := range raw {
		if rr.Error != "" || (rr.Result != nil && len(rr.Result.Errors) > 0) {
			return fmt.Errorf("compare: some runs failed or reported errors (see the raw results)")
		}
	}
	return nil
}

// protocol is the scenario's --protocol: amqp unless its flags say mqtt or stomp.
func (s scenario) protocol() string {
	if i := slices.Index(s.args, "--protocol"); i >= 0 && i+1 < len(s.args) {
		return s.args[i+1]
	}
	return "amqp"
}

// selected reports whether --scenarios picks s: "all" (or empty) is every scenario whose
// protocol has an address for both brokers; otherwise a comma-separated list of names or
// path.Match patterns ("mqtt-*").
func (cc *compareConfig) selected(s scenario) bool {
	switch s.protocol() {
	case "mqtt":
		if cc.mqtt[0] == "" || cc.mqtt[1] == "" {
			return false
		}
	case "stomp":
		if cc.stomp[0] == "" || cc.stomp[1] == "" {
			return false
		}
	}
	if cc.only == "" || cc.only == "all" {
		return true
	}
	for _, pat := range strings.Split(cc.only, ",") {
		if ok, _ := path.Match(pat, s.name); ok {
			return true
		}
	}
	return false
}

// medianCell is a table cell for metric m over runs: the median in bold, then the range.
func medianCell(runs []*Result, m metric) (string, float64) {
	vals := make([]float64, 0, len(runs))
	for _, r := range runs {
		vals = append(vals, m.get(r))
	}
	if len(vals) == 0 {
		return "failed", 0
	}
	slices.Sort(vals)
	med := median(vals)
	if len(vals) == 1 {
		return fmt.Sprintf("**%s**", fmtVal(med, m.unit)), med
	}
	return fmt.Sprintf("**%s** (%s-%s)", fmtVal(med, m.unit), fmtVal(vals[0], m.unit), fmtVal(vals[len(vals)-1], m.unit)), med
}

func redactArgs(args []string) []string {
	out := slices.Clone(args)
	for i := range out {
		if i > 0 && out[i-1] == "--url" {
			out[i] = redact(out[i])
		}
	}
	return out
}

// runOnce runs warren-perf in a child process (a fresh client each run) and parses its JSON.
// A run whose result lists errors still returns the result (exit status 2).
func runOnce(self string, args []string, d time.Duration) (*Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var r Result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return nil, fmt.Errorf("%v: %s", runErr, strings.TrimSpace(stderr.String()))
	}
	return &r, nil
}

func summary(s scenario, r *Result) string {
	var parts []string
	for _, m := range s.metrics {
		parts = append(parts, fmt.Sprintf("%s %s", m.name, fmtVal(m.get(r), m.unit)))
	}
	if len(r.Errors) > 0 {
		parts = append(parts, fmt.Sprintf("errors: %q", r.Errors))
	}
	return strings.Join(parts, ", ")
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func fmtVal(v float64, unit string) string {
	if unit == "µs" {
		if v >= 1000 {
			return fmt.Sprintf("%.2f ms", v/1000)
		}
		return fmt.Sprintf("%.0f µs", v)
	}
	if v >= 1000 {
		return fmt.Sprintf("%.1fk", v/1000)
	}
	return fmt.Sprintf("%.0f", v)
}

// loadAvg returns the first three fields of /proc/loadavg ("?" where there is none).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
