package server

import (
	"time"

	"github.com/warrenmq/warren/amqp"
)

// Consumer timeout, as RabbitMQ's consumer_timeout: a channel holding a delivery (to a consumer
// or from basic.get with ack) unacknowledged for longer than Options.ConsumerTimeout is closed
// with 406 PRECONDITION_FAILED, and its unacknowledged messages go back to their queues.
// RabbitMQ checks once a minute; Warren arms one timer per channel for its oldest unacknowledged
// delivery, so the close comes at the timeout. The timer's function runs only while the server's
// timer set is open (queue_ttl.go) and takes the channel's loopMu, so it closes the channel as the read
// loop would, never while the read loop is handling one of the channel's frames.

// DefaultConsumerTimeout is RabbitMQ's default consumer_timeout.
const DefaultConsumerTimeout = 30 * time.Minute

// armAckTimerLocked arms the channel's timer for its oldest unacknowledged delivery unless it is
// armed already (for an earlier time: it re-arms when it fires). ch.mu is held.
func (ch *channel) armAckTimerLocked() {
	t := ch.conn.srv.opts.ConsumerTimeout
	if t <= 0 || !ch.mu.ackTimerAt.IsZero() || len(ch.mu.unacked) == 0 || ch.mu.closed {
		return
	}
	at := ch.mu.unacked[0].at.Add(t)
	ch.mu.ackTimerAt = at
	if ch.mu.ackTimer == nil {
		ch.mu.ackTimer = time.AfterFunc(time.Until(at), ch.onAckTimer)
	} else {
		ch.mu.ackTimer.Reset(time.Until(at))
	}
}

// stopAckTimerLocked stops the timer (the channel is torn down). ch.mu is held.
func (ch *channel) stopAckTimerLocked() {
	if ch.mu.ackTimer != nil {
		ch.mu.ackTimer.Stop()
	}
	ch.mu.ackTimerAt = time.Time{}
}

// onAckTimer closes the channel if its oldest unacknowledged delivery is past the timeout, and
// re-arms the timer otherwise.
func (ch *channel) onAckTimer() {
	ts := &ch.conn.srv.timers
	if !ts.enter() {
		return
	}
	defer ts.wg.Done()
	ch.loopMu.Lock()
	defer ch.loopMu.Unlock()
	timeout := ch.conn.srv.opts.ConsumerTimeout
	ch.mu.Lock()
	ch.mu.ackTimerAt = time.Time{}
	if ch.mu.closed || ch.closing || len(ch.mu.unacked) == 0 {
		ch.mu.Unlock()
		return
	}
	if time.Since(ch.mu.unacked[0].at) < timeout {
		ch.armAckTimerLocked()
		ch.mu.Unlock()
		return
	}
	ch.mu.Unlock()
	ch.closeWith(amqp.Errorf(amqp.PreconditionFailed, "delivery acknowledgement on channel %d timed out. Timeout value used: %d ms. "+
		"This timeout value can be configured, see consumers doc guide to learn more", ch.id, timeout.Milliseconds()))
}
