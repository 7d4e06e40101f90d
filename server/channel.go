package server

import (
	"strings"
	"sync"
	"time"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/exchange"
)

// channel is one AMQP channel of a connection.
//
// Fields outside mu belong to the connection's read loop. mu guards what queue dispatch (running
// on other goroutines) reads and writes: the consumers, delivery tags, unacked deliveries, credit.
type channel struct {
	id   uint16
	conn *conn

	closing bool // we sent channel.close; everything but close/close-ok is discarded

	// loopMu is held by the read loop while it handles a frame of this channel, and by the
	// consumer-timeout timer while it closes the channel (consumer_timeout.go), so that the
	// channel's read-loop state (closing, pub, tx) has one owner at a time.
	loopMu sync.Mutex

	// Content assembly: a basic.publish waiting for its header and body frames; outside
	// transactions it points at pubBuf, reused publish after publish.
	pub    *publishing
	pubBuf publishing

	// Publisher confirms (confirm.select). Every publish gets the next seq. A publish is
	// confirmed once every queue it was routed to has it, and, for a persistent message on a
	// durable queue, once its commit group is fsynced. Commit groups complete in order, so
	// confirms do too: at the end of each batch of frames read, the connection hands the highest
	// seq to the ledger, at once or when the last commit group it wrote to is durable, and the
	// ledger sends one basic.ack (multiple=true) for it. The rules are in confirm.go.
	confirm    bool
	publishSeq uint64
	flushedSeq uint64 // the highest seq handed to the ledger

	confirms confirmLedger

	// Transactions (tx.select): publishes and settlements wait for tx.commit.
	tx        bool
	txPubs    []txPublish
	txSettles []settlement

	lastQueue string // the last queue declared on this channel, for methods naming queue ""

	holding bool // deliveries are held until the next method's reply (holdDeliveries)

	// pubAccess is the last exchange write was permitted on, while the permissions stay at gen.
	pubAccess        publishAccess
	consumerPrefetch uint16 // basic.qos global=false: the limit given to consumers created next

	stats chanStats // counters and mirrored settings for the management API (stats.go)

	mu struct {
		sync.Mutex
		closed         bool // torn down: no more deliveries
		consumers      map[string]*consumer
		deliveryTag    uint64
		unacked        []*delivery    // ordered by tag
		slab           []delivery     // fresh deliveries to hand out (newDeliveryLocked)
		prefetchGlobal uint16         // basic.qos global=true: limit on the channel's consumer deliveries
		consumerUnack  int            // unacked deliveries to consumers (not basic.get)
		globalExtra    int            // counted towards prefetchGlobal besides consumerUnack (basicQos)
		ackTimer       *time.Timer    // consumer timeout (consumer_timeout.go); nil until needed
		ackTimerAt     time.Time      // when ackTimer fires; zero: not armed
		reply          *replyConsumer // the direct reply-to consumer (replyto.go)
		hold           bool           // deliveries go to held (holdDeliveries)
		held           []byte         // held basic.deliver frames with their content
	}
}

// consumer is one basic.consume subscription: the AMQP channel's delivery target
// (queue_consumers.go). Its subscription is what the queue sees of it.
type consumer struct {
	subscription // tag, noAck, exclusive, args, priority; target is the consumer itself
	ch           *channel
	q            *queue
	prefetch     uint16 // 0 = unlimited
	unacked      int    // guarded by ch.mu
	gone         bool   // guarded by ch.mu: no longer one of the channel's consumers
}

// deliver is deliveryTarget.deliver: basic.deliver on the consumer's channel if it has credit.
func (c *consumer) deliver(e *qentry, run *dispatchRun) bool { return c.ch.tryDeliver(c, e, run) }

// queueDeleted is deliveryTarget.queueDeleted: the channel forgets the consumer; a client that
// asked for consumer_cancel_notify is to be told (cancelled).
func (c *consumer) queueDeleted() bool { return c.ch.serverCancel(c) }

// cancelled is deliveryTarget.cancelled: basic.cancel, if the channel is still open.
func (c *consumer) cancelled() {
	ch := c.ch
	ch.mu.Lock()
	if !ch.mu.closed {
		ch.reply(&amqp.BasicCancel{ConsumerTag: c.tag, NoWait: true})
	}
	ch.mu.Unlock()
}

