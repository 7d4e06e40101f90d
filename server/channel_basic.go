package server

import (
	"bytes"
	"slices"
	"strings"
	"time"

	"github.com/warrenmq/warren/amqp"
)

// --- consumers ---

func (ch *channel) basicQos(m *amqp.BasicQos) error {
	if m.PrefetchSize != 0 {
		return amqp.Errorf(amqp.NotImplemented, "prefetch_size!=0 (%d)", m.PrefetchSize)
	}
	if !m.Global {
		ch.consumerPrefetch = m.PrefetchCount
		ch.stats.prefetch.Store(uint32(m.PrefetchCount))
		// As in RabbitMQ (rabbit_limiter:unlimit_prefetch), it also lifts the channel's global limit.
		ch.mu.Lock()
		lifted := ch.mu.prefetchGlobal > 0
		ch.mu.prefetchGlobal, ch.mu.globalExtra = 0, 0
		ch.mu.Unlock()
		if lifted {
			ch.kickConsumers(&ch.conn.wb) // on the read loop
		}
	} else {
		ch.mu.Lock()
		switch {
		case m.PrefetchCount == 0:
			ch.mu.globalExtra = 0
		case ch.mu.prefetchGlobal == 0:
			// As RabbitMQ's limiter (rabbit_channel's basic.qos, rabbit_limiter:limit_prefetch):
			// switching the limit on starts its count at every unacked delivery of the channel,
			// basic.get ones included, and only consumer deliveries and their settlements move it
			// afterwards, so the gets outstanding now count until the limit is lifted.
			ch.mu.globalExtra = len(ch.mu.unacked) - ch.mu.consumerUnack
		}
		ch.mu.prefetchGlobal = m.PrefetchCount
		ch.mu.Unlock()
		ch.kickConsumers(&ch.conn.wb) // on the read loop
	}
	return ch.reply(&amqp.BasicQosOk{})
}

func (ch *channel) basicConsume(m *amqp.BasicConsume) error {
	if m.Queue == replyToQueue {
		return ch.consumeReplyTo(m)
	}
	// RabbitMQ checks the tag first: reusing one is a connection error even if the queue is missing.
	if m.ConsumerTag != "" {
		ch.mu.Lock()
		_, dup := ch.mu.consumers[m.ConsumerTag]
		ch.mu.Unlock()
		if dup {
			return amqp.Errorf(amqp.NotAllowed, "attempt to reuse consumer tag '%s'", m.ConsumerTag)
		}
	}
	q, err := ch.queueChecked(m.Queue, accessRead)
	if err != nil {
		return err
	}
	tag := m.ConsumerTag
	if tag == "" {
		tag = "amq.ctag-" + randomName()
	}
	c := &consumer{ch: ch, q: q, prefetch: ch.consumerPrefetch}
	c.subscription = subscription{tag: tag, target: c, noAck: m.NoAck, exclusive: m.Exclusive, args: m.Arguments, prefetch: ch.consumerPrefetch}
	ch.mu.Lock()
	_, dup := ch.mu.consumers[tag]
	if !dup {
		ch.mu.consumers[tag] = c
	}
	ch.mu.Unlock()
	if dup {
		return amqp.Errorf(amqp.NotAllowed, "attempt to reuse consumer tag '%s'", tag)
	}
	err = q.addConsumer(&c.subscription, func() {
		if !m.NoWait {
			ch.reply(&amqp.BasicConsumeOk{ConsumerTag: tag})
		}
	})
	if err != nil {
		ch.mu.Lock()
		delete(ch.mu.consumers, tag)
		ch.mu.Unlock()
		return err
	}
	return nil
}

// stopConsumers makes the channel's consumers take no more deliveries (its connection is closing).
func (ch *channel) stopConsumers() {
	ch.mu.Lock()
	for _, c := range ch.mu.consumers {
		c.gone = true
	}
	ch.mu.Unlock()
}

