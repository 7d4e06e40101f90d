package integration

// Regression tests for divergences from RabbitMQ 3.10.8 found by TestDiff (diff_test.go). Each passes
// against Warren and against RabbitMQ (WARREN_TEST_URL=amqp://guest:guest@127.0.0.1:5672/).

import (
	"fmt"
	"testing"

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