// deliversOn is deliveryTarget.deliversOn: the connection whose socket carries the deliveries and
// their acks.
func (c *consumer) deliversOn() any { return c.ch.conn }

// describe is deliveryTarget.describe.
func (c *consumer) describe(ci *ConsumerInfo) {
	ci.Prefetch, ci.Channel = int(c.prefetch), c.ch.ref()
}

// delivery is a message handed to the client and not yet settled.
type delivery struct {
	tag uint64
	q   *queue
	e   *qentry
	c   *consumer // nil for basic.get
	at  time.Time // when it was delivered (consumer timeout)
}

// publishing is a basic.publish being assembled, or held by a transaction.
type publishing struct {
	ex     *exchangeEntity
	method amqp.BasicPublish
	props  []byte
	body   []byte
	// Decoded once from props when the header frame arrives.
	deliveryMode uint8
	headers      amqp.Table
	ttl          int64 // the expiration property in ms, if hasTTL
	hasTTL       bool
	priority     uint8
	routes       []string // routing keys added by the CC and BCC headers
	bodySize     uint64
	gotHeader    bool
}

// txPublish is a publish held by a transaction: routed at basic.publish, enqueued at tx.commit.
type txPublish struct {
	p     *publishing
	msg   *message
	spare *qentry  // the zero entry allocated with msg
	qs    []*queue // the queues routing chose at basic.publish
}

// settlement is an ack, nack or reject held by a transaction.
type settlement struct {
	kind     settleKind
	tag      uint64
	multiple bool
	requeue  bool
	ds       []*delivery // in a transaction: the deliveries it took off the channel
}

type settleKind uint8

const (
	settleAck settleKind = iota
	settleNack
	settleReject
)

func newChannel(c *conn, id uint16) *channel {
	ch := &channel{id: id, conn: c}
	ch.mu.consumers = map[string]*consumer{}
	c.addChannel(ch)
	return ch
}

func (ch *channel) vhost() *vhost { return ch.conn.vhost }

func (ch *channel) reply(m amqp.Method) error { return ch.conn.out.writeMethod(ch.id, m) }

// handleMethod runs one method on an open channel. A soft error closes the channel here and
// returns nil; a hard error is returned for the connection to close.
func (ch *channel) handleMethod(m amqp.Method) error {
	if ch.closing {
		switch m.(type) {
		case *amqp.ChannelCloseOk:
			delete(ch.conn.channels, ch.id)
		case *amqp.ChannelClose:
			ch.reply(&amqp.ChannelCloseOk{})
		}
		return nil
	}
	if ch.pub != nil {
		return ch.pub.unexpected()
	}
	err := ch.dispatch(m)
	if ch.holding {
		switch m.(type) {
		case *amqp.BasicAck, *amqp.BasicNack, *amqp.BasicReject, *amqp.BasicRecover, *amqp.BasicRecoverAsync:
		default:
			if err == nil {
				ch.releaseHeld() // after the method's reply, as RabbitMQ
			}
		}
	}
	if err == nil {
		return nil
	}
	ae := methodErr(asAMQPError(err), m)
	if ae.Hard() {
		return ae
	}
	ch.closeWith(ae)
	return nil
}

// closeWith sends channel.close for a soft error and releases the channel's resources at once.
func (ch *channel) closeWith(e *amqp.Error) {
	ch.conn.log.Debug("closing channel", "channel", ch.id, "code", e.Code, "text", e.Text)
	ch.closing = true
	ch.pub = nil
	ch.teardown()
	ch.reply(&amqp.ChannelClose{ReplyCode: e.Code, ReplyText: truncate(e.Text, 255), FailingClassID: e.ClassID, FailingMethodID: e.MethodID})
}

