package integration

// Consumer priorities (x-priority on basic.consume) and single active consumer
// (x-single-active-consumer).

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// consConsume starts a consumer with prefetch on its own channel, with args.
func consConsume(t testing.TB, conn *amqp.Connection, queue string, prefetch int, args amqp.Table) (*amqp.Channel, <-chan amqp.Delivery) {
	t.Helper()
	ch := amqpChannel(t, conn)
	if err := ch.Qos(prefetch, 0, false); err != nil {
		t.Fatal(err)
	}
	d, err := ch.Consume(queue, "", false, false, false, false, args)
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	return ch, d
}

func consRecv(t testing.TB, d <-chan amqp.Delivery, body string) amqp.Delivery {
	t.Helper()
	m := amqpRecv(t, d)
	if string(m.Body) != body {
		t.Fatalf("got %q, want %q", m.Body, body)
	}
	return m
}

// Higher-priority consumers get messages while they have credit; lower ones when they are blocked.
func TestAMQPConsumerPriority(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "cprio")
	_, low := consConsume(t, conn, q, 1, nil)
	_, high := consConsume(t, conn, q, 1, amqp.Table{"x-priority": int32(10)})
	amqpPublish(t, ch, "", q, "m1")
	h1 := consRecv(t, high, "m1")
	amqpPublish(t, ch, "", q, "m2") // high is blocked by its prefetch
	l2 := consRecv(t, low, "m2")
	amqpPublish(t, ch, "", q, "m3") // both blocked
	if n, _ := amqpReady(t, conn, q); n != 1 {
		t.Fatalf("%d ready, want 1", n)
	}
	if err := l2.Ack(false); err != nil {
		t.Fatal(err)
	}
	consRecv(t, low, "m3")
	if err := h1.Ack(false); err != nil {
		t.Fatal(err)
	}
	amqpPublish(t, ch, "", q, "m4")
	consRecv(t, high, "m4")
}

// Only the first consumer gets messages; when it goes, the next takes over and gets its
// unacknowledged messages back in order.
func TestAMQPSingleActiveConsumer(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := ttlDeclare(t, b, ch, "sac", amqp.Table{"x-single-active-consumer": true})
	ch1, d1 := consConsume(t, conn, q, 1, nil)
	_, d2 := consConsume(t, conn, q, 0, amqp.Table{"x-priority": int32(10)})
	amqpPublish(t, ch, "", q, "m1")
	amqpPublish(t, ch, "", q, "m2")
	consRecv(t, d1, "m1")
	if n, c := amqpReady(t, conn, q); n != 1 || c != 2 {
		t.Fatalf("%d ready, %d consumers; want 1, 2 (the second consumer is not active)", n, c)
	}
	if err := ch1.Close(); err != nil {
		t.Fatal(err)
	}
	m := consRecv(t, d2, "m1")
	if !m.Redelivered {
		t.Fatal("m1 not redelivered")
	}
	consRecv(t, d2, "m2")
	amqpPublish(t, ch, "", q, "m3")
	consRecv(t, d2, "m3")
}

// x-priority must be an integer; an exclusive consumer is refused on a single-active-consumer queue.
func TestAMQPConsumerArgsRefused(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := amqpQueue(t, b, ch, "cargs")
	for _, c := range []struct {
		v    any
		kind string
	}{{"high", "longstr"}, {1.5, "double"}, {true, "bool"}} {
		cch := amqpChannel(t, conn)
		_, err := cch.Consume(q, "", false, false, false, false, amqp.Table{"x-priority": c.v})
		e := amqpWantError(t, err, 406, "")
		if want := "PRECONDITION_FAILED - invalid arg 'x-priority' for queue '" + q + "' in vhost '/': \"expected integer, got " + c.kind + "\""; e.Reason != want {
			t.Errorf("%q, want %q", e.Reason, want)
		}
	}
	sac := ttlDeclare(t, b, ch, "sac", amqp.Table{"x-single-active-consumer": true})
	cch := amqpChannel(t, conn)
	_, err := cch.Consume(sac, "", false, true, false, false, nil)
	amqpWantError(t, err, 403, "ACCESS_REFUSED - queue '"+sac+"' in vhost '/' in exclusive use")
}
