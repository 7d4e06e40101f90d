package integration

import (
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// A queue declared with an empty name gets a server-generated amq.gen- name; declare-ok and passive
// declare report message and consumer counts.
func TestQueueServerNamedAndCounts(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q, err := ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(q.Name, "amq.gen-") || len(q.Name) <= len("amq.gen-") {
		t.Fatalf("server-named queue %q, want amq.gen-...", q.Name)
	}
	q2, err := ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q2.Name == q.Name {
		t.Fatalf("two server-named queues both called %q", q.Name)
	}
	if q.Messages != 0 || q.Consumers != 0 {
		t.Fatalf("new queue reports %d messages %d consumers", q.Messages, q.Consumers)
	}
	for range 3 {
		amqpPublish(t, ch, "", q.Name, "m")
	}
	if _, err := ch.Consume(q2.Name, "", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	named := amqpQueue(t, b, ch, "named")
	amqpPublish(t, ch, "", named, "m")
	// Redeclaring an existing queue reports its current counts too.
	r, err := ch.QueueDeclare(named, false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != named || r.Messages != 1 {
		t.Fatalf("redeclare reports %+v, want 1 message", r)
	}
	if n, _ := amqpReady(t, conn, q.Name); n != 3 {
		t.Fatalf("passive declare reports %d messages, want 3", n)
	}
	if _, c := amqpReady(t, conn, q2.Name); c != 1 {
		t.Fatalf("passive declare reports %d consumers, want 1", c)
	}
}

// Redeclaring with other durable, exclusive, auto-delete or arguments is 406 PRECONDITION_FAILED naming
// the argument; identical redeclaration and passive declaration succeed.
func TestQueueDeclareEquivalence(t *testing.T) {
	b := startBroker(t)
	conn := amqpDial(t, b)
	ch := amqpChannel(t, conn)
	name := amqpName(t, "q")
	args := amqp.Table{"x-max-length": int32(10)}
	if _, err := ch.QueueDeclare(name, false, false, false, false, args); err != nil {
		t.Fatal(err)
	}
	amqpCleanup(t, b, "queue", name)
	if _, err := ch.QueueDeclare(name, false, false, false, false, args); err != nil {
		t.Fatalf("identical redeclare: %v", err)
	}
	if _, err := ch.QueueDeclarePassive(name, true, true, false, false, nil); err != nil {
		t.Fatalf("passive with other attributes: %v", err)
	}
	pre := "PRECONDITION_FAILED - inequivalent arg '"
	in := "' for queue '" + name + "' in vhost '/'"
	cases := []struct {
		name                string
		durable, autoDelete bool
		args                amqp.Table
		prefix              string
	}{
		{"durable", true, false, args, pre + "durable" + in + ": received 'true' but current is 'false'"},
		{"auto_delete", false, true, args, pre + "auto_delete" + in + ": received 'true' but current is 'false'"},
		{"arguments value", false, false, amqp.Table{"x-max-length": int32(11)}, pre + "x-max-length" + in + ": received '11' but current is '10'"},
		{"arguments missing", false, false, nil, pre + "x-max-length" + in + ": received none but current is the value '10' of type 'signedint'"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch := amqpChannel(t, conn)
			closed := ch.NotifyClose(make(chan *amqp.Error, 1))
			_, err := ch.QueueDeclare(name, c.durable, c.autoDelete, false, false, c.args)
			amqpAssertChannelError(t, conn, ch, closed, err, amqp.PreconditionFailed, c.prefix)
		})
	}
	// Exclusive differs: the queue is not exclusive, so an exclusive redeclare is refused as locked.
	ch2 := amqpChannel(t, conn)
	closed := ch2.NotifyClose(make(chan *amqp.Error, 1))
	_, err := ch2.QueueDeclare(name, false, false, true, false, args)
	amqpAssertChannelError(t, conn, ch2, closed, err, amqp.ResourceLocked, "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '"+name+"' in vhost '/'")
}

// Queue errors with their codes: passive on a missing queue, reserved amq. names, binding a missing
// queue.
func TestQueueErrors(t *testing.T) {
	b := startBroker(t)
	conn := amqpDial(t, b)
	missing := amqpName(t, "missing")
	reserved := "amq." + amqpName(t, "q")
	cases := []struct {
		name   string
		code   int
		prefix string
		do     func(ch *amqp.Channel) error
	}{
		{"passive missing", amqp.NotFound, "NOT_FOUND - no queue '" + missing + "' in vhost '/'", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive(missing, false, false, false, false, nil)
			return err
		}},
		{"reserved amq. prefix", amqp.AccessRefused, "ACCESS_REFUSED - queue name '" + reserved + "' contains reserved prefix 'amq.*'", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare(reserved, false, false, false, false, nil)
			return err
		}},
		{"bind missing queue", amqp.NotFound, "NOT_FOUND - no queue '" + missing + "' in vhost '/'", func(ch *amqp.Channel) error {
			return ch.QueueBind(missing, "k", "amq.direct", false, nil)
		}},
		{"purge missing queue", amqp.NotFound, "NOT_FOUND - no queue '" + missing + "' in vhost '/'", func(ch *amqp.Channel) error {
			_, err := ch.QueuePurge(missing, false)
			return err
		}},
		{"consume missing queue", amqp.NotFound, "NOT_FOUND - no queue '" + missing + "' in vhost '/'", func(ch *amqp.Channel) error {
			_, err := ch.Consume(missing, "", false, false, false, false, nil)
			return err
		}},
		{"get missing queue", amqp.NotFound, "NOT_FOUND - no queue '" + missing + "' in vhost '/'", func(ch *amqp.Channel) error {
			_, _, err := ch.Get(missing, false)
			return err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch := amqpChannel(t, conn)
			closed := ch.NotifyClose(make(chan *amqp.Error, 1))
			amqpAssertChannelError(t, conn, ch, closed, c.do(ch), c.code, c.prefix)
		})
	}
	// Deleting a missing queue succeeds with 0 messages (RabbitMQ 3.10 is idempotent here).
	ch := amqpChannel(t, conn)
	if n, err := ch.QueueDelete(missing, false, false, false); err != nil || n != 0 {
		t.Fatalf("delete of a missing queue: %d, %v", n, err)
	}
	// Unbinding a binding that does not exist succeeds.
	q := amqpQueue(t, b, ch, "q")
	if err := ch.QueueUnbind(q, "no-such-key", "amq.direct", nil); err != nil {
		t.Fatalf("unbind of a missing binding: %v", err)
	}
}