func (ch *channel) dispatch(m amqp.Method) error {
	switch m := m.(type) {
	case *amqp.ChannelOpen:
		return amqp.Errorf(amqp.ChannelError, "second 'channel.open' seen")
	case *amqp.ChannelClose:
		// Confirms earned before the close go out before close-ok.
		ch.conn.flushConfirms()
		ch.conn.awaitCommits()
		ch.teardown()
		ch.closing = true
		delete(ch.conn.channels, ch.id)
		return ch.reply(&amqp.ChannelCloseOk{})
	case *amqp.ChannelCloseOk:
		return amqp.Errorf(amqp.CommandInvalid, "unimplemented method") // no close was pending
	case *amqp.ChannelFlow:
		// RabbitMQ stopped honouring client flow control (active=false) in 3.3; so does Warren.
		if !m.Active {
			return amqp.Errorf(amqp.NotImplemented, "active=false")
		}
		return ch.reply(&amqp.ChannelFlowOk{Active: true})
	case *amqp.ChannelFlowOk:
		return nil
	case *amqp.AccessRequest:
		return ch.reply(&amqp.AccessRequestOk{Ticket: 1})

	case *amqp.ExchangeDeclare:
		return ch.exchangeDeclare(m)
	case *amqp.ExchangeDelete:
		if m.Exchange != "" && !strings.HasPrefix(m.Exchange, "amq.") {
			if err := ch.conn.checkAccess(accessConfigure, "exchange", m.Exchange); err != nil {
				return err
			}
		}
		if err := ch.vhost().deleteExchange(m.Exchange, m.IfUnused); err != nil {
			return err
		}
		return ch.replyUnless(m.NoWait, &amqp.ExchangeDeleteOk{})
	case *amqp.ExchangeBind:
		return ch.exchangeBind(m.Source, m.Destination, m.RoutingKey, m.Arguments, true, m.NoWait)
	case *amqp.ExchangeUnbind:
		return ch.exchangeBind(m.Source, m.Destination, m.RoutingKey, m.Arguments, false, m.NoWait)

	case *amqp.QueueDeclare:
		return ch.queueDeclare(m)
	case *amqp.QueueBind:
		return ch.queueBind(m.Queue, m.Exchange, m.RoutingKey, m.Arguments, true, m.NoWait)
	case *amqp.QueueUnbind:
		return ch.queueBind(m.Queue, m.Exchange, m.RoutingKey, m.Arguments, false, false)
	case *amqp.QueuePurge:
		q, err := ch.queueChecked(m.Queue, accessRead)
		if err != nil {
			return err
		}
		if err := q.refuses(opPurge); err != nil {
			return err
		}
		return ch.replyUnless(m.NoWait, &amqp.QueuePurgeOk{MessageCount: q.purge()})
	case *amqp.QueueDelete:
		return ch.queueDelete(m)

	case *amqp.BasicQos:
		return ch.basicQos(m)
	case *amqp.BasicConsume:
		return ch.basicConsume(m)
	case *amqp.BasicCancel:
		if !ch.cancelReplyTo(m.ConsumerTag, false) {
			ch.cancelConsumer(m.ConsumerTag)
		}
		return ch.replyUnless(m.NoWait, &amqp.BasicCancelOk{ConsumerTag: m.ConsumerTag})
	case *amqp.BasicPublish:
		return ch.basicPublish(m)
	case *amqp.BasicGet:
		return ch.basicGet(m)
	case *amqp.BasicAck:
		return ch.settleOrHold(settlement{kind: settleAck, tag: m.DeliveryTag, multiple: m.Multiple})
	case *amqp.BasicNack:
		return ch.settleOrHold(settlement{kind: settleNack, tag: m.DeliveryTag, multiple: m.Multiple, requeue: m.Requeue})
	case *amqp.BasicReject:
		return ch.settleOrHold(settlement{kind: settleReject, tag: m.DeliveryTag, requeue: m.Requeue})
	case *amqp.BasicRecover:
		if !m.Requeue {
			return amqp.Errorf(amqp.NotImplemented, "requeue=false")
		}
		if err := ch.refusedSettle(0, true, opRecover); err != nil {
			return err
		}
		// RabbitMQ answers recover-ok before the redeliveries, which come after the reply to
		// the next method (holdDeliveries).
		err := ch.reply(&amqp.BasicRecoverOk{})
		ch.holdDeliveries()
		ch.recover()
		return err
	case *amqp.BasicRecoverAsync:
		if !m.Requeue {
			return amqp.Errorf(amqp.NotImplemented, "requeue=false")
		}
		if err := ch.refusedSettle(0, true, opRecover); err != nil {
			return err
		}
		ch.holdDeliveries()
		ch.recover()
		return nil

	case *amqp.ConfirmSelect:
		if ch.tx {
			return amqp.Errorf(amqp.PreconditionFailed, "cannot switch from tx to confirm mode")
		}
		ch.confirm = true
		ch.stats.confirm.Store(true)
		return ch.replyUnless(m.NoWait, &amqp.ConfirmSelectOk{})
	case *amqp.TxSelect:
		if ch.confirm {
			return amqp.Errorf(amqp.PreconditionFailed, "cannot switch from confirm to tx mode")
		}
		ch.tx = true
		ch.stats.tx.Store(true)
		return ch.reply(&amqp.TxSelectOk{})
	case *amqp.TxCommit:
		if !ch.tx {
			return amqp.Errorf(amqp.PreconditionFailed, "channel is not transactional")
		}
		if err := ch.txCommit(); err != nil {
			return err
		}
		return ch.reply(&amqp.TxCommitOk{})
	case *amqp.TxRollback:
		if !ch.tx {
			return amqp.Errorf(amqp.PreconditionFailed, "channel is not transactional")
		}
		ch.txRollback()
		return ch.reply(&amqp.TxRollbackOk{})
	}
	// Connection-class methods on a channel, or methods only a server sends.
	return amqp.Errorf(amqp.CommandInvalid, "unimplemented method")
}

