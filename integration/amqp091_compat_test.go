package integration

// Edge cases where Warren must answer exactly as RabbitMQ 3.10.8 does (issue 13). Each test was first
// run against RabbitMQ (WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5672/) to see its reply: code,
// text, the class and method ids, the order of frames, deliveries and their flags, counts. Where the
// order of frames or the failing method's ids matter, the tests speak raw AMQP (wire_codec_test.go).

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Method encoders the compat tests need beyond wire_codec_test.go's.

func wireQueueBind(ch uint16, queue, exchange, key string, args *wireEnc) []byte {
	if args == nil {
		args = wireArgs().table()
	}
	a := wireArgs().short(0).shortstr(queue).shortstr(exchange).shortstr(key).bits(false).raw(args.b)
	return wireMethodFrame(ch, wireQueue, 20, a)
}

func wireQueueUnbind(ch uint16, queue, exchange, key string, args *wireEnc) []byte {
	if args == nil {
		args = wireArgs().table()
	}
	a := wireArgs().short(0).shortstr(queue).shortstr(exchange).shortstr(key).raw(args.b)
	return wireMethodFrame(ch, wireQueue, 50, a)
}

func wireQueuePurge(ch uint16, queue string) []byte {
	return wireMethodFrame(ch, wireQueue, 30, wireArgs().short(0).shortstr(queue).bits(false))
}

func wireQueueDelete(ch uint16, queue string, ifUnused, ifEmpty bool) []byte {
	return wireMethodFrame(ch, wireQueue, 40, wireArgs().short(0).shortstr(queue).bits(ifUnused, ifEmpty, false))
}

// wireQueueDeclareFull declares a queue with every flag given.
func wireQueueDeclareFull(ch uint16, name string, passive, durable, exclusive, autoDelete bool, args *wireEnc) []byte {
	if args == nil {
		args = wireArgs().table()
	}
	a := wireArgs().short(0).shortstr(name).bits(passive, durable, exclusive, autoDelete, false).raw(args.b)
	return wireMethodFrame(ch, wireQueue, 10, a)
}

func wireExchangeDeclare(ch uint16, name, kind string, passive bool) []byte {
	a := wireArgs().short(0).shortstr(name).shortstr(kind).bits(passive, false, false, false, false).table()
	return wireMethodFrame(ch, wireExchange, 10, a)
}

func wireExchangeBind(ch uint16, dst, src, key string, args *wireEnc) []byte {
	if args == nil {
		args = wireArgs().table()
	}
	a := wireArgs().short(0).shortstr(dst).shortstr(src).shortstr(key).bits(false).raw(args.b)
	return wireMethodFrame(ch, wireExchange, 30, a)
}

func wireExchangeUnbind(ch uint16, dst, src, key string, args *wireEnc) []byte {
	if args == nil {
		args = wireArgs().table()
	}
	a := wireArgs().short(0).shortstr(dst).shortstr(src).shortstr(key).bits(false).raw(args.b)
	return wireMethodFrame(ch, wireExchange, 40, a)
}

func wireBasicNack(ch uint16, tag uint64, multiple, requeue bool) []byte {
	return wireMethodFrame(ch, wireBasic, 120, wireArgs().longlong(tag).bits(multiple, requeue))
}

func wireBasicRecover(ch uint16) []byte {
	return wireMethodFrame(ch, wireBasic, 110, wireArgs().bits(true))
}

func wireBasicQos(ch uint16, count uint16) []byte {
	return wireMethodFrame(ch, wireBasic, 10, wireArgs().long(0).short(count).bits(false))
}

func wireTxSelect(ch uint16) []byte   { return wireMethodFrame(ch, wireTx, 10, nil) }
func wireTxCommit(ch uint16) []byte   { return wireMethodFrame(ch, wireTx, 20, nil) }
func wireTxRollback(ch uint16) []byte { return wireMethodFrame(ch, wireTx, 30, nil) }

// compatCase is one method sent on a fresh channel of a raw connection, and RabbitMQ's answer to it:
// the reply method (ok) or a channel.close (closed).
type compatCase struct {
	name   string
	send   func(ch uint16) []byte
	ok     [2]uint16     // class and method of the reply, if closed is zero
	closed wireCloseInfo // the channel.close expected
}

// compatRun runs each case on a new channel of w, in order.
func compatRun(t *testing.T, w *wireConn, first uint16, cases []compatCase) {
	t.Helper()
	for i, c := range cases {
		ch := first + uint16(i)
		w.openChannel(ch)
		w.send(c.send(ch))
		if c.closed.Code != 0 {
			w.expectChannelClose(ch, c.closed)
			continue
		}
		f := w.next()
		if f.Channel != ch || !f.Is(c.ok[0], c.ok[1]) {
			t.Fatalf("%s: got %v, want ch %d method %d.%d", c.name, f, ch, c.ok[0], c.ok[1])
		}
	}
}

// compatLocked is RabbitMQ's 405 text for another connection's exclusive queue, cut as RabbitMQ cuts
// a reply text longer than 255 octets (252 and "...").
func compatLocked(q string) string {
	s := compatLockedText(q)
	if len(s) > 255 {
		s = s[:252] + "..."
	}
	return s
}

func compatLockedText(q string) string {
	return "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '" + q + "' in vhost '/'. " +
		"It could be originally declared on another connection or the exclusive property value does not " +
		"match that of the original declaration."
}

func compatNoQueue(q string) string    { return "NOT_FOUND - no queue '" + q + "' in vhost '/'" }
func compatNoExchange(x string) string { return "NOT_FOUND - no exchange '" + x + "' in vhost '/'" }

const compatDefaultExchange = "ACCESS_REFUSED - operation not permitted on the default exchange"

