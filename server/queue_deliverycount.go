package server

import "github.com/warrenmq/warren/amqp"

// Delivery count (x-delivery-count) and delivery limit (x-delivery-limit), as RabbitMQ 3.10's
// quorum queues do them, on any queue declared with x-queue-type quorum or with x-delivery-limit.
// Every delivery of such a queue carries x-delivery-count, the number of times the message came
// back to the queue (requeued by nack, reject, recover or a closed channel), 0 the first time.
// When it comes back more than x-delivery-limit times it is dead-lettered with reason
// "delivery_limit" (dropped without a dead-letter exchange). The count is kept in memory: after a
// restart it starts again from 0.

// stampLocked makes e's message carry x-delivery-count before it is delivered. The copy is the
// entry's own (the published message is shared and immutable).
func (q *classicQueue) stampLocked(e *qentry) {
	if !q.lim().countDeliveries || e.stamped == e.returns+1 {
		return
	}
	old := e.msg
	props, err := amqp.DecodeProperties(old.props)
	if err != nil {
		return // validated on publish; cannot happen
	}
	h := amqp.Table{}
	for k, x := range props.Headers {
		h[k] = x
	}
	h["x-delivery-count"] = int64(e.returns)
	props.Headers = h
	raw, err := props.Append(nil)
	if err != nil {
		q.v.srv.log.Error("encoding x-delivery-count", "vhost", q.v.name, "queue", q.name, "err", err)
		return
	}
	m := *old
	m.props, m.headers, m.rec = raw, h, nil
	e.msg = &m
	e.stamped = e.returns + 1
}