// cancelConsumer ends a subscription; its unacked deliveries stay unacked on the channel.
func (ch *channel) cancelConsumer(tag string) {
	ch.mu.Lock()
	c := ch.mu.consumers[tag]
	delete(ch.mu.consumers, tag)
	if c != nil {
		c.gone = true
	}
	ch.mu.Unlock()
	if c != nil {
		ch.detach(c)
	}
}

// detach removes c from its queue and auto-deletes the queue if c was its last consumer.
func (ch *channel) detach(c *consumer) {
	if c.q.removeConsumer(&c.subscription) {
		ch.vhost().deleteQueue(c.q, false, false)
	}
}

// serverCancel is called by a queue being deleted (under its lock): the consumer is gone. It
// reports whether the client is to be told with basic.cancel (notifyCancelled), which is sent
// after the queue.delete-ok, as RabbitMQ sends it.
func (ch *channel) serverCancel(c *consumer) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.mu.consumers[c.tag] != c {
		return false
	}
	delete(ch.mu.consumers, c.tag)
	c.gone = true
	return ch.conn.caps.consumerCancelNotify && !ch.mu.closed
}

// notifyCancelled tells the targets a deleted queue cancelled (deliveryTarget.queueDeleted
// returned true) that they are. No lock is held.
func notifyCancelled(ts []deliveryTarget) {
	for _, t := range ts {
		t.cancelled()
	}
}

// kickConsumers asks every queue this channel consumes from to deliver (credit was freed). wb is
// the batch of the read loop it runs on, or nil.
func (ch *channel) kickConsumers(wb *writeBatch) {
	ch.mu.Lock()
	cs := make([]*consumer, 0, len(ch.mu.consumers))
	for _, c := range ch.mu.consumers {
		cs = append(cs, c)
	}
	ch.mu.Unlock()
	// Grouped by queue, in the order of the channel's consumers' tags (map order is random).
	slices.SortFunc(cs, func(a, b *consumer) int {
		if a.q != b.q {
			return cmpU64(a.q.id, b.q.id)
		}
		return strings.Compare(a.tag, b.tag)
	})
	var sbuf [8]*subscription
	for i := 0; i < len(cs); {
		q, subs := cs[i].q, sbuf[:0]
		for ; i < len(cs) && cs[i].q == q; i++ {
			subs = append(subs, &cs[i].subscription)
		}
		q.kick(subs, wb)
	}
}

// tryDeliver sends e to consumer c if it has credit (c's deliveryTarget.deliver). Called by queue
// dispatch with q.mu held.
func (ch *channel) tryDeliver(c *consumer, e *qentry, run *dispatchRun) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.mu.closed || c.gone || ch.conn.out.full.Load() {
		return false
	}
	if !c.noAck && c.prefetch > 0 && c.unacked >= int(c.prefetch) {
		return false
	}
	// The channel-wide limit (basic.qos global=true) stops every consumer of the channel once reached,
	// no-ack ones included, as RabbitMQ's channel limiter does; no-ack deliveries do not count towards it.
	if ch.mu.prefetchGlobal > 0 && ch.mu.consumerUnack+ch.mu.globalExtra >= int(ch.mu.prefetchGlobal) {
		return false
	}
	ch.mu.deliveryTag++
	tag := ch.mu.deliveryTag
	if !c.noAck {
		d := ch.newDeliveryLocked()
		*d = delivery{tag: tag, q: c.q, e: e, c: c, at: run.clk.now()}
		ch.mu.unacked = append(ch.mu.unacked, d)
		ch.armAckTimerLocked()
		c.unacked++
		ch.mu.consumerUnack++
	}
	if ch.mu.hold {
		ch.mu.held = ch.appendDeliver(ch.mu.held, c.tag, tag, e)
	} else {
		ch.writeDeliver(c.tag, tag, e, run.wb)
	}
	ch.countDeliver(c.q, c.noAck, e.redelivered)
	return true
}

// newDeliveryLocked returns a zero delivery, carved from a slab of them so that a delivery
// does not cost an allocation of its own. ch.mu is held.
func (ch *channel) newDeliveryLocked() *delivery {
	if len(ch.mu.slab) == 0 {
		ch.mu.slab = make([]delivery, 64)
	}
	d := &ch.mu.slab[0]
	ch.mu.slab = ch.mu.slab[1:]
	return d
}