// Item 1: queue.unbind and exchange.unbind are idempotent: unbind-ok when the binding, the queue or
// either exchange does not exist. The default exchange is still refused (403).
func TestCompatUnbindIdempotent(t *testing.T) {
	b := startBroker(t)
	conn := amqpDial(t, b)
	ach := amqpChannel(t, conn)
	q := amqpQueue(t, b, ach, "q")
	x := amqpExchange(t, b, ach, "direct", "x")
	noQ, noX, noX2 := amqpName(t, "noq"), amqpName(t, "nox"), amqpName(t, "nox2")
	if err := ach.QueueBind(q, "k", x, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ach.ExchangeBind(x, "k", "amq.direct", false, nil); err != nil {
		t.Fatal(err)
	}
	unbindOK := [2]uint16{wireQueue, 51}
	xUnbindOK := [2]uint16{wireExchange, 51}
	w := wireHandshake(t, b)
	compatRun(t, w, 1, []compatCase{
		{name: "queue.unbind, no such binding", send: func(c uint16) []byte { return wireQueueUnbind(c, q, x, "other", nil) }, ok: unbindOK},
		{name: "queue.unbind, no such queue", send: func(c uint16) []byte { return wireQueueUnbind(c, noQ, x, "k", nil) }, ok: unbindOK},
		{name: "queue.unbind, no such exchange", send: func(c uint16) []byte { return wireQueueUnbind(c, q, noX, "k", nil) }, ok: unbindOK},
		{name: "queue.unbind, neither", send: func(c uint16) []byte { return wireQueueUnbind(c, noQ, noX, "k", nil) }, ok: unbindOK},
		{name: "queue.unbind from the default exchange", send: func(c uint16) []byte { return wireQueueUnbind(c, noQ, "", "k", nil) },
			closed: wireHard(403, compatDefaultExchange, wireQueue, 50)},
		{name: "exchange.unbind, no such binding", send: func(c uint16) []byte { return wireExchangeUnbind(c, x, "amq.direct", "other", nil) }, ok: xUnbindOK},
		{name: "exchange.unbind, no such source", send: func(c uint16) []byte { return wireExchangeUnbind(c, x, noX, "k", nil) }, ok: xUnbindOK},
		{name: "exchange.unbind, no such destination", send: func(c uint16) []byte { return wireExchangeUnbind(c, noX, "amq.direct", "k", nil) }, ok: xUnbindOK},
		{name: "exchange.unbind, neither", send: func(c uint16) []byte { return wireExchangeUnbind(c, noX, noX2, "k", nil) }, ok: xUnbindOK},
		{name: "exchange.unbind to the default exchange", send: func(c uint16) []byte { return wireExchangeUnbind(c, "", "amq.direct", "k", nil) },
			closed: wireHard(403, compatDefaultExchange, wireExchange, 40)},
		{name: "exchange.unbind from the default exchange", send: func(c uint16) []byte { return wireExchangeUnbind(c, x, "", "k", nil) },
			closed: wireHard(403, compatDefaultExchange, wireExchange, 40)},
		// The existing bindings were left alone, and unbinding them still works.
		{name: "queue.unbind of the binding", send: func(c uint16) []byte { return wireQueueUnbind(c, q, x, "k", nil) }, ok: unbindOK},
		{name: "exchange.unbind of the binding", send: func(c uint16) []byte { return wireExchangeUnbind(c, x, "amq.direct", "k", nil) }, ok: xUnbindOK},
	})
	w.closeConnection()
	// Both bindings are gone now: a message from amq.direct reaches nothing.
	amqpPublish(t, ach, "amq.direct", "k", "unrouted")
	amqpPublish(t, ach, x, "k", "unrouted")
	amqpGetEmpty(t, ach, q)
}

// Item 2: unbinding another connection's exclusive queue answers unbind-ok when the binding does not
// exist, and 405 when it does (the binding stays).
func TestCompatUnbindOtherExclusive(t *testing.T) {
	b := startBroker(t)
	owner := amqpDial(t, b)
	och := amqpChannel(t, owner)
	xq := amqpName(t, "excl")
	if _, err := och.QueueDeclare(xq, false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}
	hx := amqpExchange(t, b, och, "headers", "hx")
	if err := och.QueueBind(xq, "k", "amq.direct", false, nil); err != nil {
		t.Fatal(err)
	}
	w := wireHandshake(t, b)
	compatRun(t, w, 1, []compatCase{
		{name: "no such binding", send: func(c uint16) []byte { return wireQueueUnbind(c, xq, "amq.direct", "other", nil) }, ok: [2]uint16{wireQueue, 51}},
		{name: "no such binding, invalid x-match", send: func(c uint16) []byte {
			return wireQueueUnbind(c, xq, hx, "", wireArgs().table(wireField{"x-match", "bogus"}))
		}, ok: [2]uint16{wireQueue, 51}},
		{name: "the binding", send: func(c uint16) []byte { return wireQueueUnbind(c, xq, "amq.direct", "k", nil) },
			closed: wireHard(405, compatLocked(xq), wireQueue, 50)},
	})
	w.closeConnection()
	// The binding is still there.
	other := amqpDial(t, b)
	amqpPublish(t, amqpConfirmChannel(t, other), "amq.direct", "k", "still bound")
	if m := amqpGet(t, och, xq, true); string(m.Body) != "still bound" {
		t.Fatalf("got %q", m.Body)
	}
}

// Item 3: the order of checks on queue.declare, queue.bind, queue.unbind, exchange.bind,
// queue.delete and queue.purge, as RabbitMQ 3.10.8 makes them (see the comments on
// vhost.declareQueue and channel.queueBind).
func TestCompatCheckOrder(t *testing.T) {
	b := startBroker(t)
	owner := amqpDial(t, b)
	och := amqpChannel(t, owner)
	xq := amqpName(t, "excl") // exclusive to owner
	if _, err := och.QueueDeclare(xq, false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}
	q := amqpQueue(t, b, och, "q")
	hx := amqpExchange(t, b, och, "headers", "hx")
	noQ, noX, noX2 := amqpName(t, "noq"), amqpName(t, "nox"), amqpName(t, "nox2")
	newQ := amqpName(t, "new")
	badXMatch := func() *wireEnc { return wireArgs().table(wireField{"x-match", "bogus"}) }
	badTTL := func() *wireEnc { return wireArgs().table(wireField{"x-message-ttl", int32(-5)}) }
	const xMatchText = "PRECONDITION_FAILED - Invalid x-match field value <<\"bogus\">>; expected all, any, all-with-x, or any-with-x"

	// A consumer on another connection holds q's first message (prefetch 1); a second one is ready.
	cconn := amqpDial(t, b)
	cch := amqpConfirmChannel(t, cconn)
	if err := cch.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	amqpPublish(t, cch, "", q, "m1")
	amqpPublish(t, cch, "", q, "m2")
	amqpRecv(t, amqpConsume(t, cch, q, false))

	w := wireHandshake(t, b)
	// The connection's own exclusive queue and a server-named one.
	w.openChannel(1)
	own := amqpName(t, "own")
	w.send(wireQueueDeclareFull(1, own, false, false, true, false, nil))
	w.expect(1, wireQueue, 11)
	w.send(wireQueueDeclareFull(1, "", false, false, true, false, nil))
	gen := wireArgsOf(w.expect(1, wireQueue, 11)).shortstr()

	declare := func(c uint16, name string, durable, exclusive bool, args *wireEnc) []byte {
		return wireQueueDeclareFull(c, name, false, durable, exclusive, false, args)
	}
	inequivalent := func(name, arg, got, cur string) string {
		return fmt.Sprintf("PRECONDITION_FAILED - inequivalent arg '%s' for queue '%s' in vhost '/': received %s but current is %s", arg, name, got, cur)
	}
	compatRun(t, w, 2, []compatCase{
		// queue.declare: exclusivity before arguments and properties, for another connection's queue
		// and for the connection's own one declared with exclusive=false.
		{name: "declare other's exclusive, invalid arguments", send: func(c uint16) []byte { return declare(c, xq, false, true, badTTL()) },
			closed: wireHard(405, compatLocked(xq), wireQueue, 10)},
		{name: "declare other's exclusive, string ttl", send: func(c uint16) []byte {
			return declare(c, xq, false, false, wireArgs().table(wireField{"x-message-ttl", "bogus"}))
		}, closed: wireHard(405, compatLocked(xq), wireQueue, 10)},
		{name: "declare other's exclusive, durable differs", send: func(c uint16) []byte { return declare(c, xq, true, false, nil) },
			closed: wireHard(405, compatLocked(xq), wireQueue, 10)},
		{name: "declare own exclusive as not exclusive, durable differs", send: func(c uint16) []byte { return declare(c, own, true, false, nil) },
			closed: wireHard(405, compatLocked(own), wireQueue, 10)},
		{name: "declare non-exclusive as exclusive, durable differs", send: func(c uint16) []byte { return declare(c, q, true, true, nil) },
			closed: wireHard(405, compatLocked(q), wireQueue, 10)},
		{name: "passive declare of other's exclusive", send: func(c uint16) []byte {
			return wireQueueDeclareFull(c, xq, true, false, false, false, badTTL())
		}, closed: wireHard(405, compatLocked(xq), wireQueue, 10)},
		// An existing queue's arguments are compared, not validated; durable comes first.
		{name: "redeclare with an invalid argument", send: func(c uint16) []byte { return declare(c, q, false, false, badTTL()) },
			closed: wireHard(406, inequivalent(q, "x-message-ttl", "the value '-5' of type 'signedint'", "none"), wireQueue, 10)},
		{name: "redeclare with durable differing and an invalid argument", send: func(c uint16) []byte { return declare(c, q, true, false, badTTL()) },
			closed: wireHard(406, inequivalent(q, "durable", "'true'", "'false'"), wireQueue, 10)},
		// The reserved prefix is refused first, even for an existing queue.
		{name: "redeclare a server-named queue by name", send: func(c uint16) []byte { return declare(c, gen, false, true, nil) },
			closed: wireHard(403, "ACCESS_REFUSED - queue name '"+gen+"' contains reserved prefix 'amq.*'", wireQueue, 10)},
		{name: "declare amq.* with invalid arguments", send: func(c uint16) []byte { return declare(c, "amq."+newQ, false, false, badTTL()) },
			closed: wireHard(403, "ACCESS_REFUSED - queue name 'amq."+newQ+"' contains reserved prefix 'amq.*'", wireQueue, 10)},
		// A new queue: the type first, then the arguments in RabbitMQ's order, whatever the order on the wire.
		{name: "declare with invalid ttl and type", send: func(c uint16) []byte {
			return declare(c, newQ, false, false, wireArgs().table(wireField{"x-message-ttl", int32(-5)}, wireField{"x-queue-type", "bogus"}))
		}, closed: wireHard(406, "PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue '"+newQ+"' in vhost '/': \"unsupported queue type 'bogus'\"", wireQueue, 10)},
		{name: "declare with invalid max-length and ttl", send: func(c uint16) []byte {
			return declare(c, newQ, false, false, wireArgs().table(wireField{"x-max-length", int32(-1)}, wireField{"x-message-ttl", int32(-5)}))
		}, closed: wireHard(406, "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue '"+newQ+"' in vhost '/': {value_negative,-5}", wireQueue, 10)},
		{name: "declare with an invalid type and dead-letter exchange", send: func(c uint16) []byte {
			return declare(c, newQ, false, false, wireArgs().table(wireField{"x-queue-type", "bogus"}, wireField{"x-dead-letter-exchange", int32(1)}))
		}, closed: wireHard(406, "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue '"+newQ+"' in vhost '/'", wireQueue, 10)},
		{name: "declare with an invalid overflow and single-active-consumer", send: func(c uint16) []byte {
			return declare(c, newQ, false, false, wireArgs().table(wireField{"x-single-active-consumer", "x"}, wireField{"x-overflow", "bogus"}))
		}, closed: wireHard(406, "PRECONDITION_FAILED - invalid arg 'x-overflow' for queue '"+newQ+"' in vhost '/': invalid_overflow", wireQueue, 10)},
		{name: "declare with invalid max-priority and expires", send: func(c uint16) []byte {
			return declare(c, newQ, false, false, wireArgs().table(wireField{"x-max-priority", int32(-1)}, wireField{"x-expires", int32(0)}))
		}, closed: wireHard(406, "PRECONDITION_FAILED - invalid arg 'x-expires' for queue '"+newQ+"' in vhost '/': {value_zero,0}", wireQueue, 10)},

		// queue.bind: the exchange, then the queue, then the arguments, then exclusivity.
		{name: "bind other's exclusive, invalid x-match", send: func(c uint16) []byte { return wireQueueBind(c, xq, hx, "", badXMatch()) },
			closed: wireHard(406, xMatchText, wireQueue, 20)},
		{name: "bind other's exclusive", send: func(c uint16) []byte { return wireQueueBind(c, xq, hx, "", nil) },
			closed: wireHard(405, compatLocked(xq), wireQueue, 20)},
		{name: "bind, neither queue nor exchange", send: func(c uint16) []byte { return wireQueueBind(c, noQ, noX, "k", nil) },
			closed: wireHard(404, compatNoExchange(noX), wireQueue, 20)},
		{name: "bind, no queue, invalid x-match", send: func(c uint16) []byte { return wireQueueBind(c, noQ, hx, "", badXMatch()) },
			closed: wireHard(404, compatNoQueue(noQ), wireQueue, 20)},
		{name: "exchange.bind, neither exchange", send: func(c uint16) []byte { return wireExchangeBind(c, noX, noX2, "k", nil) },
			closed: wireHard(404, compatNoExchange(noX2), wireExchange, 30)},
		{name: "exchange.bind, no destination", send: func(c uint16) []byte { return wireExchangeBind(c, noX, "amq.direct", "k", nil) },
			closed: wireHard(404, compatNoExchange(noX), wireExchange, 30)},
		// queue.unbind: a missing binding to another's exclusive queue is fine, whatever its arguments.
		{name: "unbind other's exclusive, invalid x-match", send: func(c uint16) []byte { return wireQueueUnbind(c, xq, hx, "", badXMatch()) },
			ok: [2]uint16{wireQueue, 51}},

		// queue.delete: a missing queue is deleted; exclusivity before if-empty and if-unused;
		// if-empty before if-unused.
		{name: "delete missing, if-unused if-empty", send: func(c uint16) []byte { return wireQueueDelete(c, noQ, true, true) },
			ok: [2]uint16{wireQueue, 41}},
		{name: "delete other's exclusive, if-unused if-empty", send: func(c uint16) []byte { return wireQueueDelete(c, xq, true, true) },
			closed: wireHard(405, compatLocked(xq), wireQueue, 40)},
		{name: "delete used non-empty, if-unused if-empty", send: func(c uint16) []byte { return wireQueueDelete(c, q, true, true) },
			closed: wireHard(406, "PRECONDITION_FAILED - queue '"+q+"' in vhost '/' not empty", wireQueue, 40)},
		{name: "delete used non-empty, if-unused", send: func(c uint16) []byte { return wireQueueDelete(c, q, true, false) },
			closed: wireHard(406, "PRECONDITION_FAILED - queue '"+q+"' in vhost '/' in use", wireQueue, 40)},
		// queue.purge: the queue missing, then exclusivity.
		{name: "purge missing", send: func(c uint16) []byte { return wireQueuePurge(c, noQ) },
			closed: wireHard(404, compatNoQueue(noQ), wireQueue, 30)},
		{name: "purge other's exclusive", send: func(c uint16) []byte { return wireQueuePurge(c, xq) },
			closed: wireHard(405, compatLocked(xq), wireQueue, 30)},
	})
	w.closeConnection()
}

// Item 6: exchange.declare of the default exchange is refused with 403 even when passive; a
// non-passive one with an unknown type is a connection error (503) before that.
func TestCompatDeclareDefaultExchange(t *testing.T) {
	b := startBroker(t)
	w := wireHandshake(t, b)
	compatRun(t, w, 1, []compatCase{
		{name: "passive", send: func(c uint16) []byte { return wireExchangeDeclare(c, "", "direct", true) },
			closed: wireHard(403, compatDefaultExchange, wireExchange, 10)},
		{name: "passive, unknown type", send: func(c uint16) []byte { return wireExchangeDeclare(c, "", "bogus", true) },
			closed: wireHard(403, compatDefaultExchange, wireExchange, 10)},
		{name: "not passive", send: func(c uint16) []byte { return wireExchangeDeclare(c, "", "direct", false) },
			closed: wireHard(403, compatDefaultExchange, wireExchange, 10)},
		{name: "passive amq.direct", send: func(c uint16) []byte { return wireExchangeDeclare(c, "amq.direct", "direct", true) },
			ok: [2]uint16{wireExchange, 11}},
	})
	w.openChannel(9)
	w.send(wireExchangeDeclare(9, "", "bogus", false))
	w.expectConnectionClose(wireHard(503, "COMMAND_INVALID - unknown exchange type 'bogus'", wireExchange, 10))
}

var _ = amqp.Table{}

// compatPublish publishes n messages "m1".."mn" to q through a confirm channel of conn, so they are
// in the queue when it returns.
func compatPublish(t *testing.T, conn *amqp.Connection, q string, n int) {
	t.Helper()
	var bodies []string
	for i := 1; i <= n; i++ {
		bodies = append(bodies, fmt.Sprint("m", i))
	}
	compatPublishBodies(t, conn, q, bodies...)
}

// compatPublishBodies publishes bodies to q through a confirm channel of conn.
func compatPublishBodies(t *testing.T, conn *amqp.Connection, q string, bodies ...string) {
	t.Helper()
	ch := amqpConfirmChannel(t, conn)
	defer ch.Close()
	for _, body := range bodies {
		amqpPublish(t, ch, "", q, body)
	}
}

// compatGet fetches one message with basic.get (ack required) on ch and returns its delivery tag
// and redelivered flag.
func compatGet(t *testing.T, w *wireConn, ch uint16, q string) (tag uint64, redelivered bool) {
	t.Helper()
	w.send(wireBasicGet(ch, q, false))
	d := wireArgsOf(w.expect(ch, wireBasic, 71))
	tag, redelivered = d.longlong(), d.octet() != 0
	if h := w.next(); h.Type != wireFrameHeader {
		t.Fatalf("got %v, want a content header", h)
	}
	if b := w.next(); b.Type != wireFrameBody {
		t.Fatalf("got %v, want a body frame", b)
	}
	return tag, redelivered
}

// compatSync sends basic.qos on ch and expects qos-ok as the next frame: whatever ch was sent
// before it had no answer and did not close the channel.
func compatSync(t *testing.T, w *wireConn, ch uint16) {
	t.Helper()
	w.send(wireBasicQos(ch, 0))
	w.expect(ch, wireBasic, 11)
}

// compatCloseChannel closes ch from the client; the broker has requeued its unacked messages when
// close-ok arrives.
func compatCloseChannel(t *testing.T, w *wireConn, ch uint16) {
	t.Helper()
	w.send(wireChannelClose(ch, 200, "bye", 0, 0))
	w.expect(ch, wireChannel, 41)
}

// compatWaitReady waits until q has want ready messages. After a channel error RabbitMQ requeues
// the channel's unacked messages shortly after its channel.close.
func compatWaitReady(t *testing.T, conn *amqp.Connection, q string, want int) {
	t.Helper()
	deadline := time.Now().Add(amqpTimeout)
	for {
		n, _ := amqpReady(t, conn, q)
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s has %d ready messages, want %d", q, n, want)
		}
		runtime.Gosched()
	}
}

