package server

import (
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/warrenmq/warren/amqp"
	"github.com/warrenmq/warren/stomp"
)

// STOMP subscriptions: SUBSCRIBE, UNSUBSCRIBE, ACK and NACK, and the subscription as a
// deliveryTarget (queue_consumers.go) that writes MESSAGE frames.

// stompSub is one SUBSCRIBE: its queue's consumer.
type stompSub struct {
	subscription // tag, noAck (ack:auto), args; target is the stompSub itself
	sc           *stompConn
	id           string // the id header (or the destination when there is none, as RabbitMQ)
	hasID        bool   // MESSAGE frames carry a subscription header
	prefix       string // message ids start with it: "T_<id>" ("Q_<destination>" without an id)
	q            *queue
	individual   bool // ack:client-individual (ack:client acknowledges cumulatively)
	prefetch     int  // prefetch-count; 0: unlimited
	durableTopic bool // a durable /topic or /exchange subscription: its queue outlives it
	unacked      int  // guarded by sc.mu
	gone         bool // guarded by sc.mu: takes no more deliveries
}

// stompDelivery is a MESSAGE sent for a client-ack subscription and not yet acknowledged.
type stompDelivery struct {
	tag uint64
	sub *stompSub
	e   *qentry
}

// deliver is deliveryTarget.deliver: a MESSAGE frame if the subscription has credit. Under q.mu.
func (s *stompSub) deliver(e *qentry, run *dispatchRun) bool {
	sc := s.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.mu.closed || s.gone || sc.out.full.Load() {
		return false
	}
	if !s.noAck && s.prefetch > 0 && s.unacked >= s.prefetch {
		return false
	}
	sc.mu.tag++
	tag := sc.mu.tag
	if !s.noAck {
		sc.mu.unacked = append(sc.mu.unacked, &stompDelivery{tag: tag, sub: s, e: e})
		s.unacked++
	}
	sc.out.writeVia(run.wb, func(b []byte) []byte { return s.appendMessage(b, tag, e) })
	return true
}

// queueDeleted is deliveryTarget.queueDeleted: the subscription takes no more messages. The
// client is not told (RabbitMQ's STOMP plugin does not tell it either).
func (s *stompSub) queueDeleted() bool {
	s.sc.mu.Lock()
	s.gone = true
	s.sc.mu.Unlock()
	return false
}

func (s *stompSub) cancelled()      {}
func (s *stompSub) deliversOn() any { return s.sc }
func (s *stompSub) describe(ci *ConsumerInfo) {
	ci.Prefetch = s.prefetch
	host, port := splitAddr(s.sc.nc.RemoteAddr())
	ci.Channel = ChannelRef{Name: s.sc.name + " (1)", ConnectionName: s.sc.name, User: s.sc.user.name, Number: 1, PeerHost: host, PeerPort: port}
}

// messageID is the message-id (and ack) header of delivery tag.
func (s *stompSub) messageID(tag uint64) string {
	return s.prefix + "@@" + s.sc.session + "@@" + strconv.FormatUint(tag, 10)
}

// appendMessage appends the MESSAGE frame for e with RabbitMQ's headers: subscription,
// destination, message-id, redelivered, ack (1.2, client acks), then the message's properties.
func (s *stompSub) appendMessage(b []byte, tag uint64, e *qentry) []byte {
	sc, m := s.sc, e.msg
	mid := s.messageID(tag)
	hs := make([]stomp.Header, 0, 12)
	if s.hasID {
		hs = append(hs, stomp.H("subscription", s.id))
	}
	hs = append(hs, stomp.H("destination", stompMessageDest(m.exchange, m.routingKey)), stomp.H("message-id", mid),
		stomp.H("redelivered", strconv.FormatBool(e.redelivered)))
	if !s.noAck && sc.v >= stomp.V12 {
		hs = append(hs, stomp.H("ack", mid))
	}
	base := len(hs)
	if p, err := amqp.DecodeProperties(m.props); err == nil {
		hs = appendPropertyHeaders(hs, &p)
	}
	f := stomp.Frame{Command: stomp.CmdMessage, Headers: hs, Body: m.body}
	nb, err := stomp.Append(b, f, sc.v)
	if err != nil {
		// A header this version cannot write (a newline in 1.0): without the properties.
		f.Headers = hs[:base]
		if nb, err = stomp.Append(b, f, sc.v); err != nil {
			sc.log.Error("encoding a STOMP MESSAGE", "err", err)
			return b
		}
	}
	return append(nb, '\n')
}

// kickAll asks the queues of every subscription to deliver again (the write loop took a full
// buffer). No lock held.
func (sc *stompConn) kickAll() {
	for _, s := range sc.subList() {
		s.q.kick([]*subscription{&s.subscription}, nil)
	}
}

// subList returns the live subscriptions (any goroutine).
func (sc *stompConn) subList() []*stompSub {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return slices.Clone(sc.mu.subs)
}

