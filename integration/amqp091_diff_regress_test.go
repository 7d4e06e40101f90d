package integration

// Regression tests for divergences from RabbitMQ 3.10.8 found by TestDiff (diff_test.go). Each passes
// against Warren and against RabbitMQ (WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5672/).

import (
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestAMQP091DiffGlobalQosStopsNoAckConsumers: once a channel's global prefetch limit (basic.qos
// global=true) is reached, RabbitMQ's channel limiter holds back the deliveries of every consumer on
// the channel, no-ack ones included; no-ack deliveries do not count towards the limit. Warren used to
// deliver to no-ack consumers regardless (TestDiff seeds 1006 and 1007).
func TestAMQP091DiffGlobalQosStopsNoAckConsumers(t *testing.T) {
	b, conn, pub := amqpSetup(t)
	acking := amqpQueue(t, b, pub, "acking")
	noAck := amqpQueue(t, b, pub, "noack")
	amqpPublish(t, pub, "", acking, "a1")
	amqpPublish(t, pub, "", noAck, "b1")
	amqpPublish(t, pub, "", noAck, "b2")

	ch := amqpChannel(t, conn)
	if err := ch.Qos(1, 0, true); err != nil {
		t.Fatalf("basic.qos global: %v", err)
	}
	d1, err := ch.Consume(acking, "acking", false, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	m := amqpRecv(t, d1)
	if string(m.Body) != "a1" {
		t.Fatalf("acking consumer got %q, want a1", m.Body)
	}
	// The channel's limit (1) is reached: the no-ack consumer gets nothing.
	d2, err := ch.Consume(noAck, "noack", true, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume no-ack: %v", err)
	}
	if ready, _ := amqpReady(t, conn, noAck); ready != 2 {
		t.Fatalf("%d ready in the no-ack consumer's queue while the channel's limit is reached, want 2", ready)
	}
	select {
	case m := <-d2:
		t.Fatalf("no-ack consumer got %q while the channel's limit is reached", m.Body)
	default:
	}
	// The ack frees the limit: the no-ack consumer gets both (its own deliveries do not count).
	if err := m.Ack(false); err != nil {
		t.Fatalf("ack: %v", err)
	}
	if got := amqpRecvBodies(t, d2, 2); got[0] != "b1" || got[1] != "b2" {
		t.Fatalf("no-ack consumer got %v, want [b1 b2]", got)
	}
	if ready, _ := amqpReady(t, conn, noAck); ready != 0 {
		t.Fatalf("%d ready after the ack, want 0", ready)
	}
}

// TestAMQP091DiffConsumeTagCheckedFirst: RabbitMQ checks basic.consume's consumer tag before the queue:
// reusing a tag the channel holds is a connection error (530) even when the queue does not exist (not
// a channel error 404, as Warren used to answer; TestDiff seeds 2001 and 2003).
func TestAMQP091DiffConsumeTagCheckedFirst(t *testing.T) {
	b, conn, pub := amqpSetup(t)
	q := amqpQueue(t, b, pub, "q")
	ch := amqpChannel(t, conn)
	if _, err := ch.Consume(q, "tag", false, false, false, false, nil); err != nil {
		t.Fatalf("consume: %v", err)
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	_, err := ch.Consume(amqpName(t, "missing"), "tag", false, false, false, false, nil)
	amqpAssertConnectionError(t, conn, closed, err, amqp.NotAllowed, "NOT_ALLOWED - attempt to reuse consumer tag 'tag'")
}

// TestAMQP091DiffNoDeliveryToClosingConnection: when a client closes its connection, the messages one
// of its channels held unacknowledged go back to their queue and not, before close-ok, to a consumer
// on another channel of the same connection (RabbitMQ sends nothing more; Warren did when it tore
// down the holding channel first; TestDiff seeds 2000 and 2055). The channels are torn down in no
// fixed order, so the test closes 20 connections.
func TestAMQP091DiffNoDeliveryToClosingConnection(t *testing.T) {
	b, conn, pub := amqpSetup(t)
	q := amqpQueue(t, b, pub, "q")
	for i := range 20 {
		r := &diffRun{url: b.URL}
		if err := r.dial(0); err != nil {
			t.Fatal(err)
		}
		dc := r.conns[0]
		holder, other := dc.ch[0].ch, dc.ch[1].ch
		body := fmt.Sprintf("m%d", i)
		amqpPublish(t, pub, "", q, body)
		m, ok, err := holder.Get(q, false)
		if err != nil || !ok {
			t.Fatalf("get: %v %v", ok, err)
		}
		if string(m.Body) != body {
			t.Fatalf("got %q, want %s", m.Body, body)
		}
		d, err := other.Consume(q, "other", false, false, false, false, nil)
		if err != nil {
			t.Fatalf("consume: %v", err)
		}
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			for range d {
			}
		}()
		dc.tap.take()
		if err := dc.c.Close(); err != nil {
			t.Fatalf("connection.close: %v", err)
		}
		<-drained // the client closes d with the connection
		for _, e := range dc.tap.take() {
			if e.kind == "deliver" {
				t.Fatalf("connection %d: %s delivered to consumer %q after connection.close", i, e.body, e.ctag)
			}
		}
		if ready, _ := amqpReady(t, conn, q); ready != 1 {
			t.Fatalf("connection %d: %d ready after the close, want 1", i, ready)
		}
		if _, ok, err := pub.Get(q, true); err != nil || !ok {
			t.Fatalf("get after close: %v %v", ok, err)
		}
	}
}

// TestAMQP091DiffQosPerConsumerLiftsGlobalLimit: in RabbitMQ basic.qos with global=false also removes
// the channel's global limit (rabbit_limiter:unlimit_prefetch); it sets the prefetch of consumers
// created afterwards. Warren used to keep the global limit (TestDiff seed 4012).
func TestAMQP091DiffQosPerConsumerLiftsGlobalLimit(t *testing.T) {
	b, conn, pub := amqpSetup(t)
	q := amqpQueue(t, b, pub, "q")
	for _, body := range []string{"m1", "m2", "m3"} {
		amqpPublish(t, pub, "", q, body)
	}
	ch := amqpChannel(t, conn)
	if err := ch.Qos(1, 0, true); err != nil {
		t.Fatalf("basic.qos global: %v", err)
	}
	d, err := ch.Consume(q, "c", false, false, false, false, nil) // consumer prefetch 0: unlimited
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	if got := amqpRecvBodies(t, d, 1); got[0] != "m1" {
		t.Fatalf("got %v, want [m1]", got)
	}
	if ready, _ := amqpReady(t, conn, q); ready != 2 {
		t.Fatalf("%d ready under the global limit of 1, want 2", ready)
	}
	if err := ch.Qos(5, 0, false); err != nil {
		t.Fatalf("basic.qos per consumer: %v", err)
	}
	if got := amqpRecvBodies(t, d, 2); got[0] != "m2" || got[1] != "m3" {
		t.Fatalf("got %v after basic.qos global=false, want [m2 m3]", got)
	}
}

// TestAMQP091DiffTxRoutesAtPublish: RabbitMQ routes a basic.publish inside a transaction when it
// arrives and, at tx.commit, enqueues it on the queues chosen then that still exist (looked up by
// name: a queue deleted meanwhile is dropped, one declared again under the name takes its place); a
// mandatory message is returned at tx.commit if none is left. Warren used to route at tx.commit
// (TestDiff's txpublish divergence).
func TestAMQP091DiffTxRoutesAtPublish(t *testing.T) {
	b, conn, pub := amqpSetup(t)
	x := amqpExchange(t, b, pub, "direct", "x")
	q5, q6, q7, q8 := amqpQueue(t, b, pub, "q5"), amqpQueue(t, b, pub, "q6"), amqpQueue(t, b, pub, "q7"), amqpQueue(t, b, pub, "q8")
	for _, qb := range [][2]string{{q5, "k"}, {q7, "k7"}, {q8, "k8"}} {
		if err := pub.QueueBind(qb[0], qb[1], x, false, nil); err != nil {
			t.Fatalf("queue.bind: %v", err)
		}
	}
	ch := amqpChannel(t, conn)
	returns := ch.NotifyReturn(make(chan amqp.Return, 10))
	if err := ch.Tx(); err != nil {
		t.Fatalf("tx.select: %v", err)
	}
	for _, p := range [][2]string{{"k", "m1"}, {"nokey", "m2"}, {"k7", "m3"}, {"k8", "m4"}} {
		if err := ch.Publish(x, p[0], true, false, amqp.Publishing{Body: []byte(p[1])}); err != nil {
			t.Fatalf("publish %s: %v", p[1], err)
		}
	}
	// Routing changes after the publishes, before the commit.
	if err := ch.QueueUnbind(q5, "k", x, nil); err != nil {
		t.Fatalf("queue.unbind: %v", err)
	}
	if err := ch.QueueBind(q6, "k", x, false, nil); err != nil {
		t.Fatalf("queue.bind: %v", err)
	}
	if _, err := ch.QueueDelete(q7, false, false, false); err != nil {
		t.Fatalf("queue.delete: %v", err)
	}
	if _, err := ch.QueueDelete(q8, false, false, false); err != nil {
		t.Fatalf("queue.delete: %v", err)
	}
	if _, err := ch.QueueDeclare(q8, false, false, false, false, nil); err != nil {
		t.Fatalf("queue.declare: %v", err)
	}
	select {
	case r := <-returns:
		t.Fatalf("%s returned before tx.commit", r.Body)
	default:
	}
	if err := ch.TxCommit(); err != nil {
		t.Fatalf("tx.commit: %v", err)
	}
	// The returns come before commit-ok: m2 routed nowhere, m3's queue is gone.
	var got []string
	for range 2 {
		select {
		case r := <-returns:
			got = append(got, string(r.Body))
		default:
		}
	}
	if len(got) != 2 || got[0] != "m2" || got[1] != "m3" {
		t.Fatalf("returned %v at tx.commit, want [m2 m3]", got)
	}
	for _, want := range []struct {
		q string
		n int
	}{{q5, 1}, {q6, 0}, {q8, 1}} {
		if n, _ := amqpReady(t, conn, want.q); n != want.n {
			t.Errorf("%d messages in %s after tx.commit, want %d", n, want.q, want.n)
		}
	}
	if m := amqpGet(t, pub, q5, true); string(m.Body) != "m1" {
		t.Errorf("%s holds %q, want m1", q5, m.Body)
	}
}

// TestAMQP091DiffGlobalQosCountsGets: when basic.qos global=true switches the channel's limit on,
// RabbitMQ starts its count at every unacked delivery of the channel, basic.get ones included
// (rabbit_channel passes the length of its unacked queue to rabbit_limiter:limit_prefetch), and
// only consumer deliveries and their settlements move it afterwards: a get outstanding at that
// moment counts until the limit is lifted, even once acked; a get made afterwards does not count.
// Warren used to count consumer deliveries only (TestDiff seed 4072).
func TestAMQP091DiffGlobalQosCountsGets(t *testing.T) {
	b, conn, pub := amqpSetup(t)
	qa, qb := amqpQueue(t, b, pub, "a"), amqpQueue(t, b, pub, "b")
	for _, body := range []string{"a0", "a1", "a2"} {
		amqpPublish(t, pub, "", qa, body)
	}
	for _, body := range []string{"b0", "b1", "b2"} {
		amqpPublish(t, pub, "", qb, body)
	}

	ch := amqpChannel(t, conn)
	g := amqpGet(t, ch, qa, false)
	if err := ch.Qos(1, 0, true); err != nil {
		t.Fatalf("basic.qos global: %v", err)
	}
	d, err := ch.Consume(qb, "c", false, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	if ready, _ := amqpReady(t, conn, qb); ready != 3 {
		t.Fatalf("%d ready with the get outstanding at basic.qos, want 3", ready)
	}
	if err := g.Ack(false); err != nil {
		t.Fatalf("ack: %v", err)
	}
	if ready, _ := amqpReady(t, conn, qb); ready != 3 {
		t.Fatalf("%d ready after acking the get, want 3 (it still counts)", ready)
	}
	if err := ch.Qos(2, 0, true); err != nil { // raising the limit keeps the count
		t.Fatalf("basic.qos global: %v", err)
	}
	if got := amqpRecvBodies(t, d, 1); got[0] != "b0" {
		t.Fatalf("got %v after raising the limit to 2, want [b0]", got)
	}
	if ready, _ := amqpReady(t, conn, qb); ready != 2 {
		t.Fatalf("%d ready under the limit of 2, want 2", ready)
	}
	select {
	case m := <-d:
		t.Fatalf("got %q beyond the limit", m.Body)
	default:
	}

	// A get made after the limit is on does not count.
	ch2 := amqpChannel(t, conn)
	if err := ch2.Qos(1, 0, true); err != nil {
		t.Fatalf("basic.qos global: %v", err)
	}
	amqpGet(t, ch2, qa, false)
	d2, err := ch2.Consume(qa, "c2", false, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	if got := amqpRecvBodies(t, d2, 1); got[0] != "a2" {
		t.Fatalf("got %v, want [a2]", got)
	}
}

// TestAMQP091DiffNewConsumerJoinsRotationAtBack: RabbitMQ keeps a queue's consumers (of one
// priority) in a queue: the consumer that gets a message moves to the back, and a new consumer is
// added at the back. With consumers c1 and c2, a message to c1 leaves the turn [c2 c1]; c3 joins as
// [c2 c1 c3]; when c2 goes the next message is c1's. Warren used to put c3 after c2 in the array it
// walks round-robin, giving it c3 (TestDiff seed 6022).
func TestAMQP091DiffNewConsumerJoinsRotationAtBack(t *testing.T) {
	b, conn, pub := amqpSetup(t)
	q := amqpQueue(t, b, pub, "q")
	consume := func(tag string) (*amqp.Channel, <-chan amqp.Delivery) {
		ch := amqpChannel(t, conn)
		d, err := ch.Consume(q, tag, true, false, false, false, nil)
		if err != nil {
			t.Fatalf("consume %s: %v", tag, err)
		}
		return ch, d
	}
	_, d1 := consume("c1")
	ch2, d2 := consume("c2")
	amqpPublish(t, pub, "", q, "m1")
	if got := amqpRecvBodies(t, d1, 1); got[0] != "m1" {
		t.Fatalf("c1 got %v, want [m1]", got)
	}
	_, d3 := consume("c3")
	if err := ch2.Cancel("c2", false); err != nil {
		t.Fatalf("cancel c2: %v", err)
	}
	for _, body := range []string{"m2", "m3"} {
		amqpPublish(t, pub, "", q, body)
	}
	if got := amqpRecvBodies(t, d1, 1); got[0] != "m2" {
		t.Fatalf("c1 got %v, want [m2]", got)
	}
	if got := amqpRecvBodies(t, d3, 1); got[0] != "m3" {
		t.Fatalf("c3 got %v, want [m3]", got)
	}
	for _, d := range []<-chan amqp.Delivery{d1, d2, d3} {
		select {
		case m, ok := <-d:
			if ok {
				t.Fatalf("unexpected delivery %q", m.Body)
			}
		default:
		}
	}
}

// TestAMQP091DiffUnblockedConsumerRejoinsAtBack: a consumer its channel's limit stops leaves
// RabbitMQ's round-robin turn (rabbit_queue_consumers blocks it) and rejoins it at the back when
// the channel frees credit (here: basic.qos raising the global limit), after the consumers served
// meanwhile. Warren used to keep it in its place, so it came first again.
func TestAMQP091DiffUnblockedConsumerRejoinsAtBack(t *testing.T) {
	b, conn, pub := amqpSetup(t)
	q := amqpQueue(t, b, pub, "q")
	ch1 := amqpChannel(t, conn)
	if err := ch1.Qos(1, 0, true); err != nil {
		t.Fatalf("basic.qos global: %v", err)
	}
	d1, err := ch1.Consume(q, "c1", false, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume c1: %v", err)
	}
	d2, err := amqpChannel(t, conn).Consume(q, "c2", true, false, false, false, nil)
	if err != nil {
		t.Fatalf("consume c2: %v", err)
	}
	var got []string
	send := func(bodies ...string) {
		for _, body := range bodies {
			amqpPublish(t, pub, "", q, body) // confirmed: routed and dispatched
			select {
			case m := <-d1:
				got = append(got, "c1:"+string(m.Body))
			case m := <-d2:
				got = append(got, "c2:"+string(m.Body))
			case <-time.After(amqpTimeout):
				t.Fatalf("%s not delivered", body)
			}
		}
	}
	send("m1", "m2", "m3") // m3: c1 is at its limit and leaves the turn
	if err := ch1.Qos(5, 0, true); err != nil {
		t.Fatalf("basic.qos global: %v", err)
	}
	send("m4", "m5", "m6")
	want := []string{"c1:m1", "c2:m2", "c2:m3", "c2:m4", "c1:m5", "c2:m6"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("deliveries %v, want %v", got, want)
	}
}