// releaseDeliveries clears settled deliveries, so that the slab they were carved from does not
// keep their messages alive while another delivery of the slab is still unacknowledged.
func releaseDeliveries(ds []*delivery) {
	for _, d := range ds {
		*d = delivery{}
	}
}

// dispatchRun is what the deliveries of one dispatch run share: one clock read, and the batch of
// the read loop the run is on (nil elsewhere), which writes the deliveries when it ends instead of
// each waking its connection's write loop.
type dispatchRun struct {
	clk lazyClock
	wb  *writeBatch
}

// lazyClock reads the clock once, when first asked: a dispatch run stamps its deliveries with one
// time (clock reads are not free on every machine).
type lazyClock struct{ t time.Time }

func (c *lazyClock) now() time.Time {
	if c.t.IsZero() {
		c.t = time.Now()
	}
	return c.t
}

// writeDeliver queues basic.deliver with the message's header and body frames (writeContent
// without boxing the method, so a delivery allocates nothing here).
func (ch *channel) writeDeliver(ctag string, tag uint64, e *qentry, wb *writeBatch) {
	ch.conn.out.writeVia(wb, func(b []byte) []byte { return ch.appendDeliver(b, ctag, tag, e) })
}

// appendDeliver appends basic.deliver with the message's header and body frames to b.
func (ch *channel) appendDeliver(b []byte, ctag string, tag uint64, e *qentry) []byte {
	c, m := ch.conn, e.msg
	d := amqp.BasicDeliver{ConsumerTag: ctag, DeliveryTag: tag, Redelivered: e.redelivered, Exchange: m.exchange, RoutingKey: m.routingKey}
	nb, err := amqp.AppendDeliverFrame(b, ch.id, &d)
	if err != nil {
		c.log.Error("encoding basic.deliver", "err", err)
		return b
	}
	nb = amqp.AppendContentHeaderFrame(nb, ch.id, amqp.ClassBasic, uint64(len(m.body)), m.props)
	return amqp.AppendBodyFrames(nb, ch.id, m.body, c.frameMax)
}

// holdDeliveries makes the deliveries to this channel wait (in ch.mu.held) until the reply to
// the channel's next method, or the end of the batch of frames read (releaseHeld), if that
// method was already read: in RabbitMQ the deliveries an ack, nack, reject or recover frees
// reach the channel's process after a method pipelined behind the settle, so its reply (a
// queue.delete-ok, a channel.close for an error) goes out first. Nothing is held when the next
// frame read is not such a method of the channel (the common case, a stream of acks: deliveries
// go out at once). On the read loop.
func (ch *channel) holdDeliveries() {
	if ch.holding || !ch.conn.replyMethodBufferedFor(ch.id) {
		return
	}
	ch.holding = true
	ch.conn.holding = append(ch.conn.holding, ch)
	ch.mu.Lock()
	ch.mu.hold = true
	ch.mu.Unlock()
}

// releaseHeld writes the held deliveries and stops holding. On the read loop.
func (ch *channel) releaseHeld() {
	if !ch.holding {
		return
	}
	ch.holding = false
	ch.mu.Lock()
	held := ch.mu.held
	ch.mu.hold, ch.mu.held = false, nil
	if len(held) > 0 && !ch.mu.closed {
		ch.conn.out.writeVia(&ch.conn.wb, func(b []byte) []byte { return append(b, held...) })
	}
	ch.mu.Unlock()
}

// writeContent queues a content-bearing method with the message's header and body frames.
func (ch *channel) writeContent(method amqp.Method, m *message) {
	c := ch.conn
	c.out.write(func(b []byte) []byte {
		nb, err := amqp.AppendMethodFrame(b, ch.id, method)
		if err != nil {
			c.log.Error("encoding content method", "method", method.Name(), "err", err)
			return b
		}
		nb = amqp.AppendContentHeaderFrame(nb, ch.id, amqp.ClassBasic, uint64(len(m.body)), m.props)
		return amqp.AppendBodyFrames(nb, ch.id, m.body, c.frameMax)
	})
}

