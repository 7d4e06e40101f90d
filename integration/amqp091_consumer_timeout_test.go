package integration

// Consumer timeout (RabbitMQ's consumer_timeout): a delivery left unacknowledged too long closes
// its channel with 406 and RabbitMQ's text, and the message goes back to the queue. Warren only:
// the reference's timeout is its 30-minute default, checked once a minute.

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenmq/warren/server"
)

func TestAMQPConsumerTimeout(t *testing.T) {
	b := startBroker(t, func(o *server.Options) { o.ConsumerTimeout = 50 * time.Millisecond })
	conn := amqpDial(t, b)
	ch := amqpConfirmChannel(t, conn)
	q := amqpQueue(t, b, ch, "ctimeout")
	amqpPublish(t, ch, "", q, "slow")

	cch := amqpChannel(t, conn)
	closed := cch.NotifyClose(make(chan *amqp.Error, 1))
	d := amqpConsume(t, cch, q, false)
	consRecv(t, d, "slow")
	e := amqpWaitClose(t, closed)
	const want = "PRECONDITION_FAILED - delivery acknowledgement on channel 2 timed out. Timeout value used: 50 ms. " +
		"This timeout value can be configured, see consumers doc guide to learn more"
	if e.Code != 406 || e.Reason != want {
		t.Fatalf("closed with %d %q, want 406 %q", e.Code, e.Reason, want)
	}
	// The message is back, redelivered; the connection and other channels live on.
	m := dlxGet(t, conn, ch, q)
	if string(m.Body) != "slow" || !m.Redelivered {
		t.Fatalf("got %q redelivered=%v", m.Body, m.Redelivered)
	}

	// basic.get with ack counts too; a no-ack consumer has nothing to time out.
	gch := amqpChannel(t, conn)
	gclosed := gch.NotifyClose(make(chan *amqp.Error, 1))
	amqpPublish(t, ch, "", q, "got")
	amqpGet(t, gch, q, false)
	if e := amqpWaitClose(t, gclosed); e.Code != 406 {
		t.Fatalf("basic.get channel closed with %d %q", e.Code, e.Reason)
	}
	nch := amqpChannel(t, conn)
	nd := amqpConsume(t, nch, q, true)
	consRecv(t, nd, "got")
	clock := ttlDeclare(t, b, ch, "clock", amqp.Table{"x-message-ttl": int32(100)})
	ttlPublish(t, ch, clock, "tick", "")
	ttlWaitReady(t, conn, clock, 0)
	amqpAssertAlive(t, conn)
	if err := nch.Close(); err != nil {
		t.Fatalf("no-ack channel: %v", err)
	}
}