func (ch *channel) replyUnless(nowait bool, m amqp.Method) error {
	if nowait {
		return nil
	}
	return ch.reply(m)
}

// --- exchanges and queues ---

func (ch *channel) exchangeDeclare(m *amqp.ExchangeDeclare) error {
	if _, known := exchange.ParseKind(m.Type); known && !m.Passive && m.Exchange != "" {
		// As RabbitMQ: the type and the default exchange first (declareExchange), then configure on
		// the exchange, and for a new one with an alternate exchange read on it and write on that.
		c := ch.conn
		if err := c.checkAccess(accessConfigure, "exchange", m.Exchange); err != nil {
			return err
		}
		if ae, ok := m.Arguments["alternate-exchange"].(string); ok && ch.vhost().exchange(m.Exchange) == nil {
			if err := c.checkAccess(accessRead, "exchange", m.Exchange); err != nil {
				return err
			}
			if err := c.checkAccess(accessWrite, "exchange", ae); err != nil {
				return err
			}
		}
	}
	if err := ch.vhost().declareExchange(m); err != nil {
		return err
	}
	return ch.replyUnless(m.NoWait, &amqp.ExchangeDeclareOk{})
}

// exchangeBind runs exchange.bind and exchange.unbind in RabbitMQ 3.10's order of checks (see
// queueBind): permissions and the default exchange first; then bind reports a missing source
// before a missing destination, while unbind answers unbind-ok when either is missing.
func (ch *channel) exchangeBind(srcName, dstName, key string, args amqp.Table, bind, nowait bool) error {
	v := ch.vhost()
	if err := ch.checkBinding("exchange", dstName, srcName, key); err != nil {
		return err
	}
	src, dst := v.exchange(srcName), v.exchange(dstName)
	if bind {
		if src == nil {
			return v.errNoExchange(srcName)
		}
		if dst == nil {
			return v.errNoExchange(dstName)
		}
		if err := v.bind(srcName, dst, key, args, ch.conn); err != nil {
			return err
		}
		return ch.replyUnless(nowait, &amqp.ExchangeBindOk{})
	}
	if src != nil && dst != nil {
		if err := v.unbind(srcName, dst, key, args, ch.conn); err != nil {
			return err
		}
	}
	return ch.replyUnless(nowait, &amqp.ExchangeUnbindOk{})
}

// queueName resolves "" to the channel's last declared queue, as the spec allows.
func (ch *channel) queueName(name string) (string, error) {
	if name != "" {
		return name, nil
	}
	if ch.lastQueue == "" {
		return "", amqp.Errorf(amqp.NotFound, "no previously declared queue")
	}
	return ch.lastQueue, nil
}