func compatUnknownTag(tag uint64, method uint16) wireCloseInfo {
	return wireHard(406, fmt.Sprintf("PRECONDITION_FAILED - unknown delivery tag %d", tag), wireBasic, method)
}

// Item 4: basic.ack and basic.nack with delivery tag 0 and multiple=true settle every outstanding
// delivery; with none outstanding there is no reply and the channel stays open. Tag 0 without
// multiple is an unknown tag.
func TestCompatAckAllTagZero(t *testing.T) {
	b := startBroker(t)
	conn := amqpDial(t, b)
	q := amqpQueue(t, b, amqpChannel(t, conn), "q")
	w := wireHandshake(t, b)
	w.openChannel(1)
	compatPublish(t, conn, q, 3)
	for range 3 {
		compatGet(t, w, 1, q)
	}
	w.send(wireBasicAck(1, 0, true))
	compatSync(t, w, 1)
	w.send(wireBasicAck(1, 0, true), wireBasicNack(1, 0, true, true), wireBasicNack(1, 0, true, false))
	compatSync(t, w, 1)
	compatCloseChannel(t, w, 1) // would requeue what the acks left unacked
	if n, _ := amqpReady(t, conn, q); n != 0 {
		t.Fatalf("%d messages back in the queue after ack 0 multiple, want 0", n)
	}

	// nack 0 multiple requeue=true requeues all of them.
	w.openChannel(2)
	compatPublish(t, conn, q, 2)
	compatGet(t, w, 2, q)
	compatGet(t, w, 2, q)
	w.send(wireBasicNack(2, 0, true, true))
	compatSync(t, w, 2)
	if n, _ := amqpReady(t, conn, q); n != 2 {
		t.Fatalf("%d messages ready after nack 0 multiple requeue, want 2", n)
	}
	for range 2 {
		if _, red := compatGet(t, w, 2, q); !red {
			t.Fatal("a requeued message came back not redelivered")
		}
	}
	// Tag 0 without multiple names no delivery.
	w.send(wireBasicAck(2, 0, false))
	w.expectChannelClose(2, compatUnknownTag(0, 80))
	compatWaitReady(t, conn, q, 2)
	w.closeConnection()
}