// --- publishing ---

func (ch *channel) basicPublish(m *amqp.BasicPublish) error {
	if m.Immediate {
		return amqp.Errorf(amqp.NotImplemented, "immediate=true")
	}
	ex, err := ch.vhost().checkPublish(ch.conn.user, m.Exchange, m.RoutingKey, &ch.pubAccess) // publish.go
	if err != nil {
		return err
	}
	if ch.tx {
		ch.pub = &publishing{ex: ex, method: *m} // held until tx.commit
	} else {
		ch.pubBuf = publishing{ex: ex, method: *m} // routed before the next publish starts
		ch.pub = &ch.pubBuf
	}
	return nil
}

// handleContent takes a header or body frame of the publish being assembled.
func (ch *channel) handleContent(f amqp.Frame) error {
	if ch.closing {
		return nil
	}
	p := ch.pub
	if p == nil {
		return amqp.Errorf(amqp.UnexpectedFrame, "expected method frame, got non method frame instead")
	}
	if f.Type == amqp.FrameHeader {
		if p.gotHeader {
			return p.unexpected()
		}
		classID, size, props, err := amqp.DecodeContentHeader(f.Payload)
		if err != nil {
			return methodErr(asAMQPError(err), &p.method)
		}
		if classID != amqp.ClassBasic {
			return methodErr(amqp.Errorf(amqp.UnexpectedFrame, "expected content header for class 60, got one for class %d instead", classID), &p.method)
		}
		// Validate every property now: a message is immutable once routed, and a malformed one
		// must not reach consumers. (TODO(perf): validate without decoding into a struct.)
		decoded, err := amqp.DecodeProperties(props)
		if err != nil {
			return methodErr(amqp.Errorf(amqp.SyntaxError, "malformed content header properties: %v", err), &p.method)
		}
		p.deliveryMode, p.headers, p.priority = decoded.DeliveryMode, decoded.Headers, decoded.Priority
		if err := ch.checkUserID(decoded.UserID); err != nil {
			ch.closeWith(methodErr(err, &p.method))
			return nil
		}
		if decoded.Expiration != "" {
			if p.ttl, err = parseExpiration(decoded.Expiration); err != nil {
				ch.closeWith(methodErr(expirationError(decoded.Expiration, err), &p.method))
				return nil
			}
			p.hasTTL = true
		}
		if p.routes, err = senderRoutes(decoded.Headers); err != nil {
			ch.closeWith(methodErr(asAMQPError(err), &p.method))
			return nil
		}
		if decoded.ReplyTo == replyToQueue {
			if props, err = ch.setReplyTo(props); err != nil {
				ch.closeWith(methodErr(asAMQPError(err), &p.method))
				return nil
			}
		}
		p.gotHeader = true
		p.bodySize = size
		if size > uint64(ch.conn.srv.opts.MaxMessageSize) {
			ch.closeWith(methodErr(amqp.Errorf(amqp.PreconditionFailed, "message size %d is larger than configured max size %d",
				size, ch.conn.srv.opts.MaxMessageSize), &p.method))
			return nil
		}
		if n := len(props); size <= 64<<10 {
			// One allocation for the properties and the body frames to come.
			buf := make([]byte, n, n+int(size))
			copy(buf, props)
			p.props, p.body = buf[:n:n], buf[n:n]
		} else {
			p.props = bytes.Clone(props)
		}
		if p.props, p.headers, err = stripBCC(p.props, p.headers); err != nil {
			return methodErr(amqp.Errorf(amqp.SyntaxError, "malformed content header properties: %v", err), &p.method)
		}
		if size == 0 {
			return ch.published()
		}
		return nil
	}
	// Body frame.
	if !p.gotHeader {
		return p.unexpected()
	}
	if uint64(len(p.body))+uint64(len(f.Payload)) > p.bodySize {
		return methodErr(amqp.Errorf(amqp.FrameError, "content body exceeds the declared size %d", p.bodySize), &p.method)
	}
	if p.body == nil {
		p.body = make([]byte, 0, min(p.bodySize, 1<<20))
	}
	p.body = append(p.body, f.Payload...)
	if uint64(len(p.body)) == p.bodySize {
		return ch.published()
	}
	return nil
}

