package integration

// Message TTL (x-message-ttl, the expiration property) and queue expiry (x-expires), as RabbitMQ
// behaves. TTLs are tens of milliseconds; assertions wait for the queue to report what RabbitMQ
// reports rather than for a time.

import (
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/internal/wait"
	"github.com/warrenmq/warren/server"
)

// ttlDeclare declares a transient queue with args, deleted when the test ends.
func ttlDeclare(t testing.TB, b broker, ch *amqp.Channel, what string, args amqp.Table) string {
	t.Helper()
	name := amqpName(t, what)
	if _, err := ch.QueueDeclare(name, false, false, false, false, args); err != nil {
		t.Fatalf("queue.declare %q: %v", name, err)
	}
	amqpCleanup(t, b, "queue", name)
	return name
}

// ttlPublish publishes body to queue with an expiration ("" for none) and waits for its confirm.
func ttlPublish(t testing.TB, ch *amqp.Channel, queue, body, expiration string) {
	t.Helper()
	dc, err := ch.PublishWithDeferredConfirm("", queue, false, false, amqp.Publishing{Body: []byte(body), Expiration: expiration})
	if err != nil {
		t.Fatalf("publish %q: %v", body, err)
	}
	if dc != nil && !dc.Wait() {
		t.Fatalf("publish %q: nacked", body)
	}
}

// ttlWaitReady polls until queue reports want ready messages.
func ttlWaitReady(t testing.TB, conn *amqp.Connection, queue string, want int) {
	t.Helper()
	var n int
	if !wait.Until(amqpTimeout, wait.Interval, func() bool {
		n, _ = amqpReady(t, conn, queue)
		return n == want
	}) {
		t.Fatalf("queue %q has %d messages, want %d", queue, n, want)
	}
}

// With x-message-ttl, messages nobody consumes leave the queue and are never delivered.
func TestAMQPTTLQueueExpiresUnconsumed(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := ttlDeclare(t, b, ch, "qttl", amqp.Table{"x-message-ttl": int32(30)})
	for i := range 5 {
		ttlPublish(t, ch, q, fmt.Sprint("m", i), "")
	}
	ttlWaitReady(t, conn, q, 0)
	amqpGetEmpty(t, ch, q)

	// A message published after the others expired is delivered while it is fresh.
	long := ttlDeclare(t, b, ch, "qttl-long", amqp.Table{"x-message-ttl": int32(60000)})
	ttlPublish(t, ch, long, "fresh", "")
	if m := amqpGet(t, ch, long, true); string(m.Body) != "fresh" {
		t.Fatalf("got %q", m.Body)
	}
}

// Per-message TTL expires at the head only: a short-lived message behind a long-lived one stays
// (and is counted) until it reaches the head, and then it is dropped without being delivered.
func TestAMQPTTLPerMessageAtHead(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := ttlDeclare(t, b, ch, "mttl", nil)
	clock := ttlDeclare(t, b, ch, "mttl-clock", nil)
	ttlPublish(t, ch, q, "long", "60000")
	ttlPublish(t, ch, q, "short", "20")
	ttlPublish(t, ch, clock, "tick", "20")
	ttlWaitReady(t, conn, clock, 0) // "tick", published after "short" with its TTL, expired
	if n, _ := amqpReady(t, conn, q); n != 2 {
		t.Fatalf("queue has %d messages, want 2 (the expired one waits behind the head)", n)
	}
	if m := amqpGet(t, ch, q, true); string(m.Body) != "long" || m.Expiration != "60000" {
		t.Fatalf("got %q (expiration %q), want long with its expiration", m.Body, m.Expiration)
	}
	amqpGetEmpty(t, ch, q)
	ttlWaitReady(t, conn, q, 0)

	// A queue TTL shorter than the message's wins, and the message's own wins when shorter.
	both := ttlDeclare(t, b, ch, "mttl-both", amqp.Table{"x-message-ttl": int32(60000)})
	ttlPublish(t, ch, both, "a", "20")
	ttlWaitReady(t, conn, both, 0)
}

// A TTL of 0 delivers to a consumer that can take the message now, and drops it otherwise.
func TestAMQPTTLZero(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := ttlDeclare(t, b, ch, "ttl0", nil)
	ttlPublish(t, ch, q, "dropped", "0")
	ttlWaitReady(t, conn, q, 0)
	cch := amqpChannel(t, conn)
	d := amqpConsume(t, cch, q, true)
	ttlPublish(t, ch, q, "delivered", "0")
	if m := amqpRecv(t, d); string(m.Body) != "delivered" {
		t.Fatalf("got %q, want delivered", m.Body)
	}
}