// Item 5: basic.ack and basic.nack with multiple=true and a tag that is not an outstanding delivery
// (never delivered, already settled, above or below the outstanding ones) close the channel with
// 406 "unknown delivery tag N" and settle nothing.
func TestCompatAckMultipleUnknownTag(t *testing.T) {
	b := startBroker(t)
	conn := amqpDial(t, b)
	q := amqpQueue(t, b, amqpChannel(t, conn), "q")
	w := wireHandshake(t, b)
	for i, c := range []struct {
		name   string
		get    int
		send   func(ch uint16) []byte
		closed wireCloseInfo
	}{
		{"ack above the outstanding", 2, func(ch uint16) []byte { return wireBasicAck(ch, 5, true) }, compatUnknownTag(5, 80)},
		{"nack above the outstanding", 2, func(ch uint16) []byte { return wireBasicNack(ch, 5, true, false) }, compatUnknownTag(5, 120)},
		{"ack of a settled tag between", 3, func(ch uint16) []byte {
			return append(wireBasicAck(ch, 2, false), wireBasicAck(ch, 2, true)...)
		}, compatUnknownTag(2, 80)},
		{"nack of a settled tag below", 3, func(ch uint16) []byte {
			return append(wireBasicAck(ch, 1, false), wireBasicNack(ch, 1, true, false)...)
		}, compatUnknownTag(1, 120)},
	} {
		ch := uint16(i + 1)
		t.Logf("%s", c.name)
		w.openChannel(ch)
		compatPublish(t, conn, q, c.get)
		for range c.get {
			compatGet(t, w, ch, q)
		}
		w.send(c.send(ch))
		w.expectChannelClose(ch, c.closed)
		// Two deliveries were outstanding when the error came: both are requeued, none settled.
		compatWaitReady(t, conn, q, 2)
		if _, err := amqpChannel(t, conn).QueuePurge(q, false); err != nil {
			t.Fatal(err)
		}
	}
	w.closeConnection()
}

