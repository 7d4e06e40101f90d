package server

import (
	"slices"

	"github.com/warrenmq/warren/amqp"
)

// Which consumer gets the next message: consumer priorities (x-priority on basic.consume) and
// single active consumer (x-single-active-consumer), as RabbitMQ 3.10 does them.
//
// A queue's consumers are kept by priority, highest first, in registration order within a
// priority. A message goes to a consumer of the highest priority that has credit, round-robin
// among those of that priority; lower priorities get messages only while every higher one is
// blocked. The round-robin turn is RabbitMQ's: the consumer served moves to the back, a new consumer
// joins at the back, and one that refused a message (no credit) rejoins at the back when its
// channel frees credit (unblockLocked). The array keeps each priority's turn from the cursor rr. With single active consumer only the first registered consumer still attached gets
// messages (priorities are ignored, as in RabbitMQ 3.10, whose classic queues added them to single
// active consumer only later); when it goes, the next one in registration order takes over.

// deliveryTarget is where a queue's consumer's messages go: an AMQP channel's consumer today
// (channel.go), an MQTT session or a STOMP subscription later. The queue decides which message
// goes to which consumer and when (order, priorities, single active consumer, credit as the
// target reports it); the target decides how the message reaches its client: it encodes what its
// protocol needs (basic.deliver with header and body frames for AMQP) and queues it for writing.
// The queue never encodes frames.
//
// Every method but cancelled runs with q.mu held (deliver and queueDeleted change the target's own
// state under its own lock, which comes after queue.mu in the lock order, doc.go); none may block
// on a socket or take a queue's lock.
type deliveryTarget interface {
	// deliver hands e to the target if it can take it now: it has credit (prefetch, the
	// protocol's flow window), is not closed, and its connection is not backed up. It returns
	// false to let the queue try the next consumer; true means the message is the target's: the
	// queue counts it unacked (unless the subscription is noAck) and the target later settles it
	// through the queue (settle, reject, requeue) with e as the handle. e.redelivered and e.msg
	// are what to tell the client; run is shared by the deliveries of one dispatch run (one clock
	// read; the write batch of the read loop the run is on, if any).
	deliver(e *qentry, run *dispatchRun) bool
	// queueDeleted tells the target that its queue was deleted and it is no longer subscribed. It
	// returns true if its client is to be told, which the deleter does with cancelled once no lock
	// is held (after its own reply: queue.delete-ok comes before basic.cancel, as in RabbitMQ).
	queueDeleted() (tell bool)
	// cancelled tells the client that the subscription ended (AMQP: basic.cancel). No lock is
	// held.
	cancelled()
	// deliversOn identifies the connection that carries the target's deliveries and their
	// settlements: a publisher on the same connection is never paused for the queue (its acks
	// would wait behind the pause, queue_flow.go).
	deliversOn() any
	// describe fills in what management shows of the target beyond the subscription.
	describe(ci *ConsumerInfo)
}

// subscription is a consumer as its queue sees it: the queue keeps these, ordered by priority,
// and hands messages to their targets.
type subscription struct {
	tag       string
	target    deliveryTarget
	noAck     bool       // deliveries are settled as they are handed over
	prefetch  uint16     // the consumer's prefetch count when it subscribed (0: none; streams require one)
	exclusive bool       // no other consumer may attach
	args      amqp.Table // the consume arguments (x-priority)
	priority  int64      // x-priority; set by queue.addConsumer
	blocked   bool       // guarded by q.mu: its target refused the last message offered (unblockLocked)

	// track is a stream consumer's server-side offset tracking (stream_track.go); nil: none.
	track *streamTracker
}

// insertConsumerLocked adds c in its place.
func (q *classicQueue) insertConsumerLocked(c *subscription) {
	c.priority = 0
	if p, ok := intArg(c.args["x-priority"]); ok {
		c.priority = p
	}
	q.placeConsumerLocked(c)
}

// placeConsumerLocked puts c at the back of its priority's turn.
func (q *classicQueue) placeConsumerLocked(c *subscription) {
	cs := q.mu.consumers
	i := len(cs)
	if !q.lim().single {
		for i > 0 && cs[i-1].priority < c.priority {
			i--
		}
		// RabbitMQ keeps each priority's consumers in a queue that a consumer rejoins at the back
		// once it has had a message, and appends a new consumer at the back: here, the turn of
		// the priority of the last delivery starts at rr, so its back is just before rr.
		if lo := q.groupStartLocked(i, c.priority); q.mu.rr > lo && q.mu.rr < i {
			i = q.mu.rr
		}
	}
	cs = append(cs, nil)
	copy(cs[i+1:], cs[i:])
	cs[i] = c
	if q.mu.rr >= i {
		q.mu.rr++
	}
	q.mu.consumers = cs
}

// groupStartLocked returns the index of the first consumer of priority p, given end, the index
// just past them.
func (q *classicQueue) groupStartLocked(end int, p int64) int {
	lo := end
	for lo > 0 && q.mu.consumers[lo-1].priority == p {
		lo--
	}
	return lo
}

// pickConsumerLocked delivers e to the consumer whose turn it is and returns it, or returns nil
// if no consumer can take it now.
func (q *classicQueue) pickConsumerLocked(e *qentry, run *dispatchRun) *subscription {
	cs := q.mu.consumers
	if q.lim().single {
		if c := cs[0]; c.target.deliver(e, run) {
			return c
		}
		return nil
	}
	for lo := 0; lo < len(cs); {
		hi := lo + 1
		for hi < len(cs) && cs[hi].priority == cs[lo].priority {
			hi++
		}
		size := hi - lo
		start := q.mu.rr
		if start < lo || start >= hi {
			start = lo
		}
		for k := 0; k < size; k++ {
			i := lo + (start-lo+k)%size
			c := cs[i]
			if c.target.deliver(e, run) {
				c.blocked = false
				q.mu.rr = lo + (i-lo+1)%size
				return c
			}
			c.blocked = true
		}
		lo = hi
	}
	return nil
}

// unblockLocked is told that the targets of subs may take messages again (their channel freed
// credit). As RabbitMQ's rabbit_queue_consumers, a consumer that refused a message left the turn and
// rejoins it at the back now: each of subs marked blocked moves to the back of its priority's turn.
func (q *classicQueue) unblockLocked(subs []*subscription) {
	if q.lim().single {
		return
	}
	// They rejoin in the order they left: the turn's, from the cursor.
	var mbuf [8]*subscription
	moved, cs := mbuf[:0], q.mu.consumers
	for k := range cs {
		if c := cs[(q.mu.rr+k)%len(cs)]; c.blocked && slices.Contains(subs, c) {
			moved = append(moved, c)
		}
	}
	for _, s := range moved {
		s.blocked = false
		j := slices.Index(q.mu.consumers, s)
		q.mu.consumers = slices.Delete(q.mu.consumers, j, j+1)
		if q.mu.rr > j {
			q.mu.rr--
		}
		q.placeConsumerLocked(s)
	}
}
