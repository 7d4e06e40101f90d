package integration

// Dead-lettering (x-dead-letter-exchange, x-dead-letter-routing-key) with RabbitMQ 3.10's x-death
// and x-first-death-* headers (3.10 sets no x-last-death-* headers; 3.13 added them).

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server"
)

// dlxDeath checks entry i of m's x-death header and returns it.
func dlxDeath(t testing.TB, m amqp.Delivery, i int, reason, queue, exchange string, count int64, keys ...string) amqp.Table {
	t.Helper()
	deaths, ok := m.Headers["x-death"].([]interface{})
	if !ok || len(deaths) <= i {
		t.Fatalf("x-death %#v: want an entry %d", m.Headers["x-death"], i)
	}
	d, ok := deaths[i].(amqp.Table)
	if !ok {
		t.Fatalf("x-death[%d] is %T", i, deaths[i])
	}
	if d["reason"] != reason || d["queue"] != queue || d["exchange"] != exchange || d["count"] != count {
		t.Fatalf("x-death[%d] = %#v, want reason %s queue %s exchange %q count %d", i, d, reason, queue, exchange, count)
	}
	if tm, ok := d["time"].(time.Time); !ok || time.Since(tm) > time.Minute || time.Until(tm) > 2*time.Second {
		t.Fatalf("x-death[%d] time %#v", i, d["time"])
	}
	rks, ok := d["routing-keys"].([]interface{})
	if !ok || len(rks) != len(keys) {
		t.Fatalf("x-death[%d] routing-keys %#v, want %q", i, d["routing-keys"], keys)
	}
	for j, k := range keys {
		if rks[j] != k {
			t.Fatalf("x-death[%d] routing-keys %#v, want %q", i, rks, keys)
		}
	}
	return d
}

// dlxFirst checks the x-first-death-* headers.
func dlxFirst(t testing.TB, m amqp.Delivery, reason, queue, exchange string) {
	t.Helper()
	if m.Headers["x-first-death-reason"] != reason || m.Headers["x-first-death-queue"] != queue || m.Headers["x-first-death-exchange"] != exchange {
		t.Fatalf("x-first-death-* = %v %v %v, want %s %s %q", m.Headers["x-first-death-reason"], m.Headers["x-first-death-queue"],
			m.Headers["x-first-death-exchange"], reason, queue, exchange)
	}
}

// dlxGet waits for one message in queue and takes it (auto-ack).
func dlxGet(t testing.TB, conn *amqp.Connection, ch *amqp.Channel, queue string) amqp.Delivery {
	t.Helper()
	ttlWaitReady(t, conn, queue, 1)
	return amqpGet(t, ch, queue, true)
}