// Item 7: in a transaction an ack of an unknown tag (a tag never delivered, or acked already in the
// same transaction) closes the channel at once, before tx.commit, which gets no commit-ok; an ack
// taken back by tx.rollback can be acked again.
func TestCompatTxInvalidAck(t *testing.T) {
	b := startBroker(t)
	conn := amqpDial(t, b)
	q := amqpQueue(t, b, amqpChannel(t, conn), "q")
	w := wireHandshake(t, b)
	for i, c := range []struct {
		name   string
		send   func(ch uint16) []byte
		closed wireCloseInfo
	}{
		{"ack multiple of a tag never delivered", func(ch uint16) []byte { return wireBasicAck(ch, 5, true) }, compatUnknownTag(5, 80)},
		{"ack twice", func(ch uint16) []byte { return append(wireBasicAck(ch, 1, false), wireBasicAck(ch, 1, false)...) }, compatUnknownTag(1, 80)},
		{"ack all, then one", func(ch uint16) []byte { return append(wireBasicAck(ch, 0, true), wireBasicNack(ch, 2, false, true)...) }, compatUnknownTag(2, 120)},
	} {
		ch := uint16(i + 1)
		t.Logf("%s", c.name)
		w.openChannel(ch)
		w.send(wireTxSelect(ch))
		w.expect(ch, wireTx, 11)
		compatPublish(t, conn, q, 2)
		compatGet(t, w, ch, q)
		compatGet(t, w, ch, q)
		w.send(append(c.send(ch), wireTxCommit(ch)...))
		w.expectChannelClose(ch, c.closed)
		compatWaitReady(t, conn, q, 2) // nothing acked
		if _, err := amqpChannel(t, conn).QueuePurge(q, false); err != nil {
			t.Fatal(err)
		}
	}

	// Rollback gives the ack back; the second ack commits.
	w.openChannel(9)
	w.send(wireTxSelect(9))
	w.expect(9, wireTx, 11)
	compatPublish(t, conn, q, 2)
	compatGet(t, w, 9, q)
	compatGet(t, w, 9, q)
	w.send(wireBasicAck(9, 1, false), wireTxRollback(9), wireBasicAck(9, 1, false), wireTxCommit(9))
	w.expect(9, wireTx, 31)
	w.expect(9, wireTx, 21)
	// An ack held by an uncommitted transaction is dropped with the channel: tag 2 comes back.
	w.send(wireBasicAck(9, 2, false))
	compatCloseChannel(t, w, 9)
	if n, _ := amqpReady(t, conn, q); n != 1 {
		t.Fatalf("%d messages ready, want 1 (tag 1 acked and committed, tag 2's ack not committed)", n)
	}
	w.closeConnection()
}