// subscribe handles SUBSCRIBE.
func (sc *stompConn) subscribe(f stomp.Frame) error {
	destB, ok := f.Get("destination")
	if !ok {
		return sc.fail(f, "Missing destination", "\"SUBSCRIBE\" must include a 'destination' header\n")
	}
	dest := string(destB)
	d, ok := parseStompDest(dest)
	if !ok {
		return sc.unknownDest(f, dest)
	}
	sub := &stompSub{sc: sc}
	if id, ok := f.Get("id"); ok {
		sub.id, sub.hasID, sub.prefix = string(id), true, "T_"+string(id)
	} else {
		sub.id, sub.prefix = dest, "Q_"+dest
	}
	if _, dup := sc.subs[sub.id]; dup {
		r, _ := f.Get("receipt")
		sc.errorFrame("Duplicated subscription identifier", fmt.Sprintf("A subscription identified by '%s' already exists.", sub.prefix), string(r))
		return errStompClose
	}
	switch ack, _ := f.Get("ack"); string(ack) {
	case "", "auto":
		sub.noAck = true
	case "client":
	case "client-individual":
		sub.individual = true
	default:
		return sc.fail(f, "Invalid header", fmt.Sprintf("Invalid ack mode '%s'\n", ack))
	}
	if pc, ok := f.Get("prefetch-count"); ok {
		n, err := strconv.Atoi(string(pc))
		if err != nil || n < 0 {
			return sc.fail(f, "Invalid header", fmt.Sprintf("Invalid prefetch-count '%s'\n", pc))
		}
		sub.prefetch = n
	}
	var q *queue
	var err error
	switch d.kind {
	case "/queue":
		q, err = sc.declareStompQueue(f, d.name)
	case "/amq/queue", "/reply-queue":
		q, err = sc.vhost.lookupQueue(sc.owner, d.name)
	case "/topic", "/exchange":
		q, err = sc.subscriptionQueue(f, d, sub)
	case "/temp-queue":
		return sc.fail(f, "Invalid destination", fmt.Sprintf("'%s' is not a valid destination for 'SUBSCRIBE'\n", dest))
	}
	if err != nil {
		return sc.failAMQP(f, err)
	}
	if err := sc.owner.checkAccess(accessRead, "queue", q.name); err != nil {
		return sc.failAMQP(f, err)
	}
	sub.q = q
	sub.subscription = subscription{tag: sub.prefix, target: sub, noAck: sub.noAck}
	sc.subs[sub.id] = sub
	sc.mu.Lock()
	sc.mu.subs = append(sc.mu.subs, sub)
	sc.mu.Unlock()
	if err := q.addConsumer(&sub.subscription, func() {}); err != nil {
		sc.forget(sub)
		return sc.failAMQP(f, err)
	}
	sc.receipt(f, nil)
	return nil
}

// subscriptionQueue declares and binds the queue of a /topic or /exchange subscription, as
// RabbitMQ does: named by x-queue-name, or "stomp-subscription-" and a hash of the CONNECT's
// client-id (RabbitMQ's hash is of an Erlang term: the names differ) and the subscription id for
// a durable subscription (durable:true, or persistent:true as STOMP 1.0 clients say it), or a
// random name.
func (sc *stompConn) subscriptionQueue(f stomp.Frame, d stompDest, sub *stompSub) (*queue, error) {
	durable := boolHeader(f, "durable", false) || boolHeader(f, "persistent", false)
	name := ""
	if n, ok := f.Get("x-queue-name"); ok {
		name = string(n)
	} else if durable {
		h := md5.Sum([]byte(sc.clientID + "\x00" + sub.id))
		name = "stomp-subscription-" + base64.RawURLEncoding.EncodeToString(h[:])
	} else {
		name = "stomp-subscription-" + randomSession()
	}
	sub.durableTopic = durable
	v := sc.vhost
	q, err := v.declareQueue(sc.owner, &amqp.QueueDeclare{
		// auto-delete defaults to true, durable or not, as in RabbitMQ 3.10.8 (checked on it): a
		// durable subscription that is to outlive its consumer says auto-delete:false.
		Queue: name, Durable: durable, AutoDelete: boolHeader(f, "auto-delete", true),
		Exclusive: boolHeader(f, "exclusive", false), Arguments: queueArgsFromHeaders(f),
	})
	if err != nil {
		return nil, err
	}
	// As queue.bind checks it: write on the queue, read on the exchange, the topic permission.
	if err := sc.owner.checkAccess(accessWrite, "queue", q.name); err != nil {
		return nil, err
	}
	if err := sc.owner.checkAccess(accessRead, "exchange", d.name); err != nil {
		return nil, err
	}
	if err := sc.srv.checkTopicAccess(sc.user, v, accessRead, d.name, d.key); err != nil {
		return nil, err
	}
	if err := v.bind(d.name, q, d.key, nil, sc.owner); err != nil {
		return nil, err
	}
	return q, nil
}