// Rejected and nacked messages go to the dead-letter exchange with x-death; the expiration
// property is removed and kept as original-expiration; with a dead-letter routing key, CC goes.
func TestAMQPDeadLetterRejected(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	dlx := amqpExchange(t, b, ch, "fanout", "dlx")
	dead := amqpQueue(t, b, ch, "dead")
	if err := ch.QueueBind(dead, "", dlx, false, nil); err != nil {
		t.Fatal(err)
	}
	src := ttlDeclare(t, b, ch, "src", amqp.Table{"x-dead-letter-exchange": dlx})
	if err := ch.Publish("", src, false, false, amqp.Publishing{Body: []byte("r"), Expiration: "60000",
		Headers: amqp.Table{"app": "kept"}}); err != nil {
		t.Fatal(err)
	}
	if err := amqpGet(t, ch, src, false).Reject(false); err != nil {
		t.Fatal(err)
	}
	m := dlxGet(t, conn, ch, dead)
	if string(m.Body) != "r" || m.Exchange != dlx || m.RoutingKey != src || m.Expiration != "" || m.Headers["app"] != "kept" {
		t.Fatalf("dead-lettered %q via %q/%q expiration %q headers %v", m.Body, m.Exchange, m.RoutingKey, m.Expiration, m.Headers)
	}
	d := dlxDeath(t, m, 0, "rejected", src, "", 1, src)
	if d["original-expiration"] != "60000" {
		t.Fatalf("original-expiration %#v", d["original-expiration"])
	}
	dlxFirst(t, m, "rejected", src, "")

	// nack, through the default exchange with a dead-letter routing key; CC is removed then.
	src2 := ttlDeclare(t, b, ch, "src2", amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
	if err := ch.Publish("", src2, false, false, amqp.Publishing{Body: []byte("n"), Headers: amqp.Table{"CC": []interface{}{"nowhere"}}}); err != nil {
		t.Fatal(err)
	}
	if err := amqpGet(t, ch, src2, false).Nack(false, false); err != nil {
		t.Fatal(err)
	}
	m = dlxGet(t, conn, ch, dead)
	if string(m.Body) != "n" || m.Exchange != "" || m.RoutingKey != dead || m.Headers["CC"] != nil {
		t.Fatalf("dead-lettered %q via %q/%q headers %v", m.Body, m.Exchange, m.RoutingKey, m.Headers)
	}
	d = dlxDeath(t, m, 0, "rejected", src2, "", 1, src2, "nowhere")
	if _, ok := d["original-expiration"]; ok {
		t.Fatalf("original-expiration without an expiration: %#v", d)
	}
	// Acked and requeued messages are not dead-lettered.
	amqpPublish(t, ch, "", src2, "acked")
	if err := amqpGet(t, ch, src2, false).Ack(false); err != nil {
		t.Fatal(err)
	}
	amqpPublish(t, ch, "", src2, "requeued")
	if err := amqpGet(t, ch, src2, false).Nack(false, true); err != nil {
		t.Fatal(err)
	}
	ttlWaitReady(t, conn, src2, 1)
	if n, _ := amqpReady(t, conn, dead); n != 0 {
		t.Fatalf("%d dead-lettered, want 0", n)
	}
}

// Expired messages are dead-lettered with reason expired (per-message TTL: with
// original-expiration; queue TTL: without).
func TestAMQPDeadLetterExpired(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	dead := amqpQueue(t, b, ch, "dead")
	src := ttlDeclare(t, b, ch, "src", amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
	ttlPublish(t, ch, src, "e", "10")
	m := dlxGet(t, conn, ch, dead)
	if d := dlxDeath(t, m, 0, "expired", src, "", 1, src); d["original-expiration"] != "10" {
		t.Fatalf("original-expiration %#v", d["original-expiration"])
	}
	dlxFirst(t, m, "expired", src, "")

	qttl := ttlDeclare(t, b, ch, "qttl", amqp.Table{"x-message-ttl": int32(10), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
	ttlPublish(t, ch, qttl, "q", "")
	m = dlxGet(t, conn, ch, dead)
	if d := dlxDeath(t, m, 0, "expired", qttl, "", 1, qttl); d["original-expiration"] != nil {
		t.Fatalf("original-expiration %#v with a queue TTL", d["original-expiration"])
	}
}

// Length limits: drop-head dead-letters the head, reject-publish-dlx the refused message (which
// is nacked), both as maxlen; reject-publish dead-letters nothing.
func TestAMQPDeadLetterMaxLen(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	dead := amqpQueue(t, b, ch, "dead")
	head := ttlDeclare(t, b, ch, "head", amqp.Table{"x-max-length": int32(1), "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
	amqpPublish(t, ch, "", head, "old")
	amqpPublish(t, ch, "", head, "new")
	m := dlxGet(t, conn, ch, dead)
	if string(m.Body) != "old" {
		t.Fatalf("dead-lettered %q, want old", m.Body)
	}
	dlxDeath(t, m, 0, "maxlen", head, "", 1, head)

	for _, overflow := range []string{"reject-publish-dlx", "reject-publish"} {
		q := ttlDeclare(t, b, ch, overflow, amqp.Table{"x-max-length": int32(1), "x-overflow": overflow,
			"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
		amqpPublish(t, ch, "", q, "kept")
		dc, err := ch.PublishWithDeferredConfirm("", q, false, false, amqp.Publishing{Body: []byte("refused")})
		if err != nil {
			t.Fatal(err)
		}
		if dc.Wait() {
			t.Fatalf("%s: the refused publish was acked", overflow)
		}
		if overflow == "reject-publish" {
			amqpPublish(t, ch, "", dead, "marker") // published after: it would be behind a dead letter
			if m := dlxGet(t, conn, ch, dead); string(m.Body) != "marker" {
				t.Fatalf("reject-publish dead-lettered %q", m.Body)
			}
			continue
		}
		m := dlxGet(t, conn, ch, dead)
		if string(m.Body) != "refused" {
			t.Fatalf("dead-lettered %q, want refused", m.Body)
		}
		dlxDeath(t, m, 0, "maxlen", q, "", 1, q)
	}
}

// A retry loop (reject to a wait queue whose TTL sends back) counts each queue and reason once,
// most recent first, and keeps the first death.
func TestAMQPDeadLetterCountsRetries(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	work, wait := amqpName(t, "work"), amqpName(t, "wait")
	for _, q := range []struct {
		name string
		args amqp.Table
	}{
		{work, amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": wait}},
		{wait, amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": work, "x-message-ttl": int32(10)}},
	} {
		if _, err := ch.QueueDeclare(q.name, false, false, false, false, q.args); err != nil {
			t.Fatal(err)
		}
		amqpCleanup(t, b, "queue", q.name)
	}
	amqpPublish(t, ch, "", work, "job")
	for round := int64(1); round <= 3; round++ {
		ttlWaitReady(t, conn, work, 1)
		m := amqpGet(t, ch, work, false)
		if round > 1 {
			dlxDeath(t, m, 0, "expired", wait, "", round-1, wait)
			dlxDeath(t, m, 1, "rejected", work, "", round-1, work)
			dlxFirst(t, m, "rejected", work, "")
			if n := len(m.Headers["x-death"].([]interface{})); n != 2 {
				t.Fatalf("%d x-death entries, want 2", n)
			}
		}
		if err := m.Reject(false); err != nil {
			t.Fatal(err)
		}
	}
}

// A message that expires back into a queue it expired from, with no rejection between, is
// dropped: the cycle ends.
func TestAMQPDeadLetterCycleDropped(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	self := amqpName(t, "self")
	if _, err := ch.QueueDeclare(self, false, false, false, false, amqp.Table{"x-message-ttl": int32(10),
		"x-dead-letter-exchange": "", "x-dead-letter-routing-key": self}); err != nil {
		t.Fatal(err)
	}
	amqpCleanup(t, b, "queue", self)
	amqpPublish(t, ch, "", self, "loop")
	ttlWaitReady(t, conn, self, 0)
	// Had it come back, it would be in the queue again after another TTL.
	clock := ttlDeclare(t, b, ch, "clock", amqp.Table{"x-message-ttl": int32(30)})
	ttlPublish(t, ch, clock, "tick", "")
	ttlWaitReady(t, conn, clock, 0)
	if n, _ := amqpReady(t, conn, self); n != 0 {
		t.Fatalf("%d messages in the cycling queue", n)
	}
	// Rejections never count as a cycle: a queue dead-lettering to itself gets a rejected message
	// back each time, counted.
	back := amqpName(t, "back")
	if _, err := ch.QueueDeclare(back, false, false, false, false, amqp.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": back}); err != nil {
		t.Fatal(err)
	}
	amqpCleanup(t, b, "queue", back)
	amqpPublish(t, ch, "", back, "again")
	for round := int64(0); round < 3; round++ {
		ttlWaitReady(t, conn, back, 1)
		m := amqpGet(t, ch, back, false)
		if round > 0 {
			dlxDeath(t, m, 0, "rejected", back, "", round, back)
		}
		if err := m.Reject(false); err != nil {
			t.Fatal(err)
		}
	}
}

// Persistent messages expiring from a paging durable queue are dead-lettered in order into a
// durable queue, where they survive a restart with their x-death header.
func TestAMQPDeadLetterPersistentRestart(t *testing.T) {
	persistSkipExternal(t)
	forEachRestartableStore(t, func(t *testing.T, store restartable) {
		b1 := startBroker(t, func(o *server.Options) { o.Store = store; o.QueueWindow = 4 })
		c := persistDial(t, b1.URL, true)
		if _, err := c.ch.QueueDeclare("dead.d", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ch.QueueDeclare("src.d", true, false, false, false, amqp.Table{"x-message-ttl": int32(20),
			"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dead.d"}); err != nil {
			t.Fatal(err)
		}
		want := seqBodies("m", 0, 20)
		if got := c.publish("src.d", amqp.Persistent, want...); got != len(want) {
			t.Fatalf("%d acked", got)
		}
		conn := amqpDial(t, b1)
		ttlWaitReady(t, conn, "dead.d", len(want))
		conn.Close()
		c.conn.Close()
		shutdown(t, b1.Srv)

		b2 := startBroker(t, func(o *server.Options) { o.Store = store.reopen(t); o.QueueWindow = 4 })
		ch := amqpChannel(t, amqpDial(t, b2))
		for _, body := range want {
			m := amqpGet(t, ch, "dead.d", true)
			if string(m.Body) != body || m.DeliveryMode != amqp.Persistent {
				t.Fatalf("got %q (mode %d), want %q", m.Body, m.DeliveryMode, body)
			}
			dlxDeath(t, m, 0, "expired", "src.d", "", 1, "src.d")
		}
		amqpGetEmpty(t, ch, "dead.d")
	})
}