// compatCancelTag decodes a basic.cancel from the broker.
func compatCancelTag(f wireFrame) string { return wireArgsOf(f).shortstr() }

// Item 11: queue.delete of a queue with consumers answers queue.delete-ok and then sends basic.cancel
// to the consumer on the deleting channel (a client that closes on the cancel must not lose the
// delete-ok); the consumers on other channels and connections get their basic.cancel too (in no
// fixed order relative to the delete-ok on RabbitMQ).
func TestCompatDeleteOkBeforeCancel(t *testing.T) {
	b := startBroker(t)
	w := wireHandshake(t, b)
	o := wireHandshake(t, b)
	q := amqpName(t, "q")
	amqpCleanup(t, b, "queue", q)
	w.openChannel(1)
	w.openChannel(2)
	o.openChannel(1)
	w.send(wireQueueDeclareFull(1, q, false, false, false, false, nil))
	w.expect(1, wireQueue, 11)
	w.send(wireBasicConsume(1, q, "c1"))
	w.expect(1, wireBasic, 21)
	w.send(wireBasicConsume(2, q, "c2"))
	w.expect(2, wireBasic, 21)
	o.send(wireBasicConsume(1, q, "co"))
	o.expect(1, wireBasic, 21)

	w.send(wireQueueDelete(1, q, false, false))
	var deleteOK, cancel1, cancel2 int
	for i := 1; deleteOK == 0 || cancel1 == 0 || cancel2 == 0; i++ {
		f := w.next()
		switch {
		case f.Channel == 1 && f.Is(wireQueue, 41) && deleteOK == 0:
			deleteOK = i
		case f.Channel == 1 && f.Is(wireBasic, 30) && compatCancelTag(f) == "c1" && cancel1 == 0:
			cancel1 = i
		case f.Channel == 2 && f.Is(wireBasic, 30) && compatCancelTag(f) == "c2" && cancel2 == 0:
			cancel2 = i
		default:
			t.Fatalf("frame %d: got %v, want queue.delete-ok on ch 1 and basic.cancel on ch 1 and 2", i, f)
		}
	}
	if cancel1 < deleteOK {
		t.Fatalf("basic.cancel on the deleting channel came before queue.delete-ok (frames %d, %d)", cancel1, deleteOK)
	}
	if f := o.next(); f.Channel != 1 || !f.Is(wireBasic, 30) || compatCancelTag(f) != "co" {
		t.Fatalf("other connection: got %v, want basic.cancel co", f)
	}
	compatSync(t, w, 1)
	compatSync(t, w, 2)
	compatSync(t, o, 1)
	w.closeConnection()
	o.closeConnection()
}

// compatDelivery is a basic.deliver or basic.get-ok read from the wire.
type compatDelivery struct {
	tag         uint64
	redelivered bool
	body        string
}

func (d compatDelivery) String() string {
	return fmt.Sprintf("%d:%s(redelivered=%v)", d.tag, d.body, d.redelivered)
}

// compatReadDelivery reads a basic.deliver on ch with its header and body frames.
func compatReadDelivery(t *testing.T, w *wireConn, ch uint16) compatDelivery {
	t.Helper()
	f := w.next()
	if f.Channel != ch || !f.Is(wireBasic, 60) {
		t.Fatalf("got %v, want basic.deliver on ch %d", f, ch)
	}
	a := wireArgsOf(f)
	a.shortstr()
	d := compatDelivery{tag: a.longlong(), redelivered: a.octet() != 0}
	if h := w.next(); h.Type != wireFrameHeader {
		t.Fatalf("got %v, want a content header", h)
	}
	b := w.next()
	if b.Type != wireFrameBody {
		t.Fatalf("got %v, want a body frame", b)
	}
	d.body = string(b.Payload)
	return d
}