// A malformed expiration closes the channel with RabbitMQ's 406 texts.
func TestAMQPTTLInvalidExpiration(t *testing.T) {
	b, conn, _ := amqpSetup(t)
	for _, c := range []struct{ exp, text string }{
		{"abc", "PRECONDITION_FAILED - invalid expiration 'abc': no_integer"},
		{"-1", "PRECONDITION_FAILED - invalid expiration '-1': {value_negative,-1}"},
		{"12abc", `PRECONDITION_FAILED - invalid expiration '12abc': {leftover_string,"abc"}`},
		{" 5", "PRECONDITION_FAILED - invalid expiration ' 5': no_integer"},
	} {
		ch := amqpChannel(t, conn)
		closed := ch.NotifyClose(make(chan *amqp.Error, 1))
		q := amqpQueue(t, b, ch, "badexp")
		if err := ch.Publish("", q, false, false, amqp.Publishing{Body: []byte("x"), Expiration: c.exp}); err != nil {
			t.Fatal(err)
		}
		e := amqpWaitClose(t, closed)
		if e.Code != 406 || e.Reason != c.text {
			t.Errorf("expiration %q: closed with %d %q, want 406 %q", c.exp, e.Code, e.Reason, c.text)
		}
	}
	// "+5" is an integer to RabbitMQ.
	ch := amqpConfirmChannel(t, conn)
	q := amqpQueue(t, b, ch, "plusexp")
	ttlPublish(t, ch, q, "x", "+5")
	ttlWaitReady(t, conn, q, 0)
}

// A requeued message keeps its expiry: it expires when back at the head.
func TestAMQPTTLRequeuedExpires(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := ttlDeclare(t, b, ch, "ttlrq", amqp.Table{"x-message-ttl": int32(30)})
	ttlPublish(t, ch, q, "m", "")
	m := amqpGet(t, ch, q, false)
	clock := ttlDeclare(t, b, ch, "ttlrq-clock", amqp.Table{"x-message-ttl": int32(30)})
	ttlPublish(t, ch, clock, "tick", "")
	ttlWaitReady(t, conn, clock, 0)
	if err := m.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	ttlWaitReady(t, conn, q, 0)
	amqpGetEmpty(t, ch, q)
}

// x-expires deletes a queue unused for that long; a consumer keeps it, and the countdown starts
// again when the last consumer goes.
func TestAMQPTTLQueueExpires(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := ttlDeclare(t, b, ch, "expires", amqp.Table{"x-expires": int32(50)})
	ttlWaitGone(t, conn, q)

	q2 := ttlDeclare(t, b, ch, "expires-consumed", amqp.Table{"x-expires": int32(50)})
	cch := amqpChannel(t, conn)
	amqpConsume(t, cch, q2, true)
	// Longer than x-expires with a consumer: the queue stays.
	clock := ttlDeclare(t, b, ch, "expires-clock", amqp.Table{"x-expires": int32(50)})
	ttlWaitGone(t, conn, clock)
	if _, n := amqpReady(t, conn, q2); n != 1 {
		t.Fatalf("queue with a consumer: %d consumers", n)
	}
	if err := cch.Close(); err != nil {
		t.Fatal(err)
	}
	ttlWaitGone(t, conn, q2)
}

// ttlWaitGone polls (passively declaring, which counts as a use, so less often than the queue's
// x-expires of 50ms) until queue does not exist.
func ttlWaitGone(t testing.TB, conn *amqp.Connection, queue string) {
	t.Helper()
	if !wait.Until(amqpTimeout, 200*time.Millisecond, func() bool {
		ch := amqpChannel(t, conn)
		_, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		if err != nil {
			amqpWantError(t, err, 404, "NOT_FOUND")
			return true
		}
		ch.Close()
		return false
	}) {
		t.Fatalf("queue %q still exists", queue)
	}
}

// Messages paged out to the store expire too (a Warren window of 4).
func TestAMQPTTLPaged(t *testing.T) {
	b := startBroker(t, func(o *server.Options) { o.QueueWindow = 4 })
	conn := amqpDial(t, b)
	ch := amqpConfirmChannel(t, conn)
	q := ttlDeclare(t, b, ch, "ttlpaged", amqp.Table{"x-message-ttl": int32(30)})
	for i := range 50 {
		ttlPublish(t, ch, q, fmt.Sprint("m", i), "")
	}
	ttlWaitReady(t, conn, q, 0)
	amqpGetEmpty(t, ch, q)
}

// Persistent messages with a TTL on a durable queue expire after a restart too (their arrival time
// is in their record), including the paged ones, when they are past their expiry at the start;
// one without a TTL stays.
func TestAMQPTTLAfterRestart(t *testing.T) {
	persistSkipExternal(t)
	forEachRestartableStore(t, func(t *testing.T, store restartable) {
		b1 := startBroker(t, func(o *server.Options) { o.Store = store; o.QueueWindow = 4 })
		c := persistDial(t, b1.URL, true)
		if _, err := c.ch.QueueDeclare("ttl.d", true, false, false, false, amqp.Table{"x-message-ttl": int32(200)}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ch.QueueDeclare("keep.d", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if got := c.publish("ttl.d", amqp.Persistent, seqBodies("m", 0, 20)...); got != 20 {
			t.Fatalf("%d acked", got)
		}
		published := time.Now()
		c.publish("keep.d", amqp.Persistent, "keep")
		c.conn.Close()
		shutdown(t, b1.Srv)
		// All of them expire before the restart: the window the broker loads at start expires at
		// once, and the paged ones must still be read back and expired without a consumer.
		time.Sleep(time.Until(published.Add(300 * time.Millisecond)))

		b2 := startBroker(t, func(o *server.Options) { o.Store = store.reopen(t); o.QueueWindow = 4 })
		conn := amqpDial(t, b2)
		ttlWaitReady(t, conn, "ttl.d", 0)
		ch := amqpChannel(t, conn)
		amqpGetEmpty(t, ch, "ttl.d")
		if m := amqpGet(t, ch, "keep.d", true); string(m.Body) != "keep" {
			t.Fatalf("got %q", m.Body)
		}
	})
}
