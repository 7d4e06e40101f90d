package main

import (
	"context"
	"time"
)

// A pacer spaces a producer's messages at a fixed interval. ready reports whether a message is
// due now (the producer is on or behind schedule); take spends that slot; wait blocks until the
// next message is due and reports false if the run ended first. A producer that falls more than
// a second behind drops the missed slots rather than bursting to catch up.
type pacer interface {
	ready() bool
	take()
	wait() bool
	close()
}

// newPacer returns a pacer of the given kind: "timerfd" (the default; falls back to sleeping
// where the platform has none) or "sleep".
func newPacer(ctx context.Context, kind string, interval time.Duration) pacer {
	if kind != "sleep" {
		if p := newTimerfdPacer(ctx, interval); p != nil {
			return p
		}
	}
	return &sleepPacer{ctx: ctx, interval: interval, next: time.Now()}
}

// sleepPacer sleeps with the Go runtime's timers. When the process is otherwise idle those wake
// up to about a millisecond late on Linux (the runtime's poller waits in whole milliseconds), so
// at high rates the messages go out in small bursts; it is the fallback where timerfd is missing.
type sleepPacer struct {
	ctx      context.Context
	interval time.Duration
	next     time.Time
}

func (p *sleepPacer) ready() bool { return !time.Now().Before(p.next) }

func (p *sleepPacer) take() {
	if now := time.Now(); now.Sub(p.next) > time.Second {
		p.next = now // hopelessly behind: do not burst to catch up
	}
	p.next = p.next.Add(p.interval)
}

func (p *sleepPacer) wait() bool {
	d := time.Until(p.next)
	if d <= 0 {
		return p.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.ctx.Done():
		return false
	}
}

func (p *sleepPacer) close() {}