// compatBodies drains q with basic.get (no-ack) through conn and returns the bodies in order.
func compatBodies(t *testing.T, conn *amqp.Connection, q string) []string {
	t.Helper()
	ch := amqpChannel(t, conn)
	defer ch.Close()
	var out []string
	for {
		m, ok, err := ch.Get(q, true)
		if err != nil {
			t.Fatalf("basic.get %q: %v", q, err)
		}
		if !ok {
			return out
		}
		out = append(out, string(m.Body))
	}
}

// Item 9: basic.recover(requeue=true) into a queue with x-max-length and a dead-letter exchange
// requeues one group per consumer (basic.get ones first), each followed by dropping the heads over
// the limit (dead-lettered) and then deliveries; recover-ok comes before the redeliveries. The
// dead-lettered messages, the redeliveries and what stays ready are RabbitMQ's.
func TestCompatRecoverDeadLetterMaxLen(t *testing.T) {
	for _, c := range []struct {
		name        string
		maxLen      int32
		prefetch    uint16
		consumed    []string // published first, delivered to the consumer
		more        []string // published next
		gets        int      // basic.get after more
		last        []string // published last
		redelivered []string // delivered after recover-ok ("*" marks redelivered)
		dead        []string // dead-lettered by recover, in order
		ready       int
	}{
		{"unlimited consumer", 2, 0, []string{"a1", "a2", "a3"}, nil, 0, nil,
			[]string{"a2*", "a3*"}, []string{"a1"}, 0},
		{"a get group then the consumer's", 3, 2, []string{"a1", "a2"}, []string{"b1", "b2"}, 2, []string{"c1", "c2"},
			[]string{"b2*", "c1"}, []string{"b1", "a1", "a2"}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := startBroker(t)
			conn := amqpDial(t, b)
			ach := amqpChannel(t, conn)
			dlx := amqpExchange(t, b, ach, "fanout", "dlx")
			dq := amqpQueue(t, b, ach, "dead")
			if err := ach.QueueBind(dq, "", dlx, false, nil); err != nil {
				t.Fatal(err)
			}
			q := amqpName(t, "q")
			if _, err := ach.QueueDeclare(q, false, false, false, false, amqp.Table{"x-max-length": c.maxLen, "x-dead-letter-exchange": dlx}); err != nil {
				t.Fatal(err)
			}
			amqpCleanup(t, b, "queue", q)

			w := wireHandshake(t, b)
			w.openChannel(1)
			w.openChannel(2)
			w.send(wireBasicQos(1, c.prefetch))
			w.expect(1, wireBasic, 11)
			w.send(wireBasicConsume(1, q, "c1"))
			w.expect(1, wireBasic, 21)
			for _, body := range c.consumed {
				w.send(wirePublish(2, "", q, []byte(body)))
			}
			for _, body := range c.consumed {
				if d := compatReadDelivery(t, w, 1); d.body != body {
					t.Fatalf("delivered %v, want %s", d, body)
				}
			}
			if len(c.more) > 0 {
				compatPublishBodies(t, conn, q, c.more...)
			}
			for range c.gets {
				compatGet(t, w, 1, q)
			}
			if len(c.last) > 0 {
				compatPublishBodies(t, conn, q, c.last...)
			}
			deadBefore := len(compatBodies(t, conn, dq))

			w.send(wireBasicRecover(1))
			w.expect(1, wireBasic, 111) // before the redeliveries
			var got []string
			for range c.redelivered {
				d := compatReadDelivery(t, w, 1)
				s := d.body
				if d.redelivered {
					s += "*"
				}
				got = append(got, s)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.redelivered) {
				t.Fatalf("after recover delivered %v, want %v", got, c.redelivered)
			}
			compatWaitReady(t, conn, dq, len(c.dead))
			if dead := compatBodies(t, conn, dq); fmt.Sprint(dead) != fmt.Sprint(c.dead) {
				t.Fatalf("dead-lettered %v (and %d before recover), want %v", dead, deadBefore, c.dead)
			}
			if n, _ := amqpReady(t, conn, q); n != c.ready {
				t.Fatalf("%d ready, want %d", n, c.ready)
			}
			compatSync(t, w, 1)
			w.closeConnection()
		})
	}
}

// compatMsg is a message for the TTL and priority cases: a body, a priority, an expiration.
type compatMsg struct {
	body     string
	priority uint8
	exp      string
}

