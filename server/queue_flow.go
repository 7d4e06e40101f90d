package server

import (
	"sync/atomic"
	"time"
)

// Publisher flow control, in the spirit of RabbitMQ's credit flow.
//
// A publisher faster than a queue's consumers would grow the queue's backlog without bound (past
// the queue's window it pages to the store, which costs far more than delivering). So when a
// publish lands in a queue that has a consumer on another connection and whose backlog (ready
// messages, in memory or paged) is at or over its high mark (half the queue's window, in messages
// or bytes), the publishing connection stops reading its socket once it has handled the current
// frame: its read loop waits, holding no lock, until the queue drains to its low mark (a quarter
// of the window), the queue is deleted, a consumer goes away, or the connection closes. TCP then
// pushes back on the client. No connection.blocked is sent: RabbitMQ sends it only for resource
// alarms, not for credit flow, and so does Warren.
//
// A queue without consumers is not a reason to pause: it takes the whole backlog and pages it to
// the store (the backlog case). Neither are consumers on the publishing connection itself: their
// acks travel on the socket the read loop would stop reading, so the queue could never drain.
//
// A pause must not last forever when the queue cannot drain, for instance when its consumers hold
// their whole prefetch and will only ack after something the paused connection would send (two
// connections each publishing to the queue the other consumes). So a waiting connection looks at
// the queue every flowStallTimeout: if nothing left the queue's ready list meanwhile, the queue is
// marked stalled, the connection goes on, and later publishes to it do not pause (it pages as
// without consumers) until a message leaves it again.

// flowStallTimeout is how long a paused publisher waits for a queue that delivers nothing before
// it gives up pausing for that queue.
const flowStallTimeout = 500 * time.Millisecond

// flowCounters count pauses, for tests and the curious (Server.FlowStats).
type flowCounters struct {
	pauses atomic.Uint64 // times a connection stopped reading for a queue to drain
	stalls atomic.Uint64 // pauses given up because the queue delivered nothing
}

// FlowStats counts publisher flow-control pauses since New.
type FlowStats struct {
	Pauses uint64 // a publishing connection stopped reading until a queue drained
	Stalls uint64 // a pause ended because the queue delivered nothing for a while
}

// FlowStats returns the flow-control counters.
func (s *Server) FlowStats() FlowStats {
	return FlowStats{Pauses: s.flow.pauses.Load(), Stalls: s.flow.stalls.Load()}
}

// flowWait is one queue a connection waits for before it reads on.
type flowWait struct {
	q    *queue
	wake <-chan struct{}
}

// flowHighLocked reports whether a publish from from must pause: the backlog is at or over the
// high mark, a consumer on another connection can drain it, and the queue is not stalled.
func (q *classicQueue) flowHighLocked(from publishSource) bool {
	opts := &q.v.srv.opts
	if q.lenLocked() < int64(max(opts.QueueWindow/2, 1)) && q.bytesLocked() < opts.QueueWindowBytes/2 {
		return false
	}
	if q.mu.stalled && q.mu.dispatched == q.mu.stallMark {
		return false
	}
	id := from.flowID()
	if id == nil { // a source that never pauses
		return false
	}
	for _, c := range q.mu.consumers {
		if c.target.deliversOn() != id {
			return true
		}
	}
	return false
}

// flowWakeLocked returns the channel closed when the queue drains (creating it).
func (q *classicQueue) flowWakeLocked() <-chan struct{} {
	if q.mu.flowWake == nil {
		q.mu.flowWake = make(chan struct{})
	}
	return q.mu.flowWake
}

// flowReleaseLocked wakes the paused publishers if the backlog is down to the low mark, or
// unconditionally with force (the queue was deleted, lost a consumer, or stalled).
func (q *classicQueue) flowReleaseLocked(force bool) {
	if q.mu.flowWake == nil {
		return
	}
	opts := &q.v.srv.opts
	if !force && !q.mu.deleted && (q.lenLocked() > int64(opts.QueueWindow/4) || q.bytesLocked() > opts.QueueWindowBytes/4) {
		return
	}
	close(q.mu.flowWake)
	q.mu.flowWake = nil
}

// flowCheckStall is called by a paused publisher every flowStallTimeout with the queue's
// dispatch count when it last looked. If nothing left the queue since, the queue is marked
// stalled and the publishers waiting for it are released; it returns the current count and
// whether the queue stalled.
func (q *classicQueue) flowCheckStall(mark uint64) (uint64, bool) {
	q.mu.Lock()
	defer q.unlock()
	if q.mu.dispatched != mark {
		return q.mu.dispatched, false
	}
	q.mu.stalled, q.mu.stallMark = true, mark
	q.flowReleaseLocked(true)
	return mark, true
}

// dispatchCount returns how many entries have left the queue's ready list.
func (q *classicQueue) dispatchCount() uint64 {
	q.mu.Lock()
	defer q.unlock()
	return q.mu.dispatched
}

// waitFlow pauses the read loop until every queue the last publishes asked it to wait for has
// drained (or stalled, or gone), after sending the confirms already earned. It holds no lock.
func (c *conn) waitFlow() {
	waits := c.flowWaits
	c.endBatch() // the queue drains only once the deliveries this batch made are written
	c.srv.awaitFlow(waits, c.stopped, c.out.done)
}

// awaitFlow is a front end's pause for flow control (publishSource.pause): it waits until every
// queue in waits has drained, stalled (flowStallTimeout without a dispatch) or gone, or until
// stopped or gone (the peer went away) is closed. The caller has written what its batch owed.
func (s *Server) awaitFlow(waits []flowWait, stopped, gone <-chan struct{}) {
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for _, w := range waits {
		s.flow.pauses.Add(1)
		mark := w.q.dispatchCount()
		for waiting := true; waiting; {
			if t == nil {
				t = time.NewTimer(flowStallTimeout)
			} else {
				t.Reset(flowStallTimeout)
			}
			select {
			case <-w.wake:
				waiting = false
			case <-stopped:
				return
			case <-gone:
				return
			case <-t.C:
				var stalled bool
				if mark, stalled = w.q.flowCheckStall(mark); stalled {
					s.flow.stalls.Add(1)
					waiting = false
				}
			}
		}
	}
}