// queue.bind and queue.unbind change routing; binding twice is idempotent.
func TestQueueBindUnbind(t *testing.T) {
	b, _, ch := amqpSetup(t)
	x := amqpExchange(t, b, ch, "direct", "x")
	q := amqpQueue(t, b, ch, "q")
	amqpPublish(t, ch, x, "k", "before")
	for range 2 {
		if err := ch.QueueBind(q, "k", x, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	amqpPublish(t, ch, x, "k", "bound")
	if m := amqpGet(t, ch, q, true); string(m.Body) != "bound" {
		t.Fatalf("got %q", m.Body)
	}
	amqpGetEmpty(t, ch, q) // bound twice, still one copy; nothing from before the bind
	if err := ch.QueueUnbind(q, "k", x, nil); err != nil {
		t.Fatal(err)
	}
	amqpPublish(t, ch, x, "k", "after")
	amqpGetEmpty(t, ch, q)
}

// queue.purge removes ready messages and reports how many; unacked messages are not purged.
func TestQueuePurge(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	for range 5 {
		amqpPublish(t, ch, "", q, "m")
	}
	held := amqpGet(t, ch, q, false) // one unacked
	n, err := ch.QueuePurge(q, false)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Fatalf("purge reported %d, want 4", n)
	}
	amqpGetEmpty(t, ch, q)
	if err := held.Reject(true); err != nil {
		t.Fatal(err)
	}
	if m := amqpGet(t, ch, q, true); !m.Redelivered {
		t.Fatal("the unacked message came back without redelivered")
	}
	if n, err := ch.QueuePurge(q, false); err != nil || n != 0 {
		t.Fatalf("purge of an empty queue: %d, %v", n, err)
	}
	amqpAssertAlive(t, conn)
}

// queue.delete reports the message count; if-unused refuses a queue with consumers and if-empty one with
// messages, both with 406; deletion removes bindings.
func TestQueueDelete(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "q")
	if err := ch.QueueBind(q, "k", "amq.direct", false, nil); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		amqpPublish(t, ch, "", q, "m")
	}
	cch := amqpChannel(t, conn)
	if _, err := cch.Consume(q, "holder", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}

	ch2 := amqpChannel(t, conn)
	closed := ch2.NotifyClose(make(chan *amqp.Error, 1))
	_, err := ch2.QueueDelete(q, true, false, false)
	amqpAssertChannelError(t, conn, ch2, closed, err, amqp.PreconditionFailed, "PRECONDITION_FAILED - queue '"+q+"' in vhost '/' in use")

	if err := cch.Close(); err != nil { // consumer gone, its 3 deliveries requeued
		t.Fatal(err)
	}
	ch3 := amqpChannel(t, conn)
	closed3 := ch3.NotifyClose(make(chan *amqp.Error, 1))
	_, err = ch3.QueueDelete(q, true, true, false)
	amqpAssertChannelError(t, conn, ch3, closed3, err, amqp.PreconditionFailed, "PRECONDITION_FAILED - queue '"+q+"' in vhost '/' not empty")

	n, err := ch.QueueDelete(q, true, false, false)
	if err != nil {
		t.Fatalf("if-unused delete without consumers: %v", err)
	}
	if n != 3 {
		t.Fatalf("delete reported %d messages, want 3", n)
	}
	// Recreated under the same name, it has no messages and none of the old bindings.
	if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	amqpPublish(t, ch, "amq.direct", "k", "stale binding?")
	amqpGetEmpty(t, ch, q)
	// An empty unused queue goes with both flags.
	if _, err := ch.QueueDelete(q, true, true, false); err != nil {
		t.Fatalf("if-unused if-empty delete of an empty queue: %v", err)
	}
}

