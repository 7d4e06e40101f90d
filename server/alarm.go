package server

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/amqp"
)

// DefaultDiskFreeLimit is RabbitMQ's default disk_free_limit.absolute: 50 MB.
const DefaultDiskFreeLimit = 50_000_000

// diskAlarm watches the free space of the store's disk. Below the limit it is raised: every
// connection that publishes is blocked (told with connection.blocked if it supports it, and not
// read from until the alarm clears), so the store never runs out of space while accepting
// messages. Consumers go on, and acks free space.
type diskAlarm struct {
	free     func() (uint64, error)
	limit    uint64
	interval time.Duration
	srv      *Server
	stop     chan struct{}
	done     chan struct{}

	// up mirrors mu.raised for blocked's lock-free fast path (every publish asks).
	up atomic.Bool

	mu struct {
		sync.Mutex
		raised  bool
		cleared chan struct{} // closed when a raised alarm clears
	}
}

func newDiskAlarm(s *Server) *diskAlarm {
	return &diskAlarm{free: s.opts.DiskFree, limit: uint64(s.opts.DiskFreeLimit), interval: s.opts.DiskCheckInterval,
		srv: s, stop: make(chan struct{}), done: make(chan struct{})}
}

// run checks the free space every interval until shutdown.
func (a *diskAlarm) run() {
	defer close(a.done)
	if a.free == nil {
		return
	}
	t := time.NewTicker(a.interval)
	defer t.Stop()
	for {
		a.check()
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
	}
}

func (a *diskAlarm) check() {
	free, err := a.free()
	if err != nil {
		a.srv.log.Warn("checking free disk space", "err", err)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch low := free < a.limit; {
	case low && !a.mu.raised:
		a.mu.raised = true
		a.mu.cleared = make(chan struct{})
		a.up.Store(true)
		a.srv.log.Warn("free disk space below the limit: publishers are blocked", "free_bytes", free, "limit_bytes", a.limit)
	case !low && a.mu.raised:
		a.mu.raised = false
		a.up.Store(false)
		close(a.mu.cleared)
		a.srv.log.Info("free disk space back above the limit: publishers unblocked", "free_bytes", free, "limit_bytes", a.limit)
	}
}

// blocked returns a channel that closes when the alarm clears, or nil if it is not raised.
func (a *diskAlarm) blocked() <-chan struct{} {
	if !a.up.Load() {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.mu.raised {
		return nil
	}
	return a.mu.cleared
}

func (a *diskAlarm) shutdown() {
	close(a.stop)
	<-a.done
}

// Alarms names the resource alarms in effect ("disk"), for health checks.
func (s *Server) Alarms() []string {
	if s.alarm.blocked() != nil {
		return []string{"disk"}
	}
	return nil
}

// waitPublishAllowed blocks a connection about to publish while the disk alarm is raised, as
// RabbitMQ blocks publishing connections: connection.blocked first if the client understands it,
// connection.unblocked once the alarm clears. It returns false if the connection is closing.
func (c *conn) waitPublishAllowed() bool {
	if relief := c.srv.publishThrottle(); relief != nil { // publish.go
		// The store is behind: wait for it (flow control, invisible to the client but for the
		// TCP window), after sending the confirms already earned.
		c.endBatch()
		select {
		case <-relief:
		case <-c.stopped:
			return false
		case <-c.out.done:
			return false
		}
	}
	cleared := c.srv.publishAlarm()
	if cleared == nil {
		return true
	}
	// Confirms already earned, and deliveries made, are not held back by the block.
	c.endBatch()
	if c.caps.connectionBlocked {
		c.out.writeMethod(0, &amqp.ConnectionBlocked{Reason: "low on disk"})
	}
	c.log.Info("connection blocked: low on disk")
	select {
	case <-cleared:
	case <-c.stopped:
		return false
	case <-c.out.done: // the peer is gone (a write failed)
		return false
	}
	if c.caps.connectionBlocked {
		c.out.writeMethod(0, &amqp.ConnectionUnblocked{})
	}
	return true
}
