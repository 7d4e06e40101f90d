package server

import (
	"time"

	"github.com/warrenmq/warren/amqp"
)

// Dead-lettering (x-dead-letter-exchange, x-dead-letter-routing-key), as RabbitMQ 3.10 does it.
//
// A message leaves a queue with a dead-letter exchange when it is rejected or nacked without
// requeue ("rejected"), expires at the head ("expired"), or is dropped by a length limit: the head
// with drop-head, or the refused publish with reject-publish-dlx ("maxlen"). Under the queue's lock
// the entry's record is deleted and the message is kept in the queue's dead list; q.unlock
// (queue.go) republishes the list with no lock held: a new message to the dead-letter exchange, routed with
// x-dead-letter-routing-key or else with the message's own routing keys (its routing key and CC),
// carrying the x-death header RabbitMQ builds, without the expiration property. The copy is a new
// publish: persistent ones are written through the committer to durable queues, unconfirmed (as
// RabbitMQ's at-most-once dead-lettering). A missing dead-letter exchange drops the message.
//
// Cycles: a message dead-lettered for another reason than "rejected" is not delivered to a queue
// already in its x-death history unless a rejection happened since (RabbitMQ's is_cycle), so an
// expiry loop between queues ends.

// deadLetter is a message leaving queue q to its dead-letter exchange.
type deadLetter struct {
	msg    *message
	reason string // rejected, expired, maxlen
}

// deadLocked removes e from the queue for good, dead-lettering it if the queue has a DLX.
func (q *classicQueue) deadLocked(e *qentry, reason string) {
	q.forgetLocked(e)
	if q.lim().hasDLX && !q.mu.deleted {
		q.mu.dead = append(q.mu.dead, deadLetter{msg: e.msg, reason: reason})
	}
}

// reject settles unacked entries rejected or nacked without requeue: they are dead-lettered.
func (q *classicQueue) reject(es []*qentry) {
	q.mu.Lock()
	defer q.unlock()
	q.mu.unacked -= len(es)
	for _, e := range es {
		q.deadLocked(e, "rejected")
	}
}

func (q *classicQueue) deadLetterAll(dead []deadLetter) {
	v := q.v
	lim := q.lim() // one snapshot: a policy change may replace the queue's settings meanwhile
	ex := v.exchange(lim.dlx)
	if ex == nil {
		return
	}
	for _, d := range dead {
		m, keys, deaths := q.deadMessage(d, lim)
		var buf [8]*queue
		qs := v.route(ex, keys[0], keys[1:], m, buf[:0]) // each queue once over all the keys
		for _, tq := range qs {
			if d.reason != "rejected" && isDeathCycle(tq.name, deaths) {
				continue
			}
			tq.publish(m)
		}
		m.rec = nil
	}
}

// deadMessage builds the dead-lettered copy of d.msg: the routing keys it is routed with and
// its new x-death list.
func (q *classicQueue) deadMessage(d deadLetter, lim *queueLimits) (*message, []string, []any) {
	old := d.msg
	props, err := amqp.DecodeProperties(old.props)
	if err != nil { // validated on publish; cannot happen
		props = amqp.Properties{}
	}
	h := amqp.Table{}
	for k, x := range props.Headers {
		h[k] = x
	}
	if lim.countDeliveries {
		delete(h, "x-delivery-count") // the queue's, not the message's
	}
	keys := []string{old.routingKey}
	if cc, ok := h["CC"].([]any); ok {
		for _, x := range cc {
			if s, ok := x.(string); ok {
				keys = append(keys, s)
			}
		}
	}
	rks := make([]any, len(keys))
	for i, k := range keys {
		rks[i] = k
	}
	info := amqp.Table{
		"count": int64(1), "reason": d.reason, "queue": q.name,
		"time": time.Now().UTC().Truncate(time.Second), "exchange": old.exchange, "routing-keys": rks,
	}
	if props.Expiration != "" {
		info["original-expiration"] = props.Expiration
	}
	var deaths []any
	if prev, ok := h["x-death"].([]any); !ok {
		h["x-first-death-reason"] = d.reason
		h["x-first-death-queue"] = q.name
		h["x-first-death-exchange"] = old.exchange
		deaths = []any{info}
	} else {
		// The entry of the same queue and reason is counted up and moved first (keeping its
		// time, exchange and routing keys); others keep their order.
		deaths = make([]any, 1, len(prev)+1)
		deaths[0] = info
		matched := false
		for _, x := range prev {
			if t, ok := x.(amqp.Table); ok && !matched && t["queue"] == q.name && t["reason"] == d.reason {
				n, _ := intArg(t["count"])
				moved := amqp.Table{}
				for k, y := range t {
					moved[k] = y
				}
				moved["count"] = n + 1
				deaths[0], matched = moved, true
				continue
			}
			deaths = append(deaths, x)
		}
	}
	h["x-death"] = deaths
	if lim.hasDLRK {
		keys = []string{lim.dlrk}
		delete(h, "CC")
	}
	props.Headers = h
	props.Expiration = ""
	raw, err := props.Append(nil)
	if err != nil {
		q.v.srv.log.Error("encoding a dead-lettered message", "vhost", q.v.name, "queue", q.name, "err", err)
		raw = old.props
	}
	m := &message{
		exchange: lim.dlx, routingKey: keys[0], props: raw, body: old.body,
		persistent: old.persistent, headers: h, arrived: nowMillis(), priority: old.priority,
	}
	return m, keys, deaths
}

// isDeathCycle is RabbitMQ's is_cycle: queue is in deaths and no entry up to and including its
// first one is a rejection.
func isDeathCycle(queue string, deaths []any) bool {
	for i, x := range deaths {
		t, ok := x.(amqp.Table)
		if !ok || t["queue"] != queue {
			continue
		}
		for _, y := range deaths[:i+1] {
			u, ok := y.(amqp.Table)
			if !ok || u["reason"] == "rejected" {
				return false
			}
		}
		return true
	}
	return false
}
