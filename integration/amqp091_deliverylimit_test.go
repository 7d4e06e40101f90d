package integration

// x-delivery-count and x-delivery-limit, as RabbitMQ 3.10's quorum queues set them. Warren also
// counts on a classic queue declared with x-delivery-limit (RabbitMQ 3.10 refuses that argument on
// classic queues), tested on Warren only.

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// dlimQuorum declares a durable quorum queue with args, deleted when the test ends.
func dlimQuorum(t testing.TB, b broker, ch *amqp.Channel, what string, args amqp.Table) string {
	t.Helper()
	name := amqpName(t, what)
	a := amqp.Table{"x-queue-type": "quorum"}
	for k, v := range args {
		a[k] = v
	}
	if _, err := ch.QueueDeclare(name, true, false, false, false, a); err != nil {
		t.Fatalf("queue.declare %q: %v", name, err)
	}
	amqpCleanup(t, b, "queue", name)
	return name
}

func dlimCount(t testing.TB, m amqp.Delivery, want int64) {
	t.Helper()
	if got, ok := m.Headers["x-delivery-count"].(int64); !ok || got != want {
		t.Fatalf("x-delivery-count %#v (%T), want %d", m.Headers["x-delivery-count"], m.Headers["x-delivery-count"], want)
	}
}

// Each requeue (nack, reject, a closed channel) counts; without a limit the message keeps coming.
func TestAMQPDeliveryCountQuorum(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	q := dlimQuorum(t, b, ch, "qq", nil)
	amqpPublish(t, ch, "", q, "m")
	for i := int64(0); i < 3; i++ {
		ttlWaitReady(t, conn, q, 1)
		m := amqpGet(t, ch, q, false)
		dlimCount(t, m, i)
		if m.Redelivered != (i > 0) {
			t.Fatalf("delivery %d: redelivered %v", i, m.Redelivered)
		}
		if i%2 == 0 {
			err := m.Nack(false, true)
			if err != nil {
				t.Fatal(err)
			}
		} else if err := m.Reject(true); err != nil {
			t.Fatal(err)
		}
	}
	cch := amqpChannel(t, conn)
	d := amqpConsume(t, cch, q, false)
	dlimCount(t, amqpRecv(t, d), 3)
	if err := cch.Close(); err != nil {
		t.Fatal(err)
	}
	ttlWaitReady(t, conn, q, 1)
	dlimCount(t, amqpGet(t, ch, q, true), 4)
}

// Past x-delivery-limit returns, the message is dead-lettered with reason delivery_limit, without
// x-delivery-count.
func TestAMQPDeliveryLimitQuorum(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	dead := amqpQueue(t, b, ch, "dead")
	q := dlimQuorum(t, b, ch, "limited", amqp.Table{"x-delivery-limit": int32(1),
		"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
	amqpPublish(t, ch, "", q, "m")
	for i := int64(0); i < 2; i++ {
		ttlWaitReady(t, conn, q, 1)
		m := amqpGet(t, ch, q, false)
		dlimCount(t, m, i)
		if err := m.Nack(false, true); err != nil {
			t.Fatal(err)
		}
	}
	m := dlxGet(t, conn, ch, dead)
	dlxDeath(t, m, 0, "delivery_limit", q, "", 1, q)
	dlxFirst(t, m, "delivery_limit", q, "")
	if _, ok := m.Headers["x-delivery-count"]; ok {
		t.Fatalf("dead-lettered with x-delivery-count: %v", m.Headers)
	}
	ttlWaitReady(t, conn, q, 0)
}

// Warren: a classic queue with x-delivery-limit counts and limits too (dropped without a DLX).
func TestAMQPDeliveryLimitClassic(t *testing.T) {
	if externalURL != "" {
		t.Skip("RabbitMQ 3.10 refuses x-delivery-limit on classic queues")
	}
	b, conn, ch := amqpSetup(t)
	q := ttlDeclare(t, b, ch, "classic", amqp.Table{"x-delivery-limit": int32(0)})
	amqpPublish(t, ch, "", q, "m")
	m := amqpGet(t, ch, q, false)
	dlimCount(t, m, 0)
	if err := m.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	ttlWaitReady(t, conn, q, 0)
	// A plain classic queue adds no header.
	plain := amqpQueue(t, b, ch, "plain")
	amqpPublish(t, ch, "", plain, "p")
	if m := amqpGet(t, ch, plain, true); m.Headers["x-delivery-count"] != nil {
		t.Fatalf("x-delivery-count on a classic queue: %v", m.Headers)
	}
}