// Item 8: on a priority queue a message with expiration "0" that a higher priority put at the head
// of a backlog is not dropped until a delivery looks past it: a consumer (or basic.get) still gets
// it, and the expired ones behind a delivered head are dropped, as RabbitMQ's fetch and
// drop_expired_msgs do. Into an empty queue without consumers it is dropped at once.
func TestCompatTTLZeroPriorityBacklog(t *testing.T) {
	for _, c := range []struct {
		name     string
		msgs     []compatMsg
		prefetch int  // consumer prefetch (acking each delivery); 0: no-ack
		get      bool // basic.get instead of a consumer
		want     []string
	}{
		{"expired message jumps the backlog", []compatMsg{{"a", 0, ""}, {"b", 0, ""}, {"c", 5, "0"}, {"d", 1, ""}}, 0, false, []string{"c", "d", "a", "b"}},
		{"expired first message is dropped", []compatMsg{{"c", 5, "0"}, {"a", 0, ""}, {"b", 0, ""}}, 0, false, []string{"a", "b"}},
		{"expired behind the head", []compatMsg{{"a", 0, ""}, {"c", 0, "0"}, {"b", 0, ""}}, 0, false, []string{"a", "b"}},
		{"expired in a lower level", []compatMsg{{"a", 3, ""}, {"c", 1, "0"}, {"b", 0, ""}}, 0, false, []string{"a", "b"}},
		{"two expired at the top", []compatMsg{{"a", 0, ""}, {"c", 5, "0"}, {"d", 5, "0"}, {"e", 3, ""}}, 0, false, []string{"c", "e", "a"}},
		{"expired after a higher one", []compatMsg{{"a", 5, ""}, {"b", 0, "0"}, {"c", 0, ""}}, 0, false, []string{"a", "c"}},
		{"prefetch 1", []compatMsg{{"a", 0, ""}, {"c", 5, "0"}, {"d", 5, ""}, {"e", 5, "0"}}, 1, false, []string{"c", "d", "a"}},
		{"basic.get", []compatMsg{{"a", 0, ""}, {"c", 5, "0"}, {"d", 2, ""}}, 0, true, []string{"c", "d", "a"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := startBroker(t)
			conn := amqpDial(t, b)
			ch := amqpConfirmChannel(t, conn)
			q := amqpName(t, "q")
			if _, err := ch.QueueDeclare(q, false, false, false, false, amqp.Table{"x-max-priority": int32(5)}); err != nil {
				t.Fatal(err)
			}
			amqpCleanup(t, b, "queue", q)
			for _, m := range c.msgs {
				dc, err := ch.PublishWithDeferredConfirm("", q, false, false, amqp.Publishing{Body: []byte(m.body), Priority: m.priority, Expiration: m.exp})
				if err != nil {
					t.Fatal(err)
				}
				if !dc.Wait() {
					t.Fatalf("publish %s nacked", m.body)
				}
			}
			var got []string
			if c.get {
				for {
					m, ok, err := ch.Get(q, true)
					if err != nil {
						t.Fatal(err)
					}
					if !ok {
						break
					}
					got = append(got, string(m.Body))
				}
			} else {
				cch := amqpChannel(t, conn)
				if c.prefetch > 0 {
					if err := cch.Qos(c.prefetch, 0, false); err != nil {
						t.Fatal(err)
					}
				}
				ds, err := cch.Consume(q, "c1", c.prefetch == 0, false, false, false, amqp.Table{"x-priority": int32(5)})
				if err != nil {
					t.Fatal(err)
				}
				for range c.want {
					m := amqpRecv(t, ds)
					got = append(got, string(m.Body))
					if c.prefetch > 0 {
						if err := m.Ack(false); err != nil {
							t.Fatal(err)
						}
					}
				}
				if err := cch.Cancel("c1", false); err != nil {
					t.Fatal(err)
				}
				for m := range ds { // whatever came before cancel-ok
					got = append(got, string(m.Body))
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("delivered %v, want %v", got, c.want)
			}
		})
	}
}

// compatSkipClosed opens channel next and waits for its open-ok, skipping the content frames
// RabbitMQ may still send on a channel it closed (deliveries the client drops).
func compatSkipClosed(t *testing.T, w *wireConn, closed, next uint16) {
	t.Helper()
	w.send(wireChannelOpen(next))
	for {
		f := w.next()
		if f.Channel == next && f.Is(wireChannel, 11) {
			return
		}
		if f.Channel != closed || f.Type == wireFrameMethod && !f.Is(wireBasic, 60) {
			t.Fatalf("got %v, want channel.open-ok on ch %d", f, next)
		}
	}
}

// Item 10: queue.delete if-empty pipelined behind an ack, a nack or a recover on the consumer's
// channel: the reply to the delete (406 not empty, or delete-ok) comes before the deliveries the
// settle freed, as in RabbitMQ, where they reach the channel after the delete; after a 406 the
// client never sees them (they are requeued), after a delete-ok they come before the basic.cancel.
func TestCompatDeleteIfEmptyAfterSettle(t *testing.T) {
	notEmpty := func(q string) wireCloseInfo {
		return wireHard(406, "PRECONDITION_FAILED - queue '"+q+"' in vhost '/' not empty", wireQueue, 40)
	}
	for _, c := range []struct {
		name     string
		prefetch uint16
		publish  int
		settle   func(ch uint16) []byte
		deleted  bool     // the delete succeeds
		redeliv  []string // deliveries after delete-ok
		ready    int      // ready after a 406 and the channel's close
	}{
		{"ack frees credit", 1, 3, func(ch uint16) []byte { return wireBasicAck(ch, 1, false) }, false, nil, 2},
		{"nack requeues", 1, 3, func(ch uint16) []byte { return wireBasicNack(ch, 1, false, true) }, false, nil, 3},
		{"recover", 2, 3, func(ch uint16) []byte { return wireBasicRecover(ch) }, false, nil, 3},
		{"ack, queue empty", 1, 2, func(ch uint16) []byte { return wireBasicAck(ch, 1, false) }, true, []string{"m2"}, 0},
		{"nack, only unacked", 1, 1, func(ch uint16) []byte { return wireBasicNack(ch, 1, false, true) }, true, []string{"m1*"}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := startBroker(t)
			conn := amqpDial(t, b)
			q := amqpQueue(t, b, amqpChannel(t, conn), "q")
			compatPublish(t, conn, q, c.publish)
			w := wireHandshake(t, b)
			w.openChannel(1)
			w.send(wireBasicQos(1, c.prefetch))
			w.expect(1, wireBasic, 11)
			w.send(wireBasicConsume(1, q, "c1"))
			w.expect(1, wireBasic, 21)
			for range min(int(c.prefetch), c.publish) {
				compatReadDelivery(t, w, 1)
			}
			w.send(append(c.settle(1), wireQueueDelete(1, q, false, true)...))
			if c.name == "recover" {
				w.expect(1, wireBasic, 111) // basic.recover's own reply comes first
			}
			if !c.deleted {
				w.expectChannelClose(1, notEmpty(q))
				compatSkipClosed(t, w, 1, 2)
				compatWaitReady(t, conn, q, c.ready)
				w.closeConnection()
				return
			}
			w.expect(1, wireQueue, 41)
			var got []string
			for range c.redeliv {
				d := compatReadDelivery(t, w, 1)
				s := d.body
				if d.redelivered {
					s += "*"
				}
				got = append(got, s)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.redeliv) {
				t.Fatalf("after delete-ok delivered %v, want %v", got, c.redeliv)
			}
			if f := w.next(); !f.Is(wireBasic, 30) || compatCancelTag(f) != "c1" {
				t.Fatalf("got %v, want basic.cancel c1", f)
			}
			compatSync(t, w, 1)
			w.closeConnection()
		})
	}
}
