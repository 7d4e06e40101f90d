package server

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrenmq/warren/amqp"
)

// DefaultDiskFreeLimit is RabbitMQ's default disk_free_limit.absolute: 50 MB.
const DefaultDiskFreeLimit = 50_000_000

// The resource alarms: each has a monitor goroutine (diskAlarm here, memAlarm in alarm_mem.go)
// that raises or clears it in resourceAlarms. While any is raised, every connection that
// publishes is blocked (told with connection.blocked if it supports it, and not read from until
// every alarm clears). Consumers go on, and acks free the resource.
const (
	alarmMemory = "memory"
	alarmDisk   = "disk"
)

// alarmOrder is the order of the resources in connection.blocked's reason, as RabbitMQ 3.10's
// rabbit_reader:blocked_by_message builds it: "low on " and the resources joined with " & ", in
// the order of its set of alarms ("low on disk & memory" when both are raised).
var alarmOrder = []string{alarmDisk, alarmMemory}

// resourceAlarms is the set of raised alarms.
type resourceAlarms struct {
	// up mirrors len(mu.raised) > 0 for blocked's lock-free fast path (every publish asks).
	up atomic.Bool

	mu struct {
		sync.Mutex
		raised  map[string]bool
		cleared chan struct{} // closed when the last raised alarm clears
	}
}

// set raises or clears the alarm of resource and reports whether that changed it.
func (a *resourceAlarms) set(resource string, on bool) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mu.raised[resource] == on {
		return false
	}
	if on {
		if len(a.mu.raised) == 0 {
			if a.mu.raised == nil {
				a.mu.raised = map[string]bool{}
			}
			a.mu.cleared = make(chan struct{})
			a.up.Store(true)
		}
		a.mu.raised[resource] = true
		return true
	}
	delete(a.mu.raised, resource)
	if len(a.mu.raised) == 0 {
		a.up.Store(false)
		close(a.mu.cleared)
	}
	return true
}

// blocked returns a channel that closes when every alarm has cleared, and connection.blocked's
// reason, or nil if no alarm is raised.
func (a *resourceAlarms) blocked() (<-chan struct{}, string) {
	if !a.up.Load() {
		return nil, ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.mu.raised) == 0 {
		return nil, ""
	}
	var rs []string
	for _, r := range alarmOrder {
		if a.mu.raised[r] {
			rs = append(rs, r)
		}
	}
	return a.mu.cleared, "low on " + strings.Join(rs, " & ")
}

// list names the raised alarms.
func (a *resourceAlarms) list() []string {
	if !a.up.Load() {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, r := range alarmOrder {
		if a.mu.raised[r] {
			out = append(out, r)
		}
	}
	return out
}

// diskAlarm watches the free space of the store's disk. Below the limit it raises the disk
// alarm, so the store never runs out of space while accepting messages.
type diskAlarm struct {
	free     func() (uint64, error)
	limit    uint64
	interval time.Duration
	srv      *Server
	stop     chan struct{}
	done     chan struct{}
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
	low := free < a.limit
	if !a.srv.alarms.set(alarmDisk, low) {
		return
	}
	if low {
		a.srv.log.Warn("free disk space below the limit: publishers are blocked", "free_bytes", free, "limit_bytes", a.limit)
	} else {
		a.srv.log.Info("free disk space back above the limit", "free_bytes", free, "limit_bytes", a.limit)
	}
}

func (a *diskAlarm) shutdown() {
	close(a.stop)
	<-a.done
}

// Alarms names the resource alarms in effect ("disk", "memory"), for health checks.
func (s *Server) Alarms() []string { return s.alarms.list() }

// waitPublishAllowed blocks a connection about to publish while a resource alarm is raised, as
// RabbitMQ blocks publishing connections: connection.blocked first if the client understands it
// (with RabbitMQ's reason: "low on memory", "low on disk" or "low on disk & memory"),
// connection.unblocked once every alarm has cleared. It returns false if the connection is closing.
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
	cleared, reason := c.srv.publishAlarm()
	if cleared == nil {
		return true
	}
	// Confirms already earned, and deliveries made, are not held back by the block.
	c.endBatch()
	if c.caps.connectionBlocked {
		c.out.writeMethod(0, &amqp.ConnectionBlocked{Reason: reason})
	}
	c.log.Info("connection blocked: " + reason)
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
