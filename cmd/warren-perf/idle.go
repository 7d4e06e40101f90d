package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// IdleResult is the report of --idle-conns: how much the broker's resident memory grows per idle
// connection (one that only exchanges heartbeats).
type IdleResult struct {
	URL            string   `json:"url"`
	Connections    int      `json:"connections"` // asked for
	Opened         int      `json:"opened"`
	AliveAfterHold int      `json:"alive_after_hold"` // still open when the hold ended
	Heartbeat      string   `json:"heartbeat"`
	HoldSeconds    float64  `json:"hold_seconds"`
	OpenSeconds    float64  `json:"open_seconds"` // time to open them all
	BrokerPID      int      `json:"broker_pid,omitempty"`
	RSSBeforeKiB   int64    `json:"rss_before_kib,omitempty"` // broker VmRSS before the first dial
	RSSOpenKiB     int64    `json:"rss_open_kib,omitempty"`   // ... once all are open
	RSSHeldKiB     int64    `json:"rss_held_kib,omitempty"`   // ... at the end of the hold
	PerConnKiB     float64  `json:"per_conn_kib,omitempty"`   // (held - before) / opened
	Errors         []string `json:"errors,omitempty"`
}

// vmRSS reads VmRSS (KiB) from /proc/PID/status (Linux).
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("broker rss: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmRSS:")); ok {
			f := bytes.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(string(f[0]), 10, 64)
		}
	}
	return 0, fmt.Errorf("broker rss: no VmRSS in /proc/%d/status", pid)
}

// runIdle opens n connections (no channels) with the given heartbeat, holds them open for hold,
// reads the broker's RSS (if pid > 0) before, after opening and at the end, then closes them.
// The client needs an fd per connection: Go raises the soft RLIMIT_NOFILE to the hard limit at
// start, so `ulimit -Hn` must exceed n (and the broker's too).
func runIdle(cfg *config, n int, hold time.Duration, pid, parallel int) (*IdleResult, error) {
	r := &IdleResult{URL: cfg.url, Connections: n, Heartbeat: cfg.heartbeat.String(), BrokerPID: pid}
	var err error
	if pid > 0 {
		if r.RSSBeforeKiB, err = vmRSS(pid); err != nil {
			return nil, err
		}
	}
	conns := make([]*amqp.Connection, n)
	var mu sync.Mutex
	fail := func(format string, a ...any) {
		mu.Lock()
		if len(r.Errors) < 20 {
			r.Errors = append(r.Errors, fmt.Sprintf(format, a...))
		}
		mu.Unlock()
	}
	start := time.Now()
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(1, parallel) {
		wg.Go(func() {
			for i := range next {
				c, err := amqp.DialConfig(cfg.url, amqp.Config{Heartbeat: cfg.heartbeat})
				if err != nil {
					fail("conn %d: %v", i, err)
					continue
				}
				conns[i] = c
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	r.OpenSeconds = time.Since(start).Seconds()
	for _, c := range conns {
		if c != nil {
			r.Opened++
		}
	}
	if pid > 0 {
		if r.RSSOpenKiB, err = vmRSS(pid); err != nil {
			return nil, err
		}
	}
	time.Sleep(hold)
	r.HoldSeconds = hold.Seconds()
	if pid > 0 {
		if r.RSSHeldKiB, err = vmRSS(pid); err != nil {
			return nil, err
		}
		if r.Opened > 0 {
			r.PerConnKiB = float64(r.RSSHeldKiB-r.RSSBeforeKiB) / float64(r.Opened)
		}
	}
	for _, c := range conns {
		if c != nil && !c.IsClosed() {
			r.AliveAfterHold++
		}
	}
	if r.AliveAfterHold < r.Opened {
		fail("%d of %d connections closed during the hold", r.Opened-r.AliveAfterHold, r.Opened)
	}
	var cwg sync.WaitGroup
	for part := range max(1, parallel) {
		cwg.Go(func() {
			for i := part; i < len(conns); i += max(1, parallel) {
				if conns[i] != nil {
					conns[i].Close()
				}
			}
		})
	}
	cwg.Wait()
	return r, nil
}