// unexpected is the UNEXPECTED_FRAME error for a frame that breaks this publish's content sequence.
func (p *publishing) unexpected() error {
	if p.gotHeader {
		return methodErr(amqp.Errorf(amqp.UnexpectedFrame, "expected content body, got non content body frame instead"), &p.method)
	}
	return methodErr(amqp.Errorf(amqp.UnexpectedFrame, "expected content header for class 60, got non content header frame instead"), &p.method)
}

// checkUserID refuses a user-id property that is set and is not the connection's user, as
// RabbitMQ does (a direct connection's user, a plugin forwarding messages, may set any).
func (ch *channel) checkUserID(userID string) *amqp.Error {
	if userID != "" && userID != ch.conn.user.name && !ch.conn.user.direct {
		return amqp.Errorf(amqp.PreconditionFailed, "user_id property set to '%s' but authenticated user was '%s'", userID, ch.conn.user.name)
	}
	return nil
}

// published runs when a message is fully assembled.
func (ch *channel) published() error {
	p := ch.pub
	ch.pub = nil
	if ch.tx {
		// RabbitMQ routes a publish in a transaction now and enqueues it at tx.commit on the
		// queues chosen now (those still there then).
		msg, spare := ch.newMessage(p)
		qs := ch.vhost().route(p.ex, msg.routingKey, p.routes, msg, nil)
		ch.txPubs = append(ch.txPubs, txPublish{p: p, msg: msg, spare: spare, qs: qs})
		return nil
	}
	ch.route(p)
	return nil
}

// newMessage makes the message of an assembled publish and a zero entry for its first queue, in
// one allocation.
func (ch *channel) newMessage(p *publishing) (*message, *qentry) {
	me := &struct {
		m message
		e qentry
	}{m: message{
		exchange: p.method.Exchange, routingKey: p.method.RoutingKey,
		props: p.props, body: p.body, persistent: p.deliveryMode == 2, headers: p.headers,
		arrived: ch.conn.readAt, ttl: p.ttl, hasTTL: p.hasTTL, priority: p.priority,
	}}
	return &me.m, &me.e
}

// route delivers an assembled publish to its queues, returns it if mandatory and unroutable, and
// confirms it in confirm mode.
func (ch *channel) route(p *publishing) {
	msg, spare := ch.newMessage(p)
	var buf [8]*queue
	qs, refused := ch.vhost().publish(ch.conn, p.ex, msg, p.routes, spare, buf[:0]) // publish.go
	ch.routed(p, msg, qs, refused)
}

// routed finishes a publish enqueued on qs: direct reply-to, counters, the return of a mandatory
// message that reached nothing, the confirm.
func (ch *channel) routed(p *publishing, msg *message, qs []*queue, refused bool) {
	replied := p.ex.name == "" && ch.conn.srv.deliverReply(msg.routingKey, msg)
	ch.countPublish(p.ex, qs, p.method.Mandatory, refused)
	if len(qs) == 0 && !replied && p.method.Mandatory {
		ch.writeContent(&amqp.BasicReturn{
			ReplyCode: amqp.NoRoute, ReplyText: "NO_ROUTE", Exchange: msg.exchange, RoutingKey: msg.routingKey,
		}, msg)
	}
	if ch.confirm {
		ch.publishSeq++
		if refused {
			ch.confirms.nack(ch.publishSeq) // a queue refused it
		}
		if ch.publishSeq == ch.flushedSeq+1 {
			ch.conn.confirmDirty = append(ch.conn.confirmDirty, ch)
		}
	}
}

// --- get, ack, nack, reject, recover ---