// forget drops sub from the connection's subscriptions; it takes no more deliveries.
func (sc *stompConn) forget(sub *stompSub) {
	delete(sc.subs, sub.id)
	sc.mu.Lock()
	sub.gone = true
	if i := slices.Index(sc.mu.subs, sub); i >= 0 {
		sc.mu.subs = slices.Delete(sc.mu.subs, i, i+1)
	}
	sc.mu.Unlock()
}

// detach ends sub: it leaves its queue, which is deleted if it was auto-delete and sub its last
// consumer, or if deleteDurable (UNSUBSCRIBE of a durable subscription with durable:true).
func (sc *stompConn) detach(sub *stompSub, deleteDurable bool) {
	sc.forget(sub)
	if sub.q.removeConsumer(&sub.subscription) || deleteDurable {
		sc.vhost.deleteQueue(sub.q, false, false)
	}
}

// unsubscribe handles UNSUBSCRIBE. Unacknowledged messages of the subscription stay
// unacknowledged until ACK, NACK or the connection's end, as an AMQP basic.cancel leaves them.
func (sc *stompConn) unsubscribe(f stomp.Frame) error {
	id, ok := f.Get("id")
	if !ok {
		id, ok = f.Get("destination") // 1.0
	}
	if !ok {
		return sc.fail(f, "Missing Header", "UNSUBSCRIBE must include an 'id' header\n")
	}
	sub := sc.subs[string(id)]
	if sub == nil {
		return sc.fail(f, "No subscription found", fmt.Sprintf("UNSUBSCRIBE must refer to an existing subscription.\nSubscription to \"id='%s'\" not found.\n", id))
	}
	deleteDurable := sub.durableTopic && (boolHeader(f, "durable", false) || boolHeader(f, "persistent", false))
	sc.detach(sub, deleteDurable)
	sc.receipt(f, nil)
	return nil
}

// ackFrame handles ACK and NACK (requeue:false dead-letters or drops; the default requeues).
// With ack:client an ACK covers every earlier unacknowledged message of its subscription.
func (sc *stompConn) ackFrame(f stomp.Frame) error {
	if tx, ok := f.Get("transaction"); ok && !sc.committing {
		return sc.holdInTx(f, string(tx))
	}
	idName := "id"
	if sc.v < stomp.V12 {
		idName = "message-id"
	}
	idB, _ := f.Get(idName)
	tag, ok := parseStompAckID(string(idB))
	if !ok {
		return sc.fail(f, "Invalid header", fmt.Sprintf("%q must include a valid %q header\n", f.Command, idName))
	}
	sc.mu.Lock()
	u := sc.mu.unacked
	i, found := slices.BinarySearchFunc(u, tag, func(d *stompDelivery, t uint64) int { return cmpU64(d.tag, t) })
	if !found {
		sc.mu.Unlock()
		// Never delivered, or already settled: RabbitMQ's channel refuses the ack and closes.
		return sc.failAMQP(f, amqp.Errorf(amqp.PreconditionFailed, "unknown delivery tag %d", tag))
	}
	sub := u[i].sub
	var taken []*stompDelivery
	if sub.individual {
		taken = []*stompDelivery{u[i]}
		sc.mu.unacked = slices.Delete(u, i, i+1)
	} else {
		kept := u[:0]
		for j, d := range u {
			if d.sub == sub && j <= i {
				taken = append(taken, d)
			} else {
				kept = append(kept, d)
			}
		}
		clear(u[len(kept):])
		sc.mu.unacked = kept
	}
	sub.unacked -= len(taken)
	sc.mu.Unlock()

	es := make([]*qentry, len(taken))
	for j, d := range taken {
		es[j] = d.e
	}
	switch {
	case f.Command == stomp.CmdAck:
		sub.q.settle(es)
	case boolHeader(f, "requeue", true):
		sub.q.requeue(es)
	default:
		sub.q.reject(es)
	}
	sub.q.kick([]*subscription{&sub.subscription}, &sc.wb)
	sc.receipt(f, nil)
	return nil
}

// parseStompAckID takes the delivery tag from a message id "<prefix>@@<session>@@<tag>".
func parseStompAckID(id string) (uint64, bool) {
	i := strings.LastIndex(id, "@@")
	if i < 0 {
		return 0, false
	}
	tag, err := strconv.ParseUint(id[i+2:], 10, 64)
	return tag, err == nil
}

// requeueStompDeliveries returns unacknowledged messages to their queues (the connection ended).
func requeueStompDeliveries(ds []*stompDelivery) {
	byQueue := map[*queue][]*qentry{}
	var order []*queue
	for _, d := range ds {
		q := d.sub.q
		if _, ok := byQueue[q]; !ok {
			order = append(order, q)
		}
		byQueue[q] = append(byQueue[q], d.e)
	}
	for _, q := range order {
		q.requeue(byQueue[q])
	}
}