// An exclusive queue belongs to its connection: other connections get 405 RESOURCE_LOCKED for every
// use, and it is deleted when the owner closes.
func TestQueueExclusive(t *testing.T) {
	b := startBroker(t)
	owner := amqpDial(t, b)
	och := amqpChannel(t, owner)
	name := amqpName(t, "excl")
	if _, err := och.QueueDeclare(name, false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}
	amqpCleanup(t, b, "queue", name)
	// The owner may use it on any of its channels.
	och2 := amqpChannel(t, owner)
	amqpPublish(t, och2, "", name, "mine")
	amqpGet(t, och2, name, true)

	other := amqpDial(t, b)
	locked := "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '" + name + "' in vhost '/'"
	for _, c := range []struct {
		name string
		do   func(ch *amqp.Channel) error
	}{
		{"passive declare", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive(name, false, false, true, false, nil)
			return err
		}},
		{"declare", func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclare(name, false, false, true, false, nil)
			return err
		}},
		{"consume", func(ch *amqp.Channel) error {
			_, err := ch.Consume(name, "", false, false, false, false, nil)
			return err
		}},
		{"get", func(ch *amqp.Channel) error {
			_, _, err := ch.Get(name, false)
			return err
		}},
		{"bind", func(ch *amqp.Channel) error { return ch.QueueBind(name, "k", "amq.direct", false, nil) }},
		{"purge", func(ch *amqp.Channel) error {
			_, err := ch.QueuePurge(name, false)
			return err
		}},
		{"delete", func(ch *amqp.Channel) error {
			_, err := ch.QueueDelete(name, false, false, false)
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ch := amqpChannel(t, other)
			closed := ch.NotifyClose(make(chan *amqp.Error, 1))
			amqpAssertChannelError(t, other, ch, closed, c.do(ch), amqp.ResourceLocked, locked)
		})
	}
	// Publishing to it from another connection is allowed.
	pch := amqpConfirmChannel(t, other)
	amqpPublish(t, pch, "", name, "from other")
	if m := amqpGet(t, och, name, true); string(m.Body) != "from other" {
		t.Fatalf("got %q", m.Body)
	}

	if err := owner.Close(); err != nil {
		t.Fatal(err)
	}
	ch := amqpChannel(t, other)
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	_, err := ch.QueueDeclarePassive(name, false, false, true, false, nil)
	amqpAssertChannelError(t, other, ch, closed, err, amqp.NotFound, "NOT_FOUND - no queue '"+name+"' in vhost '/'")
}

// An auto-delete queue survives until it has had a consumer and the last one goes (cancel or channel
// close); it does not go merely because it has no consumers yet.
func TestQueueAutoDelete(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	name := amqpName(t, "auto")
	if _, err := ch.QueueDeclare(name, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	amqpCleanup(t, b, "queue", name)
	amqpPublish(t, ch, "", name, "kept")
	if n, _ := amqpReady(t, conn, name); n != 1 {
		t.Fatalf("auto-delete queue without consumers: %d messages, want 1", n)
	}
	c1 := amqpChannel(t, conn)
	if _, err := c1.Consume(name, "one", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	c2 := amqpChannel(t, conn)
	if _, err := c2.Consume(name, "two", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := c1.Cancel("one", false); err != nil {
		t.Fatal(err)
	}
	if _, c := amqpReady(t, conn, name); c != 1 {
		t.Fatalf("%d consumers after one cancel, want 1 (queue must still exist)", c)
	}
	if err := c2.Close(); err != nil { // the last consumer goes with its channel
		t.Fatal(err)
	}
	pch := amqpChannel(t, conn)
	closed := pch.NotifyClose(make(chan *amqp.Error, 1))
	_, err := pch.QueueDeclarePassive(name, false, true, false, false, nil)
	amqpAssertChannelError(t, conn, pch, closed, err, amqp.NotFound, "NOT_FOUND - no queue '"+name+"' in vhost '/'")
}

// A durable queue and durable exchange can be declared and are reported back by passive declare.
func TestQueueDurableDeclare(t *testing.T) {
	b, _, ch := amqpSetup(t)
	x := amqpName(t, "x")
	if err := ch.ExchangeDeclare(x, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	amqpCleanup(t, b, "exchange", x)
	q := amqpName(t, "q")
	if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "classic"}); err != nil {
		t.Fatal(err)
	}
	amqpCleanup(t, b, "queue", q)
	if err := ch.QueueBind(q, "a.#", x, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish(x, "a.b", false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	m := amqpGet(t, ch, q, true)
	if m.DeliveryMode != amqp.Persistent || string(m.Body) != "p" {
		t.Fatalf("got mode %d body %q", m.DeliveryMode, m.Body)
	}
	if _, err := ch.QueueDeclare(q, true, false, false, false, amqp.Table{"x-queue-type": "classic"}); err != nil {
		t.Fatalf("redeclare durable: %v", err)
	}
}