func (ch *channel) basicGet(m *amqp.BasicGet) error {
	q, err := ch.queueChecked(m.Queue, accessRead)
	if err != nil {
		return err
	}
	if err := q.refuses(opGet); err != nil {
		return err
	}
	e, remaining := q.get(!m.NoAck)
	ch.countGet(q, e, m.NoAck)
	if e == nil {
		return ch.reply(&amqp.BasicGetEmpty{})
	}
	ch.mu.Lock()
	ch.mu.deliveryTag++
	tag := ch.mu.deliveryTag
	if !m.NoAck {
		ch.mu.unacked = append(ch.mu.unacked, &delivery{tag: tag, q: q, e: e, at: time.Now()})
		ch.armAckTimerLocked()
	}
	ch.mu.Unlock()
	ch.writeContent(&amqp.BasicGetOk{
		DeliveryTag: tag, Redelivered: e.redelivered, Exchange: e.msg.exchange,
		RoutingKey: e.msg.routingKey, MessageCount: remaining,
	}, e.msg)
	return nil
}

// settleOrHold applies an ack, nack or reject, or in a transaction takes its deliveries off the
// channel's unacked ones until tx.commit (tx.rollback puts them back), as RabbitMQ does: a tag
// that is not an unacked delivery fails at once with 406, also in a transaction, and an ack of a
// tag already acked in the transaction is one.
func (ch *channel) settleOrHold(s settlement) error {
	if s.kind != settleAck {
		if err := ch.refusedSettle(s.tag, s.multiple, opReject); err != nil {
			return err
		}
	}
	if !ch.tx {
		return ch.settle(s)
	}
	ch.mu.Lock()
	ds, ok := ch.removeLocked(s.tag, s.multiple)
	ch.mu.Unlock()
	if !ok {
		return amqp.Errorf(amqp.PreconditionFailed, "unknown delivery tag %d", s.tag)
	}
	s.ds = ds // their consumers' credit is released on commit
	ch.txSettles = append(ch.txSettles, s)
	return nil
}

// settle applies an ack, nack or reject.
func (ch *channel) settle(s settlement) error {
	ch.holdDeliveries()
	requeue := s.kind != settleAck && s.requeue
	var ds []*delivery
	var ok bool
	ch.mu.Lock()
	if requeue {
		ds, ok = ch.removeLocked(s.tag, s.multiple) // credit released group by group
	} else {
		ds, ok = ch.takeLocked(s.tag, s.multiple)
	}
	ch.mu.Unlock()
	if !ok {
		return amqp.Errorf(amqp.PreconditionFailed, "unknown delivery tag %d", s.tag)
	}
	ch.settleTaken(s, ds, !requeue)
	return nil
}

// settleTaken hands deliveries taken off the channel back to their queues: requeued,
// dead-lettered or acked as s says. released says whether their consumers' credit was released.
func (ch *channel) settleTaken(s settlement, ds []*delivery, released bool) {
	if len(ds) == 0 {
		return
	}
	ch.countSettle(s.kind, ds)
	if s.kind != settleAck && s.requeue {
		ch.requeueGroups(ds, released)
		releaseDeliveries(ds)
		ch.kickConsumers(&ch.conn.wb) // on the read loop
		return
	}
	if !released {
		ch.mu.Lock()
		ch.releaseCreditLocked(ds)
		ch.mu.Unlock()
	}
	if s.kind != settleAck {
		forEachQueue(ds, func(q *queue, es []*qentry) { q.reject(es) })
	} else {
		forEachQueue(ds, func(q *queue, es []*qentry) { q.settle(es) })
		trackStreamAcks(ds)
	}
	releaseDeliveries(ds)
	ch.kickConsumers(&ch.conn.wb) // on the read loop
}

// takeLocked removes and returns the deliveries an ack of tag covers (removeLocked), releasing
// their consumer credit.
func (ch *channel) takeLocked(tag uint64, multiple bool) ([]*delivery, bool) {
	taken, ok := ch.removeLocked(tag, multiple)
	ch.releaseCreditLocked(taken)
	return taken, ok
}