// queueChecked resolves name as queueFor does, checking kind of access on the queue before looking
// it up (so a refused operation on a missing queue is 403, as in RabbitMQ).
func (ch *channel) queueChecked(name string, kind access) (*queue, error) {
	name, err := ch.queueName(name)
	if err != nil {
		return nil, err
	}
	if err := ch.conn.checkAccess(kind, "queue", name); err != nil {
		return nil, err
	}
	return ch.vhost().lookupQueue(ch.conn, name)
}

// checkBinding checks a bind or unbind as RabbitMQ does: write on the destination, the default
// exchange refused as either end, read on the source, then the topic permission on the key.
func (ch *channel) checkBinding(dstKind, dstName, srcName, key string) error {
	c := ch.conn
	if err := c.checkAccess(accessWrite, dstKind, dstName); err != nil {
		return err
	}
	if srcName == "" || (dstKind == "exchange" && dstName == "") {
		return errDefaultExchange
	}
	if err := c.checkAccess(accessRead, "exchange", srcName); err != nil {
		return err
	}
	return ch.checkTopicAccess(accessRead, srcName, key)
}

func (ch *channel) queueDeclare(m *amqp.QueueDeclare) error {
	if m.Passive && m.Queue == "" {
		name, err := ch.queueName("")
		if err != nil {
			return err
		}
		m.Queue = name
	}
	q, err := ch.vhost().declareQueue(ch.conn, m)
	if err != nil {
		return err
	}
	ch.lastQueue = q.name
	ready, consumers := q.declared() // a declare is a use (x-expires), with or without nowait
	if m.NoWait {
		return nil
	}
	return ch.reply(&amqp.QueueDeclareOk{Queue: q.name, MessageCount: ready, ConsumerCount: consumers})
}

// queueBind runs queue.bind and queue.unbind. The order of checks is RabbitMQ 3.10.8's
// (rabbit_channel:binding_action, rabbit_binding:add and remove), as observed on it:
//  1. write permission on the queue, the default exchange refused as either end (403), read
//     permission on the exchange, topic permission on the key (checkBinding);
//  2. bind: a missing exchange (404), then a missing queue (404), then invalid binding
//     arguments (406, x-match), then another connection's exclusive queue (405);
//  3. unbind: unbind-ok when the exchange, the queue or the binding does not exist; 405 only for
//     an existing binding to another connection's exclusive queue.
func (ch *channel) queueBind(qName, exName, key string, args amqp.Table, bind, nowait bool) error {
	name, err := ch.queueName(qName)
	if err != nil {
		return err
	}
	if err := ch.checkBinding("queue", name, exName, key); err != nil {
		return err
	}
	v := ch.vhost()
	src := v.exchange(exName)
	v.mu.RLock()
	q := v.mu.queues[name]
	v.mu.RUnlock()
	if bind {
		if src == nil {
			return v.errNoExchange(exName)
		}
		if q == nil {
			return v.errNoQueue(name)
		}
		if key == "" && qName == "" {
			key = q.name // spec: an empty key and queue name bind with the queue's name
		}
		if err := v.bind(exName, q, key, args, ch.conn); err != nil {
			return err
		}
		return ch.replyUnless(nowait, &amqp.QueueBindOk{})
	}
	if src != nil && q != nil {
		if err := v.unbind(exName, q, key, args, ch.conn); err != nil {
			return err
		}
	}
	return ch.reply(&amqp.QueueUnbindOk{})
}

func (ch *channel) queueDelete(m *amqp.QueueDelete) error {
	name, err := ch.queueName(m.Queue)
	if err != nil {
		return err
	}
	if err := ch.conn.checkAccess(accessConfigure, "queue", name); err != nil {
		return err
	}
	v := ch.vhost()
	q, err := v.lookupQueue(ch.conn, name)
	if err != nil {
		if ae := asAMQPError(err); ae.Code == amqp.NotFound {
			// RabbitMQ answers delete-ok for a queue that does not exist.
			return ch.replyUnless(m.NoWait, &amqp.QueueDeleteOk{})
		}
		return err
	}
	n, cancelled, err := v.removeQueue(q, m.IfUnused, m.IfEmpty)
	if err == nil {
		err = ch.replyUnless(m.NoWait, &amqp.QueueDeleteOk{MessageCount: n})
		ch.releaseHeld()
	}
	notifyCancelled(cancelled) // after delete-ok (and deliveries an ack just before freed), as RabbitMQ
	return err
}
