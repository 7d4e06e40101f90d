package server

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/warrenmq/warren/amqp"
)

// Message TTL, queue expiry and the queue timers.
//
// A message's expiry is fixed when it enters a queue: the earliest of its arrival time plus its
// expiration property and its arrival time plus the queue's x-message-ttl. Messages expire only at
// the head of the queue, as RabbitMQ's do: one with a short expiration behind one with a long one
// waits (with x-message-ttl alone the order of expiries is the order of the queue). And, as in
// RabbitMQ 3.10 (drop_expired_msgs), only when something looks at the head: after each delivery
// or basic.get (which take the head whatever its expiry), after a publish that made the message
// the only one or dropped heads over a length limit, after a requeue, and when the timer fires (it
// is armed for the head each time the head is looked at). A queue.declare does not look. A paged
// message's arrival time is in its record, so its expiry is derived again when it is read back
// (and after a restart). Each queue has at most one timer (time.AfterFunc), armed for the earliest
// of its head's expiry and its own x-expires deadline; a timer's function runs only while the
// server's timerSet is open, and Shutdown closes the set and waits for running ones.

func nowMillis() int64 { return time.Now().UnixMilli() }

// parseExpiration parses the expiration property as RabbitMQ does (Erlang's string:to_integer,
// then a non-negative check), returning RabbitMQ's reason on error.
func parseExpiration(s string) (int64, error) {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	j := i
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	if j == i {
		return 0, fmt.Errorf("no_integer")
	}
	if j < len(s) {
		return 0, fmt.Errorf("{leftover_string,%q}", s[j:])
	}
	n, err := strconv.ParseInt(s[:j], 10, 64)
	if err != nil { // out of int64's range: as good as never
		if s[0] == '-' {
			return 0, fmt.Errorf("{value_negative,%s}", s[:j])
		}
		n = 1<<62 - 1
	}
	if n < 0 {
		return 0, fmt.Errorf("{value_negative,%d}", n)
	}
	return n, nil
}

// expirationError is the channel error for a publish with a malformed expiration property.
func expirationError(s string, err error) *amqp.Error {
	return amqp.Errorf(amqp.PreconditionFailed, "invalid expiration '%s': %v", s, err)
}

// expiryOf is the time m expires in q (0: never).
func (q *classicQueue) expiryOf(m *message) int64 {
	var at int64
	if m.hasTTL {
		at = addMillis(m.arrived, m.ttl)
	}
	if t := q.lim().msgTTL; t >= 0 {
		if x := addMillis(m.arrived, t); at == 0 || x < at {
			at = x
		}
	}
	return at
}

func addMillis(at, d int64) int64 {
	if at > 1<<62-d {
		return 1 << 62
	}
	return max(at+d, 1)
}

// expireHeadLocked removes the expired messages at the head of the queue (but not skip, a message
// being published that a consumer may still take), asks for the paged ones behind them if the
// window ran low (they may have expired too, and nothing else may come to read them) and arms the
// timer for the next expiry.
func (q *classicQueue) expireHeadLocked(skip *qentry) {
	defer q.wantPageInLocked()
	var now int64
	for q.mu.ready.len() > 0 {
		e := q.mu.ready.peek()
		if e.expiry == 0 || e == skip {
			break
		}
		if now == 0 {
			now = nowMillis()
		}
		if now < e.expiry {
			break
		}
		q.deadLocked(q.mu.ready.pop(), "expired")
	}
	q.armTimerLocked()
}

// armTimerLocked makes sure the queue's timer fires by its next deadline: the head's expiry and,
// for an unused queue with x-expires, its expiry.
func (q *classicQueue) armTimerLocked() { q.armTimerForLocked(true) }

// armTimerForLocked is armTimerLocked; head says whether the head's expiry counts (false: only
// x-expires, for a queue.declare, which in RabbitMQ does not look at the head's expiry).
func (q *classicQueue) armTimerForLocked(head bool) {
	if q.mu.deleted {
		return
	}
	var at int64
	if head && q.mu.ready.len() > 0 {
		at = q.mu.ready.peek().expiry
	}
	if q.lim().expires >= 0 && len(q.mu.consumers) == 0 {
		if x := addMillis(q.mu.lastUsed, q.lim().expires); at == 0 || x < at {
			at = x
		}
	}
	if at == 0 || q.mu.timerAt != 0 && q.mu.timerAt <= at {
		return
	}
	q.mu.timerAt = at
	d := time.Duration(at-nowMillis()) * time.Millisecond
	if q.mu.timer == nil {
		q.mu.timer = time.AfterFunc(d, q.onTimer)
	} else {
		q.mu.timer.Reset(d)
	}
}

// touchLocked records a use of the queue for x-expires (a declare, a basic.get, a consumer).
// It is recorded whether or not the queue expires now: a policy may set an expiry later.
func (q *classicQueue) touchLocked() {
	q.mu.lastUsed = nowMillis()
}

// onTimer runs on the timer's goroutine: it expires messages at the head and deletes the queue
// when x-expires says it has been unused for long enough.
func (q *classicQueue) onTimer() {
	ts := &q.v.srv.timers
	if !ts.enter() {
		return
	}
	defer ts.wg.Done()
	q.mu.Lock()
	q.mu.timerAt = 0
	if q.mu.deleted {
		q.unlock()
		return
	}
	unused := q.lim().expires >= 0 && len(q.mu.consumers) == 0 &&
		nowMillis() >= addMillis(q.mu.lastUsed, q.lim().expires)
	if !unused {
		q.expireHeadLocked(nil) // and re-arms
		q.dispatchLocked()
	}
	q.unlock()
	if unused {
		if self := q.self(); self != nil {
			if _, err := q.v.deleteQueue(self, false, false); err != nil {
				q.v.srv.log.Error("deleting an expired queue", "vhost", q.v.name, "queue", q.name, "err", err)
			}
		}
	}
}

// stop stops the queue's timer: the server stops.
func (q *classicQueue) stop() {
	q.mu.Lock()
	q.stopTimerLocked()
	q.unlock()
}

// stopTimerLocked stops the queue's timer (the queue is deleted or the server stops).
func (q *classicQueue) stopTimerLocked() {
	if q.mu.timer != nil {
		q.mu.timer.Stop()
		q.mu.timerAt = 0
	}
}

// timerSet lets queue timers run until Shutdown closes it; close waits for running ones.
type timerSet struct {
	mu struct {
		sync.Mutex
		closed bool
	}
	wg sync.WaitGroup
}

func (ts *timerSet) enter() bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.mu.closed {
		return false
	}
	ts.wg.Add(1)
	return true
}

// stopTimers closes the timer set, waits for running timer functions and stops every queue's timer.
func (s *Server) stopTimers() {
	s.timers.mu.Lock()
	s.timers.mu.closed = true
	s.timers.mu.Unlock()
	s.timers.wg.Wait()
	s.vhosts.RLock()
	defer s.vhosts.RUnlock()
	for _, v := range s.vhosts.m {
		v.mu.RLock()
		for _, q := range v.mu.queues {
			q.stop()
		}
		v.mu.RUnlock()
	}
}