// removeLocked removes and returns the unacked deliveries an ack of tag covers, as RabbitMQ's
// collect_acks does: tag alone, or with multiple every tag up to it; tag 0 with multiple is all of
// them (possibly none). ok is false, and nothing is removed, if tag is not an unacked delivery
// (with multiple too: an ack of a tag never delivered or already settled settles nothing).
func (ch *channel) removeLocked(tag uint64, multiple bool) (taken []*delivery, ok bool) {
	u := ch.mu.unacked
	if multiple && tag == 0 {
		taken = slices.Clone(u)
		clear(u)
		ch.mu.unacked = u[:0]
		return taken, true
	}
	i, found := slices.BinarySearchFunc(u, tag, func(d *delivery, t uint64) int { return cmpU64(d.tag, t) })
	if !found {
		return nil, false
	}
	if multiple {
		taken = slices.Clone(u[:i+1])
		clear(u[:i+1])
		ch.mu.unacked = u[i+1:]
		return taken, true
	}
	taken = []*delivery{u[i]}
	if i == 0 {
		u[0] = nil
		ch.mu.unacked = u[1:]
	} else {
		ch.mu.unacked = slices.Delete(u, i, i+1)
	}
	return taken, true
}

// releaseCreditLocked gives the consumers of taken deliveries their credit back.
func (ch *channel) releaseCreditLocked(taken []*delivery) {
	for _, d := range taken {
		if d.c != nil {
			d.c.unacked--
			ch.mu.consumerUnack--
		}
	}
}

// restoreLocked puts deliveries a transaction held back among the unacked ones, in tag order
// (tx.rollback).
func (ch *channel) restoreLocked(ds []*delivery) {
	if len(ds) == 0 {
		return
	}
	ch.mu.unacked = append(ch.mu.unacked, ds...)
	slices.SortFunc(ch.mu.unacked, func(a, b *delivery) int { return cmpU64(a.tag, b.tag) })
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// refusedSettle returns the error of the first queue type that refuses op (queueTypeDef.refuses)
// for one of the unacked deliveries a settlement of tag covers (removeLocked's rule), or nil. It
// looks at those deliveries only (a binary search for a single tag).
func (ch *channel) refusedSettle(tag uint64, multiple bool, op queueOp) error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	u := ch.mu.unacked
	if !(multiple && tag == 0) {
		i, found := slices.BinarySearchFunc(u, tag, func(d *delivery, t uint64) int { return cmpU64(d.tag, t) })
		if !found {
			return nil // unknown tag: the settlement fails with 406
		}
		if multiple {
			u = u[:i+1]
		} else {
			u = u[i : i+1]
		}
	}
	for _, d := range u {
		if err := d.q.refuses(op); err != nil {
			return err
		}
	}
	return nil
}

// recover requeues every unacked delivery of the channel (basic.recover with requeue=true).
func (ch *channel) recover() {
	ch.mu.Lock()
	ds, _ := ch.removeLocked(0, true)
	ch.mu.Unlock()
	ch.requeueGroups(ds, false)
	releaseDeliveries(ds)
	ch.kickConsumers(&ch.conn.wb) // on the read loop
}

// requeueGroups requeues deliveries taken off the channel as RabbitMQ 3.10 does for
// basic.recover and a nack or reject with requeue (rabbit_channel:foreach_per_queue): in groups of
// one queue and one consumer, ordered by queue name, the basic.get deliveries before the
// consumers' (ordered by tag). Each group's credit is released just before the group goes back to
// its queue, which drops heads over its length limit and then delivers, group after group. So
// the number dead-lettered by a length limit, and what the consumers get again, are RabbitMQ's.
// released says the credit was released already.
func (ch *channel) requeueGroups(ds []*delivery, released bool) {
	type key struct {
		q   *queue
		c   *consumer
		tag string // the consumer's tag; "" for basic.get
	}
	var keys []key
	groups := map[key][]*delivery{}
	for _, d := range ds {
		k := key{q: d.q, c: d.c}
		if d.c != nil {
			k.tag = d.c.tag
		}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], d)
	}
	slices.SortStableFunc(keys, func(a, b key) int {
		if a.q.name != b.q.name {
			return strings.Compare(a.q.name, b.q.name)
		}
		if (a.c == nil) != (b.c == nil) {
			if a.c == nil {
				return -1
			}
			return 1
		}
		return strings.Compare(a.tag, b.tag)
	})
	for _, k := range keys {
		g := groups[k]
		if !released {
			ch.mu.Lock()
			ch.releaseCreditLocked(g)
			ch.mu.Unlock()
		}
		es := make([]*qentry, len(g))
		for i, d := range g {
			es[i] = d.e
		}
		k.q.requeue(es)
	}
}

