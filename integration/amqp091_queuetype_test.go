package integration

// Queue types as clients declare them: classic, quorum (accepted with RabbitMQ's restrictions),
// unsupported types refused; x-queue-mode and x-queue-version accepted.

import (
	"fmt"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestAMQP091QueueTypes(t *testing.T) {
	b, conn, ch := amqpSetup(t)
	refused := func(name string, durable, autoDelete, exclusive bool, args amqp.Table, text string) {
		t.Helper()
		c := amqpChannel(t, conn)
		_, err := c.QueueDeclare(name, durable, autoDelete, exclusive, false, args)
		if err == nil {
			amqpCleanup(t, b, "queue", name)
		}
		amqpWantError(t, err, 406, "PRECONDITION_FAILED - "+text)
	}
	quorum := amqp.Table{"x-queue-type": "quorum"}
	q := amqpName(t, "q")
	refused(q, false, false, false, quorum, fmt.Sprintf("invalid property 'non-durable' for queue '%s' in vhost '/'", q))
	refused(q, true, false, true, quorum, fmt.Sprintf("invalid property 'exclusive-owner' for queue '%s' in vhost '/'", q))
	refused(q, true, true, false, quorum, fmt.Sprintf("invalid property 'auto-delete' for queue '%s' in vhost '/'", q))
	refused("", true, false, false, quorum, "Cannot declare a server-named queue for type rabbit_quorum_queue")
	refused(q, true, false, false, amqp.Table{"x-queue-type": "quorum", "x-max-priority": 5},
		fmt.Sprintf("invalid arg 'x-max-priority' for queue '%s' in vhost '/' of queue type rabbit_quorum_queue", q))
	refused(q, true, false, false, amqp.Table{"x-queue-type": "foo"},
		fmt.Sprintf("invalid arg 'x-queue-type' for queue '%s' in vhost '/': \"unsupported queue type 'foo'\"", q))
	// A durable quorum queue works as a queue; redeclaring it needs the same type.
	if _, err := ch.QueueDeclare(q, true, false, false, false, quorum); err != nil {
		t.Fatalf("quorum queue: %v", err)
	}
	amqpCleanup(t, b, "queue", q)
	amqpPublish(t, ch, "", q, "in quorum")
	if d := amqpGet(t, ch, q, true); string(d.Body) != "in quorum" {
		t.Fatalf("got %q", d.Body)
	}
	refused(q, true, false, false, nil,
		fmt.Sprintf("inequivalent arg 'x-queue-type' for queue '%s' in vhost '/': received none but current is the value 'quorum' of type 'longstr'", q))

	// classic is the default: declaring with or without it is the same queue; mode and version are ignored.
	c := amqpName(t, "classic")
	if _, err := ch.QueueDeclare(c, true, false, false, false, amqp.Table{"x-queue-mode": "lazy", "x-queue-version": 2}); err != nil {
		t.Fatal(err)
	}
	amqpCleanup(t, b, "queue", c)
	ch2 := amqpChannel(t, conn)
	if _, err := ch2.QueueDeclare(c, true, false, false, false, amqp.Table{"x-queue-type": "classic", "x-queue-mode": "lazy", "x-queue-version": 2}); err != nil {
		t.Fatalf("redeclare with x-queue-type classic: %v", err)
	}
}