// requeueDeliveries returns deliveries to their queues, in order.
func requeueDeliveries(ds []*delivery) {
	forEachQueue(ds, func(q *queue, es []*qentry) { q.requeue(es) })
}

// forEachQueue groups deliveries by queue, keeping their order, and calls fn once per queue.
func forEachQueue(ds []*delivery, fn func(*queue, []*qentry)) {
	if len(ds) == 0 {
		return
	}
	if len(ds) == 1 {
		fn(ds[0].q, []*qentry{ds[0].e})
		return
	}
	var order []*queue
	groups := map[*queue][]*qentry{}
	for _, d := range ds {
		if _, ok := groups[d.q]; !ok {
			order = append(order, d.q)
		}
		groups[d.q] = append(groups[d.q], d.e)
	}
	for _, q := range order {
		fn(q, groups[q])
	}
}

// --- transactions ---

func (ch *channel) txCommit() error {
	pubs, settles := ch.txPubs, ch.txSettles
	ch.txPubs, ch.txSettles = nil, nil
	v := ch.vhost()
	for _, t := range pubs {
		t.msg.arrived = ch.conn.readAt // it reaches its queues now (per-message TTL counts from here)
		qs := v.liveQueues(t.qs)
		ch.routed(t.p, t.msg, qs, v.enqueue(ch.conn, t.msg, qs, t.spare))
	}
	// commit-ok means the persistent messages are on disk; if they could not be written, the
	// transaction fails with the connection (541), as nothing can be promised about it.
	if err := ch.conn.awaitCommits(); err != nil {
		return amqp.Errorf(amqp.InternalError, "tx.commit: storage write failed: %v", err)
	}
	for _, s := range settles {
		ch.settleTaken(s, s.ds, false)
	}
	return nil
}

// txRollback drops the transaction's publishes and puts the deliveries its acks, nacks and
// rejects held back among the unacked ones.
func (ch *channel) txRollback() {
	settles := ch.txSettles
	ch.txPubs, ch.txSettles = nil, nil
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for _, s := range settles {
		ch.restoreLocked(s.ds)
	}
}

// --- teardown ---

// teardown stops deliveries, cancels the channel's consumers and requeues its unacked messages.
// It runs when the channel or its connection closes.
func (ch *channel) teardown() {
	ch.mu.Lock()
	if ch.mu.closed {
		ch.mu.Unlock()
		return
	}
	ch.mu.closed = true
	ch.stopAckTimerLocked()
	ch.conn.removeChannel(ch)
	ch.confirms.close()
	consumers := ch.mu.consumers
	ch.mu.consumers = map[string]*consumer{}
	for _, c := range consumers {
		c.gone = true
	}
	ch.mu.hold, ch.mu.held = false, nil // a closed channel's deliveries are requeued, not sent
	ds, _ := ch.takeLocked(0, true)
	for _, s := range ch.txSettles { // held by a transaction: requeued with the others
		ch.releaseCreditLocked(s.ds)
		ds = append(ds, s.ds...)
	}
	slices.SortFunc(ds, func(a, b *delivery) int { return cmpU64(a.tag, b.tag) })
	rc := ch.mu.reply
	ch.mu.reply = nil
	ch.mu.Unlock()
	if rc != nil {
		ch.conn.srv.replies.remove(rc)
	}
	for _, c := range consumers {
		ch.detach(c)
	}
	requeueDeliveries(ds)
	releaseDeliveries(ds)
	ch.txPubs, ch.txSettles = nil, nil
}
